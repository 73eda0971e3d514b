//! The kustomize overlays (`overlays/rke2`, `overlays/k3s`) over the base in `manifests/`,
//! rendered by the real `kubectl kustomize` and parsed as YAML: each overlay keeps every object
//! of the base in kube-system, names the image `scripts/build-image` tags, and puts every path
//! under its distribution's data dir. The k3s DaemonSet must be exactly the RKE2 one with the
//! data dir swapped, so a mount added to the base without the k3s patch fails here.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{require_binary, text};

const NAMESPACE: &str = "kube-system";

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn kustomize(kubectl: &Path, overlay: &str) -> Vec<Value> {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo(&format!("overlays/{overlay}")))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "kubectl kustomize overlays/{overlay}: {stderr}"
    );
    serde_saphyr::from_str_multiple(&stdout).unwrap()
}

fn base_documents() -> Vec<Value> {
    ["crd.yaml", "rbac.yaml", "daemonset.yaml"]
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(repo(&format!("manifests/{file}"))).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
            docs
        })
        .collect()
}

fn identity(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap().to_string(),
        doc["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

fn daemonset(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "DaemonSet").collect();
    assert_eq!(found.len(), 1, "one DaemonSet");
    found[0]
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Renames `from` to `to` in every string of `value`.
fn swap_paths(value: &Value, from: &str, to: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(from, to)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| swap_paths(v, from, to)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), swap_paths(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The DaemonSet with its volumes sorted by name: their order means nothing, and newer
/// kustomize versions move volumes a patch merged to the end.
fn volumes_by_name(ds: &Value) -> Value {
    let mut ds = ds.clone();
    let volumes = ds["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap();
    volumes.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_string());
    ds
}

fn check_overlay(docs: &[Value], distribution: &str) {
    let mut ids: Vec<_> = docs.iter().map(identity).collect();
    let mut base_ids: Vec<_> = base_documents().iter().map(identity).collect();
    ids.sort();
    base_ids.sort();
    assert_eq!(
        ids, base_ids,
        "{distribution}: the base's objects, no more, no fewer"
    );
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap();
        let cluster_scoped = matches!(
            kind,
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        let namespace = &doc["metadata"]["namespace"];
        if cluster_scoped {
            assert!(
                namespace.is_null(),
                "{distribution}: {kind} got a namespace"
            );
        } else {
            assert_eq!(namespace, NAMESPACE, "{distribution}: {kind}");
        }
    }

    let ds = daemonset(docs);
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("etcd-snapshot:{}", env!("CARGO_PKG_VERSION")),
        "{distribution}: the image scripts/build-image tags by default"
    );
    let data_dir = format!("/var/lib/rancher/{distribution}");
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&Value::String(format!("--data-dir={data_dir}"))),
        "{distribution}: {}",
        container["args"]
    );
    let mut all = Vec::new();
    strings(ds, &mut all);
    let paths: Vec<&String> = all.iter().filter(|s| s.contains("/var/lib/")).collect();
    assert!(paths.len() > 10, "{paths:?}");
    for path in paths {
        let path = path.rsplit('=').next().unwrap();
        assert!(
            path == data_dir || path.starts_with(&format!("{data_dir}/")),
            "{distribution}: {path} is not under {data_dir}"
        );
    }

    // Every volume is mounted once, every mount has a volume, host paths are the mount paths.
    let volumes = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert_eq!(volumes.len(), mounts.len(), "{distribution}");
    for volume in volumes {
        let name = &volume["name"];
        let mounted: Vec<&Value> = mounts.iter().filter(|m| &m["name"] == name).collect();
        assert_eq!(mounted.len(), 1, "{distribution}: volume {name}");
        if !volume["hostPath"].is_null() {
            assert_eq!(
                volume["hostPath"]["path"], mounted[0]["mountPath"],
                "{distribution}"
            );
        }
    }
}

#[test]
fn the_rke2_and_k3s_overlays_render_with_their_own_paths_image_and_namespace() {
    let Some(kubectl) = require_binary("kubectl") else {
        return;
    };
    let rke2 = kustomize(&kubectl, "rke2");
    let k3s = kustomize(&kubectl, "k3s");
    check_overlay(&rke2, "rke2");
    check_overlay(&k3s, "k3s");

    // RKE2's overlay is the base itself; k3s's differs from it only by the data dir.
    let base = base_documents();
    assert_eq!(
        volumes_by_name(daemonset(&rke2)),
        volumes_by_name(daemonset(&base))
    );
    assert_eq!(
        volumes_by_name(daemonset(&k3s)),
        swap_paths(
            &volumes_by_name(daemonset(&rke2)),
            "/var/lib/rancher/rke2",
            "/var/lib/rancher/k3s"
        )
    );
    for doc in rke2.iter().filter(|d| d["kind"] != "DaemonSet") {
        let same = k3s.iter().find(|d| identity(d) == identity(doc)).unwrap();
        assert_eq!(
            same,
            doc,
            "{:?} differs between the overlays",
            identity(doc)
        );
    }
}
