//! Unit tests of the save pipeline: scripted streams (good, corrupted, short, failing) through
//! the real pipeline into temp dirs.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};

use super::*;
use crate::fsutil::sorted_names;
use crate::hex::encode as hex;
use crate::layout::SnapshotDirLayout;

/// Scripted chunks; an `Err` item is returned once, like a broken stream.
struct Scripted(VecDeque<Result<Bytes, etcd_client::Error>>);

impl ChunkSource for Scripted {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, etcd_client::Error> {
        self.0.pop_front().transpose()
    }
}

fn scripted(data: &[u8], chunk: usize) -> Scripted {
    Scripted(
        data.chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect(),
    )
}

/// A stream shaped like etcd's: `pages * 512` bytes of db plus its SHA-256.
fn etcd_stream(pages: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..pages * 512).map(|i| (i * 31 % 253) as u8).collect();
    let digest = Sha256::digest(&data);
    data.extend_from_slice(&digest);
    data
}

fn name(compressed: bool) -> SnapshotName {
    SnapshotName {
        base: "on-demand".into(),
        node: "n1".into(),
        unix: 1_754_906_881,
        compressed,
        encrypted: false,
    }
}

struct Dirs {
    _root: tempfile::TempDir,
    snapshots: PathBuf,
    metadata: PathBuf,
    layout: SnapshotDirLayout,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let snapshots = root.path().join("snapshots");
    std::fs::create_dir(&snapshots).unwrap();
    let metadata = root.path().join(".metadata");
    Dirs {
        layout: SnapshotDirLayout::new(&snapshots, true),
        _root: root,
        snapshots,
        metadata,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn save(source: Scripted, d: &Dirs, compressed: bool) -> Result<SavedSnapshot, SaveError> {
    save_from_source(
        source,
        &d.layout,
        &name(compressed),
        None,
        Output::level(DEFAULT_COMPRESSION_LEVEL),
    )
    .await
}

#[tokio::test]
async fn raw_save_is_byte_identical_and_private() {
    let data = etcd_stream(300);
    for chunk in [7, 32 * 1024] {
        let d = dirs();
        let saved = save(scripted(&data, chunk), &d, false).await.unwrap();
        // Only the snapshot is in the snapshot dir; its temp file was written beside it.
        assert_eq!(sorted_names(&d.snapshots), ["on-demand-n1-1754906881"]);
        assert_eq!(mode(&d.layout.work), 0o700);
        assert!(sorted_names(&d.layout.work).is_empty());
        assert_eq!(std::fs::read(&saved.path).unwrap(), data);
        assert_eq!(mode(&saved.path), 0o600);
        assert_eq!(saved.size, data.len() as u64);
        assert_eq!(saved.db_size, 300 * 512);
        assert_eq!(saved.file_sha256, hex(&Sha256::digest(&data)));
        assert!(!d.metadata.exists());
    }
}

#[tokio::test]
async fn compressed_save_is_a_one_entry_zip_of_the_stream() {
    let data = etcd_stream(300);
    let d = dirs();
    let saved = save(scripted(&data, 32 * 1024), &d, true).await.unwrap();
    assert_eq!(sorted_names(&d.snapshots), ["on-demand-n1-1754906881.zip"]);
    let bytes = std::fs::read(&saved.path).unwrap();
    assert_eq!(saved.size, bytes.len() as u64);
    assert_eq!(saved.file_sha256, hex(&Sha256::digest(&bytes)));
    assert_eq!(saved.db_size, 300 * 512);
    assert_eq!(mode(&saved.path), 0o600);

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(archive.len(), 1);
    let mut entry = archive.by_index(0).unwrap();
    assert_eq!(entry.name().unwrap(), "on-demand-n1-1754906881");
    assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
    assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o600));
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut unpacked).unwrap();
    assert_eq!(unpacked, data);
}

#[tokio::test]
async fn corrupted_stream_leaves_nothing() {
    let mut data = etcd_stream(64);
    data[1000] ^= 0x10;
    for compressed in [false, true] {
        let d = dirs();
        let err = save(scripted(&data, 4096), &d, compressed)
            .await
            .unwrap_err();
        assert!(matches!(err, SaveError::ChecksumMismatch { .. }), "{err:?}");
        assert!(sorted_names(&d.snapshots).is_empty());
        assert!(
            sorted_names(&d.layout.work).is_empty(),
            "the temp file is removed"
        );
    }
}

