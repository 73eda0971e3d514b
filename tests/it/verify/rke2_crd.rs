//! Under RKE2's own ETCDSnapshotFile CRD, which does not declare `status.verification`, the
//! apiserver prunes the verdict from every write (the stand-in does the same). The server must
//! notice once and stop writing it, instead of rewriting every drilled copy's resource on every
//! reconcile.

use super::*;

/// `manifests/crd.yaml` as RKE2 ships it: no `status.verification` or `status.pointInTime`, no
/// Verified or RestorableTo column.
fn rke2_crd() -> Value {
    let mut crd = crate::fakes::kube_support::manifest_crd();
    let version = &mut crd["spec"]["versions"][0];
    let status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        .as_object_mut()
        .expect("status properties");
    for ours in ["verification", "pointInTime"] {
        status
            .remove(ours)
            .unwrap_or_else(|| panic!("our CRD declares status.{ours}"));
    }
    let columns = version["additionalPrinterColumns"].as_array_mut().unwrap();
    columns.retain(|c| c["name"] != "Verified" && c["name"] != "RestorableTo");
    crd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_rke2s_crd_a_verdict_the_apiserver_drops_is_not_rewritten_on_every_reconcile() {
    use crate::fakes::kube_api::KubeApi;
    use crate::fakes::kube_support::{CRD, FILES, cli, start_kube_server, wait_until};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "rke2");
    let api = std::sync::Arc::new(KubeApi::start().await);
    api.put(CRD, rke2_crd());
    let dir = tempfile::tempdir().unwrap();
    let (_data, server) =
        start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, Vec::new()).await;
    let out = cli(&server, &["save", "--name", "drilled"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let out = cli(&server, &["verify"]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let probe = server.clone();
    wait_until("the dropped verdict noticed", move || {
        probe
            .log_text()
            .contains("does not keep status.verification")
    })
    .await;
    let drilled = api
        .list(FILES)
        .into_iter()
        .find(|r| {
            r["spec"]["snapshotName"]
                .as_str()
                .unwrap()
                .starts_with("drilled-")
        })
        .expect("the drilled copy's resource");
    assert!(
        drilled["status"].get("verification").is_none(),
        "pruned: {drilled:#}"
    );
    let path = format!("{FILES}/{}", drilled["metadata"]["name"].as_str().unwrap());
    let writes_to = |api: &KubeApi| {
        let requests = api.requests().into_iter();
        requests
            .filter(|r| r.path == path && r.method != "GET")
            .count()
    };
    let before = writes_to(&api);

    // Two more saves: each reconciles every resource of this node.
    for args in [["save", "--name", "later1"], ["save", "--name", "later2"]] {
        let out = cli(&server, Box::leak(Box::new(args))).await;
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let lister = api.clone();
    wait_until("the last save's resource", move || {
        lister.list(FILES).iter().any(|r| {
            r["spec"]["snapshotName"]
                .as_str()
                .is_some_and(|n| n.starts_with("later2-"))
        })
    })
    .await;
    assert_eq!(
        writes_to(&api),
        before,
        "the drilled copy's resource was written again although nothing about it changed"
    );
    // The verdict is still where the CRD does not decide: `ls -o wide`.
    let out = cli(&server, &["ls", "-o", "wide"]).await;
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("passed"), "{stdout}\n{stderr}");
}
