//! Masking secret values in child output before it is logged or put into an error.
//!
//! The second line of defence behind `env`: should a child still print a secret (a future
//! etcd echoing a flag, a tool quoting a URL), the line we log says `<redacted>` instead.
//! `SecretMask` is a plain value (tested as one); the process keeps one registry of every
//! secret it has loaded, fed where secrets enter (the resolved config, the server token, each
//! S3 client's credentials) and read whenever child output is recorded.

use std::borrow::Cow;
use std::sync::RwLock;

use secrecy::{ExposeSecret, SecretString};

use crate::config::desired::{DesiredConfig, S3Proxy, S3Settings};

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";
/// Shorter values are not masked: they would garble ordinary words in every line, and a secret
/// this short protects nothing anyway.
pub const MIN_MASKED_LEN: usize = 4;
/// At most this many secrets are kept. API requests may bring their own S3 keys, and each one
/// is remembered: the cap bounds memory and per-line work however many requests arrive. The
/// server's own secrets are added first, at startup, so they are always in.
pub const MAX_SECRETS: usize = 1024;

/// Environment variables the AWS default credential chain reads: secrets we hold without
/// them being in our config.
pub const AWS_CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// A set of secret strings to mask, longest first so a secret that contains another is masked
/// whole. `Debug` shows only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretMask {
    secrets: Vec<String>,
}

impl std::fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretMask({} secrets)", self.secrets.len())
    }
}

impl SecretMask {
    pub const fn new() -> Self {
        Self {
            secrets: Vec::new(),
        }
    }

    /// Adds `secret` (surrounding whitespace is not part of it); false when it is too short to
    /// mask, already known, or the set is full.
    pub fn add(&mut self, secret: &str) -> bool {
        let secret = secret.trim();
        if secret.chars().count() < MIN_MASKED_LEN
            || self.secrets.len() >= MAX_SECRETS
            || self.secrets.iter().any(|s| s == secret)
        {
            return false;
        }
        let at = self
            .secrets
            .partition_point(|known| known.len() >= secret.len());
        self.secrets.insert(at, secret.to_string());
        true
    }

    /// Adds a server token and its password part (what HTTP basic auth carries alone).
    pub fn add_token(&mut self, token: &str) {
        self.add(token);
        self.add(crate::token::password_part(token.trim()));
    }

    /// Adds the credentials of an S3 block: both keys, the session token, a proxy password.
    pub fn add_s3(&mut self, s3: &S3Settings) {
        let keys = [&s3.access_key, &s3.secret_key, &s3.session_token];
        for key in keys.into_iter().flatten() {
            self.add(key.expose_secret());
        }
        if let S3Proxy::Url(url) = &s3.proxy
            && let Some(password) = userinfo_password(url)
        {
            self.add(password);
        }
    }

    /// Adds every secret of a resolved configuration.
    pub fn add_config(&mut self, config: &DesiredConfig) {
        for token in [&config.token, &config.api.token].into_iter().flatten() {
            self.add_token(token.expose_secret());
        }
        if let Some(s3) = &config.s3 {
            self.add_s3(s3);
        }
    }

    /// Adds the values of `AWS_CREDENTIAL_VARS` found in `vars`.
    pub fn add_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            if AWS_CREDENTIAL_VARS.contains(&name.as_str()) {
                self.add(&value);
            }
        }
    }

    /// `text` with every known secret replaced by `REDACTED`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// The password in `scheme://user:password@host`, if any.
fn userinfo_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _host) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// Every secret this process has loaded. Only ever grows: a rotated key may still be quoted.
static KNOWN: RwLock<SecretMask> = RwLock::new(SecretMask::new());

fn with_known(change: impl FnOnce(&mut SecretMask)) {
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    change(&mut known);
}

/// Registers the secrets of a resolved configuration (at start and on each reload).
pub fn remember_config(config: &DesiredConfig) {
    with_known(|known| known.add_config(config));
}

/// Registers the AWS credentials in this process's environment.
pub fn remember_environment() {
    with_known(|known| known.add_env(std::env::vars()));
}

/// Registers a server token loaded from its file.
pub fn remember_token(token: &SecretString) {
    with_known(|known| known.add_token(token.expose_secret()));
}

/// Registers the credentials an S3 client is built with (config, Secret or request).
pub fn remember_s3(s3: &S3Settings) {
    with_known(|known| known.add_s3(s3));
}

