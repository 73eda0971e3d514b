//! Delta segments to S3: one upload pass copies every published local segment that the bucket
//! lacks (`delta::upload` decides which) to `<folder>/.deltas/<snapshot>/.metadata/<segment>`,
//! each with the snapshot uploads' retries and object metadata. The segment uploader
//! (`scheduler::segments`) runs a pass every `etcd-snapshot-delta-period`, so a new segment
//! reaches S3 within about one period, and whatever an outage, a restart or S3 being switched
//! on later left behind goes on the next pass that reaches S3 (the backfill is the same pass).
//!
//! The capture never waits for S3: it writes locally, and this pass only reads its files. What
//! is in S3 is remembered between passes (`SegmentsInS3`), so a pass lists a chain's objects
//! once, not every period; a failed upload forgets nothing but ends the pass (the next one
//! retries), and a new S3 session or configuration starts from a fresh listing.
//!
//! Runs outside the writer lock: a `delete` or retention removing a chain while a segment of it
//! is being uploaded can leave that object behind in S3; retention runs that delete remove such
//! orphans (`chains::heal_s3_orphans`).

use std::collections::BTreeSet;

use super::{FailedItem, Operations, error_chain, replicate};
use crate::config::DesiredConfig;
use crate::delta::files::SegmentFile;
use crate::delta::upload::{
    InS3, LocalChain, chains_to_list, file_name, local_chains, missing, plan_uploads,
};
use crate::snapshot::backfill::plan_backfill;
use crate::store::LocalStore;
use crate::store::s3::retry::RetryPolicy;
use crate::store::s3::{ObjectMetadata, S3Store};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentUploadReport {
    /// Uploaded segments, as `<snapshot>/<segment file name>`.
    pub uploaded: Vec<String>,
    /// What failed: a segment's upload, or reaching or listing S3 (named `S3`).
    pub failed: Vec<FailedItem>,
    /// Local segments still missing from S3 after the pass.
    pub pending: usize,
}

/// The uploader's state between passes: its S3 session and what it knows is in the bucket.
#[derive(Debug, Default)]
pub struct SegmentsInS3 {
    session: Option<S3Store>,
    known: InS3,
}

impl SegmentsInS3 {
    /// Forgets the session and the listing (a configuration change: maybe another bucket).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

impl Operations {
    /// One upload pass (see the module doc); does nothing when S3 is off or there are no
    /// segments. Sets the pending-segments gauge.
    pub async fn upload_segments(
        &self,
        config: &DesiredConfig,
        state: &mut SegmentsInS3,
    ) -> SegmentUploadReport {
        let mut report = SegmentUploadReport::default();
        let Some(s3) = &config.s3 else {
            self.metrics.delta().set_s3_pending(0);
            return report;
        };
        let chains = match local_chains(&config.snapshot.dir) {
            Ok(chains) => chains,
            Err(e) => {
                report.failed.push(s3_failure(error_chain(&e)));
                return report;
            }
        };
        let unknown = missing(&chains, &state.known).len();
        if unknown == 0 {
            self.metrics.delta().set_s3_pending(0);
            return report;
        }
        report.pending = unknown;
        let passed = self
            .upload_pass(config, s3, &chains, state, &mut report)
            .await;
        if let Err(message) = passed {
            // Reconnect next time: the session may be what failed.
            state.session = None;
            self.metrics.delta().s3_upload_failed();
            report.failed.push(s3_failure(message));
        }
        self.metrics.delta().set_s3_pending(report.pending as u64);
        report
    }

