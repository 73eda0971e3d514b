//! `scripts/build-image` builds an OCI archive whose root filesystem holds exactly the binary,
//! the libraries `ldd` names, the loader, the CA bundle and passwd/group; the test unpacks it
//! with umoci and runs the image's binary in a chroot of that root filesystem, as the image's
//! unprivileged user, against a real etcd: `--version` and a direct-mode `save`.
//!
//! chroot needs root: CI runs as root; elsewhere the test skips with a message, and under CI
//! it fails when not root.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{TestEtcd, bin, free_port, require_binary, text, trailer_verifies};

const TAG: &str = "etcd-snapshot:it";
const USER: u32 = 65532;

/// True when this process may chroot; false (after saying why) when the test should skip.
pub fn running_as_root(what: &str) -> bool {
    // /proc/self belongs to the process's effective uid: no libc call needed.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        if std::env::var_os("CI").is_some() {
            panic!("{what} needs root (chroot); CI is set, so this is a failure");
        }
        eprintln!("SKIPPING: {what} needs root (chroot)");
    }
    root
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{cmd:?} failed: {stdout}{stderr}");
    stdout
}

/// The image's config blob, read through index.json and the manifest.
fn image_config(layout: &Path) -> Value {
    let blob = |digest: &Value| -> Value {
        let digest = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(layout.join("blobs/sha256").join(digest)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        TAG
    );
    let manifest = blob(&entry["digest"]);
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    blob(&manifest["config"]["digest"])
}

/// Every regular file under `root`, as absolute paths inside it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let inside = format!("/{}", entry.path().strip_prefix(root).unwrap().display());
            if kind.is_dir() {
                dirs.push(entry.path());
            } else {
                assert!(kind.is_file(), "{inside} is neither file nor directory");
                files.insert(inside);
            }
        }
    }
    files
}

/// The libraries and loader `ldd` names for `binary` (read here independently of the script).
fn ldd_paths(binary: &Path) -> BTreeSet<String> {
    let out = run_ok(Command::new("ldd").arg(binary));
    out.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [path, ..] if path.starts_with('/') => Some(path.to_string()),
                _ => None,
            }
        })
        .collect()
}

fn build_and_unpack(dir: &Path) -> PathBuf {
    let archive = dir.join("image.oci.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image");
    let report = run_ok(
        Command::new(script)
            .arg("--binary")
            .arg(bin())
            .args(["--tag", TAG, "--out"])
            .arg(&archive),
    );
    assert!(
        report.contains("archive") && report.contains("skopeo copy oci-archive:"),
        "{report}"
    );
    let layout = dir.join("layout");
    std::fs::create_dir(&layout).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout),
    );
    let config = image_config(&layout);
    assert_eq!(config["config"]["User"], format!("{USER}:{USER}"));
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/etcd-snapshot"])
    );
    let bundle = dir.join("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{TAG}", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

#[test]
fn the_image_holds_only_the_binary_its_libraries_and_certificates_and_saves_in_a_chroot() {
    if !running_as_root("the image test")
        || require_binary("umoci").is_none()
        || require_binary("strip").is_none()
    {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rootfs = build_and_unpack(dir.path());

    let mut expected: BTreeSet<String> = [
        "/usr/bin/etcd-snapshot",
        "/etc/passwd",
        "/etc/group",
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    .map(String::from)
    .into();
    let libraries = ldd_paths(&bin());
    assert!(
        libraries.iter().any(|l| l.contains("libc.so")),
        "{libraries:?}"
    );
    expected.extend(libraries);
    assert_eq!(files_under(&rootfs), expected);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains(&format!(":x:{USER}:{USER}:")), "{passwd}");

    // A full path: with the environment cleared, Command would not search PATH.
    let chroot_bin = require_binary("chroot").expect("chroot (coreutils)");
    let chroot = |args: &[&str]| {
        let mut cmd = Command::new(&chroot_bin);
        cmd.arg(format!("--userspec={USER}:{USER}"))
            .arg(&rootfs)
            .arg("/usr/bin/etcd-snapshot")
            .args(args)
            .env_clear();
        cmd
    };
    let version = run_ok(&mut chroot(&["--version"]));
    assert_eq!(
        version.trim(),
        format!("etcd-snapshot {}", env!("CARGO_PKG_VERSION"))
    );

    // A data dir the image's user owns, inside the root filesystem (the image itself is
    // read-only in a pod; there this is a mounted volume).
    let data = rootfs.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(USER), Some(USER)).unwrap();
    let no_server = format!("https://127.0.0.1:{}", free_port());
    let saved = run_ok(&mut chroot(&[
        "--data-dir=/data",
        "--node-name=image",
        &format!("--etcd-server={no_server}"),
        &format!("--etcd-endpoints={}", etcd.endpoint),
        "save",
    ]));
    let name = saved
        .trim()
        .strip_prefix("Snapshot ")
        .and_then(|s| s.strip_suffix(" saved."))
        .unwrap_or_else(|| panic!("unexpected output: {saved}"));
    let snapshot = data.join("server/db/snapshots").join(name);
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(
        trailer_verifies(&bytes),
        "{} is not a verified snapshot",
        snapshot.display()
    );
    assert_eq!(std::fs::metadata(&snapshot).unwrap().uid(), USER);
}
