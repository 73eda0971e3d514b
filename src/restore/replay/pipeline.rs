//! The replay's ordered pipeline: many transactions in flight at once, each landing at its
//! original revision.
//!
//! Sending one transaction and waiting for its answer costs a round trip and a WAL fsync of the
//! member per revision, which caps a replay well below the rate a loaded cluster writes at (its
//! writers share fsyncs because etcd batches concurrent proposals). Sending many at once lets
//! the member batch them too, but etcd does not promise to apply concurrent requests in the
//! order they were sent. So every transaction sent behind another carries a condition that
//! holds only once the group before it landed (`apply::guard_after`): one that overtakes its
//! predecessor fails without taking a revision. The pipeline then waits for everything still
//! in flight (all of it fails the same way, since each waits on the one before), sends the
//! overtaken group again with nothing ahead of it (so it needs no condition), and goes on. A
//! group that only deletes offers no such condition, so nothing is sent behind it until it
//! landed. Every answer must come back at its group's own revision.
//!
//! Memory is bounded by the number and the bytes of the transactions in flight.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use etcd_client::TxnResponse;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::ReplayError;
use super::apply::{
    Landing, REGRANTED_LEASE_TTL_SECS, group_bytes, group_txn, guard_after, judge_landing,
    leases_to_grant,
};
use crate::delta::segment::RevisionGroup;

/// Most transactions in flight at once: enough for the member to batch many per fsync.
const MAX_IN_FLIGHT: usize = 64;
/// Most bytes of keys and values in flight (one group is always allowed, whatever its size).
const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;

/// Applies groups in order, keeping many in flight.
pub struct Sequencer {
    client: etcd_client::Client,
    /// The leases the member holds.
    leases: BTreeSet<i64>,
    /// Transactions that overtook their predecessor and were sent again.
    pub resent: u64,
}

type Answer = Result<TxnResponse, etcd_client::Error>;

/// The transactions in flight, answered in the order they were sent, with their sizes.
struct InFlight<F: std::future::Future> {
    answers: FuturesOrdered<F>,
    sizes: VecDeque<usize>,
}

impl Sequencer {
    pub fn new(client: etcd_client::Client, leases: BTreeSet<i64>) -> Self {
        Self {
            client,
            leases,
            resent: 0,
        }
    }

    /// Applies `groups` (consecutive revisions of the chain read from `path`), each at its own
    /// revision; returns once every one has landed.
    pub async fn apply(
        &mut self,
        groups: &[&RevisionGroup],
        path: &Path,
    ) -> Result<(), ReplayError> {
        let kv = self.client.kv_client();
        let mut in_flight = InFlight {
            answers: FuturesOrdered::new(),
            sizes: VecDeque::new(),
        };
        let (mut sent, mut landed) = (0usize, 0usize);
        while landed < groups.len() {
            while sent < groups.len() && may_send(sent - landed, in_flight.sizes.iter().sum()) {
                // Nothing ahead: no condition needed. Behind a group that only deletes: wait.
                let guard = match sent == landed {
                    true => None,
                    false => match guard_after(groups[sent - 1]) {
                        Some(guard) => Some(guard),
                        None => break,
                    },
                };
                let group = groups[sent];
                self.grant_leases(group).await?;
                let (txn, mut kv) = (group_txn(group, guard), kv.clone());
                in_flight
                    .answers
                    .push_back(async move { kv.txn(txn).await });
                in_flight.sizes.push_back(group_bytes(group));
                sent += 1;
            }
            let group = groups[landed];
            let Some(answer) = in_flight.answers.next().await else {
                unreachable!("a group is always in flight here")
            };
            in_flight.sizes.pop_front();
            let response = answer.map_err(|source| ReplayError::Etcd {
                step: "apply a revision",
                source,
            })?;
            let revision = response.header().map_or(0, |h| h.revision());
            match judge_landing(response.succeeded(), revision, group.revision) {
                Landing::Landed => landed += 1,
                Landing::NotYet => {
                    drain(&mut in_flight.answers, path, group.revision).await?;
                    in_flight.sizes.clear();
                    sent = landed;
                    self.resent += 1;
                }
                Landing::Elsewhere(_) => return Err(mismatch(path, group.revision, revision)),
            }
        }
        Ok(())
    }

    /// Grants the group's new leases (same id, a short TTL) before its transaction is sent.
    async fn grant_leases(&mut self, group: &RevisionGroup) -> Result<(), ReplayError> {
        for id in leases_to_grant(group, &self.leases) {
            let options = etcd_client::LeaseGrantOptions::new().with_id(id);
            match self
                .client
                .lease_grant(REGRANTED_LEASE_TTL_SECS, Some(options))
                .await
            {
                Ok(_) => {}
                Err(e) if e.to_string().contains("lease already exists") => {}
                Err(source) => {
                    return Err(ReplayError::Etcd {
                        step: "grant a lease",
                        source,
                    });
                }
            }
            self.leases.insert(id);
        }
        Ok(())
    }
}

/// Whether another transaction may go out with `count` of `bytes` in flight.
fn may_send(count: usize, bytes: usize) -> bool {
    count == 0 || (count < MAX_IN_FLIGHT && bytes < MAX_IN_FLIGHT_BYTES)
}

/// Waits for every answer still in flight after an overtaken group: each waited on it, so none
/// may have landed; one that did leaves the member in an unknown order, which is an error.
async fn drain<F>(
    in_flight: &mut FuturesOrdered<F>,
    path: &Path,
    overtaken: i64,
) -> Result<(), ReplayError>
where
    F: std::future::Future<Output = Answer>,
{
    while let Some(answer) = in_flight.next().await {
        if let Ok(response) = answer
            && response.succeeded()
        {
            let revision = response.header().map_or(0, |h| h.revision());
            return Err(mismatch(path, overtaken, revision));
        }
    }
    Ok(())
}

fn mismatch(path: &Path, revision: i64, got: i64) -> ReplayError {
    ReplayError::RevisionMismatch {
        path: path.to_path_buf(),
        revision,
        got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded_by_count_and_bytes() {
        assert!(may_send(0, 0));
        assert!(
            may_send(0, usize::MAX),
            "one group always goes, whatever its size"
        );
        assert!(may_send(MAX_IN_FLIGHT - 1, 0));
        assert!(!may_send(MAX_IN_FLIGHT, 0));
        assert!(!may_send(1, MAX_IN_FLIGHT_BYTES));
    }
}
