//! Unit tests of the `ETCDSnapshotFile` CRD: its YAML, RKE2's identity and columns, and that the
//! schema accepts exactly the fields of the wire types.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::api::wire::{
    EtcdSnapshotError, EtcdSnapshotFile, EtcdSnapshotFileList, EtcdSnapshotSpec,
    EtcdSnapshotStatus, ObjectMeta, S3_FIELDS,
};
use crate::commands::output;
use crate::snapshot::{SnapshotRecord, Storage};

fn yaml_value() -> Value {
    serde_saphyr::from_str(&render_yaml().unwrap()).unwrap()
}

/// Where a problem is found when `value` is checked against `schema` (a small structural
/// validator: types, nullability, required fields, unknown fields).
fn problems(schema: &Schema, value: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        Value::Null if schema.nullable => {}
        Value::Null => found.push(format!("{path}: null is not allowed")),
        Value::String(_) | Value::Number(_) if schema.int_or_string => {}
        Value::Object(fields) if schema.type_.as_deref() == Some("object") => {
            for name in &schema.required {
                if !fields.contains_key(name) {
                    found.push(format!("{path}.{name}: required but missing"));
                }
            }
            for (name, field) in fields {
                // The apiserver itself defines these at the root of every object.
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str()) {
                    continue;
                }
                let at = format!("{path}.{name}");
                match (schema.properties.get(name), &schema.additional_properties) {
                    (Some(sub), _) => found.extend(problems(sub, field, &at)),
                    (None, Some(sub)) => found.extend(problems(sub, field, &at)),
                    (None, None) => found.push(format!("{at}: not in the schema")),
                }
            }
        }
        Value::String(_) if schema.type_.as_deref() == Some("string") => {}
        Value::Bool(_) if schema.type_.as_deref() == Some("boolean") => {}
        Value::Number(n) if schema.type_.as_deref() == Some("integer") && n.is_i64() => {}
        other => found.push(format!("{path}: {other} does not match {:?}", schema.type_)),
    }
    found
}

/// Dotted paths of every object field under `value`, not descending into string maps.
fn field_paths(value: &Value, path: &str, maps: &[&str], out: &mut BTreeSet<String>) {
    if let Value::Object(fields) = value {
        for (name, field) in fields {
            let at = format!("{path}.{name}");
            out.insert(at.clone());
            if !maps.contains(&at.as_str()) {
                field_paths(field, &at, maps, out);
            }
        }
    }
}

/// Dotted paths of every property the schema declares.
fn schema_paths(schema: &Schema, path: &str, out: &mut BTreeSet<String>) {
    for (name, sub) in &schema.properties {
        let at = format!("{path}.{name}");
        out.insert(at.clone());
        schema_paths(sub, &at, out);
    }
}

fn root_schema() -> Schema {
    etcd_snapshot_file_crd().spec.versions[0]
        .schema
        .open_api_v3_schema
        .clone()
}

/// A wire object with every optional field set.
fn full_wire_object() -> EtcdSnapshotFile {
    EtcdSnapshotFile {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        metadata: ObjectMeta {
            name: "s3-etcd-snapshot-n1-1754906881-e1e196".into(),
            ..Default::default()
        },
        spec: EtcdSnapshotSpec {
            snapshot_name: "etcd-snapshot-n1-1754906881".into(),
            node_name: "n1".into(),
            location: "s3://b/f/etcd-snapshot-n1-1754906881".into(),
            metadata: Some(BTreeMap::from([("team".into(), "ops".into())])),
            s3: Some(serde_json::json!({"bucket": "b", "prefix": "f", "insecure": false})),
        },
        status: EtcdSnapshotStatus {
            size: Some("8937504".into()),
            creation_time: Some("2025-08-11T10:08:01Z".into()),
            ready_to_use: Some(false),
            error: Some(EtcdSnapshotError {
                time: Some("2025-08-11T10:08:01Z".into()),
                message: Some("upload failed".into()),
            }),
            verification: Some(crate::kube::resources::SnapshotFileVerification {
                time: Some("2025-08-12T03:00:00Z".into()),
                result: Some("failed".into()),
                message: Some("hashkv: differs".into()),
            }),
            point_in_time: Some(crate::kube::resources::SnapshotFilePointInTime {
                from_revision: Some(100),
                to_revision: Some(130),
                from: Some("2025-08-11T10:08:01Z".into()),
                to: Some("2025-08-11T10:10:12.345Z".into()),
            }),
        },
    }
}

fn record() -> SnapshotRecord {
    let name = "etcd-snapshot-n1-1754906881";
    let location = format!("file:///var/lib/rancher/rke2/server/db/snapshots/{name}");
    SnapshotRecord::example(name, &location, "n1", Storage::Local)
}

#[test]
fn yaml_parses_back_to_the_same_definition() {
    let text = render_yaml().unwrap();
    let back: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(back, etcd_snapshot_file_crd(), "{text}");
}

