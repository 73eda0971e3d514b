//! Tests of the block scheduler: results come back in the order jobs were sent whatever order
//! the workers finish them in, a failing or panicking job surfaces as an error (never a wait
//! that does not end), and dropping the pool joins its threads.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::*;

#[test]
fn reorder_hands_out_in_sequence_whatever_the_arrival_order() {
    let mut order = Reorder::default();
    assert_eq!(order.pop(), None::<&str>);
    order.push(2, "c");
    order.push(1, "b");
    assert_eq!(order.pop(), None, "0 has not arrived");
    order.push(0, "a");
    assert_eq!(order.pop(), Some("a"));
    assert_eq!(order.pop(), Some("b"));
    assert_eq!(order.pop(), Some("c"));
    assert_eq!(order.pop(), None);
    assert_eq!(order.handed_out(), 3);
    order.push(4, "e");
    assert_eq!(order.pop(), None, "3 is missing");
    order.push(3, "d");
    assert_eq!((order.pop(), order.pop()), (Some("d"), Some("e")));
}

#[test]
#[should_panic(expected = "job 0 finished twice")]
fn reorder_rejects_a_result_already_handed_out() {
    let mut order = Reorder::default();
    order.push(0, ());
    order.pop();
    order.push(0, ());
}

/// A flag one job raises and another waits for, with a bound so a failure cannot hang.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait(&self) -> bool {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .unwrap();
        *guard
    }
}

#[test]
fn results_come_back_in_send_order_when_a_later_job_finishes_first() {
    // Job 0 cannot finish before job 1 has: the other worker must run job 1 meanwhile.
    let gate = Arc::new(Gate::default());
    let finished = Arc::new(Mutex::new(Vec::new()));
    let (g, f) = (Arc::clone(&gate), Arc::clone(&finished));
    let mut pool = Pool::start(2, "test-order", move || {
        let (gate, finished) = (Arc::clone(&g), Arc::clone(&f));
        move |job: u64| {
            if job == 0 && !gate.wait() {
                return Err(io::Error::other("job 1 never finished"));
            }
            finished.lock().unwrap().push(job);
            if job == 1 {
                gate.open();
            }
            Ok(job * 10)
        }
    })
    .unwrap();
    for job in 0..6 {
        pool.send(job).unwrap();
    }
    let mut got = Vec::new();
    while let Some(result) = pool.next().unwrap() {
        got.push(result);
    }
    assert_eq!(got, [0, 10, 20, 30, 40, 50]);
    let finished = finished.lock().unwrap();
    assert_eq!(
        finished.first(),
        Some(&1),
        "job 1 finished first: {finished:?}"
    );
    assert_eq!(pool.in_flight(), 0);
}

#[test]
fn a_failing_job_surfaces_its_error() {
    let mut pool = Pool::start(2, "test-error", || {
        |job: u32| match job {
            3 => Err(io::Error::other("failed to deflate block: test")),
            _ => Ok(job),
        }
    })
    .unwrap();
    for job in 0..8 {
        pool.send(job).unwrap();
    }
    let mut got = Vec::new();
    let err = loop {
        match pool.next() {
            Ok(Some(result)) => got.push(result),
            Ok(None) => panic!("every job succeeded: {got:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.to_string(), "failed to deflate block: test");
    // An error is returned as soon as it arrives, before blocks still ahead of it in order.
    assert!(
        [0, 1, 2].starts_with(&got),
        "only blocks before the failed one: {got:?}"
    );
}

#[test]
fn a_panicking_job_is_an_error_not_a_hang() {
    let mut pool = Pool::start(2, "test-panic", || {
        |job: u32| {
            assert!(job != 1, "broken block");
            Ok(job)
        }
    })
    .unwrap();
    for job in 0..4 {
        pool.send(job).unwrap();
    }
    assert_eq!(pool.next().unwrap(), Some(0));
    let err = pool.next().unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to compress snapshot block 1: its worker panicked: broken block"
    );
    // The surviving worker still runs the rest; dropping the pool joins both threads.
    drop(pool);
}

#[test]
fn try_next_never_waits_and_drop_joins_every_worker() {
    let gate = Arc::new(Gate::default());
    let alive = Arc::new(AtomicUsize::new(0));
    let (g, a) = (Arc::clone(&gate), Arc::clone(&alive));
    let mut pool = Pool::start(3, "test-drop", move || {
        let (gate, alive) = (Arc::clone(&g), Arc::clone(&a));
        alive.fetch_add(1, Ordering::SeqCst);
        // Counts the worker's closure out when its thread ends and drops it.
        let guard = Alive(Arc::clone(&alive));
        move |job: u32| {
            let _ = &guard;
            gate.wait();
            Ok(job)
        }
    })
    .unwrap();
    assert_eq!(pool.workers(), 3);
    pool.send(0).unwrap();
    assert_eq!(pool.try_next().unwrap(), None, "job 0 waits at the gate");
    gate.open();
    assert_eq!(pool.next().unwrap(), Some(0));
    assert_eq!(pool.next().unwrap(), None, "nothing in flight");
    drop(pool);
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every worker ended");
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
