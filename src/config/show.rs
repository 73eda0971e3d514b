//! Text for `config show` and `config validate`.
//!
//! Pure formatting of an evaluation's result: no I/O, no evaluation of its own. `config show`
//! output without sources is valid YAML that the engine reads back as the same settings
//! (secrets excepted, which are only ever printed as `<redacted>`).

use std::fmt::Write as _;

use super::Validation;
use super::keys::{self, Kind};
use super::layer::Source;
use super::resolve::{Resolved, ShownValue};

/// Longest `key: value` part that still gets its source comment aligned with the others.
const ALIGN_LIMIT: usize = 56;

/// `config show`: one `key: value` line per key in key-table order; with `with_sources`, each
/// line ends with a `# <source>` comment. Keys that cannot be set in a file are comments.
pub fn render(resolved: &Resolved, with_sources: bool) -> String {
    let lines: Vec<(String, &Source)> = resolved
        .shown
        .iter()
        .map(|shown| (line(shown), &shown.source))
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .filter(|w| *w <= ALIGN_LIMIT)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (text, source) in lines {
        if with_sources {
            let pad = width.saturating_sub(text.chars().count());
            let _ = writeln!(out, "{text}{:pad$}    # {source}", "");
        } else {
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

fn line(shown: &ShownValue) -> String {
    let spec = keys::get(&shown.key);
    let kind = spec.map_or(Kind::String, |s| s.kind);
    let value = yaml_value(kind, &shown.value);
    let text = if value.is_empty() {
        format!("{}:", shown.key)
    } else {
        format!("{}: {value}", shown.key)
    };
    match spec {
        Some(s) if !s.in_file => format!("# {text}"),
        _ => text,
    }
}

/// The value as YAML: lists in flow style, text quoted whenever a plain scalar would change it.
fn yaml_value(kind: Kind, value: &str) -> String {
    if kind.is_list() {
        let items: Vec<String> = value
            .split(',')
            .filter(|i| !i.is_empty())
            .map(|i| scalar(Kind::String, i))
            .collect();
        return format!("[{}]", items.join(", "));
    }
    if value.is_empty() {
        return String::new();
    }
    scalar(kind, value)
}

fn scalar(kind: Kind, value: &str) -> String {
    let typed = matches!(kind, Kind::Bool | Kind::Int | Kind::Port);
    if typed || is_plain_safe(value) {
        value.to_string()
    } else {
        serde_json::Value::String(value.to_string()).to_string()
    }
}

/// True when `value` reads back from YAML as exactly this string.
fn is_plain_safe(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let lower = value.to_ascii_lowercase();
    let special_word = matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
    );
    let numeric = value.parse::<f64>().is_ok()
        || value.starts_with("0x")
        || value.starts_with("0o")
        || lower == ".inf"
        || lower == ".nan";
    (first.is_ascii_alphanumeric() || first == '/' || first == '_')
        && !special_word
        && !numeric
        && !value.ends_with(' ')
        && !value.ends_with(':')
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.contains(|c: char| "{}[],&*!|>'\"%@`\\".contains(c) || c.is_control())
}

/// `config validate`: every warning, then either a success line or every problem.
pub fn render_validation(validation: &Validation) -> String {
    let mut out = String::new();
    for warning in &validation.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    match &validation.outcome {
        Ok(resolved) => {
            let _ = writeln!(
                out,
                "configuration is valid (config file {}, {} warning(s))",
                resolved.config.config_file.display(),
                validation.warnings.len()
            );
        }
        Err(errors) => {
            for error in &errors.0 {
                let _ = writeln!(out, "error: {error}");
            }
            let _ = writeln!(
                out,
                "configuration is invalid: {} problem(s)",
                errors.0.len()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layer::{Layer, RawValue};
    use crate::config::resolve::{HostFacts, resolve_with};

    fn host() -> HostFacts {
        HostFacts {
            hostname: Some("node-a".into()),
        }
    }

    fn resolved_with(layer: &Layer) -> Resolved {
        resolve_with(&[layer], &host()).expect("resolves")
    }

    #[test]
    fn show_redacts_the_credentials_of_a_proxy_url() {
        let mut flags = Layer::new();
        flags.set(
            "etcd-s3-proxy",
            RawValue::String("http://alice:s3cr3t@proxy:3128".into()),
            Source::Flag("--etcd-s3-proxy".into()),
        );
        for with_sources in [false, true] {
            let text = render(&resolved_with(&flags), with_sources);
            assert!(
                !text.contains("alice") && !text.contains("s3cr3t"),
                "{text}"
            );
            assert!(
                text.contains("\netcd-s3-proxy: \"http://<redacted>@proxy:3128\""),
                "{text}"
            );
        }
        // Without credentials the URL shows as given.
        flags.set(
            "etcd-s3-proxy",
            RawValue::String("http://proxy:3128".into()),
            Source::Flag("--etcd-s3-proxy".into()),
        );
        let text = render(&resolved_with(&flags), false);
        assert!(
            text.contains("\netcd-s3-proxy: http://proxy:3128\n"),
            "{text}"
        );
    }

    #[test]
    fn show_lists_every_key_in_table_order_and_redacts_secrets() {
        let mut flags = Layer::new();
        flags.set(
            "token",
            RawValue::String("hunter2".into()),
            Source::Flag("-t".into()),
        );
        flags.set(
            "etcd-snapshot-retention",
            RawValue::String("3".into()),
            Source::Flag("--snapshot-retention".into()),
        );
        let text = render(&resolved_with(&flags), false);
        assert!(!text.contains("hunter2"));
        let keys_in_output: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches("# ").split(':').next().unwrap_or(""))
            .collect();
        let table: Vec<&str> = keys::all().iter().map(|k| k.name).collect();
        assert_eq!(keys_in_output, table);
        assert!(text.contains("\ntoken: \"<redacted>\"\n"), "{text}");
        assert!(text.contains("\netcd-token:\n"), "{text}");
        assert!(text.contains("\netcd-snapshot-retention: 3\n"), "{text}");
        assert!(text.contains("\netcd-endpoints: []\n"), "{text}");
        assert!(
            text.starts_with("# config: /etc/etcd-snapshot/config.yaml\n"),
            "{text}"
        );
    }

    #[test]
    fn show_with_sources_names_each_source() {
        let mut flags = Layer::new();
        flags.set(
            "etcd-snapshot-retention",
            RawValue::String("3".into()),
            Source::Flag("--snapshot-retention".into()),
        );
        let text = render(&resolved_with(&flags), true);
        let line = text
            .lines()
            .find(|l| l.starts_with("etcd-snapshot-retention:"))
            .expect("retention line");
        assert!(line.starts_with("etcd-snapshot-retention: 3 "), "{line}");
        assert!(line.ends_with("    # flag --snapshot-retention"), "{line}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("debug: false") && l.ends_with("# default"))
        );
    }

    #[test]
    fn show_output_reads_back_as_the_same_settings() {
        let mut flags = Layer::new();
        flags.set(
            "etcd-endpoints",
            RawValue::List(vec!["https://a:2379".into(), "https://b:2379".into()]),
            Source::Flag("--etcd-endpoints".into()),
        );
        flags.set(
            "etcd-snapshot-schedule-cron",
            RawValue::String("*/5 * * * *".into()),
            Source::Request,
        );
        flags.set("node-name", RawValue::String("123".into()), Source::Request);
        let first = resolved_with(&flags);
        let text = render(&first, false);
        let loaded = crate::config::file::parse(&text, &Source::File("/shown.yaml".into()));
        assert!(
            loaded.errors.is_empty() && loaded.warnings.is_empty(),
            "{loaded:?}\n{text}"
        );
        let second = resolved_with(&loaded.layer);
        let values = |r: &Resolved| -> Vec<(String, String)> {
            r.shown
                .iter()
                .filter(|s| keys::get(&s.key).is_some_and(|k| k.in_file && !k.is_secret()))
                .map(|s| (s.key.clone(), s.value.clone()))
                .collect()
        };
        assert_eq!(values(&first), values(&second));
    }

    #[test]
    fn validation_lists_warnings_and_every_problem() {
        let mut bad = Layer::new();
        let src = Source::File("/c.yaml".into());
        bad.set(
            "etcd-snapshot-retention",
            RawValue::String("x".into()),
            src.clone(),
        );
        bad.set("supervisor-port", RawValue::Int(0), src);
        let validation = Validation {
            warnings: vec!["unknown key \"cni\" in config file /c.yaml, ignored".into()],
            outcome: resolve_with(&[&bad], &host()),
        };
        let text = render_validation(&validation);
        assert!(text.starts_with("warning: unknown key \"cni\""), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("error: ")).count(),
            2,
            "{text}"
        );
        assert!(
            text.ends_with("configuration is invalid: 2 problem(s)\n"),
            "{text}"
        );
        let ok = Validation {
            warnings: Vec::new(),
            outcome: resolve_with(&[], &host()),
        };
        assert!(render_validation(&ok).starts_with("configuration is valid"));
    }
}
