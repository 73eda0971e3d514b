//! What `ls -o json|yaml` shows for each copy, as RKE2's list reply does: every item is the
//! `ETCDSnapshotFile` RKE2 would write for that copy (storage-node label, token-hash annotation,
//! `spec.metadata`, `spec.s3`, quantity size; `kube::resources::desired_resource` builds it for
//! the resource mirror and for this list alike) under RKE2's list key (`local-<name>` /
//! `s3-<name>`) instead of the resource name. Pure.

use super::{
    EtcdSnapshotError, EtcdSnapshotFile, EtcdSnapshotSpec, EtcdSnapshotStatus, ObjectMeta,
};
use crate::kube::resources::{S3Spec, desired_resource};
use crate::snapshot::SnapshotRecord;

/// One item of the list reply: RKE2's resource for `record` (with `s3` as its `spec.s3` when
/// the copy is in S3) under the list key, without a creation timestamp (RKE2's list items are
/// built in memory, never stored).
pub(super) fn list_item(record: &SnapshotRecord, s3: Option<&S3Spec>) -> EtcdSnapshotFile {
    let resource = desired_resource(record, s3);
    let status = resource.status.unwrap_or_default();
    EtcdSnapshotFile {
        api_version: resource.api_version,
        kind: resource.kind,
        metadata: ObjectMeta {
            name: record.list_key(),
            creation_timestamp: None,
            labels: resource.metadata.labels.unwrap_or_default(),
            annotations: resource.metadata.annotations.unwrap_or_default(),
        },
        spec: EtcdSnapshotSpec {
            snapshot_name: resource.spec.snapshot_name,
            node_name: resource.spec.node_name,
            location: resource.spec.location,
            metadata: resource.spec.metadata,
            s3: resource
                .spec
                .s3
                .and_then(|s3| serde_json::to_value(s3).ok()),
        },
        status: EtcdSnapshotStatus {
            size: status.size.and_then(|v| v.as_str().map(str::to_owned)),
            creation_time: status.creation_time,
            ready_to_use: status.ready_to_use,
            error: status.error.map(|e| EtcdSnapshotError {
                time: e.time,
                message: e.message,
            }),
            verification: status.verification,
            point_in_time: status.point_in_time,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::snapshot::Storage;

    fn s3_spec() -> S3Spec {
        S3Spec {
            endpoint: "s3.example.com".into(),
            bucket: "test-bucket".into(),
            region: "us-east-1".into(),
            prefix: "test-folder".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_s3_copy_is_listed_as_rke2_lists_it() {
        let mut record = SnapshotRecord::example(
            "etcd-snapshot-server-0-1754906881",
            "s3://test-bucket/test-folder/etcd-snapshot-server-0-1754906881",
            "server-0",
            Storage::S3,
        );
        record.size = 10_000_000;
        record.token_hash = Some("9f86d081884c".into());
        record.metadata = Some(BTreeMap::from([("team".into(), "platform".into())]));
        let item = serde_json::to_value(list_item(&record, Some(&s3_spec()))).unwrap();
        assert_eq!(
            item,
            json!({
                "apiVersion": "k3s.cattle.io/v1",
                "kind": "ETCDSnapshotFile",
                "metadata": {
                    "name": "s3-etcd-snapshot-server-0-1754906881",
                    "creationTimestamp": null,
                    "labels": {"etcd.rke2.cattle.io/snapshot-storage-node": "s3"},
                    "annotations": {"etcd.rke2.cattle.io/snapshot-token-hash": "9f86d081884c"}
                },
                "spec": {
                    "snapshotName": "etcd-snapshot-server-0-1754906881",
                    "nodeName": "server-0",
                    "location": "s3://test-bucket/test-folder/etcd-snapshot-server-0-1754906881",
                    "metadata": {"team": "platform"},
                    "s3": {
                        "endpoint": "s3.example.com",
                        "bucket": "test-bucket",
                        "region": "us-east-1",
                        "prefix": "test-folder"
                    }
                },
                "status": {"size": "10M", "creationTime": "2025-08-11T10:08:01Z", "readyToUse": true}
            })
        );
    }

    #[test]
    fn a_local_copy_has_its_node_label_and_no_s3_block() {
        let record = SnapshotRecord::example(
            "on-demand-n1-1754906881",
            "file:///var/lib/rancher/rke2/server/db/snapshots/on-demand-n1-1754906881",
            "n1",
            Storage::Local,
        );
        let item = serde_json::to_value(list_item(&record, Some(&s3_spec()))).unwrap();
        assert_eq!(
            item["metadata"],
            json!({
                "name": "local-on-demand-n1-1754906881",
                "creationTimestamp": null,
                "labels": {"etcd.rke2.cattle.io/snapshot-storage-node": "n1"}
            })
        );
        assert!(item["spec"].get("s3").is_none(), "{item}");
        assert_eq!(item["status"]["size"], "8937504");
    }
}
