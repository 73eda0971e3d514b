//! Decisions about the API serving certificate, as values: which names it must carry, which of
//! them an existing certificate lacks, and when it is renewed. No I/O and no clock: the caller
//! passes `now`, so every rule is tested with fixed times.
//!
//! Renewal follows one rule at start and while running: a certificate is replaced once less
//! than `RENEW_BEFORE` (30 days) or a third of its lifetime is left, whichever comes first. A
//! year-long certificate is thus renewed 30 days before it expires; a short-lived one (issued by
//! hand, or in tests) at two thirds of its life, so there is always time to retry.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// A serving cert expiring sooner than this is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The running server looks at its certificate at least this often, so a clock change or a
/// suspended host cannot make it sleep past the renewal time.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// The moment the certificate should be replaced (see the module docs).
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - RENEW_BEFORE.min(lifetime / 3)
    }

    /// True once the certificate is due for replacement (or already expired).
    pub fn renew_due(&self, now: SystemTime) -> bool {
        now >= self.renew_at()
    }

    /// How long the renewal task sleeps before looking again: until the renewal time, but
    /// never longer than `MAX_CHECK_INTERVAL`; zero when renewal is due.
    pub fn next_check(&self, now: SystemTime) -> Duration {
        self.renew_at()
            .duration_since(now)
            .unwrap_or_default()
            .min(MAX_CHECK_INTERVAL)
    }
}

/// The names the serving certificate must carry, in order and without duplicates: every
/// loopback spelling, the host name, the bind address unless it is a wildcard, then `tls-san`
/// (RKE2's key: extra host names or addresses clients use to reach this server).
pub fn serving_names(host: Option<&str>, bind_address: IpAddr, tls_san: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let loopback = ["localhost", "127.0.0.1", "::1"].map(String::from);
    let bind = (!bind_address.is_unspecified()).then(|| bind_address.to_string());
    let all = loopback
        .into_iter()
        .chain(host.map(str::to_owned))
        .chain(bind)
        .chain(tls_san.iter().cloned());
    for name in all {
        if !names.iter().any(|have| same_name(have, &name)) {
            names.push(name);
        }
    }
    names
}

/// The wanted names that `have` (a certificate's SANs) does not cover.
pub fn missing_names(wanted: &[String], have: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|want| !have.iter().any(|name| same_name(name, want)))
        .cloned()
        .collect()
}

/// DNS names compare without case; addresses by value (`::1` and `0:0::1` are one address).
fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_year_long_cert_renews_thirty_days_before_expiry_and_is_checked_daily() {
        let issued = at(1_000_000_000);
        let validity = Validity {
            not_before: issued,
            not_after: issued + 365 * DAY,
        };
        assert_eq!(validity.renew_at(), issued + 335 * DAY);
        assert!(!validity.renew_due(issued + 334 * DAY));
        assert!(validity.renew_due(issued + 335 * DAY));
        assert!(validity.renew_due(issued + 400 * DAY), "expired is due");
        assert_eq!(validity.next_check(issued), MAX_CHECK_INTERVAL);
        let late = issued + 335 * DAY - Duration::from_secs(90);
        assert_eq!(validity.next_check(late), Duration::from_secs(90));
        assert_eq!(validity.next_check(issued + 340 * DAY), Duration::ZERO);
    }

    #[test]
    fn a_short_lived_cert_renews_at_two_thirds_of_its_life() {
        let validity = Validity {
            not_before: at(1000),
            not_after: at(1030),
        };
        assert_eq!(validity.renew_at(), at(1020));
        assert!(!validity.renew_due(at(1019)));
        assert!(validity.renew_due(at(1020)));
        assert_eq!(validity.next_check(at(1005)), Duration::from_secs(15));
        // Reversed dates (no lifetime) still renew no later than the expiry.
        let reversed = Validity {
            not_before: at(2000),
            not_after: at(1000),
        };
        assert_eq!(reversed.renew_at(), at(1000));
    }

    #[test]
    fn serving_names_add_the_bind_address_and_tls_san_once() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            serving_names(Some("node-a"), loopback, &[]),
            names(&["localhost", "127.0.0.1", "::1", "node-a"])
        );
        let wildcard: IpAddr = "0.0.0.0".parse().unwrap();
        let san = names(&["snap.example.com", "NODE-A", "10.0.0.5", "0:0::1"]);
        assert_eq!(
            serving_names(Some("node-a"), wildcard, &san),
            names(&[
                "localhost",
                "127.0.0.1",
                "::1",
                "node-a",
                "snap.example.com",
                "10.0.0.5"
            ])
        );
        let bound: IpAddr = "fd00::7".parse().unwrap();
        assert_eq!(
            serving_names(None, bound, &names(&["fd00:0::7"])),
            names(&["localhost", "127.0.0.1", "::1", "fd00::7"])
        );
        assert!(!serving_names(None, "::".parse().unwrap(), &[]).contains(&"::".to_string()));
    }

    #[test]
    fn missing_names_compare_dns_without_case_and_addresses_by_value() {
        let wanted = names(&["localhost", "::1", "snap.example.com", "10.0.0.5"]);
        let have = names(&["LOCALHOST", "0:0:0:0:0:0:0:1", "10.0.0.5"]);
        assert_eq!(missing_names(&wanted, &have), names(&["snap.example.com"]));
        assert!(missing_names(&wanted, &wanted).is_empty());
        // An address never counts as the DNS name spelled like it, nor the reverse.
        assert_eq!(
            missing_names(&names(&["10.0.0.5"]), &names(&["10.0.0.6", "x"])),
            names(&["10.0.0.5"])
        );
    }
}
