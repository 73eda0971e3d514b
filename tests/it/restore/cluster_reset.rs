//! Restore and cluster reset end to end: the real binary runs the server with its embedded etcd
//! on free loopback ports, saves, is stopped, and `etcd-snapshot restore` /
//! `server --cluster-reset` bring the snapshot back. Keys are checked with the real `etcdctl`,
//! and every refused restore must leave the data dir byte-for-byte as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::support::{TestServer, free_port, require_binary, run, text};

/// A node: a data dir and the embedded etcd's loopback ports.
pub(crate) struct Node {
    pub(crate) name: String,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Node {
    pub(crate) fn new() -> Self {
        Self::named("n1")
    }

    pub(crate) fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            data: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.data.path()
    }

    pub(crate) fn etcd_flags(&self) -> Vec<String> {
        vec![
            format!("--node-name={}", self.name),
            format!("--etcd-client-address=127.0.0.1:{}", self.client_port),
            format!("--etcd-peer-address=127.0.0.1:{}", self.peer_port),
        ]
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    /// The embedded etcd's TLS dir (its CAs and certificates).
    pub(crate) fn tls_dir(&self) -> PathBuf {
        self.dir().join("server/tls/etcd")
    }

    /// The real `etcdctl` against this node's embedded etcd, with its client certificate.
    pub(crate) fn etcdctl(&self, args: &[&str]) -> Output {
        etcdctl(&self.tls_dir(), &self.endpoint(), args)
    }

    /// Copies the etcd CAs of `other` here, as an operator does before joining its cluster.
    pub(crate) fn copy_cas_from(&self, other: &Node) {
        std::fs::create_dir_all(self.tls_dir()).unwrap();
        for name in [
            "server-ca.crt",
            "server-ca.key",
            "peer-ca.crt",
            "peer-ca.key",
        ] {
            std::fs::copy(other.tls_dir().join(name), self.tls_dir().join(name)).unwrap();
        }
    }

    pub(crate) fn start(&self, extra: &[&str]) -> TestServer {
        let mut args: Vec<String> = self.etcd_flags();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = TestServer::start(self.dir(), &refs);
        crate::support::wait_for("embedded etcd", std::time::Duration::from_secs(60), || {
            self.etcdctl(&["endpoint", "health"]).status.success()
        });
        // etcd answers a moment before the server counts it as started, and a SIGTERM before
        // that is a stop during start-up, which exits 1 by design: callers may stop it at once.
        crate::support::wait_for(
            "the server's embedded etcd",
            std::time::Duration::from_secs(60),
            || server.log_text().contains("embedded etcd is ready"),
        );
        server
    }

    /// `etcd-snapshot restore ...` (or any server-scope command) with this node's etcd flags.
    pub(crate) fn restore(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec!["restore".into()];
        all.extend(self.etcd_flags());
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs, self.dir())
    }

    /// `etcd-snapshot server --cluster-reset` on this node (runs to completion).
    pub(crate) fn cluster_reset(&self) -> Output {
        let mut args = vec!["server".to_string(), "--cluster-reset".into()];
        args.extend(self.etcd_flags());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs, self.dir())
    }

    pub(crate) fn put(&self, key: &str, value: &str) {
        let out = self.etcdctl(&["put", key, value]);
        assert!(out.status.success(), "{:?}", text(&out));
    }

    pub(crate) fn del(&self, key: &str) {
        assert!(self.etcdctl(&["del", key]).status.success());
    }

    /// Every `/test/` key and value, through etcdctl.
    pub(crate) fn keys(&self) -> BTreeMap<String, String> {
        let out = self.etcdctl(&["get", "--prefix", "/test/"]);
        assert!(out.status.success(), "{:?}", text(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").to_string()))
            .collect()
    }

    pub(crate) fn member_count(&self) -> usize {
        let out = self.etcdctl(&["member", "list"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    pub(crate) fn save(&self, server: &TestServer, compress: bool) -> PathBuf {
        let args: &[&str] = if compress {
            &["save", "--snapshot-compress"]
        } else {
            &["save"]
        };
        let out = server.cli(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let name = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Snapshot ")?.strip_suffix(" saved."))
            .expect("saved line")
            .to_string();
        crate::support::snapshot_dir(self.dir()).join(name)
    }
}

/// The documented command line: `etcdctl --endpoints https://... --cacert <tls>/server-ca.crt
/// --cert <tls>/client.crt --key <tls>/client.key ...`.
pub(crate) fn etcdctl(tls_dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    let etcdctl = require_binary("etcdctl").expect("etcdctl");
    Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "5s"])
        .arg("--cacert")
        .arg(tls_dir.join("server-ca.crt"))
        .arg("--cert")
        .arg(tls_dir.join("client.crt"))
        .arg("--key")
        .arg(tls_dir.join("client.key"))
        .args(args)
        .output()
        .unwrap()
}

/// Path, mode and SHA-256 of every file and dir under `root` (symlinks as their target).
pub(crate) fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel.ends_with(".log") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                stack.push(path);
            } else {
                let sum = Sha256::digest(std::fs::read(&path).unwrap_or_default());
                out.insert(rel, format!("{mode:o} {sum:?}"));
            }
        }
    }
    out
}

