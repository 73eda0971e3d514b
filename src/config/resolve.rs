//! `resolve`: merge layers by precedence and validate into a `DesiredConfig`, collecting every
//! problem at once. Pure, apart from reading the host name once for the `node-name` default.
//!
//! Precedence is simply layer order: the last layer that sets a key wins, and built-in defaults
//! (from the key table) apply when none does. Reading files and the environment is not done
//! here (see `file.rs`, `env.rs` and `ConfigEngine`).

use std::fmt;
use std::sync::OnceLock;

use super::build::{Entry, Parsed, build};
use super::desired::DesiredConfig;
use super::keys::{self, DefaultValue, KeySpec};
use super::layer::{Layer, RawValue, Source};
use super::value::{self, Value};

/// One invalid value: the key, the value (redacted for secrets), its source and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub value: Option<String>,
    pub source: Source,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "invalid value {v:?} for {} from {}: expected {}",
                self.key, self.source, self.expected
            ),
            None => write!(
                f,
                "invalid {} from {}: expected {}",
                self.key, self.source, self.expected
            ),
        }
    }
}

/// Every problem found in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One effective value as `config show` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownValue {
    pub key: String,
    /// Rendered value; secrets are `<redacted>`.
    pub value: String,
    pub source: Source,
}

/// The outcome of a successful evaluation.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: DesiredConfig,
    /// Non-fatal findings (unknown keys with "did you mean", ignored settings).
    pub warnings: Vec<String>,
    /// Every key's effective value and source, in key-table order.
    pub shown: Vec<ShownValue>,
    /// The layers (files, environment, flags; no request) this was resolved from, so a request
    /// can be applied over the last good evaluation when the files on disk are currently invalid.
    pub layers: Vec<Layer>,
}

/// Facts about the machine that built-in defaults depend on; explicit so tests stay pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The host name, the default `node-name`.
    pub hostname: Option<String>,
}

impl HostFacts {
    /// Reads the host name once per process (`/proc/sys/kernel/hostname`, then `/etc/hostname`).
    pub fn detect() -> &'static HostFacts {
        static FACTS: OnceLock<HostFacts> = OnceLock::new();
        FACTS.get_or_init(|| HostFacts {
            hostname: ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_string())
                .find(|s| !s.is_empty()),
        })
    }
}

/// Merges `layers` (lowest precedence first; built-in defaults are implicit) and validates.
pub fn resolve(layers: &[&Layer]) -> Result<Resolved, ConfigErrors> {
    resolve_with(layers, HostFacts::detect())
}

/// `resolve` with explicit host facts.
pub fn resolve_with(layers: &[&Layer], host: &HostFacts) -> Result<Resolved, ConfigErrors> {
    let mut warnings = unknown_layer_keys(layers);
    let mut errors = Vec::new();
    let mut parsed = Parsed::default();
    for spec in keys::all() {
        // Layers are keyed by canonical names; an alias key (e.g. from a request) counts too.
        let set = layers
            .iter()
            .rev()
            .find_map(|l| spec.names().find_map(|name| l.get(name)));
        let entry = match set {
            Some(sourced) => parse_set(spec, &sourced.value, &sourced.source),
            None => parse_default(spec, &parsed, host),
        };
        match entry {
            Ok(entry) => {
                parsed.0.insert(spec.name, entry);
            }
            Err(e) => errors.push(e),
        }
    }
    cross_check(&parsed, &mut errors, &mut warnings);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config = build(&parsed).ok_or_else(|| {
        ConfigErrors(vec![ConfigError {
            key: "config".into(),
            value: None,
            source: Source::Default,
            expected: "every key of the key table to resolve (internal error)".into(),
        }])
    })?;
    Ok(Resolved {
        config,
        warnings,
        shown: shown(&parsed),
        layers: Vec::new(),
    })
}

/// Keys a layer carries that the table does not know (files and env filter theirs already).
fn unknown_layer_keys(layers: &[&Layer]) -> Vec<String> {
    layers
        .iter()
        .flat_map(|l| l.iter())
        .filter(|(k, _)| keys::lookup(k).is_none())
        .map(|(k, v)| format!("unknown key {k:?} from {}, ignored", v.source))
        .collect()
}

fn is_blank(raw: &RawValue) -> bool {
    matches!(raw, RawValue::String(s) if s.trim().is_empty())
}

