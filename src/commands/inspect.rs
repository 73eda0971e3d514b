//! `etcd-snapshot inspect`: resolves the snapshot argument, runs the inspection (local files on a
//! blocking thread, S3 objects through the configured store) and prints the report. Exit codes
//! are `main.rs`'s: healthy 0, damaged or unreadable 1, usage 2 ([`InspectCommandError::is_usage`]).
//! An encrypted snapshot is decrypted on the fly with `--etcd-snapshot-encryption-identity-file`;
//! without a key that opens it there is no verdict: exit 2, naming the fingerprints it needs.

use secrecy::SecretString;

use crate::cli::OutputFormat;
use crate::config::{DesiredConfig, Resolved, Source};
use crate::inspect::report::{InspectReport, render_table};
use crate::inspect::{self, InspectError, Target};
use crate::kube::encryption_secret::EncryptionSecretError;
use crate::store::s3::{S3Error, S3Store};
use crate::token::{TokenError, existing_server_token};

/// Why `inspect` gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum InspectCommandError {
    #[error(transparent)]
    Inspect(InspectError),
    #[error("failed to read the token given with --token or --token-file")]
    Token(#[source] TokenError),
    #[error("failed to read the encryption identities")]
    Identity(#[source] EncryptionSecretError),
    #[error("failed to connect to the S3 store")]
    S3(#[source] Box<S3Error>),
    #[error("failed to run the inspection")]
    Join(#[source] tokio::task::JoinError),
    #[error("failed to print the report as {format}")]
    Output {
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl InspectCommandError {
    /// A usage error (exit 2): the snapshot is not there, or the command cannot be run as given.
    pub fn is_usage(&self) -> bool {
        match self {
            InspectCommandError::Inspect(e) => e.is_usage(),
            InspectCommandError::Token(_) | InspectCommandError::Identity(_) => true,
            _ => false,
        }
    }
}

/// Inspects `snapshot`, prints the report, and returns whether it is healthy.
pub async fn run(
    snapshot: &str,
    output: OutputFormat,
    resolved: &Resolved,
) -> Result<bool, InspectCommandError> {
    let config = &resolved.config;
    let token = given_token(resolved)?;
    let identities = crate::kube::encryption_secret::command_identities(config)
        .await
        .map_err(InspectCommandError::Identity)?;
    let target = inspect::resolve(snapshot, &config.snapshot.dir, config.s3.is_some())
        .map_err(InspectCommandError::Inspect)?;
    let data_dir = config.data_dir.clone();
    let report = match target {
        Target::Local(path) => tokio::task::spawn_blocking(move || {
            inspect::inspect_local_decrypting(&path, &data_dir, token.as_ref(), identities.as_ref())
        })
        .await
        .map_err(InspectCommandError::Join)?
        .map_err(InspectCommandError::Inspect)?,
        Target::S3(name) => {
            let Some(settings) = &config.s3 else {
                return Err(InspectCommandError::Inspect(InspectError::S3Disabled {
                    name,
                }));
            };
            let store = S3Store::connect(settings)
                .await
                .map_err(|e| InspectCommandError::S3(Box::new(e)))?;
            inspect::inspect_s3_decrypting(&store, &name, &data_dir, token, identities)
                .await
                .map_err(InspectCommandError::Inspect)?
        }
    };
    print!("{}", render(&report, output)?);
    Ok(report.healthy)
}

/// The token to check the bootstrap data with: only one given on this command line
/// (`--token`, `--token-file`). A server's token from its config file or environment is not
/// used, so a snapshot of an etcd without bootstrap data is not called damaged for lacking it.
fn given_token(resolved: &Resolved) -> Result<Option<SecretString>, InspectCommandError> {
    let on_command_line = resolved.shown.iter().any(|v| {
        (v.key == "token" || v.key == "token-file") && matches!(v.source, Source::Flag(_))
    });
    if !on_command_line {
        return Ok(None);
    }
    let config: &DesiredConfig = &resolved.config;
    existing_server_token(config)
        .map(Some)
        .map_err(InspectCommandError::Token)
}

/// The report in the asked format.
pub fn render(report: &InspectReport, output: OutputFormat) -> Result<String, InspectCommandError> {
    match output {
        // `inspect` offers no wide form: its table already shows every check.
        OutputFormat::Table | OutputFormat::Wide => Ok(render_table(report)),
        OutputFormat::Json => serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| InspectCommandError::Output {
                format: "json",
                source: Box::new(e),
            }),
        OutputFormat::Yaml => {
            serde_saphyr::to_string(report).map_err(|e| InspectCommandError::Output {
                format: "yaml",
                source: Box::new(e),
            })
        }
    }
}
