//! Unit tests of the one-off member's command line and pre-start checks.

use super::*;

fn args_of(opts: &StandaloneOptions) -> Vec<String> {
    let client: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    etcd_args(opts, client, peer)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
}

fn value(args: &[String], flag: &str) -> String {
    let i = args.iter().position(|a| a == flag).unwrap();
    args[i + 1].clone()
}

#[test]
fn args_listen_on_the_given_loopback_ports() {
    let opts = StandaloneOptions::new("etcd", "/d/etcd", "x");
    let args = args_of(&opts);
    assert_eq!(value(&args, "--name"), "x");
    assert_eq!(value(&args, "--data-dir"), "/d/etcd");
    assert_eq!(
        value(&args, "--listen-client-urls"),
        "https://127.0.0.1:40001"
    );
    assert_eq!(
        value(&args, "--advertise-client-urls"),
        "https://127.0.0.1:40001"
    );
    assert_eq!(
        value(&args, "--listen-peer-urls"),
        "https://127.0.0.1:40002"
    );
    assert_eq!(
        value(&args, "--initial-advertise-peer-urls"),
        "https://127.0.0.1:40002"
    );
    assert_eq!(
        value(&args, "--initial-cluster"),
        "x=https://127.0.0.1:40002"
    );
    assert!(!args.iter().any(|a| a == "--force-new-cluster"));
}

#[test]
fn args_advertise_the_recorded_peer_url_and_force_a_new_cluster() {
    let mut opts = StandaloneOptions::new("etcd", "/d/etcd", "x");
    opts.initial_advertise_peer_url = Some("https://10.0.0.1:2380".into());
    opts.force_new_cluster = true;
    let args = args_of(&opts);
    assert_eq!(
        value(&args, "--listen-peer-urls"),
        "https://127.0.0.1:40002"
    );
    assert_eq!(
        value(&args, "--initial-advertise-peer-urls"),
        "https://10.0.0.1:2380"
    );
    assert_eq!(value(&args, "--initial-cluster"), "x=https://10.0.0.1:2380");
    assert!(args.iter().any(|a| a == "--force-new-cluster"));
}

#[test]
fn only_loopback_listeners_are_accepted() {
    let given: SocketAddr = "127.0.0.1:2999".parse().unwrap();
    assert_eq!(listen_address(Some(given)).unwrap(), given);
    let picked = listen_address(None).unwrap();
    assert!(picked.ip().is_loopback() && picked.port() != 0, "{picked}");
    let public: SocketAddr = "0.0.0.0:2379".parse().unwrap();
    let err = listen_address(Some(public)).unwrap_err();
    assert!(matches!(err, StandaloneError::NotLoopback { address } if address == public));
}

#[test]
fn the_data_dir_must_hold_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = check_data_dir(&missing).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = check_data_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no member/wal"), "{err}");
    std::fs::create_dir_all(dir.path().join("member/wal")).unwrap();
    check_data_dir(dir.path()).unwrap();
}

#[tokio::test]
async fn a_missing_binary_fails_before_spawning() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StandaloneOptions::new("/nonexistent/etcd", dir.path(), "x");
    let err = StandaloneEtcd::start(opts).await.unwrap_err();
    assert!(
        matches!(&err, StandaloneError::BinaryNotFound { binary } if binary == Path::new("/nonexistent/etcd")),
        "{err}"
    );
}

#[test]
fn only_transient_failures_are_retryable() {
    let timeout = StandaloneError::Unhealthy {
        data_dir: "/d".into(),
        endpoint: "http://127.0.0.1:1".into(),
        seconds: 60,
        output: String::new(),
    };
    assert!(timeout.is_retryable());
    let mismatch = StandaloneError::Member {
        differences: vec![MemberMismatch::Learner { name: "x".into() }],
    };
    assert!(!mismatch.is_retryable());
}

#[test]
fn fast_election_shortens_the_raft_timers_and_is_off_by_default() {
    let mut opts = StandaloneOptions::new("etcd", "/d/etcd", "x");
    let args = args_of(&opts);
    assert!(!args.iter().any(|a| a == "--election-timeout"));
    opts.fast_election = true;
    let args = args_of(&opts);
    assert_eq!(value(&args, "--heartbeat-interval"), "20");
    assert_eq!(value(&args, "--election-timeout"), "200");
}
