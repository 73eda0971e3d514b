//! Fuzz target `inspect_walker`: the bbolt walker and the MVCC decoders on hostile bytes.
//!
//! Properties: no mutation of a valid image (bit flips, overwritten counts and offsets,
//! truncation, insertion) makes the walker, the tally or the revision read panic, and every walk ends with the
//! page accounting bounded by the image; the intact image walks with no problem; the
//! `mvccpb.KeyValue` and revision decoders never panic on arbitrary bytes. Peak RSS in the long
//! mode shows that counts and sizes claimed by the file are not allocated.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::bbolt::tests::{good_pages, image};
use super::bbolt::{PageSource, walk};
use super::mvcc::{decode_key_value, parse_revision, resource_of};
use super::tally::Tally;
use crate::fuzz_support::{Fuzz, Mutation, mutated};

fn walks_without_panic((bytes, _): (Vec<u8>, Vec<Mutation>)) -> TestCaseResult {
    let src: &[u8] = &bytes;
    let mut tally = Tally::default();
    let s = walk(&src, &mut tally);
    let pages = (src.len() as u64 / 512).max(1) + 1;
    prop_assert!(s.reachable_pages <= pages.max(s.high_water_mark));
    prop_assert!(s.problems.first.len() <= 20);
    let _ = (tally.hash(), tally.live_keys(), tally.groups());
    // The cheap revision read on the same bytes must not panic either.
    let _ = super::revision::read(&src);
    Ok(())
}

#[test]
fn fuzz_inspect_walker() {
    let sample = image(&good_pages(), 7);
    let intact: &[u8] = &sample;
    let mut tally = Tally::default();
    assert!(walk(&intact, &mut tally).problems.is_empty());
    assert!(!PageSource::is_empty(&intact));
    let mut fuzz = Fuzz::new("inspect_walker", 2);
    fuzz.check("image_mutated", 256, mutated(sample), walks_without_panic);
    fuzz.check(
        "decoders",
        256,
        prop::collection::vec(any::<u8>(), 0..64),
        |bytes| {
            let _ = decode_key_value(&bytes);
            let _ = parse_revision(&bytes);
            let _ = resource_of(&bytes);
            Ok(())
        },
    );
    fuzz.finish();
}
