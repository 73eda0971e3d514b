//! The `SnapshotStore` conformance suite: one set of scenarios, run against `LocalStore` (a temp
//! dir) and `S3Store` (the in-process s3s server), so both stores list, delete and prune alike.
//!
//! Each backend supplies a `Harness`: a fresh empty store per scenario and ways to seed it
//! behind the store's back (snapshots, entries that are not snapshots, metadata, files outside
//! the store). Scenarios only use the trait and the harness, never a concrete store. Every store
//! the operations iterate over must pass it: they reach stores only through the trait (list,
//! delete, prune with a retention policy, and the `storage`/`location` that reports name copies
//! by), so what holds here holds for every operation on every store.

use std::path::{Path, PathBuf};

use etcd_snapshot::snapshot::retention::{RetentionPolicy, RetentionRules};
use etcd_snapshot::store::s3::{ObjectMetadata, S3Store};
use etcd_snapshot::store::{DeleteOutcome, LocalStore, SnapshotStore};

use crate::fakes::s3_support::{S3Server, Tls};

const NODE: &str = "node1";
const CLUSTER: &str = "cluster-a";
const BUCKET: &str = "snapshots";

/// One backend under test.
trait Harness {
    type Store: SnapshotStore;

    /// A new, empty store for node `NODE` of cluster `CLUSTER`, isolated from other scenarios.
    async fn fresh(&self, scenario: &str) -> Self::Store;
    /// A snapshot of this cluster, `size` bytes, named `name`.
    async fn seed(&self, store: &Self::Store, name: &str, size: usize);
    /// Entries that are not snapshots (junk names, temp files, metadata, nested or hidden
    /// entries). Listing must skip them and nothing may delete them.
    async fn seed_ignored(&self, store: &Self::Store);
    fn ignored_intact(&self, store: &Self::Store) -> bool;
    /// A snapshot of this node and base owned by another cluster; false where the backend has
    /// no notion of cluster (then nothing is seeded).
    async fn seed_foreign(&self, store: &Self::Store, name: &str) -> bool;
    /// The snapshot's extra-metadata entry.
    async fn seed_metadata(&self, store: &Self::Store, name: &str);
    fn has_metadata(&self, store: &Self::Store, name: &str) -> bool;
    /// An entry next to the store (where `../<name>` would point).
    fn seed_outside(&self, store: &Self::Store, name: &str);
    fn outside_exists(&self, store: &Self::Store, name: &str) -> bool;
}

async fn names<S: SnapshotStore>(store: &S) -> Vec<String> {
    store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.file_name)
        .collect()
}

async fn conformance<H: Harness>(h: &H) {
    empty_store(h).await;
    listing_is_oldest_first_and_skips_non_snapshots(h).await;
    delete_removes_the_snapshot_and_its_metadata(h).await;
    invalid_names_are_refused_and_delete_nothing(h).await;
    prune_keeps_the_newest_of_this_node_and_base_only(h).await;
    prune_applies_the_whole_policy_with_the_stores_sizes(h).await;
}

async fn empty_store<H: Harness>(h: &H) {
    let store = h.fresh("empty").await;
    assert!(store.list().await.expect("list").is_empty());
    assert_eq!(
        store.delete("on-demand-node1-100").await.expect("delete"),
        DeleteOutcome::NotFound
    );
    assert!(
        store
            .prune("etcd-snapshot", &RetentionPolicy::count(1), false)
            .await
            .unwrap()
            .deleted
            .is_empty()
    );
}

async fn listing_is_oldest_first_and_skips_non_snapshots<H: Harness>(h: &H) {
    let store = h.fresh("listing").await;
    h.seed(&store, "etcd-snapshot-node1-300.zip", 3000).await;
    h.seed(&store, "on-demand-node1-100", 1000).await;
    h.seed(&store, "etcd-snapshot-node2-200", 2000).await;
    h.seed_ignored(&store).await;
    let records = store.list().await.expect("list");
    let got: Vec<(&str, u64, bool, i64)> = records
        .iter()
        .map(|r| (r.file_name.as_str(), r.size, r.compressed, r.created_unix))
        .collect();
    assert_eq!(
        got,
        [
            ("on-demand-node1-100", 1000, false, 100),
            ("etcd-snapshot-node2-200", 2000, false, 200),
            ("etcd-snapshot-node1-300.zip", 3000, true, 300),
        ]
    );
    for record in &records {
        assert_eq!(record.storage, store.storage(), "{record:?}");
        let tail = format!("/{}", record.file_name);
        assert!(record.location.ends_with(&tail), "{}", record.location);
        // What reports name as the copy's place is where the listing found it.
        let located = store.location(&record.file_name);
        assert!(
            record.location == located || record.location == format!("file://{located}"),
            "{} listed, {located} located",
            record.location
        );
        assert!(record.ready && record.error.is_none(), "{record:?}");
    }
}

