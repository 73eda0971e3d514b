//! Inspecting an S3 object of the configured store: its body is streamed into an anonymous
//! spill while it is hashed against the SHA-256 recorded at upload (the `object` check), then
//! inspected as a local copy (decrypted first when it is encrypted), with the `uploader` check
//! when a token was given.

use std::fs::File;
use std::path::Path;

use secrecy::SecretString;

use super::report::{Check, InspectReport};
use super::{InspectError, encrypted, from_spill, identity, inspect_zip, is_zip, source};
use crate::crypt::Identities;
use crate::snapshot::encryption_record::EncryptionRecord;
use crate::store::s3::metadata::ExtraMetadata;
use crate::store::s3::{S3Error, S3Store};

/// Inspects an S3 object of the configured store: streamed into a spill (hashing the whole
/// object against the SHA-256 recorded at upload, and the trailer), then as a local copy. An
/// encrypted object needs [`inspect_s3_decrypting`].
pub async fn inspect_s3(
    store: &S3Store,
    name: &str,
    data_dir: &Path,
    token: Option<SecretString>,
) -> Result<InspectReport, InspectError> {
    inspect_s3_decrypting(store, name, data_dir, token, None).await
}

/// [`inspect_s3`] for objects that may be encrypted with age, which `identities` open; the
/// object's metadata names the fingerprints it was encrypted to.
pub async fn inspect_s3_decrypting(
    store: &S3Store,
    name: &str,
    data_dir: &Path,
    token: Option<SecretString>,
    identities: Option<Identities>,
) -> Result<InspectReport, InspectError> {
    crate::snapshot::name::validate_user_name(name).map_err(|reason| InspectError::NotFound {
        name: name.to_string(),
        looked: reason,
    })?;
    let key = store.layout().object_key(name);
    let s3_err = |source: S3Error| InspectError::S3 {
        name: name.to_string(),
        source: Box::new(source),
    };
    let response = store.get(&key, "read").await.map_err(s3_err)?;
    let meta = |key: &str| {
        response
            .metadata()
            .and_then(|m| m.get(&key.to_ascii_lowercase()).cloned())
    };
    let recorded = meta(crate::store::s3::store::META_SHA256);
    let uploader = meta(crate::store::s3::store::META_TOKEN_HASH).filter(|h| !h.is_empty());
    let mut encryption = response
        .metadata()
        .and_then(EncryptionRecord::from_object_metadata)
        .map(|r| encrypted::Recorded {
            recipients: r.recipients,
            plaintext_sha256: r.plaintext_sha256,
        })
        .unwrap_or_default();
    if encryption.plaintext_sha256.is_none() && crate::snapshot::name::is_encrypted_name(name) {
        // A streamed upload: the digest is in the snapshot's `.metadata` record object.
        if let Ok(ExtraMetadata::Found(Some(record))) = store.read_extra_metadata(name).await {
            encryption.plaintext_sha256 = EncryptionRecord::plaintext_sha256_in(&record);
        }
    }
    let dir = source::spill_dir(data_dir).map_err(|reason| InspectError::SpillDir {
        name: name.to_string(),
        reason,
    })?;
    let spill_err = |source| InspectError::Spill {
        name: name.to_string(),
        source,
    };
    let mut spill = source::anonymous_file(&dir).map_err(spill_err)?;
    let (object_sha, size) = s3_body_reader(response.body, &mut spill)
        .await
        .map_err(|source| InspectError::S3Body {
            name: name.to_string(),
            source,
        })?;
    let label = crate::store::s3::keys::location(store.client().bucket(), &key);
    let object_check = object_check(recorded.as_deref(), &object_sha);
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut report = if encrypted::is_encrypted(&spill, &label) {
            let mut spill = spill;
            std::io::Seek::rewind(&mut spill).map_err(spill_err_owned(&label))?;
            let ids = identities.as_ref();
            encrypted::inspect(
                spill,
                label,
                size,
                encryption,
                &data_dir,
                token.as_ref(),
                ids,
            )?
        } else if is_zip(name_of(&label)) {
            inspect_zip(spill, label, size, &data_dir, token.as_ref())?
        } else {
            let streamed = source::stream_file(&spill).map_err(spill_err_owned(&label))?;
            from_spill(&spill, label, size, streamed, Vec::new(), token.as_ref())
        };
        let cluster = uploader.zip(token.as_ref());
        let cluster = cluster.map(|(recorded, t)| identity::uploader_check(&recorded, t));
        for check in [Some(object_check), cluster].into_iter().flatten().rev() {
            report.healthy &= check.ok;
            report.checks.insert(0, check);
        }
        Ok(report)
    })
    .await
    .map_err(|e| InspectError::Spill {
        name: name.to_string(),
        source: std::io::Error::other(e),
    })?
}

/// The `object` check: the object's SHA-256 against the one recorded at upload. Pure.
fn object_check(recorded: Option<&str>, object_sha: &str) -> Check {
    match recorded {
        Some(r) if r.eq_ignore_ascii_case(object_sha) => Check::new(
            "object",
            true,
            format!("sha256 {object_sha} matches the one recorded at upload"),
        ),
        Some(r) => Check::new(
            "object",
            false,
            format!("sha256 mismatch: recorded at upload {r}, the object hashes to {object_sha}"),
        ),
        None => Check::new(
            "object",
            true,
            "no sha256 recorded with the object (not compared)",
        ),
    }
}

fn name_of(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}

fn spill_err_owned(name: &str) -> impl Fn(std::io::Error) -> InspectError + '_ {
    move |source| InspectError::Spill {
        name: name.to_string(),
        source,
    }
}

/// Writes the object's body into `spill`; returns its SHA-256 and size.
async fn s3_body_reader(
    mut body: aws_sdk_s3::primitives::ByteStream,
    spill: &mut File,
) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Write;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        spill.write_all(&chunk)?;
    }
    Ok((crate::hex::encode(&hasher.finalize()), size))
}
