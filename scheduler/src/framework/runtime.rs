//! One profile's plugins run as kube-scheduler's `schedulePod` does:
//! PreFilter, Filter over (a share of) the nodes from a rotating start,
//! PreScore, Score with normalisation and weights, and a random pick among
//! the best. Every attempt leaves an [`Explanation`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::fanout::{FilterJob, ScoreJob, run_filter_list};
use super::parallel::{Chunks, Parallelizer, chunk_size_for};
use super::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, Snapshot, Status,
};

/// Below this many nodes every node is filtered (`minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The floor of the adaptive percentage (`minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// A profile: its scheduler name and enabled plugins per extension point.
pub struct Framework {
    pub scheduler_name: String,
    pub pre_filters: Vec<Arc<dyn Plugin>>,
    pub filters: Vec<Arc<dyn Plugin>>,
    pub pre_scores: Vec<Arc<dyn Plugin>>,
    /// Score plugins with their weights.
    pub scores: Vec<(Arc<dyn Plugin>, i64)>,
    /// Whether `DefaultPreemption` runs after a failed Filter.
    pub preemption: bool,
    /// 0 means adaptive.
    pub percentage_of_nodes_to_score: u32,
    /// Runs Filter and Score over many nodes on several threads.
    pub parallelizer: Arc<Parallelizer>,
}

/// How many of the best-scored nodes an explanation keeps.
pub const EXPLAINED_SCORES: usize = 20;

/// One node's Filter verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeVerdict {
    pub node: String,
    pub status: Status,
}

/// One node's score: per plugin, the raw, normalised and weighted score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeScoreBreakdown {
    pub node: String,
    pub total: i64,
    /// Keyed by plugin name: borrowed from the plugin when recorded (no
    /// allocation per node and plugin on every cycle), owned when decoded.
    pub plugins: BTreeMap<Cow<'static, str>, PluginScore>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PluginScore {
    pub raw: i64,
    pub normalized: i64,
    pub weight: i64,
    pub weighted: i64,
}

/// What one scheduling attempt decided and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Explanation {
    pub pod: String,
    pub profile: String,
    pub time: String,
    pub num_all_nodes: usize,
    pub num_evaluated: usize,
    pub num_feasible: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_filter: Option<Status>,
    /// The nodes Filter rejected, with why (the others were feasible).
    pub filters: Vec<NodeVerdict>,
    /// The best-scored nodes, best first, with each plugin's part.
    pub scores: Vec<NodeScoreBreakdown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `ErrNoNodesAvailable`: the message when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Why no node fits (`framework.FitError`).
#[derive(Debug, Clone)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub pre_filter_msg: Option<String>,
    /// Nodes that Filter rejected, with their statuses.
    pub node_statuses: Vec<(String, Status)>,
    /// Set by preemption; appended to the message.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {a: b},
    /// 2 Insufficient cpu.` with reasons counted and sorted as Kubernetes does.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return NO_NODES_AVAILABLE.to_string();
        }
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(pre) = &self.pre_filter_msg {
            msg.push(' ');
            msg.push_str(pre);
            msg.push('.');
        } else {
            msg.push(' ');
            msg.push_str(&reasons_histogram(
                self.node_statuses.iter().map(|(_, s)| s),
            ));
            msg.push('.');
        }
        if let Some(post) = &self.post_filter_msg {
            msg.push(' ');
            msg.push_str(post);
        }
        msg
    }
}

/// `3 Insufficient cpu, 1 node(s) were unschedulable`: each reason counted
/// over the nodes, rendered as `count reason` and sorted as strings.
pub fn reasons_histogram<'a>(statuses: impl Iterator<Item = &'a Status>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses {
        for r in &s.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut items: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    items.sort();
    items.join(", ")
}

/// The outcome of a successful attempt.
#[derive(Debug, Clone)]
pub struct ScheduleResult {
    pub node: String,
}

