//! Retention policies through the real binary on real snapshot files: `prune --dry-run` gives
//! every snapshot of this node and base a verdict and the deciding rule (as text and as
//! `-o json`), deletes nothing, and a real `prune` then deletes exactly the removed ones. Bad
//! policy values are refused with the key, its source and what was expected.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::{free_port, run, snapshot_dir, snapshot_files, text};

const DAY: i64 = 86_400;

/// Writes the snapshot files and returns their names, newest first: today, yesterday late,
/// yesterday early, five days ago (UTC days, relative to the real clock).
fn seed(dir: &Path) -> Vec<String> {
    let now = chrono::Utc::now().timestamp();
    let today = now.div_euclid(DAY) * DAY;
    let times = [today, today - DAY + 200, today - DAY + 100, today - 5 * DAY];
    let names: Vec<String> = times.iter().map(|t| format!("on-demand-n1-{t}")).collect();
    std::fs::create_dir_all(dir).unwrap();
    for name in &names {
        std::fs::write(dir.join(name), b"snapshot bytes").unwrap();
    }
    // The newest by name is the oldest by mtime: the name decides.
    let file = std::fs::File::options()
        .write(true)
        .open(dir.join(&names[0]))
        .unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    // Another node's snapshot and an unrelated file: no verdict, never deleted.
    std::fs::write(dir.join(format!("on-demand-n2-{}", times[3])), b"x").unwrap();
    std::fs::write(dir.join("README"), b"x").unwrap();
    names
}

const POLICY: &str = "etcd-snapshot-retention-keep-last: 1\n\
                      etcd-snapshot-retention-keep-daily: 3\n\
                      etcd-snapshot-retention-max-age: 72h\n\
                      etcd-snapshot-retention-min-count: 1\n";

