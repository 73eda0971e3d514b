//! The CLI against a running server and in direct mode: RKE2's own test sequence, compression,
//! exit codes and bad input.

use std::time::Duration;

use crate::support::{
    TestEtcd, TestServer, run, snapshot_dir, snapshot_files, text, trailer_verifies, wait_for,
};

/// The `Snapshot <name> saved.` name from a save's stdout.
fn saved_name(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Snapshot ") && l.ends_with(" saved."))
        .unwrap_or_else(|| panic!("no saved line in {stdout:?}"));
    line.trim_start_matches("Snapshot ")
        .trim_end_matches(" saved.")
        .to_string()
}

#[test]
fn rke2_sequence_save_ls_delete_and_prune() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);

    let out = server.cli(&["save"]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "save failed: {stdout}{stderr}\n{}",
        server.log_text()
    );
    assert!(
        !stderr.contains("directly"),
        "save must go through the server: {stderr}"
    );
    let name = saved_name(&stdout);
    assert!(name.starts_with("on-demand-n1-"), "{name}");

    let out = server.cli(&["ls"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["Name", "Location", "Size", "Created"]),
        "{stdout}"
    );
    let expected_location = format!("file://{}/{name}", snapshot_dir(data.path()).display());
    assert!(
        stdout.contains(&expected_location),
        "ls must show {expected_location}: {stdout}"
    );

    let out = server.cli(&["delete", &name]);
    assert_eq!(text(&out).0.trim(), format!("Snapshot {name} deleted."));
    assert!(snapshot_files(&snapshot_dir(data.path())).is_empty());

    let out = server.cli(&["save", "--name", "ALIVEBEEF"]);
    let alive = saved_name(&text(&out).0);
    assert!(alive.starts_with("ALIVEBEEF-n1-"), "{alive}");
    let out = server.cli(&["delete", &alive]);
    assert!(text(&out).0.contains(&format!("Snapshot {alive} deleted.")));

    for _ in 0..3 {
        let out = server.cli(&["save", "--name", "PRUNE_TEST"]);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let files = snapshot_files(&snapshot_dir(data.path()));
    assert_eq!(
        files.len(),
        3,
        "three saves in quick succession never overwrite each other: {files:?}"
    );
    let out = server.cli(&["prune", "--snapshot-retention", "2", "--name", "PRUNE_TEST"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(" deleted.")).count(),
        1,
        "{stdout}"
    );
    let remaining = snapshot_files(&snapshot_dir(data.path()));
    assert_eq!(remaining, files[1..].to_vec(), "the oldest one goes");
    let out = server.cli(&["delete", &remaining[0], &remaining[1]]);
    assert_eq!(text(&out).0.lines().count(), 2);
    assert!(snapshot_files(&snapshot_dir(data.path())).is_empty());
}

