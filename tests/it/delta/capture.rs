//! The capture tests: a real etcd, the real server, segments read back and checked.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_deletes_txns_and_lease_keys_are_captured_in_revision_order() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd, "1s", "64MiB");
    let chain = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();

    let mut expected: Vec<(i64, Vec<(bool, &str)>)> = Vec::new();
    let r = client.put("/a", "1", None).await.unwrap();
    expected.push((revision_of(r.header()), vec![(true, "/a")]));
    let r = client.put("/a", "2", None).await.unwrap();
    expected.push((revision_of(r.header()), vec![(true, "/a")]));
    // One txn, three operations: one revision, one group, etcd's order.
    let txn = Txn::new()
        .when([Compare::version("/a", CompareOp::Equal, 2)])
        .and_then([
            TxnOp::put("/b", "in-txn", None),
            TxnOp::put("/c", "in-txn", None),
            TxnOp::delete("/a", None),
        ]);
    let r = client.txn(txn).await.unwrap();
    assert!(r.succeeded());
    expected.push((
        revision_of(r.header()),
        vec![(true, "/b"), (true, "/c"), (false, "/a")],
    ));
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let r = client
        .put("/leased", "l", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    expected.push((revision_of(r.header()), vec![(true, "/leased")]));
    let r = client
        .delete("/b", Some(DeleteOptions::new().with_range("/d")))
        .await
        .unwrap();
    expected.push((revision_of(r.header()), vec![(false, "/b"), (false, "/c")]));
    // Revoking the lease deletes its key: a delete event at the revoke's revision.
    let r = client.lease_revoke(lease).await.unwrap();
    expected.push((revision_of(r.header()), vec![(false, "/leased")]));
    let last = expected.last().unwrap().0;

    wait_for("segments up to the last write", WAIT, || {
        chain_end(&chain) >= last
    });
    let segments = segments(&chain);
    assert_contiguous(&segments);
    let anchor = segments[0].header.anchor_revision;
    assert_eq!(segments[0].header.from_revision, anchor + 1);
    let status = client.status().await.unwrap();
    let ids = status.header().unwrap();
    for s in &segments {
        assert_eq!(
            (s.header.cluster_id, s.header.member_id),
            (ids.cluster_id(), ids.member_id())
        );
        assert!(s.footer.hashkv.is_some(), "each segment end has its HashKV");
        // Every revision carries when it arrived: inside its segment's open time, in order.
        let times: Vec<i64> = s.groups.iter().map(|g| g.arrived_unix_ms).collect();
        assert!(times.is_sorted(), "{times:?}");
        assert!(times[0] >= (s.header.opened_unix - 1) * 1000, "{times:?}");
        assert_eq!(*times.last().unwrap(), s.footer.last_event_unix_ms);
        assert!(s.footer.last_event_unix_ms <= s.footer.closed_unix_ms);
    }

    let seen = seen_in(&segments);
    let mut want = Vec::new();
    for (revision, events) in &expected {
        for (is_put, key) in events {
            want.push(if *is_put {
                etcd_put(&mut client, *revision, key).await
            } else {
                (*revision, false, key.to_string(), String::new(), 0, 0, 0)
            });
        }
    }
    assert_eq!(seen, want);
    assert!(
        want.iter().any(|e| e.6 == lease),
        "the leased put carries its lease"
    );
    // The last segment's hash is etcd's HashKV at its end.
    let tail = segments.last().unwrap();
    let hash = client.hash_kv(tail.footer.to_revision).await.unwrap();
    assert_eq!(tail.footer.hashkv.unwrap().hash, hash.hash());

    // Segments are never snapshots: the snapshot dir holds the one full snapshot, and the
    // server's RKE2 listing shows it alone.
    assert_eq!(snapshots(data.path()), [anchor_name_of(&chain)]);
    let out = server.cli(&["ls", "-o", "json"]);
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{stdout}");

    // `ls --deltas` (local, no server needed) shows the chain and how far it reaches.
    let anchor_name = chain.file_name().unwrap().to_str().unwrap();
    let out = crate::support::run(&["ls", "--deltas", "-o", "json"], data.path());
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["anchor"], anchor_name, "{stdout}");
    assert_eq!(listed[0]["anchorRevision"], anchor, "{stdout}");
    assert_eq!(listed[0]["restorableTo"], last, "{stdout}");
    let listed_segments = listed[0]["segments"].as_array().unwrap();
    assert_eq!(listed_segments.len(), segments.len(), "{stdout}");
    assert!(
        listed_segments.iter().all(|s| s["onChain"] == true),
        "{stdout}"
    );
    let out = crate::support::run(&["ls", "--deltas"], data.path());
    let (table, _) = crate::support::text(&out);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..3],
        [anchor_name, &anchor.to_string(), &last.to_string()],
        "{table}"
    );

    let text = metrics(&server).await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
    };
    assert_eq!(
        value("etcd_snapshot_delta_segments_total"),
        segments.len() as f64
    );
    assert_eq!(value("etcd_snapshot_delta_last_revision"), last as f64);
    assert!(value("etcd_snapshot_delta_bytes_total") > 0.0);
    assert!(value("etcd_snapshot_delta_recovery_point_seconds") < 30.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_segment_resumes_with_no_gap_and_no_duplicate() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // A long period: segments close only by size, so the kill lands mid-segment.
    let mut server = start_server(data.path(), &etcd, "1h", "4KiB");
    let chain = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let value = "v".repeat(1024);
    for i in 0..6 {
        client
            .put(format!("/big/{i}"), value.as_str(), None)
            .await
            .unwrap();
    }
    wait_for("a segment closed by size", WAIT, || chain_end(&chain) > 0);
    let mut last = 0;
    for i in 0..3 {
        let r = client.put(format!("/small/{i}"), "s", None).await.unwrap();
        last = revision_of(r.header());
    }
    wait_for("the open segment's temp file", WAIT, || {
        std::fs::read_dir(&chain)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
    });
    assert!(
        chain_end(&chain) < last,
        "the small puts are not persisted yet"
    );
    signal(server.pid(), "KILL");
    server.wait_exit();
    for i in 0..3 {
        let r = client
            .put(format!("/while-down/{i}"), "d", None)
            .await
            .unwrap();
        last = revision_of(r.header());
    }

    let server = start_server(data.path(), &etcd, "1s", "4KiB");
    wait_for("segments up to the last write", WAIT, || {
        chain_end(&chain) >= last
    });
    let segments = segments(&chain);
    assert_contiguous(&segments);
    let anchor = segments[0].header.anchor_revision;
    assert_eq!(
        revisions(&segments),
        ((anchor + 1)..=last).collect::<Vec<_>>()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&chain)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_past_the_chain_ends_it_and_a_new_full_snapshot_anchors_the_next() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = start_server(data.path(), &etcd, "1s", "64MiB");
    let old_chain = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let r = client.put("/before", "1", None).await.unwrap();
    let before = revision_of(r.header());
    wait_for("the first segment", WAIT, || {
        chain_end(&old_chain) >= before
    });
    // A clean stop writes out what is open; then etcd moves on and compacts its history.
    assert!(server.terminate().success(), "{}", server.log_text());
    let old_end = chain_end(&old_chain);
    let mut now = before;
    for i in 0..5 {
        now = revision_of(
            client
                .put(format!("/after/{i}"), "x", None)
                .await
                .unwrap()
                .header(),
        );
    }
    client.compact(now, None).await.unwrap();
    // A write after the compaction: etcd refuses HashKV at its compact revision, and a full
    // snapshot without a recorded revision cannot anchor a chain.
    now = revision_of(
        client
            .put("/after-compaction", "x", None)
            .await
            .unwrap()
            .header(),
    );

    let server = start_server(data.path(), &etcd, "1s", "64MiB");
    wait_logged(&server, "a capture on a new full snapshot", || {
        server.log_text().matches("delta capture started").count() == 2
    });
    let log = server.log_text();
    assert!(log.contains("etcd compacted past the delta chain"), "{log}");
    let names = snapshots(data.path());
    assert_eq!(
        names.len(),
        2,
        "the first anchor and the re-anchor: {names:?}"
    );
    let new_chain = deltas_dir(data.path()).join(&names[1]);
    assert_ne!(new_chain, old_chain);
    let r = client.put("/next", "1", None).await.unwrap();
    let next = revision_of(r.header());
    wait_for("the new chain's segment", WAIT, || {
        chain_end(&new_chain) >= next
    });
    assert_eq!(
        chain_end(&old_chain),
        old_end,
        "the compacted chain is never resumed"
    );
    let segments = segments(&new_chain);
    assert_contiguous(&segments);
    let anchor = segments[0].header.anchor_revision;
    assert!(
        anchor >= now,
        "anchored after the compaction: {anchor} < {now}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("etcd_snapshot_delta_reanchors_total 1"),
        "{text}"
    );
    assert_eq!(chain_dirs(data.path()), [old_chain, new_chain]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_hash_interval_only_the_first_segment_end_records_the_keyspace_hash() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        data.path(),
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-snapshot-delta",
            "--etcd-snapshot-delta-period",
            "1s",
            "--etcd-snapshot-delta-max-size",
            "4KiB",
            "--etcd-snapshot-delta-hashkv-interval",
            "1h",
        ],
    );
    let chain = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let value = "v".repeat(1024);
    let mut last = 0;
    for i in 0..12 {
        let r = client
            .put(format!("/big/{i}"), value.as_str(), None)
            .await
            .unwrap();
        last = revision_of(r.header());
    }
    wait_for("segments up to the last put", WAIT, || {
        chain_end(&chain) >= last
    });
    let hashed: Vec<bool> = segments(&chain)
        .iter()
        .map(|s| s.footer.hashkv.is_some())
        .collect();
    assert!(hashed.len() >= 3, "closed by size: {hashed:?}");
    assert!(hashed[0], "the first segment end records one: {hashed:?}");
    assert!(
        hashed[1..].iter().all(|h| !h),
        "none within the hour after it: {hashed:?}"
    );
    drop(server);
}
