//! What kind of database image a snapshot holds, and the check its bytes must pass.
//!
//! A snapshot is the image of one datastore: etcd's (a bbolt file followed by etcd's 32-byte
//! SHA-256 trailer) or a SQLite database (k3s/RKE2's kine `state.db`, copied consistently with
//! SQLite's online backup). Both travel through the same pipeline under the same names; what
//! tells them apart is recorded twice:
//! - in the metadata record and the S3 object's metadata, the entry
//!   `etcd-snapshot-datastore: sqlite` ([`META_DATASTORE`]); no entry means etcd, so RKE2's own
//!   snapshots and every snapshot taken before SQLite support read as etcd;
//! - in the bytes themselves: a SQLite image starts with `SQLite format 3\0`, which no etcd
//!   stream does (it starts with a bbolt page header), so a file alone says what it is.
//!
//! [`ImageCheck`] is the streaming check both the save pipeline and verification run over the
//! bytes: etcd's trailer for an etcd image; for a SQLite image, its 100-byte header (magic,
//! page size, page count) against the number of bytes that arrived. Pure over the bytes it is
//! given; the header parser is a fuzz target (`snapshot::fuzz_tests`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::save::SaveError;
use super::sink::TrailerCheck;

/// The metadata entry that marks a snapshot's datastore (reserved prefix `etcd-snapshot-`).
pub const META_DATASTORE: &str = "etcd-snapshot-datastore";
/// The first 16 bytes of every SQLite 3 database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The SQLite database header's length.
pub const SQLITE_HEADER_LEN: usize = 100;

/// The datastore a snapshot's image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Etcd,
    Sqlite,
}

impl ImageKind {
    /// `etcd` or `sqlite`, as recorded and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Etcd => "etcd",
            ImageKind::Sqlite => "sqlite",
        }
    }

    /// The entries a save records for this kind: none for etcd (RKE2's records stay as they
    /// are), the marker for SQLite.
    pub fn marker_entries(self) -> BTreeMap<String, String> {
        match self {
            ImageKind::Etcd => BTreeMap::new(),
            ImageKind::Sqlite => {
                BTreeMap::from([(META_DATASTORE.to_string(), self.as_str().to_string())])
            }
        }
    }

    /// The kind a metadata map records (key case ignored: S3 lower-cases user metadata). No
    /// entry is etcd; a value that is neither kind is reported, never guessed.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<ImageKind, String> {
        let found = entries
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(META_DATASTORE));
        match found.map(|(_, v)| v.trim()) {
            None => Ok(ImageKind::Etcd),
            Some(v) if v.eq_ignore_ascii_case("etcd") => Ok(ImageKind::Etcd),
            Some(v) if v.eq_ignore_ascii_case("sqlite") => Ok(ImageKind::Sqlite),
            Some(v) => Err(format!(
                "recorded {META_DATASTORE} is {v:?}; expected etcd or sqlite"
            )),
        }
    }

    /// What the first bytes of an image say it is.
    pub fn sniff(head: &[u8]) -> ImageKind {
        if head.starts_with(SQLITE_MAGIC) {
            ImageKind::Sqlite
        } else {
            ImageKind::Etcd
        }
    }
}

/// The fields of a SQLite header that say how large the database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteHeader {
    /// Bytes per page: a power of two from 512 to 65536.
    pub page_size: u32,
    /// The page count the header records, when SQLite marks it valid (the change counter
    /// equals the version-valid-for number and the count is not 0).
    pub page_count: Option<u32>,
}

