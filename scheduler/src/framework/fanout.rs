//! The Filter and Score stages of one cycle as [`Task`]s the
//! [`Parallelizer`](super::parallel::Parallelizer) shares out over chunks
//! of nodes (kube-scheduler's `findNodesThatPassFilters` and
//! `RunScorePlugins` under `Parallelizer().Until`).
//!
//! Filter stops claiming chunks once enough feasible nodes were found, as
//! kube-scheduler's atomic `feasibleNodesLen` and cancel do. Unlike
//! kube-scheduler, whose feasible set then depends on which goroutine got
//! there first, every claimed chunk is finished and chunks are claimed
//! lowest first, so the finished chunks are a prefix of the rotation and
//! cutting it at the wanted number of feasible nodes gives exactly what
//! one thread would have found: the same nodes, the same rejections and
//! explanations, the same next start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Pod;

use super::parallel::{Chunks, Task};
use super::{CycleState, FilterPlugin, NodeInfo, Plugin, Snapshot, Status};

/// All Filter plugins on one node: `None` when all pass, else the first
/// rejection (with its plugin).
pub fn run_filter_list(
    filters: &[(&'static str, &dyn FilterPlugin)],
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
) -> Option<Status> {
    for (name, f) in filters {
        let s = f.filter(state, pod, node);
        if !s.is_success() {
            return Some(s.with_plugin(name));
        }
    }
    None
}

/// Filter over the nodes from `start` (rotating), in chunks.
pub struct FilterJob {
    pub pod: Arc<Pod>,
    pub state: CycleState,
    pub nodes: Snapshot,
    pub filters: Vec<Arc<dyn Plugin>>,
    pub start: usize,
    /// Stop claiming chunks once this many feasible nodes were found.
    pub want: usize,
    pub chunks: Chunks,
    pub found: AtomicUsize,
    /// Finished chunks: number and one verdict per node, in order.
    pub done: Mutex<Vec<(usize, Vec<Option<Status>>)>>,
}

impl FilterJob {
    /// The verdicts of the finished chunks in rotation order; the
    /// feasible nodes among them number at least `want` unless every node
    /// was looked at.
    pub fn into_verdicts(self) -> (CycleState, impl Iterator<Item = Option<Status>>) {
        let mut done = self.done.into_inner().unwrap_or_else(|p| p.into_inner());
        done.sort_unstable_by_key(|(c, _)| *c);
        (self.state, done.into_iter().flat_map(|(_, v)| v))
    }
}

impl Task for FilterJob {
    fn work(&self) {
        let filters: Vec<(&'static str, &dyn FilterPlugin)> = self
            .filters
            .iter()
            .filter_map(|p| p.as_filter().map(|f| (p.name(), f)))
            .collect();
        let n = self.nodes.len();
        // Checked before claiming, never inside a chunk: a claimed chunk is
        // always finished, which keeps the finished chunks a prefix.
        while self.found.load(Ordering::Relaxed) < self.want {
            let Some((c, range)) = self.chunks.claim() else {
                break;
            };
            let mut verdicts = Vec::with_capacity(range.len());
            let mut found = 0;
            for i in range {
                let node = &self.nodes[(self.start + i) % n];
                let v = run_filter_list(&filters, &self.state, &self.pod, node);
                found += usize::from(v.is_none());
                verdicts.push(v);
            }
            self.found.fetch_add(found, Ordering::Relaxed);
            lock(&self.done).push((c, verdicts));
        }
    }
}

/// Every score plugin on every feasible node, in chunks of nodes; the
/// caller normalises per plugin afterwards, as kube-scheduler does.
pub struct ScoreJob {
    pub pod: Arc<Pod>,
    pub state: CycleState,
    pub nodes: Vec<Arc<NodeInfo>>,
    /// Score plugins only (each has `as_score`).
    pub plugins: Vec<Arc<dyn Plugin>>,
    pub chunks: Chunks,
    pub done: Mutex<Vec<ScoredChunk>>,
}

/// One chunk's raw scores, node-major (one flat vector: a vector per node
/// would cost an allocation per node on every cycle), and its failures.
pub struct ScoredChunk {
    first: usize,
    scores: Vec<i64>,
    /// (node index, plugin index, status) of each plugin that failed.
    errors: Vec<(usize, usize, Status)>,
}

/// Per plugin, the raw score of every node in order, and the first
/// failure of each plugin (by node order) if any.
pub struct RawScores {
    pub columns: Vec<Vec<i64>>,
    pub errors: Vec<Option<Status>>,
}

impl ScoreJob {
    pub fn into_scores(self) -> (CycleState, RawScores) {
        let mut done = self.done.into_inner().unwrap_or_else(|p| p.into_inner());
        done.sort_unstable_by_key(|c| c.first);
        let k = self.plugins.len();
        let mut out = RawScores {
            columns: vec![Vec::with_capacity(self.nodes.len()); k],
            errors: vec![None; k],
        };
        for chunk in done {
            for row in chunk.scores.chunks_exact(k.max(1)) {
                for (column, s) in out.columns.iter_mut().zip(row) {
                    column.push(*s);
                }
            }
            for (_, plugin, status) in chunk.errors {
                // Chunks are in node order and a chunk's errors too, so
                // the first one kept is the lowest node's.
                if let Some(slot) = out.errors.get_mut(plugin) {
                    slot.get_or_insert(status);
                }
            }
        }
        (self.state, out)
    }
}

impl Task for ScoreJob {
    fn work(&self) {
        let plugins: Vec<&dyn super::ScorePlugin> =
            self.plugins.iter().filter_map(|p| p.as_score()).collect();
        while let Some((_, range)) = self.chunks.claim() {
            let first = range.start;
            let mut scores = Vec::with_capacity(range.len() * plugins.len());
            let mut errors = Vec::new();
            for i in range {
                for (j, sp) in plugins.iter().enumerate() {
                    match sp.score(&self.state, &self.pod, &self.nodes[i]) {
                        Ok(s) => scores.push(s),
                        Err(status) => {
                            scores.push(0);
                            errors.push((i, j, status));
                        }
                    }
                }
            }
            lock(&self.done).push(ScoredChunk {
                first,
                scores,
                errors,
            });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
