//! Where a point-in-time restore goes, as pure functions: which full snapshot anchors it, which
//! segments it reads, and where the replay stops.
//!
//! `plan_target` works from names alone (the chains' anchors and their segments' `from-to`),
//! before anything is read: a revision target picks the newest anchor at or before it whose
//! chain reaches it without a hole; `latest` the newest anchor and its whole reach; a time the
//! newest anchor created at or before it. Where a time falls inside the chain is only known
//! from the arrival times in the segments, so the replay decides it while it streams them
//! (`Goal::stops_before`, `Goal::finish`): the target is the last revision that arrived at or
//! before the time.

use super::chain::{Anchor, chain_reach, segment_file_name};
use crate::config::restore_to::RestoreTo;

/// Why a restore-to point cannot be reached; every message says what would work instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "no local full snapshot with a recorded revision to replay a delta chain from (snapshots saved by RKE2, or when etcd did not answer the keyspace hash, anchor no chain)"
    )]
    NoAnchor,
    #[error(
        "refused to restore to revision {target}: it is before the oldest full snapshot with a delta chain ({anchor}, revision {anchor_revision}); restore that snapshot without --cluster-reset-restore-to"
    )]
    BeforeAnchor {
        target: i64,
        anchor: String,
        anchor_revision: i64,
    },
    #[error(
        "refused to restore to {target}: it is before the oldest full snapshot with a delta chain ({anchor}, taken at {created})"
    )]
    TimeBeforeAnchor {
        target: String,
        anchor: String,
        created: String,
    },
    #[error(
        "refused to restore to revision {target}: the delta chain of {anchor} reaches revision {reach}; restore to latest or to a revision up to {reach}"
    )]
    BeyondReach {
        target: i64,
        anchor: String,
        reach: i64,
    },
    #[error(
        "refused to restore to {target}: the delta chain of {anchor} has a hole after revision {reach} (the next segment on disk is {next}); restore to a point up to revision {reach}"
    )]
    Hole {
        target: String,
        anchor: String,
        reach: i64,
        next: String,
    },
    #[error(
        "refused to restore to {target}: the delta chain of {anchor} ends at revision {reach}, whose last segment closed at {closed}; restore to latest or to an earlier time"
    )]
    TimeBeyondReach {
        target: String,
        anchor: String,
        reach: i64,
        closed: String,
    },
}

/// One full snapshot that can anchor a chain, and the segments on disk beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainView {
    pub anchor: Anchor,
    /// `(from, to)` of every published segment in its chain dir.
    pub segments: Vec<(i64, i64)>,
}

/// Where the replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Exactly this revision.
    Revision(i64),
    /// The last revision that arrived at or before this Unix millisecond.
    Time(i64),
}

/// What `plan_target` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    pub anchor: Anchor,
    pub goal: Goal,
    /// The segments to read, in order: the chain's path from the anchor (for a revision, up to
    /// the one that holds it).
    pub path: Vec<(i64, i64)>,
    /// The last revision the chain reaches without a hole.
    pub reach: i64,
}

/// Chooses the anchor and the segments for `to`. Pure: names and recorded revisions only.
pub fn plan_target(to: &RestoreTo, chains: &[ChainView]) -> Result<TargetPlan, TargetError> {
    let mut newest_first: Vec<&ChainView> = chains.iter().collect();
    newest_first.sort_by(|a, b| {
        let key = |c: &ChainView| (c.anchor.created_unix, c.anchor.file_name.clone());
        key(b).cmp(&key(a))
    });
    let oldest = *newest_first.last().ok_or(TargetError::NoAnchor)?;
    match to {
        RestoreTo::Latest => {
            let chain = newest_first[0];
            let reach = chain_reach(chain.anchor.revision, &chain.segments);
            Ok(plan(chain, Goal::Revision(reach.contiguous_to)))
        }
        RestoreTo::Revision(target) => {
            let candidates: Vec<&ChainView> = newest_first
                .iter()
                .copied()
                .filter(|c| c.anchor.revision <= *target)
                .collect();
            let Some(newest) = candidates.first() else {
                return Err(TargetError::BeforeAnchor {
                    target: *target,
                    anchor: oldest.anchor.file_name.clone(),
                    anchor_revision: oldest.anchor.revision,
                });
            };
            let reaching = candidates
                .iter()
                .find(|c| chain_reach(c.anchor.revision, &c.segments).contiguous_to >= *target);
            match reaching {
                Some(chain) => Ok(plan(chain, Goal::Revision(*target))),
                None => Err(why_unreachable(newest, to, *target)),
            }
        }
        RestoreTo::Time { unix_ms, text } => {
            let chain = newest_first
                .iter()
                .find(|c| c.anchor.created_unix.saturating_mul(1000) <= *unix_ms)
                .ok_or_else(|| TargetError::TimeBeforeAnchor {
                    target: text.clone(),
                    anchor: oldest.anchor.file_name.clone(),
                    created: crate::snapshot::record::rfc3339(oldest.anchor.created_unix),
                })?;
            Ok(plan(chain, Goal::Time(*unix_ms)))
        }
    }
}

