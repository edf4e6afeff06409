//! The `KubeSchedulerConfiguration` file (`--config`): profiles with
//! enabled and disabled plugins per extension point, score weights and
//! plugin arguments, turned into one [`Framework`] per profile. Mistakes
//! refuse to start with a message naming the field, as kube-scheduler's
//! strict decoding and validation do.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::Plugin;
use super::parallel::{DEFAULT_MIN_NODES, Parallelizer};
use super::runtime::Framework;
use crate::plugins::{BUILTIN_STAGES, DEFAULT_PLUGINS, Factory, registry};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read scheduler configuration {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode scheduler configuration: {0}")]
    Decode(#[source] serde_yaml_ng::Error),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    // Accepted for compatibility with existing files; this scheduler has no
    // leader election or client tuning of its own.
    #[serde(default, rename = "leaderElection")]
    _leader_election: Option<serde_json::Value>,
    #[serde(default, rename = "clientConnection")]
    _client_connection: Option<serde_json::Value>,
    /// Threads Filter and Score use per cycle (kube-scheduler's default
    /// is 16; unset, ours is the number of cores).
    #[serde(default)]
    pub parallelism: Option<i64>,
    #[serde(default, rename = "podInitialBackoffSeconds")]
    pub pod_initial_backoff_seconds: Option<i64>,
    #[serde(default, rename = "podMaxBackoffSeconds")]
    pub pod_max_backoff_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub multi_point: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: serde_json::Value,
}

impl KubeSchedulerConfiguration {
    pub fn from_yaml(text: &str) -> Result<KubeSchedulerConfiguration, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(ConfigError::Decode)
    }

    pub fn from_file(path: &std::path::Path) -> Result<KubeSchedulerConfiguration, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// One framework per profile (the default profile when none is given).
    pub fn build(&self) -> Result<Vec<Framework>, ConfigError> {
        if let Some(kind) = self
            .kind
            .as_deref()
            .filter(|k| *k != "KubeSchedulerConfiguration")
        {
            return Err(invalid(
                "kind",
                format!(
                    "Unsupported value: {kind:?}: supported values: \"KubeSchedulerConfiguration\""
                ),
            ));
        }
        let global = check_percentage(
            "percentageOfNodesToScore",
            self.percentage_of_nodes_to_score,
        )?;
        let default_profile = [Profile::default()];
        let profiles = if self.profiles.is_empty() {
            &default_profile[..]
        } else {
            &self.profiles[..]
        };
        let parallelizer = Arc::new(match self.parallelism {
            None => Parallelizer::from_available_cores(),
            Some(p) if p > 0 => {
                Parallelizer::new(usize::try_from(p).unwrap_or(usize::MAX), DEFAULT_MIN_NODES)
            }
            Some(p) => {
                return Err(invalid(
                    "parallelism",
                    format!("Invalid value: {p}: should be an integer greater than 0"),
                ));
            }
        });
        let factories: HashMap<&str, Factory> = registry().into_iter().collect();
        let mut out: Vec<Framework> = Vec::new();
        for (i, p) in profiles.iter().enumerate() {
            let path = format!("profiles[{i}]");
            let fw = build_profile(p, &path, &factories, global, &parallelizer)?;
            if out.iter().any(|f| f.scheduler_name == fw.scheduler_name) {
                return Err(invalid(
                    format!("{path}.schedulerName"),
                    format!("Duplicate value: {:?}", fw.scheduler_name),
                ));
            }
            out.push(fw);
        }
        Ok(out)
    }
}

fn check_percentage(field: &str, v: Option<i64>) -> Result<Option<u32>, ConfigError> {
    match v {
        None => Ok(None),
        Some(p) if (0..=100).contains(&p) => Ok(Some(p as u32)),
        Some(p) => Err(invalid(
            field,
            format!("Invalid value: {p}: not in valid range [0-100]"),
        )),
    }
}

