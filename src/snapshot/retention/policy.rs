//! The retention decision: keep rules, protections, the floor, then removal rules (see the
//! module doc of `retention` for the order and why).

use std::cmp::Reverse;

use super::buckets::{Period, bucket};
use super::{RetentionPolicy, Rule, Snapshot, Verdict};

/// Every snapshot's verdict, newest first (by the name's time, ties by name, so the result
/// never depends on the listing order). `now_unix` is only used for max-age.
pub fn decide(policy: &RetentionPolicy, snapshots: &[Snapshot], now_unix: i64) -> Vec<Verdict> {
    let mut order: Vec<&Snapshot> = snapshots.iter().collect();
    order.sort_by_key(|s| Reverse((s.name_unix, &s.file_name)));
    order.dedup_by(|a, b| a.file_name == b.file_name);
    let mut verdicts = keep_rules(policy, &order);
    let protected = protected(&order);
    for &i in &protected {
        if !verdicts[i].keep {
            set(&mut verdicts[i], true, protection_rule(i));
        }
    }
    let floor = policy.rules.min_count as usize;
    top_up(&mut verdicts, floor, policy.rules.min_count);
    if let Some(max_age) = policy.rules.max_age {
        let limit = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let too_old = |i: usize| now_unix.saturating_sub(order[i].name_unix) > limit;
        remove_oldest(
            &mut verdicts,
            &protected,
            floor,
            Rule::MaxAge(max_age),
            too_old,
        );
    }
    if let Some(max_size) = policy.rules.max_total_size {
        let mut total: u64 = kept_sizes(&verdicts, &order);
        let over = |i: usize| {
            let over = total > max_size;
            if over {
                total = total.saturating_sub(order[i].size);
            }
            over
        };
        remove_oldest(
            &mut verdicts,
            &protected,
            floor,
            Rule::MaxTotalSize(max_size),
            over,
        );
    }
    verdicts
}

/// Step 1: the keep rules, restic's way: walking newest first, each rule keeps the first
/// snapshot of every new bucket until its count is used up; a snapshot is kept if any rule
/// keeps it, and the first rule (in the order last, hourly, daily, weekly, monthly) is named.
fn keep_rules(policy: &RetentionPolicy, order: &[&Snapshot]) -> Vec<Verdict> {
    let rules = &policy.rules;
    if !rules.has_keep_rule() {
        return order
            .iter()
            .enumerate()
            .map(|(i, s)| match policy.count {
                0 => verdict(s, true, Rule::KeepAll),
                n if i < n as usize => verdict(s, true, Rule::Count(n)),
                n => verdict(s, false, Rule::BeyondCount(n)),
            })
            .collect();
    }
    let mut slots: Vec<(Period, u32, Rule, Option<i64>)> = [
        (
            Period::Last,
            rules.keep_last,
            Rule::KeepLast as fn(u32) -> Rule,
        ),
        (Period::Hour, rules.keep_hourly, Rule::KeepHourly),
        (Period::Day, rules.keep_daily, Rule::KeepDaily),
        (Period::Week, rules.keep_weekly, Rule::KeepWeekly),
        (Period::Month, rules.keep_monthly, Rule::KeepMonthly),
    ]
    .into_iter()
    .filter_map(|(period, n, rule)| n.map(|n| (period, n, rule(n), None)))
    .collect();
    let mut verdicts = Vec::with_capacity(order.len());
    for (i, s) in order.iter().enumerate() {
        let mut decided = verdict(s, false, Rule::NotKept);
        for (period, left, rule, last) in &mut slots {
            let b = bucket(*period, s.name_unix, i);
            if *left > 0 && *last != Some(b) {
                *left -= 1;
                *last = Some(b);
                if !decided.keep {
                    decided = verdict(s, true, *rule);
                }
            }
        }
        verdicts.push(decided);
    }
    verdicts
}

/// Step 2: the indices of the newest snapshot and of the newest verified one.
fn protected(order: &[&Snapshot]) -> Vec<usize> {
    let newest = (!order.is_empty()).then_some(0);
    let verified = order.iter().position(|s| s.verified);
    newest.into_iter().chain(verified).collect()
}

fn protection_rule(i: usize) -> Rule {
    if i == 0 {
        Rule::Newest
    } else {
        Rule::NewestVerified
    }
}

/// Step 3: brings back the newest removed snapshots until `floor` are kept.
fn top_up(verdicts: &mut [Verdict], floor: usize, min_count: u32) {
    let mut kept = verdicts.iter().filter(|v| v.keep).count();
    for v in verdicts.iter_mut() {
        if kept >= floor {
            break;
        }
        if !v.keep {
            set(v, true, Rule::MinCount(min_count));
            kept += 1;
        }
    }
}

/// Step 4: walks the kept snapshots oldest first and removes those `remove` picks, skipping
/// protected ones and stopping at the floor. `remove` is called once per kept candidate.
fn remove_oldest(
    verdicts: &mut [Verdict],
    protected: &[usize],
    floor: usize,
    rule: Rule,
    mut remove: impl FnMut(usize) -> bool,
) {
    let mut kept = verdicts.iter().filter(|v| v.keep).count();
    for i in (0..verdicts.len()).rev() {
        if kept <= floor.max(1) {
            break;
        }
        if !verdicts[i].keep || protected.contains(&i) {
            continue;
        }
        if remove(i) {
            set(&mut verdicts[i], false, rule);
            kept -= 1;
        }
    }
}

fn kept_sizes(verdicts: &[Verdict], order: &[&Snapshot]) -> u64 {
    verdicts
        .iter()
        .zip(order)
        .filter(|(v, _)| v.keep)
        .fold(0u64, |sum, (_, s)| sum.saturating_add(s.size))
}

fn verdict(s: &Snapshot, keep: bool, rule: Rule) -> Verdict {
    Verdict {
        file_name: s.file_name.clone(),
        created_unix: s.name_unix,
        keep,
        rule,
    }
}

fn set(v: &mut Verdict, keep: bool, rule: Rule) {
    v.keep = keep;
    v.rule = rule;
}
