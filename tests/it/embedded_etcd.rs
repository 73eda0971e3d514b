//! Integration tests: embedded_etcd. The real `etcd` binary supervised by `EmbeddedEtcd` on free
//! loopback ports, checked through etcd-client (with the member's client certificate, read from
//! its TLS dir) and /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use etcd_snapshot::etcd::certs::{CaKind, EtcdTlsFiles, Leaf};
use etcd_snapshot::etcd::embedded::{EmbeddedError, EmbeddedEtcd, EmbeddedOptions};
use tokio_util::sync::CancellationToken;

use crate::support::{free_port, require_binary};

fn options(binary: PathBuf, data_dir: &Path) -> EmbeddedOptions {
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    EmbeddedOptions {
        binary,
        data_dir: data_dir.to_path_buf(),
        tls_dir: tls_dir_for(data_dir),
        name: "test-node".into(),
        client_address: addr(free_port()),
        peer_address: addr(free_port()),
        join: None,
        initial_cluster: None,
    }
}

/// Each member's TLS dir sits beside its data dir.
fn tls_dir_for(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap().to_os_string();
    name.push("-tls");
    data_dir.with_file_name(name)
}

/// Our client certificate for the member whose TLS files are in `tls_dir`.
fn tls(tls_dir: &Path) -> TlsOptions {
    let files = EtcdTlsFiles::new(tls_dir);
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(files.ca_cert(CaKind::Server))))
        .identity(Identity::from_pem(
            read(files.cert(Leaf::Client)),
            read(files.key(Leaf::Client)),
        ))
}

/// Copies the cluster's CAs (what an operator copies to a joining server).
fn copy_cas(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in [
        "server-ca.crt",
        "server-ca.key",
        "peer-ca.crt",
        "peer-ca.key",
    ] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// Async bounded poll (the supervisor needs the runtime while we wait).
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn options_with(tls: TlsOptions) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_tls(tls)
}

async fn client(endpoint: &str, tls_dir: &Path) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], Some(options_with(tls(tls_dir))))
        .await
        .expect("connect to embedded etcd")
}

