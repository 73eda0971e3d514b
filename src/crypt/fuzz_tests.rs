//! Fuzz target `age_files`: the untrusted inputs of the encryption layer. Encrypted snapshots
//! come from disk and from S3 (a bucket admin can write anything there), key files from
//! operators, fingerprint lists from metadata.
//!
//! Properties: opening any byte string as an age file never panics and never yields plaintext
//! other than what was encrypted (a mutated file either fails or reads back the original); the
//! recipient, identity and fingerprint parsers never panic, never echo a secret line in an
//! error, and accept only well-formed values; neither does the reader of the fingerprints a
//! named header lists (`crypt::named`, delta segments).

// age 0.13 marks the classic X25519 recipient deprecated in favour of post-quantum keys; it is
// the format age-keygen and the age 1.1 tool use, so it is the one snapshots are encrypted to.
#![allow(deprecated)]

use std::io::Read;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::keys::{Identities, Recipients, parse_list};
use super::stream::{EncryptingWriter, decrypting_reader};
use crate::fuzz_support::{Fuzz, hostile_text, mutated, mutated_text};

/// One key per process (generated: the target needs a valid key, not a particular one).
fn secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        let id = age::x25519::Identity::generate();
        age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string()
    })
}

fn identities() -> Identities {
    Identities::parse(secret(), "fuzz").expect("a valid identity")
}

fn sample(plaintext: &[u8]) -> Vec<u8> {
    let recipients = identities().recipients();
    let mut w = EncryptingWriter::new(Vec::new(), Some(&recipients)).expect("recipients");
    std::io::Write::write_all(&mut w, plaintext).expect("in memory");
    w.finish().expect("in memory")
}

fn open_any(bytes: Vec<u8>, original: &[u8]) -> TestCaseResult {
    let ids = identities();
    if let Ok(mut reader) = decrypting_reader(&bytes[..], Some(&ids), "fuzz", &[]) {
        let mut out = Vec::new();
        if reader.read_to_end(&mut out).is_ok() {
            // Authenticated encryption: whatever reads through is exactly what was written.
            prop_assert_eq!(out, original.to_vec());
        }
    }
    Ok(())
}

fn key_texts(text: String) -> TestCaseResult {
    if let Err(e) = Identities::parse(&text, "fuzz") {
        prop_assert!(!e.to_string().contains("AGE-SECRET-KEY-1"));
    }
    if let Ok(r) = Recipients::parse_file_text(&text, "fuzz") {
        for fp in r.fingerprints() {
            prop_assert!(super::keys::Fingerprint::parse(fp.as_str()).is_some());
        }
    }
    if let Some(list) = parse_list(&text) {
        prop_assert!(super::keys::join(&list).len() <= text.len());
    }
    Ok(())
}

#[test]
fn fuzz_age_files() {
    let mut fuzz = Fuzz::new("age_files", 4);
    let original: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let file = sample(&original);
    fuzz.check(
        "mutated_age_file",
        64,
        prop_oneof![
            mutated(file.clone()).prop_map(|(b, _)| b),
            (0..file.len()).prop_map({
                let file = file.clone();
                move |cut| file[..cut].to_vec()
            }),
            prop::collection::vec(any::<u8>(), 0..512),
        ],
        |bytes| open_any(bytes, &original),
    );
    fuzz.check(
        "key_texts",
        512,
        prop_oneof![
            hostile_text(128),
            mutated_text(secret()),
            mutated_text("age1:0123456789abcdef,age1:fedcba9876543210"),
            mutated_text(
                "# public key: age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
            ),
        ],
        key_texts,
    );
    fuzz.check("header_prefixes", 256, hostile_text(64), |text| {
        let mut bytes = super::stream::AGE_MAGIC.to_vec();
        bytes.extend_from_slice(text.as_bytes());
        open_any(bytes, &original)
    });
    // The fingerprints a named header lists (`crypt::named`): only well-formed ones come out.
    let named = {
        let recipients = identities().recipients();
        let mut w = EncryptingWriter::new_named(Vec::new(), Some(&recipients)).expect("recipients");
        std::io::Write::write_all(&mut w, b"x").expect("in memory");
        w.finish().expect("in memory")
    };
    fuzz.check(
        "named_headers",
        256,
        prop_oneof![
            mutated(named).prop_map(|(b, _)| b),
            hostile_text(256).prop_map(|t| {
                let mut bytes = super::stream::AGE_MAGIC.to_vec();
                bytes.extend_from_slice(b"-> etcd-snapshot-fingerprint ");
                bytes.extend_from_slice(t.as_bytes());
                bytes
            }),
        ],
        |bytes| {
            for fp in super::named::fingerprints_in_header(&bytes) {
                prop_assert!(super::keys::Fingerprint::parse(fp.as_str()).is_some());
            }
            Ok(())
        },
    );
    fuzz.finish();
}