async fn delete_removes_the_snapshot_and_its_metadata<H: Harness>(h: &H) {
    let store = h.fresh("delete").await;
    h.seed(&store, "on-demand-node1-100", 10).await;
    h.seed(&store, "on-demand-node1-200.zip", 10).await;
    h.seed_metadata(&store, "on-demand-node1-100").await;
    h.seed_ignored(&store).await;
    assert_eq!(
        store.delete("on-demand-node1-100").await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert!(!h.has_metadata(&store, "on-demand-node1-100"));
    assert_eq!(
        store
            .delete("on-demand-node1-100")
            .await
            .expect("delete again"),
        DeleteOutcome::NotFound
    );
    assert_eq!(names(&store).await, ["on-demand-node1-200.zip"]);
    assert!(h.ignored_intact(&store));
}

async fn invalid_names_are_refused_and_delete_nothing<H: Harness>(h: &H) {
    let store = h.fresh("invalid").await;
    h.seed(&store, "on-demand-node1-100", 10).await;
    h.seed_outside(&store, "escape-node1-100");
    h.seed_ignored(&store).await;
    for bad in [
        "../escape-node1-100",
        "sub/on-demand-node1-100",
        "",
        ".hidden-node1-600",
        "on-demand-node1-500.part",
        "README",
    ] {
        assert!(store.delete(bad).await.is_err(), "delete {bad:?} succeeded");
    }
    assert!(h.outside_exists(&store, "escape-node1-100"));
    assert!(h.ignored_intact(&store));
    assert_eq!(names(&store).await, ["on-demand-node1-100"]);
}

async fn prune_keeps_the_newest_of_this_node_and_base_only<H: Harness>(h: &H) {
    let store = h.fresh("prune").await;
    let ours = [
        "etcd-snapshot-node1-100",
        "etcd-snapshot-node1-200.zip",
        "etcd-snapshot-node1-300",
        "etcd-snapshot-node1-400",
    ];
    let others = [
        "etcd-snapshot-node2-150",
        "etcd-snapshot-node2-450",
        "etcd-snapshot-weekly-node1-50",
        "etcd-snapshot-weekly-node1-60",
    ];
    for name in ours.iter().chain(&others) {
        h.seed(&store, name, 64).await;
    }
    // Newer than two of ours: counted if cluster ids were ignored.
    let foreign = h.seed_foreign(&store, "etcd-snapshot-node1-350").await;
    h.seed_ignored(&store).await;
    let before = names(&store).await;
    assert_eq!(before.len(), 8 + usize::from(foreign));

    let planned = store
        .prune("etcd-snapshot", &RetentionPolicy::count(2), true)
        .await
        .expect("dry run")
        .deleted;
    assert_eq!(
        planned,
        ["etcd-snapshot-node1-100", "etcd-snapshot-node1-200.zip"]
    );
    assert_eq!(names(&store).await, before, "a dry run deletes nothing");

    let deleted = store
        .prune("etcd-snapshot", &RetentionPolicy::count(2), false)
        .await
        .expect("prune")
        .deleted;
    assert_eq!(
        deleted, planned,
        "the dry run names what a real run deletes"
    );
    let expected: Vec<String> = before
        .iter()
        .filter(|n| !deleted.contains(n))
        .cloned()
        .collect();
    assert_eq!(names(&store).await, expected);
    assert!(h.ignored_intact(&store));

    for dry_run in [true, false] {
        let kept_all = store
            .prune("etcd-snapshot", &RetentionPolicy::count(0), dry_run)
            .await
            .unwrap()
            .deleted;
        assert!(kept_all.is_empty(), "retention 0 keeps all: {kept_all:?}");
    }
    assert!(
        store
            .prune("etcd-snapshot", &RetentionPolicy::count(5), false)
            .await
            .unwrap()
            .deleted
            .is_empty()
    );
    assert_eq!(names(&store).await, expected);

    let weekly = store
        .prune("etcd-snapshot-weekly", &RetentionPolicy::count(1), false)
        .await
        .unwrap()
        .deleted;
    assert_eq!(weekly, ["etcd-snapshot-weekly-node1-50"]);
    assert!(
        names(&store)
            .await
            .contains(&"etcd-snapshot-node2-150".to_string())
    );
}

async fn prune_applies_the_whole_policy_with_the_stores_sizes<H: Harness>(h: &H) {
    let store = h.fresh("policy").await;
    let ours = [
        "etcd-snapshot-node1-100",
        "etcd-snapshot-node1-200.zip",
        "etcd-snapshot-node1-300",
        "etcd-snapshot-node1-400",
    ];
    for name in ours {
        h.seed(&store, name, 100).await;
    }
    // Neither counts towards this node's total size nor gets a verdict.
    h.seed(&store, "etcd-snapshot-node2-500", 1000).await;
    h.seed(&store, "etcd-snapshot-weekly-node1-450", 1000).await;
    let foreign = h.seed_foreign(&store, "etcd-snapshot-node1-350").await;
    let policy = RetentionPolicy {
        count: 0,
        rules: RetentionRules {
            keep_last: Some(10),
            max_total_size: Some(250),
            ..Default::default()
        },
    };

    let planned = store
        .prune("etcd-snapshot", &policy, true)
        .await
        .expect("dry run");
    let verdicts: Vec<(&str, bool)> = planned
        .verdicts
        .iter()
        .map(|v| (v.file_name.as_str(), v.keep))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("etcd-snapshot-node1-400", true),
            ("etcd-snapshot-node1-300", true),
            ("etcd-snapshot-node1-200.zip", false),
            ("etcd-snapshot-node1-100", false),
        ],
        "a verdict for each of this node's snapshots of the base, newest first"
    );
    for removed in planned.verdicts.iter().filter(|v| !v.keep) {
        assert_eq!(removed.rule.code(), "max-total-size", "{removed:?}");
    }
    assert_eq!(
        planned.deleted,
        ["etcd-snapshot-node1-100", "etcd-snapshot-node1-200.zip"]
    );

    let pruned = store
        .prune("etcd-snapshot", &policy, false)
        .await
        .expect("prune");
    assert_eq!(pruned, planned, "the dry run is what a real run does");
    let mut left = names(&store).await;
    left.sort();
    let mut expected = vec![
        "etcd-snapshot-node1-300".to_string(),
        "etcd-snapshot-node1-400".into(),
        "etcd-snapshot-node2-500".into(),
        "etcd-snapshot-weekly-node1-450".into(),
    ];
    if foreign {
        expected.push("etcd-snapshot-node1-350".into());
    }
    expected.sort();
    assert_eq!(left, expected);
}