    /// Connects (or reuses the session), lists what is needed and uploads the plan, stopping at
    /// the first failed upload; errors come back as text.
    async fn upload_pass(
        &self,
        config: &DesiredConfig,
        s3: &crate::config::desired::S3Settings,
        chains: &[LocalChain],
        state: &mut SegmentsInS3,
        report: &mut SegmentUploadReport,
    ) -> Result<(), String> {
        let effective = self.effective(config).await;
        let s3 = effective.s3.as_ref().unwrap_or(s3);
        let remote = match state.session.take() {
            Some(remote) => remote,
            None => {
                state.known.clear();
                replicate::connect(&self.kube, &effective, s3)
                    .await
                    .map_err(|e| error_chain(&e))?
            }
        };
        let snapshots = refresh_known(&remote, chains, &mut state.known).await?;
        let awaited = awaited_snapshots(config, s3, &snapshots);
        let plan = plan_uploads(chains, &state.known, &snapshots, &awaited);
        report.pending = plan.upload.len() + plan.waiting;
        let metadata = replicate::object_metadata(&effective, &remote);
        for (anchor, segment) in plan.upload {
            if !segment.path.exists() {
                // Its chain was removed meanwhile (delete, retention).
                report.pending -= 1;
                continue;
            }
            if !self.send(&remote, anchor, segment, &metadata, report).await {
                break;
            }
            report.pending -= 1;
            state
                .known
                .entry(anchor.to_string())
                .or_default()
                .insert(file_name(segment).to_string(), segment.size);
        }
        state.session = Some(remote);
        Ok(())
    }

    /// Uploads one segment with retries; false (logged, counted, reported) when it failed.
    async fn send(
        &self,
        remote: &S3Store,
        anchor: &str,
        segment: &SegmentFile,
        metadata: &ObjectMetadata,
        report: &mut SegmentUploadReport,
    ) -> bool {
        let name = file_name(segment);
        let policy = RetryPolicy::default();
        let sent = remote
            .upload_segment(&segment.path, anchor, name, metadata, policy)
            .await;
        match sent {
            Ok(_) => {
                self.metrics.delta().s3_uploaded();
                report.uploaded.push(format!("{anchor}/{name}"));
                true
            }
            Err(e) => {
                self.metrics.delta().s3_upload_failed();
                tracing::warn!(snapshot = %anchor, segment = %name, error = %error_chain(&e), "failed to upload a delta segment to S3; it is retried on the next pass");
                report.failed.push(FailedItem {
                    name: format!("{anchor}/{name}"),
                    message: error_chain(&e),
                });
                false
            }
        }
    }
}

/// Lists the bucket's snapshots, forgets the chains whose snapshot left (their objects went
/// with it), and lists each chain with a missing segment that was not listed yet; returns the
/// snapshot names.
async fn refresh_known(
    remote: &S3Store,
    chains: &[LocalChain],
    known: &mut InS3,
) -> Result<BTreeSet<String>, String> {
    let snapshots: BTreeSet<String> = remote
        .list()
        .await
        .map_err(|e| error_chain(&e))?
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    known.retain(|anchor, _| snapshots.contains(anchor));
    let gaps = missing(chains, known);
    for anchor in chains_to_list(&gaps, known, &snapshots) {
        let listed = remote
            .list_chain(anchor)
            .await
            .map_err(|e| error_chain(&e))?;
        let names = listed.into_iter().map(|o| (o.name, o.size)).collect();
        known.insert(anchor.to_string(), names);
    }
    Ok(snapshots)
}

/// The local snapshots the reconcile's backfill is to copy to S3 (as `backfill` plans it): their
/// chains wait for them. Empty when the snapshot dir cannot be listed.
fn awaited_snapshots(
    config: &DesiredConfig,
    s3: &crate::config::desired::S3Settings,
    in_s3: &BTreeSet<String>,
) -> BTreeSet<String> {
    let dir = &config.snapshot.dir;
    let listed = LocalStore::open(dir, &config.node_name, false).and_then(|s| s.list());
    let Ok(local) = listed else {
        return BTreeSet::new();
    };
    let local: Vec<String> = local.into_iter().map(|r| r.file_name).collect();
    let remote: Vec<String> = in_s3.iter().cloned().collect();
    let policy = super::retain::s3_policy(s3);
    let now = crate::store::local::now_unix();
    plan_backfill(&local, &remote, &config.node_name, &policy, now)
        .into_iter()
        .collect()
}

fn s3_failure(message: String) -> FailedItem {
    FailedItem {
        name: "S3".into(),
        message,
    }
}
