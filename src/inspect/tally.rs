//! What the walk sees, added up: etcd's `snapshot status` figures (the CRC-32C hash over
//! bucket names, keys and values; the entry count over all buckets; the last revision), the
//! `meta`, `members` and `cluster` bucket values, the latest state of every key for the
//! per-resource table, and the bootstrap values.
//!
//! Memory is bounded: one small record per distinct key (a 128-bit hash of the key, not the key
//! itself) up to [`MAX_TRACKED_KEYS`], then the resource table is marked incomplete.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};

use super::bbolt::Visit;
use super::mvcc::{decode_key_value, parse_revision, parse_u64_be, printable, resource_of};
use crate::bootstrap::crypto::STORAGE_PREFIX;

/// Distinct keys followed for the per-resource table (about 40 MiB of map at the limit).
pub const MAX_TRACKED_KEYS: usize = 1_000_000;
/// Distinct resource groups kept; later ones are counted under one row.
const MAX_GROUPS: usize = 10_000;
/// Bootstrap keys listed; a token's bootstrap data is tens of KiB.
const MAX_BOOTSTRAP_KEYS: usize = 64;
const MAX_BOOTSTRAP_VALUE: usize = 4 << 20;
const MAX_MEMBERS: usize = 1000;
const OVERFLOW_GROUP: &str = "(more prefixes)";

/// The latest revision of one key.
#[derive(Debug, Clone, Copy)]
struct KeyState {
    group: u32,
    bytes: u64,
    deleted: bool,
}

/// The buckets whose values the report reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Known {
    #[default]
    Other,
    Key,
    Meta,
    Members,
    MembersRemoved,
    Cluster,
}

/// A member as the `members` bucket records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub is_learner: bool,
}

/// Everything added up while walking.
#[derive(Default)]
pub struct Tally {
    crc: crc32c_state::State,
    pub total_key: u64,
    pub revision: Option<u64>,
    pub buckets: Vec<(String, u64)>,
    current: Known,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub scheduled_compact: Option<u64>,
    pub finished_compact: Option<u64>,
    pub storage_version: Option<String>,
    pub cluster_version: Option<String>,
    pub members: Vec<Member>,
    pub removed_members: Vec<String>,
    pub undecodable: u64,
    keys: HashMap<u128, KeyState>,
    pub keys_incomplete: bool,
    groups: Vec<String>,
    group_index: HashMap<String, u32>,
    /// Each `/bootstrap/` key: `None` once deleted, else its latest value when it is
    /// [`Tally::bootstrap_wanted`] and empty otherwise (only one value is ever held).
    pub bootstrap: BTreeMap<String, Option<Vec<u8>>>,
    /// The bootstrap key whose value is kept (the given token's).
    pub bootstrap_wanted: Option<String>,
}

/// Per-group figures of the latest, non-deleted revision of each key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupCount {
    pub prefix: String,
    pub keys: u64,
    pub bytes: u64,
}

impl Tally {
    /// etcd's `snapshot status` hash: CRC-32C (Castagnoli) over every bucket name, key and value.
    pub fn hash(&self) -> u32 {
        self.crc.value()
    }

    /// Keys whose latest revision is not a deletion (etcd 3.6's `totalKey`).
    pub fn live_keys(&self) -> u64 {
        self.keys.values().filter(|k| !k.deleted).count() as u64
    }

