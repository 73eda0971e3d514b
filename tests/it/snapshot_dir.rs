//! The snapshot dir holds snapshots and nothing else. RKE2 lists every regular file under
//! `server/db/snapshots` as a snapshot (and publishes each as an ETCDSnapshotFile), so our writer
//! lock and the temp file of a save, even an interrupted one, must live elsewhere: in the work
//! dir `server/db/.etcd-snapshot/`, on the same file system so publishing stays an atomic rename.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{
    TestEtcd, TestServer, fill_etcd, free_port, run, signal, snapshot_dir, text, trailer_verifies,
    wait_for,
};

/// Every regular file under `dir`, recursively, as RKE2's listing walks it.
fn rke2_listing(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// The files of a dir (none when it does not exist), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts every file RKE2 would list is a complete snapshot of node n1 named as RKE2 names it.
fn assert_only_snapshots(dir: &Path, expected: usize) {
    let listed = rke2_listing(dir);
    assert_eq!(listed.len(), expected, "{listed:?}");
    for path in &listed {
        let name = path.file_name().unwrap().to_string_lossy();
        let unix = name.strip_prefix("on-demand-n1-").unwrap_or_default();
        assert!(
            !unix.is_empty() && unix.bytes().all(|b| b.is_ascii_digit()),
            "RKE2 would list {path:?} as a snapshot"
        );
        assert!(
            trailer_verifies(&std::fs::read(path).unwrap()),
            "{path:?} is not a complete snapshot"
        );
    }
}

/// A direct-mode save (the API port is closed) killed while it writes: its temp file is in the
/// work dir, never in the snapshot dir.
fn interrupted_save(etcd: &TestEtcd, data: &Path, work: &Path) {
    let url = format!("https://127.0.0.1:{}", free_port());
    let args = [
        "--etcd-server",
        url.as_str(),
        "--node-name",
        "n1",
        "--etcd-endpoints",
        etcd.endpoint.as_str(),
        "save",
    ];
    let mut save = crate::support::command(&args, data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let has_part = || names_in(work).iter().any(|n| n.ends_with(".part"));
    wait_for(
        "the save to start writing",
        Duration::from_secs(20),
        has_part,
    );
    // Paused etcd keeps the save from finishing before it is killed.
    signal(etcd.pid(), "STOP");
    signal(save.id(), "KILL");
    let _ = save.wait();
    signal(etcd.pid(), "CONT");
    assert!(
        has_part(),
        "the killed save left its temp file in the work dir"
    );
}

#[test]
fn an_rke2_listing_of_the_snapshot_dir_sees_only_snapshots() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    fill_etcd(&etcd.endpoint, 64);
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    let work = data.path().join("server/db/.etcd-snapshot");

    interrupted_save(&etcd, data.path(), &work);
    assert_only_snapshots(&dir, 0);

    let closed = format!("https://127.0.0.1:{}", free_port());
    let direct = run(
        &[
            "--etcd-server",
            &closed,
            "--node-name",
            "n1",
            "--etcd-endpoints",
            &etcd.endpoint,
            "save",
        ],
        data.path(),
    );
    assert!(direct.status.success(), "{:?}", text(&direct));
    assert_only_snapshots(&dir, 1);

    // What versions before the work dir left in the snapshot dir.
    std::fs::write(dir.join(".etcd-snapshot.lock"), b"").unwrap();
    std::fs::write(dir.join("on-demand-n1-5.part"), b"partial").unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    wait_for(
        "startup to remove the leftover temp files",
        Duration::from_secs(20),
        || {
            names_in(&work).iter().all(|n| !n.ends_with(".part"))
                && !dir.join("on-demand-n1-5.part").exists()
                && !dir.join(".etcd-snapshot.lock").exists()
        },
    );
    let via_api = server.cli(&["save"]);
    assert!(via_api.status.success(), "{:?}", text(&via_api));
    assert_only_snapshots(&dir, 2);
    assert_eq!(names_in(&work), ["writer.lock"], "only the lock stays");
    let ls = server.cli(&["ls"]);
    assert_eq!(text(&ls).0.lines().count(), 3, "{:?}", text(&ls));
}
