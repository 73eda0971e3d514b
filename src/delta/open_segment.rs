//! The open segment and its publishing: a segment is streamed into `.<from>.part` in its chain
//! dir through its storing layers (`delta::stored`: gzip, then age), fsynced, then linked to its
//! final name `<from>-<to>.seg[.gz][.age]` without ever replacing a file
//! (`fsutil::publish_no_clobber`, which fsyncs the dir). Dropped before that, the temp file is
//! removed; a crash leaves only the temp file (ciphertext when encryption is on), which the next
//! start removes (`ChainDir::remove_temp_files`). Listing the published segments is `files`.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;

use super::files::{ChainDir, FilesError, SegmentFile, TEMP_SUFFIX, io_err};
use super::names::{SegmentForm, SegmentName};
use super::segment::{RevisionGroup, SegmentFooter, SegmentHash, SegmentHeader, SegmentWriter};
use super::stored::StoredWriter;
use crate::crypt::Recipients;
use crate::fsutil;

impl ChainDir {
    /// Opens a new segment: creates the chain dir (0700) and the temp file, writes the header
    /// through the storing layers (gzip when `compress`, age to `recipients` when given).
    pub fn open(
        &self,
        header: &SegmentHeader,
        compress: bool,
        recipients: Option<&Recipients>,
    ) -> Result<OpenSegment, FilesError> {
        fsutil::create_dir_all_mode(self.path(), 0o700)
            .map_err(io_err("create delta chain dir", self.path()))?;
        let temp = self
            .path()
            .join(format!(".{}{TEMP_SUFFIX}", header.from_revision));
        // A temp file of this name is a leftover of an earlier run: it was never published.
        match std::fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale delta temp file", &temp)(e)),
        }
        let file = fsutil::create_new(&temp, 0o600).map_err(io_err("create", &temp))?;
        let form = SegmentForm {
            compressed: compress,
            encrypted: recipients.is_some(),
        };
        let stored = StoredWriter::new(BufWriter::new(file), compress, recipients);
        let stored = stored.map_err(|source| {
            let _ = std::fs::remove_file(&temp);
            FilesError::Encrypt {
                path: temp.clone(),
                source,
            }
        })?;
        let writer = SegmentWriter::start(stored, header).map_err(|source| {
            let _ = std::fs::remove_file(&temp);
            FilesError::Segment {
                path: temp.clone(),
                source,
            }
        })?;
        Ok(OpenSegment {
            writer: Some(writer),
            temp,
            dir: self.path().to_path_buf(),
            from: header.from_revision,
            form,
        })
    }
}

/// A segment being written. Dropped without `finish`, its temp file is removed.
pub struct OpenSegment {
    writer: Option<SegmentWriter<StoredWriter<BufWriter<File>>>>,
    temp: PathBuf,
    dir: PathBuf,
    from: i64,
    form: SegmentForm,
}

/// A segment made durable under its final name.
#[derive(Debug, Clone)]
pub struct Published {
    pub file: SegmentFile,
    pub footer: SegmentFooter,
}

impl OpenSegment {
    pub fn from_revision(&self) -> i64 {
        self.from
    }

    /// Segment bytes written so far, before compression and encryption: the size
    /// `etcd-snapshot-delta-max-size` caps, so a replay's memory is bounded whatever the storing.
    pub fn size(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.bytes_written())
    }

    /// The last revision written, if any.
    pub fn last_revision(&self) -> Option<i64> {
        self.writer.as_ref().and_then(|w| w.last_revision())
    }

    /// Appends one revision's events.
    pub fn push(&mut self, group: &RevisionGroup) -> Result<(), FilesError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        writer.push(group).map_err(|source| FilesError::Segment {
            path: self.temp.clone(),
            source,
        })
    }

    /// Writes the footer and checksum, ends the storing layers, fsyncs, and publishes
    /// `<from>-<to>.seg[.gz][.age]`. Blocking: call it off the async runtime's threads.
    pub fn finish(
        mut self,
        last_event_unix_ms: i64,
        closed_unix_ms: i64,
        hashkv: Option<SegmentHash>,
    ) -> Result<Published, FilesError> {
        let writer = self.writer.take().expect("an open segment has its writer");
        let segment_err = |source| FilesError::Segment {
            path: self.temp.clone(),
            source,
        };
        let (out, footer) = writer
            .finish(last_event_unix_ms, closed_unix_ms, hashkv)
            .map_err(segment_err)?;
        let out = out.finish().map_err(io_err("write", &self.temp))?;
        let file = out
            .into_inner()
            .map_err(|e| io_err("write", &self.temp)(e.into_error()))?;
        file.sync_all().map_err(io_err("fsync", &self.temp))?;
        let size = file
            .metadata()
            .map_err(io_err("inspect", &self.temp))?
            .len();
        drop(file);
        let name = SegmentName {
            from: self.from,
            to: footer.to_revision,
            form: self.form,
        };
        let dest = self.dir.join(name.file_name());
        fsutil::publish_no_clobber(&self.temp, &dest).map_err(io_err("publish", &dest))?;
        Ok(Published {
            file: SegmentFile {
                from: self.from,
                to: footer.to_revision,
                form: self.form,
                path: dest,
                size,
            },
            footer,
        })
    }
}

