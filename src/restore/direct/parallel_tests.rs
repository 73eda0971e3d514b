//! Parallel decryption against the sequential reader: the same bytes at every size around the
//! chunk and block edges, and every kind of damage refused with the right error.

use std::io::Write;

use super::*;
use crate::crypt::EncryptingWriter;
use crate::crypt::keys::generated_identities;

/// A database-shaped image of `len` bytes (bbolt magic at 16) followed by its SHA-256.
fn image(len: usize, seed: u8) -> Vec<u8> {
    use sha2::Digest;
    let mut db: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    let digest = sha2::Sha256::digest(&db);
    db.extend_from_slice(&digest);
    db
}

fn encrypt(path: &Path, data: &[u8], ids: &Identities) {
    let file = File::create(path).unwrap();
    let mut w = EncryptingWriter::new(file, Some(&ids.recipients())).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
}

fn run(path: &Path, ids: &Identities, dest: &Path) -> Result<u64, DecryptError> {
    let file = File::open(path).unwrap();
    run_pinned(&file, path, ids, dest, Trailer::Check)
}

fn run_pinned(
    file: &File,
    path: &Path,
    ids: &Identities,
    dest: &Path,
    trailer: Trailer,
) -> Result<u64, DecryptError> {
    let input = Encrypted {
        file,
        path,
        identities: ids,
        name: "s-n1-5.age",
        needed: &[],
        trailer,
    };
    let first = open(&input)?;
    decrypt_in_parallel(&input, first, dest)
}

fn run_sealed(path: &Path, ids: &Identities, dest: &Path) -> Result<u64, DecryptError> {
    let file = File::open(path).unwrap();
    run_pinned(&file, path, ids, dest, Trailer::CheckedAtSave)
}

#[test]
fn shares_cover_the_plaintext_in_aligned_contiguous_pieces_the_first_one_small() {
    assert_eq!(shares(10, 2, 4, true), vec![0..4, 4..10]);
    assert_eq!(shares(3, 4, 4, true), vec![0..3]);
    assert_eq!(shares(0, 2, 4, true), Vec::<Range<u64>>::new());
    assert_eq!(shares(16, 2, 4, true), vec![0..4, 4..16]);
    assert_eq!(shares(7, 1, 4, true), vec![0..7]);
    let r = shares(5 * BLOCK + 7, 3, BLOCK, true);
    assert_eq!(
        r,
        vec![0..BLOCK, BLOCK..4 * BLOCK, 4 * BLOCK..5 * BLOCK + 7]
    );
    for len in [1, 4095, 4096, 65_536, 1 << 30, (1 << 33) + 12_345] {
        for workers in 1..=4 {
            let r = shares(len, workers, 65_536, true);
            assert!(r.len() <= workers, "{len} {workers}: {r:?}");
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, len);
            for pair in r.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(pair[0].end % 65_536, 0);
            }
            if workers == 2 && len >= 1 << 30 {
                // About one sixth for the worker that also checks.
                let first = r[0].end as f64 / len as f64;
                assert!((0.15..0.18).contains(&first), "{first}");
            }
        }
    }
}

#[test]
fn a_passphrase_file_is_decrypted_by_one_worker_as_scrypt_runs_per_opening() {
    let x25519 = b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n";
    let scrypt = b"age-encryption.org/v1\n-> scrypt salt 18\nxyz\n--- mac\n";
    assert_eq!(workers_for(x25519, 2), 2);
    assert_eq!(workers_for(x25519, 1), 2);
    assert_eq!(workers_for(x25519, 64), MAX_WORKERS);
    assert_eq!(workers_for(scrypt, 8), 1);
}