/// `LocalStore` over `<root>/<scenario>/snapshots`, metadata in `<root>/<scenario>/.metadata`.
struct LocalHarness {
    root: tempfile::TempDir,
}

/// Junk inside a local snapshot dir, relative to it.
const LOCAL_IGNORED: &[&str] = &[
    "README",
    "on-demand-node1-500.part",
    ".hidden-node1-600",
    "nested-node1-700/on-demand-node1-701",
];

fn local_paths(store: &LocalStore) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = LOCAL_IGNORED.iter().map(|p| store.dir().join(p)).collect();
    paths.push(store.metadata_dir().join("on-demand-node1-800"));
    paths
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

impl Harness for LocalHarness {
    type Store = LocalStore;

    async fn fresh(&self, scenario: &str) -> LocalStore {
        let dir = self.root.path().join(scenario).join("snapshots");
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        LocalStore::open(&dir, NODE, false).expect("open")
    }

    async fn seed(&self, store: &LocalStore, name: &str, size: usize) {
        write(&store.dir().join(name), &vec![7u8; size]);
    }

    async fn seed_ignored(&self, store: &LocalStore) {
        for path in local_paths(store) {
            write(&path, b"not a snapshot");
        }
    }

    fn ignored_intact(&self, store: &LocalStore) -> bool {
        local_paths(store).iter().all(|p| p.is_file())
    }

