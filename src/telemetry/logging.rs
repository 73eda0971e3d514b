//! tracing subscriber setup: text or JSON on stderr, `--debug` for debug level.
//!
//! Owns only the global subscriber; it never decides what gets logged. `RUST_LOG`, when set and
//! valid, overrides the level chosen from the settings so operators can narrow or widen targets
//! (e.g. `RUST_LOG=info,etcd=debug` shows the embedded etcd's own output).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once (later calls are no-ops).
pub fn init(settings: LogSettings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(settings, rust_log.as_deref()))
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; in journald or a log file they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    // try_init fails only when a subscriber is already installed: keep the first one.
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `RUST_LOG` when it parses, else `debug` with `--debug`, else `info`.
fn filter(settings: LogSettings, rust_log: Option<&str>) -> EnvFilter {
    let fallback = if settings.debug { "debug" } else { "info" };
    rust_log
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(debug: bool) -> LogSettings {
        LogSettings {
            format: LogFormat::Text,
            debug,
        }
    }

    #[test]
    fn level_comes_from_debug_flag_unless_rust_log_is_set() {
        assert_eq!(filter(settings(false), None).to_string(), "info");
        assert_eq!(filter(settings(true), None).to_string(), "debug");
        assert_eq!(filter(settings(true), Some("")).to_string(), "debug");
        let custom = filter(settings(false), Some("warn,etcd=debug")).to_string();
        assert!(
            custom.contains("etcd=debug") && custom.contains("warn"),
            "{custom}"
        );
    }
}
