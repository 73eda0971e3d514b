//! Passphrase encryption (age's scrypt recipient) with the reference `age` tool, which reads a
//! passphrase only from a terminal: `script` gives it one and types the passphrase. A snapshot
//! saved with `--etcd-snapshot-encryption-passphrase-file` decrypts with `age -d`; a file
//! `age -p` encrypted inspects here with the same passphrase file; a wrong one gives no verdict.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::inspect::{check, direct, inspect, load};
use crate::support::{TestEtcd, require_binary, run, snapshot_dir, text};

const PASSPHRASE: &str = "correct horse battery staple";

/// Runs `age args` in a pseudo-terminal, typing `PASSPHRASE` at each prompt (`prompts` times).
fn age_in_tty(args: &str, prompts: usize) -> bool {
    let mut child = Command::new("script")
        .args(["-qec", &format!("age {args}"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let typed = format!("{PASSPHRASE}\n").repeat(prompts);
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), typed.as_bytes()).unwrap();
    drop(child.stdin.take());
    child.wait().unwrap().success()
}

fn passphrase_flag(path: &Path) -> String {
    format!(
        "--etcd-snapshot-encryption-passphrase-file={}",
        path.display()
    )
}

#[test]
fn a_passphrase_snapshot_opens_with_age_and_an_age_passphrase_file_inspects_here() {
    if require_binary("age").is_none() || require_binary("script").is_none() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let phrase = keys.path().join("passphrase.txt");
    std::fs::write(&phrase, format!("{PASSPHRASE}\n")).unwrap();
    load(&etcd, 6, 0);
    let mut args = direct(&etcd);
    args.extend([passphrase_flag(&phrase), "save".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, data.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let snap = std::fs::read_dir(snapshot_dir(data.path()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".age"))
        .expect("an encrypted snapshot");
    let bytes = std::fs::read(&snap).unwrap();
    assert!(
        bytes.windows(9).any(|w| w == b"-> scrypt"),
        "a scrypt stanza"
    );

    // The age tool opens it with the passphrase; the result is the snapshot (trailer verifies).
    let plain = keys.path().join("plain.db");
    let opened = age_in_tty(&format!("-d -o {} {}", plain.display(), snap.display()), 1);
    assert!(opened, "age -d with the passphrase");
    assert!(crate::support::trailer_verifies(
        &std::fs::read(&plain).unwrap()
    ));

    // Ours, inspected with the passphrase file: the fingerprint is the word scrypt.
    let flag = passphrase_flag(&phrase);
    let (out, report) = inspect(snap.to_str().unwrap(), data.path(), &[&flag]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(report["encrypted_to"], serde_json::json!(["scrypt"]));
    assert_eq!(check(&report, "decryption")["ok"], true);

    // A file `age -p` encrypted (its own work factor) inspects with the same passphrase file.
    let theirs = keys.path().join("theirs.age");
    let sealed = age_in_tty(
        &format!("-p -o {} {}", theirs.display(), plain.display()),
        2,
    );
    assert!(sealed, "age -p");
    let (out, report) = inspect(theirs.to_str().unwrap(), data.path(), &[&flag]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(report["encrypted"], true);

    // A wrong passphrase: no verdict, and the passphrase is never shown.
    let wrong = keys.path().join("wrong.txt");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let (out, _) = inspect(
        snap.to_str().unwrap(),
        data.path(),
        &[&passphrase_flag(&wrong)],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("scrypt"), "{stderr}");
    assert!(!stderr.contains("not the passphrase") && !stderr.contains(PASSPHRASE));
}
