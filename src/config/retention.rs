//! The retention policy keys: `etcd-snapshot-retention-<rule>` for the local dir and
//! `etcd-s3-retention-<rule>` for S3, each S3 key defaulting to its local twin (as
//! `etcd-s3-retention` defaults to `etcd-snapshot-retention`).
//!
//! Building is pure; `max-total-size` is read as text and checked here (a size with an
//! optional unit), so a bad value is reported with its key and source like any other.

use super::build::Parsed;
use super::resolve::ConfigError;
use crate::snapshot::retention::RetentionRules;

/// The local keys' prefix.
pub const LOCAL_PREFIX: &str = "etcd-snapshot-retention";
/// The S3 keys' prefix.
pub const S3_PREFIX: &str = "etcd-s3-retention";

/// What `max-total-size` accepts, for errors and help.
pub const SIZE_EXPECTED: &str = "a size in bytes with an optional unit: B, K/KB (1000), \
     Ki/KiB (1024), M/MB, Mi/MiB, G/GB, Gi/GiB, T/TB, Ti/TiB, e.g. 500GiB";

/// The local dir's rules.
pub(super) fn local_rules(p: &Parsed) -> RetentionRules {
    rules(p, LOCAL_PREFIX, None)
}

/// The S3 rules: each unset key takes the local key's value.
pub(super) fn s3_rules(p: &Parsed) -> RetentionRules {
    rules(p, S3_PREFIX, Some(LOCAL_PREFIX))
}

fn rules(p: &Parsed, prefix: &str, fallback: Option<&str>) -> RetentionRules {
    let key = |rule: &str| {
        let own = format!("{prefix}-{rule}");
        match (p.value(&own), fallback) {
            (None, Some(other)) => format!("{other}-{rule}"),
            _ => own,
        }
    };
    RetentionRules {
        keep_last: p.int(&key("keep-last")),
        keep_hourly: p.int(&key("keep-hourly")),
        keep_daily: p.int(&key("keep-daily")),
        keep_weekly: p.int(&key("keep-weekly")),
        keep_monthly: p.int(&key("keep-monthly")),
        max_age: p.duration(&key("max-age")),
        max_total_size: p
            .text(&key("max-total-size"))
            .and_then(|t| parse_size(&t).ok()),
        min_count: p.int(&key("min-count")).unwrap_or(0),
    }
}

/// Every `max-total-size` must be a size.
pub(super) fn check_retention(p: &Parsed, errors: &mut Vec<ConfigError>) {
    for prefix in [LOCAL_PREFIX, S3_PREFIX] {
        let key = format!("{prefix}-max-total-size");
        if let Some(text) = p.text(&key)
            && parse_size(&text).is_err()
        {
            errors.push(p.error(&key, SIZE_EXPECTED));
        }
    }
}

/// Parses `500GiB`, `10 GB`, `1048576`: a whole number and an optional unit (decimal or
/// binary multiples, case-insensitive, `B` optional).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| SIZE_EXPECTED.to_string())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "ki" => 1 << 10,
        "m" => 1_000_000,
        "mi" => 1 << 20,
        "g" => 1_000_000_000,
        "gi" => 1 << 30,
        "t" => 1_000_000_000_000,
        "ti" => 1 << 40,
        _ => return Err(SIZE_EXPECTED.into()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{SIZE_EXPECTED} (at most {} bytes)", u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use super::super::test_support::resolve_flags as run;

    #[test]
    fn local_and_s3_rules_are_separate_and_s3_falls_back_to_local() {
        let r = run(&[
            ("etcd-s3", "true"),
            ("etcd-s3-bucket", "b"),
            ("etcd-snapshot-retention-keep-daily", "7"),
            ("etcd-snapshot-retention-max-age", "720h"),
            ("etcd-snapshot-retention-max-total-size", "10GiB"),
            ("etcd-snapshot-retention-min-count", "2"),
            ("etcd-s3-retention-keep-daily", "30"),
            ("etcd-s3-retention-keep-monthly", "12"),
        ])
        .unwrap();
        let local = &r.config.snapshot.retention_rules;
        assert_eq!(local.keep_daily, Some(7));
        assert_eq!(local.keep_monthly, None);
        assert_eq!(local.max_age, Some(Duration::from_secs(720 * 3_600)));
        assert_eq!(local.max_total_size, Some(10 << 30));
        assert_eq!(local.min_count, 2);
        let s3 = &r.config.s3.as_ref().unwrap().retention_rules;
        assert_eq!(s3.keep_daily, Some(30), "its own value");
        assert_eq!(s3.keep_monthly, Some(12));
        assert_eq!(s3.max_age, local.max_age, "the local twin's value");
        assert_eq!(s3.max_total_size, local.max_total_size);
        assert_eq!(s3.min_count, 2);
    }

    #[test]
    fn without_the_new_keys_the_policy_is_the_count_alone() {
        let r = run(&[]).unwrap();
        assert_eq!(r.config.snapshot.retention_rules, RetentionRules::default());
        assert_eq!(r.config.snapshot.retention, 5);
    }

    #[test]
    fn a_bad_size_names_the_key_the_source_and_the_expectation() {
        let errors = run(&[("etcd-s3-retention-max-total-size", "ten gigs")])
            .err()
            .unwrap()
            .0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        let text = errors[0].to_string();
        assert!(text.contains("etcd-s3-retention-max-total-size"), "{text}");
        assert!(
            text.contains("--etcd-s3-retention-max-total-size"),
            "{text}"
        );
        assert!(text.contains("\"ten gigs\""), "{text}");
        assert!(text.contains(SIZE_EXPECTED), "{text}");
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        let ok = [
            ("0", 0),
            ("1048576", 1 << 20),
            ("500GiB", 500 << 30),
            ("500 GB", 500_000_000_000),
            ("2ki", 2048),
            ("7B", 7),
            ("3tib", 3 << 40),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "GiB",
            "-1",
            "1.5G",
            "10 PB",
            "5 G B",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("20000000Ti").unwrap_err().contains("at most"));
    }
}
