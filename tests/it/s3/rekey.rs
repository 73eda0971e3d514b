//! `rekey` of S3 copies through the real binary against the in-process S3 server: an outage
//! planned in the middle of the run (the server's key is revoked at the first delete of a temp
//! copy), then the run resumed. At every point each object opens with the old or the new key
//! (checked with the reference `age` tool on the bucket's own bytes), never neither; after the
//! resume every object is on the new key, the plaintext one is encrypted, and no temp copy is
//! left.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fakes::s3_support::{ACCESS_KEY, KeyRing, S3Server, SECRET_KEY, Tls};
use crate::inspect_encrypted::{fingerprint, keygen};
use crate::s3::ops::{created_name, direct, s3_flags};
use crate::support::{TestEtcd, require_binary, snapshot_dir, text};

/// The snapshot objects of folder `f` (not `.metadata/` or `.rekey/`), by name.
fn objects(s3: &S3Server) -> Vec<(String, PathBuf)> {
    let dir = s3.root.path().join("snapshots/f");
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    found.sort();
    found
}

/// Which of the identities the `age` tool opens `file` with (a plaintext file: "plain").
fn opened_by(file: &Path, identities: &[(&str, &Path)]) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    if !bytes.starts_with(b"age-encryption.org/v1\n") {
        return vec!["plain".into()];
    }
    identities
        .iter()
        .filter(|(_, id)| {
            Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(id)
                .arg("-o")
                .arg("/dev/null")
                .arg(file)
                .status()
                .unwrap()
                .success()
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

async fn save(data: &Path, etcd: &TestEtcd, s3: &S3Server, extra: &[String]) -> String {
    let mut args = s3_flags(s3, "snapshots");
    args.extend(extra.iter().cloned());
    args.push("save".into());
    let out = direct(data, &etcd.endpoint, args).await;
    assert!(out.status.success(), "{:?}", text(&out));
    created_name(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_midway_leaves_every_object_readable_and_a_rerun_finishes() {
    if require_binary("age").is_none() || require_binary("age-keygen").is_none() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let ring = KeyRing::default();
    ring.grant(ACCESS_KEY, SECRET_KEY);
    let s3 = S3Server::start_with_ring(Tls::Plain, ring.clone()).await;
    s3.create_bucket("snapshots");
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (id_a, pub_a) = keygen(keys.path(), "old.txt");
    let (id_b, pub_b) = keygen(keys.path(), "new.txt");
    let to_a = vec![format!("--etcd-snapshot-encryption-recipients={pub_a}")];
    let mut names = Vec::new();
    for i in 0..3 {
        etcd.put("/test/round", &i.to_string());
        names.push(save(data.path(), &etcd, &s3, &to_a).await);
    }
    let plain = save(data.path(), &etcd, &s3, &[]).await;
    // Only the S3 copies are rekeyed here: the local dir is emptied.
    for name in names.iter().chain([&plain]) {
        std::fs::remove_file(snapshot_dir(data.path()).join(name)).unwrap();
    }
    let ids = [("old", id_a.as_path()), ("new", id_b.as_path())];
    let rekey = |extra: &[&str]| {
        let mut args = s3_flags(&s3, "snapshots");
        args.push(format!("--etcd-snapshot-encryption-recipients={pub_b}"));
        args.push(format!(
            "--etcd-snapshot-encryption-identity-file={}",
            id_a.display()
        ));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // Dry run: says what it would do, changes nothing.
    let before = objects(&s3);
    let out = direct(data.path(), &etcd.endpoint, rekey(&["rekey", "--dry-run"])).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("would re-encrypt S3 {}", names[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("would encrypt S3 {plain}")),
        "{stdout}"
    );
    assert_eq!(objects(&s3), before);

    // The outage: the key is revoked at the first delete of a temp copy, i.e. after the first
    // object was replaced by its new copy and before the run could clean up or go on.
    s3.revoke_on("DELETE /snapshots/f/.rekey/", &ring, ACCESS_KEY);
    let out = direct(data.path(), &etcd.endpoint, rekey(&["rekey"])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("failed S3"), "{stderr}");
    let mut on = std::collections::BTreeMap::new();
    let mut done = Vec::new();
    for (name, path) in objects(&s3) {
        let opened = opened_by(&path, &ids);
        assert!(!opened.is_empty(), "{name} opens with neither key");
        if opened == ["new"] {
            done.push(name.clone());
        }
        *on.entry(opened.join("+")).or_insert(0) += 1;
    }
    assert_eq!(
        on.get("new"),
        Some(&1),
        "one object done before the outage: {on:?}"
    );
    assert_eq!(on.get("old"), Some(&2), "{on:?}");
    assert_eq!(on.get("plain"), Some(&1), "{on:?}");
    let temps = s3.root.path().join("snapshots/f/.rekey");
    assert!(
        std::fs::read_dir(&temps).map(|d| d.count()).unwrap_or(0) > 0,
        "the interrupted run left its temp copy"
    );

    // A crash between the replace and the record's rewrite: the finished object's `.metadata`
    // record still names the old key; the rerun skips the object and heals the record.
    s3.put_raw("snapshots", &format!("f/.metadata/{}", done[0]), b"{}");

    // The outage ends; the rerun resumes (progress as JSON lines) and finishes.
    ring.grant(ACCESS_KEY, SECRET_KEY);
    let out = direct(
        data.path(),
        &etcd.endpoint,
        rekey(&["--progress=json", "rekey"]),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("skipped S3"),
        "the finished object is skipped: {stdout}"
    );
    assert!(stderr.contains("\"operation\":\"rekey\""), "{stderr}");
    let after = objects(&s3);
    assert_eq!(after.len(), 4, "{after:?}");
    for (name, path) in &after {
        assert!(name.ends_with(".age"), "{name}");
        assert_eq!(opened_by(path, &ids), vec!["new".to_string()], "{name}");
    }
    assert!(
        !after.iter().any(|(n, _)| *n == plain),
        "the plaintext is gone"
    );
    let left = std::fs::read_dir(&temps).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no temp copy left");

    // The listing names the new key for every S3 copy.
    let mut args = s3_flags(&s3, "snapshots");
    args.extend(["ls".into(), "-o".into(), "wide".into()]);
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (wide, _) = text(&out);
    let rows: Vec<&str> = wide.lines().filter(|l| l.contains("s3://")).collect();
    assert_eq!(rows.len(), 4, "{wide}");
    for row in rows {
        assert!(
            row.contains(&format!(" {} ", fingerprint(&pub_b))),
            "{wide}"
        );
    }
}

/// The S3 rows of `ls -o wide`.
fn s3_rows(wide: &str) -> Vec<String> {
    let rows = wide.lines().filter(|l| l.contains("s3://"));
    rows.map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_lists_the_new_key_after_a_rekey_that_kept_the_size() {
    let Some(env) = crate::s3::ops::EncryptedS3::start().await else {
        return;
    };
    let (etcd, s3, data, keys) = (env.etcd, env.s3, env.data, env.keys);
    let (_, pub_a) = keygen(keys.path(), "old.txt");
    let (_, pub_b) = keygen(keys.path(), "new.txt");
    let mut args = s3_flags(&s3, "snapshots");
    args.push(format!("--etcd-snapshot-encryption-recipients={pub_a}"));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server =
        std::sync::Arc::new(crate::s3::ops::start_server(data.path(), &etcd.endpoint, &refs).await);
    let ls = |server: &std::sync::Arc<crate::support::TestServer>| {
        let server = server.clone();
        crate::s3::ops::blocking(move || server.cli(&["ls", "-o", "wide"]))
    };
    let srv = server.clone();
    let out = crate::s3::ops::blocking(move || srv.cli(&["save"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let name = created_name(&out);
    let object = s3.root.path().join("snapshots/f").join(&name);
    let size_before = std::fs::metadata(&object).unwrap().len();
    // The server reads the object's metadata once and remembers it.
    let (wide, _) = text(&ls(&server).await);
    let rows = s3_rows(&wide);
    assert!(rows[0].contains(&fingerprint(&pub_a)), "{wide}");

    // What a rekey to key B that kept the size leaves in the bucket (the age header's random
    // grease stanza makes a real rekey's size vary, so it is written here byte for byte): the
    // object rewritten under its name at the same size, and its `.metadata` record naming B.
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    s3.rewrite("snapshots", &format!("f/{name}"), &bytes);
    let record_key = format!("f/.metadata/{name}");
    let record = String::from_utf8(s3.read_raw("snapshots", &record_key).unwrap()).unwrap();
    let (fp_a, fp_b) = (fingerprint(&pub_a), fingerprint(&pub_b));
    assert!(record.contains(&fp_a), "{record}");
    s3.put_raw(
        "snapshots",
        &record_key,
        record.replace(&fp_a, &fp_b).as_bytes(),
    );
    assert_eq!(std::fs::metadata(&object).unwrap().len(), size_before);

    let (wide, _) = text(&ls(&server).await);
    let rows = s3_rows(&wide);
    assert_eq!(rows.len(), 1, "{wide}");
    assert!(
        rows[0].contains(&fp_b) && !rows[0].contains(&fp_a),
        "the server still shows the old key: {wide}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_encrypted_upload_records_the_plaintext_digest_inspect_checks() {
    let Some(env) = crate::s3::ops::EncryptedS3::start().await else {
        return;
    };
    let (etcd, s3, data, keys) = (env.etcd, env.s3, env.data, env.keys);
    let (id, public) = keygen(keys.path(), "key.txt");
    let to_key = vec![format!("--etcd-snapshot-encryption-recipients={public}")];
    let name = save(data.path(), &etcd, &s3, &to_key).await;
    // Only the S3 copy is left to inspect.
    std::fs::remove_file(snapshot_dir(data.path()).join(&name)).unwrap();
    let record = s3
        .read_raw("snapshots", &format!("f/.metadata/{name}"))
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let digest = record["Etcd-Snapshot-Plaintext-Sha256"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(digest.len(), 64, "{record:#}");

    let mut args = s3_flags(&s3, "snapshots");
    args.push(format!(
        "--etcd-snapshot-encryption-identity-file={}",
        id.display()
    ));
    args.extend(["inspect".into(), "-o".into(), "json".into(), name.clone()]);
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let decryption = crate::inspect::check(&report, "decryption");
    let detail = decryption["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "plaintext's sha256 {digest} matches the one recorded at save"
        )),
        "{detail}"
    );
}
