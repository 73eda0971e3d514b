//! A delta chain's objects go in batches (DeleteObjects, at most 1,000 keys a request) against
//! the signature-checking S3 server: a chain of thousands goes in a few requests and nothing of
//! it is left; a server without DeleteObjects gets one DeleteObject per key and is asked once;
//! keys the server refuses are named with their code, stay in the bucket and are never reported
//! deleted, down to the output of `delete` and `prune` (whose next run removes what is left).

use etcd_snapshot::store::s3::S3Store;

use crate::fakes::s3_support::{S3Server, Tls};

const BUCKET: &str = "snapshots";
const A: &str = "etcd-snapshot-n1-1700000000";
const B: &str = "etcd-snapshot-n1-1700000100";

fn segment(i: usize) -> String {
    format!("{:020}-{:020}.seg", 2 * i + 1, 2 * i + 2)
}

fn key(anchor: &str, i: usize) -> String {
    format!("f/.deltas/{anchor}/.metadata/{}", segment(i))
}

/// A server with bucket `snapshots`, `n` segment objects of `anchor`'s chain (object `i` is
/// `i % 7 + 1` bytes) and three of chain `B`, and a store on folder `f`.
async fn bucket_with_chain(anchor: &str, n: usize) -> (S3Server, S3Store) {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    for i in 0..n {
        server.put_raw(BUCKET, &key(anchor, i), &vec![b'x'; i % 7 + 1]);
    }
    for i in 0..3 {
        server.put_raw(BUCKET, &key(B, i), b"kept");
    }
    let store = S3Store::connect(&server.settings(BUCKET, "f"))
        .await
        .unwrap();
    (server, store)
}

/// DeleteObjects requests served so far (`POST /<bucket>/?delete`, path style).
fn posts(server: &S3Server) -> usize {
    server.count("POST", &format!("/{BUCKET}/"))
}

/// Requests served so far whose line starts with `prefix` (e.g. `DELETE /snapshots/`).
fn requests_starting(server: &S3Server, prefix: &str) -> usize {
    let requests = server.requests.lock().unwrap();
    requests.iter().filter(|r| r.starts_with(prefix)).count()
}

/// Files left in the backing dir of `anchor`'s chain (none when the dir is gone).
fn files_left(server: &S3Server, anchor: &str) -> usize {
    let dir = server
        .root
        .path()
        .join(BUCKET)
        .join(format!("f/.deltas/{anchor}/.metadata"));
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count()
    })
}

#[tokio::test]
async fn a_chain_of_2100_objects_goes_in_three_requests_and_nothing_is_left() {
    let n = 2100;
    let (server, store) = bucket_with_chain(A, n).await;
    assert_eq!(store.list_chain(A).await.unwrap().len(), n);
    let posts_before = posts(&server);

    let deletion = store.delete_chain(A).await;
    assert_eq!(deletion.problem(), None);
    assert_eq!(deletion.deleted.len(), n);
    let bytes: u64 = deletion.deleted.iter().map(|o| o.size).sum();
    assert_eq!(bytes, (0..n).map(|i| (i % 7 + 1) as u64).sum::<u64>());

    let batches = posts(&server) - posts_before;
    assert_eq!(batches, 3, "1,000 + 1,000 + 100 keys: three DeleteObjects");
    assert_eq!(
        requests_starting(&server, "DELETE "),
        0,
        "no per-key deletes"
    );
    assert!(store.list_chain(A).await.unwrap().is_empty());
    assert_eq!(files_left(&server, A), 0);
    assert_eq!(store.list_chain(B).await.unwrap().len(), 3, "B is kept");

    // A chain that is not there: nothing to delete, no request beyond the listing.
    let again = store.delete_chain(A).await;
    assert!(again.deleted.is_empty() && again.problem().is_none());
    assert_eq!(posts(&server) - posts_before, 3);
}

#[tokio::test]
async fn a_server_without_delete_objects_gets_one_delete_per_key_and_is_asked_once() {
    let (server, store) = bucket_with_chain(A, 5).await;
    server.deletes.make_unsupported();

    let deletion = store.delete_chain(A).await;
    assert_eq!(deletion.problem(), None);
    assert_eq!(deletion.deleted.len(), 5);
    assert_eq!(posts(&server), 1, "asked once");
    assert_eq!(
        requests_starting(&server, "DELETE /snapshots/f/.deltas/"),
        5
    );
    assert_eq!(files_left(&server, A), 0);

    // The store (and its clones) remember: the next chain goes key by key at once.
    let deletion = store.clone().delete_chain(B).await;
    assert_eq!(deletion.problem(), None);
    assert_eq!(deletion.deleted.len(), 3);
    assert_eq!(posts(&server), 1);
    assert_eq!(
        requests_starting(&server, "DELETE /snapshots/f/.deltas/"),
        8
    );
    assert!(store.list_chains().await.unwrap().is_empty());
}

