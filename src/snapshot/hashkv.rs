//! The keyspace hash recorded with every snapshot, which a restore drill compares the restored
//! member against.
//!
//! etcd's `HashKV(rev)` is a CRC-32C over every MVCC revision between the compact revision and
//! `rev`; two members with the same history and compact revision agree on it. At save time the
//! live member is asked for its current revision `R` and database size (a `Status` call) before
//! the snapshot stream starts; etcd takes the snapshot when the stream starts, so the snapshot
//! holds every revision up to `R` (and maybe later ones). `HashKV(R)` is asked only once the
//! stream has ended (while the file is fsynced and published, so etcd's pass and the disk's
//! overlap), before the `.metadata` record and the S3 object's metadata are written: etcd holds its backend read lock for the whole hash, and a stream (and
//! any write) waits for that lock, so a hash before the stream delayed the save and stalled the
//! cluster's writes on big databases. A member restored from the snapshot must answer
//! `HashKV(R)` with the recorded hash, unless a compaction ran in between (the recorded compact
//! revision then differs from the restored member's, and the drill says the hashes are not
//! comparable instead of failing; a compaction past `R` makes etcd refuse the hash, and none is
//! recorded).
//!
//! Above `etcd-snapshot-hashkv-max-db-size` (`decide`) no hash is asked for at all. `R` is
//! recorded either way (`KEY_SNAPSHOT_REVISION`): delta chains anchor on it.
//!
//! The stream itself reports no revision, and a zipped snapshot cannot be read back cheaply, so
//! `R` is taken from the live member before the stream, not from the file after it.
//!
//! The record is string entries, in the `.metadata` record (beside the ConfigMap's extra
//! metadata) and as S3 object user metadata. Values read back are hostile: parsing is strict and
//! an entry that does not parse is reported, never guessed.

use std::collections::BTreeMap;

/// The hash of the keyspace (`HashKV.hash`).
pub const KEY_HASH: &str = "etcd-snapshot-hashkv";
/// The revision it was computed at.
pub const KEY_REVISION: &str = "etcd-snapshot-hashkv-revision";
/// The compact revision when it was computed (`HashKV.compact_revision`).
pub const KEY_COMPACT_REVISION: &str = "etcd-snapshot-hashkv-compact-revision";
/// The revision `R` the live member reported before the stream, recorded with or without a hash.
pub const KEY_SNAPSHOT_REVISION: &str = "etcd-snapshot-revision";

/// What the live member answered for the revision taken just before the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKvRecord {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

/// A recorded entry that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum HashKvError {
    #[error("recorded {key} is {value:?}; expected {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("recorded {present} without {missing}")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    #[error("failed to ask etcd for the keyspace hash")]
    Etcd(#[source] etcd_client::Error),
    #[error("etcd compacted revision {revision} before its keyspace hash was asked for")]
    Compacted { revision: i64 },
}

impl HashKvRecord {
    /// The three entries, as written to the `.metadata` record and the S3 object.
    pub fn entries(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (KEY_HASH.to_string(), self.hash.to_string()),
            (KEY_REVISION.to_string(), self.revision.to_string()),
            (
                KEY_COMPACT_REVISION.to_string(),
                self.compact_revision.to_string(),
            ),
        ])
    }

    /// Reads the record from a metadata map (key case ignored: S3 lower-cases user metadata).
    /// `Ok(None)` when no entry is there (a snapshot saved before hashes were recorded, or by
    /// RKE2).
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
    ) -> Result<Option<Self>, HashKvError> {
        let find = |key: &str| {
            entries
                .clone()
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let (hash, revision, compact) = (
            find(KEY_HASH),
            find(KEY_REVISION),
            find(KEY_COMPACT_REVISION),
        );
        let (hash, revision, compact) = match (hash, revision, compact) {
            (None, None, None) => return Ok(None),
            (Some(h), Some(r), Some(c)) => (h, r, c),
            (h, r, _) => {
                let (present, missing) = match (h, r) {
                    (None, _) => (KEY_REVISION, KEY_HASH),
                    (_, None) => (KEY_HASH, KEY_REVISION),
                    _ => (KEY_HASH, KEY_COMPACT_REVISION),
                };
                return Err(HashKvError::Incomplete { present, missing });
            }
        };
        Ok(Some(HashKvRecord {
            hash: parse(KEY_HASH, hash, "a 32-bit unsigned decimal")?,
            revision: parse_revision(KEY_REVISION, revision)?,
            compact_revision: parse_compact(compact)?,
        }))
    }
}

fn parse<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, HashKvError> {
    // `FromStr` for integers accepts a leading `+`; a record we wrote never has one.
    let digits =
        !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| HashKvError::Invalid {
            key,
            value: value.chars().take(64).collect(),
            expected,
        })
}

fn parse_revision(key: &'static str, value: &str) -> Result<i64, HashKvError> {
    parse(key, value, "a non-negative 64-bit decimal revision")
}

/// etcd answers -1 for a member that was never compacted.
fn parse_compact(value: &str) -> Result<i64, HashKvError> {
    let expected = "a 64-bit decimal revision (-1: never compacted)";
    match value.strip_prefix('-') {
        Some(rest) => parse::<i64>(KEY_COMPACT_REVISION, rest, expected).map(|n| -n),
        None => parse(KEY_COMPACT_REVISION, value, expected),
    }
}

/// The live member's state before the stream: its revision `R` and database size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStatus {
    pub revision: i64,
    pub db_size: u64,
}

impl LiveStatus {
    /// The entry recorded with every snapshot whose `R` is known.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let revision = self.revision.to_string();
        BTreeMap::from([(KEY_SNAPSHOT_REVISION.to_string(), revision)])
    }
}

