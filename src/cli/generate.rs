//! Shell completions and man pages, generated from the same clap tree the binary parses with,
//! so they can never list a flag or subcommand the binary does not have.
//!
//! `etcd-snapshot completions <bash|zsh|fish>` prints a completion script; `etcd-snapshot man`
//! prints the main page, and `man --out-dir DIR` writes one page per visible command
//! (`etcd-snapshot.1`, `etcd-snapshot-save.1`, `etcd-snapshot-config-show.1`, ...), the set the
//! main page's COMMANDS section refers to. Rendering is pure (bytes in memory); only
//! [`write_man_pages`] touches the disk, one crash-safe write per page.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

use crate::fsutil;

/// The shells `completions` supports: the ones whose completion directories packages ship to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The names `completions` accepts, in the order help lists them.
    pub const NAMES: [&'static str; 3] = ["bash", "zsh", "fish"];

    /// The shell `name` (one of [`Shell::NAMES`]) means.
    pub fn from_name(name: &str) -> Option<Shell> {
        match name {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            _ => None,
        }
    }

    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("failed to write the {what} to standard output")]
    Stdout {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create the man page directory {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write man page {}", path.display())]
    WritePage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Arg ids. Not `shell`/`dir`: ids that are config key names or aliases are read as settings
/// by `flags.rs`. For the same reason the flag is `--out-dir`: `--dir` is RKE2's global alias
/// of etcd-snapshot-dir.
pub const SHELL_ARG: &str = "completion-shell";
pub const DIR_ARG: &str = "man-dir";

/// The `completions` and `man` subcommands, for the clap tree.
pub fn subcommands() -> [Command; 2] {
    let completions = Command::new("completions")
        .about("Print a shell completion script (bash, zsh or fish) to standard output")
        .arg(
            Arg::new(SHELL_ARG)
                .value_name("SHELL")
                .help("The shell to complete for")
                .required(true)
                .value_parser(Shell::NAMES),
        );
    let man = Command::new("man")
        .about("Print the man page (roff) to standard output, or write every page to a directory")
        .arg(
            Arg::new(DIR_ARG)
                .long("out-dir")
                .value_name("DIR")
                .help("Write etcd-snapshot.1 and one page per command into DIR instead")
                .value_parser(clap::value_parser!(PathBuf))
                .action(ArgAction::Set),
        );
    [completions, man]
}

/// The completion script for `shell`, completing the command tree `cmd`.
pub fn completion_script(shell: Shell, mut cmd: Command) -> Vec<u8> {
    let mut out = Vec::new();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell.generator(), &mut cmd, name.clone(), &mut out);
    match shell {
        Shell::Bash => fix_bash_case_labels(&String::from_utf8_lossy(&out), &name).into_bytes(),
        Shell::Fish => {
            out.extend_from_slice(fish_positional_values(&cmd, &name).as_bytes());
            out
        }
        Shell::Zsh => out,
    }
}

/// clap_complete's fish generator offers the values of options but not of positionals, so
/// `etcd-snapshot completions <TAB>` would offer nothing. One `complete` line per top-level
/// subcommand positional with a fixed value set fills that gap, using the generator's own
/// `__fish_<bin>_using_subcommand` condition so it applies exactly where the positional goes.
fn fish_positional_values(cmd: &Command, bin: &str) -> String {
    let condition = format!("__fish_{}_using_subcommand", bin.replace('-', "_"));
    let mut lines = String::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if !values.is_empty() {
                lines.push_str(&format!(
                    "complete -c {bin} -n \"{condition} {}\" -f -a \"{}\"\n",
                    sub.get_name(),
                    values.join(" ")
                ));
            }
        }
    }
    lines
}

/// clap_complete's bash generator names a subcommand's state `<bin>__subcmd__<sub>` with the
/// binary's `-` turned into `__` (`etcd__snapshot__subcmd__save`) where it walks the words, but
/// with `-` turned into `__subcmd__` in the `case` labels that hold the subcommand's options
/// (`etcd__subcmd__snapshot__subcmd__save)`), so for a hyphenated binary no label matches and
/// nothing after the subcommand completes. Relabel the cases the way the walk names them.
fn fix_bash_case_labels(script: &str, bin: &str) -> String {
    let wrong = format!("\n        {}__subcmd__", bin.replace('-', "__subcmd__"));
    let right = format!("\n        {}__subcmd__", bin.replace('-', "__"));
    script.replace(&wrong, &right)
}

/// Every man page of `cmd`: (file name, roff), the main page first, then each visible
/// subcommand's page, depth first (`etcd-snapshot-config.1`, `etcd-snapshot-config-show.1`).
pub fn man_pages(cmd: Command) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building names each subcommand `<parent>-<name>`, which is its page's name.
    cmd.build();
    let mut pages = Vec::new();
    collect_pages(&cmd, &mut pages);
    pages
}

fn collect_pages(cmd: &Command, pages: &mut Vec<(String, Vec<u8>)>) {
    let man = clap_mangen::Man::new(cmd.clone()).manual("etcd-snapshot manual");
    let mut roff = Vec::new();
    // Rendering into a Vec cannot fail.
    man.render(&mut roff).expect("render into memory");
    pages.push((man.get_filename(), roff));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, pages);
    }
}

/// Writes `pages` into `dir` (created if missing), each atomically, mode 0644.
pub fn write_man_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    for (name, roff) in pages {
        let path = dir.join(name);
        fsutil::write_atomic(&path, roff, 0o644)
            .map_err(|source| GenerateError::WritePage { path, source })?;
    }
    Ok(())
}

/// Writes `bytes` to standard output; `what` names them in the error. A reader that stopped
/// early (`| head`) is not an error, as for any filter.
pub fn print(what: &'static str, bytes: &[u8]) -> Result<(), GenerateError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(GenerateError::Stdout { what, source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