    async fn seed_foreign(&self, _store: &LocalStore, _name: &str) -> bool {
        false
    }

    async fn seed_metadata(&self, store: &LocalStore, name: &str) {
        write(&store.metadata_dir().join(name), br#"{"k":"v"}"#);
    }

    fn has_metadata(&self, store: &LocalStore, name: &str) -> bool {
        store.metadata_dir().join(name).exists()
    }

    fn seed_outside(&self, store: &LocalStore, name: &str) {
        write(
            &store.dir().parent().expect("parent").join(name),
            b"outside",
        );
    }

    fn outside_exists(&self, store: &LocalStore, name: &str) -> bool {
        store.dir().parent().expect("parent").join(name).is_file()
    }
}

/// `S3Store` over folder `<scenario>` of one bucket on an in-process server.
struct S3Harness {
    server: S3Server,
    files: tempfile::TempDir,
}

/// Keys that are not snapshots, relative to the folder; plus a sibling folder's snapshot.
const S3_IGNORED: &[&str] = &[
    "README",
    "on-demand-node1-500.part",
    ".hidden-node1-600",
    "nested/on-demand-node1-700",
    ".metadata/on-demand-node1-800",
];

fn s3_keys(store: &S3Store) -> Vec<String> {
    let folder = store.layout().folder();
    let mut keys: Vec<String> = S3_IGNORED.iter().map(|k| format!("{folder}/{k}")).collect();
    keys.push(format!("{folder}-old/on-demand-node1-900"));
    keys
}

impl S3Harness {
    async fn upload(&self, store: &S3Store, name: &str, size: usize, cluster: &str) {
        let path = self.files.path().join(name);
        std::fs::write(&path, vec![7u8; size]).expect("write upload file");
        let metadata = ObjectMetadata {
            cluster_id: cluster.into(),
            node_name: NODE.into(),
            token_hash: "0123456789ab".into(),
            sha256: None,
            extra: Default::default(),
        };
        store
            .upload_file(&path, name, &metadata)
            .await
            .expect("upload");
    }
}

impl Harness for S3Harness {
    type Store = S3Store;

    async fn fresh(&self, scenario: &str) -> S3Store {
        S3Store::connect(&self.server.settings(BUCKET, scenario))
            .await
            .expect("connect")
            .with_identity(NODE, CLUSTER)
    }

    async fn seed(&self, store: &S3Store, name: &str, size: usize) {
        self.upload(store, name, size, CLUSTER).await;
    }

    async fn seed_ignored(&self, store: &S3Store) {
        for key in s3_keys(store) {
            self.server.put_raw(BUCKET, &key, b"not a snapshot");
        }
    }

    fn ignored_intact(&self, store: &S3Store) -> bool {
        s3_keys(store)
            .iter()
            .all(|k| self.server.has_object(BUCKET, k))
    }

    async fn seed_foreign(&self, store: &S3Store, name: &str) -> bool {
        self.upload(store, name, 64, "cluster-b").await;
        true
    }

    async fn seed_metadata(&self, store: &S3Store, name: &str) {
        store
            .upload_metadata(name, br#"{"k":"v"}"#.to_vec(), &Default::default())
            .await
            .expect("upload metadata");
    }

    fn has_metadata(&self, store: &S3Store, name: &str) -> bool {
        let key = store.layout().metadata_key(name);
        self.server.has_object(BUCKET, &key)
    }

    fn seed_outside(&self, _store: &S3Store, name: &str) {
        self.server.put_raw(BUCKET, name, b"outside");
    }

    fn outside_exists(&self, _store: &S3Store, name: &str) -> bool {
        self.server.has_object(BUCKET, name)
    }
}

#[tokio::test]
async fn local_store_conforms() {
    let harness = LocalHarness {
        root: tempfile::tempdir().expect("temp dir"),
    };
    conformance(&harness).await;
}

#[tokio::test]
async fn s3_store_conforms() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let harness = S3Harness {
        server,
        files: tempfile::tempdir().expect("temp dir"),
    };
    conformance(&harness).await;
}
