//! Tests of the scheduling cycle with fake plugins: weights, normalisation,
//! random ties, the share of nodes filtered, and the failure message.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::framework::parallel::Parallelizer;
use crate::framework::{Code, FilterPlugin, NodeScore, PreFilterPlugin, ScorePlugin};
use crate::plugins::testutil::{node, pod};

/// Scores each node by a fixed table; rejects nodes listed in `reject`.
struct Fake {
    name: &'static str,
    scores: HashMap<String, i64>,
    reject: HashMap<String, Status>,
    normalize_to_100: bool,
    pre_filter: Option<Status>,
}

impl Fake {
    fn new(name: &'static str) -> Fake {
        Fake {
            name,
            scores: HashMap::new(),
            reject: HashMap::new(),
            normalize_to_100: false,
            pre_filter: None,
        }
    }
    fn score(mut self, node: &str, s: i64) -> Fake {
        self.scores.insert(node.into(), s);
        self
    }
    fn reject(mut self, node: &str, s: Status) -> Fake {
        self.reject.insert(node.into(), s);
        self
    }
}

impl Plugin for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for Fake {
    fn pre_filter(&self, _: &mut CycleState, _: &Pod, _: &Snapshot) -> Status {
        self.pre_filter.clone().unwrap_or_else(Status::success)
    }
}

impl FilterPlugin for Fake {
    fn filter(&self, _: &CycleState, _: &Pod, node: &NodeInfo) -> Status {
        self.reject
            .get(node.name())
            .cloned()
            .unwrap_or_else(Status::success)
    }
}

impl ScorePlugin for Fake {
    fn score(&self, _: &CycleState, _: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        Ok(self.scores.get(node.name()).copied().unwrap_or(0))
    }
    fn normalize(&self, _: &CycleState, _: &Pod, scores: &mut [NodeScore]) -> Status {
        if self.normalize_to_100 {
            crate::framework::default_normalize_score(MAX_NODE_SCORE, false, scores);
        }
        Status::success()
    }
}

fn framework(plugins: Vec<(Fake, i64)>) -> Framework {
    let plugins: Vec<(Arc<dyn Plugin>, i64)> = plugins
        .into_iter()
        .map(|(p, w)| (Arc::new(p) as Arc<dyn Plugin>, w))
        .collect();
    Framework {
        scheduler_name: "test".into(),
        pre_filters: plugins.iter().map(|(p, _)| p.clone()).collect(),
        filters: plugins.iter().map(|(p, _)| p.clone()).collect(),
        pre_scores: Vec::new(),
        scores: plugins,
        preemption: true,
        percentage_of_nodes_to_score: 0,
        parallelizer: Arc::new(Parallelizer::sequential()),
    }
}

fn nodes(names: &[&str]) -> Vec<Arc<NodeInfo>> {
    names
        .iter()
        .map(|n| node(json!({"metadata": {"name": n}})))
        .collect()
}

fn empty_pod() -> Pod {
    pod(json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}}))
}

fn run(
    fw: &Framework,
    ns: &[Arc<NodeInfo>],
    seed: u64,
) -> (Result<ScheduleResult, ScheduleError>, Explanation) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut ex = Explanation::default();
    let mut start = 0;
    (
        fw.schedule(
            &empty_pod(),
            &Snapshot::from_nodes(ns.to_vec()),
            &mut start,
            &mut rng,
            &mut ex,
        ),
        ex,
    )
}

#[test]
fn weights_multiply_each_plugins_score() {
    let ns = nodes(&["a", "b"]);
    // "a" wins plugin x (weight 1) by 60, "b" wins plugin y (weight 3) by 30.
    let fw = framework(vec![
        (Fake::new("x").score("a", 80).score("b", 20), 1),
        (Fake::new("y").score("a", 40).score("b", 70), 3),
    ]);
    let (res, ex) = run(&fw, &ns, 1);
    assert_eq!(res.expect("scheduled").node, "b");
    let totals: Vec<(String, i64)> = ex
        .scores
        .iter()
        .map(|s| (s.node.clone(), s.total))
        .collect();
    assert_eq!(totals, vec![("b".into(), 20 + 210), ("a".into(), 80 + 120)]);
    assert_eq!(ex.scores[0].plugins["y"].weighted, 210);
}

#[test]
fn normalisation_maps_raw_scores_onto_0_to_100() {
    let ns = nodes(&["a", "b"]);
    let mut f = Fake::new("x").score("a", 5).score("b", 10);
    f.normalize_to_100 = true;
    let (_, ex) = run(&framework(vec![(f, 2)]), &ns, 1);
    let per: Vec<(i64, i64)> = ex
        .scores
        .iter()
        .map(|s| (s.plugins["x"].raw, s.plugins["x"].normalized))
        .collect();
    assert_eq!(per, vec![(10, 100), (5, 50)]);
    assert_eq!(ex.scores[0].total, 200);
}

#[test]
fn out_of_range_scores_are_an_error() {
    let ns = nodes(&["a", "b"]);
    let (res, _) = run(
        &framework(vec![(Fake::new("x").score("a", 500), 1)]),
        &ns,
        1,
    );
    assert!(matches!(res, Err(ScheduleError::Plugin(s)) if s.code == Code::Error));
}

#[test]
fn ties_are_broken_at_random() {
    let ns = nodes(&["a", "b", "c"]);
    let fw = framework(vec![(Fake::new("x").score("a", 10).score("b", 10), 1)]);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        seen.insert(run(&fw, &ns, seed).0.expect("scheduled").node);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
}

