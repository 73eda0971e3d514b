//! Certificate helpers every CA and TLS config here shares (the API's, the embedded etcd's):
//! the one rustls crypto provider, the host name certificates carry, a common-name subject and
//! the validity window. A leaf: no `crate::` imports, so `api` and `etcd` both build on it
//! without depending on each other.

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType};

/// The rustls crypto provider every config here uses (ring; never the process default, so
/// an extra provider pulled in by a dependency cannot change our behaviour).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A distinguished name with only a common name.
pub fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from yesterday (tolerates small clock skew) for `days` days.
pub fn set_validity(params: &mut CertificateParams, days: u64) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today - chrono::Days::new(1));
    params.not_after = ymd(today + chrono::Days::new(days));
}

/// The kernel's host name, when it is a usable DNS name.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
