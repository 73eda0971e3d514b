//! The extra-metadata ConfigMap (`rke2-etcd-snapshot-extra-metadata` in `kube-system`): when it
//! exists, its data is stored with each snapshot (the `.metadata/<name>` file and S3 object)
//! and shown in the resources' `spec.metadata`, as RKE2 does.
//!
//! Read at the moment of each save, never cached, so an edit applies to the next snapshot. Its
//! absence is normal; trouble reading it never stops a snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::access::KubeAccess;
use super::s3_secret::NAMESPACE;

/// RKE2's name for the ConfigMap, kept so existing clusters' metadata carries over.
pub const EXTRA_METADATA_CONFIGMAP: &str = "rke2-etcd-snapshot-extra-metadata";

/// How long a save waits for the ConfigMap.
const READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// The ConfigMap's data now; None without Kubernetes access, when it does not exist or is
/// empty, or when it cannot be read (logged).
pub async fn read_extra_metadata(access: &KubeAccess) -> Option<BTreeMap<String, String>> {
    let client = access.client().ok()?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    // The snapshot waits for this read: a slow apiserver costs it a few seconds at most.
    let read = tokio::time::timeout(READ_BUDGET, configmaps.get_opt(EXTRA_METADATA_CONFIGMAP));
    match read.await {
        Ok(Ok(found)) => found?.data.filter(|data| !data.is_empty()),
        Err(_) => {
            tracing::warn!(
                configmap = EXTRA_METADATA_CONFIGMAP,
                "the extra-metadata ConfigMap did not arrive in time; the snapshot is taken without it"
            );
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(
                configmap = EXTRA_METADATA_CONFIGMAP,
                error = &e as &dyn std::error::Error,
                "failed to read the extra-metadata ConfigMap; the snapshot is taken without it"
            );
            None
        }
    }
}
