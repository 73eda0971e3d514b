//! The drill's verdict from what `inspect` read and what the throwaway member served. Pure.

use crate::inspect::report::Check;
use crate::snapshot::hashkv::HashKvRecord;

/// What the file says the member must serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The snapshot's revision (`inspect`'s `etcd_status.revision`).
    pub revision: u64,
    /// Keys whose latest revision is not a deletion (`inspect`'s `live_keys`).
    pub keys: u64,
    /// The hash recorded at save time: absent for older snapshots and RKE2's, an error text
    /// when the recorded entries do not parse.
    pub recorded: Option<Result<HashKvRecord, String>>,
}

/// `HashKV` as the restored member answered it at the recorded revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedHash {
    pub hash: u32,
    pub compact_revision: i64,
}

/// What the restored member served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The revision in its response header.
    pub revision: i64,
    /// Its `count_only` range over all keys.
    pub keys: u64,
    /// `HashKV` at the recorded revision, or its error (e.g. the revision is compacted).
    pub hash: Option<Result<ObservedHash, String>>,
    /// Keys read by the paged full read, and their bytes (key + value).
    pub read_keys: u64,
    pub read_bytes: u64,
}

/// The member's checks, in order: revision, keys, hashkv, read.
pub fn judge(expected: &Expected, observed: &Observed) -> Vec<Check> {
    // etcd serves revision 1 for a database without any key (its file says 0).
    let want_revision = i64::try_from(expected.revision.max(1)).unwrap_or(i64::MAX);
    vec![
        Check::new(
            "revision",
            observed.revision == want_revision,
            format!(
                "the member serves revision {}, the file holds {want_revision}",
                observed.revision
            ),
        ),
        Check::new(
            "keys",
            observed.keys == expected.keys,
            format!(
                "the member counts {} keys, the file holds {}",
                observed.keys, expected.keys
            ),
        ),
        hash_check(&expected.recorded, &observed.hash),
        Check::new(
            "read",
            observed.read_keys == observed.keys,
            format!(
                "read {} keys ({} bytes) once each, in pages; the member counts {}",
                observed.read_keys, observed.read_bytes, observed.keys
            ),
        ),
    ]
}

/// The recorded hash against the member's. Only a comparable pair can fail: a snapshot without
/// a recorded hash, or one whose compact revision moved between the stream and the hash, is
/// said to be not compared.
fn hash_check(
    recorded: &Option<Result<HashKvRecord, String>>,
    observed: &Option<Result<ObservedHash, String>>,
) -> Check {
    let recorded = match recorded {
        None => {
            return Check::new(
                "hashkv",
                true,
                "no hash recorded with this snapshot (saved before hashes were recorded, by RKE2, \
                 or with a database over etcd-snapshot-hashkv-max-db-size): not compared",
            );
        }
        Some(Err(e)) => return Check::new("hashkv", false, format!("the record is invalid: {e}")),
        Some(Ok(r)) => r,
    };
    let observed = match observed {
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            return Check::new(
                "hashkv",
                false,
                format!(
                    "the member did not give HashKV at the recorded revision {}: {e}",
                    recorded.revision
                ),
            );
        }
        None => return Check::new("hashkv", false, "the member was not asked for HashKV"),
    };
    if observed.compact_revision != recorded.compact_revision {
        return Check::new(
            "hashkv",
            true,
            format!(
                "not compared: etcd compacted to revision {} between the snapshot and the hash \
                 (the member's compact revision is {})",
                recorded.compact_revision, observed.compact_revision
            ),
        );
    }
    Check::new(
        "hashkv",
        observed.hash == recorded.hash,
        format!(
            "HashKV at revision {}: the member gives {}, recorded at save {}",
            recorded.revision, observed.hash, recorded.hash
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(recorded: Option<Result<HashKvRecord, String>>) -> Expected {
        Expected {
            revision: 21,
            keys: 20,
            recorded,
        }
    }

    fn observed(hash: u32, compact: i64) -> Observed {
        Observed {
            revision: 21,
            keys: 20,
            hash: Some(Ok(ObservedHash {
                hash,
                compact_revision: compact,
            })),
            read_keys: 20,
            read_bytes: 900,
        }
    }

    fn record(hash: u32, compact: i64) -> Option<Result<HashKvRecord, String>> {
        Some(Ok(HashKvRecord {
            hash,
            revision: 21,
            compact_revision: compact,
        }))
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_faithful_member_passes_and_each_difference_fails_its_own_check() {
        assert!(failed(&judge(&expected(record(7, 0)), &observed(7, 0))).is_empty());
        assert_eq!(
            failed(&judge(&expected(record(7, 0)), &observed(8, 0))),
            ["hashkv"]
        );
        let mut short = observed(7, 0);
        short.read_keys = 19;
        assert_eq!(failed(&judge(&expected(record(7, 0)), &short)), ["read"]);
        let mut other = observed(7, 0);
        other.revision = 5;
        other.keys = 3;
        other.read_keys = 3;
        assert_eq!(
            failed(&judge(&expected(record(7, 0)), &other)),
            ["revision", "keys"]
        );
    }

    #[test]
    fn an_absent_or_incomparable_hash_is_said_not_failed_and_an_invalid_one_fails() {
        let none = judge(&expected(None), &observed(1, 0));
        assert!(failed(&none).is_empty());
        assert!(none[2].detail.contains("no hash recorded"), "{:?}", none[2]);
        let moved = judge(&expected(record(7, 3)), &observed(9, 0));
        assert!(failed(&moved).is_empty());
        assert!(moved[2].detail.contains("not compared"), "{:?}", moved[2]);
        let invalid = judge(&expected(Some(Err("bad".into()))), &observed(7, 0));
        assert_eq!(failed(&invalid), ["hashkv"]);
        let mut refused = observed(7, 0);
        refused.hash = Some(Err("compacted".into()));
        assert_eq!(
            failed(&judge(&expected(record(7, 0)), &refused)),
            ["hashkv"]
        );
    }

    #[test]
    fn an_empty_database_serves_revision_one() {
        let e = Expected {
            revision: 0,
            keys: 0,
            recorded: None,
        };
        let o = Observed {
            revision: 1,
            keys: 0,
            hash: None,
            read_keys: 0,
            read_bytes: 0,
        };
        assert!(failed(&judge(&e, &o)).is_empty());
    }
}
