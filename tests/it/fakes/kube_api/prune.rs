//! Pruning of unknown fields, as the apiserver does for a custom resource whose CRD has a
//! structural schema: a field the schema does not declare is dropped on every write (create,
//! update, patch, `/status`), silently, unless the schema says
//! `x-kubernetes-preserve-unknown-fields: true` at that level. `apiVersion`, `kind` and
//! `metadata` are the apiserver's own and are never pruned here (it prunes inside `metadata`
//! only to ObjectMeta's fields, which every client here sends anyway).
//!
//! This is what makes a resource written against one CRD read back differently under another:
//! RKE2's ETCDSnapshotFile definition declares no `status.verification`, so the field is gone
//! when the object is read back.

use serde_json::Value;

use super::paths::Target;

/// The `openAPIV3Schema` of `target`'s version in `crd`, if it declares one.
pub fn schema_of<'a>(crd: &'a Value, target: &Target) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == target.version.as_str())
        .and_then(|v| v["schema"].get("openAPIV3Schema"))
}

/// Drops from the whole object every field `schema` does not declare (the root's own fields
/// excepted, see the module doc).
pub fn prune_object(object: &mut Value, schema: &Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let own = ["apiVersion", "kind", "metadata"];
    if preserves_unknown(schema) {
        return;
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    map.retain(|k, _| own.contains(&k.as_str()) || properties.is_some_and(|p| p.contains_key(k)));
    for (key, value) in map.iter_mut() {
        if let Some(child) = properties.and_then(|p| p.get(key)) {
            prune(value, child);
        }
    }
}

/// Drops what `schema` does not declare from `value`, recursively.
fn prune(value: &mut Value, schema: &Value) {
    if preserves_unknown(schema) {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                map.retain(|k, _| properties.contains_key(k));
                for (key, child) in map.iter_mut() {
                    prune(child, &properties[key]);
                }
            } else if let Some(each) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    prune(child, each);
                }
            } else if schema.get("additionalProperties") != Some(&Value::Bool(true)) {
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(each) = schema.get("items") {
                for item in items {
                    prune(item, each);
                }
            }
        }
        _ => {}
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object", "properties": {"size": {"type": "string"}}}
        }})
    }

    #[test]
    fn undeclared_fields_are_dropped_at_every_level_and_declared_ones_kept() {
        let mut object = json!({
            "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w", "whatever": 1},
            "spec": {"name": "n", "extra": 1, "labels": {"k": "v"},
                     "items": [{"a": "1", "b": "2"}], "free": {"any": {"thing": 1}}},
            "status": {"size": "1", "verification": {"result": "passed"}},
            "unknown": true
        });
        prune_object(&mut object, &schema());
        assert_eq!(
            object,
            json!({
                "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w", "whatever": 1},
                "spec": {"name": "n", "labels": {"k": "v"}, "items": [{"a": "1"}], "free": {"any": {"thing": 1}}},
                "status": {"size": "1"}
            })
        );
    }
}
