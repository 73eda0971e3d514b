//! Reloading the configuration when the config file or a drop-in changes.
//!
//! Watches the config file's directory (non-recursively, filtered to the file) and the drop-in
//! dir (picked up when it appears later), waits for a quiet period, re-evaluates, and publishes
//! a changed, valid configuration on a watch channel. An invalid edit is logged and the last good
//! configuration stays in force. Never decides what a change means for the running tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::ConfigEngine;
use super::file::is_drop_in_name;
use super::resolve::Resolved;

/// Editors write a file in several steps; wait this long after the last event.
const QUIET_PERIOD: Duration = Duration::from_millis(300);
/// How often to retry watching a directory that does not exist yet.
const RETRY_WATCH: Duration = Duration::from_secs(2);

/// Runs until `cancel`, sending each changed, valid configuration on `tx`.
pub async fn run(
    engine: ConfigEngine,
    tx: watch::Sender<Arc<Resolved>>,
    cancel: CancellationToken,
) {
    let (events_tx, events) = mpsc::unbounded_channel::<notify::Result<Event>>();
    let mut watcher = match notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    }) {
        Ok(w) => w,
        Err(e) => {
            error!(
                error = &e as &dyn std::error::Error,
                "failed to start the config file watcher; config changes need a restart"
            );
            cancel.cancelled().await;
            return;
        }
    };
    follow(&engine, &tx, &mut watcher, events, &cancel).await;
}

/// Adding and removing directory watches: notify's watcher, or a test's stand-in.
trait DirWatcher {
    fn watch_dir(&mut self, dir: &Path) -> notify::Result<()>;
    fn unwatch_dir(&mut self, dir: &Path);
}

impl DirWatcher for RecommendedWatcher {
    fn watch_dir(&mut self, dir: &Path) -> notify::Result<()> {
        self.watch(dir, RecursiveMode::NonRecursive)
    }

    fn unwatch_dir(&mut self, dir: &Path) {
        let _ = self.unwatch(dir);
    }
}

/// The reload loop: reacts to `events` (after a quiet period) and retries watching missing
/// directories, until `cancel` or the event channel closes. Separate from `run` so tests can
/// feed it events on tokio's paused clock (`clock_tests`).
async fn follow(
    engine: &ConfigEngine,
    tx: &watch::Sender<Arc<Resolved>>,
    watcher: &mut impl DirWatcher,
    mut events: mpsc::UnboundedReceiver<notify::Result<Event>>,
    cancel: &CancellationToken,
) {
    let mut watches = Watches::new(engine);
    watches.ensure(watcher);
    // Anything written between the caller's first evaluation and the watch setup counts too.
    reload(engine, tx);
    loop {
        let retry = watches.missing();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep_if(retry) => {
                if watches.ensure(watcher) {
                    reload(engine, tx);
                }
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                if !watches.relevant(&event) {
                    continue;
                }
                if !settle(&mut events, &mut watches, cancel).await {
                    return;
                }
                watches.ensure(watcher);
                reload(engine, tx);
            }
        }
    }
}

async fn sleep_if(enabled: bool) {
    if enabled {
        tokio::time::sleep(RETRY_WATCH).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// Waits until no relevant event arrived for `QUIET_PERIOD`; false when cancelled or closed.
async fn settle(
    events: &mut mpsc::UnboundedReceiver<notify::Result<Event>>,
    watches: &mut Watches,
    cancel: &CancellationToken,
) -> bool {
    let mut deadline = tokio::time::Instant::now() + QUIET_PERIOD;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep_until(deadline) => return true,
            event = events.recv() => match event {
                None => return false,
                Some(event) if watches.relevant(&event) => {
                    deadline = tokio::time::Instant::now() + QUIET_PERIOD;
                }
                Some(_) => {}
            },
        }
    }
}

/// Which of the two directories are being watched.
struct Watches {
    config_file: PathBuf,
    parent: PathBuf,
    drop_in: PathBuf,
    parent_watched: bool,
    drop_in_watched: bool,
}

impl Watches {
    fn new(engine: &ConfigEngine) -> Self {
        let config_file = engine.config_file().to_path_buf();
        let parent = match config_file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self {
            config_file,
            parent,
            drop_in: engine.drop_in_dir(),
            parent_watched: false,
            drop_in_watched: false,
        }
    }

