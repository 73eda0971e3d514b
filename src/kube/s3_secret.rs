//! Reads the S3 config Secret (`etcd-s3-config-secret`) and the CA ConfigMap it names, afresh
//! for every operation that needs S3, and resolves them into `S3Settings`.
//!
//! No cache on purpose: a `kubectl apply` of rotated credentials must take effect on the very
//! next save, list, delete, prune or reconcile, and a deleted Secret must stop being used. The
//! parsing and checks live in `config::secret`; this file only fetches and decodes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::access::{KubeAccess, KubeError};
use crate::config::ConfigErrors;
use crate::config::desired::S3Settings;
use crate::config::secret::{self, ObjectData, SecretS3};

/// Where RKE2 keeps the Secret and the CA ConfigMap.
pub const NAMESPACE: &str = "kube-system";

/// Why the Secret's S3 block is not usable for this operation.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("failed to read S3 config Secret kube-system/{name}")]
    NoAccess {
        name: String,
        #[source]
        source: KubeError,
    },
    #[error("S3 config Secret kube-system/{name} does not exist")]
    NotFound { name: String },
    #[error("failed to read S3 config Secret kube-system/{name}")]
    Get {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "CA ConfigMap kube-system/{configmap} (Secret kube-system/{secret} key etcd-s3-endpoint-ca-name) does not exist"
    )]
    ConfigMapNotFound { secret: String, configmap: String },
    #[error(
        "failed to read CA ConfigMap kube-system/{configmap} (Secret kube-system/{secret} key etcd-s3-endpoint-ca-name)"
    )]
    ConfigMap {
        secret: String,
        configmap: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object} key {key} is not UTF-8 text")]
    NotText { object: String, key: String },
    #[error("invalid S3 config Secret kube-system/{name}")]
    Invalid {
        name: String,
        #[source]
        source: ConfigErrors,
    },
}

/// Fetches the Secret (and its CA ConfigMap) now and resolves the S3 block it supplies.
pub async fn read_s3_settings(
    access: &KubeAccess,
    name: &str,
    base: &S3Settings,
) -> Result<SecretS3, SecretError> {
    let client = access.client().map_err(|source| SecretError::NoAccess {
        name: name.into(),
        source,
    })?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let found = secrets
        .get_opt(name)
        .await
        .map_err(|source| SecretError::Get {
            name: name.into(),
            source,
        })?
        .ok_or_else(|| SecretError::NotFound { name: name.into() })?;
    let entries = secret_entries(&found, name)?;
    let configmap = match secret::ca_configmap_name(&entries) {
        Some(cm) => Some((cm.to_string(), read_ca_configmap(client, name, cm).await?)),
        None => None,
    };
    let secret_data = ObjectData {
        name,
        entries: &entries,
    };
    let cm_data = configmap
        .as_ref()
        .map(|(cm, entries)| ObjectData { name: cm, entries });
    secret::resolve_secret_s3(secret_data, cm_data, base).map_err(|source| SecretError::Invalid {
        name: name.into(),
        source,
    })
}

async fn read_ca_configmap(
    client: &kube::Client,
    secret: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, SecretError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let found = configmaps
        .get_opt(name)
        .await
        .map_err(|source| SecretError::ConfigMap {
            secret: secret.into(),
            configmap: name.into(),
            source,
        })?
        .ok_or_else(|| SecretError::ConfigMapNotFound {
            secret: secret.into(),
            configmap: name.into(),
        })?;
    let object = format!("ConfigMap kube-system/{name}");
    let mut entries = found.data.unwrap_or_default();
    for (key, bytes) in found.binary_data.unwrap_or_default() {
        entries.insert(key.clone(), text(&object, &key, bytes)?);
    }
    Ok(entries)
}

/// The Secret's values as text: `data` (what the apiserver stores), with `stringData` on top
/// for objects that still carry it.
fn secret_entries(found: &Secret, name: &str) -> Result<BTreeMap<String, String>, SecretError> {
    let object = format!("Secret kube-system/{name}");
    let mut entries = BTreeMap::new();
    for (key, bytes) in found.data.clone().unwrap_or_default() {
        entries.insert(key.clone(), text(&object, &key, bytes)?);
    }
    entries.extend(found.string_data.clone().unwrap_or_default());
    Ok(entries)
}

fn text(object: &str, key: &str, bytes: ByteString) -> Result<String, SecretError> {
    String::from_utf8(bytes.0).map_err(|_| SecretError::NotText {
        object: object.into(),
        key: key.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_and_data_are_both_read() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "etcd-s3-bucket".to_string(),
                ByteString(b"from-data".to_vec()),
            )])),
            string_data: Some(BTreeMap::from([(
                "etcd-s3-folder".to_string(),
                "from-string-data".to_string(),
            )])),
            ..Secret::default()
        };
        let entries = secret_entries(&secret, "s").unwrap();
        assert_eq!(entries["etcd-s3-bucket"], "from-data");
        assert_eq!(entries["etcd-s3-folder"], "from-string-data");
    }

    #[test]
    fn binary_values_must_be_text() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "etcd-s3-bucket".to_string(),
                ByteString(vec![0xff, 0xfe]),
            )])),
            ..Secret::default()
        };
        let err = secret_entries(&secret, "s").unwrap_err().to_string();
        assert_eq!(
            err,
            "Secret kube-system/s key etcd-s3-bucket is not UTF-8 text"
        );
    }

    #[tokio::test]
    async fn without_access_the_error_says_how_to_get_it() {
        use crate::config::resolve::{HostFacts, resolve_with};
        use crate::config::{Layer, RawValue, Source};
        let mut layer = Layer::new();
        layer.set("etcd-s3", RawValue::Bool(true), Source::Default);
        layer.set(
            "etcd-s3-config-secret",
            RawValue::String("s3".into()),
            Source::Default,
        );
        let host = HostFacts {
            hostname: Some("n".into()),
        };
        let base = resolve_with(&[&layer], &host).unwrap().config.s3.unwrap();
        let err = read_s3_settings(&KubeAccess::disabled(), "s3", &base)
            .await
            .unwrap_err();
        let chain = crate::errors::error_chain(&err);
        assert!(chain.contains("Secret kube-system/s3"), "{chain}");
        assert!(chain.contains("--kubeconfig"), "{chain}");
    }
}

#[cfg(test)]
#[path = "s3_secret_fuzz.rs"]
mod fuzz;
