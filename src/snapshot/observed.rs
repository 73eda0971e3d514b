//! etcd's snapshot stream with its progress reported: the same chunks as the plain stream
//! (`ChunkSource for SnapshotStreaming` in `save.rs`), each also counted into a
//! `telemetry::progress::Progress`. The pipeline itself is unchanged; only its source is
//! wrapped. The total comes from etcd: the first message's size plus the bytes it says remain,
//! plus the 32-byte SHA-256 trailer etcd sends last.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::name::SnapshotName;
use super::save::{ChunkSource, Output, SaveError, SavedSnapshot, save_from_source};
use crate::layout::SnapshotDirLayout;
use crate::telemetry::progress::{Operation, Progress, Step};

/// The SHA-256 trailer etcd appends after the database bytes it counts as remaining.
const TRAILER_BYTES: u64 = 32;

/// The step, started at the first message (when etcd tells the size); shared with
/// `save_snapshot_observed`, which finishes it once the whole save is over.
type StepSlot = Arc<Mutex<Option<Box<dyn Step>>>>;

/// etcd's snapshot stream, reporting each chunk to `progress`.
struct ObservedStream {
    inner: etcd_client::SnapshotStreaming,
    progress: Arc<dyn Progress>,
    name: String,
    step: StepSlot,
}

impl ChunkSource for ObservedStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, etcd_client::Error> {
        let Some(message) = self.inner.message().await? else {
            return Ok(None);
        };
        let len = message.blob().len() as u64;
        let mut step = self.step.lock().unwrap_or_else(|e| e.into_inner());
        let step = step.get_or_insert_with(|| {
            let total = len + message.remaining_bytes() + TRAILER_BYTES;
            self.progress
                .start(Operation::Save, &self.name, Some(total))
        });
        step.advance(len);
        Ok(Some(Bytes::copy_from_slice(message.blob())))
    }
}

/// `save::save_snapshot` with every `Output` (the late entries too), reporting the bytes
/// received from etcd to `progress`.
pub async fn save_snapshot_observed(
    client: &mut etcd_client::Client,
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    extra_metadata: Option<&BTreeMap<String, String>>,
    output: Output,
    progress: Arc<dyn Progress>,
) -> Result<SavedSnapshot, SaveError> {
    let stream = client.snapshot().await.map_err(SaveError::StartStream)?;
    let step = StepSlot::default();
    let source = ObservedStream {
        inner: stream,
        progress,
        name: name.file_name(),
        step: step.clone(),
    };
    let saved = save_from_source(source, layout, name, extra_metadata, output).await;
    let started = step.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(step) = started {
        step.finish(saved.is_ok());
    }
    saved
}
