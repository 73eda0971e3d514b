//! `ETCDSnapshotFile` resources end to end: `reconcile` and `install_crd` through the real
//! kube-rs client against the Kubernetes API stand-in (tests/it/fakes/kube_api/).
//!
//! Covers two nodes sharing S3 (every copy once, right names and labels), deletions with their
//! Event, failure records, concurrent reconciles, retried conflicts and the CRD's installation.
//! Time-based keep rules (24 h failures, 1 min for S3) are unit-tested in `plan_tests.rs`: the
//! stand-in stamps creation times itself.

use std::collections::BTreeMap;

use etcd_snapshot::kube::crd::{CRD_NAME, STORAGE_NODE_LABEL, TOKEN_HASH_ANNOTATION};
use etcd_snapshot::kube::resources::{
    CrdInstall, ReconcileOutcome, S3Spec, Scope, install_crd, reconcile, resource_name,
};
use etcd_snapshot::snapshot::record::rfc3339;
use etcd_snapshot::snapshot::{SnapshotRecord, Storage};
use serde_json::Value;

use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{local_record, s3_record};

const FILES: &str = "/apis/k3s.cattle.io/v1/etcdsnapshotfiles";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

fn s3_spec() -> S3Spec {
    S3Spec {
        endpoint: "localhost:9090".into(),
        bucket: "test-bucket".into(),
        region: "us-east-1".into(),
        prefix: "test-folder".into(),
        insecure: true,
        ..Default::default()
    }
}

fn scope(node: &str, s3: bool) -> Scope {
    Scope {
        node_name: node.into(),
        s3: s3.then(s3_spec),
    }
}

async fn started() -> (KubeApi, kube::Client) {
    let api = KubeApi::start().await;
    let client = api.client().await;
    // Without the CRD the stand-in would treat `status` as a subresource.
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Created);
    (api, client)
}

fn stored(api: &KubeApi) -> BTreeMap<String, Value> {
    api.list(FILES)
        .into_iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_string(), o))
        .collect()
}

