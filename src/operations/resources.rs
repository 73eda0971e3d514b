//! Keeps this node's `ETCDSnapshotFile` resources in step with its snapshots: after every save,
//! delete and prune, and on every reconcile pass.
//!
//! Mirroring never decides an operation's outcome: without Kubernetes access it does nothing,
//! and apiserver trouble is logged and made up by the next pass. The listing it mirrors is a
//! fresh one, so resources follow what the stores hold, not what an operation meant to do.

use std::sync::atomic::Ordering;

use super::Operations;
use crate::config::DesiredConfig;
use crate::kube::resources::{self, S3Spec, Scope};
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::s3::S3Store;

impl Operations {
    /// Reconciles the resources with a fresh listing. `config` has its S3 settings resolved
    /// (the Secret read); `just_deleted` names snapshots this operation removed, whose resources
    /// go at once whatever the keep rules say. `just_saved` is the snapshot this operation
    /// took: its local resource gets this server's token hash, as RKE2's saving process sets it.
    pub(super) async fn mirror_resources(
        &self,
        config: &DesiredConfig,
        just_deleted: &[String],
        just_saved: Option<&str>,
        session: Option<S3Store>,
    ) {
        let Ok(client) = self.kube.client() else {
            return;
        };
        let _one_at_a_time = self.mirror.lock().await;
        let (listing, store) = match self.list_stores(config, session).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %super::error_chain(&e), "failed to list snapshots for the ETCDSnapshotFile resources");
                return;
            }
        };
        let mut records = listing.records;
        if let Some(name) = just_saved {
            // The token hash the operation's S3 session read; the token file only without one.
            let hash = match &store {
                Some(store) => Some(store.token_hash().to_string()),
                None => crate::token::server_token_hash(config),
            };
            let hash = hash.filter(|h| !h.is_empty());
            for record in records.iter_mut().filter(|r| r.storage == Storage::Local) {
                if record.file_name == name {
                    record.token_hash = hash.clone();
                }
            }
        }
        // When who uploaded some S3 copies is unknown this pass, their resources' names are
        // unknown too: leave every S3 resource alone rather than rename them back and forth.
        let (s3_listed, s3_chains) = match (&config.s3, store) {
            // A Secret still named here was unreadable when the operation began: its settings
            // are not the ones the objects were listed with.
            (Some(s3), Some(store))
                if s3.config_secret.is_none()
                    && self.fill_s3_sources(&store, &mut records).await =>
            {
                self.set_s3_newest(&records);
                let chains = super::windows::list_s3_chains(&store, &records).await;
                (Some(s3), chains)
            }
            _ => (None, None),
        };
        let scope = Scope {
            node_name: config.node_name.clone(),
            s3: s3_listed.map(S3Spec::from_settings),
        };
        let mut records = with_local_metadata(records);
        let chains = s3_chains.as_ref();
        super::windows::attach_windows(&config.snapshot.dir, &mut records, chains).await;
        match resources::reconcile(client, &scope, &records, just_deleted).await {
            Ok(_) => {
                self.resources_synced.store(true, Ordering::Relaxed);
                // RKE2's steps 7-8: departed nodes' resources, then this node's timestamps.
                let (node, s3) = (&config.node_name, scope.s3.is_some());
                resources::collect_and_mark(client, node, s3, &self.node_notices).await;
            }
            Err(e) => {
                tracing::warn!(error = %super::error_chain(&e), "failed to reconcile ETCDSnapshotFile resources; retrying on the next pass")
            }
        }
        if scope.s3.is_none() {
            // S3 could not be listed (or its settings read), so its resources are left alone;
            // this node's own failed uploads are still recorded, as RKE2 records a failed save.
            let failures = unlisted_s3_failures(&records);
            let spec = config.s3.as_ref().map(S3Spec::from_settings);
            if let Err(e) =
                resources::upsert_records(client, &config.node_name, &failures, spec.as_ref()).await
            {
                tracing::warn!(error = %super::error_chain(&e), "failed to record failed S3 copies as ETCDSnapshotFile resources");
            }
        }
    }

    /// Who uploaded each S3 copy (`Rke2-Node-Name`, `Rke2-Token-Hash`) and its extra metadata
    /// (`.metadata/<name>`), read through the store that was just listed, so every node names,
    /// labels and fills the shared resources alike. Only objects new since the last pass cost
    /// requests. False when some could not be read (their resources are then unknown).
    async fn fill_s3_sources(
        &self,
        store: &crate::store::s3::S3Store,
        records: &mut [SnapshotRecord],
    ) -> bool {
        let failed = store.fill_sources(records, &self.s3_sources).await;
        for (name, e) in &failed {
            tracing::warn!(snapshot = %name, error = %super::error_chain(e), "failed to read an S3 snapshot's uploader or metadata; S3 resources are left as they are this pass");
        }
        if failed.is_empty() {
            self.set_s3_recipient_gauge(records);
        }
        failed.is_empty()
    }

    /// A save that produced no snapshot, as a not-ready resource with the error (RKE2's failed
    /// local record, with no location). Kept for a day by the keep rules, like RKE2's.
    pub(super) async fn record_failed_save(&self, config: &DesiredConfig, name: &str, error: &str) {
        let Ok(client) = self.kube.client() else {
            return;
        };
        let _one_at_a_time = self.mirror.lock().await;
        let record = SnapshotRecord {
            file_name: name.to_string(),
            location: String::new(),
            node_name: config.node_name.clone(),
            storage: Storage::Local,
            size: 0,
            created_unix: super::rounded_now_unix(),
            compressed: crate::snapshot::name::is_compressed_name(name),
            ready: false,
            error: Some(error.to_string()),
            token_hash: None,
            metadata: None,
        };
        if let Err(e) = resources::upsert_records(client, &config.node_name, &[record], None).await
        {
            tracing::warn!(error = %super::error_chain(&e), "failed to record the failed save as an ETCDSnapshotFile");
        }
    }

    /// True until a resource reconcile has succeeded, when there is Kubernetes access.
    pub fn resources_awaiting_first_sync(&self) -> bool {
        self.kube.is_enabled() && !self.resources_synced.load(Ordering::Relaxed)
    }

    /// With `install` (`etcd-snapshot-install-crd`), installs or updates the CRD when allowed;
    /// without, says how to install it. Said once at server start.
    pub async fn install_resource_definition(&self, install: bool) {
        let Ok(client) = self.kube.client() else {
            return;
        };
        if !install {
            tracing::info!(
                "the ETCDSnapshotFile CRD is not installed by this server (etcd-snapshot-install-crd is off): apply it once with `kubectl apply -f manifests/crd.yaml` (or `etcd-snapshot crd | kubectl apply -f -`)"
            );
            return;
        }
        match resources::install_crd(client).await {
            Ok(resources::CrdInstall::NotAllowed { message }) => {
                tracing::warn!(%message, "not allowed to install the ETCDSnapshotFile CRD; install manifests/crd.yaml (or `etcd-snapshot crd | kubectl apply -f -`)")
            }
            Ok(resources::CrdInstall::Foreign) => tracing::warn!(
                crd = crate::kube::crd::CRD_NAME,
                "the installed ETCDSnapshotFile CRD differs from ours but was not created by etcd-snapshot (no app.kubernetes.io/managed-by=etcd-snapshot label), so it is left unchanged; update it yourself from manifests/crd.yaml if it is out of date"
            ),
            Ok(done) => tracing::info!(result = ?done, "ETCDSnapshotFile CRD installed"),
            Err(e) => {
                tracing::warn!(error = %super::error_chain(&e), "failed to install the ETCDSnapshotFile CRD")
            }
        }
    }
}

