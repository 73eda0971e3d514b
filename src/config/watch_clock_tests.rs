//! The config reload loop on tokio's paused clock: a change is reloaded once the quiet period
//! has passed with no further event, a later event restarts that period, unrelated files are
//! ignored, and a drop-in dir that appears later is picked up on the next watch retry. Events
//! are fed by hand (notify's own delivery is covered by `watch_tests`); the files are real.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{DataChange, ModifyKind};
use notify::{Event, EventKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{DirWatcher, QUIET_PERIOD, RETRY_WATCH, follow};
use crate::config::ConfigEngine;
use crate::config::layer::{Layer, RawValue, Source};
use crate::config::resolve::Resolved;

/// Records which directories are watched; never delivers events itself.
#[derive(Clone, Default)]
struct FakeWatcher(Arc<Mutex<BTreeSet<PathBuf>>>);

impl DirWatcher for FakeWatcher {
    fn watch_dir(&mut self, dir: &Path) -> notify::Result<()> {
        self.0.lock().unwrap().insert(dir.to_path_buf());
        Ok(())
    }

    fn unwatch_dir(&mut self, dir: &Path) {
        self.0.lock().unwrap().remove(dir);
    }
}

impl FakeWatcher {
    fn watches(&self, dir: &Path) -> bool {
        self.0.lock().unwrap().contains(dir)
    }
}

struct Loop {
    engine: ConfigEngine,
    rx: watch::Receiver<Arc<Resolved>>,
    events: mpsc::UnboundedSender<notify::Result<Event>>,
    watcher: FakeWatcher,
    start: Instant,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Loop {
    fn start(config: &Path) -> Self {
        let mut flags = Layer::new();
        let path = RawValue::String(config.display().to_string());
        flags.set("config", path, Source::Flag("--config".into()));
        let node = RawValue::String("n1".into());
        flags.set("node-name", node, Source::Flag("--node-name".into()));
        let engine = ConfigEngine::with_env(flags, Vec::new());
        let first = engine.evaluate(None).expect("the first config is valid");
        let (tx, rx) = watch::channel(Arc::new(first));
        let (events, events_rx) = mpsc::unbounded_channel();
        let (watcher, cancel) = (FakeWatcher::default(), CancellationToken::new());
        let (loop_engine, mut loop_watcher, loop_cancel) =
            (engine.clone(), watcher.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            follow(
                &loop_engine,
                &tx,
                &mut loop_watcher,
                events_rx,
                &loop_cancel,
            )
            .await
        });
        let start = Instant::now();
        Self {
            engine,
            rx,
            events,
            watcher,
            start,
            cancel,
            task,
        }
    }

    fn event_on(&self, path: &Path) {
        let kind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let event = Event::new(kind).add_path(path.to_path_buf());
        self.events.send(Ok(event)).expect("loop running");
    }

    /// Lets virtual time run to `offset` after the start; the retention then in force, and
    /// whether it was newly published.
    async fn at(&mut self, offset: Duration) -> (u32, bool) {
        tokio::time::sleep_until(self.start + offset).await;
        let changed = self.rx.has_changed().expect("loop alive");
        (
            self.rx.borrow_and_update().config.snapshot.retention,
            changed,
        )
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("the loop ends on cancel");
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_change_is_reloaded_after_the_quiet_period_which_a_later_event_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention: 5\n").unwrap();
    std::fs::create_dir(dir.path().join("config.yaml.d")).unwrap();
    let mut running = Loop::start(&config);
    assert_eq!(running.at(ms(1)).await, (5, false));
    assert!(running.watcher.watches(dir.path()));
    assert!(running.watcher.watches(&running.engine.drop_in_dir()));

    std::fs::write(&config, "etcd-snapshot-retention: 7\n").unwrap();
    running.event_on(&dir.path().join("unrelated.txt"));
    assert_eq!(
        running.at(ms(1_000)).await,
        (5, false),
        "an unrelated file is ignored"
    );

    running.event_on(&config);
    assert_eq!(QUIET_PERIOD, ms(300));
    assert_eq!(
        running.at(ms(1_200)).await,
        (5, false),
        "still inside the quiet period"
    );
    running.event_on(&config);
    assert_eq!(
        running.at(ms(1_450)).await,
        (5, false),
        "the second event restarted it"
    );
    assert_eq!(
        running.at(ms(1_510)).await,
        (7, true),
        "reloaded 300 ms after the last event"
    );
    assert_eq!(running.at(ms(5_000)).await, (7, false), "published once");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_drop_in_dir_created_later_is_watched_and_read_on_the_next_retry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention: 5\n").unwrap();
    let mut running = Loop::start(&config);
    let drop_in = running.engine.drop_in_dir();
    assert_eq!(running.at(ms(1)).await, (5, false));
    assert!(!running.watcher.watches(&drop_in), "no dir to watch yet");

    std::fs::create_dir(&drop_in).unwrap();
    std::fs::write(
        drop_in.join("10-retention.yaml"),
        "etcd-snapshot-retention: 9\n",
    )
    .unwrap();
    assert_eq!(RETRY_WATCH, ms(2_000));
    assert_eq!(
        running.at(ms(1_900)).await,
        (5, false),
        "no event: waits for the retry"
    );
    assert_eq!(
        running.at(ms(2_100)).await,
        (9, true),
        "the retry found, watched and read it"
    );
    assert!(running.watcher.watches(&drop_in));
    running.stop().await;
}
