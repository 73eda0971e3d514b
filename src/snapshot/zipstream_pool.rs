//! The block scheduler of the parallel zip writer: a few worker threads take numbered jobs from
//! a bounded queue, and their results come back in the order the jobs were sent, whatever order
//! the workers finish them in (`Reorder`, pure). The caller decides how many jobs may be in
//! flight, so memory stays a few blocks however long the input. Every job yields a result: an
//! error, or a panic caught in the worker and turned into an error, surfaces on the caller's
//! next read instead of leaving it waiting for a block that never comes. Dropping the pool
//! closes the queue and joins the workers, so no thread outlives the writer. It knows nothing
//! about Deflate: the work is a closure each worker builds once.

use std::collections::BTreeMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Results that arrived out of order, held until every earlier one has been handed out.
#[derive(Debug)]
pub(super) struct Reorder<O> {
    /// Sequence number of the next result to hand out.
    next: u64,
    waiting: BTreeMap<u64, O>,
}

impl<O> Default for Reorder<O> {
    fn default() -> Self {
        Self {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<O> Reorder<O> {
    /// Takes the result of job `seq`. A sequence number already handed out or already held is
    /// a scheduler bug, not an input error, so it panics rather than losing a block silently.
    pub(super) fn push(&mut self, seq: u64, item: O) {
        assert!(seq >= self.next, "job {seq} finished twice");
        let previous = self.waiting.insert(seq, item);
        assert!(previous.is_none(), "job {seq} finished twice");
    }

    /// The next result in order, if it has arrived.
    pub(super) fn pop(&mut self) -> Option<O> {
        let item = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(item)
    }

    /// How many results have been handed out.
    pub(super) fn handed_out(&self) -> u64 {
        self.next
    }
}

type Job<J> = (u64, J);
type Done<O> = (u64, io::Result<O>);

/// The worker threads, their queue, and the results not yet handed out.
pub(super) struct Pool<J, O> {
    jobs: Option<SyncSender<Job<J>>>,
    results: Receiver<Done<O>>,
    workers: Vec<JoinHandle<()>>,
    sent: u64,
    order: Reorder<O>,
}

impl<J: Send + 'static, O: Send + 'static> Pool<J, O> {
    /// Starts `workers` threads (at least one) named `name-<i>`; each runs the closure `make`
    /// builds for it (so a worker can keep its compressors from job to job).
    pub(super) fn start<F, W>(workers: usize, name: &str, make: F) -> io::Result<Self>
    where
        F: Fn() -> W,
        W: FnMut(J) -> io::Result<O> + Send + 'static,
    {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job<J>>(workers);
        let queue = Arc::new(Mutex::new(queue));
        let (done, results) = mpsc::channel();
        let mut pool = Self {
            jobs: Some(jobs),
            results,
            workers: Vec::with_capacity(workers),
            sent: 0,
            order: Reorder::default(),
        };
        for i in 0..workers {
            let (queue, done, run) = (Arc::clone(&queue), done.clone(), make());
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&queue, &done, run))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Jobs sent whose results have not been handed out (running, queued or held in order).
    pub(super) fn in_flight(&self) -> usize {
        usize::try_from(self.sent - self.order.handed_out()).unwrap_or(usize::MAX)
    }

    pub(super) fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Queues a job; waits while the queue is full (one job per worker).
    pub(super) fn send(&mut self, job: J) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((self.sent, job)).map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    /// The next result in order, waiting for it; `None` once nothing is in flight.
    pub(super) fn next(&mut self) -> io::Result<Option<O>> {
        loop {
            if let Some(item) = self.order.pop() {
                return Ok(Some(item));
            }
            if self.in_flight() == 0 {
                return Ok(None);
            }
            let (seq, result) = self.results.recv().map_err(|_| stopped())?;
            self.order.push(seq, result?);
        }
    }

    /// The next result in order if it is already there; never waits.
    pub(super) fn try_next(&mut self) -> io::Result<Option<O>> {
        loop {
            if let Some(item) = self.order.pop() {
                return Ok(Some(item));
            }
            match self.results.try_recv() {
                Ok((seq, result)) => self.order.push(seq, result?),
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Disconnected) => return Err(stopped()),
            }
        }
    }
}

impl<J, O> Pool<J, O> {
    /// Closes the queue and joins the workers (each finishes the job it holds first).
    pub(super) fn stop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            // Panics are caught inside the worker; a join error cannot carry anything more.
            let _ = handle.join();
        }
    }
}

impl<J, O> Drop for Pool<J, O> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stopped() -> io::Error {
    io::Error::other("failed to compress snapshot block: the compression workers stopped")
}

/// A worker: runs jobs until the queue closes or nobody reads results. A panicking job becomes
/// that job's error and ends the worker, whose state may be half-updated.
fn work<J, O>(
    queue: &Mutex<Receiver<Job<J>>>,
    done: &Sender<Done<O>>,
    mut run: impl FnMut(J) -> io::Result<O>,
) {
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((seq, job)) = next else { return };
        let (result, panicked) = match catch_unwind(AssertUnwindSafe(|| run(job))) {
            Ok(result) => (result, false),
            Err(panic) => (Err(panicked_error(seq, panic.as_ref())), true),
        };
        if done.send((seq, result)).is_err() || panicked {
            return;
        }
    }
}

fn panicked_error(seq: u64, panic: &(dyn std::any::Any + Send)) -> io::Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    io::Error::other(format!(
        "failed to compress snapshot block {seq}: its worker panicked: {message}"
    ))
}

#[cfg(test)]
#[path = "zipstream_pool_tests.rs"]
mod tests;
