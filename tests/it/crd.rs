//! `etcd-snapshot crd` prints exactly the committed `manifests/crd.yaml`, so the manifest cannot
//! drift from the definition the code builds.

use std::path::Path;

use crate::support::{run, text};

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
