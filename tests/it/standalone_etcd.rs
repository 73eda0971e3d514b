//! Integration tests: standalone_etcd. A one-off real `etcd` on a restored data dir, on a
//! force-new-cluster reset, and on garbage; checked through etcd-client, etcdctl and /proc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_snapshot::etcd::standalone::{
    MemberExpectation, MemberMismatch, StandaloneError, StandaloneEtcd, StandaloneOptions,
    check_member, snapshot_status,
};

use crate::support::{TestEtcd, require_binary, signal, wait_for};

/// The peer URL the restore records, as RKE2 would on a node; nothing listens there for us.
const RECORDED_PEER_URL: &str = "http://127.0.0.1:2380";

fn etcdctl(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command.env("ETCDCTL_API", "3");
    command
}

fn run_ok(command: &mut Command) {
    let out = command.output().expect("run etcdctl");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; only count processes that have not exited.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

async fn get(client: &mut etcd_client::Client, key: &str) -> Option<String> {
    let resp = client.get(key, None).await.expect("get");
    Some(resp.kvs().first()?.value_str().ok()?.to_owned())
}

/// Stops a TestEtcd cleanly (SIGTERM) and copies its member's data dir to `to`.
fn stopped_copy(etcd: &TestEtcd, to: &Path) {
    let pid = etcd.pid();
    signal(pid, "TERM");
    wait_for("test etcd to exit", Duration::from_secs(20), || !alive(pid));
    let status = Command::new("cp")
        .arg("-a")
        .arg(etcd.data_dir.path().join("etcd"))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_snapshot_runs_on_loopback_and_passes_the_check() {
    let Some(source) = TestEtcd::start() else {
        return;
    };
    let ctl = require_binary("etcdctl").expect("etcdctl");
    let etcd = require_binary("etcd").expect("etcd");
    for (key, value) in [
        ("/bootstrap/a", "1"),
        ("/bootstrap/b", "2"),
        ("/other", "3"),
    ] {
        source.put(key, value);
    }
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("s.db");
    run_ok(
        etcdctl(&ctl)
            .args(["--endpoints", &source.endpoint, "snapshot", "save"])
            .arg(&snapshot),
    );
    drop(source);
    let restored = dir.path().join("restored");
    run_ok(
        etcdctl(&ctl)
            .args(["snapshot", "restore"])
            .arg(&snapshot)
            .arg("--data-dir")
            .arg(&restored)
            .args([
                "--name",
                "x",
                "--initial-cluster",
                &format!("x={RECORDED_PEER_URL}"),
            ])
            .args(["--initial-advertise-peer-urls", RECORDED_PEER_URL]),
    );
    let status = snapshot_status(&ctl, false, &snapshot).await.unwrap();
    assert!(status.revision >= 4 && status.total_size > 0, "{status:?}");

    let started = StandaloneEtcd::start(StandaloneOptions::new(&etcd, &restored, "x"))
        .await
        .unwrap();
    for address in [started.client_address(), started.peer_address()] {
        assert!(address.ip().is_loopback() && ![2379, 2380].contains(&address.port()));
    }
    let mut client = started.client();
    assert_eq!(get(&mut client, "/bootstrap/a").await.as_deref(), Some("1"));
    assert_eq!(get(&mut client, "/other").await.as_deref(), Some("3"));

    let mut expected = MemberExpectation {
        name: "x".into(),
        peer_url: Some(RECORDED_PEER_URL.into()),
        min_revision: status.revision,
        exact_revision: Some(status.revision),
    };
    let report = check_member(&mut client, &expected).await.unwrap();
    assert_eq!(report.revision, status.revision);
    assert_eq!(report.member.name, "x");
    assert_eq!(report.member.peer_urls, [RECORDED_PEER_URL]);
    assert_eq!(report.member.client_urls, [started.endpoint()]);

    expected.exact_revision = Some(status.revision + 1);
    let err = check_member(&mut client, &expected).await.unwrap_err();
    assert!(
        matches!(&err, StandaloneError::Member { differences }
            if differences == &[MemberMismatch::RevisionDiffers {
                expected: status.revision + 1, found: status.revision }]),
        "{err}"
    );

    let pid = started.pid().expect("running etcd has a pid");
    started.stop().await.unwrap();
    assert!(!alive(pid), "etcd {pid} still runs after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_keeps_the_keys_and_leaves_one_member() {
    let Some(source) = TestEtcd::start() else {
        return;
    };
    let etcd = require_binary("etcd").expect("etcd");
    source.put("/bootstrap/token", "t1");
    let mut client = etcd_client::Client::connect([source.endpoint.as_str()], None)
        .await
        .unwrap();
    let members = client.member_list().await.unwrap();
    let recorded_peer = members.members()[0].peer_urls()[0].clone();
    let revision = client.status().await.unwrap().header().unwrap().revision();
    // A second voter that never starts: quorum is lost, as after losing the other servers.
    client
        .member_add(["http://127.0.0.1:1".to_string()], None)
        .await
        .unwrap();
    drop(client);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("etcd");
    stopped_copy(&source, &data_dir);
    drop(source);

    let mut opts = StandaloneOptions::new(&etcd, &data_dir, "test");
    opts.force_new_cluster = true;
    let started = StandaloneEtcd::start(opts).await.unwrap();
    let mut client = started.client();
    assert_eq!(
        get(&mut client, "/bootstrap/token").await.as_deref(),
        Some("t1")
    );
    let expected = MemberExpectation {
        name: "test".into(),
        peer_url: Some(recorded_peer),
        min_revision: revision,
        exact_revision: Some(revision),
    };
    let report = check_member(&mut client, &expected).await.unwrap();
    assert_eq!(report.member.name, "test");
    let pid = started.pid().unwrap();
    started.stop().await.unwrap();
    assert!(!alive(pid), "etcd {pid} still runs after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_data_dir_fails_fast_with_etcd_output() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("etcd");
    for sub in ["member/wal", "member/snap"] {
        std::fs::create_dir_all(data_dir.join(sub)).unwrap();
    }
    std::fs::write(data_dir.join("member/snap/db"), b"not a bolt database").unwrap();
    std::fs::write(
        data_dir.join("member/wal/0000000000000000-0000000000000000.wal"),
        b"not a wal",
    )
    .unwrap();
    let begun = Instant::now();
    let err = StandaloneEtcd::start(StandaloneOptions::new(&etcd, &data_dir, "x"))
        .await
        .unwrap_err();
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "{:?}",
        begun.elapsed()
    );
    assert!(matches!(err, StandaloneError::Exited { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&data_dir.display().to_string()), "{text}");
    assert!(text.contains("cannot open database"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_stop_kills_etcd() {
    let Some(source) = TestEtcd::start() else {
        return;
    };
    let etcd = require_binary("etcd").expect("etcd");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("etcd");
    stopped_copy(&source, &data_dir);
    drop(source);
    let started = StandaloneEtcd::start(StandaloneOptions::new(&etcd, &data_dir, "test"))
        .await
        .unwrap();
    let pid = started.pid().unwrap();
    assert!(alive(pid));
    drop(started);
    wait_for("dropped etcd to die", Duration::from_secs(10), || {
        !alive(pid)
    });
}
