//! Resources of departed nodes: deleting the local-copy `ETCDSnapshotFile`s of nodes that no
//! longer run etcd (RKE2's reconcile step 7), guarded so a misnamed or unprivileged server never
//! deletes what it should not, plus the once-per-episode notices both this step and the Node
//! mark (`node_mark`) share.
//!
//! `plan_departed` decides; `collect_departed` only lists, deletes and publishes the Events. The
//! snapshot files themselves are never touched (they live on nodes that are gone), and neither
//! are S3 resources (the S3 reconcile owns them) or resources this product did not label.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};

use ::kube::api::Api;
use ::kube::runtime::events::Recorder;
use k8s_openapi::api::core::v1::Node;

use super::ResourceError;
use super::desired::S3_STORAGE_NODE;
use super::events::{self, EventKind};
use super::model::SnapshotFile;
use super::node_mark::{MarkOutcome, mark_node};
use crate::kube::crd::STORAGE_NODE_LABEL;

/// The label RKE2 puts on every Node that runs an etcd member; a node without it has left etcd.
pub const ETCD_ROLE_SELECTOR: &str = "node-role.kubernetes.io/etcd=true";

/// Why departed nodes' resources were not collected this pass. None of these is an error: the
/// pass did everything else, and the next pass decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcSkip {
    /// No Node carries the etcd role label (a cluster that labels differently, or an apiserver
    /// still starting): every resource would look orphaned.
    NoEtcdNodes,
    /// This server's node name is not among the etcd Nodes: it may not be a Kubernetes node, or
    /// its `node-name` differs from its Node's name. Collecting then would delete this server's
    /// own resources along with every other's.
    NotAnEtcdNode,
    /// Listing Nodes is not allowed (the ClusterRole lacks `nodes` `list`).
    NodesForbidden,
}

/// What one collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcOutcome {
    /// Resources deleted, by name, and how many of their Events the apiserver refused.
    Collected {
        deleted: Vec<String>,
        events_failed: usize,
    },
    /// Nothing was deleted, on purpose.
    Skipped(GcSkip),
}

/// A condition worth one log line when it starts, not one per pass while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    NoEtcdNodes,
    NotAnEtcdNode,
    NodesForbidden,
    MarkForbidden,
    MarkNodeMissing,
}

/// Which notices were already logged. The caller keeps one for the life of the server, so a
/// condition is logged when it starts and again only after it cleared and came back.
#[derive(Debug, Default)]
pub struct NodeNotices(AtomicU8);

