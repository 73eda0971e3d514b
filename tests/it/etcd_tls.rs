//! The embedded etcd is locked: TLS only, client certificates required, reached by everything
//! of ours (server, direct-mode CLI) and by the documented `etcdctl` command line; its leaf
//! certificates follow the CA; a port held by another etcd and plain HTTP across a network are
//! refused. Real etcd, real etcdctl, the real binary.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::restore::cluster_reset::Node;
use crate::support::{TestEtcd, command, free_port, require_binary, run, text};

/// Runs `cmd` to completion within `limit`; a process still running then is killed and fails
/// the test (a server that should have refused to start must not hang it).
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {:?}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `etcdctl` with exactly the given TLS flags (none, or a CA without a client certificate).
fn etcdctl_with(endpoint: &str, tls: &[&str], args: &[&str]) -> Output {
    let etcdctl = require_binary("etcdctl").expect("etcdctl");
    Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "3s"])
        .args(tls)
        .args(args)
        .output()
        .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_embedded_etcd_serves_only_tls_clients_holding_our_certificate() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let mut server = node.start(&[]);
    let tls_dir = node.tls_dir();
    assert_eq!(mode(&tls_dir), 0o700);
    for key in [
        "server-ca.key",
        "peer-ca.key",
        "client.key",
        "server-client.key",
    ] {
        assert_eq!(mode(&tls_dir.join(key)), 0o600, "{key}");
    }
    // The documented command line works.
    let out = node.etcdctl(&["put", "/test/a", "1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Plain HTTP on the client port, and TLS without a client certificate, are refused.
    let plain = node.endpoint().replacen("https://", "http://", 1);
    let out = etcdctl_with(&plain, &[], &["get", "/test/a"]);
    assert!(
        !out.status.success(),
        "plain http was served: {:?}",
        text(&out)
    );
    let ca = tls_dir.join("server-ca.crt");
    let ca_flag = format!("--cacert={}", ca.display());
    let out = etcdctl_with(&node.endpoint(), &[&ca_flag], &["get", "/test/a"]);
    let (stdout, _) = text(&out);
    // (etcdctl only reports a deadline: the handshake is refused without a client certificate.)
    assert!(
        !out.status.success(),
        "served without a client cert: {stdout}"
    );
    assert!(!stdout.contains("/test/a"), "{stdout}");

    // The server saves through its client certificate.
    let saved = node.save(&server, false);
    assert!(saved.is_file());
    // So does the CLI in direct mode (no server answers at --etcd-server), from the same data
    // dir and config file (which names the embedded etcd's port), with no TLS setting at all.
    let config = node.dir().join("config.yaml");
    let client_address = node.endpoint().replacen("https://", "", 1);
    std::fs::write(&config, format!("etcd-client-address: {client_address}\n")).unwrap();
    let nobody = format!("https://127.0.0.1:{}", free_port());
    let config_flag = format!("--config={}", config.display());
    let args: Vec<String> = vec![
        "--etcd-server".into(),
        nobody,
        "--node-name=n1".into(),
        config_flag,
    ];
    let with = |extra: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        run(&all, node.dir())
    };
    let out = with(&["save", "--name", "direct"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("directly"), "{stderr}");
    let out = with(&["ls"]);
    let (listing, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(listing.contains("direct-n1-"), "{listing}");
    assert!(
        listing.contains(saved.file_name().unwrap().to_str().unwrap()),
        "{listing}"
    );
    assert!(server.terminate().success());
}

#[test]
fn leaf_certificates_are_issued_again_when_the_ca_changes() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    assert!(server.terminate().success());
    let tls_dir = node.tls_dir();
    let old_client = std::fs::read(tls_dir.join("client.crt")).unwrap();
    let old_peer = std::fs::read(tls_dir.join("peer-server-client.crt")).unwrap();
    // A new server CA (as a restore of another cluster's snapshot would bring): its leaves must
    // be issued again, or etcd and our client would not trust each other.
    let other = Node::new();
    let mut other_server = other.start(&[]);
    other.put("/test/other", "1");
    other_server.terminate();
    for name in ["server-ca.crt", "server-ca.key"] {
        std::fs::copy(other.tls_dir().join(name), tls_dir.join(name)).unwrap();
    }
    let mut server = node.start(&[]);
    assert_ne!(
        std::fs::read(tls_dir.join("client.crt")).unwrap(),
        old_client
    );
    assert_eq!(
        std::fs::read(tls_dir.join("peer-server-client.crt")).unwrap(),
        old_peer,
        "the peer CA did not change, nor did its leaf"
    );
    assert_eq!(
        node.keys(),
        crate::restore::cluster_reset::expected(&[("/test/a", "1")])
    );
    node.save(&server, false);
    assert!(server.terminate().success());
}

#[test]
fn a_server_refuses_an_etcd_that_is_not_its_own_on_its_port() {
    let Some(foreign) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = foreign.endpoint.rsplit(':').next().unwrap().to_string();
    let client = format!("--etcd-client-address=127.0.0.1:{port}");
    let peer = format!("--etcd-peer-address=127.0.0.1:{}", free_port());
    let api = free_port().to_string();
    let cmd = command(
        &["server", "--supervisor-port", &api, &client, &peer],
        data.path(),
    );
    let out = run_bounded(cmd, Duration::from_secs(60));
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("etcd-client-address") && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(!stderr.contains("embedded etcd is ready"), "{stderr}");
    assert!(!stderr.contains("server started"), "{stderr}");
    assert!(!data.path().join("server/db/etcd/member").exists());
}

#[test]
fn plain_http_across_a_network_or_for_a_join_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &["save", "--etcd-endpoints", "http://10.0.0.1:2379"],
        data.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("etcd-endpoints")
            && stderr.contains("from flag --etcd-endpoints")
            && stderr.contains("https://"),
        "{stderr}"
    );
    let api = free_port().to_string();
    let cmd = command(
        &[
            "server",
            "--supervisor-port",
            &api,
            "--etcd-join-endpoint",
            "http://127.0.0.1:2379",
        ],
        data.path(),
    );
    let out = run_bounded(cmd, Duration::from_secs(30));
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("etcd-join-endpoint") && stderr.contains("TLS only"),
        "{stderr}"
    );
    assert!(!data.path().join("server/db/etcd").exists());
}

