//! Where else a verdict counts: retention keeps the newest verified snapshot, and a failed drill
//! shows in the ETCDSnapshotFile's status, its Verified column and an Event.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_newest_verified_snapshot_and_dry_run_says_so() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "v");
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let verified = save(&server, "keep", false);
    let (code, reply) = verify(&server, &[&verified]).await;
    assert_eq!(code, Some(0), "{reply:#}");
    // Two newer snapshots of the same base (a name taken bumps the second), never drilled.
    for _ in 0..2 {
        let out = server.cli(&["save", "--name", "keep"]);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let out = server.cli(&[
        "prune",
        "--name",
        "keep",
        "--snapshot-retention=1",
        "--dry-run",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let kept = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == verified.as_str())
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(kept["action"], "keep", "{kept}");
    assert_eq!(kept["rule"], "newest-verified", "{kept}");
    let out = server.cli(&[
        "prune",
        "--name",
        "keep",
        "--snapshot-retention=1",
        "--dry-run",
    ]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(&format!("Snapshot {verified} kept")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_drill_is_a_resource_status_a_printer_column_and_an_event() {
    use crate::fakes::kube_api::KubeApi;
    use crate::fakes::kube_support::{EVENTS, FILES, cli, start_kube_server, wait_until};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "kube");
    let api = std::sync::Arc::new(KubeApi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (data, server) =
        start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, Vec::new()).await;
    let out = cli(&server, &["save", "--name", "good"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let out = cli(&server, &["save", "--name", "bad"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let files = crate::support::snapshot_files(&snapshot_dir(&data));
    let bad = files
        .iter()
        .find(|n| n.starts_with("bad-"))
        .unwrap()
        .clone();
    let good = files
        .iter()
        .find(|n| n.starts_with("good-"))
        .unwrap()
        .clone();
    damage_page_keep_trailer(&snapshot_dir(&data).join(&bad));

    let out = cli(&server, &["verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let resource = |name: &str| {
        api.list(FILES)
            .into_iter()
            .find(|r| r["spec"]["snapshotName"] == name)
            .unwrap_or_else(|| panic!("no resource for {name}"))
    };
    let (bad_api, bad_name) = (api.clone(), bad.clone());
    wait_until("the failed verdict in the resource", move || {
        bad_api.list(FILES).iter().any(|r| {
            r["spec"]["snapshotName"] == bad_name.as_str()
                && r["status"]["verification"]["result"] == "failed"
        })
    })
    .await;
    let failed = resource(&bad);
    let message = failed["status"]["verification"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("structure"), "{failed:#}");
    assert!(
        failed["status"]["verification"]["time"].is_string(),
        "{failed:#}"
    );
    assert_eq!(
        failed["status"]["readyToUse"], true,
        "the file is still there"
    );
    assert_eq!(
        resource(&good)["status"]["verification"]["result"],
        "passed"
    );
    // The CRD's Verified printer column reads it.
    let columns = etcd_snapshot::kube::crd::printer_columns();
    let verified = columns
        .iter()
        .find(|c| c.name == "Verified")
        .expect("column");
    let cell = verified
        .json_path
        .trim_start_matches('.')
        .split('.')
        .fold(&failed, |at, step| &at[step]);
    assert_eq!(cell, "failed", "{}", verified.json_path);
    // One Warning Event on the failed copy's resource, none on the good one.
    let events = api.list(EVENTS);
    let drill_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "ETCDSnapshotDrillFailed")
        .collect();
    assert_eq!(drill_events.len(), 1, "{events:#?}");
    assert_eq!(drill_events[0]["type"], "Warning");
    assert_eq!(
        drill_events[0]["regarding"]["name"],
        failed["metadata"]["name"]
    );
    let note = drill_events[0]["note"].as_str().unwrap();
    assert!(note.contains(&bad) && note.contains("structure"), "{note}");
}
