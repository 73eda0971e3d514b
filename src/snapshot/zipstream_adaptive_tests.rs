//! Tests of the adaptive encodings: archives whose blocks mix LZ77, Huffman-only and stored
//! runs read back exactly through every independent reader, the stored framing is Deflate's,
//! and adapting costs no compression against level 1 everywhere.

use std::io::{Read, Write};

use super::encode::store;
use super::testdata::{certificates, k8s_objects, random_base64, random_bytes, random_hex};
use super::tests::{check_archive, raw_inflate, zip_with_segment};
use super::*;

/// Level 1 over the whole input as one stream: the archive's size before encodings adapted.
fn level1_size(data: &[u8]) -> usize {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap().len()
}

/// Every kind, `each` bytes at a time, in turns.
fn every_kind(each: usize, rounds: u64) -> Vec<u8> {
    let mut data = Vec::new();
    for round in 0..rounds {
        data.extend(random_base64(each, round));
        data.extend(k8s_objects(each, round));
        data.extend(random_bytes(each, round));
        data.extend(certificates(each, round));
        data.extend(vec![0; each / 2]);
        data.extend(random_hex(each, round));
    }
    data
}

#[test]
fn blocks_mixing_every_encoding_read_back_through_every_reader() {
    // Small segments switch encodings inside every block and across block boundaries.
    let data = every_kind(5000, 6);
    for (block, segment, workers) in [(64 * 1024, 4096, 2), (10_000, 3000, 3), (4096, 4096, 4)] {
        let (archive, summary) = zip_with_segment(&data, 7777, block, workers, segment);
        let e = summary.encoded;
        assert!(
            e.matched > 0 && e.huffman_only > 0 && e.stored > 0,
            "block {block}, segment {segment}: every encoding is used: {e:?}"
        );
        check_archive(&archive, &summary, &data);
    }
}

#[test]
fn default_blocks_of_each_kind_read_back_and_count_their_encoding() {
    let mut data = random_base64(BLOCK_SIZE, 1);
    data.extend(random_bytes(BLOCK_SIZE, 2));
    data.extend(k8s_objects(BLOCK_SIZE, 3));
    data.extend(random_base64(12_345, 4));
    let (archive, summary) = zip_with_segment(&data, 65_536, BLOCK_SIZE, 2, plan::SEGMENT);
    check_archive(&archive, &summary, &data);
    let e = summary.encoded;
    let mib = BLOCK_SIZE as u64;
    assert_eq!(e.stored, mib, "{e:?}");
    assert_eq!(e.matched, mib, "{e:?}");
    assert_eq!(e.huffman_only, mib + 12_345, "{e:?}");
}

#[test]
fn a_matched_run_refers_back_into_the_huffman_run_before_it() {
    // The second segment starts with the first one's text (then repeated JSON, which makes it
    // a matched run), so its matches reach into bytes that went out Huffman-only: the priming
    // window must be the input, whatever its encoding.
    let tokens = random_base64(4096, 5);
    let mut second = tokens[..2048].to_vec();
    second.extend(br#"{"kind":"Secret","data":{"token":""#.repeat(61));
    second.truncate(4096);
    let mut data = tokens.clone();
    data.extend(&second);
    let (archive, summary) = zip_with_segment(&data, 1000, 64 * 1024, 2, 4096);
    assert!(
        summary.encoded.huffman_only >= 4096,
        "{:?}",
        summary.encoded
    );
    assert!(summary.encoded.matched >= 4096, "{:?}", summary.encoded);
    check_archive(&archive, &summary, &data);
    // The copy costs a fraction of the tokens themselves: matches, not literals.
    assert!(
        summary.compressed_size < 4096 * 6 / 8 + 2000,
        "{}",
        summary.compressed_size
    );
}

#[test]
fn stored_blocks_are_framed_as_deflate_defines_them() {
    let mut out = Vec::new();
    store(b"abc", true, &mut out);
    assert_eq!(out, [1, 3, 0, 0xFC, 0xFF, b'a', b'b', b'c']);
    out.clear();
    store(b"abc", false, &mut out);
    assert_eq!(out[0], 0, "not final");
    out.clear();
    store(&[], true, &mut out);
    assert_eq!(out, [1, 0, 0, 0xFF, 0xFF], "an empty final block");
    out.clear();
    store(&[], false, &mut out);
    assert!(out.is_empty());
    // Sizes around the 65,535-byte limit, alone and followed by the stream's end.
    for len in [1, 65_534, 65_535, 65_536, 131_070, 131_071, 200_000] {
        let data = random_bytes(len, len as u64);
        let mut stream = Vec::new();
        store(&data, false, &mut stream);
        assert_eq!(stream.len(), len + 5 * len.div_ceil(65_535), "{len}");
        store(&[], true, &mut stream);
        let mut decoded = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(decoded == data, "{len} bytes");
    }
}

#[test]
fn a_misframed_stored_block_is_caught_by_the_readers() {
    // The readers the tests rely on refuse a stored block whose length and complement disagree,
    // so a framing mistake cannot pass unnoticed.
    let data = random_bytes(3 * plan::SEGMENT, 6);
    let (mut archive, summary) = zip_with_segment(&data, 65_536, BLOCK_SIZE, 2, plan::SEGMENT);
    assert_eq!(summary.encoded.stored, data.len() as u64);
    let start = 30
        + usize::from(u16::from_le_bytes([archive[26], archive[27]]))
        + usize::from(u16::from_le_bytes([archive[28], archive[29]]));
    let end = start + usize::try_from(summary.compressed_size).unwrap();
    // Not final, stored, 65,535 bytes, and the length's complement.
    assert_eq!(archive[start..start + 5], [0, 0xFF, 0xFF, 0, 0]);
    archive[start + 3] ^= 1;
    let mut decoded = Vec::new();
    let result = flate2::read::DeflateDecoder::new(&archive[start..end]).read_to_end(&mut decoded);
    assert!(result.is_err(), "a broken stored block decodes");
}

#[test]
fn adapting_keeps_the_ratio_of_level_1_or_better_on_every_mix() {
    let half_and_half: Vec<u8> = (0..4u64)
        .flat_map(|i| {
            let mut pair = random_base64(BLOCK_SIZE / 2, i);
            pair.extend(k8s_objects(BLOCK_SIZE / 2, i));
            pair
        })
        .collect();
    let mixes = [
        ("Kubernetes objects", k8s_objects(4 * BLOCK_SIZE, 7)),
        ("random base64", random_base64(2 * BLOCK_SIZE, 8)),
        ("random hex", random_hex(2 * BLOCK_SIZE, 9)),
        ("PEM certificates", certificates(2 * BLOCK_SIZE, 10)),
        ("half base64, half objects", half_and_half),
    ];
    for (mix, data) in mixes {
        let (archive, summary) = zip_with_segment(&data, 65_536, BLOCK_SIZE, 2, plan::SEGMENT);
        assert!(raw_inflate(&archive, &summary) == data, "{mix}");
        let n = data.len() as f64;
        let ours = summary.compressed_size as f64 / n;
        let level1 = level1_size(&data) as f64 / n;
        eprintln!(
            "{mix}: {ours:.3} against level 1's {level1:.3} ({:?})",
            summary.encoded
        );
        assert!(
            ours <= level1 + 0.02,
            "{mix}: {ours:.3} against level 1's {level1:.3}"
        );
    }
}
