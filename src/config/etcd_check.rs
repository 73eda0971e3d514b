//! The etcd transport rules of the config: plain HTTP only to a loopback host, and a join
//! endpoint over TLS only (the embedded etcd serves clients over TLS only). `etcd_transport` is
//! the pure classification; `check_etcd` turns it into errors naming key, value and source.

use std::net::IpAddr;

use super::build::Parsed;
use super::resolve::ConfigError;

/// How an etcd URL travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EtcdTransport {
    Tls,
    /// Plain HTTP (or no scheme, which etcd clients take as HTTP) to this host only.
    PlainLoopback,
    /// Plain HTTP across a network: every key in clear, and anyone on the path can write.
    PlainRemote,
}

/// Classifies an etcd endpoint URL. Pure.
pub(super) fn etcd_transport(url: &str) -> EtcdTransport {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return EtcdTransport::Tls;
    }
    if lower.starts_with("unix://") || lower.starts_with("unixs://") {
        return EtcdTransport::PlainLoopback;
    }
    let rest = url
        .get("http://".len()..)
        .filter(|_| lower.starts_with("http://"));
    let authority = rest
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None if host_port.matches(':').count() > 1 => host_port,
        None => host_port.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        EtcdTransport::PlainLoopback
    } else {
        EtcdTransport::PlainRemote
    }
}

/// etcd transport rules: plain HTTP only on loopback, and a join only over TLS (the embedded
/// etcd serves clients over TLS only).
pub(super) fn check_etcd(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let mut fail = |key: &str, expected: &str| errors.push(p.error(key, expected));
    let endpoints = p.list("etcd-endpoints").unwrap_or_default();
    if endpoints
        .iter()
        .any(|e| etcd_transport(e) == EtcdTransport::PlainRemote)
    {
        fail(
            "etcd-endpoints",
            "https:// URLs (plain http:// is allowed only to a loopback address such as \
             http://127.0.0.1:2379), with etcd-cafile, etcd-certfile and etcd-keyfile",
        );
    }
    if p.text("etcd-join-endpoint")
        .is_some_and(|url| etcd_transport(&url) != EtcdTransport::Tls)
    {
        fail(
            "etcd-join-endpoint",
            "an https:// URL such as https://10.0.0.1:2379: the embedded etcd serves clients \
             over TLS only",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::resolve_flags as run;

    fn errors(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
        match run(pairs) {
            Ok(_) => panic!("{pairs:?} should be rejected"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn etcd_transport_allows_plain_http_on_loopback_only() {
        use EtcdTransport::*;
        for (url, expected) in [
            ("https://10.0.0.1:2379", Tls),
            ("HTTPS://etcd.example:2379", Tls),
            ("http://127.0.0.1:2379", PlainLoopback),
            ("http://127.9.9.9:2379/", PlainLoopback),
            ("http://localhost:2379", PlainLoopback),
            ("http://[::1]:2379", PlainLoopback),
            ("127.0.0.1:2379", PlainLoopback),
            ("unix:///run/etcd.sock", PlainLoopback),
            ("http://10.0.0.1:2379", PlainRemote),
            ("http://etcd.example:2379", PlainRemote),
            ("http://[fd00::1]:2379", PlainRemote),
            ("http://user@10.0.0.1:2379", PlainRemote),
            ("http://localhost.evil.example:2379", PlainRemote),
            ("http://127.0.0.1.evil.example:2379", PlainRemote),
            ("10.0.0.1:2379", PlainRemote),
            ("http://0.0.0.0:2379", PlainRemote),
        ] {
            assert_eq!(etcd_transport(url), expected, "{url}");
        }
    }

    #[test]
    fn plain_http_to_a_remote_etcd_or_a_plain_join_is_refused_naming_the_key() {
        let errs = errors(&[("etcd-endpoints", "https://a:2379,http://10.0.0.1:2379")]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "etcd-endpoints");
        let text = errs[0].to_string();
        assert!(
            text.contains("from flag --etcd-endpoints") && text.contains("https://"),
            "{text}"
        );
        assert!(run(&[("etcd-endpoints", "http://127.0.0.1:2379")]).is_ok());

        let errs = errors(&[("etcd-join-endpoint", "http://127.0.0.1:2379")]);
        assert_eq!(errs[0].key, "etcd-join-endpoint");
        assert!(errs[0].to_string().contains("TLS only"), "{}", errs[0]);
        assert!(run(&[("etcd-join-endpoint", "https://10.0.0.1:2379")]).is_ok());
    }
}
