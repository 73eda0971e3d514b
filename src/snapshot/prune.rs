//! Retention planning: which snapshots of one prefix on one node to delete.
//!
//! Pure: takes a listing, returns a plan. The store executes it. Unlike RKE2, only files named
//! exactly `<base>-<node>-<digits>[.zip]` are considered, so other nodes' files in a shared dir,
//! other base names sharing a prefix, temp files and unrelated files are never deleted. Which of
//! those are kept is the retention policy's decision (`snapshot::retention::decide`).

use super::SnapshotName;
use super::retention::{RetentionPolicy, Snapshot, Verdict, decide};

/// A local file or S3 object considered for retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub file_name: String,
    /// Bytes, for max-total-size.
    pub size: u64,
    /// See `retention::verified`.
    pub verified: bool,
}

impl Candidate {
    /// A candidate known only by name (size 0, verified), as the backfill plan uses them.
    pub fn named(file_name: &str) -> Self {
        Self {
            file_name: file_name.to_string(),
            size: 0,
            verified: true,
        }
    }
}

/// What retention will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Newest first.
    pub keep: Vec<String>,
    /// Newest first, like `keep`; the store deletes them in reverse (oldest first) so an
    /// interruption leaves the newest.
    pub delete: Vec<String>,
    /// Every considered snapshot's verdict, newest first.
    pub verdicts: Vec<Verdict>,
}

/// What a store's prune did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deleted names, oldest first (the order they were deleted in).
    pub deleted: Vec<String>,
    /// Every considered snapshot's verdict, newest first.
    pub verdicts: Vec<Verdict>,
}

/// Keeps the newest `retention` snapshots named exactly `<base>-<node>-<unix>[.zip]`, ordered by
/// the name's timestamp; everything else in `candidates` is ignored. `retention == 0` keeps all.
pub fn plan_prune(candidates: &[Candidate], base: &str, node: &str, retention: u32) -> PrunePlan {
    // The count alone never looks at the clock.
    plan_retention(
        candidates,
        base,
        node,
        &RetentionPolicy::count(retention),
        0,
    )
}

/// Applies `policy` at `now_unix` to the snapshots named exactly `<base>-<node>-<unix>[.zip]`;
/// everything else in `candidates` is ignored and gets no verdict.
pub fn plan_retention(
    candidates: &[Candidate],
    base: &str,
    node: &str,
    policy: &RetentionPolicy,
    now_unix: i64,
) -> PrunePlan {
    let matching: Vec<Snapshot> = candidates
        .iter()
        .filter_map(|c| {
            let name = SnapshotName::parse_exact(&c.file_name, base, node)?;
            Some(Snapshot {
                file_name: c.file_name.clone(),
                name_unix: name.unix,
                size: c.size,
                verified: c.verified,
            })
        })
        .collect();
    let verdicts = decide(policy, &matching, now_unix);
    let (keep, delete): (Vec<&Verdict>, Vec<&Verdict>) = verdicts.iter().partition(|v| v.keep);
    let names = |list: Vec<&Verdict>| list.iter().map(|v| v.file_name.clone()).collect();
    PrunePlan {
        keep: names(keep),
        delete: names(delete),
        verdicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidates of a listing; the numbers beside the names are the files' mtimes, which
    /// a candidate does not even carry: only the name's time can decide.
    fn candidates(names: &[(&str, i64)]) -> Vec<Candidate> {
        names.iter().map(|(n, _)| Candidate::named(n)).collect()
    }

    struct Case {
        what: &'static str,
        files: &'static [(&'static str, i64)],
        retention: u32,
        keep: &'static [&'static str],
        delete: &'static [&'static str],
    }

    const CASES: &[Case] = &[
        Case {
            what: "keeps newest by name timestamp, not mtime",
            files: &[("s-n1-300", 1), ("s-n1-100", 900), ("s-n1-200.zip", 500)],
            retention: 2,
            keep: &["s-n1-300", "s-n1-200.zip"],
            delete: &["s-n1-100"],
        },
        Case {
            what: "retention 0 keeps everything",
            files: &[("s-n1-1", 0), ("s-n1-2", 0)],
            retention: 0,
            keep: &["s-n1-2", "s-n1-1"],
            delete: &[],
        },
        Case {
            what: "fewer files than retention",
            files: &[("s-n1-1", 0)],
            retention: 5,
            keep: &["s-n1-1"],
            delete: &[],
        },
        Case {
            what: "ignores other nodes, other prefixes, temp and unrelated files",
            files: &[
                ("s-n1-10", 0),
                ("s-n1-20", 0),
                ("s-n2-1", 0),
                ("s-weekly-n1-1", 0),
                ("s-n1-5.part", 0),
                ("s-n1-5.zip.part", 0),
                ("README", 0),
                ("s-n1-x", 0),
            ],
            retention: 1,
            keep: &["s-n1-20"],
            delete: &["s-n1-10"],
        },
        Case {
            what: "oldest deleted last; ties broken by name",
            files: &[
                ("s-n1-7", 0),
                ("s-n1-9.zip", 0),
                ("s-n1-9", 0),
                ("s-n1-3", 0),
            ],
            retention: 1,
            keep: &["s-n1-9.zip"],
            delete: &["s-n1-9", "s-n1-7", "s-n1-3"],
        },
    ];

    #[test]
    fn table() {
        for case in CASES {
            let plan = plan_prune(&candidates(case.files), "s", "n1", case.retention);
            assert_eq!(plan.keep, case.keep, "{}", case.what);
            assert_eq!(plan.delete, case.delete, "{}", case.what);
        }
    }

    #[test]
    fn plan_does_not_depend_on_listing_order() {
        let mut files = candidates(&[("s-n1-5", 0), ("s-n1-5.zip", 0), ("s-n1-1", 0)]);
        let first = plan_prune(&files, "s", "n1", 1);
        files.reverse();
        assert_eq!(plan_prune(&files, "s", "n1", 1), first);
    }
}