/// A member written by a release without TLS (recorded peer URL `http://...`) starts with TLS,
/// is recognised as ours, and has its recorded peer URL moved to https.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_recorded_with_a_plain_http_peer_url_is_moved_to_https() {
    use etcd_snapshot::etcd::embedded::{EmbeddedEtcd, EmbeddedOptions};
    let Some(binary) = require_binary("etcd") else {
        return;
    };
    let etcdctl = require_binary("etcdctl").expect("etcdctl");
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("server/db/etcd");
    let (client, peer) = (free_port(), free_port());
    let plain_client = format!("http://127.0.0.1:{client}");
    let plain_peer = format!("http://127.0.0.1:{peer}");
    let mut old = Command::new(&binary)
        .args(["--name", "n1", "--data-dir"])
        .arg(&data_dir)
        .args(["--listen-client-urls", &plain_client])
        .args(["--advertise-client-urls", &plain_client])
        .args(["--listen-peer-urls", &plain_peer])
        .args(["--initial-advertise-peer-urls", &plain_peer])
        .args(["--initial-cluster", &format!("n1={plain_peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_for("the plain etcd", Duration::from_secs(30), || {
        Command::new(&etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &plain_client, "put", "/test/old", "kept"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    old.kill().unwrap();
    old.wait().unwrap();

    let tls_dir = root.path().join("server/tls/etcd");
    let opts = EmbeddedOptions {
        binary,
        data_dir,
        tls_dir: tls_dir.clone(),
        name: "n1".into(),
        client_address: format!("127.0.0.1:{client}").parse().unwrap(),
        peer_address: format!("127.0.0.1:{peer}").parse().unwrap(),
        join: None,
        initial_cluster: None,
    };
    let member = EmbeddedEtcd::start(opts, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    let endpoint = member.endpoint();
    let listed = crate::restore::cluster_reset::etcdctl(&tls_dir, &endpoint, &["member", "list"]);
    let (stdout, stderr) = text(&listed);
    assert!(listed.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("https://127.0.0.1:{peer}")) && !stdout.contains("http://"),
        "{stdout}"
    );
    let got = crate::restore::cluster_reset::etcdctl(&tls_dir, &endpoint, &["get", "/test/old"]);
    assert!(text(&got).0.contains("kept"), "{:?}", text(&got));
    member.shutdown().await;
}
