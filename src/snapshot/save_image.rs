//! The save pipeline fed from a finished image file instead of etcd's stream: a SQLite
//! datastore is first copied consistently into a private temp file (`datastore::sqlite`), and
//! that copy then goes through the same sink as an etcd stream (image check, optional zip, age
//! encryption, the S3 tee, temp file, fsync, no-clobber publish, metadata records).
//!
//! The file is read in bounded chunks on the writer's blocking thread, so memory stays a read
//! buffer whatever the database's size. Reads and never removes the image: its owner does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::SnapshotName;
use super::image::ImageKind;
use super::save::{Output, SaveError, SavedSnapshot, complete, spawn_writer};
use super::sink::SnapshotSink;
use crate::layout::SnapshotDirLayout;

/// Read size: large sequential reads; the sink batches its own writes.
const READ_CHUNK: usize = 1 << 20;

/// Saves the image at `image` (of `kind`) as snapshot `name`, with the same outputs and
/// records as a streamed save. `on_chunk` sees the size of every chunk read (progress).
pub async fn save_from_image(
    image: &Path,
    kind: ImageKind,
    layout: &SnapshotDirLayout,
    name: &SnapshotName,
    extra_metadata: Option<&BTreeMap<String, String>>,
    output: Output,
    on_chunk: Box<dyn FnMut(u64) + Send>,
) -> Result<SavedSnapshot, SaveError> {
    let image = image.to_path_buf();
    let feed = move |sink: &mut SnapshotSink| feed_file(&image, sink, on_chunk);
    let written = spawn_writer(layout, name, kind, output, feed, || {})
        .await
        .map_err(SaveError::WriterTask)??;
    complete(layout, name, written, extra_metadata, BTreeMap::new()).await
}

fn feed_file(
    image: &Path,
    sink: &mut SnapshotSink,
    mut on_chunk: Box<dyn FnMut(u64) + Send>,
) -> Result<(), SaveError> {
    let read_err = |source| SaveError::ReadImage {
        path: image.to_path_buf(),
        source,
    };
    let mut file = File::open(image).map_err(read_err)?;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        sink.write_chunk(&buf[..n])?;
        on_chunk(n as u64);
    }
}