#[tokio::test]
async fn refused_keys_are_named_with_their_code_kept_and_never_reported_deleted() {
    let n = 1200;
    let (server, store) = bucket_with_chain(A, n).await;
    // One refusal in each batch.
    server.deletes.refuse_keys_containing(&segment(7));
    server.deletes.refuse_keys_containing(&segment(1100));

    let deletion = store.delete_chain(A).await;
    assert_eq!(deletion.deleted.len(), n - 2);
    assert!(
        deletion
            .deleted
            .iter()
            .all(|o| o.name != segment(7) && o.name != segment(1100)),
        "a refused object is never in the deleted list"
    );
    let refused: Vec<(&str, &str)> = deletion
        .refused
        .iter()
        .map(|r| (r.key.as_str(), r.code.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (key(A, 7).as_str(), "AccessDenied"),
            (key(A, 1100).as_str(), "AccessDenied")
        ]
    );
    let problem = deletion.problem().expect("refusals are a problem");
    assert!(
        problem.starts_with(&format!(
            "2 object(s) were not deleted: {} (AccessDenied: ",
            key(A, 7)
        )),
        "{problem}"
    );
    assert!(server.has_object(BUCKET, &key(A, 7)));
    assert!(server.has_object(BUCKET, &key(A, 1100)));
    let left: Vec<String> = store
        .list_chain(A)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(left, [segment(7), segment(1100)]);
}

/// Through the real binary: `delete` of an S3 copy whose chain has a refused object reports
/// the chain's deleted objects and fails naming the refused key and its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_names_a_refused_chain_object_and_fails() {
    let (server, _store) = bucket_with_chain(A, 4).await;
    server.put_raw(BUCKET, &format!("f/{A}"), b"snapshot bytes");
    server.deletes.refuse_keys_containing(&segment(2));
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(crate::support::snapshot_dir(data.path())).unwrap();
    let dead_etcd = format!("127.0.0.1:{}", crate::support::free_port());

    let mut args = super::ops::s3_flags(&server, BUCKET);
    args.extend(["delete".into(), A.into()]);
    let out = super::ops::direct(data.path(), &dead_etcd, args).await;
    let (stdout, stderr) = crate::support::text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains(&format!("{} (AccessDenied: ", key(A, 2))),
        "{all}"
    );
    assert!(all.contains("1 object(s) were not deleted"), "{all}");
    assert!(
        all.contains("deleted with it: 3 segments"),
        "the objects that went are reported: {all}"
    );
    assert!(!server.has_object(BUCKET, &format!("f/{A}")));
    assert!(server.has_object(BUCKET, &key(A, 2)));
    assert_eq!(files_left(&server, A), 1);
}

/// Through the real binary: `prune` heals an orphaned chain of 1,500 objects; one refused
/// object fails the run by key and code and is not counted; the next `prune` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_reports_a_refused_orphan_object_and_the_next_prune_removes_it() {
    let n = 1500;
    let (server, store) = bucket_with_chain(A, n).await;
    server.deletes.refuse_keys_containing(&segment(1234));
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(crate::support::snapshot_dir(data.path())).unwrap();
    let dead_etcd = format!("127.0.0.1:{}", crate::support::free_port());
    let prune = || {
        let mut args = super::ops::s3_flags(&server, BUCKET);
        args.extend(["prune".into(), "-o".into(), "json".into()]);
        super::ops::direct(data.path(), &dead_etcd, args)
    };

    let out = prune().await;
    let (stdout, stderr) = crate::support::text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains(&format!("{} (AccessDenied: ", key(A, 1234))),
        "{all}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    let failed = json["failed"].as_array().expect("failed items");
    assert_eq!(failed.len(), 1, "{json:#}");
    assert_eq!(failed[0]["name"], A);
    let message = failed[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("S3 delta chain not removed: 1 object(s) were not deleted: "),
        "{message}"
    );
    let removed = json["removed"].as_array().expect("removals");
    let healed: Vec<(&str, &str, u64)> = removed
        .iter()
        .map(|r| {
            let chain = &r["deltaChain"];
            let name = r["name"].as_str().unwrap();
            (
                name,
                r["reason"].as_str().unwrap(),
                chain["segments"].as_u64().unwrap(),
            )
        })
        .collect();
    let gone = "its full snapshot is gone";
    assert_eq!(
        healed,
        [(A, gone, n as u64 - 1), (B, gone, 3)],
        "the refused one is not counted"
    );
    let bytes: u64 = (0..n)
        .filter(|i| *i != 1234)
        .map(|i| (i % 7 + 1) as u64)
        .sum();
    assert_eq!(removed[0]["deltaChain"]["bytes"], bytes);
    let left: Vec<String> = store
        .list_chain(A)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(left, [segment(1234)]);
    assert!(
        store.list_chain(B).await.unwrap().is_empty(),
        "B was an orphan too"
    );

    server.deletes.refuse_none();
    let out = prune().await;
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(json["removed"][0]["name"], A, "{json:#}");
    assert_eq!(json["removed"][0]["deltaChain"]["segments"], 1, "{json:#}");
    assert!(store.list_chains().await.unwrap().is_empty());
    assert_eq!(files_left(&server, A), 0);
}
