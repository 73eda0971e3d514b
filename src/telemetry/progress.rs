//! Progress of the byte-moving steps a CLI run does itself (a direct-mode save and its S3
//! upload, an S3 download, a restore) for the person or program watching stderr.
//!
//! The pipeline reports through `Progress` (each step started with an optional total, then
//! bytes as they pass, then finished) and never knows how it is shown. `--progress` picks the
//! reporter once per process, like the log subscriber: `tty` draws an indicatif bar (bytes,
//! rate, ETA), `json` writes one JSON object per line (`ProgressEvent`, schema in the operator
//! guide), `none` nothing, and `auto` (the default) a bar only when stderr is a terminal. The server never installs one,
//! so its saves report to nobody. Event building and rate limiting are pure and tested as values.
//!
//! A new byte-moving step (re-encrypting or verifying a snapshot, say) reports the same way:
//! add an `Operation` variant (its JSON name and its bar's verb), then
//! `reporter().start(op, name, total)` once, `advance` per chunk and `finish` at the end; the
//! step never learns whether a bar, JSON lines or nothing is shown.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The steps that report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// etcd's snapshot stream into the snapshot file (bytes received from etcd).
    Save,
    /// A snapshot's bytes handed to S3 (streamed while saving, or from the file).
    Upload,
    /// An S3 object into a local file.
    Download,
    /// Reading and checking the snapshot a restore starts from.
    Restore,
    /// Re-encrypting a snapshot to the current recipients (`rekey`; bytes of the original read).
    Rekey,
    /// A restore drill of one snapshot copy (its size is counted when the drill ends).
    Verify,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    #[default]
    Auto,
    Tty,
    Json,
    None,
}

impl ProgressMode {
    /// The flag's values, for the command line's parser.
    pub const VALUES: [&'static str; 4] = ["auto", "tty", "json", "none"];

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "auto" => Self::Auto,
            "tty" => Self::Tty,
            "json" => Self::Json,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// Where steps report. `start` is called once per step; steps may run at the same time (a
/// save streams to S3 while it writes the file), each with its own `Step`.
pub trait Progress: Send + Sync {
    fn start(&self, operation: Operation, name: &str, total: Option<u64>) -> Box<dyn Step>;
}

/// One step in progress. `advance` is called for every chunk, so it must be cheap.
pub trait Step: Send + Sync {
    fn advance(&self, bytes: u64);
    /// The step ended, successfully or not.
    fn finish(self: Box<Self>, ok: bool);
}

/// Reports nothing (the server, `--progress=none`, a non-terminal under `auto`).
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: Operation, _: &str, _: Option<u64>) -> Box<dyn Step> {
        Box::new(Silent)
    }
}

impl Step for Silent {
    fn advance(&self, _: u64) {}
    fn finish(self: Box<Self>, _: bool) {}
}

static REPORTER: OnceLock<Arc<dyn Progress>> = OnceLock::new();

/// Chooses this process's reporter; the first call wins (main calls it once).
pub fn install(mode: ProgressMode) {
    let terminal = std::io::stderr().is_terminal();
    let reporter: Arc<dyn Progress> = match (mode, terminal) {
        (ProgressMode::Json, _) => Arc::new(JsonLines),
        (ProgressMode::Tty, _) | (ProgressMode::Auto, true) => Arc::new(Bar::new()),
        _ => Arc::new(Silent),
    };
    let _ = REPORTER.set(reporter);
}

/// This process's reporter (`Silent` unless `install` chose another).
pub fn reporter() -> Arc<dyn Progress> {
    REPORTER.get().cloned().unwrap_or_else(|| Arc::new(Silent))
}

/// One line of `--progress=json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressEvent {
    /// `start`, `progress` or `finish`.
    pub event: &'static str,
    pub operation: Operation,
    /// The snapshot (file name) the step works on.
    pub name: String,
    /// Bytes done so far; never decreases within a step.
    pub bytes: u64,
    /// Expected bytes when known; on `finish` of a successful step, equal to `bytes`.
    pub total: Option<u64>,
    /// Milliseconds since `start`.
    pub elapsed_ms: u64,
    /// On `finish` only: whether the step succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

/// How often `progress` lines are written at most: enough to follow, few enough to parse.
pub const JSON_INTERVAL: Duration = Duration::from_millis(200);

