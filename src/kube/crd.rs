//! The `ETCDSnapshotFile` CustomResourceDefinition (`k3s.cattle.io/v1`), built from typed structs
//! and rendered as YAML for `etcd-snapshot crd` and `manifests/crd.yaml`.
//!
//! The definition is RKE2's: same group, names, cluster scope, no short names, no status
//! subresource, the same spec/status fields and printer columns, so snapshot records written by
//! RKE2 and by this product are interchangeable; it adds only `status.verification` and the
//! `Verified` column (restore drills, which RKE2 has not), and `status.pointInTime` and the
//! `RestorableTo` column (delta chains), all optional. This file only describes the resource; it never
//! talks to an apiserver and never builds the resources themselves (`kube::resources` does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API group, shared with RKE2 and k3s.
pub const GROUP: &str = "k3s.cattle.io";
/// The only served version.
pub const VERSION: &str = "v1";
/// The resource kind.
pub const KIND: &str = "ETCDSnapshotFile";
/// The plural resource name (`kubectl get etcdsnapshotfiles`).
pub const PLURAL: &str = "etcdsnapshotfiles";
/// The singular resource name.
pub const SINGULAR: &str = "etcdsnapshotfile";
/// The CRD's own object name: `<plural>.<group>`, as the apiserver requires.
pub const CRD_NAME: &str = "etcdsnapshotfiles.k3s.cattle.io";
/// The label naming the node that holds a local copy, or `s3` for an S3 copy.
pub const STORAGE_NODE_LABEL: &str = "etcd.rke2.cattle.io/snapshot-storage-node";
/// The annotation carrying the token hash that protects the snapshot's bootstrap data.
pub const TOKEN_HASH_ANNOTATION: &str = "etcd.rke2.cattle.io/snapshot-token-hash";
/// Ours, not RKE2's: on an encrypted copy, `age` (RKE2 cannot read such a copy; its name ends in
/// `.age`).
pub const ENCRYPTION_ANNOTATION: &str = "etcd-snapshot.io/encryption";
/// Ours: the key fingerprints an encrypted copy is encrypted to, comma-joined, when recorded.
pub const ENCRYPTED_TO_ANNOTATION: &str = "etcd-snapshot.io/encrypted-to";

/// Errors rendering the definition.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("failed to render the ETCDSnapshotFile CustomResourceDefinition as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// An `apiextensions.k8s.io/v1` CustomResourceDefinition: the fields this product sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomResourceDefinition {
    pub api_version: String,
    pub kind: String,
    pub metadata: CrdMetadata,
    pub spec: CrdSpec,
}

/// The CRD's object metadata; RKE2 sets no labels or annotations on it, and neither do we.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrdMetadata {
    pub name: String,
}

/// What the resource is called, where it lives and its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrdSpec {
    pub group: String,
    pub names: CrdNames,
    /// `Cluster` or `Namespaced`.
    pub scope: String,
    pub versions: Vec<CrdVersion>,
}

/// How the resource is named; `shortNames` is left out because RKE2 defines none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdNames {
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
}

/// One served version. No `subresources`: RKE2 writes spec and status in one update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_printer_columns: Vec<PrinterColumn>,
    pub schema: CrdValidation,
}

/// A `kubectl get` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrinterColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub json_path: String,
}

/// The validation block of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrdValidation {
    #[serde(rename = "openAPIV3Schema")]
    pub open_api_v3_schema: Schema,
}

