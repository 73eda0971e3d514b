//! The S3 block supplied by the `etcd-s3-config-secret` Secret (and the CA ConfigMap it names),
//! turned into `S3Settings` by the same parsing and checks as every other layer.
//!
//! Pure: the `kube` module fetches the Secret and ConfigMap and hands their string data here.
//! Every value is tagged with its Secret key (or ConfigMap) as its source, so a bad value is an
//! error naming the Secret, the key and what was expected, never a silently kept default.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::SecretString;

use super::desired::S3Settings;
use super::keys;
use super::layer::{Layer, RawValue, Source};
use super::resolve::{ConfigError, ConfigErrors, HostFacts, ShownValue, resolve_with};

/// The Secret key naming a kube-system ConfigMap whose every value is a CA bundle.
pub const CA_CONFIGMAP_KEY: &str = "etcd-s3-endpoint-ca-name";

/// The S3 settings a Secret supplied, with what `config show --sources` prints of them.
#[derive(Debug, Clone)]
pub struct SecretS3 {
    pub settings: S3Settings,
    /// Unknown keys in the Secret (ignored).
    pub warnings: Vec<String>,
    /// The values taken from the Secret or ConfigMap, secrets redacted.
    pub shown: Vec<ShownValue>,
}

/// One fetched object's string data: its name and key/value pairs (`data` decoded).
#[derive(Debug, Clone, Copy)]
pub struct ObjectData<'a> {
    pub name: &'a str,
    pub entries: &'a BTreeMap<String, String>,
}

/// The ConfigMap the Secret names in `etcd-s3-endpoint-ca-name`, if any (trimmed, non-empty).
pub fn ca_configmap_name(secret: &BTreeMap<String, String>) -> Option<&str> {
    secret
        .get(CA_CONFIGMAP_KEY)
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
}

/// Resolves the Secret's S3 block. `ca_configmap` is the ConfigMap the Secret names (the caller
/// fails before calling when a named ConfigMap is missing). `base` supplies the retention when
/// the Secret has none, so `etcd-s3-retention` set beside the Secret still applies.
pub fn resolve_secret_s3(
    secret: ObjectData<'_>,
    ca_configmap: Option<ObjectData<'_>>,
    base: &S3Settings,
) -> Result<SecretS3, ConfigErrors> {
    let (mut layer, warnings) = secret_layer(secret);
    let mut errors: Vec<ConfigError> = missing_bucket(secret).into_iter().collect();
    match ca_bundles(secret, ca_configmap) {
        Ok(Some((pem, source))) => layer.set("etcd-s3-endpoint-ca", RawValue::String(pem), source),
        Ok(None) => {}
        Err(mut bad) => errors.append(&mut bad),
    }
    layer.set(
        "etcd-s3",
        RawValue::Bool(true),
        from_secret(secret, "(present)"),
    );
    let host = HostFacts {
        hostname: Some("secret".into()),
    };
    let resolved = match resolve_with(&[&layer], &host) {
        Ok(resolved) if errors.is_empty() => resolved,
        Ok(_) => return Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            return Err(ConfigErrors(errors));
        }
    };
    let Some(mut settings) = resolved.config.s3 else {
        return Err(ConfigErrors(errors));
    };
    if layer.get("etcd-s3-retention").is_none() {
        settings.retention = base.retention;
    }
    settings.config_secret = None;
    let shown = resolved
        .shown
        .into_iter()
        .filter(|v| matches!(v.source, Source::Secret { .. } | Source::ConfigMap { .. }))
        .filter(|v| v.key != "etcd-s3")
        .collect();
    Ok(SecretS3 {
        settings,
        warnings,
        shown,
    })
}

/// A value's source: this Secret's `key`.
fn from_secret(secret: ObjectData<'_>, key: &str) -> Source {
    Source::Secret {
        name: secret.name.to_string(),
        key: key.to_string(),
    }
}

