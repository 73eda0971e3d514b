//! The encryption gauges: snapshot counts by whether they are encrypted and by the key
//! fingerprints they are encrypted to, per storage, as the latest listing of that storage found.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EncryptedLabels {
    storage: &'static str,
    encrypted: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecipientLabels {
    storage: &'static str,
    recipient: String,
}

/// Snapshot counts by encryption and by the key fingerprints they are encrypted to: what an
/// operator watches while rotating keys (an old key can go when its count reaches zero).
#[derive(Default)]
pub(super) struct Encryption {
    by_state: Family<EncryptedLabels, Gauge>,
    by_recipient: Family<RecipientLabels, Gauge>,
    /// The recipient series set per storage, so a key no copy uses any more loses its series.
    shown: std::sync::Mutex<std::collections::BTreeMap<&'static str, Vec<String>>>,
}

impl Encryption {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let encryption = Encryption::default();
        registry.register(
            "etcd_snapshot_files_encrypted",
            "Number of snapshot files present, by storage and whether they are encrypted (true, false)",
            encryption.by_state.clone(),
        );
        registry.register(
            "etcd_snapshot_files_by_recipient",
            "Number of encrypted snapshot files present, by storage and the fingerprint of a key they are encrypted to (unrecorded when none is recorded)",
            encryption.by_recipient.clone(),
        );
        encryption
    }
}

impl Metrics {
    /// `etcd_snapshot_files_encrypted{storage,encrypted}`: the `encrypted` and `plain` copies
    /// of the latest listing of `storage`.
    pub fn set_encrypted_counts(&self, storage: &'static str, encrypted: u64, plain: u64) {
        for (state, count) in [("true", encrypted), ("false", plain)] {
            let labels = EncryptedLabels {
                storage,
                encrypted: state,
            };
            self.encryption
                .by_state
                .get_or_create(&labels)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// `etcd_snapshot_files_by_recipient{storage,recipient}`: per key fingerprint, the
    /// encrypted copies of `storage` naming it (from their recorded metadata); a fingerprint
    /// missing from `by_recipient` loses its series.
    pub fn set_recipient_counts(
        &self,
        storage: &'static str,
        by_recipient: &std::collections::BTreeMap<String, u64>,
    ) {
        let e = &self.encryption;
        let Ok(mut shown) = e.shown.lock() else {
            return;
        };
        let previous = shown.insert(storage, by_recipient.keys().cloned().collect());
        for gone in previous.unwrap_or_default() {
            if !by_recipient.contains_key(&gone) {
                e.by_recipient.remove(&RecipientLabels {
                    storage,
                    recipient: gone,
                });
            }
        }
        for (recipient, count) in by_recipient {
            let labels = RecipientLabels {
                storage,
                recipient: recipient.clone(),
            };
            e.by_recipient
                .get_or_create(&labels)
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::tests::sample_value;

    #[test]
    fn encryption_counts_follow_the_latest_listing_and_drop_retired_keys() {
        use std::collections::BTreeMap;
        let m = Metrics::new();
        let old = BTreeMap::from([("age1:00000000000000aa".to_string(), 3u64)]);
        m.set_encrypted_counts("local", 3, 2);
        m.set_recipient_counts("local", &old);
        let text = m.render();
        let series = |t: &str, s: &str| sample_value(t, s);
        assert_eq!(
            series(
                &text,
                "etcd_snapshot_files_encrypted{storage=\"local\",encrypted=\"true\"}"
            )
            .as_deref(),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            series(
                &text,
                "etcd_snapshot_files_encrypted{storage=\"local\",encrypted=\"false\"}"
            )
            .as_deref(),
            Some("2")
        );
        let old_series = "etcd_snapshot_files_by_recipient{storage=\"local\",recipient=\"age1:00000000000000aa\"}";
        assert_eq!(series(&text, old_series).as_deref(), Some("3"));
        // After a rekey every copy names the new key: the old key's series is gone.
        let new = BTreeMap::from([("age1:00000000000000bb".to_string(), 5u64)]);
        m.set_encrypted_counts("local", 5, 0);
        m.set_recipient_counts("local", &new);
        let text = m.render();
        assert_eq!(series(&text, old_series), None, "{text}");
        assert!(
            text.contains("recipient=\"age1:00000000000000bb\"} 5"),
            "{text}"
        );
    }
}
