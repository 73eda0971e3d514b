//! A stand-in for the Kubernetes API server, for integration tests.
//!
//! Why: no kube-apiserver, envtest, kind or k3s can be installed on the machines these tests run
//! on, and a mocked client would not exercise the code we ship. So this module serves the part
//! of the Kubernetes REST API that etcd-snapshot uses over real HTTPS (a private CA made per
//! server, bearer-token authentication), and the real kube-rs client talks to it, both inside
//! the test process ([`KubeApi::client`], built through kube's kubeconfig loader) and from the
//! real `etcd-snapshot` binary ([`KubeApi::write_kubeconfig`]).
//!
//! What it reproduces, for any resource type (an in-memory store keyed by collection,
//! namespace and name; a path's shape decides whether it is namespaced):
//! - GET of one object; LIST with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists,
//!   `!exists`), `fieldSelector` (equality on any field path), `limit`/`continue` pagination;
//!   WATCH (`watch=true|1`) with resourceVersion replay, `sendInitialEvents`, bookmarks,
//!   `timeoutSeconds`, 410 Expired after [`KubeApi::compact`], as a chunked JSON-lines stream.
//! - POST (AlreadyExists, `generateName`, name and label validation), PUT (Conflict on a stale
//!   resourceVersion; custom resources require one), PATCH (merge, strategic merge approximated
//!   as merge, JSON patch, server-side apply approximated as create-or-merge), DELETE (with
//!   finalizers and preconditions) and DELETE of a collection; one global resourceVersion
//!   counter, uid, creationTimestamp, generation bumped by changes outside metadata and status;
//!   updates that change nothing are not written.
//! - The `/status` subresource when the type has one (built-ins that do, or a CRD stored here
//!   that declares it), or for unknown types; otherwise `/status` is 404 as on a real cluster.
//! - `Status` error bodies worded like the apiserver's (NotFound, AlreadyExists, Conflict,
//!   Invalid, BadRequest, Unauthorized, Forbidden, Expired) and injected faults
//!   ([`KubeApi::fail_next`]).
//!
//! - Enough for kubectl: legacy discovery (`/api`, `/apis`, resource lists, with custom types
//!   taken from the stored CRDs), `meta.k8s.io/v1` Tables when the `Accept` header asks for one
//!   (`kubectl get`: columns from the CRD's `additionalPrinterColumns`), and one Event storage
//!   behind both `events.k8s.io/v1` and core `v1` (`kubectl describe` lists core Events with
//!   `involvedObject` field selectors, while kube's recorder writes `events.k8s.io/v1`).
//!
//! What it does not: admission (no defaulting, no webhooks, no namespace lifecycle: any
//! namespace exists), OpenAPI or CRD schema validation (a custom resource's unknown fields are
//! pruned per its CRD's structural schema, `prune`, but values are not checked against it), RBAC (every valid token may
//! do everything, use `fail_next` for Forbidden), aggregated discovery and OpenAPI documents,
//! protobuf or YAML responses, field managers and managed fields (apply never removes fields),
//! consistent snapshots for paginated lists (later pages see later writes), `dryRun`,
//! sub-resources other than `/status`, type-specific Table columns of built-in types (they get
//! the default `Name`, `Created At`), and watches of `events.k8s.io/v1` Events (only core `v1`
//! Events can be watched). A test passing here is
//! evidence about our client code and about kubectl's reading of what we write, not about a
//! cluster's admission or schema rules.
//!
//! The server runs on the test's tokio runtime: start the `etcd-snapshot` binary or kubectl with
//! `tokio::process`, or use a multi-thread runtime, so that waiting for the child does not stop
//! the server answering it.

mod discovery;
mod events_view;
mod ids;
mod patch;
mod paths;
mod prune;
mod routes;
mod selectors;
mod status;
mod store;
mod table;
mod tls;
mod validate;
mod watch;
mod writes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

pub use store::SeenRequest;

use routes::Shared;
use store::{Store, key_of};

/// A running stand-in; stops serving (listener, connections and watches) when dropped.
pub struct KubeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    _shutdown: tokio::sync::watch::Sender<()>,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The storage target of a fixture path, and whether it is the `events.k8s.io` view of Events
/// (whose objects the fixtures convert, as the HTTP face does).
fn target_of(object_path: &str) -> (paths::Target, bool) {
    let target = paths::parse(object_path)
        .unwrap_or_else(|| panic!("not an API object path: {object_path}"));
    if events_view::is_events_view(&target) {
        (events_view::core_target(&target), true)
    } else {
        (target, false)
    }
}