impl Drop for OpenSegment {
    fn drop(&mut self) {
        // Published segments have given their temp name up; anything else was never complete.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Publishes segment `[from, to]` of a test chain anchored on `anchor` (at revision 10), one
/// group per revision holding `event(revision)`, stored as asked (tests across the crate).
#[cfg(test)]
pub fn publish_test_segment(
    chain: &ChainDir,
    anchor: &str,
    (from, to): (i64, i64),
    (compress, recipients): (bool, Option<&Recipients>),
    event: impl Fn(i64) -> super::segment::Event,
) -> PathBuf {
    let header = SegmentHeader {
        cluster_id: 1,
        member_id: 2,
        anchor: anchor.into(),
        anchor_revision: 10,
        from_revision: from,
        opened_unix: 1_700_000_001,
    };
    let mut open = chain.open(&header, compress, recipients).unwrap();
    for revision in from..=to {
        let group = super::segment::RevisionGroup {
            revision,
            arrived_unix_ms: 1_700_000_001_000 + revision,
            events: vec![event(revision)],
        };
        open.push(&group).unwrap();
    }
    open.finish(0, 1, None).unwrap().file.path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::segment::{Event, PutEvent, decode};
    use crate::fsutil::sorted_names;
    use std::path::Path;

    fn header(from: i64) -> SegmentHeader {
        SegmentHeader {
            cluster_id: 1,
            member_id: 2,
            anchor: "etcd-snapshot-n1-1700000000".into(),
            anchor_revision: from - 1,
            from_revision: from,
            opened_unix: 1_700_000_000,
        }
    }

    fn group(revision: i64) -> RevisionGroup {
        RevisionGroup {
            revision,
            arrived_unix_ms: 1_700_000_000_000 + revision,
            events: vec![Event::Put(PutEvent {
                key: format!("/k{revision}").into_bytes(),
                value: b"v".to_vec(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            })],
        }
    }

    #[test]
    fn a_finished_segment_is_published_under_its_range_and_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        let chain = ChainDir::new(&snapshots, "etcd-snapshot-n1-1700000000").unwrap();
        assert!(
            chain.list().unwrap().is_empty(),
            "no dir yet: an empty chain"
        );
        let mut open = chain.open(&header(11), false, None).unwrap();
        open.push(&group(11)).unwrap();
        open.push(&group(13)).unwrap();
        assert_eq!(
            sorted_names(chain.path()),
            [".11.part"],
            "only the temp file while open"
        );
        assert!(
            chain.list().unwrap().is_empty(),
            "a temp file is no segment"
        );
        let published = open.finish(5, 6, None).unwrap();
        let name = crate::delta::chain::segment_file_name(11, 13);
        assert_eq!(sorted_names(chain.path()), std::slice::from_ref(&name));
        assert_eq!(
            chain.path(),
            root.path().join(".deltas/etcd-snapshot-n1-1700000000")
        );
        let listed = chain.list().unwrap();
        assert_eq!(listed, std::slice::from_ref(&published.file));
        assert_eq!((listed[0].from, listed[0].to), (11, 13));
        let segment = decode(&std::fs::read(chain.path().join(name)).unwrap()).unwrap();
        assert_eq!(segment.groups, [group(11), group(13)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(chain.path()), 0o700);
        assert_eq!(mode(&listed[0].path), 0o600);
    }

    #[test]
    fn an_abandoned_or_crashed_segment_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let chain = ChainDir::new(&root.path().join("snapshots"), "s-n1-1").unwrap();
        let mut open = chain.open(&header(5), false, None).unwrap();
        open.push(&group(5)).unwrap();
        drop(open);
        assert!(
            sorted_names(chain.path()).is_empty(),
            "dropped without finish"
        );
        // A crash leaves a temp file: the next start removes it, and a new segment from the
        // same revision is opened over any leftover.
        std::fs::write(chain.path().join(".5.part"), b"half").unwrap();
        std::fs::write(chain.path().join(".9.part"), b"half").unwrap();
        std::fs::write(chain.path().join("notes.txt"), b"not ours").unwrap();
        assert_eq!(chain.remove_temp_files().unwrap(), 2);
        assert_eq!(sorted_names(chain.path()), ["notes.txt"]);
        std::fs::write(chain.path().join(".5.part"), b"half").unwrap();
        let mut open = chain.open(&header(5), false, None).unwrap();
        open.push(&group(5)).unwrap();
        open.finish(0, 0, None).unwrap();
        assert_eq!(chain.list().unwrap().len(), 1);
    }
}
