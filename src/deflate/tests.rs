//! Round trips through an independent inflater (zlib-rs, through flate2): every encoding,
//! every kind of data, runs encoded apart and concatenated, windows shorter and longer than
//! Deflate's, and the sizes the encodings must reach.

use std::io::Read;

use proptest::prelude::*;

use super::Encoder;

fn inflate(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .read_to_end(&mut out)
        .expect("the stream inflates");
    out
}

struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise(seed | 1);
    (0..len).map(|_| (noise.next() >> 32) as u8).collect()
}

fn base64(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut noise = Noise(seed | 1);
    (0..len)
        .map(|_| ALPHABET[(noise.next() >> 40) as usize % 64])
        .collect()
}

/// JSON objects with repeated keys and random ids and payloads, as an API server stores them.
fn objects(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise(seed | 1);
    let mut out = Vec::with_capacity(len + 1024);
    while out.len() < len {
        let id = noise.next();
        let payload = base64(40 + (noise.next() % 600) as usize, noise.next());
        out.extend_from_slice(
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web-{id:010x}","namespace":"prod","uid":"{:016x}","labels":{{"app":"web","tier":"backend"}}}},"spec":{{"nodeName":"node-{}"}},"data":{{"payload":"{}"}}}}"#,
                noise.next(),
                noise.next() % 50,
                String::from_utf8(payload).unwrap()
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn kinds() -> Vec<(&'static str, Vec<u8>)> {
    let mut mixed = objects(100_000, 7);
    mixed.extend(random_bytes(70_000, 8));
    mixed.extend(vec![0u8; 90_000]);
    mixed.extend(base64(80_000, 9));
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![42]),
        ("short text", b"hello, hello, hello world".to_vec()),
        ("zeros", vec![0u8; 300_000]),
        ("random bytes", random_bytes(200_000, 1)),
        ("base64", base64(200_000, 2)),
        ("objects", objects(300_000, 3)),
        (
            "one symbol then another",
            [vec![b'a'; 70_000], vec![b'b'; 3]].concat(),
        ),
        ("mixed", mixed),
    ]
}

#[test]
fn every_kind_of_data_round_trips_in_both_encodings() {
    let mut encoder = Encoder::new();
    for (name, data) in kinds() {
        let mut out = Vec::new();
        encoder.huffman_only(&data, true, &mut out);
        assert_eq!(inflate(&out), data, "{name}, Huffman-only");
        let mut out = Vec::new();
        encoder.matched(&[], &data, true, &mut out);
        assert_eq!(inflate(&out), data, "{name}, matched");
    }
}

#[test]
fn runs_encoded_apart_concatenate_into_one_stream() {
    let data = kinds()
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect::<Vec<u8>>();
    let cuts = [0, 1, 5_000, 70_000, 70_001, 400_000, 900_000, data.len()];
    let mut encoder = Encoder::new();
    let mut stream = Vec::new();
    for (k, range) in cuts.windows(2).enumerate() {
        let last = k + 2 == cuts.len();
        let (window, run) = (&data[..range[0]], &data[range[0]..range[1]]);
        if k % 2 == 0 {
            encoder.matched(window, run, last, &mut stream);
        } else {
            encoder.huffman_only(run, last, &mut stream);
        }
    }
    assert_eq!(inflate(&stream), data);
}

#[test]
fn a_run_refers_back_into_its_window() {
    let text = objects(40_000, 11);
    let mut encoder = Encoder::new();
    let mut alone = Vec::new();
    encoder.matched(&[], &text[20_000..], true, &mut alone);
    let mut stream = Vec::new();
    encoder.huffman_only(&text[..20_000], false, &mut stream);
    let first = stream.len();
    encoder.matched(&text[..20_000], &text[20_000..], true, &mut stream);
    assert_eq!(inflate(&stream), text);
    assert!(
        stream.len() - first < alone.len(),
        "the window shortens the run: {} vs {}",
        stream.len() - first,
        alone.len()
    );
}

#[test]
fn each_encoding_reaches_the_size_its_data_allows() {
    let mut encoder = Encoder::new();
    let ratio = |out: &Vec<u8>, data: &Vec<u8>| out.len() as f64 / data.len() as f64;

    // Base64 carries 6 bits a byte: Huffman codes alone come within 2% of that.
    let text = base64(1 << 20, 21);
    let mut out = Vec::new();
    encoder.huffman_only(&text, true, &mut out);
    assert!(ratio(&out, &text) < 0.765, "base64: {}", ratio(&out, &text));

    // Bytes no code shrinks are stored: a few header bytes per 64 KiB.
    let noise = random_bytes(1 << 20, 22);
    for matched in [false, true] {
        let mut out = Vec::new();
        if matched {
            encoder.matched(&[], &noise, true, &mut out);
        } else {
            encoder.huffman_only(&noise, true, &mut out);
        }
        assert!(
            out.len() <= noise.len() + 200,
            "random bytes grew to {}",
            out.len()
        );
    }

    // Repetitive JSON with random payloads: matching takes it well below the payloads' 75%.
    let json = objects(1 << 20, 23);
    let mut out = Vec::new();
    encoder.matched(&[], &json, true, &mut out);
    assert!(ratio(&out, &json) < 0.6, "objects: {}", ratio(&out, &json));

    // Long runs become long matches.
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    encoder.matched(&[], &zeros, true, &mut out);
    assert!(out.len() < 10_000, "zeros: {}", out.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_bytes_round_trip(
        data in prop::collection::vec(prop_oneof![Just(0u8), Just(b'a'), any::<u8>()], 0..20_000),
        split in 0usize..20_000,
    ) {
        let split = split.min(data.len());
        let mut encoder = Encoder::new();
        let mut stream = Vec::new();
        encoder.matched(&[], &data[..split], false, &mut stream);
        encoder.matched(&data[..split], &data[split..], true, &mut stream);
        prop_assert_eq!(inflate(&stream), data.clone());
        let mut stream = Vec::new();
        encoder.huffman_only(&data, true, &mut stream);
        prop_assert_eq!(inflate(&stream), data);
    }
}
