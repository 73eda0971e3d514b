//! Fuzz target `bootstrap_codec`: the bootstrap data read back from etcd (or a peer), which a
//! restore or join decrypts with the token and decodes.
//!
//! Properties: `decrypt` never panics on any stored value and opens only an unaltered value
//! with the right passphrase (every mutation of a sealed value is refused); encrypt/decrypt and
//! `to_json`/`from_json` round-trip; `from_json` never panics on any bytes and errors never
//! quote file content; token parsing never panics and its secret never appears in an error.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use ring::aead::NONCE_LEN;
use secrecy::ExposeSecret;

use super::codec::{BootstrapData, BootstrapFile};
use super::crypto::{decrypt, encrypt_with};
use super::files::BOOTSTRAP_FILES;
use super::passphrase::token_password;
use crate::fuzz_support::{Fuzz, hostile_text, mutated, mutated_text};

const PASSPHRASE: &str = "fuzz-token";

fn field_name() -> impl Strategy<Value = String> {
    let known: Vec<String> = BOOTSTRAP_FILES
        .iter()
        .map(|f| f.field.to_string())
        .collect();
    prop_oneof![3 => prop::sample::select(known), 1 => hostile_text(12)]
}

/// Timestamps a file system can give: years 1..=9999 (RFC 3339's range), any nanosecond.
/// Go's zero time is excluded: it is how "no timestamp" is written.
fn timestamp() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    let min = -62_135_596_800i64; // 0001-01-01T00:00:00Z
    let max = 253_402_300_799i64; // 9999-12-31T23:59:59Z
    prop_oneof![
        1 => Just(None),
        4 => ((min + 1)..=max, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::<Utc>::from_timestamp(s, n)),
    ]
}

fn bootstrap_data() -> impl Strategy<Value = BootstrapData> {
    let file = (timestamp(), prop::collection::vec(any::<u8>(), 0..256))
        .prop_map(|(timestamp, content)| BootstrapFile { timestamp, content });
    prop::collection::btree_map(field_name(), file, 0..6).prop_map(|files| BootstrapData { files })
}

/// A value sealed by our writer opens to the same bytes; any change to it is refused.
fn seal_open(
    plain: Vec<u8>,
    salt: [u8; 8],
    nonce: [u8; NONCE_LEN],
    edits: Vec<u8>,
) -> TestCaseResult {
    let salt_hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    let stored = encrypt_with(PASSPHRASE, &plain, &salt_hex, nonce).expect("encrypt");
    prop_assert_eq!(decrypt(PASSPHRASE, &stored).ok(), Some(plain.clone()));
    prop_assert!(decrypt("another-token", &stored).is_err());
    // Mutate the sealed bytes (not the base64 text, whose padding bits may be ignored).
    let (salt_part, encoded) = stored.split_once(':').expect("delimited");
    let blob = STANDARD.decode(encoded).expect("base64");
    let mut altered = blob.clone();
    for (i, e) in edits.iter().enumerate() {
        if altered.is_empty() {
            break;
        }
        let at = (usize::from(*e) * 31 + i * 7) % altered.len();
        altered[at] ^= e | 1;
    }
    if altered != blob {
        let tampered = format!("{salt_part}:{}", STANDARD.encode(&altered));
        prop_assert!(
            decrypt(PASSPHRASE, &tampered).is_err(),
            "tampered value opened"
        );
    }
    Ok(())
}

/// Hostile stored values: random text, and mutations of a valid one.
fn stored_value() -> impl Strategy<Value = String> {
    let sample = encrypt_with(
        PASSPHRASE,
        br#"{"ServerCA":"x"}"#,
        "0011223344556677",
        [7; 12],
    )
    .expect("encrypt");
    prop_oneof![
        hostile_text(96),
        mutated_text(&sample),
        (hostile_text(40), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(salt, blob)| format!("{salt}:{}", STANDARD.encode(blob))),
    ]
}

fn open_any(stored: String) -> TestCaseResult {
    match decrypt(PASSPHRASE, &stored) {
        // Only an authentic value opens: same salt, nonce and sealed bytes as the sample (the
        // base64 text may still differ in ignored padding bits or in its salt spelling).
        Ok(plain) => prop_assert_eq!(plain, br#"{"ServerCA":"x"}"#.to_vec()),
        Err(e) => prop_assert!(!e.to_string().contains(PASSPHRASE)),
    }
    Ok(())
}

fn json_round_trip(data: BootstrapData) -> TestCaseResult {
    let json = data.to_json();
    let back = BootstrapData::from_json(&json);
    prop_assert!(back.is_ok(), "{:?}", back);
    prop_assert_eq!(back.unwrap(), data);
    Ok(())
}

fn json_sample() -> Vec<u8> {
    let mut files = BTreeMap::new();
    files.insert(
        "ServerCA".to_string(),
        BootstrapFile {
            timestamp: DateTime::<Utc>::from_timestamp(1_754_906_881, 123_000_000),
            content: b"-----BEGIN CERTIFICATE-----\nSECRETCONTENT\n".to_vec(),
        },
    );
    files.insert(
        "PasswdFile".to_string(),
        BootstrapFile {
            timestamp: None,
            content: b"token,node,node,rke2:agent\n".to_vec(),
        },
    );
    BootstrapData { files }.to_json()
}

/// Any bytes: no panic, and an error never carries decoded file content.
fn json_any(bytes: Vec<u8>) -> TestCaseResult {
    if let Err(e) = BootstrapData::from_json(&bytes) {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&s.to_string());
            source = s.source();
        }
        prop_assert!(!text.contains("SECRETCONTENT"), "{text}");
    }
    Ok(())
}

fn json_bytes() -> impl Strategy<Value = Vec<u8>> {
    let legacy = br#"{"ServerCA":"U0VDUkVUQ09OVEVOVA==","ETCDPeerCA":null}"#.to_vec();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        mutated(json_sample()).prop_map(|(b, _)| b),
        mutated(legacy).prop_map(|(b, _)| b),
    ]
}

fn token_any(token: String) -> TestCaseResult {
    // The passphrase is the token's password part, never empty, never built from anything else.
    if let Ok(p) = token_password(&token) {
        let p = p.expose_secret();
        prop_assert!(!p.is_empty() && token.ends_with(p));
        prop_assert_eq!(crate::token::password_part(&token), p);
    }
    prop_assert_eq!(crate::token::token_hash(&token).len(), 12);
    Ok(())
}

#[test]
fn fuzz_bootstrap_codec() {
    let mut fuzz = Fuzz::new("bootstrap_codec", 5);
    let seal = (
        prop::collection::vec(any::<u8>(), 0..512),
        any::<[u8; 8]>(),
        any::<[u8; NONCE_LEN]>(),
        prop::collection::vec(any::<u8>(), 1..4),
    );
    fuzz.check("seal_open_tamper", 24, seal, |(p, s, n, e)| {
        seal_open(p, s, n, e)
    });
    fuzz.check("decrypt_hostile", 128, stored_value(), open_any);
    fuzz.check("json_round_trip", 256, bootstrap_data(), json_round_trip);
    fuzz.check("json_any_bytes", 512, json_bytes(), json_any);
    let token = prop_oneof![
        hostile_text(64),
        mutated_text("K10abcdef0123456789::server:s3cretpassword"),
    ];
    fuzz.check("token_forms", 256, token, token_any);
    fuzz.finish();
}
