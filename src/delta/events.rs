//! From watch events to revision groups: etcd reports each event with the key's state after
//! it (`mod_revision` is the revision of the transaction, for puts and deletes alike), in
//! revision order, and never splits one revision across responses (we do not ask for
//! fragments). Consecutive events with one `mod_revision` are one transaction.

use super::segment::{Event, PutEvent, RevisionGroup};

/// One watch event's fields, copied out of etcd's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub is_put: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl RawEvent {
    /// Copies an etcd watch event; None for an event without its key-value (etcd always sends one).
    pub fn from_etcd(event: &etcd_client::Event) -> Option<Self> {
        let kv = event.kv()?;
        Some(Self {
            is_put: event.event_type() == etcd_client::EventType::Put,
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        })
    }
}

/// Groups events per revision, keeping etcd's order; every group arrived at `arrived_unix_ms`
/// (the events of one watch response arrive together). A revision that goes backwards is
/// refused (it would put the chain out of order); the segment writer checks the rest.
pub fn group_events(
    events: impl IntoIterator<Item = RawEvent>,
    arrived_unix_ms: i64,
) -> Result<Vec<RevisionGroup>, i64> {
    let mut groups: Vec<RevisionGroup> = Vec::new();
    for raw in events {
        let event = if raw.is_put {
            Event::Put(PutEvent {
                key: raw.key,
                value: raw.value,
                create_revision: raw.create_revision,
                mod_revision: raw.mod_revision,
                version: raw.version,
                lease: raw.lease,
            })
        } else {
            Event::Delete { key: raw.key }
        };
        match groups.last_mut() {
            Some(last) if last.revision == raw.mod_revision => last.events.push(event),
            Some(last) if last.revision > raw.mod_revision => return Err(raw.mod_revision),
            _ => groups.push(RevisionGroup {
                revision: raw.mod_revision,
                arrived_unix_ms,
                events: vec![event],
            }),
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(is_put: bool, key: &str, revision: i64) -> RawEvent {
        RawEvent {
            is_put,
            key: key.into(),
            value: if is_put { b"v".to_vec() } else { Vec::new() },
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn consecutive_events_of_one_revision_are_one_group_in_order() {
        let groups = group_events(
            [
                raw(true, "/a", 5),
                raw(true, "/b", 6),
                raw(false, "/a", 6),
                raw(true, "/c", 8),
            ],
            77,
        )
        .unwrap();
        let shape: Vec<(i64, Vec<&[u8]>)> = groups
            .iter()
            .map(|g| (g.revision, g.events.iter().map(Event::key).collect()))
            .collect();
        assert_eq!(
            shape,
            [
                (5, vec![b"/a".as_slice()]),
                (6, vec![b"/b".as_slice(), b"/a".as_slice()]),
                (8, vec![b"/c".as_slice()]),
            ]
        );
        assert!(matches!(groups[1].events[1], Event::Delete { .. }));
        assert!(groups.iter().all(|g| g.arrived_unix_ms == 77));
        assert!(group_events([], 0).unwrap().is_empty());
    }

    #[test]
    fn a_revision_going_backwards_is_refused() {
        assert_eq!(
            group_events([raw(true, "/a", 6), raw(true, "/b", 5)], 0),
            Err(5)
        );
    }
}
