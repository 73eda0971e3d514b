//! tracing subscriber setup: text or JSON on stderr, `--debug` for debug level.

use crate::config::LogSettings;

/// Installs the global subscriber once (later calls are no-ops).
pub fn init(settings: LogSettings) {
    let _ = settings;
    todo!()
}
