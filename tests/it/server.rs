//! The server as an operator runs it: scheduled snapshots and retention, hot reload, the embedded
//! etcd default, shutdown while a snapshot runs, crash safety and startup validation.

use std::path::Path;
use std::time::Duration;

use crate::support::{
    TestEtcd, TestServer, fill_etcd, free_port, process_alive, require_binary, run, signal,
    snapshot_dir, snapshot_files, text, trailer_verifies, wait_for,
};

fn scheduled(dir: &Path) -> Vec<String> {
    snapshot_files(dir)
        .into_iter()
        .filter(|n| n.starts_with("etcd-snapshot-n1-"))
        .collect()
}

#[test]
fn per_second_schedule_with_retention_touches_only_its_own_files() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    // Files retention must never touch: other prefixes, another node, temp files, strangers.
    let bystanders = [
        "etcd-snapshot-weekly-n1-1000",
        "etcd-snapshot-n2-1000",
        "etcd-snapshot-n2-2000.part",
        "on-demand-n1-1000",
        "notes.txt",
    ];
    for name in bystanders {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    let _server = TestServer::start(
        data.path(),
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-snapshot-schedule-cron",
            "* * * * * *",
            "--etcd-snapshot-retention",
            "2",
        ],
    );
    wait_for("two scheduled snapshots", Duration::from_secs(20), || {
        scheduled(&dir).len() >= 2
    });
    let first_seen = scheduled(&dir);
    wait_for(
        "retention to rotate the snapshots",
        Duration::from_secs(20),
        || {
            let now = scheduled(&dir);
            now.len() == 2 && now.iter().all(|n| !first_seen.contains(n))
        },
    );
    for name in bystanders {
        assert!(dir.join(name).exists(), "retention deleted {name}");
    }
}

#[test]
fn schedule_is_hot_reloaded_from_the_config_file() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    let write = |body: &str| std::fs::write(&config, body).unwrap();
    write(&format!(
        "etcd-endpoints: {}\netcd-snapshot-schedule-cron: \"0 0 1 1 *\"\n",
        etcd.endpoint
    ));
    let config_arg = config.to_string_lossy().into_owned();
    let server = TestServer::start(data.path(), &["--config", &config_arg]);
    let dir = snapshot_dir(data.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(scheduled(&dir).is_empty(), "yearly schedule must not fire");
    write(&format!(
        "etcd-endpoints: {}\netcd-snapshot-schedule-cron: \"* * * * * *\"\n",
        etcd.endpoint
    ));
    wait_for(
        "a snapshot after the schedule edit",
        Duration::from_secs(20),
        || !scheduled(&dir).is_empty(),
    );
    // An invalid edit is reported and the last good config stays in force.
    write("etcd-snapshot-schedule-cron: \"every tuesday\"\n");
    wait_for(
        "the invalid edit to be reported",
        Duration::from_secs(20),
        || server.log_text().contains("every tuesday"),
    );
    let count = scheduled(&dir).len();
    wait_for("snapshots to continue", Duration::from_secs(20), || {
        scheduled(&dir).len() > count
    });
}

