//! Delta segments in S3, through the real server and the in-process S3 server: every published
//! segment reaches the bucket under `<folder>/.deltas/<snapshot>/.metadata/<segment>` with the
//! bytes it has on disk, and the snapshot listing never shows one; an S3 outage while segments
//! accumulate loses nothing (the capture keeps writing locally, and once S3 is back every
//! segment is uploaded, no gap); `prune --dry-run` shows the S3 chain that would go with a
//! pruned S3 copy and removes nothing, `delete` removes it, and `prune` removes an S3 chain
//! whose snapshot is gone; a point-in-time restore on a new
//! host (fresh data dir, the token, the S3 settings) lists the bucket's chain (`ls --deltas`) and
//! brings back the recorded state from the bucket alone, and on the old host reads its segments from disk and only a missing one from
//! the bucket; the same with compressed, age-encrypted segments and the identity file.

use std::collections::BTreeMap;

use super::load::{KeyState, state, tls_client};
use super::*;
use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::restore::cluster_reset::Node;
use crate::support::{require_binary, text};

const BUCKET: &str = "snapshots";

fn s3_flags(endpoint: &str) -> Vec<String> {
    vec![
        "--etcd-s3".into(),
        format!("--etcd-s3-endpoint={endpoint}"),
        "--etcd-s3-insecure".into(),
        format!("--etcd-s3-bucket={BUCKET}"),
        "--etcd-s3-folder=f".into(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ]
}

/// A server on `etcd` capturing deltas (period 1s) with S3 at `endpoint`.
fn start_with_s3(data: &Path, etcd: &TestEtcd, endpoint: &str) -> TestServer {
    let mut args: Vec<String> = vec![
        "--etcd-endpoints".into(),
        etcd.endpoint.clone(),
        "--etcd-snapshot-delta".into(),
        "--etcd-snapshot-delta-period".into(),
        "1s".into(),
        "--etcd-snapshot-reconcile-interval=1s".into(),
    ];
    args.extend(s3_flags(endpoint));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(data, &refs)
}

/// The object dir of a chain in the bucket, as the S3 server stores it.
fn s3_chain_dir(s3: &S3Server, anchor: &str) -> PathBuf {
    s3.root
        .path()
        .join(BUCKET)
        .join(format!("f/.deltas/{anchor}/.metadata"))
}

/// Segment file name -> bytes, of a dir (local chain dir or S3 object dir).
fn segment_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    parse_segment_file_name(&name)?;
                    Some((name, std::fs::read(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the bucket holds every local segment of `chain` (at least `min` of them), byte
/// for byte.
fn wait_uploaded(server: &TestServer, s3: &S3Server, chain: &Path, min: usize) {
    let anchor = anchor_name_of(chain);
    wait_logged(server, "every local segment in S3", || {
        let local = segment_bytes(chain);
        local.len() >= min && segment_bytes(&s3_chain_dir(s3, &anchor)) == local
    });
}

/// Writes keys and waits until a segment holds the last one; returns its revision.
async fn write(client: &mut Client, chain: &Path, keys: &[&str]) -> i64 {
    let mut last = 0;
    for key in keys {
        last = revision_of(client.put(*key, "v", None).await.unwrap().header());
    }
    wait_for("a segment holding the writes", WAIT, || {
        chain_end(chain) >= last
    });
    last
}

/// The pending-segments gauge as the server reports it.
async fn pending(server: &TestServer) -> f64 {
    let text = crate::support::metrics(server).await;
    metric(&text, "etcd_snapshot_delta_s3_pending_segments")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_reach_s3_with_their_bytes_stay_out_of_ls_and_go_with_their_snapshot() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket(BUCKET);
    let data = tempfile::tempdir().unwrap();
    let server = start_with_s3(data.path(), &etcd, &s3.addr.to_string());
    let old = wait_for_chain(data.path(), &server);
    let old_anchor = anchor_name_of(&old);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    write(&mut client, &old, &["/a", "/b"]).await;
    write(&mut client, &old, &["/c"]).await;
    wait_uploaded(&server, &s3, &old, 2);
    let uploaded = segment_bytes(&s3_chain_dir(&s3, &old_anchor));
    let metrics = crate::support::metrics(&server).await;
    assert!(
        metric(&metrics, "etcd_snapshot_delta_s3_uploads_total") >= uploaded.len() as f64,
        "{metrics}"
    );

    // The snapshot listing shows the full snapshot in S3 and no segment.
    let out = server.cli(&["ls"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("s3://{BUCKET}/f/{old_anchor}")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(".deltas") && !stdout.contains(".seg"),
        "{stdout}"
    );
    // The S3 copy's window comes from its chain's segments in the bucket: with all of them
    // uploaded it is the local copy's, time included (this node captured the chain).
    let windows = || {
        let out = server.cli(&["ls", "-o", "json"]);
        let json: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
        let window_at = |scheme: &str| {
            json["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["spec"]["location"].as_str().unwrap().starts_with(scheme))
                .map(|i| i["status"]["pointInTime"].clone())
                .unwrap_or_else(|| panic!("no {scheme} item: {json}"))
        };
        (window_at("file://"), window_at("s3://"))
    };
    wait_logged(&server, "the S3 copy's window", || {
        let (local, remote) = windows();
        local["to"].is_string() && local == remote
    });
    let (local, remote) = windows();
    assert!(
        remote["toRevision"].as_i64().unwrap() > remote["fromRevision"].as_i64().unwrap(),
        "{remote}"
    );
    assert_eq!(local, remote);

    // A second full snapshot of the same base starts the next chain; retention 1 prunes the
    // first: the dry run names its S3 chain and removes nothing.
    let out = server.cli(&["save", "--name", "etcd-snapshot"]);
    assert!(out.status.success(), "{}", text(&out).1);
    wait_logged(&server, "the second chain", || {
        server.log_text().matches("delta capture started").count() == 2
    });
    wait_uploaded(&server, &s3, &old, 2);
    let uploaded = segment_bytes(&s3_chain_dir(&s3, &old_anchor));
    let bytes: usize = uploaded.values().map(Vec::len).sum();
    let out = server.cli(&[
        "prune",
        "--name",
        "etcd-snapshot",
        "--snapshot-retention",
        "1",
        "--dry-run",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let said = format!(
        "its delta chain s3://{BUCKET}/f/.deltas/{old_anchor}/.metadata/ would be deleted with it: {} segments, {bytes} bytes.",
        uploaded.len()
    );
    assert!(stdout.contains(&said), "{said}\n{stdout}");
    assert_eq!(
        segment_bytes(&s3_chain_dir(&s3, &old_anchor)),
        uploaded,
        "a dry run removes nothing"
    );

    // Deleting the snapshot removes its chain in S3 as well as on disk.
    let out = server.cli(&["delete", &old_anchor]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let said =
        format!("its delta chain s3://{BUCKET}/f/.deltas/{old_anchor}/.metadata/ deleted with it");
    assert!(stdout.contains(&said), "{stdout}");
    assert!(segment_bytes(&s3_chain_dir(&s3, &old_anchor)).is_empty());
    assert!(!old.exists());
    // An S3 chain whose snapshot is gone (a removal cut short) goes at the next retention run
    // that deletes.
    let orphan = "etcd-snapshot-n1-1000000000";
    let seg = etcd_snapshot::delta::chain::segment_file_name(2, 2);
    s3.put_raw(
        BUCKET,
        &format!("f/.deltas/{orphan}/.metadata/{seg}"),
        b"segment",
    );
    let out = server.cli(&[
        "prune",
        "--name",
        "etcd-snapshot",
        "--snapshot-retention",
        "1",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let healed = json["removed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == orphan)
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(
        healed["deltaChain"]["location"],
        format!("s3://{BUCKET}/f/.deltas/{orphan}/.metadata/").as_str()
    );
    assert_eq!(healed["deltaChain"]["segments"], 1);
    assert!(segment_bytes(&s3_chain_dir(&s3, orphan)).is_empty());
    // The next chain keeps going to S3.
    let names = snapshots(data.path());
    let next = deltas_dir(data.path()).join(&names[0]);
    write(&mut client, &next, &["/d"]).await;
    wait_uploaded(&server, &s3, &next, 1);
    assert!(
        segment_bytes(&s3_chain_dir(&s3, &old_anchor)).is_empty(),
        "the deleted chain does not come back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_written_during_an_s3_outage_are_all_uploaded_once_it_ends() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let port = crate::support::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let server = start_with_s3(data.path(), &etcd, &endpoint);
    let chain = wait_for_chain(data.path(), &server);
    let anchor = anchor_name_of(&chain);
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    // S3 is down: the capture keeps writing locally.
    for key in ["/a", "/b", "/c"] {
        write(&mut client, &chain, &[key]).await;
    }
    let during = segment_bytes(&chain);
    assert!(during.len() >= 2, "{:?}", during.keys());
    let deadline = std::time::Instant::now() + WAIT;
    while pending(&server).await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no pending segments");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = crate::support::metrics(&server).await;
    assert!(
        metric(&text, "etcd_snapshot_delta_s3_upload_failures_total") >= 1.0,
        "{text}"
    );

    // S3 comes back: the snapshot is backfilled, then every segment follows it.
    let s3 = S3Server::start_on(Tls::Plain, port).await;
    s3.create_bucket(BUCKET);
    let last = write(&mut client, &chain, &["/d"]).await;
    wait_uploaded(&server, &s3, &chain, during.len() + 1);
    assert!(s3.has_object(BUCKET, &format!("f/{anchor}")));
    let uploaded = segment_bytes(&s3_chain_dir(&s3, &anchor));
    for (name, bytes) in &during {
        assert_eq!(uploaded.get(name), Some(bytes), "{name}");
    }
    // No gap: the bucket's chain walks from the anchor to the last write.
    let decoded: Vec<_> = uploaded.values().map(|b| decode(b).unwrap()).collect();
    assert_contiguous(&decoded);
    assert_eq!(decoded.last().unwrap().footer.to_revision, last);
    let deadline = std::time::Instant::now() + WAIT;
    while pending(&server).await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "segments still pending"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `node` with `args`, reads every `/test/` key, stops it.
async fn keys_after_restore(node: &Node, args: &[&str]) -> Vec<KeyState> {
    let mut server = node.start(args);
    let mut client = tls_client(&node.endpoint(), &node.tls_dir()).await;
    let keys = state(&mut client, None).await;
    let status = server.terminate();
    assert!(status.success(), "{status}:\n{}", server.log_text());
    keys.into_iter()
        .filter(|k| k.0.starts_with("/test/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_host_restores_from_the_bucket_alone_and_an_old_one_fills_a_hole_from_it() {
    if require_binary("etcd").is_none() || require_binary("etcdctl").is_none() {
        return;
    }
    restore_from_the_bucket(&[], &[], ".seg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_encrypted_segments_restore_from_the_bucket_on_a_new_host_with_the_identity() {
    if ["etcd", "etcdctl", "age-keygen"]
        .iter()
        .any(|b| require_binary(b).is_none())
    {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = crate::inspect_encrypted::keygen(keys.path(), "key.txt");
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let identity = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let capture = ["--etcd-snapshot-compress", recipients.as_str()];
    restore_from_the_bucket(&capture, &[identity.as_str()], ".seg.gz.age").await;
}

/// A chain captured with `capture` flags on an old host and uploaded; a new host restores to a
/// chosen revision from the bucket alone (restore flags `restore`), then the old host, missing
/// one segment, fills it from the bucket. Every segment stored ends with `suffix`.
async fn restore_from_the_bucket(capture: &[&str], restore: &[&str], suffix: &str) {
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket(BUCKET);
    let flags = s3_flags(&s3.addr.to_string());
    let old = Node::new();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
    ]);
    args.push("--etcd-snapshot-reconcile-interval=1s");
    args.extend(capture);
    let mut server = old.start(&args);
    let chain = wait_for_chain(old.dir(), &server);
    let anchor = anchor_name_of(&chain);
    let mut client = tls_client(&old.endpoint(), &old.tls_dir()).await;
    // Two segments at least before the chosen revision: the first write is persisted alone.
    let first = revision_of(client.put("/test/a", "1", None).await.unwrap().header());
    wait_for("a segment holding the first write", WAIT, || {
        chain_end(&chain) >= first
    });
    let mut chosen = 0;
    for (key, value) in [("/test/b", "2"), ("/test/a", "3")] {
        chosen = revision_of(client.put(key, value, None).await.unwrap().header());
    }
    let want = state(&mut client, Some(chosen)).await;
    // Written after the chosen revision: must not come back.
    let mut last = 0;
    for (key, value) in [("/test/a", "4"), ("/test/c", "5")] {
        last = revision_of(client.put(key, value, None).await.unwrap().header());
    }
    wait_for("segments up to the last write", WAIT, || {
        chain_end(&chain) >= last
    });
    wait_uploaded(&server, &s3, &chain, 1);
    assert!(server.terminate().success());
    let stored = segment_bytes(&s3_chain_dir(&s3, &anchor));
    assert!(!stored.is_empty());
    assert!(
        stored.keys().all(|name| name.ends_with(suffix)),
        "every segment in the bucket is stored as {suffix}: {:?}",
        stored.keys()
    );
    let token = std::fs::read_to_string(old.dir().join("server/token")).unwrap();
    let token = format!("--token={}", token.trim());

    // A new host: nothing but the token and the S3 settings.
    let new = Node::new();
    // `ls --deltas` there lists the bucket's chain, its revision from the S3 copy's record.
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["ls", "--deltas", "-o", "json"]);
    let out = crate::support::run(&args, new.dir());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    let remote = &listed[0];
    let location = format!("s3://{BUCKET}/f/.deltas/{anchor}/.metadata/");
    assert_eq!(remote["anchor"].as_str(), Some(anchor.as_str()), "{stdout}");
    assert_eq!(
        remote["location"].as_str(),
        Some(location.as_str()),
        "{stdout}"
    );
    assert!(remote["anchorRevision"].as_i64().is_some(), "{stdout}");
    assert!(remote["restorableTo"].as_i64() >= Some(first), "{stdout}");
    let to = chosen.to_string();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        token.as_str(),
        "--cluster-reset-restore-to",
        to.as_str(),
        anchor.as_str(),
    ]);
    args.extend(restore);
    let out = new.restore(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Replayed its delta chain"), "{stdout}");
    assert!(!stdout.contains("from 0 segments"), "{stdout}");
    assert!(
        stderr.contains("downloading a delta segment from S3"),
        "the segments came from the bucket:\n{stderr}"
    );
    let restored = keys_after_restore(&new, &[token.as_str()]).await;
    let want: Vec<KeyState> = want
        .into_iter()
        .filter(|k| k.0.starts_with("/test/"))
        .collect();
    assert_eq!(restored, want);
    assert_eq!(restored[0].2, 2, "/test/a was written twice: {restored:?}");
    assert!(
        !new.dir().join("server/db/.deltas").exists(),
        "the downloaded segments were private to the replay"
    );

    // The old host lost its first segment: the bucket fills the hole, the rest is read from disk.
    let (first_segment, _) = segment_bytes(&chain).into_iter().next().unwrap();
    std::fs::remove_file(chain.join(&first_segment)).unwrap();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--cluster-reset-restore-to", to.as_str()]);
    args.extend(restore);
    let out = old.restore(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let downloads: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("downloading a delta segment from S3"))
        .collect();
    assert_eq!(downloads.len(), 1, "{stderr}");
    assert!(downloads[0].contains(&first_segment), "{stderr}");
    assert_eq!(keys_after_restore(&old, &[]).await, want);
}
