//! Unit tests of `plan_departed` (which resources are a departed node's, and the safety rules
//! that stop the collection) and of the once-per-episode notices.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::kube::resources::{SnapshotFileSpec, SnapshotFileStatus};

fn resource(name: &str, storage_node: Option<&str>) -> SnapshotFile {
    let labels = storage_node
        .map(|node| BTreeMap::from([(STORAGE_NODE_LABEL.to_string(), node.to_string())]));
    let metadata = ObjectMeta {
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        resource_version: Some("7".into()),
        labels,
        ..Default::default()
    };
    SnapshotFile::new(
        metadata,
        SnapshotFileSpec::default(),
        SnapshotFileStatus::default(),
    )
}

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn names(planned: Result<Vec<SnapshotFile>, GcSkip>) -> Vec<String> {
    planned
        .expect("collection runs")
        .iter()
        .map(|r| r.name().to_string())
        .collect()
}

#[test]
fn departed_nodes_local_resources_are_orphans_and_nothing_else() {
    let existing = [
        resource("local-a-n1", Some("n1")),
        resource("local-b-n2", Some("n2")),
        resource("local-c-gone", Some("gone")),
        resource("local-d-gone", Some("gone")),
        resource("local-e-worker", Some("worker-1")),
        resource("s3-f", Some("s3")),
    ];
    let planned = plan_departed("n1", &nodes(&["n1", "n2"]), &existing);
    assert_eq!(
        names(planned),
        ["local-c-gone", "local-d-gone", "local-e-worker"]
    );
}

#[test]
fn orphans_keep_the_uid_and_version_they_were_listed_with() {
    let existing = [resource("local-c-gone", Some("gone"))];
    let planned = plan_departed("n1", &nodes(&["n1"]), &existing).unwrap();
    assert_eq!(planned[0].metadata.uid.as_deref(), Some("uid-local-c-gone"));
    assert_eq!(planned[0].metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn resources_we_did_not_label_are_left_alone() {
    let existing = [
        resource("made-by-someone-else", None),
        resource("empty-label", Some("")),
    ];
    assert!(names(plan_departed("n1", &nodes(&["n1"]), &existing)).is_empty());
}

#[test]
fn resources_already_being_deleted_are_left_to_finish() {
    let mut going = resource("local-c-gone", Some("gone"));
    going.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(names(plan_departed("n1", &nodes(&["n1"]), &[going])).is_empty());
}

#[test]
fn a_server_that_is_not_an_etcd_node_collects_nothing() {
    let existing = [
        resource("local-a-n1", Some("n1")),
        resource("local-b-n2", Some("n2")),
    ];
    // Its node-name differs from its Node's: every resource, its own too, would look orphaned.
    let planned = plan_departed("server-1.example", &nodes(&["n1", "n2"]), &existing);
    assert_eq!(planned, Err(GcSkip::NotAnEtcdNode));
}

#[test]
fn no_etcd_nodes_means_no_collection() {
    let existing = [resource("local-a-n1", Some("n1"))];
    assert_eq!(
        plan_departed("n1", &BTreeSet::new(), &existing),
        Err(GcSkip::NoEtcdNodes)
    );
}

#[test]
fn notices_are_raised_once_until_cleared() {
    let notices = NodeNotices::default();
    assert!(notices.raise(Notice::NotAnEtcdNode));
    assert!(!notices.raise(Notice::NotAnEtcdNode));
    // Another notice is independent.
    assert!(notices.raise(Notice::NodesForbidden));
    notices.clear(&[Notice::NotAnEtcdNode]);
    assert!(notices.raise(Notice::NotAnEtcdNode));
    assert!(!notices.raise(Notice::NodesForbidden));
    for notice in [
        Notice::NoEtcdNodes,
        Notice::MarkForbidden,
        Notice::MarkNodeMissing,
    ] {
        assert!(notices.raise(notice), "{notice:?}");
        assert!(!notices.raise(notice), "{notice:?}");
    }
}
