//! `InterPodAffinity`: pod affinity and anti-affinity between the incoming
//! pod and the pods already placed, per topology domain (a node label's
//! value). Required terms filter nodes ([`filtering`]); preferred terms,
//! and existing pods' terms that name the incoming pod, score them
//! ([`scoring`]).

pub mod filtering;
pub mod scoring;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::selector::LabelSel;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use serde::Deserialize;

use super::ArgsError;
use crate::framework::{FilterPlugin, NodeInfo, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin};

pub use filtering::{
    ERR_REASON_AFFINITY, ERR_REASON_ANTI_AFFINITY, ERR_REASON_EXISTING_ANTI_AFFINITY,
};

pub const NAME: &str = "InterPodAffinity";

/// Topology key → domain value → count or score.
pub(crate) type TopologyCounts = HashMap<String, HashMap<String, i64>>;

/// `InterPodAffinityArgs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    #[serde(default = "default_hard_weight")]
    hard_pod_affinity_weight: i64,
    #[serde(default)]
    ignore_preferred_terms_of_existing_pods: bool,
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
}

fn default_hard_weight() -> i64 {
    1
}

pub struct InterPodAffinity {
    /// What an existing pod's *required* affinity term naming the incoming
    /// pod adds to its domain's score (`hardPodAffinityWeight`, 0–100).
    pub hard_pod_affinity_weight: i64,
    /// Score only by the incoming pod's own preferences.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for InterPodAffinity {
    fn default() -> InterPodAffinity {
        InterPodAffinity {
            hard_pod_affinity_weight: default_hard_weight(),
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

pub fn new(args: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    if args.is_null() {
        return Ok(Arc::new(InterPodAffinity::default()));
    }
    let a: Args = serde_json::from_value(args.clone()).map_err(|e| ArgsError {
        field: "args".into(),
        message: e.to_string(),
    })?;
    if !(0..=100).contains(&a.hard_pod_affinity_weight) {
        return Err(ArgsError {
            field: "hardPodAffinityWeight".into(),
            message: format!(
                "Invalid value: {}: not in valid range [0-100]",
                a.hard_pod_affinity_weight
            ),
        });
    }
    Ok(Arc::new(InterPodAffinity {
        hard_pod_affinity_weight: a.hard_pod_affinity_weight,
        ignore_preferred_terms_of_existing_pods: a.ignore_preferred_terms_of_existing_pods,
    }))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// A term resolved against the pod that carries it (`framework.AffinityTerm`).
pub(crate) struct Term {
    pub topology_key: String,
    /// `None` matches no pods (a nil `labelSelector`).
    selector: Option<LabelSel>,
    /// `None` means every namespace (an empty `namespaceSelector`).
    namespaces: Option<Vec<String>>,
    /// The preference's weight (1 for required terms).
    pub weight: i64,
}

impl Term {
    fn new(t: &PodAffinityTerm, owner: &Pod, weight: i64) -> Term {
        let own_ns = owner
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let listed = t.namespaces.clone().unwrap_or_default();
        let all = t.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        });
        Term {
            topology_key: t.topology_key.clone(),
            selector: t
                .label_selector
                .as_ref()
                .and_then(|s| LabelSel::from_label_selector(s).ok()),
            namespaces: if all {
                None
            } else if listed.is_empty() {
                Some(vec![own_ns])
            } else {
                Some(listed)
            },
            weight,
        }
    }

    pub fn matches(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = BTreeMap::new();
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == ns))
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)))
    }
}

/// The pod's required affinity (or, with `anti`, anti-affinity) terms.
pub(crate) fn required_terms(pod: &Pod, anti: bool) -> Vec<Term> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| Term::new(t, pod, 1))
        .collect()
}

/// The pod's preferred affinity (or anti-affinity) terms with their weights.
pub(crate) fn preferred_terms(pod: &Pod, anti: bool) -> Vec<Term> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms: Option<&Vec<WeightedPodAffinityTerm>> = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| Term::new(&t.pod_affinity_term, pod, i64::from(t.weight)))
        .collect()
}

pub(crate) fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a String> {
    node.node.metadata.labels.as_ref().and_then(|l| l.get(key))
}
