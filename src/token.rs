//! The server token: where it comes from, creating it, and its RKE2 forms.
//!
//! Server: `--token` > `--token-file` > `<data-dir>/server/token` (created, 0600, when absent).
//! CLI: `--etcd-token` > `--token` > `--token-file` > `<data-dir>/server/token`. Tokens are
//! `SecretString` from the moment they are read and never logged; this module never prints
//! one, and its errors name only paths.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::DesiredConfig;
use crate::hex::encode as hex;

/// Errors finding or creating a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to read token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create token file {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} is empty")]
    Empty { path: PathBuf },
    #[error(
        "no server token in {path} (no server has run with this data dir, or the file is not readable); pass --etcd-token"
    )]
    Missing { path: PathBuf },
    /// RKE2's restore message.
    #[error("{path} does not exist, please pass --token to complete the restoration")]
    MissingForRestore { path: PathBuf },
}

/// Prefix of RKE2's full token form `K10<ca hash>::<user>:<password>`.
const FULL_TOKEN_PREFIX: &str = "K10";
/// Random bytes in a generated token (hex-encoded, so twice as many characters).
const GENERATED_TOKEN_BYTES: usize = 16;

/// The server's token, creating `<data-dir>/server/token` when nothing else provides one.
pub fn load_or_create_server_token(config: &DesiredConfig) -> Result<SecretString, TokenError> {
    let given = match (&config.token, &config.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(read_token_file(file)?),
        (None, None) => None,
    };
    let path = config.token_path();
    if let Some(token) = given {
        // As RKE2 does, record a given token where the CLI looks for it (only if none is there:
        // an existing file may be what other tools on this node already use).
        if !path.exists() {
            write_token_file(&path, &token)?;
        }
        return Ok(token);
    }
    match read_token_file(&path) {
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create_token_file(&path)
        }
        other => other,
    }
}

/// The token the CLI authenticates with.
pub fn client_token(config: &DesiredConfig) -> Result<SecretString, TokenError> {
    if let Some(token) = config.api.token.as_ref().or(config.token.as_ref()) {
        return Ok(token.clone());
    }
    if let Some(file) = &config.token_file {
        return read_token_file(file);
    }
    let path = config.token_path();
    read_token_file(&path).map_err(|err| match err {
        TokenError::Read { path, .. } => TokenError::Missing { path },
        other => other,
    })
}

/// The password part of a token: `K10<hash>::<user>:<password>` -> `<password>`; anything not
/// starting with `K10` is the password itself.
pub fn password_part(token: &str) -> &str {
    match split_full_token(token) {
        Some((_, credentials)) => match credentials.split_once(':') {
            Some((_user, password)) => password,
            None => credentials,
        },
        None => token,
    }
}

/// RKE2's token hash: the first 12 hex characters of sha256(password part). It goes into S3
/// object metadata (`Rke2-Token-Hash`), so a restore can tell up front whether a token matches
/// the one that wrote a snapshot.
pub fn token_hash(token: &str) -> String {
    passphrase_hash(password_part(token))
}

/// Hex characters of sha256(passphrase) that make a token hash.
const HASH_CHARS: usize = 12;

/// The first 12 hex characters of sha256(passphrase), with no token-form normalisation: the
/// token hash of an already-extracted password part, and the suffix of the bootstrap data's
/// storage key. Identifies a token without revealing it.
pub fn passphrase_hash(passphrase: &str) -> String {
    let mut full = hex(&Sha256::digest(passphrase.as_bytes()));
    full.truncate(HASH_CHARS);
    full
}

/// The server token as it exists (for a restore, or the bootstrap sync before a save): `--token`, `--token-file`, or the token file under the data
/// dir. Never created: a restore onto a new host needs the original cluster's token.
pub fn existing_server_token(config: &DesiredConfig) -> Result<SecretString, TokenError> {
    match (&config.token, &config.token_file) {
        (Some(token), _) => Ok(token.clone()),
        (None, Some(file)) => read_token_file(file),
        (None, None) => {
            let path = config.token_path();
            read_token_file(&path).map_err(|err| match err {
                TokenError::Read { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    TokenError::MissingForRestore { path }
                }
                other => other,
            })
        }
    }
}

