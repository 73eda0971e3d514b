//! The harness behind the property tests and fuzz targets of the parsers of untrusted input.
//!
//! A target is one `#[test]` that checks a few named properties with proptest strategies:
//! structured inputs built from the format's own vocabulary, and raw byte mutations of valid
//! samples ([`mutated`]). Two modes, chosen by the environment:
//! - by default (CI) each property runs a fixed number of cases from a fixed seed, so a run is
//!   short and reproducible;
//! - with `FUZZ_SECONDS=N` the target runs for about N seconds in all (shared equally among its
//!   properties), batch after batch of fresh seeds, then prints the cases executed and the peak
//!   RSS of the process, and fails if that peak passes `FUZZ_MAX_RSS_MB` (default 512).
//!
//! `FUZZ_SEED=<u64>` replaces the base seed (a failure prints the seed that reproduces it).
//! Peak RSS is per process, so measure it with one target per test process (an exact filter).
//! Failing cases are never written to the source tree: a bug found gets its own regression test.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestError, TestRng, TestRunner};

/// One fuzz target run: its mode, its seed and what it has executed so far.
pub(crate) struct Fuzz {
    target: &'static str,
    seed: u64,
    /// The whole budget in long mode; None in CI mode.
    budget: Option<Duration>,
    /// Properties still to run; each gets an equal share of what is left of the budget.
    remaining: u32,
    started: Instant,
    cases: u64,
}

impl Fuzz {
    /// Starts a target that will check `properties` properties.
    pub(crate) fn new(target: &'static str, properties: u32) -> Self {
        let budget = env_u64("FUZZ_SECONDS").map(Duration::from_secs);
        if budget.is_some() {
            reset_peak_rss();
        }
        let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| fnv(target));
        Fuzz {
            target,
            seed,
            budget,
            remaining: properties.max(1),
            started: Instant::now(),
            cases: 0,
        }
    }

    /// Checks one property: `ci_cases` cases in CI mode, its share of the budget in long mode.
    /// Panics with the seed and the minimal failing input when the property fails.
    pub(crate) fn check<S>(
        &mut self,
        property: &str,
        ci_cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> TestCaseResult,
    ) where
        S: Strategy,
        S::Value: Debug,
    {
        let started = Instant::now();
        let counter = AtomicU64::new(0);
        let counted = |value| {
            counter.fetch_add(1, Ordering::Relaxed);
            test(value)
        };
        let share = self.budget.map(|budget| {
            let left = budget.saturating_sub(self.started.elapsed());
            Instant::now() + left / self.remaining
        });
        self.remaining = self.remaining.saturating_sub(1).max(1);
        let mut batch = 0u64;
        loop {
            let seed = self.seed ^ fnv(property).wrapping_add(batch.wrapping_mul(0x9E37_79B9));
            let mut runner = runner(ci_cases, seed);
            if let Err(err) = runner.run(&strategy, counted) {
                let what = match err {
                    TestError::Abort(reason) => format!("aborted: {reason}"),
                    TestError::Fail(reason, input) => {
                        format!("failed: {reason}\nminimal input: {input:#?}")
                    }
                };
                panic!(
                    "fuzz {}/{property} {what}\nreproduce with FUZZ_SEED={} (batch {batch})",
                    self.target, self.seed
                );
            }
            batch += 1;
            match share {
                Some(until) if Instant::now() < until => continue,
                _ => break,
            }
        }
        let cases = counter.load(Ordering::Relaxed);
        eprintln!(
            "fuzz {}/{property}: {cases} cases in {:.1}s",
            self.target,
            started.elapsed().as_secs_f64()
        );
        self.cases += cases;
    }

    /// Reports the run; in long mode, fails when the peak RSS passed the limit.
    pub(crate) fn finish(self) {
        let peak_kib = peak_rss_kib();
        let line = format!(
            "fuzz {}: {} cases in {:.0}s, seed {}, peak RSS {} MiB",
            self.target,
            self.cases,
            self.started.elapsed().as_secs_f64(),
            self.seed,
            peak_kib.map_or("unknown".into(), |k| (k / 1024).to_string()),
        );
        eprintln!("{line}");
        if self.budget.is_some() {
            let limit_mib = env_u64("FUZZ_MAX_RSS_MB").unwrap_or(512);
            let peak = peak_kib.expect("peak RSS from /proc/self/status");
            assert!(
                peak / 1024 <= limit_mib,
                "fuzz {}: peak RSS {} MiB is over the {limit_mib} MiB limit",
                self.target,
                peak / 1024
            );
        }
    }
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?}: expected a whole number")),
    )
}

