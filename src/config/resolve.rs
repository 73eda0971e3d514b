//! `resolve`: merge layers by precedence and validate into a `DesiredConfig`, collecting every
//! problem at once. Pure.

use std::fmt;

use super::desired::DesiredConfig;
use super::layer::{Layer, Source};

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
}

/// Merges `layers` (lowest precedence first; built-in defaults are implicit) and validates.
pub fn resolve(layers: &[&Layer]) -> Result<Resolved, ConfigErrors> {
    let _ = layers;
    todo!()
}
