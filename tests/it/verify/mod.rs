//! Evidence for `etcd-snapshot verify` through the real binary, a real server and real etcd
//! (snapshots of tens of keys, so each drill takes about a second): damage of every kind caught
//! and shown failed everywhere (`damage`), what a verdict changes elsewhere (`places`), and how
//! drills start (`triggers`). This file holds the helpers they share.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::Digest;

use crate::support::{TestEtcd, TestServer, require_binary, run, snapshot_dir, text};

mod damage;
mod places;
mod rke2_crd;
mod triggers;

/// Has the restore tool a drill needs (etcdutl 3.5, or etcdctl for 3.4).
fn restore_tool() -> bool {
    require_binary("etcdutl").is_some() || require_binary("etcdctl").is_some()
}

fn put_values(etcd: &TestEtcd, tag: &str) {
    for i in 0..20 {
        etcd.put(
            &format!("/registry/pods/default/p{i}"),
            &format!("{tag}-{i:04}"),
        );
    }
}

/// Saves `base` through the server; returns the new file name.
fn save(server: &TestServer, base: &str, compress: bool) -> String {
    let mut args = vec!["save", "--name", base];
    if compress {
        args.push("--snapshot-compress");
    }
    let out = server.cli(&args);
    assert!(out.status.success(), "{:?}", text(&out));
    crate::support::snapshot_files(&snapshot_dir(&server.data_dir))
        .into_iter()
        .find(|n| n.starts_with(&format!("{base}-")))
        .expect("saved snapshot")
}

/// The `.metadata/<name>` record of a local copy.
fn record(data: &Path, name: &str) -> BTreeMap<String, String> {
    let bytes = std::fs::read(data.join("server/db/.metadata").join(name)).expect("record");
    serde_json::from_slice(&bytes).expect("a JSON object of strings")
}

/// `verify -o json` through the server (off the async runtime): exit code and reply.
async fn verify(server: &TestServer, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["verify".to_string(), "-o".into(), "json".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (url, node, data) = (server.url(), server.node.clone(), server.data_dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut with_server = vec!["--etcd-server".to_string(), url, "--node-name".into(), node];
        with_server.extend(all);
        let refs: Vec<&str> = with_server.iter().map(String::as_str).collect();
        run(&refs, &data)
    })
    .await
    .unwrap();
    let reply: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&out)));
    (out.status.code(), reply)
}

/// The drill of `name` in `storage` from a verify reply.
fn drill<'a>(reply: &'a Value, name: &str, storage: &str) -> &'a Value {
    reply["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name && d["storage"] == storage)
        .unwrap_or_else(|| panic!("no {storage} drill of {name}: {reply:#}"))
}

fn failed_checks(drill: &Value) -> Vec<String> {
    drill["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// One metric sample's value.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Replaces the file's page holding the root bucket with garbage of a valid type byte's
/// neighbour and recomputes the SHA-256 trailer: whole to the hash check, broken inside.
fn damage_page_keep_trailer(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let db = bytes.len() - 32;
    let page_size = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let root = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    bytes[root * page_size + 8] = 0x10;
    let digest = sha2::Sha256::digest(&bytes[..db]);
    bytes[db..].copy_from_slice(&digest);
    std::fs::write(path, bytes).unwrap();
}

/// An `age-keygen` key pair in `dir`: (identity file, public key).
fn keygen(dir: &Path, name: &str) -> Option<(std::path::PathBuf, String)> {
    let keygen = require_binary("age-keygen")?;
    let path = dir.join(name);
    let out = std::process::Command::new(&keygen)
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let public = std::process::Command::new(&keygen)
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert!(public.status.success(), "{:?}", text(&public));
    Some((
        path,
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    ))
}
