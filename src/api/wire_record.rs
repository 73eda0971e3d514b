//! The `ETCDSnapshotFile` form of a listed snapshot: what RKE2's `list` returns, and what the
//! CLI's `-o json|yaml` and the Kubernetes resources carry; and a retention verdict as `prune`
//! reports it. Made here, at the edge, so the snapshot layer holds no wire types.

use super::wire::{
    EtcdSnapshotError, EtcdSnapshotFile, EtcdSnapshotSpec, EtcdSnapshotStatus, ObjectMeta,
    RetentionVerdict,
};
use crate::snapshot::retention::Verdict;
use crate::snapshot::{SnapshotRecord, Storage};

impl SnapshotRecord {
    /// The `ETCDSnapshotFile` RKE2's `list` returns for this record.
    pub fn to_snapshot_file(&self) -> EtcdSnapshotFile {
        EtcdSnapshotFile {
            api_version: "k3s.cattle.io/v1".into(),
            kind: "ETCDSnapshotFile".into(),
            metadata: ObjectMeta {
                name: self.list_key(),
                ..Default::default()
            },
            spec: EtcdSnapshotSpec {
                snapshot_name: self.file_name.clone(),
                node_name: self.node_name.clone(),
                location: self.location.clone(),
                metadata: self.metadata.clone(),
                s3: None,
            },
            status: EtcdSnapshotStatus {
                size: Some(self.size.to_string()),
                creation_time: Some(self.created_rfc3339()),
                ready_to_use: Some(self.ready),
                error: self.error.as_ref().map(|message| EtcdSnapshotError {
                    time: Some(self.created_rfc3339()),
                    message: Some(message.clone()),
                }),
            },
        }
    }
}

impl Verdict {
    /// The verdict as `prune` reports it, for the copy in `storage` at `location`.
    pub fn to_wire(&self, storage: Storage, location: String) -> RetentionVerdict {
        RetentionVerdict {
            name: self.file_name.clone(),
            storage: match storage {
                Storage::Local => "local",
                Storage::S3 => "s3",
            }
            .into(),
            location,
            created: crate::snapshot::record::rfc3339(self.created_unix),
            action: if self.keep { "keep" } else { "remove" }.into(),
            rule: self.rule.code().into(),
            reason: self.rule.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::snapshot::{SnapshotRecord, Storage};

    fn record(name: &str) -> SnapshotRecord {
        SnapshotRecord {
            size: 42,
            ..SnapshotRecord::example(name, &format!("file:///d/{name}"), "n1", Storage::Local)
        }
    }

    #[test]
    fn snapshot_file_has_rke2_shape() {
        let json = serde_json::to_value(record("x-n1-1754906881").to_snapshot_file()).unwrap();
        assert_eq!(json["apiVersion"], "k3s.cattle.io/v1");
        assert_eq!(json["spec"]["snapshotName"], "x-n1-1754906881");
        assert_eq!(json["status"]["size"], "42");
        assert_eq!(json["status"]["creationTime"], "2025-08-11T10:08:01Z");
        assert_eq!(json["status"]["readyToUse"], true);
    }
}
