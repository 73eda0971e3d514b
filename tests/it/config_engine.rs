//! Integration tests: the config engine end to end through the library, with real files in temp
//! dirs, an explicit environment and flags from `cli::parse`.

use std::path::{Path, PathBuf};

use etcd_snapshot::cli;
use etcd_snapshot::config::{ConfigEngine, Layer, RawValue, Source, show};

/// A config file and its drop-in dir in a fresh temp dir.
struct Files {
    _dir: tempfile::TempDir,
    config: PathBuf,
    drop_ins: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        let drop_ins = dir.path().join("config.yaml.d");
        Files {
            _dir: dir,
            config,
            drop_ins,
        }
    }

    fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    fn write_drop_in(&self, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(&self.drop_ins).expect("mkdir drop-ins");
        let path = self.drop_ins.join(name);
        std::fs::write(&path, text).expect("write drop-in");
        path
    }

    fn config_arg(&self) -> String {
        format!("--config={}", self.config.display())
    }
}

fn flags(args: &[&str]) -> Layer {
    let mut argv = vec!["etcd-snapshot"];
    argv.extend_from_slice(args);
    cli::parse(argv).expect("valid command line").flags
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shown(resolved: &etcd_snapshot::config::Resolved, key: &str) -> (String, Source) {
    let v = resolved
        .shown
        .iter()
        .find(|v| v.key == key)
        .expect("every key is shown");
    (v.value.clone(), v.source.clone())
}

#[test]
fn precedence_from_defaults_to_request() {
    let files = Files::new();
    let config_arg = files.config_arg();
    let retention_env = ("ETCD_SNAPSHOT_ETCD_SNAPSHOT_RETENTION", "4");
    let mut request = Layer::new();
    request.set("etcd-snapshot-retention", RawValue::Int(6), Source::Request);

    // Each stage adds the next layer up; the retention it sets must win, with its source.
    let stages: [(&str, Source); 6] = [
        ("5", Source::Default),
        ("1", Source::File(files.config.clone())),
        ("3", Source::DropIn(files.drop_ins.join("20-b.yaml"))),
        ("4", Source::Env(retention_env.0.into())),
        ("2", Source::Flag("--snapshot-retention".into())),
        ("6", Source::Request),
    ];
    for (stage, (want, want_source)) in stages.iter().enumerate() {
        if stage >= 1 {
            files.write_config("etcd-snapshot-retention: 1\netcd-snapshot-compress: true\n");
        }
        if stage >= 2 {
            files.write_drop_in("10-a.yaml", "etcd-snapshot-retention: 2\n");
            files.write_drop_in("20-b.yaml", "snapshot-retention: 3\n");
        }
        let environment = if stage >= 3 {
            env(&[retention_env])
        } else {
            Vec::new()
        };
        let mut args = vec![config_arg.as_str(), "save"];
        if stage >= 4 {
            args.extend([
                "--snapshot-retention",
                "2",
                "--etcd-snapshot-compress=false",
            ]);
        }
        let engine = ConfigEngine::with_env(flags(&args), environment);
        let req = (stage >= 5).then_some(&request);
        let resolved = engine
            .evaluate(req)
            .unwrap_or_else(|e| panic!("stage {stage}: {e}"));
        assert_eq!(
            shown(&resolved, "etcd-snapshot-retention"),
            (want.to_string(), want_source.clone()),
            "stage {stage}"
        );
        assert_eq!(
            resolved.config.snapshot.retention.to_string(),
            *want,
            "stage {stage}"
        );
        // The file's `true` holds until the flag's explicit `false`.
        assert_eq!(
            resolved.config.snapshot.compress,
            (1..4).contains(&stage),
            "stage {stage}"
        );
    }
}

#[test]
fn rke2_config_file_loads_with_warnings_for_other_components_keys() {
    let files = Files::new();
    files.write_config(
        "token: my-shared-secret\n\
         tls-san:\n  - my-kubernetes-domain.com\n  - another-kubernetes-domain.com\n\
         cni: canal\n\
         write-kubeconfig-mode: \"0644\"\n\
         node-label:\n  - foo=bar\n\
         etcd-snapshot-schedule-cron: \"0 */5 * * *\"\n\
         etcd-snapshot-retention: 10\n\
         etcd-snapshot-dir: /opt/backups\n",
    );
    let engine = ConfigEngine::with_env(flags(&[&files.config_arg(), "server"]), Vec::new());
    let validation = engine.validate();
    let resolved = validation.outcome.as_ref().expect("loads");
    let c = &resolved.config;
    assert_eq!(c.snapshot.schedule.spec(), "0 */5 * * *");
    assert_eq!(c.snapshot.retention, 10);
    assert_eq!(c.snapshot.dir, PathBuf::from("/opt/backups"));
    assert!(!c.snapshot.dir_is_default);
    assert!(c.token.is_some());
    // RKE2's tls-san is ours too: the names go on the API certificate.
    assert_eq!(
        c.api.tls_san,
        ["my-kubernetes-domain.com", "another-kubernetes-domain.com"]
    );
    let mut unknown: Vec<&str> = validation
        .warnings
        .iter()
        .map(|w| w.split('"').nth(1).expect("key quoted in warning"))
        .collect();
    unknown.sort();
    assert_eq!(unknown, ["cni", "node-label", "write-kubeconfig-mode"]);
    assert!(
        validation
            .warnings
            .iter()
            .all(|w| w.starts_with("unknown key"))
    );
    assert_eq!(resolved.warnings, validation.warnings);
    let rendered = show::render(resolved, false);
    assert!(!rendered.contains("my-shared-secret"));
}

#[test]
fn drop_ins_apply_in_lexical_order_and_ignore_other_files() {
    let files = Files::new();
    files.write_config("etcd-snapshot-name: from-config\n");
    files.write_drop_in("20-late.yml", "etcd-snapshot-name: from-20\n");
    let early = files.write_drop_in(
        "10-early.yaml",
        "etcd-snapshot-name: from-10\nname: od-10\n",
    );
    files.write_drop_in("99-notes.txt", "etcd-snapshot-name: ignored\n");
    files.write_drop_in("30-x.yaml~", "etcd-snapshot-name: ignored\n");
    let engine = ConfigEngine::with_env(flags(&[&files.config_arg(), "server"]), Vec::new());
    let resolved = engine.evaluate(None).expect("valid");
    assert_eq!(resolved.config.snapshot.scheduled_name, "from-20");
    assert_eq!(resolved.config.snapshot.on_demand_name, "od-10");
    assert_eq!(shown(&resolved, "name").1, Source::DropIn(early));
    assert_eq!(
        engine.watched_paths(),
        vec![files.config.clone(), files.drop_ins.clone()]
    );
}

#[test]
fn files_are_re_read_on_every_evaluation() {
    let files = Files::new();
    files.write_config("etcd-snapshot-retention: 1\n");
    let engine = ConfigEngine::with_env(flags(&[&files.config_arg(), "ls"]), Vec::new());
    assert_eq!(
        engine
            .evaluate(None)
            .expect("valid")
            .config
            .snapshot
            .retention,
        1
    );
    files.write_config("etcd-snapshot-retention: 9\n");
    assert_eq!(
        engine
            .evaluate(None)
            .expect("valid")
            .config
            .snapshot
            .retention,
        9
    );
}

#[test]
fn every_problem_is_reported_with_file_and_line() {
    let files = Files::new();
    files.write_config("etcd-snapshot-retention: -2\netcd-snapshot-schedule-cron: \"not cron\"\n");
    let broken = files.write_drop_in("10-broken.yaml", "name: [unclosed\n");
    let engine = ConfigEngine::with_env(
        flags(&[&files.config_arg(), "save", "--etcd-server", "ftp://x"]),
        env(&[
            ("ETCD_SNAPSHOT_SUPERVISOR_PORT", "0"),
            ("ETCD_SNAPSHOT_BOGUS", "1"),
        ]),
    );
    let validation = engine.validate();
    let errors = validation.outcome.as_ref().expect_err("invalid").0.clone();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "config",
        "etcd-snapshot-retention",
        "etcd-snapshot-schedule-cron",
        "supervisor-port",
        "etcd-server",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    let yaml = errors
        .iter()
        .find(|e| e.key == "config")
        .expect("yaml error");
    assert_eq!(yaml.source, Source::DropIn(broken));
    assert!(yaml.expected.contains("line "), "{}", yaml.expected);
    assert!(
        validation
            .warnings
            .iter()
            .any(|w| w.contains("ETCD_SNAPSHOT_BOGUS"))
    );
    let report = show::render_validation(&validation);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("error: ")).count(),
        errors.len()
    );
    assert!(report.contains("from flag --etcd-server"), "{report}");
}

