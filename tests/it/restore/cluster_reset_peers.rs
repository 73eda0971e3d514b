//! Restores that involve more than one node or a remote store: by S3 object name (with the
//! recorded token hash checked before anything is downloaded) and a three-member cluster
//! restored on one member while the other two drop their etcd data and rejoin it.

use crate::restore::cluster_reset::{Node, expected};
use crate::support::{require_binary, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_by_s3_object_name_checks_the_token_hash_first() {
    use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
    if require_binary("etcd").is_none() {
        return;
    }
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let s3_flags = vec![
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure".into(),
        "--etcd-s3-bucket=snapshots".into(),
        "--etcd-s3-folder=f".into(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ];
    let node = std::sync::Arc::new(Node::new());
    let (n, flags) = (node.clone(), s3_flags.clone());
    let name = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut server = n.start(&refs);
        n.put("/test/a", "1");
        let snapshot = n.save(&server, true);
        n.put("/test/a", "changed");
        assert!(server.terminate().success());
        snapshot.file_name().unwrap().to_string_lossy().into_owned()
    })
    .await
    .unwrap();
    assert!(s3.has_object("snapshots", &format!("f/{name}")));
    // The local copy is gone: the restore must come from S3.
    std::fs::remove_file(crate::support::snapshot_dir(node.dir()).join(&name)).unwrap();

    let (n, flags, object) = (node.clone(), s3_flags.clone(), name.clone());
    let (wrong, right) = tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.push("--token=some-other-token");
        args.push(&object);
        let wrong = n.restore(&args);
        args.retain(|a| !a.starts_with("--token"));
        let right = n.restore(&args);
        (wrong, right)
    })
    .await
    .unwrap();
    let (_, stderr) = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("token hash") && stderr.contains("Nothing was changed"),
        "{stderr}"
    );
    let (stdout, stderr) = text(&right);
    assert!(right.status.success(), "{stdout}\n{stderr}");
    let n = node.clone();
    let keys = tokio::task::spawn_blocking(move || {
        let mut server = n.start(&[]);
        let keys = n.keys();
        assert!(server.terminate().success());
        keys
    })
    .await
    .unwrap();
    assert_eq!(keys, expected(&[("/test/a", "1")]));

    // With S3 configured, --etcd-s3=false restores a local file by its path.
    let local = crate::support::snapshot_dir(node.dir()).join(&name);
    assert!(local.is_file(), "the download stays in the snapshot dir");
    let (n, flags) = (node.clone(), s3_flags.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.push("--etcd-s3=false");
        let path = local.display().to_string();
        args.push(&path);
        n.restore(&args)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));

    // The S3 config Secret is refused for a restore, with the reason.
    let n = node.clone();
    let out = tokio::task::spawn_blocking(move || {
        n.restore(&[
            "--etcd-s3",
            "--etcd-s3-config-secret=s3-config",
            "snapshot-n1-1.zip",
        ])
    })
    .await
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be used for a restore"), "{stderr}");
}

#[test]
fn a_three_member_cluster_is_restored_on_one_member_and_the_others_rejoin() {
    if require_binary("etcd").is_none() {
        return;
    }
    let nodes = [Node::named("n1"), Node::named("n2"), Node::named("n3")];
    let join = format!("--etcd-join-endpoint={}", nodes[0].endpoint());
    let mut servers = vec![nodes[0].start(&[])];
    // The peers share the first server's etcd CAs and issue their own certificates from them.
    for peer in &nodes[1..] {
        peer.copy_cas_from(&nodes[0]);
    }
    servers.push(nodes[1].start(&[&join]));
    servers.push(nodes[2].start(&[&join]));
    assert_eq!(nodes[0].member_count(), 3);
    nodes[0].put("/test/a", "1");
    nodes[1].put("/test/b", "2");
    let snapshot = nodes[0].save(&servers[0], false);
    nodes[2].put("/test/a", "changed");
    nodes[0].del("/test/b");
    for mut server in servers.drain(..).rev() {
        assert!(server.terminate().success());
    }

    let out = nodes[0].restore(&[snapshot.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    // The peers drop their etcd data (not their snapshots) and rejoin the restored member.
    for peer in &nodes[1..] {
        std::fs::remove_dir_all(peer.dir().join("server/db/etcd")).unwrap();
    }
    let mut servers = vec![nodes[0].start(&[])];
    servers.push(nodes[1].start(&[&join]));
    servers.push(nodes[2].start(&[&join]));
    assert_eq!(nodes[0].member_count(), 3);
    for node in &nodes {
        assert_eq!(
            node.keys(),
            expected(&[("/test/a", "1"), ("/test/b", "2")]),
            "{}",
            node.name
        );
        let health = node.etcdctl(&["endpoint", "health"]);
        assert!(health.status.success(), "{}", node.name);
    }
    for mut server in servers.drain(..).rev() {
        assert!(server.terminate().success());
    }
}
