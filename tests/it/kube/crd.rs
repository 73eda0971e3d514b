//! `etcd-snapshot crd` prints exactly the committed `manifests/crd.yaml`, so the manifest cannot
//! drift from the definition the code builds; and the server installs the CRD only when asked
//! (`--etcd-snapshot-install-crd`), never replacing one it did not write.

use std::path::Path;
use std::sync::Arc;

use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{CRD, manifest_crd, wait_until};
use crate::s3::ops::blocking;
use crate::support::{TestServer, free_port, run, text};

#[test]
fn crd_output_is_the_committed_manifest() {
    let data = tempfile::tempdir().unwrap();
    let out = run(&["crd"], data.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/crd.yaml");
    let committed = std::fs::read(&manifest).expect("read manifests/crd.yaml");
    assert!(
        out.stdout == committed,
        "manifests/crd.yaml is stale: regenerate it with `etcd-snapshot crd > manifests/crd.yaml`\n\
         printed:\n{stdout}"
    );
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "crd must not touch the data dir"
    );
}

/// A server named `node` reporting to `api`, on an etcd that is not there (the CRD step does
/// not need one), with `extra` flags.
async fn kube_server(api: &KubeApi, dir: &Path, node: &str, extra: &[&str]) -> Arc<TestServer> {
    let kubeconfig = dir.join(format!("kubeconfig-{node}"));
    api.write_kubeconfig(&kubeconfig);
    let data = dir.join(node);
    std::fs::create_dir_all(&data).unwrap();
    let mut args = vec![
        format!("--etcd-endpoints=http://127.0.0.1:{}", free_port()),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--etcd-disable-snapshots".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let node = node.to_string();
    let server = blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        TestServer::start_as(&node, &data, &refs)
    })
    .await;
    Arc::new(server)
}

async fn wait_for_log(server: &Arc<TestServer>, text: &'static str) {
    let probe = Arc::clone(server);
    wait_until(text, move || probe.log_text().contains(text)).await;
}

fn crd_writes(api: &KubeApi) -> usize {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let requests = api.requests().into_iter();
    requests
        .filter(|r| r.path.starts_with(crds) && r.method != "GET")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_installs_the_crd_only_when_asked_and_never_replaces_a_foreign_one() {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();

    // By default: nothing is installed, and one line says what to do.
    let quiet = kube_server(&api, dir.path(), "n1", &[]).await;
    wait_for_log(&quiet, "etcd-snapshot-install-crd is off").await;
    assert!(api.get(CRD).is_none());
    assert_eq!(crd_writes(&api), 0);
    let log = quiet.log_text();
    assert_eq!(
        log.matches("kubectl apply -f manifests/crd.yaml").count(),
        1,
        "{log}"
    );

    // Opted in: created, labelled as ours.
    let installer = kube_server(&api, dir.path(), "n2", &["--etcd-snapshot-install-crd"]).await;
    let probe = Arc::new(api);
    let api = Arc::clone(&probe);
    wait_until("the CRD to be created", move || probe.get(CRD).is_some()).await;
    let installed = api.get(CRD).unwrap();
    let labels = &installed["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "etcd-snapshot");
    drop(installer);

    // Someone else's older definition: opted in or not, it is left exactly as it is.
    let mut foreign = manifest_crd();
    foreign["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("additionalPrinterColumns");
    api.put(CRD, foreign);
    let before = api.get(CRD).unwrap();
    let writes = crd_writes(&api);
    let server = kube_server(&api, dir.path(), "n3", &["--etcd-snapshot-install-crd"]).await;
    wait_for_log(&server, "left unchanged").await;
    assert_eq!(api.get(CRD).unwrap(), before);
    assert_eq!(crd_writes(&api), writes);
}
