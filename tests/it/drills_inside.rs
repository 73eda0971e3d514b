//! Drills run the restore tool with its hash pass skipped: `inspect`, beside it, is what refuses
//! damage, also where the outer layer is intact (a damaged database inside a valid zip or age
//! stream), and a restore only counts when `inspect` passed. A snapshot whose newest revisions
//! were deleted and compacted away passes: the member serves the compaction's revision, above
//! the file's highest key.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use etcd_snapshot::crypt::{EncryptingWriter, Identities};
use etcd_snapshot::restore::drill::{DrillReport, DrillSetup, Keys, drill_local};

use crate::support::{TestEtcd, require_binary, snapshot_dir};

#[allow(deprecated)] // age 0.13 deprecates generating X25519 keys; they are what we test with
fn identities() -> Identities {
    let id = age::x25519::Identity::generate();
    let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    Identities::parse(&text, "test").unwrap()
}

fn failed(report: &DrillReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect()
}

fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(require_binary("etcdctl").expect("etcdctl"))
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn encrypt(path: &Path, bytes: &[u8], ids: &Identities) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = EncryptingWriter::new(file, Some(&ids.recipients())).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap();
}

fn zip_of(path: &Path, entry: &str, bytes: &[u8]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(entry, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_inside_an_intact_zip_or_age_stream_fails_at_inspect_and_a_compacted_head_passes() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if require_binary("etcdutl").is_none() && require_binary("etcdctl").is_none() {
        return;
    }
    for i in 0..20 {
        etcd.put(&format!("/registry/pods/default/p{i}"), &format!("v{i}"));
    }
    etcd.put("/registry/pods/default/gone", "x");
    etcdctl(&etcd.endpoint, &["del", "/registry/pods/default/gone"]);
    let out = etcdctl(&etcd.endpoint, &["get", "/", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let head = json["header"]["revision"].as_i64().unwrap();
    etcdctl(
        &etcd.endpoint,
        &["compact", &head.to_string(), "--physical"],
    );

    let (data, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = snapshot_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    let good_path = dir.join("good-n1-1");
    etcdctl(
        &etcd.endpoint,
        &["snapshot", "save", good_path.to_str().unwrap()],
    );
    let good = std::fs::read(&good_path).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let ids = Arc::new(identities());
    let setup = DrillSetup {
        etcd_binary: "etcd".into(),
        data_dir: data.path().to_path_buf(),
        temp_dir: Some(tmp.path().to_path_buf()),
        keys: Keys::Loaded(Arc::clone(&ids)),
    };

    let report = drill_local(&setup, &good_path).await.unwrap();
    assert!(report.passed, "{report:#?}");
    let revision = report.checks.iter().find(|c| c.name == "revision");
    assert!(revision.is_some_and(|c| c.ok), "{report:#?}");
    let aged_good = dir.join("aged-good-n1-2.age");
    encrypt(&aged_good, &good, &ids);
    let report = drill_local(&setup, &aged_good).await.unwrap();
    assert!(report.passed, "{report:#?}");

    let zipped = dir.join("zipped-n1-3.zip");
    zip_of(&zipped, "zipped-n1-3", &flipped);
    let aged = dir.join("aged-n1-4.age");
    encrypt(&aged, &flipped, &ids);
    let plain = dir.join("flipped-n1-5");
    std::fs::write(&plain, &flipped).unwrap();
    for path in [&zipped, &aged, &plain] {
        let report = drill_local(&setup, path).await.unwrap();
        assert_eq!(
            failed(&report),
            ["inspect"],
            "{}: {report:#?}",
            path.display()
        );
        assert!(
            !report.checks.iter().any(|c| c.name == "restore"),
            "{report:#?}"
        );
        let inspect = &report.checks[0].detail;
        assert!(
            inspect.contains("sha256") || inspect.contains("trailer"),
            "{inspect}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "a drill left its temp dir"
    );
}
