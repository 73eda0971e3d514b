//! The reconcile decision: observed resources against desired ones, into creates, updates and
//! deletes, with RKE2's keep rules.
//!
//! Pure (the clock is a parameter) so every rule is table-tested; `apply` carries the result out.
//! Comparison is semantic (quantities and times by value, absent and empty alike), so objects
//! written by RKE2 or read back from the apiserver do not cause endless updates.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::desired::{S3_STORAGE_NODE, parse_quantity};
use super::model::{SnapshotFile, SnapshotFileSpec, SnapshotFileStatus};
use crate::kube::crd::STORAGE_NODE_LABEL;

/// How long a failure record (failed save or upload) stays visible after its error time.
pub const FAILURE_TTL: Duration = Duration::hours(24);
/// How long a fresh S3 resource is kept although this node's listing lacks it: another node may
/// have just uploaded it after this node listed the bucket.
pub const S3_GRACE: Duration = Duration::minutes(1);

/// One step of a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new resource, as desired.
    Create(SnapshotFile),
    /// The observed resource brought to the desired state (keeps its resourceVersion, finalizers
    /// and any extra labels or annotations).
    Update(SnapshotFile),
    /// The observed resource, to be removed.
    Delete(SnapshotFile),
}

impl Change {
    /// The resource name the change is about.
    pub fn name(&self) -> &str {
        match self {
            Change::Create(r) | Change::Update(r) | Change::Delete(r) => r.name(),
        }
    }
}

/// Decides the changes that bring `observed` (this node's in-scope resources) to `desired`.
///
/// - A resource that is desired under its exact name is updated when it differs semantically.
/// - Any other observed resource is deleted, unless it is kept: it was not deleted by this
///   operation (`just_deleted` holds snapshot file names) and either it records a failure less
///   than [`FAILURE_TTL`] old, or it is an S3 resource created less than [`S3_GRACE`] ago.
/// - A failure record is not kept once the copy it failed to make exists: a ready resource of
///   the same snapshot in the same storage is desired (RKE2 keeps it a day regardless; a failed
///   S3 copy then looked like a second, broken S3 snapshot beside the good one).
/// - Desired failure records older than [`FAILURE_TTL`] are not (re)created.
/// - Resources already being deleted are left alone and not re-created this round.
pub fn plan_reconcile(
    observed: &[SnapshotFile],
    desired: &[SnapshotFile],
    just_deleted: &[String],
    now: DateTime<Utc>,
) -> Vec<Change> {
    let mut wanted: BTreeMap<&str, &SnapshotFile> = BTreeMap::new();
    for resource in desired {
        if !failure_expired(resource, now) {
            wanted.entry(resource.name()).or_insert(resource);
        }
    }
    let made: BTreeSet<(Option<&str>, &str)> = desired
        .iter()
        .filter(|r| is_ready(r))
        .map(copy_of)
        .collect();
    let mut changes = Vec::new();
    for current in observed {
        let desired = wanted.remove(current.name());
        if current.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match desired {
            Some(desired) => {
                if let Some(merged) = merge_if_different(current, desired) {
                    changes.push(Change::Update(merged));
                }
            }
            None if should_delete(current, just_deleted, now)
                || (error_time(current).is_some() && made.contains(&copy_of(current))) =>
            {
                changes.push(Change::Delete(current.clone()));
            }
            None => {}
        }
    }
    changes.extend(wanted.into_values().map(|r| Change::Create(r.clone())));
    changes
}

/// RKE2's rules for a resource that no longer matches a snapshot copy.
fn should_delete(current: &SnapshotFile, just_deleted: &[String], now: DateTime<Utc>) -> bool {
    if just_deleted.contains(&current.spec.snapshot_name) {
        return true;
    }
    if let Some(failed_at) = error_time(current)
        && now < failed_at + FAILURE_TTL
    {
        return false;
    }
    let is_s3 =
        current.label(STORAGE_NODE_LABEL) == Some(S3_STORAGE_NODE) || current.spec.s3.is_some();
    let created = current
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0));
    !(is_s3 && created.is_some_and(|created| now < created + S3_GRACE))
}

/// Which copy a resource stands for: its storage (node or `s3`) and snapshot.
fn copy_of(resource: &SnapshotFile) -> (Option<&str>, &str) {
    (
        resource.label(STORAGE_NODE_LABEL),
        resource.spec.snapshot_name.as_str(),
    )
}

fn is_ready(resource: &SnapshotFile) -> bool {
    resource
        .status
        .as_ref()
        .is_some_and(|s| s.ready_to_use == Some(true))
}

fn failure_expired(resource: &SnapshotFile, now: DateTime<Utc>) -> bool {
    error_time(resource).is_some_and(|failed_at| now >= failed_at + FAILURE_TTL)
}

