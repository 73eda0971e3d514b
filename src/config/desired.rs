//! The validated, typed configuration every operation runs with.
//!
//! `DesiredConfig` is only ever built by `config::resolve` from merged layers; nothing else
//! constructs it field by field outside tests. It holds no I/O handles: it is plain data that
//! can be cloned per operation and overlaid with an API request's explicit fields.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::config::schedule::Schedule;
use crate::layout::DataDirLayout;
/// Log settings are the logger's own types (telemetry sits below config).
pub use crate::telemetry::logging::{LogFormat, LogSettings};

/// The whole merged configuration of one evaluation of the engine.
#[derive(Debug, Clone)]
pub struct DesiredConfig {
    /// `--config`: the main config file (its `.d` drop-in dir sits beside it).
    pub config_file: PathBuf,
    /// `--data-dir`: root of the RKE2-compatible layout (`server/db/...`, `server/token`).
    pub data_dir: PathBuf,
    /// `--node-name`: goes into snapshot names; defaults to the host name.
    pub node_name: String,
    /// `--token`: the server token given inline.
    pub token: Option<SecretString>,
    /// `--token-file`: a file holding the server token.
    pub token_file: Option<PathBuf>,
    /// `--cluster-id`: this cluster's id in S3 object metadata; empty when not set.
    pub cluster_id: String,
    /// `--cluster-reset`, `--cluster-reset-restore-path` and `--cluster-reset-restore-to`
    /// (server only).
    pub reset: ResetSettings,
    pub etcd: EtcdSettings,
    pub snapshot: SnapshotSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
    /// `--etcd-s3` and friends: `None` unless `etcd-s3` is true.
    pub s3: Option<S3Settings>,
    /// `--kubeconfig`: how to reach the Kubernetes API (else `KUBECONFIG`, else in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// `--etcd-snapshot-install-crd` (server): create/update the CRD at start.
    pub install_crd: bool,
}

/// A cluster reset asked for on the server's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetSettings {
    pub cluster_reset: bool,
    /// A local path, or an S3 object name when `etcd-s3` is on.
    pub restore_path: Option<String>,
    /// `--cluster-reset-restore-to`: replay the delta chain up to this point after the full
    /// snapshot (chosen automatically when `restore_path` is not given).
    pub restore_to: Option<super::restore_to::RestoreTo>,
    /// `--cluster-reset-backup-retention`: backups of each kind kept; 0 keeps all.
    pub backup_retention: u32,
}

/// How to reach etcd, or how to run the embedded one.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `--etcd-endpoints`; empty means "run the embedded etcd".
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `--etcd-binary`: the etcd executable for the embedded default.
    pub binary: PathBuf,
    /// `--etcd-client-address`: embedded etcd client listener (loopback by default).
    pub client_address: SocketAddr,
    /// `--etcd-peer-address`: embedded etcd peer listener (loopback by default).
    pub peer_address: SocketAddr,
    /// `--etcd-join-endpoint`: an existing cluster's member the embedded etcd joins when it
    /// has no data yet.
    pub join_endpoint: Option<String>,
}

impl EtcdSettings {
    /// Plain-HTTP access to existing members at `endpoints`, with the built-in defaults for
    /// everything else (no TLS files; embedded listeners on the default loopback ports).
    pub fn plain(endpoints: Vec<String>) -> Self {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        Self {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            binary: PathBuf::from("etcd"),
            client_address: SocketAddr::new(loopback, 2379),
            peer_address: SocketAddr::new(loopback, 2380),
            join_endpoint: None,
        }
    }

