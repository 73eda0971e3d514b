use std::io::Write;

use super::*;
use crate::crypt::Fingerprint;

use crate::crypt::keys::generated_identities as identities;

/// Bytes that compress (repeated keys) and that do not (a counter's bytes), across chunks.
fn sample() -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..40_000u32 {
        data.extend_from_slice(b"/registry/pods/default/name-");
        data.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    }
    data
}

fn store(path: &Path, data: &[u8], compress: bool, recipients: Option<&Recipients>) {
    let file = File::create(path).unwrap();
    let mut w = StoredWriter::new(file, compress, recipients).unwrap();
    // Odd pieces, as the segment writer emits them.
    for piece in data.chunks(1234) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap().sync_all().unwrap();
}

#[test]
fn every_form_round_trips_and_only_the_plain_one_holds_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities();
    let recipients = ids.recipients();
    let data = sample();
    for form in SegmentForm::ALL {
        let path = dir.path().join(form.suffix().trim_start_matches('.'));
        let to = form.encrypted.then_some(&recipients);
        store(&path, &data, form.compressed, to);
        let stored = std::fs::read(&path).unwrap();
        let plaintext_inside = stored.windows(28).any(|w| w == &data[..28]);
        assert_eq!(plaintext_inside, form == SegmentForm::PLAIN, "{form:?}");
        if form.compressed {
            assert!(
                stored.len() < data.len() / 2,
                "{form:?}: {} bytes",
                stored.len()
            );
        }
        if form.encrypted {
            assert!(crate::crypt::is_age_header(&stored));
            assert_eq!(
                crate::crypt::fingerprints_in_header(&stored),
                recipients.fingerprints()
            );
        }
        let back = read_plaintext(&path, form, Some(&ids), data.len() as u64).unwrap();
        assert_eq!(back, data, "{form:?}");
        // One byte over the cap is refused, whatever the layers.
        let err = read_plaintext(&path, form, Some(&ids), data.len() as u64 - 1).unwrap_err();
        assert!(
            matches!(err, StoredError::TooLarge { .. }),
            "{form:?}: {err}"
        );
    }
}

