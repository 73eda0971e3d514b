//! Integration tests: what a holder of the API token cannot make the real server do. The real
//! binary on real etcd, the in-process SigV4 S3 server, and raw HTTPS requests written byte by
//! byte (so bodies the typed client could never produce, and clients that stall, are tried).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::s3::ops::start_server;
use crate::support::{TestEtcd, TestServer, snapshot_dir, snapshot_files};

/// A TLS connection to the server's API, trusting the CA in its data dir.
async fn connect(server: &TestServer) -> TlsStream<TcpStream> {
    let ca = server.data_dir.join("server/tls/etcd-snapshot-ca.crt");
    connect_to(server.port, &ca).await.unwrap()
}

/// A TLS connection to 127.0.0.1:`port` trusting the CA in `ca_file`.
pub(crate) async fn connect_to(port: u16, ca_file: &Path) -> std::io::Result<TlsStream<TcpStream>> {
    let ca = std::fs::read(ca_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

/// `Authorization` for the server's token (`server:<password>`).
fn authorization(data_dir: &Path) -> String {
    let token = std::fs::read_to_string(data_dir.join("server/token")).unwrap();
    let password = etcd_snapshot::token::password_part(token.trim());
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("server:{password}"));
    format!("Basic {encoded}")
}

/// POSTs `body` to `/db/snapshot` as raw bytes; returns the status code and the body.
pub(crate) async fn post_raw(server: &TestServer, body: &str) -> (u16, String) {
    let mut tls = connect(server).await;
    let request = format!(
        "POST /db/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        authorization(&server.data_dir),
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), tls.read_to_end(&mut reply))
        .await
        .expect("a reply within 2 minutes")
        .ok();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Every object key under a bucket of `s3` (empty when the bucket is empty or absent).
/// The snapshot objects in `bucket`, without their `.metadata/` records (every save writes one:
/// it carries the keyspace hash).
fn snapshot_objects(s3: &S3Server, bucket: &str) -> Vec<String> {
    objects(s3, bucket)
        .into_iter()
        .filter(|key| !key.contains("/.metadata/"))
        .collect()
}

fn objects(s3: &S3Server, bucket: &str) -> Vec<String> {
    let root = s3.root.path().join(bucket);
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path.strip_prefix(&root).unwrap().display().to_string();
                if !key.contains(".s3s") && !key.starts_with('.') {
                    found.push(key);
                }
            }
        }
    }
    found
}

/// A server whose S3 is bucket `snaps`, folder `f`, over HTTPS behind a private CA (its PEM
/// in `<data>/s3-ca.pem`), signed with the server's own keys.
async fn server_with_s3(etcd: &TestEtcd, data: &Path, s3: &S3Server) -> TestServer {
    let ca_file = data.join("s3-ca.pem");
    std::fs::write(&ca_file, s3.ca_pem.as_deref().unwrap()).unwrap();
    let args = [
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        format!("--etcd-s3-endpoint-ca={}", ca_file.display()),
        "--etcd-s3-bucket=snaps".to_string(),
        "--etcd-s3-folder=f".to_string(),
        "--etcd-s3-bucket-lookup-type=path".to_string(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    start_server(data, &etcd.endpoint, &refs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_keys_cannot_send_the_snapshot_elsewhere() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::PrivateCa).await;
    s3.create_bucket("snaps");
    s3.create_bucket("theirs");
    let data = tempfile::tempdir().unwrap();
    let server = server_with_s3(&etcd, data.path(), &s3).await;

    // The issue's example (plain HTTP, another bucket, the server's key), and a move to
    // another folder of the same bucket with TLS verification off: refused before anything runs.
    for (s3_block, changed) in [
        (
            r#"{"insecure":true,"bucket":"theirs"}"#,
            "changes s3 bucket, insecure",
        ),
        (
            r#"{"folder":"elsewhere","skipSSLVerify":true}"#,
            "changes s3 folder, skipSSLVerify",
        ),
    ] {
        let request = format!(r#"{{"operation":"save","s3":{s3_block}}}"#);
        let (code, body) = post_raw(&server, &request).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains(changed), "{body}");
        assert!(body.contains("own credentials"), "{body}");
    }
    assert!(objects(&s3, "theirs").is_empty() && objects(&s3, "snaps").is_empty());
    assert!(snapshot_files(&snapshot_dir(data.path())).is_empty());

    // The control: RKE2's CLI restating the server's values (no keys) saves and uploads.
    let restated = format!(
        r#"{{"operation":"save","name":["on-demand"],"s3":{{"accessKey":"","secretKey":"",
        "sessionToken":"","bucket":"snaps","bucketLookup":"path","configSecret":"",
        "endpoint":"{}","endpointCA":"{}","folder":"f","proxy":"","region":"us-east-1",
        "insecure":false,"skipSSLVerify":false,"retention":5,"timeout":"5m0s"}}}}"#,
        s3.addr,
        data.path().join("s3-ca.pem").display()
    );
    let (code, body) = post_raw(&server, &restated).await;
    assert_eq!(code, 200, "{body}");
    let uploaded = snapshot_objects(&s3, "snaps");
    assert_eq!(uploaded.len(), 1, "{uploaded:?} {body}");
    assert!(uploaded[0].starts_with("f/on-demand-n1-"), "{uploaded:?}");
    assert!(objects(&s3, "theirs").is_empty());

    // Our CLI sends a CA file's content, not its path (this copy's path is not the server's):
    // the same content as the server's CA is no change.
    let copy = data.path().join("copy-of-ca.pem");
    std::fs::copy(data.path().join("s3-ca.pem"), &copy).unwrap();
    let ca = format!("--s3-endpoint-ca={}", copy.display());
    let server = Arc::new(server);
    let cli = server.clone();
    let out =
        crate::s3::ops::blocking(move || cli.cli(&["--s3", "--s3-bucket=snaps", &ca, "save"]))
            .await;
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(snapshot_objects(&s3, "snaps").len(), 2);
}

