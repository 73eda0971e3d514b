//! The save pipeline: etcd's snapshot stream -> SHA-256 trailer check -> optional zip ->
//! optional age encryption -> temp file -> fsync -> no-clobber publish. Where each of those
//! files lives is the snapshot dir's `layout::SnapshotDirLayout` (the temp file in its work dir,
//! never in the snapshot dir).
//!
//! The stream is read once and never held whole in memory: chunks cross a small bounded channel
//! to a blocking writer (`sink`). Only a verified, fsynced, published file is a snapshot: any
//! failure removes the temp file and leaves the dir as it was. This module does not choose names
//! (the store does) and does not prune.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::SnapshotName;
use super::encryption_record::EncryptionRecord;
use super::image::ImageKind;
pub use super::output::{LateEntries, Output};
use super::sink::{SnapshotSink, Written};
use super::tee::Tee;
use crate::crypt::{Fingerprint, Recipients};
use crate::fsutil;
use crate::layout::SnapshotDirLayout;

/// Deflate level for compressed snapshots. Blocks are compressed in parallel (`zipstream`), but on
/// a 2-core machine the save is CPU-bound: etcd itself burns ~1.2 core-s to stream 306 MB.
/// Measured there (bench/save-bench.sh 256, literal-heavy hex, etcdctl 1.42-1.51 s): level 1
/// 2.5 s, 85% of the size (zlib-rs level 1 uses static Huffman codes only); level 2 3.3 s, 54%;
/// level 6 3.45 s, 54%. Per core: level 1 114 MB/s, 2 70 MB/s, 6 64 MB/s. On a real 111 MB
/// snapshot a single stream kept 33% at level 1 and 23% at level 2 (~160 MB/s). Level 1 is the
/// only one near etcdctl's time, so it stays the default; since then it is this project's own
/// greedy matcher with dynamic codes (`crate::deflate`), faster than those figures and smaller
/// than zlib-rs's level 1 (BENCHMARKS.md, "The matrix").
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 1;

/// Chunks in flight between the stream reader and the writer (etcd sends 32 KiB messages).
const CHANNEL_DEPTH: usize = 8;

