//! `inspect` on encrypted snapshots: ours (saved by the real binary from a real etcd, encrypted
//! to an `age-keygen` key) and one the reference `age` tool encrypted. With the identity the
//! figures are those of the plaintext (checked against `age -d` then `inspect` of the result);
//! without one that opens the file there is no verdict (exit 2) and the error names the
//! fingerprints needed; an altered or truncated file fails the `decryption` check (exit 1).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::inspect::{check, direct, inspect, load};
use crate::support::{TestEtcd, require_binary, run, text};

/// An `age-keygen` key pair: (identity file, public key).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert!(public.status.success());
    let public = String::from_utf8(public.stdout).unwrap().trim().to_string();
    (path, public)
}

/// The fingerprint listings and errors show for `public`.
pub(crate) fn fingerprint(public: &str) -> String {
    let recipients = etcd_snapshot::crypt::Recipients::parse([public], "test").unwrap();
    recipients.fingerprints()[0].to_string()
}

/// Runs the reference `age` tool; panics naming its output when it fails.
pub(crate) fn age(args: &[&str]) {
    let out = Command::new("age").args(args).output().unwrap();
    assert!(out.status.success(), "age {args:?}: {:?}", text(&out));
}

/// Saves an encrypted snapshot through the binary in direct mode; returns its path.
fn save_encrypted(etcd: &TestEtcd, data: &Path, name: &str, public: &str, zip: bool) -> PathBuf {
    let mut args = direct(etcd);
    args.push(format!("--etcd-snapshot-encryption-recipients={public}"));
    args.extend(["save".into(), "--name".into(), name.into()]);
    if zip {
        args.push("--snapshot-compress".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, data);
    assert!(out.status.success(), "{:?}", text(&out));
    let dir = crate::support::snapshot_dir(data);
    let suffix = if zip { ".zip.age" } else { ".age" };
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("{name}-")) && n.ends_with(suffix)
        })
        .expect("saved encrypted snapshot")
}

fn id_flag(identity: &Path) -> String {
    format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    )
}

fn tools() -> bool {
    require_binary("age").is_some() && require_binary("age-keygen").is_some()
}

#[test]
fn encrypted_snapshots_are_inspected_with_the_identity_and_match_their_plaintext() {
    if !tools() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (identity, public) = keygen(keys.path(), "a.txt");
    load(&etcd, 12, 2);
    for zip in [false, true] {
        let snap = save_encrypted(&etcd, data.path(), &format!("enc{zip}"), &public, zip);
        let path = snap.to_str().unwrap();
        let (out, report) = inspect(path, data.path(), &[&id_flag(&identity)]);
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
        assert_eq!(report["encrypted"], true);
        assert_eq!(
            report["encrypted_to"],
            serde_json::json!([fingerprint(&public)])
        );
        let decryption = check(&report, "decryption");
        assert_eq!(decryption["ok"], true);
        assert!(
            decryption["detail"]
                .as_str()
                .unwrap()
                .contains("matches the one recorded at save"),
            "{decryption}"
        );
        assert_eq!(report["live_keys"], 13);

        // The age tool's plaintext, inspected as a plain file, has the same figures.
        let plain = keys
            .path()
            .join(format!("plain{}", if zip { ".zip" } else { "" }));
        let (i, p) = (identity.to_str().unwrap(), plain.to_str().unwrap());
        age(&["-d", "-i", i, "-o", p, path]);
        let (out, theirs) = inspect(p, data.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
        assert_eq!(theirs["encrypted"], false);
        assert_eq!(report["etcd_status"], theirs["etcd_status"]);
        assert_eq!(report["sha256"], theirs["sha256"]);
        std::fs::remove_file(&plain).unwrap();

        // The table says so too.
        let out = run(&["inspect", &id_flag(&identity), path], data.path());
        let (table, _) = text(&out);
        let line = format!("Encrypted:         yes (age), to {}", fingerprint(&public));
        assert!(table.contains(&line), "{table}");
    }
}

#[test]
fn without_a_matching_identity_inspect_names_the_keys_it_needs_and_exits_2() {
    if !tools() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, public) = keygen(keys.path(), "a.txt");
    let (other, other_public) = keygen(keys.path(), "b.txt");
    load(&etcd, 3, 0);
    let snap = save_encrypted(&etcd, data.path(), "locked", &public, true);
    let path = snap.to_str().unwrap();
    let needed = fingerprint(&public);

    let out = run(&["inspect", path], data.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "no report without a verdict: {stdout}");
    assert!(
        stderr.contains(&needed) && stderr.contains("--etcd-snapshot-encryption-identity-file"),
        "{stderr}"
    );

    let out = run(&["inspect", &id_flag(&other), path], data.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&needed) && stderr.contains(&fingerprint(&other_public)),
        "{stderr}"
    );
    let secret = std::fs::read_to_string(&other).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-"));
    assert!(!stderr.contains(secret.unwrap()), "{stderr}");
}

#[test]
fn altered_or_truncated_ciphertext_fails_the_decryption_check_with_exit_1() {
    if !tools() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (identity, public) = keygen(keys.path(), "a.txt");
    load(&etcd, 20, 0);
    let snap = save_encrypted(&etcd, data.path(), "dmg", &public, false);
    let bytes = std::fs::read(&snap).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x01;
    let cut = bytes[..bytes.len() - 100].to_vec();
    // The header's MAC (after `---`): the file key unwraps, the header does not authenticate.
    let mut header = bytes.clone();
    let mac = bytes.windows(5).position(|w| w == b"\n--- ").unwrap() + 6;
    header[mac] = if header[mac] == b'A' { b'B' } else { b'A' };
    let mut magic = bytes.clone();
    magic[0] = b'A';
    let cases = [
        ("flipped", flipped),
        ("cut", cut),
        ("header", header),
        ("magic", magic),
    ];
    for (what, content) in cases {
        // Outside the snapshot dir: no save record applies to them.
        let path = keys.path().join(format!("{what}.age"));
        std::fs::write(&path, content).unwrap();
        let (out, report) = inspect(path.to_str().unwrap(), data.path(), &[&id_flag(&identity)]);
        assert_eq!(out.status.code(), Some(1), "{what}: {:?}", text(&out));
        assert_eq!(report["encrypted"], true, "{what}");
        let decryption = check(&report, "decryption");
        assert_eq!(decryption["ok"], false, "{what}: {report:#}");
        assert!(report["etcd_status"].is_null(), "{what}: no figures");
    }
}

#[test]
fn a_file_the_age_tool_encrypted_is_inspected_under_any_name() {
    if !tools() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (identity, public) = keygen(keys.path(), "a.txt");
    load(&etcd, 7, 0);
    let plain = crate::inspect::save(&etcd, data.path(), "theirs", false);
    let (out, theirs) = inspect(plain.to_str().unwrap(), data.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // No `.age` suffix: recognised by its header.
    let sealed = keys.path().join("backup.bin");
    let s = sealed.to_str().unwrap();
    age(&["-r", &public, "-o", s, plain.to_str().unwrap()]);
    let (out, report) = inspect(s, data.path(), &[&id_flag(&identity)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(report["encrypted"], true);
    assert_eq!(report["encrypted_to"], serde_json::json!([]));
    assert_eq!(report["etcd_status"], theirs["etcd_status"]);
    let out = run(&["inspect", &id_flag(&identity), s], data.path());
    let (table, _) = text(&out);
    assert!(
        table.contains("Encrypted:         yes (age), to keys not recorded"),
        "{table}"
    );
}
