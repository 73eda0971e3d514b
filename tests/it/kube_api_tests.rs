//! Tests of the Kubernetes API stand-in (tests/it/kube_api/) through the real kube-rs client,
//! over HTTPS, with a client loaded from a kubeconfig file. They prove the stand-in answers the
//! way kube-rs expects an apiserver to (typed and dynamic objects, Status errors, watcher,
//! events Recorder, pagination); they do not test etcd-snapshot itself.

use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::kube_api::KubeApi;

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
            "etcd.k3s.cattle.io/snapshot-storage-node".to_string(),
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
async fn the_kube_watcher_sees_init_apply_and_delete() {
    let api = KubeApi::start().await;
    api.put(
        "/api/v1/namespaces/default/configmaps/before",
        json!({"data": {"k": "v"}}),
    );
    let maps: Api<ConfigMap> = Api::namespaced(api.client().await, "default");
    let mut stream = Box::pin(watcher::watcher(maps.clone(), watcher::Config::default()));

    assert!(matches!(next(&mut stream).await.unwrap(), Event::Init));
    match next(&mut stream).await.unwrap() {
        Event::InitApply(map) => assert_eq!(map.metadata.name.as_deref(), Some("before")),
        other => panic!("expected InitApply, got {other:?}"),
    }
    assert!(matches!(next(&mut stream).await.unwrap(), Event::InitDone));

    let mut map = ConfigMap::default();
    map.metadata.name = Some("after".into());
    maps.create(&PostParams::default(), &map)
        .await
        .expect("create configmap");
    match next(&mut stream).await.unwrap() {
        Event::Apply(map) => assert_eq!(map.metadata.name.as_deref(), Some("after")),
        other => panic!("expected Apply, got {other:?}"),
    }
    // Another namespace is not part of this watch.
    api.put("/api/v1/namespaces/other/configmaps/elsewhere", json!({}));
    assert!(api.remove("/api/v1/namespaces/default/configmaps/before"));
    match next(&mut stream).await.unwrap() {
        Event::Delete(map) => assert_eq!(map.metadata.name.as_deref(), Some("before")),
        other => panic!("expected Delete, got {other:?}"),
    }
    assert!(!api.remove("/api/v1/namespaces/default/configmaps/before"));
    let watch = api
        .requests()
        .into_iter()
        .find(|r| r.query.contains("watch=true"))
        .expect("a watch request");
    assert!(
        watch.query.contains("allowWatchBookmarks=true"),
        "{watch:?}"
    );
}

