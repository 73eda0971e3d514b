//! Departed nodes' `ETCDSnapshotFile` resources and the Node mark, end to end: `collect_departed`
//! and `mark_node` through the real kube-rs client against the Kubernetes API stand-in, and the
//! real server binary collecting during its reconcile passes.
//!
//! Covers which resources go (a departed node's, a node that lost the etcd label) and which stay
//! (S3, current etcd nodes, unlabelled), their Deleted events, the safety skips (this server not
//! an etcd Node, no etcd Nodes, Nodes not listable) and the annotations with and without S3,
//! with and without permission.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use etcd_snapshot::kube::crd::STORAGE_NODE_LABEL;
use etcd_snapshot::kube::resources::{
    CrdInstall, GcOutcome, GcSkip, LOCAL_TIMESTAMP_ANNOTATION, MarkOutcome, MarkSkip, NodeNotices,
    S3_TIMESTAMP_ANNOTATION, S3Spec, Scope, collect_departed, install_crd, mark_node, reconcile,
    resource_name,
};
use etcd_snapshot::snapshot::{SnapshotRecord, Storage};
use serde_json::{Value, json};

use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{
    EVENTS, FILES, cli, local_record, s3_record, start_kube_server, wait_until,
};
use crate::s3::ops::created_name;
use crate::support::{TestEtcd, text};

const NODES: &str = "/api/v1/nodes";
const STAMP: &str = "2025-08-11T10:08:01Z";

/// A Node; `etcd` puts RKE2's etcd role label on it.
fn put_node(api: &KubeApi, name: &str, etcd: bool, annotations: Option<Value>) {
    let mut metadata = json!({"name": name, "labels": {"kubernetes.io/hostname": name}});
    if etcd {
        metadata["labels"]["node-role.kubernetes.io/etcd"] = json!("true");
    }
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": metadata});
    api.put(&format!("{NODES}/{name}"), node);
}

async fn started() -> (KubeApi, kube::Client) {
    let api = KubeApi::start().await;
    let client = api.client().await;
    assert_eq!(install_crd(&client).await.unwrap(), CrdInstall::Created);
    (api, client)
}

/// Creates the resources of `records` as the nodes owning them would: one reconcile per node
/// (S3 copies as node `s3` with S3 in scope), so no reconcile removes another's creations.
async fn create_resources(client: &kube::Client, records: &[SnapshotRecord]) {
    let owners: BTreeSet<&str> = records.iter().map(|r| r.node_name.as_str()).collect();
    for owner in owners {
        let own: Vec<SnapshotRecord> = records
            .iter()
            .filter(|r| r.node_name == owner)
            .cloned()
            .collect();
        let scope = Scope {
            node_name: owner.to_string(),
            s3: own
                .iter()
                .any(|r| r.storage == Storage::S3)
                .then(S3Spec::default),
        };
        let created = reconcile(client, &scope, &own, &[]).await.unwrap();
        assert_eq!(created.created.len(), own.len(), "{created:?}");
    }
}