/// The plugins enabled at one extension point: defaults that implement it,
/// minus the disabled ones (`*` disables all defaults), plus the enabled.
fn resolve(
    point: &str,
    multi: &PluginSet,
    set: &PluginSet,
    implements: impl Fn(&str) -> bool,
    path: &str,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Option<i64>)>, ConfigError> {
    for (which, s) in [("multiPoint", multi), (point, set)] {
        for (kind, list) in [("enabled", &s.enabled), ("disabled", &s.disabled)] {
            for (j, r) in list.iter().enumerate() {
                let field = format!("{path}.plugins.{which}.{kind}[{j}]");
                if !(known(&r.name) || (kind == "disabled" && r.name == "*")) {
                    return Err(invalid(
                        format!("{field}.name"),
                        format!("Invalid value: {:?}: unknown plugin", r.name),
                    ));
                }
                if let Some(w) = r.weight
                    && w < 0
                {
                    return Err(invalid(
                        format!("{field}.weight"),
                        format!("Invalid value: {w}: must be greater than or equal to 0"),
                    ));
                }
            }
        }
    }
    let disabled = |name: &str| {
        [multi, set]
            .iter()
            .any(|s| s.disabled.iter().any(|d| d.name == "*" || d.name == name))
    };
    let mut out: Vec<(String, Option<i64>)> = DEFAULT_PLUGINS
        .iter()
        .filter(|(n, _)| implements(n) && !disabled(n))
        .map(|(n, w)| (n.to_string(), (*w > 0).then_some(*w)))
        .collect();
    for r in multi.enabled.iter().chain(set.enabled.iter()) {
        if !implements(&r.name) {
            continue;
        }
        match out.iter_mut().find(|(n, _)| *n == r.name) {
            Some(entry) => {
                if r.weight.is_some_and(|w| w > 0) {
                    entry.1 = r.weight;
                }
            }
            None => out.push((r.name.clone(), r.weight.filter(|w| *w > 0))),
        }
    }
    Ok(out)
}