/// A stream that sends nothing for this long is treated as dead.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub name: SnapshotName,
    pub path: PathBuf,
    /// Bytes on disk (the zip's size when compressed).
    pub size: u64,
    /// SHA-256 of the bytes on disk, hex.
    pub file_sha256: String,
    /// Size of the etcd database image (without the 32-byte trailer).
    pub db_size: u64,
    /// Encrypted: SHA-256 of the plaintext (what `age -d` gives back), hex.
    pub plaintext_sha256: Option<String>,
    /// Encrypted: the fingerprints of the recipients (never the keys); empty otherwise.
    pub recipients: Vec<Fingerprint>,
    /// What `Output::late` gave, recorded in the `.metadata` record and sent with the tee's end.
    pub late_entries: BTreeMap<String, String>,
}

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("failed to start the etcd snapshot stream")]
    StartStream(#[source] etcd_client::Error),
    #[error("failed to read the etcd snapshot stream after {received} bytes")]
    ReadStream {
        received: u64,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd snapshot stream stalled: no data for {idle_secs} s after {received} bytes")]
    Stalled { received: u64, idle_secs: u64 },
    #[error("etcd snapshot stream is truncated or has no sha256 trailer ({received} bytes)")]
    Truncated { received: u64 },
    #[error("the SQLite image is malformed: {detail}")]
    SqliteImage { detail: String },
    #[error("failed to read the database image {path}")]
    ReadImage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd snapshot sha256 trailer mismatch: stream says {expected}, computed {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("failed to write snapshot {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to encrypt the snapshot")]
    Encrypt(#[source] crate::crypt::CryptError),
    #[error("failed to save snapshot {path}: a file with that name already exists")]
    AlreadyExists { path: PathBuf },
    #[error("failed to write snapshot metadata {path}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to finish the snapshot: the stream reader stopped before the end")]
    Abandoned,
    #[error("failed to run the snapshot writer task")]
    WriterTask(#[source] tokio::task::JoinError),
}

/// A source of snapshot chunks: etcd's stream in production, scripted chunks in tests.
///
/// `Ok(None)` means the stream ended normally.
pub trait ChunkSource: Send {
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<Bytes>, etcd_client::Error>> + Send;
}

impl ChunkSource for etcd_client::SnapshotStreaming {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, etcd_client::Error> {
        // etcd sends the trailer as its own final message, so the end is `None`, not the first
        // message reporting zero remaining bytes.
        Ok(self
            .message()
            .await?
            .map(|m| Bytes::copy_from_slice(m.blob())))
    }
}

/// Streams a snapshot from etcd into `<snapshots>/name` (`name.compressed` decides zip), plus
/// the metadata file `<metadata>/<file>` when `extra_metadata` is given. With a `tee`, the
/// file's bytes also go to its consumer, which gets `Done` only once the snapshot (and its
/// metadata file) is published.
pub async fn save_snapshot(
    client: &mut etcd_client::Client,
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    extra_metadata: Option<&BTreeMap<String, String>>,
    tee: Option<Tee>,
    recipients: Option<Recipients>,
) -> Result<SavedSnapshot, SaveError> {
    let stream = client.snapshot().await.map_err(SaveError::StartStream)?;
    let output = Output {
        compression_level: DEFAULT_COMPRESSION_LEVEL,
        tee,
        recipients,
        late: None,
    };
    save_from_source(stream, layout, name, extra_metadata, output).await
}

/// The pipeline behind `save_snapshot`, over any chunk source. An empty metadata map writes no
/// file, as RKE2 does.
pub async fn save_from_source<S: ChunkSource>(
    mut source: S,
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    extra_metadata: Option<&BTreeMap<String, String>>,
    mut output: Output,
) -> Result<SavedSnapshot, SaveError> {
    let late = output.late.take();
    let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
    let feed = move |sink: &mut SnapshotSink| -> Result<(), SaveError> {
        loop {
            match rx.blocking_recv() {
                Some(Message::Chunk(chunk)) => sink.write_chunk(&chunk)?,
                Some(Message::End) => return Ok(()),
                None => return Err(SaveError::Abandoned),
            }
        }
    };
    let (checked, image_checked) = oneshot::channel();
    let on_checked = move || {
        let _ = checked.send(());
    };
    let writer = spawn_writer(layout, name, ImageKind::Etcd, output, feed, on_checked);
    let read = pump(&mut source, tx).await;
    // Once the stream has ended and its trailer matched, etcd's backend lock is free and the
    // save will not fail on its bytes: the late entries (the keyspace hash) are asked for while
    // the writer fsyncs and publishes the file, not after. A writer that fails first drops
    // `checked`, and nothing is asked.
    let late = async move {
        match (late, image_checked.await) {
            (Some(entries), Ok(())) => entries.0.await,
            _ => BTreeMap::new(),
        }
    };
    // Always wait for the writer: on failure it removes its temp file before we report.
    let (written, late) = tokio::join!(writer, late);
    let written = written.map_err(SaveError::WriterTask)?;
    read?;
    let written = written?;
    complete(layout, name, written, extra_metadata, late).await
}

/// What the blocking writer hands back: the file's figures, the unfinished tee, and the
/// fingerprints of the recipients it encrypted to.
pub(super) type WriterResult = Result<(Written, Option<Tee>, Vec<Fingerprint>), SaveError>;

/// Starts the blocking writer of `name`: creates its temp file, lets `feed` write the image
/// into the sink, then finishes and publishes it. On any failure the temp file is removed.
pub(super) fn spawn_writer(
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    kind: ImageKind,
    output: Output,
    feed: impl FnOnce(&mut SnapshotSink) -> Result<(), SaveError> + Send + 'static,
    on_checked: impl FnOnce() + Send + 'static,
) -> tokio::task::JoinHandle<WriterResult> {
    let path = layout.snapshot_path(&name.file_name());
    let temp = layout.temp_path(&name.file_name());
    let work = layout.work.clone();
    let fingerprints = match (&output.recipients, name.encrypted) {
        (Some(r), true) => r.fingerprints(),
        _ => Vec::new(),
    };
    let name = name.clone();
    tokio::task::spawn_blocking(move || {
        fsutil::create_dir_all_mode(&work, 0o700).map_err(|source| SaveError::Write {
            path: temp.clone(),
            source,
        })?;
        let result = write_and_publish(feed, &temp, &path, &name, kind, output, on_checked);
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|(written, tee)| (written, tee, fingerprints))
    })
}

/// After the file is published: its metadata record (with the `late` entries) and encryption
/// record (either failing removes the snapshot again), then the tee's end (with the `late`
/// entries), so S3 completes only a published snapshot.
pub(super) async fn complete(
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    (written, tee, fingerprints): (Written, Option<Tee>, Vec<Fingerprint>),
    extra_metadata: Option<&BTreeMap<String, String>>,
    late: BTreeMap<String, String>,
) -> Result<SavedSnapshot, SaveError> {
    let path = layout.snapshot_path(&name.file_name());
    let plaintext = written
        .plaintext_sha256
        .as_deref()
        .filter(|_| name.encrypted);
    let record = metadata_record(extra_metadata, &late, plaintext);
    if let Some(map) = record.as_ref() {
        let json = serde_json::to_vec(map).map_err(|e| SaveError::Metadata {
            path: path.clone(),
            source: e.into(),
        })?;
        let meta_path = layout.metadata_path(&name.file_name());
        write_metadata_or_roll_back(layout, &path, meta_path, json).await?;
    }
    if name.encrypted {
        let record = EncryptionRecord {
            recipients: fingerprints.clone(),
            plaintext_sha256: written.plaintext_sha256.clone(),
            file_sha256: Some(written.file_sha256.clone()),
            // The file is published only after its plaintext passed the trailer check.
            seal: seal_of_file(&path),
        };
        let record_path = layout.encryption_path(&name.file_name());
        write_metadata_or_roll_back(layout, &path, record_path, record.to_json()).await?;
    }
    if let Some(tee) = tee {
        let (sha256, size) = (written.file_sha256.clone(), written.size);
        let entries = late.clone();
        // `finish` may wait for a slow consumer (bounded by the tee's stall limit).
        tokio::task::spawn_blocking(move || tee.finish(sha256, size, entries))
            .await
            .map_err(SaveError::WriterTask)?;
    }
    Ok(SavedSnapshot {
        name: name.clone(),
        path,
        size: written.size,
        file_sha256: written.file_sha256,
        db_size: written.db_size,
        plaintext_sha256: written.plaintext_sha256,
        recipients: fingerprints,
        late_entries: late,
    })
}

/// The seal (`crypt::seal`) of the published file; None when it cannot be read, which only
/// costs a later restore its shortcut.
fn seal_of_file(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    crate::crypt::read_seal(&file).ok().flatten()
}

/// The snapshot's `.metadata` record: the extra metadata given, the late entries (never over
/// the given ones, which hold the ConfigMap's), plus, for an encrypted save, the plaintext's
/// SHA-256 (`Etcd-Snapshot-Plaintext-Sha256`), so the S3 copy of the record carries it too.
/// None when there is nothing to record. Pure.
fn metadata_record(
    extra: Option<&BTreeMap<String, String>>,
    late: &BTreeMap<String, String>,
    plaintext_sha256: Option<&str>,
) -> Option<BTreeMap<String, String>> {
    let mut map = extra.cloned().unwrap_or_default();
    for (key, value) in late {
        map.entry(key.clone()).or_insert_with(|| value.clone());
    }
    if let Some(sum) = plaintext_sha256 {
        let key = crate::snapshot::encryption_record::META_PLAINTEXT_SHA256;
        map.insert(key.to_string(), sum.to_string());
    }
    (!map.is_empty()).then_some(map)
}

enum Message {
    Chunk(Bytes),
    /// The stream ended normally. Without it a closed channel means "abandon".
    End,
}

/// Reads the source into the channel. A writer that stopped early reports its own error, so a
/// failed send just ends the pump.
async fn pump<S: ChunkSource>(source: &mut S, tx: mpsc::Sender<Message>) -> Result<(), SaveError> {
    let mut received = 0u64;
    loop {
        let next = tokio::time::timeout(STREAM_IDLE_TIMEOUT, source.next_chunk()).await;
        let chunk = match next {
            Err(_) => {
                return Err(SaveError::Stalled {
                    received,
                    idle_secs: STREAM_IDLE_TIMEOUT.as_secs(),
                });
            }
            Ok(Err(source)) => return Err(SaveError::ReadStream { received, source }),
            Ok(Ok(None)) => {
                let _ = tx.send(Message::End).await;
                return Ok(());
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        if !chunk.is_empty() && tx.send(Message::Chunk(chunk)).await.is_err() {
            return Ok(());
        }
    }
}

fn write_and_publish(
    feed: impl FnOnce(&mut SnapshotSink) -> Result<(), SaveError>,
    temp: &Path,
    path: &Path,
    name: &SnapshotName,
    kind: ImageKind,
    output: Output,
    on_checked: impl FnOnce(),
) -> Result<(Written, Option<Tee>), SaveError> {
    let mut sink = SnapshotSink::create(
        temp,
        kind,
        name,
        output.compression_level,
        output.tee,
        output.recipients.as_ref(),
    )?;
    feed(&mut sink)?;
    let written = sink.finish(on_checked)?;
    fsutil::publish_no_clobber(temp, path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            SaveError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            SaveError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    Ok(written)
}

/// Writes a metadata file (`meta_path`: the extra metadata or the encryption record); if that
/// fails the just-published snapshot is removed again, so an error always means "no snapshot"
/// and a listed snapshot always has the metadata it was asked to carry.
async fn write_metadata_or_roll_back(
    layout: &SnapshotDirLayout,
    snapshot: &Path,
    meta_path: PathBuf,
    json: Vec<u8>,
) -> Result<(), SaveError> {
    let meta_dir = meta_path
        .parent()
        .map_or_else(|| layout.metadata.clone(), Path::to_path_buf);
    let (snapshot, dir) = (snapshot.to_path_buf(), layout.snapshots.clone());
    let task = tokio::task::spawn_blocking(move || {
        let result = fsutil::create_dir_all_mode(&meta_dir, 0o700)
            .and_then(|()| fsutil::write_atomic(&meta_path, &json, 0o600));
        if let Err(source) = result {
            let _ = std::fs::remove_file(&snapshot);
            let _ = fsutil::sync_dir(&dir);
            return Err(SaveError::Metadata {
                path: meta_path,
                source,
            });
        }
        Ok(())
    });
    task.await.map_err(SaveError::WriterTask)?
}

#[cfg(test)]
#[path = "save_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "save_encrypted_tests.rs"]
mod encrypted_tests;