/// The plan over `chain`'s path, cut after the segment holding a revision goal.
fn plan(chain: &ChainView, goal: Goal) -> TargetPlan {
    let reach = chain_reach(chain.anchor.revision, &chain.segments);
    let path = match goal {
        Goal::Revision(target) => reach
            .path
            .iter()
            .copied()
            .filter(|(from, _)| *from <= target)
            .collect(),
        Goal::Time(_) => reach.path.clone(),
    };
    TargetPlan {
        anchor: chain.anchor.clone(),
        goal,
        path,
        reach: reach.contiguous_to,
    }
}

/// Why the newest candidate chain cannot reach `target`: a hole (a segment on disk after its
/// reach) or simply its end.
fn why_unreachable(chain: &ChainView, to: &RestoreTo, target: i64) -> TargetError {
    let reach = chain_reach(chain.anchor.revision, &chain.segments);
    let next = reach
        .stray
        .iter()
        .filter(|(from, _)| *from > reach.contiguous_to)
        .min();
    match next {
        Some(&(from, to_revision)) => TargetError::Hole {
            target: to.to_string(),
            anchor: chain.anchor.file_name.clone(),
            reach: reach.contiguous_to,
            next: segment_file_name(from, to_revision),
        },
        None => TargetError::BeyondReach {
            target,
            anchor: chain.anchor.file_name.clone(),
            reach: reach.contiguous_to,
        },
    }
}

impl Goal {
    /// Whether the replay stops before a group of this revision that arrived at this time.
    pub fn stops_before(&self, revision: i64, arrived_unix_ms: i64) -> bool {
        match *self {
            Goal::Revision(target) => revision > target,
            Goal::Time(at) => arrived_unix_ms > at,
        }
    }

    /// Whether a time goal is reached before reading the next segment: the segment read last
    /// was closed after the time, and every later revision arrived after that close.
    pub fn reached_before_next(&self, last_closed_ms: Option<i64>) -> bool {
        match (*self, last_closed_ms) {
            (Goal::Time(at), Some(closed)) => closed > at,
            _ => false,
        }
    }

    /// The target revision once the replay stopped: `applied_to` is the last revision applied
    /// (the snapshot's own when none was), `stopped` whether a group was left out, and
    /// `last_closed_ms` when the last segment read was closed (None without segments). A time
    /// the chain has not provably covered (after its last segment closed, with nothing left out)
    /// is refused: changes after that may never have been captured.
    pub fn finish(
        &self,
        plan: &TargetPlan,
        applied_to: i64,
        stopped: bool,
        last_closed_ms: Option<i64>,
    ) -> Result<i64, TargetError> {
        match *self {
            Goal::Revision(_) => Ok(applied_to),
            Goal::Time(at) if stopped || last_closed_ms.is_some_and(|c| at <= c) => Ok(applied_to),
            Goal::Time(_) => Err(TargetError::TimeBeyondReach {
                target: self.describe(),
                anchor: plan.anchor.file_name.clone(),
                reach: applied_to,
                closed: last_closed_ms.map_or_else(
                    || "- (the chain has no segment yet)".to_string(),
                    rfc3339_ms,
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        match *self {
            Goal::Revision(r) => format!("revision {r}"),
            Goal::Time(ms) => rfc3339_ms(ms),
        }
    }
}

/// A Unix millisecond as RFC 3339 UTC with milliseconds (the number itself when out of range).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms).map_or_else(
        || unix_ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
