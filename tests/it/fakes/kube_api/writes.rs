//! Create, replace and patch in the Kubernetes API stand-in: the apiserver's rules for writes
//! (AlreadyExists, stale resourceVersion Conflict, required resourceVersion on custom resources,
//! name and label validation, the status subresource, no-op updates that change nothing), over
//! the store. No HTTP here: each function returns the HTTP code and body, or a `Status` error.

use serde_json::{Value, json};

use super::ids::name_suffix;
use super::patch::{json_patch, merge_patch};
use super::paths::Target;
use super::prune;
use super::status::{self, ApiError};
use super::store::{Store, key_of};
use super::validate::validate_metadata;

/// How `.status` is written for a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMode {
    /// A status subresource: the main resource ignores `.status`, `/status` writes only it.
    Subresource,
    /// No status subresource: `.status` is an ordinary field, `/status` does not exist.
    Plain,
    /// Unknown type (no CRD registered): `/status` is accepted and writes only `.status`, the
    /// main resource writes everything.
    Generic,
}

const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "batch",
    "events.k8s.io",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "policy",
    "storage.k8s.io",
    "discovery.k8s.io",
    "autoscaling",
];

/// Types the apiserver itself serves (no CRD behind them).
pub fn is_builtin(target: &Target) -> bool {
    target.group.is_empty() || BUILTIN_GROUPS.contains(&target.group.as_str())
}

pub fn status_mode(store: &Store, target: &Target) -> StatusMode {
    if let Some(crd) = store.crd(target) {
        let versions = crd["spec"]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let served = versions
            .iter()
            .find(|v| v["name"] == target.version.as_str());
        let has_status = served.is_some_and(|v| v["subresources"].get("status").is_some());
        return if has_status {
            StatusMode::Subresource
        } else {
            StatusMode::Plain
        };
    }
    let with_status = [
        "nodes",
        "pods",
        "namespaces",
        "services",
        "persistentvolumes",
        "persistentvolumeclaims",
        "deployments",
        "daemonsets",
        "statefulsets",
        "replicasets",
        "jobs",
        "customresourcedefinitions",
    ];
    if with_status.contains(&target.resource.as_str()) {
        StatusMode::Subresource
    } else if is_builtin(target) {
        StatusMode::Plain
    } else {
        StatusMode::Generic
    }
}

/// A custom resource loses the fields its CRD's schema does not declare (`prune`).
fn prune_unknown(store: &Store, target: &Target, object: &mut Value) {
    if let Some(schema) = store
        .crd(target)
        .and_then(|crd| prune::schema_of(crd, target))
    {
        let schema = schema.clone();
        prune::prune_object(object, &schema);
    }
}

/// Custom resources refuse an update without resourceVersion (built-ins allow it).
fn requires_resource_version(store: &Store, target: &Target) -> bool {
    store.crd(target).is_some() || !is_builtin(target)
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice(body))
        .map_err(|e| status::bad_request(format!("failed to decode the request body: {e}")))?;
    if !value.is_object() && !value.is_array() {
        return Err(status::bad_request("the request body is not an object"));
    }
    Ok(value)
}

/// POST on a collection (also server-side apply of an absent object): 201 with the object.
pub fn create(store: &mut Store, target: &Target, body: &[u8]) -> Result<(u16, Value), ApiError> {
    create_value(store, target, parse_body(body)?)
}

