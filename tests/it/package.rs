//! `scripts/build-deb` builds a Debian package that dpkg-deb reads back with the right control
//! fields, the config as a 0600 conffile, the hardened unit (accepted by `systemd-analyze
//! verify` without a single warning, and rated by `systemd-analyze security`), the man pages
//! and the completions the binary generates, and a binary that runs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{bin, require_binary, text};

fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{cmd:?} failed: {stdout}{stderr}");
    (stdout, stderr)
}

fn build_deb(dir: &Path) -> PathBuf {
    let deb = dir.join("etcd-snapshot.deb");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    run_ok(
        Command::new(script)
            .arg("--binary")
            .arg(bin())
            .args(["--compression", "none", "--out"])
            .arg(&deb),
    );
    deb
}

/// The control file's fields (continuation lines joined).
fn control_fields(deb: &Path) -> BTreeMap<String, String> {
    let (control, _) = run_ok(Command::new("dpkg-deb").arg("--field").arg(deb));
    let mut fields = BTreeMap::new();
    let mut last = String::new();
    for line in control.lines() {
        if line.starts_with(' ') {
            fields
                .entry(last.clone())
                .and_modify(|v: &mut String| v.push_str(line));
        } else if let Some((key, value)) = line.split_once(": ") {
            last = key.to_string();
            fields.insert(key.to_string(), value.to_string());
        }
    }
    fields
}

fn repo_file(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_deb_holds_the_binary_unit_conffile_man_pages_and_completions() {
    for tool in ["dpkg-deb", "strip", "objdump", "gzip"] {
        if require_binary(tool).is_none() {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());

    let fields = control_fields(&deb);
    assert_eq!(fields["Package"], "etcd-snapshot");
    assert_eq!(
        fields["Version"],
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert!(fields["Depends"].starts_with("libc6 (>= 2."), "{fields:?}");
    assert!(fields["Description"].contains("systemctl enable --now etcd-snapshot"));

    let (info, _) = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for script in ["conffiles", "postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in {info}");
    }
    let control_dir = dir.path().join("control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(&control_dir),
    );
    assert_eq!(
        std::fs::read_to_string(control_dir.join("conffiles")).unwrap(),
        "/etc/etcd-snapshot/config.yaml\n"
    );

    // Every file root-owned; the config private.
    let (contents, _) = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for line in contents.lines() {
        assert!(line.contains(" root/root "), "not root-owned: {line}");
    }
    let config_line = contents
        .lines()
        .find(|l| l.ends_with("./etc/etcd-snapshot/config.yaml"))
        .expect("config.yaml in the package");
    assert!(config_line.starts_with("-rw------- "), "{config_line}");

    let root = dir.path().join("root");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&deb)
            .arg(&root),
    );
    check_files(&root);
    check_unit(&root, dir.path());
}

fn check_files(root: &Path) {
    let packaged = root.join("usr/bin/etcd-snapshot");
    let (version, _) = run_ok(Command::new(&packaged).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("etcd-snapshot {}", env!("CARGO_PKG_VERSION"))
    );
    let config = root.join("etc/etcd-snapshot/config.yaml");
    assert_eq!(
        std::fs::read(&config).unwrap(),
        repo_file("examples/config.yaml")
    );
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(root.join("lib/systemd/system/etcd-snapshot.service")).unwrap(),
        repo_file("examples/etcd-snapshot.service")
    );
    let completions = [
        (
            "bash",
            "usr/share/bash-completion/completions/etcd-snapshot",
        ),
        ("zsh", "usr/share/zsh/vendor-completions/_etcd-snapshot"),
        (
            "fish",
            "usr/share/fish/vendor_completions.d/etcd-snapshot.fish",
        ),
    ];
    for (shell, path) in completions {
        let (script, _) = run_ok(Command::new(bin()).args(["completions", shell]));
        assert_eq!(
            std::fs::read_to_string(root.join(path)).unwrap(),
            script,
            "{path}"
        );
    }
    // One gzipped page per visible command, each the binary's own page.
    let pages = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(bin())
            .args(["man", "--out-dir"])
            .arg(pages.path()),
    );
    let man1 = root.join("usr/share/man/man1");
    let mut packaged_pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    packaged_pages.sort();
    let mut expected: Vec<String> = std::fs::read_dir(pages.path())
        .unwrap()
        .map(|e| format!("{}.gz", e.unwrap().file_name().into_string().unwrap()))
        .collect();
    expected.sort();
    assert_eq!(packaged_pages, expected);
    assert!(packaged_pages.contains(&"etcd-snapshot.1.gz".to_string()));
    for page in &packaged_pages {
        let (roff, _) = run_ok(Command::new("gzip").arg("-dc").arg(man1.join(page)));
        let original = std::fs::read_to_string(pages.path().join(page.trim_end_matches(".gz")));
        assert_eq!(roff, original.unwrap(), "{page}");
    }
    let copyright = root.join("usr/share/doc/etcd-snapshot/copyright");
    assert!(
        std::fs::read_to_string(copyright)
            .unwrap()
            .contains("License: Apache-2.0")
    );
}

/// `systemd-analyze verify` with no output at all (unknown keys and bad values are only
/// warnings there), the binary and man pages resolved inside the package; and the unit's
/// `systemd-analyze security` exposure stays low.
fn check_unit(root: &Path, scratch: &Path) {
    let Some(analyze) = require_binary("systemd-analyze") else {
        return;
    };
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/etcd-snapshot.service")).unwrap();
    let exec = "ExecStart=/usr/bin/etcd-snapshot ";
    assert_eq!(unit.matches(exec).count(), 1, "{unit}");
    // The package is extracted, not installed: point ExecStart at its binary.
    let relocated = unit.replace(
        exec,
        &format!("ExecStart={}/usr/bin/etcd-snapshot ", root.display()),
    );
    let units = scratch.join("units");
    std::fs::create_dir(&units).unwrap();
    let copy = units.join("etcd-snapshot.service");
    std::fs::write(&copy, relocated).unwrap();
    let (stdout, stderr) = run_ok(
        Command::new(&analyze)
            .env("MANPATH", root.join("usr/share/man"))
            .arg("verify")
            .arg(&copy),
    );
    assert_eq!(
        format!("{stdout}{stderr}"),
        "",
        "systemd-analyze verify is not silent"
    );

    let (report, _) = run_ok(
        Command::new(&analyze)
            .args(["security", "--offline=yes"])
            .arg(&copy),
    );
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for etcd-snapshot.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {report}"));
    assert!(
        level <= 2.5,
        "exposure {level} (systemd's scale: 0 safe .. 10 unsafe)\n{report}"
    );
}
