//! Unit tests of `plan_reconcile`: RKE2's keep and delete rules (table-driven), creates, and
//! semantic updates that leave server-set and foreign fields alone.

use std::collections::BTreeMap;

use chrono::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::kube::crd::TOKEN_HASH_ANNOTATION;
use crate::kube::resources::{S3Spec, desired_resource};
use crate::snapshot::record::rfc3339;
use crate::snapshot::{SnapshotRecord, Storage};

const NOW: i64 = 1_754_906_881;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

fn record(storage: Storage, file: &str) -> SnapshotRecord {
    SnapshotRecord {
        file_name: file.into(),
        location: format!("file:///d/{file}"),
        node_name: "n1".into(),
        storage,
        size: 8_937_504,
        created_unix: NOW - 3600,
        compressed: false,
        ready: true,
        error: None,
        token_hash: None,
        metadata: None,
    }
}

/// A stored resource: what the apiserver returns, with its server-set fields.
fn stored(mut resource: SnapshotFile, created_ago_secs: Option<i64>) -> SnapshotFile {
    resource.metadata.resource_version = Some("42".into());
    resource.metadata.uid = Some("uid-1".into());
    resource.metadata.creation_timestamp =
        created_ago_secs.map(|ago| Time(Timestamp::from_second(NOW - ago).unwrap()));
    resource
}

/// A stored failure record whose error happened `failed_ago_secs` ago.
fn failure(storage: Storage, file: &str, failed_ago_secs: i64) -> SnapshotFile {
    let mut r = record(storage, file);
    r.ready = false;
    r.error = Some("upload failed".into());
    r.created_unix = NOW - failed_ago_secs;
    stored(desired_resource(&r, None), Some(failed_ago_secs))
}

fn names(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let kind = match c {
                Change::Create(_) => "create",
                Change::Update(_) => "update",
                Change::Delete(_) => "delete",
            };
            format!("{kind} {}", c.name())
        })
        .collect()
}

#[test]
fn resources_without_a_snapshot_follow_rke2s_keep_rules() {
    let local = |ago| {
        stored(
            desired_resource(&record(Storage::Local, "l-n1-1"), None),
            ago,
        )
    };
    let s3 = |ago| stored(desired_resource(&record(Storage::S3, "s-n1-1"), None), ago);
    let mut deleting = local(Some(600));
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(NOW).unwrap()));
    let just = vec!["s-n1-1".to_string(), "f-n1-1".to_string()];
    let none: Vec<String> = Vec::new();
    // (case, observed, just_deleted, deleted?)
    let cases = [
        ("local, gone", local(Some(600)), &none, true),
        ("local, gone, brand new", local(Some(1)), &none, true),
        (
            "failure 1h old",
            failure(Storage::Local, "l-n1-1", 3600),
            &none,
            false,
        ),
        (
            "failure 25h old",
            failure(Storage::Local, "l-n1-1", 25 * 3600),
            &none,
            true,
        ),
        (
            "s3 failure 23h old",
            failure(Storage::S3, "s-n1-1", 23 * 3600),
            &none,
            false,
        ),
        (
            "failure, just deleted",
            failure(Storage::S3, "f-n1-1", 60),
            &just,
            true,
        ),
        ("s3 created 30s ago", s3(Some(30)), &none, false),
        (
            "s3 created 30s ago, just deleted",
            s3(Some(30)),
            &just,
            true,
        ),
        ("s3 created 2min ago", s3(Some(120)), &none, true),
        ("s3 without creation time", s3(None), &none, true),
        ("already being deleted", deleting, &none, false),
    ];
    for (case, observed, just_deleted, deleted) in cases {
        let changes = plan_reconcile(std::slice::from_ref(&observed), &[], just_deleted, now());
        let want = if deleted {
            vec![format!("delete {}", observed.name())]
        } else {
            Vec::new()
        };
        assert_eq!(names(&changes), want, "{case}");
        if let [Change::Delete(gone)] = changes.as_slice() {
            assert_eq!(
                gone, &observed,
                "{case}: the delete carries the listed version"
            );
        }
    }
}

#[test]
fn missing_resources_are_created_and_matching_ones_left_alone() {
    let a = desired_resource(&record(Storage::Local, "a-n1-1"), None);
    let b = desired_resource(&record(Storage::S3, "b-n1-1"), None);
    let changes = plan_reconcile(&[stored(a.clone(), Some(5))], &[a, b.clone()], &[], now());
    assert_eq!(changes, vec![Change::Create(b)]);
}

