//! Restoring a SQLite datastore with `server --cluster-reset --cluster-reset-restore-path`:
//! refused (the data dir byte-identical) while a process holds the database open; otherwise
//! the current `state.db*` go aside as `state.db-old-<unix>`, the snapshot is installed, the
//! token's bootstrap files are written from it, and `restore --rollback` puts the old set back.

use std::collections::BTreeMap;
use std::path::Path;

use etcd_snapshot::bootstrap::crypto::{encrypt, storage_key};

use super::save::save_ok;
use super::{live_keys, only_snapshot, open_kine, put, small_cluster, snapshot_keys, state_db};
use crate::support::{run, text};

const TOKEN: &str = "sqlite-restore-token";

/// Every file under `dir` with its SHA-256 (the data dir's exact state), read by `sha256sum`
/// in a child process: this process closing a file of the database would drop the writer
/// connection's POSIX locks (they are per process), and with them what the restore must see.
fn tree_hashes(dir: &Path) -> BTreeMap<String, String> {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args(["-type", "f", "-exec", "sha256sum", "{}", "+"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(hash, path)| (path.to_string(), hash.to_string()))
        .collect()
}

/// A cluster whose kine table holds bootstrap data sealed with [`TOKEN`], as k3s stores it.
fn cluster_with_bootstrap(data_dir: &Path) {
    small_cluster(data_dir);
    let ca = "-----BEGIN CERTIFICATE-----\nfrom-the-snapshot\n-----END CERTIFICATE-----\n";
    let json = serde_json::json!({
        "ServerCA": {"Timestamp": "2026-01-01T00:00:00Z", "Content": base64_std(ca.as_bytes())}
    });
    let sealed = encrypt(TOKEN, json.to_string().as_bytes()).unwrap();
    let conn = open_kine(&state_db(data_dir));
    put(&conn, &storage_key(TOKEN), sealed.as_bytes(), false);
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn cluster_reset(data_dir: &Path, snapshot: &Path) -> std::process::Output {
    let path = format!("--cluster-reset-restore-path={}", snapshot.display());
    run(
        &[
            "server",
            "--node-name",
            "n1",
            "--token",
            TOKEN,
            "--cluster-reset",
            &path,
        ],
        data_dir,
    )
}

#[test]
fn restore_is_refused_while_a_writer_holds_the_database() {
    let data = tempfile::tempdir().unwrap();
    cluster_with_bootstrap(data.path());
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    // "k3s": a connection open in WAL mode, having written since the snapshot.
    let writer = open_kine(&state_db(data.path()));
    put(&writer, "/registry/pods/default/after", b"x", false);
    let before = tree_hashes(&data.path().join("server/db"));
    let out = cluster_reset(data.path(), &snapshot);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("is in use") && stderr.contains("Nothing was changed"),
        "{stderr}"
    );
    assert_eq!(
        tree_hashes(&data.path().join("server/db")),
        before,
        "the data dir changed"
    );
    drop(writer);
}

#[test]
fn restore_installs_the_snapshot_and_rollback_puts_the_old_database_back() {
    let data = tempfile::tempdir().unwrap();
    cluster_with_bootstrap(data.path());
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    let saved = snapshot_keys(&snapshot);
    {
        let conn = open_kine(&state_db(data.path()));
        put(&conn, "/registry/pods/default/after", b"later", false);
    }
    let later = live_keys(&state_db(data.path()));
    assert_ne!(saved, later);
    let out = cluster_reset(data.path(), &snapshot);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("into the SQLite datastore") && said.contains("To undo"),
        "{said}"
    );
    assert!(!said.contains("membership"), "{said}");
    assert_eq!(live_keys(&state_db(data.path())), saved);
    let db_dir = data.path().join("server/db");
    let old: Vec<String> = std::fs::read_dir(&db_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.db-old-") && !n.contains("-wal") && !n.contains("-shm"))
        .collect();
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(live_keys(&db_dir.join(&old[0])), later);
    let ca = std::fs::read_to_string(data.path().join("server/tls/server-ca.crt")).unwrap();
    assert!(ca.contains("from-the-snapshot"), "{ca}");
    let out = run(&["restore", "--node-name", "n1", "--rollback"], data.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(live_keys(&state_db(data.path())), later);
}
