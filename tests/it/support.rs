//! Shared test support: free ports, bounded waits, a real etcd on loopback, and running the binary.
//!
//! A test that needs a missing binary fails when `CI` is set and skips loudly otherwise.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Finds `name` on PATH. Under `CI` a missing binary fails the test; locally the test skips.
pub fn require_binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("required binary {name} is not installed (CI is set, so this is a failure)");
        }
        eprintln!("SKIPPING: required binary {name} is not installed");
    }
    found
}

/// A real etcd member on free loopback ports, killed on drop.
pub struct TestEtcd {
    child: Child,
    pub endpoint: String,
    pub data_dir: tempfile::TempDir,
}

impl TestEtcd {
    /// Starts etcd and waits until it answers; None when etcd is missing (and CI is unset).
    pub fn start() -> Option<Self> {
        let etcd = require_binary("etcd")?;
        let data_dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(etcd)
            .args(["--name", "test", "--data-dir"])
            .arg(data_dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let me = Self {
            child,
            endpoint: client_url,
            data_dir,
        };
        let addr = format!("127.0.0.1:{client}");
        wait_for("etcd to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Some(me)
    }

    /// `etcdctl put` through the real client binary (keeps tests independent of our code).
    pub fn put(&self, key: &str, value: &str) {
        let etcdctl = require_binary("etcdctl").expect("etcdctl");
        let out = Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint, "put", key, value])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl put failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_etcd-snapshot"))
}

/// Runs the binary to completion with `args`, a clean environment for our variables, and a
/// config file path that does not exist unless the test passes `--config`.
pub fn run(args: &[&str], data_dir: &Path) -> Output {
    command(args, data_dir).output().expect("run etcd-snapshot")
}

/// A `Command` for the binary with `--data-dir` set and no inherited `ETCD_SNAPSHOT_*` vars.
pub fn command(args: &[&str], data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCD_SNAPSHOT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCD_SNAPSHOT_CONFIG", data_dir.join("absent-config.yaml"));
    cmd.arg("--data-dir").arg(data_dir);
    cmd.args(args);
    cmd
}

/// stdout and stderr of an output, for assertion messages.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