#[tokio::test]
async fn short_and_empty_streams_are_truncated() {
    let data = etcd_stream(64);
    let cases: [&[u8]; 3] = [&data[..data.len() - 100], &data[..32], &[]];
    for (i, bytes) in cases.into_iter().enumerate() {
        for compressed in [false, true] {
            let d = dirs();
            let err = save(scripted(bytes, 4096), &d, compressed)
                .await
                .unwrap_err();
            let expected = bytes.len() as u64;
            assert!(
                matches!(err, SaveError::Truncated { received } if received == expected),
                "case {i}: {err:?}"
            );
            assert!(sorted_names(&d.snapshots).is_empty(), "case {i}");
        }
    }
}

#[tokio::test]
async fn stream_error_midway_leaves_nothing() {
    let data = etcd_stream(64);
    let mut source = scripted(&data[..8192], 4096);
    source
        .0
        .push_back(Err(etcd_client::Error::InvalidArgs("broken".into())));
    let d = dirs();
    let err = save(source, &d, true).await.unwrap_err();
    assert!(
        matches!(err, SaveError::ReadStream { received: 8192, .. }),
        "{err:?}"
    );
    assert!(sorted_names(&d.snapshots).is_empty());
}

#[tokio::test]
async fn existing_snapshot_is_never_replaced() {
    let data = etcd_stream(8);
    let d = dirs();
    let existing = d.snapshots.join("on-demand-n1-1754906881");
    std::fs::write(&existing, b"keep me").unwrap();
    let err = save(scripted(&data, 1024), &d, false).await.unwrap_err();
    assert!(matches!(err, SaveError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(sorted_names(&d.snapshots), ["on-demand-n1-1754906881"]);
}

#[tokio::test]
async fn metadata_file_is_compact_json_beside_the_dir() {
    let data = etcd_stream(8);
    let d = dirs();
    let meta = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
    let saved = save_from_source(
        scripted(&data, 1024),
        &d.layout,
        &name(true),
        Some(&meta),
        Output::level(DEFAULT_COMPRESSION_LEVEL),
    )
    .await
    .unwrap();
    let meta_file = d.metadata.join("on-demand-n1-1754906881.zip");
    assert_eq!(
        std::fs::read_to_string(&meta_file).unwrap(),
        r#"{"a":"1","b":"2"}"#
    );
    assert_eq!(mode(&meta_file), 0o600);
    assert_eq!(mode(&d.metadata), 0o700);
    assert!(saved.path.exists());
    assert_eq!(sorted_names(&d.metadata), ["on-demand-n1-1754906881.zip"]);
}

#[tokio::test]
async fn failed_metadata_write_rolls_the_snapshot_back() {
    let data = etcd_stream(8);
    let d = dirs();
    // A file where the metadata dir should be makes the metadata write fail.
    std::fs::write(&d.metadata, b"not a dir").unwrap();
    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let err = save_from_source(
        scripted(&data, 1024),
        &d.layout,
        &name(false),
        Some(&meta),
        Output::level(DEFAULT_COMPRESSION_LEVEL),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SaveError::Metadata { .. }), "{err:?}");
    assert!(sorted_names(&d.snapshots).is_empty());
}

/// Collects what a tee consumer receives: the bytes and the `Done` message, if any.
async fn drain(mut rx: crate::snapshot::tee::TeeReceiver) -> (Vec<u8>, Option<(String, u64)>) {
    use crate::snapshot::tee::TeeMessage;
    let (mut bytes, mut done) = (Vec::new(), None);
    while let Some(message) = rx.recv().await {
        match message {
            TeeMessage::Chunk(c) => bytes.extend_from_slice(&c),
            TeeMessage::Done { sha256, size, .. } => done = Some((sha256, size)),
        }
    }
    (bytes, done)
}

fn teed(tee: crate::snapshot::tee::Tee) -> Output {
    Output {
        compression_level: DEFAULT_COMPRESSION_LEVEL,
        tee: Some(tee),
        recipients: None,
        late: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tee_sees_exactly_the_published_bytes_then_done() {
    let data = etcd_stream(5000);
    for compressed in [false, true] {
        let d = dirs();
        let (tee, rx) = crate::snapshot::tee::channel();
        let consumer = tokio::spawn(drain(rx));
        let saved = save_from_source(
            scripted(&data, 32 * 1024),
            &d.layout,
            &name(compressed),
            None,
            teed(tee),
        )
        .await
        .unwrap();
        let (bytes, done) = consumer.await.unwrap();
        assert_eq!(
            bytes,
            std::fs::read(&saved.path).unwrap(),
            "compressed={compressed}"
        );
        assert_eq!(done, Some((saved.file_sha256.clone(), saved.size)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_never_tells_the_tee_done() {
    let mut corrupted = etcd_stream(3000);
    corrupted[700_000] ^= 0x40;
    let d = dirs();
    let (tee, rx) = crate::snapshot::tee::channel();
    let consumer = tokio::spawn(drain(rx));
    let err = save_from_source(
        scripted(&corrupted, 32 * 1024),
        &d.layout,
        &name(false),
        None,
        teed(tee),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SaveError::ChecksumMismatch { .. }), "{err:?}");
    let (bytes, done) = consumer.await.unwrap();
    assert_eq!(done, None);
    assert!(
        !bytes.is_empty(),
        "bytes were streamed before the failure was known"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_failure_never_tells_the_tee_done() {
    let data = etcd_stream(8);
    let d = dirs();
    std::fs::write(&d.metadata, b"not a dir").unwrap();
    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let (tee, rx) = crate::snapshot::tee::channel();
    let consumer = tokio::spawn(drain(rx));
    let err = save_from_source(
        scripted(&data, 1024),
        &d.layout,
        &name(false),
        Some(&meta),
        teed(tee),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SaveError::Metadata { .. }), "{err:?}");
    assert_eq!(consumer.await.unwrap().1, None);
}

#[test]
fn the_metadata_record_carries_the_plaintext_digest_of_an_encrypted_save() {
    let key = crate::snapshot::encryption_record::META_PLAINTEXT_SHA256;
    let digest = "ab".repeat(32);
    let none = BTreeMap::new();
    assert_eq!(metadata_record(None, &none, None), None);
    assert_eq!(metadata_record(Some(&BTreeMap::new()), &none, None), None);
    let only = metadata_record(None, &none, Some(&digest)).unwrap();
    assert_eq!(only, BTreeMap::from([(key.to_string(), digest.clone())]));
    let extra = BTreeMap::from([("team".to_string(), "infra".to_string())]);
    let both = metadata_record(Some(&extra), &none, Some(&digest)).unwrap();
    assert_eq!(both.len(), 2);
    let read = crate::snapshot::encryption_record::EncryptionRecord::plaintext_sha256_in(&both);
    assert_eq!(read, Some(digest));
    let bad = BTreeMap::from([(key.to_ascii_lowercase(), "not a digest".to_string())]);
    assert_eq!(
        crate::snapshot::encryption_record::EncryptionRecord::plaintext_sha256_in(&bad),
        None
    );
}

/// The late entries: asked for once the whole stream is written and its trailer checked (while
/// the file is synced and published) and before its record exists; then in the record (never
/// over a given entry) and in the tee's `Done`. A save whose trailer does not match never asks
/// for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_entries_come_after_the_publish_into_the_record_and_the_tee() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let data = etcd_stream(300);
    let d = dirs();
    let file = name(false).file_name();
    let (snapshot, record) = (d.snapshots.join(&file), d.metadata.join(&file));
    let temp = d.layout.temp_path(&file);
    let late = LateEntries(Box::pin(async move {
        // The trailer is checked (the corrupted save below shows it must be), so the file is
        // at its temp path or already published.
        assert!(
            temp.exists() || snapshot.exists(),
            "asked for before the file existed"
        );
        assert!(!record.exists(), "asked for after the record");
        BTreeMap::from([
            ("late".to_string(), "1".to_string()),
            ("team".to_string(), "late".to_string()),
        ])
    }));
    let (tee, mut rx) = crate::snapshot::tee::channel();
    let output = Output {
        late: Some(late),
        ..teed(tee)
    };
    let extra = BTreeMap::from([("team".to_string(), "infra".to_string())]);
    let saved = save_from_source(
        scripted(&data, 4096),
        &d.layout,
        &name(false),
        Some(&extra),
        output,
    )
    .await
    .unwrap();
    let written = std::fs::read(d.metadata.join(&file)).unwrap();
    let written: BTreeMap<String, String> = serde_json::from_slice(&written).unwrap();
    assert_eq!(written.get("late").map(String::as_str), Some("1"));
    assert_eq!(written.get("team").map(String::as_str), Some("infra"));
    assert_eq!(
        saved.late_entries.get("late").map(String::as_str),
        Some("1")
    );
    let mut entries = None;
    while let Some(message) = rx.recv().await {
        if let crate::snapshot::tee::TeeMessage::Done { entries: e, .. } = message {
            entries = Some(e);
        }
    }
    assert_eq!(entries, Some(saved.late_entries.clone()));

    let asked = std::sync::Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    let mut corrupted = etcd_stream(300);
    corrupted[1000] ^= 1;
    let output = Output {
        late: Some(LateEntries(Box::pin(async move {
            flag.store(true, Ordering::SeqCst);
            BTreeMap::new()
        }))),
        ..Output::level(1)
    };
    let failed = save_from_source(
        scripted(&corrupted, 4096),
        &dirs().layout,
        &name(false),
        None,
        output,
    )
    .await;
    assert!(failed.is_err());
    assert!(
        !asked.load(Ordering::SeqCst),
        "a failed save asked for the late entries"
    );
}