impl Framework {
    /// How many feasible nodes to find before scoring (`numFeasibleNodesToFind`).
    pub fn num_feasible_nodes_to_find(&self, num_all_nodes: usize) -> usize {
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
            return num_all_nodes;
        }
        let mut percentage = self.percentage_of_nodes_to_score as usize;
        if percentage >= 100 {
            return num_all_nodes;
        }
        if percentage == 0 {
            percentage = 50usize.saturating_sub(num_all_nodes / 125);
            percentage = percentage.max(MIN_FEASIBLE_NODES_PERCENTAGE);
        }
        (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Runs PreFilter and Filter over `nodes` starting at `*next_start`,
    /// which advances past the nodes looked at.
    ///
    /// When the cycle will look at enough nodes to pay for the hand-off
    /// ([`Parallelizer::worth_it`]), Filter runs over chunks of nodes on
    /// the parallelizer's threads; the outcome is the same as on one
    /// thread (see [`super::fanout`]).
    pub fn find_feasible(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &Snapshot,
        next_start: &mut usize,
        explanation: &mut Explanation,
    ) -> Result<Vec<Arc<NodeInfo>>, FitError> {
        let n = nodes.len();
        explanation.num_all_nodes = n;
        if n == 0 {
            return Err(FitError {
                num_all_nodes: 0,
                pre_filter_msg: None,
                node_statuses: Vec::new(),
                post_filter_msg: None,
            });
        }
        let fit_error = |pre: Option<String>, statuses| FitError {
            num_all_nodes: n,
            pre_filter_msg: pre,
            node_statuses: statuses,
            post_filter_msg: None,
        };
        // A plugin whose PreFilter has nothing to do for this pod is not
        // asked per node (`SkipFilterPlugins`).
        let mut skipped: Vec<&'static str> = Vec::new();
        for p in &self.pre_filters {
            let Some(pf) = p.as_pre_filter() else {
                continue;
            };
            let s = pf.pre_filter(state, pod, nodes);
            if s.is_success() {
                continue;
            }
            if s.code == super::Code::Skip {
                skipped.push(p.name());
                continue;
            }
            let s = s.with_plugin(p.name());
            let msg = s.message();
            explanation.pre_filter = Some(s);
            return Err(fit_error(Some(msg), Vec::new()));
        }
        let want = self.num_feasible_nodes_to_find(n);
        let start = *next_start % n;
        let filter_plugins = self.filters.iter().filter(|p| !skipped.contains(&p.name()));
        // One sequence of verdicts in rotation order, computed lazily here
        // or ahead in parallel chunks; the loop below consumes either the
        // same way, so both give the same outcome.
        let verdicts: Box<dyn Iterator<Item = Option<Status>>> = if self.parallelizer.worth_it(want)
        {
            let p = self.parallelizer.parallelism();
            let job = FilterJob {
                pod: Arc::new(pod.clone()),
                state: std::mem::take(state),
                nodes: nodes.clone(),
                filters: filter_plugins.cloned().collect(),
                start,
                want,
                chunks: Chunks::new(n, filter_chunk_size(n, want, p)),
                found: AtomicUsize::new(0),
                done: Mutex::new(Vec::new()),
            };
            let (st, verdicts) = self.parallelizer.run(job).into_verdicts();
            *state = st;
            Box::new(verdicts)
        } else {
            let filters: Vec<(&'static str, &dyn FilterPlugin)> = filter_plugins
                .filter_map(|p| p.as_filter().map(|f| (p.name(), f)))
                .collect();
            let state = &*state;
            Box::new(
                (0..n).map(move |i| run_filter_list(&filters, state, pod, &nodes[(start + i) % n])),
            )
        };
        let mut feasible = Vec::with_capacity(want.min(n));
        let mut rejected = Vec::new();
        let mut processed = 0;
        for (i, verdict) in verdicts.enumerate() {
            if feasible.len() >= want {
                break;
            }
            let node = &nodes[(start + i) % n];
            processed += 1;
            match verdict {
                None => feasible.push(node.clone()),
                Some(status) => {
                    // Only rejections are kept: with thousands of nodes a
                    // list of successes would dominate the scheduler's memory.
                    explanation.filters.push(NodeVerdict {
                        node: node.name().to_string(),
                        status: status.clone(),
                    });
                    rejected.push((node.name().to_string(), status));
                }
            }
        }
        *next_start = (start + processed) % n;
        explanation.num_evaluated = processed;
        explanation.num_feasible = feasible.len();
        if feasible.is_empty() {
            return Err(fit_error(None, rejected));
        }
        Ok(feasible)
    }

    /// All Filter plugins on one node; the first rejection wins.
    pub fn run_filters(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        for p in &self.filters {
            let Some(f) = p.as_filter() else { continue };
            let s = f.filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// PreScore and Score over the feasible nodes: each plugin's raw and
    /// normalised scores and the weighted totals, in `feasible` order.
    pub fn score_nodes(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        feasible: &[Arc<NodeInfo>],
        all: &Snapshot,
    ) -> Result<Scores, Status> {
        let mut skipped = Vec::new();
        for p in &self.pre_scores {
            let Some(ps) = p.as_pre_score() else { continue };
            let s = ps.pre_score(state, pod, feasible, all);
            match s.code {
                super::Code::Success => {}
                super::Code::Skip => skipped.push(p.name()),
                _ => return Err(s.with_plugin(p.name())),
            }
        }
        let mut out = Scores {
            totals: vec![0; feasible.len()],
            plugins: Vec::new(),
        };
        let active: Vec<(&Arc<dyn Plugin>, i64)> = self
            .scores
            .iter()
            .filter(|(p, _)| !skipped.contains(&p.name()) && p.as_score().is_some())
            .map(|(p, w)| (p, *w))
            .collect();
        // Raw scores of every plugin on every node, computed ahead in
        // parallel chunks when there are enough nodes; each plugin's
        // column is then checked and normalised in order, as on one thread.
        let mut ahead = if self.parallelizer.worth_it(feasible.len()) {
            let job = ScoreJob {
                pod: Arc::new(pod.clone()),
                state: std::mem::take(state),
                nodes: feasible.to_vec(),
                plugins: active.iter().map(|(p, _)| Arc::clone(p)).collect(),
                chunks: Chunks::new(
                    feasible.len(),
                    chunk_size_for(feasible.len(), self.parallelizer.parallelism()),
                ),
                done: Mutex::new(Vec::new()),
            };
            let (st, raw) = self.parallelizer.run(job).into_scores();
            *state = st;
            raw.columns
                .into_iter()
                .zip(raw.errors)
                .map(|(c, e)| Some((c, e)))
                .collect()
        } else {
            vec![None; active.len()]
        };
        for ((p, weight), column) in active.iter().zip(ahead.iter_mut()) {
            let Some(sp) = p.as_score() else { continue };
            let mut scores = Vec::with_capacity(feasible.len());
            match column.take() {
                Some((_, Some(failed))) => return Err(failed.with_plugin(p.name())),
                Some((raw, None)) => {
                    scores.extend(
                        raw.into_iter()
                            .enumerate()
                            .map(|(index, score)| NodeScore { index, score }),
                    );
                }
                None => {
                    for (index, n) in feasible.iter().enumerate() {
                        let score = sp
                            .score(state, pod, n)
                            .map_err(|s| s.with_plugin(p.name()))?;
                        scores.push(NodeScore { index, score });
                    }
                }
            }
            let raw: Vec<i64> = scores.iter().map(|s| s.score).collect();
            let s = sp.normalize(state, pod, &mut scores);
            if !s.is_success() {
                return Err(s.with_plugin(p.name()));
            }
            let mut normalized = Vec::with_capacity(scores.len());
            for ns in &scores {
                if !(0..=MAX_NODE_SCORE).contains(&ns.score) {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [0, {MAX_NODE_SCORE}] after normalizing",
                        p.name(),
                        ns.score
                    )));
                }
                out.totals[ns.index] += ns.score * weight;
                normalized.push(ns.score);
            }
            out.plugins.push(PluginScores {
                name: p.name(),
                weight: *weight,
                raw,
                normalized,
            });
        }
        Ok(out)
    }

    /// A full attempt: the chosen node, or why none fits.
    pub fn schedule(
        &self,
        pod: &Pod,
        nodes: &Snapshot,
        next_start: &mut usize,
        rng: &mut impl Rng,
        explanation: &mut Explanation,
    ) -> Result<ScheduleResult, ScheduleError> {
        let mut state = CycleState::default();
        let feasible = self
            .find_feasible(&mut state, pod, nodes, next_start, explanation)
            .map_err(ScheduleError::Fit)?;
        if feasible.len() == 1 {
            let node = feasible[0].name().to_string();
            explanation.selected_node = Some(node.clone());
            return Ok(ScheduleResult { node });
        }
        let scores = self
            .score_nodes(&mut state, pod, &feasible, nodes)
            .map_err(ScheduleError::Plugin)?;
        let best = select_host(&scores.totals, rng).unwrap_or(0);
        let node = feasible[best].name().to_string();
        explanation.scores = scores.breakdown(&feasible, EXPLAINED_SCORES);
        explanation.selected_node = Some(node.clone());
        Ok(ScheduleResult { node })
    }
}

/// Nodes per Filter chunk: kube-scheduler's `chunkSizeFor`, but small
/// enough that the chunks still in flight when enough feasible nodes are
/// found (up to one per thread) add little to the `want` nodes one thread
/// would have filtered.
fn filter_chunk_size(n: usize, want: usize, parallelism: usize) -> usize {
    chunk_size_for(n, parallelism)
        .min(want / (8 * parallelism.max(1)))
        .max(4)
}

/// One score plugin's scores over the feasible nodes.
#[derive(Debug, Clone)]
pub struct PluginScores {
    pub name: &'static str,
    pub weight: i64,
    pub raw: Vec<i64>,
    pub normalized: Vec<i64>,
}

/// What Score produced for one attempt, indexed like the feasible nodes.
#[derive(Debug, Clone)]
pub struct Scores {
    pub totals: Vec<i64>,
    pub plugins: Vec<PluginScores>,
}

impl Scores {
    /// The `top` best nodes, best first (ties by name), each with every
    /// plugin's part. Built only for the few nodes an explanation shows,
    /// so a cycle does not allocate per node and plugin.
    pub fn breakdown(&self, feasible: &[Arc<NodeInfo>], top: usize) -> Vec<NodeScoreBreakdown> {
        let mut order: Vec<usize> = (0..self.totals.len()).collect();
        let by_score = |a: &usize, b: &usize| {
            self.totals[*b]
                .cmp(&self.totals[*a])
                .then_with(|| feasible[*a].name().cmp(feasible[*b].name()))
        };
        if order.len() > top && top > 0 {
            order.select_nth_unstable_by(top - 1, by_score);
            order.truncate(top);
        }
        order.sort_by(by_score);
        order
            .into_iter()
            .map(|i| NodeScoreBreakdown {
                node: feasible[i].name().to_string(),
                total: self.totals[i],
                plugins: self
                    .plugins
                    .iter()
                    .map(|p| {
                        (
                            Cow::Borrowed(p.name),
                            PluginScore {
                                raw: p.raw[i],
                                normalized: p.normalized[i],
                                weight: p.weight,
                                weighted: p.normalized[i] * p.weight,
                            },
                        )
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone)]
pub enum ScheduleError {
    Fit(FitError),
    Plugin(Status),
}

/// The index of the highest total, ties broken uniformly at random
/// (reservoir sampling, as `selectHost`).
pub fn select_host(totals: &[i64], rng: &mut impl Rng) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut ties = 0u32;
    for (i, total) in totals.iter().enumerate() {
        match best {
            Some(b) if *total < totals[b] => {}
            Some(b) if *total == totals[b] => {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some(i);
                }
            }
            _ => {
                best = Some(i);
                ties = 1;
            }
        }
    }
    best
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
