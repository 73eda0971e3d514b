//! Tests of the parallel zip writer: every archive is read back by independent readers (the zip
//! crate, Python's zipfile, Info-ZIP unzip, a bare Deflate decoder) and compared with the input.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::layout::dos_date_time;
use super::*;
use crate::hex::encode as hex;

const MTIME: i64 = 1_754_906_881; // 2025-08-11 10:08:01 UTC
const NAME: &str = "on-demand-n1-1754906881";

fn entry() -> ZipEntry {
    ZipEntry {
        name: NAME.to_string(),
        unix_mtime: MTIME,
        mode: 0o600,
    }
}

/// Deterministic test data: xorshift64 noise, runs of repeated text and hex text, mixed.
fn mixed_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let run = (next() % 20_000) as usize + 1;
        match next() % 3 {
            0 => data.extend((0..run).map(|_| next() as u8)),
            1 => data.extend(b"etcd snapshot block ".iter().cycle().take(run)),
            _ => data.extend((0..run).map(|_| b"0123456789abcdef"[(next() % 16) as usize])),
        }
    }
    data.truncate(len);
    data
}

/// Zips `data` fed in `chunk`-sized writes; returns the archive and its summary.
fn zip_with(data: &[u8], chunk: usize, block: usize, workers: usize) -> (Vec<u8>, ZipSummary) {
    zip_with_segment(data, chunk, block, workers, plan::SEGMENT)
}

/// `zip_with`, judging encodings every `segment` bytes.
pub(super) fn zip_with_segment(
    data: &[u8],
    chunk: usize,
    block: usize,
    workers: usize,
    segment: usize,
) -> (Vec<u8>, ZipSummary) {
    let mut writer = ZipStreamWriter::with_tuning(Vec::new(), &entry(), 1, block, workers)
        .unwrap()
        .with_segment(segment);
    for piece in data.chunks(chunk.max(1)) {
        writer.write_all(piece).unwrap();
    }
    let (archive, summary) = writer.finish().unwrap();
    assert_eq!(summary.archive_size, archive.len() as u64);
    assert_eq!(summary.uncompressed_size, data.len() as u64);
    assert_eq!(summary.crc32, crc32fast::hash(data));
    let encoded = summary.encoded;
    assert_eq!(
        encoded.matched + encoded.huffman_only + encoded.stored,
        data.len() as u64,
        "every byte is counted in one encoding: {encoded:?}"
    );
    (archive, summary)
}

/// Checks the archive through the zip crate: one entry, name, mode, time, CRC, sizes, content.
fn check_with_zip_crate(archive: &[u8], data: &[u8], summary: &ZipSummary) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    assert_eq!(zip.len(), 1);
    let mut file = zip.by_index(0).unwrap();
    assert_eq!(file.name().unwrap(), NAME);
    assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
    assert_eq!(file.unix_mode(), Some(0o100_600));
    assert_eq!(file.crc32(), crc32fast::hash(data));
    assert_eq!(file.size(), data.len() as u64);
    assert_eq!(file.compressed_size(), summary.compressed_size);
    let t = file.last_modified().unwrap();
    let got = (
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    assert_eq!(got, (2025, 8, 11, 10, 8, 0));
    let mut out = Vec::new();
    file.read_to_end(&mut out).unwrap();
    assert!(out == data, "zip crate content differs");
}

/// The Deflate stream alone, decoded without any zip reader.
pub(super) fn raw_inflate(archive: &[u8], summary: &ZipSummary) -> Vec<u8> {
    let name_len = usize::from(u16::from_le_bytes([archive[26], archive[27]]));
    let extra_len = usize::from(u16::from_le_bytes([archive[28], archive[29]]));
    let start = 30 + name_len + extra_len;
    let end = start + usize::try_from(summary.compressed_size).unwrap();
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&archive[start..end])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Like the integration tests' `require_binary`: missing is a skip locally, a failure in CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "required binary {name} is not installed"
        );
        eprintln!("SKIPPING: required binary {name} is not installed");
    }
    found
}

const PY_READER: &str = r#"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
entries = [dict(name=i.filename, mode=i.external_attr >> 16, system=i.create_system,
                time=list(i.date_time), crc=i.CRC, size=i.file_size, csize=i.compress_size,
                method=i.compress_type, sha=hashlib.sha256(z.read(i)).hexdigest())
           for i in z.infolist()]
