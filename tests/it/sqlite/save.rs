//! Saving a SQLite datastore with the real binary: the datastore is detected from the data dir
//! (or configured with `datastore-endpoint`), the snapshot is a SQLite database SQLite itself
//! and the `sqlite3` CLI accept, marked as such in its metadata record and by `inspect`, listed
//! by `ls`; compressed and encrypted snapshots carry the same database; kill -9 mid-save
//! leaves no snapshot.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use super::{
    live_keys, only_snapshot, open_kine, put, small_cluster, snapshot_keys, sqlite3_integrity,
    state_db,
};
use crate::support::{command, free_port, run, snapshot_dir, snapshot_files, text, wait_for};

/// Runs a client subcommand in direct mode (no server answers at the URL given).
pub fn direct(args: &[&str], data_dir: &Path) -> Output {
    let url = format!("https://127.0.0.1:{}", free_port());
    let mut all = vec!["--etcd-server", url.as_str(), "--node-name", "n1"];
    all.extend_from_slice(args);
    run(&all, data_dir)
}

/// `save` in direct mode, which must succeed.
pub fn save_ok(args: &[&str], data_dir: &Path) -> String {
    let mut all = vec!["save"];
    all.extend_from_slice(args);
    let out = direct(&all, data_dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "save failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn a_data_dir_with_state_db_is_snapshotted_as_a_sqlite_database() {
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"), "not a SQLite file");
    assert_eq!(snapshot_keys(&snapshot), live_keys(&state_db(data.path())));
    if let Some(verdict) = sqlite3_integrity(&snapshot) {
        assert_eq!(verdict, "ok");
    }
    // Nothing was created beside the snapshot by checking it, and no copy is left behind.
    assert_eq!(snapshot_files(&snapshot_dir(data.path())).len(), 1);
    let work = data.path().join("server/db/.etcd-snapshot");
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    // The marker and kine's figures are in the metadata record.
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    let record =
        std::fs::read_to_string(data.path().join("server/db/.metadata").join(&name)).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["etcd-snapshot-datastore"], "sqlite", "{record}");
    assert_eq!(record["etcd-snapshot-sqlite-revision"], "8", "{record}");
    assert_eq!(record["etcd-snapshot-sqlite-rows"], "8", "{record}");
    // ls lists it like any snapshot.
    let out = direct(&["ls"], data.path());
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains(&name), "{:?}", text(&out));
}

#[test]
fn inspect_shows_a_sqlite_snapshot_with_its_live_keys_per_resource() {
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    let path = snapshot.display().to_string();
    let out = run(&["inspect", "-o", "json", &path], data.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["datastore"], "sqlite");
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["live_keys"], 5, "{report}");
    assert_eq!(report["sqlite"]["revision"], 8);
    let counts: Vec<(String, u64)> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["prefix"].as_str().unwrap().to_string(),
                g["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    let find = |p: &str| counts.iter().find(|(q, _)| q == p).map(|(_, n)| *n);
    // pod c is deleted, pod a counted once (its latest revision).
    assert_eq!(find("/registry/pods"), Some(2), "{counts:?}");
    assert_eq!(find("/registry/configmaps"), Some(2), "{counts:?}");
    assert_eq!(find("/registry/deployments"), Some(1), "{counts:?}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"integrity") && names.contains(&"kine"),
        "{names:?}"
    );
    // The table says which datastore it is.
    let table = run(&["inspect", &path], data.path());
    assert!(
        text(&table).0.contains("Datastore:         sqlite"),
        "{:?}",
        text(&table)
    );
}

#[test]
fn a_damaged_sqlite_snapshot_is_reported_by_inspect() {
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes.truncate(bytes.len() - 100);
    let damaged = data.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = run(
        &["inspect", "-o", "json", &damaged.display().to_string()],
        data.path(),
    );
    assert!(!out.status.success(), "{:?}", text(&out));
    let report: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(report["healthy"], false);
    let detail = report["checks"][0]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("pages"), "{detail}");
}

#[test]
fn compressed_and_configured_sqlite_snapshots_hold_the_same_database() {
    let data = tempfile::tempdir().unwrap();
    // Not under the data dir: named with datastore-endpoint, as k3s's --datastore-endpoint.
    let elsewhere = tempfile::tempdir().unwrap();
    let db = elsewhere.path().join("state.db");
    {
        let conn = open_kine(&db);
        for i in 0..200 {
            put(
                &conn,
                &format!("/registry/secrets/ns/s{i}"),
                &[i as u8; 300],
                false,
            );
        }
    }
    let endpoint = format!("sqlite://{}?_journal=WAL&cache=shared", db.display());
    save_ok(
        &["--datastore-endpoint", &endpoint, "--snapshot-compress"],
        data.path(),
    );
    let zip = only_snapshot(data.path());
    assert!(zip.to_string_lossy().ends_with(".zip"), "{}", zip.display());
    let Some(unzip) = crate::support::require_binary("unzip") else {
        return;
    };
    let out = std::process::Command::new(unzip)
        .arg("-p")
        .arg(&zip)
        .output()
        .unwrap();
    assert!(out.status.success());
    let plain = data.path().join("unzipped.db");
    std::fs::write(&plain, &out.stdout).unwrap();
    assert_eq!(snapshot_keys(&plain), live_keys(&db));
    // The data dir has no state.db: the configured database was the one copied.
    assert!(!state_db(data.path()).exists());
}

