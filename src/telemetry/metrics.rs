//! Prometheus metrics with RKE2's snapshot histogram names, plus our gauges and counter.
//!
//! Owns the registry and the text exposition only; it never decides when something is
//! observed (callers time their own work) and never serves HTTP (the API server does).
//! Metrics are registered without units so the exposition names are exactly RKE2's.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::exposition::{self, Format};

#[path = "metrics_drill.rs"]
mod drill;
#[path = "metrics_encryption.rs"]
mod encryption;
use encryption::Encryption;

/// Outcome label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
}

impl Status {
    /// `Success` for `Ok`, `Error` for `Err`: saves a match at every call site.
    pub fn of<T, E>(result: &Result<T, E>) -> Self {
        if result.is_ok() {
            Status::Success
        } else {
            Status::Error
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    storage: &'static str,
}

type DurationFamily = Family<StatusLabels, Histogram, fn() -> Histogram>;

/// RKE2's buckets: 0.008 s doubling 15 times (up to 131.072 s).
fn rke2_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.008, 2.0, 15))
}

/// The registry and every metric we export.
pub struct Metrics {
    registry: Registry,
    save: DurationFamily,
    save_local: DurationFamily,
    save_s3: DurationFamily,
    reconcile: DurationFamily,
    reconcile_local: DurationFamily,
    reconcile_s3: DurationFamily,
    last_success: Gauge,
    snapshot_count: Family<StorageLabels, Gauge>,
    skipped_ticks: Counter,
    freshness: Freshness,
    delta: super::delta_metrics::DeltaMetrics,
    drill: drill::DrillMetrics,
    encryption: Encryption,
}

/// The newest snapshot times per storage; their ages are computed when scraped, so a gauge
/// never shows the age it had at the last listing.
#[derive(Default)]
struct Freshness {
    newest: std::sync::Mutex<std::collections::BTreeMap<&'static str, [Option<i64>; 2]>>,
    newest_age: Family<StorageLabels, Gauge>,
    newest_verified_age: Family<StorageLabels, Gauge>,
    schedule_period: Gauge,
}

