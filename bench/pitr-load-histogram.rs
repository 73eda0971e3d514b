//! The load generator's latency histogram: log-linear buckets of microseconds (32 per power of
//! two, so a quantile is within about 3% and never below the true value), bounded memory however
//! long the run.

use std::time::Duration;

/// Latencies in microseconds, log-linear buckets (32 per power of two, so within about 3%):
/// bounded memory however long the run.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    /// The largest value recorded, in microseconds.
    pub max: u64,
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; 64 + 58 * 32],
            max: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 64 {
            return us as usize;
        }
        let exp = 63 - us.leading_zeros() as usize;
        64 + (exp - 6) * 32 + ((us >> (exp - 5)) & 31) as usize
    }

    /// The largest value a bucket holds (a percentile is never understated).
    fn upper(bucket: usize) -> u64 {
        if bucket < 64 {
            return bucket as u64;
        }
        let (exp, sub) = ((bucket - 64) / 32 + 6, ((bucket - 64) % 32) as u128);
        // u128: the top bucket's bound is 2^64 - 1.
        let upper = ((32 + sub + 1) << (exp - 5)) - 1;
        u64::try_from(upper).unwrap_or(u64::MAX)
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(us)] += 1;
        self.max = self.max.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper(bucket).min(self.max) as f64 / 1000.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_quantiles_are_within_its_resolution_and_never_below() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, exact) in [(0.5, 5.0), (0.99, 9.9), (1.0, 10.0)] {
            let got = h.quantile_ms(q);
            assert!(
                got >= exact && got <= exact * 1.04,
                "q{q}: {got} vs {exact}"
            );
        }
        let mut other = Histogram::new();
        other.record(Duration::from_secs(3));
        h.merge(&other);
        assert_eq!(h.quantile_ms(1.0), 3000.0);
        assert_eq!(Histogram::new().quantile_ms(0.99), 0.0);
        for us in [63, 64, 65, 1 << 20, u64::MAX] {
            let b = Histogram::bucket(us);
            assert!(
                Histogram::upper(b) >= us && b < Histogram::new().counts.len(),
                "{us}"
            );
        }
    }
}
