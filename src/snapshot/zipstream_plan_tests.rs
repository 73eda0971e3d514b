//! Table tests of the encoding decision on the kinds of data a snapshot holds, and of how a
//! block is cut into runs.

use super::super::testdata::{certificates, k8s_objects, random_base64, random_bytes, random_hex};
use super::*;

#[test]
fn each_kind_of_data_gets_the_encoding_that_suits_it() {
    let json_config: Vec<u8> = br#"{"kind":"ConfigMap","apiVersion":"v1","data":{"key":"value"}}"#
        .iter()
        .copied()
        .cycle()
        .take(SEGMENT)
        .collect();
    let table: [(&str, Vec<u8>, Encoding); 8] = [
        ("zeros", vec![0; SEGMENT], Encoding::Matched),
        ("repetitive JSON", json_config, Encoding::Matched),
        (
            "Kubernetes objects",
            k8s_objects(SEGMENT, 1),
            Encoding::Matched,
        ),
        (
            "random base64",
            random_base64(SEGMENT, 2),
            Encoding::HuffmanOnly,
        ),
        ("random hex", random_hex(SEGMENT, 3), Encoding::HuffmanOnly),
        (
            "PEM certificates",
            certificates(SEGMENT, 4),
            Encoding::HuffmanOnly,
        ),
        ("random bytes", random_bytes(SEGMENT, 5), Encoding::Stored),
        (
            "a short tail of base64",
            random_base64(3000, 6),
            Encoding::HuffmanOnly,
        ),
    ];
    for (kind, data, expected) in table {
        let estimate = estimate(&sample(&data));
        assert_eq!(decide(estimate), expected, "{kind}: {estimate:?}");
    }
}

#[test]
fn estimates_follow_the_data() {
    let hex = estimate(&sample(&random_hex(SEGMENT, 7)));
    assert!((hex.huffman_only - 4.0).abs() < 0.1, "{hex:?}");
    assert!(hex.matched >= 8.0, "no repeats in random hex: {hex:?}");
    let b64 = estimate(&sample(&random_base64(SEGMENT, 8)));
    assert!((b64.huffman_only - 6.0).abs() < 0.1, "{b64:?}");
    let bytes = estimate(&sample(&random_bytes(SEGMENT, 9)));
    assert!(bytes.huffman_only > 7.95, "random bytes: {bytes:?}");
    let zeros = estimate(&sample(&[0; SEGMENT]));
    assert!(
        zeros.matched < 0.2 && zeros.huffman_only >= 1.0,
        "{zeros:?}"
    );
    assert_eq!(
        estimate(&[]),
        Estimate {
            huffman_only: 0.0,
            matched: 0.0
        }
    );
}

#[test]
fn decisions_compare_estimates() {
    let table = [
        // (huffman-only, matched) bits per byte -> encoding
        ((6.0, 3.0), Encoding::Matched),
        ((6.0, 6.4), Encoding::Matched), // within the bias towards matching
        ((6.0, 6.6), Encoding::HuffmanOnly),
        ((4.0, 8.0), Encoding::HuffmanOnly),
        ((7.95, 8.6), Encoding::Stored),
        ((8.01, 8.6), Encoding::Stored),
        ((8.01, 8.44), Encoding::Stored), // random bytes: literals cost 8-9 bits
        ((8.01, 7.95), Encoding::Stored), // a saving too small to spend time on
        ((8.01, 5.0), Encoding::Matched), // random data repeated: matching pays
        ((1.02, 0.1), Encoding::Matched), // zeros
    ];
    for ((huffman_only, matched), expected) in table {
        let estimate = Estimate {
            huffman_only,
            matched,
        };
        assert_eq!(decide(estimate), expected, "{estimate:?}");
    }
}

#[test]
fn samples_are_the_whole_of_a_short_segment_or_its_start_and_middle() {
    let short = random_bytes(2 * SAMPLE, 10);
    assert!(matches!(sample(&short), Cow::Borrowed(s) if s == &short[..]));
    let long = random_bytes(SEGMENT, 11);
    let taken = sample(&long);
    assert_eq!(taken.len(), 2 * SAMPLE);
    assert_eq!(&taken[..SAMPLE], &long[..SAMPLE]);
    assert_eq!(&taken[SAMPLE..], &long[SEGMENT / 2..SEGMENT / 2 + SAMPLE]);
}

#[test]
fn a_block_is_cut_into_runs_of_one_encoding() {
    // base64, base64, random bytes, JSON-like objects, JSON-like objects, then a short tail.
    let mut block = random_base64(2 * SEGMENT, 12);
    block.extend(random_bytes(SEGMENT, 13));
    block.extend(k8s_objects(2 * SEGMENT + 20_000, 14));
    let runs = plan(&block, 1, SEGMENT);
    let expected = [
        (0..2 * SEGMENT, Encoding::HuffmanOnly),
        (2 * SEGMENT..3 * SEGMENT, Encoding::Stored),
        (3 * SEGMENT..block.len(), Encoding::Matched),
    ];
    let got: Vec<_> = runs.iter().map(|r| (r.range.clone(), r.encoding)).collect();
    assert_eq!(got, expected);
}

#[test]
fn level_zero_stores_and_an_empty_block_is_one_empty_run() {
    let block = k8s_objects(3 * SEGMENT, 15);
    let stored = plan(&block, 0, SEGMENT);
    assert_eq!(
        stored,
        [Run {
            range: 0..block.len(),
            encoding: Encoding::Stored
        }]
    );
    for (level, encoding) in [(0, Encoding::Stored), (1, Encoding::Matched)] {
        assert_eq!(
            plan(&[], level, SEGMENT),
            [Run {
                range: 0..0,
                encoding
            }]
        );
    }
}

#[test]
fn runs_cover_the_block_exactly_for_any_segment_size() {
    let mut block = random_hex(10_000, 16);
    block.extend(random_bytes(7_000, 17));
    block.extend(vec![b'a'; 5_000]);
    for segment in [0, 1, 7, 1000, 4096, SEGMENT] {
        let runs = plan(&block, 1, segment);
        assert_eq!(runs[0].range.start, 0);
        assert_eq!(runs.last().unwrap().range.end, block.len());
        for pair in runs.windows(2) {
            assert_eq!(pair[0].range.end, pair[1].range.start, "segment {segment}");
            assert_ne!(pair[0].encoding, pair[1].encoding, "segment {segment}");
        }
    }
}