    fn missing(&self) -> bool {
        !self.parent_watched || !self.drop_in_watched
    }

    /// Adds watches for directories that now exist; true when one was added.
    fn ensure(&mut self, watcher: &mut impl DirWatcher) -> bool {
        let mut added = false;
        for (dir, watched) in [
            (&self.parent, &mut self.parent_watched),
            (&self.drop_in, &mut self.drop_in_watched),
        ] {
            if *watched && !dir.is_dir() {
                watcher.unwatch_dir(dir);
                *watched = false;
            }
            if !*watched && dir.is_dir() {
                match watcher.watch_dir(dir) {
                    Ok(()) => {
                        debug!(dir = %dir.display(), "watching for config changes");
                        *watched = true;
                        added = true;
                    }
                    Err(e) => {
                        warn!(dir = %dir.display(), error = &e as &dyn std::error::Error, "failed to watch config directory")
                    }
                }
            }
        }
        added
    }

    /// True for events that may change the configuration; also notes a re-created drop-in dir.
    fn relevant(&mut self, event: &notify::Result<Event>) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!(
                    error = e as &dyn std::error::Error,
                    "config file watcher reported an error"
                );
                return true;
            }
        };
        // Our own reads open the files; only writes, creations, removals and renames matter.
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return false;
        }
        let mut relevant = false;
        for path in &event.paths {
            if path == &self.drop_in && matches!(event.kind, EventKind::Create(_)) {
                // A new directory under the old name: its old watch (if any) is stale.
                self.drop_in_watched = false;
            }
            relevant |= self.concerns(path);
        }
        relevant
    }

    fn concerns(&self, path: &Path) -> bool {
        path == self.config_file
            || path == self.drop_in
            || (path.parent() == Some(self.drop_in.as_path()) && is_drop_in_name(path))
            // Kubernetes ConfigMap mounts swap a `..data` symlink instead of writing the file.
            || (path.parent() == Some(self.parent.as_path())
                && path.file_name().is_some_and(|n| n == "..data"))
    }
}

/// Re-evaluates and publishes a changed configuration, or logs why it is invalid.
fn reload(engine: &ConfigEngine, tx: &watch::Sender<Arc<Resolved>>) {
    match engine.evaluate(None) {
        Ok(new) => {
            let changed = changed_keys(&tx.borrow(), &new);
            if changed.is_empty() {
                debug!("configuration files changed, effective configuration did not");
                return;
            }
            for warning in &new.warnings {
                warn!("{warning}");
            }
            info!(changed = %changed.join(", "), "configuration reloaded");
            tx.send_replace(Arc::new(new));
        }
        Err(errors) => {
            for problem in &errors.0 {
                error!(%problem, "invalid configuration");
            }
            error!(
                problems = errors.0.len(),
                "configuration change rejected; keeping the last good configuration"
            );
        }
    }
}

/// Keys whose value or source differs; secrets are compared by value, not by their redaction.
pub fn changed_keys(old: &Resolved, new: &Resolved) -> Vec<String> {
    let mut changed: Vec<String> = new
        .shown
        .iter()
        .filter(|n| !old.shown.iter().any(|o| o == *n))
        .map(|n| n.key.clone())
        .collect();
    let same = |a: &Option<secrecy::SecretString>, b: &Option<secrecy::SecretString>| match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    };
    // Every secret key of the table must appear here, since `shown` hides its value.
    let s3_secret = |r: &Resolved, key: &str| {
        let s3 = r.config.s3.as_ref()?;
        match key {
            "etcd-s3-access-key" => s3.access_key.clone(),
            "etcd-s3-secret-key" => s3.secret_key.clone(),
            _ => s3.session_token.clone(),
        }
    };
    let s3_pairs = [
        "etcd-s3-access-key",
        "etcd-s3-secret-key",
        "etcd-s3-session-token",
    ]
    .map(|key| (key, s3_secret(old, key), s3_secret(new, key)));
    let plain = [
        ("token", old.config.token.clone(), new.config.token.clone()),
        (
            "etcd-token",
            old.config.api.token.clone(),
            new.config.api.token.clone(),
        ),
    ];
    for (key, a, b) in plain.iter().chain(s3_pairs.iter()) {
        if !same(a, b) && !changed.iter().any(|k| k == key) {
            changed.push(key.to_string());
        }
    }
    changed
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "watch_clock_tests.rs"]
mod clock_tests;