#[test]
fn missing_config_file_is_normal_unless_given_explicitly() {
    let files = Files::new();
    let explicit = ConfigEngine::with_env(flags(&[&files.config_arg(), "ls"]), Vec::new());
    let validation = explicit.validate();
    assert!(validation.outcome.is_ok());
    assert!(
        validation
            .warnings
            .iter()
            .any(|w| w.contains("does not exist")),
        "{:?}",
        validation.warnings
    );
    // The config path from the environment, with no drop-ins and no file: defaults apply.
    let via_env = ConfigEngine::with_env(
        flags(&["ls"]),
        env(&[("ETCD_SNAPSHOT_CONFIG", &files.config.display().to_string())]),
    );
    assert_eq!(via_env.config_file(), files.config.as_path());
    let resolved = via_env.evaluate(None).expect("defaults are valid");
    assert_eq!(resolved.config.config_file, files.config);
    assert_eq!(resolved.config.snapshot.retention, 5);
}

#[test]
fn config_flag_beats_config_env() {
    let a = Files::new();
    let b = Files::new();
    a.write_config("etcd-snapshot-retention: 11\n");
    b.write_config("etcd-snapshot-retention: 22\n");
    let engine = ConfigEngine::with_env(
        flags(&[&a.config_arg(), "ls"]),
        env(&[("ETCD_SNAPSHOT_CONFIG", &b.config.display().to_string())]),
    );
    assert_eq!(engine.config_file(), a.config.as_path());
    let resolved = engine.evaluate(None).expect("valid");
    assert_eq!(resolved.config.snapshot.retention, 11);
    assert_eq!(
        shown(&resolved, "config").1,
        Source::Flag("--config".into())
    );
}

