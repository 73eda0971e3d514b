//! Secrets never reach child processes or their logged output: the real server with its real
//! embedded etcd, started with the token and AWS keys in its environment and S3 keys in its
//! config file; the etcd child's /proc environ, a restore's tool children, and the server's
//! whole log are checked for every secret value.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::restore::cluster_reset::Node;
use crate::support::{TestServer, command, free_port, require_binary, signal, text, wait_for};

const TOKEN: &str = "K10c0ffee::server:token-pw-3f9a1c7e55";
const TOKEN_PASSWORD: &str = "token-pw-3f9a1c7e55";
const AWS_SECRET: &str = "aws-env-secret-8c2d41";
const AWS_ACCESS: &str = "AKIAENVACCESS77";
const S3_SECRET: &str = "config-s3-secret-5e6f";
const S3_ACCESS: &str = "config-s3-access-9b1";
const S3_SESSION: &str = "config-s3-session-44aa";

/// Every value that must never show up.
const SECRETS: [&str; 7] = [
    TOKEN,
    TOKEN_PASSWORD,
    AWS_SECRET,
    AWS_ACCESS,
    S3_SECRET,
    S3_ACCESS,
    S3_SESSION,
];

/// The environment the server runs with: the token and the AWS default chain's variables.
fn secret_env() -> [(&'static str, &'static str); 4] {
    [
        ("ETCD_SNAPSHOT_TOKEN", TOKEN),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_ACCESS_KEY_ID", AWS_ACCESS),
        ("AWS_SESSION_TOKEN", AWS_SECRET),
    ]
}

/// A config file with S3 credentials; the endpoint is a closed port (the startup check fails,
/// which only logs).
fn write_s3_config(dir: &Path) -> PathBuf {
    let path = dir.join("secrets-config.yaml");
    let body = format!(
        "etcd-s3: true\netcd-s3-endpoint: 127.0.0.1:{}\netcd-s3-insecure: true\n\
         etcd-s3-bucket: b\netcd-s3-access-key: {S3_ACCESS}\netcd-s3-secret-key: {S3_SECRET}\n\
         etcd-s3-session-token: {S3_SESSION}\netcd-s3-timeout: 2s\n",
        free_port()
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// Starts the server with `args`, the secret environment and `--config <config>`, waiting
/// until its API port listens.
fn start_with_secrets(data: &Path, config: &Path, args: &[&str]) -> TestServer {
    let port = free_port();
    let log = data.join(format!("server-{port}.log"));
    let port_text = port.to_string();
    let config_text = config.to_str().unwrap();
    let mut all = vec![
        "server",
        "--node-name",
        "n1",
        "--supervisor-port",
        &port_text,
    ];
    all.extend_from_slice(&["--config", config_text]);
    all.extend_from_slice(args);
    let child = command(&all, data)
        .envs(secret_env())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn server");
    let mut server = TestServer {
        child: Some(child),
        node: "n1".into(),
        port,
        data_dir: data.to_path_buf(),
        log,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("server exited early ({status}):\n{}", server.log_text());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The API port is bound before etcd starts; the server is up once it says so.
    wait_for("the server to start", Duration::from_secs(60), || {
        server.log_text().contains("etcd-snapshot server started")
    });
    server
}

fn etcd_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("server/db/etcd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} contains {secret:?}:\n{text}"
        );
    }
}

/// Variable names in a NUL-separated environ that are neither allow-listed nor added for a tool.
fn unexpected_names(environ: &str) -> Vec<String> {
    let allowed = etcd_snapshot::child::env::INHERITED;
    environ
        .split(['\0', '\n'])
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.split('=').next().unwrap_or_default().to_string())
        .filter(|name| !allowed.contains(&name.as_str()) && name != "ETCDCTL_API")
        .collect()
}

#[test]
fn the_embedded_etcd_gets_no_secret_in_its_environment() {
    let Some(_) = require_binary("etcd") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let config = write_s3_config(data.path());
    let client = format!("--etcd-client-address=127.0.0.1:{}", free_port());
    let peer = format!("--etcd-peer-address=127.0.0.1:{}", free_port());
    let mut server = start_with_secrets(data.path(), &config, &[&client, &peer]);
    let pid = etcd_pid(data.path()).expect("etcd pid file");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read etcd's environ");
    let environ = String::from_utf8_lossy(&environ).into_owned();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("--data-dir"),
        "pid {pid} is the embedded etcd"
    );
    assert!(environ.contains("PATH="), "PATH is passed: {environ:?}");
    assert_eq!(unexpected_names(&environ), Vec::<String>::new());
    assert_no_secret("etcd's environment", &environ);
    assert!(server.terminate().success(), "{}", server.log_text());
    assert_no_secret("the server log", &server.log_text());
}

