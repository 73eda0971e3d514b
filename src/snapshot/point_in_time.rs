//! The point-in-time window of a local full snapshot: from its own revision and time to the
//! last revision (and, when known, the arrival time of that revision) its delta chain reaches
//! without a hole. `delta::window` computes it; `ls` and the `ETCDSnapshotFile` resources show it.
//!
//! It travels from the listing to the edges inside the record's metadata map, under a reserved
//! key ([`KEY`], hidden from `spec.metadata` like every own entry), so the many places that
//! build a `SnapshotRecord` need not change. It is attached in memory by every listing that
//! shows it and never written to a `.metadata` record or an S3 object; [`set`] first removes
//! any entry of that key a record came with, so a value planted in a `.metadata` file or
//! object is never shown. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::SnapshotRecord;

/// The in-memory metadata entry carrying a record's window.
pub const KEY: &str = "etcd-snapshot-point-in-time";

/// A full snapshot's point-in-time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointInTime {
    /// The snapshot's recorded revision.
    pub from_revision: i64,
    /// The last revision its chain reaches without a hole (`from_revision` with no segment).
    pub to_revision: i64,
    /// The snapshot's time, Unix milliseconds.
    pub from_unix_ms: i64,
    /// When `to_revision` arrived from etcd, Unix milliseconds; None when not recorded (a chain
    /// from before the window record, or a record behind the chain's files).
    pub to_unix_ms: Option<i64>,
}

/// The window a listed record carries, if any; an entry that does not parse is none.
pub fn of(record: &SnapshotRecord) -> Option<PointInTime> {
    let text = record.metadata.as_ref()?.get(KEY)?;
    let window: PointInTime = serde_json::from_str(text).ok()?;
    (window.from_revision <= window.to_revision).then_some(window)
}

/// Gives `record` this window (or none): any entry of the key it came with is removed first.
pub fn set(record: &mut SnapshotRecord, window: Option<&PointInTime>) {
    if let Some(map) = record.metadata.as_mut() {
        map.retain(|key, _| !key.eq_ignore_ascii_case(KEY));
    }
    let Some(window) = window else {
        return;
    };
    let text = serde_json::to_string(window).expect("a window always serializes");
    record
        .metadata
        .get_or_insert_with(BTreeMap::new)
        .insert(KEY.to_string(), text);
}

/// Unix milliseconds as RFC 3339 UTC: whole seconds when there is no fraction, else
/// milliseconds (a `to` time given back to `--cluster-reset-restore-to` then includes its
/// revision).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let time = DateTime::<Utc>::from_timestamp_millis(unix_ms).unwrap_or_default();
    let format = if unix_ms % 1000 == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    time.to_rfc3339_opts(format, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Storage;

    fn record() -> SnapshotRecord {
        SnapshotRecord::example("s-n1-1", "file:///d/s-n1-1", "n1", Storage::Local)
    }

    const WINDOW: PointInTime = PointInTime {
        from_revision: 10,
        to_revision: 42,
        from_unix_ms: 1_754_906_881_000,
        to_unix_ms: Some(1_754_906_999_123),
    };

    #[test]
    fn a_window_set_reads_back_and_stays_out_of_the_users_metadata() {
        let mut r = record();
        assert_eq!(of(&r), None);
        set(&mut r, Some(&WINDOW));
        assert_eq!(of(&r), Some(WINDOW));
        assert_eq!(r.user_metadata(), None, "a reserved entry");
        set(&mut r, None);
        assert_eq!(of(&r), None);
    }

    #[test]
    fn a_planted_or_malformed_entry_is_never_shown() {
        let mut r = record();
        let planted = serde_json::to_string(&WINDOW).unwrap();
        r.metadata = Some(BTreeMap::from([
            (KEY.to_ascii_uppercase(), planted.clone()),
            (KEY.to_string(), planted),
            ("team".to_string(), "a".to_string()),
        ]));
        set(&mut r, None);
        assert_eq!(
            r.metadata.as_ref().unwrap().len(),
            1,
            "only the user's entry"
        );
        for bad in [
            "{",
            r#"{"fromRevision":5,"toRevision":4,"fromUnixMs":0,"toUnixMs":null}"#,
            r#"{"fromRevision":1,"toRevision":4,"fromUnixMs":0,"toUnixMs":null,"x":1}"#,
        ] {
            r.metadata = Some(BTreeMap::from([(KEY.to_string(), bad.to_string())]));
            assert_eq!(of(&r), None, "{bad}");
        }
    }

    #[test]
    fn times_show_milliseconds_only_when_they_have_some() {
        for (ms, text) in [
            (1_754_906_881_000, "2025-08-11T10:08:01Z"),
            (1_754_906_881_007, "2025-08-11T10:08:01.007Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), text);
        }
    }
}
