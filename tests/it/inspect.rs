//! `etcd-snapshot inspect` on snapshots the real binary saved from a real etcd: agreement with
//! etcd 3.5's `etcdutl snapshot status` (revision, totalKey, totalSize and its CRC-32C hash),
//! damage fed through real files and a real (in-process, signature-checking) S3 server, and
//! the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

use crate::support::{TestEtcd, free_port, require_binary, run, snapshot_dir, text};

/// `etcdutl` from etcd 3.5 (`scripts/install-deps` puts it on PATH); `ETCDUTL` overrides.
pub(crate) fn etcdutl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ETCDUTL") {
        return Some(PathBuf::from(path));
    }
    require_binary("etcdutl")
}

/// Flags for a direct-mode CLI call against `etcd` (no server answers at `--etcd-server`).
pub(crate) fn direct(etcd: &TestEtcd) -> Vec<String> {
    vec![
        format!("--etcd-server=https://127.0.0.1:{}", free_port()),
        format!("--etcd-endpoints={}", etcd.endpoint),
        "--node-name=n1".into(),
    ]
}

/// Saves a snapshot through the binary; returns its path.
pub(crate) fn save(etcd: &TestEtcd, data: &Path, name: &str, compress: bool) -> PathBuf {
    let mut args = direct(etcd);
    args.extend(["save".into(), "--name".into(), name.into()]);
    if compress {
        args.push("--snapshot-compress".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, data);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let dir = snapshot_dir(data);
    let found = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("{name}-")) && !n.ends_with(".part")
        });
    found.expect("saved snapshot")
}

/// Runs `inspect -o json` with `extra` flags; returns the output and the parsed report.
pub(crate) fn inspect(target: &str, data: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args: Vec<&str> = vec!["inspect", "-o", "json"];
    args.extend_from_slice(extra);
    args.push(target);
    let out = run(&args, data);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, report)
}

pub(crate) fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