impl Metrics {
    /// A fresh registry with every metric registered (each process has one, shared by `Arc`).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let mut duration = |name: &str, help: &str| {
            let family = DurationFamily::new_with_constructor(rke2_histogram);
            registry.register(name, help, family.clone());
            family
        };
        let save = duration(
            "etcd_snapshot_save_duration_seconds",
            "Total time taken to complete the etcd snapshot process",
        );
        let save_local = duration(
            "etcd_snapshot_save_local_duration_seconds",
            "Total time taken to save a local snapshot file",
        );
        let save_s3 = duration(
            "etcd_snapshot_save_s3_duration_seconds",
            "Total time taken to upload a snapshot file to S3",
        );
        let reconcile = duration(
            "etcd_snapshot_reconcile_duration_seconds",
            "Total time taken to sync the list of etcd snapshots",
        );
        let reconcile_local = duration(
            "etcd_snapshot_reconcile_local_duration_seconds",
            "Total time taken to list local snapshot files",
        );
        let reconcile_s3 = duration(
            "etcd_snapshot_reconcile_s3_duration_seconds",
            "Total time taken to list S3 snapshot files",
        );
        let last_success = Gauge::default();
        registry.register(
            "etcd_snapshot_last_success_timestamp_seconds",
            "Unix time of the last successful snapshot save",
            last_success.clone(),
        );
        let snapshot_count = Family::<StorageLabels, Gauge>::default();
        registry.register(
            "etcd_snapshot_files",
            "Number of snapshot files present, by storage",
            snapshot_count.clone(),
        );
        let freshness = Freshness::default();
        registry.register(
            "etcd_snapshot_newest_age_seconds",
            "Age of the newest snapshot, by storage (absent when there is none)",
            freshness.newest_age.clone(),
        );
        registry.register(
            "etcd_snapshot_newest_verified_age_seconds",
            "Age of the newest verified snapshot, by storage (absent when there is none)",
            freshness.newest_verified_age.clone(),
        );
        registry.register(
            "etcd_snapshot_schedule_period_seconds",
            "Gap between the next two scheduled snapshots (0 when scheduled snapshots are off)",
            freshness.schedule_period.clone(),
        );
        let encryption = Encryption::register(&mut registry);
        let skipped_ticks = Counter::default();
        registry.register(
            "etcd_snapshot_skipped_ticks",
            "Scheduled snapshots skipped because the previous one was still running",
            skipped_ticks.clone(),
        );
        let delta = super::delta_metrics::DeltaMetrics::register(&mut registry);
        let drill = drill::DrillMetrics::register(&mut registry);
        Self {
            registry,
            save,
            save_local,
            save_s3,
            reconcile,
            reconcile_local,
            reconcile_s3,
            last_success,
            snapshot_count,
            skipped_ticks,
            freshness,
            delta,
            drill,
            encryption,
        }
    }

    /// The delta capture's metrics.
    pub fn delta(&self) -> &super::delta_metrics::DeltaMetrics {
        &self.delta
    }

    /// The newest snapshot time (`any`) and the newest verified one in `storage` (`local`,
    /// `s3`), as last listed; None removes the series.
    pub fn set_newest(&self, storage: &'static str, any: Option<i64>, verified: Option<i64>) {
        if let Ok(mut newest) = self.freshness.newest.lock() {
            newest.insert(storage, [any, verified]);
        }
    }

    /// Only the newest snapshot time of `storage`, keeping its newest verified time (an S3
    /// listing knows the verdicts only once each object's metadata is read).
    pub fn set_newest_any(&self, storage: &'static str, any: Option<i64>) {
        if let Ok(mut newest) = self.freshness.newest.lock() {
            newest.entry(storage).or_insert([None, None])[0] = any;
        }
    }

    /// `etcd_snapshot_schedule_period_seconds`; None when nothing is scheduled.
    pub fn set_schedule_period(&self, period: Option<std::time::Duration>) {
        let secs = period.map_or(0, |p| i64::try_from(p.as_secs()).unwrap_or(i64::MAX));
        self.freshness.schedule_period.set(secs);
    }

    /// Sets the age gauges from the newest times at `now_unix` (a time from the future has
    /// age 0).
    fn update_ages(&self, now_unix: i64) {
        let Ok(newest) = self.freshness.newest.lock() else {
            return;
        };
        let gauges = [
            &self.freshness.newest_age,
            &self.freshness.newest_verified_age,
        ];
        for (storage, times) in newest.iter() {
            let labels = StorageLabels { storage };
            for (gauge, time) in gauges.iter().zip(times) {
                match time {
                    Some(t) => {
                        gauge
                            .get_or_create(&labels)
                            .set(now_unix.saturating_sub(*t).max(0));
                    }
                    None => {
                        gauge.remove(&labels);
                    }
                }
            }
        }
    }

    fn observe(family: &DurationFamily, status: Status, seconds: f64) {
        family
            .get_or_create(&StatusLabels {
                status: status.label(),
            })
            .observe(seconds);
    }

    /// `etcd_snapshot_save_duration_seconds{status}`.
    pub fn observe_save(&self, status: Status, seconds: f64) {
        Self::observe(&self.save, status, seconds);
    }
    /// `etcd_snapshot_save_local_duration_seconds{status}`.
    pub fn observe_save_local(&self, status: Status, seconds: f64) {
        Self::observe(&self.save_local, status, seconds);
    }
    /// `etcd_snapshot_save_s3_duration_seconds{status}` (S3 client setup failure or upload).
    pub fn observe_save_s3(&self, status: Status, seconds: f64) {
        Self::observe(&self.save_s3, status, seconds);
    }
    /// `etcd_snapshot_reconcile_duration_seconds{status}` (one whole reconcile pass).
    pub fn observe_reconcile(&self, status: Status, seconds: f64) {
        Self::observe(&self.reconcile, status, seconds);
    }
    /// `etcd_snapshot_reconcile_local_duration_seconds{status}` (listing the local dir).
    pub fn observe_reconcile_local(&self, status: Status, seconds: f64) {
        Self::observe(&self.reconcile_local, status, seconds);
    }
    /// `etcd_snapshot_reconcile_s3_duration_seconds{status}` (S3 setup failure or listing).
    pub fn observe_reconcile_s3(&self, status: Status, seconds: f64) {
        Self::observe(&self.reconcile_s3, status, seconds);
    }
    /// `etcd_snapshot_last_success_timestamp_seconds`.
    pub fn set_last_success(&self, unix: i64) {
        self.last_success.set(unix);
    }
    /// `etcd_snapshot_files{storage="local"}`.
    pub fn set_snapshot_count(&self, count: u64) {
        self.set_count("local", count);
    }
    /// `etcd_snapshot_files{storage="s3"}`: this cluster's folder, as last listed.
    pub fn set_s3_snapshot_count(&self, count: u64) {
        self.set_count("s3", count);
    }
    /// `etcd_snapshot_files{storage="s3-pending"}`: local snapshots whose copy to S3 failed and
    /// has not been made up by a reconcile yet. Alert when this stays above zero.
    pub fn set_pending_upload_count(&self, count: u64) {
        self.set_count("s3-pending", count);
    }
    fn set_count(&self, storage: &'static str, count: u64) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.snapshot_count
            .get_or_create(&StorageLabels { storage })
            .set(count);
    }
    /// `etcd_snapshot_skipped_ticks_total` (a counter family named `etcd_snapshot_skipped_ticks`
    /// in OpenMetrics): a scheduled tick found a snapshot still running.
    pub fn inc_skipped_tick(&self) {
        self.skipped_ticks.inc();
    }
    /// Prometheus text format 0.0.4 (what `/metrics` serves unless OpenMetrics is asked for).
    pub fn render(&self) -> String {
        self.render_as(Format::Prometheus)
    }
    /// The exposition in `format`; see `telemetry::exposition` for why there are two.
    pub fn render_as(&self, format: Format) -> String {
        let now = chrono::Utc::now();
        self.update_ages(now.timestamp());
        self.delta.update(now.timestamp_millis());
        let mut out = String::new();
        // Writing into a String cannot fail; encoding errors would only come from the writer.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out.push_str("# EOF\n");
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => exposition::to_prometheus_text(&out),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `series` (name and labels exactly as rendered) in the text `text`.
    pub(super) fn sample_value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    #[test]
    fn render_uses_rke2_names_labels_and_buckets() {
        let m = Metrics::new();
        m.observe_save(Status::Success, 0.010);
        m.observe_save(Status::Error, 200.0);
        m.observe_save_local(Status::Success, 0.5);
        m.observe_save_s3(Status::Error, 1.0);
        m.observe_reconcile(Status::Success, 0.001);
        m.observe_reconcile_local(Status::Success, 0.002);
        m.observe_reconcile_s3(Status::Success, 0.003);
        m.set_last_success(1_700_000_000);
        m.set_snapshot_count(7);
        m.inc_skipped_tick();
        m.inc_skipped_tick();
        let text = m.render();

        for name in [
            "etcd_snapshot_save_duration_seconds",
            "etcd_snapshot_save_local_duration_seconds",
            "etcd_snapshot_save_s3_duration_seconds",
            "etcd_snapshot_reconcile_duration_seconds",
            "etcd_snapshot_reconcile_local_duration_seconds",
            "etcd_snapshot_reconcile_s3_duration_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} histogram\n")),
                "{name} missing in:\n{text}"
            );
        }
        let bucket = |status: &str, le: &str| {
            sample_value(
                &text,
                &format!(
                    "etcd_snapshot_save_duration_seconds_bucket{{le=\"{le}\",status=\"{status}\"}}"
                ),
            )
        };
        // 0.010 s falls in the second bucket (le 0.016), not the first.
        assert_eq!(bucket("success", "0.008").as_deref(), Some("0"));
        assert_eq!(bucket("success", "0.016").as_deref(), Some("1"));
        assert_eq!(bucket("success", "131.072").as_deref(), Some("1"));
        // 200 s is beyond the last finite bound.
        assert_eq!(bucket("error", "131.072").as_deref(), Some("0"));
        assert_eq!(bucket("error", "+Inf").as_deref(), Some("1"));
        let bounds = text
            .lines()
            .filter(|l| {
                l.starts_with("etcd_snapshot_save_duration_seconds_bucket{")
                    && l.contains("status=\"success\"")
            })
            .count();
        assert_eq!(bounds, 16, "15 finite buckets plus +Inf:\n{text}");

        assert_eq!(
            sample_value(&text, "etcd_snapshot_last_success_timestamp_seconds").as_deref(),
            Some("1700000000")
        );
        assert_eq!(
            sample_value(&text, "etcd_snapshot_files{storage=\"local\"}").as_deref(),
            Some("7")
        );
        assert_eq!(
            sample_value(&text, "etcd_snapshot_skipped_ticks_total").as_deref(),
            Some("2")
        );
        assert!(!text.contains("# EOF"), "0.0.4 text must not end in # EOF");
        assert!(
            text.contains("# TYPE etcd_snapshot_skipped_ticks_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn status_of_result() {
        assert_eq!(Status::of::<(), ()>(&Ok(())), Status::Success);
        assert_eq!(Status::of::<(), ()>(&Err(())), Status::Error);
    }

    #[test]
    fn ages_are_computed_when_scraped_and_absent_without_a_snapshot() {
        let m = Metrics::new();
        let now = chrono::Utc::now().timestamp();
        m.set_newest("local", Some(now - 3_600), Some(now - 7_200));
        m.set_newest("s3", None, None);
        m.set_schedule_period(Some(std::time::Duration::from_secs(43_200)));
        let text = m.render();
        let age = |series: &str| -> i64 { sample_value(&text, series).unwrap().parse().unwrap() };
        let local = age("etcd_snapshot_newest_age_seconds{storage=\"local\"}");
        assert!((3_600..3_700).contains(&local), "{local}");
        let verified = age("etcd_snapshot_newest_verified_age_seconds{storage=\"local\"}");
        assert!((7_200..7_300).contains(&verified), "{verified}");
        assert!(
            !text.contains("storage=\"s3\""),
            "no S3 snapshot, no S3 series:\n{text}"
        );
        assert_eq!(age("etcd_snapshot_schedule_period_seconds"), 43_200);
        // A later listing without snapshots removes the series.
        m.set_newest("local", None, None);
        assert!(!m.render().contains("etcd_snapshot_newest_age_seconds{"));
    }
}
