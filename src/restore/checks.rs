//! The checks a reset makes before it may touch the live data dir: a usable setup (the
//! embedded etcd, stopped), a readable source, a matching token, and a staged data dir that
//! actually starts and holds what the snapshot held.
//!
//! Each check either passes or returns the `ResetError` an operator should read; none of them
//! changes the live data dir.

use std::net::TcpListener;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::ResetError;
use crate::bootstrap::{self, BootstrapData};
use crate::config::DesiredConfig;
use crate::etcd::standalone::{MemberExpectation, StandaloneEtcd, StandaloneOptions, check_member};

/// Restores and resets apply to the embedded etcd this tool manages, while it is stopped, and
/// never with an S3 block that only the Kubernetes Secret could fill.
pub(super) fn refuse_unusable_setup(config: &DesiredConfig) -> Result<(), ResetError> {
    if !config.etcd.is_embedded() {
        return Err(ResetError::ExternalEtcd {
            endpoints: config.etcd.endpoints.join(","),
        });
    }
    if let Some(s3) = &config.s3
        && s3.bucket.trim().is_empty()
        && s3.config_secret.is_some()
    {
        return Err(ResetError::SecretForRestore);
    }
    for address in [config.etcd.client_address, config.etcd.peer_address] {
        if TcpListener::bind(address).is_err() {
            return Err(ResetError::EtcdRunning { address });
        }
    }
    Ok(())
}

/// The local source must exist and be a regular file (RKE2's messages).
pub(super) fn source_is_file(path: &Path) -> Result<(), ResetError> {
    match std::fs::metadata(path) {
        Err(_) => Err(super::RestoreError::SourceMissing {
            path: path.to_path_buf(),
        }
        .into()),
        Ok(meta) if !meta.is_file() => Err(super::RestoreError::SourceNotAFile {
            path: path.to_path_buf(),
        }
        .into()),
        Ok(_) => Ok(()),
    }
}

/// Compares the token hash recorded with an S3 snapshot with this token's, before anything is
/// downloaded. An empty record (RKE2 during a reset, or no Kubernetes) proves nothing and
/// passes; the bootstrap check after staging still catches a wrong token.
pub(super) fn token_hash_matches(
    recorded: &str,
    token: &SecretString,
    snapshot: &str,
) -> Result<(), ResetError> {
    let ours = crate::token::token_hash(token.expose_secret());
    if recorded.is_empty() || recorded == ours {
        return Ok(());
    }
    Err(ResetError::TokenHashMismatch {
        snapshot: snapshot.to_string(),
        recorded: recorded.to_string(),
        ours,
    })
}

/// Starts the staged data dir once on loopback ports of its own and proves it: one member, no
/// alarms, the expected revision, and bootstrap data that opens with the token. Returns the
/// revision and the bootstrap data (None when the snapshot holds none).
pub(super) async fn prove_staged(
    config: &DesiredConfig,
    staging: &Path,
    expected_revision: Option<i64>,
    passphrase: &SecretString,
) -> Result<(i64, Option<BootstrapData>), ResetError> {
    let mut options = member_options(config, staging, false);
    // A lone member on loopback with no peer to wait for: short raft timers let it elect
    // itself within a tick instead of up to two seconds (timers are not kept in the data dir).
    options.fast_election = true;
    let etcd = StandaloneEtcd::start(options).await?;
    let result = inspect(config, &etcd, expected_revision, passphrase).await;
    stop(etcd).await;
    result
}

/// The member as the embedded etcd runs it (name, recorded peer URL), on loopback ports of its
/// own so nothing else can reach it mid-reset.
pub(super) fn member_options(
    config: &DesiredConfig,
    data_dir: &Path,
    force_new_cluster: bool,
) -> StandaloneOptions {
    let mut options =
        StandaloneOptions::new(config.etcd.binary.clone(), data_dir, &config.node_name);
    options.force_new_cluster = force_new_cluster;
    options.initial_advertise_peer_url = Some(peer_url(config));
    options
}

/// What the reset member must look like: alone, named as this node, not a learner, no alarms.
pub(super) fn expectation(
    config: &DesiredConfig,
    exact_revision: Option<i64>,
) -> MemberExpectation {
    MemberExpectation {
        name: config.node_name.clone(),
        peer_url: None,
        min_revision: 1,
        exact_revision,
    }
}

/// The peer URL the embedded member serves (TLS only), as a restore records it.
fn peer_url(config: &DesiredConfig) -> String {
    format!("https://{}", config.etcd.peer_address)
}

/// Stops a check member; a stop failure only warns (the process is killed on drop anyway).
pub(super) async fn stop(etcd: StandaloneEtcd) {
    if let Err(e) = etcd.stop().await {
        tracing::warn!(error = %crate::errors::error_chain(&e), "failed to stop the check member cleanly");
    }
}

async fn inspect(
    config: &DesiredConfig,
    etcd: &StandaloneEtcd,
    expected_revision: Option<i64>,
    passphrase: &SecretString,
) -> Result<(i64, Option<BootstrapData>), ResetError> {
    let mut client = etcd.client();
    let report = check_member(&mut client, &expectation(config, expected_revision)).await?;
    let data = match bootstrap::load_from_etcd(&mut client, passphrase.expose_secret()).await {
        Ok(data) => data,
        Err(e) if e.is_wrong_token() => return Err(ResetError::WrongToken(e)),
        Err(e) => return Err(e.into()),
    };
    if data.is_none() {
        tracing::warn!(
            "the snapshot holds no bootstrap data; certificates on disk are left as they are"
        );
    }
    Ok((report.revision, data))
}
