//! Unit tests of the snapshot file checks: shapes, trailers, bbolt pages, recorded
//! checksums, and stored (plain or zipped) snapshots verified in place.

use super::*;
use crate::hex::encode as hex;
use crate::snapshot::verify::{BOLT_MAGIC, BOLT_MAGIC_OFFSET, TRAILER_LEN};
use sha2::{Digest, Sha256};
use std::fs::File;

/// A fake snapshot: `pages` pages starting with a bbolt meta magic, plus the trailer.
fn snapshot_bytes(pages: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..pages * 4096).map(|i| (i * 31 % 251) as u8).collect();
    data[BOLT_MAGIC_OFFSET..BOLT_MAGIC_OFFSET + 4].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
    let digest = Sha256::digest(&data);
    data.extend_from_slice(&digest);
    data
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn shape_from_size() {
    let cases = [
        (0, Shape::Truncated),
        (32, Shape::Truncated),
        (512, Shape::Truncated),
        (1024, Shape::NoTrailer),
        (544, Shape::WithTrailer),
        (4096 * 3, Shape::NoTrailer),
        (4096 * 3 + 32, Shape::WithTrailer),
        (4096 * 3 + 31, Shape::Truncated),
        (4096 * 3 + 1000, Shape::Truncated),
    ];
    for (size, want) in cases {
        assert_eq!(shape_of(size), want, "{size}");
    }
}

#[test]
fn verifies_a_good_file_and_its_recorded_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = snapshot_bytes(3);
    let path = write(dir.path(), "s", &bytes);
    let got = verify_snapshot_file(&path).unwrap();
    assert_eq!((got.db_size, got.file_size), (3 * 4096, 3 * 4096 + 32));
    assert_eq!(got.sha256, hex(&bytes[3 * 4096..]));
    assert_eq!(got.file_sha256, None);
    let whole = hex(&Sha256::digest(&bytes));
    let got = verify_snapshot_file_expecting(&path, &whole.to_uppercase()).unwrap();
    assert_eq!(got.file_sha256, Some(whole));
    let err = verify_snapshot_file_expecting(&path, &"0".repeat(64)).unwrap_err();
    assert!(
        matches!(err, RestoreError::FileChecksumMismatch { .. }),
        "{err}"
    );
}

#[test]
fn distinguishes_truncated_untrailered_corrupt_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = snapshot_bytes(2);
    let cut = write(dir.path(), "cut", &bytes[..5000]);
    assert!(matches!(
        verify_snapshot_file(&cut),
        Err(RestoreError::Truncated { size: 5000, .. })
    ));
    let raw = write(dir.path(), "raw", &bytes[..8192]);
    assert!(matches!(
        verify_snapshot_file(&raw),
        Err(RestoreError::NoTrailer { .. })
    ));
    for offset in [0, 4000, 8191, 8192, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[offset] ^= 0x10;
        let path = write(dir.path(), "flip", &flipped);
        let err = verify_snapshot_file(&path).unwrap_err();
        assert!(
            matches!(err, RestoreError::ChecksumMismatch { .. }),
            "offset {offset}: {err}"
        );
    }
    let mut foreign: Vec<u8> = vec![7; 4096];
    let digest = Sha256::digest(&foreign);
    foreign.extend_from_slice(&digest);
    let path = write(dir.path(), "foreign", &foreign);
    let err = verify_snapshot_file(&path).unwrap_err();
    assert!(matches!(err, RestoreError::NotADatabase { .. }), "{err}");
}

#[test]
fn free_space_names_needed_available_and_mount() {
    let dir = tempfile::tempdir().unwrap();
    let space = check_free_space(dir.path(), 1).unwrap();
    assert!(space.available > 0);
    assert!(dir.path().canonicalize().unwrap().starts_with(&space.mount));
    let err = check_free_space(dir.path(), u64::MAX).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&u64::MAX.to_string()), "{text}");
    assert!(text.contains(&space.mount.display().to_string()), "{text}");
    let err = check_free_space(&dir.path().join("missing"), 1).unwrap_err();
    assert!(matches!(err, RestoreError::FreeSpace { .. }), "{err}");
}

fn zipped(dir: &Path, name: &str, entry: &str, bytes: &[u8]) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(entry, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap();
    path
}

#[test]
fn stored_snapshots_are_verified_in_place_zipped_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let good = snapshot_bytes(3);
    let db_size = good.len() as u64 - TRAILER_LEN;
    let mut bad = good.clone();
    bad[5000] ^= 1;

    let plain = write(dir.path(), "on-demand-n1-1", &good);
    assert_eq!(verify_stored_snapshot(&plain).unwrap(), db_size);
    let damaged = write(dir.path(), "on-demand-n1-2", &bad);
    let err = verify_stored_snapshot(&damaged).unwrap_err();
    assert!(
        matches!(err, RestoreError::ChecksumMismatch { .. }),
        "{err}"
    );

    let zip = zipped(dir.path(), "on-demand-n1-3.zip", "on-demand-n1-3", &good);
    assert_eq!(verify_stored_snapshot(&zip).unwrap(), db_size);
    // A database damaged before it was zipped: the archive is intact, the trailer is not.
    let zip_of_bad = zipped(dir.path(), "on-demand-n1-4.zip", "on-demand-n1-4", &bad);
    let err = verify_stored_snapshot(&zip_of_bad).unwrap_err();
    assert!(
        matches!(err, RestoreError::ChecksumMismatch { .. }),
        "{err}"
    );
    // An archive damaged on disk: its compressed data no longer matches its CRC.
    let mut archive = std::fs::read(&zip).unwrap();
    let middle = archive.len() / 2;
    archive[middle] ^= 0xff;
    let rotten = write(dir.path(), "on-demand-n1-5.zip", &archive);
    let err = verify_stored_snapshot(&rotten).unwrap_err();
    assert!(err.to_string().contains("on-demand-n1-5.zip"), "{err}");
    // Caught by the archive (inflate or CRC), not left to the trailer check.
    assert!(
        matches!(
            err,
            RestoreError::ReadSnapshot { .. } | RestoreError::NotAZip { .. }
        ),
        "{err:?}"
    );

    let names = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(names, 5, "verifying writes nothing");
}