/// The state of the step being reported, and the decision of what to emit (pure).
#[derive(Debug, Clone)]
struct StepState {
    operation: Operation,
    name: String,
    total: Option<u64>,
    bytes: u64,
    started: Instant,
    last_emitted: Option<Instant>,
}

impl StepState {
    fn event(&self, event: &'static str, now: Instant, ok: Option<bool>) -> ProgressEvent {
        ProgressEvent {
            event,
            operation: self.operation,
            name: self.name.clone(),
            bytes: self.bytes,
            total: self.total,
            elapsed_ms: u64::try_from(now.duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX),
            ok,
        }
    }

    /// Adds `bytes`; returns a `progress` event when the last one is `JSON_INTERVAL` old.
    fn advance(&mut self, bytes: u64, now: Instant) -> Option<ProgressEvent> {
        self.bytes = self.bytes.saturating_add(bytes);
        let due = self
            .last_emitted
            .is_none_or(|last| now.duration_since(last) >= JSON_INTERVAL);
        due.then(|| {
            self.last_emitted = Some(now);
            self.event("progress", now, None)
        })
    }

    /// The `finish` event; a successful step's total becomes the bytes it really moved.
    fn finish(&mut self, ok: bool, now: Instant) -> ProgressEvent {
        if ok {
            self.total = Some(self.bytes);
        }
        self.event("finish", now, Some(ok))
    }
}

/// `--progress=json`: line-delimited `ProgressEvent`s on stderr.
#[derive(Default)]
pub struct JsonLines;

fn emit(event: &ProgressEvent) {
    if let Ok(mut line) = serde_json::to_vec(event) {
        line.push(b'\n');
        // One write per line, so lines never interleave with other stderr output.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

impl Progress for JsonLines {
    fn start(&self, operation: Operation, name: &str, total: Option<u64>) -> Box<dyn Step> {
        let now = Instant::now();
        let state = StepState {
            operation,
            name: name.to_owned(),
            total,
            bytes: 0,
            started: now,
            last_emitted: Some(now),
        };
        emit(&state.event("start", now, None));
        Box::new(JsonStep(Mutex::new(state)))
    }
}

struct JsonStep(Mutex<StepState>);

impl Step for JsonStep {
    fn advance(&self, bytes: u64) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(event) = state.advance(bytes, Instant::now()) {
            drop(state);
            emit(&event);
        }
    }

    fn finish(self: Box<Self>, ok: bool) {
        let mut state = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        emit(&state.finish(ok, Instant::now()));
    }
}

/// Terminal progress bars on stderr, one per running step: bytes, total, rate and ETA (a
/// spinner when the total is unknown). Cleared when the step ends, so the command's own output
/// follows undisturbed.
pub struct Bar {
    bars: indicatif::MultiProgress,
}

/// Redraws per second at most: smooth to the eye, cheap for a fast save.
const BAR_HZ: u8 = 15;

impl Bar {
    /// Draws on stderr whether or not it is a terminal: `auto` has already checked, and `tty`
    /// is the user saying it is one (indicatif's own stderr target would stay hidden there).
    pub fn new() -> Self {
        let stderr = Box::new(console::Term::buffered_stderr());
        let target = indicatif::ProgressDrawTarget::term_like_with_hz(stderr, BAR_HZ);
        Self {
            bars: indicatif::MultiProgress::with_draw_target(target),
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

const BAR_TEMPLATE: &str =
    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
const SPINNER_TEMPLATE: &str = "{msg} {spinner} {bytes} {binary_bytes_per_sec}";

impl Progress for Bar {
    fn start(&self, operation: Operation, name: &str, total: Option<u64>) -> Box<dyn Step> {
        let (bar, template) = match total {
            Some(total) => (indicatif::ProgressBar::new(total), BAR_TEMPLATE),
            None => (indicatif::ProgressBar::new_spinner(), SPINNER_TEMPLATE),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let verb = match operation {
            Operation::Save => "saving",
            Operation::Upload => "uploading",
            Operation::Download => "downloading",
            Operation::Restore => "restoring",
            Operation::Rekey => "re-encrypting",
            Operation::Verify => "verifying",
        };
        bar.set_message(format!("{verb} {name}"));
        Box::new(BarStep(self.bars.add(bar)))
    }
}

struct BarStep(indicatif::ProgressBar);

impl Step for BarStep {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(self: Box<Self>, _ok: bool) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
