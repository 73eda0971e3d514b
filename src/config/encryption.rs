//! The encryption keys: `etcd-snapshot-encryption-recipients` (public `age1…` keys, a list),
//! `etcd-snapshot-encryption-recipients-file` (an `age -R` style file, re-read by every save so
//! a rotated file applies to the next snapshot without a restart) and
//! `etcd-snapshot-encryption-identity-file` (private keys, read only by the commands that decrypt:
//! restore, inspect and rekey; never by a save), and `etcd-snapshot-encryption-secret`, a
//! kube-system Secret adding both (read per operation by `kube::encryption_secret`).
//!
//! The inline recipients are checked here, so a typo is reported with its key and source like
//! any other bad value; files are read when they are used and their errors name the file.

use std::path::PathBuf;

use super::build::Parsed;
use super::resolve::ConfigError;
use crate::crypt::{CryptError, Identities, Recipients};

pub const RECIPIENTS: &str = "etcd-snapshot-encryption-recipients";
pub const RECIPIENTS_FILE: &str = "etcd-snapshot-encryption-recipients-file";
pub const IDENTITY_FILE: &str = "etcd-snapshot-encryption-identity-file";
pub const SECRET: &str = "etcd-snapshot-encryption-secret";
pub const PASSPHRASE_FILE: &str = "etcd-snapshot-encryption-passphrase-file";

/// What `etcd-snapshot-encryption-recipients` accepts, for errors.
pub const RECIPIENTS_EXPECTED: &str =
    "age X25519 public keys (age1 followed by 58 bech32 characters, as age-keygen prints them)";

/// Where new snapshots are encrypted to, and where this host's private keys are.
#[derive(Debug, Clone, Default)]
pub struct EncryptionSettings {
    /// The inline recipients (already checked).
    pub recipients: Option<Recipients>,
    /// A recipients file, read at each save.
    pub recipients_file: Option<PathBuf>,
    /// An identity file, read when a snapshot is decrypted.
    pub identity_file: Option<PathBuf>,
    /// A kube-system Secret with more recipients (and identities), read by every operation
    /// (`kube::encryption_secret`).
    pub secret: Option<String>,
    /// A passphrase file: encrypts with age's scrypt recipient (alone) and decrypts.
    pub passphrase_file: Option<PathBuf>,
}

impl EncryptionSettings {
    /// True when new snapshots are encrypted.
    pub fn enabled(&self) -> bool {
        self.recipients.is_some()
            || self.recipients_file.is_some()
            || self.secret.is_some()
            || self.passphrase_file.is_some()
    }

    /// The recipients a save encrypts to now: the inline keys plus the file's, read afresh,
    /// plus `from_secret` (the encryption Secret's, read by the caller). `Ok(None)` when
    /// encryption is off. An empty set is an error: a save must never fall back to plaintext
    /// because a file or the Secret was emptied by mistake.
    pub fn current_recipients_with(
        &self,
        from_secret: Option<Recipients>,
    ) -> Result<Option<Recipients>, CryptError> {
        if !self.enabled() {
            return Ok(None);
        }
        if let Some(path) = &self.passphrase_file {
            // Alone: the config check refuses it beside recipients.
            return Recipients::read_passphrase_file(path).map(Some);
        }
        let mut all = self.current_recipients_local()?;
        if let Some(more) = from_secret {
            all.extend(more);
        }
        if all.is_empty() {
            return Err(CryptError::NoRecipients);
        }
        Ok(Some(all))
    }

    /// [`Self::current_recipients_with`] without a Secret.
    pub fn current_recipients(&self) -> Result<Option<Recipients>, CryptError> {
        self.current_recipients_with(None)
    }

    /// The inline keys plus the recipients file's (possibly none).
    fn current_recipients_local(&self) -> Result<Recipients, CryptError> {
        let mut all = self
            .recipients
            .clone()
            .unwrap_or(Recipients::parse([], "")?);
        if let Some(path) = &self.recipients_file {
            all.extend(Recipients::read_file(path)?);
        }
        Ok(all)
    }

    /// This host's identities, when an identity file is configured.
    pub fn identities(&self) -> Result<Option<Identities>, CryptError> {
        let mut identities = self
            .identity_file
            .as_deref()
            .map(Identities::read_file)
            .transpose()?;
        if let Some(path) = &self.passphrase_file {
            let passphrase = Identities::read_passphrase_file(path)?;
            match &mut identities {
                Some(held) => held.extend(passphrase),
                None => identities = Some(passphrase),
            }
        }
        Ok(identities)
    }
}

