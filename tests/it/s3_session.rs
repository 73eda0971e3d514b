//! One S3 session per operation: a scheduled save with S3 uploads, applies S3 retention and
//! lists through one connection, so the bucket is checked (what every connect does first:
//! `HEAD /<bucket>/`) once per save, not once per step. Counted on the in-process S3 server's
//! request log while the real server takes snapshots every second.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::s3_ops::{blocking, start_server};
use crate::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::support::{TestEtcd, wait_for};

/// Connects the server makes besides its saves: the startup check of the bucket (the first
/// reconcile pass is an hour away).
const STARTUP_CONNECTS: usize = 1;

/// Snapshot objects written so far (each save's upload touches its own key).
fn uploaded(s3: &S3Server) -> BTreeSet<String> {
    let requests = s3.requests.lock().expect("request log");
    requests
        .iter()
        .filter_map(|r| r.split_once(' ').map(|(_, path)| path))
        .filter(|path| path.starts_with("/snapshots/f/etcd-snapshot-n1-"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_save_connects_to_s3_once() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();
    let endpoint = format!("--etcd-s3-endpoint={}", s3.addr);
    let access = format!("--etcd-s3-access-key={ACCESS_KEY}");
    let secret = format!("--etcd-s3-secret-key={SECRET_KEY}");
    let args = [
        "--etcd-s3",
        &endpoint,
        "--etcd-s3-insecure",
        "--etcd-s3-bucket=snapshots",
        "--etcd-s3-folder=f",
        &access,
        &secret,
        "--etcd-s3-retention=2",
        "--etcd-snapshot-schedule-cron=* * * * * *",
        "--etcd-snapshot-reconcile-interval=1h",
    ];
    let mut server = start_server(data.path(), &etcd.endpoint, &args).await;
    let s3 = std::sync::Arc::new(s3);
    let watched = s3.clone();
    blocking(move || {
        wait_for(
            "three scheduled saves in S3",
            Duration::from_secs(30),
            || uploaded(&watched).len() >= 3,
        )
    })
    .await;
    // SIGTERM lets a running save finish: afterwards every save's requests are in the log.
    let status = blocking(move || {
        let status = server.terminate();
        (status, server.log_text())
    })
    .await;
    assert!(status.0.success(), "{}", status.1);
    let saves = uploaded(&s3).len();
    assert!(
        s3.count("GET", "/snapshots/") >= saves,
        "every save listed the bucket for retention: {:?}",
        s3.requests.lock().unwrap()
    );
    assert_eq!(
        s3.count("HEAD", "/snapshots/"),
        saves + STARTUP_CONNECTS,
        "one bucket check per save ({saves} saves): {:?}",
        s3.requests.lock().unwrap()
    );
}
