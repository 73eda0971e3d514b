//! Marking this server's Node after a reconcile (RKE2's step 8): the annotations
//! `etcd.rke2.cattle.io/local-snapshots-timestamp` and, when S3 was reconciled,
//! `etcd.rke2.cattle.io/s3-snapshots-timestamp`, so tools that wait for a node's snapshot
//! reconcile (as RKE2's legacy ConfigMap controller does) see it.
//!
//! The annotations are added by a JSON patch, as RKE2 does, so no other field of the Node is
//! sent back. Patching Nodes is a powerful permission the default ClusterRole does not grant:
//! without it the mark is skipped quietly. This file never changes labels, taints or anything
//! but these two annotations.

use std::collections::BTreeMap;

use ::kube::api::{Api, ListParams};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::ResourceError;
use super::naming::is_dns1123_subdomain;
use super::nodes::{NodeNotices, Notice, is_forbidden};

/// When this node last reconciled its local snapshots' resources (RFC 3339).
pub const LOCAL_TIMESTAMP_ANNOTATION: &str = "etcd.rke2.cattle.io/local-snapshots-timestamp";
/// When this node last reconciled the S3 snapshots' resources (RFC 3339).
pub const S3_TIMESTAMP_ANNOTATION: &str = "etcd.rke2.cattle.io/s3-snapshots-timestamp";

/// Why the Node was not marked. Neither is an error: the reconcile itself succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkSkip {
    /// Patching Nodes is not allowed (the default ClusterRole does not grant it).
    Forbidden,
    /// No Node has this server's node name.
    NodeMissing,
}

/// What marking the Node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The annotations written, by key.
    Marked(BTreeMap<String, String>),
    Skipped(MarkSkip),
}

/// The annotations for a reconcile at `now`: the S3 one only when S3 was in scope.
pub fn timestamp_annotations(s3_in_scope: bool, now: DateTime<Utc>) -> BTreeMap<String, String> {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut keys = vec![LOCAL_TIMESTAMP_ANNOTATION];
    if s3_in_scope {
        keys.push(S3_TIMESTAMP_ANNOTATION);
    }
    keys.into_iter()
        .map(|k| (k.to_string(), stamp.clone()))
        .collect()
}

/// One JSON-patch `add` per annotation: for a Node whose annotation map exists (the usual
/// case, the kubelet writes some), leaving every other annotation as it is.
fn add_each(annotations: &BTreeMap<String, String>) -> Value {
    let ops: Vec<Value> = annotations
        .iter()
        .map(|(key, value)| {
            let path = format!("/metadata/annotations/{}", escape_pointer(key));
            json!({"op": "add", "path": path, "value": value})
        })
        .collect();
    Value::Array(ops)
}