fn parse_set(spec: &KeySpec, raw: &RawValue, source: &Source) -> Result<Entry, ConfigError> {
    let optional = spec.default == DefaultValue::None;
    if optional && !spec.kind.is_list() && is_blank(raw) {
        return Ok(Entry {
            value: None,
            source: source.clone(),
        });
    }
    match value::parse(spec.kind, raw) {
        Ok(v) => Ok(Entry {
            value: Some(v),
            source: source.clone(),
        }),
        Err(expected) => Err(ConfigError {
            key: spec.name.to_string(),
            value: if spec.is_secret() {
                Some("<redacted>".into())
            } else {
                raw.display().map(|text| value::quotable(spec.kind, text))
            },
            source: source.clone(),
            expected,
        }),
    }
}

fn parse_default(spec: &KeySpec, parsed: &Parsed, host: &HostFacts) -> Result<Entry, ConfigError> {
    let text = match spec.default {
        // An unset list is an empty list, not a missing value.
        DefaultValue::None if spec.kind.is_list() => Some(String::new()),
        DefaultValue::None => None,
        DefaultValue::Value(text) => Some(text.to_string()),
        // data-dir precedes every key whose default lives under it in the table.
        DefaultValue::UnderDataDir(rel) => parsed
            .path("data-dir")
            .map(|d| d.join(rel).display().to_string()),
        DefaultValue::HostName => match &host.hostname {
            Some(h) => Some(h.clone()),
            None => {
                return Err(ConfigError {
                    key: spec.name.into(),
                    value: None,
                    source: Source::Default,
                    expected: "a value: the host name could not be read, so set it".into(),
                });
            }
        },
    };
    match text {
        None => Ok(Entry {
            value: None,
            source: Source::Default,
        }),
        Some(text) => parse_set(spec, &RawValue::String(text), &Source::Default),
    }
}

/// Checks that span several keys.
fn cross_check(p: &Parsed, errors: &mut Vec<ConfigError>, warnings: &mut Vec<String>) {
    super::build::check_s3(p, errors);
    super::build::check_name_lengths(p, errors);
    super::etcd_check::check_etcd(p, errors);
    super::build::check_config_secret(p, warnings);
    super::build::check_tls_san(p, errors);
    super::retention::check_retention(p, errors);
    super::encryption::check_encryption(p, errors);
    super::delta::check_delta(p, errors);
    super::restore_to::check_restore_to(p, errors);
    super::verify::check_verify(p, errors);
    for (have, need) in [
        ("etcd-certfile", "etcd-keyfile"),
        ("etcd-keyfile", "etcd-certfile"),
    ] {
        if let (Some(v), None) = (p.value(have), p.value(need)) {
            errors.push(ConfigError {
                key: have.into(),
                value: Some(value::render(v)),
                source: p.source(have).cloned().unwrap_or(Source::Default),
                expected: format!("{need} to be set as well"),
            });
        }
    }
    if let (Some(Value::Socket(client)), Some(Value::Socket(peer))) =
        (p.value("etcd-client-address"), p.value("etcd-peer-address"))
        && client == peer
    {
        errors.push(ConfigError {
            key: "etcd-peer-address".into(),
            value: Some(peer.to_string()),
            source: p
                .source("etcd-peer-address")
                .cloned()
                .unwrap_or(Source::Default),
            expected: "an address different from etcd-client-address".into(),
        });
    }
    if p.value("token").is_some() && p.value("token-file").is_some() {
        warnings.push("both token and token-file are set; token is used".into());
    }
    let embedded = matches!(p.value("etcd-endpoints"), Some(Value::List(l)) if l.is_empty());
    if embedded {
        for key in ["etcd-cafile", "etcd-certfile", "etcd-keyfile"] {
            if let Some(source) = p.source(key).filter(|_| p.value(key).is_some()) {
                warnings.push(format!(
                    "{key} from {source} is ignored: no etcd-endpoints are set, so the embedded \
                     etcd is used"
                ));
            }
        }
    }
}

fn shown(p: &Parsed) -> Vec<ShownValue> {
    keys::all()
        .iter()
        .filter_map(|spec| {
            let entry = p.0.get(spec.name)?;
            Some(ShownValue {
                key: spec.name.to_string(),
                value: entry.value.as_ref().map(value::render).unwrap_or_default(),
                source: entry.source.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
