//! Prometheus metrics with RKE2's snapshot histogram names, plus our gauges.

/// Outcome label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
}

/// The registry and every metric we export.
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Self {
        todo!()
    }
    /// `etcd_snapshot_save_duration_seconds{status}`.
    pub fn observe_save(&self, status: Status, seconds: f64) {
        let _ = (status, seconds);
        todo!()
    }
    /// `etcd_snapshot_save_local_duration_seconds{status}`.
    pub fn observe_save_local(&self, status: Status, seconds: f64) {
        let _ = (status, seconds);
        todo!()
    }
    /// `etcd_snapshot_reconcile_local_duration_seconds{status}` (listing the local dir).
    pub fn observe_reconcile_local(&self, status: Status, seconds: f64) {
        let _ = (status, seconds);
        todo!()
    }
    /// `etcd_snapshot_last_success_timestamp_seconds`.
    pub fn set_last_success(&self, unix: i64) {
        let _ = unix;
        todo!()
    }
    /// `etcd_snapshot_count{storage="local"}`.
    pub fn set_snapshot_count(&self, count: u64) {
        let _ = count;
        todo!()
    }
    /// `etcd_snapshot_skipped_ticks_total`: cron ticks skipped because a save was running.
    pub fn inc_skipped_tick(&self) {
        todo!()
    }
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        todo!()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
