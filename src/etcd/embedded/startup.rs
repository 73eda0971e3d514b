//! What the embedded member's start checks besides health: its TLS material is in place, its
//! ports are free before it is spawned, and the etcd that answers afterwards is really ours (our
//! member name at our peer URL, answered by our live child), never another server's etcd that
//! happened to hold the port.
//!
//! `identity` is the pure decision; the rest gathers facts or prepares files.

use std::net::{SocketAddr, TcpListener};
use std::time::SystemTime;

use etcd_client::TlsOptions;

use tokio::process::Child;

use super::process::RecentOutput;
use super::{EmbeddedError, EmbeddedOptions};
use crate::etcd::certs::{self, CaKind, CaPolicy, EtcdTlsFiles, Leaf, MemberNames};
use crate::etcd::client::ConnectError;

/// `https://<address>`: the embedded member has no plain-HTTP listener.
pub(crate) fn https_url(address: SocketAddr) -> String {
    format!("https://{address}")
}

/// Prepares the member's certificates and returns the client TLS our own connections use. A
/// member with a join endpoint belongs to a cluster whose CAs it must already have: new ones
/// would make a member no peer trusts.
pub(super) fn prepare_tls(opts: &EmbeddedOptions) -> Result<TlsOptions, EmbeddedError> {
    let joining = opts.join.is_some();
    let files = EtcdTlsFiles::new(&opts.tls_dir);
    let names = MemberNames {
        host: crate::pki::host_name(),
        client_ip: opts.client_address.ip(),
        peer_ip: opts.peer_address.ip(),
    };
    let policy = if joining {
        CaPolicy::RequireExisting
    } else {
        CaPolicy::CreateWhenAbsent
    };
    certs::ensure(&files, &names, policy, SystemTime::now()).map_err(EmbeddedError::Certs)?;
    client_tls(&files).map_err(EmbeddedError::ClientTls)
}

/// Our client identity (and the CA to check the member with) for a member whose TLS files are
/// in `files`.
pub(crate) fn client_tls(files: &EtcdTlsFiles) -> Result<TlsOptions, ConnectError> {
    let ca = files.ca_cert(CaKind::Server);
    let (cert, key) = (files.cert(Leaf::Client), files.key(Leaf::Client));
    let tls = crate::etcd::client::tls_options(Some(&ca), Some(&cert), Some(&key))?;
    Ok(tls.unwrap_or_default())
}

/// Refuses to start when something already listens on the client or peer address: etcd would
/// fail to bind, and the health probe could then reach whatever holds the port.
pub(super) fn check_ports_free(opts: &EmbeddedOptions) -> Result<(), EmbeddedError> {
    for (key, address) in [
        ("etcd-client-address", opts.client_address),
        ("etcd-peer-address", opts.peer_address),
    ] {
        if let Err(source) = TcpListener::bind(address) {
            return Err(EmbeddedError::PortInUse {
                key,
                address,
                source,
            });
        }
    }
    Ok(())
}

/// One member as listed, reduced to what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListedMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// Whether the answering etcd is our member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Identity {
    Ours,
    /// Ours, recorded with the plain-HTTP form of our peer URL by a release that served no
    /// TLS: its recorded peer URL is moved to https.
    OursWithPlainPeerUrl {
        id: u64,
    },
    /// Not ours, and why.
    Foreign(String),
}

/// Decides whether the member that answered (`answering_id`, from the response header) is ours:
/// listed under our name with our peer URL. Pure.
pub(super) fn identity(
    answering_id: u64,
    members: &[ListedMember],
    name: &str,
    peer_url: &str,
) -> Identity {
    let Some(me) = members.iter().find(|m| m.id == answering_id) else {
        return Identity::Foreign(format!(
            "the member answering (id {answering_id:x}) is not in its own member list"
        ));
    };
    if me.name != name {
        return Identity::Foreign(format!(
            "the member answering is named {:?}, not {name:?}",
            me.name
        ));
    }
    if me.peer_urls.iter().any(|u| u == peer_url) {
        return Identity::Ours;
    }
    let plain = peer_url.replacen("https://", "http://", 1);
    if me.peer_urls.contains(&plain) {
        return Identity::OursWithPlainPeerUrl { id: me.id };
    }
    Identity::Foreign(format!(
        "the member answering has peer URLs [{}], not {peer_url}",
        me.peer_urls.join(", ")
    ))
}

async fn connect(endpoint: &str, tls: &TlsOptions) -> Result<etcd_client::Client, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(5))
        .with_timeout(std::time::Duration::from_secs(10))
        .with_tls(tls.clone());
    etcd_client::Client::connect([endpoint], Some(options))
        .await
        .map_err(|e| format!("cannot ask {endpoint} who it is: {e}"))
}

