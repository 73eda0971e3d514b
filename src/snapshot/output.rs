//! What the save pipeline writes besides the file's bytes: the Deflate level, the tee to a second
//! consumer, the age recipients, and the metadata entries known only after the stream (the
//! keyspace hash, `snapshot::hashkv`). Plain data; the pipeline (`save`) acts on it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use super::tee::Tee;
use crate::crypt::Recipients;

/// How the pipeline writes: the Deflate level (1-9, used only when `name.compressed`), an
/// optional second consumer of the bytes, and the age recipients (needed when
/// `name.encrypted`).
#[derive(Debug)]
pub struct Output {
    pub compression_level: u32,
    pub tee: Option<Tee>,
    pub recipients: Option<Recipients>,
    /// Entries known only after the stream (the keyspace hash, `snapshot::hashkv`).
    pub late: Option<LateEntries>,
}

/// Metadata entries asked for once the stream has ended (while the file is fsynced and
/// published), before its `.metadata` record is written and the tee's consumer gets the end. A
/// future does nothing until awaited, so it is built before the stream and runs only after a
/// successful one.
pub struct LateEntries(pub Pin<Box<dyn Future<Output = BTreeMap<String, String>> + Send>>);

impl std::fmt::Debug for LateEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateEntries")
    }
}

impl Output {
    /// No tee, no encryption; the given compression level.
    pub fn level(compression_level: u32) -> Self {
        Self {
            compression_level,
            tee: None,
            recipients: None,
            late: None,
        }
    }
}
