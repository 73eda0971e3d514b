//! The clap command tree, built from the config key table.
//!
//! Every config flag comes from `config::keys::KEYS`; this file adds only what is not a setting
//! (subcommands, `-o`, `--dry-run`, `--sources`, snapshot names). Parsing matches into a layer is
//! `flags.rs`'s job.

use clap::{Arg, ArgAction, Command};

use crate::config::keys::{self, DefaultValue, KeySpec, Kind, Scope};

/// Exit codes, documented in `--help`; `main.rs` maps errors onto them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure
  2  usage or configuration error
  3  partial failure: the operation finished but some part failed (e.g. one of several deletes)";

/// The whole command tree.
pub fn command() -> Command {
    let root = Command::new("etcd-snapshot")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Scheduled, verified etcd snapshots with an RKE2-compatible CLI")
        .after_help(EXIT_CODES)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .args_override_self(true);
    let root = with_keys(root, Scope::Global, true).arg(progress_arg());
    // Client keys before the subcommand name, as in `etcd-snapshot --dir=/x save`.
    let root = with_keys(root, Scope::Client, false);
    root.subcommand(
        with_keys(Command::new("server"), Scope::Server, false).about(
            "Run the snapshot server: scheduled snapshots, the snapshot API and the embedded etcd",
        ),
    )
    .subcommands(client_subcommands())
    .subcommand(restore_command())
    .subcommand(rekey_command())
    .subcommand(inspect_command())
    .subcommand(config_command())
    .subcommand(
        Command::new("crd").about(
            "Print the ETCDSnapshotFile CustomResourceDefinition as YAML (for kubectl apply)",
        ),
    )
    .subcommand(
        with_keys(Command::new("etcd-snapshot"), Scope::Client, false)
            .about("RKE2-style spelling: `etcd-snapshot etcd-snapshot save` = `etcd-snapshot save`")
            .hide(true)
            .subcommand_required(true)
            .arg_required_else_help(true)
            .subcommands(client_subcommands()),
    )
    .subcommands(super::generate::subcommands())
}

/// `--progress`: how a run shows the progress of the bytes it moves itself (not a setting: it
/// belongs to one run's terminal, never to a config file).
fn progress_arg() -> Arg {
    Arg::new("progress")
        .long("progress")
        .value_name("MODE")
        .help("Progress of save, upload, download, restore and rekey on stderr: auto (a bar with bytes, rate and ETA when stderr is a terminal, else nothing), tty (the bar even when it is not), json (one JSON event per line: start, progress, finish; schema in the operator guide), none")
        .value_parser(crate::telemetry::progress::ProgressMode::VALUES)
        .default_value("auto")
        .global(true)
        .help_heading("Global options")
}

fn client_subcommands() -> Vec<Command> {
    let save = Command::new("save").about("Trigger an on-demand etcd snapshot");
    let output = Arg::new("output")
        .short('o')
        .long("output")
        .value_name("FORMAT")
        .help("Output format; wide adds an Encrypted column (age or no), a Verified column (the last restore drill: passed@TIME, failed@TIME or -) and a RestorableTo column (how far the delta chain reaches: TIME, revision:N or -) to the table")
        .value_parser(["table", "wide", "json", "yaml"])
        .default_value("table");
    let ls = Command::new("ls")
        .about("List snapshots")
        .visible_aliases(["list", "l"])
        .arg(output.clone())
        .arg(
            Arg::new("deltas")
                .long("deltas")
                .help("List delta chains instead (etcd-snapshot-delta): this node's local ones and, with etcd-s3, every chain in the bucket; per full snapshot, where the chain is (file:// or s3://), how far its segments reach without a hole; -o json|yaml lists every segment. Reads files and the bucket directly, never the server")
                .action(ArgAction::SetTrue),
        );
    let delete = Command::new("delete")
        .about("Delete given snapshot(s)")
        .arg(
            Arg::new("names")
                .value_name("SNAPSHOT")
                .help("Snapshot file names, as `ls` prints them")
                .num_args(0..)
                .action(ArgAction::Append),
        );
    let prune = Command::new("prune")
        .about("Remove snapshots the retention policy does not keep (etcd-snapshot-retention and etcd-snapshot-retention-*, etcd-s3-retention-* in S3)")
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .help("Print every snapshot's verdict (kept or removed, and the deciding rule), and the delta chain each removed local snapshot takes with it, without deleting anything")
                .action(ArgAction::SetTrue),
        )
        .arg(output.help("Output format (json and yaml carry every snapshot's verdict)"));
    let verify = Command::new("verify")
        .about(
            "Restore drill: restore each copy of the given snapshots (without names, this \
             node's local copies and the S3 objects it uploaded) into a throwaway low-priority \
             etcd member and check it serves what was saved; records the verdict. Exit 0 all \
             passed, 1 any failed or could not be verified, 2 usage error or not found",
        )
        .arg(
            Arg::new("names")
                .value_name("SNAPSHOT")
                .help("Snapshot file names, as `ls` prints them; none: this node's copies")
                .num_args(0..)
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("FORMAT")
                .help("Output format")
                .value_parser(["table", "json", "yaml"])
                .default_value("table"),
        );
    [save, ls, delete, prune, verify]
        .into_iter()
        .map(|c| with_keys(c, Scope::Client, false))
        .collect()
}

