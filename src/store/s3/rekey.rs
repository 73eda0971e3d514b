//! `rekey` of the S3 copies: each object not yet encrypted to the current recipients is
//! re-encrypted through this host and put back, keeping the original until the new copy is
//! verified in the bucket.
//!
//! Per object: download (verified against its recorded SHA-256) into the work dir, decrypt ->
//! encrypt into a new local file (`store::rekey::reencrypt_file`), upload that under a temp key
//! `<folder>/.rekey/<name>`, read it back and compare its SHA-256, then replace the object with a
//! server-side copy of the temp (atomic: a reader sees the old object or the new, never a mix),
//! rewrite its `.metadata` record's fingerprint entry, and delete the temp (and, for a plaintext
//! object, the plaintext). The temp key is the marker of an interrupted run: whatever a crash or
//! an outage left under `.rekey/` is garbage, because the object itself was only ever replaced by
//! a complete, verified copy, so the next run deletes it first and redoes what is left. Objects
//! already encrypted to the current recipients (per their metadata) are skipped, which makes a
//! rerun resume where the last one stopped. Memory is one chunk; local disk holds one copy of
//! the ciphertext and one of the new file at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use aws_sdk_s3::types::MetadataDirective;

use super::error::{S3Error, to_error};
use super::store::{
    META_CLUSTER_ID, META_NODE_NAME, META_SHA256, META_TOKEN_HASH, ObjectMetadata, S3Store,
};
use super::stream::{can_record_checksum, copy_source};
use super::upload::{content_type, sha256_file};
use crate::crypt::{Identities, Recipients};
use crate::snapshot::encryption_record::{EncryptionRecord, META_FINGERPRINTS};
use crate::snapshot::name::AGE_SUFFIX;
use crate::snapshot::record::is_own_entry;
use crate::store::rekey::{
    ALREADY_CURRENT, Action, CopyReport, keep_anchor_plain, plan, reencrypt_file,
};

/// The folder (under the store's) holding the temp copies of a rekey in progress.
pub const REKEY_FOLDER: &str = ".rekey";

impl S3Store {
    /// Rekeys every snapshot object of the folder (or, with `dry_run`, says what it would do).
    /// `work` is a private local dir for the two copies of the object being rekeyed.
    pub async fn rekey(
        &self,
        recipients: Option<&Recipients>,
        identities: Option<&Identities>,
        dry_run: bool,
        work: &Path,
    ) -> Result<Vec<CopyReport>, S3Error> {
        let current = recipients.map(Recipients::fingerprints);
        if !dry_run {
            self.remove_rekey_leftovers().await?;
        }
        let records = self.list().await?;
        let chains = self.list_chains().await?;
        let names: Vec<String> = records.into_iter().map(|r| r.file_name).collect();
        let mut reports = Vec::new();
        for name in &names {
            let key = self.layout().object_key(name);
            let meta = match self.head(&key).await {
                Ok(meta) => meta,
                Err(e) => {
                    reports.push(failed(name, Action::Skip("unreadable"), &e));
                    continue;
                }
            };
            let recorded = EncryptionRecord::from_object_metadata(&meta).map(|r| r.recipients);
            let action = plan(name, recorded.as_deref(), current.as_deref());
            let action = keep_anchor_plain(action, chains.contains_key(name));
            let new_name = match action {
                Action::Encrypt => format!("{name}{AGE_SUFFIX}"),
                _ => name.clone(),
            };
            let job = |r| Job {
                name,
                new_name: &new_name,
                original: &meta,
                recipients: r,
                identities,
                work,
            };
            let error = match (&action, dry_run, recipients) {
                (Action::Skip(why), false, Some(r)) if *why == ALREADY_CURRENT => {
                    // Heals a `.metadata` record a crash left behind its object.
                    self.record_fingerprints(&job(r)).await;
                    None
                }
                (Action::Skip(_), _, _) | (_, true, _) | (_, _, None) => None,
                (_, false, Some(r)) => self.rekey_object(&job(r)).await.err(),
            };
            reports.push(CopyReport {
                file_name: name.clone(),
                new_name,
                action,
                error,
            });
        }
        Ok(reports)
    }

