//! The encryption Secret (`etcd-snapshot-encryption-secret`): age keys kept in a Kubernetes
//! Secret beside the S3 config Secret (namespace `kube-system`), read afresh by every operation
//! that needs them, so rotating recipients is a `kubectl apply` that the next save uses.
//!
//! Keys of the Secret:
//! - `etcd-snapshot-encryption-recipients`: public `age1…` keys, separated by commas, spaces or
//!   new lines, `#` comments to the end of a line; added to the configured recipients.
//! - `etcd-snapshot-encryption-identity` (optional): private keys as `age-keygen` writes them,
//!   for restore, inspect and rekey on a host that can reach the cluster. Read only by them,
//!   never by a save, and never shown: errors name the line number, not its text.
//!
//! Other keys are ignored. Parsing (`parse_secret`) is pure; `read_encryption_secret` fetches.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::{ExposeSecret, SecretString};

use super::access::{KubeAccess, KubeError};
use super::s3_secret::NAMESPACE;
use crate::config::DesiredConfig;
use crate::config::encryption::EncryptionSettings;
use crate::crypt::{CryptError, Identities, Recipients};

/// The Secret key holding recipients (the same name as the config key).
pub const RECIPIENTS_KEY: &str = "etcd-snapshot-encryption-recipients";
/// The Secret key holding identities (private keys).
pub const IDENTITY_KEY: &str = "etcd-snapshot-encryption-identity";

/// Why the encryption Secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionSecretError {
    #[error("failed to read encryption Secret kube-system/{name}")]
    NoAccess {
        name: String,
        #[source]
        source: KubeError,
    },
    #[error("encryption Secret kube-system/{name} does not exist")]
    NotFound { name: String },
    #[error("failed to read encryption Secret kube-system/{name}")]
    Get {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret kube-system/{name} key {key} is not UTF-8 text: expected {expected}")]
    NotText {
        name: String,
        key: &'static str,
        expected: &'static str,
    },
    #[error("invalid encryption Secret kube-system/{name}")]
    Invalid {
        name: String,
        #[source]
        source: CryptError,
    },
    #[error(
        "encryption Secret kube-system/{name} has neither key {RECIPIENTS_KEY} nor {IDENTITY_KEY}"
    )]
    Empty { name: String },
    #[error(
        "no encryption recipients: encryption Secret kube-system/{name} has no key {RECIPIENTS_KEY} (expected {RECIPIENTS_EXPECTED}) and none are configured"
    )]
    NoRecipients { name: String },
    #[error("failed to read the configured encryption keys")]
    Keys(#[source] CryptError),
}

/// What the Secret holds.
#[derive(Debug, Default)]
pub struct SecretKeys {
    /// Present when the recipients key is (an empty value is an error when encrypting).
    pub recipients: Option<Recipients>,
    pub identities: Option<Identities>,
}

/// What the recipients key holds, for errors.
const RECIPIENTS_EXPECTED: &str = "age1… public keys separated by commas or new lines";
const IDENTITY_EXPECTED: &str = "age secret keys as age-keygen writes them";

/// Parses the Secret's raw `data` (values as the apiserver stores them, decoded from base64)
/// and `stringData`. Pure. The identity's bytes are wrapped as a secret at once.
pub fn parse_secret(
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<SecretKeys, EncryptionSecretError> {
    let text = |key: &'static str, expected: &'static str| -> Result<_, EncryptionSecretError> {
        data.get(key)
            .map(|bytes| {
                std::str::from_utf8(bytes).map_err(|_| EncryptionSecretError::NotText {
                    name: name.into(),
                    key,
                    expected,
                })
            })
            .transpose()
    };
    let invalid = |source| EncryptionSecretError::Invalid {
        name: name.into(),
        source,
    };
    let recipients = match text(RECIPIENTS_KEY, RECIPIENTS_EXPECTED)? {
        Some(value) => {
            let source = format!("Secret kube-system/{name} key {RECIPIENTS_KEY}");
            Some(Recipients::parse(split_recipients(value), &source).map_err(invalid)?)
        }
        None => None,
    };
    let identities = match text(IDENTITY_KEY, IDENTITY_EXPECTED)? {
        Some(value) => {
            let value = SecretString::from(value.to_string());
            let source = format!("Secret kube-system/{name} key {IDENTITY_KEY}");
            Some(Identities::parse(value.expose_secret(), &source).map_err(invalid)?)
        }
        None => None,
    };
    if recipients.is_none() && identities.is_none() {
        return Err(EncryptionSecretError::Empty { name: name.into() });
    }
    Ok(SecretKeys {
        recipients,
        identities,
    })
}

/// The recipients of a Secret value: `#` comments dropped, then split on commas and white space.
fn split_recipients(value: &str) -> Vec<&str> {
    value
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|part| !part.is_empty())
        .collect()
}