/// `restore`: the server's cluster-reset path as a command of its own, with the server's keys.
fn restore_command() -> Command {
    let cmd = Command::new("restore")
        .about(
            "Restore a snapshot into the embedded etcd's data dir and reset it to a single member \
             (the server must be stopped); same as `server --cluster-reset \
             --cluster-reset-restore-path=SNAPSHOT`. With --cluster-reset-restore-to, the \
             snapshot's delta chain is replayed up to that point first, and SNAPSHOT may be left \
             out (the newest local full snapshot before the point is used)",
        )
        .arg(Arg::new("snapshot").value_name("SNAPSHOT").help(
            "A snapshot file (raw, .zip, or age-encrypted .age / .zip.age, which needs \
                     --etcd-snapshot-encryption-identity-file), or an S3 object name when \
                     etcd-s3 is on",
        ))
        .arg(
            Arg::new("rollback")
                .long("rollback")
                .help(
                    "Undo the last restore: put back the etcd data and certificates it moved aside",
                )
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("list-backups")
                .long("list-backups")
                .help("List the etcd-old-* and tls-* backups restores left")
                .action(ArgAction::SetTrue),
        );
    with_keys(cmd, Scope::Server, false)
}

/// `rekey`: re-encrypt the local snapshot dir's copies to the current recipients.
fn rekey_command() -> Command {
    let cmd = Command::new("rekey")
        .about(
            "Re-encrypt this node's local snapshots and, with etcd-s3 on, the S3 copies to the \
             current etcd-snapshot-encryption recipients (needs the old keys' identities), and \
             encrypt plaintext ones; crash-safe and resumable, one report line per copy",
        )
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .help("Print what each copy would get without changing anything")
                .action(ArgAction::SetTrue),
        );
    with_keys(cmd, Scope::Client, false)
}

/// `inspect`: a snapshot argument, `-o`, and the token whose bootstrap data it checks.
fn inspect_command() -> Command {
    let cmd = Command::new("inspect")
        .about(
            "Check a snapshot without restoring it (sha256 trailer, bbolt structure) and report \
             its revision, key counts, resources, members and bootstrap data; an encrypted one \
             is decrypted on the fly with --etcd-snapshot-encryption-identity-file. Exit 0 \
             healthy, 1 damaged or unreadable, 2 usage error, not found, or no identity opens it",
        )
        .arg(
            Arg::new("snapshot")
                .value_name("SNAPSHOT")
                .required(true)
                .help(
                    "A path (anything with a '/'), a snapshot name in the snapshot dir, or an \
                     S3 object name when etcd-s3 is on; plain or .zip, either possibly .age",
                ),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("FORMAT")
                .help("Output format")
                .value_parser(["table", "json", "yaml"])
                .default_value("table"),
        );
    let token: Vec<&'static KeySpec> = ["token", "token-file"]
        .iter()
        .filter_map(|name| keys::get(name))
        .collect();
    add_args(cmd, &token, false, "Bootstrap check (the server token)")
}

