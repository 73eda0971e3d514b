//! Tests of the Kubernetes API stand-in (tests/it/fakes/kube_api/) through the real kube-rs client,
//! over HTTPS, with a client loaded from a kubeconfig file. They prove the stand-in answers the
//! way kube-rs expects an apiserver to (typed and dynamic objects, Status errors, watcher,
//! events Recorder, pagination, kubectl); they do not test etcd-snapshot itself. Watch-side
//! tests are in kube_api_tests/watch.rs, write-side ones in kube_api_tests/resources.rs.

use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::fakes::kube_api::KubeApi;

mod resources;
mod watch;

/// The next item of a watch stream, within 10 s. (`futures` is not a dependency; the watcher's
/// own extension trait names `Stream` as its supertrait, which is enough to poll it.)
async fn next<S: WatchStreamExt + Unpin>(stream: &mut S) -> S::Item {
    let poll = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx));
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("watch event within 10 s")
        .expect("watch stream ended")
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn snapshot_files() -> ApiResource {
    let gvk = GroupVersionKind::gvk("k3s.cattle.io", "v1", "ETCDSnapshotFile");
    ApiResource::from_gvk_with_plural(&gvk, "etcdsnapshotfiles")
}

fn snapshot_file(name: &str, node: &str) -> DynamicObject {
    let mut object = DynamicObject::new(name, &snapshot_files());
    object.metadata.labels = Some(
        [(
            etcd_snapshot::kube::crd::STORAGE_NODE_LABEL.to_string(),
            node.to_string(),
        )]
        .into(),
    );
    object.data = json!({
        "spec": {"snapshotName": name, "nodeName": node, "location": format!("file:///snap/{name}")},
        "status": {"readyToUse": true, "size": "1024"}
    });
    object
}

#[tokio::test]
async fn secrets_are_created_read_and_missing_ones_are_not_found() {
    let api = KubeApi::start().await;
    let secrets: Api<Secret> = Api::namespaced(api.client().await, "kube-system");
    let mut secret = Secret::default();
    secret.metadata.name = Some("s3".into());
    secret.string_data = None;
    secret.data = Some(
        [(
            "bucket".to_string(),
            k8s_openapi::ByteString(b"snaps".to_vec()),
        )]
        .into(),
    );
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let read = secrets.get("s3").await.expect("get secret");
    assert_eq!(read.data.unwrap()["bucket"].0, b"snaps");
    assert_eq!(
        read.metadata.resource_version,
        created.metadata.resource_version
    );
    let stored = api
        .get("/api/v1/namespaces/kube-system/secrets/s3")
        .expect("stored");
    assert_eq!(stored["kind"], "Secret");

    let missing = api_error(secrets.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "secrets \"nope\" not found");
    let again = api_error(secrets.create(&PostParams::default(), &secret).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));

    let reads: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        reads,
        [
            "/api/v1/namespaces/kube-system/secrets/s3",
            "/api/v1/namespaces/kube-system/secrets/nope"
        ]
    );
}

