//! Scheduled snapshots: the cron loop. It follows config changes (schedule, disable, name, dir,
//! compression, retention) as they arrive on the watch channel, without a restart.
//!
//! Saves run on the daemon's task tracker so that shutdown lets a running snapshot finish. A
//! tick that arrives while any save is running is skipped and logged, never queued. A tick that
//! finds the writer held by something brief (the reconcile, the S3 backfill, recording a drill's
//! verdict) waits for it and saves: those never cost a scheduled snapshot.

pub mod drills;
pub mod reanchor;
pub mod reconcile;
pub mod segments;

use std::sync::Arc;

use chrono::{DateTime, Local};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Resolved;
use crate::errors::error_chain;
use crate::operations::{Operations, SaveKind};

/// Runs until `cancel`.
pub async fn run(
    ops: Arc<Operations>,
    config: watch::Receiver<Arc<Resolved>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    run_with_clock(ops, config, tracker, cancel, Local::now).await
}

/// `run` with the wall clock passed in: cron specs are wall-clock times, while the waits are
/// tokio sleeps, so tests drive both from tokio's paused clock (`clock_tests`).
async fn run_with_clock(
    ops: Arc<Operations>,
    mut config: watch::Receiver<Arc<Resolved>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    now: impl Fn() -> DateTime<Local>,
) {
    loop {
        let current = Arc::clone(&config.borrow_and_update());
        let settings = &current.config.snapshot;
        let next = if settings.disabled {
            None
        } else {
            settings.schedule.next_fire(&now())
        };
        let period = next.as_ref().and_then(|_| settings.schedule.period(&now()));
        ops.metrics().set_schedule_period(period);
        match &next {
            Some(at) => {
                tracing::debug!(schedule = %settings.schedule, next = %at, "next scheduled snapshot")
            }
            None if settings.disabled => tracing::info!("scheduled snapshots are disabled"),
            None => tracing::warn!(schedule = %settings.schedule, "schedule never fires again"),
        }
        let sleep = async {
            match next {
                Some(at) => {
                    let wait = (at - now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::info!(schedule = %config.borrow().config.snapshot.schedule, "snapshot schedule re-evaluated after a config change");
            }
            _ = sleep => tick(&ops, &current, &tracker, &cancel),
        }
    }
}

/// One cron tick: start a scheduled save unless one is running (then, with
/// verify-after-save, a drill of what it saved).
fn tick(
    ops: &Arc<Operations>,
    current: &Arc<Resolved>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let guard = match ops.try_begin_write() {
        Some(guard) => Some(guard),
        None if ops.save_running() => {
            tracing::warn!("skipping scheduled snapshot: a snapshot is already in progress");
            ops.metrics().inc_skipped_tick();
            return;
        }
        None => None,
    };
    // A save waiting for the writer counts as running, so the next tick skips rather than
    // queueing a second one behind it.
    let waiting = guard.is_none().then(|| ops.mark_save_running());
    let ops = Arc::clone(ops);
    let current = Arc::clone(current);
    let (drills, cancel) = (tracker.clone(), cancel.clone());
    tracker.spawn(async move {
        let guard = match guard {
            Some(guard) => guard,
            None => {
                tracing::debug!("scheduled snapshot waits for a brief writer to finish");
                tokio::select! {
                    // Shutting down: a save that has not started yet is not started.
                    _ = cancel.cancelled() => return,
                    guard = ops.begin_write() => guard,
                }
            }
        };
        let saved = ops
            .save_locked(&current.config, SaveKind::Scheduled, guard)
            .await;
        drop(waiting);
        match saved {
            Ok(outcome) => {
                drills::after_save(&ops, &current.config, &outcome.created, &drills, &cancel)
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "failed to take scheduled snapshot")
            }
        }
    });
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod clock_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layer, RawValue, Source, resolve::resolve};
    use crate::telemetry::metrics::Metrics;

    fn resolved() -> Arc<Resolved> {
        let mut flags = Layer::new();
        flags.set(
            "node-name",
            RawValue::String("n1".into()),
            Source::Flag("--node-name".into()),
        );
        Arc::new(resolve(&[&flags]).expect("defaults resolve"))
    }

    #[tokio::test]
    async fn a_tick_during_a_running_save_is_skipped_and_counted() {
        let ops = Arc::new(Operations::new(Arc::new(Metrics::new())));
        let tracker = TaskTracker::new();
        let writer = ops.try_begin_write().expect("writer free");
        let running_save = (writer, ops.mark_save_running());
        let cancel = CancellationToken::new();
        tick(&ops, &resolved(), &tracker, &cancel);
        tick(&ops, &resolved(), &tracker, &cancel);
        assert!(tracker.is_empty(), "no save may start while one runs");
        let metrics = ops.metrics().render();
        assert!(
            metrics.contains("etcd_snapshot_skipped_ticks_total 2"),
            "{metrics}"
        );
        drop(running_save);
        assert!(
            ops.try_begin_write().is_some(),
            "the writer is free again afterwards"
        );
    }

    #[tokio::test]
    async fn a_tick_waits_out_a_brief_writer_and_the_next_tick_does_not_queue_behind_it() {
        let ops = Arc::new(Operations::new(Arc::new(Metrics::new())));
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        // The reconcile or a drill's verdict holds the writer: not a save.
        let brief_writer = ops.try_begin_write().expect("writer free");
        tick(&ops, &resolved(), &tracker, &cancel);
        assert_eq!(tracker.len(), 1, "the scheduled save waits for the writer");
        assert!(
            ops.save_running(),
            "a waiting scheduled save counts as running"
        );
        tick(&ops, &resolved(), &tracker, &cancel);
        assert_eq!(tracker.len(), 1, "a second tick skips instead of queueing");
        let metrics = ops.metrics().render();
        assert!(
            metrics.contains("etcd_snapshot_skipped_ticks_total 1"),
            "{metrics}"
        );
        cancel.cancel();
        drop(brief_writer);
    }
}
