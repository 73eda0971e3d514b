//! The pre-restore copy of `<server>/tls` to `<server>/tls-<unix seconds>`, as RKE2 makes on a
//! cluster reset, so certificates overwritten from the datastore can be recovered by hand.
//!
//! The copy is built under a hidden partial name and renamed when complete, so a `tls-<unix>`
//! directory is always a whole copy. Modes, mtimes and symlinks are kept; nothing is deleted.
//! `<server>/cred` (also rewritten from bootstrap data) is copied along, inside the backup as
//! `.cred`, so a rollback puts back both.

use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::BootstrapError;
use crate::fsutil;

/// Inside a `tls-<unix>` backup: the copy of `<server_dir>/cred` taken with it.
pub const CRED_IN_BACKUP: &str = ".cred";

/// Copies `<server_dir>/tls` (and `cred`, as `.cred` inside the copy) to a new
/// `<server_dir>/tls-<unix>` and returns that path, or None when there is no `tls` to keep.
pub fn backup_tls(server_dir: &Path, unix_seconds: u64) -> Result<Option<PathBuf>, BootstrapError> {
    let from = server_dir.join("tls");
    if !from.is_dir() {
        return Ok(None);
    }
    let to = free_backup_name(server_dir, unix_seconds);
    let partial = server_dir.join(format!(
        ".{}.partial",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let err = |source| BootstrapError::Backup {
        from: from.clone(),
        to: to.clone(),
        source,
    };
    // A partial copy left by a crash is incomplete by definition.
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(err)?;
    }
    copy_tree(&from, &partial).map_err(err)?;
    let cred = server_dir.join("cred");
    if cred.is_dir() {
        copy_tree(&cred, &partial.join(CRED_IN_BACKUP)).map_err(err)?;
    }
    fs::rename(&partial, &to).map_err(err)?;
    fsutil::sync_dir(server_dir).map_err(err)?;
    Ok(Some(to))
}

/// `tls-<unix>`, or `tls-<unix>-<n>` when an earlier reset in the same second already used it.
fn free_backup_name(server_dir: &Path, unix_seconds: u64) -> PathBuf {
    let base = server_dir.join(format!("tls-{unix_seconds}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while fs::symlink_metadata(&candidate).is_ok() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// Recursive copy keeping permission bits, file mtimes and symlinks (as links).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dest)?;
        } else {
            copy_file(&src, &dest)?;
        }
    }
    // Set the directory's mode last: a read-only source dir must not stop the copy into it.
    let mode = fs::metadata(from)?.permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    fsutil::sync_dir(to)
}

fn copy_file(src: &Path, dest: &Path) -> io::Result<()> {
    // fs::copy also copies the permission bits.
    fs::copy(src, dest)?;
    let modified = fs::metadata(src)?.modified()?;
    let file = File::options().write(true).open(dest)?;
    file.set_times(FileTimes::new().set_modified(modified))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_tree_with_modes_and_picks_a_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path();
        fs::create_dir_all(server.join("tls/etcd")).unwrap();
        fs::write(server.join("tls/etcd/server-ca.key"), b"old key").unwrap();
        fs::set_permissions(
            server.join("tls/etcd/server-ca.key"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("etcd/server-ca.key", server.join("tls/link")).unwrap();
        fs::create_dir_all(server.join("cred")).unwrap();
        fs::write(server.join("cred/passwd"), b"old passwd").unwrap();

        let first = backup_tls(server, 42).unwrap().unwrap();
        assert_eq!(first, server.join("tls-42"));
        assert_eq!(
            fs::read(first.join(CRED_IN_BACKUP).join("passwd")).unwrap(),
            b"old passwd"
        );
        let copied = first.join("etcd/server-ca.key");
        assert_eq!(fs::read(&copied).unwrap(), b"old key");
        let mode = fs::metadata(&copied).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_link(first.join("link")).unwrap(),
            Path::new("etcd/server-ca.key")
        );
        let second = backup_tls(server, 42).unwrap().unwrap();
        assert_eq!(second, server.join("tls-42-1"));
        let leftovers: Vec<_> = fs::read_dir(server)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn nothing_to_back_up_without_tls() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(backup_tls(dir.path(), 1).unwrap(), None);
    }
}
