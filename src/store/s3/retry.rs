//! Retried upload of a finished snapshot file: the fallback when a streamed upload was cut off,
//! and the path for uploads that start after the save.
//!
//! Only failures that may go away on their own (`S3Error::is_retryable`) are retried, with
//! exponential backoff and jitter so nodes sharing an endpoint do not retry in lockstep. The
//! delay schedule is a pure function of the policy and a seed. Each retry is logged with the
//! error chain, which never holds credentials. The SDK's own per-request retries still apply
//! underneath; this layer restarts the whole upload.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::Duration;

use super::error::S3Error;
use super::store::{ObjectMetadata, S3Store, UploadedObject};
use super::upload::sha256_file;
use crate::errors::error_chain;

/// How often and how patiently a failed upload is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 means no retry).
    pub attempts: u32,
    /// Wait before the second attempt.
    pub first_delay: Duration,
    /// Each later wait is this many times the previous one.
    pub multiplier: u32,
    /// No single wait is longer than this, jitter included.
    pub max_delay: Duration,
    /// Each wait is scaled by a random factor in `[1 - jitter, 1 + jitter]` (0 to 1).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting about 1 s and then about 4 s: a blip is ridden out, a real outage
    /// fails the upload within seconds instead of holding the save.
    fn default() -> Self {
        Self {
            attempts: 3,
            first_delay: Duration::from_secs(1),
            multiplier: 4,
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

/// The waits between attempts (`attempts - 1` of them), exponential and jittered. The same
/// `seed` gives the same schedule.
pub fn backoff_delays(policy: &RetryPolicy, seed: u64) -> Vec<Duration> {
    let jitter = policy.jitter.clamp(0.0, 1.0);
    let mut base = policy.first_delay.min(policy.max_delay);
    let mut state = seed;
    (1..policy.attempts.max(1))
        .map(|_| {
            let unit = unit_interval(splitmix64(&mut state));
            let factor = 1.0 - jitter + 2.0 * jitter * unit;
            let delay = base.mul_f64(factor).min(policy.max_delay);
            base = base.saturating_mul(policy.multiplier).min(policy.max_delay);
            delay
        })
        .collect()
}

/// Runs `operation` until it succeeds, fails with a non-retryable error, or the policy's
/// attempts are used up; sleeps the given delays in between.
pub async fn retry<T, F, Fut>(
    what: &str,
    policy: &RetryPolicy,
    delays: &[Duration],
    mut operation: F,
) -> Result<T, S3Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S3Error>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1u32;
    loop {
        let error = match operation().await {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(
                        what,
                        attempt,
                        attempts,
                        "S3 request succeeded after retrying"
                    );
                }
                return Ok(value);
            }
            Err(e) => e,
        };
        let delay = usize::try_from(attempt - 1)
            .ok()
            .and_then(|i| delays.get(i));
        match delay {
            Some(delay) if error.is_retryable() && attempt < attempts => {
                tracing::warn!(
                    what,
                    attempt,
                    attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %error_chain(&error),
                    "S3 request failed; retrying"
                );
                tokio::time::sleep(*delay).await;
                attempt += 1;
            }
            _ => return Err(error),
        }
    }
}

impl S3Store {
    /// `upload_file` retried per `policy` on retryable failures (network, timeouts, throttling,
    /// server errors). The file's sha256 is computed once, not per attempt.
    pub async fn upload_file_with_retry(
        &self,
        path: &Path,
        name: &str,
        metadata: &ObjectMetadata,
        policy: RetryPolicy,
    ) -> Result<UploadedObject, S3Error> {
        let mut metadata = metadata.clone();
        if metadata.sha256.is_none() {
            metadata.sha256 = Some(sha256_file(path).await?);
        }
        let delays = backoff_delays(&policy, random_seed());
        let what = format!("upload of {name}");
        retry(&what, &policy, &delays, || {
            self.upload_file(path, name, &metadata)
        })
        .await
    }
}

/// A per-call random seed from the standard library's randomly keyed hasher (no extra crate).
pub(super) fn random_seed() -> u64 {
    std::hash::RandomState::new().build_hasher().finish()
}

/// One step of SplitMix64: a small, well-mixed generator, plenty for spreading retries.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits onto `[0, 1)`.
fn unit_interval(bits: u64) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn default_policy_waits_about_one_then_four_seconds() {
        let policy = RetryPolicy::default();
        for seed in 0..200 {
            let delays = backoff_delays(&policy, seed);
            assert_eq!(delays.len(), 2);
            assert!(
                delays[0] >= Duration::from_millis(800) && delays[0] <= Duration::from_millis(1200),
                "{delays:?}"
            );
            assert!(
                delays[1] >= Duration::from_millis(3200)
                    && delays[1] <= Duration::from_millis(4800),
                "{delays:?}"
            );
        }
    }

    #[test]
    fn jitter_varies_with_the_seed_and_is_repeatable() {
        let policy = RetryPolicy::default();
        assert_eq!(backoff_delays(&policy, 7), backoff_delays(&policy, 7));
        let distinct: std::collections::HashSet<Duration> = (0..50)
            .map(|seed| backoff_delays(&policy, seed)[0])
            .collect();
        assert!(distinct.len() > 40, "jitter spreads retries: {distinct:?}");
    }

    #[test]
    fn delays_are_capped_and_zero_jitter_is_exact() {
        let policy = RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_secs(1),
            multiplier: 4,
            max_delay: Duration::from_secs(10),
            jitter: 0.0,
        };
        let secs: Vec<u64> = backoff_delays(&policy, 1)
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(secs, [1, 4, 10, 10, 10]);
        let capped = RetryPolicy {
            jitter: 1.0,
            ..policy
        };
        assert!(
            backoff_delays(&capped, 3)
                .iter()
                .all(|d| *d <= Duration::from_secs(10))
        );
    }

    #[test]
    fn one_attempt_or_zero_means_no_waits() {
        for attempts in [0, 1] {
            let policy = RetryPolicy {
                attempts,
                ..RetryPolicy::default()
            };
            assert!(backoff_delays(&policy, 9).is_empty());
        }
    }

    fn timeout() -> S3Error {
        S3Error::Timeout {
            endpoint: "http://s3.test".into(),
            timeout: Duration::from_secs(1),
        }
    }

    fn quick(attempts: u32) -> (RetryPolicy, Vec<Duration>) {
        let policy = RetryPolicy {
            attempts,
            first_delay: Duration::from_millis(1),
            multiplier: 2,
            max_delay: Duration::from_millis(5),
            jitter: 0.0,
        };
        let delays = backoff_delays(&policy, 0);
        (policy, delays)
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_success() {
        let (policy, delays) = quick(3);
        let calls = AtomicU32::new(0);
        let result = retry("test", &policy, &delays, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(timeout()),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let (policy, delays) = quick(3);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry("test", &policy, &delays, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(timeout())
        })
        .await;
        assert!(matches!(result, Err(S3Error::Timeout { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_failures_are_not_retried() {
        let (policy, delays) = quick(3);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry("test", &policy, &delays, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(S3Error::ObjectNotFound {
                bucket: "b".into(),
                key: "k".into(),
            })
        })
        .await;
        assert!(result.unwrap_err().is_not_found());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