print(json.dumps(dict(bad=z.testzip(), entries=entries)))
"#;

fn check_with_python(path: &std::path::Path, data: &[u8], summary: &ZipSummary) {
    let Some(python) = tool("python3") else {
        return;
    };
    let out = Command::new(python)
        .args(["-c", PY_READER])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = serde_json::json!({
        "bad": null,
        "entries": [{
            "name": NAME, "mode": 0o100_600, "system": 3, "time": [2025, 8, 11, 10, 8, 0],
            "crc": crc32fast::hash(data), "size": data.len(), "csize": summary.compressed_size,
            "method": 8, "sha": hex(&Sha256::digest(data)),
        }],
    });
    assert_eq!(got, expected);
}

fn check_with_unzip(path: &std::path::Path, data: &[u8]) {
    let Some(unzip) = tool("unzip") else { return };
    let test = Command::new(&unzip).arg("-t").arg(path).output().unwrap();
    let report = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success() && report.contains("No errors detected"),
        "{report}"
    );
    let content = Command::new(&unzip).arg("-p").arg(path).output().unwrap();
    assert!(content.status.success());
    assert!(content.stdout == data, "unzip -p content differs");
    let info = Command::new(&unzip).arg("-Z").arg(path).output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&info.stdout)
        .lines()
        .filter(|l| l.ends_with(NAME))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "one entry in: {lines:?}");
    assert!(
        lines[0].starts_with("-rw-------") && lines[0].contains(" unx "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!(" {} ", data.len())),
        "{}",
        lines[0]
    );
}

/// Every reader agrees the archive holds exactly `data`.
fn check_everywhere(data: &[u8], chunk: usize, block: usize, workers: usize) {
    let (archive, summary) = zip_with(data, chunk, block, workers);
    check_archive(&archive, &summary, data);
}

