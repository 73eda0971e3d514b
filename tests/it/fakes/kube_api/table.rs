//! Server-side printing in the Kubernetes API stand-in: a GET that asks for
//! `application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get` sends) gets a
//! `meta.k8s.io/v1` Table instead of the object or list.
//!
//! The columns are the apiserver's for custom resources: `Name`, then the CRD version's
//! `additionalPrinterColumns` (or `Age` when it declares none), each cell read from the column's
//! JSONPath; `date` columns print as an age (`6m24s`) the way the apiserver's converter does.
//! Built-in types get the apiserver's default columns (`Name`, `Created At`), not their
//! type-specific printers. Only dotted JSONPaths (`.spec.nodeName`) are evaluated; anything
//! else gives an empty cell. Pure functions; the routing decides when to call them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// True when the `Accept` header asks for a `meta.k8s.io` Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// One column: its definition and where its cells come from.
struct Column {
    name: String,
    type_: String,
    format: String,
    priority: i64,
    json_path: String,
}

/// The columns for a type: from its CRD's version when there is one.
fn columns(crd: Option<&Value>, version: &str) -> Vec<Column> {
    let name = Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    };
    let date = |title: &str| Column {
        name: title.into(),
        type_: "date".into(),
        format: String::new(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    };
    let Some(crd) = crd else {
        return vec![name, date("Created At")];
    };
    let versions = crd["spec"]["versions"].as_array().into_iter().flatten();
    let served = versions.into_iter().find(|v| v["name"] == version);
    let declared = served.and_then(|v| v["additionalPrinterColumns"].as_array());
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut all = vec![name];
    match declared {
        Some(declared) if !declared.is_empty() => all.extend(declared.iter().map(|c| Column {
            name: text(&c["name"]),
            type_: text(&c["type"]),
            format: text(&c["format"]),
            priority: c["priority"].as_i64().unwrap_or(0),
            json_path: text(&c["jsonPath"]),
        })),
        _ => all.push(date("Age")),
    }
    all
}

/// `body` (one object or a list) as a Table. `include` is the `includeObject` parameter
/// (`None`, `Metadata` (the default) or `Object`); `now` dates the ages.
pub fn to_table(
    crd: Option<&Value>,
    version: &str,
    body: &Value,
    include: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let columns = columns(crd, version);
    let objects: Vec<&Value> = match body["items"].as_array() {
        Some(items) => items.iter().collect(),
        None => vec![body],
    };
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, object, now)).collect();
            let mut row = json!({ "cells": cells });
            match include.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = object.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "type": c.type_, "format": c.format, "priority": c.priority,
                "description": format!("Column {} ({})", c.name, c.json_path),
            })
        })
        .collect();
    let mut metadata = json!({});
    for field in ["resourceVersion", "continue", "remainingItemCount"] {
        if !body["metadata"][field].is_null() && body["items"].is_array() {
            metadata[field] = body["metadata"][field].clone();
        }
    }
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": definitions, "rows": rows,
    })
}

fn cell(column: &Column, object: &Value, now: DateTime<Utc>) -> Value {
    let found = column
        .json_path
        .strip_prefix('.')
        .map(|path| path.split('.').try_fold(object, |v, key| v.get(key)));
    let Some(Some(value)) = found else {
        return Value::Null;
    };
    match (column.type_.as_str(), value) {
        (_, Value::Null) => Value::Null,
        ("date", Value::String(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(time) => Value::String(human_age(now - time.with_timezone(&Utc))),
            Err(_) => Value::String("<invalid>".into()),
        },
        ("string", Value::String(_)) => value.clone(),
        ("string", other) => Value::String(other.to_string()),
        _ => value.clone(),
    }
}

/// An age as kubectl prints it: two units at most, coarser as it grows (`45s`, `6m24s`, `15m`,
/// `5h3m`, `20h`, `3d4h`, `30d`, `2y10d`).
pub fn human_age(age: chrono::TimeDelta) -> String {
    let seconds = age.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let (days, years) = (hours / 24, hours / (24 * 365));
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 => pair(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => pair(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => pair(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => pair(years, "y", days % 365, "d"),
        _ => format!("{years}y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn crd() -> Value {
        json!({"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
            {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
            {"name": "Size", "type": "string", "jsonPath": ".status.size"},
            {"name": "Taken", "type": "date", "jsonPath": ".status.creationTime"},
        ]}]}})
    }

    #[test]
    fn crd_columns_fill_cells_from_their_paths() {
        let now = DateTime::parse_from_rfc3339("2025-08-11T10:14:25Z")
            .unwrap()
            .with_timezone(&Utc);
        let list = json!({"metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"},
             "status": {"size": "8937504", "creationTime": "2025-08-11T10:08:01Z"}},
            {"metadata": {"name": "b"}, "spec": {}},
        ]});
        let table = to_table(Some(&crd()), "v1", &list, None, now);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Node", "Size", "Taken"]);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["a", "n1", "8937504", "6m24s"])
        );
        assert_eq!(table["rows"][1]["cells"], json!(["b", null, null, null]));
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn types_without_columns_get_the_defaults() {
        let now = Utc::now();
        let object = json!({"metadata": {"name": "cm", "creationTimestamp": now.to_rfc3339()}});
        let table = to_table(None, "v1", &object, Some("None"), now);
        assert_eq!(table["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(table["rows"][0]["cells"], json!(["cm", "0s"]));
        assert!(table["rows"][0].get("object").is_none());
        let bare_crd = json!({"spec": {"versions": [{"name": "v1"}]}});
        let table = to_table(Some(&bare_crd), "v1", &object, None, now);
        assert_eq!(table["columnDefinitions"][1]["name"], "Age");
    }

    #[test]
    fn ages_read_like_kubectls() {
        let cases = [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (384, "6m24s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 180, "5h3m"),
            (20 * 3600, "20h"),
            (76 * 3600, "3d4h"),
            (30 * 86400, "30d"),
            (740 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_age(TimeDelta::seconds(seconds)), want, "{seconds}s");
        }
    }
}
