//! Retention on S3: apply the S3 retention policy to this node's `<base>` snapshots of this
//! cluster.
//!
//! Candidates are exact `<base>-<node>-<ts>[.zip]` names (never a sibling base or another
//! node), and objects whose `Rke2-Cluster-Id` names another cluster are left alone, so two
//! clusters sharing a bucket and folder never prune each other. The plan itself is
//! `snapshot::prune::plan_retention`, the same as for local files.

use super::error::S3Error;
use super::store::{META_CLUSTER_ID, META_TOKEN_HASH, S3Store};
use crate::snapshot::SnapshotName;
use crate::snapshot::prune::{Candidate, Pruned, plan_retention};
use crate::snapshot::retention::RetentionPolicy;

impl S3Store {
    /// Applies `policy` to `base`: deletes (unless `dry_run`) what it removes, oldest first,
    /// and returns every considered object's verdict. Needs `with_identity`. One HEAD and one
    /// GET of the `.metadata` object (its drill verdict) per candidate of this node, none for
    /// other objects.
    pub async fn prune(
        &self,
        base: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<Pruned, S3Error> {
        if self.node.is_empty() {
            return Err(S3Error::InvalidSettings {
                reason: "the S3 store has no node name, so it cannot tell its snapshots apart"
                    .into(),
            });
        }
        let mut candidates = Vec::new();
        for record in self.list().await? {
            if SnapshotName::parse_exact(&record.file_name, base, &self.node).is_none() {
                continue;
            }
            let key = self.layout().object_key(&record.file_name);
            let meta = match self.head(&key).await {
                Ok(meta) => meta,
                // Deleted meanwhile: nothing to prune.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let field = |name: &str| {
                meta.get(&name.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default()
            };
            if !same_cluster(&field(META_CLUSTER_ID), &self.cluster_id)
                || !same_token(&field(META_TOKEN_HASH), &self.token_hash)
            {
                tracing::debug!(%key, "S3 snapshot belongs to another cluster; not pruned");
                continue;
            }
            // The drill verdict is in the `.metadata` object (`store::verdict`); an unreadable
            // one fails the prune rather than let the newest verified copy go unprotected.
            let mut record = record;
            record.metadata = self
                .read_extra_metadata(&record.file_name)
                .await?
                .map()
                .cloned();
            candidates.push(Candidate {
                size: record.size,
                verified: crate::snapshot::retention::verified(&record),
                file_name: record.file_name,
            });
        }
        let now = crate::store::local::now_unix();
        let plan = plan_retention(&candidates, base, &self.node, policy, now);
        let mut deleted = plan.delete;
        deleted.reverse();
        if !dry_run {
            for name in &deleted {
                self.delete(name).await?;
            }
        }
        Ok(Pruned {
            deleted,
            verdicts: plan.verdicts,
        })
    }
}

/// An object is ours when its cluster id matches ours; an object without one (uploaded
/// without Kubernetes, or by RKE2 during cluster-reset) counts as ours only if we have none.
pub fn same_cluster(object_cluster: &str, ours: &str) -> bool {
    object_cluster == ours
}

/// A second guard for clusters without ids: an object written under another token (both
/// hashes known and different) belongs to another cluster.
pub fn same_token(object_token_hash: &str, ours: &str) -> bool {
    object_token_hash.is_empty() || ours.is_empty() || object_token_hash == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matching_cluster_ids_are_ours() {
        assert!(same_cluster("uid-1", "uid-1"));
        assert!(same_cluster("", ""));
        assert!(!same_cluster("uid-2", "uid-1"));
        assert!(!same_cluster("", "uid-1"));
        assert!(!same_cluster("uid-1", ""));
    }

    #[test]
    fn objects_of_another_token_are_not_ours() {
        assert!(same_token("abc", "abc"));
        assert!(same_token("", "abc"));
        assert!(same_token("abc", ""));
        assert!(!same_token("abc", "def"));
    }
}
