//! Evidence for `inspect` through the real binary: every form of the argument and every output
//! format; the hash verdict beside etcd 3.5's `etcdutl` on damaged files; snapshots uploaded by
//! the binary and then damaged in the bucket; a snapshot of another cluster.

use std::path::Path;
use std::process::Command;

use crate::inspect::{assert_agrees, check, direct, etcdutl, flipped, inspect, load, save, status};
use crate::support::{TestEtcd, command, run, snapshot_dir, text};

/// Names of the failed checks.
fn failed(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] == false))
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_form_of_the_argument_and_every_format_report_the_same_snapshot() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 10, 2);
    let snap = save(&etcd, data.path(), "forms", false);
    let name = snap.file_name().unwrap().to_str().unwrap();

    let (out, by_path) = inspect(snap.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (_, by_name) = inspect(name, data.path(), &[]);
    assert_eq!(by_name, by_path, "a name in the snapshot dir is that file");
    // A relative path from the current dir.
    let out = command(
        &["inspect", "-o", "json", &format!("./{name}")],
        data.path(),
    )
    .current_dir(snapshot_dir(data.path()))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let relative: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(relative["etcd_status"], by_path["etcd_status"]);

    let out = run(&["inspect", "-o", "yaml", name], data.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let yaml: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(yaml, by_path, "YAML is the same value as JSON");

    let out = run(&["inspect", name], data.path());
    let (table, _) = text(&out);
    let revision = &by_path["etcd_status"]["revision"];
    assert!(
        table.contains(&format!("Revision:          {revision}")),
        "{table}"
    );
    assert!(table.contains("trailer     ok"), "{table}");

    // Usage errors exit 2 and name what was wrong.
    let dir = snapshot_dir(data.path());
    let usage: [(&[&str], &str); 4] = [
        (&["inspect", "-o", "xml", name], "xml"),
        (&["inspect"], "SNAPSHOT"),
        (&["inspect", dir.to_str().unwrap()], "not a regular file"),
        (
            &["inspect", "--token-file=/nonexistent/token", name],
            "token",
        ),
    ];
    for (args, needle) in usage {
        let out = run(args, data.path());
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `etcdutl snapshot restore` of `path` into a fresh dir: its verdict on the sha256 trailer.
fn etcdutl_restores(etcdutl: &Path, path: &Path, dir: &Path) -> Result<(), String> {
    let target = dir.join(format!(
        "restored-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    let out = Command::new(etcdutl)
        .args(["snapshot", "restore"])
        .arg(path)
        .arg("--data-dir")
        .arg(&target)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&target);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_hash_verdict_and_figures_agree_with_etcdutl_on_damaged_files() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let Some(etcdutl) = etcdutl() else { return };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 60, 5);
    let snap = save(&etcd, data.path(), "verdict", false);
    let (out, report) = inspect(snap.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_agrees(&report, &status(&etcdutl, &snap).unwrap());
    etcdutl_restores(&etcdutl, &snap, data.path()).expect("etcdutl restores the healthy file");

    let db = std::fs::metadata(&snap).unwrap().len() as usize - 32;
    let mut readable_by_etcdutl = 0;
    for offset in [4096 * 2 + 60, db / 3, db / 2, db - 200] {
        let bad = flipped(&snap, data.path(), offset);
        let (out, report) = inspect(bad.to_str().unwrap(), data.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "offset {offset}: {report:#}");
        assert_eq!(check(&report, "trailer")["ok"], false, "offset {offset}");
        // etcd's restore refuses the same file for the same reason.
        let refused = etcdutl_restores(&etcdutl, &bad, data.path()).unwrap_err();
        assert!(refused.contains("sha256"), "offset {offset}: {refused}");
        // Where etcdutl still reads the damaged file, both compute the same figures from it.
        if let Ok(theirs) = status(&etcdutl, &bad) {
            assert_agrees(&report, &theirs);
            readable_by_etcdutl += 1;
        }
    }
    assert!(readable_by_etcdutl > 0, "no flip left the file readable");
}

/// `--etcd-s3` flags for the in-process server's bucket `snaps`, folder `f`.
fn s3_flags(addr: &std::net::SocketAddr) -> Vec<String> {
    use crate::s3_support::{ACCESS_KEY, SECRET_KEY};
    vec![
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={addr}"),
        "--etcd-s3-insecure".into(),
        "--etcd-s3-bucket=snaps".into(),
        "--etcd-s3-folder=f".into(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ]
}

/// Saves through the binary with `extra` flags (S3, token); returns the local copy's path.
fn save_with(etcd: &TestEtcd, data: &Path, name: &str, compress: bool, extra: &[String]) -> String {
    let mut args = direct(etcd);
    args.extend_from_slice(extra);
    args.extend(["save".into(), "--name".into(), name.into()]);
    if compress {
        args.push("--snapshot-compress".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, data);
    assert!(out.status.success(), "{:?}", text(&out));
    let found = crate::support::snapshot_files(&snapshot_dir(data))
        .into_iter()
        .find(|n| n.starts_with(&format!("{name}-")));
    found.expect("saved snapshot")
}

/// `inspect -o json` off the async runtime.
async fn inspect_async(target: &str, data: &Path, extra: &[String]) -> serde_json::Value {
    let (owned, data, extra) = (target.to_string(), data.to_path_buf(), extra.to_vec());
    let (out, report) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        inspect(&owned, &data, &refs)
    })
    .await
    .unwrap();
    let code = if report["healthy"] == true { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(code), "{target}: {:?}", text(&out));
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_an_uploaded_object_fail_the_check_against_the_upload_record() {
    use crate::s3_support::{S3Server, Tls};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 30, 3);
    let flags = s3_flags(&s3.addr);
    for (base, compress) in [("upplain", false), ("upzip", true)] {
        let name = save_with(&etcd, data.path(), base, compress, &flags);
        let local = snapshot_dir(data.path()).join(&name);
        let bytes = std::fs::read(&local).unwrap();
        assert!(
            s3.has_object("snaps", &format!("f/{name}")),
            "{name} uploaded"
        );
        // Only the S3 copy left: the name resolves to the object.
        std::fs::remove_file(&local).unwrap();
        let report = inspect_async(&name, data.path(), &flags).await;
        assert_eq!(report["healthy"], true, "{report:#}");
        let object = check(&report, "object");
        assert!(
            object["detail"]
                .as_str()
                .unwrap()
                .contains("recorded at upload"),
            "{object}"
        );

        for offset in [17, bytes.len() / 3, bytes.len() / 2, bytes.len() - 5] {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x04;
            s3.put_raw("snaps", &format!("f/{name}"), &damaged);
            let report = inspect_async(&name, data.path(), &flags).await;
            assert_eq!(report["healthy"], false, "{name} offset {offset}");
            let object = check(&report, "object");
            assert_eq!(object["ok"], false, "{name} offset {offset}: {report:#}");
            assert!(
                object["detail"]
                    .as_str()
                    .unwrap()
                    .contains("sha256 mismatch"),
                "{object}"
            );
        }
    }
}

/// Puts bootstrap data sealed with `password` into `etcd`, as a server of that cluster does.
fn seed_bootstrap(etcd: &TestEtcd, password: &str) {
    use etcd_snapshot::bootstrap::crypto::{encrypt, storage_key};
    let sealed = encrypt(password, br#"{"ServerCA":{}}"#).unwrap();
    etcd.put(&storage_key(password), &sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_cluster_fails_the_token_and_uploader_checks() {
    use crate::s3_support::{S3Server, Tls};
    let (Some(ours), Some(theirs)) = (TestEtcd::start(), TestEtcd::start()) else {
        return;
    };
    seed_bootstrap(&ours, "alpha");
    seed_bootstrap(&theirs, "beta");
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    let data = tempfile::tempdir().unwrap();
    let flags = s3_flags(&s3.addr);
    let our_token = "K10abc::server:alpha".to_string();
    // The other cluster's node has its own data dir and token; it uploads to the shared bucket.
    let their_node = tempfile::tempdir().unwrap();
    let server_dir = their_node.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::write(server_dir.join("token"), "K10abc::server:beta\n").unwrap();
    let mine = save_with(&ours, data.path(), "ours", false, &[]);
    let other = save_with(&theirs, their_node.path(), "theirs", false, &flags);
    let their_copy = snapshot_dir(their_node.path()).join(&other);

    let with_token = |mut f: Vec<String>| {
        f.push(format!("--token={our_token}"));
        f
    };
    let our_report = inspect_async(&mine, data.path(), &with_token(Vec::new())).await;
    assert_eq!(our_report["healthy"], true, "{our_report:#}");
    assert_eq!(our_report["bootstrap"]["token_decrypts"], true);

    // The local copy of the other cluster's snapshot: whole, but not ours.
    let their_path = their_copy.to_str().unwrap();
    let report = inspect_async(their_path, data.path(), &with_token(Vec::new())).await;
    assert_eq!(failed(&report), ["token"], "{report:#}");
    let token = check(&report, "token")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.contains("another cluster"), "{token}");
    assert_ne!(
        report["members"][0]["id"], our_report["members"][0]["id"],
        "the member ids show whose snapshot it is"
    );
    // Its S3 copy also carries the other cluster's token hash.
    let report = inspect_async(&other, data.path(), &with_token(flags.clone())).await;
    assert_eq!(failed(&report), ["uploader", "token"], "{report:#}");
    // Without a token, nothing says which cluster is expected: healthy, members listed.
    let report = inspect_async(&other, data.path(), &flags).await;
    assert_eq!(report["healthy"], true, "{report:#}");
    assert_eq!(report["bootstrap"]["present"], true);
    let printed = report.to_string();
    for secret in ["alpha", "beta"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}
