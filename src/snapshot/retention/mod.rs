//! Retention policies: which of one node's snapshots of one base name a store keeps.
//!
//! One pure function, [`decide`], gives every snapshot a [`Verdict`] and the [`Rule`] that
//! decided it. The policy is per store (the local dir and S3 are configured separately) and
//! combines rules the way restic's `forget` does:
//! 1. Keep rules. With none of keep-last/-hourly/-daily/-weekly/-monthly set, the count
//!    (`etcd-snapshot-retention`, RKE2's meaning: the newest N, 0 keeps all) is the only keep
//!    rule, so a config without the new keys behaves exactly as before. With any of them set,
//!    they replace the count, and a snapshot is kept if any of them keeps it.
//! 2. Protections: the newest snapshot and the newest verified snapshot are always kept.
//! 3. The floor: while fewer than `min-count` are kept, the newest removed ones come back.
//! 4. Removal rules: max-age, then max-total-size remove kept snapshots from the oldest, never
//!    below the floor and never a protected one.
//!
//! Time is the unix timestamp in the snapshot's name, never its mtime (a [`Snapshot`] does not
//! even carry one): the name is written once, when the snapshot is taken, while an mtime changes
//! when a file is copied or restored from a backup, and S3's LastModified is the upload time. A snapshot whose time is after `now` (the
//! clock was stepped back since) has age 0: it is never removed for its age, and it sorts as
//! the newest. Calendar buckets (hour, day, ISO week, month) are in UTC, like the names, so the
//! plan does not change with the host's time zone or across a DST change.

mod buckets;
mod explain;
mod policy;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::snapshot::SnapshotRecord;

pub use policy::decide;

/// The rules beyond the count, as configured for one store; `None` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRules {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub max_age: Option<Duration>,
    pub max_total_size: Option<u64>,
    /// Fewer snapshots than this are never left (0: only the newest is guaranteed).
    pub min_count: u32,
}

impl RetentionRules {
    /// True when any keep-* rule is set, which replaces the count.
    pub fn has_keep_rule(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// One store's retention policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// RKE2's count: the newest N are kept, 0 keeps all. Used only without keep-* rules.
    pub count: u32,
    pub rules: RetentionRules,
}

impl RetentionPolicy {
    /// The count alone: RKE2's `etcd-snapshot-retention`.
    pub fn count(count: u32) -> Self {
        Self {
            count,
            rules: RetentionRules::default(),
        }
    }

    /// True when the policy can remove nothing (count 0, no other rule), so a store need not
    /// even be listed.
    pub fn keeps_all(&self) -> bool {
        self.count == 0 && self.rules == RetentionRules::default()
    }
}

/// A snapshot retention considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub file_name: String,
    /// The timestamp in the name: the snapshot's time.
    pub name_unix: i64,
    pub size: u64,
    /// See [`verified`].
    pub verified: bool,
}

/// What retention does with one snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub file_name: String,
    pub created_unix: i64,
    pub keep: bool,
    pub rule: Rule,
}

/// The rule that decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The count is 0 and no keep-* rule is set: everything is kept.
    KeepAll,
    /// Among the newest `count` (RKE2's count).
    Count(u32),
    KeepLast(u32),
    KeepHourly(u32),
    KeepDaily(u32),
    KeepWeekly(u32),
    KeepMonthly(u32),
    /// The newest snapshot is always kept.
    Newest,
    /// The newest verified snapshot is always kept.
    NewestVerified,
    /// Brought back so that at least `min-count` remain.
    MinCount(u32),
    /// Older than the newest `count` (RKE2's count).
    BeyondCount(u32),
    /// No keep-* rule keeps it.
    NotKept,
    /// Older than max-age.
    MaxAge(Duration),
    /// Removed, oldest first, until the kept snapshots fit in max-total-size bytes.
    MaxTotalSize(u64),
}

/// Whether a listed copy counts as verified for retention and the freshness objective: a ready
/// copy whose last restore drill (recorded in its metadata, `snapshot::drill_record`) passed.
/// A copy never drilled, one whose last drill failed, and one whose record does not parse are
/// not verified: the save-time trailer check alone proves the bytes were written, not that they
/// restore.
pub fn verified(record: &SnapshotRecord) -> bool {
    record.ready
        && record.error.is_none()
        && crate::snapshot::drill_record::verdict_of(record.metadata.as_ref())
            .is_some_and(|v| v.passed)
}
