//! A local full snapshot's resource carries its delta chain's point-in-time window
//! (`status.pointInTime`), kept up to date by the reconcile passes as segments are written, and
//! `kubectl get etcdsnapshotfiles` shows its end under `RESTORABLETO`; under a CRD that prunes
//! the field, the server stops sending it instead of rewriting the resource on every pass.

use std::path::Path;
use std::sync::Arc;

use etcd_snapshot::delta::chain::parse_segment_file_name;
use serde_json::Value;

use super::kubectl::{Kubectl, words};
use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{FILES, start_kube_server};
use crate::support::TestServer;
use crate::support::{TestEtcd, require_binary};

/// The highest segment end in the only chain dir under `data` (0 when none yet).
fn chain_end(data: &Path) -> i64 {
    let deltas = data.join("server/db/.deltas");
    let chains = std::fs::read_dir(deltas).into_iter().flatten().flatten();
    chains
        .flat_map(|chain| {
            std::fs::read_dir(chain.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| parse_segment_file_name(e.file_name().to_str()?))
        .map(|(_, to)| to)
        .max()
        .unwrap_or(0)
}

/// Polls `cond` off the runtime for up to 60 s (a loaded machine slows the capture's first full
/// snapshot); on timeout, fails with the server's log.
async fn wait_until(
    server: &Arc<TestServer>,
    what: &'static str,
    mut cond: impl FnMut() -> bool + Send + 'static,
) {
    let server = server.clone();
    let waited = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        while !cond() {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                panic!(
                    "timed out waiting for {what}; server log:\n{}",
                    server.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    waited.await.unwrap();
}

/// A server on `etcd` and `api` capturing deltas (1 s period), once its capture has started:
/// writes before the chain's full snapshot would be in the snapshot, never in a segment.
async fn start_capturing(
    api: &Arc<KubeApi>,
    dir: &Path,
    etcd: &TestEtcd,
) -> (std::path::PathBuf, Arc<TestServer>) {
    let delta = ["--etcd-snapshot-delta", "--etcd-snapshot-delta-period=1s"];
    let flags = delta.map(String::from).to_vec();
    let (data, server) = start_kube_server(api, dir, "n1", &etcd.endpoint, flags).await;
    let probe = server.clone();
    wait_until(&server, "the delta capture", move || {
        probe.log_text().contains("delta capture started")
    })
    .await;
    (data, server)
}

/// The local resource's window, once it ends at `revision` with a time.
fn window_at(api: &KubeApi, revision: i64) -> Option<Value> {
    let resources = api.list(FILES);
    let local = resources.iter().find(|r| {
        r["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("local-"))
    })?;
    let window = &local["status"]["pointInTime"];
    (window["toRevision"] == revision && window["to"].is_string()).then(|| window.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_full_snapshots_resource_carries_its_window_and_kubectl_shows_its_end() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    api.require_crds();
    let dir = tempfile::tempdir().unwrap();
    let (data, server) = start_capturing(&api, dir.path(), &etcd).await;
    let mut client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let mut windows = Vec::new();
    for round in 0..2 {
        let mut last = 0;
        for i in 0..5 {
            let r = client
                .put(format!("/k/{round}/{i}"), "v", None)
                .await
                .unwrap();
            last = r.header().unwrap().revision();
        }
        let probe = data.clone();
        wait_until(&server, "the writes persisted", move || {
            chain_end(&probe) >= last
        })
        .await;
        let probe = api.clone();
        wait_until(
            &server,
            "the resource's window at the last write",
            move || window_at(&probe, last).is_some(),
        )
        .await;
        windows.push(window_at(&api, last).unwrap());
    }
    let (first, second) = (&windows[0], &windows[1]);
    assert_eq!(first["fromRevision"], second["fromRevision"], "{windows:?}");
    assert_eq!(first["from"], second["from"], "{windows:?}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(time(&second["to"]) >= time(&first["to"]), "{windows:?}");
    assert!(time(&first["from"]) <= time(&first["to"]), "{windows:?}");

    // The same window as `ls -o json` lists for the snapshot.
    let out = crate::fakes::kube_support::cli(&server, &["ls", "-o", "json"]).await;
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let listed = &list["items"][0]["status"]["pointInTime"];
    assert_eq!(
        listed, second,
        "ls and the resource agree (nothing written since)"
    );

    let Some(binary) = require_binary("kubectl") else {
        return;
    };
    let kubectl = Kubectl {
        binary,
        kubeconfig: dir.path().join("kubeconfig-n1"),
        home: dir.path().to_path_buf(),
    };
    let table = words(&kubectl.run(&["get", "etcdsnapshotfiles"]).await);
    assert_eq!(
        table[0].last().map(String::as_str),
        Some("RESTORABLETO"),
        "{table:?}"
    );
    assert_eq!(table.len(), 2, "{table:?}");
    assert_eq!(
        table[1].last(),
        second["to"].as_str().map(str::to_string).as_ref(),
        "{table:?}"
    );
}

/// `manifests/crd.yaml` without `status.pointInTime`: RKE2's CRD, or ours from before delta
/// chains (it keeps `status.verification`).
fn crd_without_windows() -> Value {
    let mut crd = crate::fakes::kube_support::manifest_crd();
    let version = &mut crd["spec"]["versions"][0];
    let status = &mut version["schema"]["openAPIV3Schema"]["properties"]["status"];
    let removed = status["properties"]
        .as_object_mut()
        .unwrap()
        .remove("pointInTime");
    assert!(removed.is_some(), "our CRD declares status.pointInTime");
    let columns = version["additionalPrinterColumns"].as_array_mut().unwrap();
    columns.retain(|c| c["name"] != "RestorableTo");
    crd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_crd_without_the_field_the_moving_window_is_not_rewritten_on_every_pass() {
    use crate::fakes::kube_support::CRD;
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    api.put(CRD, crd_without_windows());
    let dir = tempfile::tempdir().unwrap();
    let (data, server) = start_capturing(&api, dir.path(), &etcd).await;
    let mut client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let r = client.put("/first", "v", None).await.unwrap();
    let first = r.header().unwrap().revision();
    let probe = data.clone();
    wait_until(&server, "the first write persisted", move || {
        chain_end(&probe) >= first
    })
    .await;
    let probe = server.clone();
    wait_until(&server, "the dropped window noticed", move || {
        probe
            .log_text()
            .contains("does not keep status.pointInTime")
    })
    .await;
    let local = |api: &KubeApi| {
        let resources = api.list(FILES);
        let found = resources.iter().find(|r| {
            r["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("local-"))
        });
        found
            .cloned()
            .unwrap_or_else(|| panic!("a local resource: {resources:#?}"))
    };
    let resource = local(&api);
    assert!(
        resource["status"].get("pointInTime").is_none(),
        "pruned: {resource:#}"
    );
    let path = format!("{FILES}/{}", resource["metadata"]["name"].as_str().unwrap());
    let writes = |api: &KubeApi| {
        let requests = api.requests().into_iter();
        requests
            .filter(|r| r.path == path && r.method != "GET")
            .count()
    };
    let before = writes(&api);

    // The window's end moves with every segment; several passes later, no write went out.
    for i in 0..3 {
        let r = client.put(format!("/later/{i}"), "v", None).await.unwrap();
        let last = r.header().unwrap().revision();
        let probe = data.clone();
        wait_until(&server, "the write persisted", move || {
            chain_end(&probe) >= last
        })
        .await;
    }
    // Each reconcile pass lists the resources (watches aside).
    let passes = |api: &KubeApi| {
        let requests = api.requests().into_iter();
        let lists = requests.filter(|r| r.method == "GET" && r.path == FILES);
        lists.filter(|r| !r.query.contains("watch=true")).count()
    };
    let (probe, seen) = (api.clone(), passes(&api));
    wait_until(&server, "three more reconcile passes", move || {
        passes(&probe) >= seen + 3
    })
    .await;
    let now = local(&api);
    assert_eq!(
        writes(&api),
        before,
        "the resource was rewritten for a field the CRD drops: {now:#}\n{}",
        server.log_text()
    );
    // `ls -o wide` still shows the window.
    let out = crate::fakes::kube_support::cli(&server, &["ls", "-o", "wide"]).await;
    let (wide, _) = crate::support::text(&out);
    let row = wide.lines().nth(1).unwrap();
    assert!(!row.ends_with(" -"), "{wide}");
}
