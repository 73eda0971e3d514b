//! The server's delta capture task: while `etcd-snapshot-delta` is on, it keeps a session
//! watching etcd for the chain of the newest full snapshot, and starts a new one when a newer
//! full snapshot appears, the configuration changes, or a session fails.
//!
//! Re-anchoring: with no full snapshot to chain from (none yet, or none with a recorded
//! revision), or after etcd compacted past the chain, the task asks the daemon for a full
//! snapshot (`ReanchorRequest`) and waits for it; a compacted chain simply ends at its last
//! segment (it has no hole, so it stays restorable up to there) and is never resumed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::chain::{Anchor, FlushPolicy, chain_reach, choose_anchor};
use super::files::ChainDir;
use super::session::{Session, SessionEnd, Storing};
use crate::config::{DesiredConfig, Resolved};
use crate::errors::error_chain;
use crate::kube::KubeAccess;
use crate::snapshot::hashkv::recorded_revision;
use crate::snapshot::record::SnapshotRecord;
use crate::store::local::LocalStore;
use crate::telemetry::metrics::Metrics;

/// How long the capture waits before asking again for a full snapshot that has not come.
const REQUEST_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// The longest pause between rounds (retrying a failed session, waiting for an anchor).
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Why the capture asks for a full snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReanchorRequest {
    /// There is no full snapshot with a recorded revision to chain from.
    NoAnchor,
    /// etcd compacted past the chain.
    Compacted,
}

/// The capture task's state between sessions.
struct Capture {
    config: watch::Receiver<Arc<Resolved>>,
    metrics: Arc<Metrics>,
    /// Reads the encryption Secret, when one is configured, for each segment's recipients.
    kube: KubeAccess,
    reanchor: mpsc::Sender<ReanchorRequest>,
    cancel: CancellationToken,
    /// A chain etcd compacted past: never resumed; the next needs a newer full snapshot.
    ended_anchor: Option<String>,
    /// The last request for a full snapshot, while none has anchored a chain since.
    requested: Option<Requested>,
}

/// A request for a full snapshot: when, and the newest snapshot then.
struct Requested {
    at: Instant,
    newest_then: Option<String>,
    /// A snapshot came since but cannot anchor (said once).
    said_unusable: bool,
}

/// What to do after a round.
enum Next {
    Again,
    Pause,
    Shutdown,
}

/// Runs until `cancel`; the last session's open segment is written out before it returns.
pub async fn run(
    config: watch::Receiver<Arc<Resolved>>,
    metrics: Arc<Metrics>,
    kube: KubeAccess,
    reanchor: mpsc::Sender<ReanchorRequest>,
    cancel: CancellationToken,
) {
    let mut capture = Capture {
        config,
        metrics,
        kube,
        reanchor,
        cancel,
        ended_anchor: None,
        requested: None,
    };
    loop {
        let resolved = Arc::clone(&capture.config.borrow_and_update());
        let config = &resolved.config;
        let next = if config.snapshot.delta.enabled {
            capture.round(config).await
        } else {
            capture.wait_for_change().await
        };
        // A pause is short whatever the period: a failed session is retried soon, and a full
        // snapshot being taken to anchor the chain is found soon after it is saved.
        let pause = config.snapshot.delta.period.min(LONGEST_PAUSE);
        match next {
            Next::Again => {}
            Next::Pause => {
                if !capture.pause(pause).await {
                    return;
                }
            }
            Next::Shutdown => return,
        }
    }
}

