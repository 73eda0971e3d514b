//! The delta capture's metrics: the recovery point (how much would be lost if the node died
//! now), segments and bytes written, and chain re-anchors.
//!
//! The recovery point is computed when scraped from the time the persisted chain was last
//! known complete: when a segment is written, the time its last events arrived; when nothing
//! is pending and etcd confirms the watch is current (a progress notification), that time. An
//! idle cluster therefore keeps a small recovery point, and a stuck capture shows a growing one.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Registered with the process's other metrics (`Metrics::delta`).
#[derive(Default)]
pub struct DeltaMetrics {
    /// Unix milliseconds when the persisted chain was last complete; 0 before that.
    complete_at_ms: AtomicI64,
    recovery_point: Gauge<f64, AtomicU64>,
    last_revision: Gauge,
    segments: Counter,
    bytes: Counter,
    reanchors: Counter,
    s3_uploads: Counter,
    s3_upload_failures: Counter,
    s3_pending: Gauge,
}

impl DeltaMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "etcd_snapshot_delta_recovery_point_seconds",
            "Seconds since the delta chain last held every change etcd had made (0 until the capture first persists)",
            metrics.recovery_point.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_last_revision",
            "Last etcd revision persisted in a delta segment",
            metrics.last_revision.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_segments",
            "Delta segments written",
            metrics.segments.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_bytes",
            "Bytes of delta segments written",
            metrics.bytes.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_reanchors",
            "Delta chains ended because etcd compacted past the watch (a full snapshot re-anchors the next chain)",
            metrics.reanchors.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_s3_uploads",
            "Delta segments uploaded to S3",
            metrics.s3_uploads.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_s3_upload_failures",
            "Failed delta segment upload attempts: a segment's upload after its retries, or a pass that could not reach or list S3 while segments were pending; retried on a later pass",
            metrics.s3_upload_failures.clone(),
        );
        registry.register(
            "etcd_snapshot_delta_s3_pending_segments",
            "Local delta segments not yet in S3 after the last upload pass",
            metrics.s3_pending.clone(),
        );
        metrics
    }

    /// A segment reached S3.
    pub fn s3_uploaded(&self) {
        self.s3_uploads.inc();
    }

    /// A segment upload failed (its retries included), or a pass with segments pending could
    /// not reach or list S3.
    pub fn s3_upload_failed(&self) {
        self.s3_upload_failures.inc();
    }

    /// Local segments still missing from S3 after an upload pass.
    pub fn set_s3_pending(&self, count: u64) {
        self.s3_pending
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A segment up to `revision` of `bytes` bytes was persisted, holding every change up to
    /// `complete_at_ms`.
    pub fn segment_written(&self, revision: i64, bytes: u64, complete_at_ms: i64) {
        self.segments.inc();
        self.bytes.inc_by(bytes);
        self.last_revision.set(revision);
        self.set_complete_at(complete_at_ms);
    }

    /// Nothing is pending and etcd confirmed the watch current at `at_ms`.
    pub fn caught_up(&self, at_ms: i64) {
        self.set_complete_at(at_ms);
    }

    /// A compaction ended a chain.
    pub fn reanchored(&self) {
        self.reanchors.inc();
    }

    fn set_complete_at(&self, at_ms: i64) {
        self.complete_at_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Sets the recovery point gauge for a scrape at `now_ms`.
    pub(super) fn update(&self, now_ms: i64) {
        let at = self.complete_at_ms.load(Ordering::Relaxed);
        if at > 0 {
            let lag_ms = now_ms.saturating_sub(at).max(0);
            self.recovery_point.set(lag_ms as f64 / 1000.0);
        }
    }

    /// The recovery point gauge's value after `update` (tests).
    #[cfg(test)]
    pub(super) fn recovery_point(&self) -> f64 {
        self.recovery_point.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_point_is_measured_from_the_last_complete_time_and_never_goes_back() {
        let mut registry = Registry::default();
        let m = DeltaMetrics::register(&mut registry);
        m.update(5_000);
        assert_eq!(m.recovery_point(), 0.0, "unset before anything persisted");
        m.segment_written(17, 300, 10_000);
        m.update(12_500);
        assert_eq!(m.recovery_point(), 2.5);
        // A late report of an older time does not move the point back.
        m.caught_up(9_000);
        m.update(12_500);
        assert_eq!(m.recovery_point(), 2.5);
        m.caught_up(12_000);
        m.update(12_500);
        assert_eq!(m.recovery_point(), 0.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "etcd_snapshot_delta_segments_total 1",
            "etcd_snapshot_delta_bytes_total 300",
            "etcd_snapshot_delta_last_revision 17",
            "etcd_snapshot_delta_recovery_point_seconds 0.5",
            "etcd_snapshot_delta_s3_uploads_total 0",
            "etcd_snapshot_delta_s3_upload_failures_total 0",
            "etcd_snapshot_delta_s3_pending_segments 0",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
