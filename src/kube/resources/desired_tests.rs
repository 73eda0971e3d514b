//! Unit tests of `desired`: the JSON of desired resources against RKE2's objects, scope
//! filtering, and the quantity form of sizes.

use serde_json::json;

use super::*;
use crate::kube::crd::etcd_snapshot_file_crd;

fn seed_s3() -> S3Spec {
    S3Spec {
        endpoint: "localhost:9090".into(),
        endpoint_ca: String::new(),
        skip_ssl_verify: true,
        bucket: "test-bucket".into(),
        region: "us-east-1".into(),
        prefix: "test-folder".into(),
        insecure: true,
    }
}

fn record(storage: Storage, node: &str, file: &str) -> SnapshotRecord {
    let location = match storage {
        Storage::Local => format!("file:///var/lib/rancher/rke2/server/db/snapshots/{file}"),
        Storage::S3 => format!("s3://test-bucket/test-folder/{file}"),
    };
    SnapshotRecord::example(file, &location, node, storage)
}

/// The seed's `kubectl describe` example, as the object RKE2 stores.
#[test]
fn s3_resource_matches_the_seed_example() {
    let mut r = record(Storage::S3, "server-0", "etcd-snapshot-server-0-1754906881");
    r.token_hash = Some("2bb80d537b1d".into());
    let got = serde_json::to_value(desired_resource(&r, Some(&seed_s3()))).unwrap();
    let want = json!({
        "apiVersion": "k3s.cattle.io/v1",
        "kind": "ETCDSnapshotFile",
        "metadata": {
            "name": "s3-etcd-snapshot-server-0-1754906881-e1e196",
            "labels": {"etcd.rke2.cattle.io/snapshot-storage-node": "s3"},
            "annotations": {"etcd.rke2.cattle.io/snapshot-token-hash": "2bb80d537b1d"}
        },
        "spec": {
            "snapshotName": "etcd-snapshot-server-0-1754906881",
            "nodeName": "server-0",
            "location": "s3://test-bucket/test-folder/etcd-snapshot-server-0-1754906881",
            "s3": {
                "bucket": "test-bucket",
                "endpoint": "localhost:9090",
                "insecure": true,
                "prefix": "test-folder",
                "region": "us-east-1",
                "skipSSLVerify": true
            }
        },
        "status": {
            "creationTime": "2025-08-11T10:08:01Z",
            "readyToUse": true,
            "size": "8937504"
        }
    });
    assert_eq!(got, want);
}