pub(crate) fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Saves {a=1, b=2}, then changes a, deletes b, adds c; returns the snapshot path (server
/// stopped).
fn snapshot_then_diverge(node: &Node, compress: bool) -> PathBuf {
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    node.put("/test/b", "2");
    let snapshot = node.save(&server, compress);
    node.put("/test/a", "changed");
    node.del("/test/b");
    node.put("/test/c", "3");
    assert!(server.terminate().success());
    snapshot
}

#[test]
fn restore_brings_back_exactly_the_snapshot_and_one_member() {
    if require_binary("etcd").is_none() {
        return;
    }
    for compress in [false, true] {
        let node = Node::new();
        let snapshot = snapshot_then_diverge(&node, compress);
        let out = node.restore(&[snapshot.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("Managed etcd cluster membership has been reset, restart without --cluster-reset flag now."), "{stdout}");
        assert!(
            stdout.contains("on each peer etcd server and rejoin the nodes"),
            "{stdout}"
        );
        let flag = node.dir().join("server/db/reset-flag");
        assert!(flag.exists());
        // The extracted copy of a zip is gone; the zip itself stays.
        let snapshots = crate::support::snapshot_files(&crate::support::snapshot_dir(node.dir()));
        assert_eq!(snapshots.len(), 1, "{snapshots:?}");

        let mut server = node.start(&[]);
        assert_eq!(
            node.keys(),
            expected(&[("/test/a", "1"), ("/test/b", "2")]),
            "compress={compress}"
        );
        assert_eq!(node.member_count(), 1);
        crate::support::wait_for(
            "reset-flag removed",
            std::time::Duration::from_secs(10),
            || !flag.exists(),
        );
        assert!(server.terminate().success());
    }
}

#[test]
fn bad_snapshots_and_a_missing_tool_are_refused_and_change_nothing() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let snapshot = snapshot_then_diverge(&node, false);
    let good = std::fs::read(&snapshot).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, PathBuf)> = Vec::new();
    for offset in [0, good.len() / 2, good.len() - 40, good.len() - 5] {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x10;
        let path = scratch.path().join(format!("flipped-n1-{offset}"));
        std::fs::write(&path, bytes).unwrap();
        cases.push((format!("bit flip at {offset}"), path));
    }
    let truncated = scratch.path().join("truncated-n1-1");
    std::fs::write(&truncated, &good[..good.len() - 100]).unwrap();
    cases.push(("truncated".into(), truncated));
    for (label, entries) in [
        ("two entries", vec!["a-n1-1", "b-n1-2"]),
        ("traversal entry", vec!["../evil-n1-1"]),
    ] {
        let path = scratch
            .path()
            .join(format!("{}-n1-1.zip", label.replace(' ', "-")));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for entry in entries {
            zip.start_file(entry, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&good).unwrap();
        }
        zip.finish().unwrap();
        cases.push((label.into(), path));
    }
    let before = tree(node.dir());
    for (label, path) in &cases {
        let out = node.restore(&[path.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{label}: {stdout}\n{stderr}");
        assert_eq!(
            tree(node.dir()),
            before,
            "{label} changed the data dir:\n{stderr}"
        );
    }
    assert!(!scratch.path().parent().unwrap().join("evil-n1-1").exists());

    // No etcdctl/etcdutl anywhere: refused before anything happens.
    let bare = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(require_binary("etcd").unwrap(), bare.path().join("etcd")).unwrap();
    let mut cmd = crate::support::command(&["restore", "--node-name=n1"], node.dir());
    cmd.args(node.etcd_flags())
        .arg(format!(
            "--etcd-binary={}",
            bare.path().join("etcd").display()
        ))
        .arg(&snapshot)
        .env("PATH", bare.path());
    let out = cmd.output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("etcdctl") && stderr.contains("etcd-client"),
        "{stderr}"
    );
    assert_eq!(tree(node.dir()), before);
}

#[test]
fn a_second_reset_is_blocked_and_rollback_puts_the_old_data_back() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let server_dir = node.dir().join("server");
    write_bootstrap_files(&server_dir);
    let snapshot = snapshot_then_diverge(&node, false);
    // Certificates and credentials change after the snapshot; the restore writes the
    // snapshot's back, and the rollback must bring these back again.
    for rel in ["tls/server-ca.crt", "cred/passwd"] {
        std::fs::write(server_dir.join(rel), format!("after the snapshot: {rel}")).unwrap();
    }
    // Backups named while the clock ran years ahead: by name they are the newest, but the
    // rollback must put back what this restore replaced, and retention must keep that.
    let ahead_data = server_dir.join("db/etcd-old-4000000000");
    let ahead_tls = server_dir.join("tls-4000000000");
    for dir in [&ahead_data, &ahead_tls] {
        std::fs::create_dir_all(dir.join("member")).unwrap();
        std::fs::write(dir.join("member/ahead"), b"from a clock running ahead").unwrap();
    }
    assert!(node.restore(&[snapshot.to_str().unwrap()]).status.success());
    for rel in ["tls/server-ca.crt", "cred/passwd"] {
        let now = std::fs::read_to_string(server_dir.join(rel)).unwrap_or_default();
        assert!(
            !now.starts_with("after the snapshot"),
            "{rel} was not restored"
        );
    }
    // The reset-flag blocks `server --cluster-reset` until a normal start.
    let out = node.cluster_reset();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Managed etcd cluster membership was previously reset"),
        "{stderr}"
    );
    assert!(stderr.contains("reset-flag"), "{stderr}");
    // So does a second restore (a restore left in a config file must not repeat on restarts).
    let out = node.restore(&[snapshot.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("previously reset"), "{stderr}");

    let out = node.restore(&["--list-backups"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("etcd-old-"), "{stdout}");

    let out = node.restore(&["--rollback"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!node.dir().join("server/db/reset-flag").exists());
    for rel in ["tls/server-ca.crt", "cred/passwd"] {
        assert_eq!(
            std::fs::read_to_string(server_dir.join(rel)).unwrap(),
            format!("after the snapshot: {rel}"),
            "rollback puts {rel} back"
        );
    }
    assert!(
        ahead_data.is_dir() && ahead_tls.is_dir(),
        "the misnamed backups were not used"
    );
    assert!(!server_dir.join("db/etcd/member/ahead").exists());
    let mut server = node.start(&[]);
    // While the server runs, restores and rollbacks refuse to touch its data.
    for args in [vec![snapshot.to_str().unwrap()], vec!["--rollback"]] {
        let mut all = args.clone();
        // Other etcd ports: the port check must not be what refuses.
        let (client, peer) = (
            format!("--etcd-client-address=127.0.0.1:{}", free_port()),
            format!("--etcd-peer-address=127.0.0.1:{}", free_port()),
        );
        all.extend([client.as_str(), peer.as_str()]);
        let out = node.restore(&all);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("server is running with this data dir"),
            "{stderr}"
        );
    }
    assert_eq!(
        node.keys(),
        expected(&[("/test/a", "changed"), ("/test/c", "3")])
    );
    let status = server.terminate();
    assert!(status.success(), "{status}:\n{}", server.log_text());
}

#[test]
fn reset_without_a_snapshot_keeps_the_data_with_one_member() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let _ = snapshot_then_diverge(&node, false);
    let out = node.cluster_reset();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Managed etcd cluster membership has been reset"),
        "{stderr}"
    );
    assert!(node.dir().join("server/db/reset-flag").exists());
    let mut server = node.start(&[]);
    assert_eq!(
        node.keys(),
        expected(&[("/test/a", "changed"), ("/test/c", "3")])
    );
    assert_eq!(node.member_count(), 1);
    assert!(server.terminate().success());
}

