//! Running a cycle's per-node work on several threads, as kube-scheduler's
//! `parallelize.Parallelizer` fans Filter and Score out over `parallelism`
//! goroutines in chunks of nodes.
//!
//! A cycle lasts about a hundred microseconds, and spawning a thread costs
//! as much (measured ~150 µs per `std::thread::scope` with one spawn on the
//! shared 2-core machine), so the helpers are long-lived: `parallelism - 1`
//! threads started on first use, parked on a condition variable between
//! cycles. The scheduling thread posts a [`Task`] once per helper and works
//! on it itself; every participant claims chunks of the node range from an
//! atomic counter, so a helper that wakes late finds nothing left and the
//! cycle never waits for a busy core. Tasks own what they read (the pod
//! behind an `Arc`, the cycle state moved in and handed back), so no
//! borrow has to outlive the call and no `unsafe` is needed.

use std::any::Any;
use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Cycles that look at fewer nodes than this run on the scheduling thread
/// alone. Measured with `bench scheduler --algorithm-only --parallelism 2
/// --parallel-min-nodes 0 --percentage-of-nodes-to-score P` on the shared
/// 2-core machine (README): with its cores oversubscribed, two threads lost
/// to one at every size up to 5,000 nodes per cycle (a helper preempted
/// mid-chunk holds the cycle up). So the default profile stays on one
/// thread below 20,000 nodes (its adaptive share looks at 781 nodes at
/// most there); bigger clusters, and profiles asking for a larger share,
/// use the pool.
pub const DEFAULT_MIN_NODES: usize = 1_000;

/// Work one cycle shares out: each participant calls [`Task::work`], which
/// claims chunks until none are left (or enough was found).
pub trait Task: Send + Sync + 'static {
    fn work(&self);
}

/// Hands out consecutive chunks of `0..len`, lowest first: whatever was
/// claimed, the claimed chunks always form a prefix of the range.
pub struct Chunks {
    next: AtomicUsize,
    size: usize,
    len: usize,
}

impl Chunks {
    pub fn new(len: usize, size: usize) -> Chunks {
        Chunks {
            next: AtomicUsize::new(0),
            size: size.max(1),
            len,
        }
    }

    /// The next unclaimed chunk: its number and its index range.
    pub fn claim(&self) -> Option<(usize, Range<usize>)> {
        let c = self.next.fetch_add(1, Ordering::Relaxed);
        let lo = c.checked_mul(self.size)?;
        (lo < self.len).then(|| (c, lo..(lo + self.size).min(self.len)))
    }
}

/// `chunkSizeFor`: about √n nodes per chunk, fewer when the nodes do not
/// make `parallelism` chunks that large.
pub fn chunk_size_for(n: usize, parallelism: usize) -> usize {
    let s = n.isqrt();
    let r = n / parallelism.max(1) + 1;
    s.min(r).max(1)
}

/// How a framework runs per-node work: on how many threads, and from how
/// many nodes on. Shared by every profile of a scheduler.
pub struct Parallelizer {
    parallelism: usize,
    min_nodes: usize,
    pool: OnceLock<Pool>,
}

impl Parallelizer {
    /// `parallelism` threads in all (the scheduling thread included) for
    /// cycles over at least `min_nodes` nodes.
    pub fn new(parallelism: usize, min_nodes: usize) -> Parallelizer {
        Parallelizer {
            parallelism: parallelism.max(1),
            min_nodes,
            pool: OnceLock::new(),
        }
    }

    /// One thread: everything runs on the scheduling thread.
    pub fn sequential() -> Parallelizer {
        Parallelizer::new(1, usize::MAX)
    }

    /// As many threads as the machine has cores (kube-scheduler's default
    /// of 16 is meant for large control-plane machines).
    pub fn from_available_cores() -> Parallelizer {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Parallelizer::new(cores, DEFAULT_MIN_NODES)
    }

    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Whether a cycle over `nodes` nodes is worth sharing out.
    pub fn worth_it(&self, nodes: usize) -> bool {
        self.parallelism > 1 && nodes >= self.min_nodes
    }

    /// Runs `task` on this thread and up to `parallelism - 1` helpers, and
    /// hands it back once no helper holds it any more. A panic on a helper
    /// is resumed here, as `std::thread::scope` does.
    pub fn run<T: Task>(&self, task: T) -> T {
        let helpers = self.parallelism - 1;
        if helpers == 0 {
            task.work();
            return task;
        }
        let pool = self.pool.get_or_init(|| Pool::start(helpers));
        let task = Arc::new(task);
        let done = Arc::new(Completion::new(helpers));
        pool.post(&task, &done, helpers);
        task.work();
        // Tickets no helper has taken yet are withdrawn rather than waited for.
        let withdrawn = pool.withdraw(&task);
        done.finish_many(withdrawn, None);
        if let Some(panic) = done.wait() {
            resume_unwind(panic);
        }
        match Arc::try_unwrap(task) {
            Ok(task) => task,
            // Every ticket was withdrawn or finished, and helpers drop
            // their handle before finishing, so this one is the last.
            Err(_) => unreachable!("a helper still holds a finished task"),
        }
    }
}

type Panic = Box<dyn Any + Send>;

/// Counts a task's outstanding tickets; the poster waits for zero.
struct Completion {
    state: Mutex<(usize, Option<Panic>)>,
    zero: Condvar,
}

impl Completion {
    fn new(tickets: usize) -> Completion {
        Completion {
            state: Mutex::new((tickets, None)),
            zero: Condvar::new(),
        }
    }

    fn finish_many(&self, n: usize, panic: Option<Panic>) {
        let mut g = lock(&self.state);
        g.0 = g.0.saturating_sub(n);
        if g.1.is_none() {
            g.1 = panic;
        }
        if g.0 == 0 {
            self.zero.notify_all();
        }
    }