/// The subset of a structural OpenAPI v3 schema the definition needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// Absent only for int-or-string values, which say so with `anyOf`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Schema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_properties: Option<Box<Schema>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<Schema>,
    #[serde(
        rename = "x-kubernetes-int-or-string",
        default,
        skip_serializing_if = "is_false"
    )]
    pub int_or_string: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Schema {
    fn typed(type_: &str, description: &str) -> Self {
        Schema {
            type_: Some(type_.into()),
            description: Some(description.into()),
            ..Default::default()
        }
    }

    fn string(description: &str) -> Self {
        Self::typed("string", description)
    }

    fn boolean(description: &str) -> Self {
        Self::typed("boolean", description)
    }

    /// An object with these fields, of which `required` must be present.
    fn object(description: &str, fields: Vec<(&str, Schema)>, required: &[&str]) -> Self {
        Schema {
            properties: fields
                .into_iter()
                .map(|(name, schema)| (name.to_string(), schema))
                .collect(),
            required: required.iter().map(|r| r.to_string()).collect(),
            ..Self::typed("object", description)
        }
    }

    /// A `map[string]string`.
    fn string_map(description: &str) -> Self {
        Schema {
            additional_properties: Some(Box::new(Schema {
                type_: Some("string".into()),
                ..Default::default()
            })),
            ..Self::typed("object", description)
        }
    }

    /// A Kubernetes quantity: clients may send `8937504` or `"8937504"`; RKE2 writes a string.
    fn quantity(description: &str) -> Self {
        let only = |t: &str| Schema {
            type_: Some(t.into()),
            ..Default::default()
        };
        Schema {
            description: Some(description.into()),
            any_of: vec![only("integer"), only("string")],
            int_or_string: true,
            ..Default::default()
        }
    }

    /// Optional fields RKE2 may send as `null`.
    fn nullable(self) -> Self {
        Schema {
            nullable: true,
            ..self
        }
    }
}

/// The `kubectl get etcdsnapshotfile` columns, after the implicit NAME: RKE2's five, then
/// `Verified` (ours: empty until the copy is drilled), `RestorableTo` (ours: empty without a
/// delta chain, or while the time of its end is not recorded).
pub fn printer_columns() -> Vec<PrinterColumn> {
    [
        ("SnapshotName", ".spec.snapshotName"),
        ("Node", ".spec.nodeName"),
        ("Location", ".spec.location"),
        ("Size", ".status.size"),
        ("CreationTime", ".status.creationTime"),
        // Ours: the last restore drill's result (RKE2 has no drills).
        ("Verified", ".status.verification.result"),
        // Ours: how far a point-in-time restore from this snapshot reaches (a time).
        ("RestorableTo", ".status.pointInTime.to"),
    ]
    .into_iter()
    .map(|(name, path)| PrinterColumn {
        name: name.into(),
        type_: "string".into(),
        json_path: path.into(),
    })
    .collect()
}

fn s3_schema() -> Schema {
    Schema::object(
        "Where the S3 copy lives; present only for S3 copies. Never holds credentials.",
        vec![
            ("bucket", Schema::string("Bucket name.")),
            ("endpoint", Schema::string("S3 endpoint host[:port].")),
            (
                "endpointCA",
                Schema::string("CA bundles used to verify the endpoint."),
            ),
            (
                "insecure",
                Schema::boolean("True when S3 is reached over plain HTTP."),
            ),
            (
                "prefix",
                Schema::string("Folder (key prefix) in the bucket."),
            ),
            ("region", Schema::string("S3 region.")),
            (
                "skipSSLVerify",
                Schema::boolean("True when the endpoint's certificate is not verified."),
            ),
        ],
        &[],
    )
    .nullable()
}

fn spec_schema() -> Schema {
    let location = "file:///<absolute path> or s3://<bucket>/<key>; empty for a failed local save.";
    let node = "The node holding a local copy, or the node that uploaded an S3 copy (s3 when \
                unknown).";
    Schema::object(
        "The snapshot copy this record describes.",
        vec![
            ("location", Schema::string(location)),
            (
                "metadata",
                Schema::string_map("The extra-metadata ConfigMap's data at snapshot time.")
                    .nullable(),
            ),
            ("nodeName", Schema::string(node)),
            ("s3", s3_schema()),
            (
                "snapshotName",
                Schema::string("The snapshot file name, including .zip when compressed."),
            ),
        ],
        &["snapshotName", "nodeName", "location"],
    )
}

