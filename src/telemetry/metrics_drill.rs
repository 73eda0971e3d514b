//! The restore-drill metrics: when each storage last had a copy pass a drill, how long drills
//! take, and how many failed (`manifests/prometheusrule.yaml` alerts on the failures).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Metrics, StorageLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DrillLabels {
    storage: &'static str,
    /// `passed`, `failed` or `cannot-verify`.
    result: &'static str,
}

/// 1 s doubling 13 times (up to 8192 s): a drill of a small snapshot takes seconds, one of a
/// large snapshot restores and rebuilds an index for minutes.
fn drill_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

pub(super) struct DrillMetrics {
    last_verified: Family<StorageLabels, Gauge>,
    duration: Family<DrillLabels, Histogram, fn() -> Histogram>,
    failures: Family<StorageLabels, Counter>,
}

impl DrillMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let last_verified = Family::<StorageLabels, Gauge>::default();
        registry.register(
            "etcd_snapshot_last_verified_timestamp_seconds",
            "Unix time of the last restore drill a snapshot copy passed, by storage",
            last_verified.clone(),
        );
        let duration = Family::new_with_constructor(drill_histogram as fn() -> Histogram);
        registry.register(
            "etcd_snapshot_drill_duration_seconds",
            "Time taken by a restore drill of one snapshot copy, by storage and result",
            duration.clone(),
        );
        let failures = Family::<StorageLabels, Counter>::default();
        registry.register(
            "etcd_snapshot_drill_failures",
            "Restore drills whose snapshot copy failed a check, by storage",
            failures.clone(),
        );
        Self {
            last_verified,
            duration,
            failures,
        }
    }
}

impl Metrics {
    /// `etcd_snapshot_drill_duration_seconds{storage,result}`.
    pub fn observe_drill(&self, storage: &'static str, result: &'static str, seconds: f64) {
        self.drill
            .duration
            .get_or_create(&DrillLabels { storage, result })
            .observe(seconds);
    }

    /// `etcd_snapshot_drill_failures_total{storage}`.
    pub fn inc_drill_failure(&self, storage: &'static str) {
        self.drill
            .failures
            .get_or_create(&StorageLabels { storage })
            .inc();
    }

    /// `etcd_snapshot_last_verified_timestamp_seconds{storage}`: a drill passed at `unix`.
    pub fn set_last_verified(&self, storage: &'static str, unix: i64) {
        self.drill
            .last_verified
            .get_or_create(&StorageLabels { storage })
            .set(unix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_metrics_are_exported_by_storage_and_result() {
        let m = Metrics::new();
        m.observe_drill("local", "failed", 3.0);
        m.inc_drill_failure("local");
        m.inc_drill_failure("local");
        m.set_last_verified("s3", 1_700_000_000);
        let text = m.render();
        assert!(
            text.contains("etcd_snapshot_drill_failures_total{storage=\"local\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "etcd_snapshot_last_verified_timestamp_seconds{storage=\"s3\"} 1700000000"
            ),
            "{text}"
        );
        let bucket = text.lines().find(|l| {
            l.starts_with("etcd_snapshot_drill_duration_seconds_bucket{")
                && l.contains("le=\"4.0\"")
                && l.contains("result=\"failed\"")
                && l.contains("storage=\"local\"")
        });
        assert!(bucket.is_some_and(|l| l.ends_with(" 1")), "{text}");
    }
}