#[test]
fn embedded_etcd_default_serves_snapshots_and_stops_with_the_server() {
    let Some(_) = require_binary("etcd") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let client = format!("127.0.0.1:{}", free_port());
    let peer = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::start(
        data.path(),
        &[
            "--etcd-client-address",
            &client,
            "--etcd-peer-address",
            &peer,
        ],
    );
    let out = server.cli(&["save"]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{stdout}{stderr}\n{}",
        server.log_text()
    );
    assert!(
        data.path().join("server/db/etcd/member").is_dir(),
        "etcd data lives under the data dir"
    );
    let token = std::fs::read_to_string(data.path().join("server/token")).unwrap();
    assert!(token.trim().len() >= 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(data.path().join("server/token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let etcd_pids = pids_listening_on(&client);
    let status = server.terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        server.log_text()
    );
    for pid in etcd_pids {
        assert!(
            !process_alive(pid),
            "embedded etcd {pid} outlived the server"
        );
    }
    assert!(
        std::net::TcpStream::connect(&client).is_err(),
        "nothing listens on the etcd port any more"
    );
}

/// Pids of processes whose command line names `address` (the embedded etcd).
fn pids_listening_on(address: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let is_etcd = cmdline.starts_with("etcd\0") || cmdline.contains("/etcd\0");
        if is_etcd && cmdline.contains(address) {
            pids.push(pid);
        }
    }
    assert!(!pids.is_empty(), "found the embedded etcd process");
    pids
}

/// A server over a ~48 MiB etcd with a CLI save that has started writing; etcd is left paused
/// (SIGSTOP) so the save is certainly still running. Resume with `signal(etcd.pid(), "CONT")`.
struct SaveInFlight {
    etcd: TestEtcd,
    data: tempfile::TempDir,
    server: TestServer,
    save: Option<std::process::Child>,
}

impl SaveInFlight {
    fn start() -> Option<Self> {
        let etcd = TestEtcd::start()?;
        fill_etcd(&etcd.endpoint, 48);
        let data = tempfile::tempdir().unwrap();
        let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
        let url = server.url();
        let save = crate::support::command(
            &["--etcd-server", &url, "--node-name", "n1", "save"],
            data.path(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let dir = snapshot_dir(data.path());
        wait_for("the save to start writing", Duration::from_secs(20), || {
            has_part_file(&dir)
        });
        signal(etcd.pid(), "STOP");
        Some(Self {
            etcd,
            data,
            server,
            save: Some(save),
        })
    }

    /// Asserts exactly one complete, verified snapshot is in the dir.
    fn assert_one_verified_snapshot(&self) {
        let dir = snapshot_dir(self.data.path());
        let files = snapshot_files(&dir);
        assert_eq!(files.len(), 1, "{files:?}\n{}", self.server.log_text());
        assert!(trailer_verifies(
            &std::fs::read(dir.join(&files[0])).unwrap()
        ));
    }
}

#[test]
fn sigterm_lets_a_running_snapshot_finish() {
    let Some(mut flight) = SaveInFlight::start() else {
        return;
    };
    signal(flight.server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(700));
    let still_running = flight
        .server
        .child
        .as_mut()
        .unwrap()
        .try_wait()
        .unwrap()
        .is_none();
    signal(flight.etcd.pid(), "CONT");
    assert!(
        still_running,
        "the server must wait for the running snapshot"
    );
    let status = flight.server.wait_exit();
    assert!(status.success(), "{}", flight.server.log_text());
    let out = flight.save.take().unwrap().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the in-flight save completed: {:?}",
        text(&out)
    );
    flight.assert_one_verified_snapshot();
}

#[test]
fn a_save_survives_its_client_going_away() {
    let Some(mut flight) = SaveInFlight::start() else {
        return;
    };
    let mut save = flight.save.take().unwrap();
    signal(save.id(), "KILL");
    let _ = save.wait();
    std::thread::sleep(Duration::from_millis(300));
    signal(flight.etcd.pid(), "CONT");
    let dir = snapshot_dir(flight.data.path());
    wait_for(
        "the accepted save to complete anyway",
        Duration::from_secs(30),
        || snapshot_files(&dir).len() == 1,
    );
    flight.assert_one_verified_snapshot();
}

/// A temp file in the work dir beside the snapshot dir `dir`.
fn has_part_file(dir: &Path) -> bool {
    std::fs::read_dir(dir.parent().unwrap().join(".etcd-snapshot"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
        })
        .unwrap_or(false)
}

#[test]
fn kill_9_during_a_save_leaves_no_partial_snapshot() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    fill_etcd(&etcd.endpoint, 96);
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    let url = format!("https://127.0.0.1:{}", free_port());
    let args = [
        "--etcd-server",
        url.as_str(),
        "--node-name",
        "n1",
        "--etcd-endpoints",
        etcd.endpoint.as_str(),
        "save",
    ];
    let mut save = crate::support::command(&args, data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the save to start writing", Duration::from_secs(20), || {
        has_part_file(&dir)
    });
    signal(save.id(), "KILL");
    let _ = save.wait();
    assert!(
        snapshot_files(&dir).is_empty(),
        "no snapshot appears from a killed save: {:?}",
        snapshot_files(&dir)
    );
    let ls = run(
        &["--etcd-server", &url, "--node-name", "n1", "ls"],
        data.path(),
    );
    assert_eq!(
        text(&ls).0.lines().count(),
        1,
        "ls shows only the header: {:?}",
        text(&ls)
    );
    // The next server start cleans the leftover temp file.
    let _server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    assert!(!has_part_file(&dir), "startup removes leftover temp files");
}

#[test]
fn invalid_cron_is_a_startup_error_naming_key_value_and_source() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "server",
            "--etcd-snapshot-schedule-cron",
            "0 */12 * *",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
        ],
        data.path(),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("etcd-snapshot-schedule-cron")
            && stderr.contains("0 */12 * *")
            && stderr.contains("flag"),
        "{stderr}"
    );
}

#[test]
fn config_validate_lists_every_problem_at_once() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention: -3\netcd-snapshot-schedule-cron: nope\netcd-snapshot-retension: 4\n").unwrap();
    let out = run(
        &["--config", &config.to_string_lossy(), "config", "validate"],
        data.path(),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("etcd-snapshot-retention") && stderr.contains("-3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("etcd-snapshot-schedule-cron") && stderr.contains("nope"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean"),
        "unknown key gets a suggestion: {stderr}"
    );
}

#[test]
fn config_show_reports_precedence_and_redacts_secrets() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention: 7\netcd-snapshot-name: from-file\nnode-name: file-node\ntoken: supersecret\n").unwrap();
    let dropins = data.path().join("config.yaml.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-a.yaml"),
        "etcd-snapshot-name: from-dropin\netcd-snapshot-compress: true\n",
    )
    .unwrap();
    let out = crate::support::command(
        &[
            "--config",
            &config.to_string_lossy(),
            "config",
            "show",
            "--sources",
        ],
        data.path(),
    )
    .env("ETCD_SNAPSHOT_ETCD_SNAPSHOT_COMPRESS", "false")
    .env("ETCD_SNAPSHOT_NODE_NAME", "env-node")
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
            .to_string()
    };
    assert!(
        line("etcd-snapshot-retention").contains('7')
            && line("etcd-snapshot-retention").contains("config file")
    );
    assert!(
        line("etcd-snapshot-name").contains("from-dropin")
            && line("etcd-snapshot-name").contains("drop-in")
    );
    assert!(
        line("etcd-snapshot-compress").contains("false")
            && line("etcd-snapshot-compress").contains("ETCD_SNAPSHOT_ETCD_SNAPSHOT_COMPRESS")
    );
    assert!(line("node-name").contains("env-node"));
    assert!(line("data-dir").contains("flag"));
    assert!(
        !stdout.contains("supersecret") && line("token").contains("redacted"),
        "{stdout}"
    );
}
