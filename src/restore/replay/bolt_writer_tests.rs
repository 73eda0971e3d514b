//! The writer's files read back with the project's bbolt walker, which checks what bbolt's own
//! `tx.Check` checks (every page reachable once or free, key order, meta checksums); etcd opening
//! a written file is covered by the replay's integration tests.

use super::*;
use crate::inspect::bbolt::{Visit, walk};
use crate::inspect::tree::value_in;

/// Every bucket of a file and its entries, in order.
pub(in crate::restore::replay) type Buckets = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

#[derive(Default)]
struct Collect(Buckets);

impl Visit for Collect {
    fn bucket(&mut self, name: &[u8]) {
        self.0.push((name.to_vec(), Vec::new()));
    }
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        let value = value.expect("no nested buckets").to_vec();
        self.0.last_mut().unwrap().1.push((key.to_vec(), value));
    }
}

/// Writes `buckets` (in name order) with the key bucket, when present, kept open while the
/// others are written, as the replay does.
fn write(path: &Path, page_size: u32, buckets: &Buckets) -> File {
    let mut out = BoltWriter::create(path, page_size).unwrap();
    let mut builders: Vec<BucketBuilder> =
        buckets.iter().map(|_| BucketBuilder::default()).collect();
    // Interleave: one entry of each bucket in turn, so their pages mix in the file.
    let longest = buckets.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
    for i in 0..longest {
        for ((_, entries), builder) in buckets.iter().zip(builders.iter_mut()) {
            if let Some((k, v)) = entries.get(i) {
                builder.push(&mut out, k, v).unwrap();
            }
        }
    }
    let roots: Vec<(Vec<u8>, u64)> = buckets
        .iter()
        .zip(builders)
        .map(|((name, _), b)| (name.clone(), b.finish(&mut out).unwrap()))
        .collect();
    out.finish(&roots, 7).unwrap()
}

/// Walks `file` with the project's bbolt walker: its structure and every bucket's entries.
pub(in crate::restore::replay) fn read_back(
    file: &File,
) -> (crate::inspect::bbolt::Structure, Buckets) {
    let mut seen = Collect::default();
    let structure = walk(file, &mut seen);
    (structure, seen.0)
}

fn revision_key(main: u64) -> Vec<u8> {
    let mut key = main.to_be_bytes().to_vec();
    key.push(b'_');
    key.extend_from_slice(&0u64.to_be_bytes());
    key
}

#[test]
fn many_entries_build_a_multi_level_tree_that_reads_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (1..=40_000u64)
        .map(|i| {
            (
                revision_key(i),
                format!("value-{i}-{}", "x".repeat((i % 97) as usize)).into_bytes(),
            )
        })
        .collect();
    let buckets: Buckets = vec![
        (b"alarm".to_vec(), Vec::new()),
        (b"key".to_vec(), keys),
        (
            b"meta".to_vec(),
            vec![(b"consistent_index".to_vec(), 9u64.to_be_bytes().to_vec())],
        ),
    ];
    let file = write(&dir.path().join("db"), 4096, &buckets);
    let (structure, seen) = read_back(&file);
    assert!(structure.problems.is_empty(), "{:?}", structure.problems);
    assert_eq!(structure.txid, 7);
    assert_eq!(structure.free_pages, 0);
    assert_eq!(seen, buckets);
    assert_eq!(
        file.metadata().unwrap().len(),
        structure.high_water_mark * 4096
    );
    let found = value_in(&file, b"key", &revision_key(31_337))
        .unwrap()
        .unwrap();
    assert!(found.value.starts_with(b"value-31337-"));
    assert_eq!(
        value_in(&file, b"key", &revision_key(40_001)).unwrap(),
        None
    );
}

#[test]
fn values_larger_than_a_page_go_to_overflow_pages_beside_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..50u8)
        .map(|i| {
            let size = if i % 7 == 3 {
                3 * 4096 + usize::from(i)
            } else {
                usize::from(i) * 11
            };
            (vec![b'k', i], vec![i; size])
        })
        .collect();
    let buckets: Buckets = vec![(b"key".to_vec(), entries)];
    let file = write(&dir.path().join("db"), 4096, &buckets);
    let (structure, seen) = read_back(&file);
    assert!(structure.problems.is_empty(), "{:?}", structure.problems);
    assert_eq!(seen, buckets);
}

#[test]
fn an_empty_database_of_empty_buckets_and_other_page_sizes_read_back() {
    let dir = tempfile::tempdir().unwrap();
    for (i, page_size) in [512u32, 4096, 16384].into_iter().enumerate() {
        let buckets: Buckets = vec![
            (b"key".to_vec(), Vec::new()),
            (
                b"lease".to_vec(),
                vec![(vec![0, 0, 0, 0, 0, 0, 0, 5], vec![8, 5, 16, 60])],
            ),
        ];
        let file = write(&dir.path().join(format!("db{i}")), page_size, &buckets);
        let (structure, seen) = read_back(&file);
        assert!(
            structure.problems.is_empty(),
            "{page_size}: {:?}",
            structure.problems
        );
        assert_eq!(structure.page_size, page_size);
        assert_eq!(seen, buckets);
    }
}

#[test]
fn keys_out_of_order_or_repeated_are_refused_and_an_existing_file_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut out = BoltWriter::create(&path, 4096).unwrap();
    let mut bucket = BucketBuilder::default();
    bucket.push(&mut out, b"b", b"1").unwrap();
    for bad in [&b"b"[..], b"a", b""] {
        let err = bucket.push(&mut out, bad, b"2").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
    }
    drop(out);
    assert_eq!(
        BoltWriter::create(&path, 4096).err().map(|e| e.kind()),
        Some(io::ErrorKind::AlreadyExists)
    );
    assert!(BoltWriter::create(&dir.path().join("odd"), 1000).is_err());
}
