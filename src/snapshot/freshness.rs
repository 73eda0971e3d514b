//! The freshness objective: how old the newest snapshot may get before someone is told.
//!
//! The period is the schedule's (`Schedule::period`: the gap between its next two fire times).
//! A snapshot is stale when it is older than two periods: one missed save is tolerated, two in
//! a row are not. Pure functions; `ls` prints the warning and the metrics
//! export the ages (`etcd_snapshot_newest_age_seconds`, `..._newest_verified_age_seconds`).

use std::time::Duration;

use crate::snapshot::SnapshotRecord;
use crate::snapshot::record::rfc3339;

/// The newest snapshot time among `records`, and the newest verified one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Newest {
    pub any: Option<i64>,
    pub verified: Option<i64>,
}

/// The newest ready copy and the newest verified copy (`retention::verified`) in `records`.
pub fn newest(records: &[SnapshotRecord]) -> Newest {
    let ready = records.iter().filter(|r| r.ready);
    Newest {
        any: ready.clone().map(|r| r.created_unix).max(),
        verified: records
            .iter()
            .filter(|r| crate::snapshot::retention::verified(r))
            .map(|r| r.created_unix)
            .max(),
    }
}

/// The one-line warning `ls` prints when the newest snapshot (taken at `newest_unix`) is older
/// than two schedule periods at `now_unix`; None when it is fresh or there is no period.
pub fn stale_warning(
    newest_unix: i64,
    period: Option<Duration>,
    schedule_spec: &str,
    now_unix: i64,
) -> Option<String> {
    let period = period?;
    let limit = period.saturating_mul(2);
    let age = u64::try_from(now_unix.saturating_sub(newest_unix)).unwrap_or(0);
    (age > limit.as_secs()).then(|| {
        format!(
            "warning: the newest snapshot was taken at {} ({} ago), more than two schedule \
             periods ({} each, etcd-snapshot-schedule-cron {:?}); check that scheduled saves succeed",
            rfc3339(newest_unix),
            span(age),
            span(period.as_secs()),
            schedule_spec,
        )
    })
}

/// `3d4h`, `12h`, `90m` → `1h30m`, `45s`: the two largest units, for people.
fn span(secs: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut left = secs;
    for (size, unit) in units {
        if left >= size && parts.len() < 2 {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_past_two_periods() {
        let schedule = "0 */12 * * *";
        let period = Some(Duration::from_secs(12 * 3_600));
        let now = 1_704_069_000;
        assert_eq!(stale_warning(now - 24 * 3_600, period, schedule, now), None);
        let warning = stale_warning(now - 24 * 3_600 - 1, period, schedule, now).unwrap();
        assert!(warning.contains("(1d ago)"), "{warning}");
        assert!(warning.contains("12h each"), "{warning}");
        assert!(warning.contains("\"0 */12 * * *\""), "{warning}");
        assert!(!warning.contains('\n'));
        // A snapshot from the future (clock stepped back) is fresh; no period, no warning.
        assert_eq!(stale_warning(now + 3_600, period, schedule, now), None);
        assert_eq!(stale_warning(0, None, schedule, now), None);
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(5_400), "1h30m");
        assert_eq!(span(3 * 86_400 + 4 * 3_600 + 59), "3d4h");
        assert_eq!(span(86_400 + 30), "1d");
    }

    #[test]
    fn newest_and_newest_verified() {
        let drilled = |passed: bool| {
            let verdict = crate::snapshot::drill_record::DrillVerdict::new(10, passed, "");
            Some(verdict.entries())
        };
        let record = |unix: i64, ready: bool| SnapshotRecord {
            file_name: format!("s-n1-{unix}"),
            location: String::new(),
            node_name: "n1".into(),
            storage: crate::snapshot::Storage::Local,
            size: 1,
            created_unix: unix,
            compressed: false,
            ready,
            error: (!ready).then(|| "upload failed".to_string()),
            token_hash: None,
            metadata: None,
        };
        let mut records = [record(5, true), record(9, false), record(7, true)];
        assert_eq!(newest(&records).verified, None, "nothing drilled yet");
        records[0].metadata = drilled(true);
        records[1].metadata = drilled(true);
        records[2].metadata = drilled(false);
        assert_eq!(
            newest(&records),
            Newest {
                any: Some(7),
                verified: Some(5)
            },
            "only a ready copy whose drill passed is verified"
        );
        assert_eq!(newest(&[]), Newest::default());
    }
}