fn config_command() -> Command {
    let leaf = |c: Command| {
        let all: Vec<&'static KeySpec> = keys::in_scope(Scope::Server)
            .chain(keys::in_scope(Scope::Client))
            .collect();
        add_args(c, &all, false, "Server and client options")
    };
    Command::new("config")
        .about("Inspect the effective configuration")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            leaf(Command::new("show"))
                .about("Print every setting's effective value")
                .arg(
                    Arg::new("sources")
                        .long("sources")
                        .help("Also print where each value came from")
                        .action(ArgAction::SetTrue),
                ),
        )
        .subcommand(
            leaf(Command::new("validate"))
                .about("Check the configuration; list warnings and every problem"),
        )
}

fn with_keys(cmd: Command, scope: Scope, global: bool) -> Command {
    let specs: Vec<&'static KeySpec> = keys::in_scope(scope).collect();
    let heading = match scope {
        Scope::Global => "Global options",
        Scope::Server => "Server options",
        Scope::Client => "Client options",
    };
    add_args(cmd, &specs, global, heading)
}

/// Adds the flags of `specs`; a short flag two of them share is left off both.
fn add_args(
    mut cmd: Command,
    specs: &[&'static KeySpec],
    global: bool,
    heading: &'static str,
) -> Command {
    for spec in specs {
        let shared_short = spec
            .short
            .is_some_and(|s| specs.iter().filter(|o| o.short == Some(s)).count() > 1);
        for arg in key_args(spec, !shared_short) {
            cmd = cmd.arg(arg.global(global).help_heading(heading));
        }
    }
    cmd
}

/// The canonical flag plus one hidden flag per alias, so the spelling typed is known.
fn key_args(spec: &'static KeySpec, with_short: bool) -> Vec<Arg> {
    let canonical = value_arg(spec, spec.name)
        .help(short_help(spec))
        .long_help(long_help(spec));
    let canonical = match spec.short {
        Some(s) if with_short => canonical.short(s),
        _ => canonical,
    };
    // An alias flag's id is the alias itself: names are unique across the key table.
    let aliases = spec
        .aliases
        .iter()
        .map(|alias| value_arg(spec, alias).hide(true));
    std::iter::once(canonical).chain(aliases).collect()
}

fn value_arg(spec: &KeySpec, long: &'static str) -> Arg {
    let arg = Arg::new(long)
        .long(long)
        .value_name(spec.kind.placeholder())
        .value_parser(clap::value_parser!(String));
    match spec.kind {
        // `--x` alone is true; `--x=false` overrides a file's true. `=` is required so that
        // `--x save` does not read `save` as the value.
        Kind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .action(ArgAction::Set),
        k if k.is_list() => arg.action(ArgAction::Append),
        // Negative numbers reach `resolve`, which explains what is allowed.
        Kind::Int | Kind::Port => arg.allow_negative_numbers(true).action(ArgAction::Set),
        _ => arg.action(ArgAction::Set),
    }
}

fn short_help(spec: &KeySpec) -> String {
    let mut help = spec.help.to_string();
    if let Some(default) = default_text(spec) {
        help.push_str(&format!(" [default: {default}]"));
    }
    if !spec.aliases.is_empty() {
        let names: Vec<String> = spec.aliases.iter().map(|a| format!("--{a}")).collect();
        help.push_str(&format!(" [aliases: {}]", names.join(", ")));
    }
    help
}

fn long_help(spec: &KeySpec) -> String {
    let mut help = short_help(spec);
    help.push_str(&format!(" [env: {}]", spec.env_var()));
    if spec.in_file {
        help.push_str(&format!(" [config key: {}]", spec.name));
    }
    help
}

fn default_text(spec: &KeySpec) -> Option<String> {
    match spec.default {
        DefaultValue::None => None,
        DefaultValue::Value(v) => Some(v.to_string()),
        DefaultValue::UnderDataDir(rel) => Some(format!("<data-dir>/{rel}")),
        DefaultValue::HostName => Some("the host name".into()),
    }
}
