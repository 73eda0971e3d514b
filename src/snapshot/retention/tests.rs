//! The retention decision as a table, with a fake clock.

use std::time::Duration;

use super::*;

const H: i64 = 3_600;
const D: i64 = 86_400;
/// Monday 2024-01-01 00:00:00 UTC.
const MON: i64 = 1_704_067_200;

/// A snapshot taken at `unix`, `size` bytes.
fn snap(unix: i64, size: u64, verified: bool) -> Snapshot {
    Snapshot {
        file_name: format!("s-n1-{unix}"),
        name_unix: unix,
        size,
        verified,
    }
}

fn at(times: &[i64]) -> Vec<Snapshot> {
    times.iter().map(|&t| snap(t, 10, true)).collect()
}

struct Case {
    what: &'static str,
    policy: RetentionPolicy,
    snapshots: Vec<Snapshot>,
    now: i64,
    /// Newest first: (time, kept, rule code).
    want: Vec<(i64, bool, &'static str)>,
}

fn rules(f: impl FnOnce(&mut RetentionRules)) -> RetentionPolicy {
    let mut policy = RetentionPolicy::count(5);
    f(&mut policy.rules);
    policy
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "without new keys the count keeps the newest N (RKE2)",
            policy: RetentionPolicy::count(2),
            snapshots: at(&[MON, MON + H, MON + 2 * H]),
            now: MON + 3 * H,
            want: vec![
                (MON + 2 * H, true, "retention"),
                (MON + H, true, "retention"),
                (MON, false, "retention"),
            ],
        },
        Case {
            what: "count 0 keeps all",
            policy: RetentionPolicy::count(0),
            snapshots: at(&[MON, MON + H]),
            now: MON,
            want: vec![(MON + H, true, "retention-0"), (MON, true, "retention-0")],
        },
        Case {
            what: "keep-daily keeps the newest of each of the last N days; it replaces the count",
            policy: rules(|r| r.keep_daily = Some(2)),
            snapshots: at(&[
                MON + H,
                MON + 2 * H,
                MON + D + H,
                MON + D + 5 * H,
                MON + 2 * D,
            ]),
            now: MON + 3 * D,
            want: vec![
                (MON + 2 * D, true, "keep-daily"),
                (MON + D + 5 * H, true, "keep-daily"),
                (MON + D + H, false, "not-kept"),
                (MON + 2 * H, false, "not-kept"),
                (MON + H, false, "not-kept"),
            ],
        },
        Case {
            what: "rules combine: kept if any keeps it, first rule named; each rule counts alone",
            policy: rules(|r| {
                r.keep_last = Some(1);
                r.keep_hourly = Some(2);
                r.keep_monthly = Some(2);
            }),
            snapshots: at(&[MON - 40 * D, MON - 2 * D, MON + 10, MON + H, MON + H + 10]),
            now: MON + 2 * H,
            want: vec![
                (MON + H + 10, true, "keep-last"),
                (MON + H, false, "not-kept"),
                (MON + 10, true, "keep-hourly"),
                (MON - 2 * D, true, "keep-monthly"),
                (MON - 40 * D, false, "not-kept"),
            ],
        },
        Case {
            what: "weeks start on Monday 00:00 UTC",
            policy: rules(|r| r.keep_weekly = Some(3)),
            snapshots: at(&[MON - D, MON - 1, MON, MON + 6 * D]),
            now: MON + 7 * D,
            want: vec![
                (MON + 6 * D, true, "keep-weekly"),
                (MON, false, "not-kept"),
                (MON - 1, true, "keep-weekly"),
                (MON - D, false, "not-kept"),
            ],
        },
        Case {
            what: "keep rules of 0 keep nothing, but the newest always stays",
            policy: rules(|r| r.keep_daily = Some(0)),
            snapshots: at(&[MON, MON + H]),
            now: MON + 2 * H,
            want: vec![(MON + H, true, "newest"), (MON, false, "not-kept")],
        },
        Case {
            what: "max-age removes from the oldest, never below min-count",
            policy: rules(|r| {
                r.keep_last = Some(10);
                r.max_age = Some(Duration::from_secs(2 * D as u64));
                r.min_count = 3;
            }),
            snapshots: at(&[MON, MON + D, MON + 2 * D, MON + 5 * D]),
            now: MON + 6 * D,
            want: vec![
                (MON + 5 * D, true, "keep-last"),
                (MON + 2 * D, true, "keep-last"),
                (MON + D, true, "keep-last"),
                (MON, false, "max-age"),
            ],
        },
        Case {
            what: "the newest verified snapshot survives the count and max-age",
            policy: RetentionPolicy {
                count: 1,
                rules: RetentionRules {
                    max_age: Some(Duration::from_secs(H as u64)),
                    ..Default::default()
                },
            },
            snapshots: vec![
                snap(MON, 10, true),
                snap(MON + D, 10, false),
                snap(MON + 2 * D, 10, false),
            ],
            now: MON + 2 * D,
            want: vec![
                (MON + 2 * D, true, "retention"),
                (MON + D, false, "retention"),
                (MON, true, "newest-verified"),
            ],
        },
        Case {
            what: "max-total-size removes the oldest until the rest fits",
            policy: rules(|r| {
                r.keep_last = Some(9);
                r.max_total_size = Some(250);
            }),
            snapshots: vec![
                snap(MON, 100, true),
                snap(MON + H, 100, true),
                snap(MON + 2 * H, 100, true),
                snap(MON + 3 * H, 100, true),
            ],
            now: MON + 4 * H,
            want: vec![
                (MON + 3 * H, true, "keep-last"),
                (MON + 2 * H, true, "keep-last"),
                (MON + H, false, "max-total-size"),
                (MON, false, "max-total-size"),
            ],
        },
        Case {
            what: "min-count brings back the newest removed snapshots",
            policy: rules(|r| {
                r.keep_monthly = Some(1);
                r.min_count = 3;
            }),
            snapshots: at(&[MON, MON + H, MON + 2 * H, MON + 3 * H]),
            now: MON + 4 * H,
            want: vec![
                (MON + 3 * H, true, "keep-monthly"),
                (MON + 2 * H, true, "min-count"),
                (MON + H, true, "min-count"),
                (MON, false, "not-kept"),
            ],
        },
        Case {
            what: "clock stepped back: a snapshot from the future is the newest, age 0",
            policy: rules(|r| {
                r.keep_last = Some(9);
                r.max_age = Some(Duration::from_secs(D as u64));
            }),
            snapshots: at(&[MON - 3 * D, MON - H, MON + 30 * D]),
            now: MON,
            want: vec![
                (MON + 30 * D, true, "keep-last"),
                (MON - H, true, "keep-last"),
                (MON - 3 * D, false, "max-age"),
            ],
        },
        Case {
            what: "clock far behind every snapshot: max-age removes nothing",
            policy: rules(|r| {
                r.keep_last = Some(9);
                r.max_age = Some(Duration::from_secs(1));
            }),
            snapshots: at(&[MON, MON + D]),
            now: 0,
            want: vec![(MON + D, true, "keep-last"), (MON, true, "keep-last")],
        },
    ]
}

