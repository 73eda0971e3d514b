//! Staging an encrypted database snapshot (`….age`, not a zip): decrypted straight into the
//! staging dir where `direct` reproduces the tool, otherwise decrypted into a checked copy
//! beside it that `stage` restores like any plain snapshot. Either way the snapshot is
//! refused at its header when no identity opens it, before anything is written for it.

use std::path::Path;

use secrecy::SecretString;

use super::ResetError;
use super::direct::{self, Direct, Source};
use super::flow::{decrypt, needed_keys};
use super::plan::RestorePlan;
use super::stage::{Staged, expected_revision, prove, stage, target_for};
use super::tool::select_restore_tool;
use super::verify::check_free_space;
use crate::config::DesiredConfig;
use crate::crypt::Fingerprint;
use crate::snapshot::encryption_record::EncryptionRecord;

/// Restores the encrypted snapshot `input` into the staging dir and proves the result.
pub(super) async fn stage_encrypted(
    config: &DesiredConfig,
    plan: &RestorePlan,
    input: &Path,
    object_keys: Vec<Fingerprint>,
    passphrase: &SecretString,
) -> Result<Staged, ResetError> {
    let identities = crate::kube::encryption_secret::command_identities(config)
        .await
        .map_err(ResetError::Identity)?;
    let tool = select_restore_tool(&config.etcd.binary).await?;
    let target = target_for(config, plan, &tool);
    let supported = direct::supported(&tool, &target);
    let identities = identities.filter(|_| supported);
    let Some(identities) = identities else {
        // No identity (refused with the keys it needs) or a tool not reproduced here.
        if !supported {
            tracing::info!(tool = %tool.path.display(), version = %tool.version, "restoring the decrypted copy through the restore tool: the direct restore reproduces etcd 3.4's etcdctl only");
        }
        let decrypted = decrypt(config, plan, input, object_keys, true).await?;
        let copy = decrypted.as_ref().map_or(input, |d| d.path());
        return stage(config, plan, copy, passphrase, true).await;
    };
    for warning in &tool.assessment.warnings {
        tracing::warn!("{warning}");
    }
    let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    check_free_space(&plan.db_dir, plan.space_needed(size))?;
    tracing::info!(snapshot = %input.display(), "decrypting the encrypted snapshot into the staging dir");
    let source = Source {
        path: input.to_path_buf(),
        identities,
        needed: needed_keys(input, object_keys),
        recorded_seal: EncryptionRecord::read_beside(input).and_then(|r| r.seal),
    };
    match direct::restore_directly(&tool, &target, source).await? {
        Direct::Staged(revisions) => {
            let expected = expected_revision(revisions, None);
            prove(config, plan, input, expected, passphrase).await
        }
        Direct::Declined { plaintext, reason } => {
            tracing::info!(%reason, "restoring the decrypted copy through the restore tool");
            stage(config, plan, plaintext.path(), passphrase, true).await
        }
    }
}
