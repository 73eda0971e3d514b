//! The reconcile I/O: list this node's resources, plan, then create, update and delete them
//! against the apiserver, publishing Events for creations and deletions.
//!
//! Many servers reconcile the shared S3 resources at the same moment, so every write tolerates a
//! lost race: a create that meets an existing object turns into get + update, an update that
//! meets a newer version re-reads and retries (RKE2's backoff: 9 tries from 10 ms, factor 3,
//! 10 % jitter), and a delete guarded by the listed version skips an object someone rewrote.
//! Decisions stay in `plan`; this file only carries them out.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, PostParams, Preconditions};
use ::kube::runtime::events::Recorder;
use chrono::Utc;

use super::desired::{S3_STORAGE_NODE, desired_set};
use super::events::{self, EventKind};
use super::model::SnapshotFile;
use super::plan::{Change, merge_if_different, plan_reconcile};
use super::pruned;
use super::{ResourceError, Scope};
use crate::kube::crd::STORAGE_NODE_LABEL;
use crate::snapshot::SnapshotRecord;

/// Tries of one write before giving up on a conflict.
const STEPS: u32 = 9;
/// First pause between tries; each next one is three times longer.
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// What one reconcile did, by resource name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileOutcome {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// Events the apiserver did not accept (logged; the resource changes themselves stand).
    pub events_failed: usize,
}

/// Brings this node's `ETCDSnapshotFile` resources in line with `records` (everything a listing
/// returned; out-of-scope rows are ignored). `just_deleted` names the snapshot files the
/// operation that triggered this reconcile deleted, so their S3 resources go at once.
///
/// Every change is attempted; when some fail, the error counts them and carries the first.
pub async fn reconcile(
    client: &::kube::Client,
    scope: &Scope,
    records: &[SnapshotRecord],
    just_deleted: &[String],
) -> Result<ReconcileOutcome, ResourceError> {
    let api: Api<SnapshotFile> = Api::all(client.clone());
    let observed = list_in_scope(&api, scope).await?;
    let mut desired = desired_set(scope, records);
    pruned::fit_to_apiserver(&mut desired, pruned::dropped());
    let changes = plan_reconcile(&observed, &desired, just_deleted, Utc::now());
    let recorder = events::recorder(client, &scope.node_name);
    let total = changes.len();
    let mut outcome = ReconcileOutcome::default();
    let mut failures = Vec::new();
    for change in changes {
        if let Err(error) = apply_change(&api, &recorder, change, &mut outcome).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "failed to reconcile an ETCDSnapshotFile"
            );
            failures.push(error);
        }
    }
    match failures.len() {
        0 => Ok(outcome),
        failed => Err(ResourceError::Partial {
            failed,
            total,
            first: Box::new(failures.swap_remove(0)),
        }),
    }
}

/// `snapshot-storage-node in (<node>[, s3])`: the resources this node may change.
fn selector(scope: &Scope) -> String {
    let mut nodes = vec![scope.node_name.as_str()];
    if scope.s3.is_some() && scope.node_name != S3_STORAGE_NODE {
        nodes.push(S3_STORAGE_NODE);
    }
    format!("{STORAGE_NODE_LABEL} in ({})", nodes.join(","))
}

async fn list_in_scope(
    api: &Api<SnapshotFile>,
    scope: &Scope,
) -> Result<Vec<SnapshotFile>, ResourceError> {
    let selector = selector(scope);
    super::list_all(api, &selector)
        .await
        .map_err(|source| ResourceError::List { selector, source })
}

/// Creates or updates the resources of `records` only, deleting nothing: for failures the
/// caller knows of while the stores they concern cannot be listed (a save whose S3 settings
/// are unusable). The keep rules of the next full reconcile keep them for a day.
pub async fn upsert_records(
    client: &::kube::Client,
    node_name: &str,
    records: &[SnapshotRecord],
    s3: Option<&super::S3Spec>,
) -> Result<ReconcileOutcome, ResourceError> {
    let api: Api<SnapshotFile> = Api::all(client.clone());
    let recorder = events::recorder(client, node_name);
    let mut outcome = ReconcileOutcome::default();
    for record in records {
        let mut desired = [super::desired::desired_resource(record, s3)];
        pruned::fit_to_apiserver(&mut desired, pruned::dropped());
        let [desired] = desired;
        apply_change(&api, &recorder, Change::Create(desired), &mut outcome).await?;
    }
    Ok(outcome)
}

async fn apply_change(
    api: &Api<SnapshotFile>,
    recorder: &Recorder,
    change: Change,
    outcome: &mut ReconcileOutcome,
) -> Result<(), ResourceError> {
    let name = change.name().to_string();
    let event = match change {
        Change::Create(desired) => {
            let written = upsert(api, &desired, None).await;
            record_write(outcome, name, written.map_err(|e| ("create", e)))?
        }
        Change::Update(merged) => {
            let written = upsert(api, &merged, Some(merged.clone())).await;
            record_write(outcome, name, written.map_err(|e| ("update", e)))?
        }
        Change::Delete(current) => match delete(api, &current).await {
            Ok(true) => {
                tracing::info!(resource = %name, "deleted ETCDSnapshotFile");
                outcome.deleted.push(name);
                Some((EventKind::Deleted, current))
            }
            Ok(false) => None,
            Err(source) => return Err(apply_error("delete", name, source)),
        },
    };
    if let Some((kind, resource)) = event
        && !events::publish(recorder, kind, &resource).await
    {
        outcome.events_failed += 1;
    }
    Ok(())
}

