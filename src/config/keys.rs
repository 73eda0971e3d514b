//! The config key table: the single source of truth for every setting.
//!
//! Clap flags, environment variable names, YAML keys, defaults, help text, value types, secrecy
//! and which subcommands accept a key all derive from `KEYS`. Adding a setting means adding one
//! row to the table (`key_table.rs`) and reading it in `build.rs`; nothing else lists keys.
//! This file holds no I/O and no parsing of values (see `value.rs`).

/// How a key's value is parsed and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Go `ParseBool` spellings; a flag alone means true, `--x=false` is allowed.
    Bool,
    /// A non-negative integer that fits in 32 bits.
    Int,
    /// A TCP port, 1..=65535.
    Port,
    /// Free text.
    String,
    /// A snapshot base name or node name: non-empty, no `/`, no whitespace, not `.`/`..`.
    Name,
    /// A filesystem path (non-empty).
    Path,
    /// Paths: comma-separated in flags and env, a YAML list or comma string in files.
    PathList,
    /// Strings: comma-separated in flags and env, a YAML list or comma string in files.
    StringList,
    /// A cron spec as `Schedule::parse` accepts it.
    Cron,
    /// An `http://` or `https://` URL.
    Url,
    /// A proxy setting: empty, `none` or a URL that may carry `user:password@`, which is
    /// shown redacted (the format itself is checked with the S3 settings).
    ProxyUrl,
    IpAddr,
    /// `ip:port`.
    SocketAddr,
    /// `text` or `json`.
    LogFormat,
    /// A secret string: kept in `SecretString`, shown as `<redacted>`.
    Secret,
    /// A Go duration such as `5m0s`.
    Duration,
}

impl Kind {
    /// True for kinds whose values are lists (comma-split when given as one string).
    pub fn is_list(self) -> bool {
        matches!(self, Kind::PathList | Kind::StringList)
    }

    /// The value placeholder shown in `--help`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Bool => "BOOL",
            Kind::Int => "N",
            Kind::Port => "PORT",
            Kind::String | Kind::Secret => "STRING",
            Kind::Name => "NAME",
            Kind::Path => "PATH",
            Kind::PathList => "PATH,...",
            Kind::StringList => "VALUE,...",
            Kind::Cron => "SPEC",
            Kind::Url | Kind::ProxyUrl => "URL",
            Kind::IpAddr => "IP",
            Kind::SocketAddr => "IP:PORT",
            Kind::LogFormat => "FORMAT",
            Kind::Duration => "DURATION",
        }
    }
}

/// Which subcommands accept a key as a flag (every key is accepted in files and env).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every subcommand, before or after the subcommand name.
    Global,
    /// Only `server`.
    Server,
    /// `save`, `ls`, `delete` and `prune`, before or after the subcommand name.
    Client,
}

/// A key's built-in default, applied when no layer sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Unset: the setting is optional.
    None,
    /// This text, parsed like a user-supplied value.
    Value(&'static str),
    /// `<data-dir>/<relative path>`.
    UnderDataDir(&'static str),
    /// The machine's host name.
    HostName,
}

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Canonical name: the long flag without `--`, the YAML key, the basis of the env var name.
    pub name: &'static str,
    /// Extra long flag names, also accepted as YAML keys (RKE2's short aliases).
    pub aliases: &'static [&'static str],
    pub short: Option<char>,
    pub kind: Kind,
    pub default: DefaultValue,
    pub help: &'static str,
    pub scope: Scope,
    /// Never printed: redacted in errors, `config show` and Debug output.
    pub secret: bool,
    /// False for keys that may only come from flags or the environment (`config`).
    pub in_file: bool,
}

/// The prefix of every environment variable the engine reads.
pub const ENV_PREFIX: &str = "ETCD_SNAPSHOT_";

impl KeySpec {
    /// `ETCD_SNAPSHOT_<NAME>` with `-` replaced by `_`.
    pub fn env_var(&self) -> String {
        env_var_for(self.name)
    }

    /// True when the value must never be displayed.
    pub fn is_secret(&self) -> bool {
        self.secret || self.kind == Kind::Secret
    }

    /// The canonical name and every alias.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

/// The environment variable name for a key name.
pub fn env_var_for(name: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

#[path = "key_table.rs"]
mod table;

pub use table::KEYS;

/// Every key, in table order.
pub fn all() -> &'static [KeySpec] {
    KEYS
}

/// The key with this canonical name.
pub fn get(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// The key whose canonical name or alias is `name`.
pub fn lookup(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.names().any(|n| n == name))
}

/// The key whose environment variable is `var`.
pub fn lookup_env(var: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.env_var() == var)
}

/// Keys accepted as flags in a scope, in table order.
pub fn in_scope(scope: Scope) -> impl Iterator<Item = &'static KeySpec> {
    KEYS.iter().filter(move |k| k.scope == scope)
}

/// The known name closest to `unknown`, when it is close enough to be a likely typo.
pub fn suggest(unknown: &str, candidates: impl IntoIterator<Item = String>) -> Option<String> {
    let limit = match unknown.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (edit_distance(unknown, &c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Every name a config file may use (canonical names and aliases of file keys).
pub fn file_names() -> impl Iterator<Item = String> {
    KEYS.iter()
        .filter(|k| k.in_file)
        .flat_map(|k| k.names())
        .map(str::to_string)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_env_vars_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for key in KEYS {
            for name in key.names() {
                assert!(seen.insert(name), "duplicate key name {name}");
            }
        }
        let envs: std::collections::BTreeSet<_> = KEYS.iter().map(KeySpec::env_var).collect();
        assert_eq!(envs.len(), KEYS.len());
    }

    #[test]
    fn secret_kind_rows_are_marked_secret() {
        for key in KEYS.iter().filter(|k| k.kind == Kind::Secret) {
            assert!(
                key.secret,
                "{} has kind Secret but is not marked secret",
                key.name
            );
        }
    }

    #[test]
    fn env_var_names_follow_the_rule() {
        assert_eq!(
            get("etcd-snapshot-retention")
                .map(KeySpec::env_var)
                .as_deref(),
            Some("ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTION")
        );
        assert_eq!(
            lookup_env("ETCD_SNAPSHOT_CONFIG").map(|k| k.name),
            Some("config")
        );
    }

    #[test]
    fn lookup_finds_aliases() {
        assert_eq!(lookup("dir").map(|k| k.name), Some("etcd-snapshot-dir"));
        assert_eq!(
            lookup("snapshot-retention").map(|k| k.name),
            Some("etcd-snapshot-retention")
        );
        assert!(lookup("cni").is_none());
    }

    #[test]
    fn suggest_finds_close_typos_only() {
        assert_eq!(
            suggest("etcd-snapshot-retension", file_names()).as_deref(),
            Some("etcd-snapshot-retention")
        );
        assert_eq!(suggest("node-taint", file_names()), None);
        assert_eq!(suggest("cni", file_names()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