/// A stable 64-bit hash of a name, so each target and property has its own default seed.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Resets the process's peak RSS (`VmHWM`) so the report covers this target only.
fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux >= 4.0); without it the peak covers the
    // whole process, which only overstates.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS in KiB (`VmHWM` of /proc/self/status).
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// S3 settings as a configured server has them: the base a Secret's settings are resolved on.
pub(crate) fn s3_base() -> crate::config::desired::S3Settings {
    use crate::config::layer::{Layer, RawValue, Source};
    let mut layer = Layer::new();
    layer.set("etcd-s3", RawValue::Bool(true), Source::Default);
    layer.set(
        "etcd-s3-bucket",
        RawValue::String("b".into()),
        Source::Default,
    );
    let host = crate::config::resolve::HostFacts {
        hostname: Some("n".into()),
    };
    let resolved = crate::config::resolve::resolve_with(&[&layer], &host);
    resolved.expect("base S3 config").config.s3.expect("S3 on")
}

/// One edit of a byte string, positions given as fractions of its length.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    /// Overwrites 4 bytes with a little-endian u32 (sizes, counts and offsets in binary formats).
    SetU32(prop::sample::Index, u32),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    /// Copies a slice of the input to another place (repeated structures, shifted offsets).
    Duplicate(prop::sample::Index, prop::sample::Index, usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    let interesting_u32 = prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(0x7fff_ffff),
        Just(0xffff),
        any::<u32>(),
    ];
    prop_oneof![
        4 => (index(), 0u8..8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        3 => (index(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        3 => (index(), interesting_u32).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        1 => index().prop_map(Mutation::Truncate),
        2 => (index(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (index(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (index(), index(), 1usize..256).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

impl Mutation {
    pub(crate) fn apply(&self, data: &mut Vec<u8>) {
        let at = |i: &prop::sample::Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        let len = data.len();
        match self {
            Mutation::FlipBit(i, bit) if len > 0 => data[at(i, len)] ^= 1 << bit,
            Mutation::SetByte(i, b) if len > 0 => data[at(i, len)] = *b,
            Mutation::SetU32(i, v) if len >= 4 => {
                let start = at(i, len - 3);
                data[start..start + 4].copy_from_slice(&v.to_le_bytes());
            }
            Mutation::Truncate(i) => data.truncate(at(i, len)),
            Mutation::Insert(i, bytes) => {
                let start = at(i, len + 1);
                data.splice(start..start, bytes.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let start = at(i, len);
                data.drain(start..(start + n).min(len));
            }
            Mutation::Duplicate(from, to, n) if len > 0 => {
                let start = at(from, len);
                let piece = data[start..(start + n).min(len)].to_vec();
                let to = at(to, len + 1);
                data.splice(to..to, piece);
            }
            Mutation::Extend(bytes) => data.extend_from_slice(bytes),
            _ => {}
        }
    }
}

/// A valid sample with 1 to 8 mutations applied: (the mutated bytes, the mutations).
pub(crate) fn mutated(sample: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Vec<Mutation>)> {
    prop::collection::vec(mutation(), 1..8).prop_map(move |edits| {
        let mut data = sample.clone();
        for edit in &edits {
            edit.apply(&mut data);
        }
        (data, edits)
    })
}

/// [`mutated`] for text formats: the mutated bytes read as (lossy) UTF-8.
pub(crate) fn mutated_text(sample: &str) -> impl Strategy<Value = String> + use<> {
    mutated(sample.as_bytes().to_vec())
        .prop_map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
}

/// Text that is mostly printable but reaches every class of character parsers trip over.
pub(crate) fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(hostile_char(), 0..max)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
        1 => any::<String>(),
    ]
}

fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => prop::char::range('0', '9'),
        3 => prop::sample::select(vec![
            '-', '.', '/', '\\', ':', ',', ' ', '\t', '\n', '\r', '\0', '"', '\'', '#', '{', '}',
            '[', ']', '&', '*', '!', '|', '>', '%', '@', '=', '?', '+', '_', '~', '\u{7f}',
            '\u{1b}', 'é', 'µ', '\u{200b}', '\u{feff}', '\u{10ffff}',
        ]),
        1 => any::<char>(),
    ]
}
