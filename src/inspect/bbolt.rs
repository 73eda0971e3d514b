//! A read-only walker over a bbolt database file (the format etcd keeps its state in).
//!
//! It reads pages with positioned reads, one page (plus its overflow) at a time, so memory is a
//! few page buffers and two bitmaps of one bit per page, whatever the file size. It checks what
//! bbolt's own `tx.Check` checks (every page below the high-water mark reachable exactly once or
//! free, no page beyond it, valid page types, a consistent freelist) plus the meta pages'
//! checksums, page ids and key order, and hands every entry of every root bucket, in key order,
//! to a [`Visit`]or. Every offset and length read from the file is bounds-checked; damage is
//! reported as a line in [`Problems`], never a panic.

pub use super::meta::{MAGIC, Meta, VERSION, fnv1a64, read_meta};
use super::pages::{Bitmap, ElementKind, PageHeader, elements, parse_header};
pub use super::pages::{Bounded, PageSource};

/// Page flags (bbolt's `branchPageFlag`, `leafPageFlag`, `metaPageFlag`, `freelistPageFlag`).
pub const BRANCH: u16 = 0x01;
pub const LEAF: u16 = 0x02;
pub const META: u16 = 0x04;
pub const FREELIST: u16 = 0x10;
/// `pgidNoFreelist`: the freelist is not stored (etcd opens bbolt with `NoFreelistSync`).
pub const NO_FREELIST: u64 = u64::MAX;
/// Size of a page header.
pub const PAGE_HEADER: usize = 16;
/// Largest page span (a page plus its overflow) read into memory: etcd values are at most a
/// few MiB, so anything bigger is damage, and refusing it keeps memory bounded.
pub const MAX_SPAN: u64 = 64 << 20;
/// Deepest tree (nested buckets included) walked; real trees are a handful of levels deep.
const MAX_DEPTH: usize = 64;
/// Problems kept in full; the rest are only counted.
const MAX_PROBLEMS: usize = 20;

/// What the walker found wrong, one line each.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Problems {
    pub first: Vec<String>,
    pub total: u64,
}

impl Problems {
    pub fn push(&mut self, problem: String) {
        self.total += 1;
        if self.first.len() < MAX_PROBLEMS {
            self.first.push(problem);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Receives every entry of every root bucket, in key order, as etcd's `snapshot status` sees
/// them.
pub trait Visit {
    /// A root-level bucket begins.
    fn bucket(&mut self, name: &[u8]);
    /// An entry of that bucket; `None` for a nested bucket (etcd has none).
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>);
}

/// The structural facts of a walk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Structure {
    pub page_size: u32,
    pub high_water_mark: u64,
    pub txid: u64,
    /// The meta page the walk used (the valid one with the higher txid).
    pub meta_page: u8,
    pub freelist_stored: bool,
    pub reachable_pages: u64,
    pub free_pages: u64,
    pub problems: Problems,
}

/// Walks the whole database: meta pages, freelist, every bucket's tree.
pub fn walk(src: &dyn PageSource, visit: &mut dyn Visit) -> Structure {
    let mut problems = Problems::default();
    let Some((meta, meta_page)) = read_meta(src, &mut problems) else {
        return Structure {
            page_size: 0,
            high_water_mark: 0,
            txid: 0,
            meta_page: 0,
            freelist_stored: false,
            reachable_pages: 0,
            free_pages: 0,
            problems,
        };
    };
    let mut walker = Walker::new(src, meta, problems);
    walker.check_size();
    walker.load_freelist();
    walker.walk_root(visit);
    walker.finish(meta_page)
}

/// The walk's state: which pages were reached or freed, reusable buffers per depth.
struct Walker<'a> {
    src: &'a dyn PageSource,
    meta: Meta,
    reachable: Bitmap,
    freed: Bitmap,
    problems: Problems,
    buffers: Vec<Vec<u8>>,
}

impl<'a> Walker<'a> {
    fn new(src: &'a dyn PageSource, meta: Meta, problems: Problems) -> Self {
        // The bitmaps are sized by the high-water mark, bounded by what the file can hold.
        let pages_in_file = src.len() / u64::from(meta.page_size);
        let tracked = meta.hwm.min(pages_in_file.saturating_add(1));
        let mut reachable = Bitmap::new(tracked);
        reachable.set(0);
        reachable.set(1);
        Walker {
            src,
            meta,
            reachable,
            freed: Bitmap::new(tracked),
            problems,
            buffers: Vec::new(),
        }
    }