/// The token hash of this node's server token (`--token`, `--token-file`, or the token file
/// under the data dir), without creating one; None when there is no token yet.
pub fn server_token_hash(config: &DesiredConfig) -> Option<String> {
    let token = match (&config.token, &config.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(file)) => read_token_file(file).ok()?,
        (None, None) => read_token_file(&config.token_path()).ok()?,
    };
    Some(token_hash(token.expose_secret()))
}

/// The CA hash of a `K10<hash>::<user>:<password>` token (hex sha256 of the server's CA
/// bundle), so a client can pin the CA it downloads from `/cacerts`. None for bare tokens.
pub fn ca_hash_of(token: &str) -> Option<&str> {
    split_full_token(token)
        .map(|(hash, _)| hash)
        .filter(|hash| !hash.is_empty())
}

/// `K10<hash>::<rest>` -> `(hash, rest)`.
fn split_full_token(token: &str) -> Option<(&str, &str)> {
    token.strip_prefix(FULL_TOKEN_PREFIX)?.split_once("::")
}

/// Reads a token file, trimming surrounding whitespace (files usually end in a newline).
fn read_token_file(path: &Path) -> Result<SecretString, TokenError> {
    let text = crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX).and_then(|bytes| {
        String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    });
    let raw = text.map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let raw = SecretString::from(raw);
    let trimmed = raw.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Generates a random token and stores it crash-safely at `path` (parents 0700, file 0600).
fn create_token_file(path: &Path) -> Result<SecretString, TokenError> {
    let token = generate_token().map_err(|source| TokenError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    write_token_file(path, &token)?;
    tracing::info!(path = %path.display(), "created a new server token");
    Ok(token)
}

/// Writes `token` to `path` (0600, parents 0700), atomically.
fn write_token_file(path: &Path, token: &SecretString) -> Result<(), TokenError> {
    let create_err = |source| TokenError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(create_err)?;
    }
    let mut contents = token.expose_secret().to_owned();
    contents.push('\n');
    crate::fsutil::write_atomic(path, contents.as_bytes(), 0o600).map_err(create_err)
}

