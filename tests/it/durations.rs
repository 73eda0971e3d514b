//! Out-of-range durations are configuration errors, never panics: `config validate` through
//! the real binary for every duration-valued key (and `@every` schedules), and a hot reload of
//! such a value on a running server, whose watcher must stay alive and apply the next edit.

use std::time::Duration;

use etcd_snapshot::config::keys::{self, Kind};

use crate::support::{TestEtcd, TestServer, run, snapshot_dir, snapshot_files, text, wait_for};

const HUGE: &str = "99999999999999999999h";
const RANGE: &str = "out of range (at most 2562047h47m16.854775807s)";

/// `config validate` on a config file holding `body`: (exit code, stderr).
fn validate(body: &str) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, body).unwrap();
    let config = config.to_str().unwrap().to_string();
    let out = run(&["config", "validate", "--config", &config], data.path());
    (out.status.code(), text(&out).1)
}

#[test]
fn config_validate_refuses_every_out_of_range_duration_with_a_usage_error() {
    let duration_keys: Vec<&str> = keys::all()
        .iter()
        .filter(|spec| spec.kind == Kind::Duration && spec.in_file)
        .map(|spec| spec.name)
        .collect();
    assert!(
        duration_keys.contains(&"etcd-s3-timeout"),
        "{duration_keys:?}"
    );
    for key in duration_keys {
        for value in [HUGE, "2562048h", "1e3s"] {
            let (code, stderr) = validate(&format!("{key}: {value}\n"));
            assert_eq!(code, Some(2), "{key}: {value}\n{stderr}");
            assert!(
                stderr.contains(key) && stderr.contains("config file"),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        let (code, stderr) = validate(&format!("{key}: {HUGE}\n"));
        assert!(code == Some(2) && stderr.contains(RANGE), "{stderr}");
        let (code, stderr) = validate(&format!("{key}: 2562047h\n"));
        assert_eq!(code, Some(0), "the largest Go duration is valid: {stderr}");
    }
    let (code, stderr) = validate(&format!("etcd-snapshot-schedule-cron: \"@every {HUGE}\"\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("etcd-snapshot-schedule-cron") && stderr.contains(RANGE));
}

#[test]
fn a_hot_reload_with_an_out_of_range_duration_keeps_the_watcher_alive() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    let write = |body: &str| std::fs::write(&config, body).unwrap();
    let base = format!(
        "etcd-endpoints: {}\netcd-snapshot-schedule-cron: \"0 0 1 1 *\"\n",
        etcd.endpoint
    );
    write(&base);
    let config_arg = config.to_string_lossy().into_owned();
    let server = TestServer::start(data.path(), &["--config", &config_arg]);
    write(&format!(
        "{base}etcd-snapshot-reconcile-interval: {HUGE}\netcd-s3-timeout: {HUGE}\n"
    ));
    wait_for(
        "the out-of-range edit to be reported",
        Duration::from_secs(20),
        || server.log_text().contains(RANGE),
    );
    // The watcher still runs: the next edit is applied.
    write(&format!(
        "etcd-endpoints: {}\netcd-snapshot-schedule-cron: \"* * * * * *\"\n",
        etcd.endpoint
    ));
    let dir = snapshot_dir(data.path());
    wait_for(
        "a scheduled snapshot after the next edit",
        Duration::from_secs(20),
        || !snapshot_files(&dir).is_empty(),
    );
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