    /// Deletes every object under `<folder>/.rekey/`: temp copies an interrupted run left.
    async fn remove_rekey_leftovers(&self) -> Result<(), S3Error> {
        let prefix = self.rekey_key("");
        let client = self.client();
        let mut pages = client
            .sdk
            .list_objects_v2()
            .bucket(&client.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| to_error(e, "list", &client.target(&prefix)))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                tracing::info!(%key, "removing the temp copy of an interrupted rekey");
                self.delete_object_key(key).await?;
            }
        }
        Ok(())
    }

    pub(super) fn rekey_key(&self, name: &str) -> String {
        self.layout().object_key(&format!("{REKEY_FOLDER}/{name}"))
    }

    /// Re-encrypts one object; the original stays in place until the new copy is verified.
    async fn rekey_object(&self, job: &Job<'_>) -> Result<(), String> {
        // Under their own names: whether a file is decrypted first follows its `.age` suffix.
        let (old_dir, new_dir) = (job.work.join("old"), job.work.join("new"));
        for dir in [&old_dir, &new_dir] {
            crate::fsutil::create_dir_all_mode(dir, 0o700).map_err(|e| e.to_string())?;
        }
        let old = old_dir.join(job.name);
        let new = new_dir.join(job.new_name);
        let result = self.rekey_via(job, &old, &new).await;
        for path in [&old, &new] {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn rekey_via(&self, job: &Job<'_>, old: &Path, new: &Path) -> Result<(), String> {
        let e = |e: S3Error| crate::errors::error_chain(&e);
        for path in [old, new] {
            let _ = tokio::fs::remove_file(path).await;
        }
        let key = self.layout().object_key(job.name);
        let sha = self.fetch_verified(&key, old).await.map_err(e)?;
        tracing::debug!(%key, %sha, "downloaded the object to rekey");
        let (old_path, new_path) = (old.to_path_buf(), new.to_path_buf());
        let (recipients, ids) = (job.recipients.clone(), job.identities.cloned());
        let plaintext_sha = tokio::task::spawn_blocking(move || {
            reencrypt_file(&old_path, &new_path, &recipients, ids.as_ref())
        })
        .await
        .map_err(|e| e.to_string())??;
        let new_sha = sha256_file(new).await.map_err(e)?;
        let metadata = job.metadata(&new_sha, &plaintext_sha);
        let temp = self.rekey_key(job.new_name);
        let upload = (new, new_sha.as_str(), job.new_name, &metadata);
        self.upload_checked(upload, &temp, old).await?;
        self.replace_with(&temp, job.new_name, new)
            .await
            .map_err(e)?;
        self.record_fingerprints(job).await;
        if job.new_name != job.name {
            self.delete(job.name).await.map_err(e)?;
        }
        self.delete_object_key(&temp).await.map_err(e)?;
        Ok(())
    }

    /// Uploads `file` (SHA-256 `sha`, named `name`, with `metadata`) under the temp key `temp`
    /// and reads it back into `scratch` (the original's download, no longer needed): nothing is
    /// replaced until the bucket is seen to hold exactly the new copy. Shared with the rekey of
    /// delta segments.
    pub(super) async fn upload_checked(
        &self,
        (file, sha, name, metadata): (&Path, &str, &str, &ObjectMetadata),
        temp: &str,
        scratch: &Path,
    ) -> Result<(), String> {
        let e = |e: S3Error| crate::errors::error_chain(&e);
        self.upload_file_to_key(file, temp, name, metadata)
            .await
            .map_err(e)?;
        let _ = tokio::fs::remove_file(scratch).await;
        let check = self.fetch_verified(temp, scratch).await.map_err(e)?;
        if !check.eq_ignore_ascii_case(sha) {
            return Err(format!(
                "the uploaded copy reads back as sha256 {check}, not {sha}; the original is kept"
            ));
        }
        Ok(())
    }

    /// Replaces `<folder>/<name>` by a server-side copy of `temp` (metadata included).
    async fn replace_with(&self, temp: &str, name: &str, file: &Path) -> Result<(), S3Error> {
        let key = self.layout().object_key(name);
        self.replace_key_with(temp, &key, name, file).await
    }

    /// Replaces object `key` by a server-side copy of `temp` (metadata included); `file` is the
    /// local copy of what was uploaded to `temp` (its size decides whether one copy can do it).
    pub(super) async fn replace_key_with(
        &self,
        temp: &str,
        key: &str,
        name: &str,
        file: &Path,
    ) -> Result<(), S3Error> {
        let size = tokio::fs::metadata(file)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let client = self.client();
        if !can_record_checksum(size) {
            return Err(S3Error::InvalidSettings {
                reason: format!(
                    "the new copy of {name} is larger than S3's 5 GiB single-copy limit, so it cannot replace the original atomically; the original is kept"
                ),
            });
        }
        client
            .sdk
            .copy_object()
            .bucket(&client.bucket)
            .key(key)
            .copy_source(copy_source(&client.bucket, temp))
            .metadata_directive(MetadataDirective::Copy)
            .content_type(content_type(name))
            .send()
            .await
            .map_err(|e| to_error(e, "replace", &client.target(key)))?;
        Ok(())
    }

    /// Rewrites the fingerprint entry of the object's `.metadata` record (listings read it).
    /// Best effort: the object's own metadata is authoritative.
    async fn record_fingerprints(&self, job: &Job<'_>) {
        let mut map = match self.read_extra_metadata(job.name).await {
            Ok(found) => found.map().cloned().unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let joined = crate::crypt::keys::join(&job.recipients.fingerprints());
        let same = map
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(META_FINGERPRINTS) && *v == joined);
        if same && job.new_name == job.name {
            return;
        }
        map.retain(|k, _| !k.eq_ignore_ascii_case(META_FINGERPRINTS));
        map.insert(META_FINGERPRINTS.to_string(), joined);
        let Ok(json) = serde_json::to_vec(&map) else {
            return;
        };
        let metadata = job.rke2_metadata();
        if let Err(e) = self.upload_metadata(job.new_name, json, &metadata).await {
            tracing::warn!(snapshot = %job.new_name, error = %crate::errors::error_chain(&e), "failed to rewrite the snapshot's metadata record after rekey");
        }
    }

    pub(super) async fn delete_object_key(&self, key: &str) -> Result<(), S3Error> {
        let client = self.client();
        client
            .sdk
            .delete_object()
            .bucket(&client.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| to_error(e, "delete", &client.target(key)))?;
        Ok(())
    }
}

/// One object's rekey.
struct Job<'a> {
    name: &'a str,
    new_name: &'a str,
    /// The original object's user metadata (keys lower-case).
    original: &'a HashMap<String, String>,
    recipients: &'a Recipients,
    identities: Option<&'a Identities>,
    work: &'a Path,
}

