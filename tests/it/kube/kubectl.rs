//! What an operator sees with kubectl: `kubectl get etcdsnapshotfile` and `kubectl describe
//! etcdsnapshotfile` against the resources the real server wrote, compared with the seed's
//! examples. The real binary saves to a real etcd and the in-process S3 server; the resources
//! and their Events live in the Kubernetes API stand-in, which serves kubectl discovery, Tables
//! and the core view of Events as a real apiserver does. kubectl is the real one.
//!
//! Where the seed's `kubectl get` example differs from a real cluster's output, the real output
//! is what is checked: the seed shows abridged columns (`Name Location Size Created`, with the
//! snapshot name under `Name`), while the apiserver prints the resource name and the CRD's
//! printer columns (`SnapshotName Node Location Size CreationTime`), which carry the same values.
//! `describe` differs from the seed only where the product does: no `Finalizers` (nothing here
//! runs RKE2's legacy ConfigMap controller that the finalizer belongs to), and events come
//! `From` `etcd-snapshot` instead of `rke2-supervisor`.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{
    FILES, STORAGE_LABEL, cli, etcd_s3_flags, start_kube_server, wait_until,
};
use crate::fakes::s3_support::{S3Server, Tls};
use crate::s3::ops::created_name;
use crate::support::{TestEtcd, require_binary, text};
const HASH_ANNOTATION: &str = "etcd.rke2.cattle.io/snapshot-token-hash";

/// kubectl with its own kubeconfig and discovery cache, run off the runtime serving the API.
pub(super) struct Kubectl {
    pub(super) binary: PathBuf,
    pub(super) kubeconfig: PathBuf,
    pub(super) home: PathBuf,
}

impl Kubectl {
    pub(super) async fn run(&self, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args);
        let out = command.output().await.expect("run kubectl");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "kubectl {args:?}: {stdout}\n{stderr}");
        stdout
    }
}

/// Whitespace-separated words of each non-empty line: kubectl pads with spaces to align columns,
/// and the widths depend on the values.
pub(super) fn words(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_get_and_describe_show_the_snapshots_as_in_the_seed() {
    let Some(binary) = require_binary("kubectl") else {
        return;
    };
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    api.require_crds();
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("test-bucket");
    let dir = tempfile::tempdir().unwrap();
    let flags = etcd_s3_flags(&s3.addr.to_string(), "test-bucket", "test-folder");
    let (_, server) = start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, flags).await;
    let out = cli(&server, &["save"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let snapshot = created_name(&out);
    let probe = api.clone();
    let wanted = snapshot.clone();
    wait_until("a local and an S3 resource", move || {
        let found = probe.list(FILES);
        found
            .iter()
            .filter(|r| r["spec"]["snapshotName"] == wanted.as_str())
            .count()
            == 2
    })
    .await;
    let resources = api.list(FILES);
    let by_storage = |storage: &str| -> Value {
        let found = resources
            .iter()
            .find(|r| r["metadata"]["labels"][STORAGE_LABEL] == storage);
        found
            .cloned()
            .unwrap_or_else(|| panic!("no {storage} resource: {resources:#?}"))
    };
    let (local, remote) = (by_storage("n1"), by_storage("s3"));

    let kubectl = Kubectl {
        binary,
        kubeconfig: dir.path().join("kubeconfig-n1"),
        home: dir.path().to_path_buf(),
    };
    check_get(&kubectl, &snapshot, &[&local, &remote]).await;
    check_describe(&kubectl, &snapshot, &remote, &s3.addr.to_string()).await;
}

/// `kubectl get etcdsnapshotfile`: one row per resource with the seed's values (snapshot name,
/// location, size, creation time) under the CRD's printer columns, and our Verified and
/// RestorableTo columns (empty: no drill, no delta chain; `window` checks the latter filled).
async fn check_get(kubectl: &Kubectl, snapshot: &str, resources: &[&Value]) {
    let table = words(&kubectl.run(&["get", "etcdsnapshotfile"]).await);
    assert_eq!(
        table[0],
        [
            "NAME",
            "SNAPSHOTNAME",
            "NODE",
            "LOCATION",
            "SIZE",
            "CREATIONTIME",
            "VERIFIED",
            "RESTORABLETO"
        ],
        "{table:?}"
    );
    assert_eq!(table.len(), 1 + resources.len(), "{table:?}");
    for resource in resources {
        let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{v}")).to_string();
        let row = vec![
            text(&resource["metadata"]["name"]),
            snapshot.to_string(),
            "n1".to_string(),
            text(&resource["spec"]["location"]),
            text(&resource["status"]["size"]),
            text(&resource["status"]["creationTime"]),
            // Never drilled, no delta chain: the Verified and RestorableTo cells are empty.
        ];
        assert!(table.contains(&row), "{row:?} not in {table:?}");
    }
    let s3_row = table.iter().find(|r| r[0].starts_with("s3-")).unwrap();
    assert_eq!(
        s3_row[3],
        format!("s3://test-bucket/test-folder/{snapshot}")
    );
    let local_row = table.iter().find(|r| r[0].starts_with("local-")).unwrap();
    assert!(local_row[3].starts_with("file:///"), "{local_row:?}");
    assert!(
        local_row[3].ends_with(&format!("/{snapshot}")),
        "{local_row:?}"
    );
}

/// `kubectl describe etcdsnapshotfile <s3 resource>`: the seed's layout line by line. Lines whose
/// values the apiserver assigns (timestamps, resourceVersion, uid, event age) are checked by
/// their label only.
async fn check_describe(kubectl: &Kubectl, snapshot: &str, remote: &Value, endpoint: &str) {
    let name = remote["metadata"]["name"].as_str().unwrap();
    let output = kubectl.run(&["describe", "etcdsnapshotfile", name]).await;
    let hash = remote["metadata"]["annotations"][HASH_ANNOTATION]
        .as_str()
        .unwrap();
    let size = remote["status"]["size"].as_str().unwrap();
    let created = remote["status"]["creationTime"].as_str().unwrap();
    let expected = format!(
        "Name: {name}
        Namespace:
        Labels: {STORAGE_LABEL}=s3
        Annotations: {HASH_ANNOTATION}: {hash}
        API Version: k3s.cattle.io/v1
        Kind: ETCDSnapshotFile
        Metadata:
        Creation Timestamp: *
        Generation: 1
        Resource Version: *
        UID: *
        Spec:
        Location: s3://test-bucket/test-folder/{snapshot}
        Node Name: n1
        s3:
        Bucket: test-bucket
        Endpoint: {endpoint}
        Insecure: true
        Prefix: test-folder
        Region: us-east-1
        Snapshot Name: {snapshot}
        Status:
        Creation Time: {created}
        Ready To Use: true
        Size: {size}
        Events:
        Type Reason Age From Message
        ---- ------ ---- ---- -------
        Normal ETCDSnapshotCreated * etcd-snapshot Snapshot {snapshot} saved on n1"
    );
    let got = words(&output);
    let want = words(&expected);
    assert_eq!(got.len(), want.len(), "{output}");
    for (got_line, want_line) in got.iter().zip(&want) {
        assert!(
            line_matches(got_line, want_line),
            "{got_line:?} != {want_line:?}\n{output}"
        );
    }
}

/// Equal words, where a `*` in the wanted line stands for exactly one word.
fn line_matches(got: &[String], want: &[String]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| w == "*" || g == w)
}
