//! The serving certificate of the running API, replaceable without a restart.
//!
//! rustls asks `LiveCert` for the certificate at every handshake, so swapping the value inside
//! changes what new connections get; connections already open keep the session they
//! negotiated. `keep_renewed` is the server task that swaps in a new certificate when
//! `tls_policy` says the current one is due, and is the same issuing code the start uses.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::tls::{self, ServingCert};
use super::tls_policy::Validity;

/// After a failed renewal (full disk, unreadable CA), the next attempt comes this much later,
/// or sooner when the certificate has less life left than that.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(600);
/// Never look again sooner than this, whatever the dates say, so odd dates cannot make the
/// task spin.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// The certificate handed to every new TLS handshake.
pub struct LiveCert {
    current: RwLock<(Arc<CertifiedKey>, Validity)>,
}

impl LiveCert {
    pub fn new(serving: ServingCert) -> Self {
        LiveCert {
            current: RwLock::new((serving.key, serving.validity)),
        }
    }

    /// When the certificate being served is valid.
    pub fn validity(&self) -> Validity {
        self.read().1
    }

    /// The DER of the certificate being served.
    pub fn certificate(&self) -> Vec<u8> {
        self.read().0.cert[0].to_vec()
    }

    /// Serves `serving` to every handshake from now on.
    pub fn replace(&self, serving: ServingCert) {
        // A poisoned lock only means a panic elsewhere while holding it; the value is whole.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = (serving.key, serving.validity);
    }

    fn read(&self) -> (Arc<CertifiedKey>, Validity) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (Arc::clone(&current.0), current.1)
    }
}

/// Only the validity: nothing about the key is ever formatted.
impl std::fmt::Debug for LiveCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCert")
            .field("validity", &self.validity())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().0)
    }
}

/// Renews the serving certificate of `tls_dir` for `names` whenever it is due, until `cancel`.
pub async fn keep_renewed(
    tls_dir: PathBuf,
    names: Vec<String>,
    live: Arc<LiveCert>,
    cancel: CancellationToken,
) {
    let mut wait = live.validity().next_check(SystemTime::now());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait.max(MIN_WAIT)) => {}
        }
        let validity = live.validity();
        let now = SystemTime::now();
        if !validity.renew_due(now) {
            wait = validity.next_check(now);
            continue;
        }
        wait = match tls::reissue(&tls_dir, &names) {
            Ok(serving) => {
                let renewed = serving.validity;
                live.replace(serving);
                tracing::info!(not_after = %rfc3339(renewed.not_after),
                    "renewed the API serving certificate");
                renewed.next_check(SystemTime::now())
            }
            Err(e) => {
                let left = validity.not_after.duration_since(now).unwrap_or_default();
                let retry = RETRY_AFTER_FAILURE.min(left / 2).max(MIN_WAIT);
                tracing::error!(error = %chain(&e),
                    not_after = %rfc3339(validity.not_after), retry_in = ?retry,
                    "failed to renew the API serving certificate");
                retry
            }
        };
    }
}

/// The error and its sources, `: `-joined (the API layer does not depend on `operations`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
