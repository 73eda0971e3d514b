//! S3 replication end to end: the real binary (server and CLI), a real etcd, and the in-process
//! signature-checking S3 server of `fakes/s3_support.rs`. Saves upload, `ls` shows S3 rows, delete
//! and prune reach the bucket, an outage keeps the local snapshot and a later reconcile makes
//! the copy, and the seed's CLI examples work as written.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::support::{TestEtcd, TestServer, run, snapshot_files, text, wait_for};

/// Runs a blocking CLI call without stalling the runtime that serves S3.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// What the encryption tests over S3 start from: a real etcd, the S3 server with bucket
/// `snapshots`, a data dir and a dir for `age-keygen` keys. None (the test returns) when
/// `age-keygen` or etcd is missing outside CI.
pub(crate) struct EncryptedS3 {
    pub etcd: TestEtcd,
    pub s3: S3Server,
    pub data: tempfile::TempDir,
    pub keys: tempfile::TempDir,
}

impl EncryptedS3 {
    pub(crate) async fn start() -> Option<Self> {
        crate::support::require_binary("age-keygen")?;
        let etcd = TestEtcd::start()?;
        let s3 = S3Server::start(Tls::Plain).await;
        s3.create_bucket("snapshots");
        let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        Some(Self {
            etcd,
            s3,
            data,
            keys,
        })
    }
}

/// Direct-mode flags reaching `server`'s bucket `b` with the test credentials.
pub(crate) fn s3_flags(server: &S3Server, bucket: &str) -> Vec<String> {
    vec![
        "--s3".into(),
        format!("--s3-endpoint={}", server.addr),
        "--s3-insecure".into(),
        format!("--s3-bucket={bucket}"),
        format!("--s3-access-key={ACCESS_KEY}"),
        format!("--s3-secret-key={SECRET_KEY}"),
        "--s3-folder=f".into(),
    ]
}

/// Starts `etcd-snapshot server` on `etcd` with `args`, off the async runtime.
pub(crate) async fn start_server(data: &Path, etcd: &str, args: &[&str]) -> TestServer {
    let mut all = vec![format!("--etcd-endpoints={etcd}")];
    all.extend(args.iter().map(|a| a.to_string()));
    let data = data.to_path_buf();
    blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        TestServer::start(&data, &refs)
    })
    .await
}

/// A direct-mode CLI run (no server answers on the default port).
pub(crate) async fn direct(data_dir: &Path, etcd: &str, args: Vec<String>) -> Output {
    let data_dir = data_dir.to_path_buf();
    let etcd = etcd.to_string();
    blocking(move || {
        let dead_server = format!("https://127.0.0.1:{}", crate::support::free_port());
        let mut all: Vec<String> = vec![
            "--etcd-server".into(),
            dead_server,
            "--node-name".into(),
            "n1".into(),
            format!("--etcd-endpoints={etcd}"),
        ];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs, &data_dir)
    })
    .await
}

/// A server whose S3 endpoint (bucket `snapshots`) is a reserved loopback port nothing listens
/// on yet, reconciling every second; returns the port, for S3 to start on it later (an outage
/// that ends).
async fn start_with_s3_down(data: &Path, etcd: &str) -> (u16, std::sync::Arc<TestServer>) {
    let port = crate::support::free_port();
    let endpoint = format!("--etcd-s3-endpoint=127.0.0.1:{port}");
    let args = [
        "--etcd-s3",
        &endpoint,
        "--etcd-s3-insecure",
        "--etcd-s3-bucket=snapshots",
        &format!("--etcd-s3-access-key={ACCESS_KEY}"),
        &format!("--etcd-s3-secret-key={SECRET_KEY}"),
        "--etcd-snapshot-reconcile-interval=1s",
    ];
    let server = start_server(data, etcd, &args).await;
    (port, std::sync::Arc::new(server))
}

