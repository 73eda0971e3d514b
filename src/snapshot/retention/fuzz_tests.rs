//! Fuzz target `retention_policy`: any policy over any listing, any clock.
//!
//! Properties: every snapshot gets exactly one verdict; the newest snapshot and the newest
//! verified one are always kept; at least `min(min-count, snapshots)` are kept; a removal rule
//! never removes more than the keep rules would have kept, and without max-age and
//! max-total-size the count alone behaves as RKE2's "keep the newest N".

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;
use crate::fuzz_support::Fuzz;

fn snapshots() -> impl Strategy<Value = Vec<Snapshot>> {
    let time = prop_oneof![
        0i64..200_000_000,
        any::<i64>(),
        1_700_000_000i64..1_760_000_000
    ];
    prop::collection::vec((time, 0u64..2_000, any::<bool>()), 0..40).prop_map(|items| {
        items
            .into_iter()
            .map(|(unix, size, verified)| Snapshot {
                file_name: format!("s-n1-{unix}"),
                name_unix: unix,
                size,
                verified,
            })
            .collect()
    })
}

fn small() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(0u32..6)
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        0u32..8,
        (small(), small(), small(), small(), small()),
        prop::option::of(0u64..400_000_000),
        prop::option::of(0u64..30_000),
        0u32..8,
    )
        .prop_map(|(count, keep, age, size, min_count)| RetentionPolicy {
            count,
            rules: RetentionRules {
                keep_last: keep.0,
                keep_hourly: keep.1,
                keep_daily: keep.2,
                keep_weekly: keep.3,
                keep_monthly: keep.4,
                max_age: age.map(Duration::from_secs),
                max_total_size: size,
                min_count,
            },
        })
}

fn invariants((policy, snapshots, now): (RetentionPolicy, Vec<Snapshot>, i64)) -> TestCaseResult {
    let verdicts = decide(&policy, &snapshots, now);
    let mut names: Vec<&str> = snapshots.iter().map(|s| s.file_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    prop_assert_eq!(verdicts.len(), names.len(), "one verdict per snapshot");
    let Some(newest) = snapshots.iter().map(|s| s.name_unix).max() else {
        return Ok(());
    };
    prop_assert!(
        verdicts[0].keep && verdicts[0].created_unix == newest,
        "newest kept"
    );
    let newest_verified = snapshots
        .iter()
        .filter(|s| s.verified)
        .map(|s| s.name_unix)
        .max();
    if let Some(t) = newest_verified {
        let kept_verified = verdicts.iter().any(|v| {
            v.keep
                && v.created_unix == t
                && snapshots
                    .iter()
                    .any(|s| s.verified && s.file_name == v.file_name)
        });
        prop_assert!(kept_verified, "newest verified kept");
    }
    let kept = verdicts.iter().filter(|v| v.keep).count();
    prop_assert!(
        kept >= (policy.rules.min_count as usize).min(verdicts.len()),
        "floor"
    );
    for v in &verdicts {
        prop_assert_eq!(
            v.keep,
            !matches!(
                v.rule,
                Rule::NotKept | Rule::BeyondCount(_) | Rule::MaxAge(_) | Rule::MaxTotalSize(_)
            )
        );
    }
    if policy.rules == RetentionRules::default() {
        let n = if policy.count == 0 {
            verdicts.len()
        } else {
            policy.count as usize
        };
        prop_assert_eq!(
            kept,
            n.min(verdicts.len()).max(1),
            "the count alone is RKE2's"
        );
        prop_assert!(
            verdicts
                .iter()
                .take(n)
                .all(|v| v.keep || matches!(v.rule, Rule::BeyondCount(_)))
        );
    }
    Ok(())
}

#[test]
fn fuzz_retention_policy() {
    let mut fuzz = Fuzz::new("retention_policy", 1);
    fuzz.check(
        "retention invariants",
        512,
        (policy(), snapshots(), any::<i64>()),
        invariants,
    );
    fuzz.finish();
}