fn stored_names(api: &KubeApi) -> BTreeSet<String> {
    api.list(FILES)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// `(regarding name, note)` of every ETCDSnapshotDeleted event.
fn deleted_events(api: &KubeApi) -> BTreeSet<(String, String)> {
    api.list(EVENTS)
        .iter()
        .filter(|e| e["reason"] == "ETCDSnapshotDeleted")
        .map(|e| {
            let name = e["regarding"]["name"].as_str().unwrap_or_default();
            (
                name.to_string(),
                e["note"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

fn names<'a>(records: impl IntoIterator<Item = &'a SnapshotRecord>) -> BTreeSet<String> {
    records.into_iter().map(resource_name).collect()
}

/// Resources of n1, n2 (etcd), worker-1 (a Node without the etcd role), gone (no Node) and S3.
struct Cluster {
    api: KubeApi,
    client: kube::Client,
    kept: Vec<SnapshotRecord>,
    departed: Vec<SnapshotRecord>,
}

async fn cluster() -> Cluster {
    let (api, client) = started().await;
    put_node(&api, "n1", true, None);
    put_node(&api, "n2", true, None);
    put_node(&api, "worker-1", false, None);
    let kept = vec![
        local_record("n1", "on-demand-n1-1"),
        local_record("n2", "on-demand-n2-1"),
        s3_record("on-demand-gone-1"),
    ];
    let departed = vec![
        local_record("gone", "on-demand-gone-1"),
        local_record("gone", "on-demand-gone-2"),
        local_record("worker-1", "on-demand-worker-1-1"),
    ];
    create_resources(&client, &[kept.clone(), departed.clone()].concat()).await;
    Cluster {
        api,
        client,
        kept,
        departed,
    }
}

#[tokio::test]
async fn departed_nodes_resources_go_with_deleted_events_and_the_rest_stay() {
    let c = cluster().await;
    // A resource some other tool wrote, without the storage-node label: not ours to remove.
    c.api.put(
        &format!("{FILES}/someone-elses"),
        json!({"apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFile",
               "metadata": {"name": "someone-elses"},
               "spec": {"snapshotName": "x", "nodeName": "gone", "location": ""}}),
    );

    let outcome = collect_departed(&c.client, "n1", &NodeNotices::default())
        .await
        .unwrap();

    let GcOutcome::Collected {
        deleted,
        events_failed,
    } = outcome
    else {
        panic!("collection skipped: {outcome:?}");
    };
    assert_eq!(
        deleted.into_iter().collect::<BTreeSet<_>>(),
        names(&c.departed)
    );
    assert_eq!(events_failed, 0);
    let mut want = names(&c.kept);
    want.insert("someone-elses".into());
    assert_eq!(stored_names(&c.api), want);
    let want_events: BTreeSet<(String, String)> = c
        .departed
        .iter()
        .map(|r| {
            let note = format!("Snapshot {} deleted", r.file_name);
            (resource_name(r), note)
        })
        .collect();
    assert_eq!(deleted_events(&c.api), want_events);
    // One delete per orphan, none for anything else.
    let deletes: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), c.departed.len(), "{deletes:?}");

    // A second pass (another server's, say) finds nothing left to do.
    let again = collect_departed(&c.client, "n2", &NodeNotices::default())
        .await
        .unwrap();
    assert_eq!(
        again,
        GcOutcome::Collected {
            deleted: vec![],
            events_failed: 0
        }
    );
}

#[tokio::test]
async fn a_lost_race_for_an_orphan_is_not_an_error() {
    let c = cluster().await;
    // Another server deleted one orphan first, and rewrote another since we listed.
    let first = resource_name(&c.departed[0]);
    let second = resource_name(&c.departed[1]);
    c.api
        .fail_next("DELETE", &format!("{FILES}/{first}"), 404, 1);
    c.api
        .fail_next("DELETE", &format!("{FILES}/{second}"), 409, 1);
    let outcome = collect_departed(&c.client, "n1", &NodeNotices::default())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        GcOutcome::Collected {
            deleted: vec![resource_name(&c.departed[2])],
            events_failed: 0
        }
    );
    // Those two are left for the next pass to judge, without a Deleted event from us.
    let events = deleted_events(&c.api);
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test]
async fn a_server_that_is_not_an_etcd_node_deletes_nothing() {
    let c = cluster().await;
    let before = stored_names(&c.api);
    let notices = NodeNotices::default();
    for own in ["server-1.example.com", "worker-1"] {
        let outcome = collect_departed(&c.client, own, &notices).await.unwrap();
        assert_eq!(outcome, GcOutcome::Skipped(GcSkip::NotAnEtcdNode), "{own}");
    }
    assert_eq!(stored_names(&c.api), before);
    assert!(deleted_events(&c.api).is_empty());
}

#[tokio::test]
async fn no_etcd_nodes_or_nodes_not_listable_delete_nothing() {
    let c = cluster().await;
    let before = stored_names(&c.api);
    let notices = NodeNotices::default();

    c.api.fail_next("GET", NODES, 403, 1);
    let forbidden = collect_departed(&c.client, "n1", &notices).await.unwrap();
    assert_eq!(forbidden, GcOutcome::Skipped(GcSkip::NodesForbidden));

    for node in ["n1", "n2", "worker-1"] {
        assert!(c.api.remove(&format!("{NODES}/{node}")));
    }
    let none = collect_departed(&c.client, "n1", &notices).await.unwrap();
    assert_eq!(none, GcOutcome::Skipped(GcSkip::NoEtcdNodes));

    assert_eq!(stored_names(&c.api), before);
    assert!(deleted_events(&c.api).is_empty());
}

#[tokio::test]
async fn other_listing_errors_are_errors() {
    let c = cluster().await;
    c.api.fail_next("GET", NODES, 500, 1);
    let err = collect_departed(&c.client, "n1", &NodeNotices::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed to list Nodes"), "{err}");
    assert!(err.is_retryable());
}

fn annotations(api: &KubeApi, node: &str) -> Value {
    api.get(&format!("{NODES}/{node}")).unwrap()["metadata"]["annotations"].clone()
}

#[tokio::test]
async fn the_node_is_marked_with_the_s3_timestamp_only_when_s3_was_in_scope() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    let kubelet = json!({"node.alpha.kubernetes.io/ttl": "0"});
    put_node(&api, "n1", true, Some(kubelet));
    let at = Utc.timestamp_opt(1_754_906_881, 0).unwrap();
    let notices = NodeNotices::default();

    let local_only = mark_node(&client, "n1", false, at, &notices).await.unwrap();
    assert!(matches!(local_only, MarkOutcome::Marked(ref a) if a.len() == 1));
    let got = annotations(&api, "n1");
    assert_eq!(got[LOCAL_TIMESTAMP_ANNOTATION], STAMP);
    assert!(got.get(S3_TIMESTAMP_ANNOTATION).is_none(), "{got:#}");
    assert_eq!(got["node.alpha.kubernetes.io/ttl"], "0", "others kept");

    let later = Utc.timestamp_opt(1_754_906_941, 0).unwrap();
    mark_node(&client, "n1", true, later, &notices)
        .await
        .unwrap();
    let got = annotations(&api, "n1");
    assert_eq!(got[LOCAL_TIMESTAMP_ANNOTATION], "2025-08-11T10:09:01Z");
    assert_eq!(got[S3_TIMESTAMP_ANNOTATION], "2025-08-11T10:09:01Z");
    assert_eq!(got["node.alpha.kubernetes.io/ttl"], "0");
    // Only annotations were sent: the labels are untouched.
    let node = api.get(&format!("{NODES}/n1")).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/etcd"],
        "true"
    );
}

#[tokio::test]
async fn a_node_without_annotations_is_marked_too() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    put_node(&api, "n1", true, None);
    assert!(annotations(&api, "n1").is_null());
    let at = Utc.timestamp_opt(1_754_906_881, 0).unwrap();
    let outcome = mark_node(&client, "n1", true, at, &NodeNotices::default())
        .await
        .unwrap();
    assert!(matches!(outcome, MarkOutcome::Marked(_)), "{outcome:?}");
    assert_eq!(
        annotations(&api, "n1"),
        json!({LOCAL_TIMESTAMP_ANNOTATION: STAMP, S3_TIMESTAMP_ANNOTATION: STAMP})
    );
}

