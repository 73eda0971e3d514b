//! Joining an existing cluster: the member at a known client URL adds this node (after
//! removing a stale entry with the same peer URL, left by this node's wiped data), and the
//! answer gives the `--initial-cluster` this node starts with.
//!
//! This is how peers rejoin after a restore on another server: they delete their etcd data
//! and start with `--etcd-join-endpoint` pointing at the restored member.

use etcd_client::{Client, Member};

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
}

/// Adds `name` at `peer_url` to the cluster of `endpoint`; returns `name=url,...` for every
/// member, this node included.
pub async fn add_self(endpoint: &str, name: &str, peer_url: &str) -> Result<String, JoinError> {
    let mut client =
        Client::connect([endpoint], None)
            .await
            .map_err(|source| JoinError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
    let fail = |action| {
        move |source| JoinError::Membership {
            action,
            endpoint: endpoint.to_string(),
            source,
        }
    };
    let members = client.member_list().await.map_err(fail("list members"))?;
    // Our old entry (same peer URL) belongs to data that no longer exists: it must go before
    // this node can be added again.
    for stale in members
        .members()
        .iter()
        .filter(|m| m.peer_urls().iter().any(|u| u == peer_url))
    {
        tracing::info!(member = %stale.name(), id = stale.id(), "removing this node's stale etcd member entry");
        client
            .member_remove(stale.id())
            .await
            .map_err(fail("remove the stale member"))?;
    }
    // etcd refuses to add a voter while a recently joined member has not been connected for
    // a few seconds ("unhealthy cluster"): peers joining one after another wait for that.
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    let added = loop {
        match client.member_add([peer_url], None).await {
            Ok(added) => break added,
            Err(e) if is_unhealthy_cluster(&e) && tokio::time::Instant::now() < deadline => {
                tracing::info!("the cluster is not ready to add a member yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(fail("add this node as a member")(e)),
        }
    };
    Ok(initial_cluster(added.member_list(), name, peer_url))
}

/// How long a join waits for the cluster to accept a new member.
const JOIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

fn is_unhealthy_cluster(error: &etcd_client::Error) -> bool {
    error.to_string().contains("unhealthy cluster")
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