fn create_value(
    store: &mut Store,
    target: &Target,
    mut object: Value,
) -> Result<(u16, Value), ApiError> {
    let kind = store.kind_of(target);
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let given_ns = object["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty());
    if let (Some(given), Some(path_ns)) = (given_ns, &target.namespace)
        && given != path_ns
    {
        return Err(status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let name = match (
        object["metadata"]["name"].as_str(),
        object["metadata"]["generateName"].as_str(),
    ) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", name_suffix()),
        _ => {
            let cause = "metadata.name: Required value: name or generateName is required";
            return Err(status::invalid(target, &kind, "", cause));
        }
    };
    object["metadata"]["name"] = json!(name);
    validate_metadata(target, &kind, &object)?;
    let key = key_of(target, &name);
    if store.get(&key).is_some() {
        return Err(status::already_exists(target, &name));
    }
    if status_mode(store, target) == StatusMode::Subresource
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    prune_unknown(store, target, &mut object);
    Ok((201, store.insert_new(target, key, object)))
}

/// PUT on an object or its `/status`: 200 with the stored object.
pub fn replace(
    store: &mut Store,
    target: &Target,
    name: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let incoming = parse_body(body)?;
    let body_name = incoming["metadata"]["name"].as_str().unwrap_or_default();
    if body_name != name {
        return Err(status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let old = store
        .get(&key_of(target, name))
        .cloned()
        .ok_or_else(|| status::not_found(target, name))?;
    let rv_missing = incoming["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty);
    if rv_missing && requires_resource_version(store, target) {
        let kind = format!("{}.{}", store.kind_of(target), target.group);
        let cause = "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update";
        return Err(status::invalid(target, &kind, name, cause));
    }
    save_update(store, target, old, incoming).map(|v| (200, v))
}

/// PATCH on an object or its `/status` (apply of an absent object creates it: 201).
pub fn patch(
    store: &mut Store,
    target: &Target,
    name: &str,
    content_type: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let apply = media == "application/apply-patch+yaml";
    if apply
        && !params
            .iter()
            .any(|(k, v)| k == "fieldManager" && !v.is_empty())
    {
        let cause = "fieldManager: Required value: is required for apply patch";
        return Err(status::invalid(
            target,
            "PatchOptions.meta.k8s.io",
            "",
            cause,
        ));
    }
    let patch_doc = parse_body(body)?;
    let Some(old) = store.get(&key_of(target, name)).cloned() else {
        if apply && target.subresource.is_none() {
            let mut object = patch_doc;
            object["metadata"]["name"] = json!(name);
            return create_value(store, target, object);
        }
        return Err(status::not_found(target, name));
    };
    let patched = match media {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/apply-patch+yaml" => {
            let mut doc = old.clone();
            merge_patch(&mut doc, &patch_doc);
            doc
        }
        "application/json-patch+json" => json_patch(&old, &patch_doc).map_err(|cause| {
            let kind = store.kind_of(target);
            status::invalid(target, &kind, name, &cause)
        })?,
        other => return Err(status::unsupported_media_type(other)),
    };
    save_update(store, target, old, patched).map(|v| (200, v))
}

/// The shared tail of PUT and PATCH: precondition, status rules, validation, no-op detection.
fn save_update(
    store: &mut Store,
    target: &Target,
    old: Value,
    incoming: Value,
) -> Result<Value, ApiError> {
    let name = old["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old_rv = old["metadata"]["resourceVersion"].clone();
    let given_rv = incoming["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty());
    if given_rv.is_some_and(|rv| old_rv.as_str() != Some(rv)) {
        return Err(status::conflict(target, &name));
    }
    let mode = status_mode(store, target);
    let status_only = target.subresource.as_deref() == Some("status");
    let mut next = if status_only {
        let mut next = old.clone();
        match incoming.get("status") {
            Some(s) => next["status"] = s.clone(),
            None => {
                next.as_object_mut().map(|m| m.remove("status"));
            }
        }
        next
    } else {
        let mut next = incoming;
        if mode == StatusMode::Subresource {
            match old.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        next
    };
    next["metadata"]["resourceVersion"] = old_rv;
    next["metadata"]["name"] = json!(name);
    prune_unknown(store, target, &mut next);
    validate_metadata(target, &store.kind_of(target), &next)?;
    // The apiserver skips the storage write when nothing changed: same resourceVersion, no event.
    let mut comparable = next.clone();
    comparable["metadata"]["uid"] = old["metadata"]["uid"].clone();
    comparable["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
    comparable["metadata"]["generation"] = old["metadata"]["generation"].clone();
    comparable["apiVersion"] = old["apiVersion"].clone();
    if comparable["kind"].as_str().is_none_or(str::is_empty) {
        comparable["kind"] = old["kind"].clone();
    }
    if comparable == old {
        return Ok(old);
    }
    Ok(store.replace(target, key_of(target, &name), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::kube_api::paths::parse;

    #[test]
    fn status_subresource_comes_from_the_crd() {
        let mut store = Store::new();
        let widgets = parse("/apis/example.com/v1/widgets/w").unwrap();
        assert_eq!(status_mode(&store, &widgets), StatusMode::Generic);
        let crd_target =
            parse("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
                .unwrap();
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "names": {"kind": "Widget"},
            "versions": [{"name": "v1", "subresources": {"status": {}}}]}});
        create_value(&mut store, &crd_target, crd).unwrap();
        assert_eq!(status_mode(&store, &widgets), StatusMode::Subresource);
        assert_eq!(store.kind_of(&widgets), "Widget");
        let secrets = parse("/api/v1/namespaces/a/secrets/s").unwrap();
        assert_eq!(status_mode(&store, &secrets), StatusMode::Plain);
    }

    #[test]
    fn status_subresource_splits_writes() {
        let mut store = Store::new();
        let t = parse("/api/v1/nodes/n1").unwrap();
        let body = json!({"metadata": {"name": "n1"}, "spec": {"a": 1}, "status": {"s": 1}});
        let (code, created) = create(&mut store, &t, body.to_string().as_bytes()).unwrap();
        assert_eq!((code, created.get("status")), (201, None));
        let status_target = parse("/api/v1/nodes/n1/status").unwrap();
        let patch_body = br#"{"status": {"s": 2}, "spec": {"a": 5}}"#;
        let (_, v) = patch(
            &mut store,
            &status_target,
            "n1",
            "application/merge-patch+json",
            &[],
            patch_body,
        )
        .unwrap();
        assert_eq!(
            (v["status"]["s"].as_i64(), v["spec"]["a"].as_i64()),
            (Some(2), Some(1))
        );
        let (_, v) = patch(
            &mut store,
            &t,
            "n1",
            "application/merge-patch+json",
            &[],
            patch_body,
        )
        .unwrap();
        assert_eq!(
            (v["status"]["s"].as_i64(), v["spec"]["a"].as_i64()),
            (Some(2), Some(5))
        );
    }

    #[test]
    fn no_op_updates_keep_the_resource_version() {
        let mut store = Store::new();
        let t = parse("/api/v1/namespaces/a/configmaps/c").unwrap();
        let (_, created) = create(
            &mut store,
            &t,
            br#"{"metadata":{"name":"c"},"data":{"k":"v"}}"#,
        )
        .unwrap();
        let (_, same) = patch(
            &mut store,
            &t,
            "c",
            "application/merge-patch+json",
            &[],
            br#"{"data":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        let stale = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "data": {}});
        let err = replace(&mut store, &t, "c", stale.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.body["reason"], "Conflict");
    }
}
