//! The direct restore of an encrypted snapshot (`restore::direct`) against the restore tool's
//! own restore of the plaintext, on a real etcd 3.4 snapshot with a multi-level key tree,
//! deletes, a lease and a compaction: every value of every bucket is the same, the WAL and raft
//! snapshot files are byte-identical, and etcd serves the result. A tool that does not restore
//! the empty database as 3.4's does (etcd 3.5.1's refuses it) is declined with the checked
//! plaintext handed back and nothing left in the staging dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use etcd_client::{Client, CompactionOptions, PutOptions};
use etcd_snapshot::crypt::Identities;
use etcd_snapshot::restore::direct::{self, Direct, Source, membership};
use etcd_snapshot::restore::tool::{ToolAssessment, ToolKind, Version};
use etcd_snapshot::restore::{RestoreTarget, RestoreTool, run_restore, select_restore_tool};

use super::{Member, etcdctl_save, names_in, succeeds, tree_digest};
use crate::inspect_encrypted::keygen;
use crate::support::{TestEtcd, free_port, require_binary};

/// A snapshot of a live etcd 3.4 with 3,000 keys of 300 bytes (a key tree of many pages),
/// overwrites, deletes, a key bound to a lease and a compaction; and its age encryption.
async fn snapshot_pair(dir: &Path, public: &str) -> Option<(PathBuf, PathBuf)> {
    let etcd = TestEtcd::start()?;
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let value = "v".repeat(300);
    for i in 0..3000 {
        client
            .put(format!("/k/{i:05}"), value.clone(), None)
            .await
            .unwrap();
    }
    for i in 0..500 {
        client
            .put(format!("/k/{i:05}"), "again", None)
            .await
            .unwrap();
        client
            .delete(format!("/k/{:05}", 2999 - i), None)
            .await
            .unwrap();
    }
    let lease = client.lease_grant(600, None).await.unwrap().id();
    let with_lease = PutOptions::new().with_lease(lease);
    client.put("/leased", "x", Some(with_lease)).await.unwrap();
    let now = client
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(now - 10, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let plain = dir.join("snap-node-1700000000");
    etcdctl_save(&etcd.endpoint, &plain);
    let encrypted = dir.join("snap-node-1700000000.age");
    succeeds(
        Command::new("age")
            .args(["-r", public, "-o"])
            .arg(&encrypted)
            .arg(&plain),
    );
    Some((plain, encrypted))
}

fn target(dir: PathBuf, peer_url: &str) -> RestoreTarget {
    RestoreTarget {
        data_dir: dir,
        name: "restored".into(),
        peer_url: peer_url.into(),
        cluster_token: "direct-restore-test".into(),
        bump_revision: None,
        skip_hash_check: true,
    }
}

#[tokio::test]
async fn a_direct_restore_equals_the_tools_own_value_for_value_and_file_for_file() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(root.path(), "key.txt");
    let Some((plain, encrypted)) = snapshot_pair(root.path(), &public).await else {
        return;
    };
    let tool = select_restore_tool(Path::new("etcd")).await.unwrap();
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let db_dir = root.path().join("direct");
    std::fs::create_dir(&db_dir).unwrap();
    let ours = target(db_dir.join("etcd-restore-1.tmp"), &peer_url);
    assert!(
        direct::supported(&tool, &ours),
        "etcd 3.4's etcdctl: {tool:?}"
    );
    let source = Source {
        path: encrypted.clone(),
        identities: Identities::read_file(&identity).unwrap(),
        needed: Vec::new(),
        recorded_seal: None,
    };
    let staged = direct::restore_directly(&tool, &ours, source)
        .await
        .unwrap();
    assert!(matches!(staged, Direct::Staged(Some(_))));
    // Nothing is left beside the staging dir: no plaintext, no empty database.
    assert_eq!(names_in(&db_dir), ["etcd-restore-1.tmp"]);

    let reference = target(root.path().join("reference"), &peer_url);
    run_restore(&tool, &plain, &reference).await.unwrap();
    let db = |t: &RestoreTarget| t.data_dir.join("member/snap/db");
    let (got, want) = (
        membership::entries(&db(&ours)).unwrap(),
        membership::entries(&db(&reference)).unwrap(),
    );
    assert!(want.len() > 2000, "{} values", want.len());
    assert!(got == want, "the databases differ");
    let mut files = (
        tree_digest(&ours.data_dir),
        tree_digest(&reference.data_dir),
    );
    assert_eq!(
        files.0.remove(Path::new("member/snap/db")).unwrap().1,
        0o600
    );
    files.1.remove(Path::new("member/snap/db"));
    assert_eq!(files.0, files.1, "WAL and raft snapshot files");

    let dir = ours.data_dir.clone();
    let (kept, gone, leased) = tokio::task::spawn_blocking(move || {
        let member = Member::start(&dir, "restored", &peer_url);
        (
            member.get("/k/00001"),
            member.get("/k/02999"),
            member.get("/leased"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        (kept.as_str(), gone.as_str(), leased.as_str()),
        ("again", "", "x")
    );
}

#[tokio::test]
async fn another_tool_is_declined_with_the_checked_plaintext_and_nothing_staged() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let Some(etcdutl) = std::env::var_os("ETCDUTL")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| require_binary("etcdutl"))
    else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(root.path(), "key.txt");
    let Some((plain, encrypted)) = snapshot_pair(root.path(), &public).await else {
        return;
    };
    let tool = RestoreTool {
        kind: ToolKind::Etcdutl,
        path: etcdutl,
        version: Version::new(3, 5, 1),
        assessment: ToolAssessment {
            bump_revision: false,
            warnings: Vec::new(),
        },
    };
    let db_dir = root.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    let ours = target(db_dir.join("etcd-restore-1.tmp"), "http://127.0.0.1:2380");
    let source = Source {
        path: encrypted,
        identities: Identities::read_file(&identity).unwrap(),
        needed: Vec::new(),
        recorded_seal: None,
    };
    let Direct::Declined { plaintext, reason } = direct::restore_directly(&tool, &ours, source)
        .await
        .unwrap()
    else {
        panic!("etcd 3.5.1's tool is not reproduced: must be declined");
    };
    assert!(reason.contains("refused an empty database"), "{reason}");
    assert_eq!(
        std::fs::read(plaintext.path()).unwrap(),
        std::fs::read(&plain).unwrap()
    );
    assert_eq!(names_in(&db_dir), ["etcd-restore-1-plaintext.tmp"]);
    drop(plaintext);
    assert!(names_in(&db_dir).is_empty());
}
