//! One capture session: a watch on the whole keyspace from the chain's next revision, its
//! events appended to the open segment as they arrive, the segment written out at its period,
//! its size limit, or when the session ends (shutdown, configuration change, a newer full
//! snapshot, a compaction), always with a final flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{WatchOptions, WatchResponse};
use tokio_util::sync::CancellationToken;

use super::chain::{Anchor, FlushPolicy, FlushReason, WatchVerdict, judge_response};
use super::events::{RawEvent, group_events};
use super::files::{ChainDir, FilesError, OpenSegment};
use super::segment::{SegmentHash, SegmentHeader};
use crate::config::encryption::EncryptionSettings;
use crate::kube::KubeAccess;
use crate::kube::encryption_secret::EncryptionSecretError;
use crate::telemetry::metrics::Metrics;

/// The largest watch response accepted: one revision is never split, and etcd's request limit
/// can be raised well above the client's 4 MiB default.
const MAX_WATCH_MESSAGE: usize = 256 << 20;
/// The longest wait the session schedules: a period longer than this (the config accepts any
/// Go duration) behaves as this, so no deadline overflows.
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a segment's closing waits for the keyspace hash at its end.
const HASHKV_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a session ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown.
    Cancelled,
    /// The caller's tick asked the session to stop (configuration change, newer anchor).
    Stopped,
    /// etcd compacted past the chain's next revision: the chain ends at its last segment.
    Compacted { compact_revision: i64 },
}