#[test]
fn a_stranger_is_refused_at_the_header_naming_the_keys_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, stranger) = (identities(), identities());
    let path = dir.path().join("s.seg.gz.age");
    store(&path, b"segment", true, Some(&ids.recipients()));
    assert!(check_keys(&path, Some(&ids)).is_ok());
    let err = check_keys(&path, Some(&stranger)).unwrap_err();
    let text = crate::errors::error_chain(&err);
    let needed: &Fingerprint = &ids.recipients().fingerprints()[0];
    assert!(text.contains(needed.as_str()), "{text}");
    // The file by name; its dir is the caller's to say.
    assert!(text.contains("s.seg.gz.age"), "{text}");
    let err = check_keys(&path, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoredError::Keys {
                source: CryptError::IdentityRequired { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn damage_truncation_and_trailing_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities();
    let data = sample();
    for (compress, encrypt) in [(true, false), (false, true), (true, true)] {
        let form = SegmentForm {
            compressed: compress,
            encrypted: encrypt,
        };
        let path = dir.path().join(format!("x{}", form.suffix()));
        let recipients = ids.recipients();
        store(&path, &data, compress, encrypt.then_some(&recipients));
        let good = std::fs::read(&path).unwrap();
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read_plaintext(&path, form, Some(&ids), 1 << 30)
        };
        let mut flipped = good.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 0x10;
        assert!(read(&flipped).is_err(), "{form:?}: flipped");
        assert!(
            read(&good[..good.len() - 1]).is_err(),
            "{form:?}: truncated"
        );
        let mut longer = good.clone();
        longer.extend_from_slice(b"more");
        assert!(read(&longer).is_err(), "{form:?}: trailing bytes");
        assert_eq!(read(&good).unwrap(), data, "{form:?}: intact");
    }
    // Not a regular file.
    let err = read_plaintext(dir.path(), SegmentForm::PLAIN, None, 10).unwrap_err();
    assert!(matches!(err, StoredError::Io { .. }), "{err}");
}

#[test]
fn an_encrypted_segment_is_never_plaintext_on_disk_while_open_or_published() {
    use crate::delta::files::ChainDir;
    use crate::delta::segment::{Event, PutEvent, RevisionGroup, SegmentHeader, decode};
    let root = tempfile::tempdir().unwrap();
    let chain = ChainDir::new(&root.path().join("snapshots"), "s-n1-1").unwrap();
    let ids = identities();
    let header = SegmentHeader {
        cluster_id: 1,
        member_id: 2,
        anchor: "s-n1-1".into(),
        anchor_revision: 4,
        from_revision: 5,
        opened_unix: 1_700_000_000,
    };
    let mut open = chain.open(&header, true, Some(&ids.recipients())).unwrap();
    let secret = b"/registry/secrets/kube-system/very-secret-value".to_vec();
    let mut state = 7u64;
    for revision in 5..3000 {
        // Values that do not compress, so ciphertext reaches the disk while the segment is open.
        let mut value = secret.clone();
        value.extend((0..200).map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        }));
        open.push(&RevisionGroup {
            revision,
            arrived_unix_ms: revision,
            events: vec![Event::Put(PutEvent {
                key: secret.clone(),
                value,
                create_revision: 5,
                mod_revision: revision,
                version: revision - 4,
                lease: 0,
            })],
        })
        .unwrap();
    }
    // Past age's 64 KiB chunks: some ciphertext is on disk, and no plaintext.
    let part = std::fs::read(chain.path().join(".5.part")).unwrap();
    assert!(crate::crypt::is_age_header(&part));
    assert!(
        part.len() > 64 << 10,
        "{} bytes on disk while open",
        part.len()
    );
    assert!(!part.windows(secret.len()).any(|w| w == secret));
    let plaintext_size = open.size();
    let published = open.finish(1, 2, None).unwrap();
    let name = published.file.path.file_name().unwrap().to_string_lossy();
    assert!(name.ends_with("-00000000000000002999.seg.gz.age"), "{name}");
    let stored = std::fs::read(&published.file.path).unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret));
    assert_eq!(published.file.size, stored.len() as u64, "the stored size");
    assert!(published.file.size < plaintext_size, "compressed first");
    let listed = chain.list().unwrap();
    assert_eq!(listed, std::slice::from_ref(&published.file));
    let bytes = read_plaintext(&listed[0].path, listed[0].form, Some(&ids), 1 << 30).unwrap();
    assert_eq!(decode(&bytes).unwrap().footer.to_revision, 2999);
}

#[test]
fn a_passphrase_segment_reads_back_with_the_passphrase_only() {
    let dir = tempfile::tempdir().unwrap();
    let (right, wrong) = (dir.path().join("right"), dir.path().join("wrong"));
    std::fs::write(&right, "segments passphrase\n").unwrap();
    std::fs::write(&wrong, "another passphrase\n").unwrap();
    let recipients = Recipients::read_passphrase_file(&right).unwrap();
    let path = dir.path().join("p.seg.gz.age");
    let data = sample();
    store(&path, &data, true, Some(&recipients));
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(
        crate::crypt::fingerprints_in_header(&stored),
        [Fingerprint::passphrase()]
    );
    let form = SegmentForm {
        compressed: true,
        encrypted: true,
    };
    let ids = Identities::read_passphrase_file(&right).unwrap();
    assert_eq!(
        read_plaintext(&path, form, Some(&ids), 1 << 30).unwrap(),
        data
    );
    let other = Identities::read_passphrase_file(&wrong).unwrap();
    let err = check_keys(&path, Some(&other)).unwrap_err();
    let text = crate::errors::error_chain(&err);
    assert!(
        text.contains("scrypt") && !text.contains("passphrase\n"),
        "{text}"
    );
}
