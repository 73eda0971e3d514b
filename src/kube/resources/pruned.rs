//! Whether the apiserver keeps `status.verification`, the one field this product adds to
//! RKE2's ETCDSnapshotFile. RKE2's CRD does not declare it, and an apiserver silently drops
//! undeclared fields on every write. Without this, each reconcile would find the verdict
//! missing and write it again, forever, one update per drilled copy per pass.
//!
//! The first write whose reply lacks a verdict it carried sets a flag for the rest of the
//! process (logged once, with the way out: this product's CRD declares the field); from then on
//! desired resources carry no verdict, so they compare equal to what the apiserver keeps. The
//! verdict stays in the `.metadata` records, `ls -o wide` and the metrics. A CRD installed later
//! that declares the field is noticed at the next start.

use std::sync::atomic::{AtomicBool, Ordering};

use super::model::SnapshotFile;

static VERIFICATION_DROPPED: AtomicBool = AtomicBool::new(false);

/// True once the apiserver was seen dropping `status.verification`.
pub fn verification_dropped() -> bool {
    VERIFICATION_DROPPED.load(Ordering::Relaxed)
}

/// Looks at the apiserver's reply to a write of `sent`; sets the flag (and logs, once) when the
/// reply lost the verdict `sent` carried.
pub(super) fn note_reply(sent: &SnapshotFile, reply: &SnapshotFile) {
    if dropped_by(sent, reply) && !VERIFICATION_DROPPED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            resource = %reply.metadata.name.as_deref().unwrap_or_default(),
            "the ETCDSnapshotFile CRD does not keep status.verification (RKE2's definition): drill verdicts are not written to resources until a restart with this product's CRD (manifests/crd.yaml or etcd-snapshot-install-crd); ls -o wide, the .metadata records and the metrics still show them"
        );
    }
}

/// Whether a reply dropped the verdict that was sent. Pure.
fn dropped_by(sent: &SnapshotFile, reply: &SnapshotFile) -> bool {
    let verdict = |r: &SnapshotFile| r.status.as_ref().and_then(|s| s.verification.clone());
    verdict(sent).is_some() && verdict(reply).is_none()
}

/// `resources` without verdicts, once the apiserver is known to drop them. Pure.
pub(super) fn fit_to_apiserver(resources: &mut [SnapshotFile], dropped: bool) {
    if !dropped {
        return;
    }
    for status in resources.iter_mut().filter_map(|r| r.status.as_mut()) {
        status.verification = None;
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

    fn with_verdict(verdict: bool) -> SnapshotFile {
        match verdict {
            true => {
                resource(serde_json::json!({"size": "1", "verification": {"result": "passed"}}))
            }
            false => resource(serde_json::json!({"size": "1"})),
        }
    }

    fn without_status() -> SnapshotFile {
        let mut r = with_verdict(false);
        r.status = None;
        r
    }

    #[test]
    fn a_reply_without_the_verdict_sent_is_a_dropped_field_and_nothing_else_is() {
        assert!(dropped_by(&with_verdict(true), &with_verdict(false)));
        assert!(!dropped_by(&with_verdict(true), &with_verdict(true)));
        assert!(!dropped_by(&with_verdict(false), &with_verdict(false)));
        assert!(!dropped_by(&without_status(), &without_status()));
    }

    #[test]
    fn verdicts_are_left_out_only_once_the_apiserver_drops_them() {
        let mut resources = vec![with_verdict(true), without_status()];
        fit_to_apiserver(&mut resources, false);
        assert!(resources[0].status.as_ref().unwrap().verification.is_some());
        fit_to_apiserver(&mut resources, true);
        assert!(resources[0].status.as_ref().unwrap().verification.is_none());
        assert!(resources[1].status.is_none());
    }
}