/// `status.error.time`, when present and readable.
fn error_time(resource: &SnapshotFile) -> Option<DateTime<Utc>> {
    let time = resource.status.as_ref()?.error.as_ref()?.time.as_deref()?;
    parse_time(time)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `current` with the desired labels, annotations, spec and status applied, or `None` when that
/// would change nothing that matters. Existing labels and annotations are never removed (RKE2
/// keeps a token-hash annotation that a later listing no longer knows).
pub fn merge_if_different(current: &SnapshotFile, desired: &SnapshotFile) -> Option<SnapshotFile> {
    let mut merged = current.clone();
    let meta = &mut merged.metadata;
    for (field, wanted) in [
        (&mut meta.labels, &desired.metadata.labels),
        (&mut meta.annotations, &desired.metadata.annotations),
    ] {
        if let Some(wanted) = wanted.as_ref().filter(|w| !w.is_empty()) {
            let map = field.get_or_insert_with(BTreeMap::new);
            map.extend(wanted.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let same = merged.metadata == current.metadata
        && merged.api_version == desired.api_version
        && merged.kind == desired.kind
        && spec_equivalent(&current.spec, &desired.spec)
        && status_equivalent(
            current.status.as_ref(),
            kept_window(current, desired).as_ref(),
        );
    if same {
        return None;
    }
    merged.api_version = desired.api_version.clone();
    merged.kind = desired.kind.clone();
    let known_metadata = merged.spec.metadata.take();
    merged.spec = desired.spec.clone();
    if merged.spec.metadata.is_none() {
        // A node without the snapshot's metadata (an S3 copy it did not upload) keeps what
        // the uploader wrote rather than erasing it.
        merged.spec.metadata = known_metadata;
    }
    merged.status = kept_window(current, desired);
    Some(merged)
}

/// `desired`'s status, with the window an S3 copy's resource already has where this node knows
/// less than the node that wrote it: every node reconciles the shared S3 resources, but only
/// the node that captured a chain knows when its end arrived, and a node whose listing of the
/// bucket's chains failed knows no window at all. So, for an S3 copy, a desired window without
/// an end time keeps the current one when the revisions are the same, and no desired window
/// keeps the current one (a chain goes only with its snapshot, and the resource with it).
/// Without this the nodes would rewrite each other's windows on every pass. A local copy's
/// resource has one writer, whose view is taken as it is.
fn kept_window(current: &SnapshotFile, desired: &SnapshotFile) -> Option<SnapshotFileStatus> {
    let mut status = desired.status.clone();
    let have = current
        .status
        .as_ref()
        .and_then(|s| s.point_in_time.as_ref());
    if desired.spec.s3.is_none() || have.is_none() {
        return status;
    }
    let wanted = status.as_ref().and_then(|s| s.point_in_time.as_ref());
    let keep = match (have, wanted) {
        (Some(_), None) => true,
        (Some(h), Some(w)) => {
            w.to.is_none() && (h.from_revision, h.to_revision) == (w.from_revision, w.to_revision)
        }
        _ => false,
    };
    if keep {
        status
            .get_or_insert_with(SnapshotFileStatus::default)
            .point_in_time = have.cloned();
    }
    status
}

/// `current` against `desired`; a desired spec without metadata accepts any (see
/// `merge_if_different`), so nodes that know less never fight nodes that know more.
fn spec_equivalent(current: &SnapshotFileSpec, desired: &SnapshotFileSpec) -> bool {
    let metadata = |s: &SnapshotFileSpec| s.metadata.clone().filter(|m| !m.is_empty());
    let (a, b) = (current, desired);
    a.snapshot_name == b.snapshot_name
        && a.node_name == b.node_name
        && a.location == b.location
        && (metadata(b).is_none() || metadata(a) == metadata(b))
        && a.s3 == b.s3
}

fn status_equivalent(a: Option<&SnapshotFileStatus>, b: Option<&SnapshotFileStatus>) -> bool {
    let empty = SnapshotFileStatus::default();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let size_same = match (&a.size, &b.size) {
        (Some(x), Some(y)) => match (parse_quantity(x), parse_quantity(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (x, y) => x == y,
    };
    let error_same = match (&a.error, &b.error) {
        (Some(x), Some(y)) => x.message == y.message && time_same(&x.time, &y.time),
        (x, y) => x == y,
    };
    // The last drill's verdict: a new one (or a first one) is an update.
    let verification_same = match (&a.verification, &b.verification) {
        (Some(x), Some(y)) => {
            x.result == y.result && x.message == y.message && time_same(&x.time, &y.time)
        }
        (x, y) => x == y,
    };
    // The point-in-time window: its end moves with every segment the capture writes.
    let window_same = match (&a.point_in_time, &b.point_in_time) {
        (Some(x), Some(y)) => {
            (x.from_revision, x.to_revision) == (y.from_revision, y.to_revision)
                && time_same(&x.from, &y.from)
                && time_same(&x.to, &y.to)
        }
        (x, y) => x == y,
    };
    size_same
        && error_same
        && verification_same
        && window_same
        && a.ready_to_use == b.ready_to_use
        && time_same(&a.creation_time, &b.creation_time)
}

fn time_same(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => match (parse_time(x), parse_time(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (x, y) => x == y,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
