//! Wire types of the snapshot API, byte-compatible with RKE2's `POST /db/snapshot` protocol.
//!
//! The request and response shapes are RKE2's; anything we add is an additive, optional field so
//! that RKE2's own CLI can talk to our server and ours to RKE2's. The list reply is an
//! `ETCDSnapshotFileList` exactly as RKE2 prints it with `ls -o json`.
//!
//! This is the edge: the operations' reports and the stores' records are domain types, and the
//! conversions into these shapes live here (`wire_convert.rs`; each listed copy's
//! `ETCDSnapshotFile` in `wire_list.rs`), for the API server and the direct-mode CLI alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[path = "wire_convert.rs"]
mod convert;
#[path = "wire_list.rs"]
mod list;
#[path = "wire_s3.rs"]
mod s3;

pub use s3::{S3_FIELDS, S3Request};

/// The operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Save,
    List,
    Prune,
    Delete,
    /// Extension: restore drills (`etcd-snapshot verify`); RKE2 servers refuse it.
    Verify,
}

/// Body of `POST /db/snapshot`. Optional fields are sent only when the user set them explicitly;
/// the server fills the rest from its own merged config. An unknown field is refused by name: a
/// misspelt `dryRun` must never run a real prune.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    pub operation: Option<Operation>,
    /// save/prune: `[base name]`; delete, verify: the snapshot file names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<i64>,
    /// RKE2's S3 block: present means S3 is on for this request, with these settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Request>,
    /// Extension: S3 is off for this request even when the server's config turns it on (the
    /// CLI's explicit `--s3=false`). RKE2 servers ignore it and skip S3 anyway without `s3`.
    #[serde(default, rename = "skipS3", skip_serializing_if = "Option::is_none")]
    pub skip_s3: Option<bool>,
    /// Extension: prune reports what it would delete and deletes nothing.
    #[serde(default, rename = "dryRun", skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Reply to save/prune/delete. `failed` is our extension: a non-empty list means a partial failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedItem>,
    /// Extension: every copy delete/prune removed (or, in a dry run, would remove), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedCopy>,
    /// Extension (prune): every snapshot retention considered, kept or removed, and the rule
    /// that decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<RetentionVerdict>,
    /// Extension (verify): one restore drill per snapshot copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<DrillVerdictWire>,
    /// Extension (verify): asked names no copy has.
    #[serde(default, rename = "notFound", skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<String>,
}

/// One copy's restore drill, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillVerdictWire {
    pub name: String,
    /// `local` or `s3`.
    pub storage: String,
    /// A `file://` path or `s3://bucket/key`.
    pub location: String,
    /// `passed`, `failed` or `cannot-verify`.
    pub result: String,
    /// The failed checks, or what a passed drill proved.
    pub reason: String,
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: f64,
    pub checks: Vec<DrillCheck>,
}

/// One step of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// One snapshot copy's retention verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionVerdict {
    pub name: String,
    /// `local` or `s3`.
    pub storage: String,
    /// A local path or `s3://bucket/key`.
    pub location: String,
    /// The name's time, RFC 3339.
    pub created: String,
    /// `keep` or `remove`.
    pub action: String,
    /// The deciding rule's identifier (`retention`, `keep-daily`, `max-age`, `newest`, ...).
    pub rule: String,
    /// The deciding rule in words.
    pub reason: String,
}

/// One copy of a snapshot that was (or would be) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedCopy {
    pub name: String,
    /// A local path or `s3://bucket/key`.
    pub location: String,
    /// Why retention chose it; absent for an explicit delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extension: the delta chain (point-in-time segments) that goes with a local full
    /// snapshot.
    #[serde(
        default,
        rename = "deltaChain",
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_chain: Option<RemovedChain>,
}

/// A delta chain removed (or, in a dry run, to be removed) with its full snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedChain {
    /// The chain dir.
    pub location: String,
    pub segments: u64,
    pub bytes: u64,
}

/// One thing that did not work inside an otherwise successful operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedItem {
    pub name: String,
    pub message: String,
}

