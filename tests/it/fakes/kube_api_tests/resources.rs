//! Write-side tests of the Kubernetes API stand-in through kube-rs: ETCDSnapshotFile resources
//! as dynamic objects (conflicts, selectors, patches), CRD installation and the status
//! subresource, server-side apply, JSON patch and finalizers.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{api_error, snapshot_file, snapshot_files};
use crate::fakes::kube_api::KubeApi;

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
    let label = etcd_snapshot::kube::crd::STORAGE_NODE_LABEL;
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
async fn custom_resources_follow_their_installed_crd() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api = KubeApi::start().await;
    api.require_crds();
    let client = api.client().await;
    let files: Api<DynamicObject> = Api::all_with(client.clone(), &snapshot_files());
    let unserved = api_error(files.list(&ListParams::default()).await);
    assert_eq!(unserved.code, 404);

    let crds: Api<CustomResourceDefinition> = Api::all(client);
    // The product's own definition, as the server would install it.
    let ours = serde_json::to_value(etcd_snapshot::kube::crd::etcd_snapshot_file_crd()).unwrap();
    let crd: CustomResourceDefinition = serde_json::from_value(ours).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("install crd");
    let created = files
        .create(&PostParams::default(), &snapshot_file("local-a", "node-a"))
        .await
        .expect("create after install");
    // RKE2's CRD has no status subresource: status is written with the object, and /status
    // does not exist.
    assert_eq!(created.data["status"]["readyToUse"], true);
    let patch = json!({"status": {"readyToUse": false}});
    let no_status = api_error(
        files
            .patch_status("local-a", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(no_status.code, 404);

    // A CRD that declares the subresource splits the writes, as the apiserver does.
    api.put(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}}),
    );
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        api.client().await,
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    );
    let mut widget = DynamicObject::new("w", &ApiResource::from_gvk_with_plural(&gvk, "widgets"));
    widget.data = json!({"spec": {"size": 1}, "status": {"phase": "ignored"}});
    let created = widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    assert!(created.data.get("status").is_none(), "{created:?}");
    let status = json!({"status": {"phase": "Ready"}, "spec": {"size": 9}});
    let patched = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        (
            patched.data["status"]["phase"].as_str(),
            patched.data["spec"]["size"].as_i64()
        ),
        (Some("Ready"), Some(1))
    );
    let mut main = patched.clone();
    main.data["status"] = json!({"phase": "Overwritten"});
    main.data["spec"]["size"] = json!(2);
    let replaced = widgets
        .replace("w", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"]["phase"], "Ready");
    assert_eq!(replaced.metadata.generation, Some(2));
}

#[tokio::test]
async fn apply_json_patch_and_finalizers() {
    let api = KubeApi::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(api.client().await, "default");
    let apply = PatchParams::apply("etcd-snapshot").force();
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let created = maps
        .patch("c", &apply, &Patch::Apply(&desired))
        .await
        .expect("apply creates");
    assert_eq!(created.data.unwrap()["a"], "1");
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let applied = maps
        .patch("c", &apply, &Patch::Apply(&desired))
        .await
        .expect("apply merges");
    let data = applied.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "2"));

    let ops = json!([
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "remove", "path": "/data/a"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/hold"]}
    ]);
    let patched = maps
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(ops).unwrap()),
        )
        .await
        .expect("json patch");
    assert!(!patched.data.unwrap().contains_key("a"));
    let failing = json!([{"op": "test", "path": "/data/b", "value": "nope"}]);
    let refused = api_error(
        maps.patch(
            "c",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(failing).unwrap()),
        )
        .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));

    // A finalizer holds the object after DELETE until it is removed.
    maps.delete("c", &DeleteParams::default())
        .await
        .expect("delete");
    let held = maps.get("c").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    maps.patch("c", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("release");
    assert_eq!(api_error(maps.get("c").await).code, 404);
}