    fn check_size(&mut self) {
        let needed = self.meta.hwm.saturating_mul(u64::from(self.meta.page_size));
        if needed > self.src.len() {
            self.problems.push(format!(
                "the database is {} bytes, shorter than its high-water mark ({} pages of {} bytes = {needed} bytes)",
                self.src.len(),
                self.meta.hwm,
                self.meta.page_size
            ));
        }
        if self.meta.hwm < 2 {
            self.problems.push(format!(
                "high-water mark {} is below the two meta pages",
                self.meta.hwm
            ));
        }
    }

    /// Reads page `id` and its overflow into the depth's buffer; checks bounds and the id.
    fn read_page(&mut self, id: u64, depth: usize) -> Option<(PageHeader, Vec<u8>)> {
        let page_size = u64::from(self.meta.page_size);
        if id >= self.meta.hwm || id >= self.reachable.len() {
            self.problems.push(format!(
                "page {id}: beyond the high-water mark {}",
                self.meta.hwm
            ));
            return None;
        }
        let mut buf = self
            .buffers
            .get_mut(depth)
            .map(std::mem::take)
            .unwrap_or_default();
        buf.resize(page_size as usize, 0);
        if let Err(e) = self.src.read_at(&mut buf, id * page_size) {
            self.problems
                .push(format!("page {id}: cannot be read: {e}"));
            return None;
        }
        let header = parse_header(&buf);
        if header.id != id {
            self.problems.push(format!(
                "page {id}: its header says it is page {}",
                header.id
            ));
            return None;
        }
        let span = (u64::from(header.overflow) + 1) * page_size;
        if id + u64::from(header.overflow) >= self.meta.hwm || span > MAX_SPAN {
            self.problems.push(format!(
                "page {id}: {} overflow pages run past the high-water mark or the {MAX_SPAN}-byte limit",
                header.overflow
            ));
            return None;
        }
        if header.overflow > 0 {
            buf.resize(span as usize, 0);
            if let Err(e) = self
                .src
                .read_at(&mut buf[page_size as usize..], (id + 1) * page_size)
            {
                self.problems
                    .push(format!("page {id}: overflow cannot be read: {e}"));
                return None;
            }
        }
        Some((header, buf))
    }

    fn give_back(&mut self, depth: usize, buf: Vec<u8>) {
        if self.buffers.len() <= depth {
            self.buffers.resize_with(depth + 1, Vec::new);
        }
        self.buffers[depth] = buf;
    }

    /// Marks a page span as reachable; false (and a problem) when it already was, or is free.
    fn claim(&mut self, header: &PageHeader) -> bool {
        let mut ok = true;
        for id in header.id..=header.id + u64::from(header.overflow) {
            if self.reachable.get(id) {
                self.problems
                    .push(format!("page {id}: multiple references"));
                ok = false;
            }
            if self.freed.get(id) {
                self.problems.push(format!("page {id}: reachable freed"));
            }
            self.reachable.set(id);
        }
        ok
    }

    fn load_freelist(&mut self) {
        if self.meta.freelist == NO_FREELIST {
            return;
        }
        let id = self.meta.freelist;
        let Some((header, buf)) = self.read_page(id, 0) else {
            return;
        };
        if header.flags != FREELIST {
            self.problems.push(format!(
                "page {id}: the freelist page has flags {:#x}",
                header.flags
            ));
            return;
        }
        self.claim(&header);
        match super::pages::freelist_ids(&buf, header.count) {
            Ok(ids) => {
                for free in ids {
                    if free < 2 || free >= self.meta.hwm || free >= self.freed.len() {
                        self.problems
                            .push(format!("freelist: page {free} is out of range"));
                    } else if self.freed.get(free) {
                        self.problems.push(format!("page {free}: already freed"));
                    } else {
                        self.freed.set(free);
                    }
                }
            }
            Err(e) => self.problems.push(format!("page {id}: freelist {e}")),
        }
        self.give_back(0, buf);
    }

    fn walk_root(&mut self, visit: &mut dyn Visit) {
        let mut sink = Sink {
            level: Level::Root,
            visit,
            last: Vec::new(),
        };
        self.walk_tree(self.meta.root, None, 0, &mut sink);
    }

    /// Walks the tree rooted at `id` (or the inline page), in key order.
    fn walk_tree(&mut self, id: u64, inline: Option<&[u8]>, depth: usize, sink: &mut Sink<'_>) {
        if depth >= MAX_DEPTH {
            self.problems.push(format!(
                "page {id}: the tree is deeper than {MAX_DEPTH} levels"
            ));
            return;
        }
        if let Some(page) = inline {
            self.walk_leaf(page, depth, sink, "inline page");
            return;
        }
        let Some((header, buf)) = self.read_page(id, depth) else {
            return;
        };
        if !self.claim(&header) {
            self.give_back(depth, buf);
            return;
        }
        match header.flags {
            BRANCH => self.walk_branch(&buf, depth, sink),
            LEAF => self.walk_leaf(&buf, depth, sink, &format!("page {id}")),
            other => self.problems.push(format!(
                "page {id}: invalid type {other:#x} inside a bucket (expected branch or leaf)"
            )),
        }
        self.give_back(depth, buf);
    }