/// `ETCDSnapshotFileList` as RKE2 returns it for `list` (a plain `v1` `List`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtcdSnapshotFileList {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub items: Vec<EtcdSnapshotFile>,
    #[serde(default)]
    pub metadata: ListMeta,
    /// Extension: a store that could not be listed (the items are then incomplete). The CLI
    /// prints these on stderr and exits with the partial-failure code; never printed in the
    /// list itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedItem>,
}

impl EtcdSnapshotFileList {
    /// A list with RKE2's `apiVersion: v1`, `kind: List`.
    pub fn new(items: Vec<EtcdSnapshotFile>) -> Self {
        Self {
            api_version: "v1".into(),
            kind: "List".into(),
            items,
            metadata: ListMeta::default(),
            failed: Vec::new(),
        }
    }
}

/// The list's (empty) metadata, printed as Kubernetes prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: String,
}

/// One `k3s.cattle.io/v1` `ETCDSnapshotFile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtcdSnapshotFile {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: EtcdSnapshotSpec,
    pub status: EtcdSnapshotStatus,
}

/// The subset of object metadata RKE2 fills in list replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(rename = "creationTimestamp", default)]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdSnapshotSpec {
    #[serde(rename = "snapshotName")]
    pub snapshot_name: String,
    #[serde(rename = "nodeName")]
    pub node_name: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdSnapshotStatus {
    /// A Kubernetes quantity string (plain bytes as we write it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(
        rename = "creationTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_time: Option<String>,
    #[serde(
        rename = "readyToUse",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ready_to_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EtcdSnapshotError>,
    /// Extension: the copy's last restore drill (absent until drilled, and from RKE2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::kube::resources::SnapshotFileVerification>,
    /// Extension: a local full snapshot's point-in-time window (absent without a delta chain,
    /// for S3 copies, and from RKE2).
    #[serde(
        rename = "pointInTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub point_in_time: Option<crate::kube::resources::SnapshotFilePointInTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdSnapshotError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A Kubernetes `Status` error body, as RKE2's handler returns on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusBody {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub status: String,
    pub message: String,
    pub reason: String,
    pub code: u16,
}

impl StatusBody {
    /// A `Failure` status with the given HTTP code and message.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_omits_unset_fields_like_rke2() {
        let req = SnapshotRequest {
            operation: Some(Operation::Save),
            name: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"operation":"save","name":["x"]}"#
        );
    }

    #[test]
    fn every_field_rke2_sends_is_accepted_and_anything_else_is_named() {
        // RKE2's CLI body for `prune` with every flag set, S3 included.
        let rke2 = r#"{"operation":"prune","name":["PRUNE_TEST"],"dir":"/d","compress":true,
            "retention":2,"s3":{"accessKey":"","secretKey":"","sessionToken":"","bucket":"b",
            "bucketLookup":"","configSecret":"","endpoint":"s3.amazonaws.com","endpointCA":"",
            "folder":"","proxy":"","region":"us-east-1","insecure":false,"skipSSLVerify":false,
            "retention":5,"timeout":"5m0s"}}"#;
        let request: SnapshotRequest = serde_json::from_str(rke2).unwrap();
        assert_eq!(request.retention, Some(2));
        assert_eq!(request.dir.as_deref(), Some("/d"));
        let ours = r#"{"operation":"prune","skipS3":true,"dryRun":true}"#;
        assert!(serde_json::from_str::<SnapshotRequest>(ours).is_ok());
        let typo = r#"{"operation":"prune","retention":1,"dryrun":true}"#;
        let err = serde_json::from_str::<SnapshotRequest>(typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `dryrun`"), "{err}");
        assert!(err.contains("`dryRun`"), "{err}");
    }

    #[test]
    fn response_omits_empty_lists() {
        let resp = SnapshotResponse {
            created: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"created":["a"]}"#
        );
        let parsed: SnapshotResponse = serde_json::from_str("{}").unwrap();
        assert!(parsed.created.is_empty() && parsed.deleted.is_empty());
    }
}
