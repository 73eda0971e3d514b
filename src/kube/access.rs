//! How this process reaches the Kubernetes API: `--kubeconfig`, else `KUBECONFIG`, else the
//! pod's service account, else not at all (Kubernetes features off).
//!
//! Choosing the source is pure (`choose_source`); building the client reads the kubeconfig or
//! the service-account files once. Nothing here talks to the apiserver: a client that cannot
//! reach it fails on first use, with the operation that needed it.

use std::ffi::OsString;
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::DesiredConfig;

/// The service-account token file a pod gets; its presence (with the service host variable)
/// means "running in a cluster".
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The longest any single Kubernetes API request may take to answer or to send.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the API credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    /// `--kubeconfig` (or its config key / environment variable).
    Kubeconfig(PathBuf),
    /// `KUBECONFIG` (a path list, merged as kubectl merges it).
    KubeconfigEnv(OsString),
    /// The pod's service account.
    InCluster,
    /// None of them: Kubernetes features are off.
    None,
}

/// Pure: the first source that is configured or present.
pub fn choose_source(
    configured: Option<PathBuf>,
    kubeconfig_env: Option<OsString>,
    in_cluster: bool,
) -> KubeSource {
    match (configured, kubeconfig_env) {
        (Some(path), _) => KubeSource::Kubeconfig(path),
        (None, Some(env)) if !env.is_empty() => KubeSource::KubeconfigEnv(env),
        _ if in_cluster => KubeSource::InCluster,
        _ => KubeSource::None,
    }
}

/// Why no client could be built, or why an operation cannot use Kubernetes.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes access: set --kubeconfig (or KUBECONFIG), or run in a pod with a service account"
    )]
    Disabled,
    #[error("failed to load kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("failed to load the in-cluster service account configuration")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("failed to create the Kubernetes client from {origin}")]
    Client {
        origin: String,
        #[source]
        source: kube::Error,
    },
}

/// A Kubernetes client, or the fact that there is none. Cheap to clone.
#[derive(Clone)]
pub struct KubeAccess {
    client: Option<kube::Client>,
    origin: String,
}

impl std::fmt::Debug for KubeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAccess")
            .field("origin", &self.origin)
            .finish()
    }
}

impl KubeAccess {
    /// No Kubernetes: operations that need it fail with `KubeError::Disabled`.
    pub fn disabled() -> Self {
        Self {
            client: None,
            origin: "none".into(),
        }
    }

    /// A ready client (tests, and callers that built one themselves).
    pub fn from_client(client: kube::Client, origin: impl Into<String>) -> Self {
        Self {
            client: Some(client),
            origin: origin.into(),
        }
    }

    /// Builds the client from the configuration and the process environment.
    pub async fn from_config(config: &DesiredConfig) -> Result<Self, KubeError> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && std::path::Path::new(SERVICE_ACCOUNT_TOKEN).exists();
        let source = choose_source(
            config.kubeconfig.clone(),
            std::env::var_os("KUBECONFIG"),
            in_cluster,
        );
        Self::from_source(source).await
    }

    async fn from_source(source: KubeSource) -> Result<Self, KubeError> {
        let options = KubeConfigOptions::default();
        let (mut config, origin) = match source {
            KubeSource::None => return Ok(Self::disabled()),
            KubeSource::Kubeconfig(path) => {
                let origin = format!("kubeconfig {}", path.display());
                let config = load_kubeconfig(Kubeconfig::read_from(&path), &options)
                    .await
                    .map_err(|source| KubeError::Kubeconfig {
                        path: path.display().to_string(),
                        source,
                    })?;
                (config, origin)
            }
            KubeSource::KubeconfigEnv(paths) => {
                let shown = paths.to_string_lossy().into_owned();
                let origin = format!("KUBECONFIG={shown}");
                let loaded = Kubeconfig::from_env()
                    .and_then(|found| found.ok_or(kube::config::KubeconfigError::FindPath));
                let config = load_kubeconfig(loaded, &options).await.map_err(|source| {
                    KubeError::Kubeconfig {
                        path: shown,
                        source,
                    }
                })?;
                (config, origin)
            }
            KubeSource::InCluster => (
                kube::Config::incluster().map_err(KubeError::InCluster)?,
                "the pod's service account".to_string(),
            ),
        };
        // kube waits for a response forever by default; snapshots must never wait on a silent
        // apiserver (every call here is a short request, none is a watch).
        config.read_timeout = Some(API_TIMEOUT);
        config.write_timeout = Some(API_TIMEOUT);
        let client = kube::Client::try_from(config).map_err(|source| KubeError::Client {
            origin: origin.clone(),
            source,
        })?;
        Ok(Self {
            client: Some(client),
            origin,
        })
    }

    /// The client, or `Disabled`.
    pub fn client(&self) -> Result<&kube::Client, KubeError> {
        self.client.as_ref().ok_or(KubeError::Disabled)
    }

    /// True when a client exists.
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// Where the client's credentials came from, for the startup log line.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

async fn load_kubeconfig(
    loaded: Result<Kubeconfig, kube::config::KubeconfigError>,
    options: &KubeConfigOptions,
) -> Result<kube::Config, kube::config::KubeconfigError> {
    kube::Config::from_custom_kubeconfig(loaded?, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_beats_kubeconfig_env_beats_in_cluster() {
        let flag = Some(PathBuf::from("/etc/k.yaml"));
        let env_path = OsString::from("/root/.kube/config");
        let env = Some(env_path.clone());
        assert_eq!(
            choose_source(flag.clone(), env.clone(), true),
            KubeSource::Kubeconfig("/etc/k.yaml".into())
        );
        assert_eq!(
            choose_source(None, env.clone(), true),
            KubeSource::KubeconfigEnv(env_path)
        );
        assert_eq!(
            choose_source(None, Some(OsString::new()), true),
            KubeSource::InCluster
        );
        assert_eq!(choose_source(None, None, false), KubeSource::None);
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file() {
        let Err(err) =
            KubeAccess::from_source(KubeSource::Kubeconfig("/nonexistent/kc".into())).await
        else {
            panic!("a missing kubeconfig must fail");
        };
        assert!(err.to_string().contains("/nonexistent/kc"), "{err}");
    }

    #[test]
    fn disabled_access_says_how_to_enable_it() {
        let access = KubeAccess::disabled();
        let Err(err) = access.client() else {
            panic!("disabled access has no client");
        };
        let err = err.to_string();
        assert!(err.contains("--kubeconfig"), "{err}");
    }
}