#[test]
fn local_resource_has_node_label_and_no_s3_block() {
    let mut r = record(Storage::Local, "server-0", "on-demand-server-0-1754906881");
    r.metadata = Some([("k".to_string(), "v".to_string())].into());
    let got = serde_json::to_value(desired_resource(&r, Some(&seed_s3()))).unwrap();
    assert_eq!(
        got["metadata"]["labels"],
        json!({"etcd.rke2.cattle.io/snapshot-storage-node": "server-0"})
    );
    assert!(got["metadata"].get("annotations").is_none());
    assert!(got["spec"].get("s3").is_none());
    assert_eq!(got["spec"]["metadata"], json!({"k": "v"}));
    assert!(
        got["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("local-on-demand-server-0-1754906881-")
    );
}

#[test]
fn failure_record_is_not_ready_with_error_and_zero_size() {
    let mut r = record(Storage::Local, "server-0", "on-demand-server-0-1754906881");
    r.location = String::new();
    r.ready = false;
    r.size = 1234;
    r.error = Some("etcd unavailable".into());
    r.metadata = Some(Default::default());
    let got = serde_json::to_value(desired_resource(&r, None)).unwrap();
    assert_eq!(
        got["status"],
        json!({
            "creationTime": "2025-08-11T10:08:01Z",
            "readyToUse": false,
            "size": "0",
            "error": {"time": "2025-08-11T10:08:01Z", "message": "etcd unavailable"}
        })
    );
    assert_eq!(got["spec"]["location"], "");
    assert!(
        got["spec"].get("metadata").is_none(),
        "empty metadata is omitted"
    );
}

/// Every desired resource validates against our own CRD's schema (same fields, same types).
#[test]
fn desired_resources_fit_the_crd_schema() {
    let crd = serde_json::to_value(etcd_snapshot_file_crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut failed = record(Storage::S3, "n1", "x-n1-1");
    failed.ready = false;
    failed.error = Some("boom".into());
    for r in [record(Storage::S3, "n1", "x-n1-1"), failed] {
        let got = serde_json::to_value(desired_resource(&r, Some(&seed_s3()))).unwrap();
        for part in ["spec", "status"] {
            for (field, value) in got[part].as_object().unwrap() {
                let schema = &root[part]["properties"][field];
                assert!(!schema.is_null(), "{part}.{field} not in the CRD");
                if let Some(fields) = value.as_object() {
                    for sub in fields.keys() {
                        assert!(!schema["properties"][sub].is_null(), "{part}.{field}.{sub}");
                    }
                }
            }
        }
    }
}

#[test]
fn desired_set_keeps_own_local_rows_and_listed_s3_rows() {
    let records = [
        record(Storage::Local, "n1", "a-n1-1"),
        record(Storage::Local, "n2", "a-n2-1"),
        record(Storage::S3, "s3", "a-n1-1"),
        record(Storage::S3, "s3", "a-n1-1"),
    ];
    let mut scope = Scope {
        node_name: "n1".into(),
        s3: None,
    };
    let names = |scope: &Scope| -> Vec<String> {
        desired_set(scope, &records)
            .iter()
            .map(|r| r.name().to_string())
            .collect()
    };
    assert_eq!(names(&scope), vec![resource_name(&records[0])]);
    scope.s3 = Some(seed_s3());
    let mut want = vec![resource_name(&records[0]), resource_name(&records[2])];
    want.sort();
    assert_eq!(names(&scope), want, "duplicates collapse to one");
}

#[test]
fn quantities_use_decimal_si_canonical_form() {
    let cases = [
        (0, "0"),
        (999, "999"),
        (1500, "1500"),
        (5000, "5k"),
        (8_937_504, "8937504"),
        (10_000_000, "10M"),
        (1_200_000, "1200k"),
        (3_000_000_000, "3G"),
        (7_000_000_000_000_000_000, "7E"),
    ];
    for (bytes, text) in cases {
        assert_eq!(format_quantity(bytes), text);
        assert_eq!(
            parse_quantity(&json!(text)),
            Some(u128::from(bytes)),
            "{text}"
        );
    }
}

#[test]
fn quantities_parse_other_spellings() {
    let cases = [
        (json!(8937504), Some(8_937_504)),
        (json!("1Ki"), Some(1024)),
        (json!("2Mi"), Some(2 * 1024 * 1024)),
        (json!("1.5k"), Some(1500)),
        (json!("12e3"), Some(12_000)),
        (json!("0.5"), None),
        (json!("-1"), None),
        (json!("10m"), None),
        (json!(""), None),
        (json!(true), None),
    ];
    for (value, want) in cases {
        assert_eq!(parse_quantity(&value), want, "{value}");
    }
}

#[test]
fn encrypted_copies_carry_the_encryption_annotations_and_plain_ones_none() {
    let mut r = record(Storage::Local, "n1", "on-demand-n1-1754906881.zip.age");
    r.metadata = Some(
        [
            (
                "Etcd-Snapshot-Encryption-Fingerprints".to_string(),
                "age1:000000000000000b,age1:000000000000000a".to_string(),
            ),
            ("team".to_string(), "a".to_string()),
        ]
        .into(),
    );
    let got = serde_json::to_value(desired_resource(&r, None)).unwrap();
    assert_eq!(
        got["metadata"]["annotations"],
        json!({
            "etcd-snapshot.io/encryption": "age",
            "etcd-snapshot.io/encrypted-to": "age1:000000000000000a,age1:000000000000000b"
        })
    );
    // The recorded entry is ours: spec.metadata shows the ConfigMap's entries only.
    assert_eq!(got["spec"]["metadata"], json!({"team": "a"}));
    r.metadata = None;
    let got = serde_json::to_value(desired_resource(&r, None)).unwrap();
    assert_eq!(
        got["metadata"]["annotations"],
        json!({"etcd-snapshot.io/encryption": "age"})
    );
    r.file_name = "on-demand-n1-1754906881.zip".into();
    let got = serde_json::to_value(desired_resource(&r, None)).unwrap();
    assert!(got["metadata"].get("annotations").is_none());
}
