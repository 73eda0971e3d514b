//! Certificates of the Kubernetes API stand-in: a private CA made per server and a serving
//! certificate for 127.0.0.1 and localhost signed by it, so clients verify the server exactly as
//! they would a cluster's (through `certificate-authority-data`), never by skipping checks.
//! The same maker as the test S3 server's, plus HTTP/2 (kube-rs negotiates it).

/// The server's rustls config and the CA certificate (PEM) that clients must trust.
pub fn server_config() -> (rustls::ServerConfig, String) {
    let (mut config, ca_pem) = crate::fakes::s3_support::server_tls(true);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, ca_pem.expect("a private CA was asked for"))
}
