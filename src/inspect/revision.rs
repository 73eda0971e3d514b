//! The revision a member restored from a snapshot serves, read from a handful of pages instead
//! of the whole file: meta page -> root bucket tree -> the `key` bucket -> its rightmost leaf,
//! whose last key is the highest revision (revision keys sort bytewise as big-endian numbers),
//! and `meta/finishedCompactRev`.
//!
//! A restore needs this figure beside the restore tool. `etcdutl snapshot status` gives the
//! same revision but walks and hashes every page, competing with the tool for the CPU; this
//! reads a few pages (tens of KiB on a gigabyte snapshot). It checks only what it reads (the
//! meta checksum, page ids, bounds, types); whether the file is whole is the trailer check's
//! and the walker's job. Pure over positioned reads; damage is an error string, never a panic.

use std::path::Path;

use super::bbolt::{BRANCH, LEAF, MAX_SPAN, Meta, PAGE_HEADER, PageSource, Problems, read_meta};
use super::mvcc::parse_revision;
use super::pages::{Element, ElementKind, elements, parse_header};

/// Deepest tree followed; real trees are a handful of levels deep.
const MAX_DEPTH: usize = 64;
/// etcd's trailer after the database image.
const TRAILER: u64 = 32;

/// The revisions a snapshot's database records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// The highest revision in the `key` bucket (0 without any): `snapshot status`'s revision.
    pub latest: u64,
    /// `meta/finishedCompactRev`: the last finished compaction, when one ran.
    pub finished_compact: Option<u64>,
}

impl Revisions {
    /// The revision a member restored without a revision bump serves: etcd starts at the
    /// finished compaction when the revisions up to it were all compacted away (deleted keys),
    /// and serves at least 1. Pure.
    pub fn served(&self) -> u64 {
        self.latest.max(self.finished_compact.unwrap_or(0)).max(1)
    }
}

/// Reads the revisions of the snapshot file at `path` (the trailer, if any, excluded).
pub fn read_file(path: &Path) -> Result<Revisions, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = PageSource::len(&file);
    let len = if size % 512 == TRAILER {
        size - TRAILER
    } else {
        size
    };
    read(&super::bbolt::Bounded { source: &file, len })
        .map_err(|e| format!("cannot read the revision of {}: {e}", path.display()))
}

/// Reads the revisions of the database image `src`.
pub fn read(src: &dyn PageSource) -> Result<Revisions, String> {
    let mut problems = Problems::default();
    let (meta, _) = read_meta(src, &mut problems)
        .ok_or_else(|| format!("no valid meta page: {}", problems.first.join("; ")))?;
    let tree = Tree { src, meta };
    let latest = match tree.lookup(meta.root, None, b"key", 0)? {
        None => 0,
        Some(bucket) => match tree.last_key(&bucket, 0)? {
            None => 0,
            Some(key) => {
                parse_revision(&key)
                    .ok_or_else(|| {
                        format!(
                            "the last key of bucket key is not a revision ({} bytes)",
                            key.len()
                        )
                    })?
                    .main
            }
        },
    };
    let finished_compact = match tree.lookup(meta.root, None, b"meta", 0)? {
        None => None,
        Some(bucket) => {
            let (root, inline) = bucket_root(&bucket)?;
            match tree.lookup(root, inline, b"finishedCompactRev", 0)? {
                None => None,
                Some(value) => Some(
                    parse_revision(&value)
                        .ok_or("meta/finishedCompactRev is not a revision")?
                        .main,
                ),
            }
        }
    };
    Ok(Revisions {
        latest,
        finished_compact,
    })
}

/// One bucket tree's pages.
struct Tree<'a> {
    src: &'a dyn PageSource,
    meta: Meta,
}

