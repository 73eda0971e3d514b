//! Segments encrypted to the encryption Secret's recipients, with the Kubernetes API stand-in
//! holding the Secret and a real etcd: each segment takes the recipients the Secret holds when
//! it opens (a rotation applies without a restart, as for saves), and while the Secret cannot
//! be read no segment is written at all (never a plaintext one); the changes made meanwhile are
//! captured once it is back, with no gap.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use etcd_client::Client;
use etcd_snapshot::delta::files::parse_segment_name;
use serde_json::{Value, json};

use super::*;
use crate::fakes::kube_api::KubeApi;
use crate::inspect_encrypted::{age, fingerprint, keygen};
use crate::s3::ops::{blocking, start_server};
use crate::support::require_binary;

const SECRET_PATH: &str = "/api/v1/namespaces/kube-system/secrets/snapshot-keys";

fn secret(recipients: &str) -> Value {
    let data = json!({ "etcd-snapshot-encryption-recipients": STANDARD.encode(recipients) });
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "snapshot-keys", "namespace": "kube-system"},
        "data": data,
    })
}

/// The newest published segment: (path, the fingerprints its header names).
fn newest(chain: &Path) -> (PathBuf, Vec<String>) {
    let mut named: Vec<_> = std::fs::read_dir(chain)
        .unwrap()
        .flatten()
        .filter_map(|e| Some((parse_segment_name(e.file_name().to_str()?)?, e.path())))
        .collect();
    named.sort();
    let (name, path) = named.pop().expect("a segment");
    assert!(name.form.encrypted, "{}", path.display());
    let header = etcd_snapshot::crypt::fingerprints_in_header(&std::fs::read(&path).unwrap());
    (path, header.iter().map(|f| f.to_string()).collect())
}

/// Puts `key` and waits (off the runtime: the server talks to the stand-in on it) until a
/// published segment holds it; returns its revision.
async fn captured(client: &mut Client, chain: &Path, key: &str) -> i64 {
    let revision = revision_of(client.put(key, "v", None).await.unwrap().header());
    let chain = chain.to_path_buf();
    blocking(move || {
        wait_for("a segment holding the write", WAIT, || {
            chain_end(&chain) >= revision
        })
    })
    .await;
    revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segments_follow_the_encryption_secret_and_wait_for_it_rather_than_go_plain() {
    if require_binary("age").is_none() || require_binary("age-keygen").is_none() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (_, pub_a) = keygen(dir.path(), "a.txt");
    let (id_b, pub_b) = keygen(dir.path(), "b.txt");
    api.put(SECRET_PATH, secret(&pub_a));
    let kubeconfig_flag = format!("--kubeconfig={}", kubeconfig.display());
    let args = [
        kubeconfig_flag.as_str(),
        "--etcd-snapshot-encryption-secret=snapshot-keys",
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
    ];
    let server = Arc::new(start_server(&data, &etcd.endpoint, &args).await);
    let chain = {
        let (server, data) = (server.clone(), data.clone());
        blocking(move || wait_for_chain(&data, &server)).await
    };
    let mut client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    captured(&mut client, &chain, "/a").await;
    assert_eq!(newest(&chain).1, [fingerprint(&pub_a)]);

    // Rotated in the Secret (no restart): the next segment is for B alone.
    api.put(SECRET_PATH, secret(&pub_b));
    let deadline = std::time::Instant::now() + WAIT;
    while newest(&chain).1 != [fingerprint(&pub_b)] {
        assert!(std::time::Instant::now() < deadline, "no segment for B");
        captured(&mut client, &chain, "/b").await;
    }
    let (path, _) = newest(&chain);
    let out = dir.path().join("b.seg");
    age(&[
        "-d",
        "-i",
        &id_b.display().to_string(),
        "-o",
        &out.display().to_string(),
        &path.display().to_string(),
    ]);
    etcd_snapshot::delta::segment::decode(&std::fs::read(&out).unwrap()).unwrap();

    // The Secret gone: the change waits (no segment, plaintext or not), logged.
    assert!(api.remove(SECRET_PATH));
    let before = std::fs::read_dir(&chain).unwrap().count();
    let held = revision_of(client.put("/held", "v", None).await.unwrap().header());
    let logged = server.clone();
    blocking(move || {
        wait_logged(&logged, "the recipients failure", || {
            logged
                .log_text()
                .contains("failed to read the encryption recipients for a delta segment")
        })
    })
    .await;
    assert!(
        chain_end(&chain) < held,
        "nothing captured without recipients"
    );
    assert_eq!(std::fs::read_dir(&chain).unwrap().count(), before);
    // Back: the held change is captured, encrypted, with nothing missed before it.
    api.put(SECRET_PATH, secret(&pub_b));
    let chain_again = chain.clone();
    blocking(move || wait_for("the held change", WAIT, || chain_end(&chain_again) >= held)).await;
    assert_eq!(newest(&chain).1, [fingerprint(&pub_b)]);
    let pairs: Vec<(i64, i64)> = std::fs::read_dir(&chain)
        .unwrap()
        .flatten()
        .filter_map(|e| parse_segment_name(e.file_name().to_str()?))
        .map(|n| (n.from, n.to))
        .collect();
    let anchor = pairs.iter().map(|p| p.0).min().unwrap() - 1;
    let reach = etcd_snapshot::delta::chain::chain_reach(anchor, &pairs);
    assert!(
        reach.stray.is_empty() && reach.contiguous_to >= held,
        "{pairs:?}"
    );
}
