//! The cheap revision read on crafted images: the rightmost leaf of a multi-level `key` bucket,
//! an inline one, an empty one, the finished compaction, and damage refused without a panic.

use super::*;
use crate::inspect::bbolt::NO_FREELIST;
use crate::inspect::bbolt::tests::{branch, bucket_at, image, inline_bucket, leaf, meta};

fn rev(main: u64, sub: u64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

/// Root leaf at 2; `key` rooted at branch 3 over leaves 4 and 5 (the highest revision, 9, is
/// a tombstone in leaf 5); `meta` inline with a finished compaction at `compact`.
fn pages(compact: u64) -> Vec<Vec<u8>> {
    let mut tomb = rev(9, 0);
    tomb.push(b't');
    vec![
        meta(0, 2, NO_FREELIST, 6, 10),
        meta(1, 2, NO_FREELIST, 6, 9),
        leaf(
            2,
            &[
                (true, b"key", bucket_at(3)),
                (
                    true,
                    b"meta",
                    inline_bucket(&[
                        (false, b"consistent_index", 7u64.to_be_bytes().to_vec()),
                        (false, b"finishedCompactRev", rev(compact, 0)),
                    ]),
                ),
            ],
        ),
        branch(3, &[(&rev(2, 0), 4), (&rev(5, 0), 5)]),
        leaf(
            4,
            &[(false, &rev(2, 0), vec![1]), (false, &rev(3, 0), vec![2])],
        ),
        leaf(5, &[(false, &rev(5, 0), vec![3]), (false, &tomb, vec![])]),
    ]
}

#[test]
fn the_highest_revision_is_the_last_key_of_the_rightmost_leaf() {
    let img = image(&pages(4), 6);
    let r = read(&img.as_slice()).unwrap();
    assert_eq!(
        r,
        Revisions {
            latest: 9,
            finished_compact: Some(4)
        }
    );
    assert_eq!(r.served(), 9);
    // Compacted past every key left (the top ones were deletions): etcd serves the compaction.
    let r = read(&image(&pages(12), 6).as_slice()).unwrap();
    assert_eq!((r.latest, r.served()), (9, 12));
}

#[test]
fn inline_and_empty_key_buckets_and_no_meta_bucket() {
    let inline = vec![
        meta(0, 2, NO_FREELIST, 3, 2),
        meta(1, 2, NO_FREELIST, 3, 1),
        leaf(
            2,
            &[(true, b"key", inline_bucket(&[(false, &rev(3, 1), vec![1])]))],
        ),
    ];
    let r = read(&image(&inline, 3).as_slice()).unwrap();
    assert_eq!(
        r,
        Revisions {
            latest: 3,
            finished_compact: None
        }
    );
    let empty = vec![
        meta(0, 2, NO_FREELIST, 3, 2),
        meta(1, 2, NO_FREELIST, 3, 1),
        leaf(2, &[(true, b"key", inline_bucket(&[]))]),
    ];
    let r = read(&image(&empty, 3).as_slice()).unwrap();
    assert_eq!((r.latest, r.served()), (0, 1));
}

#[test]
fn damage_is_an_error_not_a_panic() {
    let good = image(&pages(4), 6);
    // The branch points past the high-water mark.
    let mut bad = good.clone();
    let branch_page = 3 * 512;
    let child_at = branch_page + 16 + 16 + 8;
    bad[child_at..child_at + 8].copy_from_slice(&99u64.to_le_bytes());
    assert!(read(&bad.as_slice()).unwrap_err().contains("page 99"));
    // The rightmost leaf is not a leaf.
    let mut bad = good.clone();
    bad[5 * 512 + 8] = 0x10;
    assert!(
        read(&bad.as_slice())
            .unwrap_err()
            .contains("expected a branch or leaf")
    );
    // No valid meta page.
    let mut bad = good;
    bad[16] ^= 1;
    bad[512 + 16] ^= 1;
    assert!(
        read(&bad.as_slice())
            .unwrap_err()
            .contains("no valid meta page")
    );
    assert!(read(&[0u8; 100].as_slice()).is_err());
}
