//! Test helpers shared by the config modules' unit tests.

use super::layer::{Layer, RawValue, Source};
use super::resolve::{ConfigErrors, HostFacts, Resolved, resolve_with};

/// Resolves `key=value` pairs given as command-line flags, on a host named `node-a`.
pub fn resolve_flags(pairs: &[(&str, &str)]) -> Result<Resolved, ConfigErrors> {
    let mut layer = Layer::new();
    for (key, value) in pairs {
        let source = Source::Flag(format!("--{key}"));
        layer.set(*key, RawValue::String((*value).into()), source);
    }
    let host = HostFacts {
        hostname: Some("node-a".into()),
    };
    resolve_with(&[&layer], &host)
}
