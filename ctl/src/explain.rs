//! `fkctl explain-placement POD`: the scheduler's account of its last
//! attempt for a pod — which filter rejected each node and why, and how
//! each score plugin ranked the feasible nodes.
//!
//! The scheduler's endpoint is found through the API server: the
//! scheduler records its URL on the Lease `kube-system/kube-scheduler`
//! (annotation `scheduler.ferrokube.io/explain-url`), so a user needs
//! only the kubeconfig. `--scheduler URL` names the endpoint directly.

use std::collections::BTreeSet;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use scheduler::explain::{LEASE_NAME, LEASE_NAMESPACE, URL_ANNOTATION};
use scheduler::framework::runtime::Explanation;

use crate::CtlError;
use crate::table::render;

/// The explanations endpoint announced on the scheduler's Lease.
pub async fn scheduler_url(client: &kube::Client) -> Result<String, CtlError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = leases.get_opt(LEASE_NAME).await?.ok_or_else(|| {
        CtlError::NoScheduler(format!("no Lease {LEASE_NAMESPACE}/{LEASE_NAME}"))
    })?;
    lease
        .metadata
        .annotations
        .and_then(|a| a.get(URL_ANNOTATION).cloned())
        .ok_or_else(|| {
            CtlError::NoScheduler(format!(
                "the Lease {LEASE_NAMESPACE}/{LEASE_NAME} has no {URL_ANNOTATION} annotation"
            ))
        })
}

/// Fetches the explanation of `namespace/pod` from `url`.
pub async fn fetch(url: &str, namespace: &str, pod: &str) -> Result<Explanation, CtlError> {
    let endpoint = format!("{}/explain/{namespace}/{pod}", url.trim_end_matches('/'));
    let scheduler_error = |source| CtlError::Scheduler {
        url: url.to_string(),
        source,
    };
    let resp = reqwest::get(&endpoint).await.map_err(scheduler_error)?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(CtlError::NotFound(format!(
            "the scheduler has no attempt recorded for pod {namespace}/{pod} \
             (not yet tried, bound long ago, or not its pod)"
        )));
    }
    let resp = resp.error_for_status().map_err(scheduler_error)?;
    let body = resp.bytes().await.map_err(scheduler_error)?;
    serde_json::from_slice(&body).map_err(CtlError::Decode)
}

/// The explanation as text: a summary, the rejected nodes with the filter
/// and its reasons, and the score breakdown of the best feasible nodes.
pub fn render_explanation(e: &Explanation) -> String {
    let mut out = format!(
        "Pod:        {}\nProfile:    {}\nAttempted:  {}\n",
        e.pod, e.profile, e.time
    );
    match (&e.selected_node, &e.message) {
        (Some(node), _) => out.push_str(&format!("Result:     scheduled to {node}\n")),
        (None, Some(msg)) => out.push_str(&format!("Result:     unschedulable: {msg}\n")),
        (None, None) => out.push_str("Result:     unschedulable\n"),
    }
    out.push_str(&format!(
        "Nodes:      {} in the cluster, {} evaluated, {} feasible\n",
        e.num_all_nodes, e.num_evaluated, e.num_feasible
    ));
    if let Some(pre) = &e.pre_filter {
        out.push_str(&format!(
            "\nPreFilter {} rejected the pod on every node: {}\n",
            pre.plugin.as_deref().unwrap_or("?"),
            pre.message()
        ));
    }
    if !e.filters.is_empty() {
        out.push_str("\nRejected by Filter:\n");
        let rows: Vec<Vec<String>> = e
            .filters
            .iter()
            .map(|v| {
                vec![
                    v.node.clone(),
                    v.status.plugin.clone().unwrap_or_default(),
                    v.status.message(),
                ]
            })
            .collect();
        out.push_str(&render(
            &["NODE".into(), "FILTER".into(), "REASON".into()],
            &rows,
        ));
    }
    if !e.scores.is_empty() {
        let plugins: BTreeSet<&String> = e.scores.iter().flat_map(|s| s.plugins.keys()).collect();
        out.push_str(&format!(
            "\nScores of the {} best feasible nodes (each cell: normalised score x weight = points; raw score in brackets):\n",
            e.scores.len()
        ));
        let mut header = vec!["NODE".to_string(), "TOTAL".to_string()];
        header.extend(plugins.iter().map(|p| p.to_string()));
        let rows: Vec<Vec<String>> = e
            .scores
            .iter()
            .map(|s| {
                let mut row = vec![s.node.clone(), s.total.to_string()];
                for p in &plugins {
                    row.push(match s.plugins.get(*p) {
                        Some(ps) => format!(
                            "{}x{}={} [{}]",
                            ps.normalized, ps.weight, ps.weighted, ps.raw
                        ),
                        None => "-".into(),
                    });
                }
                row
            })
            .collect();
        out.push_str(&render(&header, &rows));
    } else if e.selected_node.is_some() && e.num_feasible == 1 {
        out.push_str("\nOnly one node was feasible, so none were scored.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explanations_render_rejections_and_scores_as_tables() {
        let e: Explanation = serde_json::from_value(json!({
            "pod": "d/web", "profile": "default-scheduler", "time": "t",
            "numAllNodes": 3, "numEvaluated": 3, "numFeasible": 2,
            "filters": [{"node": "n3", "status": {"code": "Unschedulable",
                "reasons": ["Insufficient cpu"], "plugin": "NodeResourcesFit"}}],
            "scores": [
                {"node": "n1", "total": 150, "plugins": {
                    "NodeResourcesFit": {"raw": 90, "normalized": 90, "weight": 1, "weighted": 90},
                    "TaintToleration": {"raw": 0, "normalized": 20, "weight": 3, "weighted": 60}}},
                {"node": "n2", "total": 80, "plugins": {
                    "NodeResourcesFit": {"raw": 80, "normalized": 80, "weight": 1, "weighted": 80}}}
            ],
            "selectedNode": "n1"
        }))
        .expect("explanation");
        let text = render_explanation(&e);
        assert!(text.contains("Result:     scheduled to n1"), "{text}");
        assert!(
            text.contains("n3     NodeResourcesFit   Insufficient cpu"),
            "{text}"
        );
        assert!(
            text.contains("n1     150     90x1=90 [90]       20x3=60 [0]"),
            "{text}"
        );
        assert!(text.contains("n2     80      80x1=80 [80]       -"), "{text}");
    }
}
