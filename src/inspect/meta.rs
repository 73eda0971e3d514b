//! bbolt's meta pages: decoding one (magic, version, FNV-1a checksum, page size, root, freelist,
//! high-water mark, txid) and choosing between the two, as bbolt does at open. Pure apart from
//! the two positioned reads.

use super::bbolt::{PAGE_HEADER, Problems};
use super::pages::PageSource;

/// bbolt's meta magic and the only file format version it writes.
pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// The meta struct's checksummed part.
const META_SUMMED: usize = 56;

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
