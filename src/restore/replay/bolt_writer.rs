//! A bbolt database file written in one forward pass from entries that arrive in key order: the
//! replay's way of putting a delta chain's revisions straight into the restored database, at
//! disk speed, instead of one etcd request per revision.
//!
//! Each bucket is bulk-loaded: leaf pages are filled and written as entries arrive, and each
//! written page adds its first key to a pending branch page one level up, which is written in
//! turn when full. Memory is one pending page per tree level, whatever the file size. Several
//! buckets may be open at once (their pages interleave in the file, which bbolt allows). At the
//! end the root bucket page, an empty freelist and the two meta pages are written, so the file
//! is what bbolt itself would read: checksummed meta, every page reachable exactly once.
//!
//! Every bucket is written with a root page of its own (bbolt also reads that for small buckets,
//! which it would otherwise store inline) and sequence 0 (etcd never uses bucket sequences).
//! The layout constants are bbolt's (`page`, `leafPageElement`, `branchPageElement`, `meta`).

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::inspect::bbolt::{BRANCH, FREELIST, LEAF, MAGIC, META, PAGE_HEADER, VERSION, fnv1a64};

/// Size of a leaf or branch element.
const ELEMENT: usize = 16;
/// A leaf element that is a bucket (`bucketLeafFlag`).
const BUCKET_FLAG: u32 = 0x01;
/// Pages 0 and 1 are the meta pages, 2 the (empty) freelist; data starts after them.
const FREELIST_PAGE: u64 = 2;
const FIRST_DATA_PAGE: u64 = 3;
/// The meta struct's checksummed part.
const META_SUMMED: usize = 56;
/// Write buffer: large sequential writes.
const BUFFER: usize = 1 << 20;
/// Padding source for the rest of a page.
static ZEROS: [u8; 4096] = [0; 4096];

/// The file being written, and the next free page id.
pub struct BoltWriter {
    out: BufWriter<File>,
    page_size: usize,
    next_page: u64,
}

impl BoltWriter {
    /// Creates `path` (it must not exist; 0600) for a database of `page_size` bytes per page.
    pub fn create(path: &Path, page_size: u32) -> io::Result<Self> {
        let page_size = page_size as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("page size {page_size}, expected a power of two 512..=65536"),
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.seek(SeekFrom::Start(FIRST_DATA_PAGE * page_size as u64))?;
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER, file),
            page_size,
            next_page: FIRST_DATA_PAGE,
        })
    }

    /// Writes one page whose body is `table` then `data` (plus overflow pages when they need
    /// them) and returns its id.
    fn write_page(
        &mut self,
        flags: u16,
        count: usize,
        table: &[u8],
        data: &[u8],
    ) -> io::Result<u64> {
        let count = u16::try_from(count)
            .map_err(|_| io::Error::other(format!("{count} elements do not fit one page")))?;
        let body_len = table.len() + data.len();
        let span = (PAGE_HEADER + body_len).div_ceil(self.page_size).max(1);
        let overflow = u32::try_from(span - 1)
            .map_err(|_| io::Error::other(format!("a value spanning {span} pages")))?;
        let id = self.next_page;
        self.out
            .write_all(&page_header(id, flags, count, overflow))?;
        self.out.write_all(table)?;
        self.out.write_all(data)?;
        let mut padding = span * self.page_size - PAGE_HEADER - body_len;
        while padding > 0 {
            let n = padding.min(ZEROS.len());
            self.out.write_all(&ZEROS[..n])?;
            padding -= n;
        }
        self.next_page += span as u64;
        Ok(id)
    }

    /// Writes the root bucket (`buckets`: name and root page id, in name order), the empty
    /// freelist and both meta pages (transaction id `txid`), and flushes. Returns the file.
    pub fn finish(mut self, buckets: &[(Vec<u8>, u64)], txid: u64) -> io::Result<File> {
        let mut root = Node::default();
        for (name, page) in buckets {
            let mut header = [0u8; 16];
            header[..8].copy_from_slice(&page.to_le_bytes());
            root.push(BUCKET_FLAG, name, &header, None)?;
        }
        let root_page = root.write_leaf(&mut self)?;
        let hwm = self.next_page;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.write_all_at(
            &page_header(FREELIST_PAGE, FREELIST, 0, 0),
            FREELIST_PAGE * self.page_size as u64,
        )?;
        for id in [0u64, 1] {
            let page = meta_page(id, self.page_size, root_page, hwm, txid);
            file.write_all_at(&page, id * self.page_size as u64)?;
        }
        // Every page below the high-water mark exists in the file (the last one may be padding).
        file.set_len(hwm * self.page_size as u64)?;
        Ok(file)
    }
}