#[test]
fn the_plaintext_equals_the_original_at_every_size_around_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let block = BLOCK as usize;
    // Database images are whole 512-byte pages; their trailer moves the end off every edge.
    let sizes = [
        1024,
        65_536 - 512,
        65_536,
        65_536 + 512,
        2 * block - 512,
        2 * block + 4096,
        5 * block + 512,
    ];
    for (i, len) in sizes.into_iter().enumerate() {
        let data = image(len, i as u8);
        let input = dir.path().join(format!("s{i}.age"));
        encrypt(&input, &data, &ids);
        let dest = dir.path().join(format!("s{i}.db"));
        assert_eq!(run(&input, &ids, &dest).unwrap(), data.len() as u64 - 32);
        assert!(std::fs::read(&dest).unwrap() == data, "length {len}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn a_damaged_plaintext_a_tampered_chunk_and_a_wrong_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let input = dir.path().join("s.age");
    let good = image(3 * BLOCK as usize, 7);
    // Damage inside an intact age stream: the trailer check refuses it.
    let mut flipped = good.clone();
    flipped[2 * BLOCK as usize + 5] ^= 1;
    encrypt(&input, &flipped, &ids);
    let err = run(&input, &ids, &dir.path().join("a.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Snapshot { .. }), "{err}");
    // A ciphertext byte changed in the last share: age's authentication refuses its chunk.
    encrypt(&input, &good, &ids);
    let mut bytes = std::fs::read(&input).unwrap();
    let at = bytes.len() - 100_000;
    bytes[at] ^= 1;
    std::fs::write(&input, &bytes).unwrap();
    match run(&input, &ids, &dir.path().join("b.db")).unwrap_err() {
        DecryptError::Damaged {
            plaintext_bytes, ..
        } => assert!(plaintext_bytes >= 2 * BLOCK, "{plaintext_bytes}"),
        other => panic!("{other}"),
    }
    // Truncated: refused before any worker starts.
    encrypt(&input, &good, &ids);
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 1000]).unwrap();
    let err = run(&input, &ids, &dir.path().join("c.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Damaged { .. }), "{err}");
    // Nothing at all inside a valid age file: refused, not waited on.
    encrypt(&input, b"", &ids);
    let err = run(&input, &ids, &dir.path().join("e.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Snapshot { .. }), "{err}");
    // Another key: refused at the header, nothing created.
    encrypt(&input, &good, &ids);
    let err = run(&input, &generated_identities(), &dir.path().join("d.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Open { .. }), "{err}");
    assert!(!dir.path().join("d.db").exists());
}

#[test]
fn without_the_check_the_shares_are_equal() {
    assert_eq!(shares(16, 2, 4, false), vec![0..8, 8..16]);
    assert_eq!(shares(7, 1, 4, false), vec![0..7]);
    let r = shares(6 * BLOCK + 7, 3, BLOCK, false);
    assert_eq!(
        r,
        vec![0..3 * BLOCK, 3 * BLOCK..6 * BLOCK, 6 * BLOCK..6 * BLOCK + 7]
    );
    let r = shares(1 << 30, 2, 65_536, false);
    assert_eq!(r, vec![0..1 << 29, 1 << 29..1 << 30]);
}

#[test]
fn only_the_recorded_seal_skips_the_check() {
    let seal = "ab".repeat(32);
    let upper = seal.to_ascii_uppercase();
    let other = "cd".repeat(32);
    assert_eq!(
        trailer_check(Some(&seal), Some(&seal)),
        Trailer::CheckedAtSave
    );
    assert_eq!(
        trailer_check(Some(&upper), Some(&seal)),
        Trailer::CheckedAtSave
    );
    assert_eq!(trailer_check(Some(&seal), Some(&other)), Trailer::Check);
    assert_eq!(trailer_check(None, Some(&seal)), Trailer::Check);
    assert_eq!(trailer_check(Some(&seal), None), Trailer::Check);
    assert_eq!(trailer_check(None, None), Trailer::Check);
}

#[test]
fn a_file_checked_at_save_decrypts_the_same_without_the_hash_and_damage_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let block = BLOCK as usize;
    for (i, len) in [1024, 65_536 + 512, 2 * block + 4096, 5 * block + 512]
        .into_iter()
        .enumerate()
    {
        let data = image(len, i as u8);
        let input = dir.path().join(format!("s{i}.age"));
        encrypt(&input, &data, &ids);
        let dest = dir.path().join(format!("s{i}.db"));
        assert_eq!(
            run_sealed(&input, &ids, &dest).unwrap(),
            data.len() as u64 - 32
        );
        assert!(std::fs::read(&dest).unwrap() == data, "length {len}");
    }
    let input = dir.path().join("s.age");
    let good = image(3 * block, 7);
    // The hash really is skipped: a wrong trailer inside passes. Only a file with the seal
    // of a save that checked it gets here (`trailer_check`).
    let mut flipped = good.clone();
    flipped[2 * block + 5] ^= 1;
    encrypt(&input, &flipped, &ids);
    assert!(run_sealed(&input, &ids, &dir.path().join("a.db")).is_ok());
    // Authentication still refuses a changed chunk and a truncation.
    encrypt(&input, &good, &ids);
    let mut bytes = std::fs::read(&input).unwrap();
    let at = bytes.len() - 100_000;
    bytes[at] ^= 1;
    std::fs::write(&input, &bytes).unwrap();
    let err = run_sealed(&input, &ids, &dir.path().join("b.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Damaged { .. }), "{err}");
    encrypt(&input, &good, &ids);
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 1000]).unwrap();
    let err = run_sealed(&input, &ids, &dir.path().join("c.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Damaged { .. }), "{err}");
    // The size and the magic are still checked: no database inside is refused.
    encrypt(&input, &vec![0u8; 4096 + 32], &ids);
    let err = run_sealed(&input, &ids, &dir.path().join("d.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Snapshot { .. }), "{err}");
    encrypt(&input, b"", &ids);
    let err = run_sealed(&input, &ids, &dir.path().join("e.db")).unwrap_err();
    assert!(matches!(err, DecryptError::Snapshot { .. }), "{err}");
}

#[test]
fn every_worker_reads_the_file_opened_first_even_when_another_takes_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let ids = generated_identities();
    let input = dir.path().join("s.age");
    let original = image(4 * BLOCK as usize, 1);
    encrypt(&input, &original, &ids);
    let pinned = File::open(&input).unwrap();
    let other = dir.path().join("other.age");
    encrypt(&other, &image(4 * BLOCK as usize, 2), &ids);
    std::fs::rename(&other, &input).unwrap();
    let dest = dir.path().join("s.db");
    for trailer in [Trailer::Check, Trailer::CheckedAtSave] {
        let _ = std::fs::remove_file(&dest);
        run_pinned(&pinned, &input, &ids, &dest, trailer).unwrap();
        assert!(std::fs::read(&dest).unwrap() == original, "{trailer:?}");
    }
}
