//! How drills start: `verify` in direct mode, on encrypted snapshots with and without the
//! identity, and the server's own drills after saves and on the verify schedule.

use super::*;
use crate::support::metrics;

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
    args.extend(["--progress=json", "verify", &name]);
    let out = run(&args, data.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("running verify directly"), "{stderr}");
    // `--progress=json`: the drill's events end at the copy's size.
    let (total, _) = crate::progress::events(&stderr, "verify");
    assert_eq!(total, std::fs::metadata(&snap).unwrap().len());
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
    let mut server = TestServer::start(
        data.path(),
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            // Saves far enough apart that their drills leave the drill lock free at times:
            // a scheduled tick that finds a drill running skips (the tick after it drills).
            "--etcd-snapshot-schedule-cron=@every 5s",
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
    // Both triggers must have started a drill: which one takes the drill lock first depends on
    // timing (a scheduled drill of every copy can pass three snapshots on its own), so wait for
    // all of it rather than assume an order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let log = server.log_text();
        let both_triggers = log.contains("restore drill after save")
            && log.contains("scheduled restore drill of this node's snapshot copies");
        if drilled(&dir) >= 3 && both_triggers && log.contains("restore drills done") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three drilled snapshots and both drill triggers within 90 s: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
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
    // SIGTERM while drills keep starting: the server stops cleanly and a drill it cancelled
    // leaves no temp dir (named after the server's pid) behind.
    let pid = server.pid();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let prefix = format!("etcd-snapshot-drill-{pid}-");
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
