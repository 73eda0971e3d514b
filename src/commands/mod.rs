//! Runs the client subcommands (`save`, `ls`, `delete`, `prune`, `verify`,
//! `config show|validate`).
//!
//! Snapshot commands ask the running server over the API first; when no server answers, they run
//! the same operation directly with this process's merged config and say so on stderr. Output
//! lines match RKE2's so scripts keep working. Exit codes are decided in `main.rs`.

pub mod deltas;
pub mod inspect;
pub mod output;
pub mod prune_output;
pub mod rekey;
pub mod request;
pub mod restore;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::api::client::{ApiClient, ClientError, ClientReply, answers};
use crate::api::tls;
use crate::api::wire::{EtcdSnapshotFileList, FailedItem, RemovedCopy, SnapshotResponse};
use crate::cli::{Command, OutputFormat};
use crate::config::{ConfigEngine, ConfigErrors, DesiredConfig, Resolved, Source};
use crate::errors::error_chain;
use crate::operations::{OperationError, Operations, PlannedOperation};
use crate::telemetry::metrics::Metrics;
use crate::token::client_token;

use output::OutputError;
pub use request::build_request;

/// How a command that did not fail outright ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Success,
    /// The operation finished but some part of it failed.
    Partial,
    /// `verify`: a drill failed, or a copy could not be verified.
    Failed,
    /// `verify`: an asked snapshot does not exist.
    NotFound,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid configuration")]
    Config(#[source] ConfigErrors),
    #[error(transparent)]
    Client(ClientError),
    #[error("a snapshot server answers at {url} but there is no token to send it ({reason})")]
    NoToken { url: String, reason: String },
    #[error("failed to run {operation} directly")]
    Direct {
        operation: &'static str,
        #[source]
        source: OperationError,
    },
    #[error("failed to print the snapshot list")]
    Output(#[source] OutputError),
    #[error("failed to print the prune report")]
    PruneOutput(#[source] prune_output::PruneOutputError),
    #[error("failed to print the verify report")]
    VerifyOutput(#[source] verify::VerifyOutputError),
}

/// Runs a snapshot subcommand (save, ls, delete, prune, verify).
pub async fn run_snapshot_command(
    command: &Command,
    engine: &ConfigEngine,
    resolved: &Resolved,
) -> Result<Completion, CommandError> {
    let config = &resolved.config;
    let request = build_request(command, engine, resolved);
    if let Some(warning) =
        request::unsent_s3_warning(&request::ClientSide::gather(engine, resolved))
    {
        eprintln!("warning: {warning}");
    }
    let url = server_url(resolved);
    match client_for(config, &url, command) {
        Ok(client) => match client.send(&request).await {
            Ok(reply) => return print_reply(command, config, reply),
            Err(ClientError::Unreachable { url, .. }) => {
                eprintln!(
                    "no snapshot server answers at {url}; running {} directly on this node",
                    verb(command)
                );
            }
            Err(other) => return Err(CommandError::Client(other)),
        },
        // Direct mode is only for when no server runs: one that answers must be asked.
        Err(reason) if answers(&url).await => return Err(CommandError::NoToken { url, reason }),
        Err(reason) => eprintln!("{reason}; running {} directly on this node", verb(command)),
    }
    run_direct(command, config).await
}

/// `--etcd-server` when set anywhere; otherwise this node's server as the config places it
/// (`bind-address`, `supervisor-port`), so one config file serves both server and CLI.
fn server_url(resolved: &Resolved) -> String {
    let config = &resolved.config;
    let set = resolved
        .shown
        .iter()
        .any(|v| v.key == "etcd-server" && v.source != Source::Default);
    if set {
        return config.api.server_url.clone();
    }
    let host = match config.api.bind_address {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_string(),
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", config.api.supervisor_port)
}

/// The API client for the server at `url`, or why there is none (no token to send).
fn client_for(config: &DesiredConfig, url: &str, command: &Command) -> Result<ApiClient, String> {
    let token = client_token(config).map_err(|e| error_chain(&e))?;
    let url = url.to_string();
    // The local CA file only vouches for the local server. A remote one is verified with
    // --etcd-server-ca, or its /cacerts is pinned to the token's CA hash; with neither the
    // client refuses to talk to it.
    let is_local = ["https://127.0.0.1", "https://localhost", "https://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    let local_ca = is_local.then(|| tls::ca_path(&config.tls_dir()));
    let ca_file = config.api.server_ca.clone().or(local_ca);
    Ok(ApiClient {
        url,
        token,
        ca_file,
        // Writers may queue behind a long scheduled save; a listing never should, but with
        // S3 it may take up to one S3 timeout on top (as RKE2's CLI allows).
        timeout: match command {
            Command::List { .. } => {
                Duration::from_secs(120) + config.s3.as_ref().map_or(Duration::ZERO, |s| s.timeout)
            }
            // Drills of every copy of a large database, one at a time.
            Command::Verify { .. } => Duration::from_secs(24 * 3600),
            _ => Duration::from_secs(3600),
        },
    })
}

fn verb(command: &Command) -> &'static str {
    match command {
        Command::Save => "save",
        Command::List { .. } => "ls",
        Command::Delete { .. } => "delete",
        Command::Prune { .. } => "prune",
        Command::Verify { .. } => "verify",
        _ => "command",
    }
}

/// Kubernetes access for a direct-mode operation: only needed for the S3 config Secret and the
/// encryption Secret, and a broken kubeconfig then shows up as that Secret's error.
async fn kube_for_direct(config: &DesiredConfig) -> crate::kube::KubeAccess {
    let wants_secret = config
        .s3
        .as_ref()
        .is_some_and(|s3| s3.config_secret.is_some())
        || config.snapshot.encryption.secret.is_some();
    if !wants_secret {
        return crate::kube::KubeAccess::disabled();
    }
    match crate::kube::KubeAccess::from_config(config).await {
        Ok(access) => access,
        Err(e) => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "no Kubernetes access for the S3 config Secret");
            crate::kube::KubeAccess::disabled()
        }
    }
}

/// `config show`: when the S3 config Secret is in use, its values (redacted where secret) in
/// place of the configured ones, sourced to the Secret. Returns a warning when it is unusable.
pub async fn show_secret_values(resolved: &mut crate::config::Resolved) -> Option<String> {
    let s3 = resolved.config.s3.clone()?;
    let name = s3.config_secret.as_deref()?;
    let access = kube_for_direct(&resolved.config).await;
    match crate::kube::s3_secret::read_s3_settings(&access, name, &s3).await {
        Ok(found) => {
            crate::config::secret::overlay_shown(&mut resolved.shown, &found.shown);
            None
        }
        Err(e) => Some(format!(
            "S3 values below are the configured ones: {}",
            crate::errors::error_chain(&e)
        )),
    }
}

/// Runs the operation in this process (the server is down).
async fn run_direct(command: &Command, config: &DesiredConfig) -> Result<Completion, CommandError> {
    let ops = Operations::new(Arc::new(Metrics::new())).with_kube(kube_for_direct(config).await);
    let direct = |source| CommandError::Direct {
        operation: verb(command),
        source,
    };
    let planned = match command {
        Command::Save => PlannedOperation::Save,
        Command::List { .. } => PlannedOperation::List,
        Command::Delete { names } => PlannedOperation::Delete {
            names: names.clone(),
        },
        Command::Prune { dry_run, .. } => PlannedOperation::Prune { dry_run: *dry_run },
        Command::Verify { names, .. } => PlannedOperation::Verify {
            names: names.clone(),
        },
        _ => return Ok(Completion::Success),
    };
    let reply = ops.run(config, &planned).await.map_err(direct)?.into();
    print_reply(command, config, reply)
}

/// Prints a reply the way RKE2's CLI does.
fn print_reply(
    command: &Command,
    config: &DesiredConfig,
    reply: ClientReply,
) -> Result<Completion, CommandError> {
    match reply {
        ClientReply::List(mut list) => {
            output::sort_items(&mut list);
            let failed = std::mem::take(&mut list.failed);
            let format = match command {
                Command::List { output } => *output,
                _ => OutputFormat::Table,
            };
            let text = match format {
                OutputFormat::Table => output::table(&list),
                OutputFormat::Wide => output::wide_table(&list),
                OutputFormat::Json => output::json(&list).map_err(CommandError::Output)?,
                OutputFormat::Yaml => output::yaml(&list).map_err(CommandError::Output)?,
            };
            print!("{text}");
            if matches!(format, OutputFormat::Table | OutputFormat::Wide) {
                // The table keeps RKE2's columns for scripts; what is not ready is said aside.
                for line in output::not_ready_notes(&list) {
                    eprintln!("{line}");
                }
            }
            for FailedItem { name, message } in &failed {
                eprintln!("failed: {name}: {message}");
            }
            if let Some(warning) = freshness_warning(config, &list) {
                eprintln!("{warning}");
            }
            Ok(if failed.is_empty() {
                Completion::Success
            } else {
                Completion::Partial
            })
        }
        ClientReply::Snapshot(response) => {
            if let Command::Verify { output, .. } = command {
                return verify::print(&response, *output).map_err(CommandError::VerifyOutput);
            }
            if let Command::Prune { output, .. } = command
                && let Some(text) =
                    prune_output::render(&response, *output).map_err(CommandError::PruneOutput)?
            {
                print!("{text}");
                for FailedItem { name, message } in &response.failed {
                    eprintln!("failed: {name}: {message}");
                }
                return Ok(completion(&response));
            }
            Ok(print_response(command, &response))
        }
    }
}

/// `ls`'s last line when the newest listed snapshot is older than two schedule periods (see
/// `snapshot::freshness`); nothing when scheduled snapshots are off or nothing is listed.
fn freshness_warning(config: &DesiredConfig, list: &EtcdSnapshotFileList) -> Option<String> {
    use crate::snapshot::freshness::stale_warning;
    let settings = &config.snapshot;
    if settings.disabled {
        return None;
    }
    let newest = list
        .items
        .iter()
        .filter_map(|item| {
            let status = &item.status;
            let created = status.creation_time.as_deref()?;
            let time = chrono::DateTime::parse_from_rfc3339(created).ok()?;
            (status.ready_to_use == Some(true)).then_some(time.timestamp())
        })
        .max()?;
    let now = chrono::Local::now();
    let period = settings.schedule.period(&now);
    stale_warning(newest, period, settings.schedule.spec(), now.timestamp())
}

fn print_response(command: &Command, response: &SnapshotResponse) -> Completion {
    let dry_run = matches!(command, Command::Prune { dry_run: true, .. });
    for name in &response.created {
        println!("Snapshot {name} saved.");
    }
    if dry_run && !response.verdicts.is_empty() {
        // Every snapshot's verdict; an older server without verdicts gets the lines below.
        for line in prune_output::verdict_lines(response) {
            println!("{line}");
        }
        for FailedItem { name, message } in &response.failed {
            eprintln!("failed: {name}: {message}");
        }
        return completion(response);
    }
    for name in &response.deleted {
        let copies: Vec<&RemovedCopy> = response
            .removed
            .iter()
            .filter(|r| &r.name == name)
            .collect();
        if !dry_run {
            println!("Snapshot {name} deleted.");
            // A local-only delete prints exactly RKE2's line; with S3 each copy is named.
            if copies.iter().any(|c| c.location.starts_with("s3://")) {
                for copy in &copies {
                    println!("  removed {}", copy.location);
                }
            }
            // A delta chain is ours alone: said only when there was one.
            for line in copies
                .iter()
                .filter_map(|c| prune_output::chain_line(c, false))
            {
                println!("{line}");
            }
        } else if copies.is_empty() {
            println!("Snapshot {name} would be deleted.");
        } else {
            for copy in copies {
                match &copy.reason {
                    Some(why) => println!(
                        "Snapshot {name} would be deleted from {}: {why}.",
                        copy.location
                    ),
                    None => println!("Snapshot {name} would be deleted from {}.", copy.location),
                }
            }
        }
    }
    if let Command::Delete { names } = command {
        for name in names.iter().filter(|n| {
            !response.deleted.contains(n) && !failed_names(&response.failed).contains(n)
        }) {
            eprintln!("Snapshot {name} not found.");
        }
    }
    for FailedItem { name, message } in &response.failed {
        eprintln!("failed: {name}: {message}");
    }
    completion(response)
}

fn completion(response: &SnapshotResponse) -> Completion {
    if response.failed.is_empty() {
        Completion::Success
    } else {
        Completion::Partial
    }
}

fn failed_names(failed: &[FailedItem]) -> Vec<&String> {
    failed.iter().map(|f| &f.name).collect()
}
