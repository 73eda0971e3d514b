//! Evidence for `etcd-snapshot verify` through the real binary, a real server and real etcd:
//! bit flips at several offsets, a page damaged under a recomputed trailer, a truncated zip and
//! a snapshot of another cluster are each caught by a restore drill and shown failed in the
//! `.metadata` record, `ls -o wide` and the metrics, while a good snapshot passes and is the one
//! retention keeps as the newest verified; an S3 object damaged after upload fails its own drill
//! while the local copy of the same snapshot passes. Snapshots are small (tens of keys).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::Digest;

use crate::support::{TestEtcd, TestServer, metrics, require_binary, run, snapshot_dir, text};

/// Has the restore tool a drill needs (etcdutl 3.5, or etcdctl for 3.4).
fn restore_tool() -> bool {
    require_binary("etcdutl").is_some() || require_binary("etcdctl").is_some()
}

fn put_values(etcd: &TestEtcd, tag: &str) {
    for i in 0..20 {
        etcd.put(
            &format!("/registry/pods/default/p{i}"),
            &format!("{tag}-{i:04}"),
        );
    }
}

/// Saves `base` through the server; returns the new file name.
fn save(server: &TestServer, base: &str, compress: bool) -> String {
    let mut args = vec!["save", "--name", base];
    if compress {
        args.push("--snapshot-compress");
    }
    let out = server.cli(&args);
    assert!(out.status.success(), "{:?}", text(&out));
    crate::support::snapshot_files(&snapshot_dir(&server.data_dir))
        .into_iter()
        .find(|n| n.starts_with(&format!("{base}-")))
        .expect("saved snapshot")
}

/// The `.metadata/<name>` record of a local copy.
fn record(data: &Path, name: &str) -> BTreeMap<String, String> {
    let bytes = std::fs::read(data.join("server/db/.metadata").join(name)).expect("record");
    serde_json::from_slice(&bytes).expect("a JSON object of strings")
}

/// `verify -o json` through the server (off the async runtime): exit code and reply.
async fn verify(server: &TestServer, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["verify".to_string(), "-o".into(), "json".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (url, node, data) = (server.url(), server.node.clone(), server.data_dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut with_server = vec!["--etcd-server".to_string(), url, "--node-name".into(), node];
        with_server.extend(all);
        let refs: Vec<&str> = with_server.iter().map(String::as_str).collect();
        run(&refs, &data)
    })
    .await
    .unwrap();
    let reply: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&out)));
    (out.status.code(), reply)
}

/// The drill of `name` in `storage` from a verify reply.
fn drill<'a>(reply: &'a Value, name: &str, storage: &str) -> &'a Value {
    reply["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name && d["storage"] == storage)
        .unwrap_or_else(|| panic!("no {storage} drill of {name}: {reply:#}"))
}

