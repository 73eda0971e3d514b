//! `ls` through the real binary with hostile file names in the snapshot dir: the table escapes
//! control characters (one line per snapshot, nothing a terminal would act on), JSON keeps the
//! exact name.

use crate::support::{free_port, run, snapshot_dir, text};

#[test]
fn ls_table_escapes_control_characters_and_json_keeps_the_exact_name() {
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    let name = "ev\x1b[31m\nil\x07\u{202e}-n1-1700000000";
    std::fs::write(dir.join(name), b"x").unwrap();
    std::fs::write(dir.join("on-demand-n1-1700000001"), b"x").unwrap();
    // No server answers: ls runs directly on the snapshot dir.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let ls = |extra: &[&str]| {
        let mut args = vec!["--etcd-server", &dead, "--node-name", "n1", "ls"];
        args.extend_from_slice(extra);
        run(&args, data.path())
    };

    let out = ls(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 3, "header and two rows:\n{stdout}");
    assert!(
        stdout.contains(r"ev\x1b[31m\nil\x07\u{202e}-n1-1700000000 "),
        "{stdout}"
    );
    let raw_controls: Vec<char> = stdout
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}')
        .collect();
    assert!(raw_controls.is_empty(), "{raw_controls:?} in {stdout:?}");

    let out = ls(&["-o", "json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["spec"]["snapshotName"].as_str())
        .collect();
    assert!(names.contains(&name), "{names:?}");
}