/// For a Node with no annotation map: `add` of the whole map, guarded by a `test` of the
/// resourceVersion it was seen without one, so annotations someone wrote meanwhile are never
/// replaced (the patch fails instead, and the next pass tries again).
fn add_map(resource_version: &str, annotations: &BTreeMap<String, String>) -> Value {
    json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// A JSON-pointer path segment (RFC 6901): `~` is `~0`, `/` is `~1`.
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Annotates this server's Node with the reconcile time (see [`timestamp_annotations`]).
///
/// Forbidden (no `nodes` `patch`) and a missing Node are skips, logged once while they last.
/// A Node without any annotations is handled by a second, guarded patch.
pub async fn mark_node(
    client: &::kube::Client,
    own_node: &str,
    s3_in_scope: bool,
    now: DateTime<Utc>,
    notices: &NodeNotices,
) -> Result<MarkOutcome, ResourceError> {
    // Not a possible Node name: no Node has it (and it is never put in a request path).
    if !is_dns1123_subdomain(own_node) {
        return Ok(skipped(MarkSkip::NodeMissing, own_node, notices));
    }
    let annotations = timestamp_annotations(s3_in_scope, now);
    let first = patch_node(client, own_node, &add_each(&annotations)).await;
    let result = match first {
        Err(::kube::Error::Api(status)) if status.is_invalid() => {
            // The annotation map is missing (or something else was refused: look first).
            match find_node(client, own_node).await? {
                None => return Ok(skipped(MarkSkip::NodeMissing, own_node, notices)),
                Some(node) if node.metadata.annotations.is_some() => {
                    Err(::kube::Error::Api(status))
                }
                Some(node) => {
                    let version = node.metadata.resource_version.unwrap_or_default();
                    patch_node(client, own_node, &add_map(&version, &annotations)).await
                }
            }
        }
        other => other,
    };
    match result {
        Ok(()) => {
            notices.clear(&[Notice::MarkForbidden, Notice::MarkNodeMissing]);
            Ok(MarkOutcome::Marked(annotations))
        }
        Err(e) if is_forbidden(&e) => Ok(skipped(MarkSkip::Forbidden, own_node, notices)),
        Err(::kube::Error::Api(status)) if status.is_not_found() => {
            Ok(skipped(MarkSkip::NodeMissing, own_node, notices))
        }
        Err(source) => Err(ResourceError::MarkNode {
            name: own_node.to_string(),
            source,
        }),
    }
}

fn skipped(skip: MarkSkip, own_node: &str, notices: &NodeNotices) -> MarkOutcome {
    match skip {
        MarkSkip::Forbidden if notices.raise(Notice::MarkForbidden) => tracing::info!(
            node = own_node,
            "not allowed to patch Nodes; the Node's snapshot timestamp annotations are not set \
             (optional: see the commented rule in manifests/rbac.yaml)"
        ),
        MarkSkip::NodeMissing if notices.raise(Notice::MarkNodeMissing) => tracing::warn!(
            node = own_node,
            "no Node has this server's node name; its snapshot timestamp annotations are not \
             set (set node-name to this machine's Kubernetes Node name)"
        ),
        _ => {}
    }
    MarkOutcome::Skipped(skip)
}

/// This server's Node, found through a `list` (already granted for the departed-node
/// collection) rather than a `get`, so the ClusterRole needs no more.
async fn find_node(client: &::kube::Client, name: &str) -> Result<Option<Node>, ResourceError> {
    let api: Api<Node> = Api::all(client.clone());
    let selector = format!("metadata.name={name}");
    let params = ListParams::default().fields(&selector);
    match api.list(&params).await {
        Ok(list) => Ok(list.items.into_iter().next()),
        Err(source) => Err(ResourceError::ListNodes { selector, source }),
    }
}

/// Sends `ops` as a JSON patch (`application/json-patch+json`) to the Node `name`.
async fn patch_node(client: &::kube::Client, name: &str, ops: &Value) -> Result<(), ::kube::Error> {
    let request = http::Request::patch(format!("/api/v1/nodes/{name}"))
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .header(http::header::ACCEPT, "application/json")
        .body(ops.to_string().into_bytes())
        .map_err(::kube::Error::HttpError)?;
    client.request::<Node>(request).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::kube::crd::STORAGE_NODE_LABEL;

    fn at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_754_906_881, 0).unwrap()
    }

    #[test]
    fn annotations_share_the_products_prefix() {
        let prefix = |key: &str| key.split_once('/').map(|(p, _)| p.to_string());
        assert_eq!(
            prefix(LOCAL_TIMESTAMP_ANNOTATION),
            prefix(STORAGE_NODE_LABEL)
        );
        assert_eq!(prefix(S3_TIMESTAMP_ANNOTATION), prefix(STORAGE_NODE_LABEL));
    }

    #[test]
    fn s3_timestamp_only_when_s3_was_in_scope() {
        let local_only = timestamp_annotations(false, at());
        assert_eq!(
            local_only,
            BTreeMap::from([(
                LOCAL_TIMESTAMP_ANNOTATION.to_string(),
                "2025-08-11T10:08:01Z".to_string()
            )])
        );
        let both = timestamp_annotations(true, at());
        assert_eq!(both.len(), 2);
        assert_eq!(both[S3_TIMESTAMP_ANNOTATION], "2025-08-11T10:08:01Z");
    }

    #[test]
    fn each_annotation_is_added_by_an_escaped_pointer() {
        let ops = add_each(&timestamp_annotations(true, at()));
        assert_eq!(
            ops,
            json!([
                {"op": "add",
                 "path": "/metadata/annotations/etcd.rke2.cattle.io~1local-snapshots-timestamp",
                 "value": "2025-08-11T10:08:01Z"},
                {"op": "add",
                 "path": "/metadata/annotations/etcd.rke2.cattle.io~1s3-snapshots-timestamp",
                 "value": "2025-08-11T10:08:01Z"},
            ])
        );
        assert_eq!(escape_pointer("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn a_missing_map_is_added_whole_guarded_by_the_version_seen() {
        let ops = add_map("42", &timestamp_annotations(false, at()));
        assert_eq!(ops[0]["op"], "test");
        assert_eq!(ops[0]["path"], "/metadata/resourceVersion");
        assert_eq!(ops[0]["value"], "42");
        assert_eq!(ops[1]["op"], "add");
        assert_eq!(ops[1]["path"], "/metadata/annotations");
        assert_eq!(
            ops[1]["value"],
            json!({LOCAL_TIMESTAMP_ANNOTATION: "2025-08-11T10:08:01Z"})
        );
    }
}