fn failed_checks(drill: &Value) -> Vec<String> {
    drill["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// One metric sample's value.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Replaces the file's page holding the root bucket with garbage of a valid type byte's
/// neighbour and recomputes the SHA-256 trailer: whole to the hash check, broken inside.
fn damage_page_keep_trailer(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let db = bytes.len() - 32;
    let page_size = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let root = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    bytes[root * page_size + 8] = 0x10;
    let digest = sha2::Sha256::digest(&bytes[..db]);
    bytes[db..].copy_from_slice(&digest);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_damage_fails_its_drill_and_shows_in_record_listing_and_metrics() {
    let (Some(etcd), Some(theirs)) = (TestEtcd::start(), TestEtcd::start()) else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "ours");
    put_values(&theirs, "theirs");
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let dir = snapshot_dir(data.path());
    let good = save(&server, "good", false);
    let flips: Vec<String> = ["flipa", "flipb", "flipc"]
        .iter()
        .map(|b| save(&server, b, false))
        .collect();
    let page = save(&server, "page", false);
    let zip = save(&server, "zipped", true);
    let other = save(&server, "other", false);

    let len = std::fs::metadata(dir.join(&flips[0])).unwrap().len() as usize;
    for (name, offset) in flips.iter().zip([20, len / 2, len - 40]) {
        let mut bytes = std::fs::read(dir.join(name)).unwrap();
        bytes[offset] ^= 0x10;
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    damage_page_keep_trailer(&dir.join(&page));
    let bytes = std::fs::read(dir.join(&zip)).unwrap();
    std::fs::write(dir.join(&zip), &bytes[..bytes.len() / 2]).unwrap();
    // The other cluster's snapshot under our name and beside our record: same revision and
    // key count, another keyspace.
    let their_data = tempfile::tempdir().unwrap();
    let theirs_file = crate::inspect::save(&theirs, their_data.path(), "x", false);
    std::fs::copy(&theirs_file, dir.join(&other)).unwrap();

    let (code, reply) = verify(&server, &[]).await;
    assert_eq!(code, Some(1), "{reply:#}");
    assert_eq!(
        drill(&reply, &good, "local")["result"],
        "passed",
        "{reply:#}"
    );
    let expected: Vec<(&String, &str)> = flips
        .iter()
        .map(|f| (f, "inspect"))
        .chain([(&page, "inspect"), (&zip, "archive"), (&other, "hashkv")])
        .collect();
    for (name, check) in &expected {
        let d = drill(&reply, name, "local");
        assert_eq!(d["result"], "failed", "{d:#}");
        assert!(failed_checks(d).contains(&check.to_string()), "{d:#}");
    }
    // The page under a valid trailer is caught by the structure walk, not the hash.
    let page_reason = drill(&reply, &page, "local")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(page_reason.contains("structure"), "{page_reason}");

    // The record: every damaged copy failed, with the reason; nothing was deleted.
    for (name, _) in &expected {
        let r = record(data.path(), name);
        assert_eq!(r["etcd-snapshot-verify-result"], "failed", "{r:?}");
        assert!(!r["etcd-snapshot-verify-reason"].is_empty(), "{r:?}");
        assert!(dir.join(name).is_file(), "a failed drill deleted {name}");
    }
    let r = record(data.path(), &good);
    assert_eq!(r["etcd-snapshot-verify-result"], "passed", "{r:?}");
    assert!(
        r.contains_key("etcd-snapshot-hashkv"),
        "the save's entries stay: {r:?}"
    );

    // `ls -o wide`: the Verified column.
    let out = server.cli(&["ls", "-o", "wide"]);
    let (table, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        table.lines().next().unwrap().ends_with("Verified"),
        "{table}"
    );
    for line in table.lines().skip(1) {
        let verdict = line.split_whitespace().last().unwrap();
        let want = if line.starts_with(&good) {
            "passed@"
        } else {
            "failed@"
        };
        assert!(verdict.starts_with(want), "{line}\n{table}");
    }

    // The metrics: six failures, the time of the pass, the verified copy's age.
    let exposition = metrics(&server).await;
    let failures = "etcd_snapshot_drill_failures_total{storage=\"local\"}";
    assert_eq!(sample(&exposition, failures), Some(6.0), "{exposition}");
    let verified_at = "etcd_snapshot_last_verified_timestamp_seconds{storage=\"local\"}";
    assert!(sample(&exposition, verified_at).is_some(), "{exposition}");
    let age = "etcd_snapshot_newest_verified_age_seconds{storage=\"local\"}";
    assert!(sample(&exposition, age).is_some(), "{exposition}");
    let durations = exposition.lines().find(|l| {
        l.starts_with("etcd_snapshot_drill_duration_seconds_count{")
            && l.contains("result=\"failed\"")
            && l.contains("storage=\"local\"")
    });
    assert!(durations.is_some_and(|l| l.ends_with(" 6")), "{exposition}");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_damaged_after_upload_fails_its_drill_while_the_local_copy_passes() {
    use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "s3");
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    let data = tempfile::tempdir().unwrap();
    let endpoint = format!("--etcd-s3-endpoint={}", s3.addr);
    let access = format!("--etcd-s3-access-key={ACCESS_KEY}");
    let secret = format!("--etcd-s3-secret-key={SECRET_KEY}");
    let server = TestServer::start(
        data.path(),
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-s3",
            &endpoint,
            "--etcd-s3-insecure",
            "--etcd-s3-bucket=snaps",
            "--etcd-s3-folder=f",
            &access,
            &secret,
        ],
    );
    let name = save(&server, "up", false);
    assert!(s3.has_object("snaps", &format!("f/{name}")));
    let (code, reply) = verify(&server, &[&name]).await;
    assert_eq!(code, Some(0), "{reply:#}");
    assert_eq!(drill(&reply, &name, "s3")["result"], "passed", "{reply:#}");
    assert_eq!(
        drill(&reply, &name, "local")["result"],
        "passed",
        "{reply:#}"
    );

    let key = format!("f/{name}");
    let mut bytes = s3.read_raw("snaps", &key).unwrap();
    let offsets = [17, bytes.len() / 2, bytes.len() - 5];
    for offset in offsets {
        bytes[offset] ^= 0x04;
    }
    s3.put_raw("snaps", &key, &bytes);
    let (code, reply) = verify(&server, &[&name]).await;
    assert_eq!(code, Some(1), "{reply:#}");
    let remote = drill(&reply, &name, "s3");
    assert_eq!(failed_checks(remote), ["object"], "{remote:#}");
    assert_eq!(
        drill(&reply, &name, "local")["result"],
        "passed",
        "{reply:#}"
    );

    // The verdict is in the S3 `.metadata` object, beside the save's entries.
    let meta = s3
        .read_raw("snaps", &format!("f/.metadata/{name}"))
        .expect("metadata object");
    let meta: BTreeMap<String, String> = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["etcd-snapshot-verify-result"], "failed", "{meta:?}");
    assert!(meta.contains_key("etcd-snapshot-hashkv"), "{meta:?}");
    assert_eq!(
        record(data.path(), &name)["etcd-snapshot-verify-result"],
        "passed"
    );

    let out = server.cli(&["ls", "-o", "wide"]);
    let (table, _) = text(&out);
    let row = |prefix: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&name) && l.contains(prefix))
            .unwrap_or_else(|| panic!("{prefix} row of {name}:\n{table}"))
            .to_string()
    };
    assert!(row("s3://").contains(" failed@"), "{table}");
    assert!(row("file://").contains(" passed@"), "{table}");
    let exposition = metrics(&server).await;
    let failures = "etcd_snapshot_drill_failures_total{storage=\"s3\"}";
    assert_eq!(sample(&exposition, failures), Some(1.0), "{exposition}");
}