    /// The per-resource table, largest byte count first.
    pub fn groups(&self) -> Vec<GroupCount> {
        let mut out: Vec<GroupCount> = self
            .groups
            .iter()
            .map(|prefix| GroupCount {
                prefix: prefix.clone(),
                keys: 0,
                bytes: 0,
            })
            .collect();
        for state in self.keys.values().filter(|k| !k.deleted) {
            let g = &mut out[state.group as usize];
            g.keys += 1;
            g.bytes += state.bytes;
        }
        out.retain(|g| g.keys > 0);
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.prefix.cmp(&b.prefix)));
        out
    }

    fn group_of(&mut self, key: &[u8]) -> u32 {
        let mut name = resource_of(key);
        if !self.group_index.contains_key(&name) && self.groups.len() >= MAX_GROUPS {
            name = OVERFLOW_GROUP.into();
        }
        if let Some(i) = self.group_index.get(&name) {
            return *i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(name.clone());
        self.group_index.insert(name, i);
        i
    }

    fn key_entry(&mut self, rev_key: &[u8], value: &[u8]) {
        let Some(rev) = parse_revision(rev_key) else {
            self.undecodable += 1;
            return;
        };
        self.revision = Some(rev.main);
        let Some(kv) = decode_key_value(value) else {
            self.undecodable += 1;
            return;
        };
        if kv.key.starts_with(STORAGE_PREFIX.as_bytes()) {
            self.bootstrap_value(kv.key, (!rev.tombstone).then_some(kv.value));
        }
        let id = key_id(kv.key);
        if !self.keys.contains_key(&id) && self.keys.len() >= MAX_TRACKED_KEYS {
            self.keys_incomplete = true;
            return;
        }
        let group = self.group_of(kv.key);
        let bytes = (kv.key.len() + kv.value.len()) as u64;
        self.keys.insert(
            id,
            KeyState {
                group,
                bytes,
                deleted: rev.tombstone,
            },
        );
    }

    fn bootstrap_value(&mut self, key: &[u8], value: Option<&[u8]>) {
        let name = printable(key);
        // Only the wanted key's value is held: the others only need to be known present.
        let wanted = self.bootstrap_wanted.as_deref() == Some(name.as_str());
        if !wanted
            && !self.bootstrap.contains_key(&name)
            && self.bootstrap.len() >= MAX_BOOTSTRAP_KEYS
        {
            return;
        }
        let kept = value.map(|v| {
            if wanted && v.len() <= MAX_BOOTSTRAP_VALUE {
                v.to_vec()
            } else {
                Vec::new()
            }
        });
        self.bootstrap.insert(name, kept);
    }

    fn meta_entry(&mut self, key: &[u8], value: &[u8]) {
        match key {
            b"consistent_index" => self.consistent_index = parse_u64_be(value),
            b"term" => self.term = parse_u64_be(value),
            b"scheduledCompactRev" => {
                self.scheduled_compact = parse_revision(value).map(|r| r.main)
            }
            b"finishedCompactRev" => self.finished_compact = parse_revision(value).map(|r| r.main),
            b"storageVersion" => self.storage_version = Some(printable(value)),
            _ => {}
        }
    }

    fn member_entry(&mut self, key: &[u8], value: &[u8]) {
        if self.members.len() >= MAX_MEMBERS {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            name: String,
            #[serde(default, rename = "peerURLs")]
            peer_urls: Vec<String>,
            #[serde(default, rename = "isLearner")]
            is_learner: bool,
        }
        let raw: Option<Raw> = serde_json::from_slice(value).ok();
        let Some(raw) = raw else {
            self.undecodable += 1;
            return;
        };
        self.members.push(Member {
            id: printable(key),
            name: printable(raw.name.as_bytes()),
            peer_urls: raw
                .peer_urls
                .iter()
                .take(16)
                .map(|u| printable(u.as_bytes()))
                .collect(),
            is_learner: raw.is_learner,
        });
    }
}

impl Visit for Tally {
    fn bucket(&mut self, name: &[u8]) {
        self.crc.update(name);
        self.buckets.push((printable(name), 0));
        self.current = match name {
            b"key" => Known::Key,
            b"meta" => Known::Meta,
            b"members" => Known::Members,
            b"members_removed" => Known::MembersRemoved,
            b"cluster" => Known::Cluster,
            _ => Known::Other,
        };
    }

    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.crc.update(key);
        self.total_key += 1;
        if let Some(last) = self.buckets.last_mut() {
            last.1 += 1;
        }
        let Some(value) = value else { return };
        self.crc.update(value);
        match self.current {
            Known::Key => self.key_entry(key, value),
            Known::Meta => self.meta_entry(key, value),
            Known::Members => self.member_entry(key, value),
            Known::MembersRemoved if self.removed_members.len() < MAX_MEMBERS => {
                self.removed_members.push(printable(key))
            }
            Known::Cluster if key == b"clusterVersion" => {
                self.cluster_version = Some(printable(value))
            }
            _ => {}
        }
    }
}

