//! The point-in-time benchmarks' load generator (`bench/pitr-bench.sh`, `bench/pitr-lag.sh`):
//! writes to a plain-HTTP etcd over `concurrency` connections, values of `value-bytes` each
//! (every request is its own revision, as most Kubernetes writes are), then prints one line:
//! `<requests> <seconds> <last revision>`.
//!
//!   cargo build --release --bin etcd-snapshot-pitr-load
//!   target/release/etcd-snapshot-pitr-load <endpoint> <events> <value-bytes> <concurrency> \
//!     [--rate N] [--duration SECS] [--mix put=P,delete=P,txn=P,lease=P] [--values repeat|hex]
//!     [--stats]
//!
//! Without options it writes `events` puts as fast as the connections allow. `--rate` paces the
//! requests evenly over the connections (request i is due at start + i/N, a late one goes at
//! once), `--duration` stops after SECS (`events` 0: no other limit), `--mix` sets the share in
//! percent of each kind of request: puts of 4,096 keys (updates of objects), deletes of those
//! keys, transactions of two puts and a delete (up to three events in one revision), and puts bound to
//! a short lease that is never kept alive (etcd deletes the keys when it expires, as it does
//! Kubernetes events). Values are one letter repeated unless `--values hex`: 64 distinct values
//! of random hex text (half their size once compressed, about as much as Kubernetes objects; a
//! compressed segment of repeated letters would understate the bytes). `--stats` adds a second
//! line of `key=value` pairs: the achieved rate, the latency percentiles (from when each request
//! was due when paced, so a stall counts for every request it delayed; `service_p99_ms` from
//! when it was sent) and the requests of each kind.
//!
//! Not part of the product: a fixed, repeatable writer so the replay and the capture can be
//! measured against a known load.

use std::time::{Duration, Instant};

use etcd_client::{Client, PutOptions, Txn, TxnOp};

#[path = "pitr-load-histogram.rs"]
mod histogram;
use histogram::Histogram;

#[path = "pitr-load-args.rs"]
mod args;
use args::{KINDS, Kind, Options, parse_args};

/// Distinct keys: most requests update an existing object.
const KEYS: usize = 4096;
/// Seconds a lease lives; never renewed, so its keys are deleted by etcd within the run.
const LEASE_TTL: i64 = 10;
/// Lease-bound puts per lease before a worker grants a fresh one.
const PUTS_PER_LEASE: u32 = 100;

/// What one connection did.
struct Tally {
    last_revision: i64,
    kinds: [u64; 4],
    /// From when each request was due (a stall counts for every request it delayed).
    due: Histogram,
    /// From when each request was sent.
    service: Histogram,
}

struct Worker {
    client: Client,
    id: usize,
    lease: Option<(i64, u32)>,
}

impl Worker {
    /// Sends request number `i`; returns the revision etcd answered with.
    async fn send(&mut self, kind: Kind, i: usize, value: &str) -> Result<i64, etcd_client::Error> {
        let key = |n: usize| format!("/bench/pitr/{:04}", n % KEYS);
        let header = match kind {
            Kind::Put => self.client.put(key(i), value, None).await?.take_header(),
            Kind::Delete => self.client.delete(key(i), None).await?.take_header(),
            Kind::Txn => {
                let ops = [
                    TxnOp::put(key(i), value, None),
                    TxnOp::put(key(i + 1), value, None),
                    TxnOp::delete(key(i + 2), None),
                ];
                self.client
                    .txn(Txn::new().and_then(ops))
                    .await?
                    .take_header()
            }
            Kind::Lease => {
                let (lease, uses) = match self.lease {
                    Some((id, uses)) if uses < PUTS_PER_LEASE => (id, uses),
                    _ => (self.client.lease_grant(LEASE_TTL, None).await?.id(), 0),
                };
                self.lease = Some((lease, uses + 1));
                let options = PutOptions::new().with_lease(lease);
                let key = format!("/bench/pitr/lease/{}/{:04}", self.id, i % KEYS);
                self.client
                    .put(key, value, Some(options))
                    .await?
                    .take_header()
            }
        };
        Ok(header.map_or(0, |h| h.revision()))
    }
}

