//! Discovery documents of the Kubernetes API stand-in, so kubectl can map `etcdsnapshotfile` to
//! a resource path: `/api` (APIVersions), `/apis` (APIGroupList), `/api/v1` and
//! `/apis/{group}/{version}` (APIResourceList), and `/version`.
//!
//! Only the legacy (unaggregated) form is served: kubectl asks for aggregated discovery first and
//! falls back to this when the answer is plain `application/json`, as it does with older
//! apiservers. Built-in types are a fixed table of the ones etcd-snapshot and its tests touch;
//! custom resources come from the CustomResourceDefinitions stored here, so a type appears in
//! discovery only once its CRD exists, as on a real cluster. Pure functions over the store.

use serde_json::{Value, json};

use super::store::Store;

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource type: what an APIResourceList entry says about it.
#[derive(Debug, Clone, PartialEq)]
struct Resource {
    group_version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    short_names: Vec<String>,
}

/// (group/version, plural, kind, namespaced, short names) of the built-in types served.
const BUILTINS: &[(&str, &str, &str, bool, &[&str])] = &[
    ("v1", "configmaps", "ConfigMap", true, &["cm"]),
    ("v1", "events", "Event", true, &["ev"]),
    ("v1", "namespaces", "Namespace", false, &["ns"]),
    ("v1", "nodes", "Node", false, &["no"]),
    ("v1", "pods", "Pod", true, &["po"]),
    ("v1", "secrets", "Secret", true, &[]),
    ("v1", "services", "Service", true, &["svc"]),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    ),
    ("coordination.k8s.io/v1", "leases", "Lease", true, &[]),
    ("events.k8s.io/v1", "events", "Event", true, &["ev"]),
];

fn builtins() -> impl Iterator<Item = Resource> {
    BUILTINS
        .iter()
        .map(|(gv, plural, kind, namespaced, short)| Resource {
            group_version: gv.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced: *namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
        })
}

/// The served versions of each stored CRD, as resources.
fn custom(store: &Store) -> Vec<Resource> {
    let mut found = Vec::new();
    for (_, crd) in store.list(CRDS, None) {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let versions = spec["versions"].as_array().into_iter().flatten();
        for version in versions.filter(|v| v["served"] != false) {
            found.push(Resource {
                group_version: format!("{}/{}", text(&spec["group"]), text(&version["name"])),
                plural: text(&names["plural"]),
                singular: text(&names["singular"]),
                kind: text(&names["kind"]),
                namespaced: spec["scope"] != "Cluster",
                short_names: names["shortNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect(),
            });
        }
    }
    found
}

/// The document for a discovery path, or `None` when `path` is not one (or names a group
/// version nobody serves, which the caller answers with 404).
pub fn answer(store: &Store, path: &str) -> Option<Value> {
    let all: Vec<Resource> = builtins().chain(custom(store)).collect();
    match path.trim_end_matches('/') {
        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"]})),
        "/apis" => Some(group_list(&all)),
        "/version" => Some(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0-etcd-snapshot-stand-in",
            "platform": "linux/amd64"
        })),
        other => {
            let group_version = other
                .strip_prefix("/api/")
                .or_else(|| other.strip_prefix("/apis/"))?;
            resource_list(&all, group_version)
        }
    }
}

fn group_list(all: &[Resource]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for resource in all {
        let Some((group, version)) = resource.group_version.split_once('/') else {
            continue; // the core group is in /api, not /apis
        };
        match groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, versions)) if !versions.iter().any(|v| v == version) => {
                versions.push(version.to_string())
            }
            Some(_) => {}
            None => groups.push((group.to_string(), vec![version.to_string()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let entry = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
            json!({
                "name": group,
                "versions": versions.iter().map(entry).collect::<Vec<_>>(),
                "preferredVersion": entry(&versions[0]),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(all: &[Resource], group_version: &str) -> Option<Value> {
    let resources: Vec<Value> = all
        .iter()
        .filter(|r| r.group_version == group_version)
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                "kind": r.kind, "verbs": VERBS, "shortNames": r.short_names,
            })
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd_resource() -> Resource {
        Resource {
            group_version: "k3s.cattle.io/v1".into(),
            plural: "etcdsnapshotfiles".into(),
            singular: "etcdsnapshotfile".into(),
            kind: "ETCDSnapshotFile".into(),
            namespaced: false,
            short_names: vec![],
        }
    }

    #[test]
    fn groups_list_each_group_once_and_leave_core_to_api() {
        let all: Vec<Resource> = builtins().chain([crd_resource()]).collect();
        let list = group_list(&all);
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apiextensions.k8s.io",
                "coordination.k8s.io",
                "events.k8s.io",
                "k3s.cattle.io"
            ]
        );
        assert_eq!(
            list["groups"][3]["preferredVersion"]["groupVersion"],
            "k3s.cattle.io/v1"
        );
    }

    #[test]
    fn resource_lists_say_scope_kind_and_names() {
        let all: Vec<Resource> = builtins().chain([crd_resource()]).collect();
        let list = resource_list(&all, "k3s.cattle.io/v1").unwrap();
        let entry = &list["resources"][0];
        assert_eq!(entry["name"], "etcdsnapshotfiles");
        assert_eq!(entry["singularName"], "etcdsnapshotfile");
        assert_eq!(entry["namespaced"], false);
        assert_eq!(entry["kind"], "ETCDSnapshotFile");
        let core = resource_list(&all, "v1").unwrap();
        assert!(core["resources"].as_array().unwrap().len() >= 5);
        assert_eq!(resource_list(&all, "nothing.example/v1"), None);
    }
}
