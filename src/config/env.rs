//! The environment layer: `ETCD_SNAPSHOT_<KEY>` variables (key upper-cased, `-` as `_`).
//!
//! Pure: takes the variables as pairs, so tests pass their own; `ConfigEngine::new` hands it the
//! process environment. Variables without the prefix are not ours and are skipped silently.

use secrecy::SecretString;

use super::keys::{self, ENV_PREFIX};
use super::layer::{Layer, RawValue, Source};

/// Builds the environment layer, plus a warning per unknown `ETCD_SNAPSHOT_*` variable.
pub fn layer_from_vars(vars: impl IntoIterator<Item = (String, String)>) -> (Layer, Vec<String>) {
    let mut layer = Layer::new();
    let mut warnings = Vec::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let Some(spec) = keys::lookup_env(&name) else {
            let known = keys::all().iter().map(|k| k.env_var());
            let hint = keys::suggest(&name, known)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            warnings.push(format!(
                "unknown environment variable {name}, ignored{hint}"
            ));
            continue;
        };
        let raw = if spec.is_secret() {
            RawValue::Secret(SecretString::from(value))
        } else {
            RawValue::String(value)
        };
        layer.set(spec.name, raw, Source::Env(name));
    }
    (layer, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_prefixed_variables_to_keys() {
        let (layer, warnings) = layer_from_vars(vars(&[
            ("ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTION", "7"),
            ("ETCD_SNAPSHOT_CONFIG", "/x.yaml"),
            ("ETCD_SNAPSHOT_TOKEN", "tok"),
            ("PATH", "/bin"),
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        let retention = layer.get("etcd-snapshot-retention").expect("set");
        assert_eq!(retention.value, RawValue::String("7".into()));
        assert_eq!(
            retention.source,
            Source::Env("ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTION".into())
        );
        assert!(layer.get("config").is_some());
        assert!(matches!(
            layer.get("token").map(|s| &s.value),
            Some(RawValue::Secret(_))
        ));
        assert!(!format!("{layer:?}").contains("tok\""));
    }

    #[test]
    fn unknown_prefixed_variables_warn() {
        let (layer, warnings) =
            layer_from_vars(vars(&[("ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTON", "7")]));
        assert!(layer.is_empty());
        assert_eq!(
            warnings,
            vec![
                "unknown environment variable ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTON, ignored; \
                 did you mean ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTION?"
                    .to_string()
            ]
        );
    }
}