/// The Secret's S3 keys as a layer (values trimmed, secrets as secrets), and a warning for each
/// key that is not one; the CA keys are left to `ca_bundles`.
fn secret_layer(secret: ObjectData<'_>) -> (Layer, Vec<String>) {
    let mut warnings = Vec::new();
    let mut layer = Layer::new();
    for (key, value) in secret.entries {
        // The seed's example Secret lists every key, most of them empty: empty means unset.
        if key == CA_CONFIGMAP_KEY || key == "etcd-s3-endpoint-ca" || value.trim().is_empty() {
            continue;
        }
        match keys::lookup(key).filter(|spec| is_secret_s3_key(spec.name)) {
            Some(spec) if spec.is_secret() => layer.set(
                spec.name,
                RawValue::Secret(SecretString::from(value.trim().to_string())),
                from_secret(secret, key),
            ),
            // A trailing newline (`kubectl create secret --from-file`) is not part of a value.
            Some(spec) => layer.set(
                spec.name,
                RawValue::String(value.trim().to_string()),
                from_secret(secret, key),
            ),
            None => warnings.push(format!(
                "unknown key {key:?} in Secret kube-system/{}, ignored",
                secret.name
            )),
        }
    }
    (layer, warnings)
}

/// The error for a Secret without a bucket: it must name one, whatever else is configured.
fn missing_bucket(secret: ObjectData<'_>) -> Option<ConfigError> {
    let bucket = secret.entries.get("etcd-s3-bucket");
    bucket
        .is_none_or(|b| b.trim().is_empty())
        .then(|| ConfigError {
            key: "etcd-s3-bucket".into(),
            value: None,
            source: from_secret(secret, "etcd-s3-bucket"),
            expected: "a bucket name: the Secret must set etcd-s3-bucket".into(),
        })
}

/// `config show`'s values with the Secret's in place of the configured ones they replace.
pub fn overlay_shown(shown: &mut [ShownValue], from_secret: &[ShownValue]) {
    for value in shown.iter_mut() {
        if let Some(found) = from_secret.iter().find(|s| s.key == value.key) {
            *value = found.clone();
        }
    }
}

/// S3 keys a Secret may set: every `etcd-s3-*` key but the Secret's own name.
fn is_secret_s3_key(name: &str) -> bool {
    name.starts_with("etcd-s3-") && name != "etcd-s3-config-secret"
}

/// The inline CA and every ConfigMap value, each checked to hold a certificate, joined into
/// one PEM bundle with the source that best explains it.
fn ca_bundles(
    secret: ObjectData<'_>,
    configmap: Option<ObjectData<'_>>,
) -> Result<Option<(String, Source)>, Vec<ConfigError>> {
    let mut bundles = Vec::new();
    let mut errors = Vec::new();
    let mut source = None;
    if let Some(inline) = secret
        .entries
        .get("etcd-s3-endpoint-ca")
        .filter(|v| !v.trim().is_empty())
    {
        let from = Source::Secret {
            name: secret.name.to_string(),
            key: "etcd-s3-endpoint-ca".into(),
        };
        match check_pem(inline) {
            Ok(()) => bundles.push(inline.trim().to_string()),
            Err(expected) => errors.push(pem_error("etcd-s3-endpoint-ca", &from, expected)),
        }
        source = Some(from);
    }
    if let Some(cm) = configmap {
        let from = Source::ConfigMap {
            name: cm.name.to_string(),
        };
        if cm.entries.is_empty() {
            errors.push(pem_error(
                CA_CONFIGMAP_KEY,
                &from,
                "at least one CA bundle: the ConfigMap has no data",
            ));
        }
        for (key, pem) in cm.entries {
            match check_pem(pem) {
                Ok(()) => bundles.push(pem.trim().to_string()),
                Err(expected) => {
                    let key = format!("{CA_CONFIGMAP_KEY} (ConfigMap key {key})");
                    errors.push(pem_error(&key, &from, expected));
                }
            }
        }
        source = Some(from);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(source.map(|source| (bundles.join("\n"), source)))
}

fn pem_error(key: &str, source: &Source, expected: &str) -> ConfigError {
    ConfigError {
        key: key.into(),
        value: None,
        source: source.clone(),
        expected: expected.into(),
    }
}

/// A Secret's CA is PEM content, never a path: a Secret must not make the server read files.
fn check_pem(text: &str) -> Result<(), &'static str> {
    if !text.contains("-----BEGIN") {
        return Err("PEM certificate content (-----BEGIN CERTIFICATE-----), not a file path");
    }
    let certificates = CertificateDer::pem_slice_iter(text.as_bytes())
        .filter(Result::is_ok)
        .count();
    if certificates == 0 {
        return Err("PEM with at least one valid certificate");
    }
    Ok(())
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