/// The zip crate, a bare Deflate decoder, Python's zipfile and Info-ZIP's unzip all read
/// exactly `data` from `archive`.
pub(super) fn check_archive(archive: &[u8], summary: &ZipSummary, data: &[u8]) {
    check_with_zip_crate(archive, data, summary);
    assert!(
        raw_inflate(archive, summary) == data,
        "raw deflate content differs"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.zip");
    std::fs::write(&path, archive).unwrap();
    check_with_python(&path, data, summary);
    check_with_unzip(&path, data);
}

#[test]
fn empty_input_is_a_valid_empty_entry() {
    check_everywhere(&[], 1, BLOCK_SIZE, 2);
}

#[test]
fn one_byte_round_trips() {
    check_everywhere(b"x", 1, BLOCK_SIZE, 2);
}

#[test]
fn exact_and_uneven_block_multiples_round_trip() {
    let data = mixed_data(3 * 64 * 1024, 7);
    check_everywhere(&data, 4096, 64 * 1024, 2);
    let data = mixed_data(3 * 64 * 1024 + 12_345, 8);
    check_everywhere(&data, 32 * 1024, 64 * 1024, 3);
}

#[test]
fn several_mib_of_mixed_data_round_trip_with_default_blocks() {
    let data = mixed_data(5 * BLOCK_SIZE + 54_321, 42);
    check_everywhere(&data, 32 * 1024, BLOCK_SIZE, 2);
}

#[test]
fn input_ending_exactly_on_a_default_block_boundary_round_trips() {
    // The last block is full, so `finish` sends it as the final one with nothing after it.
    let data = mixed_data(4 * BLOCK_SIZE, 5);
    check_everywhere(&data, 48_000, BLOCK_SIZE, 2);
}

#[test]
fn many_small_blocks_stay_in_order_across_workers() {
    let data = mixed_data(600 * 1024 + 17, 99);
    for workers in [2, 4, 8] {
        let (archive, summary) = zip_with(&data, 1000, 1024, workers);
        assert!(raw_inflate(&archive, &summary) == data, "{workers} workers");
        check_with_zip_crate(&archive, &data, &summary);
    }
}

#[test]
fn multi_block_stream_decodes_with_a_bare_deflate_decoder() {
    let data = mixed_data(2 * BLOCK_SIZE + 1, 3);
    let (archive, summary) = zip_with(&data, 65_536, BLOCK_SIZE, 2);
    let decoded = raw_inflate(&archive, &summary);
    assert_eq!(decoded.len(), data.len());
    assert!(decoded == data);
}

#[test]
fn blocks_are_primed_with_the_previous_blocks_tail() {
    // Incompressible 16 KiB repeated: past the first copy everything is a match within 32 KiB,
    // so a block primed with its predecessor's tail costs almost nothing, and an unprimed one
    // would pay for the noise once more.
    let unit: Vec<u8> = {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..16 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    };
    let data: Vec<u8> = unit.iter().copied().cycle().take(8 * unit.len()).collect();
    let (archive, multi) = zip_with(&data, 8192, 32 * 1024, 2);
    assert!(raw_inflate(&archive, &multi) == data);
    check_with_zip_crate(&archive, &data, &multi);
    let (_, single) = zip_with(&data, 8192, BLOCK_SIZE, 2);
    let (_, noise) = zip_with(&unit, 8192, BLOCK_SIZE, 2);
    assert!(noise.compressed_size > 16 * 1024, "{noise:?}");
    assert!(
        multi.compressed_size < single.compressed_size + 1024,
        "4 blocks: {multi:?}, one block: {single:?}"
    );
}

#[test]
fn level_changes_the_output() {
    let data = mixed_data(512 * 1024, 11);
    let size = |level| {
        let mut w =
            ZipStreamWriter::with_tuning(Vec::new(), &entry(), level, 64 * 1024, 2).unwrap();
        w.write_all(&data).unwrap();
        let (archive, summary) = w.finish().unwrap();
        assert!(raw_inflate(&archive, &summary) == data, "level {level}");
        summary.compressed_size
    };
    let (stored, fast, default) = (size(0), size(1), size(6));
    assert!(stored > data.len() as u64, "level 0 stores");
    assert!(default < fast && fast < stored, "{stored} {fast} {default}");
}

/// A writer that fails once `limit` bytes have been accepted.
struct FailAfter {
    limit: usize,
    seen: usize,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.seen + buf.len() > self.limit {
            return Err(std::io::Error::other("disk full"));
        }
        self.seen += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn output_errors_surface_and_dropping_unfinished_stops_the_workers() {
    let data = mixed_data(64 * 1024, 13);
    let out = FailAfter {
        limit: 200,
        seen: 0,
    };
    let mut w = ZipStreamWriter::with_tuning(out, &entry(), 1, 4096, 2).unwrap();
    let written = data.chunks(1000).try_for_each(|c| w.write_all(c));
    let err = match written {
        Err(e) => e,
        Ok(()) => w.finish().err().expect("finish must fail"),
    };
    assert_eq!(err.to_string(), "disk full");

    let mut unfinished = ZipStreamWriter::with_tuning(Vec::new(), &entry(), 1, 4096, 2).unwrap();
    unfinished.write_all(&data).unwrap();
    drop(unfinished); // joins the workers; a leak or deadlock would hang here
}

#[test]
fn dos_time_is_utc_and_clamped() {
    let (date, time) = dos_date_time(MTIME);
    assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (45, 8, 11));
    assert_eq!((time >> 11, (time >> 5) & 63, (time & 31) * 2), (10, 8, 0));
    assert_eq!(dos_date_time(0), ((1 << 5) | 1, 0));
    assert_eq!(dos_date_time(-5), ((1 << 5) | 1, 0));
    let (max_date, _) = dos_date_time(i64::MAX);
    assert_eq!(max_date >> 9, 127);
    assert_eq!(dos_date_time(4_354_819_199).0 >> 9, 127); // 2107-12-31
}

#[test]
fn header_fields_match_what_go_archive_zip_expects() {
    let (archive, _) = zip_with(b"abc", 1, BLOCK_SIZE, 2);
    let u16_at = |i: usize| u16::from_le_bytes([archive[i], archive[i + 1]]);
    assert_eq!(&archive[..4], b"PK\x03\x04");
    assert_eq!(u16_at(4), 45, "version needed");
    assert_eq!(u16_at(6), 0x0008, "data descriptor flag");
    assert_eq!(u16_at(8), 8, "deflate");
    let central = archive.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    assert_eq!(u16_at(central + 4), (3 << 8) | 45, "made by unix");
    let attrs = u32::from_le_bytes(archive[central + 38..central + 42].try_into().unwrap());
    assert_eq!(attrs >> 16, 0o100_600);
    assert!(
        archive.ends_with(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
        "no comment"
    );
}