/// Whether to ask for the hash after the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashDecision {
    Hash,
    /// `etcd-snapshot-hashkv-max-db-size` is 0.
    Never,
    /// The database is bigger than the limit: the hash would hold etcd's read lock too long.
    TooBig {
        db_size: u64,
        max: u64,
    },
}

/// Hash when the database is at most `max` bytes; `max` 0 never hashes. Pure.
pub fn decide(db_size: u64, max: u64) -> HashDecision {
    match max {
        0 => HashDecision::Never,
        _ if db_size > max => HashDecision::TooBig { db_size, max },
        _ => HashDecision::Hash,
    }
}

/// Asks the live member for its current revision and database size (before the stream).
pub async fn live_status(client: &mut etcd_client::Client) -> Result<LiveStatus, HashKvError> {
    let status = client.status().await.map_err(HashKvError::Etcd)?;
    Ok(LiveStatus {
        revision: status.header().map_or(0, |h| h.revision()),
        db_size: u64::try_from(status.db_size()).unwrap_or(0),
    })
}

/// Asks for `HashKV` at `revision` (after the stream, see the module doc); a revision compacted
/// meanwhile is `HashKvError::Compacted`.
pub async fn hash_at(
    client: &mut etcd_client::Client,
    revision: i64,
) -> Result<HashKvRecord, HashKvError> {
    match client.hash_kv(revision).await {
        Ok(answer) => Ok(HashKvRecord {
            hash: answer.hash(),
            revision,
            compact_revision: answer.compact_version(),
        }),
        Err(e) if is_compacted(&e) => Err(HashKvError::Compacted { revision }),
        Err(e) => Err(HashKvError::Etcd(e)),
    }
}

/// etcd's ErrCompacted ("mvcc: required revision has been compacted", code OutOfRange).
fn is_compacted(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.message().contains("required revision has been compacted"))
}

/// The revision a snapshot is known to hold every revision up to: `KEY_SNAPSHOT_REVISION`,
/// else (snapshots saved before it was recorded) the hash record's. None when neither parses.
pub fn recorded_revision<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
) -> Option<i64> {
    let own = entries
        .clone()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(KEY_SNAPSHOT_REVISION))
        .map(|(_, v)| parse_revision(KEY_SNAPSHOT_REVISION, v));
    match own {
        Some(parsed) => parsed.ok(),
        None => HashKvRecord::from_entries(entries)
            .ok()
            .flatten()
            .map(|r| r.revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn entries_round_trip_and_s3_lower_case_keys_are_read() {
        let record = HashKvRecord {
            hash: 4_000_000_000,
            revision: 5801,
            compact_revision: 12,
        };
        assert_eq!(
            HashKvRecord::from_entries(&record.entries()).unwrap(),
            Some(record)
        );
        let s3 = map(&[
            ("Etcd-Snapshot-HashKV", "7"),
            ("etcd-snapshot-hashkv-revision", "9"),
            ("ETCD-SNAPSHOT-HASHKV-COMPACT-REVISION", "-1"),
            ("rke2-node-name", "n1"),
        ]);
        assert_eq!(
            HashKvRecord::from_entries(&s3).unwrap().map(|r| r.revision),
            Some(9)
        );
    }

    #[test]
    fn the_hash_is_skipped_above_the_limit_and_never_with_zero() {
        assert_eq!(decide(0, 0), HashDecision::Never);
        assert_eq!(decide(1 << 40, 0), HashDecision::Never);
        assert_eq!(decide(2 << 30, 2 << 30), HashDecision::Hash);
        assert_eq!(decide(0, 1), HashDecision::Hash);
        assert_eq!(
            decide((2 << 30) + 1, 2 << 30),
            HashDecision::TooBig {
                db_size: (2 << 30) + 1,
                max: 2 << 30
            }
        );
    }

    #[test]
    fn the_recorded_revision_is_the_own_entry_else_the_hash_record() {
        let status = LiveStatus {
            revision: 42,
            db_size: 1,
        };
        assert_eq!(recorded_revision(&status.entries()), Some(42));
        let old = map(&[
            (KEY_HASH, "1"),
            (KEY_REVISION, "7"),
            (KEY_COMPACT_REVISION, "-1"),
        ]);
        assert_eq!(recorded_revision(&old), Some(7));
        assert_eq!(
            recorded_revision(&map(&[("Etcd-Snapshot-Revision", "9")])),
            Some(9)
        );
        assert_eq!(
            recorded_revision(&map(&[(KEY_SNAPSHOT_REVISION, "-3")])),
            None
        );
        assert_eq!(recorded_revision(&map(&[("a", "b")])), None);
    }

    #[test]
    fn absent_is_none_and_partial_or_invalid_records_are_errors() {
        assert_eq!(
            HashKvRecord::from_entries(&map(&[("a", "b")])).unwrap(),
            None
        );
        let partial = map(&[(KEY_HASH, "1"), (KEY_REVISION, "2")]);
        assert!(matches!(
            HashKvRecord::from_entries(&partial),
            Err(HashKvError::Incomplete { missing, .. }) if missing == KEY_COMPACT_REVISION
        ));
        for (key, bad) in [
            (KEY_HASH, "4294967296"),
            (KEY_HASH, "+1"),
            (KEY_REVISION, "-1"),
            (KEY_REVISION, ""),
            (KEY_COMPACT_REVISION, "1e3"),
            (KEY_COMPACT_REVISION, "--1"),
        ] {
            let mut m = map(&[
                (KEY_HASH, "1"),
                (KEY_REVISION, "2"),
                (KEY_COMPACT_REVISION, "0"),
            ]);
            m.insert(key.to_string(), bad.to_string());
            let err = HashKvRecord::from_entries(&m).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
