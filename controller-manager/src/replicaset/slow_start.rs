//! Kubernetes' `slowStartBatch` (pkg/controller/replicaset): a controller
//! that must make many identical calls (pod creations) makes them in
//! batches of 1, 2, 4, 8 … each batch concurrently, and stops after the
//! first batch with a failure. A call that is bound to fail (quota,
//! admission, a terminating namespace) then costs one request and one
//! event rather than hundreds.

use std::future::Future;

/// What a slow start did: the results of the calls it made, batch by
/// batch in call order, and how many calls it skipped after a failure.
#[derive(Debug)]
pub struct Outcome<T, E> {
    pub results: Vec<Result<T, E>>,
    pub skipped: usize,
}

impl<T, E> Outcome<T, E> {
    pub fn successes(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// Calls `call` `count` times in batches starting at `initial` and
/// doubling while every call of a batch succeeds. Each batch runs
/// concurrently and is finished before the next starts.
pub async fn slow_start_batch<T, E, F, Fut>(
    count: usize,
    initial: usize,
    mut call: F,
) -> Outcome<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut results = Vec::with_capacity(count);
    let mut remaining = count;
    let mut batch = initial.max(1).min(remaining);
    while batch > 0 {
        let done = futures::future::join_all((0..batch).map(|_| call())).await;
        let failed = done.iter().any(Result::is_err);
        results.extend(done);
        remaining -= batch;
        if failed {
            break;
        }
        batch = (2 * batch).min(remaining);
    }
    Outcome {
        results,
        skipped: remaining,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Records, per call, how many calls were in flight when it started.
    struct Probe {
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        peaks: Mutex<Vec<usize>>,
        fail_at: Option<usize>,
    }

    impl Probe {
        fn new(fail_at: Option<usize>) -> Probe {
            Probe {
                calls: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                peaks: Mutex::new(Vec::new()),
                fail_at,
            }
        }

        async fn call(&self) -> Result<usize, String> {
            let i = self.calls.fetch_add(1, Ordering::SeqCst);
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            // Every call of a batch starts before any of them ends.
            tokio::task::yield_now().await;
            let peak = self.in_flight.load(Ordering::SeqCst);
            self.peaks.lock().map(|mut p| p.push(peak)).ok();
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail_at == Some(i) {
                Err(format!("call {i} refused"))
            } else {
                Ok(i)
            }
        }

        fn peaks(&self) -> Vec<usize> {
            self.peaks.lock().map(|p| p.clone()).unwrap_or_default()
        }
    }

    /// Batch sizes as seen from inside: runs of equal in-flight peaks.
    fn batches(peaks: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < peaks.len() {
            out.push(peaks[i]);
            i += peaks[i].max(1);
        }
        out
    }

    #[tokio::test]
    async fn batches_double_from_one_and_run_concurrently() {
        let probe = Probe::new(None);
        let out = slow_start_batch(20, 1, || probe.call()).await;
        assert_eq!(out.successes(), 20);
        assert_eq!(out.skipped, 0);
        assert_eq!(batches(&probe.peaks()), vec![1, 2, 4, 8, 5]);
        let order: Vec<usize> = out.results.into_iter().flatten().collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failure_finishes_its_batch_and_skips_the_rest() {
        // Call 4 is in the third batch (calls 3..7).
        let probe = Probe::new(Some(4));
        let out = slow_start_batch(100, 1, || probe.call()).await;
        assert_eq!(probe.calls.load(Ordering::SeqCst), 7);
        assert_eq!(out.results.len(), 7);
        assert_eq!(out.successes(), 6);
        assert_eq!(out.skipped, 93);
        assert_eq!(batches(&probe.peaks()), vec![1, 2, 4]);
    }

    #[tokio::test]
    async fn nothing_to_do_makes_no_call() {
        let probe = Probe::new(None);
        let out = slow_start_batch(0, 1, || probe.call()).await;
        assert!(out.results.is_empty());
        assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
    }
}