impl NodeNotices {
    /// True when `notice` was not raised since it last cleared: the caller should log it.
    pub(super) fn raise(&self, notice: Notice) -> bool {
        let bit = 1u8 << notice as u8;
        self.0.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// The condition is over; the next time it happens is logged again.
    pub(super) fn clear(&self, notices: &[Notice]) {
        let bits = notices.iter().fold(0u8, |acc, n| acc | 1u8 << *n as u8);
        self.0.fetch_and(!bits, Ordering::Relaxed);
    }
}

/// The resources to delete: labelled with a storage node that is neither `s3` nor one of
/// `etcd_nodes`. Refuses (with the reason) when `etcd_nodes` is empty or lacks `own_node`.
///
/// Unlike RKE2, a resource with no storage-node label (or an empty one) is kept. RKE2's `NotIn`
/// selector also matches unlabelled objects, so it deletes resources some other tool wrote; we
/// never write such a resource, so it is not ours to remove. Resources already being deleted
/// are left to finish.
pub fn plan_departed(
    own_node: &str,
    etcd_nodes: &BTreeSet<String>,
    resources: &[SnapshotFile],
) -> Result<Vec<SnapshotFile>, GcSkip> {
    if etcd_nodes.is_empty() {
        return Err(GcSkip::NoEtcdNodes);
    }
    if !etcd_nodes.contains(own_node) {
        return Err(GcSkip::NotAnEtcdNode);
    }
    Ok(resources
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter(|r| match r.label(STORAGE_NODE_LABEL) {
            None | Some("") | Some(S3_STORAGE_NODE) => false,
            Some(node) => !etcd_nodes.contains(node),
        })
        .cloned()
        .collect())
}

/// Deletes the resources of nodes that no longer run etcd (see [`plan_departed`]), each guarded
/// by the uid and resourceVersion it was listed with, with an `ETCDSnapshotDeleted` Event.
///
/// Nodes that may not be listed are a skip, not an error; the notice is logged once. Every
/// orphan is attempted; when some deletes fail, the error counts them and carries the first.
pub async fn collect_departed(
    client: &::kube::Client,
    own_node: &str,
    notices: &NodeNotices,
) -> Result<GcOutcome, ResourceError> {
    let etcd_nodes = match list_etcd_nodes(client).await {
        Ok(nodes) => nodes,
        Err(ResourceError::ListNodes { source, .. }) if is_forbidden(&source) => {
            if notices.raise(Notice::NodesForbidden) {
                tracing::warn!(
                    "not allowed to list Nodes; resources of departed nodes are not collected \
                     (grant `nodes` `list` as manifests/rbac.yaml does)"
                );
            }
            return Ok(GcOutcome::Skipped(GcSkip::NodesForbidden));
        }
        Err(e) => return Err(e),
    };
    notices.clear(&[Notice::NodesForbidden]);
    let api: Api<SnapshotFile> = Api::all(client.clone());
    let resources = list_labelled(&api).await?;
    let orphans = match plan_departed(own_node, &etcd_nodes, &resources) {
        Ok(orphans) => orphans,
        Err(skip) => {
            log_skip(skip, own_node, notices);
            return Ok(GcOutcome::Skipped(skip));
        }
    };
    notices.clear(&[Notice::NoEtcdNodes, Notice::NotAnEtcdNode]);
    delete_all(client, &api, own_node, orphans).await
}

/// Runs the collection, then marks this node's Node, logging what went wrong: called after a
/// successful reconcile, whose result neither step changes. `s3_in_scope` says whether S3 was
/// reconciled this pass.
pub async fn collect_and_mark(
    client: &::kube::Client,
    own_node: &str,
    s3_in_scope: bool,
    notices: &NodeNotices,
) -> (Option<GcOutcome>, Option<MarkOutcome>) {
    let collected = collect_departed(client, own_node, notices)
        .await
        .inspect_err(|error| {
            tracing::warn!(
                error = error as &dyn std::error::Error,
                "failed to collect ETCDSnapshotFile resources of departed nodes"
            )
        })
        .ok();
    let marked = mark_node(client, own_node, s3_in_scope, chrono::Utc::now(), notices)
        .await
        .inspect_err(|error| {
            tracing::warn!(
                error = error as &dyn std::error::Error,
                "failed to mark this node's snapshot reconcile on its Node"
            )
        })
        .ok();
    (collected, marked)
}

fn log_skip(skip: GcSkip, own_node: &str, notices: &NodeNotices) {
    match skip {
        GcSkip::NoEtcdNodes if notices.raise(Notice::NoEtcdNodes) => tracing::info!(
            selector = ETCD_ROLE_SELECTOR,
            "no Node carries the etcd role label; resources of departed nodes are not collected"
        ),
        GcSkip::NotAnEtcdNode if notices.raise(Notice::NotAnEtcdNode) => tracing::warn!(
            node = own_node,
            selector = ETCD_ROLE_SELECTOR,
            "this server's node name is not an etcd Node; resources of departed nodes are not \
             collected (set node-name to this machine's Kubernetes Node name)"
        ),
        _ => {}
    }
}

pub(super) fn is_forbidden(error: &::kube::Error) -> bool {
    matches!(error, ::kube::Error::Api(status) if status.is_forbidden())
}

/// The names of the Nodes labelled as etcd members.
async fn list_etcd_nodes(client: &::kube::Client) -> Result<BTreeSet<String>, ResourceError> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = super::list_all(&api, ETCD_ROLE_SELECTOR)
        .await
        .map_err(|source| ResourceError::ListNodes {
            selector: ETCD_ROLE_SELECTOR.to_string(),
            source,
        })?;
    Ok(nodes.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// Every resource with a storage-node label other than `s3`: the only ones that can be a
/// departed node's (the server filters; `plan_departed` checks again).
async fn list_labelled(api: &Api<SnapshotFile>) -> Result<Vec<SnapshotFile>, ResourceError> {
    let selector = format!("{STORAGE_NODE_LABEL},{STORAGE_NODE_LABEL}!={S3_STORAGE_NODE}");
    super::list_all(api, &selector)
        .await
        .map_err(|source| ResourceError::List { selector, source })
}

async fn delete_all(
    client: &::kube::Client,
    api: &Api<SnapshotFile>,
    own_node: &str,
    orphans: Vec<SnapshotFile>,
) -> Result<GcOutcome, ResourceError> {
    let recorder = events::recorder(client, own_node);
    let total = orphans.len();
    let (mut deleted, mut events_failed, mut failures) = (Vec::new(), 0, Vec::new());
    for orphan in orphans {
        match delete_orphan(api, &recorder, &orphan).await {
            Ok(None) => {}
            Ok(Some(published)) => {
                deleted.push(orphan.name().to_string());
                events_failed += usize::from(!published);
            }
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "failed to delete a departed node's ETCDSnapshotFile"
                );
                failures.push(error);
            }
        }
    }
    match failures.len() {
        0 => Ok(GcOutcome::Collected {
            deleted,
            events_failed,
        }),
        failed => Err(ResourceError::Partial {
            failed,
            total,
            first: Box::new(failures.swap_remove(0)),
        }),
    }
}

/// Deletes one orphan if it is still the version listed. `Ok(None)` when another server deleted
/// or rewrote it first (every server collects, so racing is normal); otherwise whether the
/// Event was accepted.
async fn delete_orphan(
    api: &Api<SnapshotFile>,
    recorder: &Recorder,
    orphan: &SnapshotFile,
) -> Result<Option<bool>, ResourceError> {
    let deleted =
        super::apply::delete(api, orphan)
            .await
            .map_err(|source| ResourceError::Apply {
                action: "delete",
                name: orphan.name().to_string(),
                source,
            })?;
    if !deleted {
        return Ok(None);
    }
    tracing::info!(
        resource = orphan.name(),
        node = orphan.label(STORAGE_NODE_LABEL),
        "deleted the ETCDSnapshotFile of a node that no longer runs etcd"
    );
    Ok(Some(
        events::publish(recorder, EventKind::Deleted, orphan).await,
    ))
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
