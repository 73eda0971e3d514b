//! The empty database against our own walker, and the patch decision on every shape of what
//! the tool may have written. That the real tool accepts the empty database and that the
//! patched copy equals the tool's own is `tests/it/restore/direct.rs`.

use super::*;

fn entry(bucket: &[u8], key: &[u8], value: &[u8]) -> Entry {
    Entry {
        bucket: bucket.to_vec(),
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn found(value: &[u8], offset: u64) -> Found {
    Found {
        value: value.to_vec(),
        offset,
    }
}

#[test]
fn the_empty_database_is_a_valid_bbolt_file_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, empty_database()).unwrap();
    assert_eq!(entries(&path).unwrap(), Vec::<Entry>::new());
    let file = std::fs::File::open(&path).unwrap();
    let walked = bbolt::walk(&file, &mut entriesless());
    assert!(walked.problems.is_empty(), "{:?}", walked.problems);
    assert_eq!(
        (walked.page_size, walked.high_water_mark, walked.txid),
        (4096, 4, 1)
    );
}

fn entriesless() -> impl Visit {
    struct Nothing;
    impl Visit for Nothing {
        fn bucket(&mut self, _: &[u8]) {}
        fn entry(&mut self, _: &[u8], _: Option<&[u8]>) {}
    }
    Nothing
}

#[test]
fn only_a_lone_eight_byte_consistent_index_is_patched_in_place() {
    let index = 1u64.to_be_bytes();
    let wrote = [entry(b"meta", b"consistent_index", &index)];
    let ours = found(&56u64.to_be_bytes(), 9000);
    assert_eq!(
        decide_patch(&wrote, Some(&ours)),
        Ok(Patch {
            offset: 9000,
            value: index.to_vec()
        })
    );
    // etcd 3.5's tool also writes the new member into the database: not reproduced here.
    let with_member = [
        wrote[0].clone(),
        entry(b"members", b"d9f180b5523aec8e", b"{\"id\":1}"),
    ];
    let err = decide_patch(&with_member, Some(&ours)).unwrap_err();
    assert!(err.contains("wrote 2 values"), "{err}");
    let err = decide_patch(&[], Some(&ours)).unwrap_err();
    assert!(err.contains("wrote 0 values"), "{err}");
    let err = decide_patch(&[entry(b"meta", b"term", &index)], Some(&ours)).unwrap_err();
    assert!(err.contains("meta/term"), "{err}");
    let err = decide_patch(&[entry(b"meta", b"consistent_index", b"1")], Some(&ours));
    assert!(err.unwrap_err().contains("(1 bytes)"));
    let err = decide_patch(&wrote, Some(&found(b"1234", 9000))).unwrap_err();
    assert!(err.contains("4 bytes, not 8"), "{err}");
    let err = decide_patch(&wrote, None).unwrap_err();
    assert!(err.contains("no meta/consistent_index"), "{err}");
}

#[test]
fn applying_cuts_the_trailer_and_rewrites_only_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut bytes = empty_database();
    let image_len = bytes.len() as u64;
    bytes.extend_from_slice(&[7u8; 32]);
    std::fs::write(&path, &bytes).unwrap();
    let patch = Patch {
        offset: 3 * 4096 + 100,
        value: 5u64.to_be_bytes().to_vec(),
    };
    apply(&path, image_len, &patch).unwrap();
    let after = std::fs::read(&path).unwrap();
    assert_eq!(after.len() as u64, image_len);
    let at = patch.offset as usize;
    assert_eq!(&after[at..at + 8], &patch.value[..]);
    let mut expected = bytes[..image_len as usize].to_vec();
    expected[at..at + 8].copy_from_slice(&patch.value);
    assert_eq!(after, expected);
}

#[test]
fn an_unfinished_compaction_goes_through_the_tool() {
    assert_eq!(unfinished_compaction(None, None), None);
    assert_eq!(unfinished_compaction(Some(5), Some(5)), None);
    assert_eq!(unfinished_compaction(Some(5), Some(9)), None);
    let reason = unfinished_compaction(Some(9), Some(5)).unwrap();
    assert!(
        reason.contains("revision 9 scheduled and not finished"),
        "{reason}"
    );
    assert!(unfinished_compaction(Some(9), None).is_some());
}
