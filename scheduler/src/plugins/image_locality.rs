//! `ImageLocality`: prefers nodes that already have the pod's images,
//! weighting each image by its size and by how widely it is spread (so an
//! image on every node does not pull all pods to one of them).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::ArgsError;
use crate::framework::node_info::normalize_image;
use crate::framework::{Snapshot, 
    CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PreScorePlugin, ScorePlugin, Status,
};

pub const NAME: &str = "ImageLocality";
const STATE_KEY: &str = "PreScoreImageLocality";
const MB: i64 = 1024 * 1024;
/// Images smaller than this do not count (`minThreshold`).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, more than this counts as this (`maxContainerThreshold`).
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(ImageLocality))
}

struct Spread {
    /// The pod's images, normalised.
    images: Vec<String>,
    /// Normalised image → number of nodes that have it.
    nodes_with: HashMap<String, i64>,
    total_nodes: i64,
}

fn pod_images(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .filter_map(|c| c.image.as_deref())
        .map(normalize_image)
        .collect()
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        all: &Snapshot,
    ) -> Status {
        let images = pod_images(pod);
        let mut nodes_with = HashMap::new();
        for image in &images {
            let count = all.iter().filter(|n| n.images.contains_key(image)).count() as i64;
            nodes_with.insert(image.clone(), count);
        }
        state.write(
            STATE_KEY,
            Spread {
                images,
                nodes_with,
                total_nodes: all.len() as i64,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(spread) = state.read::<Spread>(STATE_KEY) else {
            return Err(Status::error("ImageLocality: PreScore state missing"));
        };
        let mut sum = 0i64;
        for image in &spread.images {
            if let Some(size) = node.images.get(image) {
                let with = spread.nodes_with.get(image).copied().unwrap_or(1);
                sum += (*size as f64 * with as f64 / spread.total_nodes.max(1) as f64) as i64;
            }
        }
        let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len() as i64);
        let max = MAX_CONTAINER_THRESHOLD * containers.max(1);
        let sum = sum.clamp(MIN_THRESHOLD, max);
        Ok(MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod, run_score};
    use serde_json::{Value, json};

    fn with_images(name: &str, images: Value) -> Arc<NodeInfo> {
        node(json!({"metadata": {"name": name}, "status": {"images": images}}))
    }

    #[test]
    fn nodes_with_large_widely_absent_images_score_higher() {
        let big = json!([{"names": ["docker.io/library/big:1"], "sizeBytes": 1000 * MB}]);
        let small = json!([{"names": ["small:1"], "sizeBytes": 10 * MB}]);
        let p = |img: &str| pod(json!({"spec": {"containers": [{"name": "c", "image": img}]}}));
        let cases = [
            (
                "big image on one of two nodes",
                vec![with_images("a", big.clone()), with_images("b", json!([]))],
                p("big:1"),
                vec![48, 0],
            ),
            (
                "big image on both nodes",
                vec![with_images("a", big.clone()), with_images("b", big)],
                p("big:1"),
                vec![100, 100],
            ),
            (
                "small image under the threshold",
                vec![with_images("a", small), with_images("b", json!([]))],
                p("small:1"),
                vec![0, 0],
            ),
        ];
        for (name, nodes, pod, want) in cases {
            assert_eq!(run_score(&ImageLocality, &pod, &nodes), want, "{name}");
        }
    }
}
