//! The on-disk layout: paths this product reads or writes beside a snapshot dir, as pure
//! functions of that dir. A leaf: no `crate::` imports, so the save pipeline, the stores and the
//! config all ask it without depending on each other.

use std::path::{Path, PathBuf};

/// The metadata dir's name, beside the snapshot dir (RKE2's).
pub const METADATA_DIR: &str = ".metadata";

/// The metadata dir that belongs to a snapshot dir: `<snapshot-dir>/../.metadata`; a dir
/// without a parent (`/`) gets `<dir>/../.metadata`.
pub fn metadata_dir_for(snapshot_dir: &Path) -> PathBuf {
    match snapshot_dir.parent() {
        Some(parent) => parent.join(METADATA_DIR),
        None => snapshot_dir.join("..").join(METADATA_DIR),
    }
}
