//! Fuzz target `snapshot_readers`: the readers of snapshot files a restore or an upload is
//! given (a plain database with its SHA-256 trailer, or our single-entry `.zip`).
//!
//! Properties: a zip written by our parallel writer extracts to the same bytes under the same
//! name; a snapshot verifies exactly when an independent oracle (size shape, trailer = SHA-256
//! of the rest, bbolt magic) says it is intact; no mutated, truncated or extended archive or
//! snapshot makes a reader panic, and a failed extraction leaves nothing behind. Header fields
//! claiming huge sizes or counts are targeted; peak RSS in the long mode shows they are not
//! allocated.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use sha2::{Digest, Sha256};

use super::unzip::{archive_entry_size, extract_snapshot};
use super::verify::{quick_check, verify_snapshot_file, verify_stored_snapshot};
use crate::fuzz_support::{Fuzz, Mutation, mutated};
use crate::snapshot::verify::archive::verify_archive;
use crate::snapshot::zipstream::{ZipEntry, ZipStreamWriter};

const BOLT_MAGIC: u32 = 0xED0C_DAED;
const ENTRY: &str = "etcd-snapshot-node1-1754906881";

/// A fake snapshot of `pages` 512-byte pages: bbolt magic, varied bytes, SHA-256 trailer.
fn snapshot_bytes(pages: usize, seed: u8) -> Vec<u8> {
    let mut data: Vec<u8> = (0..pages * 512)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
        .collect();
    data[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
    let digest = Sha256::digest(&data);
    data.extend_from_slice(&digest);
    data
}

/// The specification of an intact snapshot, written independently of `verify`.
fn oracle_intact(bytes: &[u8]) -> bool {
    let len = bytes.len();
    len >= 512 + 32
        && len % 512 == 32
        && bytes[16..20] == BOLT_MAGIC.to_le_bytes()
        && Sha256::digest(&bytes[..len - 32]).as_slice() == &bytes[len - 32..]
}

/// Our parallel writer's archive of `data`, in blocks of `block` bytes whose encodings are
/// chosen every `segment` bytes.
fn zip_bytes(name: &str, data: &[u8], level: u32, block: usize, segment: usize) -> Vec<u8> {
    let entry = ZipEntry {
        name: name.to_string(),
        unix_mtime: 1_754_906_881,
        mode: 0o600,
    };
    let mut writer = ZipStreamWriter::with_tuning(Vec::new(), &entry, level, block, 2)
        .unwrap()
        .with_segment(segment);
    std::io::Write::write_all(&mut writer, data).unwrap();
    writer.finish().unwrap().0
}

/// Stretches of the kinds that get different Deflate encodings, in any order and length:
/// random bytes (stored), random base64 text (Huffman-only), a repeated phrase and zeros (LZ77).
fn kinds(parts: Vec<(u8, usize, u64)>) -> Vec<u8> {
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut data = Vec::new();
    for (kind, len, seed) in parts {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        match kind {
            0 => data.extend((0..len).map(|_| (next() >> 24) as u8)),
            1 => data.extend((0..len).map(|_| BASE64[(next() >> 40) as usize % 64])),
            2 => data.extend(b"\"kind\":\"Secret\",".iter().cycle().take(len)),
            _ => data.resize(data.len() + len, 0),
        }
    }
    data
}

/// Scratch space on tmpfs when there is one: fsyncs there cost nothing.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

fn zip_round_trip(
    name: String,
    data: Vec<u8>,
    level: u32,
    (block, segment): (usize, usize),
) -> TestCaseResult {
    let dir = scratch();
    let zip = dir.path().join("in.zip");
    std::fs::write(&zip, zip_bytes(&name, &data, level, block, segment)).unwrap();
    prop_assert_eq!(archive_entry_size(&zip).unwrap(), data.len() as u64);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let extracted = extract_snapshot(&zip, &out).unwrap();
    prop_assert_eq!(extracted.clone(), out.join(&name));
    prop_assert_eq!(std::fs::read(&extracted).unwrap(), data.clone());
    prop_assert_eq!(verify_archive(&zip).is_ok(), oracle_intact(&data));
    Ok(())
}

/// Any bytes as a `.zip`: no panic; verification agrees with the oracle on the entry;
/// a failed extraction leaves the output directory empty.
fn zip_hostile(bytes: Vec<u8>) -> TestCaseResult {
    let dir = scratch();
    let zip = dir.path().join("s.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let _ = archive_entry_size(&zip);
    let verified = verify_archive(&zip);
    prop_assert_eq!(verified.is_ok(), verify_stored_snapshot(&zip).is_ok());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    match extract_snapshot(&zip, &out) {
        Ok(path) => {
            prop_assert_eq!(entries(&out), vec![path.clone()]);
            let data = std::fs::read(&path).unwrap();
            prop_assert_eq!(verified.is_ok(), oracle_intact(&data));
        }
        Err(_) => {
            prop_assert!(verified.is_err());
            prop_assert!(entries(&out).is_empty(), "left behind: {:?}", entries(&out));
        }
    }
    Ok(())
}

/// Byte offsets of the size, count, length and offset fields of the local header, central
/// directory entry and end record of a one-entry archive.
fn header_fields(zip: &[u8]) -> Vec<usize> {
    let eocd = zip
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .expect("end record");
    let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let mut fields = vec![14, 18, 22, 26, 28];
    fields.extend([16, 20, 24, 28, 30, 32, 38, 42].map(|o| cd + o));
    fields.extend([8, 10, 12, 16, 20].map(|o| eocd + o));
    fields
}

fn hostile_zip() -> impl Strategy<Value = Vec<u8>> {
    let good = zip_bytes(ENTRY, &snapshot_bytes(3, 7), 6, 700, 300);
    let fields = header_fields(&good);
    let targeted = {
        let good = good.clone();
        let value = prop_oneof![
            Just(0u32),
            Just(u32::MAX),
            Just(0xffff),
            Just(0xfffe),
            any::<u32>()
        ];
        prop::collection::vec((prop::sample::select(fields), value, any::<bool>()), 1..4).prop_map(
            move |edits| {
                let mut zip = good.clone();
                for (at, value, wide) in edits {
                    let bytes = value.to_le_bytes();
                    let n = if wide { 4 } else { 2 };
                    if at + n <= zip.len() {
                        zip[at..at + n].copy_from_slice(&bytes[..n]);
                    }
                }
                zip
            },
        )
    };
    prop_oneof![
        3 => mutated(good).prop_map(|(bytes, _)| bytes),
        2 => targeted,
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

fn snapshot_hostile(bytes: Vec<u8>, edits: Vec<Mutation>) -> TestCaseResult {
    let dir = scratch();
    let path = dir.path().join("snap");
    std::fs::write(&path, &bytes).unwrap();
    let intact = oracle_intact(&bytes);
    let verified = verify_snapshot_file(&path);
    prop_assert_eq!(verified.is_ok(), intact, "{:?} after {:?}", verified, edits);
    prop_assert_eq!(verify_stored_snapshot(&path).is_ok(), intact);
    if intact {
        prop_assert!(quick_check(&path).is_ok());
        let v = verified.unwrap();
        prop_assert_eq!(v.db_size + 32, bytes.len() as u64);
    }
    Ok(())
}

#[test]
fn fuzz_snapshot_readers() {
    let mut fuzz = Fuzz::new("snapshot_readers", 4);
    let name = "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,30}".prop_filter("a plain name", |n| {
        !n.contains("..") && !n.ends_with(".part")
    });
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        (1usize..6, any::<u8>()).prop_map(|(pages, seed)| snapshot_bytes(pages, seed)),
        prop::collection::vec((0u8..4, 0usize..3000, any::<u64>()), 0..8).prop_map(kinds),
    ];
    fuzz.check(
        "zip_round_trip",
        64,
        (name, data, 0u32..10, (1usize..2048, 1usize..5000)),
        |(name, data, level, sizes)| zip_round_trip(name, data, level, sizes),
    );
    fuzz.check("zip_hostile", 192, hostile_zip(), zip_hostile);
    let snapshot = prop_oneof![
        (1usize..5, any::<u8>())
            .prop_flat_map(|(pages, seed)| mutated(snapshot_bytes(pages, seed))),
        (1usize..5, any::<u8>()).prop_map(|(pages, seed)| (snapshot_bytes(pages, seed), vec![])),
    ];
    fuzz.check("snapshot_hostile", 192, snapshot, |(b, e)| {
        snapshot_hostile(b, e)
    });
    fuzz.check(
        "snapshot_random",
        64,
        prop::collection::vec(any::<u8>(), 0..2000),
        |b| snapshot_hostile(b, vec![]),
    );
    fuzz.finish();
}