#[test]
fn ties_are_broken_uniformly() {
    let ns = nodes(&["a", "b", "c", "d"]);
    let fw = framework(vec![(Fake::new("x").score("d", 0), 1)]);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let snapshot = Snapshot::from_nodes(ns);
    for _ in 0..4000 {
        let mut start = 0;
        let mut ex = Explanation::default();
        let node = fw
            .schedule(&empty_pod(), &snapshot, &mut start, &mut rng, &mut ex)
            .expect("scheduled")
            .node;
        *counts.entry(node).or_default() += 1;
    }
    // Each of the four tied nodes expects 1,000 picks; 850 is more than
    // five standard deviations (about 27) below.
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|c| *c > 850), "{counts:?}");
}

#[test]
fn the_explanation_lists_the_best_nodes_first_with_each_plugins_part() {
    let ns = nodes(&["a", "b", "c"]);
    let fw = framework(vec![
        (
            Fake::new("x").score("a", 10).score("b", 30).score("c", 20),
            2,
        ),
        (Fake::new("y").score("a", 5), 1),
    ]);
    let (res, ex) = run(&fw, &ns, 1);
    assert_eq!(res.expect("scheduled").node, "b");
    let order: Vec<(&str, i64)> = ex
        .scores
        .iter()
        .map(|s| (s.node.as_str(), s.total))
        .collect();
    assert_eq!(order, vec![("b", 60), ("c", 40), ("a", 25)]);
    let a = &ex.scores[2].plugins;
    assert_eq!((a["x"].raw, a["x"].weight, a["x"].weighted), (10, 2, 20));
    assert_eq!(a["y"].weighted, 5);
}

#[test]
fn rejected_nodes_are_not_scored_and_a_single_survivor_is_chosen() {
    let ns = nodes(&["a", "b"]);
    let fw = framework(vec![(
        Fake::new("x")
            .score("a", 100)
            .reject("a", Status::unschedulable("nope")),
        1,
    )]);
    let (res, ex) = run(&fw, &ns, 1);
    assert_eq!(res.expect("scheduled").node, "b");
    assert_eq!(ex.num_feasible, 1);
    assert_eq!(ex.filters[0].status.plugin.as_deref(), Some("x"));
}

#[test]
fn the_failure_message_counts_and_sorts_reasons_like_kubernetes() {
    let ns = nodes(&["a", "b", "c"]);
    let fw = framework(vec![(
        Fake::new("x")
            .reject(
                "a",
                Status::unresolvable("node(s) had untolerated taint {dedicated: gpu}"),
            )
            .reject("b", Status::unschedulable("Insufficient cpu"))
            .reject(
                "c",
                Status::new(
                    Code::Unschedulable,
                    vec!["Insufficient cpu".into(), "Insufficient memory".into()],
                ),
            ),
        1,
    )]);
    let Err(ScheduleError::Fit(fit)) = run(&fw, &ns, 1).0 else {
        panic!("expected a fit error")
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
    );
}

#[test]
fn a_pre_filter_rejection_fails_every_node_at_once() {
    let ns = nodes(&["a", "b"]);
    let mut f = Fake::new("x");
    f.pre_filter = Some(Status::unresolvable(
        "pod has unbound immediate PersistentVolumeClaims",
    ));
    let Err(ScheduleError::Fit(fit)) = run(&framework(vec![(f, 1)]), &ns, 1).0 else {
        panic!("expected a fit error")
    };
    assert_eq!(
        fit.message(),
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    );
}

#[test]
fn the_share_of_nodes_filtered_adapts_to_cluster_size() {
    let mut fw = framework(vec![]);
    let cases = [
        (50, 0, 50),
        (100, 0, 100),
        (1000, 0, 420),
        (5000, 0, 500),
        (10_000, 0, 500),
        (1000, 10, 100),
        (1000, 30, 300),
        (1000, 100, 1000),
    ];
    for (n, pct, want) in cases {
        fw.percentage_of_nodes_to_score = pct;
        assert_eq!(
            fw.num_feasible_nodes_to_find(n),
            want,
            "{n} nodes at {pct}%"
        );
    }
}

#[test]
fn filtering_stops_at_the_share_and_the_next_cycle_starts_after_it() {
    let names: Vec<String> = (0..200).map(|i| format!("n{i:03}")).collect();
    let ns: Vec<Arc<NodeInfo>> = names
        .iter()
        .map(|n| node(json!({"metadata": {"name": n}})))
        .collect();
    let ns = Snapshot::from_nodes(ns);
    let mut fw = framework(vec![(Fake::new("x"), 1)]);
    fw.percentage_of_nodes_to_score = 10;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut start = 0;
    let mut ex = Explanation::default();
    fw.schedule(&empty_pod(), &ns, &mut start, &mut rng, &mut ex)
        .expect("scheduled");
    assert_eq!(ex.num_evaluated, 100);
    assert_eq!(start, 100);
    let mut ex = Explanation::default();
    fw.schedule(&empty_pod(), &ns, &mut start, &mut rng, &mut ex)
        .expect("scheduled");
    assert_eq!(ex.num_evaluated, 100);
    assert_eq!(start, 0, "the second cycle covered n100..n199");
}

#[test]
fn an_empty_cluster_has_no_nodes_available() {
    let Err(ScheduleError::Fit(fit)) = run(&framework(vec![]), &[], 1).0 else {
        panic!("expected a fit error")
    };
    assert_eq!(fit.message(), "no nodes available to schedule pods");
}
