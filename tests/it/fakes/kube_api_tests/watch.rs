//! Watch-side tests of the Kubernetes API stand-in through kube-rs: the watcher's list-then-
//! watch and streaming-list modes, re-listing after 410, paginated lists and object waits.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use super::next;
use crate::fakes::kube_api::KubeApi;

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

#[tokio::test]
async fn streaming_lists_and_object_waits() {
    let api = KubeApi::start().await;
    api.put("/api/v1/namespaces/default/configmaps/a", json!({}));
    let maps: Api<ConfigMap> = Api::namespaced(api.client().await, "default");
    let mut stream = Box::pin(watcher::watcher(
        maps.clone(),
        watcher::Config::default().streaming_lists(),
    ));
    assert!(matches!(next(&mut stream).await.unwrap(), Event::Init));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        Event::InitApply(_)
    ));
    assert!(matches!(next(&mut stream).await.unwrap(), Event::InitDone));
    assert!(
        api.requests().iter().all(|r| !r.query.contains("limit=")),
        "no LIST with streaming lists"
    );

    // await_condition watches one object through a metadata.name field selector.
    let ready = |map: Option<&ConfigMap>| {
        map.and_then(|m| m.data.as_ref())
            .is_some_and(|d| d.contains_key("ready"))
    };
    let waiting = tokio::spawn(kube::runtime::wait::await_condition(
        maps.clone(),
        "b",
        ready,
    ));
    api.put(
        "/api/v1/namespaces/default/configmaps/a",
        json!({"data": {"ready": "decoy"}}),
    );
    api.put(
        "/api/v1/namespaces/default/configmaps/b",
        json!({"data": {"ready": "yes"}}),
    );
    let found = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(found.unwrap().metadata.name.as_deref(), Some("b"));
    let by_name = api
        .requests()
        .into_iter()
        .any(|r| r.query.contains("fieldSelector=metadata.name%3Db"));
    assert!(by_name);
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
