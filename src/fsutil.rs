//! Crash-safe file primitives: write to a temp name, fsync, rename, fsync the directory.
//!
//! Everything that must survive a crash intact goes through here.

use std::io;
use std::path::Path;

/// Writes `bytes` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let _ = (path, bytes, mode);
    todo!()
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let _ = dir;
    todo!()
}