/// Gives this node's recorded S3 upload failures the metadata of their local copy. Listed S3
/// objects are not touched: `fill_sources` read their metadata from the uploaded
/// `.metadata/<name>` object, which every node sees alike, while a local copy exists on one node
/// only and goes with local retention. A failure row stands for an object that was never
/// uploaded, so no other node computes its resource and the local file is the only copy there
/// is (RKE2 records a failed upload with the save's metadata too).
fn with_local_metadata(mut records: Vec<SnapshotRecord>) -> Vec<SnapshotRecord> {
    let local: std::collections::BTreeMap<String, _> = records
        .iter()
        .filter(|r| r.storage == Storage::Local)
        .filter_map(|r| Some((r.file_name.clone(), r.metadata.clone()?)))
        .collect();
    let failures = records
        .iter_mut()
        .filter(|r| r.storage == Storage::S3 && !r.ready);
    for record in failures {
        if record.metadata.is_none() {
            record.metadata = local.get(&record.file_name).cloned();
        }
    }
    records
}

/// The S3 rows a listing shows although S3 was not listed: recorded upload failures.
fn unlisted_s3_failures(records: &[SnapshotRecord]) -> Vec<SnapshotRecord> {
    records
        .iter()
        .filter(|r| r.storage == Storage::S3 && !r.ready)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn only_recorded_upload_failures_take_the_local_metadata() {
        let name = "etcd-snapshot-n1-1754906881";
        let saved = BTreeMap::from([("k".to_string(), "local".to_string())]);
        let local = SnapshotRecord {
            metadata: Some(saved.clone()),
            ..SnapshotRecord::example(name, "file:///s/x", "n1", Storage::Local)
        };
        // The object's own value (here: none) decides for a listed S3 copy.
        let listed = SnapshotRecord::example(name, "s3://b/x", "n1", Storage::S3);
        let failed = SnapshotRecord {
            ready: false,
            error: Some("upload failed".into()),
            ..listed.clone()
        };
        let out = with_local_metadata(vec![local.clone(), listed.clone(), failed.clone()]);
        assert_eq!(out[0], local);
        assert_eq!(out[1], listed);
        assert_eq!(out[2].metadata, Some(saved));
    }
}