/// Parses the 100-byte SQLite header. Pure; the input is hostile (any snapshot file).
pub fn parse_sqlite_header(head: &[u8]) -> Result<SqliteHeader, String> {
    if head.len() < SQLITE_HEADER_LEN {
        return Err(format!(
            "{} bytes; a SQLite database has a {SQLITE_HEADER_LEN}-byte header",
            head.len()
        ));
    }
    if !head.starts_with(SQLITE_MAGIC) {
        return Err("it does not start with \"SQLite format 3\"".into());
    }
    let be16 = |at: usize| u16::from_be_bytes([head[at], head[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let page_size = match be16(16) {
        1 => 65_536,
        n => u32::from(n),
    };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!(
            "page size {page_size}; expected a power of two from 512 to 65536"
        ));
    }
    let count = be32(28);
    let valid = be32(24) == be32(92) && count > 0;
    Ok(SqliteHeader {
        page_size,
        page_count: valid.then_some(count),
    })
}

/// Checks a SQLite image's length against its header: whole pages, and exactly the recorded
/// page count when the header says it is valid. Returns the image size.
pub fn check_sqlite_length(header: &SqliteHeader, total: u64) -> Result<u64, String> {
    let page = u64::from(header.page_size);
    if total == 0 || !total.is_multiple_of(page) {
        return Err(format!(
            "{total} bytes is not a whole number of {page}-byte pages"
        ));
    }
    if let Some(count) = header.page_count {
        let expected = u64::from(count) * page;
        if total != expected {
            return Err(format!(
                "{total} bytes, but the header records {count} pages of {page} bytes ({expected})"
            ));
        }
    }
    Ok(total)
}

/// The streaming check of an image: decided by the expected kind, or by the first bytes.
pub(crate) struct ImageCheck {
    expect: Option<ImageKind>,
    head: Vec<u8>,
    state: State,
}

enum State {
    /// Fewer than [`SQLITE_HEADER_LEN`] bytes seen and no kind expected yet.
    Undecided,
    Etcd(TrailerCheck),
    Sqlite {
        hasher: Sha256,
        total: u64,
    },
}

impl ImageCheck {
    /// Checks for exactly `kind` (a save knows what its source produces).
    pub(crate) fn expecting(kind: ImageKind) -> Self {
        let state = match kind {
            // etcd's path is unchanged: no head is held back.
            ImageKind::Etcd => State::Etcd(TrailerCheck::default()),
            ImageKind::Sqlite => State::Undecided,
        };
        Self {
            expect: Some(kind),
            head: Vec::new(),
            state,
        }
    }

    /// Decides the kind from the first bytes (verification of a file of unknown origin).
    pub(crate) fn sniffing() -> Self {
        Self {
            expect: None,
            head: Vec::new(),
            state: State::Undecided,
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        match &mut self.state {
            State::Etcd(check) => check.update(chunk),
            State::Sqlite { hasher, total } => {
                hasher.update(chunk);
                *total += chunk.len() as u64;
            }
            State::Undecided => {
                let take = (SQLITE_HEADER_LEN - self.head.len()).min(chunk.len());
                self.head.extend_from_slice(&chunk[..take]);
                if self.head.len() == SQLITE_HEADER_LEN {
                    self.decide();
                    self.update(&chunk[take..]);
                }
            }
        }
    }

    /// Leaves `Undecided`, replaying the held-back head into the chosen check.
    fn decide(&mut self) {
        // An expected kind is not second-guessed: a SQLite save whose bytes are not SQLite
        // fails on the header, with the reason.
        let kind = self.expect.unwrap_or_else(|| ImageKind::sniff(&self.head));
        let head = std::mem::take(&mut self.head);
        self.state = match kind {
            ImageKind::Etcd => State::Etcd(TrailerCheck::default()),
            ImageKind::Sqlite => State::Sqlite {
                hasher: Sha256::new(),
                total: 0,
            },
        };
        self.head = head.clone();
        self.update(&head);
    }

    /// SHA-256 of every byte seen so far.
    pub(crate) fn whole_sha256(&self) -> [u8; 32] {
        match &self.state {
            State::Etcd(check) => check.whole_sha256(),
            State::Sqlite { hasher, .. } => hasher.clone().finalize().into(),
            State::Undecided => Sha256::digest(&self.head).into(),
        }
    }

    /// The kind and database size when the image is complete and well formed.
    pub(crate) fn verify(mut self) -> Result<(ImageKind, u64), SaveError> {
        if matches!(self.state, State::Undecided) {
            if self.expect == Some(ImageKind::Sqlite) || self.head.starts_with(SQLITE_MAGIC) {
                let received = self.head.len() as u64;
                return Err(SaveError::SqliteImage {
                    detail: format!("{received} bytes is shorter than the SQLite header"),
                });
            }
            self.decide();
        }
        let head = self.head;
        match self.state {
            State::Etcd(check) => check.verify().map(|size| (ImageKind::Etcd, size)),
            State::Sqlite { total, .. } => {
                let header = parse_sqlite_header(&head)
                    .map_err(|detail| SaveError::SqliteImage { detail })?;
                check_sqlite_length(&header, total)
                    .map(|size| (ImageKind::Sqlite, size))
                    .map_err(|detail| SaveError::SqliteImage { detail })
            }
            State::Undecided => unreachable!("decided above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal SQLite header: `pages` pages of `page_size`, count valid.
    pub(crate) fn header(page_size: u16, pages: u32) -> Vec<u8> {
        let mut h = vec![0u8; SQLITE_HEADER_LEN];
        h[..16].copy_from_slice(SQLITE_MAGIC);
        h[16..18].copy_from_slice(&page_size.to_be_bytes());
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[92..96].copy_from_slice(&7u32.to_be_bytes());
        h
    }

    fn image(page_size: u16, pages: u32) -> Vec<u8> {
        let mut bytes = header(page_size, pages);
        bytes.resize(page_size as usize * pages as usize, 0x5a);
        bytes
    }

    #[test]
    fn a_sqlite_image_is_checked_whatever_the_chunking() {
        let bytes = image(1024, 5);
        for chunk in [1, 7, 99, 100, 101, 1024, 5120] {
            for mut check in [
                ImageCheck::sniffing(),
                ImageCheck::expecting(ImageKind::Sqlite),
            ] {
                bytes.chunks(chunk).for_each(|c| check.update(c));
                let expected: [u8; 32] = Sha256::digest(&bytes).into();
                assert_eq!(check.whole_sha256(), expected, "chunks of {chunk}");
                assert_eq!(check.verify().unwrap(), (ImageKind::Sqlite, 5120));
            }
        }
    }

    #[test]
    fn a_short_or_misshapen_sqlite_image_is_refused() {
        let mut bytes = image(4096, 2);
        bytes.truncate(4096 + 100);
        let mut check = ImageCheck::sniffing();
        check.update(&bytes);
        let err = check.verify().unwrap_err().to_string();
        assert!(err.contains("whole number of 4096-byte pages"), "{err}");
        let mut check = ImageCheck::expecting(ImageKind::Sqlite);
        check.update(&image(512, 3)[..1536 - 512]);
        assert!(
            check
                .verify()
                .unwrap_err()
                .to_string()
                .contains("records 3 pages")
        );
        let mut check = ImageCheck::expecting(ImageKind::Sqlite);
        check.update(b"SQLite format 3\0short");
        assert!(check.verify().is_err());
        let mut check = ImageCheck::expecting(ImageKind::Sqlite);
        check.update(&[0u8; 4096]);
        assert!(
            check
                .verify()
                .unwrap_err()
                .to_string()
                .contains("SQLite format 3")
        );
    }

    #[test]
    fn header_fields_follow_the_file_format() {
        let h = parse_sqlite_header(&header(1, 3)).unwrap();
        assert_eq!((h.page_size, h.page_count), (65_536, Some(3)));
        let mut stale = header(4096, 3);
        stale[92..96].copy_from_slice(&6u32.to_be_bytes());
        assert_eq!(parse_sqlite_header(&stale).unwrap().page_count, None);
        for bad in [header(1000, 1), header(256, 1), header(0, 1)] {
            assert!(parse_sqlite_header(&bad).is_err());
        }
        assert!(parse_sqlite_header(&header(4096, 1)[..99]).is_err());
    }

    #[test]
    fn the_marker_is_recorded_for_sqlite_only_and_read_strictly() {
        assert!(ImageKind::Etcd.marker_entries().is_empty());
        let marked = ImageKind::Sqlite.marker_entries();
        assert_eq!(ImageKind::from_entries(&marked), Ok(ImageKind::Sqlite));
        assert_eq!(
            ImageKind::from_entries(&BTreeMap::new()),
            Ok(ImageKind::Etcd)
        );
        let s3 = BTreeMap::from([("Etcd-Snapshot-Datastore".to_string(), "SQLite".to_string())]);
        assert_eq!(ImageKind::from_entries(&s3), Ok(ImageKind::Sqlite));
        let bad = BTreeMap::from([(META_DATASTORE.to_string(), "mysql".to_string())]);
        assert!(ImageKind::from_entries(&bad).unwrap_err().contains("mysql"));
        assert_eq!(ImageKind::sniff(&header(4096, 1)), ImageKind::Sqlite);
        assert_eq!(ImageKind::sniff(&[0u8; 100]), ImageKind::Etcd);
    }
}