#[tokio::test]
async fn snapshot_file_resources_follow_the_apiserver_rules() {
    let api = KubeApi::start().await;
    let files: Api<DynamicObject> = Api::all_with(api.client().await, &snapshot_files());
    let created = files
        .create(&PostParams::default(), &snapshot_file("local-a", "node-a"))
        .await
        .expect("create a");
    files
        .create(&PostParams::default(), &snapshot_file("local-b", "node-b"))
        .await
        .expect("create b");
    files
        .create(&PostParams::default(), &snapshot_file("s3-c", "s3"))
        .await
        .expect("create c");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("ETCDSnapshotFile")
    );

    let mut fresh = files.get("local-a").await.expect("get a");
    let mut stale = fresh.clone();
    stale.metadata.resource_version = Some("1".into());
    stale.data["status"]["readyToUse"] = json!(false);
    let conflict = api_error(
        files
            .replace("local-a", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict
            .message
            .contains("etcdsnapshotfiles.k3s.cattle.io \"local-a\""),
        "{}",
        conflict.message
    );

    fresh.data["status"]["readyToUse"] = json!(false);
    let replaced = files
        .replace("local-a", &PostParams::default(), &fresh)
        .await
        .expect("fresh replace");
    assert_eq!(replaced.data["status"]["readyToUse"], false);
    assert_ne!(
        replaced.metadata.resource_version,
        fresh.metadata.resource_version
    );
    assert_eq!(replaced.metadata.uid, created.metadata.uid);

    let names = |list: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect()
    };
    let label = "etcd.k3s.cattle.io/snapshot-storage-node";
    let mine = files
        .list(&ListParams::default().labels(&format!("{label} in (node-a,s3)")))
        .await
        .unwrap();
    assert_eq!(names(mine), ["local-a", "s3-c"]);
    let others = files
        .list(&ListParams::default().labels(&format!("{label} notin (node-a,s3)")))
        .await
        .unwrap();
    assert_eq!(names(others), ["local-b"]);

    let patch = json!({"metadata": {"annotations": {"etcd.k3s.cattle.io/token-hash": "abc"}}, "spec": {"nodeName": "node-z"}});
    let patched = files
        .patch("local-b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["nodeName"], "node-z");
    assert_eq!(patched.data["spec"]["snapshotName"], "local-b");
    assert_eq!(patched.metadata.generation, Some(2));

    let unversioned = {
        let mut o = files.get("s3-c").await.unwrap();
        o.metadata.resource_version = None;
        o
    };
    let refused = api_error(
        files
            .replace("s3-c", &PostParams::default(), &unversioned)
            .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));

    files
        .delete("local-b", &DeleteParams::default())
        .await
        .expect("delete b");
    let gone = api_error(files.delete("local-b", &DeleteParams::default()).await);
    assert_eq!(gone.reason, "NotFound");
    let left: Vec<_> = api
        .list("/apis/k3s.cattle.io/v1/etcdsnapshotfiles")
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(left, [json!("local-a"), json!("s3-c")]);
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
async fn lists_are_paginated_with_continue_tokens() {
    let api = KubeApi::start().await;
    for i in 0..7 {
        api.put(
            &format!("/api/v1/namespaces/ns{}/configmaps/map-{i}", i % 2),
            json!({}),
        );
    }
    let maps: Api<ConfigMap> = Api::all(api.client().await);
    let mut params = ListParams::default().limit(3);
    let mut pages = Vec::new();
    loop {
        let page = maps.list(&params).await.expect("list page");
        pages.push(
            page.items
                .iter()
                .map(|m| m.metadata.name.clone().unwrap())
                .collect::<Vec<_>>(),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let mut all: Vec<String> = pages.concat();
    all.sort();
    assert_eq!(all, (0..7).map(|i| format!("map-{i}")).collect::<Vec<_>>());

    // The watcher's own paging (page size 2) reaches every object too.
    let config = watcher::Config::default().page_size(2);
    let mut stream = Box::pin(watcher::watcher(maps, config));
    let mut seen = 0;
    loop {
        match next(&mut stream).await.expect("watch") {
            Event::InitApply(_) => seen += 1,
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, 7);
    let lists = api
        .requests()
        .into_iter()
        .filter(|r| r.query.contains("limit=2"))
        .count();
    assert_eq!(lists, 4);
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

#[tokio::test]
async fn a_watcher_relists_after_its_resource_version_is_compacted() {
    let api = KubeApi::start().await;
    api.put(
        "/api/v1/namespaces/default/configmaps/kept",
        json!({"metadata": {"labels": {"app": "x"}}}),
    );
    let maps: Api<ConfigMap> = Api::namespaced(api.client().await, "default");
    // No bookmarks and a 1 s watch: the watcher resumes from the last event it saw.
    let config = watcher::Config::default()
        .labels("app=x")
        .disable_bookmarks()
        .timeout(1);
    let mut stream = Box::pin(watcher::watcher(maps, config));
    let mut init_done = 0;
    while init_done == 0 {
        if let Ok(Event::InitDone) = next(&mut stream).await {
            init_done += 1;
        }
    }
    api.put(
        "/api/v1/namespaces/default/configmaps/late",
        json!({"metadata": {"labels": {"app": "x"}}}),
    );
    let seen_at = api.resource_version();
    loop {
        if let Ok(Event::Apply(map)) = next(&mut stream).await {
            assert_eq!(map.metadata.name.as_deref(), Some("late"));
            break;
        }
    }
    // A change this watch filters out, then compaction past it: resuming from `seen_at` is
    // no longer possible, so the next watch gets 410 and the watcher lists again.
    api.put("/api/v1/namespaces/default/configmaps/unrelated", json!({}));
    api.compact();
    let mut relisted = Vec::new();
    loop {
        match next(&mut stream).await {
            Ok(Event::InitApply(map)) => relisted.push(map.metadata.name.unwrap()),
            Ok(Event::InitDone) => break,
            _ => {}
        }
    }
    assert_eq!(relisted, ["kept", "late"]);
    let resumed = format!("resourceVersion={seen_at}");
    let expired_watch = api
        .requests()
        .into_iter()
        .any(|r| r.query.contains("watch=true") && r.query.contains(&resumed));
    assert!(
        expired_watch,
        "the watcher resumed from the compacted version"
    );
}