    fn walk_branch(&mut self, page: &[u8], depth: usize, sink: &mut Sink<'_>) {
        let header = parse_header(page);
        let elems = match elements(page, ElementKind::Branch) {
            Ok(e) => e,
            Err(e) => return self.problems.push(format!("page {}: {e}", header.id)),
        };
        let mut last: Option<&[u8]> = None;
        for e in elems {
            if last.is_some_and(|l| l >= e.key) {
                self.problems
                    .push(format!("page {}: branch keys out of order", header.id));
            }
            last = Some(e.key);
            self.walk_tree(e.child, None, depth + 1, sink);
        }
    }

    fn walk_leaf(&mut self, page: &[u8], depth: usize, sink: &mut Sink<'_>, at: &str) {
        let header = parse_header(page);
        if header.flags != LEAF {
            let flags = header.flags;
            return self
                .problems
                .push(format!("{at}: flags {flags:#x}, expected a leaf"));
        }
        let elems = match elements(page, ElementKind::Leaf) {
            Ok(e) => e,
            Err(e) => return self.problems.push(format!("{at}: {e}")),
        };
        for e in elems {
            if !sink.in_order(e.key) {
                self.problems.push(format!("{at}: keys out of order"));
            }
            if !e.bucket {
                if sink.level == Level::Root {
                    self.problems
                        .push(format!("{at}: a root entry is not a bucket"));
                } else if sink.level == Level::Bucket {
                    sink.visit.entry(e.key, Some(e.value));
                }
                continue;
            }
            let Some((root, inline)) = bucket_header(e.value) else {
                self.problems.push(format!(
                    "{at}: malformed bucket header of {} bytes",
                    e.value.len()
                ));
                continue;
            };
            let level = match sink.level {
                Level::Root => {
                    sink.visit.bucket(e.key);
                    Level::Bucket
                }
                Level::Bucket => {
                    sink.visit.entry(e.key, None);
                    Level::Nested
                }
                Level::Nested => Level::Nested,
            };
            let mut inner = Sink {
                level,
                visit: &mut *sink.visit,
                last: Vec::new(),
            };
            self.walk_tree(root, inline, depth + 1, &mut inner);
        }
    }

    fn finish(mut self, meta_page: u8) -> Structure {
        let tracked = self.reachable.len();
        let mut reachable_pages = 0;
        let mut free_pages = 0;
        let stored = self.meta.freelist != NO_FREELIST;
        for id in 0..tracked {
            match (self.reachable.get(id), self.freed.get(id)) {
                (true, _) => reachable_pages += 1,
                (false, true) => free_pages += 1,
                // Without a stored freelist bbolt frees every unreachable page at open.
                (false, false) if !stored => free_pages += 1,
                (false, false) => self
                    .problems
                    .push(format!("page {id}: unreachable unfreed")),
            }
        }
        Structure {
            page_size: self.meta.page_size,
            high_water_mark: self.meta.hwm,
            txid: self.meta.txid,
            meta_page,
            freelist_stored: stored,
            reachable_pages,
            free_pages,
            problems: self.problems,
        }
    }
}

/// A bucket value: its root page id, and the inline page when the root is 0.
fn bucket_header(value: &[u8]) -> Option<(u64, Option<&[u8]>)> {
    let root = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    if root != 0 {
        return Some((root, None));
    }
    let inline = value.get(16..).filter(|p| <[u8]>::len(p) >= PAGE_HEADER)?;
    Some((0, Some(inline)))
}

/// Which level of the bucket tree a leaf belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The root: every entry is a bucket.
    Root,
    /// A root bucket: entries go to the visitor.
    Bucket,
    /// A nested bucket (etcd has none): checked only, as `tx.Check` does.
    Nested,
}

/// Where a leaf's entries go, and the bucket's previous key for the order check.
struct Sink<'v> {
    level: Level,
    visit: &'v mut dyn Visit,
    last: Vec<u8>,
}

impl Sink<'_> {
    /// True when `key` sorts after the previous key of the same bucket.
    fn in_order(&mut self, key: &[u8]) -> bool {
        let ok = self.last.is_empty() || self.last.as_slice() < key;
        self.last.clear();
        self.last.extend_from_slice(key);
        ok
    }
}

#[cfg(test)]
#[path = "bbolt_tests.rs"]
pub(super) mod tests;