/// `text` with every registered secret masked.
pub fn mask_known(text: &str) -> String {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    known.mask(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(access: Option<&str>, secret: &str, session: Option<&str>, proxy: S3Proxy) -> S3Settings {
        let secret_string = |s: &str| SecretString::from(s.to_string());
        S3Settings {
            endpoint: "s3.example.com".into(),
            endpoint_ca: None,
            skip_ssl_verify: false,
            access_key: access.map(secret_string),
            secret_key: Some(secret_string(secret)),
            session_token: session.map(secret_string),
            bucket: "b".into(),
            bucket_lookup: Default::default(),
            region: "us-east-1".into(),
            folder: String::new(),
            proxy,
            insecure: false,
            timeout: std::time::Duration::from_secs(5),
            retention: 5,
            retention_rules: Default::default(),
            config_secret: None,
        }
    }

    fn mask_of(secrets: &[&str]) -> SecretMask {
        let mut mask = SecretMask::new();
        for s in secrets {
            mask.add(s);
        }
        mask
    }

    #[test]
    fn masks_every_occurrence_and_leaves_other_text() {
        let mask = mask_of(&["s3cr3t-value"]);
        assert_eq!(
            mask.mask("a=s3cr3t-value b=s3cr3t-value!"),
            "a=<redacted> b=<redacted>!"
        );
        assert!(matches!(mask.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_empty_and_repeated_values_are_not_added() {
        let mut mask = SecretMask::new();
        assert!(!mask.add(""));
        assert!(!mask.add("abc"));
        assert!(!mask.add("  abc \n"));
        assert!(mask.add("abcd"));
        assert!(!mask.add("abcd"));
        assert_eq!(mask.len(), 1);
        assert_eq!(mask.mask("ab abc abcd"), "ab abc <redacted>");
    }

    #[test]
    fn the_set_is_bounded_and_keeps_what_came_first() {
        let mut mask = mask_of(&["server-secret"]);
        for i in 0..MAX_SECRETS * 2 {
            mask.add(&format!("request-key-{i}"));
        }
        assert_eq!(mask.len(), MAX_SECRETS);
        assert_eq!(mask.mask("server-secret"), REDACTED);
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        // Added short first: order of registration must not leave a tail of the long one.
        let mask = mask_of(&["hunter2", "K10abc::server:hunter2"]);
        assert_eq!(
            mask.mask("token K10abc::server:hunter2 / pw hunter2"),
            "token <redacted> / pw <redacted>"
        );
    }

    #[test]
    fn a_token_adds_its_password_part() {
        let mut mask = SecretMask::new();
        mask.add_token("K10deadbeef::server:longpassword\n");
        assert_eq!(mask.len(), 2);
        assert_eq!(
            mask.mask("basic longpassword; full K10deadbeef::server:longpassword"),
            "basic <redacted>; full <redacted>"
        );
    }

    #[test]
    fn s3_credentials_and_proxy_password_are_added() {
        let s3 = s3(
            Some("AKIAEXAMPLEKEY"),
            "wJalrXUtnFEMI/K7MDENG",
            Some("FwoGZXIvYXdzEJr//session"),
            S3Proxy::Url("http://user:pr0xy-pass@proxy:3128".into()),
        );
        let mut mask = SecretMask::new();
        mask.add_s3(&s3);
        let line = "AKIAEXAMPLEKEY wJalrXUtnFEMI/K7MDENG FwoGZXIvYXdzEJr//session pr0xy-pass";
        assert_eq!(mask.mask(line), ["<redacted>"; 4].join(" "));
    }

    #[test]
    fn aws_credential_variables_are_added() {
        let mut mask = SecretMask::new();
        let var = |n: &str, v: &str| (n.to_string(), v.to_string());
        mask.add_env([
            var("AWS_SECRET_ACCESS_KEY", "env-secret-1"),
            var("AWS_ACCESS_KEY_ID", "env-access-1"),
            var("AWS_REGION", "us-east-1"),
            var("HOME", "/root"),
        ]);
        assert_eq!(mask.len(), 2);
        assert_eq!(
            mask.mask("env-secret-1 env-access-1 us-east-1 /root"),
            "<redacted> <redacted> us-east-1 /root"
        );
    }

    #[test]
    fn proxy_password_parsing() {
        assert_eq!(userinfo_password("http://u:p@h:1/x"), Some("p"));
        assert_eq!(userinfo_password("http://u@h"), None);
        assert_eq!(userinfo_password("http://h:3128"), None);
        assert_eq!(userinfo_password("http://h/a@b"), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let mask = mask_of(&["verysecretvalue"]);
        assert_eq!(format!("{mask:?}"), "SecretMask(1 secrets)");
    }

    #[test]
    fn the_registry_masks_what_was_remembered() {
        remember_s3(&s3(
            None,
            "registry-test-secret-7f3a",
            None,
            S3Proxy::FromEnv,
        ));
        remember_token(&"K10feed::server:registry-test-pw-19c".to_string().into());
        assert_eq!(
            mask_known("x registry-test-secret-7f3a registry-test-pw-19c"),
            "x <redacted> <redacted>"
        );
    }
}