/// A random hex token from the kernel's CSPRNG.
fn generate_token() -> std::io::Result<SecretString> {
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(SecretString::from(hex(&bytes)))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::schedule::Schedule;
    use crate::config::{ApiSettings, EtcdSettings, LogFormat, LogSettings, SnapshotSettings};

    fn config(data_dir: &Path) -> DesiredConfig {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        DesiredConfig {
            config_file: data_dir.join("config.yaml"),
            data_dir: data_dir.to_path_buf(),
            node_name: "node1".into(),
            token: None,
            token_file: None,
            cluster_id: String::new(),
            reset: crate::config::desired::ResetSettings {
                cluster_reset: false,
                restore_path: None,
                restore_to: None,
                backup_retention: 3,
            },
            etcd: EtcdSettings::plain(vec![]),
            snapshot: SnapshotSettings {
                disabled: false,
                scheduled_name: "etcd-snapshot".into(),
                on_demand_name: "on-demand".into(),
                compress: false,
                dir: DesiredConfig::default_snapshot_dir(data_dir),
                dir_is_default: true,
                allowed_dirs: Vec::new(),
                allowed_ca_dirs: Vec::new(),
                retention: 5,
                retention_rules: Default::default(),
                schedule: Schedule::parse("@hourly").unwrap(),
                reconcile_interval: std::time::Duration::from_secs(600),
                encryption: Default::default(),
                delta: Default::default(),
                verify: Default::default(),
            },
            api: ApiSettings {
                bind_address: loopback,
                supervisor_port: 9345,
                tls_san: Vec::new(),
                server_url: "https://127.0.0.1:9345".into(),
                token: None,
                server_ca: None,
            },
            log: LogSettings {
                format: LogFormat::Text,
                debug: false,
            },
            s3: None,
            kubeconfig: None,
            install_crd: false,
        }
    }

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_owned()))
    }

    #[test]
    fn server_token_precedence_inline_then_file_then_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        std::fs::create_dir_all(cfg.server_dir()).unwrap();
        std::fs::write(cfg.token_path(), "from-data-dir\n").unwrap();
        let file = dir.path().join("tokfile");
        std::fs::write(&file, "  from-file \n\n").unwrap();

        let got = load_or_create_server_token(&cfg).unwrap();
        assert_eq!(got.expose_secret(), "from-data-dir");
        cfg.token_file = Some(file);
        let got = load_or_create_server_token(&cfg).unwrap();
        assert_eq!(got.expose_secret(), "from-file");
        cfg.token = secret("inline");
        let got = load_or_create_server_token(&cfg).unwrap();
        assert_eq!(got.expose_secret(), "inline");
    }

    #[test]
    fn empty_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        let file = dir.path().join("tokfile");
        std::fs::write(&file, "\n").unwrap();
        cfg.token_file = Some(file.clone());
        match load_or_create_server_token(&cfg) {
            Err(TokenError::Empty { path }) => assert_eq!(path, file),
            other => panic!("expected Empty, got {other:?}"),
        }
    }

    #[test]
    fn missing_token_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let first = load_or_create_server_token(&cfg).unwrap();
        let token = first.expose_secret();
        assert!(token.len() >= 32, "token too short: {} chars", token.len());
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cfg.token_path()), 0o600);
        assert_eq!(mode(&cfg.server_dir()), 0o700);
        let second = load_or_create_server_token(&cfg).unwrap();
        assert_eq!(second.expose_secret(), token);
        // A second data dir gets a different random token.
        let other = tempfile::tempdir().unwrap();
        let third = load_or_create_server_token(&config(other.path())).unwrap();
        assert_ne!(third.expose_secret(), token);
    }

    #[test]
    fn client_token_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        match client_token(&cfg) {
            Err(TokenError::Missing { path }) => assert_eq!(path, cfg.token_path()),
            other => panic!("expected Missing, got {other:?}"),
        }
        std::fs::create_dir_all(cfg.server_dir()).unwrap();
        std::fs::write(cfg.token_path(), "stored\n").unwrap();
        assert_eq!(client_token(&cfg).unwrap().expose_secret(), "stored");
        let file = dir.path().join("tokfile");
        std::fs::write(&file, "filed").unwrap();
        cfg.token_file = Some(file);
        assert_eq!(client_token(&cfg).unwrap().expose_secret(), "filed");
        cfg.token = secret("server-inline");
        assert_eq!(client_token(&cfg).unwrap().expose_secret(), "server-inline");
        cfg.api.token = secret("etcd-token");
        assert_eq!(client_token(&cfg).unwrap().expose_secret(), "etcd-token");
    }

    #[test]
    fn password_part_follows_rke2_token_forms() {
        let hash = "a".repeat(64);
        let full = format!("K10{hash}::server:s3cret");
        assert_eq!(password_part(&full), "s3cret");
        assert_eq!(ca_hash_of(&full), Some(hash.as_str()));
        // The password may itself contain colons; only the first one separates the user.
        assert_eq!(password_part("K10abc::node:pa:ss"), "pa:ss");
        assert_eq!(password_part("K10abc::justpassword"), "justpassword");
        assert_eq!(password_part("bare-token"), "bare-token");
        assert_eq!(
            password_part("K10-without-separator"),
            "K10-without-separator"
        );
        assert_eq!(ca_hash_of("bare-token"), None);
        assert_eq!(ca_hash_of("K10::server:pw"), None);
    }

    #[test]
    fn token_hash_uses_only_the_password_part() {
        assert_eq!(token_hash("test"), "9f86d081884c");
        assert_eq!(token_hash(""), "e3b0c44298fc");
        assert_eq!(token_hash("K10abc::server:test"), "9f86d081884c");
    }

    #[test]
    fn hex_encodes_lowercase_pairs() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }
}