    /// True when no endpoint is configured and the server must start its own etcd.
    pub fn is_embedded(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints to dial: the configured ones, or the embedded member's client listener
    /// (TLS only; an unspecified listen address is dialled on loopback).
    pub fn client_endpoints(&self) -> Vec<String> {
        if !self.is_embedded() {
            return self.endpoints.clone();
        }
        let mut address = self.client_address;
        if address.ip().is_unspecified() {
            address.set_ip(match address.ip() {
                IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        vec![format!("https://{address}")]
    }

    /// The client TLS files our processes use with the embedded etcd, in the member's TLS dir
    /// (`etcd::certs` issues them there): the server CA, `client.crt` and `client.key`.
    pub fn embedded_client_files(server_dir: &Path) -> [PathBuf; 3] {
        let dir = server_dir.join("tls").join("etcd");
        [
            dir.join("server-ca.crt"),
            dir.join("client.crt"),
            dir.join("client.key"),
        ]
    }
}

/// Snapshot naming, placement, compression, retention and schedule.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `--etcd-disable-snapshots`: no scheduled snapshots (on-demand still works).
    pub disabled: bool,
    /// `--etcd-snapshot-name`: base name of scheduled snapshots.
    pub scheduled_name: String,
    /// `--name`: base name of on-demand snapshots.
    pub on_demand_name: String,
    /// `--etcd-snapshot-compress` / `--snapshot-compress`.
    pub compress: bool,
    /// `--etcd-snapshot-dir` / `--dir`; defaults to `<data-dir>/server/db/snapshots`.
    pub dir: PathBuf,
    /// True when `dir` is the default (only the default dir is created automatically).
    pub dir_is_default: bool,
    /// `--etcd-snapshot-allowed-dirs`: other dirs an API request's `dir` may name.
    pub allowed_dirs: Vec<PathBuf>,
    /// `--etcd-snapshot-allowed-ca-dirs`: dirs whose files a request's endpoint CA may name.
    pub allowed_ca_dirs: Vec<PathBuf>,
    /// `--etcd-snapshot-retention` / `--snapshot-retention`; 0 keeps everything.
    pub retention: u32,
    /// `etcd-snapshot-retention-*`: the policy's other rules (`config::retention`).
    pub retention_rules: crate::snapshot::retention::RetentionRules,
    /// `--etcd-snapshot-reconcile-interval`: period of the server's reconcile (S3 backfill).
    pub reconcile_interval: Duration,
    /// `--etcd-snapshot-schedule-cron`.
    pub schedule: Schedule,
    /// `etcd-snapshot-encryption-*`: age recipients of new snapshots, this host's identities.
    pub encryption: super::encryption::EncryptionSettings,
    /// `etcd-snapshot-delta*`: continuous capture of changes between full snapshots.
    pub delta: super::delta::DeltaSettings,
    /// `etcd-snapshot-verify-*`: when the server runs restore drills on its own.
    pub verify: super::verify::VerifySettings,
}

impl SnapshotSettings {
    /// `<snapshot dir>/../.metadata`, a sibling of the snapshot dir, as RKE2 lays it out.
    pub fn metadata_dir(&self) -> PathBuf {
        crate::layout::metadata_dir_for(&self.dir)
    }
}

/// The authenticated snapshot API: where the server listens and where the CLI connects.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `--bind-address` (server).
    pub bind_address: IpAddr,
    /// `--supervisor-port` (server).
    pub supervisor_port: u16,
    /// `--tls-san` (server): extra names on the API serving certificate.
    pub tls_san: Vec<String>,
    /// `--etcd-server` (CLI): URL of the server to ask.
    pub server_url: String,
    /// `--etcd-token` (CLI): token to authenticate with; defaults to `<data-dir>/server/token`.
    pub token: Option<SecretString>,
    /// `--etcd-server-ca` (CLI): the CA to verify the server with.
    pub server_ca: Option<PathBuf>,
}

/// Where and how snapshots are replicated to an S3-compatible object store.
///
/// Secrets stay in `SecretString`, so the derived `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `--etcd-s3-endpoint`: `host[:port]` without a scheme (`insecure` picks http or https).
    pub endpoint: String,
    /// `--etcd-s3-endpoint-ca`: a PEM file path or inline PEM, added to the system roots.
    pub endpoint_ca: Option<String>,
    /// `--etcd-s3-skip-ssl-verify`: accept any server certificate (the CA is then unused).
    pub skip_ssl_verify: bool,
    /// `--etcd-s3-access-key`; with the secret key, static credentials instead of the AWS chain.
    pub access_key: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    /// `--etcd-s3-bucket`; empty only when `config_secret` will supply it.
    pub bucket: String,
    pub bucket_lookup: BucketLookup,
    /// `--etcd-s3-region`: reaches the SigV4 signer (strict servers reject a wrong one).
    pub region: String,
    /// `--etcd-s3-folder`: key prefix, as given (cleaned by the store's key layout).
    pub folder: String,
    pub proxy: S3Proxy,
    /// `--etcd-s3-insecure`: plain HTTP.
    pub insecure: bool,
    /// `--etcd-s3-timeout`: budget of each S3 operation.
    pub timeout: Duration,
    /// `--etcd-s3-retention`, defaulting to `--etcd-snapshot-retention`; 0 keeps all.
    pub retention: u32,
    /// `etcd-s3-retention-*`, each defaulting to its `etcd-snapshot-retention-*` twin.
    pub retention_rules: crate::snapshot::retention::RetentionRules,
    /// `--etcd-s3-config-secret`: kube-system Secret that may supply the whole block.
    pub config_secret: Option<String>,
}

/// `--etcd-s3-bucket-lookup-type`: path-style or virtual-host-style addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BucketLookup {
    /// Virtual-host style for `*.amazonaws.com` endpoints, path style for everything else.
    #[default]
    Auto,
    /// Virtual-host style: `https://<bucket>.<endpoint>/<key>`.
    Dns,
    /// Path style: `https://<endpoint>/<bucket>/<key>`.
    Path,
}

impl BucketLookup {
    /// Parses `auto`, `dns` or `path` (any case); empty means auto.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "dns" => Some(Self::Dns),
            "path" => Some(Self::Path),
            _ => None,
        }
    }
}