#[test]
fn direct_mode_verifies_without_a_server_and_an_unknown_name_is_a_usage_error() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "direct");
    let data = tempfile::tempdir().unwrap();
    let snap = crate::inspect::save(&etcd, data.path(), "direct", false);
    let name = snap.file_name().unwrap().to_str().unwrap().to_string();
    let flags = crate::inspect::direct(&etcd);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["verify", &name]);
    let out = run(&args, data.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("running verify directly"), "{stderr}");
    let row = stdout.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with(&name) && row.contains("passed"), "{stdout}");
    assert_eq!(
        record(data.path(), &name)["etcd-snapshot-verify-result"],
        "passed"
    );

    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["verify", "no-such-snapshot-n1-1"]);
    let out = run(&args, data.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Snapshot no-such-snapshot-n1-1 not found."),
        "{stderr}"
    );
}

/// An `age-keygen` key pair in `dir`: (identity file, public key).
fn keygen(dir: &Path, name: &str) -> Option<(std::path::PathBuf, String)> {
    let keygen = require_binary("age-keygen")?;
    let path = dir.join(name);
    let out = std::process::Command::new(&keygen)
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let public = std::process::Command::new(&keygen)
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert!(public.status.success(), "{:?}", text(&public));
    Some((
        path,
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    ))
}