/// Notes a create-or-update in the outcome; a creation yields the event to publish.
fn record_write(
    outcome: &mut ReconcileOutcome,
    name: String,
    written: Result<Written, (&'static str, ::kube::Error)>,
) -> Result<Option<(EventKind, SnapshotFile)>, ResourceError> {
    match written {
        Ok(Written::Created(resource)) => {
            tracing::info!(resource = %name, "created ETCDSnapshotFile");
            outcome.created.push(name);
            Ok(Some((EventKind::for_created(&resource), *resource)))
        }
        Ok(Written::Updated) => {
            tracing::debug!(resource = %name, "updated ETCDSnapshotFile");
            outcome.updated.push(name);
            Ok(None)
        }
        Ok(Written::Unchanged) => Ok(None),
        Err((action, source)) => Err(apply_error(action, name, source)),
    }
}

fn apply_error(action: &'static str, name: String, source: ::kube::Error) -> ResourceError {
    ResourceError::Apply {
        action,
        name,
        source,
    }
}

/// What a create-or-update ended up doing.
enum Written {
    Created(Box<SnapshotFile>),
    Updated,
    Unchanged,
}

/// Creates `desired`, or replaces the existing object with `desired` merged onto it. `replace`
/// is a ready-merged object to try first (it carries the resourceVersion it was merged onto).
async fn upsert(
    api: &Api<SnapshotFile>,
    desired: &SnapshotFile,
    mut replace: Option<SnapshotFile>,
) -> Result<Written, ::kube::Error> {
    let params = PostParams::default();
    let name = desired.name();
    let mut attempt = 0;
    loop {
        let result = match &replace {
            None => api
                .create(&params, &without_server_fields(desired))
                .await
                .map(|r| {
                    pruned::note_reply(desired, &r);
                    Written::Created(Box::new(r))
                }),
            Some(merged) => api.replace(name, &params, merged).await.map(|r| {
                pruned::note_reply(merged, &r);
                Written::Updated
            }),
        };
        match result {
            Err(::kube::Error::Api(status)) if lost_race(&status) && attempt + 1 < STEPS => {
                tokio::time::sleep(pause(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
        // Someone else wrote the object since we looked: start again from its current state.
        replace = match api.get_opt(name).await? {
            None => None,
            Some(current) => match merge_if_different(&current, desired) {
                None => return Ok(Written::Unchanged),
                merged => merged,
            },
        };
    }
}

/// `resource` as a new object: an update that lost the object to a delete re-creates it, and
/// the apiserver refuses a create that carries the old object's version or uid.
fn without_server_fields(resource: &SnapshotFile) -> SnapshotFile {
    let mut fresh = resource.clone();
    let meta = &mut fresh.metadata;
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.deletion_timestamp = None;
    meta.managed_fields = None;
    meta.generation = None;
    fresh
}

/// Deletes `current` if it is still the version that was listed. `Ok(false)` when it is already
/// gone or was rewritten meanwhile (the next reconcile decides again).
pub(super) async fn delete(
    api: &Api<SnapshotFile>,
    current: &SnapshotFile,
) -> Result<bool, ::kube::Error> {
    let params = DeleteParams::default().preconditions(Preconditions {
        resource_version: current.metadata.resource_version.clone(),
        uid: current.metadata.uid.clone(),
    });
    match api.delete(current.name(), &params).await {
        Ok(_) => Ok(true),
        Err(::kube::Error::Api(status)) if is_not_found(&status) || lost_race(&status) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A 409: the object exists already (create) or changed since it was read (update, delete).
/// Judged by the code, since not every apiserver sends the reason.
fn lost_race(status: &::kube::core::Status) -> bool {
    status.code == 409 || status.reason == "Conflict" || status.reason == "AlreadyExists"
}

fn is_not_found(status: &::kube::core::Status) -> bool {
    status.code == 404 || status.reason == "NotFound"
}

/// RKE2's backoff: 10 ms × 3^attempt, plus up to 10 % jitter so racing nodes spread out.
fn pause(attempt: u32) -> Duration {
    let base = FIRST_PAUSE * 3u32.pow(attempt);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = (random % 1000) as f64 / 10_000.0;
    base.mul_f64(1.0 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::S3Spec;

    #[test]
    fn selector_covers_node_and_s3_when_listed() {
        let mut scope = Scope {
            node_name: "n1".into(),
            s3: None,
        };
        assert_eq!(
            selector(&scope),
            "etcd.rke2.cattle.io/snapshot-storage-node in (n1)"
        );
        scope.s3 = Some(S3Spec::default());
        assert_eq!(
            selector(&scope),
            "etcd.rke2.cattle.io/snapshot-storage-node in (n1,s3)"
        );
    }

    #[test]
    fn pauses_grow_threefold_with_bounded_jitter() {
        for attempt in 0..STEPS - 1 {
            let base = FIRST_PAUSE * 3u32.pow(attempt);
            let got = pause(attempt);
            assert!(
                got >= base && got <= base.mul_f64(1.1),
                "{attempt}: {got:?}"
            );
        }
    }
}
