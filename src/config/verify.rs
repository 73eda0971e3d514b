//! The restore-drill keys: `etcd-snapshot-verify-schedule-cron` (a cron spec; empty, the
//! default, turns scheduled drills off) and `etcd-snapshot-verify-after-save`.
//!
//! The schedule is read as text so that empty can mean "off" while a spec is checked like
//! `etcd-snapshot-schedule-cron`'s (`Schedule::parse`), its error naming the key and source.
//! Pure.

use super::build::Parsed;
use super::resolve::ConfigError;
use super::schedule::Schedule;

/// The drill schedule's key.
pub const SCHEDULE: &str = "etcd-snapshot-verify-schedule-cron";
/// The after-save switch's key.
pub const AFTER_SAVE: &str = "etcd-snapshot-verify-after-save";

/// When the server runs restore drills on its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifySettings {
    /// Drills of every listed copy on this schedule; None: no scheduled drills.
    pub schedule: Option<Schedule>,
    /// Drills of a new snapshot's copies right after the server saved it.
    pub after_save: bool,
}

pub(super) fn settings(p: &Parsed) -> VerifySettings {
    VerifySettings {
        schedule: spec(p).and_then(|s| Schedule::parse(&s).ok()),
        after_save: p.flag(AFTER_SAVE).unwrap_or(false),
    }
}

/// A set, non-empty schedule must parse.
pub(super) fn check_verify(p: &Parsed, errors: &mut Vec<ConfigError>) {
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
}
