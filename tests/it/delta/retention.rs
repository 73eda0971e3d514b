//! Segments live as long as their full snapshot, through the real server: `delete` of the
//! anchor removes its chain (and the capture does not write it again), `prune --dry-run` shows
//! each removed snapshot's chain and removes nothing, and `prune` removes the chain with its
//! snapshot and heals a chain whose snapshot is gone.

use super::*;

/// Published segments in a chain dir: (count, bytes).
fn chain_size(chain: &Path) -> (u64, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(chain).unwrap().flatten() {
        if entry
            .file_name()
            .to_str()
            .and_then(parse_segment_file_name)
            .is_some()
        {
            count += 1;
            bytes += entry.metadata().unwrap().len();
        }
    }
    (count, bytes)
}

/// Writes one key and waits for a segment in `chain` that holds it.
async fn segment_in(client: &mut Client, chain: &Path, key: &str) {
    let r = client.put(key, "v", None).await.unwrap();
    let revision = revision_of(r.header());
    wait_for("a segment holding the write", WAIT, || {
        chain_end(chain) >= revision
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_anchor_snapshot_removes_its_chain() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd, "1s", "64MiB");
    let chain = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    segment_in(&mut client, &chain, "/a").await;
    let (segments, bytes) = chain_size(&chain);
    let anchor = anchor_name_of(&chain);

    let out = server.cli(&["delete", &anchor]);
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("Snapshot {anchor} deleted.")),
        "{stdout}"
    );
    let said = format!(
        "its delta chain {} deleted with it: {segments} segments, {bytes} bytes.",
        chain.display()
    );
    assert!(stdout.contains(&said), "{stdout}");
    assert!(!chain.exists(), "the chain went with its snapshot");

    // The capture ends the chain and a new full snapshot anchors the next; the old one is
    // never written again.
    wait_logged(&server, "a capture on a new full snapshot", || {
        server.log_text().matches("delta capture started").count() == 2
    });
    let names = snapshots(data.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert_ne!(names[0], anchor);
    let next = deltas_dir(data.path()).join(&names[0]);
    segment_in(&mut client, &next, "/b").await;
    assert!(!chain.exists(), "the deleted chain stays gone");
    assert_eq!(chain_dirs(data.path()), [next]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_shows_then_removes_each_chain_with_its_snapshot_and_heals_orphans() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd, "1s", "64MiB");
    let old = wait_for_chain(data.path(), &server);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    segment_in(&mut client, &old, "/a").await;
    // A second full snapshot of the same base anchors the next chain.
    let out = server.cli(&["save", "--name", "etcd-snapshot"]);
    assert!(out.status.success(), "{}", crate::support::text(&out).1);
    wait_logged(&server, "the second chain", || {
        server.log_text().matches("delta capture started").count() == 2
    });
    let names = snapshots(data.path());
    assert_eq!(names.len(), 2, "{names:?}");
    let new = deltas_dir(data.path()).join(&names[1]);
    segment_in(&mut client, &new, "/b").await;
    let (segments, bytes) = chain_size(&old);
    // What a crash leaves: a chain whose snapshot was deleted before it, and a chain dir
    // renamed for removal but not yet deleted.
    let orphan = deltas_dir(data.path()).join("etcd-snapshot-n1-1000000000");
    let leftover = deltas_dir(data.path()).join(".removing-etcd-snapshot-n1-1000000001");
    for dir in [&orphan, &leftover] {
        std::fs::create_dir_all(dir).unwrap();
        let name = etcd_snapshot::delta::chain::segment_file_name(2, 2);
        std::fs::write(dir.join(name), b"segment").unwrap();
    }

    let prune = |extra: &[&str]| {
        let mut args = vec![
            "prune",
            "--name",
            "etcd-snapshot",
            "--snapshot-retention",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = server.cli(&args);
        let (stdout, stderr) = crate::support::text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        stdout
    };
    let stdout = prune(&["--dry-run"]);
    let said = format!(
        "its delta chain {} would be deleted with it: {segments} segments, {bytes} bytes.",
        old.display()
    );
    assert!(stdout.contains(&said), "{stdout}");
    assert!(
        stdout.contains(&format!("Snapshot {} would be deleted", names[0])),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&prune(&["--dry-run", "-o", "json"])).unwrap();
    let removed = json["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{json}");
    assert_eq!(removed[0]["name"], names[0].as_str());
    let chain = &removed[0]["deltaChain"];
    assert_eq!(chain["location"], old.display().to_string().as_str());
    assert_eq!(
        (chain["segments"].as_u64(), chain["bytes"].as_u64()),
        (Some(segments), Some(bytes))
    );
    assert_eq!(snapshots(data.path()), names, "a dry run removes nothing");
    assert_eq!(chain_size(&old), (segments, bytes));
    assert!(orphan.exists() && leftover.exists());

    let json: serde_json::Value = serde_json::from_str(&prune(&["-o", "json"])).unwrap();
    assert_eq!(json["deleted"], serde_json::json!([names[0]]), "{json}");
    assert_eq!(snapshots(data.path()), [names[1].clone()]);
    assert!(!old.exists(), "the chain went with its snapshot");
    assert!(!orphan.exists() && !leftover.exists(), "healed");
    let healed = json["removed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "etcd-snapshot-n1-1000000000")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(healed["deltaChain"]["segments"], 1);
    assert_eq!(chain_dirs(data.path()), std::slice::from_ref(&new));
    assert!(
        chain_size(&new).0 >= 1,
        "the kept snapshot's chain is whole"
    );
}
