//! Damage of every kind, in a stored file and in an S3 object after upload, each caught by a
//! drill and shown failed in the record, `ls -o wide` and the metrics.

use super::*;
use crate::support::metrics;

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
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let column = header.iter().position(|h| *h == "Verified");
    let column = column.unwrap_or_else(|| panic!("a Verified column: {table}"));
    for line in table.lines().skip(1) {
        let verdict = line.split_whitespace().nth(column).unwrap();
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
