//! tracing subscriber setup: text or JSON on stderr, `--debug` for debug level.
//!
//! Owns only the global subscriber; it never decides what gets logged. `--debug` turns on debug
//! for this crate and the embedded etcd's output only; dependencies stay at info. `RUST_LOG`,
//! when set and valid, overrides the level chosen from the settings so operators can narrow or
//! widen targets (e.g. `RUST_LOG=info,etcd=debug` shows the embedded etcd's own output), except
//! that the dependencies in `CAPPED` never log below info: their debug output carries
//! credentials (the AWS SDK prints the access key id, HTTP clients can print headers).

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log output settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `--debug`: debug-level logs.
    pub debug: bool,
}

/// `--log-format`: text for people, JSON for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once (later calls are no-ops).
pub fn init(settings: LogSettings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(settings, rust_log.as_deref()).and(caps());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; in journald or a log file they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry();
    // try_init fails only when a subscriber is already installed: keep the first one.
    let _ = match settings.format {
        LogFormat::Text => registry.with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => registry.with(layer.json().with_filter(filter)).try_init(),
    };
}

/// What `--debug` turns to debug: this crate and the embedded etcd's forwarded output. Targets
/// match by prefix, so `etcd` would also take in the `etcd_client` crate: it stays at info.
const DEBUG_DIRECTIVES: &str = "info,etcd_snapshot=debug,etcd=debug,etcd_client=info";

/// Dependencies whose debug or trace output can carry credentials: never below info, whatever
/// is asked (a second filter, so asking for less, e.g. `RUST_LOG=warn`, still gives less).
const CAPPED: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sigv4",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "h2",
    "hyper",
    "hyper_util",
    "kube",
    "kube_client",
    "rustls",
];

/// `RUST_LOG` when it parses, else `DEBUG_DIRECTIVES` with `--debug`, else `info`.
fn filter(settings: LogSettings, rust_log: Option<&str>) -> EnvFilter {
    let fallback = if settings.debug {
        DEBUG_DIRECTIVES
    } else {
        "info"
    };
    rust_log
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(fallback))
}

/// Lets everything through except `CAPPED` targets below info.
fn caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED.iter().map(|target| (*target, LevelFilter::INFO)))
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

    /// What a subscriber with `filter` writes for one event per (target, level) given.
    fn logged(filter: EnvFilter, events: &[(&str, tracing::Level)]) -> String {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .with_filter(filter.and(caps()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for (target, level) in events {
                emit(target, *level);
            }
        });
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    /// `tracing` needs the target as a literal; these are the ones the tests use.
    fn emit(target: &str, level: tracing::Level) {
        use tracing::Level;
        match (target, level) {
            ("etcd_snapshot::store", Level::DEBUG) => {
                tracing::debug!(target: "etcd_snapshot::store", "ours-debug")
            }
            ("etcd", Level::DEBUG) => tracing::debug!(target: "etcd", "etcd-output"),
            ("aws_smithy_runtime::client", Level::DEBUG) => {
                tracing::debug!(target: "aws_smithy_runtime::client", "sdk-debug AKIAKEY")
            }
            ("aws_smithy_runtime::client", Level::INFO) => {
                tracing::info!(target: "aws_smithy_runtime::client", "sdk-info")
            }
            ("tonic::transport", Level::DEBUG) => {
                tracing::debug!(target: "tonic::transport", "other-dependency-debug")
            }
            other => panic!("no event for {other:?}"),
        }
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const EVENTS: [(&str, tracing::Level); 5] = [
        ("etcd_snapshot::store", tracing::Level::DEBUG),
        ("etcd", tracing::Level::DEBUG),
        ("aws_smithy_runtime::client", tracing::Level::DEBUG),
        ("aws_smithy_runtime::client", tracing::Level::INFO),
        ("tonic::transport", tracing::Level::DEBUG),
    ];

    #[test]
    fn debug_flag_is_debug_for_us_and_etcd_only() {
        let out = logged(filter(settings(true), None), &EVENTS);
        for wanted in ["ours-debug", "etcd-output", "sdk-info"] {
            assert!(out.contains(wanted), "{wanted} missing:\n{out}");
        }
        assert!(!out.contains("sdk-debug"), "{out}");
        assert!(!out.contains("other-dependency-debug"), "{out}");
        let blank = logged(filter(settings(true), Some("")), &EVENTS);
        assert!(blank.contains("ours-debug") && !blank.contains("sdk-debug"));
    }

    #[test]
    fn without_debug_only_info_is_logged() {
        let out = logged(filter(settings(false), None), &EVENTS);
        assert!(out.contains("sdk-info") && !out.contains("debug"), "{out}");
    }

    #[test]
    fn rust_log_widens_but_never_uncaps_credential_carrying_dependencies() {
        for rust_log in [
            "debug",
            "trace",
            "aws_smithy_runtime=trace",
            "debug,aws_smithy_runtime=debug",
        ] {
            let out = logged(filter(settings(false), Some(rust_log)), &EVENTS);
            assert!(!out.contains("sdk-debug"), "RUST_LOG={rust_log}:\n{out}");
            assert!(out.contains("sdk-info"), "RUST_LOG={rust_log}:\n{out}");
        }
        let out = logged(filter(settings(false), Some("debug")), &EVENTS);
        assert!(out.contains("other-dependency-debug"), "{out}");
        let narrow = logged(filter(settings(true), Some("warn,etcd=debug")), &EVENTS);
        assert!(
            narrow.contains("etcd-output") && !narrow.contains("sdk-info"),
            "{narrow}"
        );
        // An invalid RUST_LOG falls back to the settings.
        let bad = logged(filter(settings(true), Some("=[")), &EVENTS);
        assert!(bad.contains("ours-debug"), "{bad}");
    }
}
