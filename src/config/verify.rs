//! The restore-drill keys: `etcd-snapshot-verify-schedule-cron` (a cron spec; empty, the
//! default, turns scheduled drills off), `etcd-snapshot-verify-after-save`, and
//! `etcd-snapshot-hashkv-max-db-size` (the largest database whose keyspace hash a save records
//! for drills to compare; a size like the retention sizes, 0 never hashes).
//!
//! The schedule is read as text so that empty can mean "off" while a spec is checked like
//! `etcd-snapshot-schedule-cron`'s (`Schedule::parse`), its error naming the key and source.
//! Pure.

use super::build::Parsed;
use super::resolve::ConfigError;
use super::retention::{SIZE_EXPECTED, parse_size};
use super::schedule::Schedule;

/// The drill schedule's key.
pub const SCHEDULE: &str = "etcd-snapshot-verify-schedule-cron";
/// The after-save switch's key.
pub const AFTER_SAVE: &str = "etcd-snapshot-verify-after-save";
/// The hash limit's key.
pub const HASHKV_MAX_DB_SIZE: &str = "etcd-snapshot-hashkv-max-db-size";
/// Its default, 2 GiB: etcd holds its backend read lock (and so every write) while it hashes.
pub const DEFAULT_HASHKV_MAX_DB_SIZE: u64 = 2 << 30;

/// When the server runs restore drills on its own, and what a save records for them.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    /// Drills of every listed copy on this schedule; None: no scheduled drills.
    pub schedule: Option<Schedule>,
    /// Drills of a new snapshot's copies right after the server saved it.
    pub after_save: bool,
    /// Largest database (etcd's `dbSize`, bytes) a save asks `HashKV` of; 0: never.
    pub hashkv_max_db_size: u64,
}

impl Default for VerifySettings {
    /// The key table's defaults: no schedule, not after saves, hashes up to 2 GiB.
    fn default() -> Self {
        Self {
            schedule: None,
            after_save: false,
            hashkv_max_db_size: DEFAULT_HASHKV_MAX_DB_SIZE,
        }
    }
}

pub(super) fn settings(p: &Parsed) -> VerifySettings {
    VerifySettings {
        schedule: spec(p).and_then(|s| Schedule::parse(&s).ok()),
        after_save: p.flag(AFTER_SAVE).unwrap_or(false),
        hashkv_max_db_size: p
            .text(HASHKV_MAX_DB_SIZE)
            .and_then(|t| parse_size(&t).ok())
            .unwrap_or(DEFAULT_HASHKV_MAX_DB_SIZE),
    }
}

/// A set, non-empty schedule must parse; the hash limit must be a size.
pub(super) fn check_verify(p: &Parsed, errors: &mut Vec<ConfigError>) {
    if p.text(HASHKV_MAX_DB_SIZE)
        .is_some_and(|t| parse_size(&t).is_err())
    {
        let expected = format!("{SIZE_EXPECTED}; 0 never hashes");
        errors.push(p.error(HASHKV_MAX_DB_SIZE, expected));
    }
    if let Some(text) = spec(p)
        && let Err(expected) = Schedule::parse(&text)
    {
        errors.push(p.error(
            SCHEDULE,
            format!("{expected}, or empty to turn scheduled drills off"),
        ));
    }
}

fn spec(p: &Parsed) -> Option<String> {
    p.text(SCHEDULE).filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::resolve_flags;

    #[test]
    fn drills_are_off_by_default_and_a_bad_spec_is_named() {
        let off = resolve_flags(&[]).expect("defaults");
        assert_eq!(off.config.snapshot.verify, Default::default());
        let on = resolve_flags(&[
            ("etcd-snapshot-verify-schedule-cron", "0 3 * * 0"),
            ("etcd-snapshot-verify-after-save", "true"),
        ])
        .expect("valid");
        let verify = &on.config.snapshot.verify;
        assert_eq!(
            verify.schedule.as_ref().map(|s| s.spec()),
            Some("0 3 * * 0")
        );
        assert!(verify.after_save);
        let errors = resolve_flags(&[("etcd-snapshot-verify-schedule-cron", "61 * * * *")])
            .expect_err("invalid")
            .to_string();
        assert!(
            errors.contains("etcd-snapshot-verify-schedule-cron"),
            "{errors}"
        );
        assert!(errors.contains("turn scheduled drills off"), "{errors}");
    }

    #[test]
    fn the_hash_limit_is_2_gib_by_default_takes_units_and_names_a_bad_value() {
        let default = resolve_flags(&[]).expect("defaults");
        assert_eq!(default.config.snapshot.verify.hashkv_max_db_size, 2 << 30);
        for (text, want) in [
            ("0", 0),
            ("1", 1),
            ("512MiB", 512 << 20),
            ("8G", 8_000_000_000),
        ] {
            let r = resolve_flags(&[("etcd-snapshot-hashkv-max-db-size", text)]).expect(text);
            assert_eq!(r.config.snapshot.verify.hashkv_max_db_size, want, "{text}");
        }
        let errors = resolve_flags(&[("etcd-snapshot-hashkv-max-db-size", "huge")])
            .expect_err("invalid")
            .to_string();
        assert!(
            errors.contains("--etcd-snapshot-hashkv-max-db-size"),
            "{errors}"
        );
        assert!(
            errors.contains("huge") && errors.contains("0 never hashes"),
            "{errors}"
        );
    }
}
