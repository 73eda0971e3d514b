//! Command-line parsing: clap commands built from the config key table, RKE2 aliases, and
//! turning flags into a config `Layer`.

use crate::config::Layer;

/// `ls -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Server,
    Save,
    List { output: OutputFormat },
    Delete { names: Vec<String> },
    Prune { dry_run: bool },
    ConfigShow { sources: bool },
    ConfigValidate,
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    /// Every config key set on the command line, sourced as flags.
    pub flags: Layer,
}

/// Parses argv (including argv[0]). `etcd-snapshot etcd-snapshot <sub>` is accepted.
pub fn parse<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let _ = args.into_iter();
    todo!()
}
