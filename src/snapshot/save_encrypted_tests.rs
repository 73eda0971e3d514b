//! Unit tests of the save pipeline with encryption: the published file is an age file whose
//! plaintext is exactly what the unencrypted pipeline writes, the tee sees the ciphertext, the
//! record names the recipients' fingerprints, and a damaged stream leaves nothing behind.
#![allow(deprecated)] // age 0.13 deprecates generating X25519 keys; they are what we test with

use std::collections::VecDeque;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::*;
use crate::crypt::{Identities, decrypting_reader};
use crate::hex::encode as hex;
use crate::snapshot::encryption_record::EncryptionRecord;

struct Scripted(VecDeque<Result<Bytes, etcd_client::Error>>);

impl ChunkSource for Scripted {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, etcd_client::Error> {
        self.0.pop_front().transpose()
    }
}

fn stream(pages: usize) -> Scripted {
    let mut data: Vec<u8> = (0..pages * 512).map(|i| (i * 13 % 251) as u8).collect();
    let digest = Sha256::digest(&data);
    data.extend_from_slice(&digest);
    Scripted(
        data.chunks(32 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect(),
    )
}

fn keys() -> Identities {
    let id = age::x25519::Identity::generate();
    let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    Identities::parse(&text, "test").unwrap()
}

fn name(compressed: bool, encrypted: bool) -> SnapshotName {
    SnapshotName {
        base: "on-demand".into(),
        node: "n1".into(),
        unix: 1_754_906_881,
        compressed,
        encrypted,
    }
}

#[tokio::test]
async fn encrypted_save_decrypts_to_the_plain_pipelines_bytes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("snapshots");
    std::fs::create_dir(&dir).unwrap();
    let dir = SnapshotDirLayout::open(&dir);
    let ids = keys();
    for compressed in [false, true] {
        let plain = save_from_source(
            stream(200),
            &dir,
            &name(compressed, false),
            None,
            Output::level(1),
        )
        .await
        .unwrap();
        let output = Output {
            compression_level: 1,
            tee: None,
            recipients: Some(ids.recipients()),
            late: None,
        };
        let saved = save_from_source(stream(200), &dir, &name(compressed, true), None, output)
            .await
            .unwrap();
        assert!(saved.path.to_string_lossy().ends_with(".age"));
        let file = std::fs::read(&saved.path).unwrap();
        assert_eq!(saved.file_sha256, hex(&Sha256::digest(&file)));
        let mut reader = decrypting_reader(&file[..], Some(&ids), "s", &[]).unwrap();
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        assert_eq!(
            back,
            std::fs::read(&plain.path).unwrap(),
            "compressed={compressed}"
        );
        assert_eq!(saved.plaintext_sha256, Some(plain.file_sha256.clone()));
        assert_eq!(saved.recipients, ids.fingerprints());
        let record = EncryptionRecord::read_beside(&saved.path).expect("record");
        assert_eq!(record.recipients, ids.fingerprints());
        assert_eq!(record.file_sha256, Some(saved.file_sha256.clone()));
    }
}

#[tokio::test]
async fn an_encrypted_name_without_recipients_or_a_bad_stream_publishes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("snapshots");
    std::fs::create_dir(&dir).unwrap();
    let layout = SnapshotDirLayout::open(&dir);
    let err = save_from_source(
        stream(10),
        &layout,
        &name(false, true),
        None,
        Output::level(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SaveError::Encrypt(_)), "{err}");
    let mut short = stream(10);
    short.0.pop_back();
    let output = Output {
        compression_level: 1,
        tee: None,
        recipients: Some(keys().recipients()),
        late: None,
    };
    assert!(
        save_from_source(short, &layout, &name(true, true), None, output)
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}
