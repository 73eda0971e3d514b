use super::*;

fn chain(name: &str, revision: i64, created_unix: i64, segments: &[(i64, i64)]) -> ChainView {
    ChainView {
        anchor: Anchor {
            file_name: name.into(),
            revision,
            created_unix,
        },
        segments: segments.to_vec(),
    }
}

/// Two chains: `old` (revision 100, taken at 1000 s) reaching 300 with a hole before 400, and
/// `new` (revision 250, taken at 2000 s) reaching 280 with nothing after.
fn chains() -> Vec<ChainView> {
    vec![
        chain("old", 100, 1000, &[(101, 200), (201, 300), (400, 410)]),
        chain("new", 250, 2000, &[(251, 260), (261, 280)]),
    ]
}

/// (target, anchor chosen, segments read)
type RevisionCase = (i64, &'static str, &'static [(i64, i64)]);
/// (goal, applied to, stopped, last closed, target or refused)
type FinishCase = (Goal, i64, bool, Option<i64>, Option<i64>);

fn time(unix_ms: i64) -> RestoreTo {
    RestoreTo::Time {
        unix_ms,
        text: format!("t{unix_ms}"),
    }
}

#[test]
fn revisions_pick_the_newest_anchor_whose_chain_reaches_them() {
    let all = chains();
    let cases: [RevisionCase; 6] = [
        (100, "old", &[]),
        (150, "old", &[(101, 200)]),
        (201, "old", &[(101, 200), (201, 300)]),
        (250, "new", &[]),
        (270, "new", &[(251, 260), (261, 280)]),
        // Past the newest chain's reach, the older chain still reaches it.
        (290, "old", &[(101, 200), (201, 300)]),
    ];
    for (target, anchor, path) in cases {
        let plan = plan_target(&RestoreTo::Revision(target), &all).unwrap();
        assert_eq!(plan.anchor.file_name, anchor, "{target}");
        assert_eq!(plan.goal, Goal::Revision(target), "{target}");
        assert_eq!(plan.path, path, "{target}");
    }
}

#[test]
fn latest_is_the_newest_chain_s_reach() {
    let plan = plan_target(&RestoreTo::Latest, &chains()).unwrap();
    assert_eq!(plan.anchor.file_name, "new");
    assert_eq!(plan.goal, Goal::Revision(280));
    assert_eq!(plan.path, [(251, 260), (261, 280)]);
    let bare = [chain("s", 7, 1, &[])];
    let plan = plan_target(&RestoreTo::Latest, &bare).unwrap();
    assert_eq!((plan.goal, plan.path.len()), (Goal::Revision(7), 0));
}

#[test]
fn unreachable_revisions_are_refused_with_what_would_work() {
    let all = chains();
    let err = |to: RestoreTo, chains: &[ChainView]| plan_target(&to, chains).unwrap_err();
    assert_eq!(err(RestoreTo::Latest, &[]), TargetError::NoAnchor);
    assert_eq!(
        err(RestoreTo::Revision(99), &all),
        TargetError::BeforeAnchor {
            target: 99,
            anchor: "old".into(),
            anchor_revision: 100
        }
    );
    // Beyond every chain: the newest candidate's end.
    assert_eq!(
        err(RestoreTo::Revision(301), &all),
        TargetError::BeyondReach {
            target: 301,
            anchor: "new".into(),
            reach: 280
        }
    );
    // Only the old chain is a candidate, and a hole cuts it: the next segment is named.
    let old_only = &all[..1];
    let hole = err(RestoreTo::Revision(405), old_only);
    assert_eq!(
        hole,
        TargetError::Hole {
            target: "revision 405".into(),
            anchor: "old".into(),
            reach: 300,
            next: segment_file_name(400, 410),
        }
    );
    assert!(hole.to_string().contains("up to revision 300"), "{hole}");
}

#[test]
fn a_time_picks_the_newest_anchor_taken_at_or_before_it() {
    let all = chains();
    for (at_ms, anchor) in [(1_000_000, "old"), (1_999_999, "old"), (2_000_000, "new")] {
        let plan = plan_target(&time(at_ms), &all).unwrap();
        assert_eq!(plan.anchor.file_name, anchor, "{at_ms}");
        assert_eq!(plan.goal, Goal::Time(at_ms));
    }
    let plan = plan_target(&time(1_500_000), &all).unwrap();
    assert_eq!(plan.path, [(101, 200), (201, 300)], "the whole path");
    let err = plan_target(&time(999_999), &all).unwrap_err();
    assert!(
        matches!(&err, TargetError::TimeBeforeAnchor { anchor, .. } if anchor == "old"),
        "{err}"
    );
}

#[test]
fn the_replay_stops_at_the_goal_and_a_time_needs_the_chain_to_cover_it() {
    let revision = Goal::Revision(10);
    assert!(!revision.stops_before(10, i64::MAX));
    assert!(revision.stops_before(11, 0));
    let at = Goal::Time(5_000);
    assert!(!at.stops_before(99, 5_000), "arrived at the time: included");
    assert!(at.stops_before(99, 5_001));
    // A segment closed after the time: nothing later arrived by then, the next is not read.
    assert!(at.reached_before_next(Some(5_001)));
    assert!(!at.reached_before_next(Some(5_000)));
    assert!(!at.reached_before_next(None));
    assert!(!revision.reached_before_next(Some(i64::MAX)));

    let plan = plan_target(&time(5_000), &[chain("s", 1, 1, &[(2, 9)])]).unwrap();
    let cases: [FinishCase; 6] = [
        (Goal::Revision(9), 9, false, Some(1), Some(9)),
        (at, 7, true, Some(6_000), Some(7)),
        (at, 9, false, Some(5_000), Some(9)),
        // Everything applied, but the chain's last segment closed before the time.
        (at, 9, false, Some(4_999), None),
        (at, 1, false, None, None),
        (at, 1, true, None, Some(1)),
    ];
    for (goal, applied, stopped, closed, want) in cases {
        let got = goal.finish(&plan, applied, stopped, closed);
        assert_eq!(
            got.as_ref().ok().copied(),
            want,
            "{goal:?} {applied} {closed:?}: {got:?}"
        );
    }
    let err = at.finish(&plan, 9, false, Some(4_999)).unwrap_err();
    assert!(
        err.to_string().contains("1970-01-01T00:00:04.999Z"),
        "{err}"
    );
}
