//! One configuration layer: config keys mapped to raw values, each tagged with where it came from.
//!
//! A layer is plain data: it does not parse values for their key's type (that is `resolve`'s job)
//! and does no I/O. Secret values are held as `SecretString` so a layer's Debug output never
//! shows them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

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
    /// A key of the S3 config Secret in `kube-system` (`etcd-s3-config-secret`).
    Secret {
        name: String,
        key: String,
    },
    /// The CA ConfigMap in `kube-system` named by the Secret's `etcd-s3-endpoint-ca-name`.
    ConfigMap {
        name: String,
    },
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
            Source::Secret { name, key } => write!(f, "Secret kube-system/{name} key {key}"),
            Source::ConfigMap { name } => write!(f, "ConfigMap kube-system/{name}"),
        }
    }
}

/// A value as written, before it is parsed for its key's type.
#[derive(Debug, Clone)]
pub enum RawValue {
    String(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
    /// The value of a secret key, kept out of Debug output from the moment it is read.
    Secret(SecretString),
}

impl PartialEq for RawValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RawValue::String(a), RawValue::String(b)) => a == b,
            (RawValue::Bool(a), RawValue::Bool(b)) => a == b,
            (RawValue::Int(a), RawValue::Int(b)) => a == b,
            (RawValue::List(a), RawValue::List(b)) => a == b,
            (RawValue::Secret(a), RawValue::Secret(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl RawValue {
    /// The value as a user would type it, for error messages; None for secrets.
    pub fn display(&self) -> Option<String> {
        match self {
            RawValue::String(s) => Some(s.clone()),
            RawValue::Bool(b) => Some(b.to_string()),
            RawValue::Int(i) => Some(i.to_string()),
            RawValue::List(items) => Some(items.join(",")),
            RawValue::Secret(_) => None,
        }
    }
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
    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Sourced<RawValue>> {
        self.entries.remove(key)
    }
}