/// Runs one connection's share: requests `id`, `id + concurrency`, ... until the limits.
async fn run_worker(
    mut worker: Worker,
    options: &Options,
    start: Instant,
    values: &[String],
) -> Tally {
    let mut tally = Tally {
        last_revision: 0,
        kinds: [0; 4],
        due: Histogram::new(),
        service: Histogram::new(),
    };
    let deadline = options.duration.map(|d| start + d);
    for i in (worker.id..).step_by(options.concurrency) {
        if options.events > 0 && i >= options.events {
            break;
        }
        let due = match options.rate {
            Some(rate) => start + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        if deadline.is_some_and(|d| due.max(Instant::now()) >= d) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let kind = options.mix.kind(i);
        let sent = Instant::now();
        let value = &values[i % values.len()];
        let revision = worker.send(kind, i, value).await.unwrap_or_else(|e| {
            eprintln!(
                "etcd-snapshot-pitr-load: a {kind:?} request to {} failed: {e}",
                options.endpoint
            );
            std::process::exit(1)
        });
        let done = Instant::now();
        tally.service.record(done - sent);
        tally.due.record(done - due);
        tally.last_revision = tally.last_revision.max(revision);
        tally.kinds[KINDS.iter().position(|(_, k)| *k == kind).unwrap_or(0)] += 1;
    }
    tally
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = parse_args(&args).unwrap_or_else(|message| {
        eprintln!("etcd-snapshot-pitr-load: {message}");
        std::process::exit(2)
    });
    let mut workers = Vec::new();
    for id in 0..options.concurrency {
        let client = Client::connect([options.endpoint.as_str()], None)
            .await
            .unwrap_or_else(|e| {
                eprintln!(
                    "etcd-snapshot-pitr-load: failed to connect to {}: {e}",
                    options.endpoint
                );
                std::process::exit(1)
            });
        workers.push(Worker {
            client,
            id,
            lease: None,
        });
    }
    let options = std::sync::Arc::new(options);
    let values = std::sync::Arc::new(make_values(options.value_bytes, options.hex_values));
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            let (options, values) = (options.clone(), values.clone());
            tokio::spawn(async move { run_worker(worker, &options, start, &values).await })
        })
        .collect();
    let mut total = Tally {
        last_revision: 0,
        kinds: [0; 4],
        due: Histogram::new(),
        service: Histogram::new(),
    };
    for task in tasks {
        let tally = task.await.expect("a writer panicked");
        total.last_revision = total.last_revision.max(tally.last_revision);
        for (a, b) in total.kinds.iter_mut().zip(tally.kinds) {
            *a += b;
        }
        total.due.merge(&tally.due);
        total.service.merge(&tally.service);
    }
    let seconds = start.elapsed().as_secs_f64();
    let requests: u64 = total.kinds.iter().sum();
    println!("{requests} {seconds:.3} {}", total.last_revision);
    if options.stats {
        println!("{}", stats_line(&total, requests, seconds));
    }
}

/// The values requests cycle through: one letter repeated, or 64 of random hex text (a fixed
/// seed: every run writes the same bytes).
fn make_values(bytes: usize, hex: bool) -> Vec<String> {
    if !hex {
        return vec!["v".repeat(bytes)];
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64: plenty for incompressible-looking text.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..64)
        .map(|_| {
            (0..bytes)
                .map(|_| char::from(b"0123456789abcdef"[(next() & 15) as usize]))
                .collect()
        })
        .collect()
}

/// The `--stats` line: `rate=… p50_ms=… p99_ms=… max_ms=… service_p99_ms=… put=… …`.
fn stats_line(total: &Tally, requests: u64, seconds: f64) -> String {
    let mut line = format!(
        "rate={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} service_p99_ms={:.2}",
        requests as f64 / seconds.max(0.001),
        total.due.quantile_ms(0.50),
        total.due.quantile_ms(0.99),
        total.due.max as f64 / 1000.0,
        total.service.quantile_ms(0.99),
    );
    for ((name, _), count) in KINDS.iter().zip(total.kinds) {
        line.push_str(&format!(" {name}={count}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_values_are_distinct_and_of_the_asked_size() {
        let values = make_values(1024, true);
        assert_eq!(values.len(), 64);
        assert!(values.iter().all(|v| v.len() == 1024));
        assert_eq!(
            values
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            64
        );
        assert_eq!(make_values(1024, false), ["v".repeat(1024)]);
    }
}