#[test]
fn a_renamed_resource_is_replaced() {
    // Same snapshot, but a name RKE2 would not generate (e.g. older naming): delete + create.
    let want = desired_resource(&record(Storage::Local, "a-n1-1"), None);
    let mut old = stored(want.clone(), Some(600));
    old.metadata.name = Some("local-a-n1-1".into());
    let changes = plan_reconcile(&[old], std::slice::from_ref(&want), &[], now());
    assert_eq!(
        names(&changes),
        vec![
            "delete local-a-n1-1".to_string(),
            format!("create {}", want.name())
        ]
    );
}

#[test]
fn equivalent_spellings_do_not_cause_updates() {
    let mut r = record(Storage::S3, "a-n1-1");
    r.size = 10_000_000;
    let desired = desired_resource(&r, Some(&Default::default()));
    let mut current = stored(desired.clone(), Some(600));
    let status = current.status.as_mut().unwrap();
    status.size = Some(json!(10_000_000));
    status.creation_time = Some(rfc3339(r.created_unix).replace('Z', "+00:00"));
    current.spec.metadata = Some(BTreeMap::new());
    let mut labels = current.metadata.labels.clone().unwrap();
    labels.insert("team".into(), "ops".into());
    current.metadata.labels = Some(labels);
    current.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    let changes = plan_reconcile(&[current], &[desired], &[], now());
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn differences_update_in_place_keeping_foreign_fields() {
    let mut r = record(Storage::Local, "a-n1-1");
    r.token_hash = Some("9f86d081884c".into());
    let mut current = stored(desired_resource(&r, None), Some(600));
    current.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    // The listing no longer knows the hash, and the file grew.
    r.token_hash = None;
    r.size += 1;
    let desired = desired_resource(&r, None);
    let changes = plan_reconcile(
        std::slice::from_ref(&current),
        std::slice::from_ref(&desired),
        &[],
        now(),
    );
    let [Change::Update(merged)] = changes.as_slice() else {
        panic!("expected one update: {changes:?}");
    };
    assert_eq!(merged.status, desired.status);
    assert_eq!(merged.spec, desired.spec);
    assert_eq!(merged.metadata.resource_version.as_deref(), Some("42"));
    assert_eq!(merged.metadata.finalizers, current.metadata.finalizers);
    let hash = merged.metadata.annotations.as_ref().unwrap()[TOKEN_HASH_ANNOTATION].clone();
    assert_eq!(hash, "9f86d081884c", "annotations are never removed");
}

#[test]
fn a_newly_known_token_hash_is_added() {
    let r = record(Storage::Local, "a-n1-1");
    let current = stored(desired_resource(&r, None), Some(600));
    let mut with_hash = r.clone();
    with_hash.token_hash = Some("e3b0c44298fc".into());
    let changes = plan_reconcile(
        &[current],
        &[desired_resource(&with_hash, None)],
        &[],
        now(),
    );
    let [Change::Update(merged)] = changes.as_slice() else {
        panic!("expected one update: {changes:?}");
    };
    let annotations = merged.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[TOKEN_HASH_ANNOTATION], "e3b0c44298fc");
}

#[test]
fn expired_failures_are_not_recreated() {
    let mut r = record(Storage::S3, "a-n1-1");
    r.ready = false;
    r.error = Some("upload failed".into());
    for (failed_ago, created) in [(25 * 3600, false), (3600, true)] {
        r.created_unix = NOW - failed_ago;
        let changes = plan_reconcile(&[], &[desired_resource(&r, None)], &[], now());
        assert_eq!(
            changes.len(),
            usize::from(created),
            "failed {failed_ago}s ago"
        );
    }
}

#[test]
fn a_failure_turned_success_is_updated() {
    let mut r = record(Storage::S3, "a-n1-1");
    r.ready = false;
    r.error = Some("upload failed".into());
    let current = stored(desired_resource(&r, None), Some(600));
    r.ready = true;
    r.error = None;
    let changes = plan_reconcile(&[current], &[desired_resource(&r, None)], &[], now());
    let [Change::Update(merged)] = changes.as_slice() else {
        panic!("expected one update: {changes:?}");
    };
    let status = merged.status.as_ref().unwrap();
    assert_eq!(status.ready_to_use, Some(true));
    assert!(status.error.is_none());
}