/// A 128-bit identity for a key: two SipHash passes with different keys. Holding this rather
/// than the key keeps memory per key fixed; a collision only merges two keys' counts.
fn key_id(key: &[u8]) -> u128 {
    use std::hash::RandomState;
    thread_local! {
        static SEEDS: (RandomState, RandomState) = (RandomState::new(), RandomState::new());
    }
    SEEDS.with(|(a, b)| {
        let (mut ha, mut hb) = (a.build_hasher(), b.build_hasher());
        ha.write(key);
        hb.write(key);
        (u128::from(ha.finish()) << 64) | u128::from(hb.finish())
    })
}

/// A running CRC-32C.
mod crc32c_state {
    #[derive(Default)]
    pub struct State(u32);

    impl State {
        pub fn update(&mut self, bytes: &[u8]) {
            self.0 = crc32c::crc32c_append(self.0, bytes);
        }
        pub fn value(&self) -> u32 {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: u64, tombstone: bool) -> Vec<u8> {
        let mut k = main.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&0u64.to_be_bytes());
        if tombstone {
            k.push(b't');
        }
        k
    }

    fn kv(key: &str, value: &str) -> Vec<u8> {
        let mut m = vec![0x0a, key.len() as u8];
        m.extend_from_slice(key.as_bytes());
        m.extend_from_slice(&[0x2a, value.len() as u8]);
        m.extend_from_slice(value.as_bytes());
        m
    }

    #[test]
    fn the_latest_revision_of_each_key_decides_the_resource_table() {
        let mut t = Tally::default();
        let entries = [
            (rev(2, false), kv("/registry/pods/a", "v1")),
            (rev(3, false), kv("/registry/pods/b", "v1")),
            (rev(4, false), kv("/registry/pods/a", "v22")),
            (rev(5, true), kv("/registry/pods/b", "")),
            (rev(6, false), kv("/other", "x")),
        ];
        let mut all = b"key".to_vec();
        t.bucket(b"key");
        for (k, v) in &entries {
            t.entry(k, Some(v));
            all.extend_from_slice(k);
            all.extend_from_slice(v);
        }
        t.bucket(b"meta");
        t.entry(b"consistent_index", Some(&9u64.to_be_bytes()));
        t.entry(b"scheduledCompactRev", Some(&rev(3, false)));
        all.extend_from_slice(b"meta");
        all.extend_from_slice(b"consistent_index");
        all.extend_from_slice(&9u64.to_be_bytes());
        all.extend_from_slice(b"scheduledCompactRev");
        all.extend_from_slice(&rev(3, false));

        assert_eq!(
            t.hash(),
            crc32c::crc32c(&all),
            "one CRC over names, keys and values"
        );
        assert_eq!((t.total_key, t.revision, t.live_keys()), (7, Some(6), 2));
        assert_eq!(
            (t.consistent_index, t.scheduled_compact),
            (Some(9), Some(3))
        );
        let groups = t.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            (groups[0].prefix.as_str(), groups[0].keys, groups[0].bytes),
            ("/registry/pods", 1, 19)
        );
        assert_eq!(t.buckets, [("key".into(), 5), ("meta".into(), 2)]);
    }

    #[test]
    fn only_the_wanted_bootstrap_value_is_held() {
        let mut t = Tally {
            bootstrap_wanted: Some("/bootstrap/mine".into()),
            ..Tally::default()
        };
        t.bucket(b"key");
        t.entry(&rev(2, false), Some(&kv("/bootstrap/mine", "sealed")));
        t.entry(&rev(3, false), Some(&kv("/bootstrap/other", "sealed-too")));
        t.entry(&rev(4, false), Some(&kv("/bootstrap/gone", "x")));
        t.entry(&rev(5, true), Some(&kv("/bootstrap/gone", "")));
        assert_eq!(
            t.bootstrap["/bootstrap/mine"].as_deref(),
            Some(&b"sealed"[..])
        );
        assert_eq!(t.bootstrap["/bootstrap/other"].as_deref(), Some(&b""[..]));
        assert_eq!(t.bootstrap["/bootstrap/gone"], None);
    }
}
