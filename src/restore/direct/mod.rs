//! Restoring an encrypted database snapshot straight into the staging dir, without a
//! plaintext copy for the restore tool to copy again.
//!
//! The restore tool needs a whole, seekable plaintext file (it reads the trailer at the end
//! first), so the plain way decrypts the snapshot into a file and then lets the tool copy it:
//! two full passes, one after the other. Here the snapshot is decrypted on every core into the
//! file that becomes the member's database (`parallel`), with its SHA-256 trailer checked in
//! the same pass, while the tool restores an empty database beside it to write the new
//! member's WAL and raft snapshot; then the one value the tool would have changed in the copy
//! is changed in place (`membership`) and the file is renamed into the staging dir. A file
//! that still has the seal its save recorded skips the trailer's hash: the save checked that
//! very plaintext, and every chunk is authenticated as it is decrypted (`crypt::seal`).
//!
//! It applies only where that reproduction is proven: etcd 3.4's `etcdctl` without a revision
//! bump ([`supported`]), and only when the tool wrote nothing else into the empty database.
//! Otherwise (and when the tool refuses the empty database) the checked plaintext is handed
//! back ([`Direct::Declined`]) and restored through the tool as before. The staged result then goes through the same proof as any restore.

pub mod membership;
pub mod parallel;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ResetError;
use super::run::{RestoreTarget, run_restore};
use super::tool::{RestoreTool, ToolKind};
use crate::crypt::{DecryptingReader, Fingerprint, Identities};
use crate::fsutil;
use crate::inspect::revision::Revisions;
use crate::restore::decrypt::{DecryptError, Decrypted};
use parallel::Trailer;

/// Whether the direct restore reproduces what `tool` does with `target`. Pure.
pub fn supported(tool: &RestoreTool, target: &RestoreTarget) -> bool {
    tool.kind == ToolKind::Etcdctl
        && (tool.version.major, tool.version.minor) == (3, 4)
        && target.bump_revision.is_none()
}

/// The encrypted snapshot and the keys that open it.
pub struct Source {
    pub path: PathBuf,
    pub identities: Identities,
    pub needed: Vec<Fingerprint>,
    /// The seal its save recorded (`EncryptionRecord::seal`): when the file still has it, the
    /// plaintext's trailer is not hashed again (`parallel::Trailer`).
    pub recorded_seal: Option<String>,
}

/// The snapshot opened once, for every worker, and the check its plaintext gets.
struct Pinned {
    file: File,
    trailer: Trailer,
}

/// What a direct restore did.
pub enum Direct {
    /// The staging dir holds the restored member; the database's revisions, for its proof.
    Staged(Option<Revisions>),
    /// The tool's changes could not be reproduced (`reason`): here is the checked plaintext
    /// (removed on drop), for the tool. Nothing is left in the staging dir.
    Declined {
        plaintext: Decrypted,
        reason: String,
    },
}

/// Decrypts `source` into the staging dir `target.data_dir` beside the tool's run on an empty
/// database. A snapshot no identity opens is refused before anything is written; on any
/// other error the staging dir and every file this made are removed.
pub async fn restore_directly(
    tool: &RestoreTool,
    target: &RestoreTarget,
    source: Source,
) -> Result<Direct, ResetError> {
    let (source, pinned, first) = tokio::task::spawn_blocking(move || {
        let pinned = source.pin()?;
        source.open(&pinned).map(|first| (source, pinned, first))
    })
    .await??;
    if pinned.trailer == Trailer::CheckedAtSave {
        tracing::info!(
            "the snapshot's seal is the one its save recorded: its trailer was checked then, and every chunk is authenticated as it is decrypted"
        );
    }
    let staging = target.data_dir.clone();
    // Both are removed on drop; the plaintext's name is gone by then once it is installed.
    let empty = Decrypted::removed_on_drop(beside(&staging, "empty"));
    let plaintext = Decrypted::removed_on_drop(beside(&staging, "plaintext"));
    write_empty_database(empty.path())?;
    let dest = plaintext.path().to_path_buf();
    let decrypting = tokio::task::spawn_blocking(move || source.decrypt(&pinned, first, &dest));
    let (decrypted, restored) = tokio::join!(decrypting, run_restore(tool, empty.path(), target));
    drop(empty);
    let image_len = match decrypted.map_err(ResetError::from).and_then(|d| Ok(d?)) {
        Ok(image_len) => image_len,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if let Err(e) = restored {
        // The tool's run on the real file gets the last word on what is wrong.
        let _ = std::fs::remove_dir_all(&staging);
        let reason = format!(
            "the restore tool refused an empty database: {}",
            crate::errors::error_chain(&e)
        );
        return Ok(Direct::Declined { plaintext, reason });
    }
    let tool_db = staging.join("member/snap/db");
    match membership::patch_for(&tool_db, plaintext.path(), image_len) {
        Ok(patch) => install(&staging, &plaintext, image_len, &patch),
        Err(reason) => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(Direct::Declined { plaintext, reason })
        }
    }
}

