//! The plain database file a drill restores from: the copy itself, or its plaintext made in the
//! drill's own temp dir (0700, removed with it): decrypted when the name ends in `.age` (with
//! this host's identities), then extracted when what remains ends in `.zip`.
//!
//! A copy that cannot be opened for lack of the right key is not damaged: it gets the
//! `identity` check, which makes the verdict "cannot verify" rather than "failed"
//! (`DrillResult::CannotVerify`). A damaged archive or age stream is a failed check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::DrillError;
use crate::crypt::{CryptError, Identities};
use crate::inspect::report::Check;
use crate::restore::decrypt::{DecryptError, decrypt_to_file};
use crate::snapshot::encryption_record::EncryptionRecord;
use crate::snapshot::name::{ZIP_SUFFIX, is_encrypted_name, without_age};

/// The name of the check that says the copy could not be opened with the keys at hand.
pub const IDENTITY_CHECK: &str = "identity";

/// This host's keys for encrypted copies, as the configuration gave them.
#[derive(Debug, Clone, Default)]
pub enum Keys {
    /// No identity file is configured.
    #[default]
    None,
    Loaded(Arc<Identities>),
    /// The identity file or the encryption Secret is configured but could not be read; the
    /// text says which and why.
    Unreadable(String),
}

/// What the drill goes on with: the plain file, or the check that ends it.
pub enum Plain {
    File(PathBuf),
    Stop(Check),
}

/// Makes the plain file of `path` (named `file_name`) in `work`. `needed` names the keys the
/// copy was encrypted to, when a record says so.
pub async fn prepare(
    keys: &Keys,
    path: &Path,
    file_name: &str,
    work: &Path,
) -> Result<Plain, DrillError> {
    let mut current = path.to_path_buf();
    if is_encrypted_name(file_name) {
        let identities = match keys {
            Keys::Unreadable(why) => {
                return Ok(Plain::Stop(cannot_verify(format!(
                    "this host's identities could not be read: {why}"
                ))));
            }
            Keys::Loaded(ids) => Some(Arc::clone(ids)),
            Keys::None => None,
        };
        let (input, dir) = (path.to_path_buf(), work.to_path_buf());
        let decrypted = tokio::task::spawn_blocking(move || {
            let needed = EncryptionRecord::read_beside(&input)
                .map(|r| r.recipients)
                .unwrap_or_default();
            decrypt_to_file(&input, &dir, identities.as_deref(), &needed)
        })
        .await
        .map_err(DrillError::Task)?;
        match decrypted {
            // The work dir goes as a whole; the guard must not remove the file early.
            Ok(plain) => {
                current = plain.path().to_path_buf();
                std::mem::forget(plain);
            }
            Err(e) => return Ok(Plain::Stop(decrypt_check(&e))),
        }
    }
    if without_age(file_name).ends_with(ZIP_SUFFIX) {
        let (zip, dir) = (current.clone(), work.join("extracted"));
        let extracted = tokio::task::spawn_blocking(move || {
            crate::fsutil::create_dir_all_mode(&dir, 0o700)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    crate::restore::extract_snapshot(&zip, &dir)
                        .map_err(|e| crate::errors::error_chain(&e))
                })
        })
        .await
        .map_err(DrillError::Task)?;
        match extracted {
            Ok(p) => current = p,
            Err(detail) => return Ok(Plain::Stop(Check::new("archive", false, detail))),
        }
    }
    Ok(Plain::File(current))
}

/// A failed decryption as the check that ends the drill: a key problem cannot verify, anything
/// else (a damaged header or stream) fails.
fn decrypt_check(error: &DecryptError) -> Check {
    match error {
        DecryptError::Open {
            source: CryptError::IdentityRequired { needed, .. },
            ..
        } => cannot_verify(format!("needs identity for fingerprints {needed}")),
        DecryptError::Open {
            source: CryptError::NoMatchingIdentity { needed, held, .. },
            ..
        } => cannot_verify(format!(
            "needs identity for fingerprints {needed} (this host holds {held})"
        )),
        other => Check::new("decrypt", false, crate::errors::error_chain(other)),
    }
}

fn cannot_verify(why: String) -> Check {
    Check::new(IDENTITY_CHECK, false, format!("cannot verify: {why}"))
}
