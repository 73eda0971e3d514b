//! Unit tests of `LocalStore` against temp dirs, including a snapshot dir shared by two nodes.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::store::SnapshotStore;

struct Fixture {
    root: tempfile::TempDir,
    store: LocalStore,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("server/db/snapshots");
        let store = LocalStore::open(&dir, "n1", true).unwrap();
        Self { root, store }
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.store.dir().join(name), bytes).unwrap();
    }
    /// A file in the work dir, where temp files live.
    fn put_work(&self, name: &str) {
        std::fs::create_dir_all(&self.store.layout().work).unwrap();
        std::fs::write(self.store.layout().work.join(name), b"").unwrap();
    }
    fn put_meta(&self, name: &str, json: &str) {
        std::fs::create_dir_all(self.store.metadata_dir()).unwrap();
        std::fs::write(self.store.metadata_dir().join(name), json).unwrap();
    }
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Another node's snapshots, temp files and unrelated files sharing the dir.
const FOREIGN: &[&str] = &[
    "etcd-snapshot-n2-100",
    "etcd-snapshot-n2-200.zip",
    "etcd-snapshot-n2-300.part",
    "etcd-snapshot-weekly-n1-50",
    "notes.txt",
    ".hidden-n1-5",
];

#[test]
fn open_creates_only_the_default_dir() {
    let f = Fixture::new();
    let mode = std::fs::metadata(f.store.dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(f.store.dir().is_absolute());
    assert_eq!(
        f.store.metadata_dir(),
        f.root.path().join("server/db/.metadata")
    );

    let missing = f.root.path().join("custom");
    assert!(matches!(
        LocalStore::open(&missing, "n1", false),
        Err(StoreError::MissingDir { .. })
    ));
    assert!(!missing.exists());
    let file = f.root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        LocalStore::open(&file, "n1", true),
        Err(StoreError::NotADir { .. })
    ));
}

#[test]
fn list_skips_temp_hidden_and_nameless_files() {
    let f = Fixture::new();
    f.put("on-demand-n1-20.zip", b"zipped");
    f.put("on-demand-n1-10", b"raw-bytes");
    f.put("on-demand-n1-30.part", b"");
    f.put("README", b"");
    f.put(".etcd-snapshot.lock", b"");
    std::fs::create_dir(f.store.dir().join("nested-n1-40")).unwrap();
    f.put_meta("on-demand-n1-20.zip", r#"{"k":"v"}"#);
    f.put_meta("on-demand-n1-10", "not json");

    let records = f.store.list().unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.file_name.as_str()).collect();
    assert_eq!(names, ["on-demand-n1-10", "on-demand-n1-20.zip"]);
    let (raw, zipped) = (&records[0], &records[1]);
    assert_eq!(raw.size, 9);
    assert_eq!(raw.created_unix, 10);
    assert!(!raw.compressed && zipped.compressed);
    assert_eq!(raw.metadata, None);
    assert_eq!(
        zipped.metadata,
        Some(BTreeMap::from([("k".to_string(), "v".to_string())]))
    );
    assert_eq!(
        zipped.location,
        format!("file://{}/on-demand-n1-20.zip", f.store.dir().display())
    );
    assert!(raw.ready && raw.storage == Storage::Local && raw.node_name == "n1");
}

