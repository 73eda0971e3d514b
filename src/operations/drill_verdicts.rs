//! Where a drill's verdict goes after `verify`: the copy's metadata record (local file or S3
//! `.metadata` object, `store::verdict`), the metrics (last verified time per storage, failures),
//! and for a failed drill a Kubernetes Event on the copy's `ETCDSnapshotFile`. The resource's
//! status follows on the resource reconcile that `verify` runs afterwards (it reads the record).
//!
//! A drill that cannot verify (an encrypted copy without the key) records nothing and counts as
//! no failure: nothing is known about the bytes. Nothing here deletes anything.

use super::verify::storage_label;
use super::{FailedItem, Operations, error_chain, open_existing_store};
use crate::config::DesiredConfig;
use crate::restore::drill::{DrillReport, DrillResult};
use crate::snapshot::drill_record::DrillVerdict;
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::s3::S3Store;

impl Operations {
    /// Records each reached verdict (under the writer and store locks, for a moment) and
    /// updates the drill metrics. Hands back the S3 session and what could not be recorded.
    pub(super) async fn record_verdicts(
        &self,
        config: &DesiredConfig,
        drills: &[DrillReport],
        session: Option<S3Store>,
    ) -> (Option<S3Store>, Vec<FailedItem>) {
        let now = crate::store::local::now_unix();
        let mut failed = Vec::new();
        let reached: Vec<&DrillReport> = drills
            .iter()
            .filter(|d| d.result != DrillResult::CannotVerify)
            .collect();
        for d in &reached {
            let storage = storage_label(d.storage);
            if d.passed {
                self.metrics.set_last_verified(storage, now);
            } else {
                self.metrics.inc_drill_failure(storage);
            }
        }
        let _writer = self.writer.lock().await;
        let local = match open_existing_store(config) {
            Ok(store) => match store.lock().await {
                Ok(lock) => Ok((store, lock)),
                Err(e) => Err(error_chain(&e)),
            },
            Err(e) => Err(error_chain(&e)),
        };
        for d in reached {
            let verdict = DrillVerdict::new(now, d.passed, &reason(d));
            let recorded = match (d.storage, &local, &session) {
                (Storage::Local, Ok((store, _)), _) => store
                    .record_verdict(&d.name, &verdict)
                    .map_err(|e| error_chain(&e)),
                (Storage::Local, Err(e), _) => Err(e.clone()),
                (Storage::S3, _, Some(store)) => {
                    let recorded = store.record_verdict(&d.name, &verdict).await;
                    self.s3_sources.forget(&d.location);
                    recorded.map_err(|e| error_chain(&e))
                }
                (Storage::S3, _, None) => Err("S3 is not reachable".to_string()),
            };
            if let Err(message) = recorded {
                tracing::warn!(location = %d.location, error = %message, "failed to record a restore drill verdict");
                failed.push(FailedItem {
                    name: d.location.clone(),
                    message: format!("verdict not recorded: {message}"),
                });
            }
        }
        if let Ok((store, _)) = &local {
            self.refresh_count(store);
        }
        (session, failed)
    }

    /// A Warning Event `ETCDSnapshotDrillFailed` on the resource of every copy whose drill
    /// failed (nothing without Kubernetes access; a refused Event is only logged).
    pub(super) async fn publish_drill_failures(
        &self,
        config: &DesiredConfig,
        drills: &[DrillReport],
    ) {
        let Ok(client) = self.kube.client() else {
            return;
        };
        let s3 = config
            .s3
            .as_ref()
            .map(crate::kube::resources::S3Spec::from_settings);
        for d in drills.iter().filter(|d| d.result == DrillResult::Failed) {
            let record = SnapshotRecord {
                file_name: d.name.clone(),
                location: d.location.clone(),
                node_name: match d.storage {
                    Storage::Local => config.node_name.clone(),
                    Storage::S3 => crate::store::s3::store::S3_NODE_NAME.to_string(),
                },
                storage: d.storage,
                size: 0,
                created_unix: crate::snapshot::name::timestamp_in_name(&d.name).unwrap_or(0),
                compressed: crate::snapshot::name::is_compressed_name(&d.name),
                ready: true,
                error: None,
                token_hash: None,
                metadata: None,
            };
            crate::kube::resources::publish_drill_failed(
                client,
                &config.node_name,
                &record,
                s3.as_ref(),
                &reason(d),
            )
            .await;
        }
    }
}

/// The verdict's reason, one line: the failed checks (`name: detail; ...`), or for a passed
/// drill what it proved (the inspect figures and the hash check).
pub fn reason(d: &DrillReport) -> String {
    let failed: Vec<String> = d
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() {
        return failed.join("; ");
    }
    let said = |name: &str| {
        d.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.detail.clone())
    };
    [said("inspect"), said("hashkv")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::report::Check;

    fn drill(checks: Vec<Check>) -> DrillReport {
        let result = DrillResult::of(&checks);
        DrillReport {
            name: "a-n1-1".into(),
            storage: Storage::Local,
            location: "file:///d/a-n1-1".into(),
            passed: result == DrillResult::Passed,
            result,
            checks,
            duration_secs: 1.0,
        }
    }

    #[test]
    fn the_reason_names_failed_checks_or_what_a_pass_proved() {
        let passed = drill(vec![
            Check::new("inspect", true, "whole: revision 21"),
            Check::new("restore", true, "restored"),
            Check::new("hashkv", true, "HashKV at revision 21: equal"),
        ]);
        assert_eq!(
            reason(&passed),
            "whole: revision 21; HashKV at revision 21: equal"
        );
        let failed = drill(vec![
            Check::new("inspect", true, "whole"),
            Check::new("hashkv", false, "differs"),
            Check::new("read", false, "short"),
        ]);
        assert_eq!(reason(&failed), "hashkv: differs; read: short");
        assert_eq!(failed.result, DrillResult::Failed);
        let locked = drill(vec![Check::new(
            crate::restore::drill::IDENTITY_CHECK,
            false,
            "cannot verify: needs identity",
        )]);
        assert_eq!(locked.result, DrillResult::CannotVerify);
    }
}
