//! HTTP basic authentication for the snapshot API, shared by the server and the client.
//!
//! Pure functions only: building and checking `Authorization` header values. Passwords are
//! compared in constant time and never returned, logged or put into errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// `Basic base64(user:password)`, as a secret because it embeds the password.
pub fn basic_auth_header(user: &str, password: &str) -> SecretString {
    SecretString::from(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// True when `header` is `Basic` credentials for exactly `user` and `password`.
pub fn basic_auth_matches(header: Option<&str>, user: &str, password: &str) -> bool {
    let Some(encoded) = header.and_then(strip_basic) else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(split) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (given_user, given_password) = (&decoded[..split], &decoded[split + 1..]);
    // Evaluate both comparisons so timing does not reveal which part was wrong.
    let user_ok = constant_time_eq(given_user, user.as_bytes());
    let password_ok = constant_time_eq(given_password, password.as_bytes());
    user_ok & password_ok
}

/// The scheme is case-insensitive (RFC 7617).
fn strip_basic(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(rest)
}

/// Compares fixed-size digests so neither the content nor the length leaks through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn header_round_trips_and_rejects_wrong_credentials() {
        let header = basic_auth_header("server", "pa:ss");
        let header = header.expose_secret();
        assert_eq!(header, format!("Basic {}", STANDARD.encode("server:pa:ss")));
        assert!(basic_auth_matches(Some(header), "server", "pa:ss"));
        assert!(!basic_auth_matches(Some(header), "server", "pa"));
        assert!(!basic_auth_matches(Some(header), "node", "pa:ss"));
        let lower = header.replacen("Basic", "basic", 1);
        assert!(basic_auth_matches(Some(&lower), "server", "pa:ss"));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for header in [
            None,
            Some(""),
            Some("Bearer abc"),
            Some("Basic !!!"),
            Some("Basic c2VydmVy"),
        ] {
            assert!(!basic_auth_matches(header, "server", "x"), "{header:?}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