/// `--etcd-s3-proxy`: which proxy S3 traffic goes through. Debug redacts a URL's user info.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum S3Proxy {
    /// Unset: `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` apply.
    #[default]
    FromEnv,
    /// `none`: direct connections even when the proxy variables are set.
    Disabled,
    /// An explicit proxy URL with a scheme and a host, as given: `user:password@` in it reaches
    /// the HTTP client, and only `Debug` and `redact_userinfo` are for display.
    Url(String),
}

impl fmt::Debug for S3Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Proxy::FromEnv => f.write_str("FromEnv"),
            S3Proxy::Disabled => f.write_str("Disabled"),
            S3Proxy::Url(url) => f.debug_tuple("Url").field(&redact_userinfo(url)).finish(),
        }
    }
}

/// `text` with the user info of its URL replaced by `<redacted>`: `http://user:pw@proxy:3128`
/// shows as `http://<redacted>@proxy:3128`. The user goes too, not only the password: some
/// proxies take a token as the user name, and scheme, host and port are what tell an operator
/// which proxy is used. Everything up to the *last* `@` goes, so a password holding an unescaped
/// `@`, `/` or `#` (a malformed URL an error message quotes) never shows either.
pub fn redact_userinfo(text: &str) -> Cow<'_, str> {
    let (scheme, rest) = match text.find("://") {
        Some(at) => text.split_at(at + 3),
        None => ("", text),
    };
    match rest.rfind('@') {
        Some(at) => Cow::Owned(format!("{scheme}<redacted>{}", &rest[at..])),
        None => Cow::Borrowed(text),
    }
}

impl S3Proxy {
    /// Parses the setting: empty is `FromEnv`, `none` is `Disabled`, anything else must be a
    /// `scheme://host[:port][/...]` URL. The error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::FromEnv);
        }
        if text.eq_ignore_ascii_case("none") {
            return Ok(Self::Disabled);
        }
        let expected =
            || "\"none\" or a proxy URL with a scheme and a host, such as http://proxy:3128";
        let (scheme, rest) = text.split_once("://").ok_or_else(expected)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        if scheme_ok && is_host_port(host_port) {
            Ok(Self::Url(text.to_string()))
        } else {
            Err(expected().into())
        }
    }
}

/// `host[:port]` (an IPv6 host in brackets): letters, digits, `-`, `.` and `_` only, so
/// percent-escapes, spaces and schemes are rejected.
pub fn is_host_port(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => ("v6", after.strip_prefix(':').unwrap_or("x")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (text, "1"),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// The data-dir paths, owned by `crate::layout`; these are the config's shortcuts to them.
impl DesiredConfig {
    /// Every path under the data dir.
    pub fn data_layout(&self) -> DataDirLayout {
        DataDirLayout::new(&self.data_dir)
    }
    /// `<data-dir>/server`.
    pub fn server_dir(&self) -> PathBuf {
        self.data_layout().server_dir()
    }
    /// The server's lifetime lock (see `DataDirLayout::server_lock_path`).
    pub fn server_lock_path(&self) -> PathBuf {
        self.data_layout().server_lock_path()
    }
    /// `<data-dir>/server/db`.
    pub fn db_dir(&self) -> PathBuf {
        self.data_layout().db_dir()
    }
    /// `<data-dir>/server/db/etcd`: the embedded member's data.
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.data_layout().etcd_data_dir()
    }
    /// `<data-dir>/server/token`.
    pub fn token_path(&self) -> PathBuf {
        self.data_layout().token_path()
    }
    /// `<data-dir>/server/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_layout().tls_dir()
    }
    /// The default snapshot dir for a data dir.
    pub fn default_snapshot_dir(data_dir: &Path) -> PathBuf {
        DataDirLayout::new(data_dir).default_snapshot_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_redacted_whole_and_the_rest_kept() {
        for (given, shown) in [
            ("http://alice:pw@proxy:3128", "http://<redacted>@proxy:3128"),
            (
                "https://token@[::1]:8443/p",
                "https://<redacted>@[::1]:8443/p",
            ),
            ("http://a:p@ss@proxy:3128", "http://<redacted>@proxy:3128"),
            ("alice:pw@proxy:3128", "<redacted>@proxy:3128"),
            ("http://proxy:3128", "http://proxy:3128"),
            ("none", "none"),
            ("", ""),
        ] {
            assert_eq!(redact_userinfo(given), shown, "{given}");
        }
    }

    #[test]
    fn proxy_debug_never_shows_credentials() {
        let proxy = S3Proxy::Url("http://alice:s3cr3t@proxy:3128".into());
        assert_eq!(
            format!("{proxy:?}"),
            r#"Url("http://<redacted>@proxy:3128")"#
        );
        assert_eq!(format!("{:?}", S3Proxy::FromEnv), "FromEnv");
        assert_eq!(format!("{:?}", S3Proxy::Disabled), "Disabled");
    }
}
