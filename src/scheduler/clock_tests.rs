//! The scheduler loop on tokio's paused clock: cron ticks fire at the virtual times the spec
//! names, a tick while a save runs is skipped and counted, and a config change re-evaluates the
//! schedule at once. The wall clock the loop reads is derived from the paused clock, so no test
//! here sleeps in real time.
//!
//! A writer guard is held throughout, so every tick is a counted skip and no save (no etcd) is
//! ever started: the skip counter is the record of when ticks fired.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::run_with_clock;
use crate::config::{Layer, RawValue, Resolved, Source, resolve::resolve};
use crate::operations::Operations;
use crate::telemetry::metrics::Metrics;

fn config(schedule: &str, disabled: bool) -> Arc<Resolved> {
    let mut flags = Layer::new();
    let flag = |name: &str| Source::Flag(format!("--{name}"));
    for (key, value) in [
        ("node-name", RawValue::String("n1".into())),
        (
            "etcd-snapshot-schedule-cron",
            RawValue::String(schedule.into()),
        ),
        ("etcd-disable-snapshots", RawValue::Bool(disabled)),
    ] {
        flags.set(key, value, flag(key));
    }
    Arc::new(resolve(&[&flags]).expect("test config resolves"))
}

fn skipped(ops: &Operations) -> u64 {
    let metrics = ops.metrics().render();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("etcd_snapshot_skipped_ticks_total "))
        .unwrap_or_else(|| panic!("no skipped-ticks counter in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().expect("a count")
}

/// A running scheduler whose wall clock starts at `wall_start` and advances with tokio's
/// (paused) clock.
struct Running {
    ops: Arc<Operations>,
    start: Instant,
    config: watch::Sender<Arc<Resolved>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(wall_start: DateTime<Local>, first: Arc<Resolved>) -> Self {
        let ops = Arc::new(Operations::new(Arc::new(Metrics::new())));
        let (config, rx) = watch::channel(first);
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let start = Instant::now();
        let now = move || wall_start + chrono::Duration::from_std(start.elapsed()).unwrap();
        let task = tokio::spawn(run_with_clock(
            Arc::clone(&ops),
            rx,
            tracker.clone(),
            cancel.clone(),
            now,
        ));
        Self {
            ops,
            start,
            config,
            cancel,
            tracker,
            task,
        }
    }

    /// Lets virtual time run to `offset` after the start (every timer before it fires first).
    async fn at(&self, offset: Duration) -> u64 {
        tokio::time::sleep_until(self.start + offset).await;
        skipped(&self.ops)
    }

    async fn stop(self) {
        assert!(self.tracker.is_empty(), "no save may start while one runs");
        self.cancel.cancel();
        self.task
            .await
            .expect("scheduler loop ends cleanly on cancel");
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn cron_ticks_fire_at_the_specs_wall_times_and_each_skip_is_counted() {
    // 00:00:05 local; "every 10 s on the 10 s" fires at :10, :20, :30: 5 s, 15 s, 25 s in.
    let wall = Local.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap();
    let running = Running::start(wall, config("*/10 * * * * *", false));
    let _running_save = (
        running.ops.try_begin_write().expect("writer free"),
        running.ops.mark_save_running(),
    );
    for (offset, want) in [
        (4_900, 0),
        (5_100, 1),
        (14_900, 1),
        (15_100, 2),
        (25_100, 3),
    ] {
        assert_eq!(
            running.at(ms(offset)).await,
            want,
            "skipped ticks at {offset} ms"
        );
    }
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_config_change_re_evaluates_the_schedule_and_disabling_stops_the_ticks() {
    let wall = Local.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let running = Running::start(wall, config("@every 1h", false));
    let _running_save = (
        running.ops.try_begin_write().expect("writer free"),
        running.ops.mark_save_running(),
    );
    let min = |m: u64| ms(m * 60_000);
    assert_eq!(running.at(min(30)).await, 0);
    // From here on every 10 minutes, counted from the change: 40 and 50 minutes in.
    running.config.send_replace(config("@every 10m", false));
    assert_eq!(running.at(min(39)).await, 0, "the old hourly tick is gone");
    assert_eq!(running.at(min(41)).await, 1);
    assert_eq!(running.at(min(51)).await, 2);
    running.config.send_replace(config("@every 10m", true));
    assert_eq!(running.at(min(180)).await, 2, "disabled: no tick fires");
    running.config.send_replace(config("@every 10m", false));
    assert_eq!(running.at(min(191)).await, 3, "re-enabled: ticks resume");
    running.stop().await;
}