fn page_header(id: u64, flags: u16, count: u16, overflow: u32) -> [u8; PAGE_HEADER] {
    let mut h = [0u8; PAGE_HEADER];
    h[..8].copy_from_slice(&id.to_le_bytes());
    h[8..10].copy_from_slice(&flags.to_le_bytes());
    h[10..12].copy_from_slice(&count.to_le_bytes());
    h[12..16].copy_from_slice(&overflow.to_le_bytes());
    h
}

/// A meta page: magic, version, page size, flags, root bucket (page, sequence 0), freelist
/// page, high-water mark, txid, FNV-1a checksum of what precedes it.
fn meta_page(id: u64, page_size: usize, root: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut meta = Vec::with_capacity(64);
    meta.extend_from_slice(&MAGIC.to_le_bytes());
    meta.extend_from_slice(&VERSION.to_le_bytes());
    meta.extend_from_slice(&(page_size as u32).to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes());
    meta.extend_from_slice(&root.to_le_bytes());
    meta.extend_from_slice(&0u64.to_le_bytes());
    meta.extend_from_slice(&FREELIST_PAGE.to_le_bytes());
    meta.extend_from_slice(&hwm.to_le_bytes());
    meta.extend_from_slice(&txid.to_le_bytes());
    let checksum = fnv1a64(&meta[..META_SUMMED]);
    meta.extend_from_slice(&checksum.to_le_bytes());
    let mut page = vec![0u8; page_size];
    page[..PAGE_HEADER].copy_from_slice(&page_header(id, META, 0, 0));
    page[PAGE_HEADER..PAGE_HEADER + meta.len()].copy_from_slice(&meta);
    page
}

/// One bucket's tree under construction: the pending leaf and one pending branch per level.
#[derive(Default)]
pub struct BucketBuilder {
    leaf: Node,
    branches: Vec<Node>,
    /// The last key pushed (empty before the first: keys are never empty).
    last_key: Vec<u8>,
}

impl BucketBuilder {
    /// Adds an entry; keys must arrive in strictly increasing byte order (as bbolt keeps them).
    pub fn push(&mut self, out: &mut BoltWriter, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.is_empty() || key <= self.last_key.as_slice() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bucket keys must be non-empty and arrive in strictly increasing order",
            ));
        }
        let element = ELEMENT + key.len() + value.len();
        if !self.leaf.is_empty() && self.leaf.size() + element > out.page_size {
            self.flush_leaf(out)?;
        }
        self.leaf.push(0, key, value, None)?;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        Ok(())
    }

    /// Writes what is pending and returns the bucket's root page id.
    pub fn finish(mut self, out: &mut BoltWriter) -> io::Result<u64> {
        if !self.leaf.is_empty() || self.branches.is_empty() {
            self.flush_leaf(out)?;
        }
        let mut level = 0;
        loop {
            let top = level + 1 == self.branches.len();
            if top && self.branches[level].len() == 1 {
                return Ok(self.branches[level].only_child());
            }
            self.flush_branch(out, level)?;
            level += 1;
        }
    }

    fn flush_leaf(&mut self, out: &mut BoltWriter) -> io::Result<()> {
        let first = self.leaf.first_key().to_vec();
        let id = self.leaf.write_leaf(out)?;
        self.leaf.clear();
        self.push_branch(out, 0, &first, id)
    }

    fn push_branch(
        &mut self,
        out: &mut BoltWriter,
        level: usize,
        key: &[u8],
        child: u64,
    ) -> io::Result<()> {
        if self.branches.len() == level {
            self.branches.push(Node::default());
        }
        let node = &self.branches[level];
        if !node.is_empty() && node.size() + ELEMENT + key.len() > out.page_size {
            self.flush_branch(out, level)?;
        }
        self.branches[level].push(0, key, &[], Some(child))
    }

    fn flush_branch(&mut self, out: &mut BoltWriter, level: usize) -> io::Result<()> {
        let node = std::mem::take(&mut self.branches[level]);
        let first = node.first_key().to_vec();
        let id = node.write_branch(out)?;
        self.push_branch(out, level + 1, &first, id)
    }
}