/// The name in a save reply's `created` list.
fn created(body: &str) -> String {
    let reply: serde_json::Value = serde_json::from_str(body).unwrap();
    reply["created"][0].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_field_is_refused_by_name_and_nothing_is_deleted() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd.endpoint, &[]).await;
    // RKE2's CLI body for `save --name keep --snapshot-compress` is accepted as sent.
    let (code, body) = post_raw(
        &server,
        r#"{"operation":"save","name":["keep"],"compress":true}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let name = created(&body);
    let typo = format!(r#"{{"operation":"delete","name":["{name}"],"dryrun":true}}"#);
    let (code, body) = post_raw(&server, &typo).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field `dryrun`"), "{body}");
    assert_eq!(snapshot_files(&snapshot_dir(data.path())), vec![name]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_and_overlong_names_are_client_errors_in_both_modes() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd.endpoint, &[]).await;
    let long = "x".repeat(5000);
    for body in [
        r#"{"operation":"save","name":[".hidden"]}"#.to_string(),
        format!(r#"{{"operation":"save","name":["{long}"]}}"#),
        r#"{"operation":"prune","name":[".hidden"]}"#.to_string(),
        r#"{"operation":"delete","name":[".hidden-n1-1"]}"#.to_string(),
        format!(r#"{{"operation":"delete","name":["{long}-n1-1"]}}"#),
    ] {
        let (code, reply) = post_raw(&server, &body).await;
        assert_eq!(code, 400, "{}: {reply}", &body[..60.min(body.len())]);
    }
    let (_, reply) = post_raw(&server, r#"{"operation":"save","name":[".hidden"]}"#).await;
    assert!(reply.contains("does not start with '.'"), "{reply}");
    assert!(snapshot_files(&snapshot_dir(data.path())).is_empty());
    drop(server);

    // The CLI's direct mode (no server answers) refuses the same names before doing anything.
    for name in [".hidden", long.as_str()] {
        let out = crate::s3::ops::direct(
            data.path(),
            &etcd.endpoint,
            vec![format!("--name={name}"), "save".into()],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("for name from"), "{stderr}");
    }
    let written: Vec<String> = std::fs::read_dir(snapshot_dir(data.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".etcd-snapshot.lock")
        .collect();
    assert!(
        written.is_empty(),
        "nothing, not even a dot file: {written:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dir_must_be_the_snapshot_dir_or_an_allowed_one() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let allowed = data.path().join("weekly");
    std::fs::create_dir(&allowed).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), allowed.join("escape")).unwrap();
    // A file another service owns, named like a snapshot.
    let victim = elsewhere.path().join("app-n1-1700000000");
    std::fs::write(&victim, "not ours").unwrap();
    let flag = format!("--etcd-snapshot-allowed-dirs={}", allowed.display());
    let server = start_server(data.path(), &etcd.endpoint, &[&flag]).await;
    let body = |op: &str, dir: &Path, extra: &str| {
        format!(r#"{{"operation":"{op}","dir":"{}"{extra}}}"#, dir.display())
    };
    let delete = r#","name":["app-n1-1700000000"]"#;
    for dir in [
        elsewhere.path().to_path_buf(),
        allowed.join("escape"),
        allowed.join("../../"),
    ] {
        let (code, reply) = post_raw(&server, &body("delete", &dir, delete)).await;
        assert_eq!(code, 403, "{}: {reply}", dir.display());
        assert!(reply.contains("etcd-snapshot-allowed-dirs"), "{reply}");
        let (code, _) = post_raw(&server, &body("save", &dir, "")).await;
        assert_eq!(code, 403);
    }
    assert!(victim.exists());
    assert!(snapshot_files(elsewhere.path()).len() == 1);

    // The allowed dir (also through `..`) and the snapshot dir itself work.
    let (code, reply) = post_raw(&server, &body("save", &allowed.join("../weekly"), "")).await;
    assert_eq!(code, 200, "{reply}");
    assert!(allowed.join(created(&reply)).is_file(), "{reply}");
    let (code, reply) = post_raw(&server, &body("save", &snapshot_dir(data.path()), "")).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        snapshot_files(&snapshot_dir(data.path())),
        vec![created(&reply)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_ca_path_from_a_request_is_read_only_from_an_allowed_dir() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::PrivateCa).await;
    s3.create_bucket("snaps");
    let data = tempfile::tempdir().unwrap();
    let cas = data.path().join("cas");
    std::fs::create_dir(&cas).unwrap();
    std::fs::write(cas.join("minio.pem"), s3.ca_pem.as_deref().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cas.join("zero.pem")).unwrap();
    let outside = data.path().join("outside.pem");
    std::fs::write(&outside, s3.ca_pem.as_deref().unwrap()).unwrap();
    let flag = format!("--etcd-snapshot-allowed-ca-dirs={}", cas.display());
    let server = start_server(data.path(), &etcd.endpoint, &[&flag]).await;
    let save = |ca: &Path| {
        format!(
            r#"{{"operation":"save","s3":{{"endpoint":"{}","bucket":"snaps","bucketLookup":"path",
            "endpointCA":"{}","accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}}}"#,
            s3.addr,
            ca.display()
        )
    };
    // Refused unread, with one message whether or not the path exists.
    for ca in [
        Path::new("/dev/zero"),
        Path::new("/etc/shadow"),
        Path::new("/etc/no-such-file"),
        &cas.join("zero.pem"),
        &outside,
    ] {
        let (code, reply) = post_raw(&server, &save(ca)).await;
        assert_eq!(code, 403, "{}: {reply}", ca.display());
        assert!(reply.contains("etcd-snapshot-allowed-ca-dirs"), "{reply}");
        assert!(!reply.contains("No such file"), "{reply}");
    }
    assert!(objects(&s3, "snaps").is_empty());
    let (code, reply) = post_raw(&server, &save(&cas.join("minio.pem"))).await;
    assert_eq!(code, 200, "{reply}");
    assert!(!reply.contains("failed"), "{reply}");
    assert_eq!(snapshot_objects(&s3, "snaps").len(), 1);
}

/// `etcd-snapshot server` with `env` added to its environment (the AWS credential chain).
async fn start_with_env(
    data: &Path,
    etcd: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> TestServer {
    let port = crate::support::free_port();
    let log = data.join(format!("server-{port}.log"));
    let port_text = port.to_string();
    let mut all = vec![
        "server",
        "--node-name",
        "n1",
        "--supervisor-port",
        &port_text,
    ];
    let endpoints = format!("--etcd-endpoints={etcd}");
    all.push(&endpoints);
    all.extend(args.iter().map(String::as_str));
    let mut command = crate::support::command(&all, data);
    command.envs(env.iter().copied());
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn server");
    let server = TestServer {
        child: Some(child),
        node: "n1".into(),
        port,
        data_dir: data.to_path_buf(),
        log,
    };
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < until, "{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_aws_environment_are_not_sent_elsewhere_either() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    s3.create_bucket("theirs");
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure".to_string(),
        "--etcd-s3-bucket=snaps".to_string(),
        "--etcd-s3-bucket-lookup-type=path".to_string(),
    ];
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let server = start_with_env(data.path(), &etcd.endpoint, &args, &env).await;
    let save = |s3: &str| format!(r#"{{"operation":"save","s3":{s3}}}"#);
    let (code, body) = post_raw(&server, &save(r#"{"bucket":"theirs"}"#)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("changes s3 bucket"), "{body}");
    assert!(objects(&s3, "theirs").is_empty());
    // The environment's keys do work for the server's own bucket.
    let (code, body) = post_raw(&server, &save(r#"{"bucket":"snaps"}"#)).await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("failed"), "{body}");
    assert_eq!(snapshot_objects(&s3, "snaps").len(), 1);
}
