//! The read-ahead against the reader it wraps: the same bytes for any pattern of reads and
//! seeks a zip reader makes, errors passed on and remembered, and an archive read through it.

use std::io::Cursor;

use super::*;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A reader that fails once `fail_at` bytes were read.
struct FailingAt {
    inner: Cursor<Vec<u8>>,
    fail_at: u64,
}

impl Read for FailingAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.position() >= self.fail_at {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk failed"));
        }
        let room = (self.fail_at - self.inner.position()) as usize;
        let n = buf.len().min(room);
        self.inner.read(&mut buf[..n])
    }
}

impl Seek for FailingAt {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

#[test]
fn reads_the_same_bytes_across_block_edges_and_the_end() {
    for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17, 5 * BLOCK] {
        let want = data(len);
        let mut r = ReadAhead::new(Cursor::new(want.clone())).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_003];
        loop {
            match r.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert!(got == want, "length {len}");
        assert_eq!(r.read(&mut buf).unwrap(), 0, "stays at the end");
        assert_eq!(r.failure().at(), None);
    }
}

#[test]
fn seeks_like_the_reader_it_wraps() {
    let want = data(4 * BLOCK + 999);
    let mut r = ReadAhead::new(Cursor::new(want.clone())).unwrap();
    let mut buf = vec![0u8; 4096];
    // A zip reader's pattern: the end, back into the middle, then through from the entry.
    assert_eq!(r.seek(SeekFrom::End(-22)).unwrap(), want.len() as u64 - 22);
    r.read_exact(&mut buf[..22]).unwrap();
    assert_eq!(&buf[..22], &want[want.len() - 22..]);
    assert_eq!(
        r.seek(SeekFrom::Start(3 * BLOCK as u64)).unwrap(),
        3 * BLOCK as u64
    );
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &want[3 * BLOCK..3 * BLOCK + 4096]);
    assert_eq!(r.stream_position().unwrap(), 3 * BLOCK as u64 + 4096);
    assert_eq!(r.seek(SeekFrom::Current(-4096)).unwrap(), 3 * BLOCK as u64);
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &want[3 * BLOCK..3 * BLOCK + 4096]);
    assert_eq!(r.seek(SeekFrom::Start(100)).unwrap(), 100);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest[..] == want[100..]);
    assert!(r.seek(SeekFrom::Current(-(want.len() as i64) - 1)).is_err());
}

#[test]
fn an_inner_error_is_passed_on_and_remembered() {
    let inner = FailingAt {
        inner: Cursor::new(data(3 * BLOCK)),
        fail_at: BLOCK as u64 + 5,
    };
    let mut r = ReadAhead::new(inner).unwrap();
    let failure = r.failure();
    let mut out = Vec::new();
    let err = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(out.len(), BLOCK, "the whole blocks before the failure");
    assert_eq!(failure.at(), Some(BLOCK as u64 + 5));
    assert!(r.read(&mut [0u8; 10]).is_err(), "and not taken for the end");
}

#[test]
fn a_zip_reads_through_it() {
    use std::io::Write;
    let want = data(2 * BLOCK + 321);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("db", options).unwrap();
    zip.write_all(&want).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let mut archive = zip::ZipArchive::new(ReadAhead::new(Cursor::new(bytes)).unwrap()).unwrap();
    let mut entry = archive.by_index(0).unwrap();
    let mut got = Vec::new();
    entry.read_to_end(&mut got).unwrap();
    assert!(got == want);
}
