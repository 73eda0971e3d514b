//! Unit tests of `tls`: files, permissions, reuse and re-issue of the serving certificate.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_then_reload_keeps_the_ca_and_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("server").join("tls");
    let first = load_or_create(&tls_dir).unwrap();
    assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(mode(&tls_dir), 0o700);
    assert_eq!(mode(&ca_key_path(&tls_dir)), 0o600);
    assert_eq!(mode(&serving_key_path(&tls_dir)), 0o600);
    let serving = std::fs::read(serving_cert_path(&tls_dir)).unwrap();

    let second = load_or_create(&tls_dir).unwrap();
    assert_eq!(second.ca_pem, first.ca_pem);
    assert_eq!(std::fs::read(serving_cert_path(&tls_dir)).unwrap(), serving);
    assert_eq!(
        std::fs::read_to_string(ca_path(&tls_dir)).unwrap(),
        first.ca_pem
    );
}

#[test]
fn serving_cert_chains_to_ca_and_renews_near_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let tls = load_or_create(dir.path()).unwrap();
    let ca_der = CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap();
    let cert_pem = std::fs::read(serving_cert_path(dir.path())).unwrap();
    let cert = CertificateDer::from_pem_slice(&cert_pem).unwrap();
    let now = since_epoch(SystemTime::now());
    verify_chain(&cert, &ca_der, UnixTime::since_unix_epoch(now)).unwrap();
    let in_400_days = now + Duration::from_secs(400 * 24 * 3600);
    assert!(verify_chain(&cert, &ca_der, UnixTime::since_unix_epoch(in_400_days)).is_err());

    // A serving cert issued by another CA is replaced by one from ours; the CA stays.
    let other = tempfile::tempdir().unwrap();
    load_or_create(other.path()).unwrap();
    for path in [serving_cert_path, serving_key_path] {
        std::fs::copy(path(other.path()), path(dir.path())).unwrap();
    }
    let reloaded = load_or_create(dir.path()).unwrap();
    assert_eq!(reloaded.ca_pem, tls.ca_pem);
    let renewed = std::fs::read(serving_cert_path(dir.path())).unwrap();
    let renewed = CertificateDer::from_pem_slice(&renewed).unwrap();
    verify_chain(&renewed, &ca_der, UnixTime::since_unix_epoch(now)).unwrap();
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn stored_cert(tls_dir: &Path) -> Vec<u8> {
    std::fs::read(serving_cert_path(tls_dir)).unwrap()
}

#[test]
fn the_issued_cert_carries_exactly_the_wanted_names_and_its_validity() {
    let dir = tempfile::tempdir().unwrap();
    let wanted = names(&[
        "localhost",
        "127.0.0.1",
        "::1",
        "snap.example.com",
        "10.0.0.5",
    ]);
    let tls = load_or_create_for(dir.path(), &wanted).unwrap();
    let served = CertificateDer::from(tls.live.certificate());
    let (validity, sans) = describe(&served).unwrap();
    assert_eq!(sans, wanted);
    assert_eq!(validity, tls.live.validity());
    let life = validity
        .not_after
        .duration_since(validity.not_before)
        .unwrap();
    assert_eq!(
        life.as_secs() / 86_400,
        SERVING_VALID_DAYS + 1,
        "from yesterday"
    );
    let on_disk = CertificateDer::from_pem_slice(&stored_cert(dir.path())).unwrap();
    assert_eq!(on_disk.as_ref(), served.as_ref());
}

#[test]
fn a_cert_lacking_a_wanted_name_is_reissued_and_one_covering_them_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = names(&["localhost", "127.0.0.1"]);
    load_or_create_for(dir.path(), &first).unwrap();
    let before = stored_cert(dir.path());
    // Fewer names (or the same ones spelled differently) are covered: nothing is issued.
    load_or_create_for(dir.path(), &names(&["LOCALHOST"])).unwrap();
    assert_eq!(stored_cert(dir.path()), before);
    let more = names(&["localhost", "127.0.0.1", "snap.example.com"]);
    let tls = load_or_create_for(dir.path(), &more).unwrap();
    assert_ne!(stored_cert(dir.path()), before);
    let (_, sans) = describe(&CertificateDer::from(tls.live.certificate())).unwrap();
    assert_eq!(sans, more);
}

#[test]
fn a_key_that_does_not_match_the_cert_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    load_or_create(dir.path()).unwrap();
    load_or_create(other.path()).unwrap();
    let before = stored_cert(dir.path());
    std::fs::copy(serving_key_path(other.path()), serving_key_path(dir.path())).unwrap();
    let tls = load_or_create(dir.path()).unwrap();
    assert_ne!(stored_cert(dir.path()), before);
    assert!(tls.live.validity().not_after > SystemTime::now());
}

#[test]
fn reissue_swaps_nothing_itself_and_needs_the_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let wanted = names(&["localhost"]);
    let tls = load_or_create_for(dir.path(), &wanted).unwrap();
    let served = tls.live.certificate();
    let renewed = reissue(dir.path(), &wanted).unwrap();
    assert_eq!(
        tls.live.certificate(),
        served,
        "only LiveCert::replace swaps"
    );
    tls.live.replace(renewed);
    assert_ne!(tls.live.certificate(), served);
    let ca_der = CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap();
    let now = UnixTime::since_unix_epoch(since_epoch(SystemTime::now()));
    verify_chain(&CertificateDer::from(tls.live.certificate()), &ca_der, now).unwrap();
    std::fs::remove_file(ca_key_path(dir.path())).unwrap();
    assert!(matches!(
        reissue(dir.path(), &wanted),
        Err(TlsError::Io { action: "read", .. })
    ));
    assert!(!ca_key_path(dir.path()).exists(), "no second CA is created");
}
