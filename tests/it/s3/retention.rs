//! S3 retention end to end: `prune` and scheduled saves keep the newest `etcd-s3-retention`
//! snapshots of this node and cluster, never touching another cluster's objects in the same
//! folder or a sibling folder; `prune --dry-run` explains and deletes nothing. The real binary,
//! a real etcd and the in-process S3 server of `fakes/s3_support.rs`.

use std::time::Duration;

use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::s3::ops::{blocking, created_name, direct, s3_flags, start_server};
use crate::support::{TestEtcd, snapshot_files, text, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_applies_s3_retention_to_this_cluster_only_and_dry_run_explains() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data_a = tempfile::tempdir().unwrap();
    let data_b = tempfile::tempdir().unwrap();
    // Cluster A and cluster B share bucket, folder and even the node name.
    let mut names_b = Vec::new();
    for (data, cluster, count) in [(&data_a, "cluster-a", 2), (&data_b, "cluster-b", 3)] {
        for _ in 0..count {
            let mut args = s3_flags(&s3, "snapshots");
            args.extend([format!("--cluster-id={cluster}"), "save".into()]);
            let out = direct(data.path(), &etcd.endpoint, args).await;
            assert!(out.status.success(), "{:?}", text(&out));
            if cluster == "cluster-b" {
                names_b.push(created_name(&out));
            }
            // Names carry whole seconds.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    let objects_before = s3_objects(&s3, "snapshots/f");
    assert_eq!(objects_before.len(), 5, "{objects_before:?}");

    let mut args = s3_flags(&s3, "snapshots");
    args.extend([
        "--cluster-id=cluster-b".into(),
        "prune".into(),
        "--snapshot-retention=1".into(),
        "--dry-run".into(),
    ]);
    let out = direct(data_b.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for old in &names_b[..2] {
        assert!(
            stdout.contains(&format!("s3://snapshots/f/{old}")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("newest 1"), "the reason is given: {stdout}");
    assert_eq!(
        s3_objects(&s3, "snapshots/f"),
        objects_before,
        "dry run touched nothing"
    );

    let mut args = s3_flags(&s3, "snapshots");
    args.extend([
        "--cluster-id=cluster-b".into(),
        "prune".into(),
        "--snapshot-retention=1".into(),
    ]);
    let out = direct(data_b.path(), &etcd.endpoint, args).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let after = s3_objects(&s3, "snapshots/f");
    assert_eq!(after.len(), 3, "A's two and B's newest: {after:?}");
    assert!(after.contains(&names_b[2]));
    assert_eq!(
        snapshot_files(&crate::support::snapshot_dir(data_b.path())).len(),
        1
    );
    assert_eq!(
        snapshot_files(&crate::support::snapshot_dir(data_a.path())).len(),
        2
    );
}

/// Scheduled saves apply `etcd-s3-retention` in S3 (like local retention, by name timestamp),
/// never touching another cluster's objects in the same folder or a sibling folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_saves_prune_s3_for_this_cluster_only() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    // Another cluster's older snapshot with the same node name, and a sibling folder's.
    let foreign = "etcd-snapshot-n1-1000000000";
    let seed_dir = tempfile::tempdir().unwrap();
    crate::fakes::s3_support::write_pattern(&seed_dir.path().join(foreign), 1000);
    let other_cluster = etcd_snapshot::store::s3::S3Store::connect(&s3.settings("snapshots", "f"))
        .await
        .unwrap();
    let meta = etcd_snapshot::store::s3::ObjectMetadata {
        cluster_id: "other-cluster".into(),
        node_name: "n1".into(),
        ..Default::default()
    };
    other_cluster
        .upload_file(&seed_dir.path().join(foreign), foreign, &meta)
        .await
        .unwrap();
    s3.put_raw(
        "snapshots",
        "f-sibling/etcd-snapshot-n1-1000000001",
        b"sibling",
    );

    let data = tempfile::tempdir().unwrap();
    let args = [
        "--etcd-snapshot-schedule-cron=@every 1s",
        "--etcd-snapshot-retention=2",
        "--cluster-id=this-cluster",
        "--etcd-s3",
        &format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure",
        "--etcd-s3-bucket=snapshots",
        "--etcd-s3-folder=f",
        &format!("--etcd-s3-access-key={ACCESS_KEY}"),
        &format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ];
    let mut server = start_server(data.path(), &etcd.endpoint, &args).await;
    let log = server.log.clone();
    blocking(move || {
        wait_for("four scheduled uploads", Duration::from_secs(60), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("snapshot copied to S3")
                .count()
                >= 4
        })
    })
    .await;
    let status = blocking(move || {
        let status = server.terminate();
        (status, server.log_text())
    })
    .await;
    assert!(status.0.success(), "{}", status.1);
    let objects = s3_objects(&s3, "snapshots/f");
    let ours: Vec<&String> = objects.iter().filter(|n| n.as_str() != foreign).collect();
    assert_eq!(ours.len(), 2, "retention 2 in S3: {objects:?}");
    assert!(
        objects.iter().any(|n| n == foreign),
        "another cluster's object is kept: {objects:?}"
    );
    assert!(s3.has_object("snapshots", "f-sibling/etcd-snapshot-n1-1000000001"));
    let local = snapshot_files(&crate::support::snapshot_dir(data.path()));
    assert_eq!(local.len(), 2, "{local:?}");
    let mut ours_sorted: Vec<String> = ours.into_iter().cloned().collect();
    ours_sorted.sort();
    let mut local_sorted = local.clone();
    local_sorted.sort();
    assert_eq!(
        ours_sorted, local_sorted,
        "S3 keeps the same newest two as the local dir"
    );
}

/// Object names directly under `<root>/<prefix>` (files only).
fn s3_objects(s3: &S3Server, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s3.root.path().join(prefix))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
