//! Unit tests of `client`: URL parsing, error bodies, connect errors and the trust decision.

use super::*;

fn target(host: &str, port: u16, authority: &str) -> Target {
    Target {
        host: host.into(),
        port,
        authority: authority.into(),
    }
}

#[test]
fn parse_url_handles_ports_paths_and_ipv6() {
    let cases = [
        (
            "https://127.0.0.1:9345",
            target("127.0.0.1", 9345, "127.0.0.1:9345"),
        ),
        (
            "https://example.com",
            target("example.com", 443, "example.com:443"),
        ),
        ("https://node:6443/", target("node", 6443, "node:6443")),
        ("https://[::1]:9345", target("::1", 9345, "[::1]:9345")),
        ("https://[::1]", target("::1", 443, "[::1]:443")),
    ];
    for (url, want) in cases {
        assert_eq!(parse_url(url).unwrap(), want, "{url}");
    }
    for bad in [
        "http://127.0.0.1:9345",
        "https://",
        "https://host:notaport",
        "https://[::1",
    ] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn error_message_prefers_status_body() {
    let body = serde_json::to_vec(&StatusBody::failure(409, "Conflict", "busy")).unwrap();
    assert_eq!(error_message(&body), "busy");
    assert_eq!(error_message(b" plain text \n"), "plain text");
    assert_eq!(error_message("x".repeat(600).as_bytes()).len(), 515);
}

#[test]
fn trust_comes_from_a_ca_file_or_the_token_hash_never_from_the_server_alone() {
    let ca = Path::new("/etc/ca.crt");
    let hash = "ab".repeat(32);
    let full = format!("K10{hash}::server:pw");
    assert_eq!(trust(Some(ca), "pw"), Trust::CaFile(ca));
    assert_eq!(trust(Some(ca), &full), Trust::CaFile(ca), "the file wins");
    assert_eq!(trust(None, &full), Trust::PinnedDownload(&hash));
    assert_eq!(trust(None, "pw"), Trust::Nothing);
    assert_eq!(
        trust(None, "K10::server:pw"),
        Trust::Nothing,
        "an empty hash pins nothing"
    );
}

#[test]
fn unreachable_kinds() {
    assert!(is_unreachable(std::io::ErrorKind::ConnectionRefused));
    assert!(is_unreachable(std::io::ErrorKind::TimedOut));
    assert!(!is_unreachable(std::io::ErrorKind::PermissionDenied));
}
