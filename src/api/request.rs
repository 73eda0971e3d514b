//! Request -> operation mapping: what an RKE2 `SnapshotRequest` asks for, and the config layer
//! its explicit fields form. Pure.
//!
//! The server's own merged config fills every field the request leaves out; fields the request
//! carries win over everything (DESIGN.md precedence: ... < flags < API request).

use crate::config::{Layer, RawValue, Source};

use super::wire::{Operation, SnapshotRequest};

/// The operation a request maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedOperation {
    Save,
    List,
    Delete { names: Vec<String> },
    Prune { dry_run: bool },
}

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request has no operation (expected save, list, delete or prune)")]
    MissingOperation,
    #[error("no snapshots given for removal")]
    NoNamesToDelete,
    #[error("s3 settings in the request are not supported by this server yet")]
    S3Unsupported,
    #[error("retention {0} is negative (expected a count >= 0)")]
    NegativeRetention(i64),
}

/// Maps a request to its operation and the config layer of its explicit fields.
pub fn plan_request(request: &SnapshotRequest) -> Result<(PlannedOperation, Layer), RequestError> {
    if request.s3.as_ref().is_some_and(|s3| !s3.is_null()) {
        return Err(RequestError::S3Unsupported);
    }
    let operation = match request.operation.ok_or(RequestError::MissingOperation)? {
        Operation::Save => PlannedOperation::Save,
        Operation::List => PlannedOperation::List,
        Operation::Prune => PlannedOperation::Prune {
            dry_run: request.dry_run.unwrap_or(false),
        },
        Operation::Delete => {
            let names = request.name.clone().unwrap_or_default();
            if names.is_empty() {
                return Err(RequestError::NoNamesToDelete);
            }
            PlannedOperation::Delete { names }
        }
    };
    let mut layer = Layer::new();
    if matches!(
        operation,
        PlannedOperation::Save | PlannedOperation::Prune { .. }
    ) && let Some(base) = request.name.as_ref().and_then(|names| names.first())
    {
        layer.set("name", RawValue::String(base.clone()), Source::Request);
    }
    if let Some(dir) = &request.dir {
        layer.set(
            "etcd-snapshot-dir",
            RawValue::String(dir.clone()),
            Source::Request,
        );
    }
    if let Some(compress) = request.compress {
        layer.set(
            "etcd-snapshot-compress",
            RawValue::Bool(compress),
            Source::Request,
        );
    }
    if let Some(retention) = request.retention {
        if retention < 0 {
            return Err(RequestError::NegativeRetention(retention));
        }
        layer.set(
            "etcd-snapshot-retention",
            RawValue::Int(retention),
            Source::Request,
        );
    }
    Ok((operation, layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> SnapshotRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn save_with_name_and_compress_overrides_config() {
        let (op, layer) = plan_request(&request(
            r#"{"operation":"save","name":["ALIVEBEEF"],"compress":true}"#,
        ))
        .unwrap();
        assert_eq!(op, PlannedOperation::Save);
        assert_eq!(
            layer.get("name").unwrap().value,
            RawValue::String("ALIVEBEEF".into())
        );
        assert_eq!(
            layer.get("etcd-snapshot-compress").unwrap().value,
            RawValue::Bool(true)
        );
        assert_eq!(layer.get("name").unwrap().source, Source::Request);
    }

    #[test]
    fn delete_names_are_not_a_base_name() {
        let (op, layer) = plan_request(&request(
            r#"{"operation":"delete","name":["a-n-1","b-n-2"]}"#,
        ))
        .unwrap();
        assert_eq!(
            op,
            PlannedOperation::Delete {
                names: vec!["a-n-1".into(), "b-n-2".into()]
            }
        );
        assert!(layer.get("name").is_none());
    }

    #[test]
    fn prune_maps_name_retention_and_dry_run() {
        let (op, layer) = plan_request(&request(
            r#"{"operation":"prune","name":["PRUNE_TEST"],"retention":2,"dryRun":true}"#,
        ))
        .unwrap();
        assert_eq!(op, PlannedOperation::Prune { dry_run: true });
        assert_eq!(
            layer.get("etcd-snapshot-retention").unwrap().value,
            RawValue::Int(2)
        );
        assert_eq!(
            layer.get("name").unwrap().value,
            RawValue::String("PRUNE_TEST".into())
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(
            plan_request(&request(r#"{}"#)).unwrap_err(),
            RequestError::MissingOperation
        );
        assert_eq!(
            plan_request(&request(r#"{"operation":"delete"}"#)).unwrap_err(),
            RequestError::NoNamesToDelete
        );
        assert_eq!(
            plan_request(&request(r#"{"operation":"prune","retention":-1}"#)).unwrap_err(),
            RequestError::NegativeRetention(-1)
        );
        assert_eq!(
            plan_request(&request(r#"{"operation":"save","s3":{"bucket":"b"}}"#)).unwrap_err(),
            RequestError::S3Unsupported
        );
    }
}
