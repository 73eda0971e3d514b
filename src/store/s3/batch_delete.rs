//! Deleting many objects at once: S3's multi-object delete (DeleteObjects, at most 1,000 keys
//! a request, quiet mode), with one DeleteObject per key for servers that lack it.
//!
//! A delta chain at the default 10 s segment period holds thousands of objects; removing them
//! one request each made a prune wait on thousands of sequential round trips. A quiet
//! DeleteObjects reply lists only the keys the server did not delete (`Errors`, each with a
//! code): those are reported by key and code and never counted as deleted; every other key of
//! the batch is gone. The SDK sends a CRC32 checksum with the request (no `Content-MD5`), so a
//! server that answers NotImplemented, or demands a `Content-MD5`, gets one DeleteObject per
//! key instead; the store remembers that (logged once at info) for the rest of its life.
//! Splitting, reading a reply and the fallback decision are pure functions here; the requests
//! are `S3Store::delete_objects`.

use std::sync::atomic::Ordering;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::deltas::ChainObject;
use super::error::{BoxError, S3Error, to_error};
use super::store::S3Store;
use crate::errors::error_chain;

/// S3's limit of keys in one DeleteObjects request.
pub const MAX_KEYS_PER_REQUEST: usize = 1000;

/// How many refused keys a problem text names; the rest are counted.
const NAMED_REFUSALS: usize = 5;

/// One object the server said it did not delete, with its error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedKey {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// What a deletion of many objects did. `deleted` holds only objects the server deleted.
#[derive(Debug, Default)]
pub struct ChainDeletion {
    pub deleted: Vec<ChainObject>,
    /// Objects the server did not delete, as its reply listed them.
    pub refused: Vec<RefusedKey>,
    /// A request that failed as a whole (the listing, a batch, a single delete): its objects
    /// and those after it were not deleted and are in neither list.
    pub error: Option<S3Error>,
}

