//! `--progress` through the real binary: `json` gives well-formed, monotone events that end at
//! the total, for a direct-mode save against real etcd and for a restore of the snapshot it
//! wrote; without the flag a run whose stderr is not a terminal prints nothing more than with
//! `--progress=none`; in a pseudo-terminal (util-linux `script`) the default draws a bar.
//! Uploads and downloads are in `progress_s3.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::cluster_reset::Node;
use crate::s3_ops::{created_name, direct};
use crate::support::{TestEtcd, bin, fill_etcd, require_binary, snapshot_dir, text};

/// The progress events of `operation` on stderr, checked for shape and order; panics on any
/// malformed or out-of-order event. Returns (total, events).
pub(crate) fn events(stderr: &str, operation: &str) -> (u64, Vec<Value>) {
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with("{\"event\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e: &Value| e["operation"] == operation)
        .collect();
    assert!(events.len() >= 2, "start and finish expected:\n{stderr}");
    assert_eq!(events[0]["event"], "start", "{events:?}");
    assert_eq!(events[0]["bytes"], 0);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finish", "{events:?}");
    assert_eq!(last["ok"], true, "{events:?}");
    let (mut bytes, mut elapsed) = (0, 0);
    for event in &events {
        assert!(event["name"].as_str().is_some_and(|n| !n.is_empty()));
        let now = event["bytes"].as_u64().expect("bytes");
        let at = event["elapsed_ms"].as_u64().expect("elapsed_ms");
        assert!(now >= bytes && at >= elapsed, "not monotone: {events:?}");
        if let Some(total) = event["total"].as_u64() {
            assert!(now <= total, "past the total: {events:?}");
        }
        (bytes, elapsed) = (now, at);
    }
    let total = last["total"].as_u64().expect("finish total");
    assert_eq!(bytes, total, "the last event ends at the total: {events:?}");
    // An upload streamed beside the save starts without a total (`null`); any announced one
    // must be the real one.
    if !events[0]["total"].is_null() {
        assert_eq!(
            events[0]["total"].as_u64(),
            Some(total),
            "the announced total is the real one: {events:?}"
        );
    }
    (total, events)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_save_events_are_monotone_and_end_at_the_file_size() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let args = ["--progress=json", "save"].map(String::from).to_vec();
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let name = created_name(&out);
    let (total, events) = events(&stderr, "save");
    assert_eq!(events[0]["name"], name.as_str());
    assert_eq!(total, file_len(&snapshot_dir(data.path()).join(&name)));
}

/// stderr without what differs between two saves: log timestamps and checksums.
fn normalize(stderr: &str) -> String {
    let mut out = String::new();
    for line in stderr.lines() {
        let line = match line.split_once(' ') {
            Some((time, rest)) if time.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => line,
        };
        let line = line.split(" sha256=").next().unwrap_or(line);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_or_the_flag_nothing_extra_is_printed() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut stderrs = Vec::new();
    for (base, flag) in [("a", None), ("b", Some("--progress=none"))] {
        let mut args = vec!["save".to_string(), format!("--name={base}")];
        args.extend(flag.map(String::from));
        let out = direct(data.path(), &etcd.endpoint, args).await;
        let (_, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        let name = created_name(&out);
        stderrs.push(normalize(&stderr.replace(&name, "<snapshot>")));
    }
    assert_eq!(stderrs[0], stderrs[1]);
    assert!(!stderrs[0].contains("\"event\""), "{}", stderrs[0]);
    assert!(!stderrs[0].contains('\x1b'), "{}", stderrs[0]);
}

#[test]
fn json_restore_events_end_at_the_database_size() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    let snapshot = node.save(&server, false);
    assert!(server.terminate().success());
    let out = node.restore(&["--progress=json", snapshot.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (total, _) = events(&stderr, "restore");
    // The database without etcd's 32-byte SHA-256 trailer.
    assert_eq!(total, file_len(&snapshot) - 32);
}

fn quoted(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A direct-mode `save` whose stdin, stdout and stderr are a pseudo-terminal: util-linux
/// `script` runs it and copies everything the terminal showed to its own stdout.
fn save_in_a_terminal(script: &Path, data: &Path, etcd: &str) -> Output {
    let dead_server = format!("https://127.0.0.1:{}", crate::support::free_port());
    let endpoints = format!("--etcd-endpoints={etcd}");
    let data_dir = data.display().to_string();
    let binary = bin().display().to_string();
    let line = [
        binary.as_str(),
        "--data-dir",
        &data_dir,
        "--etcd-server",
        &dead_server,
        "--node-name",
        "n1",
        &endpoints,
        "save",
    ]
    .map(quoted)
    .join(" ");
    let mut cmd = Command::new(script);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCD_SNAPSHOT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCD_SNAPSHOT_CONFIG", data.join("absent-config.yaml"))
        .env("TERM", "xterm")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_a_bar_and_tty_forces_one_into_a_pipe() {
    let (Some(script), Some(etcd)) = (require_binary("script"), TestEtcd::start()) else {
        return;
    };
    // Big enough that the save takes several redraws.
    let endpoint = etcd.endpoint.clone();
    crate::s3_ops::blocking(move || fill_etcd(&endpoint, 16)).await;
    let data = tempfile::tempdir().unwrap();
    let (dir, endpoint) = (data.path().to_path_buf(), etcd.endpoint.clone());
    let out = crate::s3_ops::blocking(move || save_in_a_terminal(&script, &dir, &endpoint)).await;
    let (shown, stderr) = text(&out);
    assert!(out.status.success(), "{shown}\n{stderr}");
    let name = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("Snapshot ")?.strip_suffix(" saved."))
        .unwrap_or_else(|| panic!("no saved line: {shown}"));
    let bar = format!("saving {name} [");
    assert!(shown.contains(&bar), "no bar in the terminal: {shown:?}");
    assert!(shown.contains(" ETA "), "no ETA: {shown:?}");
    assert!(
        shown.contains("MiB/s") || shown.contains("KiB/s"),
        "no rate: {shown:?}"
    );
    assert!(!shown.contains("\"event\""), "{shown:?}");

    let args = ["--progress=tty", "save"].map(String::from).to_vec();
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let name = created_name(&out);
    assert!(stderr.contains(&format!("saving {name} [")), "{stderr:?}");
}
