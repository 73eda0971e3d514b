//! Command-line parsing: clap commands built from the config key table, RKE2 aliases, and
//! turning flags into a config `Layer`.
//!
//! Parses only: it never evaluates the configuration, reads files or runs anything. Config flags
//! are not validated here beyond their syntax, so that every bad value is reported together by
//! `config::resolve` with its source.

pub mod build;
pub mod flags;
pub mod generate;

use clap::ArgMatches;
use clap::error::ErrorKind;

use crate::config::Layer;
use crate::config::keys::Scope;
use crate::config::restore_to::RESTORE_TO;

pub use build::{EXIT_CODES, command};

/// `ls -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    /// The table plus an `Encrypted` column.
    Wide,
    Json,
    Yaml,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Server,
    Save,
    List {
        output: OutputFormat,
    },
    /// `ls --deltas`: this node's delta chains and segments, and the bucket's with S3 on.
    ListDeltas {
        output: OutputFormat,
    },
    Delete {
        names: Vec<String>,
    },
    Prune {
        dry_run: bool,
        /// `-o json|yaml`: the whole reply, every snapshot's retention verdict included.
        output: OutputFormat,
    },
    ConfigShow {
        sources: bool,
    },
    ConfigValidate,
    /// `restore`: the cluster-reset path as its own command.
    Restore(RestoreAction),
    /// `crd`: print the `ETCDSnapshotFile` CustomResourceDefinition.
    Crd,
    /// `rekey [--dry-run]`: re-encrypt local snapshots to the current recipients.
    Rekey {
        dry_run: bool,
    },
    /// `completions <shell>`: print a shell completion script.
    Completions(generate::Shell),
    /// `man [--out-dir DIR]`: print the main man page, or write every page into DIR.
    Man {
        dir: Option<std::path::PathBuf>,
    },
    /// `verify [names]`: restore drills of every copy of the named snapshots (all when none).
    Verify {
        names: Vec<String>,
        output: OutputFormat,
    },
    /// `inspect`: check a snapshot (a name, a path or an S3 object name) and report on it.
    Inspect {
        snapshot: String,
        output: OutputFormat,
    },
}

/// What `etcd-snapshot restore` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreAction {
    /// Restore this snapshot (a path, or an S3 object name with etcd-s3 on) and reset
    /// membership to this single member.
    Snapshot(String),
    /// `--cluster-reset-restore-to` without a snapshot: restore the newest local full snapshot
    /// before that point and replay its delta chain up to it.
    PointInTime,
    /// Put back the data dir (and certificates) the last restore moved aside.
    Rollback,
    /// List the `etcd-old-*` and `tls-*` backups.
    ListBackups,
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    /// Every config key set on the command line, sourced as flags.
    pub flags: Layer,
    /// `--progress`.
    pub progress: crate::telemetry::progress::ProgressMode,
}

/// Parses argv (including argv[0]). `etcd-snapshot etcd-snapshot <sub>` is accepted.
pub fn parse<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = build::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    let mut levels: Vec<&ArgMatches> = vec![&matches];
    let mut path: Vec<&str> = Vec::new();
    let mut current = &matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name);
        levels.push(sub);
        current = sub;
    }
    let command = command_for(&mut cmd, &path, &matches, current)?;
    let progress = current
        .get_one::<String>("progress")
        .and_then(|mode| crate::telemetry::progress::ProgressMode::parse(mode))
        .unwrap_or_default();
    Ok(Invocation {
        command,
        flags: flags::layer_from_matches(&levels),
        progress,
    })
}

