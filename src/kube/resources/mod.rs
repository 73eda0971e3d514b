//! `ETCDSnapshotFile` resources: one per snapshot copy this node is responsible for, kept in step
//! with the stores, with RKE2's names, labels, keep rules and Events; plus installing the CRD.
//!
//! Every server reconciles its own local copies and, when S3 was listed, the shared S3 copies;
//! after that it deletes the local copies' resources of nodes that left etcd and marks its own
//! Node (`nodes`, `node_mark`). The decisions are pure (`naming`, `desired`, `plan`,
//! `plan_departed`, `pruned`); `apply`, `events`, `install` and the node steps are the thin I/O around
//! them. This module never lists or changes snapshots themselves: it is handed the records a
//! listing produced and mirrors them.

mod apply;
mod desired;
mod events;
mod install;
mod model;
mod naming;
mod node_mark;
mod nodes;
mod plan;
mod pruned;

pub use apply::{ReconcileOutcome, reconcile, upsert_records};
pub use desired::{
    S3_STORAGE_NODE, desired_resource, desired_set, format_quantity, parse_quantity,
};
pub use events::{DRILL_FAILED_REASON, EventKind, event_message, publish_drill_failed};
pub use install::{CrdInstall, MANAGED_BY, MANAGED_BY_LABEL, install_crd};
pub use model::{
    S3Spec, SnapshotFile, SnapshotFileError, SnapshotFilePointInTime, SnapshotFileSpec,
    SnapshotFileStatus, SnapshotFileVerification,
};
pub use naming::{is_dns1123_subdomain, resource_name};
pub use node_mark::{
    LOCAL_TIMESTAMP_ANNOTATION, MarkOutcome, MarkSkip, S3_TIMESTAMP_ANNOTATION, mark_node,
    timestamp_annotations,
};
pub use nodes::{
    ETCD_ROLE_SELECTOR, GcOutcome, GcSkip, NodeNotices, collect_and_mark, collect_departed,
    plan_departed,
};
pub use plan::{Change, FAILURE_TTL, S3_GRACE, plan_reconcile};
pub use pruned::verification_dropped;

/// What this node reconciles: its own local copies, plus the S3 copies when S3 was listed
/// successfully this round (when the listing failed, S3 resources are left alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub node_name: String,
    pub s3: Option<S3Spec>,
}

/// Errors talking to the apiserver about `ETCDSnapshotFile` resources or their CRD.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("failed to list ETCDSnapshotFile resources with selector {selector}")]
    List {
        selector: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("failed to {action} ETCDSnapshotFile {name}")]
    Apply {
        action: &'static str,
        name: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("failed to apply {failed} of {total} ETCDSnapshotFile changes")]
    Partial {
        failed: usize,
        total: usize,
        /// The first failure; the others are logged.
        #[source]
        first: Box<ResourceError>,
    },
    #[error("failed to list Nodes with selector {selector}")]
    ListNodes {
        selector: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("failed to annotate Node {name}")]
    MarkNode {
        name: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("failed to {action} CustomResourceDefinition {name}")]
    Crd {
        action: &'static str,
        name: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("failed to convert the CustomResourceDefinition {name} to the API type")]
    CrdConvert {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ResourceError {
    /// Whether trying again later may succeed: everything except a definition that cannot be
    /// converted, and requests the apiserver rejected as invalid or forbidden.
    pub fn is_retryable(&self) -> bool {
        let api_retryable = |e: &::kube::Error| match e {
            ::kube::Error::Api(status) => !(status.is_invalid() || status.is_forbidden()),
            _ => true,
        };
        match self {
            Self::List { source, .. }
            | Self::Apply { source, .. }
            | Self::Crd { source, .. }
            | Self::ListNodes { source, .. }
            | Self::MarkNode { source, .. } => api_retryable(source),
            Self::Partial { first, .. } => first.is_retryable(),
            Self::CrdConvert { .. } => false,
        }
    }
}

/// Objects per list page (RKE2 pages by 20; bigger pages mean fewer round trips).
const PAGE: u32 = 100;

/// Every object of `api` matching the label `selector`, following continue tokens, `PAGE` per
/// request.
async fn list_all<K>(api: &::kube::Api<K>, selector: &str) -> Result<Vec<K>, ::kube::Error>
where
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let mut params = ::kube::api::ListParams::default()
        .labels(selector)
        .limit(PAGE);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}
