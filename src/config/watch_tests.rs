//! Tests of the config watcher: real files in a temp dir, bounded waits on the watch channel.

use std::path::Path;

use super::*;
use crate::config::keys;
use crate::config::layer::{Layer, RawValue, Source};
use crate::config::resolve::{HostFacts, resolve_with};

/// Long enough for inotify plus the quiet period on a loaded 2-core machine.
const ARRIVAL: Duration = Duration::from_secs(10);

fn engine_for(config: &Path) -> ConfigEngine {
    let mut flags = Layer::new();
    flags.set(
        "config",
        RawValue::String(config.display().to_string()),
        Source::Flag("--config".into()),
    );
    flags.set(
        "node-name",
        RawValue::String("n1".into()),
        Source::Flag("--node-name".into()),
    );
    ConfigEngine::with_env(flags, Vec::new())
}

/// Waits (bounded) for the next published configuration.
async fn next(rx: &mut watch::Receiver<Arc<Resolved>>) -> Arc<Resolved> {
    tokio::time::timeout(ARRIVAL, rx.changed())
        .await
        .expect("a new configuration within the time limit")
        .expect("watcher alive");
    rx.borrow_and_update().clone()
}

#[tokio::test]
async fn edits_arrive_and_invalid_edits_keep_the_last_good_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention: 3\n").expect("write");
    let engine = engine_for(&config);
    let first = engine.evaluate(None).expect("valid");
    assert_eq!(first.config.snapshot.retention, 3);
    let (tx, mut rx) = watch::channel(Arc::new(first));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(engine, tx, cancel.clone()));

    std::fs::write(&config, "etcd-snapshot-retention: 4\n").expect("edit");
    assert_eq!(next(&mut rx).await.config.snapshot.retention, 4);

    // An invalid edit publishes nothing; the value in force stays 4.
    std::fs::write(&config, "etcd-snapshot-retention: many\n").expect("bad edit");
    let published = tokio::time::timeout(Duration::from_secs(2), rx.changed()).await;
    assert!(
        published.is_err(),
        "an invalid config must not be published"
    );
    assert_eq!(rx.borrow().config.snapshot.retention, 4);

    // A drop-in dir created after start is picked up.
    let drop_ins = dir.path().join("config.yaml.d");
    std::fs::write(&config, "etcd-snapshot-retention: 6\n").expect("fix");
    assert_eq!(next(&mut rx).await.config.snapshot.retention, 6);
    std::fs::create_dir(&drop_ins).expect("mkdir");
    std::fs::write(drop_ins.join("10-x.yaml"), "etcd-snapshot-retention: 8\n").expect("drop-in");
    let mut latest = next(&mut rx).await;
    // Creating the dir and then the file may arrive as one reload or two.
    while latest.config.snapshot.retention != 8 {
        latest = next(&mut rx).await;
    }
    assert_eq!(latest.config.snapshot.retention, 8);

    cancel.cancel();
    tokio::time::timeout(ARRIVAL, task)
        .await
        .expect("watcher stops on cancel")
        .expect("no panic");
}

#[test]
fn changed_keys_sees_every_secret_change() {
    let host = HostFacts {
        hostname: Some("n1".into()),
    };
    for spec in keys::all().iter().filter(|k| k.is_secret()) {
        // S3 secrets reach the config only with S3 on and a complete key pair.
        let mut base = Layer::new();
        for (key, value) in [
            ("etcd-s3", "true"),
            ("etcd-s3-bucket", "b1"),
            ("etcd-s3-access-key", "ak"),
            ("etcd-s3-secret-key", "sk"),
        ] {
            base.set(key, RawValue::String(value.into()), Source::Request);
        }
        let mut a = base.clone();
        a.set(spec.name, RawValue::String("one".into()), Source::Request);
        let mut b = base.clone();
        b.set(spec.name, RawValue::String("two".into()), Source::Request);
        let old = resolve_with(&[&a], &host).expect("valid");
        let new = resolve_with(&[&b], &host).expect("valid");
        assert_eq!(
            changed_keys(&old, &new),
            vec![spec.name.to_string()],
            "{}",
            spec.name
        );
        assert!(changed_keys(&old, &old).is_empty());
    }
}
