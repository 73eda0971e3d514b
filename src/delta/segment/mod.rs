//! The delta segment format: one file holding every change etcd made between two revisions,
//! grouped per revision (one etcd transaction = one group), with the chain it belongs to in its
//! header and a SHA-256 of the whole file at its end. The byte layout is documented in
//! `docs/delta-segments.md`; this module is its only reader and writer.
//!
//! Pure codec, no file system: `SegmentWriter` streams groups into any `Write` (the capture
//! appends to a temp file as events arrive, so memory holds one watch response, not a
//! segment), and `decode` reads a whole segment back from bytes. Segments come back from disk
//! and S3, so the decoder treats them as hostile: the checksum is checked first, every length
//! is checked against the bytes that remain before anything is allocated, counts are capped,
//! and no input panics (`fuzz_tests`).

mod decode;
mod encode;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{SegmentWriter, check_anchor};

/// The first 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"ETCDDLTA";
/// The format version this build writes and reads. Version 1 (no arrival time per revision)
/// is refused: a point-in-time restore needs the time of every revision.
pub const VERSION: u16 = 2;
/// Length of the SHA-256 trailer.
pub const CHECKSUM_LEN: usize = 32;
/// The longest anchor (full snapshot file name) a header carries: a file name's limit.
pub const MAX_ANCHOR_LEN: usize = 255;
/// The longest key accepted. etcd's own request limit (`--max-request-bytes`, 1.5 MiB by
/// default) keeps real keys far below this.
pub const MAX_KEY_LEN: usize = 16 << 20;
/// The longest value accepted (etcd's request limit keeps real values far below).
pub const MAX_VALUE_LEN: usize = 256 << 20;
/// The most events one revision may carry. etcd's `--max-txn-ops` defaults to 128; a range
/// delete in a transaction can remove many keys at one revision, so the cap is generous.
pub const MAX_EVENTS_PER_GROUP: u32 = 1 << 24;

/// Group and end tags: each group starts with `GROUP_TAG`, the footer with `END_TAG`.
pub(crate) const GROUP_TAG: u8 = b'G';
pub(crate) const END_TAG: u8 = b'E';
/// Event kinds.
pub(crate) const KIND_PUT: u8 = 0;
pub(crate) const KIND_DELETE: u8 = 1;
/// Footer flag: the keyspace hash at `to` is present.
pub(crate) const FLAG_HASHKV: u8 = 1;

/// What a segment says about where it belongs, known when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// etcd's cluster id (from the watch response header).
    pub cluster_id: u64,
    /// The member that served the watch.
    pub member_id: u64,
    /// The full snapshot this chain starts from (its file name).
    pub anchor: String,
    /// That snapshot's recorded revision: the chain's first segment starts at `anchor_revision + 1`.
    pub anchor_revision: i64,
    /// The first revision this segment covers (the previous segment's `to` + 1).
    pub from_revision: i64,
    /// Unix seconds when the segment was opened.
    pub opened_unix: i64,
}

/// One key's state after a put, as etcd's `mvccpb.KeyValue` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEvent {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    /// Always the group's revision (checked both ways).
    pub mod_revision: i64,
    pub version: i64,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// One change within a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(PutEvent),
    /// A deleted key; its `mod_revision` is the group's revision.
    Delete {
        key: Vec<u8>,
    },
}

impl Event {
    pub fn key(&self) -> &[u8] {
        match self {
            Event::Put(put) => &put.key,
            Event::Delete { key } => key,
        }
    }
}

/// Every event of one revision (one transaction), in the order etcd reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionGroup {
    pub revision: i64,
    /// Unix milliseconds when the capture received this revision from etcd: what a restore to
    /// a wall-clock time compares against.
    pub arrived_unix_ms: i64,
    pub events: Vec<Event>,
}

/// etcd's `HashKV` at the segment's `to` revision (all zero stands for "absent" on disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentHash {
    pub hash: u32,
    pub compact_revision: i64,
}

/// What is known when the segment is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFooter {
    /// The last revision covered: the last group's revision.
    pub to_revision: i64,
    pub group_count: u32,
    pub event_count: u64,
    /// Unix seconds (with milliseconds) when the last group arrived from etcd.
    pub last_event_unix_ms: i64,
    /// Unix seconds (with milliseconds) when the segment was closed.
    pub closed_unix_ms: i64,
    /// The keyspace hash at `to_revision`, when etcd answered in time.
    pub hashkv: Option<SegmentHash>,
}

/// A whole decoded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub header: SegmentHeader,
    pub groups: Vec<RevisionGroup>,
    pub footer: SegmentFooter,
}

/// Why a segment could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("not a delta segment: the file does not start with the segment magic")]
    BadMagic,
    #[error(
        "unsupported delta segment version {found} (this build reads version {VERSION}; version 1 segments, written before revisions carried their arrival time, cannot be replayed)"
    )]
    Version { found: u16 },
    #[error("delta segment checksum mismatch: the file is corrupted or truncated")]
    Checksum,
    #[error("delta segment is truncated at byte {offset} while reading {field}")]
    Truncated { field: &'static str, offset: usize },
    #[error("invalid delta segment {field} at byte {offset}: {reason}")]
    Invalid {
        field: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("refused to write a delta segment {field}: {reason}")]
    Refused { field: &'static str, reason: String },
    #[error("failed to write a delta segment")]
    Write(#[source] std::io::Error),
}