/// Why a session failed; the capture logs it and starts again after a pause.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("failed to watch etcd from revision {from}")]
    Watch {
        from: i64,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd closed the watch stream")]
    Closed,
    #[error("etcd cancelled the watch: {reason}")]
    WatchCancelled { reason: String },
    #[error("etcd sent revision {revision} while the chain expected {expected} or later")]
    OutOfOrder { revision: i64, expected: i64 },
    #[error("failed to write the delta segment")]
    Files(#[source] FilesError),
    #[error("failed to read the encryption recipients for a delta segment; none was written")]
    Keys(#[source] Box<EncryptionSecretError>),
}

/// How the session's segments are stored: compressed with `etcd-snapshot-compress`, encrypted
/// to the snapshots' recipients, read again as each segment opens (as every save reads them),
/// so a rotated recipients file or encryption Secret applies to the next segment.
#[derive(Debug, Clone)]
pub struct Storing {
    pub compress: bool,
    pub encryption: EncryptionSettings,
    pub kube: KubeAccess,
}

/// The open segment and what is known about its content.
struct Open {
    segment: OpenSegment,
    opened: Instant,
    /// Unix ms when the last response with events arrived.
    last_event_ms: i64,
}

/// A running session over one chain.
pub struct Session {
    pub client: etcd_client::Client,
    pub chain: ChainDir,
    pub anchor: Anchor,
    /// The next revision the chain expects.
    pub next: i64,
    pub policy: FlushPolicy,
    pub metrics: Arc<Metrics>,
    pub storing: Storing,
    open: Option<Open>,
    ids: (u64, u64),
    /// The arrival time given to the last group: the next is never earlier, so a restore to a
    /// wall-clock time finds one cut in revision order even if the clock steps back.
    last_arrival_ms: i64,
    /// When a segment end last recorded etcd's keyspace hash.
    last_hash: Option<Instant>,
}

impl Session {
    pub fn new(
        client: etcd_client::Client,
        chain: ChainDir,
        anchor: Anchor,
        next: i64,
        policy: FlushPolicy,
        metrics: Arc<Metrics>,
        storing: Storing,
    ) -> Self {
        Self {
            client,
            chain,
            anchor,
            next,
            policy,
            metrics,
            storing,
            open: None,
            ids: (0, 0),
            last_arrival_ms: 0,
            last_hash: None,
        }
    }

    /// Watches until `cancel` fires, `tick` says stop, etcd compacts past the chain, or an error.
    /// `tick` runs every period while nothing else happens: it may ask the session to stop
    /// (a newer anchor). Whatever way it ends, the open segment is written out first (on an
    /// error, as far as it is valid).
    pub async fn run(
        &mut self,
        cancel: &CancellationToken,
        mut tick: impl FnMut() -> bool,
    ) -> Result<SessionEnd, SessionError> {
        let result = self.watch(cancel, &mut tick).await;
        if let Err(SessionError::Files(_)) = &result {
            // A failed write may have left the temp file short of what was hashed: drop it
            // (its events are fetched again by the next session).
            self.open = None;
        }
        let flushed = self.flush(FlushReason::Stop).await;
        let end = result?;
        flushed.map(|()| end)
    }

    async fn watch(
        &mut self,
        cancel: &CancellationToken,
        tick: &mut impl FnMut() -> bool,
    ) -> Result<SessionEnd, SessionError> {
        let from = self.next;
        let options = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(from)
            .with_progress_notify();
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_WATCH_MESSAGE);
        let stream = client
            .watch("", Some(options))
            .await
            .map_err(|source| SessionError::Watch { from, source })?;
        let (mut requests, mut responses) = stream.split();
        let period = self.policy.period.min(LONGEST_WAIT);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.open.as_ref().map(|o| o.opened + period);
            let flush_at = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Ok(SessionEnd::Cancelled),
                _ = flush_at => self.flush(FlushReason::Period).await?,
                _ = ticker.tick() => {
                    if tick() {
                        return Ok(SessionEnd::Stopped);
                    }
                    // With nothing pending, ask etcd to confirm the watch is current: the
                    // answer moves the recovery point on an idle cluster.
                    if self.open.is_none() {
                        let _ = requests.request_progress().await;
                    }
                }
                message = responses.message() => {
                    let message = message.map_err(|source| SessionError::Watch { from, source })?;
                    let Some(response) = message else {
                        return Err(SessionError::Closed);
                    };
                    if let Some(end) = self.handle(response).await? {
                        return Ok(end);
                    }
                }
            }
        }
    }

    /// Appends a response's events; returns the end of the session when etcd compacted past it.
    async fn handle(
        &mut self,
        response: WatchResponse,
    ) -> Result<Option<SessionEnd>, SessionError> {
        let now_ms = unix_ms();
        if let Some(header) = response.header() {
            self.ids = (header.cluster_id(), header.member_id());
        }
        let raw: Vec<RawEvent> = response
            .events()
            .iter()
            .filter_map(RawEvent::from_etcd)
            .collect();
        let verdict = judge_response(
            self.next,
            response.compact_revision(),
            response.canceled(),
            response.cancel_reason(),
            raw.first().map(|e| e.mod_revision),
        );
        match verdict {
            WatchVerdict::Continue => {}
            WatchVerdict::Compacted { compact_revision } => {
                return Ok(Some(SessionEnd::Compacted { compact_revision }));
            }
            WatchVerdict::Cancelled { reason } => {
                return Err(SessionError::WatchCancelled { reason });
            }
            WatchVerdict::OutOfOrder { revision, expected } => {
                return Err(SessionError::OutOfOrder { revision, expected });
            }
        }
        if raw.is_empty() {
            if self.open.is_none() && !response.created() {
                self.metrics.delta().caught_up(now_ms);
            }
            return Ok(None);
        }
        let expected = self.next;
        self.last_arrival_ms = self.last_arrival_ms.max(now_ms);
        let arrived = self.last_arrival_ms;
        let groups = group_events(raw, arrived)
            .map_err(|revision| SessionError::OutOfOrder { revision, expected })?;
        for group in &groups {
            let open = self.open_segment().await?;
            open.segment.push(group).map_err(SessionError::Files)?;
            open.last_event_ms = arrived;
            self.next = group.revision + 1;
        }
        let size = self.open.as_ref().map_or(0, |o| o.segment.size());
        if self.policy.due(size, Duration::ZERO) == Some(FlushReason::Size) {
            self.flush(FlushReason::Size).await?;
        }
        Ok(None)
    }

    /// The open segment, opened now (starting at the chain's next revision) when there is none.
    /// Recipients that cannot be read fail it: never a plaintext segment instead (the events
    /// are fetched again by the next session).
    async fn open_segment(&mut self) -> Result<&mut Open, SessionError> {
        if self.open.is_none() {
            let storing = &self.storing;
            let recipients = crate::kube::encryption_secret::current_recipients(
                &storing.kube,
                &storing.encryption,
            )
            .await
            .map_err(|e| SessionError::Keys(Box::new(e)))?;
            let header = SegmentHeader {
                cluster_id: self.ids.0,
                member_id: self.ids.1,
                anchor: self.anchor.file_name.clone(),
                anchor_revision: self.anchor.revision,
                from_revision: self.next,
                opened_unix: unix_ms() / 1000,
            };
            // Off the runtime's threads: it creates files, and a passphrase runs scrypt.
            let (chain, compress) = (self.chain.clone(), storing.compress);
            let segment = tokio::task::spawn_blocking(move || {
                chain.open(&header, compress, recipients.as_ref())
            })
            .await
            .map_err(|e| joined(&self.chain, "open a delta segment in", e))?
            .map_err(SessionError::Files)?;
            self.open = Some(Open {
                segment,
                opened: Instant::now(),
                last_event_ms: 0,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Writes the open segment out (with the keyspace hash at its end when one is due and etcd
    /// gives it in time) and publishes it. Nothing to do when no segment is open.
    async fn flush(&mut self, reason: FlushReason) -> Result<(), SessionError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let Some(to) = open.segment.last_revision() else {
            return Ok(());
        };
        let since = self.last_hash.map(|at| at.elapsed());
        let hash = match self.policy.hash_due(reason, since) {
            true => self.hashkv_at(to).await,
            false => None,
        };
        if hash.is_some() {
            self.last_hash = Some(Instant::now());
        }
        let last_event_ms = open.last_event_ms;
        let closed_ms = unix_ms();
        // Whatever arrives next arrives after this close, even if the clock steps back: a
        // restore to a time before the close then never reads the next segment.
        self.last_arrival_ms = self.last_arrival_ms.max(closed_ms);
        let published = tokio::task::spawn_blocking(move || {
            open.segment.finish(last_event_ms, closed_ms, hash)
        })
        .await
        .map_err(|e| joined(&self.chain, "finish a delta segment in", e))?
        .map_err(SessionError::Files)?;
        self.metrics
            .delta()
            .segment_written(to, published.file.size, last_event_ms);
        let (chain, anchor) = (self.chain.clone(), self.anchor.clone());
        let record = move || super::window::record_published(&chain, &anchor, to, last_event_ms);
        let _ = tokio::task::spawn_blocking(record).await;
        tracing::debug!(
            segment = %published.file.path.display(),
            from = published.file.from,
            to,
            events = published.footer.event_count,
            bytes = published.file.size,
            hashkv = hash.is_some(),
            reason = reason.label(),
            "delta segment written"
        );
        Ok(())
    }

    /// etcd's `HashKV` at `revision`; None when it does not answer in time or the revision is
    /// compacted (the segment is still written, without a hash).
    async fn hashkv_at(&mut self, revision: i64) -> Option<SegmentHash> {
        let asked = tokio::time::timeout(HASHKV_TIMEOUT, self.client.hash_kv(revision)).await;
        match asked {
            Ok(Ok(answer)) => Some(SegmentHash {
                hash: answer.hash(),
                compact_revision: answer.compact_version(),
            }),
            Ok(Err(e)) => {
                tracing::debug!(revision, error = %e, "no keyspace hash for the delta segment");
                None
            }
            Err(_) => None,
        }
    }
}

/// A blocking segment task that did not return (it panicked or the runtime is going away).
fn joined(chain: &ChainDir, action: &'static str, e: tokio::task::JoinError) -> SessionError {
    SessionError::Files(FilesError::Io {
        action,
        path: chain.path().to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Unix time in milliseconds.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
