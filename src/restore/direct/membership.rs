//! The restore tool's share of a direct restore, and the one change it makes to the database.
//!
//! etcd 3.4's `etcdctl snapshot restore` does two separate things: it writes the new
//! member's WAL and raft snapshot (which depend only on the member name, peer URL and cluster
//! token, never on the database), and it copies the database, changing exactly one value in
//! it: `meta/consistent_index`, set to the index of the new membership's last raft entry (an
//! 8-byte big-endian number that every etcd database already holds). A direct restore runs the
//! tool on an empty database for the first part, and makes that one change itself in the
//! plaintext it decrypted, in place. Both facts are checked on every restore: the tool must
//! have written nothing but that value into the empty database, and the snapshot must hold the
//! value at the same size and no unfinished compaction (which the tool's opening of the
//! database would resume); otherwise the restore goes through the tool as before. A test
//! compares the result with the tool's own, value for value.
//!
//! One quirk of the 3.4 tool is not reproduced: for each member it finds in the database it
//! deletes the user key spelled like that member's hex ID, should one exist. The direct
//! restore keeps such a key, as the snapshot has it.

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::inspect::bbolt::{self, Bounded, MAGIC, VERSION, Visit, fnv1a64};
use crate::inspect::mvcc::parse_revision;
use crate::inspect::tree::{Found, value_in};

/// The bucket and key the tool rewrites.
pub const META_BUCKET: &[u8] = b"meta";
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Page size of the empty database (bbolt's default on the hosts etcd runs on).
const PAGE: usize = 4096;

/// A database bbolt itself would create: two meta pages, an empty freelist (page 2) and an
/// empty root leaf (page 3). Pure.
pub fn empty_database() -> Vec<u8> {
    let mut db = vec![0u8; 4 * PAGE];
    for (id, txid) in [(0u64, 0u64), (1, 1)] {
        let page = &mut db[id as usize * PAGE..(id as usize + 1) * PAGE];
        page_header(page, id, bbolt::META);
        let mut meta = Vec::with_capacity(64);
        for word in [MAGIC, VERSION, PAGE as u32, 0] {
            meta.extend_from_slice(&word.to_le_bytes());
        }
        // root bucket {root page, sequence}, freelist page, high-water mark, txid
        for word in [3u64, 0, 2, 4, txid] {
            meta.extend_from_slice(&word.to_le_bytes());
        }
        let sum = fnv1a64(&meta);
        meta.extend_from_slice(&sum.to_le_bytes());
        page[bbolt::PAGE_HEADER..bbolt::PAGE_HEADER + meta.len()].copy_from_slice(&meta);
    }
    page_header(&mut db[2 * PAGE..3 * PAGE], 2, bbolt::FREELIST);
    page_header(&mut db[3 * PAGE..4 * PAGE], 3, bbolt::LEAF);
    db
}

fn page_header(page: &mut [u8], id: u64, flags: u16) {
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
}

/// One value the tool left in the empty database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bucket: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Every value in the database file at `path` (the tool's output on the empty database: a
/// few entries; nested buckets are not values).
pub fn entries(path: &Path) -> Result<Vec<Entry>, String> {
    struct Collect(Vec<u8>, Vec<Entry>);
    impl Visit for Collect {
        fn bucket(&mut self, name: &[u8]) {
            self.0 = name.to_vec();
        }
        fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
            if let Some(value) = value {
                self.1.push(Entry {
                    bucket: self.0.clone(),
                    key: key.to_vec(),
                    value: value.to_vec(),
                });
            }
        }
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut collect = Collect(Vec::new(), Vec::new());
    let walked = bbolt::walk(&file, &mut collect);
    if !walked.problems.is_empty() {
        return Err(format!(
            "{}: {}",
            path.display(),
            walked.problems.first.join("; ")
        ));
    }
    Ok(collect.1)
}

/// The change to make: `value` written over the bytes at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub value: Vec<u8>,
}

/// What the tool wrote into the empty database, set against the snapshot's own
/// `meta/consistent_index`: the patch that reproduces the tool's copy, or why this database
/// must go through the tool. Pure.
pub fn decide_patch(tool_wrote: &[Entry], ours: Option<&Found>) -> Result<Patch, String> {
    let [only] = tool_wrote else {
        return Err(format!(
            "the restore tool wrote {} values into an empty database, not just meta/consistent_index",
            tool_wrote.len()
        ));
    };
    if only.bucket != META_BUCKET || only.key != CONSISTENT_INDEX || only.value.len() != 8 {
        return Err(format!(
            "the restore tool wrote {}/{} ({} bytes), not an 8-byte meta/consistent_index",
            String::from_utf8_lossy(&only.bucket),
            String::from_utf8_lossy(&only.key),
            only.value.len()
        ));
    }
    match ours {
        Some(found) if found.value.len() == 8 => Ok(Patch {
            offset: found.offset,
            value: only.value.clone(),
        }),
        Some(found) => Err(format!(
            "the snapshot's meta/consistent_index is {} bytes, not 8",
            found.value.len()
        )),
        None => Err("the snapshot holds no meta/consistent_index".into()),
    }
}

/// The patch for the plaintext database at `path` (its first `image_len` bytes: the trailer
/// excluded), given what the tool wrote into the empty database at `tool_db`.
pub fn patch_for(tool_db: &Path, path: &Path, image_len: u64) -> Result<Patch, String> {
    let tool_wrote = entries(tool_db)?;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let image = Bounded {
        source: &file,
        len: image_len,
    };
    let compaction = |key: &[u8]| -> Result<Option<u64>, String> {
        Ok(value_in(&image, META_BUCKET, key)?
            .and_then(|found| parse_revision(&found.value))
            .map(|rev| rev.main))
    };
    if let Some(reason) = unfinished_compaction(
        compaction(b"scheduledCompactRev")?,
        compaction(b"finishedCompactRev")?,
    ) {
        return Err(reason);
    }
    let ours = value_in(&image, META_BUCKET, CONSISTENT_INDEX)?;
    decide_patch(&tool_wrote, ours.as_ref())
}

/// A compaction the snapshot records as scheduled but not finished, which the tool's own
/// opening of the database would resume: a change this restore does not reproduce. Pure.
pub fn unfinished_compaction(scheduled: Option<u64>, finished: Option<u64>) -> Option<String> {
    let scheduled = scheduled?;
    (scheduled > finished.unwrap_or(0)).then(|| {
        format!("the snapshot has a compaction to revision {scheduled} scheduled and not finished")
    })
}

/// Cuts the trailer off the plaintext at `path` and writes the patch (the caller syncs once
/// the file is in place).
pub fn apply(path: &Path, image_len: u64, patch: &Patch) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(image_len)?;
    file.write_all_at(&patch.value, patch.offset)
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
