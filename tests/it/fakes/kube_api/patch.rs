//! Patch documents for the Kubernetes API stand-in: JSON merge patch (RFC 7386, also used as the
//! approximation of strategic merge and server-side apply) and JSON patch (RFC 6902). Pure
//! functions over `serde_json::Value`; the route decides which one a content type means.

use serde_json::Value;

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces (lists included).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902 over a copy of `doc`: add, remove, replace, move, copy, test. The error text is
/// what the apiserver's 422 message carries.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("json patch must be an array of operations")?;
    let mut doc = doc.clone();
    for op in ops {
        let kind = op["op"]
            .as_str()
            .ok_or("json patch operation without \"op\"")?;
        let path = op["path"]
            .as_str()
            .ok_or("json patch operation without \"path\"")?;
        match kind {
            "add" => add(&mut doc, path, value_of(op)?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value_of(op)?)?;
            }
            "move" => {
                let value = remove(&mut doc, from_of(op)?)?;
                add(&mut doc, path, value)?;
            }
            "copy" => {
                let from = from_of(op)?;
                let value = doc.pointer(from).cloned().ok_or(missing(from))?;
                add(&mut doc, path, value)?;
            }
            "test" => {
                if doc.pointer(path) != Some(value_of(op)?).as_ref() {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unexpected json patch operation {other:?}")),
        }
    }
    Ok(doc)
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "json patch operation without \"value\"".into())
}

fn from_of(op: &Value) -> Result<&str, String> {
    op["from"]
        .as_str()
        .ok_or_else(|| "json patch operation without \"from\"".into())
}

fn missing(path: &str) -> String {
    format!("doc is missing path: {path:?}")
}

/// `/a/b~1c` → (`/a`, `b/c`).
fn split(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| missing(path))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(items) if key == "-" => items.push(value),
        Value::Array(items) => {
            let index: usize = key.parse().map_err(|_| missing(path))?;
            if index > items.len() {
                return Err(missing(path));
            }
            items.insert(index, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => map.remove(&key).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index: usize = key.parse().map_err(|_| missing(path))?;
            (index < items.len())
                .then(|| items.remove(index))
                .ok_or_else(|| missing(path))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "items": [1, 2]});
        let ops = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/items/0", "value": 9},
            {"op": "add", "path": "/items/-", "value": 3},
            {"op": "copy", "from": "/items/0", "path": "/first"},
            {"op": "move", "from": "/first", "path": "/moved"}
        ]);
        assert_eq!(
            json_patch(&doc, &ops).unwrap(),
            json!({"metadata": {"labels": {"b/c": "2"}}, "items": [9, 2, 3], "moved": 9})
        );
    }

    #[test]
    fn json_patch_failures_leave_the_document_alone() {
        let doc = json!({"a": 1});
        let failed_test = json!([{"op": "test", "path": "/a", "value": 2}]);
        assert_eq!(
            json_patch(&doc, &failed_test).unwrap_err(),
            "testing value /a failed"
        );
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/b"}])).is_err());
        assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
    }
}
