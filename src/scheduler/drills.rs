//! Restore drills the server runs on its own: on `etcd-snapshot-verify-schedule-cron` (this
//! node's copies), and after each save it makes when `etcd-snapshot-verify-after-save` is on (that
//! save's copies). Both follow config changes as they arrive on the watch channel.
//!
//! Drills run in tasks of their own on the daemon's tracker, one at a time (the operations'
//! drill mutex, shared with the API). They never take the save lock while they run, so a save
//! is never delayed by a drill; a schedule tick while a drill runs is skipped and logged. On
//! shutdown a running drill is cancelled: dropping it kills its etcd member and removes its temp
//! dir (`restore::drill`), and no verdict is recorded for it.

use std::sync::Arc;

use chrono::{DateTime, Local};
use tokio::sync::{OwnedMutexGuard, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DesiredConfig, Resolved};
use crate::errors::error_chain;
use crate::operations::Operations;

/// Runs the drill schedule until `cancel`.
pub async fn run(
    ops: Arc<Operations>,
    config: watch::Receiver<Arc<Resolved>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    run_with_clock(ops, config, tracker, cancel, Local::now).await
}

/// `run` with the wall clock passed in (see `scheduler::run_with_clock`).
pub(super) async fn run_with_clock(
    ops: Arc<Operations>,
    mut config: watch::Receiver<Arc<Resolved>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    now: impl Fn() -> DateTime<Local>,
) {
    loop {
        let current = Arc::clone(&config.borrow_and_update());
        let schedule = current.config.snapshot.verify.schedule.clone();
        let next = schedule.as_ref().and_then(|s| s.next_fire(&now()));
        if let (Some(s), Some(at)) = (&schedule, &next) {
            tracing::debug!(schedule = %s, next = %at, "next scheduled restore drill");
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep((at - now()).to_std().unwrap_or_default()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep => tick(&ops, &current.config, &tracker, &cancel),
        }
    }
}

/// One schedule tick: drill this node's copies unless a drill is running.
pub(super) fn tick(
    ops: &Arc<Operations>,
    config: &DesiredConfig,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let Some(guard) = ops.try_begin_drill() else {
        tracing::warn!("skipping scheduled restore drill: a drill is already running");
        return;
    };
    tracing::info!("scheduled restore drill of this node's snapshot copies");
    let (ops, config, cancel) = (Arc::clone(ops), config.clone(), cancel.clone());
    tracker.spawn(async move { drill(&ops, &config, Vec::new(), guard, &cancel).await });
}

/// After a save the server made: with `etcd-snapshot-verify-after-save`, drills the copies of
/// `created` in a task of its own, after any running drill. Saves that come faster than drills
/// finish join the one waiting task instead of queueing a task each.
pub fn after_save(
    ops: &Arc<Operations>,
    config: &DesiredConfig,
    created: &[String],
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    if !config.snapshot.verify.after_save || created.is_empty() {
        return;
    }
    if !ops.queue_drill_after_save(created) {
        tracing::info!(snapshots = ?created, "restore drill after save: joins the drill already waiting");
        return;
    }
    let (ops, config, cancel) = (Arc::clone(ops), config.clone(), cancel.clone());
    tracker.spawn(async move {
        let guard = tokio::select! {
            _ = cancel.cancelled() => return,
            guard = ops.begin_drill() => guard,
        };
        let names = ops.take_drills_after_save();
        tracing::info!(snapshots = ?names, "restore drill after save");
        drill(&ops, &config, names, guard, &cancel).await;
    });
}

/// One verify run, cancelled (member killed, temp dir removed) when the server shuts down.
async fn drill(
    ops: &Operations,
    config: &DesiredConfig,
    names: Vec<String>,
    guard: OwnedMutexGuard<()>,
    cancel: &CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => {
            tracing::info!("restore drill cancelled by shutdown; its member and temp dir were removed");
        }
        verified = ops.verify_locked(config, &names, guard) => match verified {
            Ok(report) => {
                let passed = report.drills.iter().filter(|d| d.passed).count();
                tracing::info!(
                    drills = report.drills.len(),
                    passed,
                    failed = report.drills.len() - passed,
                    problems = report.failed.len(),
                    "restore drills done"
                );
            }
            Err(e) => tracing::error!(error = %error_chain(&e), "failed to run restore drills"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layer, RawValue, Source, resolve::resolve};
    use crate::telemetry::metrics::Metrics;

    fn config() -> DesiredConfig {
        let mut flags = Layer::new();
        let set = |flags: &mut Layer, key: &str, value: &str| {
            let source = Source::Flag(format!("--{key}"));
            flags.set(key, RawValue::String(value.into()), source);
        };
        set(&mut flags, "node-name", "n1");
        set(
            &mut flags,
            "etcd-snapshot-verify-schedule-cron",
            "@every 10s",
        );
        set(&mut flags, "etcd-snapshot-verify-after-save", "true");
        resolve(&[&flags]).expect("test config resolves").config
    }

    #[tokio::test]
    async fn a_running_drill_skips_a_drill_tick_and_never_holds_up_a_save() {
        let ops = Arc::new(Operations::new(Arc::new(Metrics::new())));
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let running_drill = ops.try_begin_drill().expect("no drill yet");
        tick(&ops, &config(), &tracker, &cancel);
        assert!(tracker.is_empty(), "a second drill must not start");
        // The save lock is apart from the drill's: a save starts while a drill runs.
        let save = ops.try_begin_write();
        assert!(save.is_some(), "a drill must not hold the save lock");
        drop(save);
        drop(running_drill);
        assert!(
            ops.try_begin_drill().is_some(),
            "the drill lock is free again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_drill_waiting_after_a_save_ends_at_shutdown_without_running() {
        let ops = Arc::new(Operations::new(Arc::new(Metrics::new())));
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let running_drill = ops.try_begin_drill().expect("no drill yet");
        after_save(&ops, &config(), &["s-n1-1".into()], &tracker, &cancel);
        assert_eq!(
            tracker.len(),
            1,
            "the after-save drill waits in a task of its own"
        );
        let mut off = config();
        off.snapshot.verify.after_save = false;
        after_save(&ops, &off, &["s-n1-2".into()], &tracker, &cancel);
        assert_eq!(tracker.len(), 1, "off: no drill");
        cancel.cancel();
        tracker.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
            .await
            .expect("the waiting drill ends at shutdown");
        drop(running_drill);
    }
}
