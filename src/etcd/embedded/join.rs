//! Joining an existing cluster: the member at a known client URL adds this node (after
//! removing a stale entry with the same peer URL, left by this node's wiped data), and the
//! answer gives the `--initial-cluster` this node starts with.
//!
//! This is how peers rejoin after a restore on another server: they delete their etcd data
//! and start with `--etcd-join-endpoint` pointing at the restored member.
//!
//! The node joins as a learner and is promoted to a voter once it has caught up. Added as a
//! voter straight away, a node that then fails to start (or is still receiving a large
//! database) counts against quorum: joining the second member of a one-member cluster would
//! stop every write until it came up. A learner never votes, so the cluster stays writable
//! whatever happens to the joining node.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, Member, MemberAddOptions, TlsOptions};

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("failed to reach the member to join at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("failed to {action} through the member at {endpoint}")]
    Membership {
        action: &'static str,
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "this node joined as a learner but was not promoted to a voter within {seconds} s \
         (it has not caught up with the leader); it stays a non-voting learner, and the next \
         start tries again"
    )]
    NotPromoted {
        seconds: u64,
        #[source]
        source: etcd_client::Error,
    },
}

/// How long a joined learner may take to catch up and be promoted: a large database is sent
/// whole before the learner is in sync.
pub const PROMOTE_PATIENCE: Duration = Duration::from_secs(300);

fn membership_error(
    action: &'static str,
    endpoint: &str,
) -> impl FnOnce(etcd_client::Error) -> JoinError {
    let endpoint = endpoint.to_string();
    move |source| JoinError::Membership {
        action,
        endpoint,
        source,
    }
}

/// Connects over TLS with our client certificate: the cluster's members serve TLS only.
async fn connect(endpoint: &str, tls: &TlsOptions) -> Result<Client, JoinError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(30))
        .with_tls(tls.clone());
    Client::connect([endpoint], Some(options))
        .await
        .map_err(|source| JoinError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })
}

/// Adds `name` at `peer_url` to the cluster of `endpoint` as a learner; returns
/// `name=url,...` for every member, this node included.
pub async fn add_self(
    endpoint: &str,
    tls: &TlsOptions,
    name: &str,
    peer_url: &str,
) -> Result<String, JoinError> {
    let mut client = connect(endpoint, tls).await?;
    // Connecting is lazy: a failed status call (say, a certificate the cluster does not trust)
    // is reported as a failure to reach the member, before any membership change.
    client.status().await.map_err(|source| JoinError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })?;
    let fail = |action| membership_error(action, endpoint);
    let members = client.member_list().await.map_err(fail("list members"))?;
    // Our old entry (same peer URL) belongs to data that no longer exists: it must go before
    // this node can be added again.
    for stale in members
        .members()
        .iter()
        .filter(|m| at_peer_url(m, peer_url))
    {
        tracing::info!(member = %stale.name(), id = stale.id(), "removing this node's stale etcd member entry");
        client
            .member_remove(stale.id())
            .await
            .map_err(fail("remove the stale member"))?;
    }
    // etcd refuses to add a member while a recently joined one has not been connected for a few
    // seconds ("unhealthy cluster"), and allows one learner at a time ("too many learner
    // members"): peers joining together wait for each other's promotion.
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    let added = loop {
        let learner = MemberAddOptions::new().with_is_learner();
        match client.member_add([peer_url], Some(learner)).await {
            Ok(added) => break added,
            Err(e) if is_busy_cluster(&e) && tokio::time::Instant::now() < deadline => {
                tracing::info!(reason = %e, "the cluster is not ready to add a member yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(fail("add this node as a member")(e)),
        }
    };
    Ok(initial_cluster(added.member_list(), name, peer_url))
}

/// Promotes the member at `peer_url` when it is a learner, retrying while it catches up (etcd
/// refuses to promote a learner that is not in sync), for at most `patience`. Ok when it is a
/// voter, already was, or is not a member at all (nothing to promote).
pub async fn promote_self(
    endpoint: &str,
    tls: &TlsOptions,
    peer_url: &str,
    patience: Duration,
) -> Result<(), JoinError> {
    let mut client = connect(endpoint, tls).await?;
    let fail = |action| membership_error(action, endpoint);
    let members = client.member_list().await.map_err(fail("list members"))?;
    let Some(me) = members.members().iter().find(|m| at_peer_url(m, peer_url)) else {
        return Ok(());
    };
    if !me.is_learner() {
        return Ok(());
    }
    let (id, started) = (me.id(), tokio::time::Instant::now());
    loop {
        // A learner catching up, a leader election, a slow member: all pass, so every refusal
        // is retried until `patience` runs out.
        let error = match client.member_promote(id).await {
            Ok(_) => {
                tracing::info!(
                    id,
                    "this node caught up and was promoted from learner to voter"
                );
                return Ok(());
            }
            Err(e) if is_not_learner(&e) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() >= patience {
            return Err(if is_learner_behind(&error) {
                JoinError::NotPromoted {
                    seconds: patience.as_secs(),
                    source: error,
                }
            } else {
                fail("promote this node to a voter")(error)
            });
        }
        tracing::debug!(id, error = %error, "promotion refused for now; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn at_peer_url(member: &Member, peer_url: &str) -> bool {
    member.peer_urls().iter().any(|u| u == peer_url)
}

/// etcd's "can only promote a learner member which is in sync with leader".
fn is_learner_behind(error: &etcd_client::Error) -> bool {
    error.to_string().contains("in sync with leader")
}

/// etcd's "can only promote a learner member": it is a voter already.
fn is_not_learner(error: &etcd_client::Error) -> bool {
    let text = error.to_string();
    text.contains("can only promote a learner member") && !text.contains("in sync with leader")
}

/// How long a join waits for the cluster to accept a new member: as long as another joining
/// learner may take to be promoted.
const JOIN_PATIENCE: Duration = PROMOTE_PATIENCE;

fn is_busy_cluster(error: &etcd_client::Error) -> bool {
    let text = error.to_string();
    text.contains("unhealthy cluster") || text.contains("too many learner members")
}

/// `name=peer-url` for every member; the new member has no name yet, so it gets ours. Pure.
fn initial_cluster(members: &[Member], name: &str, peer_url: &str) -> String {
    let mut entries: Vec<String> = members
        .iter()
        .filter_map(|m| {
            let url = m.peer_urls().first()?;
            let member_name = if url == peer_url || m.name().is_empty() {
                name
            } else {
                m.name()
            };
            Some(format!("{member_name}={url}"))
        })
        .collect();
    entries.sort();
    entries.dedup();
    entries.join(",")
}