/// The empty database the tool restores (0600, a new file).
fn write_empty_database(path: &Path) -> Result<(), ResetError> {
    let _ = std::fs::remove_file(path);
    fsutil::create_new(path, 0o600)
        .and_then(|mut f| f.write_all(&membership::empty_database()))
        .map_err(|source| ResetError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
}

/// Patches the checked plaintext, puts it in place of the tool's database and syncs both.
fn install(
    staging: &Path,
    plaintext: &Decrypted,
    image_len: u64,
    patch: &membership::Patch,
) -> Result<Direct, ResetError> {
    let tool_db = staging.join("member/snap/db");
    // Read while the plaintext still ends in its trailer, as any snapshot file does.
    let revisions = super::stage::revisions_or_warn(plaintext.path());
    // The tool's small database goes first, then the decrypted one takes its name.
    let installed = membership::apply(plaintext.path(), image_len, patch)
        .and_then(|()| std::fs::remove_file(&tool_db))
        .and_then(|()| std::fs::rename(plaintext.path(), &tool_db))
        .and_then(|()| File::open(&tool_db)?.sync_all())
        .and_then(|()| fsutil::sync_dir(&staging.join("member/snap")));
    match installed {
        Ok(()) => Ok(Direct::Staged(revisions)),
        Err(source) => {
            let _ = std::fs::remove_dir_all(staging);
            Err(ResetError::Io {
                action: "install the decrypted database into",
                path: tool_db,
                source,
            })
        }
    }
}

impl Source {
    /// Opens the file and compares its seal with the recorded one.
    fn pin(&self) -> Result<Pinned, DecryptError> {
        let file = File::open(&self.path).map_err(|source| DecryptError::Io {
            action: "open",
            path: self.path.clone(),
            source,
        })?;
        // An unreadable header is reported by the opening that follows.
        let found = crate::crypt::read_seal(&file).ok().flatten();
        let trailer = parallel::trailer_check(self.recorded_seal.as_deref(), found.as_deref());
        Ok(Pinned { file, trailer })
    }

    fn with_input<T>(&self, pinned: &Pinned, f: impl FnOnce(&parallel::Encrypted<'_>) -> T) -> T {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        f(&parallel::Encrypted {
            file: &pinned.file,
            path: &self.path,
            identities: &self.identities,
            name: &name,
            needed: &self.needed,
            trailer: pinned.trailer,
        })
    }

    fn open(&self, pinned: &Pinned) -> Result<DecryptingReader<File>, DecryptError> {
        self.with_input(pinned, parallel::open)
    }

    fn decrypt(
        &self,
        pinned: &Pinned,
        first: DecryptingReader<File>,
        dest: &Path,
    ) -> Result<u64, DecryptError> {
        self.with_input(pinned, |input| {
            parallel::decrypt_in_parallel(input, first, dest)
        })
    }
}

/// A file beside the staging dir `etcd-restore-<unix>.tmp`: `etcd-restore-<unix>-<what>.tmp`,
/// which an interrupted restore's cleanup also removes.
fn beside(staging: &Path, what: &str) -> PathBuf {
    let name = staging
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".tmp").unwrap_or(&name);
    staging.with_file_name(format!("{stem}-{what}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::tool::{ToolAssessment, Version};

    fn tool(kind: ToolKind, version: Version) -> RestoreTool {
        RestoreTool {
            kind,
            path: PathBuf::from("/usr/bin/x"),
            version,
            assessment: ToolAssessment {
                bump_revision: false,
                warnings: Vec::new(),
            },
        }
    }

    fn target(bump: Option<u64>) -> RestoreTarget {
        RestoreTarget {
            data_dir: PathBuf::from("/var/lib/x/server/db/etcd-restore-5.tmp"),
            name: "n".into(),
            peer_url: "https://127.0.0.1:2380".into(),
            cluster_token: "t".into(),
            bump_revision: bump,
            skip_hash_check: true,
        }
    }

    #[test]
    fn only_etcd_3_4s_tool_without_a_revision_bump_is_reproduced() {
        let v34 = Version::new(3, 4, 23);
        assert!(supported(&tool(ToolKind::Etcdctl, v34), &target(None)));
        assert!(!supported(&tool(ToolKind::Etcdctl, v34), &target(Some(5))));
        assert!(!supported(
            &tool(ToolKind::Etcdutl, Version::new(3, 5, 1)),
            &target(None)
        ));
        assert!(!supported(
            &tool(ToolKind::Etcdctl, Version::new(3, 5, 1)),
            &target(None)
        ));
    }

    #[test]
    fn the_files_beside_the_staging_dir_match_its_cleanup() {
        let staging = Path::new("/d/etcd-restore-1700000000.tmp");
        assert_eq!(
            beside(staging, "plaintext"),
            Path::new("/d/etcd-restore-1700000000-plaintext.tmp")
        );
    }
}
