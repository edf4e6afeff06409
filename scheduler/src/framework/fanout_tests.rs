//! Parallel Filter and Score give exactly what one thread gives: the same
//! feasible nodes, the same rejections with the same reasons, the same
//! next start and the same scores, over a mixed cluster and the default
//! plugins, at several thread counts, shares of nodes and start points.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::framework::config::KubeSchedulerConfiguration;
use crate::framework::parallel::Parallelizer;
use crate::framework::runtime::{Explanation, FitError, Framework, Scores};
use crate::framework::{CycleState, NodeInfo, Snapshot};
use crate::plugins::testutil::{node, node_with_pods, pod};

/// 2,000 nodes of seven kinds, so every filter rejects some of them and
/// feasible nodes come in irregular runs across chunk boundaries.
fn cluster() -> Snapshot {
    let nodes: Vec<Arc<NodeInfo>> = (0..2000)
        .map(|i| {
            let name = format!("n{i:04}");
            let zone = format!("z{}", i % 3);
            let (cpu, memory) = if i % 11 == 0 { ("50m", "128Mi") } else { ("4", "8Gi") };
            let mut v = json!({
                "metadata": {"name": name, "labels": {"zone": zone, "kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}},
            });
            match i % 7 {
                1 => v["spec"] = json!({"unschedulable": true}),
                2 => v["spec"] = json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                3 => v["metadata"]["labels"]["disk"] = json!("ssd"),
                _ => {}
            }
            if i % 13 == 0 {
                let used: Value = json!({"metadata": {"name": format!("used-{i}"), "namespace": "d"},
                    "spec": {"nodeName": name, "containers": [{"name": "c",
                        "resources": {"requests": {"cpu": "3500m", "memory": "1Gi"}}}]}});
                return node_with_pods(v, vec![used]);
            }
            node(v)
        })
        .collect();
    Snapshot::from_nodes(nodes)
}

fn pods() -> Vec<(&'static str, Pod)> {
    let containers = |cpu: &str| {
        json!([{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}])
    };
    vec![
        (
            "plain",
            pod(json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"containers": containers("100m")}})),
        ),
        (
            "nodeSelector",
            pod(json!({"metadata": {"name": "b", "namespace": "d"},
            "spec": {"nodeSelector": {"disk": "ssd"}, "containers": containers("100m")}})),
        ),
        (
            "toleration",
            pod(json!({"metadata": {"name": "c", "namespace": "d"},
            "spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}],
                "containers": containers("100m")}})),
        ),
        (
            "large",
            pod(json!({"metadata": {"name": "e", "namespace": "d"},
            "spec": {"containers": containers("1")}})),
        ),
        (
            "fits nowhere",
            pod(json!({"metadata": {"name": "f", "namespace": "d"},
            "spec": {"containers": containers("64")}})),
        ),
    ]
}

fn framework(pct: u32, parallelizer: Parallelizer) -> Framework {
    let mut fw = KubeSchedulerConfiguration::default()
        .build()
        .expect("default profile")
        .remove(0);
    fw.percentage_of_nodes_to_score = pct;
    fw.parallelizer = Arc::new(parallelizer);
    fw
}

/// Everything one Filter pass decides, in comparable form.
#[derive(Debug, PartialEq)]
struct Filtered {
    feasible: Vec<String>,
    rejected: Vec<(String, String)>,
    next_start: usize,
    evaluated: usize,
    fit_error: Option<Vec<(String, String)>>,
}

fn filter(
    fw: &Framework,
    p: &Pod,
    nodes: &Snapshot,
    start: usize,
) -> (Filtered, Vec<Arc<NodeInfo>>, CycleState) {
    let mut state = CycleState::default();
    let mut next_start = start;
    let mut ex = Explanation::default();
    let result = fw.find_feasible(&mut state, p, nodes, &mut next_start, &mut ex);
    let status =
        |s: &crate::framework::Status| format!("{:?} {:?} {:?}", s.code, s.plugin, s.reasons);
    let (feasible, fit_error) = match result {
        Ok(f) => (f, None),
        Err(FitError { node_statuses, .. }) => (
            Vec::new(),
            Some(
                node_statuses
                    .iter()
                    .map(|(n, s)| (n.clone(), status(s)))
                    .collect(),
            ),
        ),
    };
    let out = Filtered {
        feasible: feasible.iter().map(|n| n.name().to_string()).collect(),
        rejected: ex
            .filters
            .iter()
            .map(|v| (v.node.clone(), status(&v.status)))
            .collect(),
        next_start,
        evaluated: ex.num_evaluated,
        fit_error,
    };
    (out, feasible, state)
}

/// Per plugin: its name, raw and normalised scores.
type PluginColumns = Vec<(&'static str, Vec<i64>, Vec<i64>)>;

fn comparable(s: &Scores) -> (Vec<i64>, PluginColumns) {
    (
        s.totals.clone(),
        s.plugins
            .iter()
            .map(|p| (p.name, p.raw.clone(), p.normalized.clone()))
            .collect(),
    )
}

#[test]
fn parallel_filter_and_score_equal_one_thread() {
    let nodes = cluster();
    for pct in [0, 10, 100] {
        let one = framework(pct, Parallelizer::sequential());
        for threads in [2, 3, 8] {
            let many = framework(pct, Parallelizer::new(threads, 0));
            for (what, p) in pods() {
                for start in [0, 1234, 1999] {
                    let case = format!("{what}, {pct}%, {threads} threads, start {start}");
                    let (want, feasible, mut state) = filter(&one, &p, &nodes, start);
                    let (got, feasible_many, mut state_many) = filter(&many, &p, &nodes, start);
                    assert_eq!(got, want, "{case}");
                    if feasible.len() < 2 {
                        continue;
                    }
                    let want = one
                        .score_nodes(&mut state, &p, &feasible, &nodes)
                        .expect("scores");
                    let got = many
                        .score_nodes(&mut state_many, &p, &feasible_many, &nodes)
                        .expect("scores");
                    assert_eq!(comparable(&got), comparable(&want), "{case}");
                }
            }
        }
    }
}

#[test]
fn the_cluster_exercises_rejections_and_early_stops() {
    // Guards the test above against a cluster where nothing interesting
    // happens: some pods are rejected by several plugins, the adaptive
    // share stops before the end, and one pod fits nowhere.
    let nodes = cluster();
    let fw = framework(0, Parallelizer::new(2, 0));
    let (plain, _, _) = filter(&fw, &pods()[0].1, &nodes, 0);
    assert!(
        plain.evaluated < nodes.len() && plain.feasible.len() == 680,
        "{}",
        plain.evaluated
    );
    let plugins: std::collections::BTreeSet<String> = plain
        .rejected
        .iter()
        .map(|(_, s)| s.split(' ').nth(1).unwrap_or("").to_string())
        .collect();
    assert!(plugins.len() >= 3, "{plugins:?}");
    let (nowhere, _, _) = filter(&fw, &pods()[4].1, &nodes, 0);
    assert_eq!(nowhere.fit_error.map(|e| e.len()), Some(nodes.len()));
}