#[test]
fn an_encrypted_snapshot_is_drilled_with_the_identity_and_cannot_be_verified_without_one() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "sealed");
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let Some((identity, public)) = keygen(keys.path(), "key.txt") else {
        return;
    };
    let Some((stranger, _)) = keygen(keys.path(), "other.txt") else {
        return;
    };
    let flags = crate::inspect::direct(&etcd);
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let verify = |extra: &[String], name: &str| {
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(extra.iter().map(String::as_str));
        args.extend(["verify", "-o", "json", name]);
        let out = run(&args, data.path());
        let reply: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&out)));
        (out.status.code(), reply)
    };
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        recipients.as_str(),
        "save",
        "--name",
        "sealed",
        "--snapshot-compress",
    ]);
    let out = run(&args, data.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let name = crate::support::snapshot_files(&snapshot_dir(data.path()))
        .into_iter()
        .find(|n| n.starts_with("sealed-") && n.ends_with(".zip.age"))
        .expect("an encrypted zip");

    // No identity: cannot verify, named keys, nothing recorded, exit 1.
    let (code, reply) = verify(&[], &name);
    assert_eq!(code, Some(1), "{reply:#}");
    let d = drill(&reply, &name, "local");
    assert_eq!(d["result"], "cannot-verify", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot verify: needs identity for fingerprints"),
        "{reason}"
    );
    assert!(!record(data.path(), &name).contains_key("etcd-snapshot-verify-result"));
    // A key that is not one of the recipients: the same, and says which keys it holds.
    let wrong = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        stranger.display()
    );
    let (code, reply) = verify(&[wrong], &name);
    assert_eq!(code, Some(1), "{reply:#}");
    let d = drill(&reply, &name, "local");
    assert_eq!(d["result"], "cannot-verify", "{d:#}");
    assert!(
        d["reason"].as_str().unwrap().contains("this host holds"),
        "{d:#}"
    );
    // The right key: decrypted into the drill's temp dir, extracted, restored, passed.
    let right = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let (code, reply) = verify(&[right], &name);
    assert_eq!(code, Some(0), "{reply:#}");
    assert_eq!(
        drill(&reply, &name, "local")["result"],
        "passed",
        "{reply:#}"
    );
    assert_eq!(
        record(data.path(), &name)["etcd-snapshot-verify-result"],
        "passed"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_drills_after_its_saves_and_on_its_own_schedule_without_holding_up_saves() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if !restore_tool() {
        return;
    }
    put_values(&etcd, "sched");
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        data.path(),
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-snapshot-schedule-cron=@every 2s",
            "--etcd-snapshot-retention=0",
            "--etcd-snapshot-verify-after-save",
            "--etcd-snapshot-verify-schedule-cron=@every 3s",
        ],
    );
    let dir = snapshot_dir(data.path());
    let drilled = move |dir: &Path| {
        crate::support::snapshot_files(dir)
            .into_iter()
            .filter(|name| {
                let record = dir.parent().unwrap().join(".metadata").join(name);
                std::fs::read(record)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
                    .is_some_and(|r| {
                        r.get("etcd-snapshot-verify-result").map(String::as_str) == Some("passed")
                    })
            })
            .count()
    };
    let watched = dir.clone();
    tokio::task::spawn_blocking(move || {
        crate::support::wait_for(
            "three scheduled snapshots drilled",
            std::time::Duration::from_secs(60),
            || drilled(&watched) >= 3,
        )
    })
    .await
    .unwrap();
    let log = server.log_text();
    assert!(log.contains("restore drills done"), "{log}");
    assert!(log.contains("restore drill after save"), "{log}");
    assert!(
        log.contains("scheduled restore drill of this node's snapshot copies"),
        "{log}"
    );
    // Saves went on while drills ran: none of their ticks found a save still running.
    let exposition = metrics(&server).await;
    assert_eq!(
        sample(&exposition, "etcd_snapshot_skipped_ticks_total"),
        Some(0.0),
        "{exposition}"
    );
    let passed = "etcd_snapshot_drill_duration_seconds_count";
    assert!(
        exposition
            .lines()
            .any(|l| l.starts_with(passed) && l.contains("result=\"passed\"")),
        "{exposition}"
    );
}