#[tokio::test]
async fn marking_without_permission_or_without_a_node_is_skipped() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    put_node(&api, "n1", true, Some(json!({"a": "b"})));
    let at = Utc.timestamp_opt(1_754_906_881, 0).unwrap();
    let notices = NodeNotices::default();

    api.fail_next("PATCH", &format!("{NODES}/n1"), 403, 1);
    let forbidden = mark_node(&client, "n1", true, at, &notices).await.unwrap();
    assert_eq!(forbidden, MarkOutcome::Skipped(MarkSkip::Forbidden));
    assert_eq!(annotations(&api, "n1"), json!({"a": "b"}));

    for own in ["n9", "Not_A_Node_Name"] {
        let missing = mark_node(&client, own, false, at, &notices).await.unwrap();
        assert_eq!(
            missing,
            MarkOutcome::Skipped(MarkSkip::NodeMissing),
            "{own}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_collects_a_departed_nodes_resource_and_marks_its_node() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    put_node(&api, "n1", true, Some(json!({"a": "b"})));
    let dir = tempfile::tempdir().unwrap();
    let (_, server) = start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, Vec::new()).await;
    // This server's own snapshot, whose resource must stay.
    let out = cli(&server, &["save"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let own = created_name(&out);
    let client = api.client().await;
    let departed = local_record("gone", "on-demand-gone-1");
    create_resources(&client, std::slice::from_ref(&departed)).await;
    let name = resource_name(&departed);

    let probe = api.clone();
    let gone = name.clone();
    wait_until("the departed node's resource to go", move || {
        !stored_names(&probe).contains(&gone)
    })
    .await;
    let notes = deleted_events(&api);
    let note = "Snapshot on-demand-gone-1 deleted".to_string();
    assert!(notes.contains(&(name, note)), "{notes:?}");
    let probe = api.clone();
    wait_until("the Node's local timestamp", move || {
        annotations(&probe, "n1")[LOCAL_TIMESTAMP_ANNOTATION].is_string()
    })
    .await;
    let got = annotations(&api, "n1");
    assert_eq!(got["a"], "b");
    assert!(got.get(S3_TIMESTAMP_ANNOTATION).is_none(), "no S3: {got:#}");
    let own_resources: Vec<Value> = api
        .list(FILES)
        .into_iter()
        .filter(|r| r["spec"]["snapshotName"] == own.as_str())
        .collect();
    assert_eq!(own_resources.len(), 1, "{own_resources:#?}");
    assert_eq!(
        own_resources[0]["metadata"]["labels"][STORAGE_NODE_LABEL],
        "n1"
    );
}