pub(crate) fn etcdctl(etcd: &TestEtcd, args: &[&str]) {
    let out = Command::new(require_binary("etcdctl").expect("etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&etcd.endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

/// Puts `n` pods and 3 configmaps, deletes the first `deleted` pods.
pub(crate) fn load(etcd: &TestEtcd, n: usize, deleted: usize) {
    for i in 0..n {
        etcd.put(
            &format!("/registry/pods/default/p{i}"),
            &"x".repeat(100 + i),
        );
    }
    for i in 0..3 {
        etcd.put(&format!("/registry/configmaps/kube-system/c{i}"), "data");
    }
    for i in 0..deleted {
        etcdctl(etcd, &["del", &format!("/registry/pods/default/p{i}")]);
    }
}

/// `etcdutl snapshot status -w json` on `path`.
pub(crate) fn status(etcdutl: &Path, path: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new(etcdutl)
        .args(["snapshot", "status", "-w", "json"])
        .arg(path)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("etcdutl json"))
}

pub(crate) fn assert_agrees(report: &serde_json::Value, theirs: &serde_json::Value) {
    let ours = &report["etcd_status"];
    for (mine, their) in [
        ("hash", "hash"),
        ("revision", "revision"),
        ("total_key", "totalKey"),
        ("total_size", "totalSize"),
    ] {
        assert_eq!(
            ours[mine], theirs[their],
            "{mine}: ours {ours} etcdutl {theirs}"
        );
    }
}

/// The database image inside a snapshot `.zip`.
pub(crate) fn unzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut entry = archive.by_index(0).unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn inspect_agrees_with_etcdutl_snapshot_status() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let Some(etcdutl) = etcdutl() else { return };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 40, 10);
    let small = save(&etcd, data.path(), "small", false);
    // Compaction and more churn, then a zipped snapshot.
    for i in 0..20 {
        etcd.put("/registry/leases/kube-node-lease/n1", &format!("renew {i}"));
    }
    etcdctl(&etcd, &["compact", "50"]);
    let zipped = save(&etcd, data.path(), "zipped", true);

    let (out, report) = inspect(small.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_agrees(&report, &status(&etcdutl, &small).unwrap());
    assert_eq!(report["healthy"], true);
    assert_eq!(report["live_keys"], 33);
    let resources = report["resources"].as_array().unwrap();
    let pods = resources
        .iter()
        .find(|r| r["prefix"] == "/registry/pods")
        .unwrap();
    assert_eq!(pods["keys"], 30);
    let expected: u64 = (10..40).map(|i| 26 + 100 + i).sum();
    assert_eq!(
        pods["bytes"], expected,
        "key + value bytes of the live pods"
    );
    assert_eq!(report["members"].as_array().unwrap().len(), 1);
    assert_eq!(report["bootstrap"]["present"], false);

    // By name in the snapshot dir, zipped: same figures as etcdutl on the unzipped image.
    let name = zipped.file_name().unwrap().to_str().unwrap();
    let (out, report) = inspect(name, data.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let image = data.path().join("image.db");
    std::fs::write(&image, unzip(&zipped)).unwrap();
    let theirs = status(&etcdutl, &image).unwrap();
    assert_agrees(&report, &theirs);
    assert_eq!(report["compact_revision"], 50);
    assert_eq!(check(&report, "archive")["ok"], true);
    // The table names the same figures.
    let out = run(&["inspect", name], data.path());
    let (table, _) = text(&out);
    assert!(table.contains("Verdict:           healthy"), "{table}");
    assert!(
        table.contains(&format!("Revision:          {}", theirs["revision"])),
        "{table}"
    );
}

/// Flips one bit at `offset` of a copy of `src`.
pub(crate) fn flipped(src: &Path, dir: &Path, offset: usize) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    bytes[offset] ^= 0x10;
    let path = dir.join(format!("flip-{offset}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bit_flips_anywhere_fail_the_trailer_check_with_exit_1() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 20, 0);
    let snap = save(&etcd, data.path(), "flip", false);
    let len = std::fs::metadata(&snap).unwrap().len() as usize;
    for offset in [20, 4096 + 100, len / 2, len - 40, len - 1] {
        let bad = flipped(&snap, data.path(), offset);
        let (out, report) = inspect(bad.to_str().unwrap(), data.path(), &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "offset {offset}: {:?}",
            text(&out)
        );
        assert_eq!(report["healthy"], false);
        let trailer = check(&report, "trailer");
        assert_eq!(trailer["ok"], false, "offset {offset}");
        assert!(
            trailer["detail"]
                .as_str()
                .unwrap()
                .contains("sha256 mismatch"),
            "{trailer}"
        );
    }
}

#[test]
fn a_damaged_page_under_a_valid_trailer_fails_the_structure_check() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 20, 0);
    let snap = save(&etcd, data.path(), "page", false);
    let mut bytes = std::fs::read(&snap).unwrap();
    let db = bytes.len() - 32;
    // Meta page 0: the page size and the root bucket's page; make the root page a freelist.
    let page_size = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let root = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    bytes[root * page_size + 8] = 0x10;
    let digest = sha2::Sha256::digest(&bytes[..db]);
    bytes[db..].copy_from_slice(&digest);
    let bad = data.path().join("bad-page");
    std::fs::write(&bad, &bytes).unwrap();

    let (out, report) = inspect(bad.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(check(&report, "trailer")["ok"], true);
    let structure = check(&report, "structure");
    assert_eq!(structure["ok"], false);
    assert!(
        structure["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("page {root}: invalid type 0x10")),
        "{structure}"
    );
    // etcd's own tool refuses the same file.
    if let Some(etcdutl) = etcdutl() {
        let image = data.path().join("bad-page.db");
        std::fs::write(&image, &bytes[..db]).unwrap();
        assert!(status(&etcdutl, &image).is_err());
    }
}

#[test]
fn a_truncated_zip_is_damaged_and_a_missing_snapshot_is_a_usage_error() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 5, 0);
    let zipped = save(&etcd, data.path(), "trunc", true);
    let bytes = std::fs::read(&zipped).unwrap();
    let cut = data.path().join("cut.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (out, report) = inspect(cut.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(check(&report, "archive")["ok"], false);

    let out = run(&["inspect", "no-such-snapshot"], data.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-snapshot") && stderr.contains("snapshot dir"),
        "{stderr}"
    );
    let out = run(&["inspect", "/nonexistent/file"], data.path());
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[test]
fn the_token_check_says_whether_the_token_decrypts_the_bootstrap_data() {
    use etcd_snapshot::bootstrap::crypto::{encrypt, storage_key};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let token = "K10abc::server:right-password";
    etcd.put(
        &storage_key("right-password"),
        &encrypt("right-password", br#"{"ServerCA":{}}"#).unwrap(),
    );
    let snap = save(&etcd, data.path(), "boot", false);
    let path = snap.to_str().unwrap();

    let (out, report) = inspect(path, data.path(), &[&format!("--token={token}")]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(report["bootstrap"]["present"], true);
    assert_eq!(report["bootstrap"]["token_decrypts"], true);

    let (out, report) = inspect(path, data.path(), &["--token=wrong"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(report["bootstrap"]["token_decrypts"], false);
    assert_eq!(check(&report, "token")["ok"], false);
    // No token appears in the output.
    let (stdout, stderr) = text(&out);
    for secret in ["wrong", "right-password"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_are_inspected_in_place_and_damage_in_the_bucket_is_caught() {
    use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    let data = tempfile::tempdir().unwrap();
    load(&etcd, 10, 2);
    let plain = save(&etcd, data.path(), "s3plain", false);
    let zipped = save(&etcd, data.path(), "s3zip", true);
    let flags = vec![
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure".into(),
        "--etcd-s3-bucket=snaps".into(),
        "--etcd-s3-folder=f".into(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ];
    for snap in [&plain, &zipped] {
        let name = snap.file_name().unwrap().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(snap).unwrap();
        s3.put_raw("snaps", &format!("f/{name}"), &bytes);
        // Only the S3 copy exists: the name must resolve to the object.
        std::fs::remove_file(snap).unwrap();
        let (dir, f, n) = (data.path().to_path_buf(), flags.clone(), name.clone());
        let (out, report) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            inspect(&n, &dir, &refs)
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {:?}", text(&out));
        assert_eq!(report["source"], format!("s3://snaps/f/{name}"));
        assert_eq!(report["live_keys"], 11);

        // A whole byte from the middle on that really damages the content: some bytes of a
        // Deflate stream change nothing when flipped (padding, or code lengths of symbols the
        // block never uses), and then the database is still intact.
        let at = crate::support::damaging_flip(&bytes, bytes.len() / 2);
        bytes[at] ^= 0xFF;
        s3.put_raw("snaps", &format!("f/{name}"), &bytes);
        let (dir, f, n) = (data.path().to_path_buf(), flags.clone(), name.clone());
        let (out, report) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            inspect(&n, &dir, &refs)
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {:?}", text(&out));
        let failed: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            failed.contains(&"trailer") || failed.contains(&"archive"),
            "{name}: {report:#}"
        );
    }
    // Nothing was written into the data dir besides the snapshots saved above.
    let leftovers = crate::support::snapshot_files(&snapshot_dir(data.path()));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
