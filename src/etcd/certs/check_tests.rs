use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

use super::*;

const DAY: Duration = Duration::from_secs(86400);

struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    TestCa {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf valid for a year from yesterday, with `names` and `usages`: (cert PEM, key PEM).
fn leaf(ca: &TestCa, names: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = usages.to_vec();
    crate::pki::set_validity(&mut params, 365);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn both() -> Vec<ExtendedKeyUsagePurpose> {
    vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ]
}

fn problem(leaf_kind: Leaf, pair: (&str, &str), ca: &TestCa, names: &[&str]) -> Option<Reissue> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let stored = StoredLeaf {
        cert_pem: Some(pair.0.as_bytes()),
        key_pem: Some(pair.1.as_bytes()),
    };
    leaf_problem(
        leaf_kind,
        stored,
        ca.pem.as_bytes(),
        &names,
        SystemTime::now(),
    )
}

#[test]
fn names_cover_loopback_the_host_and_the_served_address() {
    let names = MemberNames {
        host: Some("node-a".into()),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        peer_ip: "10.0.0.5".parse().unwrap(),
    };
    assert_eq!(
        names.for_leaf(Leaf::Server),
        ["localhost", "127.0.0.1", "::1", "node-a"]
    );
    assert_eq!(
        names.for_leaf(Leaf::Peer),
        ["localhost", "127.0.0.1", "::1", "node-a", "10.0.0.5"]
    );
    assert!(names.for_leaf(Leaf::Client).is_empty());
    let unspecified = MemberNames {
        host: None,
        client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        peer_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    assert_eq!(
        unspecified.for_leaf(Leaf::Peer),
        ["localhost", "127.0.0.1", "::1"]
    );
}

#[test]
fn a_good_leaf_is_kept() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["localhost", "127.0.0.1", "10.0.0.5"], &both());
    let names = ["localhost", "127.0.0.1", "10.0.0.5"];
    assert_eq!(problem(Leaf::Server, (&cert, &key), &ca, &names), None);
    assert_eq!(problem(Leaf::Peer, (&cert, &key), &ca, &names), None);
    let (client, client_key) = leaf(&ca, &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
    assert_eq!(
        problem(Leaf::Client, (&client, &client_key), &ca, &[]),
        None
    );
}

#[test]
fn every_reason_to_issue_again_is_found() {
    let ca = ca();
    let names = ["localhost", "127.0.0.1"];
    let (cert, key) = leaf(&ca, &names, &both());
    let missing = StoredLeaf {
        cert_pem: Some(cert.as_bytes()),
        key_pem: None,
    };
    assert_eq!(
        leaf_problem(
            Leaf::Server,
            missing,
            ca.pem.as_bytes(),
            &[],
            SystemTime::now()
        ),
        Some(Reissue::Missing)
    );
    assert_eq!(
        problem(Leaf::Server, ("garbage", &key), &ca, &names),
        Some(Reissue::Unreadable)
    );
    let (_, other_key) = leaf(&ca, &names, &both());
    assert_eq!(
        problem(Leaf::Server, (&cert, &other_key), &ca, &names),
        Some(Reissue::KeyMismatch)
    );
    // The CA changed (a restore wrote the snapshot's CA back): same names, other issuer.
    assert_eq!(
        problem(Leaf::Server, (&cert, &key), &self::ca(), &names),
        Some(Reissue::NotFromCa)
    );
    assert_eq!(
        problem(Leaf::Server, (&cert, &key), &ca, &["localhost", "10.0.0.9"]),
        Some(Reissue::NameMissing("10.0.0.9".into()))
    );
    let (client_only, client_key) = leaf(&ca, &names, &[ExtendedKeyUsagePurpose::ClientAuth]);
    assert_eq!(
        problem(Leaf::Server, (&client_only, &client_key), &ca, &names),
        Some(Reissue::WrongUsage)
    );
    let (server_only, server_key) = leaf(&ca, &names, &[ExtendedKeyUsagePurpose::ServerAuth]);
    assert_eq!(
        problem(Leaf::Peer, (&server_only, &server_key), &ca, &names),
        Some(Reissue::WrongUsage)
    );
}

#[test]
fn a_leaf_is_renewed_within_the_renewal_window_only() {
    let ca = ca();
    let names: Vec<String> = vec!["localhost".into()];
    let (cert, key) = leaf(&ca, &["localhost"], &both());
    let stored = StoredLeaf {
        cert_pem: Some(cert.as_bytes()),
        key_pem: Some(key.as_bytes()),
    };
    let at = |days: u64| SystemTime::now() + DAY * days as u32;
    let check = |when| leaf_problem(Leaf::Server, stored, ca.pem.as_bytes(), &names, when);
    // Valid for 365 days from yesterday: kept until 30 days before the end.
    assert_eq!(check(at(300)), None);
    assert_eq!(check(at(340)), Some(Reissue::Expiring));
    assert_eq!(check(at(400)), Some(Reissue::Expiring));
}

#[test]
fn verifier_refusals_map_to_reasons() {
    use rustls::CertificateError as E;
    let cert = |e| rustls::Error::InvalidCertificate(e);
    assert_eq!(classify(&cert(E::Expired), "x"), Reissue::Expiring);
    assert_eq!(classify(&cert(E::NotValidYet), "x"), Reissue::Expiring);
    assert_eq!(classify(&cert(E::UnknownIssuer), "x"), Reissue::NotFromCa);
    assert_eq!(classify(&cert(E::BadSignature), "x"), Reissue::NotFromCa);
    assert_eq!(
        classify(&cert(E::NotValidForName), "node-a"),
        Reissue::NameMissing("node-a".into())
    );
    assert_eq!(classify(&cert(E::InvalidPurpose), "x"), Reissue::WrongUsage);
    assert!(matches!(
        classify(&cert(E::Revoked), "x"),
        Reissue::Invalid(_)
    ));
    assert!(matches!(
        classify(&rustls::Error::General("boom".into()), "x"),
        Reissue::Invalid(why) if why.contains("boom")
    ));
}