#[test]
fn table() {
    for case in cases() {
        let got: Vec<(i64, bool, &str)> = decide(&case.policy, &case.snapshots, case.now)
            .iter()
            .map(|v| (v.created_unix, v.keep, v.rule.code()))
            .collect();
        assert_eq!(got, case.want, "{}", case.what);
    }
}

#[test]
fn the_name_decides_not_the_mtime() {
    // A snapshot carries no mtime, so the names' order is the only order (tests/it/retention.rs
    // gives the files mtimes in the opposite order and checks the store follows the names).
    let snapshots = at(&[MON, MON + H, MON + 2 * H]);
    let verdicts = decide(&RetentionPolicy::count(1), &snapshots, MON + 3 * H);
    assert_eq!(verdicts[0].file_name, format!("s-n1-{}", MON + 2 * H));
    assert!(verdicts[0].keep);
    assert!(!verdicts[1].keep && !verdicts[2].keep);
    // And max-age measures the name's age.
    let old = snap(MON, 1, true);
    let policy = rules(|r| {
        r.keep_last = Some(5);
        r.max_age = Some(Duration::from_secs(D as u64));
    });
    let verdicts = decide(&policy, &[old, snap(MON + 9 * D, 1, true)], MON + 10 * D);
    assert_eq!(
        verdicts[1].rule,
        Rule::MaxAge(Duration::from_secs(D as u64))
    );
}

#[test]
fn the_verdicts_do_not_depend_on_the_listing_order() {
    let mut snapshots = at(&[MON, MON + D, MON + 2 * D, MON + 2 * D + 1]);
    let policy = rules(|r| r.keep_daily = Some(2));
    let first = decide(&policy, &snapshots, MON + 3 * D);
    snapshots.reverse();
    assert_eq!(decide(&policy, &snapshots, MON + 3 * D), first);
}

#[test]
fn every_rule_explains_itself() {
    let text = Rule::MaxAge(Duration::from_secs(30 * D as u64)).to_string();
    assert_eq!(text, "older than max-age 720h");
    assert_eq!(
        Rule::KeepDaily(7).to_string(),
        "newest of its day, UTC (keep-daily 7)"
    );
}
