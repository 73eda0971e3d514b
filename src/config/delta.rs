//! The delta capture keys: `etcd-snapshot-delta` (on/off), `etcd-snapshot-delta-period` (the
//! longest a segment stays open) and `etcd-snapshot-delta-max-size` (the size at which it is
//! closed at once), and `etcd-snapshot-delta-hashkv-interval` (how often a segment end records
//! etcd's keyspace hash). The size is read as text and checked here, like the retention sizes, so a
//! bad value is reported with its key and source.

use std::time::Duration;

use super::build::Parsed;
use super::resolve::ConfigError;
use super::retention::{SIZE_EXPECTED, parse_size};

pub const ENABLED: &str = "etcd-snapshot-delta";
pub const PERIOD: &str = "etcd-snapshot-delta-period";
pub const MAX_SIZE: &str = "etcd-snapshot-delta-max-size";
pub const HASHKV_INTERVAL: &str = "etcd-snapshot-delta-hashkv-interval";

/// The smallest and largest `etcd-snapshot-delta-max-size`.
pub const MIN_MAX_SIZE: u64 = 4 << 10;
pub const MAX_MAX_SIZE: u64 = 1 << 30;

/// Continuous capture of every change between full snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSettings {
    /// `etcd-snapshot-delta`.
    pub enabled: bool,
    /// `etcd-snapshot-delta-period`.
    pub period: Duration,
    /// `etcd-snapshot-delta-max-size`, in bytes.
    pub max_size: u64,
    /// `etcd-snapshot-delta-hashkv-interval`: zero records a hash at every segment end.
    pub hashkv_interval: Duration,
}

impl Default for DeltaSettings {
    /// The key table's defaults: off, 10 s, 64 MiB, a hash at every segment end.
    fn default() -> Self {
        Self {
            enabled: false,
            period: Duration::from_secs(10),
            max_size: 64 << 20,
            hashkv_interval: Duration::ZERO,
        }
    }
}

/// The settings; values `check_delta` refuses never get here, so the defaults stand in only
/// for a bug.
pub(super) fn settings(p: &Parsed) -> DeltaSettings {
    let default = DeltaSettings::default();
    DeltaSettings {
        enabled: p.flag(ENABLED).unwrap_or(default.enabled),
        period: p.duration(PERIOD).unwrap_or(default.period),
        max_size: p
            .text(MAX_SIZE)
            .and_then(|t| parse_size(&t).ok())
            .unwrap_or(default.max_size),
        hashkv_interval: p
            .duration(HASHKV_INTERVAL)
            .unwrap_or(default.hashkv_interval),
    }
}

/// The period must be above zero; the size a size within the bounds.
pub(super) fn check_delta(p: &Parsed, errors: &mut Vec<ConfigError>) {
    if p.duration(PERIOD).is_some_and(|d| d.is_zero()) {
        errors.push(p.error(PERIOD, "a duration above zero, such as 10s"));
    }
    if let Some(text) = p.text(MAX_SIZE) {
        let fits = parse_size(&text).is_ok_and(|n| (MIN_MAX_SIZE..=MAX_MAX_SIZE).contains(&n));
        if !fits {
            errors.push(p.error(MAX_SIZE, format!("{SIZE_EXPECTED}, from 4KiB to 1GiB")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::resolve_flags as run;

    #[test]
    fn defaults_are_off_ten_seconds_and_64_mib() {
        let r = run(&[]).unwrap();
        assert_eq!(r.config.snapshot.delta, DeltaSettings::default());
        let r = run(&[(ENABLED, "true"), (PERIOD, "2s"), (MAX_SIZE, "1MiB")]).unwrap();
        let delta = &r.config.snapshot.delta;
        assert!(delta.enabled);
        assert_eq!(delta.period, Duration::from_secs(2));
        assert_eq!(delta.max_size, 1 << 20);
    }

    #[test]
    fn bad_values_name_the_key_the_source_and_the_expectation() {
        for (key, bad, expected) in [
            (PERIOD, "0s", "above zero"),
            (MAX_SIZE, "lots", "from 4KiB to 1GiB"),
            (MAX_SIZE, "1KiB", "from 4KiB to 1GiB"),
            (MAX_SIZE, "2GiB", "from 4KiB to 1GiB"),
        ] {
            let text = run(&[(key, bad)]).err().unwrap().to_string();
            assert!(text.contains(&format!("--{key}")), "{text}");
            assert!(text.contains(bad), "{text}");
            assert!(text.contains(expected), "{text}");
        }
    }
}