/// The recipients a save (or rekey) encrypts to now: the configured ones (the recipients file
/// read afresh) plus the encryption Secret's, read now through `access`. None when encryption
/// is off; an error, never plaintext, when a configured Secret cannot be read or no recipient
/// is left.
pub async fn current_recipients(
    access: &KubeAccess,
    settings: &EncryptionSettings,
) -> Result<Option<Recipients>, EncryptionSecretError> {
    let Some(name) = &settings.secret else {
        return settings
            .current_recipients()
            .map_err(EncryptionSecretError::Keys);
    };
    let from_secret = read_encryption_secret(access, name).await?.recipients;
    match settings.current_recipients_with(from_secret) {
        Err(CryptError::NoRecipients) => {
            Err(EncryptionSecretError::NoRecipients { name: name.clone() })
        }
        other => other.map_err(EncryptionSecretError::Keys),
    }
}

/// The identities a command that decrypts (restore, inspect, rekey) holds: the identity
/// file's plus the encryption Secret's, when one is configured (read with this command's
/// Kubernetes access). None when neither gives any.
pub async fn command_identities(
    config: &DesiredConfig,
) -> Result<Option<Identities>, EncryptionSecretError> {
    let settings = &config.snapshot.encryption;
    let access = match &settings.secret {
        Some(name) => Some(command_access(config, name).await?),
        None => None,
    };
    held_identities(access.as_ref(), settings).await
}

/// The identity file's identities plus, when an encryption Secret is configured, the Secret's,
/// read now through `access` (the server's own, for restore drills). None when neither gives
/// any.
pub async fn held_identities(
    access: Option<&KubeAccess>,
    settings: &EncryptionSettings,
) -> Result<Option<Identities>, EncryptionSecretError> {
    let mut identities = settings.identities().map_err(EncryptionSecretError::Keys)?;
    let (Some(name), Some(access)) = (&settings.secret, access) else {
        return Ok(identities);
    };
    if let Some(more) = read_encryption_secret(access, name).await?.identities {
        match &mut identities {
            Some(held) => held.extend(more),
            None => identities = Some(more),
        }
    }
    Ok(identities)
}

/// Kubernetes access for a command reading the encryption Secret `name`.
pub async fn command_access(
    config: &DesiredConfig,
    name: &str,
) -> Result<KubeAccess, EncryptionSecretError> {
    KubeAccess::from_config(config)
        .await
        .map_err(|source| EncryptionSecretError::NoAccess {
            name: name.into(),
            source,
        })
}

/// Fetches the Secret now and parses it.
pub async fn read_encryption_secret(
    access: &KubeAccess,
    name: &str,
) -> Result<SecretKeys, EncryptionSecretError> {
    let client = access
        .client()
        .map_err(|source| EncryptionSecretError::NoAccess {
            name: name.into(),
            source,
        })?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let found = secrets
        .get_opt(name)
        .await
        .map_err(|source| EncryptionSecretError::Get {
            name: name.into(),
            source,
        })?
        .ok_or_else(|| EncryptionSecretError::NotFound { name: name.into() })?;
    let mut data: BTreeMap<String, Vec<u8>> = found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (key, value) in found.string_data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    let parsed = parse_secret(name, &data);
    // The identity's bytes: overwrite them before they are freed.
    for value in data.values_mut() {
        value.iter_mut().for_each(|b| *b = 0);
    }
    parsed
}

