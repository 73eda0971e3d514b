//! Crash-safe file primitives: write to a temp name, fsync, rename, fsync the directory.
//!
//! Everything that must survive a crash intact goes through here. These are thin wrappers over
//! std; they make no decisions about names or layout.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most `read_capped` callers read of a CA bundle, TLS file, token, config or metadata
/// file: far above any real one, far below what would hurt the process.
pub const SMALL_FILE_MAX: u64 = 1024 * 1024;

/// Reads a small file whole: only a regular file (checked on the opened descriptor, opened
/// without blocking so a FIFO cannot hang the reader) of at most `max` bytes, enforced while
/// reading too. For CA bundles, metadata and config files, which are never large; anything
/// else (a device, a FIFO, a huge file) fails with `InvalidData` without being read.
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    read_open_capped(file, max)
}

/// The first `len` bytes of `file` (fewer when it is shorter), read at offset 0 without
/// moving its cursor: the header of a file other handles are reading.
pub fn read_prefix(file: &File, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut prefix = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut prefix[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    Ok(prefix)
}

/// `read_capped` for a file already opened (with whatever flags the caller needs).
pub fn read_open_capped(file: File, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = file.metadata()?;
    let refuse = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(refuse(format!("larger than {max} bytes")));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refuse(format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically with `mode`.
///
/// A reader sees either the old file or the complete new one, never a partial write, and the
/// new content survives a crash once this returns.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let temp = temp_path(path);
    let result = (|| {
        let mut file = create_new(&temp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if let Err(err) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    sync_dir(&dir)
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path` exclusively (fails if it exists) with `mode` (before umask).
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Moves a finished, fsynced `temp` to `dest` without ever replacing an existing `dest`, then
/// fsyncs the directory. Fails with `AlreadyExists` when `dest` exists.
///
/// A hard link is atomic and refuses to clobber. Where the file system has no hard links, an
/// existence check followed by a rename is the fallback (racy only against writers that do not
/// hold the store lock).
pub fn publish_no_clobber(temp: &Path, dest: &Path) -> io::Result<()> {
    match std::fs::hard_link(temp, dest) {
        // The snapshot is published once linked; a temp name that will not go away is only
        // clutter (startup cleanup removes it), never a reason to report the save as failed.
        Ok(()) => {
            if let Err(err) = std::fs::remove_file(temp) {
                tracing::warn!(path = %temp.display(), error = %err, "failed to remove a published snapshot's temp name");
            }
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(err),
        Err(_) => {
            if std::fs::symlink_metadata(dest).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "destination already exists",
                ));
            }
            std::fs::rename(temp, dest)?;
        }
    }
    sync_dir(&parent_dir(dest))
}

/// Creates `dir` (and missing parents) for keys and certificates: the directory itself ends
/// up 0700 even when it already existed with a looser mode.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates `dir` and missing parents; directories this call creates get `mode`.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A hidden temp name beside `path`, unique per process and call.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{file}.{}.{n}.tmp", std::process::id()))
}

/// Takes an exclusive advisory lock on `path` (created 0600) without waiting: `Ok(None)` when
/// another process holds it. The lock lasts as long as the returned file is open.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    if let Some(parent) = path.parent() {
        create_dir_all_mode(parent, 0o700)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The names of the entries of `dir`, sorted: what unit tests compare a dir with.
#[cfg(test)]
pub(crate) fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_atomic_replaces_content_with_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn write_atomic_fails_cleanly_without_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("missing/meta"), b"x", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn publish_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, dest) = (dir.path().join("a.part"), dir.path().join("a"));
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&dest, b"old").unwrap();
        let err = publish_no_clobber(&temp, &dest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        std::fs::remove_file(&dest).unwrap();
        publish_no_clobber(&temp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!temp.exists());
    }

    #[test]
    fn create_dir_all_mode_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all_mode(&nested, 0o700).unwrap();
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }

    #[test]
    fn read_capped_reads_only_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("ca.pem");
        std::fs::write(&small, b"pem").unwrap();
        assert_eq!(read_capped(&small, 3).unwrap(), b"pem");
        let err = read_capped(&small, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A device or a FIFO is refused at once, unread (a FIFO without a writer never blocks).
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for path in [Path::new("/dev/zero"), fifo.as_path(), dir.path()] {
            let err = read_capped(path, SMALL_FILE_MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{}", path.display());
        }
        let missing = read_capped(&dir.path().join("missing"), 10).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