impl Capture {
    /// One session over the newest anchor's chain, or a request for a full snapshot.
    async fn round(&mut self, config: &DesiredConfig) -> Next {
        let (anchor, newest) = match survey(config) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "delta capture: failed to list the full snapshots");
                return Next::Pause;
            }
        };
        let usable = anchor.filter(|a| self.ended_anchor.as_deref() != Some(a.file_name.as_str()));
        let Some(anchor) = usable else {
            let why = match self.ended_anchor {
                Some(_) => ReanchorRequest::Compacted,
                None => ReanchorRequest::NoAnchor,
            };
            self.request_full_snapshot(why, newest);
            return Next::Pause;
        };
        self.requested = None;
        self.ended_anchor = None;
        match self.session(config, &anchor).await {
            Ok(SessionEnd::Cancelled) => Next::Shutdown,
            Ok(SessionEnd::Stopped) => Next::Again,
            Ok(SessionEnd::Compacted { compact_revision }) => {
                tracing::warn!(
                    anchor = %anchor.file_name,
                    compact_revision,
                    "etcd compacted past the delta chain: the chain ends at its last segment and a full snapshot re-anchors the next one"
                );
                self.metrics.delta().reanchored();
                self.ended_anchor = Some(anchor.file_name);
                Next::Again
            }
            Err(e) => {
                tracing::error!(anchor = %anchor.file_name, error = %e, "delta capture stopped; starting again");
                Next::Pause
            }
        }
    }

    /// Runs one session; errors come back as text with their sources.
    async fn session(&self, config: &DesiredConfig, anchor: &Anchor) -> Result<SessionEnd, String> {
        let chain =
            ChainDir::new(&config.snapshot.dir, &anchor.file_name).map_err(|e| error_chain(&e))?;
        let removed = chain.remove_temp_files().map_err(|e| error_chain(&e))?;
        let segments = chain.list().map_err(|e| error_chain(&e))?;
        let pairs: Vec<(i64, i64)> = segments.iter().map(|s| (s.from, s.to)).collect();
        let reach = chain_reach(anchor.revision, &pairs);
        if !reach.stray.is_empty() {
            tracing::warn!(chain = %chain.path().display(), stray = ?reach.stray, "delta segments off the chain are ignored");
        }
        let client = crate::etcd::client::connect(&config.etcd)
            .await
            .map_err(|e| error_chain(&e))?;
        let delta = &config.snapshot.delta;
        let policy = FlushPolicy {
            period: delta.period,
            max_size: delta.max_size,
            hashkv_interval: delta.hashkv_interval,
        };
        let from = reach.resume_from();
        tracing::info!(anchor = %anchor.file_name, from, temp_files_removed = removed, "delta capture started");
        let metrics = Arc::clone(&self.metrics);
        let storing = Storing {
            compress: config.snapshot.compress,
            encryption: config.snapshot.encryption.clone(),
            kube: self.kube.clone(),
        };
        let mut session = Session::new(
            client,
            chain,
            anchor.clone(),
            from,
            policy,
            metrics,
            storing,
        );
        let tick = || {
            // A config watcher that is gone sends no more changes.
            let changed = self.config.has_changed().unwrap_or(false);
            // A newer full snapshot starts the next chain; a deleted or pruned anchor ends this
            // one (its chain goes with it, `delta::retention`), so nothing is written after it.
            let chosen = survey(config).ok().map(|(chosen, _)| chosen);
            let moved = match &chosen {
                Some(Some(newest)) if newest.file_name != anchor.file_name => {
                    tracing::info!(anchor = %anchor.file_name, "a newer full snapshot starts the next delta chain");
                    true
                }
                Some(None) => {
                    tracing::info!(anchor = %anchor.file_name, "the delta chain's full snapshot is gone: its chain ends");
                    true
                }
                _ => false,
            };
            changed || moved
        };
        let end = session.run(&self.cancel, tick).await;
        end.map_err(|e| error_chain(&e))
    }

    /// Asks the daemon for a full snapshot, at most once per `REQUEST_AGAIN_AFTER`, and not
    /// again once one was taken that cannot anchor (it has no recorded revision: etcd refuses
    /// the keyspace hash at a revision that is also its compact revision): asking again would
    /// only pile up snapshots; the next one taken anchors the chain.
    fn request_full_snapshot(&mut self, why: ReanchorRequest, newest: Option<String>) {
        match ask(self.requested.as_ref(), &newest, Instant::now()) {
            Ask::Wait => {}
            Ask::SayUnusable => {
                tracing::warn!(
                    snapshot = newest.as_deref().unwrap_or_default(),
                    "the full snapshot taken for the delta chain has no recorded revision and cannot anchor it; the next snapshot will"
                );
                if let Some(requested) = &mut self.requested {
                    requested.said_unusable = true;
                }
            }
            Ask::Request => {
                tracing::info!(reason = ?why, "delta capture needs a full snapshot to chain from; requesting one");
                // A full channel means a request is already pending.
                let _ = self.reanchor.try_send(why);
                self.requested = Some(Requested {
                    at: Instant::now(),
                    newest_then: newest,
                    said_unusable: false,
                });
            }
        }
    }

    /// Waits for a config change (or shutdown) while the capture is off.
    async fn wait_for_change(&mut self) -> Next {
        tokio::select! {
            _ = self.cancel.cancelled() => Next::Shutdown,
            changed = self.config.changed() => match changed {
                Ok(()) => Next::Again,
                Err(_) => Next::Shutdown,
            },
        }
    }

    /// Sleeps `period` (or until shutdown: false).
    async fn pause(&self, period: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(period) => true,
        }
    }
}

