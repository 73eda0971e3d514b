//! The typed `k3s.cattle.io/v1` `ETCDSnapshotFile` object this product writes to the apiserver,
//! and its `kube::Resource` identity (cluster-scoped, no status subresource).
//!
//! Field names, omission rules and nesting are RKE2's, so objects written by RKE2 deserialize here
//! and ours read back identically in `kubectl`. This file holds data shapes only: no decisions
//! (see `desired` and `plan`) and no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ClusterResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::config::desired::S3Settings;
use crate::kube::crd::{GROUP, KIND, PLURAL, VERSION};

/// One `ETCDSnapshotFile` as stored in the apiserver: full object metadata (resourceVersion,
/// uid, finalizers...) so updates and deletes can be guarded, plus RKE2's spec and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFile {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SnapshotFileSpec,
    /// RKE2 always writes it; objects created by other tools may lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SnapshotFileStatus>,
}

impl SnapshotFile {
    /// An object of this kind with the given metadata, spec and status.
    pub fn new(metadata: ObjectMeta, spec: SnapshotFileSpec, status: SnapshotFileStatus) -> Self {
        Self {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.into(),
            metadata,
            spec,
            status: Some(status),
        }
    }

    /// The object name (empty only for a malformed object).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The value of one label, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// `spec`: which snapshot copy the object describes. `metadata` and `s3` are omitted when empty,
/// as RKE2's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFileSpec {
    #[serde(default)]
    pub snapshot_name: String,
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// The `spec.s3` block: where an S3 copy lives. It never holds credentials, proxy, bucket lookup
/// type or timeout, because every reader of the cluster can see it. Empty or false fields are
/// omitted, as RKE2 does, and missing ones read back as empty/false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Spec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(rename = "endpointCA", skip_serializing_if = "String::is_empty")]
    pub endpoint_ca: String,
    #[serde(rename = "skipSSLVerify", skip_serializing_if = "is_false")]
    pub skip_ssl_verify: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// The folder (key prefix) inside the bucket.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl S3Spec {
    /// The public part of the S3 settings, as RKE2 copies it into every S3 resource.
    pub fn from_settings(s: &S3Settings) -> Self {
        Self {
            endpoint: s.endpoint.clone(),
            endpoint_ca: s.endpoint_ca.clone().unwrap_or_default(),
            skip_ssl_verify: s.skip_ssl_verify,
            bucket: s.bucket.clone(),
            region: s.region.clone(),
            prefix: s.folder.clone(),
            insecure: s.insecure,
        }
    }
}

/// `status`: written together with the spec (the CRD has no status subresource).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFileStatus {
    /// Bytes as a Kubernetes quantity string (DecimalSI canonical form, like RKE2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<serde_json::Value>,
    /// RFC 3339: the snapshot time, or the failure time for a failed save/upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SnapshotFileError>,
    /// Ours (RKE2 has no drills): the copy's last restore drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<SnapshotFileVerification>,
    /// Ours (RKE2 has no delta chains): how far a local full snapshot's delta chain lets a
    /// point-in-time restore go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<SnapshotFilePointInTime>,
}

/// `status.pointInTime`: from the snapshot's revision and time to the last revision its chain
/// reaches without a hole, and when that revision arrived (absent when not recorded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFilePointInTime {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339, with milliseconds when it has some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `status.verification`: when this copy was last drilled, the result and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFileVerification {
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `passed` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status.error`: why and when a save or upload failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFileError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ::kube::Resource for SnapshotFile {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