fn shown(value: Value, events: bool) -> Value {
    if events {
        events_view::to_view(value)
    } else {
        value
    }
}

impl KubeApi {
    /// HTTPS on 127.0.0.1:0 with a private CA, requiring `Authorization: Bearer <token>`.
    /// Call inside a tokio runtime.
    pub async fn start() -> KubeApi {
        // kube builds its TLS config from the process default provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind kube api");
        let addr = listener.local_addr().expect("kube api addr");
        let (config, ca_pem) = tls::server_config();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(());
        let token = format!("kube-api-token-{}", ids::name_suffix());
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            token,
            shutdown,
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve_connection(serving.clone(), acceptor.clone(), tcp));
            }
        });
        let dir = tempfile::tempdir().expect("kube api temp dir");
        KubeApi {
            shared,
            addr,
            ca_pem,
            dir,
            task,
            _shutdown: shutdown_tx,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (cluster server + certificate-authority-data, user token, current-context)
    /// at `path`.
    pub fn write_kubeconfig(&self, path: &Path) {
        let ca = STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    \
             server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: stand-in\n  \
             user:\n    token: {token}\ncontexts:\n- name: stand-in\n  context:\n    \
             cluster: stand-in\n    user: stand-in\n    namespace: default\n\
             current-context: stand-in\n",
            url = self.url(),
            token = self.shared.token,
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// A kube::Client built through kube's own kubeconfig loader from such a file.
    pub async fn client(&self) -> kube::Client {
        let path = self.dir.path().join("kubeconfig");
        self.write_kubeconfig(&path);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("load kubeconfig");
        kube::Client::try_from(config).expect("kube client")
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().expect("store lock")
    }

    /// Test fixture: create-or-replace an object at its path (no preconditions, no validation),
    /// filling server-owned metadata and emitting the watch event.
    pub fn put(&self, object_path: &str, object: Value) {
        let (target, events) = target_of(object_path);
        let mut object = if events {
            events_view::to_core(object)
        } else {
            object
        };
        let name = target.name.clone().expect("put needs an object path");
        if !object["metadata"].is_object() {
            object["metadata"] = serde_json::json!({});
        }
        let key = key_of(&target, &name);
        let mut store = self.store();
        if store.get(&key).is_some() {
            store.replace(&target, key, object);
        } else {
            store.insert_new(&target, key, object);
        }
    }

    /// Deletes an object by path at once, finalizers or not (emits DELETED); false when absent.
    pub fn remove(&self, object_path: &str) -> bool {
        let (target, _) = target_of(object_path);
        let key = key_of(
            &target,
            target.name.as_deref().expect("remove needs an object path"),
        );
        self.store().purge(&key).is_some()
    }

    pub fn get(&self, object_path: &str) -> Option<Value> {
        let (target, events) = target_of(object_path);
        let key = key_of(
            &target,
            target.name.as_deref().expect("get needs an object path"),
        );
        let found = self.store().get(&key).cloned();
        found.map(|value| shown(value, events))
    }

    /// Every object in a collection (one namespace, or all for an all-namespaces path).
    pub fn list(&self, collection_path: &str) -> Vec<Value> {
        let (target, events) = target_of(collection_path);
        assert!(
            target.name.is_none(),
            "list needs a collection path: {collection_path}"
        );
        let store = self.store();
        let objects = store.list(&target.collection, target.namespace.as_deref());
        let objects = objects.into_iter().map(|(_, v)| shown(v.clone(), events));
        objects.collect()
    }

    /// Requests served so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.store().requests()
    }

    /// The next `count` requests whose method matches and whose path starts with
    /// `path_prefix` get a Status error with `code`.
    pub fn fail_next(&self, method: &str, path_prefix: &str, code: u16, count: usize) {
        self.store().add_fault(method, path_prefix, code, count);
    }

    /// From now on, custom resources are served only once their CustomResourceDefinition is
    /// stored (created through the API or `put`), as on a real cluster; until then their paths
    /// answer a plain-text 404. Off by default, so tests of other things need no CRD.
    pub fn require_crds(&self) {
        self.store().require_crds = true;
    }

    /// Forgets the change history, as etcd compaction does: watches resuming from an earlier
    /// resourceVersion get 410 Expired and kube's watcher must re-list.
    pub fn compact(&self) {
        self.store().compact();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().resource_version()
    }
}

async fn serve_connection(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: tokio::net::TcpStream) {
    let mut shutdown = shared.shutdown.clone();
    let Ok(stream) = acceptor.accept(tcp).await else {
        return;
    };
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(shared, request).await) }
    });
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}
