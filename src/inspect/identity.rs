//! Which cluster a snapshot belongs to, as far as the snapshot can say. etcd keeps its cluster
//! ID in the WAL, not in the database a snapshot holds, so the evidence is the server token: the
//! bootstrap data is stored under a key derived from the token's password and sealed with it,
//! and an S3 object carries the uploading cluster's token hash (RKE2's `Rke2-Token-Hash`).
//! A token given to `inspect` that matches neither is a snapshot of another cluster.

use secrecy::{ExposeSecret, SecretString};

use super::report::Check;
use super::tally::Tally;
use crate::bootstrap::crypto::{decrypt, storage_key};
use crate::bootstrap::token_password;
use crate::token::token_hash;

/// The `token` check: the bootstrap key for this token exists and decrypts with it.
pub fn token_check(token: &SecretString, tally: &Tally) -> Check {
    let password = match token_password(token.expose_secret()) {
        Ok(p) => p,
        Err(e) => {
            return Check::new(
                "token",
                false,
                format!("the token has no usable password: {e}"),
            );
        }
    };
    let key = storage_key(password.expose_secret());
    match tally.bootstrap.get(&key) {
        Some(Some(value)) => match std::str::from_utf8(value)
            .ok()
            .map(|v| decrypt(password.expose_secret(), v))
        {
            Some(Ok(_)) => Check::new("token", true, format!("the token decrypts {key}")),
            _ => Check::new("token", false, format!("the token does not decrypt {key}")),
        },
        _ if tally.bootstrap.values().any(Option::is_some) => Check::new(
            "token",
            false,
            format!(
                "no bootstrap data for this token ({key}); there is some for other tokens: \
                 a snapshot of another cluster"
            ),
        ),
        _ => Check::new("token", false, "the snapshot holds no bootstrap data"),
    }
}

/// The `uploader` check of an S3 object: the token hash recorded at upload (the first 12 hex
/// characters of SHA-256 over the token's password, never the token) is this token's.
pub fn uploader_check(recorded: &str, token: &SecretString) -> Check {
    let Ok(password) = token_password(token.expose_secret()) else {
        return Check::new("uploader", false, "the token has no usable password");
    };
    let ours = token_hash(password.expose_secret());
    if recorded.eq_ignore_ascii_case(&ours) {
        Check::new(
            "uploader",
            true,
            format!("uploaded by a cluster with this token (token hash {ours})"),
        )
    } else {
        Check::new(
            "uploader",
            false,
            format!(
                "uploaded by a cluster with another token: recorded token hash {recorded}, \
                 this token's {ours}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_token_hash_must_be_the_given_tokens() {
        let token = SecretString::from("K10abc::server:alpha");
        let ours = token_hash("alpha");
        assert!(uploader_check(&ours, &token).ok);
        assert!(uploader_check(&ours.to_uppercase(), &token).ok);
        let other = uploader_check(&token_hash("beta"), &token);
        assert!(!other.ok);
        assert!(other.detail.contains("another token"), "{}", other.detail);
        assert!(
            !other.detail.contains("alpha"),
            "no secret in {}",
            other.detail
        );
    }
}