/// A page's elements before it is written: each element's flags, key and value (or child page
/// id, for a branch), with keys and values concatenated in element order.
#[derive(Default)]
struct Node {
    elements: Vec<(u32, usize, usize, u64)>,
    data: Vec<u8>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
    fn len(&self) -> usize {
        self.elements.len()
    }
    /// The page's size so far: header, elements, keys and values.
    fn size(&self) -> usize {
        PAGE_HEADER + self.elements.len() * ELEMENT + self.data.len()
    }
    fn first_key(&self) -> &[u8] {
        self.elements
            .first()
            .map_or(&[][..], |&(_, k, _, _)| &self.data[..k])
    }
    fn clear(&mut self) {
        self.elements.clear();
        self.data.clear();
    }
    fn only_child(&self) -> u64 {
        self.elements[0].3
    }

    fn push(&mut self, flags: u32, key: &[u8], value: &[u8], child: Option<u64>) -> io::Result<()> {
        if u32::try_from(key.len()).is_err() || u32::try_from(value.len()).is_err() {
            return Err(io::Error::other("an entry over 4 GiB"));
        }
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.elements
            .push((flags, key.len(), value.len(), child.unwrap_or(0)));
        Ok(())
    }

    /// bbolt's `leafPageElement`: flags, pos (from the element to its key), ksize, vsize.
    fn write_leaf(&self, out: &mut BoltWriter) -> io::Result<u64> {
        let table = self.table(|element, pos, &(flags, k, v, _)| {
            element[..4].copy_from_slice(&flags.to_le_bytes());
            element[4..8].copy_from_slice(&pos.to_le_bytes());
            element[8..12].copy_from_slice(&(k as u32).to_le_bytes());
            element[12..16].copy_from_slice(&(v as u32).to_le_bytes());
        });
        out.write_page(LEAF, self.elements.len(), &table, &self.data)
    }

    /// bbolt's `branchPageElement`: pos, ksize, child page id.
    fn write_branch(&self, out: &mut BoltWriter) -> io::Result<u64> {
        let table = self.table(|element, pos, &(_, k, _, child)| {
            element[..4].copy_from_slice(&pos.to_le_bytes());
            element[4..8].copy_from_slice(&(k as u32).to_le_bytes());
            element[8..16].copy_from_slice(&child.to_le_bytes());
        });
        out.write_page(BRANCH, self.elements.len(), &table, &self.data)
    }

    /// The element table that follows the page header (each element encoded by `encode` with
    /// its `pos`); the keys and values follow it.
    fn table(&self, encode: impl Fn(&mut [u8], u32, &(u32, usize, usize, u64))) -> Vec<u8> {
        let len = self.elements.len() * ELEMENT;
        let mut table = vec![0u8; len];
        let mut data_at = len;
        for (i, element) in self.elements.iter().enumerate() {
            let pos = (data_at - i * ELEMENT) as u32;
            encode(&mut table[i * ELEMENT..(i + 1) * ELEMENT], pos, element);
            data_at += element.1 + element.2;
        }
        table
    }
}

#[cfg(test)]
#[path = "bolt_writer_tests.rs"]
pub(in crate::restore::replay) mod tests;
