//! tracing subscriber setup: text or JSON on stderr, `--debug` for debug level.
//!
//! Owns only the global subscriber; it never decides what gets logged. `RUST_LOG`, when set,
//! overrides the level chosen from the settings so operators can narrow or widen targets.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once (later calls are no-ops).
pub fn init(settings: LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_directive(settings)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init fails only when a subscriber is already installed: keep the first one.
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The level used when `RUST_LOG` is unset.
fn default_directive(settings: LogSettings) -> &'static str {
    if settings.debug { "debug" } else { "info" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_flag_selects_debug_level() {
        let text = |debug| LogSettings {
            format: LogFormat::Text,
            debug,
        };
        assert_eq!(default_directive(text(false)), "info");
        assert_eq!(default_directive(text(true)), "debug");
    }

    #[test]
    fn repeated_init_is_harmless() {
        let json = LogSettings {
            format: LogFormat::Json,
            debug: false,
        };
        init(json);
        init(json);
        tracing::info!("logging initialised twice without panicking");
    }
}
