//! The keyspace hash recorded with every snapshot, which a restore drill compares the restored
//! member against.
//!
//! etcd's `HashKV(rev)` is a CRC-32C over every MVCC revision between the compact revision and
//! `rev`; two members with the same history and compact revision agree on it. At save time the
//! live member is asked for its current revision `R` (a `Status` call) and then for
//! `HashKV(R)`; only then does the snapshot stream start. etcd takes the snapshot when the
//! stream starts, so the snapshot holds every revision up to `R` (and maybe later ones), and a
//! member restored from it must answer `HashKV(R)` with the recorded hash, unless a compaction
//! ran between the two calls and the stream (the recorded compact revision then differs from
//! the restored member's, and the drill says the hashes are not comparable instead of failing).
//!
//! The stream itself reports no revision, and a zipped snapshot cannot be read back cheaply, so
//! `R` is taken from the live member before the stream, not from the file after it.
//!
//! The record is three string entries, in the `.metadata` record (beside the ConfigMap's extra
//! metadata) and as S3 object user metadata. Values read back are hostile: parsing is strict and
//! an entry that does not parse is reported, never guessed.

use std::collections::BTreeMap;

/// The hash of the keyspace (`HashKV.hash`).
pub const KEY_HASH: &str = "etcd-snapshot-hashkv";
/// The revision it was computed at.
pub const KEY_REVISION: &str = "etcd-snapshot-hashkv-revision";
/// The compact revision when it was computed (`HashKV.compact_revision`).
pub const KEY_COMPACT_REVISION: &str = "etcd-snapshot-hashkv-compact-revision";

/// What the live member answered just before the snapshot was taken.
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

/// Asks the live member for its current revision, then for `HashKV` at it. Call it before the
/// snapshot stream starts (see the module doc).
pub async fn record(client: &mut etcd_client::Client) -> Result<HashKvRecord, HashKvError> {
    let status = client.status().await.map_err(HashKvError::Etcd)?;
    let revision = status.header().map_or(0, |h| h.revision());
    let answer = client.hash_kv(revision).await.map_err(HashKvError::Etcd)?;
    Ok(HashKvRecord {
        hash: answer.hash(),
        revision,
        compact_revision: answer.compact_version(),
    })
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