#[tokio::test]
async fn generate_name_and_invalid_names() {
    let api = KubeApi::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(api.client().await, "default");
    let mut map = ConfigMap::default();
    map.metadata.generate_name = Some("snap-".into());
    let first = maps
        .create(&PostParams::default(), &map)
        .await
        .expect("create generated");
    let second = maps
        .create(&PostParams::default(), &map)
        .await
        .expect("create generated");
    let (a, b) = (first.metadata.name.unwrap(), second.metadata.name.unwrap());
    assert!(a.starts_with("snap-") && a.len() == 10, "{a}");
    assert_ne!(a, b);

    map.metadata.generate_name = None;
    map.metadata.name = Some("Not_A_Name".into());
    let invalid = api_error(maps.create(&PostParams::default(), &map).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    map.metadata.name = None;
    let unnamed = api_error(maps.create(&PostParams::default(), &map).await);
    assert!(
        unnamed.message.contains("name or generateName is required"),
        "{}",
        unnamed.message
    );
}

#[tokio::test]
async fn injected_faults_hit_only_the_matching_requests() {
    let api = KubeApi::start().await;
    api.put(
        "/api/v1/namespaces/kube-system/secrets/s3",
        json!({"data": {}}),
    );
    let secrets: Api<Secret> = Api::namespaced(api.client().await, "kube-system");
    api.fail_next("GET", "/api/v1/namespaces/kube-system/secrets", 403, 1);
    api.fail_next("get", "/api/v1/namespaces/kube-system/secrets/s3", 500, 1);

    let forbidden = api_error(secrets.get("s3").await);
    assert_eq!(
        (forbidden.code, forbidden.reason.as_str()),
        (403, "Forbidden")
    );
    assert!(
        forbidden
            .message
            .contains("cannot get resource \"secrets\""),
        "{}",
        forbidden.message
    );
    let internal = api_error(secrets.get("s3").await);
    assert_eq!(
        (internal.code, internal.reason.as_str()),
        (500, "InternalError")
    );
    secrets.get("s3").await.expect("third read succeeds");
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let api = KubeApi::start().await;
    let path = tempfile::tempdir().unwrap().keep().join("kubeconfig");
    api.write_kubeconfig(&path);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(api.token(), "wrong-token");
    std::fs::write(&path, text).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let status = api_error(secrets.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    let seen = api.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/v1/namespaces/default/secrets");
}

#[tokio::test]
async fn the_events_recorder_publishes_to_events_k8s_io() {
    use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
    let api = KubeApi::start().await;
    let client = api.client().await;
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "etcd-snapshot".into(),
            instance: Some("node-a".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("k3s.cattle.io/v1".into()),
        kind: Some("ETCDSnapshotFile".into()),
        name: Some("local-a".into()),
        uid: Some("1234".into()),
        ..Default::default()
    };
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: "ETCDSnapshotCreated".into(),
        note: Some("Snapshot local-a saved on node-a".into()),
        action: "Save".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("publish");
    recorder
        .publish(&event, &reference)
        .await
        .expect("publish again");
    let events = api.list("/apis/events.k8s.io/v1/namespaces/default/events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "ETCDSnapshotCreated");
    assert_eq!(events[0]["regarding"]["name"], "local-a");
    assert_eq!(events[0]["series"]["count"], 2);
    let methods: Vec<_> = api.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["POST", "PATCH"]);
}

#[tokio::test]
async fn the_kubeconfig_pins_the_private_ca() {
    let api = KubeApi::start().await;
    let other = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path);
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).expect("kube parses our kubeconfig");
    assert_eq!(kubeconfig.current_context.as_deref(), Some("stand-in"));
    let cluster = kubeconfig.clusters[0].cluster.clone().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(api.url().as_str()));
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.unwrap())
        .unwrap();
    assert_eq!(ca, api.ca_pem().as_bytes());

    // The same file pointed at another stand-in (another CA) must fail the TLS handshake.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&api.url(), &other.url());
    std::fs::write(&path, text).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let result = secrets.list(&ListParams::default()).await;
    assert!(
        !matches!(result, Ok(_) | Err(kube::Error::Api(_))),
        "{result:?}"
    );
    assert!(other.requests().is_empty());
}

/// client-go (through kubectl) accepts the kubeconfig, the CA and the Status bodies too.
/// A subprocess must not block the runtime the stand-in is served on: tokio::process.
#[tokio::test]
async fn kubectl_reads_through_the_same_kubeconfig() {
    let Some(kubectl) = crate::support::require_binary("kubectl") else {
        return;
    };
    let api = KubeApi::start().await;
    api.put(
        "/api/v1/namespaces/kube-system/secrets/s3",
        json!({"type": "Opaque", "data": {}}),
    );
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let raw = |path: &str| {
        let mut cmd = tokio::process::Command::new(&kubectl);
        cmd.env("HOME", home.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "--raw", path]);
        cmd.output()
    };
    let found = raw("/api/v1/namespaces/kube-system/secrets/s3")
        .await
        .unwrap();
    assert!(found.status.success(), "{found:?}");
    let secret: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(secret["metadata"]["name"], "s3");
    let missing = raw("/api/v1/namespaces/kube-system/secrets/nope")
        .await
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("(NotFound)") && stderr.contains("secrets \"nope\" not found"),
        "{stderr}"
    );
}
