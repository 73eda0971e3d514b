//! Events on `ETCDSnapshotFile` resources: RKE2's reasons and message texts, and publishing them
//! through kube's event recorder (`events.k8s.io/v1`, namespace `default` for these
//! cluster-scoped objects).
//!
//! An event that cannot be published is logged and counted, never an error: the resource change
//! it describes already happened.

use ::kube::Resource;
use ::kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::model::SnapshotFile;

/// The controller name events are reported by.
pub const REPORTER: &str = "etcd-snapshot";

/// Which of RKE2's three events to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A resource was created for a snapshot that succeeded.
    Created,
    /// A resource was created for a failed save or upload.
    Failed,
    /// A resource was deleted.
    Deleted,
}

impl EventKind {
    /// The event for a just-created resource: `Failed` when it records an error.
    pub fn for_created(resource: &SnapshotFile) -> Self {
        let failed = resource
            .status
            .as_ref()
            .is_some_and(|status| status.error.is_some());
        if failed { Self::Failed } else { Self::Created }
    }

    /// The event reason, as RKE2 writes it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Created => "ETCDSnapshotCreated",
            Self::Failed => "ETCDSnapshotFailed",
            Self::Deleted => "ETCDSnapshotDeleted",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Self::Failed => EventType::Warning,
            Self::Created | Self::Deleted => EventType::Normal,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Created | Self::Failed => "Create",
            Self::Deleted => "Delete",
        }
    }
}

/// RKE2's message for the event, so tools matching on it keep working.
pub fn event_message(kind: EventKind, resource: &SnapshotFile) -> String {
    let spec = &resource.spec;
    match kind {
        EventKind::Created => format!(
            "Snapshot {} saved on {}",
            spec.snapshot_name, spec.node_name
        ),
        EventKind::Failed => {
            let detail = resource
                .status
                .as_ref()
                .and_then(|s| s.error.as_ref())
                .and_then(|e| e.message.as_deref())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!(
                "Failed to save snapshot {} on {}{detail}",
                spec.snapshot_name, spec.node_name
            )
        }
        EventKind::Deleted => format!("Snapshot {} deleted", spec.snapshot_name),
    }
}

/// A recorder reporting as `etcd-snapshot` from this node.
pub fn recorder(client: &::kube::Client, node_name: &str) -> Recorder {
    let reporter = Reporter {
        controller: REPORTER.into(),
        instance: Some(node_name.to_string()),
    };
    Recorder::new(client.clone(), reporter)
}

/// Publishes the event on `resource`; returns whether it was accepted.
pub async fn publish(recorder: &Recorder, kind: EventKind, resource: &SnapshotFile) -> bool {
    let event = Event {
        type_: kind.event_type(),
        reason: kind.reason().into(),
        note: Some(event_message(kind, resource)),
        action: kind.action().into(),
        secondary: None,
    };
    match recorder.publish(&event, &resource.object_ref(&())).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                resource = resource.name(),
                reason = kind.reason(),
                error = &error as &dyn std::error::Error,
                "failed to publish ETCDSnapshotFile event"
            );
            false
        }
    }
}

/// The reason of the Warning Event a failed restore drill publishes (ours: RKE2 has no drills).
pub const DRILL_FAILED_REASON: &str = "ETCDSnapshotDrillFailed";

/// The apiserver refuses an Event note over 1 kB.
const MAX_NOTE_CHARS: usize = 900;

/// Publishes a Warning `ETCDSnapshotDrillFailed` Event on the resource of `record`'s copy,
/// with the drill's reason; returns whether it was accepted (a refusal is logged).
pub async fn publish_drill_failed(
    client: &::kube::Client,
    node_name: &str,
    record: &crate::snapshot::SnapshotRecord,
    s3: Option<&super::S3Spec>,
    reason: &str,
) -> bool {
    let resource = super::desired_resource(record, s3);
    let note: String = format!(
        "Restore drill of snapshot {} at {} failed: {reason}",
        record.file_name, record.location
    )
    .chars()
    .take(MAX_NOTE_CHARS)
    .collect();
    let event = Event {
        type_: EventType::Warning,
        reason: DRILL_FAILED_REASON.into(),
        note: Some(note),
        action: "Verify".into(),
        secondary: None,
    };
    let recorder = recorder(client, node_name);
    match recorder.publish(&event, &resource.object_ref(&())).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                resource = resource.name(),
                reason = DRILL_FAILED_REASON,
                error = &error as &dyn std::error::Error,
                "failed to publish ETCDSnapshotFile event"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::desired_resource;
    use crate::snapshot::{SnapshotRecord, Storage};

    fn record(ready: bool, error: Option<&str>) -> SnapshotRecord {
        SnapshotRecord {
            file_name: "on-demand-server-0-1754906881".into(),
            location: "s3://b/f/on-demand-server-0-1754906881".into(),
            node_name: "server-0".into(),
            storage: Storage::S3,
            size: 10,
            created_unix: 1_754_906_881,
            compressed: false,
            ready,
            error: error.map(str::to_string),
            token_hash: None,
            metadata: None,
        }
    }

    #[test]
    fn messages_and_reasons_are_rke2s() {
        let ok = desired_resource(&record(true, None), None);
        let failed = desired_resource(&record(false, Some("timeout")), None);
        let bare_failure = desired_resource(&record(false, None), None);
        let cases = [
            (
                EventKind::for_created(&ok),
                &ok,
                "ETCDSnapshotCreated",
                "Snapshot on-demand-server-0-1754906881 saved on server-0",
            ),
            (
                EventKind::for_created(&failed),
                &failed,
                "ETCDSnapshotFailed",
                "Failed to save snapshot on-demand-server-0-1754906881 on server-0: timeout",
            ),
            (
                EventKind::Failed,
                &bare_failure,
                "ETCDSnapshotFailed",
                "Failed to save snapshot on-demand-server-0-1754906881 on server-0",
            ),
            (
                EventKind::Deleted,
                &ok,
                "ETCDSnapshotDeleted",
                "Snapshot on-demand-server-0-1754906881 deleted",
            ),
        ];
        for (kind, resource, reason, message) in cases {
            assert_eq!(kind.reason(), reason);
            assert_eq!(event_message(kind, resource), message);
        }
        assert_eq!(EventKind::Failed.event_type(), EventType::Warning);
        assert_eq!(EventKind::Deleted.event_type(), EventType::Normal);
    }
}
