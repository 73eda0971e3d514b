//! Running the real server against the Kubernetes API stand-in, for the end-to-end Kubernetes
//! tests: the paths they read, the server's S3 flags, starting a named server with its own
//! kubeconfig and data dir (the CRD applied from `manifests/crd.yaml` first, as an operator
//! does), and bounded waits that
//! leave the runtime free to serve the API and S3 while they poll; and example snapshot records.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use etcd_snapshot::snapshot::{SnapshotRecord, Storage};

use crate::fakes::kube_api::KubeApi;
use crate::fakes::s3_support::{ACCESS_KEY, SECRET_KEY};
use crate::s3::ops::blocking;
use crate::support::{TestServer, wait_for};

/// The ETCDSnapshotFile collection.
pub(crate) const FILES: &str = "/apis/k3s.cattle.io/v1/etcdsnapshotfiles";
/// Where the resources' Events are published.
pub(crate) const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
/// The ETCDSnapshotFile CRD.
pub(crate) const CRD: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/etcdsnapshotfiles.k3s.cattle.io";
/// The label naming a copy's storage node (or `s3`).
pub(crate) const STORAGE_LABEL: &str = "etcd.rke2.cattle.io/snapshot-storage-node";

/// The server's flags for `bucket`/`folder` at `endpoint` over plain HTTP with the test keys.
pub(crate) fn etcd_s3_flags(endpoint: &str, bucket: &str, folder: &str) -> Vec<String> {
    vec![
        "--etcd-s3".into(),
        format!("--etcd-s3-endpoint={endpoint}"),
        "--etcd-s3-insecure".into(),
        format!("--etcd-s3-bucket={bucket}"),
        format!("--etcd-s3-folder={folder}"),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ]
}

/// A server named `node` on `etcd`, reporting to `api` through `dir/kubeconfig-<node>`, with
/// its data dir `dir/<node>`, a reconcile pass every second and `extra` flags. The CRD is
/// applied from `manifests/crd.yaml` first (the server does not install it by default).
pub(crate) async fn start_kube_server(
    api: &Arc<KubeApi>,
    dir: &Path,
    node: &str,
    etcd: &str,
    extra: Vec<String>,
) -> (PathBuf, Arc<TestServer>) {
    let kubeconfig = dir.join(format!("kubeconfig-{node}"));
    api.write_kubeconfig(&kubeconfig);
    let data = dir.join(node);
    std::fs::create_dir_all(&data).unwrap();
    let mut args = vec![
        format!("--etcd-endpoints={etcd}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--etcd-snapshot-reconcile-interval=1s".into(),
    ];
    args.extend(extra);
    if api.get(CRD).is_none() {
        api.put(CRD, manifest_crd());
    }
    let (node, data_dir) = (node.to_string(), data.clone());
    let server = blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        TestServer::start_as(&node, &data_dir, &refs)
    })
    .await;
    (data, Arc::new(server))
}

/// `manifests/crd.yaml` as JSON: what `kubectl apply -f manifests/crd.yaml` sends.
pub(crate) fn manifest_crd() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crd.yaml");
    let text = std::fs::read_to_string(path).expect("read manifests/crd.yaml");
    serde_saphyr::from_str(&text).expect("manifests/crd.yaml parses")
}

/// Polls `cond` for up to 30 s off the runtime.
pub(crate) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool + Send + 'static) {
    let what = what.to_string();
    blocking(move || wait_for(&what, Duration::from_secs(30), &mut cond)).await;
}

/// A CLI call against `server`, off the runtime.
pub(crate) async fn cli(server: &Arc<TestServer>, args: &'static [&'static str]) -> Output {
    let server = server.clone();
    blocking(move || server.cli(args)).await
}

/// A successful local copy with the seed's size and time, as the saving node records it.
pub(crate) fn local_record(node: &str, file: &str) -> SnapshotRecord {
    SnapshotRecord {
        file_name: file.into(),
        location: format!("file:///var/lib/rancher/rke2/server/db/snapshots/{file}"),
        node_name: node.into(),
        storage: Storage::Local,
        size: 8_937_504,
        created_unix: 1_754_906_881,
        compressed: false,
        ready: true,
        error: None,
        token_hash: Some("2bb80d537b1d".into()),
        metadata: None,
    }
}

/// An S3 copy as the S3 listing reports it (uploader unknown: node `s3`).
pub(crate) fn s3_record(file: &str) -> SnapshotRecord {
    SnapshotRecord {
        location: format!("s3://test-bucket/test-folder/{file}"),
        node_name: "s3".into(),
        storage: Storage::S3,
        token_hash: None,
        ..local_record("s3", file)
    }
}
