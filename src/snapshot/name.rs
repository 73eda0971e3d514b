//! Snapshot names: `<base>-<node>-<unix seconds>[.zip]`, formatting and parsing.
//!
//! Pure. Parsing for retention is exact (the base and node must match, the rest must be digits)
//! so that `etcd-snapshot` never matches `etcd-snapshot-weekly-...` or another node's files.

/// A snapshot's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotName {
    pub base: String,
    pub node: String,
    pub unix: i64,
    pub compressed: bool,
}

impl SnapshotName {
    /// The name without `.zip` (also the zip entry's name).
    pub fn stem(&self) -> String {
        todo!()
    }
    /// The file name on disk / the S3 object base name.
    pub fn file_name(&self) -> String {
        todo!()
    }
    /// Parses `file_name` only if it is exactly `<base>-<node>-<digits>[.zip]`.
    pub fn parse_exact(file_name: &str, base: &str, node: &str) -> Option<Self> {
        let _ = (file_name, base, node);
        todo!()
    }
}

/// RKE2's rule for reading a timestamp back from any snapshot file name: strip `.zip`, parse the
/// part after the last `-` as base-10 seconds.
pub fn timestamp_in_name(file_name: &str) -> Option<i64> {
    let _ = file_name;
    todo!()
}

/// Validates a snapshot name given by a user (delete): a plain file name, no separators, no `..`.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    let _ = name;
    todo!()
}