#[test]
fn ls_json_and_yaml_are_etcdsnapshotfile_lists() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let name = saved_name(&text(&server.cli(&["save"])).0);
    let out = server.cli(&["ls", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list["kind"], "List");
    let item = &list["items"][0];
    assert_eq!(item["kind"], "ETCDSnapshotFile");
    assert_eq!(item["apiVersion"], "k3s.cattle.io/v1");
    assert_eq!(item["metadata"]["name"], format!("local-{name}"));
    assert_eq!(item["spec"]["snapshotName"], name.as_str());
    assert_eq!(item["spec"]["nodeName"], "n1");
    assert_eq!(item["status"]["readyToUse"], true);
    let out = server.cli(&["list", "--output", "yaml"]);
    assert!(text(&out).0.contains(&format!("snapshotName: {name}")));
    let out = server.cli(&["l", "-o", "xml"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid output format is a usage error"
    );
}

#[test]
fn compressed_save_is_a_one_entry_zip_whose_content_verifies() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let Some(unzip) = crate::support::require_binary("unzip") else {
        return;
    };
    etcd.put("/registry/test/key1", "v1");
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let name = saved_name(&text(&server.cli(&["save", "--snapshot-compress"])).0);
    assert!(name.ends_with(".zip"), "{name}");
    let path = snapshot_dir(data.path()).join(&name);
    let listing = std::process::Command::new(&unzip)
        .arg("-Z1")
        .arg(&path)
        .output()
        .unwrap();
    let entries = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(entries, vec![name.trim_end_matches(".zip").to_string()]);
    let content = std::process::Command::new(&unzip)
        .arg("-p")
        .arg(&path)
        .output()
        .unwrap();
    assert!(content.status.success());
    assert!(
        trailer_verifies(&content.stdout),
        "the zipped snapshot's sha256 trailer verifies"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn direct_mode_when_no_server_answers() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = crate::support::free_port().to_string();
    let url = format!("https://127.0.0.1:{port}");
    let base = [
        "--etcd-server",
        url.as_str(),
        "--node-name",
        "n1",
        "--etcd-endpoints",
        etcd.endpoint.as_str(),
    ];
    let out = run(&[&base[..], &["save"]].concat(), data.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains("directly")).count(),
        1,
        "one line says so: {stderr}"
    );
    let name = saved_name(&stdout);
    let bytes = std::fs::read(snapshot_dir(data.path()).join(&name)).unwrap();
    assert!(trailer_verifies(&bytes));
    let out = run(&[&base[..], &["ls"]].concat(), data.path());
    assert!(text(&out).0.contains(&name));
    let out = run(&[&base[..], &["delete", &name]].concat(), data.path());
    assert!(text(&out).0.contains(&format!("Snapshot {name} deleted.")));
}

#[test]
fn wrong_token_is_refused_with_401() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let out = server.cli(&["--etcd-token", "not-the-token", "save"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains("not-the-token"),
        "the token never appears in errors: {stderr}"
    );
    assert!(snapshot_files(&snapshot_dir(data.path())).is_empty());
}

#[test]
fn delete_refuses_traversal_names() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let victim = data.path().join("server/db/victim-n1-1");
    std::fs::write(&victim, b"keep me").unwrap();
    for bad in ["../victim-n1-1", "/etc/passwd", "a/b", ".."] {
        let out = server.cli(&["delete", bad]);
        let (_, stderr) = text(&out);
        assert_ne!(out.status.code(), Some(0), "{bad}: {stderr}");
        assert!(stderr.contains("invalid snapshot name"), "{bad}: {stderr}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}

#[test]
fn deleting_an_unknown_snapshot_says_not_found() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    wait_for("snapshot dir", Duration::from_secs(10), || {
        snapshot_dir(data.path()).is_dir()
    });
    let out = server.cli(&["delete", "on-demand-n1-1"]);
    assert!(
        text(&out).1.contains("Snapshot on-demand-n1-1 not found."),
        "{:?}",
        text(&out)
    );
}

#[test]
fn metrics_and_health_reflect_saves_and_logs_can_be_json() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        data.path(),
        &["--etcd-endpoints", &etcd.endpoint, "--log-format", "json"],
    );
    assert!(server.cli(&["save"]).status.success());
    let client = etcd_snapshot::api::client::ApiClient {
        url: server.url(),
        token: "unused-for-public-routes".to_string().into(),
        ca_file: Some(data.path().join("server/tls/etcd-snapshot-ca.crt")),
        timeout: Duration::from_secs(10),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(client.fetch("/metrics")).unwrap();
    let metrics = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("etcd_snapshot_save_duration_seconds_count{status=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "etcd_snapshot_save_duration_seconds_bucket{le=\"0.008\",status=\"success\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_snapshot_files{storage=\"local\"} 1"),
        "{metrics}"
    );
    let last_success = metrics
        .lines()
        .find_map(|l| l.strip_prefix("etcd_snapshot_last_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("last success gauge");
    assert!(last_success > 1.7e9, "{last_success}");
    let (status, body) = rt.block_on(client.fetch("/healthz")).unwrap();
    assert_eq!((status, body.as_ref()), (200, b"ok".as_ref()));
    let log = server.log_text();
    assert!(!log.is_empty());
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}
