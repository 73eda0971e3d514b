//! The encrypted archive extracted in one pass equals the plain one's extraction, and every
//! failure (wrong key, a changed chunk, a truncation, a damaged database inside an intact
//! stream) is refused as what it is, with nothing left behind.

use std::io::Write;

use super::*;
use crate::crypt::EncryptingWriter;
use crate::crypt::keys::generated_identities;
use crate::fsutil::sorted_names;
use crate::restore::RestoreError;

/// A database-shaped image of `len` bytes (bbolt magic at 16) followed by its SHA-256.
fn image(len: usize) -> Vec<u8> {
    use sha2::Digest;
    // Pseudo-random bytes: the archive stays as large as the database, over many age chunks.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut db: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    let digest = sha2::Sha256::digest(&db);
    db.extend_from_slice(&digest);
    db
}

fn zipped(entry: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("s-n1-5", options).unwrap();
    zip.write_all(entry).unwrap();
    zip.finish().unwrap().into_inner()
}

fn encrypt(path: &Path, data: &[u8], ids: &Identities) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = EncryptingWriter::new(file, Some(&ids.recipients())).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
}

#[test]
fn the_database_comes_out_whole_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let db = image(3 * 1024 * 1024 + 512);
    let input = dir.path().join("s-n1-5.zip.age");
    encrypt(&input, &zipped(&db), &ids);
    let path = extract_encrypted_checked(&input, Some(&ids), &[], out.path()).unwrap();
    assert_eq!(path, out.path().join("s-n1-5"));
    assert!(std::fs::read(&path).unwrap() == db);
    assert_eq!(sorted_names(out.path()), ["s-n1-5"]);
}

#[test]
fn every_failure_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let db = image(2 * 1024 * 1024 + 512);
    let input = dir.path().join("s-n1-5.zip.age");
    let run = |ids: &Identities| extract_encrypted_checked(&input, Some(ids), &[], out.path());

    encrypt(&input, &zipped(&db), &ids);
    let err = run(&generated_identities()).unwrap_err();
    assert!(
        matches!(err, ResetError::Decrypt(DecryptError::Open { .. })),
        "{err}"
    );

    // A changed ciphertext byte in the middle: the decryptor's failure, with its offset.
    let mut bytes = std::fs::read(&input).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&input, &bytes).unwrap();
    match run(&ids).unwrap_err() {
        ResetError::Decrypt(DecryptError::Damaged {
            plaintext_bytes, ..
        }) => assert!(
            (1 << 20..=2 << 20).contains(&plaintext_bytes),
            "{plaintext_bytes}"
        ),
        other => panic!("{other}"),
    }
    assert!(sorted_names(out.path()).is_empty());

    // Truncated: the last chunk is missing, so the zip reader's seek to the end fails.
    encrypt(&input, &zipped(&db), &ids);
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 70_000]).unwrap();
    let err = run(&ids).unwrap_err();
    assert!(
        matches!(err, ResetError::Decrypt(DecryptError::Damaged { .. })),
        "{err}"
    );
    assert!(sorted_names(out.path()).is_empty());

    // A database with a wrong trailer in an intact stream: the snapshot check refuses it.
    let mut bad = db.clone();
    bad[1_000_000] ^= 1;
    encrypt(&input, &zipped(&bad), &ids);
    let err = run(&ids).unwrap_err();
    assert!(
        matches!(err, ResetError::Step(RestoreError::ChecksumMismatch { .. })),
        "{err}"
    );
    assert!(sorted_names(out.path()).is_empty());
}
