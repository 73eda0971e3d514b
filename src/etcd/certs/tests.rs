use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use super::*;

fn names(peer_ip: &str) -> MemberNames {
    MemberNames {
        host: Some("node-a".into()),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        peer_ip: peer_ip.parse().unwrap(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn issued(list: &[(Leaf, Reissue)]) -> Vec<Leaf> {
    list.iter().map(|(leaf, _)| *leaf).collect()
}

#[test]
fn creates_rke2s_layout_once_and_keeps_it() {
    let root = tempfile::tempdir().unwrap();
    let files = EtcdTlsFiles::new(root.path().join("server/tls/etcd"));
    let now = SystemTime::now();
    let first = ensure(&files, &names("127.0.0.1"), CaPolicy::CreateWhenAbsent, now).unwrap();
    assert_eq!(issued(&first), Leaf::ALL);
    assert!(first.iter().all(|(_, why)| *why == Reissue::Missing));
    let names_on_disk: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(files.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names_on_disk,
        [
            "client.crt",
            "client.key",
            "peer-ca.crt",
            "peer-ca.key",
            "peer-server-client.crt",
            "peer-server-client.key",
            "server-ca.crt",
            "server-ca.key",
            "server-client.crt",
            "server-client.key"
        ]
    );
    assert_eq!(mode(files.dir()), 0o700);
    for leaf in Leaf::ALL {
        assert_eq!(mode(&files.key(leaf)), 0o600, "{leaf:?}");
    }
    assert_eq!(mode(&files.ca_key(CaKind::Server)), 0o600);
    let before: Vec<Vec<u8>> = Leaf::ALL
        .iter()
        .map(|l| std::fs::read(files.cert(*l)).unwrap())
        .collect();
    let again = ensure(&files, &names("127.0.0.1"), CaPolicy::RequireExisting, now).unwrap();
    assert!(again.is_empty(), "{again:?}");
    let after: Vec<Vec<u8>> = Leaf::ALL
        .iter()
        .map(|l| std::fs::read(files.cert(*l)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn leaves_are_issued_again_for_a_new_ca_or_a_new_address() {
    let root = tempfile::tempdir().unwrap();
    let files = EtcdTlsFiles::new(root.path());
    let now = SystemTime::now();
    ensure(&files, &names("127.0.0.1"), CaPolicy::CreateWhenAbsent, now).unwrap();

    // The peer address moved: only the peer certificate must change.
    let moved = ensure(&files, &names("10.1.2.3"), CaPolicy::CreateWhenAbsent, now).unwrap();
    assert_eq!(
        moved,
        [(Leaf::Peer, Reissue::NameMissing("10.1.2.3".into()))]
    );

    // A restore wrote another server CA back (here: another directory's): the leaves from it
    // are issued again from the CA on disk, which itself is kept.
    let other = tempfile::tempdir().unwrap();
    let other_files = EtcdTlsFiles::new(other.path());
    ensure(
        &other_files,
        &names("10.1.2.3"),
        CaPolicy::CreateWhenAbsent,
        now,
    )
    .unwrap();
    for path in [
        other_files.ca_cert(CaKind::Server),
        other_files.ca_key(CaKind::Server),
    ] {
        let target = files.dir().join(path.file_name().unwrap());
        std::fs::copy(&path, &target).unwrap();
    }
    let restored_ca = std::fs::read(files.ca_cert(CaKind::Server)).unwrap();
    let reissued = ensure(&files, &names("10.1.2.3"), CaPolicy::CreateWhenAbsent, now).unwrap();
    assert_eq!(
        reissued,
        [
            (Leaf::Server, Reissue::NotFromCa),
            (Leaf::Client, Reissue::NotFromCa)
        ]
    );
    assert_eq!(
        std::fs::read(files.ca_cert(CaKind::Server)).unwrap(),
        restored_ca
    );
    // What was issued verifies against the restored CA.
    let stored_cert = std::fs::read(files.cert(Leaf::Client)).unwrap();
    let stored_key = std::fs::read(files.key(Leaf::Client)).unwrap();
    let stored = StoredLeaf {
        cert_pem: Some(&stored_cert),
        key_pem: Some(&stored_key),
    };
    assert_eq!(
        leaf_problem(Leaf::Client, stored, &restored_ca, &[], now),
        None
    );
}

#[test]
fn a_join_without_the_cluster_cas_names_the_files_to_copy() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("server/tls/etcd");
    let files = EtcdTlsFiles::new(&dir);
    let err = ensure(
        &files,
        &names("127.0.0.1"),
        CaPolicy::RequireExisting,
        SystemTime::now(),
    )
    .unwrap_err();
    let text = err.to_string();
    for part in [
        "server-ca.crt",
        "server-ca.key",
        "peer-ca.crt",
        "peer-ca.key",
        "server/tls/etcd/",
        dir.to_str().unwrap(),
    ] {
        assert!(text.contains(part), "{part} not in: {text}");
    }
    assert!(!dir.exists(), "nothing is created for a refused join");
}

#[test]
fn a_ca_without_its_key_is_refused_not_replaced() {
    let root = tempfile::tempdir().unwrap();
    let files = EtcdTlsFiles::new(root.path());
    let now = SystemTime::now();
    ensure(&files, &names("127.0.0.1"), CaPolicy::CreateWhenAbsent, now).unwrap();
    std::fs::remove_file(files.ca_key(CaKind::Peer)).unwrap();
    let ca = std::fs::read(files.ca_cert(CaKind::Peer)).unwrap();
    let err = ensure(&files, &names("127.0.0.1"), CaPolicy::CreateWhenAbsent, now).unwrap_err();
    assert!(
        matches!(&err, CertError::CaKeyMissing { key, .. } if *key == files.ca_key(CaKind::Peer)),
        "{err}"
    );
    assert_eq!(std::fs::read(files.ca_cert(CaKind::Peer)).unwrap(), ca);
}
