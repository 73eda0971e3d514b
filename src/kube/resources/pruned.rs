//! Whether the apiserver keeps the fields this product adds to RKE2's ETCDSnapshotFile status:
//! `status.verification` (restore drills) and `status.pointInTime` (the delta chain's window).
//! RKE2's CRD declares neither (and this product's CRD declared only the first before delta
//! chains), and an apiserver silently drops undeclared fields on every write. Without this,
//! each reconcile would find the field missing and write it again, forever, one update per
//! resource per pass.
//!
//! The first write whose reply lacks a field it carried sets that field's flag for the rest of
//! the process (logged once, with the way out: this product's current CRD declares both); from
//! then on desired resources carry no such field, so they compare equal to what the apiserver
//! keeps. The values stay in the `.metadata` records, the chain dirs, `ls -o wide` and the
//! metrics. A CRD installed later that declares the field is noticed at the next start.

use std::sync::atomic::{AtomicBool, Ordering};

use super::model::{SnapshotFile, SnapshotFileStatus};

static VERIFICATION_DROPPED: AtomicBool = AtomicBool::new(false);
static POINT_IN_TIME_DROPPED: AtomicBool = AtomicBool::new(false);

/// Which of our status fields the apiserver was seen dropping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Dropped {
    pub verification: bool,
    pub point_in_time: bool,
}

/// True once the apiserver was seen dropping `status.verification`.
pub fn verification_dropped() -> bool {
    VERIFICATION_DROPPED.load(Ordering::Relaxed)
}

/// Both flags as they stand.
pub(super) fn dropped() -> Dropped {
    Dropped {
        verification: verification_dropped(),
        point_in_time: POINT_IN_TIME_DROPPED.load(Ordering::Relaxed),
    }
}

/// One of our status fields: its name, whether a status carries it, its flag.
struct Field {
    name: &'static str,
    carried: fn(&SnapshotFileStatus) -> bool,
    flag: &'static AtomicBool,
    still_shown: &'static str,
}

static FIELDS: [Field; 2] = [
    Field {
        name: "status.verification",
        carried: |s| s.verification.is_some(),
        flag: &VERIFICATION_DROPPED,
        still_shown: "drill verdicts are not written to resources until a restart with this product's CRD (manifests/crd.yaml or etcd-snapshot-install-crd); ls -o wide, the .metadata records and the metrics still show them",
    },
    Field {
        name: "status.pointInTime",
        carried: |s| s.point_in_time.is_some(),
        flag: &POINT_IN_TIME_DROPPED,
        still_shown: "point-in-time windows are not written to resources until a restart with this product's current CRD (manifests/crd.yaml or etcd-snapshot-install-crd); ls -o wide and ls --deltas still show them",
    },
];

/// Looks at the apiserver's reply to a write of `sent`; sets a field's flag (and logs, once)
/// when the reply lost that field.
pub(super) fn note_reply(sent: &SnapshotFile, reply: &SnapshotFile) {
    for field in &FIELDS {
        if dropped_by(field, sent, reply) && !field.flag.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                resource = %reply.metadata.name.as_deref().unwrap_or_default(),
                "the ETCDSnapshotFile CRD does not keep {}: {}",
                field.name,
                field.still_shown
            );
        }
    }
}

/// Whether a reply dropped `field` that was sent. Pure.
fn dropped_by(field: &Field, sent: &SnapshotFile, reply: &SnapshotFile) -> bool {
    let carries = |r: &SnapshotFile| r.status.as_ref().is_some_and(field.carried);
    carries(sent) && !carries(reply)
}

/// `resources` without the fields the apiserver is known to drop. Pure.
pub(super) fn fit_to_apiserver(resources: &mut [SnapshotFile], dropped: Dropped) {
    for status in resources.iter_mut().filter_map(|r| r.status.as_mut()) {
        if dropped.verification {
            status.verification = None;
        }
        if dropped.point_in_time {
            status.point_in_time = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(status: serde_json::Value) -> SnapshotFile {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFile",
            "metadata": {"name": "local-s1"},
            "spec": {"snapshotName": "s1", "nodeName": "n1", "location": "file:///s1"},
            "status": status
        }))
        .unwrap()
    }

    fn with(verdict: bool, window: bool) -> SnapshotFile {
        let mut status = serde_json::json!({"size": "1"});
        if verdict {
            status["verification"] = serde_json::json!({"result": "passed"});
        }
        if window {
            status["pointInTime"] = serde_json::json!({"fromRevision": 1, "toRevision": 9});
        }
        resource(status)
    }

    fn without_status() -> SnapshotFile {
        let mut r = with(false, false);
        r.status = None;
        r
    }

    #[test]
    fn a_reply_without_a_field_sent_is_that_field_dropped_and_nothing_else_is() {
        let [verification, window] = &FIELDS;
        assert!(dropped_by(
            verification,
            &with(true, true),
            &with(false, true)
        ));
        assert!(!dropped_by(window, &with(true, true), &with(false, true)));
        // An older product CRD keeps the verdict and drops the window.
        assert!(dropped_by(window, &with(true, true), &with(true, false)));
        assert!(!dropped_by(
            verification,
            &with(true, true),
            &with(true, false)
        ));
        assert!(!dropped_by(
            verification,
            &with(true, true),
            &with(true, true)
        ));
        assert!(!dropped_by(
            window,
            &with(false, false),
            &with(false, false)
        ));
        assert!(!dropped_by(window, &without_status(), &without_status()));
    }

    #[test]
    fn fields_are_left_out_only_once_the_apiserver_drops_them() {
        let mut resources = vec![with(true, true), without_status()];
        fit_to_apiserver(&mut resources, Dropped::default());
        let status = resources[0].status.clone().unwrap();
        assert!(status.verification.is_some() && status.point_in_time.is_some());
        let window_only = Dropped {
            point_in_time: true,
            ..Dropped::default()
        };
        fit_to_apiserver(&mut resources, window_only);
        let status = resources[0].status.clone().unwrap();
        assert!(status.verification.is_some() && status.point_in_time.is_none());
        let both = Dropped {
            verification: true,
            point_in_time: true,
        };
        fit_to_apiserver(&mut resources, both);
        assert!(resources[0].status.as_ref().unwrap().verification.is_none());
        assert!(resources[1].status.is_none());
    }
}
