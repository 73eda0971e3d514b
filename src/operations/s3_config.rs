//! The S3 settings an operation runs with: the configured block, or the block the S3 config
//! Secret supplies, read afresh for this operation.
//!
//! When the Secret cannot be used, the configured block is kept with its `config_secret` still
//! set; `connect` then reads the Secret again and fails with the reason, so the S3 part of the
//! operation fails (and is reported and recorded) while the local part goes on.

use super::Operations;
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::kube::KubeAccess;
use crate::kube::s3_secret::read_s3_settings;
use crate::store::s3::S3Error;

impl Operations {
    /// `config` with the Secret's S3 block in place, when a Secret is in use and readable.
    pub(super) async fn effective(&self, config: &DesiredConfig) -> DesiredConfig {
        let mut effective = config.clone();
        let Some(s3) = &config.s3 else {
            return effective;
        };
        let Some(name) = &s3.config_secret else {
            return effective;
        };
        match read_s3_settings(&self.kube, name, s3).await {
            Ok(found) => {
                for warning in &found.warnings {
                    tracing::warn!("{warning}");
                }
                effective.s3 = Some(found.settings);
            }
            Err(e) => {
                tracing::warn!(secret = %name, error = %super::error_chain(&e), "the S3 config Secret cannot be used; S3 is skipped for this operation");
            }
        }
        effective
    }
}

impl Operations {
    /// Connects to the bucket the configuration (or its Secret) names: the server's startup
    /// report of whether S3 is usable. None when S3 is off.
    pub async fn check_s3(&self, config: &DesiredConfig) -> Option<Result<String, S3Error>> {
        let effective = self.effective(config).await;
        let s3 = effective.s3.as_ref()?;
        let connected = super::replicate::connect(&self.kube, &effective, s3).await;
        Some(connected.map(|_| format!("{} at {}", s3.bucket, s3.endpoint)))
    }
}

/// The settings to connect with: `settings` itself, or (when its Secret could not be used at
/// the start of the operation) the Secret read once more, failing with why it is unusable.
pub(super) async fn connectable(
    kube: &KubeAccess,
    settings: &S3Settings,
) -> Result<S3Settings, S3Error> {
    match &settings.config_secret {
        None => Ok(settings.clone()),
        Some(name) => read_s3_settings(kube, name, settings)
            .await
            .map(|found| found.settings)
            .map_err(|e| S3Error::Settings(Box::new(e))),
    }
}