pub(crate) fn created_name(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Snapshot ")?.strip_suffix(" saved."))
        .unwrap_or_else(|| panic!("no saved line\nstdout:\n{stdout}\nstderr:\n{stderr}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_save_ls_delete_reach_the_bucket_and_secrets_stay_out_of_output() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();

    let mut args = s3_flags(&s3, "snapshots");
    args.push("save".into());
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let name = created_name(&out);
    assert!(
        s3.has_object("snapshots", &format!("f/{name}")),
        "object uploaded"
    );
    assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
    // The object is byte-identical to the local file.
    let local = std::fs::read(crate::support::snapshot_dir(data.path()).join(&name)).unwrap();
    let remote = std::fs::read(s3.root.path().join("snapshots/f").join(&name)).unwrap();
    assert_eq!(local, remote);

    let mut args = s3_flags(&s3, "snapshots");
    args.push("ls".into());
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("s3://snapshots/f/{name}")),
        "{stdout}"
    );
    assert!(stdout.contains("file://"), "{stdout}");

    let mut args = s3_flags(&s3, "snapshots");
    args.extend(["delete".into(), name.clone()]);
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Snapshot {name} deleted.")),
        "{stdout}"
    );
    assert!(!s3.has_object("snapshots", &format!("f/{name}")));
    assert!(snapshot_files(&crate::support::snapshot_dir(data.path())).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_local_snapshot_and_a_later_reconcile_uploads_it() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (port, server) = start_with_s3_down(data.path(), &etcd.endpoint).await;

    let srv = server.clone();
    let out = blocking(move || srv.cli(&["save"])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial failure\n{stdout}\n{stderr}"
    );
    let name = created_name(&out);
    assert!(
        stderr.contains("s3://snapshots/") && stderr.contains("kept"),
        "{stderr}"
    );
    assert!(
        crate::support::snapshot_dir(data.path())
            .join(&name)
            .is_file()
    );

    // While S3 is down, ls still shows the local snapshot and the failed copy, says that S3
    // could not be listed, and exits with the partial-failure code.
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls", "-o", "json"])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("failed: s3://snapshots/"), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        list.get("failed").is_none(),
        "the extension never reaches the printed list"
    );
    let failed: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"]["readyToUse"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert_eq!(
        failed[0]["spec"]["location"],
        format!("s3://snapshots/{name}")
    );
    assert!(
        failed[0]["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload failed")
    );

    // S3 comes back on the same port: the reconcile loop copies the snapshot by itself.
    let s3 = S3Server::start_on(Tls::Plain, port).await;
    s3.create_bucket("snapshots");
    let object = s3.root.path().join("snapshots").join(&name);
    let waited = blocking(move || {
        wait_for("reconcile upload", Duration::from_secs(60), || {
            object.is_file()
        });
    });
    waited.await;
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls"])).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("s3://snapshots/{name}")),
        "{stdout}"
    );
    assert!(!stderr.contains("not ready"), "{stderr}");
    let metrics = crate::support::metrics(&server).await;
    assert!(
        metrics.contains("etcd_snapshot_files{storage=\"s3-pending\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_snapshot_save_s3_duration_seconds_count{status=\"error\"} 1"),
        "{metrics}"
    );
}

/// A local snapshot damaged on disk after its upload failed is never copied by the backfill:
/// its damage would reach S3 with a checksum vouching for it. The good one beside it is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_verifies_each_file_and_never_copies_a_damaged_one() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (port, server) = start_with_s3_down(data.path(), &etcd.endpoint).await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let srv = server.clone();
        let out = blocking(move || srv.cli(&["save"])).await;
        assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
        names.push(created_name(&out));
    }
    names.sort();
    let (damaged, good) = (&names[0], &names[1]);
    // The older one is copied first, so by the time the good one is in S3 the damaged one has
    // had its turn.
    let path = crate::support::snapshot_dir(data.path()).join(damaged);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    let s3 = S3Server::start_on(Tls::Plain, port).await;
    s3.create_bucket("snapshots");
    let object = s3.root.path().join("snapshots").join(good);
    blocking(move || {
        wait_for(
            "the good snapshot's upload",
            Duration::from_secs(60),
            || object.is_file(),
        )
    })
    .await;
    assert!(
        !s3.has_object("snapshots", damaged),
        "a damaged file was uploaded"
    );
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls", "-o", "json"])).await;
    let (stdout, _) = text(&out);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let failure = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"]["readyToUse"] == false)
        .unwrap_or_else(|| panic!("no failure row: {stdout}"));
    assert_eq!(failure["spec"]["snapshotName"], damaged.as_str());
    let message = failure["status"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("integrity check"), "{message}");
    assert!(
        path.is_file(),
        "the damaged file is kept for the operator to look at"
    );
}