pub(super) fn settings(p: &Parsed) -> EncryptionSettings {
    let source = format!("key {RECIPIENTS}");
    let recipients = p
        .list(RECIPIENTS)
        .filter(|l| l.iter().any(|v| !v.trim().is_empty()))
        .and_then(|l| Recipients::parse(l.iter().map(String::as_str), &source).ok());
    EncryptionSettings {
        recipients,
        recipients_file: p.path(RECIPIENTS_FILE),
        identity_file: p.path(IDENTITY_FILE),
        secret: p.text(SECRET),
        passphrase_file: p.path(PASSPHRASE_FILE),
    }
}

/// Every inline recipient must be an `age1…` key; a passphrase goes alone.
pub(super) fn check_encryption(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let keys_too = p
        .list(RECIPIENTS)
        .is_some_and(|l| l.iter().any(|v| !v.trim().is_empty()))
        || p.path(RECIPIENTS_FILE).is_some()
        || p.text(SECRET).is_some();
    if p.path(PASSPHRASE_FILE).is_some() && keys_too {
        errors.push(p.error(
            PASSPHRASE_FILE,
            format!(
                "a passphrase file alone: age allows a passphrase only as the sole recipient, so unset {RECIPIENTS}, {RECIPIENTS_FILE} and {SECRET} (or this key)"
            ),
        ));
    }
    let Some(list) = p.list(RECIPIENTS) else {
        return;
    };
    if Recipients::parse(list.iter().map(String::as_str), RECIPIENTS).is_err() {
        errors.push(p.error(RECIPIENTS, RECIPIENTS_EXPECTED));
    }
}

#[cfg(test)]
#[allow(deprecated)] // age 0.13 deprecates generating X25519 keys; they are what we test with
mod tests {
    use super::*;

    use super::super::test_support::resolve_flags as run;

    fn public() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    #[test]
    fn recipients_are_checked_with_key_source_and_expectation() {
        let errors = run(&[(RECIPIENTS, "age1typo")]).err().unwrap().to_string();
        assert!(errors.contains(RECIPIENTS), "{errors}");
        assert!(
            errors.contains("--etcd-snapshot-encryption-recipients"),
            "{errors}"
        );
        assert!(
            errors.contains("age1typo") && errors.contains("X25519"),
            "{errors}"
        );
        let (a, b) = (public(), public());
        let config = run(&[(RECIPIENTS, &format!("{a},{b}"))]).unwrap().config;
        let settings = &config.snapshot.encryption;
        assert!(settings.enabled());
        assert_eq!(
            settings.current_recipients().unwrap().unwrap().keys().len(),
            2
        );
        let off = run(&[]).unwrap().config;
        assert!(!off.snapshot.encryption.enabled());
        assert!(
            off.snapshot
                .encryption
                .current_recipients()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_passphrase_file_goes_alone_and_serves_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passphrase");
        std::fs::write(&file, "long enough passphrase\n").unwrap();
        let path = file.to_str().unwrap();
        let config = run(&[(PASSPHRASE_FILE, path)]).unwrap().config;
        let settings = &config.snapshot.encryption;
        assert!(settings.enabled());
        let fingerprints = settings
            .current_recipients()
            .unwrap()
            .unwrap()
            .fingerprints();
        assert_eq!(fingerprints[0].as_str(), "scrypt");
        assert_eq!(
            settings.identities().unwrap().unwrap().fingerprints(),
            fingerprints
        );
        let errors = run(&[(PASSPHRASE_FILE, path), (RECIPIENTS, &public())])
            .err()
            .unwrap()
            .to_string();
        assert!(
            errors.contains(PASSPHRASE_FILE) && errors.contains("sole recipient"),
            "{errors}"
        );
        assert!(!errors.contains("long enough"), "{errors}");
    }

    #[test]
    fn the_recipients_file_is_read_at_each_use_and_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recipients.txt");
        std::fs::write(&file, format!("# ops team\n{}\n", public())).unwrap();
        let path = file.to_str().unwrap();
        let config = run(&[(RECIPIENTS_FILE, path)]).unwrap().config;
        let settings = &config.snapshot.encryption;
        let first = settings
            .current_recipients()
            .unwrap()
            .unwrap()
            .fingerprints();
        std::fs::write(&file, format!("{}\n", public())).unwrap();
        let second = settings
            .current_recipients()
            .unwrap()
            .unwrap()
            .fingerprints();
        assert_ne!(first, second, "a rotated file applies to the next save");
        std::fs::write(&file, "# emptied by mistake\n").unwrap();
        assert!(matches!(
            settings.current_recipients(),
            Err(CryptError::NoRecipients)
        ));
    }
}