#[test]
fn a_failure_record_goes_once_the_copy_it_failed_to_make_exists() {
    // Recorded while the bucket was unknown (no location), so its name differs from the copy's.
    let mut failed = record(Storage::S3, "a-n1-1");
    failed.location = String::new();
    failed.ready = false;
    failed.error = Some("the S3 config Secret could not be read".into());
    let failure = stored(desired_resource(&failed, None), Some(600));
    let mut copy = record(Storage::S3, "a-n1-1");
    copy.location = "s3://b/a-n1-1".into();
    let copied = desired_resource(&copy, None);
    assert_ne!(failure.name(), copied.name());
    let changes = plan_reconcile(
        std::slice::from_ref(&failure),
        std::slice::from_ref(&copied),
        &[],
        now(),
    );
    let mut got = names(&changes);
    got.sort();
    let mut want = vec![
        format!("create {}", copied.name()),
        format!("delete {}", failure.name()),
    ];
    want.sort();
    assert_eq!(got, want);

    // Another snapshot's success, or the same snapshot's local copy, supersedes nothing.
    let other = desired_resource(&record(Storage::S3, "b-n1-2"), None);
    let local = desired_resource(&record(Storage::Local, "a-n1-1"), None);
    let changes = plan_reconcile(std::slice::from_ref(&failure), &[other, local], &[], now());
    assert!(
        !names(&changes).contains(&format!("delete {}", failure.name())),
        "{changes:?}"
    );
}

#[test]
fn a_node_that_lacks_the_metadata_keeps_the_uploaders() {
    let mut uploader = record(Storage::S3, "a-n1-1");
    uploader.metadata = Some(BTreeMap::from([("team".into(), "ops".into())]));
    let spec = Some(Default::default());
    let current = stored(desired_resource(&uploader, spec.as_ref()), Some(600));
    let mut other = uploader.clone();
    other.metadata = None;
    let desired = desired_resource(&other, spec.as_ref());
    let changes = plan_reconcile(
        std::slice::from_ref(&current),
        std::slice::from_ref(&desired),
        &[],
        now(),
    );
    assert!(changes.is_empty(), "{changes:?}");
    // Metadata that differs is still written.
    other.metadata = Some(BTreeMap::from([("team".into(), "dev".into())]));
    let desired = desired_resource(&other, spec.as_ref());
    let changes = plan_reconcile(&[current], &[desired], &[], now());
    assert_eq!(changes.len(), 1, "{changes:?}");
}

#[test]
fn a_new_drill_verdict_updates_the_resource_and_the_same_one_does_not() {
    let plain = record(Storage::Local, "a-n1-1");
    let current = stored(desired_resource(&plain, None), Some(600));
    let drilled = |passed: bool| {
        let verdict = crate::snapshot::drill_record::DrillVerdict::new(NOW, passed, "why");
        let record = SnapshotRecord {
            metadata: Some(verdict.entries()),
            ..plain.clone()
        };
        desired_resource(&record, None)
    };
    let changes = plan_reconcile(
        std::slice::from_ref(&current),
        &[drilled(false)],
        &[],
        now(),
    );
    let Some(Change::Update(updated)) = changes.first() else {
        panic!("{changes:?}");
    };
    let verification = updated
        .status
        .as_ref()
        .unwrap()
        .verification
        .as_ref()
        .unwrap();
    assert_eq!(verification.result.as_deref(), Some("failed"));
    let verified = stored(drilled(false), Some(600));
    assert!(
        plan_reconcile(
            std::slice::from_ref(&verified),
            &[drilled(false)],
            &[],
            now()
        )
        .is_empty()
    );
    assert_eq!(
        names(&plan_reconcile(&[verified], &[drilled(true)], &[], now())),
        [format!("update {}", current.name())]
    );
}

/// The resource of `record` with a window from revision 100 (an hour ago) to `to_revision`.
fn windowed(
    record: &SnapshotRecord,
    s3: Option<&S3Spec>,
    to_revision: i64,
    to_unix_ms: Option<i64>,
) -> SnapshotFile {
    use crate::snapshot::point_in_time::{PointInTime, set};
    let mut record = record.clone();
    let window = PointInTime {
        from_revision: 100,
        to_revision,
        from_unix_ms: (NOW - 3600) * 1000,
        to_unix_ms,
    };
    set(&mut record, Some(&window));
    desired_resource(&record, s3)
}

