//! Fuzz target `drill_record`: the recorded drill verdict read back from a metadata record or
//! an S3 `.metadata` object, which anyone who can write the dir or the bucket can write.
//!
//! Properties: reading never panics; a verdict is passed only when the result entry is exactly
//! `passed` and the time parses; a read verdict's reason is one line within the cap; merging a
//! verdict into any record and reading it back gives that verdict, and keeps every other entry.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;
use crate::fuzz_support::{Fuzz, hostile_text, mutated_text};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(KEY_VERIFIED_AT.to_string()),
        Just(KEY_RESULT.to_string()),
        Just(KEY_REASON.to_string()),
        Just(KEY_RESULT.to_ascii_uppercase()),
        hostile_text(24),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("passed".to_string()),
        Just("failed".to_string()),
        mutated_text("2026-12-07T04:00:00Z"),
        mutated_text("passed"),
        hostile_text(64),
    ]
}

fn read_any(entries: Vec<(String, String)>) -> TestCaseResult {
    let map: BTreeMap<String, String> = entries.into_iter().collect();
    let exact = |k: &str| {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    if let Some(verdict) = verdict_of(Some(&map)) {
        if verdict.passed {
            prop_assert_eq!(exact(KEY_RESULT), Some("passed"));
            prop_assert!(exact(KEY_VERIFIED_AT).is_some());
        }
        prop_assert!(verdict.reason.chars().count() <= MAX_REASON_CHARS);
        prop_assert!(!verdict.reason.chars().any(char::is_control));
    }
    Ok(())
}

fn merge_round_trip(
    entries: Vec<(String, String)>,
    at: i64,
    passed: bool,
    reason: String,
) -> TestCaseResult {
    let existing: BTreeMap<String, String> = entries.into_iter().collect();
    let verdict = DrillVerdict::new(at, passed, &reason);
    let merged = verdict.merged_into(&existing);
    prop_assert_eq!(DrillVerdict::from_entries(&merged), Ok(Some(verdict)));
    for (k, v) in existing.iter().filter(|(k, _)| !is_verdict_key(k)) {
        prop_assert_eq!(merged.get(k), Some(v));
    }
    Ok(())
}

fn entries() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((key(), value()), 0..6)
}

#[test]
fn fuzz_drill_record() {
    let mut fuzz = Fuzz::new("drill_record", 2);
    fuzz.check("read_any", 1024, entries(), read_any);
    let times = 0i64..4_102_444_800;
    fuzz.check(
        "merge_round_trip",
        512,
        (entries(), times, any::<bool>(), hostile_text(64)),
        |(e, t, p, r)| merge_round_trip(e, t, p, r),
    );
    fuzz.finish();
}
