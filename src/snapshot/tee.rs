//! The second output of the save pipeline: the bytes that reach the local file, fed to a
//! concurrent consumer (the streamed S3 upload) as they are written.
//!
//! The contract is the message order: zero or more `Chunk`s in file order, then exactly one
//! `Done` once the local file is verified, fsynced and published. A channel that closes without
//! `Done` means the save failed and the consumer must throw away what it received (abort the
//! multipart upload). The tee never blocks the local save for long: when the consumer falls
//! behind by more than `STALL_LIMIT` it is cut off (the channel closes without `Done`) and the
//! caller uploads from the finished file instead. This module owns no I/O of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// What the consumer receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeMessage {
    /// The next bytes of the file, in order. Chunks are at most `CHUNK_SIZE` bytes.
    Chunk(Bytes),
    /// The local file is complete and published; `sha256` is its hex SHA-256, `size` its length,
    /// `entries` metadata known only after the stream (the keyspace hash), for the object.
    Done {
        sha256: String,
        size: u64,
        entries: BTreeMap<String, String>,
    },
}

/// Bytes gathered before a chunk is sent: large enough that channel overhead is negligible,
/// and below glibc's initial mmap threshold (128 KiB), so the steady stream of chunks is served
/// from reused heap memory; 1 MiB chunks raised that threshold and left peak memory ~25 MiB
/// higher (measured, see BENCHMARKS.md).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Chunks in flight to the consumer (1 MiB).
pub const CHANNEL_DEPTH: usize = 16;
/// How long the writer waits for a slow consumer before cutting it off.
pub const STALL_LIMIT: Duration = Duration::from_secs(15);

/// The consumer's end.
pub type TeeReceiver = mpsc::Receiver<TeeMessage>;

/// The writer's end, used from the blocking writer thread.
#[derive(Debug)]
pub struct Tee {
    tx: Option<mpsc::Sender<TeeMessage>>,
    pending: BytesMut,
    runtime: tokio::runtime::Handle,
}

/// A connected pair. Must be called inside a tokio runtime (the writer thread blocks on it).
pub fn channel() -> (Tee, TeeReceiver) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let tee = Tee {
        tx: Some(tx),
        pending: BytesMut::with_capacity(CHUNK_SIZE),
        runtime: tokio::runtime::Handle::current(),
    };
    (tee, rx)
}

impl Tee {
    /// Copies `bytes` towards the consumer. Never fails: a consumer that is gone or stalled is
    /// dropped and the local save goes on.
    pub fn write(&mut self, mut bytes: &[u8]) {
        while self.tx.is_some() && !bytes.is_empty() {
            let room = CHUNK_SIZE - self.pending.len();
            let take = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == CHUNK_SIZE {
                self.flush();
            }
        }
    }

    /// True while the consumer is still connected.
    pub fn is_connected(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends the remaining bytes and `Done`. Call only after the file is published.
    pub fn finish(mut self, sha256: String, size: u64, entries: BTreeMap<String, String>) {
        self.flush();
        self.send(TeeMessage::Done {
            sha256,
            size,
            entries,
        });
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let chunk = self.pending.split().freeze();
            self.pending.reserve(CHUNK_SIZE);
            self.send(TeeMessage::Chunk(chunk));
        }
    }

    fn send(&mut self, message: TeeMessage) {
        let Some(tx) = &self.tx else { return };
        let sent = self
            .runtime
            .block_on(async { tokio::time::timeout(STALL_LIMIT, tx.send(message)).await });
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                tracing::debug!("tee consumer is gone; continuing the local save alone");
                self.tx = None;
            }
            Err(_) => {
                tracing::warn!(
                    stall_secs = STALL_LIMIT.as_secs(),
                    "S3 upload fell behind the local save; it will upload from the finished file"
                );
                self.tx = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_arrive_in_order_then_done() {
        let (tee, mut rx) = channel();
        let data: Vec<u8> = (0..(CHUNK_SIZE * 2 + 123)).map(|i| i as u8).collect();
        let expected = data.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut tee = tee;
            for piece in data.chunks(100_000) {
                tee.write(piece);
            }
            tee.finish("abc".into(), 7, BTreeMap::new());
        });
        let mut got = Vec::new();
        let mut done = None;
        while let Some(message) = rx.recv().await {
            match message {
                TeeMessage::Chunk(c) => {
                    assert!(c.len() <= CHUNK_SIZE);
                    got.extend_from_slice(&c);
                }
                TeeMessage::Done { sha256, size, .. } => done = Some((sha256, size)),
            }
        }
        writer.await.unwrap();
        assert_eq!(got, expected);
        assert_eq!(done, Some(("abc".to_string(), 7)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_tee_closes_without_done() {
        let (tee, mut rx) = channel();
        tokio::task::spawn_blocking(move || {
            let mut tee = tee;
            tee.write(b"partial");
            drop(tee);
        })
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await,
            None,
            "unflushed bytes of a failed save are not sent"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gone_consumer_never_blocks_the_writer() {
        let (tee, rx) = channel();
        drop(rx);
        tokio::task::spawn_blocking(move || {
            let mut tee = tee;
            tee.write(&vec![0u8; CHUNK_SIZE * 3]);
            assert!(!tee.is_connected());
            tee.finish("x".into(), 1, BTreeMap::new());
        })
        .await
        .unwrap();
    }
}