/// What to do while no snapshot can anchor the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Ask the daemon for a full snapshot.
    Request,
    /// A request is recent enough, or a snapshot came and could not anchor (already said).
    Wait,
    /// A snapshot came since the request and cannot anchor: say so once, ask no more.
    SayUnusable,
}

/// The decision behind `request_full_snapshot`: ask at once, again after
/// `REQUEST_AGAIN_AFTER` while no snapshot has come, and never again once one came that could
/// not anchor (`newest` differs from the newest at the request).
fn ask(requested: Option<&Requested>, newest: &Option<String>, now: Instant) -> Ask {
    match requested {
        None => Ask::Request,
        Some(r) if r.newest_then != *newest && r.said_unusable => Ask::Wait,
        Some(r) if r.newest_then != *newest => Ask::SayUnusable,
        Some(r) if now.saturating_duration_since(r.at) < REQUEST_AGAIN_AFTER => Ask::Wait,
        Some(_) => Ask::Request,
    }
}

/// The newest local full snapshot with a recorded revision, and the newest of all.
fn survey(
    config: &DesiredConfig,
) -> Result<(Option<Anchor>, Option<String>), crate::store::StoreError> {
    let snapshot = &config.snapshot;
    let store = LocalStore::open(&snapshot.dir, &config.node_name, snapshot.dir_is_default)?;
    // Listed oldest first.
    let records = store.list()?;
    let newest = records.last().map(|r| r.file_name.clone());
    Ok((choose_anchor(records.iter().filter_map(anchor_of)), newest))
}

/// The anchor a listed snapshot offers: its recorded revision (with or without a keyspace
/// hash, `hashkv::recorded_revision`), when it has one.
pub fn anchor_of(record: &SnapshotRecord) -> Option<Anchor> {
    let entries = record.metadata.as_ref()?;
    let revision = recorded_revision(entries)?;
    Some(Anchor {
        file_name: record.file_name.clone(),
        revision,
        created_unix: record.created_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_snapshot_is_asked_for_once_per_interval_and_never_piled_up() {
        let t0 = Instant::now();
        let old = Some("s-n1-1".to_string());
        assert_eq!(ask(None, &old, t0), Ask::Request);
        let mut asked = Requested {
            at: t0,
            newest_then: old.clone(),
            said_unusable: false,
        };
        assert_eq!(
            ask(Some(&asked), &old, t0 + Duration::from_secs(5)),
            Ask::Wait
        );
        let later = t0 + REQUEST_AGAIN_AFTER;
        assert_eq!(
            ask(Some(&asked), &old, later),
            Ask::Request,
            "none came: ask again"
        );
        // One came that cannot anchor: said once, then no more requests, however long.
        let new = Some("s-n1-2".to_string());
        assert_eq!(ask(Some(&asked), &new, t0), Ask::SayUnusable);
        asked.said_unusable = true;
        assert_eq!(ask(Some(&asked), &new, later), Ask::Wait);
        assert_eq!(
            ask(Some(&asked), &new, t0 + 100 * REQUEST_AGAIN_AFTER),
            Ask::Wait
        );
    }
}
