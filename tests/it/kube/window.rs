//! A local full snapshot's resource carries its delta chain's point-in-time window
//! (`status.pointInTime`), kept up to date by the reconcile passes as segments are written, and
//! `kubectl get etcdsnapshotfiles` shows its end under `RESTORABLETO`.

use std::path::Path;
use std::sync::Arc;

use etcd_snapshot::delta::chain::parse_segment_file_name;
use serde_json::Value;

use super::kubectl::{Kubectl, words};
use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{FILES, start_kube_server, wait_until};
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
    let delta = ["--etcd-snapshot-delta", "--etcd-snapshot-delta-period=1s"];
    let flags = delta.map(String::from).to_vec();
    let (data, server) = start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, flags).await;
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
        wait_until("the writes persisted", move || chain_end(&probe) >= last).await;
        let probe = api.clone();
        wait_until("the resource's window at the last write", move || {
            window_at(&probe, last).is_some()
        })
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