/// `(reason, regarding name, note)` of every published event.
fn events(api: &KubeApi) -> Vec<(String, String, String)> {
    let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
    api.list(EVENTS)
        .iter()
        .map(|e| {
            (
                field(&e["reason"]),
                field(&e["regarding"]["name"]),
                field(&e["note"]),
            )
        })
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[tokio::test]
async fn two_nodes_sharing_s3_each_reconcile_their_own_and_the_shared_copies() {
    let (api, client) = started().await;
    let n1 = [
        local_record("n1", "on-demand-n1-1"),
        local_record("n1", "on-demand-n1-2"),
    ];
    let n2 = local_record("n2", "on-demand-n2-1");
    let shared = [s3_record("on-demand-n1-1"), s3_record("on-demand-n2-1")];
    // n1's listing also shows n2's file (a shared snapshot dir): n1 must leave it to n2.
    let mut n1_rows: Vec<_> = n1.to_vec();
    n1_rows.push(n2.clone());
    n1_rows.extend(shared.iter().cloned());
    let mut n2_rows = vec![n2.clone()];
    n2_rows.extend(shared.iter().cloned());

    let first = reconcile(&client, &scope("n1", true), &n1_rows, &[])
        .await
        .unwrap();
    let second = reconcile(&client, &scope("n2", true), &n2_rows, &[])
        .await
        .unwrap();

    let all: Vec<&SnapshotRecord> = n1.iter().chain([&n2]).chain(&shared).collect();
    let want = sorted(all.iter().map(|r| resource_name(r)).collect());
    assert_eq!(stored(&api).into_keys().collect::<Vec<_>>(), want);
    let mut created = first.created.clone();
    created.extend(second.created.clone());
    assert_eq!(
        sorted(created),
        want,
        "each resource created once, by one node"
    );
    assert_eq!(second.created, vec![resource_name(&n2)]);

    let objects = stored(&api);
    for record in all {
        let object = &objects[&resource_name(record)];
        let storage_node = if record.storage == Storage::S3 {
            "s3"
        } else {
            &record.node_name
        };
        assert_eq!(
            object["metadata"]["labels"][STORAGE_NODE_LABEL],
            storage_node
        );
        assert_eq!(object["spec"]["snapshotName"], record.file_name.as_str());
        assert_eq!(object["spec"]["nodeName"], record.node_name.as_str());
        assert_eq!(object["status"]["size"], "8937504");
        assert_eq!(object["status"]["readyToUse"], true);
        let has_s3 = object["spec"].get("s3").is_some();
        assert_eq!(
            has_s3,
            record.storage == Storage::S3,
            "{}",
            record.file_name
        );
        let hash = &object["metadata"]["annotations"][TOKEN_HASH_ANNOTATION];
        assert_eq!(hash.as_str(), record.token_hash.as_deref());
    }
    assert_eq!(
        objects[&resource_name(&shared[0])]["spec"]["s3"]["bucket"],
        "test-bucket"
    );

    let created_events: Vec<_> = events(&api)
        .into_iter()
        .filter(|(reason, _, _)| reason == "ETCDSnapshotCreated")
        .collect();
    assert_eq!(created_events.len(), want.len());
    let n2_note = "Snapshot on-demand-n2-1 saved on n2".to_string();
    assert!(created_events.contains(&("ETCDSnapshotCreated".into(), resource_name(&n2), n2_note)));

    // Nothing changed: a second round writes nothing and publishes nothing.
    let again = reconcile(&client, &scope("n1", true), &n1_rows, &[])
        .await
        .unwrap();
    assert_eq!(again, ReconcileOutcome::default());
    assert_eq!(events(&api).len(), want.len());
}

#[tokio::test]
async fn a_deleted_snapshot_loses_its_resource_with_a_deleted_event() {
    let (api, client) = started().await;
    let keep = local_record("n1", "on-demand-n1-1");
    let gone = local_record("n1", "on-demand-n1-2");
    let fresh_s3 = s3_record("on-demand-n1-3");
    let deleted_s3 = s3_record("on-demand-n1-2");
    let rows = [
        keep.clone(),
        gone.clone(),
        fresh_s3.clone(),
        deleted_s3.clone(),
    ];
    reconcile(&client, &scope("n1", true), &rows, &[])
        .await
        .unwrap();
    assert_eq!(stored(&api).len(), 4);

    // `on-demand-n1-2` was deleted everywhere; `on-demand-n1-3` is missing from this listing
    // but was created seconds ago (another node's upload may be newer than our listing).
    let just_deleted = vec![gone.file_name.clone()];
    let outcome = reconcile(
        &client,
        &scope("n1", true),
        std::slice::from_ref(&keep),
        &just_deleted,
    )
    .await
    .unwrap();
    let want_deleted = sorted(vec![resource_name(&gone), resource_name(&deleted_s3)]);
    assert_eq!(sorted(outcome.deleted), want_deleted);
    let left = sorted(vec![resource_name(&keep), resource_name(&fresh_s3)]);
    assert_eq!(stored(&api).into_keys().collect::<Vec<_>>(), left);

    let deleted_events: Vec<_> = events(&api)
        .into_iter()
        .filter(|(reason, _, _)| reason == "ETCDSnapshotDeleted")
        .collect();
    let note = "Snapshot on-demand-n1-2 deleted".to_string();
    let want: Vec<_> = want_deleted
        .iter()
        .map(|name| {
            (
                "ETCDSnapshotDeleted".to_string(),
                name.clone(),
                note.clone(),
            )
        })
        .collect();
    assert_eq!(sorted_events(deleted_events), want);

    // A resource removed behind our back comes back at the next reconcile.
    let path = format!("{FILES}/{}", resource_name(&keep));
    assert!(api.remove(&path));
    let outcome = reconcile(
        &client,
        &scope("n1", false),
        std::slice::from_ref(&keep),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(outcome.created, vec![resource_name(&keep)]);
    assert!(api.get(&path).is_some());
}

fn sorted_events(mut events: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    events.sort();
    events
}

#[tokio::test]
async fn a_failure_record_is_not_ready_with_a_failed_event() {
    let (api, client) = started().await;
    // Failure records live 24 h from their error time, so they must be recent.
    let failed_at = chrono::Utc::now().timestamp();
    let mut failed_save = local_record("n1", "on-demand-n1-5");
    failed_save.created_unix = failed_at;
    failed_save.location = String::new();
    failed_save.ready = false;
    failed_save.size = 0;
    failed_save.token_hash = None;
    failed_save.error = Some("etcd unavailable".into());
    let mut failed_upload = s3_record("on-demand-n1-5");
    failed_upload.node_name = "n1".into();
    failed_upload.ready = false;
    failed_upload.error = Some("upload failed: timeout".into());
    failed_upload.created_unix = failed_at;
    let rows = [failed_save.clone(), failed_upload.clone()];
    reconcile(&client, &scope("n1", true), &rows, &[])
        .await
        .unwrap();

    let objects = stored(&api);
    for record in &rows {
        let status = &objects[&resource_name(record)]["status"];
        assert_eq!(status["readyToUse"], false);
        assert_eq!(status["size"], "0");
        assert_eq!(status["error"]["message"], record.error.as_deref().unwrap());
        assert_eq!(status["error"]["time"], rfc3339(failed_at).as_str());
    }
    let warnings: Vec<_> = api
        .list(EVENTS)
        .into_iter()
        .filter(|e| e["reason"] == "ETCDSnapshotFailed")
        .map(|e| (e["type"].clone(), e["note"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        "Failed to save snapshot on-demand-n1-5 on n1: etcd unavailable",
        "Failed to save snapshot on-demand-n1-5 on n1: upload failed: timeout",
    ];
    let mut notes: Vec<_> = warnings.iter().map(|(_, note)| note.as_str()).collect();
    notes.sort();
    assert_eq!(notes, want);
    assert!(warnings.iter().all(|(kind, _)| kind == "Warning"));

    // The failure records outlive the snapshots' absence (24 h).
    let outcome = reconcile(&client, &scope("n1", true), &[], &[])
        .await
        .unwrap();
    assert!(outcome.deleted.is_empty());
    assert_eq!(stored(&api).len(), 2);
}

#[tokio::test]
async fn concurrent_reconciles_of_two_nodes_create_every_resource_once() {
    let (api, client) = started().await;
    let other = api.client().await;
    let shared: Vec<_> = (1..=12)
        .map(|i| s3_record(&format!("etcd-snapshot-n1-{i}")))
        .collect();
    let mut n1_rows = shared.clone();
    n1_rows.push(local_record("n1", "etcd-snapshot-n1-1"));
    let mut n2_rows = shared.clone();
    n2_rows.push(local_record("n2", "etcd-snapshot-n2-1"));
    let (s1, s2) = (scope("n1", true), scope("n2", true));

    // The two listings usually both precede any write, so many creates meet AlreadyExists.
    let (a, b) = tokio::join!(
        reconcile(&client, &s1, &n1_rows, &[]),
        reconcile(&other, &s2, &n2_rows, &[])
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    let mut want: Vec<String> = n1_rows.iter().map(resource_name).collect();
    want.push(resource_name(&n2_rows[12]));
    let want = sorted(want);
    assert_eq!(stored(&api).into_keys().collect::<Vec<_>>(), want);
    let mut created = a.created;
    created.extend(b.created);
    assert_eq!(sorted(created), want, "no resource created twice");
    assert!(a.deleted.is_empty() && b.deleted.is_empty());
    let mut regarding: Vec<String> = events(&api).into_iter().map(|(_, name, _)| name).collect();
    regarding.sort();
    assert_eq!(regarding, want, "one Created event per resource");
}

#[tokio::test]
async fn conflicts_are_retried() {
    let (api, client) = started().await;
    let mut record = local_record("n1", "on-demand-n1-1");
    let name = resource_name(&record);
    api.fail_next("POST", FILES, 409, 2);
    let outcome = reconcile(&client, &scope("n1", false), &[record.clone()], &[])
        .await
        .unwrap();
    assert_eq!(outcome.created, vec![name.clone()]);
    let posts = |api: &KubeApi| {
        let requests = api.requests();
        requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.starts_with(FILES))
            .count()
    };
    assert_eq!(posts(&api), 3, "two refused creates, then one that worked");

    // A size change is an update; a stale-version refusal is retried after a re-read.
    record.size += 1;
    api.fail_next("PUT", FILES, 409, 1);
    let outcome = reconcile(&client, &scope("n1", false), &[record.clone()], &[])
        .await
        .unwrap();
    assert_eq!(outcome.updated, vec![name.clone()]);
    let object = api.get(&format!("{FILES}/{name}")).unwrap();
    assert_eq!(object["status"]["size"], "8937505");
    let puts = api.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 2);
    assert_eq!(events(&api).len(), 1, "updates publish no event");
}

#[tokio::test]
async fn install_crd_creates_then_updates() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    let path = format!("{CRDS}/{CRD_NAME}");
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Created);
    let installed = api.get(&path).unwrap();
    assert_eq!(installed["spec"]["group"], "k3s.cattle.io");
    assert_eq!(installed["spec"]["scope"], "Cluster");
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Unchanged);

    // An older definition (say, RKE2's without printer columns) is brought up to date.
    let mut stale = installed.clone();
    stale["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("additionalPrinterColumns");
    api.put(&path, stale);
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Updated);
    let columns = &api.get(&path).unwrap()["spec"]["versions"][0]["additionalPrinterColumns"];
    // RKE2's five, and our Verified and RestorableTo.
    assert_eq!(columns.as_array().map(Vec::len), Some(7));

    // Ours: labelled so, and that label is what allows an update.
    assert_eq!(
        installed["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "etcd-snapshot"
    );

    // No right to manage CRDs: reported, not an error.
    api.fail_next("GET", CRDS, 403, 1);
    let outcome = install_crd(&client).await.unwrap();
    assert!(
        matches!(outcome, CrdInstall::NotAllowed { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn install_crd_never_replaces_a_definition_it_did_not_write() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    let path = format!("{CRDS}/{CRD_NAME}");
    // RKE2's (or an operator's) definition: not labelled as ours, and older than ours.
    let mut foreign = crate::fakes::kube_support::manifest_crd();
    foreign["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("additionalPrinterColumns");
    api.put(&path, foreign);
    let before = api.get(&path).unwrap();
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Foreign);
    assert_eq!(api.get(&path).unwrap(), before, "left exactly as it was");
    let writes = api
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(CRDS) && r.method != "GET")
        .count();
    assert_eq!(writes, 0);
    // Labelled by someone else: still not ours.
    let mut labelled = before.clone();
    labelled["metadata"]["labels"] = serde_json::json!({"app.kubernetes.io/managed-by": "rke2"});
    api.put(&path, labelled);
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Foreign);
    // A foreign definition that already says everything ours says is simply in place.
    api.put(&path, crate::fakes::kube_support::manifest_crd());
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Unchanged);
}