#[test]
fn delete_removes_file_and_metadata_and_validates() {
    let f = Fixture::new();
    f.put("on-demand-n1-1.zip", b"x");
    f.put_meta("on-demand-n1-1.zip", "{}");
    assert_eq!(
        f.store.delete("on-demand-n1-1.zip").unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(f.files().is_empty());
    assert!(!f.store.metadata_dir().join("on-demand-n1-1.zip").exists());
    assert_eq!(
        f.store.delete("on-demand-n1-1.zip").unwrap(),
        DeleteOutcome::NotFound
    );
    // A name escaping the dir is an error, and the target stays.
    std::fs::write(f.root.path().join("server/db/victim"), b"x").unwrap();
    assert!(matches!(
        f.store.delete("../victim"),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(f.root.path().join("server/db/victim").exists());
}

#[test]
fn prune_touches_only_this_nodes_exact_base() {
    let f = Fixture::new();
    for name in FOREIGN {
        f.put(name, b"");
    }
    for name in [
        "etcd-snapshot-n1-300",
        "etcd-snapshot-n1-100.zip",
        "etcd-snapshot-n1-200",
    ] {
        f.put(name, b"");
        f.put_meta(name, "{}");
    }
    let would = f
        .store
        .prune("etcd-snapshot", &RetentionPolicy::count(1), true)
        .unwrap()
        .deleted;
    assert_eq!(would, ["etcd-snapshot-n1-100.zip", "etcd-snapshot-n1-200"]);
    assert_eq!(
        f.files().len(),
        FOREIGN.len() + 3,
        "dry run deletes nothing"
    );

    let deleted = f
        .store
        .prune("etcd-snapshot", &RetentionPolicy::count(1), false)
        .unwrap()
        .deleted;
    assert_eq!(deleted, would);
    let mut expected: Vec<String> = FOREIGN.iter().map(|s| s.to_string()).collect();
    expected.push("etcd-snapshot-n1-300".into());
    expected.sort();
    assert_eq!(f.files(), expected);
    assert!(!f.store.metadata_dir().join("etcd-snapshot-n1-200").exists());
    assert!(f.store.metadata_dir().join("etcd-snapshot-n1-300").exists());
    assert!(
        f.store
            .prune("etcd-snapshot", &RetentionPolicy::count(0), false)
            .unwrap()
            .deleted
            .is_empty()
    );
}

#[test]
fn cleanup_removes_only_this_nodes_temp_files() {
    let f = Fixture::new();
    assert_eq!(
        f.store.layout().work,
        f.root.path().join("server/db/.etcd-snapshot")
    );
    for name in FOREIGN {
        f.put(name, b"");
    }
    f.put_work("on-demand-n1-5.part");
    f.put_work("etcd-snapshot-n2-7.part");
    f.put_work("random.part");
    // Left in the snapshot dir by versions before the work dir.
    f.put("etcd-snapshot-n1-6.zip.part", b"");
    f.put(crate::layout::LEGACY_LOCK_FILE, b"");
    let mut removed = f.store.cleanup_temp_files().unwrap();
    removed.sort();
    assert_eq!(
        removed,
        [
            f.store.layout().work.join("on-demand-n1-5.part"),
            f.store.dir().join(".etcd-snapshot.lock"),
            f.store.dir().join("etcd-snapshot-n1-6.zip.part"),
        ]
    );
    let mut expected: Vec<String> = FOREIGN.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(f.files(), expected);
    let mut work: Vec<String> = std::fs::read_dir(&f.store.layout().work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    work.sort();
    assert_eq!(work, ["etcd-snapshot-n2-7.part", "random.part"]);
}

#[test]
fn allocate_name_skips_taken_seconds() {
    let f = Fixture::new();
    f.put("on-demand-n1-100", b"");
    f.put("on-demand-n1-101.zip", b"");
    f.put_work("on-demand-n1-102.part");
    f.put_work("on-demand-n1-103.zip.part");
    f.put("on-demand-n2-104", b"");
    let name = f.store.allocate_name("on-demand", 100, false);
    assert_eq!(name.file_name(), "on-demand-n1-104");
    assert_eq!(
        f.store.allocate_name("on-demand", 200, true).file_name(),
        "on-demand-n1-200.zip"
    );
}

#[tokio::test]
async fn lock_is_exclusive_and_released_on_drop() {
    let f = Fixture::new();
    let held = f.store.lock().await.unwrap();
    let second = {
        let store = f.store.clone();
        tokio::spawn(async move { store.lock().await })
    };
    // The waiter cannot finish while the first lock is held.
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        while !second.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        early.is_err(),
        "second lock acquired while the first is held"
    );
    drop(held);
    let lock = tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("lock released")
        .unwrap();
    assert!(lock.is_ok());
    assert!(
        f.files().is_empty(),
        "the lock file is not in the snapshot dir"
    );
    assert!(f.store.layout().lock_path().is_file());
}

#[tokio::test]
async fn trait_delegates_to_the_store() {
    let f = Fixture::new();
    f.put("s-n1-1", b"");
    f.put("s-n1-2", b"");
    let store = &f.store;
    assert_eq!(SnapshotStore::list(store).await.unwrap().len(), 2);
    assert_eq!(
        SnapshotStore::prune(store, "s", &RetentionPolicy::count(1), false)
            .await
            .unwrap()
            .deleted,
        ["s-n1-1"]
    );
    assert_eq!(
        SnapshotStore::delete(store, "s-n1-2").await.unwrap(),
        DeleteOutcome::Deleted
    );
}
