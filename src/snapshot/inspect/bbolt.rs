//! A read-only walker over a bbolt database file (the format etcd keeps its state in).
//!
//! It reads pages with positioned reads, one page (plus its overflow) at a time, so memory is a
//! few page buffers and two bitmaps of one bit per page, whatever the file size. It checks what
//! bbolt's own `tx.Check` checks (every page below the high-water mark reachable exactly once or
//! free, no page beyond it, valid page types, a consistent freelist) plus the meta pages'
//! checksums, page ids and key order, and hands every entry of every root bucket, in key order,
//! to a [`Visit`]or. Every offset and length read from the file is bounds-checked; damage is
//! reported as a line in [`Problems`], never a panic.

use std::io;

use super::pages::{Bitmap, ElementKind, PageHeader, elements, parse_header};

/// Page flags (bbolt's `branchPageFlag`, `leafPageFlag`, `metaPageFlag`, `freelistPageFlag`).
pub const BRANCH: u16 = 0x01;
pub const LEAF: u16 = 0x02;
pub const META: u16 = 0x04;
pub const FREELIST: u16 = 0x10;
/// bbolt's meta magic and the only file format version it writes.
pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// `pgidNoFreelist`: the freelist is not stored (etcd opens bbolt with `NoFreelistSync`).
pub const NO_FREELIST: u64 = u64::MAX;
/// Size of a page header and of the meta struct's checksummed part.
pub const PAGE_HEADER: usize = 16;
const META_SUMMED: usize = 56;
/// Largest page span (a page plus its overflow) read into memory: etcd values are at most a
/// few MiB, so anything bigger is damage, and refusing it keeps memory bounded.
pub const MAX_SPAN: u64 = 64 << 20;
/// Deepest tree (nested buckets included) walked; real trees are a handful of levels deep.
const MAX_DEPTH: usize = 64;
/// Problems kept in full; the rest are only counted.
const MAX_PROBLEMS: usize = 20;

/// Positioned reads over the database image (a file, or bytes in tests).
pub trait PageSource: Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Bytes of the database image (the trailer excluded).
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PageSource for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

impl PageSource for &[u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

/// A file image of known length, for a source whose `len` must not include a trailer.
pub struct Bounded<'a, S: PageSource + ?Sized> {
    pub source: &'a S,
    pub len: u64,
}

impl<S: PageSource + ?Sized> PageSource for Bounded<'_, S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.source.read_at(buf, offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// A decoded meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// The high-water mark: pages `0..hwm` are in use or free; the db is `hwm * page_size` bytes.
    pub hwm: u64,
    pub txid: u64,
}

/// Why a meta page is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaFault {
    Magic(u32),
    Version(u32),
    Checksum { stored: u64, computed: u64 },
    PageSize(u32),
}

impl std::fmt::Display for MetaFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaFault::Magic(m) => write!(f, "magic {m:#010x}, expected {MAGIC:#010x}"),
            MetaFault::Version(v) => write!(f, "version {v}, expected {VERSION}"),
            MetaFault::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum {stored:#018x} stored, {computed:#018x} computed"
                )
            }
            MetaFault::PageSize(s) => {
                write!(f, "page size {s}, expected a power of two 512..=65536")
            }
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// FNV-1a 64, bbolt's meta checksum.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Decodes the meta struct of a meta page (`page` starts at the page header). Pure.
pub fn parse_meta(page: &[u8; PAGE_HEADER + 64]) -> Result<Meta, MetaFault> {
    let m = &page[PAGE_HEADER..];
    let magic = u32_at(m, 0);
    if magic != MAGIC {
        return Err(MetaFault::Magic(magic));
    }
    let version = u32_at(m, 4);
    if version != VERSION {
        return Err(MetaFault::Version(version));
    }
    let (stored, computed) = (u64_at(m, 56), fnv1a64(&m[..META_SUMMED]));
    if stored != computed {
        return Err(MetaFault::Checksum { stored, computed });
    }
    let page_size = u32_at(m, 8);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(MetaFault::PageSize(page_size));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16),
        freelist: u64_at(m, 32),
        hwm: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

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

/// Reads both meta pages; the valid one with the higher txid wins. A bad meta page is a
/// problem even when the other one is good (etcd writes both valid into a snapshot).
pub fn read_meta(src: &dyn PageSource, problems: &mut Problems) -> Option<(Meta, u8)> {
    let mut head = [0u8; PAGE_HEADER + 64];
    let meta0 = match src.read_at(&mut head, 0) {
        Ok(()) => parse_meta(&head),
        Err(e) => {
            problems.push(format!("meta page 0: cannot be read: {e}"));
            return None;
        }
    };
    // Page 1 sits one page size in: page 0's size when it is valid, else the first power of
    // two where a valid meta page is found (as bbolt falls back when meta 0 is damaged).
    let meta1 = match &meta0 {
        Ok(m) => read_meta_at(src, u64::from(m.page_size)),
        Err(_) => (9..=16)
            .map(|shift| read_meta_at(src, 1 << shift))
            .find(|m| m.is_ok())
            .unwrap_or_else(|| Err("no valid meta page at any page size from 512 to 65536".into())),
    };
    if let Err(fault) = &meta0 {
        problems.push(format!("meta page 0: {fault}"));
    }
    if let Err(fault) = &meta1 {
        problems.push(format!("meta page 1: {fault}"));
    }
    match (meta0, meta1) {
        (Ok(a), Ok(b)) if b.txid > a.txid => Some((b, 1)),
        (Ok(a), _) => Some((a, 0)),
        (Err(_), Ok(b)) => Some((b, 1)),
        (Err(_), Err(_)) => None,
    }
}

fn read_meta_at(src: &dyn PageSource, offset: u64) -> Result<Meta, String> {
    let mut head = [0u8; PAGE_HEADER + 64];
    match src.read_at(&mut head, offset) {
        Ok(()) => parse_meta(&head).map_err(|fault| fault.to_string()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
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
mod tests;