impl ChainDeletion {
    /// What went wrong, for a report: the refused keys (the first few by key, code and
    /// message, the rest counted) and the failed request; `None` when nothing did.
    pub fn problem(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.refused.is_empty() {
            parts.push(describe_refused(&self.refused));
        }
        if let Some(e) = &self.error {
            parts.push(error_chain(e));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// `objects` in request-sized groups, in order.
pub fn batches<T>(objects: &[T]) -> std::slice::Chunks<'_, T> {
    objects.chunks(MAX_KEYS_PER_REQUEST)
}

/// Splits a batch by a quiet reply's `Errors`: the objects deleted (every one not refused), and
/// the refusals (also one naming a key outside the batch: reported, never dropped). A refusal
/// that names no key of the batch (none at all, or another) leaves it unknown which object
/// it was, so then none of the batch counts as deleted: a later prune finds the rest again.
pub fn split_reply(
    batch: &[ChainObject],
    refused: Vec<RefusedKey>,
) -> (Vec<ChainObject>, Vec<RefusedKey>) {
    let in_batch: std::collections::HashSet<&str> = batch.iter().map(|o| o.key.as_str()).collect();
    if refused.iter().any(|r| !in_batch.contains(r.key.as_str())) {
        return (Vec::new(), refused);
    }
    let refused_keys: std::collections::HashSet<&str> =
        refused.iter().map(|r| r.key.as_str()).collect();
    let deleted = batch
        .iter()
        .filter(|o| !refused_keys.contains(o.key.as_str()))
        .cloned()
        .collect();
    (deleted, refused)
}

/// True when a failed DeleteObjects means the server does not do multi-object deletes (as
/// opposed to failing this one): NotImplemented / 501, or a demand for `Content-MD5`.
pub fn batch_delete_unsupported(status: u16, code: Option<&str>, message: Option<&str>) -> bool {
    let wants_md5 = message.is_some_and(|m| m.to_ascii_lowercase().contains("content-md5"));
    status == 501
        || matches!(code, Some("NotImplemented" | "MissingContentMD5"))
        || (status == 400 && wants_md5)
}

/// "2 objects were not deleted: k1 (AccessDenied: ...), k2 (...)", the first few named.
fn describe_refused(refused: &[RefusedKey]) -> String {
    let named: Vec<String> = refused
        .iter()
        .take(NAMED_REFUSALS)
        .map(|r| {
            format!(
                "{} ({}: {})",
                server_text(Some(&r.key), ""),
                r.code,
                r.message
            )
        })
        .collect();
    let mut text = format!(
        "{} object(s) were not deleted: {}",
        refused.len(),
        named.join(", ")
    );
    if refused.len() > NAMED_REFUSALS {
        text.push_str(&format!(" and {} more", refused.len() - NAMED_REFUSALS));
    }
    text
}

/// A server-supplied text, bounded and without control characters, fit for a log line.
fn server_text(text: Option<&str>, fallback: &str) -> String {
    let text = text.unwrap_or(fallback);
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Why a DeleteObjects request did not give a reply to read.
enum BatchFailure {
    /// The server does not do multi-object deletes.
    Unsupported,
    Failed(S3Error),
}

impl S3Store {
    /// Deletes `objects` in batches of up to 1,000 keys (one request each), or one request
    /// per key where the server lacks DeleteObjects. Stops at the first request that fails as
    /// a whole. `prefix` names the objects' place in errors.
    pub(super) async fn delete_objects(
        &self,
        objects: &[ChainObject],
        prefix: &str,
    ) -> ChainDeletion {
        let mut done = ChainDeletion::default();
        for batch in batches(objects) {
            if self.batch_delete.load(Ordering::Relaxed) {
                match self.delete_batch(batch, prefix).await {
                    Ok(refused) => {
                        let (deleted, refused) = split_reply(batch, refused);
                        if !refused.is_empty() {
                            tracing::warn!(bucket = %self.client().bucket(), refused = %describe_refused(&refused), "S3 did not delete some objects");
                        }
                        done.deleted.extend(deleted);
                        done.refused.extend(refused);
                        continue;
                    }
                    Err(BatchFailure::Failed(e)) => {
                        done.error = Some(e);
                        return done;
                    }
                    Err(BatchFailure::Unsupported) => self.stop_batching(),
                }
            }
            for object in batch {
                if let Err(e) = self.delete_key(&object.key).await {
                    done.error = Some(e);
                    return done;
                }
                done.deleted.push(object.clone());
            }
        }
        done
    }

    /// Remembers that this server lacks DeleteObjects; the first to notice logs it.
    fn stop_batching(&self) {
        if self.batch_delete.swap(false, Ordering::Relaxed) {
            tracing::info!(endpoint = %self.client().endpoint, "the S3 server does not support multi-object delete (DeleteObjects): deleting one object per request");
        }
    }

    /// One quiet DeleteObjects for `batch`: the refusals its reply lists.
    async fn delete_batch(
        &self,
        batch: &[ChainObject],
        prefix: &str,
    ) -> Result<Vec<RefusedKey>, BatchFailure> {
        let client = self.client();
        let unbuilt = |e: aws_sdk_s3::error::BuildError| {
            BatchFailure::Failed(S3Error::Request {
                action: "delete",
                bucket: client.bucket().to_string(),
                key: prefix.to_string(),
                http: String::new(),
                source: Box::new(e) as BoxError,
            })
        };
        let ids = batch
            .iter()
            .map(|o| ObjectIdentifier::builder().key(&o.key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(unbuilt)?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(unbuilt)?;
        let sent = client
            .sdk
            .delete_objects()
            .bucket(client.bucket())
            .delete(delete)
            .send()
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(SdkError::ServiceError(service))
                if batch_delete_unsupported(
                    service.raw().status().as_u16(),
                    service.err().code(),
                    service.err().message(),
                ) =>
            {
                return Err(BatchFailure::Unsupported);
            }
            Err(e) => {
                return Err(BatchFailure::Failed(to_error(
                    e,
                    "delete",
                    &client.target(prefix),
                )));
            }
        };
        let refused = reply
            .errors()
            .iter()
            .map(|e| RefusedKey {
                // Kept as the server sent it, to match the batch; cleaned when shown.
                key: e.key().unwrap_or("(no key)").to_string(),
                code: server_text(e.code(), "(no code)"),
                message: server_text(e.message(), ""),
            })
            .collect();
        Ok(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: usize) -> Vec<ChainObject> {
        (0..n)
            .map(|i| ChainObject {
                name: format!("{i:05}.seg"),
                key: format!("f/.deltas/a/.metadata/{i:05}.seg"),
                size: i as u64,
            })
            .collect()
    }

    #[test]
    fn batches_hold_at_most_1000_keys_in_order() {
        let sizes = |n: usize| -> Vec<usize> { batches(&objects(n)).map(<[_]>::len).collect() };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(1000), [1000]);
        assert_eq!(sizes(1001), [1000, 1]);
        assert_eq!(sizes(4321), [1000, 1000, 1000, 1000, 321]);
        let all = objects(2500);
        let rejoined: Vec<ChainObject> = batches(&all).flatten().cloned().collect();
        assert_eq!(rejoined, all, "every object once, in order");
    }

    #[test]
    fn a_refused_key_is_never_counted_deleted() {
        let batch = objects(4);
        let refusal = |key: &str| RefusedKey {
            key: key.to_string(),
            code: "AccessDenied".into(),
            message: "no".into(),
        };
        let (deleted, refused) = split_reply(&batch, vec![refusal(&batch[1].key)]);
        let names: Vec<&str> = deleted.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["00000.seg", "00002.seg", "00003.seg"]);
        assert_eq!(refused.len(), 1);
        // A refusal naming no key of the batch: which object it was is unknown, so none of
        // the batch counts as deleted, and the refusal is still reported.
        for other in ["elsewhere", "(no key)"] {
            let refused = vec![refusal(&batch[1].key), refusal(other)];
            let (deleted, refused) = split_reply(&batch, refused);
            assert!(deleted.is_empty(), "{other}");
            assert_eq!(
                refused.len(),
                2,
                "a key outside the batch is still reported"
            );
        }
        let (deleted, refused) = split_reply(&batch, Vec::new());
        assert_eq!((deleted, refused.len()), (batch, 0));
    }

    #[test]
    fn only_a_missing_operation_falls_back() {
        assert!(batch_delete_unsupported(501, None, None));
        assert!(batch_delete_unsupported(400, Some("NotImplemented"), None));
        assert!(batch_delete_unsupported(
            400,
            Some("MissingContentMD5"),
            None
        ));
        let md5 = Some("Missing required header for this request: Content-MD5");
        assert!(batch_delete_unsupported(400, Some("InvalidRequest"), md5));
        assert!(!batch_delete_unsupported(
            400,
            Some("InvalidRequest"),
            Some("bad xml")
        ));
        assert!(!batch_delete_unsupported(403, Some("AccessDenied"), None));
        assert!(!batch_delete_unsupported(500, Some("InternalError"), None));
    }

    #[test]
    fn problems_name_keys_and_codes_and_count_the_rest() {
        let refused: Vec<RefusedKey> = (0..7)
            .map(|i| RefusedKey {
                key: format!("k{i}"),
                code: "AccessDenied".into(),
                message: "denied".into(),
            })
            .collect();
        let deletion = ChainDeletion {
            refused,
            ..ChainDeletion::default()
        };
        let text = deletion.problem().unwrap();
        assert!(
            text.starts_with("7 object(s) were not deleted: k0 (AccessDenied: denied), k1"),
            "{text}"
        );
        assert!(
            text.contains("k4 (AccessDenied: denied) and 2 more"),
            "{text}"
        );
        assert!(!text.contains("k5"), "{text}");
        assert_eq!(ChainDeletion::default().problem(), None);
        assert_eq!(server_text(Some("a\nb\u{7}c"), "-"), "abc");
        assert_eq!(server_text(None, "(no code)"), "(no code)");
    }
}