fn build_profile(
    p: &Profile,
    path: &str,
    factories: &HashMap<&str, Factory>,
    global_pct: Option<u32>,
    parallelizer: &Arc<Parallelizer>,
) -> Result<Framework, ConfigError> {
    let pct = check_percentage(
        &format!("{path}.percentageOfNodesToScore"),
        p.percentage_of_nodes_to_score,
    )?;
    let empty = Plugins::default();
    let plugins = p.plugins.as_ref().unwrap_or(&empty);
    let mut args: HashMap<&str, &serde_json::Value> = HashMap::new();
    for (j, c) in p.plugin_config.iter().enumerate() {
        if !factories.contains_key(c.name.as_str()) && !BUILTIN_STAGES.contains(&c.name.as_str()) {
            return Err(invalid(
                format!("{path}.pluginConfig[{j}].name"),
                format!("Invalid value: {:?}: unknown plugin", c.name),
            ));
        }
        if args.insert(c.name.as_str(), &c.args).is_some() {
            return Err(invalid(
                format!("{path}.pluginConfig[{j}].name"),
                format!("Duplicate value: {:?}", c.name),
            ));
        }
    }
    // Each plugin is built once and shared by the points it is enabled at.
    let mut built: HashMap<String, Arc<dyn Plugin>> = HashMap::new();
    for (name, factory) in factories {
        let a = args.get(name).copied().unwrap_or(&serde_json::Value::Null);
        let plugin = factory(a).map_err(|e| {
            let j = p
                .plugin_config
                .iter()
                .position(|c| c.name == *name)
                .unwrap_or(0);
            invalid(
                format!(
                    "{path}.pluginConfig[{j}].args.{}",
                    e.field.trim_start_matches("args")
                ),
                e.message,
            )
        })?;
        built.insert(name.to_string(), plugin);
    }
    let known = |n: &str| built.contains_key(n) || BUILTIN_STAGES.contains(&n);
    let has = |n: &str, f: fn(&dyn Plugin) -> bool| built.get(n).is_some_and(|p| f(p.as_ref()));
    let pick = |list: Vec<(String, Option<i64>)>| -> Vec<Arc<dyn Plugin>> {
        list.into_iter()
            .filter_map(|(n, _)| built.get(&n).cloned())
            .collect()
    };
    let mp = &plugins.multi_point;
    let pre_filters = pick(resolve(
        "preFilter",
        mp,
        &plugins.pre_filter,
        |n| has(n, |p| p.as_pre_filter().is_some()),
        path,
        known,
    )?);
    let filters = pick(resolve(
        "filter",
        mp,
        &plugins.filter,
        |n| has(n, |p| p.as_filter().is_some()),
        path,
        known,
    )?);
    let pre_scores = pick(resolve(
        "preScore",
        mp,
        &plugins.pre_score,
        |n| has(n, |p| p.as_pre_score().is_some()),
        path,
        known,
    )?);
    let scores = resolve(
        "score",
        mp,
        &plugins.score,
        |n| has(n, |p| p.as_score().is_some()),
        path,
        known,
    )?
    .into_iter()
    .filter_map(|(n, w)| built.get(&n).cloned().map(|p| (p, w.unwrap_or(1))))
    .collect();
    // Other points only need their names checked.
    for (point, set) in [
        ("postFilter", &plugins.post_filter),
        ("queueSort", &plugins.queue_sort),
        ("bind", &plugins.bind),
        ("preEnqueue", &plugins.pre_enqueue),
        ("reserve", &plugins.reserve),
        ("permit", &plugins.permit),
        ("preBind", &plugins.pre_bind),
        ("postBind", &plugins.post_bind),
    ] {
        resolve(point, mp, set, |_| false, path, known)?;
    }
    let preemption_off = [mp, &plugins.post_filter].iter().any(|s| {
        s.disabled
            .iter()
            .any(|d| d.name == "*" || d.name == "DefaultPreemption")
    }) && ![mp, &plugins.post_filter]
        .iter()
        .any(|s| s.enabled.iter().any(|d| d.name == "DefaultPreemption"));
    Ok(Framework {
        scheduler_name: p
            .scheduler_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string()),
        pre_filters,
        filters,
        pre_scores,
        scores,
        preemption: !preemption_off,
        percentage_of_nodes_to_score: pct.or(global_pct).unwrap_or(0),
        parallelizer: parallelizer.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[Arc<dyn Plugin>]) -> Vec<&'static str> {
        list.iter().map(|p| p.name()).collect()
    }

    #[test]
    fn no_profiles_gives_the_default_profile() {
        let fws = KubeSchedulerConfiguration::default()
            .build()
            .expect("default");
        assert_eq!(fws.len(), 1);
        let fw = &fws[0];
        assert_eq!(fw.scheduler_name, DEFAULT_SCHEDULER_NAME);
        assert_eq!(
            names(&fw.filters),
            vec![
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        let weights: Vec<(&str, i64)> = fw.scores.iter().map(|(p, w)| (p.name(), *w)).collect();
        assert_eq!(
            weights,
            vec![
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1)
            ]
        );
        assert!(fw.preemption);
    }

    #[test]
    fn profiles_enable_disable_and_reweight_plugins() {
        let cfg = KubeSchedulerConfiguration::from_yaml(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
profiles:
- schedulerName: bin-packer
  plugins:
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    postFilter:
      disabled: [{name: DefaultPreemption}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
"#,
        )
        .expect("yaml");
        let fws = cfg.build().expect("valid");
        let fw = &fws[0];
        assert_eq!(fw.scheduler_name, "bin-packer");
        assert_eq!(fw.percentage_of_nodes_to_score, 30);
        let weights: Vec<(&str, i64)> = fw.scores.iter().map(|(p, w)| (p.name(), *w)).collect();
        assert_eq!(weights, vec![("NodeResourcesFit", 5)]);
        assert!(!fw.preemption);
        assert_eq!(fw.filters.len(), 8);
    }

    #[test]
    fn parallelism_is_honoured_and_shared_by_every_profile() {
        let fws = KubeSchedulerConfiguration::from_yaml(
            "parallelism: 3\nprofiles:\n- {}\n- schedulerName: other\n",
        )
        .and_then(|c| c.build())
        .expect("valid");
        assert_eq!(fws[0].parallelizer.parallelism(), 3);
        assert!(Arc::ptr_eq(&fws[0].parallelizer, &fws[1].parallelizer));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = KubeSchedulerConfiguration::default()
            .build()
            .expect("default");
        assert_eq!(default[0].parallelizer.parallelism(), cores);
    }

    #[test]
    fn mistakes_refuse_to_start_naming_the_field() {
        let cases = [
            (
                "profiles:\n- plugins:\n    score:\n      enabled: [{name: Bogus}]\n",
                "profiles[0].plugins.score.enabled[0].name",
            ),
            (
                "profiles:\n- plugins:\n    filter:\n      enabled: [{name: NodePorts}, {name: Nope}]\n",
                "profiles[0].plugins.filter.enabled[1].name",
            ),
            (
                "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: -2}]\n",
                "profiles[0].plugins.score.enabled[0].weight",
            ),
            (
                "percentageOfNodesToScore: 120\n",
                "percentageOfNodesToScore",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: Weird}}\n",
                "profiles[0].pluginConfig[0].args.scoringStrategy.type",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: Unknown\n",
                "profiles[0].pluginConfig[0].name",
            ),
            ("profiles:\n- {}\n- {}\n", "profiles[1].schedulerName"),
            ("parallelism: 0\n", "parallelism"),
        ];
        for (yaml, field) in cases {
            let err = KubeSchedulerConfiguration::from_yaml(yaml)
                .and_then(|c| c.build())
                .err()
                .expect("refused");
            assert!(
                err.to_string().starts_with(&format!("{field}:")),
                "{yaml}: {err}"
            );
        }
        let Err(unknown) = KubeSchedulerConfiguration::from_yaml("profiles:\n- schedulerNam: x\n")
        else {
            panic!("an unknown field must be refused");
        };
        assert!(unknown.to_string().contains("schedulerNam"), "{unknown}");
    }
}