/// An `--etcd-binary` stand-in: records the environment it was started with in `<name>.env`,
/// prints the given lines (what an etcd that echoes its input would print), then behaves as
/// the real program; with `once`, only the first time (then it exits 3).
fn wrapper(dir: &Path, name: &str, real: &Path, echo: &[String], once: Option<&Path>) -> PathBuf {
    let path = dir.join(name);
    let env_file = dir.join(format!("{name}.env"));
    let mut script = format!(
        "#!/bin/sh\ntr '\\0' '\\n' < /proc/$$/environ >> '{}'\n",
        env_file.display()
    );
    for line in echo {
        script.push_str(&format!("echo '{line}' >&2\n"));
    }
    if let Some(marker) = once {
        let marker = marker.display();
        script.push_str(&format!(
            "if [ -e '{marker}' ]; then exit 3; fi\ntouch '{marker}'\n"
        ));
    }
    script.push_str(&format!("exec '{}' \"$@\"\n", real.display()));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn secrets_a_child_prints_are_masked_in_the_whole_log() {
    let Some(etcd) = require_binary("etcd") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let config = write_s3_config(data.path());
    // What etcd printed before the environment was cleared, plus every other secret.
    let echo: Vec<String> = SECRETS
        .iter()
        .map(|s| format!("unrecognized environment variable ETCD_SNAPSHOT_X={s}"))
        .collect();
    let marker = bin.path().join("started-once");
    let fake = wrapper(bin.path(), "etcd", &etcd, &echo, Some(&marker));
    let client = format!("--etcd-client-address=127.0.0.1:{}", free_port());
    let peer = format!("--etcd-peer-address=127.0.0.1:{}", free_port());
    let binary = format!("--etcd-binary={}", fake.display());
    let mut server =
        start_with_secrets(data.path(), &config, &[&client, &peer, &binary, "--debug"]);
    // Killed, it is restarted; the restarted one prints the secrets and exits at once, so the
    // "exited unexpectedly" warning quotes them as its last output.
    signal(etcd_pid(data.path()).expect("etcd pid"), "KILL");
    wait_for("two unexpected exits", Duration::from_secs(30), || {
        server.log_text().matches("exited unexpectedly").count() >= 2
    });
    let log = server.log_text();
    assert!(log.contains("ETCD_SNAPSHOT_X=<redacted>"), "{log}");
    assert!(server.terminate().success(), "{}", server.log_text());
    assert_no_secret("the server log", &server.log_text());
}

#[test]
fn restore_tool_children_get_no_secret_in_their_environment() {
    let (Some(etcd), Some(etcdctl)) = (require_binary("etcd"), require_binary("etcdctl")) else {
        return;
    };
    let node = Node::new();
    // The server saves with the token the restore is later given (through the environment):
    // the snapshot carries bootstrap data (the etcd CAs) that only that token opens.
    let server_dir = node.dir().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::write(server_dir.join("token"), TOKEN).unwrap();
    std::fs::set_permissions(
        server_dir.join("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut server = node.start(&[]);
    let snapshot = node.save(&server, false);
    assert!(server.terminate().success());

    let bin = tempfile::tempdir().unwrap();
    let fake_etcd = wrapper(bin.path(), "etcd", &etcd, &[], None);
    wrapper(bin.path(), "etcdctl", &etcdctl, &[], None);
    let mut args: Vec<String> = vec!["restore".into()];
    args.extend(node.etcd_flags());
    args.push(format!("--etcd-binary={}", fake_etcd.display()));
    args.push(snapshot.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command(&refs, node.dir())
        .envs(secret_env())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_no_secret("the restore's output", &format!("{stdout}{stderr}"));
    for name in ["etcd", "etcdctl"] {
        let env = std::fs::read_to_string(bin.path().join(format!("{name}.env")))
            .unwrap_or_else(|_| panic!("the restore ran {name} through the stand-in"));
        assert_eq!(unexpected_names(&env), Vec::<String>::new(), "{name}");
        assert_no_secret(&format!("{name}'s environment"), &env);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_save_to_s3_prints_no_credential() {
    use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
    use crate::s3::ops::{created_name, direct, s3_flags};
    let Some(etcd) = crate::support::TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();
    let mut args = s3_flags(&s3, "snapshots");
    args.extend([
        format!("--s3-session-token={S3_SESSION}"),
        "--debug".into(),
        "save".into(),
    ]);
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let name = created_name(&out);
    assert!(s3.has_object("snapshots", &format!("f/{name}")));
    assert!(
        stderr.contains(" DEBUG etcd_snapshot::store::s3::client: S3 client configured"),
        "--debug shows our own debug lines:\n{stderr}"
    );
    for secret in [ACCESS_KEY, SECRET_KEY, S3_SESSION] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "--debug printed {secret:?}:\n{stdout}\n{stderr}"
        );
    }
}