    fn wait(&self) -> Option<Panic> {
        let mut g = lock(&self.state);
        while g.0 > 0 {
            g = match self.zero.wait(g) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
        g.1.take()
    }
}

struct Ticket {
    task: Arc<dyn Task>,
    done: Arc<Completion>,
}

#[derive(Default)]
struct Queue {
    tickets: VecDeque<Ticket>,
    closed: bool,
}

/// The parked helper threads and the tickets they take.
struct Pool {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl Pool {
    fn start(helpers: usize) -> Pool {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        for i in 0..helpers {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sched-filter-{i}"))
                .spawn(move || helper(&shared));
            if let Err(e) = spawned {
                // Fewer helpers only means less help: posted tickets are
                // withdrawn by the poster when no one takes them.
                tracing::warn!(error = %e, "cannot start a scheduler helper thread");
            }
        }
        Pool { shared }
    }

    fn post<T: Task>(&self, task: &Arc<T>, done: &Arc<Completion>, n: usize) {
        let (queue, ready) = &*self.shared;
        let mut q = lock(queue);
        for _ in 0..n {
            q.tickets.push_back(Ticket {
                task: task.clone(),
                done: done.clone(),
            });
        }
        drop(q);
        for _ in 0..n {
            ready.notify_one();
        }
    }

    /// Removes `task`'s tickets still queued; returns how many.
    fn withdraw<T: Task>(&self, task: &Arc<T>) -> usize {
        let mine = Arc::as_ptr(task) as *const ();
        let mut q = lock(&self.shared.0);
        let before = q.tickets.len();
        q.tickets
            .retain(|t| Arc::as_ptr(&t.task) as *const () != mine);
        before - q.tickets.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.0).closed = true;
        self.shared.1.notify_all();
    }
}

fn helper(shared: &(Mutex<Queue>, Condvar)) {
    let (queue, ready) = shared;
    loop {
        let ticket = {
            let mut q = lock(queue);
            loop {
                if let Some(t) = q.tickets.pop_front() {
                    break t;
                }
                if q.closed {
                    return;
                }
                q = match ready.wait(q) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        };
        let Ticket { task, done } = ticket;
        let outcome = catch_unwind(AssertUnwindSafe(|| task.work()));
        // The handle goes before the count does, so the poster can take
        // the task back as soon as the count reaches zero.
        drop(task);
        done.finish_many(1, outcome.err());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums 0..len in chunks; records which chunks ran.
    struct Sum {
        chunks: Chunks,
        total: AtomicUsize,
        ran: Mutex<Vec<usize>>,
    }

    impl Task for Sum {
        fn work(&self) {
            while let Some((c, range)) = self.chunks.claim() {
                self.total
                    .fetch_add(range.sum::<usize>(), Ordering::Relaxed);
                lock(&self.ran).push(c);
            }
        }
    }

    fn sum(len: usize, size: usize) -> Sum {
        Sum {
            chunks: Chunks::new(len, size),
            total: AtomicUsize::new(0),
            ran: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn every_chunk_runs_exactly_once_whatever_the_thread_count() {
        for threads in [1, 2, 4, 8] {
            let p = Parallelizer::new(threads, 0);
            for _ in 0..50 {
                let done = p.run(sum(1000, 7));
                assert_eq!(done.total.into_inner(), 999 * 1000 / 2, "{threads} threads");
                let mut ran = done.ran.into_inner().unwrap_or_default();
                ran.sort_unstable();
                assert_eq!(ran, (0..143).collect::<Vec<_>>(), "{threads} threads");
            }
        }
    }

    #[test]
    fn chunks_cover_the_range_without_overlap() {
        let c = Chunks::new(10, 4);
        let got: Vec<_> = std::iter::from_fn(|| c.claim()).collect();
        assert_eq!(got, vec![(0, 0..4), (1, 4..8), (2, 8..10)]);
        assert_eq!(c.claim(), None);
    }

    #[test]
    fn chunk_size_follows_kube_schedulers_rule() {
        let cases = [
            (0, 16, 1),
            (10, 16, 1),
            (5000, 16, 70),
            (5000, 2, 70),
            (100, 200, 1),
            (64, 2, 8),
        ];
        for (n, p, want) in cases {
            assert_eq!(chunk_size_for(n, p), want, "n={n} parallelism={p}");
        }
    }

    /// Panics on a helper; the caller waits until a helper has taken it.
    struct Boom {
        taken: std::sync::atomic::AtomicBool,
    }

    impl Task for Boom {
        fn work(&self) {
            let on_helper = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("sched-filter"));
            if on_helper {
                self.taken.store(true, Ordering::SeqCst);
                panic!("helper panicked");
            }
            while !self.taken.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
    }

    #[test]
    fn a_panic_on_a_helper_reaches_the_caller() {
        let p = Parallelizer::new(2, 0);
        for _ in 0..3 {
            let boom = Boom {
                taken: std::sync::atomic::AtomicBool::new(false),
            };
            let payload = catch_unwind(AssertUnwindSafe(|| p.run(boom))).err();
            let msg = payload.as_ref().and_then(|p| p.downcast_ref::<&str>());
            assert_eq!(msg, Some(&"helper panicked"));
        }
        // The helper survives the panics and still takes work.
        assert_eq!(p.run(sum(100, 3)).total.into_inner(), 4950);
    }

    #[test]
    fn small_clusters_and_one_thread_stay_sequential() {
        assert!(!Parallelizer::sequential().worth_it(1_000_000));
        assert!(!Parallelizer::new(4, 1000).worth_it(999));
        assert!(Parallelizer::new(4, 1000).worth_it(1000));
        assert!(!Parallelizer::new(1, 0).worth_it(1000));
    }
}
