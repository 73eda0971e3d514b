//! Writing a restore drill's verdict into a copy's metadata record: the local
//! `.metadata/<name>` file, or an S3 copy's `<folder>/.metadata/<name>` object.
//!
//! The record is read, the verdict's entries replace an earlier verdict's
//! (`DrillVerdict::merged_into`, every other entry kept) and the whole record is written back:
//! atomically for a file (temp file, fsync, rename), as one PutObject for the object, which
//! restates the snapshot object's `Rke2-*` user metadata as a save does. The snapshot object is
//! never rewritten (a CopyObject onto itself would have to restate its metadata too and cannot
//! copy an object over 5 GiB in one request). A record that is there but does not parse is left
//! untouched and no verdict is written: the user's entries in it are never lost.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use super::local::LocalStore;
use super::s3::S3Store;
use super::s3::metadata::ExtraMetadata;
use super::s3::store::{META_CLUSTER_ID, META_NODE_NAME, META_TOKEN_HASH, ObjectMetadata};
use crate::fsutil;
use crate::snapshot::drill_record::DrillVerdict;
use crate::snapshot::record::parse_metadata;

/// Why a verdict was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("snapshot {location} is gone (deleted while it was drilled); no verdict recorded")]
    Gone { location: String },
    #[error(
        "the metadata record {location} is not a JSON object of strings (or is too large); it is left as it is and no verdict is recorded"
    )]
    InvalidRecord { location: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to record the verdict of S3 snapshot {name}")]
    S3 {
        name: String,
        #[source]
        source: Box<super::s3::S3Error>,
    },
}

impl LocalStore {
    /// Records `verdict` in the `.metadata/<name>` record of local snapshot `name`. The caller
    /// holds the store lock, so the snapshot cannot go between the check and the write.
    pub fn record_verdict(&self, name: &str, verdict: &DrillVerdict) -> Result<(), VerdictError> {
        let layout = self.layout();
        let snapshot = layout.snapshot_path(name);
        if !snapshot.is_file() {
            return Err(VerdictError::Gone {
                location: snapshot.display().to_string(),
            });
        }
        let path = layout.metadata_path(name);
        let io_err = |action: &'static str, path: &PathBuf| {
            let path = path.clone();
            move |source| VerdictError::Io {
                action,
                path,
                source,
            }
        };
        let existing = match fsutil::read_capped(&path, fsutil::SMALL_FILE_MAX) {
            Ok(bytes) => parse_metadata(&bytes).map_err(|_| VerdictError::InvalidRecord {
                location: path.display().to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(VerdictError::InvalidRecord {
                    location: path.display().to_string(),
                });
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let json = serde_json::to_vec(&verdict.merged_into(&existing))
            .map_err(|e| io_err("encode", &path)(e.into()))?;
        let dir = layout.metadata.clone();
        fsutil::create_dir_all_mode(&dir, 0o700).map_err(io_err("create", &dir))?;
        fsutil::write_atomic(&path, &json, 0o600).map_err(io_err("write", &path))
    }
}

impl S3Store {
    /// Records `verdict` in the `<folder>/.metadata/<name>` object of S3 snapshot `name`, with
    /// the snapshot object's `Rke2-*` user metadata (which a missing object also proves gone).
    pub async fn record_verdict(
        &self,
        name: &str,
        verdict: &DrillVerdict,
    ) -> Result<(), VerdictError> {
        let s3_err = |source| VerdictError::S3 {
            name: name.to_string(),
            source: Box::new(source),
        };
        let key = self.layout().object_key(name);
        let head = match self.object_metadata(name).await {
            Ok(head) => head,
            Err(e) if e.is_not_found() => {
                return Err(VerdictError::Gone {
                    location: super::s3::keys::location(self.client().bucket(), &key),
                });
            }
            Err(e) => return Err(s3_err(e)),
        };
        let existing = match self.read_extra_metadata(name).await.map_err(s3_err)? {
            ExtraMetadata::Found(Some(map)) => map,
            ExtraMetadata::Missing => BTreeMap::new(),
            ExtraMetadata::Found(None) => {
                let meta = self.layout().metadata_key(name);
                return Err(VerdictError::InvalidRecord {
                    location: super::s3::keys::location(self.client().bucket(), &meta),
                });
            }
        };
        let field = |wanted: &str| {
            head.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let uploader = ObjectMetadata {
            cluster_id: field(META_CLUSTER_ID),
            node_name: field(META_NODE_NAME),
            token_hash: field(META_TOKEN_HASH),
            ..Default::default()
        };
        let json = serde_json::to_vec(&verdict.merged_into(&existing)).unwrap_or_default();
        self.upload_metadata(name, json, &uploader)
            .await
            .map_err(s3_err)
    }
}
