//! The environment a child process gets: cleared, then only the allow-listed variables.
//!
//! An allow-list, not a deny-list: a secret under a name we did not think of (a custom
//! `ETCD_SNAPSHOT_*`, a cloud SDK variable, a CI token) never passes. Nothing our children need
//! comes from the environment; what they are told is on their command line, and the callers
//! add the few variables a tool needs (`ETCDCTL_API=3`) explicitly after this.

use std::ffi::{OsStr, OsString};

use tokio::process::Command;

/// What a child inherits from us: where to find programs, locale and time zone for its
/// messages, Go runtime limits an operator may set for etcd, and the switch etcd needs to run
/// on an architecture it calls unsupported. None of these carries a credential.
pub const INHERITED: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "GOMAXPROCS",
    "GOMEMLIMIT",
    "ETCD_UNSUPPORTED_ARCH",
];

/// The subset of `vars` a child inherits (pure).
pub fn inherited(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| INHERITED.iter().any(|allowed| name == allowed))
        .collect()
}

/// A `Command` for `program` with a cleared environment plus `INHERITED` from ours. Every
/// child process of this crate is built here.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env_clear().envs(inherited(std::env::vars_os()));
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (OsString, OsString) {
        (name.into(), value.into())
    }

    #[test]
    fn only_allow_listed_names_pass() {
        let vars = vec![
            pair("PATH", "/usr/bin:/bin"),
            pair("ETCD_SNAPSHOT_TOKEN", "K10abc::server:hunter2"),
            pair("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            pair("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            pair("AWS_SESSION_TOKEN", "session"),
            pair("ETCD_SNAPSHOT_ETCD_S3_SECRET_KEY", "s3secret"),
            pair("HOME", "/root"),
            pair("TZ", "UTC"),
            pair("path", "lowercase is another variable"),
        ];
        assert_eq!(
            inherited(vars),
            vec![pair("PATH", "/usr/bin:/bin"), pair("TZ", "UTC")]
        );
    }

    #[tokio::test]
    async fn a_spawned_child_sees_only_allow_listed_variables() {
        // Whatever this test process inherited (CI tokens, cargo's variables), `env` run as
        // our child prints only allow-listed names.
        let out = command("env").output().await.expect("run env");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for line in text.lines() {
            let name = line.split('=').next().unwrap_or_default();
            assert!(INHERITED.contains(&name), "child inherited {line:?}");
        }
        let dropped = std::env::vars_os()
            .filter(|(name, _)| !INHERITED.iter().any(|allowed| name == allowed))
            .count();
        assert!(
            dropped > 0,
            "the test process has variables a child must not see"
        );
    }

    /// Every child is spawned through `command`: no other non-test code names a process
    /// `Command` (std's or tokio's), so a new call site cannot forget to clear the environment.
    #[test]
    fn no_other_code_builds_a_process_command() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = path.to_string_lossy();
                if !name.ends_with(".rs")
                    || name.ends_with("_tests.rs")
                    || path.ends_with("child/env.rs")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Test modules may run tools directly (they are not the product's children).
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (n, line) in code.lines().enumerate() {
                    let names_command = line.contains("process::Command")
                        || (line.contains("process::{") && line.contains("Command"));
                    if names_command {
                        offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "use crate::child::command: {offenders:#?}"
        );
    }
}