/// Asks the member at `endpoint` who it is and checks it is ours (see `identity`); moves a
/// plain-HTTP recorded peer URL to https. A learner (a member that just joined) serves no
/// member list, so the list then comes from `join`, the member it joined through.
pub(super) async fn check_identity(
    endpoint: &str,
    join: Option<&str>,
    tls: &TlsOptions,
    name: &str,
    peer_url: &str,
) -> Result<(), String> {
    let mut client = connect(endpoint, tls).await?;
    let status = client
        .status()
        .await
        .map_err(|e| format!("cannot read the status of {endpoint}: {e}"))?;
    let answering_id = status.header().map_or(0, |h| h.member_id());
    let (mut client, endpoint) = match join {
        Some(join) if status.is_learner() => (connect(join, tls).await?, join),
        _ => (client, endpoint),
    };
    let list = client
        .member_list()
        .await
        .map_err(|e| format!("cannot list the members through {endpoint}: {e}"))?;
    let members: Vec<ListedMember> = list
        .members()
        .iter()
        .map(|m| ListedMember {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
        })
        .collect();
    match identity(answering_id, &members, name, peer_url) {
        Identity::Ours => Ok(()),
        Identity::Foreign(problem) => Err(problem),
        Identity::OursWithPlainPeerUrl { id } => {
            client
                .member_update(id, vec![peer_url.to_string()])
                .await
                .map_err(|e| format!("cannot record the peer URL {peer_url}: {e}"))?;
            tracing::info!(%peer_url, "recorded this member's peer URL as https");
            Ok(())
        }
    }
}

/// Why a spawned member was not taken into service.
pub(super) enum Unready {
    Unhealthy(String),
    NotOurs(String),
}

impl Unready {
    pub(super) fn into_error(self, endpoint: &str, recent: &RecentOutput) -> EmbeddedError {
        match self {
            Self::Unhealthy(detail) => EmbeddedError::Unhealthy {
                seconds: super::HEALTH_TIMEOUT.as_secs(),
                detail: format!("{detail}; {}", recent.describe()),
            },
            Self::NotOurs(reason) => EmbeddedError::NotOurs {
                endpoint: endpoint.to_string(),
                reason,
            },
        }
    }
}

/// The member that answered is ours (name, peer URL, member id) and our child still runs:
/// another etcd holding the port must never be taken for ours.
pub(super) async fn check_ours(
    endpoint: &str,
    tls: &TlsOptions,
    opts: &EmbeddedOptions,
    child: &mut Child,
) -> Result<(), Unready> {
    let peer = https_url(opts.peer_address);
    check_identity(endpoint, opts.join.as_deref(), tls, &opts.name, &peer)
        .await
        .map_err(Unready::NotOurs)?;
    match child.try_wait() {
        Ok(None) => Ok(()),
        _ => Err(Unready::NotOurs(
            "our etcd child exited, yet an etcd answered on its port".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, peer: &str) -> ListedMember {
        ListedMember {
            id,
            name: name.into(),
            peer_urls: vec![peer.into()],
        }
    }

    #[test]
    fn only_our_member_at_our_peer_url_passes() {
        let ours = "https://127.0.0.1:2380";
        let members = [
            member(1, "n1", ours),
            member(2, "n2", "https://127.0.0.1:3380"),
        ];
        assert_eq!(identity(1, &members, "n1", ours), Identity::Ours);
        let cases = [
            (3, "n1", ours, "(id 3) is not in its own member list"),
            (2, "n1", ours, "named \"n2\", not \"n1\""),
            (
                1,
                "n1",
                "https://127.0.0.1:4380",
                "not https://127.0.0.1:4380",
            ),
        ];
        for (id, name, peer, expected) in cases {
            let Identity::Foreign(problem) = identity(id, &members, name, peer) else {
                panic!("{id} {name} {peer} accepted");
            };
            assert!(problem.contains(expected), "{problem}");
        }
        // Recorded by a release without TLS: ours, and its peer URL is to be moved to https.
        let plain = [member(7, "n1", "http://127.0.0.1:2380")];
        assert_eq!(
            identity(7, &plain, "n1", ours),
            Identity::OursWithPlainPeerUrl { id: 7 }
        );
        let elsewhere = [member(7, "n1", "http://127.0.0.1:9999")];
        assert!(matches!(
            identity(7, &elsewhere, "n1", ours),
            Identity::Foreign(_)
        ));
    }

    #[test]
    fn a_taken_port_is_refused_naming_the_key() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let opts = EmbeddedOptions {
            binary: "etcd".into(),
            data_dir: "/nonexistent".into(),
            tls_dir: "/nonexistent".into(),
            name: "n1".into(),
            client_address: free,
            peer_address: taken.local_addr().unwrap(),
            join: None,
            initial_cluster: None,
        };
        let err = check_ports_free(&opts).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("etcd-peer-address") && text.contains("in use"),
            "{text}"
        );
    }

    #[test]
    fn urls_are_https() {
        let address: SocketAddr = "127.0.0.1:2379".parse().unwrap();
        assert_eq!(https_url(address), "https://127.0.0.1:2379");
    }
}
