//! Retention planning: which snapshots of one prefix on one node to delete.
//!
//! Pure: takes a listing, returns a plan. The store executes it. Unlike RKE2, only files named
//! exactly `<base>-<node>-<digits>[.zip]` are considered, so other nodes' files in a shared dir,
//! other base names sharing a prefix, temp files and unrelated files are never deleted.

use super::SnapshotName;

/// What retention will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Newest first.
    pub keep: Vec<String>,
    /// Newest first, like `keep`; the store deletes them in reverse (oldest first) so an
    /// interruption leaves the newest.
    pub delete: Vec<String>,
}

/// Keeps the newest `retention` snapshots named exactly `<base>-<node>-<unix>[.zip]`, ordered by
/// the name's timestamp; every other file name in `candidates` is ignored. `retention == 0`
/// keeps all. Exact parsing always yields a timestamp, so RKE2's mtime fallback never applies
/// and a listing's names are all a plan needs.
pub fn plan_prune<S: AsRef<str>>(
    candidates: &[S],
    base: &str,
    node: &str,
    retention: u32,
) -> PrunePlan {
    let mut matching: Vec<(i64, &str)> = candidates
        .iter()
        .map(AsRef::as_ref)
        .filter_map(|name| SnapshotName::parse_exact(name, base, node).map(|n| (n.unix, name)))
        .collect();
    // Newest first; equal timestamps fall back to the name so the plan never depends on the
    // listing order.
    matching.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    matching.dedup_by(|a, b| a.1 == b.1);
    let keep_count = if retention == 0 {
        matching.len()
    } else {
        (retention as usize).min(matching.len())
    };
    let (keep, delete) = matching.split_at(keep_count);
    PrunePlan {
        keep: keep.iter().map(|(_, n)| n.to_string()).collect(),
        delete: delete.iter().map(|(_, n)| n.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of a listing; the numbers beside them are mtimes, which must not matter.
    fn candidates(names: &[(&str, i64)]) -> Vec<String> {
        names.iter().map(|(n, _)| n.to_string()).collect()
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