#[test]
fn identity_is_rke2s() {
    let crd = yaml_value();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "etcdsnapshotfiles.k3s.cattle.io");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "k3s.cattle.io");
    assert_eq!(spec["scope"], "Cluster");
    assert_eq!(
        spec["names"],
        serde_json::json!({
            "kind": "ETCDSnapshotFile",
            "listKind": "ETCDSnapshotFileList",
            "plural": "etcdsnapshotfiles",
            "singular": "etcdsnapshotfile",
        }),
        "no short names, as in RKE2"
    );
    let versions = spec["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["name"], "v1");
    assert_eq!(versions[0]["served"], true);
    assert_eq!(versions[0]["storage"], true);
    assert!(
        versions[0].get("subresources").is_none(),
        "RKE2 has no status subresource: spec and status are written together"
    );
}

#[test]
fn printer_columns_are_rke2s_verified_and_restorable_to() {
    let crd = yaml_value();
    let columns: Vec<(String, String, String)> =
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap().to_string();
                (field("name"), field("jsonPath"), field("type"))
            })
            .collect();
    let expected: Vec<(String, String, String)> = [
        ("SnapshotName", ".spec.snapshotName"),
        ("Node", ".spec.nodeName"),
        ("Location", ".spec.location"),
        ("Size", ".status.size"),
        ("CreationTime", ".status.creationTime"),
        ("Verified", ".status.verification.result"),
        ("RestorableTo", ".status.pointInTime.to"),
    ]
    .iter()
    .map(|(n, p)| (n.to_string(), p.to_string(), "string".to_string()))
    .collect();
    assert_eq!(columns, expected);
}

#[test]
fn printer_columns_show_every_cell_of_the_ls_table() {
    let item = record().to_snapshot_file();
    let value = serde_json::to_value(&item).unwrap();
    let shown: Vec<String> = printer_columns()
        .iter()
        .map(|c| {
            let mut at = &value;
            for step in c.json_path.trim_start_matches('.').split('.') {
                at = &at[step];
            }
            // Verified is empty until a drill: kubectl shows <none> there.
            at.as_str()
                .map_or_else(|| "<none>".to_string(), str::to_string)
        })
        .collect();
    let table = output::table(&EtcdSnapshotFileList::new(vec![item]));
    let row = table.lines().nth(1).unwrap();
    for cell in row.split_whitespace() {
        assert!(
            shown.iter().any(|s| s == cell),
            "`ls` shows {cell:?} but kubectl get would not: {shown:?}"
        );
    }
}

#[test]
fn spec_requires_name_node_and_location() {
    let root = root_schema();
    let spec = &root.properties["spec"];
    let required: BTreeSet<&str> = spec.required.iter().map(String::as_str).collect();
    assert_eq!(
        required,
        BTreeSet::from(["snapshotName", "nodeName", "location"])
    );
    let mut missing = serde_json::to_value(full_wire_object()).unwrap();
    missing["spec"].as_object_mut().unwrap().remove("location");
    assert_eq!(
        problems(spec, &missing["spec"], "spec"),
        vec!["spec.location: required but missing".to_string()]
    );
}

#[test]
fn every_wire_field_is_in_the_schema_and_no_other() {
    let root = root_schema();
    let value = serde_json::to_value(full_wire_object()).unwrap();
    for part in ["spec", "status"] {
        assert_eq!(
            problems(&root.properties[part], &value[part], part),
            Vec::<String>::new()
        );
    }
    let mut wire = BTreeSet::new();
    for part in ["spec", "status"] {
        wire.insert(part.to_string());
        // `metadata` is a string map and `s3` is untyped on the wire: their keys are data.
        field_paths(&value[part], part, &["spec.metadata", "spec.s3"], &mut wire);
    }
    let mut declared = BTreeSet::new();
    schema_paths(&root, "", &mut declared);
    let declared: BTreeSet<String> = declared
        .into_iter()
        .map(|p| p.trim_start_matches('.').to_string())
        .filter(|p| !p.starts_with("spec.s3."))
        .collect();
    assert_eq!(wire, declared);
}

#[test]
fn records_as_listed_conform_to_the_schema() {
    let root = root_schema();
    let failed = SnapshotRecord {
        location: String::new(),
        ready: false,
        error: Some("failed to save snapshot".into()),
        metadata: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..record()
    };
    for r in [record(), failed] {
        let value = serde_json::to_value(r.to_snapshot_file()).unwrap();
        assert_eq!(problems(&root, &value, ""), Vec::<String>::new(), "{value}");
    }
}

#[test]
fn schema_types_are_enforced_by_the_validator() {
    let root = root_schema();
    let mut value = serde_json::to_value(full_wire_object()).unwrap();
    value["status"]["readyToUse"] = Value::String("yes".into());
    value["spec"]["unknown"] = Value::Bool(true);
    value["status"]["size"] = serde_json::json!(8_937_504);
    let found = problems(&root, &value, "");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|p| p.starts_with(".status.readyToUse:")));
    assert!(found.iter().any(|p| p.starts_with(".spec.unknown:")));
}

#[test]
fn s3_block_holds_rke2_s3_fields_and_no_secrets() {
    let root = root_schema();
    let s3 = &root.properties["spec"].properties["s3"];
    for name in s3.properties.keys() {
        // The CR names the folder `prefix`; the request block calls it `folder`.
        let wire_name = if name == "prefix" { "folder" } else { name };
        assert!(S3_FIELDS.contains(&wire_name), "{name}");
        assert!(
            !["accessKey", "secretKey", "sessionToken", "proxy", "timeout"].contains(&wire_name),
            "{name} must not be recorded in a CR"
        );
    }
    assert!(s3.nullable);
}
