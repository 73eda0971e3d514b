//! `rekey` of delta chain objects (`<folder>/.deltas/<snapshot>/.metadata/<segment>`): the
//! bucket half of `delta::rekey`, which decides which segments to rekey and how to make the
//! new copy; names stay opaque here, as in `deltas`.
//!
//! One object at a time, with the guarantees of the snapshot rekey (`rekey`): the object is
//! downloaded (checked against its recorded SHA-256) into the private work dir, the caller
//! writes the new copy beside it, that is uploaded under the temp key
//! `<folder>/.rekey/.deltas/<snapshot>/<segment>`, read back and compared, and only then
//! replaces the object with one server-side copy (a reader sees the old object or the new,
//! never a mix). A crash leaves at most a temp object, which the next run's
//! `remove_rekey_leftovers` deletes; the segment itself is readable with the old or the new
//! key at every instant.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::deltas::validate_segment_name;
use super::error::{S3Error, to_error};
use super::store::{
    META_CLUSTER_ID, META_NODE_NAME, META_SHA256, META_TOKEN_HASH, ObjectMetadata, S3Store,
    validate_name,
};
use super::upload::sha256_file;
use crate::snapshot::record::is_own_entry;

/// Writes the new copy (second path) of a downloaded object (first path); blocking, run off
/// the runtime. The error is one line for the per-copy report.
pub type MakeCopy = Box<dyn FnOnce(&Path, &Path) -> Result<(), String> + Send>;

impl S3Store {
    /// The first `len` bytes of segment `name` of `anchor`'s chain (a ranged GET): enough to
    /// read an age header without downloading the segment.
    pub async fn chain_object_prefix(
        &self,
        anchor: &str,
        name: &str,
        len: u64,
    ) -> Result<Vec<u8>, S3Error> {
        validate_name(anchor)?;
        validate_segment_name(name)?;
        let key = self.layout().segment_key(anchor, name);
        let client = self.client();
        let response = client
            .sdk
            .get_object()
            .bucket(client.bucket())
            .key(&key)
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| to_error(e, "read", &client.target(&key)))?;
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| S3Error::Request {
                action: "read",
                bucket: client.bucket().to_string(),
                key: key.clone(),
                http: String::new(),
                source: Box::new(e),
            })?;
        let mut bytes = body.into_bytes().to_vec();
        // A server that ignores the range sends it all: only the prefix was asked for.
        bytes.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(bytes)
    }

    /// Replaces segment `name` of `anchor`'s chain by the copy `make` writes from it, verified
    /// in the bucket before it takes the original's place. `work` is a private local dir.
    pub async fn replace_chain_object(
        &self,
        anchor: &str,
        name: &str,
        work: &Path,
        make: MakeCopy,
    ) -> Result<(), String> {
        let e = |e: S3Error| crate::errors::error_chain(&e);
        validate_name(anchor).map_err(e)?;
        validate_segment_name(name).map_err(e)?;
        let (old_dir, new_dir) = (work.join("old"), work.join("new"));
        for dir in [&old_dir, &new_dir] {
            crate::fsutil::create_dir_all_mode(dir, 0o700).map_err(|e| e.to_string())?;
        }
        let (old, new) = (old_dir.join(name), new_dir.join(name));
        let result = self.replace_via(anchor, name, &old, &new, make).await;
        for path in [&old, &new] {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn replace_via(
        &self,
        anchor: &str,
        name: &str,
        old: &Path,
        new: &Path,
        make: MakeCopy,
    ) -> Result<(), String> {
        let e = |e: S3Error| crate::errors::error_chain(&e);
        for path in [old, new] {
            let _ = tokio::fs::remove_file(path).await;
        }
        let key = self.layout().segment_key(anchor, name);
        let original = self.head(&key).await.map_err(e)?;
        self.fetch_verified(&key, old).await.map_err(e)?;
        let (old_path, new_path) = (old.to_path_buf(), new.to_path_buf());
        tokio::task::spawn_blocking(move || make(&old_path, &new_path))
            .await
            .map_err(|e| e.to_string())??;
        let new_sha = sha256_file(new).await.map_err(e)?;
        let temp = self.rekey_key(&format!(".deltas/{anchor}/{name}"));
        let metadata = copied_metadata(&original, &new_sha);
        let upload = (new, new_sha.as_str(), name, &metadata);
        self.upload_checked(upload, &temp, old).await?;
        self.replace_key_with(&temp, &key, name, new)
            .await
            .map_err(e)?;
        self.delete_object_key(&temp).await.map_err(e)?;
        Ok(())
    }
}

/// The new object's metadata: the original's (RKE2's entries and our own, such as who
/// uploaded it) with the new copy's SHA-256.
fn copied_metadata(original: &HashMap<String, String>, sha256: &str) -> ObjectMetadata {
    let get = |key: &str| {
        original
            .get(&key.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    };
    let extra: BTreeMap<String, String> = original
        .iter()
        .filter(|(k, _)| is_own_entry(k) && !k.eq_ignore_ascii_case(META_SHA256))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectMetadata {
        cluster_id: get(META_CLUSTER_ID),
        node_name: get(META_NODE_NAME),
        token_hash: get(META_TOKEN_HASH),
        sha256: Some(sha256.to_string()),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_segment_object_keeps_the_uploaders_entries_and_takes_the_new_digest() {
        let original = HashMap::from([
            ("rke2-node-name".to_string(), "n1".to_string()),
            ("rke2-token-hash".to_string(), "0123456789ab".to_string()),
            ("etcd-snapshot-sha256".to_string(), "old".to_string()),
            ("etcd-snapshot-other".to_string(), "kept".to_string()),
            ("foreign".to_string(), "dropped".to_string()),
        ]);
        let meta = copied_metadata(&original, "new");
        assert_eq!(
            (meta.node_name.as_str(), meta.token_hash.as_str()),
            ("n1", "0123456789ab")
        );
        assert_eq!(meta.sha256.as_deref(), Some("new"));
        let extra: Vec<_> = meta.extra.iter().collect();
        assert_eq!(
            extra,
            [(&"etcd-snapshot-other".to_string(), &"kept".to_string())]
        );
    }
}