#[test]
fn a_moved_point_in_time_window_updates_the_resource_and_the_same_one_does_not() {
    let plain = record(Storage::Local, "a-n1-1");
    let with_window = |to_revision, to_unix_ms| windowed(&plain, None, to_revision, to_unix_ms);
    let current = stored(with_window(130, Some(NOW * 1000 + 250)), Some(600));
    let window = current
        .status
        .as_ref()
        .unwrap()
        .point_in_time
        .clone()
        .unwrap();
    assert_eq!(window.to.as_deref(), Some("2025-08-11T10:08:01.250Z"));
    assert_eq!(
        (window.from_revision, window.to_revision),
        (Some(100), Some(130))
    );
    let same = with_window(130, Some(NOW * 1000 + 250));
    assert!(plan_reconcile(std::slice::from_ref(&current), &[same], &[], now()).is_empty());
    // The same instant written another way is no change either.
    let mut respelled = current.clone();
    respelled
        .status
        .as_mut()
        .unwrap()
        .point_in_time
        .as_mut()
        .unwrap()
        .to = Some("2025-08-11T10:08:01.250+00:00".into());
    let same = with_window(130, Some(NOW * 1000 + 250));
    assert!(plan_reconcile(&[respelled], &[same], &[], now()).is_empty());
    for moved in [
        with_window(131, Some(NOW * 1000 + 900)),
        with_window(130, None),
    ] {
        let changes = plan_reconcile(std::slice::from_ref(&current), &[moved], &[], now());
        assert_eq!(names(&changes), [format!("update {}", current.name())]);
    }
    // A snapshot whose chain is gone loses its window.
    let changes = plan_reconcile(
        std::slice::from_ref(&current),
        &[desired_resource(&plain, None)],
        &[],
        now(),
    );
    assert_eq!(names(&changes), [format!("update {}", current.name())]);
}

#[test]
fn a_node_knowing_less_of_an_s3_copys_window_keeps_what_a_node_knowing_more_wrote() {
    let spec = S3Spec {
        bucket: "b".into(),
        ..S3Spec::default()
    };
    let plain = record(Storage::S3, "s-n1-1");
    let with_window =
        |to_revision, to_unix_ms| windowed(&plain, Some(&spec), to_revision, to_unix_ms);
    let window_of = |r: &SnapshotFile| r.status.as_ref().unwrap().point_in_time.clone();
    // Written by the node that captured the chain: the end has its time.
    let current = stored(with_window(130, Some(NOW * 1000 + 250)), Some(600));
    assert!(window_of(&current).unwrap().to.is_some());
    // Another node sees the same end without a time, or could not list the chains: no change.
    for knows_less in [
        with_window(130, None),
        desired_resource(&plain, Some(&spec)),
    ] {
        assert!(
            plan_reconcile(std::slice::from_ref(&current), &[knows_less], &[], now()).is_empty()
        );
    }
    // A further end is news, time or not.
    let changes = plan_reconcile(
        std::slice::from_ref(&current),
        &[with_window(131, None)],
        &[],
        now(),
    );
    let [Change::Update(updated)] = &changes[..] else {
        panic!("{:?}", names(&changes));
    };
    assert_eq!(window_of(updated).unwrap().to_revision, Some(131));
    // Another change (a new size) keeps the window the node does not know as well.
    let mut resized = with_window(130, None);
    resized.status.as_mut().unwrap().size = Some("1Gi".into());
    let changes = plan_reconcile(std::slice::from_ref(&current), &[resized], &[], now());
    let [Change::Update(updated)] = &changes[..] else {
        panic!("{:?}", names(&changes));
    };
    assert_eq!(window_of(updated), window_of(&current));
    // A local copy's resource has one writer: its view is taken as it is.
    let local = record(Storage::Local, "a-n1-1");
    let current = stored(windowed(&local, None, 130, Some(NOW * 1000)), Some(600));
    let changes = plan_reconcile(&[current], &[desired_resource(&local, None)], &[], now());
    assert_eq!(changes.len(), 1);
}
