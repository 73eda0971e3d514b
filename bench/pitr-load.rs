//! The point-in-time benchmark's load generator (`bench/pitr-bench.sh`): writes `events` puts of
//! `value-bytes` each to a plain-HTTP etcd as fast as `concurrency` connections allow (every
//! put is its own revision, as most Kubernetes writes are), then prints one line:
//! `<events> <seconds> <last revision>`.
//!
//!   cargo build --release --bin etcd-snapshot-pitr-load
//!   target/release/etcd-snapshot-pitr-load <endpoint> <events> <value-bytes> <concurrency>
//!
//! Not part of the product: a fixed, repeatable writer so the replay can be compared with the
//! rate the events were written at.

use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, events, value_bytes, concurrency] = args.as_slice() else {
        eprintln!("usage: etcd-snapshot-pitr-load <endpoint> <events> <value-bytes> <concurrency>");
        std::process::exit(2);
    };
    let parse = |s: &str| s.parse::<usize>().expect("a whole number");
    let (events, value_bytes, concurrency) =
        (parse(events), parse(value_bytes), parse(concurrency).max(1));
    let value = "v".repeat(value_bytes);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .expect("connect");
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            // 4096 distinct keys: puts of existing keys, as updates of objects are.
            for i in (worker..events).step_by(concurrency) {
                let key = format!("/bench/pitr/{:04}", i % 4096);
                let put = client.put(key, value.as_str(), None).await.expect("put");
                last = put.header().map_or(0, |h| h.revision());
            }
            last
        }));
    }
    let mut last = 0;
    for task in tasks {
        last = last.max(task.await.expect("writer"));
    }
    println!("{events} {:.3} {last}", started.elapsed().as_secs_f64());
}
