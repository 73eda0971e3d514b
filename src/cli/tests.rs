//! Unit tests of command-line parsing.

use super::*;
use crate::config::{RawValue, Source};

fn parse_ok(args: &[&str]) -> Invocation {
    parse(args.iter().copied()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn flag(inv: &Invocation, key: &str) -> Option<(RawValue, Source)> {
    inv.flags
        .get(key)
        .map(|s| (s.value.clone(), s.source.clone()))
}

fn string(v: &str) -> RawValue {
    RawValue::String(v.into())
}

#[test]
fn command_tree_is_consistent() {
    build::command().debug_assert();
}

#[test]
fn subcommands_map_to_commands() {
    assert_eq!(parse_ok(&["es", "server"]).command, Command::Server);
    assert_eq!(parse_ok(&["es", "save"]).command, Command::Save);
    assert_eq!(parse_ok(&["es", "crd"]).command, Command::Crd);
    for ls in ["ls", "list", "l"] {
        assert_eq!(
            parse_ok(&["es", ls]).command,
            Command::List {
                output: OutputFormat::Table
            }
        );
    }
    assert_eq!(
        parse_ok(&["es", "ls", "-o", "json"]).command,
        Command::List {
            output: OutputFormat::Json
        }
    );
    assert_eq!(
        parse_ok(&["es", "list", "--output=yaml"]).command,
        Command::List {
            output: OutputFormat::Yaml
        }
    );
    assert_eq!(
        parse_ok(&["es", "ls", "--deltas", "-o", "json"]).command,
        Command::ListDeltas {
            output: OutputFormat::Json
        }
    );
    assert_eq!(
        parse_ok(&["es", "delete", "a", "b"]).command,
        Command::Delete {
            names: vec!["a".into(), "b".into()]
        }
    );
    assert_eq!(
        parse_ok(&["es", "prune", "--dry-run"]).command,
        Command::Prune {
            dry_run: true,
            output: OutputFormat::Table
        }
    );
    assert_eq!(
        parse_ok(&["es", "prune", "-o", "json"]).command,
        Command::Prune {
            dry_run: false,
            output: OutputFormat::Json
        }
    );
    assert_eq!(
        parse_ok(&["es", "verify"]).command,
        Command::Verify {
            names: vec![],
            output: OutputFormat::Table
        }
    );
    assert_eq!(
        parse_ok(&["es", "verify", "a", "b", "-o", "yaml"]).command,
        Command::Verify {
            names: vec!["a".into(), "b".into()],
            output: OutputFormat::Yaml
        }
    );
    assert_eq!(
        parse_ok(&["es", "config", "show", "--sources"]).command,
        Command::ConfigShow { sources: true }
    );
    assert_eq!(
        parse_ok(&["es", "config", "validate"]).command,
        Command::ConfigValidate
    );
}

#[test]
fn usage_errors() {
    let err = parse(["es", "ls", "-o", "xml"]).expect_err("bad format");
    assert_eq!(err.kind(), ErrorKind::InvalidValue);
    let err = parse(["es", "delete"]).expect_err("no names");
    assert!(
        err.to_string().contains("no snapshots given for removal"),
        "{err}"
    );
    assert!(parse(["es", "save", "extra"]).is_err());
    assert!(parse(["es"]).is_err());
    assert!(
        parse(["es", "server", "--name", "x"]).is_err(),
        "client key on server"
    );
    assert!(
        parse(["es", "save", "--token", "x"]).is_err(),
        "server key on save"
    );
    let err = parse(["es", "--etcd-token", "x", "server"]).expect_err("client key before server");
    assert!(err.to_string().contains("--etcd-token"), "{err}");
}

#[test]
fn restore_takes_a_snapshot_a_point_in_time_or_both() {
    let inv = parse_ok(&[
        "es",
        "restore",
        "/s/snap",
        "--cluster-reset-restore-to",
        "42",
    ]);
    assert_eq!(
        inv.command,
        Command::Restore(RestoreAction::Snapshot("/s/snap".into()))
    );
    assert_eq!(
        flag(&inv, "cluster-reset-restore-to").map(|f| f.0),
        Some(string("42"))
    );
    let inv = parse_ok(&["es", "restore", "--cluster-reset-restore-to=latest"]);
    assert_eq!(inv.command, Command::Restore(RestoreAction::PointInTime));
    let err = parse(["es", "restore"]).expect_err("nothing to restore");
    assert!(
        err.to_string().contains("--cluster-reset-restore-to alone"),
        "{err}"
    );
}

#[test]
fn client_flags_work_before_and_after_the_subcommand() {
    let inv = parse_ok(&[
        "es",
        "--snapshot-compress",
        "--etcd-server=https://h:9345",
        "save",
        "--name",
        "X",
    ]);
    assert_eq!(inv.command, Command::Save);
    assert_eq!(
        flag(&inv, "etcd-snapshot-compress"),
        Some((string("true"), Source::Flag("--snapshot-compress".into())))
    );
    assert_eq!(
        flag(&inv, "etcd-server"),
        Some((
            string("https://h:9345"),
            Source::Flag("--etcd-server".into())
        ))
    );
    assert_eq!(
        flag(&inv, "name"),
        Some((string("X"), Source::Flag("--name".into())))
    );
    // After the subcommand overrides before it.
    let inv = parse_ok(&["es", "--name", "before", "save", "--name", "after"]);
    assert_eq!(flag(&inv, "name").map(|f| f.0), Some(string("after")));
    // Global keys on either side too.
    let inv = parse_ok(&["es", "ls", "-d", "/srv", "--debug"]);
    assert_eq!(flag(&inv, "data-dir").map(|f| f.0), Some(string("/srv")));
    assert_eq!(flag(&inv, "debug").map(|f| f.0), Some(string("true")));
    let inv = parse_ok(&["es", "-d", "/srv", "server"]);
    assert_eq!(flag(&inv, "data-dir").map(|f| f.0), Some(string("/srv")));
}

#[test]
fn short_t_depends_on_the_subcommand() {
    let inv = parse_ok(&["es", "server", "-t", "server-secret"]);
    assert!(matches!(
        flag(&inv, "token"),
        Some((RawValue::Secret(_), _))
    ));
    assert!(flag(&inv, "etcd-token").is_none());
    let inv = parse_ok(&["es", "save", "-t", "client-secret"]);
    assert!(matches!(
        flag(&inv, "etcd-token"),
        Some((RawValue::Secret(_), _))
    ));
    assert!(flag(&inv, "token").is_none());
    assert!(!format!("{inv:?}").contains("client-secret"));
}

#[test]
fn rke2_spelling_is_an_alias() {
    let inv = parse_ok(&["es", "etcd-snapshot", "save", "--name", "n1"]);
    assert_eq!(inv.command, Command::Save);
    assert_eq!(flag(&inv, "name").map(|f| f.0), Some(string("n1")));
    let inv = parse_ok(&["es", "etcd-snapshot", "--dir=/b", "ls", "-o", "yaml"]);
    assert_eq!(
        inv.command,
        Command::List {
            output: OutputFormat::Yaml
        }
    );
    assert_eq!(
        flag(&inv, "etcd-snapshot-dir"),
        Some((string("/b"), Source::Flag("--dir".into())))
    );
    let inv = parse_ok(&["es", "etcd-snapshot", "delete", "s1"]);
    assert_eq!(
        inv.command,
        Command::Delete {
            names: vec!["s1".into()]
        }
    );
}

#[test]
fn bool_flags_take_an_optional_value() {
    let inv = parse_ok(&["es", "save", "--etcd-snapshot-compress=false"]);
    assert_eq!(
        flag(&inv, "etcd-snapshot-compress").map(|f| f.0),
        Some(string("false"))
    );
    let inv = parse_ok(&["es", "--debug", "save"]);
    assert_eq!(inv.command, Command::Save);
    assert_eq!(flag(&inv, "debug").map(|f| f.0), Some(string("true")));
}

#[test]
fn aliases_are_recorded_as_typed_and_the_last_spelling_wins() {
    let inv = parse_ok(&["es", "prune", "--snapshot-retention", "2"]);
    assert_eq!(
        flag(&inv, "etcd-snapshot-retention"),
        Some((string("2"), Source::Flag("--snapshot-retention".into())))
    );
    let inv = parse_ok(&["es", "save", "--dir", "/a", "--etcd-snapshot-dir", "/b"]);
    assert_eq!(
        flag(&inv, "etcd-snapshot-dir"),
        Some((string("/b"), Source::Flag("--etcd-snapshot-dir".into())))
    );
    let inv = parse_ok(&["es", "save", "--etcd-snapshot-dir", "/b", "--dir", "/a"]);
    assert_eq!(
        flag(&inv, "etcd-snapshot-dir").map(|f| f.0),
        Some(string("/a"))
    );
    // Negative numbers reach `resolve`, which reports them with their source.
    let inv = parse_ok(&["es", "prune", "--snapshot-retention", "-1"]);
    assert_eq!(
        flag(&inv, "etcd-snapshot-retention").map(|f| f.0),
        Some(string("-1"))
    );
}

#[test]
fn lists_and_config_flags() {
    let inv = parse_ok(&[
        "es",
        "-c",
        "/x.yaml",
        "server",
        "--etcd-endpoints",
        "http://a:2379,http://b:2379",
        "--etcd-endpoints=http://c:2379",
    ]);
    assert_eq!(flag(&inv, "config").map(|f| f.0), Some(string("/x.yaml")));
    assert_eq!(
        flag(&inv, "etcd-endpoints").map(|f| f.0),
        Some(RawValue::List(vec![
            "http://a:2379,http://b:2379".into(),
            "http://c:2379".into()
        ]))
    );
    let inv = parse_ok(&[
        "es",
        "config",
        "show",
        "--token",
        "x",
        "--etcd-server",
        "https://h:1",
    ]);
    assert!(inv.flags.get("token").is_some() && inv.flags.get("etcd-server").is_some());
}

#[test]
fn help_documents_exit_codes_and_version() {
    let help = build::command().render_long_help().to_string();
    for code in [
        "0  success",
        "1  failure",
        "2  usage or configuration error",
        "3  partial failure",
    ] {
        assert!(help.contains(code), "{help}");
    }
    let err = parse(["es", "--version"]).expect_err("version exits");
    assert_eq!(err.kind(), ErrorKind::DisplayVersion);
}