/// The seed's examples, word for word (binary name aside): the server knows the endpoint and
/// folder; the CLI gives `--s3 --s3-bucket --s3-access-key --s3-secret-key` and the subcommand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cli_examples_work_verbatim_against_a_server() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start_with_keys(Tls::Plain, "test", "secret").await;
    s3.create_bucket("test-bucket");
    let data = tempfile::tempdir().unwrap();
    let endpoint = format!("--etcd-s3-endpoint={}", s3.addr);
    let args = [
        endpoint.as_str(),
        "--etcd-s3-insecure",
        "--etcd-s3-folder=test-folder",
    ];
    let server = start_server(data.path(), &etcd.endpoint, &args).await;
    let server = std::sync::Arc::new(server);
    let verbatim = |sub: &'static [&'static str]| {
        let srv = server.clone();
        async move {
            blocking(move || {
                let mut args = vec![
                    "--s3",
                    "--s3-bucket=test-bucket",
                    "--s3-access-key=test",
                    "--s3-secret-key=secret",
                ];
                args.extend_from_slice(sub);
                srv.cli(&args)
            })
            .await
        }
    };
    let out = verbatim(&["save"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let name = created_name(&out);
    assert!(s3.has_object("test-bucket", &format!("test-folder/{name}")));

    let out = verbatim(&["ls"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains(&format!("s3://test-bucket/test-folder/{name}")))
        .unwrap_or_else(|| panic!("no S3 row:\n{stdout}"));
    assert!(row.starts_with(&name), "{row}");

    let out = Box::pin(async {
        blocking({
            let srv = server.clone();
            let name = name.clone();
            move || {
                srv.cli(&[
                    "--s3",
                    "--s3-bucket=test-bucket",
                    "--s3-access-key=test",
                    "--s3-secret-key=secret",
                    "delete",
                    &name,
                ])
            }
        })
        .await
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Snapshot {name} deleted.")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("removed s3://test-bucket/test-folder/{name}")),
        "{stdout}"
    );
    assert!(!s3.has_object("test-bucket", &format!("test-folder/{name}")));

    let out = verbatim(&["ls"]).await;
    let (stdout, _) = text(&out);
    assert!(!stdout.contains(&name), "{stdout}");
    let log = server.log_text();
    assert!(
        !log.contains("--s3-secret-key=secret") && !log.contains("\"secret\""),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_aws_environment_and_shared_file() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--s3".to_string(),
            format!("--s3-endpoint={}", s3.addr),
            "--s3-insecure".into(),
            "--s3-bucket=snapshots".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let creds_file = data.path().join("aws-credentials");
    std::fs::write(
        &creds_file,
        format!(
            "[backup]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let env_cases: Vec<Vec<(String, String)>> = vec![
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ],
        vec![
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                creds_file.display().to_string(),
            ),
            ("AWS_PROFILE".into(), "backup".into()),
        ],
    ];
    for env in env_cases {
        let (dir, etcd_ep, args) = (
            data.path().to_path_buf(),
            etcd.endpoint.clone(),
            base(&["save"]),
        );
        let out = blocking(move || {
            let mut cmd = crate::support::command(
                &[
                    "--etcd-server",
                    &format!("https://127.0.0.1:{}", crate::support::free_port()),
                    "--node-name",
                    "n1",
                    &format!("--etcd-endpoints={etcd_ep}"),
                ],
                &dir,
            );
            cmd.args(&args);
            for key in [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_PROFILE",
                "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_SESSION_TOKEN",
            ] {
                cmd.env_remove(key);
            }
            cmd.env("AWS_CONFIG_FILE", dir.join("no-aws-config"));
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
            cmd.envs(env);
            cmd.output().unwrap()
        })
        .await;
        assert!(out.status.success(), "{:?}", text(&out));
        let name = created_name(&out);
        assert!(
            s3.has_object("snapshots", &name),
            "uploaded with environment credentials"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    // Wrong credentials: the local snapshot is kept and the error says what failed.
    let out = direct(
        data.path(),
        &etcd.endpoint,
        base(&[
            &format!("--s3-access-key={ACCESS_KEY}"),
            "--s3-secret-key=wrong-secret-value",
            "save",
        ]),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.to_lowercase().contains("credentials") || stderr.contains("denied"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret-value") && !stdout.contains("wrong-secret-value"));
}