impl Job<'_> {
    /// RKE2's entries of the original (uploader, cluster, token hash).
    fn rke2_metadata(&self) -> ObjectMetadata {
        let get = |key: &str| {
            self.original
                .get(&key.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default()
        };
        ObjectMetadata {
            cluster_id: get(META_CLUSTER_ID),
            node_name: get(META_NODE_NAME),
            token_hash: get(META_TOKEN_HASH),
            sha256: None,
            extra: BTreeMap::new(),
        }
    }

    /// The new object's metadata: the original's (RKE2's and our own recorded entries, such as
    /// the keyspace hash), the new SHA-256, and the new fingerprints and plaintext digest.
    fn metadata(&self, sha256: &str, plaintext_sha256: &str) -> ObjectMetadata {
        let mut extra: BTreeMap<String, String> = self
            .original
            .iter()
            .filter(|(k, _)| is_own_entry(k) && !k.eq_ignore_ascii_case(META_SHA256))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let record = EncryptionRecord {
            recipients: self.recipients.fingerprints(),
            plaintext_sha256: Some(plaintext_sha256.to_string()),
            file_sha256: None,
            seal: None,
        };
        extra.retain(|k, _| {
            !record
                .object_metadata()
                .keys()
                .any(|r| r.eq_ignore_ascii_case(k))
        });
        extra.extend(record.object_metadata());
        ObjectMetadata {
            sha256: Some(sha256.to_string()),
            extra,
            ..self.rke2_metadata()
        }
    }
}

fn failed(name: &str, action: Action, error: &S3Error) -> CopyReport {
    CopyReport {
        file_name: name.to_string(),
        new_name: name.to_string(),
        action,
        error: Some(crate::errors::error_chain(error)),
    }
}

/// The local work dir of an S3 rekey: `<work>/s3-rekey`, private.
pub fn work_dir(work: &Path) -> PathBuf {
    work.join("s3-rekey")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_metadata_keeps_rke2s_and_our_entries_and_names_the_new_keys() {
        #[allow(deprecated)] // age 0.13 deprecates generating X25519 keys; tests use them
        let id = age::x25519::Identity::generate();
        let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let recipients = Identities::parse(&text, "test").unwrap().recipients();
        let original = HashMap::from([
            ("rke2-node-name".to_string(), "n1".to_string()),
            ("rke2-token-hash".to_string(), "0123456789ab".to_string()),
            ("etcd-snapshot-hashkv".to_string(), "42".to_string()),
            ("etcd-snapshot-sha256".to_string(), "old".to_string()),
            (
                "etcd-snapshot-encryption-fingerprints".to_string(),
                "age1:000000000000000a".to_string(),
            ),
        ]);
        let job = Job {
            name: "s-n1-1.age",
            new_name: "s-n1-1.age",
            original: &original,
            recipients: &recipients,
            identities: None,
            work: Path::new("/nonexistent"),
        };
        let meta = job.metadata("newsha", &"ab".repeat(32));
        assert_eq!(meta.node_name, "n1");
        assert_eq!(meta.token_hash, "0123456789ab");
        assert_eq!(meta.sha256.as_deref(), Some("newsha"));
        assert_eq!(
            meta.extra.get("etcd-snapshot-hashkv").map(String::as_str),
            Some("42")
        );
        let fingerprints: Vec<_> = meta
            .extra
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(META_FINGERPRINTS))
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(
            fingerprints,
            vec![crate::crypt::keys::join(&recipients.fingerprints())]
        );
    }
}