async fn get(endpoint: &str, tls_dir: &Path, key: &str) -> Option<String> {
    let options = options_with(tls(tls_dir));
    let mut client = etcd_client::Client::connect([endpoint], Some(options))
        .await
        .ok()?;
    let resp = client.get(key, None).await.ok()?;
    let kv = resp.kvs().first()?;
    Some(kv.value_str().ok()?.to_owned())
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; only count processes that have not exited.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_serves_data_from_its_dir_and_shuts_down() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("server").join("db").join("etcd");
    let opts = options(etcd, &data_dir);
    let tls_dir = opts.tls_dir.clone();
    let member = EmbeddedEtcd::start(opts, CancellationToken::new())
        .await
        .unwrap();
    let endpoint = member.endpoint();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    client(&endpoint, &tls_dir)
        .await
        .put("/k", "v1", None)
        .await
        .unwrap();
    assert_eq!(get(&endpoint, &tls_dir, "/k").await.as_deref(), Some("v1"));
    assert!(data_dir.join("member").join("snap").join("db").is_file());

    let pid = member.pid().expect("etcd runs");
    let recorded = std::fs::read_to_string(member.pid_file()).unwrap();
    assert_eq!(recorded.trim(), pid.to_string());
    let pid_file = member.pid_file().to_path_buf();
    member.shutdown().await;
    assert!(!alive(pid), "etcd {pid} still running after shutdown");
    assert!(!pid_file.exists(), "pid file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_restarts_a_killed_member_with_its_data() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let opts = options(etcd, &root.path().join("etcd"));
    let tls_dir = opts.tls_dir.clone();
    let member = EmbeddedEtcd::start(opts, cancel.clone()).await.unwrap();
    let endpoint = member.endpoint();
    client(&endpoint, &tls_dir)
        .await
        .put("/kept", "yes", None)
        .await
        .unwrap();
    let first = member.pid().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    eventually("a new etcd pid", Duration::from_secs(20), || async {
        matches!(member.pid(), Some(pid) if pid != first)
    })
    .await;
    eventually(
        "the restarted member to serve the old key",
        Duration::from_secs(20),
        || {
            let (endpoint, tls_dir) = (endpoint.clone(), tls_dir.clone());
            async move { get(&endpoint, &tls_dir, "/kept").await.as_deref() == Some("yes") }
        },
    )
    .await;
    let second = member.pid().unwrap();
    let recorded = std::fs::read_to_string(member.pid_file()).unwrap();
    assert_eq!(recorded.trim(), second.to_string());

    // Cancelling the parent token stops the member too.
    cancel.cancel();
    member.shutdown().await;
    assert!(!alive(second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_process_on_the_same_data_dir_is_stopped_first() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("etcd");
    // Stand-in for an etcd orphaned by a crash: its command line names our data dir. The loop
    // keeps `sh` itself running (a lone `sleep` would be exec'd and lose the data dir argument).
    let mut leftover = std::process::Command::new("sh")
        .args(["-c", "while :; do sleep 1; done", "sh"])
        .arg(&data_dir)
        // Never hold the test runner's output pipes open, whatever happens to this process.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let leftover_pid = leftover.id();
    // spawn() can return while exec is still under way (cmdline briefly empty); a real leftover
    // has been running for a while, so wait until this one shows its arguments.
    let cmdline = format!("/proc/{leftover_pid}/cmdline");
    let data_dir_text = data_dir.to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&cmdline)
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&data_dir_text))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stand-in never showed its command line"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(root.path().join("etcd.pid"), format!("{leftover_pid}\n")).unwrap();
    // Reap it as soon as it dies so it does not linger as a zombie.
    let reaper = std::thread::spawn(move || leftover.wait());

    let member = EmbeddedEtcd::start(options(etcd, &data_dir), CancellationToken::new())
        .await
        .unwrap();
    // Stopped within the grace period (SIGTERM, then SIGKILL): poll rather than race the exit.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while alive(leftover_pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive(leftover_pid),
        "leftover process still running: {:?} {:?}",
        std::fs::read_to_string(format!("/proc/{leftover_pid}/stat")),
        std::fs::read(format!("/proc/{leftover_pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    );
    assert!(reaper.join().unwrap().is_ok());
    assert_ne!(member.pid(), Some(leftover_pid));
    member.shutdown().await;
}

#[tokio::test]
async fn a_missing_binary_is_reported() {
    let root = tempfile::tempdir().unwrap();
    for binary in ["etcd-does-not-exist-here", "/nonexistent/bin/etcd"] {
        let opts = options(PathBuf::from(binary), &root.path().join("etcd"));
        match EmbeddedEtcd::start(opts, CancellationToken::new()).await {
            Err(EmbeddedError::BinaryNotFound { binary: reported }) => {
                assert_eq!(reported, PathBuf::from(binary));
            }
            other => panic!("expected BinaryNotFound, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_refused_before_etcd_is_spawned() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("etcd");
    let mut opts = options(etcd, &data_dir);
    // Another process holds the client port.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    opts.client_address = busy.local_addr().unwrap();
    match EmbeddedEtcd::start(opts, CancellationToken::new()).await {
        Err(err @ EmbeddedError::PortInUse { key, .. }) => {
            assert_eq!(key, "etcd-client-address");
            assert!(err.to_string().contains("already in use"), "{err}");
        }
        other => panic!("expected PortInUse, got {other:?}"),
    }
    assert!(!data_dir.join("member").exists(), "etcd never ran");
    assert!(
        !root.path().join("etcd.pid").exists(),
        "pid file left behind"
    );
}

/// A joining node is added as a learner: if it never comes up, the one-member cluster it joined
/// keeps its quorum and stays writable (a voter would have stopped every write), and a learner
/// that never caught up is not promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_never_starts_leaves_the_cluster_writable() {
    use etcd_snapshot::etcd::embedded::join;
    let Some(binary) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let opts = options(binary, &root.path().join("etcd"));
    let tls_dir = opts.tls_dir.clone();
    let etcd = EmbeddedEtcd::start(opts, CancellationToken::new())
        .await
        .unwrap();
    let endpoint = etcd.endpoint();
    let ghost = format!("https://127.0.0.1:{}", free_port());
    let cluster = join::add_self(&endpoint, &tls(&tls_dir), "ghost", &ghost)
        .await
        .unwrap();
    assert!(cluster.contains(&format!("ghost={ghost}")), "{cluster}");
    let mut client = client(&endpoint, &tls_dir).await;
    let members = client.member_list().await.unwrap();
    let added = members
        .members()
        .iter()
        .find(|m| m.peer_urls().iter().any(|u| u == &ghost))
        .expect("the ghost is a member");
    assert!(added.is_learner(), "{added:?}");
    let put = tokio::time::timeout(Duration::from_secs(5), client.put("k", "v", None)).await;
    assert!(
        matches!(put, Ok(Ok(_))),
        "the cluster lost its quorum: {put:?}"
    );
    let err = join::promote_self(&endpoint, &tls(&tls_dir), &ghost, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, join::JoinError::NotPromoted { .. }),
        "{err:?}"
    );
    etcd.shutdown().await;
}

/// A node started with a join endpoint catches up as a learner and is a voter once `start`
/// returns; the data written before it joined is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_member_is_promoted_to_a_voter_once_it_caught_up() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let first_opts = options(etcd.clone(), &root.path().join("a"));
    let first_tls = first_opts.tls_dir.clone();
    let first = EmbeddedEtcd::start(first_opts, cancel.clone())
        .await
        .unwrap();
    client(&first.endpoint(), &first_tls)
        .await
        .put("before-join", "kept", None)
        .await
        .unwrap();
    let mut second = options(etcd, &root.path().join("b"));
    second.name = "second-node".into();
    second.join = Some(first.endpoint());
    // Without the cluster's CAs the join is refused before the membership changes, saying
    // which files to copy where.
    let err = EmbeddedEtcd::start(second.clone(), cancel.clone())
        .await
        .unwrap_err();
    let text = etcd_snapshot::errors::error_chain(&err);
    assert!(
        text.contains("peer-ca.key") && text.contains(second.tls_dir.to_str().unwrap()),
        "{text}"
    );
    let members = client(&first.endpoint(), &first_tls)
        .await
        .member_list()
        .await
        .unwrap();
    assert_eq!(members.members().len(), 1, "no member was added");
    copy_cas(&first_tls, &second.tls_dir);
    let peer = format!("https://{}", second.peer_address);
    let joined = EmbeddedEtcd::start(second.clone(), cancel.clone())
        .await
        .unwrap();
    let members = client(&first.endpoint(), &first_tls)
        .await
        .member_list()
        .await
        .unwrap();
    assert_eq!(members.members().len(), 2);
    let me = members
        .members()
        .iter()
        .find(|m| m.peer_urls().iter().any(|u| u == &peer))
        .expect("joined");
    assert!(
        !me.is_learner(),
        "still a learner after start returned: {me:?}"
    );
    let endpoint = joined.endpoint();
    // Its own leaf certificates, issued from the copied CAs.
    let second_tls = second.tls_dir.clone();
    eventually(
        "the data on the joined member",
        Duration::from_secs(10),
        || async { get(&endpoint, &second_tls, "before-join").await.as_deref() == Some("kept") },
    )
    .await;
    joined.shutdown().await;
    // Restarted later with a join endpoint that no longer answers: a member that has its data
    // starts without it.
    second.join = Some(format!("https://127.0.0.1:{}", free_port()));
    let again = EmbeddedEtcd::start(second, cancel.clone()).await.unwrap();
    again.shutdown().await;
    first.shutdown().await;
}