impl Tree<'_> {
    /// The value stored under `key` in the tree rooted at page `id` (or the `inline` page),
    /// as bbolt's cursor finds it: in a branch, the last child whose first key is <= `key`.
    fn lookup(
        &self,
        id: u64,
        inline: Option<&[u8]>,
        key: &[u8],
        depth: usize,
    ) -> Result<Option<Vec<u8>>, String> {
        let page = self.page_or_inline(id, inline, depth)?;
        let flags = parse_header(&page).flags;
        if flags == BRANCH {
            let elems = elements(&page, ElementKind::Branch)?;
            let child = elems
                .iter()
                .take_while(|e| e.key <= key)
                .last()
                .unwrap_or(&elems[0])
                .child;
            return self.lookup(child, None, key, depth + 1);
        }
        let elems = leaf_elements(&page, flags, id)?;
        Ok(elems
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.to_vec()))
    }

    /// The last key of the bucket whose header is `bucket` (None when it is empty).
    fn last_key(&self, bucket: &[u8], depth: usize) -> Result<Option<Vec<u8>>, String> {
        let (mut id, inline) = bucket_root(bucket)?;
        let mut inline = inline;
        for depth in depth..MAX_DEPTH {
            let page = self.page_or_inline(id, inline.take(), depth)?;
            let flags = parse_header(&page).flags;
            if flags == BRANCH {
                let elems = elements(&page, ElementKind::Branch)?;
                id = elems.last().map_or(0, |e| e.child);
                continue;
            }
            let elems = leaf_elements(&page, flags, id)?;
            return Ok(elems.last().map(|e| e.key.to_vec()));
        }
        Err(format!("the tree is deeper than {MAX_DEPTH} levels"))
    }

    fn page_or_inline(
        &self,
        id: u64,
        inline: Option<&[u8]>,
        depth: usize,
    ) -> Result<Vec<u8>, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("the tree is deeper than {MAX_DEPTH} levels"));
        }
        match inline {
            Some(page) => Ok(page.to_vec()),
            None => self.read_page(id),
        }
    }

    /// Page `id` with its overflow, after the checks that keep every read in bounds.
    fn read_page(&self, id: u64) -> Result<Vec<u8>, String> {
        let page_size = u64::from(self.meta.page_size);
        if id < 2 || id >= self.meta.hwm {
            return Err(format!("page {id}: outside 2..{}", self.meta.hwm));
        }
        let mut buf = vec![0u8; page_size as usize];
        self.src
            .read_at(&mut buf, id * page_size)
            .map_err(|e| format!("page {id}: cannot be read: {e}"))?;
        let header = parse_header(&buf);
        if header.id != id {
            return Err(format!("page {id}: its header says page {}", header.id));
        }
        let span = (u64::from(header.overflow) + 1) * page_size;
        if id + u64::from(header.overflow) >= self.meta.hwm || span > MAX_SPAN {
            return Err(format!(
                "page {id}: {} overflow pages out of bounds",
                header.overflow
            ));
        }
        if header.overflow > 0 {
            buf.resize(span as usize, 0);
            self.src
                .read_at(&mut buf[page_size as usize..], (id + 1) * page_size)
                .map_err(|e| format!("page {id}: overflow cannot be read: {e}"))?;
        }
        Ok(buf)
    }
}

fn leaf_elements(page: &[u8], flags: u16, id: u64) -> Result<Vec<Element<'_>>, String> {
    if flags != LEAF {
        return Err(format!(
            "page {id}: flags {flags:#x}, expected a branch or leaf"
        ));
    }
    elements(page, ElementKind::Leaf)
}

/// A bucket value: its root page, or its inline page when the root is 0.
fn bucket_root(value: &[u8]) -> Result<(u64, Option<&[u8]>), String> {
    let root = value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or("a bucket header shorter than 8 bytes")?;
    if root != 0 {
        return Ok((root, None));
    }
    match value.get(16..).filter(|p| <[u8]>::len(p) >= PAGE_HEADER) {
        Some(page) => Ok((0, Some(page))),
        None => Err("an inline bucket without its page".into()),
    }
}

#[cfg(test)]
#[path = "revision_tests.rs"]
mod tests;
