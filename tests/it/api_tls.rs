//! The API's serving certificate and the CLI's trust, through the real binary: a short-lived
//! certificate is renewed while the server runs, the certificate names `bind-address` and
//! `tls-san`, and the CLI never trusts a remote server on first use.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::support::{TestEtcd, TestServer, command, free_port, process_alive, text, wait_for};

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to the API at `addr`, verified against `ca_pem` as `name`.
fn connect(addr: &str, ca_pem: &[u8], name: &str) -> Result<Tls, String> {
    let config = etcd_snapshot::api::client_tls::trusting(ca_pem)?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// The DER of the certificate the peer of `tls` presented.
fn peer_cert(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Handshakes with the API at `addr`, verifying it against `ca_pem` as `name`; returns the DER
/// of the certificate it served.
fn served_cert(addr: &str, ca_pem: &[u8], name: &str) -> Result<Vec<u8>, String> {
    connect(addr, ca_pem, name).map(|tls| peer_cert(&tls))
}

/// `GET /healthz` over an open connection; returns the whole reply.
fn healthz(tls: &mut Tls) -> String {
    use std::io::{Read, Write};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = tls.read_to_string(&mut reply);
    reply
}

fn tls_dir(data: &Path) -> std::path::PathBuf {
    data.join("server").join("tls")
}

/// Signs a serving certificate for `names`, valid from 2 s ago for `life`, with the API CA
/// under `data`, and stores it where the server looks for its serving certificate.
fn write_short_lived_cert(data: &Path, names: Vec<String>, life: Duration) -> Vec<u8> {
    let dir = tls_dir(data);
    let ca_key = std::fs::read_to_string(dir.join("etcd-snapshot-ca.key")).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "etcd-snapshot-ca");
    ca_params.distinguished_name = dn;
    let issuer = Issuer::new(ca_params, KeyPair::from_pem(&ca_key).unwrap());
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names).unwrap();
    let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = SystemTime::now();
    params.not_before = epoch + since_epoch(now - Duration::from_secs(2));
    params.not_after = epoch + since_epoch(now + life);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("etcd-snapshot-serving.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("etcd-snapshot-serving.crt"), cert.pem()).unwrap();
    cert.der().to_vec()
}

fn not_after(der: &[u8]) -> SystemTime {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let secs = cert.validity().not_after.timestamp();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

#[test]
fn a_short_lived_serving_certificate_is_renewed_without_a_restart() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // The server's own CA, then a serving certificate with every name the server wants but
    // only 38 s of life: at start it is kept (renewal is due at two thirds of its life).
    etcd_snapshot::api::tls::load_or_create(&tls_dir(data.path())).unwrap();
    let names = etcd_snapshot::api::tls::serving_names("127.0.0.1".parse().unwrap(), &[]);
    let short = write_short_lived_cert(data.path(), names, Duration::from_secs(36));
    let issued = Instant::now();
    let mut server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    let ca = std::fs::read(tls_dir(data.path()).join("etcd-snapshot-ca.crt")).unwrap();
    let addr = format!("127.0.0.1:{}", server.port);
    // Opened before the renewal, used after it (hyper's 30 s header timeout leaves room).
    let mut before = connect(&addr, &ca, "localhost").unwrap();
    assert!(
        issued.elapsed() < Duration::from_secs(20),
        "server start too slow to check"
    );
    assert_eq!(
        peer_cert(&before),
        short,
        "the short-lived certificate is served at first"
    );

    wait_for(
        "the served certificate to change",
        Duration::from_secs(45),
        || served_cert(&addr, &ca, "localhost").is_ok_and(|der| der != short),
    );
    let renewed = served_cert(&addr, &ca, "localhost").unwrap();
    // The connection opened before the swap keeps working on the session it negotiated.
    let reply = healthz(&mut before);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"),
        "{reply}"
    );
    let year_ahead = SystemTime::now() + Duration::from_secs(300 * 24 * 3600);
    assert!(
        not_after(&renewed) > year_ahead,
        "a full-length certificate"
    );
    let stored = std::fs::read(tls_dir(data.path()).join("etcd-snapshot-serving.crt")).unwrap();
    let stored = rustls::pki_types::CertificateDer::from_pem_slice(&stored).unwrap();
    assert_eq!(
        stored.as_ref(),
        renewed.as_slice(),
        "the renewal is stored too"
    );
    // The same process, never restarted.
    assert!(server.child.as_mut().unwrap().try_wait().unwrap().is_none());
    assert!(process_alive(server.pid()));
    let log = server.log_text();
    assert!(log.contains("renewed the API serving certificate"), "{log}");
    assert_eq!(
        log.matches("issued a new API serving certificate").count(),
        1,
        "{log}"
    );
    assert!(server.terminate().success());
}

#[test]
fn the_certificate_names_bind_address_and_tls_san_and_a_remote_server_needs_a_ca() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // 127.0.0.2 is loopback to the kernel but not to the CLI, which treats it as remote.
    let port = free_port();
    let port_text = port.to_string();
    let log = data.path().join("server.log");
    let args = [
        "server",
        "--node-name",
        "n1",
        "--bind-address",
        "127.0.0.2",
        "--supervisor-port",
        &port_text,
        "--tls-san",
        "snap.example.test,10.11.12.13",
        "--etcd-endpoints",
        &etcd.endpoint,
    ];
    let child = command(&args, data.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = TestServer {
        child: Some(child),
        node: "n1".into(),
        port,
        data_dir: data.path().to_path_buf(),
        log,
    };
    let addr = format!("127.0.0.2:{port}");
    wait_for("the server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let ca_path = tls_dir(data.path()).join("etcd-snapshot-ca.crt");
    let ca = std::fs::read(&ca_path).unwrap();
    for name in ["127.0.0.2", "snap.example.test", "10.11.12.13", "localhost"] {
        served_cert(&addr, &ca, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = served_cert(&addr, &ca, "other.example.test").unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    let password = std::fs::read_to_string(data.path().join("server/token")).unwrap();
    let password = password.trim();
    let url = format!("https://{addr}");
    let cli = |extra: &[&str]| {
        let mut all = vec!["ls", "--etcd-server", &url, "--node-name", "n1"];
        all.extend_from_slice(extra);
        crate::support::run(&all, data.path())
    };
    // A bare token and no CA: refused before anything is sent, with the way out.
    let out = cli(&["--etcd-token", password]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("refusing to trust the server at"),
        "{stderr}"
    );
    assert!(stderr.contains("--etcd-server-ca"), "{stderr}");
    assert!(
        !stderr.contains("directly"),
        "no direct-mode fallback: {stderr}"
    );
    assert!(
        !stderr.contains(password),
        "the token never shows: {stderr}"
    );
    // The CA given explicitly, or pinned by the token, is trusted.
    let ca_arg = ca_path.to_str().unwrap();
    let out = cli(&["--etcd-token", password, "--etcd-server-ca", ca_arg]);
    assert!(out.status.success(), "{:?}", text(&out));
    let hash: String = Sha256::digest(&ca)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let full = format!("K10{hash}::server:{password}");
    let out = cli(&["--etcd-token", &full]);
    assert!(out.status.success(), "{:?}", text(&out));
    // A CA that did not sign the server's certificate fails the handshake.
    let other = tempfile::tempdir().unwrap();
    etcd_snapshot::api::tls::load_or_create(other.path()).unwrap();
    let wrong_ca = other.path().join("etcd-snapshot-ca.crt");
    let out = cli(&[
        "--etcd-token",
        password,
        "--etcd-server-ca",
        wrong_ca.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");
    assert!(server.terminate().success());
}
