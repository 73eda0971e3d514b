//! Tables for the window record's codec and `window_of`, the record on disk, and the fuzz
//! target `delta_window` (the record read back from a chain dir).

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;
use crate::delta::chain::segment_file_name;
use crate::fuzz_support::{Fuzz, mutated};

const NAME: &str = "etcd-snapshot-n1-1754906881";

fn anchor() -> Anchor {
    Anchor {
        file_name: NAME.into(),
        revision: 100,
        created_unix: 1_754_906_881,
    }
}

/// One edit of a valid record, and what the error must name.
type BadField = (fn(&mut WindowRecord), &'static str);
/// What, the chain's segments, its record, the end revision and time expected.
type WindowCase = (
    &'static str,
    &'static [(i64, i64)],
    Option<WindowRecord>,
    i64,
    Option<i64>,
);

fn record(to_revision: i64, restorable: bool) -> WindowRecord {
    WindowRecord {
        version: VERSION,
        anchor: NAME.into(),
        anchor_revision: 100,
        anchor_unix: 1_754_906_881,
        to_revision,
        to_unix_ms: 1_754_906_999_250,
        restorable,
    }
}

#[test]
fn a_record_round_trips_and_every_bad_field_is_named() {
    let good = record(130, true);
    assert_eq!(decode(&encode(&good)), Ok(good.clone()));
    let cases: [BadField; 6] = [
        (|r| r.version = 2, "version 2, expected 1"),
        (|r| r.anchor = "../x".into(), "anchor: expected"),
        (|r| r.anchor_revision = -1, "anchorRevision"),
        (|r| r.anchor_unix = -5, "anchorUnix"),
        (
            |r| r.to_revision = 99,
            "toRevision: expected anchorRevision or more",
        ),
        (|r| r.to_unix_ms = -1, "toUnixMs"),
    ];
    for (edit, named) in cases {
        let mut bad = good.clone();
        edit(&mut bad);
        let err = decode(&encode(&bad)).unwrap_err();
        assert!(err.contains(named), "{err} should name {named}");
    }
    for junk in [&b""[..], b"{}", b"[1]", br#"{"version":1,"extra":true}"#] {
        assert!(decode(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn the_window_ends_where_the_files_reach_and_takes_its_time_only_from_a_matching_record() {
    let from_ms = 1_754_906_881_000;
    let known = Some(1_754_906_999_250);
    const CHAIN: &[(i64, i64)] = &[(101, 120), (121, 130)];
    const HOLED: &[(i64, i64)] = &[(101, 120), (121, 130), (140, 150)];
    let other_anchor = WindowRecord {
        anchor: "etcd-snapshot-n1-1".into(),
        ..record(130, true)
    };
    let cases: [WindowCase; 7] = [
        (
            "no segment: the snapshot alone",
            &[],
            None,
            100,
            Some(from_ms),
        ),
        (
            "a matching record",
            CHAIN,
            Some(record(130, true)),
            130,
            known,
        ),
        ("no record (an older chain)", CHAIN, None, 130, None),
        (
            "a record behind the files",
            CHAIN,
            Some(record(120, true)),
            130,
            None,
        ),
        (
            "a record past a hole",
            HOLED,
            Some(record(150, false)),
            130,
            None,
        ),
        (
            "a record of another anchor",
            CHAIN,
            Some(other_anchor),
            130,
            None,
        ),
        (
            "a record not restorable",
            CHAIN,
            Some(record(130, false)),
            130,
            None,
        ),
    ];
    for (what, segments, record, to_revision, to_unix_ms) in cases {
        let window = window_of(&anchor(), segments, record.as_ref());
        let want = PointInTime {
            from_revision: 100,
            to_revision,
            from_unix_ms: from_ms,
            to_unix_ms,
        };
        assert_eq!(window, want, "{what}");
    }
}

#[test]
fn a_published_segment_rewrites_the_record_and_a_listing_reads_it_beside_the_segments() {
    let root = tempfile::tempdir().unwrap();
    let snapshots = root.path().join("snapshots");
    assert_eq!(
        window_beside(&snapshots, &anchor()).unwrap(),
        None,
        "no chain"
    );
    let chain = ChainDir::new(&snapshots, NAME).unwrap();
    std::fs::create_dir_all(chain.path()).unwrap();
    for (from, to) in [(101, 120), (121, 130)] {
        std::fs::write(chain.path().join(segment_file_name(from, to)), b"x").unwrap();
    }
    record_published(&chain, &anchor(), 130, 1_754_906_999_250);
    assert_eq!(read(&chain).unwrap(), Some(record(130, true)));
    let listed: Vec<(i64, i64)> = chain
        .list()
        .unwrap()
        .iter()
        .map(|f| (f.from, f.to))
        .collect();
    assert_eq!(listed, [(101, 120), (121, 130)], "the record is no segment");
    let window = window_beside(&snapshots, &anchor()).unwrap().unwrap();
    assert_eq!(
        (window.to_revision, window.to_unix_ms),
        (130, Some(1_754_906_999_250))
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(chain.path().join(WINDOW_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Past a hole the record says so; an unreadable record leaves revisions only.
    std::fs::write(chain.path().join(segment_file_name(140, 150)), b"x").unwrap();
    record_published(&chain, &anchor(), 150, 1_754_907_000_000);
    assert_eq!(
        read(&chain).unwrap(),
        Some(WindowRecord {
            to_unix_ms: 1_754_907_000_000,
            ..record(150, false)
        })
    );
    std::fs::write(chain.path().join(WINDOW_FILE), b"{not json").unwrap();
    assert!(matches!(read(&chain), Err(WindowError::Invalid { .. })));
    let window = window_beside(&snapshots, &anchor()).unwrap().unwrap();
    assert_eq!((window.to_revision, window.to_unix_ms), (130, None));
}

/// Whatever decodes is a valid record that re-encodes to a record decoding the same.
fn decodes_only_valid(bytes: Vec<u8>) -> TestCaseResult {
    if let Ok(record) = decode(&bytes) {
        prop_assert!(record.to_revision >= record.anchor_revision);
        prop_assert!(check_anchor(&record.anchor).is_ok());
        prop_assert_eq!(decode(&encode(&record)), Ok(record));
    }
    Ok(())
}

#[test]
fn fuzz_delta_window() {
    let mut fuzz = Fuzz::new("delta_window", 2);
    let sample = encode(&record(130, true));
    fuzz.check("mutated", 1024, mutated(sample), |(bytes, _)| {
        decodes_only_valid(bytes)
    });
    let any_record = (
        any::<u32>(),
        "[a-z./-]{0,12}",
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<bool>(),
    );
    fuzz.check("fields", 512, any_record, |(v, a, ar, au, tr, tm, ok)| {
        let record = WindowRecord {
            version: v,
            anchor: a,
            anchor_revision: ar,
            anchor_unix: au,
            to_revision: tr,
            to_unix_ms: tm,
            restorable: ok,
        };
        decodes_only_valid(encode(&record))
    });
    fuzz.finish();
}

#[test]
fn an_s3_copys_window_reaches_as_far_as_its_uploaded_segments_and_takes_the_time_only_at_that_end()
{
    let names = [
        segment_file_name(101, 110),
        format!("{}.gz.age", segment_file_name(111, 120)),
        "not-a-segment".to_string(),
        segment_file_name(131, 140),
    ];
    let names = || names.iter().map(String::as_str);
    // The bucket reaches 120 (a hole before 131); this node's record says 120: time shown.
    let window = remote_window(&anchor(), names(), Some(&record(120, true)));
    assert_eq!((window.from_revision, window.to_revision), (100, 120));
    assert_eq!(window.to_unix_ms, Some(1_754_906_999_250));
    // This node's record is further on (still uploading) or missing: revisions only.
    let window = remote_window(&anchor(), names(), Some(&record(125, true)));
    assert_eq!((window.to_revision, window.to_unix_ms), (120, None));
    let window = remote_window(&anchor(), names(), None);
    assert_eq!((window.to_revision, window.to_unix_ms), (120, None));
}