#[test]
fn kill_9_during_a_sqlite_save_leaves_no_snapshot() {
    let data = tempfile::tempdir().unwrap();
    {
        // Large and incompressible enough that the save still runs when it is killed (~96 MB).
        let conn = open_kine(&state_db(data.path()));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..1000 {
            let value: Vec<u8> = (0..96 * 1024)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state & 0xff) as u8
                })
                .collect();
            put(
                &conn,
                &format!("/registry/configmaps/big/{i}"),
                &value,
                false,
            );
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let url = format!("https://127.0.0.1:{}", free_port());
    let mut child = command(
        &[
            "--etcd-server",
            &url,
            "--node-name",
            "n1",
            "save",
            "--snapshot-compress",
        ],
        data.path(),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let work = data.path().join("server/db/.etcd-snapshot");
    wait_for("the save's copy to start", Duration::from_secs(60), || {
        std::fs::read_dir(&work).is_ok_and(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        snapshot_files(&snapshot_dir(data.path())).is_empty(),
        "a killed save published a snapshot"
    );
    let out = direct(&["ls", "-o", "json"], data.path());
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!text(&out).0.contains("on-demand-n1"), "{:?}", text(&out));
    // The next save works and is whole.
    save_ok(&[], data.path());
    let snapshot = only_snapshot(data.path());
    assert_eq!(snapshot_keys(&snapshot).len(), 1000);
}

/// Through the signature-checking S3 server: the SQLite snapshot is uploaded like an etcd one,
/// and its object carries the datastore marker and kine's figures as user metadata.
#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_snapshot_is_uploaded_to_s3_with_its_marker() {
    use crate::fakes::s3_support::{S3Server, Tls};
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    let flags = crate::s3::ops::s3_flags(&s3, "snapshots");
    let dir = data.path().to_path_buf();
    crate::s3::ops::blocking(move || {
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        save_ok(&refs, &dir)
    })
    .await;
    let snapshot = only_snapshot(data.path());
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    let store = etcd_snapshot::store::s3::S3Store::connect(&s3.settings("snapshots", "f"))
        .await
        .unwrap();
    let meta = store.object_metadata(&name).await.unwrap();
    let get = |key: &str| meta.get(key).map(String::as_str);
    assert_eq!(get("etcd-snapshot-datastore"), Some("sqlite"), "{meta:?}");
    assert_eq!(get("etcd-snapshot-sqlite-revision"), Some("8"), "{meta:?}");
    // The object is the snapshot's bytes: a SQLite database with the same keys.
    let downloaded = tempfile::tempdir().unwrap();
    let path = store.download(&name, downloaded.path()).await.unwrap();
    assert_eq!(snapshot_keys(&path), snapshot_keys(&snapshot));
    // inspect reads the object itself (streamed into an unlinked temp copy, opened by SQLite
    // through its descriptor) once the local copy is gone.
    std::fs::remove_file(&snapshot).unwrap();
    let mut args = vec!["inspect".to_string(), "-o".into(), "json".into()];
    args.extend(crate::s3::ops::s3_flags(&s3, "snapshots"));
    args.push(name);
    let dir = data.path().to_path_buf();
    let out = crate::s3::ops::blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs, &dir)
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["datastore"], "sqlite", "{report}");
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["live_keys"], 5, "{report}");
}

/// The server on a data dir holding `state.db` starts no etcd, says the datastore is SQLite,
/// and saves through its API like any server.
#[test]
fn the_server_on_a_sqlite_data_dir_starts_no_etcd_and_saves_through_its_api() {
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    let client = free_port();
    let peer = free_port();
    let (client_addr, peer_addr) = (format!("127.0.0.1:{client}"), format!("127.0.0.1:{peer}"));
    let mut server = crate::support::TestServer::start(
        data.path(),
        &[
            "--etcd-client-address",
            &client_addr,
            "--etcd-peer-address",
            &peer_addr,
        ],
    );
    let out = server.cli(&["save"]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(log.contains("the datastore is SQLite"), "{log}");
    assert!(!log.contains("starting embedded etcd"), "{log}");
    assert!(
        std::net::TcpStream::connect(&client_addr).is_err(),
        "an etcd listens"
    );
    let snapshot = only_snapshot(data.path());
    assert_eq!(snapshot_keys(&snapshot), live_keys(&state_db(data.path())));
    assert!(server.terminate().success(), "{}", server.log_text());
}
