//! One configuration layer: config keys mapped to raw values, each tagged with where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a value came from; every error and `config show --sources` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// The main config file.
    File(PathBuf),
    /// A `config.yaml.d/*.yaml` drop-in.
    DropIn(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (as typed, e.g. `--s3-bucket`).
    Flag(String),
    /// A field of an API request.
    Request,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::DropIn(p) => write!(f, "drop-in {}", p.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Request => f.write_str("API request"),
        }
    }
}

/// A value as written, before it is parsed for its key's type.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    String(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// Config keys (canonical names, e.g. `etcd-snapshot-retention`) to sourced raw values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    entries: BTreeMap<String, Sourced<RawValue>>,
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `key` (a canonical key name); a later set of the same key replaces the earlier one.
    pub fn set(&mut self, key: impl Into<String>, value: RawValue, source: Source) {
        self.entries.insert(key.into(), Sourced { value, source });
    }
    pub fn get(&self, key: &str) -> Option<&Sourced<RawValue>> {
        self.entries.get(key)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sourced<RawValue>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
