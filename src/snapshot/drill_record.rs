//! The restore-drill verdict recorded with a snapshot copy: when it was drilled, whether it
//! passed, and why.
//!
//! Three string entries with the reserved prefix (`record::OWN_PREFIX`), kept in the copy's
//! metadata record: the local `.metadata/<name>` file, and for an S3 copy the
//! `<folder>/.metadata/<name>` object (a small PUT; the snapshot object itself is never
//! rewritten, see docs/operator-guide.md "Restore drills"). Each copy carries the verdict on its
//! own bytes. A newer drill replaces the entries; the user's entries beside them are kept.
//!
//! Values read back are hostile (anyone who can write the bucket or the dir can write them):
//! parsing is strict, an entry that does not parse is an error and never counts as passed.
//! Pure: no I/O here.

use std::collections::BTreeMap;

use chrono::DateTime;

use crate::snapshot::record::rfc3339;

/// When the drill finished, RFC 3339 UTC.
pub const KEY_VERIFIED_AT: &str = "etcd-snapshot-verified-at";
/// `passed` or `failed`.
pub const KEY_RESULT: &str = "etcd-snapshot-verify-result";
/// One line: the failed checks, or what was checked.
pub const KEY_REASON: &str = "etcd-snapshot-verify-reason";

/// The longest reason recorded: a record stays small whatever a check said.
pub const MAX_REASON_CHARS: usize = 1024;

/// One copy's last drill verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrillVerdict {
    /// Unix seconds.
    pub verified_at: i64,
    pub passed: bool,
    pub reason: String,
}

/// A recorded verdict that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrillRecordError {
    #[error("recorded {key} is {value:?}; expected {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("recorded {present} without {missing}")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
}

impl DrillVerdict {
    /// A verdict at `verified_at`, its reason cut to one line of at most `MAX_REASON_CHARS`.
    pub fn new(verified_at: i64, passed: bool, reason: &str) -> Self {
        let line: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_REASON_CHARS)
            .collect();
        Self {
            verified_at,
            passed,
            reason: line,
        }
    }

    /// `passed` / `failed`, as recorded and shown.
    pub fn result_word(&self) -> &'static str {
        if self.passed { "passed" } else { "failed" }
    }

    /// The three entries, as recorded.
    pub fn entries(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (KEY_VERIFIED_AT.to_string(), rfc3339(self.verified_at)),
            (KEY_RESULT.to_string(), self.result_word().to_string()),
            (KEY_REASON.to_string(), self.reason.clone()),
        ])
    }

    /// `existing` (the record's current entries) with this verdict's entries in place of any
    /// earlier verdict's; every other entry is kept as it was.
    pub fn merged_into(&self, existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut merged: BTreeMap<String, String> = existing
            .iter()
            .filter(|(key, _)| !is_verdict_key(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        merged.extend(self.entries());
        merged
    }

    /// Reads the verdict from a record's entries (key case ignored: S3 lower-cases user
    /// metadata). `Ok(None)` when the copy was never drilled.
    pub fn from_entries(
        entries: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, DrillRecordError> {
        let find = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let (at, result, reason) = (
            find(KEY_VERIFIED_AT),
            find(KEY_RESULT),
            find(KEY_REASON).unwrap_or_default(),
        );
        let (at, result) = match (at, result) {
            (None, None) => return Ok(None),
            (Some(at), Some(result)) => (at, result),
            (Some(_), None) => {
                return Err(DrillRecordError::Incomplete {
                    present: KEY_VERIFIED_AT,
                    missing: KEY_RESULT,
                });
            }
            (None, Some(_)) => {
                return Err(DrillRecordError::Incomplete {
                    present: KEY_RESULT,
                    missing: KEY_VERIFIED_AT,
                });
            }
        };
        let verified_at = DateTime::parse_from_rfc3339(at)
            .ok()
            .filter(|_| at.len() <= 40)
            .map(|t| t.timestamp())
            .ok_or_else(|| invalid(KEY_VERIFIED_AT, at, "an RFC 3339 time"))?;
        let passed = match result {
            "passed" => true,
            "failed" => false,
            other => return Err(invalid(KEY_RESULT, other, "passed or failed")),
        };
        Ok(Some(Self::new(verified_at, passed, reason)))
    }
}

/// True for one of the verdict's own keys (any case).
fn is_verdict_key(key: &str) -> bool {
    [KEY_VERIFIED_AT, KEY_RESULT, KEY_REASON]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
}

fn invalid(key: &'static str, value: &str, expected: &'static str) -> DrillRecordError {
    DrillRecordError::Invalid {
        key,
        value: value.chars().take(64).collect(),
        expected,
    }
}

/// The verdict a listed copy carries: None when never drilled; a record that does not parse
/// counts as a failed verdict (never as passed), with the parse error as its reason.
pub fn verdict_of(metadata: Option<&BTreeMap<String, String>>) -> Option<DrillVerdict> {
    match DrillVerdict::from_entries(metadata?) {
        Ok(verdict) => verdict,
        Err(e) => Some(DrillVerdict::new(0, false, &e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_round_trips_and_replaces_an_earlier_one_keeping_other_entries() {
        let passed = DrillVerdict::new(1_754_906_881, true, "revision 21, 20 keys");
        let existing = BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            (
                "ETCD-SNAPSHOT-VERIFY-RESULT".to_string(),
                "failed".to_string(),
            ),
        ]);
        let merged = passed.merged_into(&existing);
        assert_eq!(merged.get("team").map(String::as_str), Some("a"));
        assert_eq!(merged.len(), 4, "{merged:?}");
        assert_eq!(DrillVerdict::from_entries(&merged), Ok(Some(passed)));
        assert_eq!(DrillVerdict::from_entries(&BTreeMap::new()), Ok(None));
    }

    #[test]
    fn a_hostile_or_partial_record_is_an_error_and_never_passed() {
        let good = DrillVerdict::new(5, true, "").entries();
        let mut bad_result = good.clone();
        bad_result.insert(KEY_RESULT.into(), "PASSED ".into());
        let mut bad_time = good.clone();
        bad_time.insert(KEY_VERIFIED_AT.into(), "yesterday".into());
        let mut partial = good.clone();
        partial.remove(KEY_VERIFIED_AT);
        for entries in [bad_result, bad_time, partial] {
            assert!(DrillVerdict::from_entries(&entries).is_err(), "{entries:?}");
            let shown = verdict_of(Some(&entries)).expect("a verdict");
            assert!(!shown.passed, "{shown:?}");
        }
        assert_eq!(verdict_of(None), None);
    }

    #[test]
    fn a_reason_is_one_bounded_line() {
        let long = "x\n".repeat(MAX_REASON_CHARS);
        let verdict = DrillVerdict::new(1, false, &long);
        assert_eq!(verdict.reason.chars().count(), MAX_REASON_CHARS);
        assert!(!verdict.reason.contains('\n'));
    }
}

#[cfg(test)]
#[path = "drill_record_fuzz.rs"]
mod fuzz;