/// The command a subcommand path names (`etcd-snapshot etcd-snapshot` prefix dropped).
fn command_for(
    cmd: &mut clap::Command,
    path: &[&str],
    root: &ArgMatches,
    leaf: &ArgMatches,
) -> Result<Command, clap::Error> {
    let route: Vec<&str> = path
        .iter()
        .copied()
        .skip_while(|p| *p == "etcd-snapshot")
        .collect();
    Ok(match route.as_slice() {
        ["server"] => {
            reject_client_flags_before_server(cmd, root)?;
            Command::Server
        }
        ["save"] => Command::Save,
        ["ls"] if leaf.get_flag("deltas") => Command::ListDeltas {
            output: output_format(leaf),
        },
        ["ls"] => Command::List {
            output: output_format(leaf),
        },
        ["delete"] => {
            let names: Vec<String> = leaf
                .get_many::<String>("names")
                .map(|n| n.cloned().collect())
                .unwrap_or_default();
            if names.is_empty() {
                return Err(subcommand_at(cmd, path).error(
                    ErrorKind::MissingRequiredArgument,
                    "no snapshots given for removal",
                ));
            }
            Command::Delete { names }
        }
        ["verify"] => Command::Verify {
            names: leaf
                .get_many::<String>("names")
                .map(|n| n.cloned().collect())
                .unwrap_or_default(),
            output: output_format(leaf),
        },
        ["prune"] => Command::Prune {
            dry_run: leaf.get_flag("dry-run"),
            output: output_format(leaf),
        },
        ["config", "show"] => Command::ConfigShow {
            sources: leaf.get_flag("sources"),
        },
        ["config", "validate"] => Command::ConfigValidate,
        ["crd"] => Command::Crd,
        ["rekey"] => Command::Rekey {
            dry_run: leaf.get_flag("dry-run"),
        },
        ["completions"] => Command::Completions(
            leaf.get_one::<String>(generate::SHELL_ARG)
                .and_then(|name| generate::Shell::from_name(name))
                .expect("clap requires a shell from Shell::NAMES"),
        ),
        ["man"] => Command::Man {
            dir: leaf
                .get_one::<std::path::PathBuf>(generate::DIR_ARG)
                .cloned(),
        },
        ["inspect"] => Command::Inspect {
            snapshot: leaf
                .get_one::<String>("snapshot")
                .cloned()
                .unwrap_or_default(),
            output: output_format(leaf),
        },
        ["restore"] => {
            let snapshot = leaf.get_one::<String>("snapshot").cloned();
            match (
                snapshot,
                leaf.get_flag("rollback"),
                leaf.get_flag("list-backups"),
            ) {
                (Some(path), false, false) => Command::Restore(RestoreAction::Snapshot(path)),
                (None, false, false) if leaf.get_one::<String>(RESTORE_TO).is_some() => {
                    Command::Restore(RestoreAction::PointInTime)
                }
                (None, true, false) => Command::Restore(RestoreAction::Rollback),
                (None, false, true) => Command::Restore(RestoreAction::ListBackups),
                _ => {
                    return Err(subcommand_at(cmd, path).error(
                        ErrorKind::ArgumentConflict,
                        "give exactly one of: a snapshot to restore (or --cluster-reset-restore-to alone), --rollback, --list-backups",
                    ));
                }
            }
        }
        other => {
            return Err(cmd.error(
                ErrorKind::InvalidSubcommand,
                format!("unknown command {:?}", other.join(" ")),
            ));
        }
    })
}

/// `-o/--output` of `ls`, `prune`, `verify` and `inspect`.
fn output_format(leaf: &ArgMatches) -> OutputFormat {
    match leaf.get_one::<String>("output").map(String::as_str) {
        Some("json") => OutputFormat::Json,
        Some("yaml") => OutputFormat::Yaml,
        Some("wide") => OutputFormat::Wide,
        _ => OutputFormat::Table,
    }
}

/// Client flags are accepted before the subcommand name, but they mean nothing to `server`
/// (and `-t` there is `--token`, not `--etcd-token`), so say so instead of ignoring them.
fn reject_client_flags_before_server(
    cmd: &mut clap::Command,
    root: &ArgMatches,
) -> Result<(), clap::Error> {
    let client: Vec<String> = flags::typed_keys(root)
        .into_iter()
        .filter(|(spec, _)| spec.scope == Scope::Client)
        .map(|(spec, _)| format!("--{}", spec.name))
        .collect();
    if client.is_empty() {
        return Ok(());
    }
    Err(cmd.error(
        ErrorKind::ArgumentConflict,
        format!(
            "{} given before `server`: client options apply only to save, ls, delete, prune and verify",
            client.join(", ")
        ),
    ))
}

/// The (already built) subcommand at `path`, so an error shows that subcommand's usage.
fn subcommand_at(cmd: &clap::Command, path: &[&str]) -> clap::Command {
    let mut current = cmd;
    for name in path {
        match current.find_subcommand(name) {
            Some(sub) => current = sub,
            None => break,
        }
    }
    current.clone()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
