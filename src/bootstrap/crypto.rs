//! The k3s bootstrap cipher format and storage key, byte for byte, so a blob written by RKE2 opens
//! here and ours opens there: `<16 hex salt chars>:base64(nonce | ciphertext | tag)`, the key
//! derived with PBKDF2-HMAC-SHA1 (4096 rounds) from the normalised token, AES-256-GCM, no AAD.
//!
//! Pure apart from the random salt and nonce; no I/O, no logging (the passphrase and plaintext
//! are secrets).

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

use super::BootstrapError;
use crate::hex::encode as hex;
use crate::token::passphrase_hash;

/// Prefix of every bootstrap key in etcd.
pub const STORAGE_PREFIX: &str = "/bootstrap/";
/// Random salt bytes; their hex form (16 ASCII characters) is the PBKDF2 salt, as in k3s.
pub const SALT_BYTES: usize = 8;
/// PBKDF2 rounds k3s uses.
const PBKDF2_ROUNDS: NonZeroU32 = NonZeroU32::new(4096).unwrap();
/// AES-256 key length.
const KEY_LEN: usize = 32;
/// GCM tag length appended to the ciphertext.
const TAG_LEN: usize = 16;

/// Encrypts `plaintext` with `passphrase` (the normalised token) in the k3s stored format.
pub fn encrypt(passphrase: &str, plaintext: &[u8]) -> Result<String, BootstrapError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt).map_err(|_| BootstrapError::Random)?;
    rng.fill(&mut nonce).map_err(|_| BootstrapError::Random)?;
    encrypt_with(passphrase, plaintext, &hex(&salt), nonce)
}

/// `encrypt` with a given salt (the hex text) and nonce: the deterministic core, separate so
/// known vectors can be checked.
pub(crate) fn encrypt_with(
    passphrase: &str,
    plaintext: &[u8],
    salt_hex: &str,
    nonce: [u8; NONCE_LEN],
) -> Result<String, BootstrapError> {
    let key = derive_key(passphrase, salt_hex)?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .map_err(|_| BootstrapError::Encrypt)?;
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(format!("{salt_hex}:{}", STANDARD.encode(blob)))
}

/// Opens a stored value. An authentication failure means the passphrase is not the one that
/// encrypted it (or the value was altered), reported as `WrongToken`.
pub fn decrypt(passphrase: &str, stored: &str) -> Result<Vec<u8>, BootstrapError> {
    let (salt_hex, encoded) = stored.split_once(':').ok_or(BootstrapError::NotDelimited)?;
    let blob = STANDARD.decode(encoded).map_err(BootstrapError::Base64)?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(BootstrapError::TooShort { len: blob.len() });
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    // Cannot fail: the length was checked above.
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| BootstrapError::TooShort { len: blob.len() })?;
    let key = derive_key(passphrase, salt_hex)?;
    let mut in_out = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::empty(), &mut in_out)
        .map_err(|_| BootstrapError::WrongToken)?;
    Ok(plain.to_vec())
}

/// The etcd key of the bootstrap data for `passphrase`: `/bootstrap/<token hash>`.
pub fn storage_key(passphrase: &str) -> String {
    format!("{STORAGE_PREFIX}{}", passphrase_hash(passphrase))
}

fn derive_key(passphrase: &str, salt_hex: &str) -> Result<LessSafeKey, BootstrapError> {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA1,
        PBKDF2_ROUNDS,
        salt_hex.as_bytes(),
        passphrase.as_bytes(),
        &mut key,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| BootstrapError::Encrypt)?;
    Ok(LessSafeKey::new(unbound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::passphrase_hash as token_hash;

    // Produced independently of this code, with Python's `cryptography` package:
    // python3 -c "import base64;from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC;from cryptography.hazmat.primitives import hashes;from cryptography.hazmat.primitives.ciphers.aead import AESGCM;s=b'a1b2c3d4e5f60718';n=bytes(range(12));k=PBKDF2HMAC(hashes.SHA1(),32,s,4096).derive(b'known-vector-token');print(s.decode()+':'+base64.b64encode(n+AESGCM(k).encrypt(n,b'{\"ServerCA\":\"known\"}',None)).decode())"
    const VECTOR_PASSPHRASE: &str = "known-vector-token";
    const VECTOR_SALT: &str = "a1b2c3d4e5f60718";
    const VECTOR_NONCE: [u8; NONCE_LEN] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const VECTOR_PLAINTEXT: &[u8] = br#"{"ServerCA":"known"}"#;
    const VECTOR_STORED: &str =
        "a1b2c3d4e5f60718:AAECAwQFBgcICQoLVLVcloZXH3Bpt7OXDdQkoq/sKP4zq3TKYmF96ZnjPYuPTfjh";

    #[test]
    fn round_trip_with_random_salt_and_nonce() {
        let stored = encrypt("s3cret", b"payload").unwrap();
        let (salt, _) = stored.split_once(':').unwrap();
        assert_eq!(salt.len(), 2 * SALT_BYTES);
        assert!(salt.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(decrypt("s3cret", &stored).unwrap(), b"payload");
        // Fresh salt and nonce every time.
        assert_ne!(encrypt("s3cret", b"payload").unwrap(), stored);
    }

    #[test]
    fn wrong_passphrase_is_reported_as_a_different_token() {
        let stored = encrypt("right", b"payload").unwrap();
        let err = decrypt("wrong", &stored).unwrap_err();
        assert!(matches!(err, BootstrapError::WrongToken), "{err:?}");
        assert!(err.to_string().contains(super::super::WRONG_TOKEN_HINT));
    }

    #[test]
    fn tampering_fails_authentication() {
        let stored = encrypt("pw", b"payload").unwrap();
        let (salt, encoded) = stored.split_once(':').unwrap();
        let mut blob = STANDARD.decode(encoded).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
        let flipped = format!("{salt}:{}", STANDARD.encode(&blob));
        assert!(matches!(
            decrypt("pw", &flipped),
            Err(BootstrapError::WrongToken)
        ));
        // A different salt derives a different key.
        let resalted = format!("0000000000000000:{encoded}");
        assert!(matches!(
            decrypt("pw", &resalted),
            Err(BootstrapError::WrongToken)
        ));
    }

    #[test]
    fn malformed_values_have_distinct_errors() {
        assert!(matches!(
            decrypt("pw", "no-delimiter"),
            Err(BootstrapError::NotDelimited)
        ));
        assert!(matches!(
            decrypt("pw", "0011223344556677:!!not base64!!"),
            Err(BootstrapError::Base64(_))
        ));
        let short = format!("0011223344556677:{}", STANDARD.encode([0u8; 27]));
        assert!(matches!(
            decrypt("pw", &short),
            Err(BootstrapError::TooShort { len: 27 })
        ));
    }

    #[test]
    fn known_vector_opens_and_is_reproduced() {
        let plain = decrypt(VECTOR_PASSPHRASE, VECTOR_STORED).unwrap();
        assert_eq!(plain, VECTOR_PLAINTEXT);
        let ours = encrypt_with(
            VECTOR_PASSPHRASE,
            VECTOR_PLAINTEXT,
            VECTOR_SALT,
            VECTOR_NONCE,
        );
        assert_eq!(ours.unwrap(), VECTOR_STORED);
    }

    #[test]
    fn token_hash_and_storage_key_match_rke2_examples() {
        assert_eq!(token_hash("test"), "9f86d081884c");
        assert_eq!(token_hash(""), "e3b0c44298fc");
        assert_eq!(storage_key("test"), "/bootstrap/9f86d081884c");
    }
}