#[cfg(test)]
#[allow(deprecated)] // age 0.13 deprecates generating X25519 keys; they are what we test with
mod tests {
    use super::*;

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn recipients_split_on_commas_and_lines_with_comments() {
        let (a, b) = (
            age::x25519::Identity::generate().to_public().to_string(),
            age::x25519::Identity::generate().to_public().to_string(),
        );
        let value = format!("# ops\n{a}, # the old key\n\n  {b}\n");
        let keys = parse_secret("enc", &data(&[(RECIPIENTS_KEY, &value)])).unwrap();
        assert_eq!(keys.recipients.unwrap().keys().len(), 2);
        assert!(keys.identities.is_none());
    }

    #[test]
    fn errors_name_the_secret_the_key_and_what_was_expected_never_the_identity() {
        let err = parse_secret("enc", &data(&[(RECIPIENTS_KEY, "age1typo")])).unwrap_err();
        let chain = crate::errors::error_chain(&err);
        assert!(chain.contains("Secret kube-system/enc"), "{chain}");
        assert!(
            chain.contains(RECIPIENTS_KEY) && chain.contains("age1typo"),
            "{chain}"
        );
        assert!(
            chain.contains("expected an age X25519 public key"),
            "{chain}"
        );

        let secret_line = "AGE-SECRET-KEY-1NOTAREALKEYNOTAREALKEY";
        let err = parse_secret("enc", &data(&[(IDENTITY_KEY, secret_line)])).unwrap_err();
        let chain = crate::errors::error_chain(&err);
        assert!(
            chain.contains(IDENTITY_KEY) && chain.contains("line 1"),
            "{chain}"
        );
        assert!(!chain.contains(secret_line), "{chain}");

        let mut binary = data(&[]);
        binary.insert(RECIPIENTS_KEY.into(), vec![0xff, 0xfe]);
        let err = parse_secret("enc", &binary).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8") && err.contains(RECIPIENTS_KEY),
            "{err}"
        );

        let err = parse_secret("enc", &data(&[("other", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has neither key"), "{err}");
    }

    #[test]
    fn an_identity_opens_what_its_recipient_encrypts() {
        let id = age::x25519::Identity::generate();
        let text = id.to_string();
        let text = age::secrecy::ExposeSecret::expose_secret(&text);
        let keys = parse_secret("enc", &data(&[(IDENTITY_KEY, text)])).unwrap();
        let ids = keys.identities.unwrap();
        assert_eq!(
            ids.fingerprints(),
            Recipients::parse([id.to_public().to_string().as_str()], "t")
                .unwrap()
                .fingerprints()
        );
    }

    #[tokio::test]
    async fn without_access_the_error_names_the_secret() {
        let err = read_encryption_secret(&KubeAccess::disabled(), "enc")
            .await
            .unwrap_err();
        let chain = crate::errors::error_chain(&err);
        assert!(chain.contains("Secret kube-system/enc"), "{chain}");
        assert!(chain.contains("--kubeconfig"), "{chain}");
    }
}

/// Fuzz target `encryption_secret`: the Secret's values come from whoever can write Secrets in
/// `kube-system`. Any bytes under either key give keys or an error, never a panic, and an error
/// never carries a secret key line.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseResult;

    use super::*;
    use crate::fuzz_support::{Fuzz, hostile_text, mutated, mutated_text};

    const SECRET_SAMPLE: &str =
        "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";

    fn parse_any(recipients: Vec<u8>, identity: String) -> TestCaseResult {
        let mut data = BTreeMap::new();
        data.insert(RECIPIENTS_KEY.to_string(), recipients);
        data.insert(IDENTITY_KEY.to_string(), identity.into_bytes());
        if let Err(e) = parse_secret("s", &data) {
            prop_assert!(!crate::errors::error_chain(&e).contains("AGE-SECRET-KEY-1"));
        }
        Ok(())
    }

    #[test]
    fn fuzz_encryption_secret() {
        let mut fuzz = Fuzz::new("encryption_secret", 1);
        let sample = b"# ops\nage1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj, x\n";
        fuzz.check(
            "secret_values",
            256,
            (
                prop_oneof![
                    mutated(sample.to_vec()).prop_map(|(b, _)| b),
                    prop::collection::vec(any::<u8>(), 0..256),
                    // A private key pasted under the recipients key.
                    mutated_text(SECRET_SAMPLE).prop_map(String::into_bytes),
                ],
                prop_oneof![hostile_text(128), mutated_text(SECRET_SAMPLE),],
            ),
            |(recipients, identity)| parse_any(recipients, identity),
        );
        fuzz.finish();
    }
}
