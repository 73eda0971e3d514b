//! Shared test support: free ports, bounded waits, a real etcd on loopback, and running the binary.
//!
//! A test that needs a missing binary fails when `CI` is set and skips loudly otherwise.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1, never handed out twice in this process.
///
/// Ports come from below the kernel's ephemeral range (32768 and up): a port the kernel picked
/// (`bind` to 0) is also where it places outgoing connections, so between the pick and the
/// bind a health probe or an HTTP client elsewhere in the suite could take it, and a server
/// rightly refuses a taken etcd port. Each test process starts at its own offset so two suites
/// running at once rarely meet either.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
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
    /// A port picked by `free_port` can be taken by another test before etcd binds it, so a
    /// member that exits or never answers is replaced, on fresh ports, up to three times.
    pub fn start() -> Option<Self> {
        let etcd = require_binary("etcd")?;
        let etcdctl = require_binary("etcdctl").expect("etcdctl");
        for _ in 0..3 {
            let mut me = Self::spawn(&etcd);
            if me.wait_healthy(&etcdctl, Duration::from_secs(30)) {
                return Some(me);
            }
            let _ = me.child.kill();
            let _ = me.child.wait();
        }
        panic!("etcd did not start and answer in three attempts");
    }

    fn spawn(etcd: &Path) -> Self {
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
        Self {
            child,
            endpoint: client_url,
            data_dir,
        }
    }

    /// True once a health check (a real read, not just a listener) passes; false when the
    /// member exits first or `timeout` passes.
    fn wait_healthy(&mut self, etcdctl: &Path, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            let healthy = Command::new(etcdctl)
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.endpoint])
                .args(["--command-timeout", "2s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if healthy {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The etcd process id (to pause it with SIGSTOP in tests that need a save to hang).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// A running `etcd-snapshot server` on free ports, SIGKILLed on drop unless stopped.
pub struct TestServer {
    pub child: Option<Child>,
    /// `--node-name` of the server, also given to its CLI calls.
    pub node: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl TestServer {
    /// Starts `etcd-snapshot server` with `--node-name n1`, a free API port and `args`; waits
    /// until the API port accepts connections.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_as("n1", data_dir, args)
    }

    /// `start` with another node name (several servers sharing etcd, S3 or Kubernetes).
    pub fn start_as(node: &str, data_dir: &Path, args: &[&str]) -> Self {
        let port = free_port();
        let log = data_dir.join(format!("server-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let port_text = port.to_string();
        let mut all = vec![
            "server",
            "--node-name",
            node,
            "--supervisor-port",
            &port_text,
        ];
        all.extend_from_slice(args);
        let child = command(&all, data_dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn server");
        let mut server = Self {
            child: Some(child),
            node: node.to_string(),
            port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        let addr = format!("127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early ({status}):\n{}", server.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not listen:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `--etcd-server` for this server.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Runs a CLI subcommand against this server (node n1, same data dir).
    pub fn cli(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["--etcd-server", url.as_str(), "--node-name", &self.node];
        all.extend_from_slice(args);
        run(&all, &self.data_dir)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (bounded) for exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit()
    }

    /// Waits (bounded) for the server to exit on its own; returns the exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("server did not exit after SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal by name to a pid with the `kill` utility.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// True while /proc/<pid> exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Writes about `megabytes` MiB of incompressible-ish values into etcd (1 MiB per key).
pub fn fill_etcd(endpoint: &str, megabytes: usize) {
    let endpoint = endpoint.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..megabytes {
            let value: Vec<u8> = (0..1024 * 1024)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state & 0xff) as u8
                })
                .collect();
            client.put(format!("/fill/{i}"), value, None).await.unwrap();
        }
    });
}

/// Snapshot files (not temp files) in a dir, sorted.
pub fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| !n.starts_with('.') && !n.ends_with(".part"));
    names.sort();
    names
}

/// Checks etcd's integrity trailer: the last 32 bytes are the SHA-256 of everything before.
pub fn trailer_verifies(bytes: &[u8]) -> bool {
    use sha2::Digest;
    bytes.len() > 32 && bytes.len() % 512 == 32 && {
        let (body, trailer) = bytes.split_at(bytes.len() - 32);
        sha2::Sha256::digest(body).as_slice() == trailer
    }
}

/// The default snapshot dir under a data dir.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server/db/snapshots")
}

/// The server's `/metrics` text (a public route: no token needed).
pub async fn metrics(server: &TestServer) -> String {
    let client = etcd_snapshot::api::client::ApiClient {
        url: server.url(),
        token: "unused-for-public-routes".to_string().into(),
        ca_file: Some(server.data_dir.join("server/tls/etcd-snapshot-ca.crt")),
        timeout: Duration::from_secs(10),
    };
    let (status, body) = client.fetch("/metrics").await.expect("fetch /metrics");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

/// The first offset from `from` on whose whole-byte flip changes what `bytes` holds: any offset
/// for a plain file; for a zip, one after which the zip crate (an independent reader that
/// checks the CRC-32) no longer reads back the same entry.
pub fn damaging_flip(bytes: &[u8], from: usize) -> usize {
    let entry = |b: &[u8]| -> Option<Vec<u8>> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(b)).ok()?;
        let mut file = archive.by_index(0).ok()?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut out).ok()?;
        Some(out)
    };
    let Some(intact) = entry(bytes) else {
        return from;
    };
    (from..bytes.len())
        .find(|&at| {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= 0xFF;
            entry(&flipped).as_ref() != Some(&intact)
        })
        .expect("some byte of the archive matters")
}
