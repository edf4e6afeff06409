//! `/stats/summary`: the Summary API's node and pod figures from the
//! cgroup v1 hierarchies the kubelet places pods in
//! (`<controller>/<parent>/pod<uid>/<container-id>`): CPU time from
//! `cpuacct.usage`, memory usage from `memory.usage_in_bytes`, and the
//! working set as usage minus inactive file pages, as cAdvisor computes it.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cgroups::CGROUP_ROOT;
use crate::containers::{self, FoundState};
use crate::worker::NodeContext;

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn inactive_file(memory_stat: &str) -> Option<u64> {
    memory_stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU and memory of one cgroup (`relative` under each controller).
pub fn cgroup_stats(root: &Path, relative: &str, time: &str) -> Value {
    let mut out = json!({});
    if let Some(cpu) = read_u64(&root.join("cpuacct").join(relative).join("cpuacct.usage")) {
        out["cpu"] = json!({"time": time, "usageCoreNanoSeconds": cpu});
    }
    let memory = root.join("memory").join(relative);
    if let Some(usage) = read_u64(&memory.join("memory.usage_in_bytes")) {
        let inactive = std::fs::read_to_string(memory.join("memory.stat"))
            .ok()
            .and_then(|s| inactive_file(&s))
            .unwrap_or(0);
        out["memory"] = json!({
            "time": time,
            "usageBytes": usage,
            "workingSetBytes": usage.saturating_sub(inactive),
        });
    }
    out
}

pub async fn summary(State(ctx): State<Arc<NodeContext>>) -> Response {
    let root = Path::new(CGROUP_ROOT);
    let now = jiff::Timestamp::now().to_string();
    let mut node = cgroup_stats(root, "", &now);
    node["nodeName"] = ctx.node_name.clone().into();
    let parent = ctx.cgroup_parent.trim_matches('/').to_string();
    let mut pods = Vec::new();
    let listed = ctx.runtime.list_containers(&[]).await.unwrap_or_default();
    let mut uids: Vec<(String, String, String)> = listed
        .iter()
        .filter_map(|c| {
            Some((
                c.labels.get(containers::LABEL_POD_UID)?.clone(),
                c.labels.get(containers::LABEL_POD_NAMESPACE)?.clone(),
                c.labels.get(containers::LABEL_POD_NAME)?.clone(),
            ))
        })
        .collect();
    uids.sort();
    uids.dedup();
    for (uid, namespace, name) in uids {
        let found = containers::find(&ctx.runtime, &uid)
            .await
            .unwrap_or_default();
        let pod_cgroup = format!("{parent}/pod{uid}");
        let containers: Vec<Value> = found
            .iter()
            .filter(|f| f.state == FoundState::Running)
            .map(|f| {
                let mut c = cgroup_stats(root, &format!("{pod_cgroup}/{}", f.id), &now);
                c["name"] = f.name.clone().into();
                if let Some(t) = f.started_at {
                    c["startTime"] = t.to_string().into();
                }
                c
            })
            .collect();
        let mut pod = cgroup_stats(root, &pod_cgroup, &now);
        pod["podRef"] = json!({"name": name, "namespace": namespace, "uid": uid});
        pod["containers"] = Value::Array(containers);
        pods.push(pod);
    }
    axum::Json(json!({"node": node, "pods": pods})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_cgroup_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cpu = dir.path().join("cpuacct/k/pod1");
        let mem = dir.path().join("memory/k/pod1");
        std::fs::create_dir_all(&cpu).expect("dir");
        std::fs::create_dir_all(&mem).expect("dir");
        std::fs::write(cpu.join("cpuacct.usage"), "12345\n").expect("write");
        std::fs::write(mem.join("memory.usage_in_bytes"), "1000\n").expect("write");
        std::fs::write(
            mem.join("memory.stat"),
            "cache 5\ntotal_inactive_file 300\n",
        )
        .expect("write");
        let s = cgroup_stats(dir.path(), "k/pod1", "t");
        assert_eq!(s["cpu"]["usageCoreNanoSeconds"], 12345);
        assert_eq!(s["memory"]["usageBytes"], 1000);
        assert_eq!(s["memory"]["workingSetBytes"], 700);
        assert_eq!(cgroup_stats(dir.path(), "missing", "t"), json!({}));
    }
}
