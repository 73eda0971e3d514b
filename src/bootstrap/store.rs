//! Bootstrap data in etcd: one encrypted value at `/bootstrap/<token hash>`, the key k3s uses,
//! so snapshots carry it and RKE2 can read ours.
//!
//! Never overwrites a value it cannot decrypt (another token's data), and writes only when the
//! content changed, so repeated saves do not churn etcd revisions. Decides nothing about disk.

use etcd_client::{Client, Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};

use super::BootstrapError;
use super::codec::BootstrapData;
use super::crypto::{STORAGE_PREFIX, decrypt, encrypt, storage_key};

/// Attempts when another writer changes the key between our read and our write.
const SAVE_ATTEMPTS: usize = 3;

/// What `save_to_etcd` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The key did not exist and was written.
    Created,
    /// The key held different data (same token) and was replaced.
    Updated,
    /// The key already held exactly this data; nothing was written.
    Unchanged,
}

/// Stores `data` encrypted with `passphrase` (the normalised token) under its storage key,
/// unless the key already holds the same data. A key that exists but does not decrypt with
/// `passphrase` is refused (`DifferentToken`) and left as it is. The write is a transaction
/// guarded by the revision read, so a concurrent writer is never silently overwritten.
pub async fn save_to_etcd(
    client: &mut Client,
    passphrase: &str,
    data: &BootstrapData,
) -> Result<SaveOutcome, BootstrapError> {
    let key = storage_key(passphrase);
    for _ in 0..SAVE_ATTEMPTS {
        let response = client
            .get(key.as_str(), None)
            .await
            .map_err(etcd_error("read", &key))?;
        let (guard, outcome) = match response.kvs().first() {
            None => (
                Compare::version(key.as_str(), CompareOp::Equal, 0),
                SaveOutcome::Created,
            ),
            Some(kv) => {
                let stored = open_stored(passphrase, &key, kv)?;
                if BootstrapData::from_json(&stored).ok().as_ref() == Some(data) {
                    return Ok(SaveOutcome::Unchanged);
                }
                let revision = kv.mod_revision();
                let guard = Compare::mod_revision(key.as_str(), CompareOp::Equal, revision);
                (guard, SaveOutcome::Updated)
            }
        };
        let sealed = encrypt(passphrase, &data.to_json())?;
        let txn = Txn::new()
            .when([guard])
            .and_then([TxnOp::put(key.as_str(), sealed, None)]);
        let written = client.txn(txn).await.map_err(etcd_error("write", &key))?;
        if written.succeeded() {
            if outcome == SaveOutcome::Created {
                warn_about_other_keys(client, &key).await;
            }
            return Ok(outcome);
        }
        tracing::debug!(key = %key, "bootstrap key changed during save; retrying");
    }
    Err(BootstrapError::Contended { key })
}

/// The bootstrap data for `passphrase`, or None when etcd holds none at all.
///
/// When this token's key is missing but other `/bootstrap/` keys exist, each is tried with the
/// passphrase (k3s once stored data under the empty-token hash); if none opens, the error says
/// the token differs, rather than pretending there is no data.
pub async fn load_from_etcd(
    client: &mut Client,
    passphrase: &str,
) -> Result<Option<BootstrapData>, BootstrapError> {
    let key = storage_key(passphrase);
    let response = client
        .get(STORAGE_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd_error("read", &key))?;
    if let Some(own) = response.kvs().iter().find(|kv| kv.key() == key.as_bytes()) {
        let plain = open_stored(passphrase, &key, own)?;
        return BootstrapData::from_json(&plain).map(Some);
    }
    let others: Vec<&KeyValue> = response.kvs().iter().collect();
    for kv in &others {
        let other_key = String::from_utf8_lossy(kv.key()).into_owned();
        if let Ok(plain) = open_stored(passphrase, &other_key, kv) {
            tracing::warn!(key = %other_key, expected = %key, "bootstrap data found under a legacy key");
            return BootstrapData::from_json(&plain).map(Some);
        }
    }
    if others.is_empty() {
        return Ok(None);
    }
    let found = others
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    Err(BootstrapError::NotForThisToken { key, found })
}

/// Decrypts a stored value; an authentication failure means another token's data.
fn open_stored(passphrase: &str, key: &str, kv: &KeyValue) -> Result<Vec<u8>, BootstrapError> {
    let corrupt = |source| BootstrapError::Corrupt {
        key: key.to_owned(),
        source: Box::new(source),
    };
    // Non-UTF-8 bytes cannot be valid base64, so the lossy form fails decoding as it should.
    let value = String::from_utf8_lossy(kv.value());
    decrypt(passphrase, &value).map_err(|err| match err {
        BootstrapError::WrongToken => BootstrapError::DifferentToken {
            key: key.to_owned(),
        },
        other => corrupt(other),
    })
}

/// k3s warns when several bootstrap keys exist (usually a token change); so do we.
async fn warn_about_other_keys(client: &mut Client, key: &str) {
    let options = GetOptions::new().with_prefix().with_keys_only();
    let Ok(response) = client.get(STORAGE_PREFIX, Some(options)).await else {
        return;
    };
    let others: Vec<String> = response
        .kvs()
        .iter()
        .filter(|kv| kv.key() != key.as_bytes())
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    if !others.is_empty() {
        tracing::warn!(key = %key, others = ?others, "multiple bootstrap keys found in etcd; other tokens were used before");
    }
}

fn etcd_error(op: &'static str, key: &str) -> impl FnOnce(etcd_client::Error) -> BootstrapError {
    let key = key.to_owned();
    move |source| BootstrapError::Etcd { op, key, source }
}
