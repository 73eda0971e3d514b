//! The bootstrap passphrase: the server token normalised as RKE2 does before it encrypts or
//! hashes anything, so the same token gives the same key and storage key on both products.
//!
//! Splitting the token forms is `crate::token::password_part`'s job; this file only adds the
//! forms RKE2 refuses. It never logs or formats the token.

use secrecy::SecretString;

use super::BootstrapError;
use crate::token::password_part;

/// Length of the id and secret halves of a kubeadm bootstrap token (`abcdef.0123456789abcdef`).
const KUBEADM_ID_LEN: usize = 6;
const KUBEADM_SECRET_LEN: usize = 16;

/// The passphrase for `token`: the password of `K10<hash>::<user>:<password>`, or the whole
/// token otherwise (colons included). An empty token or a kubeadm-style bootstrap token
/// (`abcdef.0123456789abcdef`, bare or after `K10<hash>::`) has no password and fails with
/// RKE2's message.
pub fn token_password(token: &str) -> Result<SecretString, BootstrapError> {
    let password = password_part(token);
    if password.is_empty() || is_kubeadm_token(password) {
        return Err(BootstrapError::TokenFormat);
    }
    Ok(SecretString::from(password.to_owned()))
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`: the format Kubernetes uses for bootstrap tokens.
fn is_kubeadm_token(s: &str) -> bool {
    let allowed = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match s.split_once('.') {
        Some((id, secret)) => allowed(id, KUBEADM_ID_LEN) && allowed(secret, KUBEADM_SECRET_LEN),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn password(token: &str) -> String {
        token_password(token).unwrap().expose_secret().to_owned()
    }

    #[test]
    fn full_tokens_give_their_password_and_bare_tokens_themselves() {
        let hash = "f".repeat(64);
        assert_eq!(password(&format!("K10{hash}::server:abc")), "abc");
        assert_eq!(password("K10::node:pa:ss"), "pa:ss");
        // A bare token is the password even when it contains a colon.
        assert_eq!(password("server:abc"), "server:abc");
        assert_eq!(password("plain-token"), "plain-token");
    }

    #[test]
    fn kubeadm_and_empty_tokens_are_refused_with_rke2_message() {
        for token in [
            "abcdef.0123456789abcdef",
            "K10abc::abcdef.0123456789abcdef",
            "",
        ] {
            let err = token_password(token).unwrap_err();
            assert!(matches!(err, BootstrapError::TokenFormat), "{token:?}");
            assert_eq!(
                err.to_string(),
                "failed to normalize server token; must be in format \
                 K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>"
            );
        }
        // Near misses are ordinary passwords.
        assert_eq!(
            password("ABCDEF.0123456789abcdef"),
            "ABCDEF.0123456789abcdef"
        );
        assert_eq!(password("abcdef.0123456789abcde"), "abcdef.0123456789abcde");
    }
}