/// The RKE2 bootstrap files of a node, with random content.
fn write_bootstrap_files(server_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for rel in [
        "tls/server-ca.crt",
        "tls/server-ca.key",
        "tls/client-ca.crt",
        "cred/passwd",
    ] {
        let path = server_dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..64).map(|i| (i * 7 + rel.len()) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        files.insert(rel.to_string(), content);
    }
    files
}

#[test]
fn restore_on_a_new_host_with_the_token_brings_back_the_bootstrap_files() {
    if require_binary("etcd").is_none() {
        return;
    }
    let old = Node::new();
    let files = write_bootstrap_files(&old.dir().join("server"));
    let snapshot = snapshot_then_diverge(&old, true);
    let token = std::fs::read_to_string(old.dir().join("server/token")).unwrap();

    let new = Node::new();
    let copied = new.dir().join(snapshot.file_name().unwrap());
    std::fs::copy(&snapshot, &copied).unwrap();
    // A wrong token is refused and changes nothing.
    let before = tree(new.dir());
    let out = new.restore(&["--token=not-the-token", copied.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("token differs"), "{stderr}");
    assert_eq!(tree(new.dir()), before);
    // Without a token at all: RKE2's message.
    let out = new.restore(&[copied.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("please pass --token to complete the restoration"),
        "{stderr}"
    );

    let token_flag = format!("--token={}", token.trim());
    let out = new.restore(&[&token_flag, copied.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for (rel, content) in &files {
        let got = std::fs::read(new.dir().join("server").join(rel)).unwrap();
        assert_eq!(&got, content, "{rel}");
    }
    let mut server = new.start(&[&token_flag]);
    assert_eq!(new.keys(), expected(&[("/test/a", "1"), ("/test/b", "2")]));
    assert!(server.terminate().success());
}
