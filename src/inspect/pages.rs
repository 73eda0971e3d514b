//! Decoding one bbolt page held in memory: its header, its branch or leaf elements, a
//! freelist's page ids. Pure; every position read from the page is checked against the page's
//! length, so a hostile page gives an error, never a panic or an out-of-bounds read.

use std::io;

use super::bbolt::PAGE_HEADER;

/// Size of a branch or leaf element.
const ELEMENT: usize = 16;
/// A freelist whose count does not fit the header's u16 stores it in its first u64.
const COUNT_OVERFLOW: u16 = 0xFFFF;

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

/// The 16-byte page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

/// Decodes the header at the start of `page` (at least 16 bytes, the caller's guarantee; a
/// shorter slice reads as zeros).
pub fn parse_header(page: &[u8]) -> PageHeader {
    let mut h = [0u8; PAGE_HEADER];
    let n = page.len().min(PAGE_HEADER);
    h[..n].copy_from_slice(&page[..n]);
    PageHeader {
        id: u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]),
        flags: u16::from_le_bytes([h[8], h[9]]),
        count: u16::from_le_bytes([h[10], h[11]]),
        overflow: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
    }
}

/// Which element layout a page has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Branch,
    Leaf,
}

/// One element: a key and, for a leaf, its value and bucket flag; for a branch, its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub child: u64,
    pub bucket: bool,
    /// Where the value starts in the page (0 for a branch): with the page's own offset, where
    /// it sits in the file.
    pub value_at: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The elements of a branch or leaf page, in page order. Errors name what is out of bounds.
pub fn elements(page: &[u8], kind: ElementKind) -> Result<Vec<Element<'_>>, String> {
    let count = usize::from(parse_header(page).count);
    let table_end = PAGE_HEADER + count * ELEMENT;
    if page.len() < table_end {
        return Err(format!(
            "{count} elements do not fit in a page of {} bytes",
            page.len()
        ));
    }
    if count == 0 && kind == ElementKind::Branch {
        return Err("a branch page with no elements".into());
    }
    (0..count)
        .map(|i| element(page, PAGE_HEADER + i * ELEMENT, kind, i))
        .collect()
}

fn element(page: &[u8], at: usize, kind: ElementKind, i: usize) -> Result<Element<'_>, String> {
    let slice = |start: usize, len: usize, what: &str| {
        start
            .checked_add(len)
            .and_then(|end| page.get(start..end))
            .ok_or_else(|| format!("element {i}: {what} runs past the page"))
    };
    match kind {
        ElementKind::Branch => {
            let pos = u32_at(page, at) as usize;
            let ksize = u32_at(page, at + 4) as usize;
            let mut child = [0u8; 8];
            child.copy_from_slice(&page[at + 8..at + 16]);
            Ok(Element {
                key: slice(at + pos, ksize, "key")?,
                value: &[],
                child: u64::from_le_bytes(child),
                bucket: false,
                value_at: 0,
            })
        }
        ElementKind::Leaf => {
            let flags = u32_at(page, at);
            let pos = u32_at(page, at + 4) as usize;
            let ksize = u32_at(page, at + 8) as usize;
            let vsize = u32_at(page, at + 12) as usize;
            let key_at = at + pos;
            Ok(Element {
                key: slice(key_at, ksize, "key")?,
                value: slice(key_at + ksize, vsize, "value")?,
                child: 0,
                bucket: flags & 0x01 != 0,
                value_at: key_at + ksize,
            })
        }
    }
}

/// The page ids a freelist page lists.
pub fn freelist_ids(page: &[u8], count: u16) -> Result<Vec<u64>, String> {
    let data = page.get(PAGE_HEADER..).unwrap_or_default();
    let (count, ids) = if count == COUNT_OVERFLOW {
        let first = data.get(..8).ok_or("count word is missing")?;
        let n = u64::from_le_bytes(first.try_into().map_err(|_| "count word is missing")?);
        (n, &data[8..])
    } else {
        (u64::from(count), data)
    };
    let fits = (ids.len() / 8) as u64;
    if count > fits {
        return Err(format!("lists {count} ids, the page holds {fits}"));
    }
    Ok(ids
        .chunks_exact(8)
        .take(count as usize)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// One bit per page: bounded memory (a 8 GiB database of 4 KiB pages needs 256 KiB).
#[derive(Debug, Clone)]
pub struct Bitmap {
    bits: Vec<u64>,
    len: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Self {
        Bitmap {
            bits: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// False for ids beyond the map.
    pub fn get(&self, id: u64) -> bool {
        id < self.len && self.bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }
    /// Ignores ids beyond the map (the caller reports them).
    pub fn set(&mut self, id: u64) {
        if id < self.len {
            self.bits[(id / 64) as usize] |= 1 << (id % 64);
        }
    }
}