#[test]
fn prune_dry_run_gives_every_snapshot_a_verdict_and_prune_applies_it() {
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    let names = seed(&dir);
    let config = data.path().join("config.yaml");
    std::fs::write(&config, POLICY).unwrap();
    let config_arg = format!("--config={}", config.display());
    let dead = format!("--etcd-server=https://127.0.0.1:{}", free_port());
    let prune = |extra: &[&str]| {
        let mut args = vec![
            config_arg.as_str(),
            dead.as_str(),
            "--node-name",
            "n1",
            "prune",
        ];
        args.extend_from_slice(extra);
        run(&args, data.path())
    };
    let before = snapshot_files(&dir);
    let expected = [
        (&names[0], "keep", "keep-last"),
        (&names[1], "keep", "keep-daily"),
        (&names[2], "remove", "not-kept"),
        (&names[3], "remove", "max-age"),
    ];

    let out = prune(&["--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "one line per snapshot of n1:\n{stdout}");
    for ((name, action, rule), line) in expected.iter().zip(&lines) {
        let verb = if *action == "keep" {
            "kept in"
        } else {
            "would be deleted from"
        };
        assert!(
            line.starts_with(&format!(
                "Snapshot {name} {verb} {}",
                dir.join(name).display()
            )),
            "{line}"
        );
        let why = if *rule == "not-kept" {
            "no keep rule keeps it"
        } else {
            rule
        };
        assert!(line.contains(why), "the rule is named: {line}");
    }
    assert!(lines[3].contains("older than max-age 72h"), "{}", lines[3]);
    assert_eq!(snapshot_files(&dir), before, "a dry run deletes nothing");

    let out = prune(&["--dry-run", "-o", "json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let reply: serde_json::Value = serde_json::from_str(&stdout).expect("JSON reply");
    let verdicts = reply["verdicts"].as_array().expect("verdicts");
    let got: Vec<(&str, &str, &str)> = verdicts
        .iter()
        .map(|v| {
            assert_eq!(v["storage"], "local");
            assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
            (
                v["name"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
                v["rule"].as_str().unwrap(),
            )
        })
        .collect();
    let want: Vec<(&str, &str, &str)> = expected
        .iter()
        .map(|(n, a, r)| (n.as_str(), *a, *r))
        .collect();
    assert_eq!(got, want);
    assert_eq!(reply["deleted"], serde_json::json!([&names[3], &names[2]]));
    assert_eq!(snapshot_files(&dir), before, "a dry run deletes nothing");

    let out = prune(&[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let mut left = snapshot_files(&dir);
    left.sort();
    let mut want_left = vec![
        names[0].clone(),
        names[1].clone(),
        format!("on-demand-n2-{}", &names[3]["on-demand-n1-".len()..]),
        "README".to_string(),
    ];
    want_left.sort();
    assert_eq!(left, want_left);
}

#[test]
fn bad_policy_values_name_the_key_the_source_and_the_expectation() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, "etcd-snapshot-retention-max-total-size: lots\n").unwrap();
    let config_arg = format!("--config={}", config.display());
    let out = run(&["config", "validate", &config_arg], data.path());
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("etcd-snapshot-retention-max-total-size"),
        "{stderr}"
    );
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("a size in bytes with an optional unit"),
        "{stderr}"
    );

    let mut cmd = crate::support::command(&["config", "validate"], data.path());
    cmd.env("ETCD_SNAPSHOT_ETCD_S3_RETENTION_KEEP_DAILY", "-1");
    let out = cmd.output().unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("etcd-s3-retention-keep-daily"), "{stderr}");
    assert!(
        stderr.contains("ETCD_SNAPSHOT_ETCD_S3_RETENTION_KEEP_DAILY"),
        "{stderr}"
    );
    assert!(stderr.contains("non-negative integer"), "{stderr}");
}

#[test]
fn ls_warns_once_at_the_end_when_the_newest_snapshot_is_older_than_two_periods() {
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    let now = chrono::Utc::now().timestamp();
    let config = data.path().join("config.yaml");
    // Every 12 hours: two periods are 24 hours.
    std::fs::write(&config, "etcd-snapshot-schedule-cron: \"0 */12 * * *\"\n").unwrap();
    let config_arg = format!("--config={}", config.display());
    let dead = format!("--etcd-server=https://127.0.0.1:{}", free_port());
    let ls = |extra: &[&str]| {
        let mut args = vec![
            config_arg.as_str(),
            dead.as_str(),
            "--node-name",
            "n1",
            "ls",
        ];
        args.extend_from_slice(extra);
        run(&args, data.path())
    };
    let warnings = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.starts_with("warning: the newest snapshot"))
            .count()
    };

    std::fs::write(dir.join(format!("on-demand-n1-{}", now - 3 * DAY)), b"x").unwrap();
    std::fs::write(dir.join(format!("on-demand-n1-{}", now - 2 * DAY)), b"x").unwrap();
    for extra in [&[][..], &["-o", "json"][..]] {
        let out = ls(extra);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert_eq!(warnings(&stderr), 1, "{stderr}");
        let last = stderr.lines().last().unwrap();
        assert!(
            last.starts_with("warning: the newest snapshot"),
            "at the end: {stderr}"
        );
        assert!(
            last.contains("(2d ago)") && last.contains("12h each"),
            "{last}"
        );
        assert!(
            !stdout.contains("warning"),
            "stdout stays parseable: {stdout}"
        );
    }

    // A fresh snapshot: no warning.
    std::fs::write(dir.join(format!("on-demand-n1-{}", now - 3_600)), b"x").unwrap();
    let out = ls(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(warnings(&stderr), 0, "{stderr}");

    // Scheduled snapshots off: no objective, no warning.
    std::fs::write(
        &config,
        "etcd-disable-snapshots: true\netcd-snapshot-schedule-cron: \"* * * * *\"\n",
    )
    .unwrap();
    let out = ls(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(warnings(&stderr), 0, "{stderr}");
}

/// S3 has its own policy; an unset `etcd-s3-retention-*` key takes the local twin's value.
/// `prune --dry-run -o json` reports both stores' verdicts, and `prune` removes what they say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_verdicts_follow_the_s3_policy_and_its_local_fallback() {
    use crate::fakes::s3_support::{S3Server, Tls, write_pattern};
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let now = chrono::Utc::now().timestamp();
    let names: Vec<String> = [now - 3_600, now - 5 * DAY, now - 20 * DAY]
        .iter()
        .map(|t| format!("on-demand-n1-{t}"))
        .collect();
    let seed = tempfile::tempdir().unwrap();
    let store = etcd_snapshot::store::s3::S3Store::connect(&s3.settings("snapshots", "f"))
        .await
        .unwrap();
    let meta = etcd_snapshot::store::s3::ObjectMetadata {
        node_name: "n1".into(),
        ..Default::default()
    };
    for name in &names {
        write_pattern(&seed.path().join(name), 100);
        store
            .upload_file(&seed.path().join(name), name, &meta)
            .await
            .unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let dir = snapshot_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&names[0]), b"x").unwrap();
    std::fs::write(dir.join(&names[2]), b"x").unwrap();
    let config = data.path().join("config.yaml");
    // Local: max-age 240h; S3 keeps the newest 2 by its own count and inherits max-age.
    std::fs::write(
        &config,
        "etcd-snapshot-retention-max-age: 240h\netcd-s3-retention: 2\n",
    )
    .unwrap();
    let mut args = crate::s3::ops::s3_flags(&s3, "snapshots");
    args.extend([
        format!("--config={}", config.display()),
        format!("--etcd-server=https://127.0.0.1:{}", free_port()),
        "--node-name=n1".into(),
        "prune".into(),
    ]);
    let prune = |extra: &[&str]| {
        let mut all = args.clone();
        all.extend(extra.iter().map(|s| s.to_string()));
        let data = data.path().to_path_buf();
        crate::s3::ops::blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run(&refs, &data)
        })
    };

    let out = prune(&["--dry-run", "-o", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let reply: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let got: Vec<(String, String, String, String)> = reply["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let field = |k: &str| v[k].as_str().unwrap().to_string();
            (
                field("storage"),
                field("name"),
                field("action"),
                field("rule"),
            )
        })
        .collect();
    let row = |storage: &str, name: &String, action: &str, rule: &str| {
        (storage.into(), name.clone(), action.into(), rule.into())
    };
    assert_eq!(
        got,
        vec![
            row("local", &names[0], "keep", "retention"),
            row("local", &names[2], "remove", "max-age"),
            row("s3", &names[0], "keep", "retention"),
            row("s3", &names[1], "keep", "retention"),
            row("s3", &names[2], "remove", "retention"),
        ]
    );
    let s3_locations: Vec<&str> = reply["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["storage"] == "s3")
        .filter_map(|v| v["location"].as_str())
        .collect();
    assert_eq!(s3_locations[0], format!("s3://snapshots/f/{}", names[0]));

    // S3 count 0 keeps all by count, but the inherited max-age still removes the oldest.
    std::fs::write(
        &config,
        "etcd-snapshot-retention-max-age: 240h\netcd-s3-retention: 0\n",
    )
    .unwrap();
    let out = prune(&[]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let left: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    assert!(!left.contains(&names[2]), "{left:?}");
    assert!(
        left.contains(&names[0]) && left.contains(&names[1]),
        "{left:?}"
    );
    assert_eq!(snapshot_files(&dir), vec![names[0].clone()]);
}

/// The server exports the freshness gauges: after a save, the newest local snapshot's age;
/// after a drill passed, the newest verified one's; and the schedule's period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_exports_the_age_of_the_newest_snapshot_and_the_schedule_period() {
    let Some(etcd) = crate::support::TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = crate::s3::ops::start_server(
        data.path(),
        &etcd.endpoint,
        &["--etcd-snapshot-schedule-cron=0 */6 * * *"],
    )
    .await;
    let server = std::sync::Arc::new(server);
    let before = crate::support::metrics(&server).await;
    assert!(
        !before.contains("etcd_snapshot_newest_age_seconds{"),
        "no snapshot, no series:\n{before}"
    );
    let srv = server.clone();
    let out = crate::s3::ops::blocking(move || srv.cli(&["save"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let metrics = crate::support::metrics(&server).await;
    let value = |series: &str| -> i64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} in {metrics}"))
            .parse()
            .unwrap()
    };
    let newest = "etcd_snapshot_newest_age_seconds{storage=\"local\"}";
    let age = value(newest);
    assert!((0..120).contains(&age), "{newest} = {age}");
    // Verified means a restore drill passed: none yet, then one after `verify`.
    let verified = "etcd_snapshot_newest_verified_age_seconds{storage=\"local\"}";
    assert!(!metrics.contains(verified), "not drilled yet:\n{metrics}");
    if crate::support::require_binary("etcdutl").is_some() {
        let srv = server.clone();
        let out = crate::s3::ops::blocking(move || srv.cli(&["verify"])).await;
        assert!(out.status.success(), "{:?}", text(&out));
        let metrics = crate::support::metrics(&server).await;
        let age: i64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(verified)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{verified} in {metrics}"))
            .parse()
            .unwrap();
        assert!((0..120).contains(&age), "{verified} = {age}");
    }
    // The scheduler sets the period when it starts; poll (bounded) rather than race it.
    let wanted = format!("etcd_snapshot_schedule_period_seconds {}", 6 * 3_600);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = crate::support::metrics(&server).await;
        if metrics.lines().any(|l| l == wanted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{wanted} in {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