fn status_schema() -> Schema {
    let error = Schema::object(
        "Why the snapshot failed.",
        vec![
            ("message", Schema::string("The error text.").nullable()),
            (
                "time",
                Schema::string("When it failed (RFC 3339).").nullable(),
            ),
        ],
        &[],
    )
    .nullable();
    let created = "When the snapshot was taken (RFC 3339); for a failure, when it failed.";
    Schema::object(
        "The state of the snapshot copy.",
        vec![
            ("creationTime", Schema::string(created).nullable()),
            ("error", error),
            (
                "verification",
                Schema::object(
                    "The copy's last restore drill (etcd-snapshot verify); absent until drilled. \
                     Not in RKE2.",
                    vec![
                        (
                            "message",
                            Schema::string("What the drill found.").nullable(),
                        ),
                        ("result", Schema::string("passed or failed.").nullable()),
                        (
                            "time",
                            Schema::string("When the drill ended (RFC 3339).").nullable(),
                        ),
                    ],
                    &[],
                )
                .nullable(),
            ),
            ("pointInTime", point_in_time_schema()),
            (
                "readyToUse",
                Schema::boolean("True when the snapshot was saved successfully.").nullable(),
            ),
            (
                "size",
                Schema::quantity("Size in bytes, as a Kubernetes quantity.").nullable(),
            ),
        ],
        &[],
    )
}

/// `status.pointInTime`: the window of a full snapshot's delta chain (a local copy's beside
/// it, an S3 copy's in the bucket).
fn point_in_time_schema() -> Schema {
    let field = |t: &str, what: &str| Schema::typed(t, what).nullable();
    Schema::object(
        "How far a point-in-time restore from this full snapshot reaches: from its own \
         revision and time to the last revision its delta chain holds without a hole (for an S3 \
         copy, the chain's segments in the bucket), and when that revision arrived (to, absent \
         when not recorded). Absent without a chain. Not in RKE2.",
        vec![
            ("from", field("string", "The snapshot's time (RFC 3339).")),
            ("fromRevision", field("integer", "The snapshot's revision.")),
            (
                "to",
                field("string", "When the last revision arrived (RFC 3339)."),
            ),
            ("toRevision", field("integer", "The last revision reached.")),
        ],
        &[],
    )
    .nullable()
}

/// The top-level description says what the labels and annotations on each record mean, since a
/// CRD cannot declare them.
fn resource_description() -> String {
    format!(
        "One copy of an etcd snapshot (local file or S3 object). Label {STORAGE_NODE_LABEL} names \
         the node holding a local copy, or s3; annotation {TOKEN_HASH_ANNOTATION} holds the hash \
         of the server token the snapshot's bootstrap data is encrypted with. On an age-encrypted \
         copy, annotation {ENCRYPTION_ANNOTATION} is age and {ENCRYPTED_TO_ANNOTATION} lists the \
         fingerprints of the keys it is encrypted to."
    )
}

/// The whole definition, as `kubectl apply` takes it.
pub fn etcd_snapshot_file_crd() -> CustomResourceDefinition {
    let root = Schema::object(
        &resource_description(),
        vec![("spec", spec_schema()), ("status", status_schema())],
        &[],
    );
    CustomResourceDefinition {
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        metadata: CrdMetadata {
            name: CRD_NAME.into(),
        },
        spec: CrdSpec {
            group: GROUP.into(),
            names: CrdNames {
                kind: KIND.into(),
                list_kind: format!("{KIND}List"),
                plural: PLURAL.into(),
                singular: SINGULAR.into(),
            },
            scope: "Cluster".into(),
            versions: vec![CrdVersion {
                name: VERSION.into(),
                served: true,
                storage: true,
                additional_printer_columns: printer_columns(),
                schema: CrdValidation {
                    open_api_v3_schema: root,
                },
            }],
        },
    }
}

/// The definition as YAML: what `etcd-snapshot crd` prints and `manifests/crd.yaml` holds.
pub fn render_yaml() -> Result<String, CrdError> {
    serde_saphyr::to_string(&etcd_snapshot_file_crd()).map_err(CrdError::Yaml)
}

#[cfg(test)]
#[path = "crd_tests.rs"]
mod tests;