#[test]
fn show_with_sources_names_files_and_flags() {
    let files = Files::new();
    files.write_config("dir: /from/file\n");
    let drop_in = files.write_drop_in("10-x.yaml", "etcd-snapshot-compress: true\n");
    let engine = ConfigEngine::with_env(
        flags(&[&files.config_arg(), "prune", "--snapshot-retention=3"]),
        Vec::new(),
    );
    let text = show::render(&engine.evaluate(None).expect("valid"), true);
    let line = |key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_string()
    };
    assert!(line("etcd-snapshot-retention").ends_with("# flag --snapshot-retention"));
    assert!(
        line("etcd-snapshot-dir").ends_with(&format!("# config file {}", files.config.display()))
    );
    assert!(line("etcd-snapshot-compress").ends_with(&format!("# drop-in {}", drop_in.display())));
    assert!(line("etcd-snapshot-name").ends_with("# default"));
}

#[test]
fn explicit_layers_are_what_the_cli_forwards() {
    let files = Files::new();
    let engine = ConfigEngine::with_env(
        flags(&[&files.config_arg(), "save", "--name", "x"]),
        env(&[("ETCD_SNAPSHOT_ETCD_SNAPSHOT_COMPRESS", "true")]),
    );
    let (flag_layer, env_layer) = engine.explicit_layers();
    assert!(flag_layer.get("name").is_some() && flag_layer.get("config").is_some());
    assert_eq!(
        env_layer
            .get("etcd-snapshot-compress")
            .map(|s| s.source.clone()),
        Some(Source::Env("ETCD_SNAPSHOT_ETCD_SNAPSHOT_COMPRESS".into()))
    );
    let _: &Path = engine.config_file();
}

#[test]
fn the_example_config_file_is_valid() {
    let data = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.yaml");
    let out = crate::support::run(&["config", "validate", "--config", example], data.path());
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
}
