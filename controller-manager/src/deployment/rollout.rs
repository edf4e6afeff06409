//! One sync of a Deployment over its ReplicaSets (`sync.go`,
//! `rolling.go`, `recreate.go`): find or create the new ReplicaSet, then
//! scale new and old ones within the strategy's bounds.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::util::{
    self, DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION, spec_replicas, status_of,
};
use super::{Ctx, bump_collision_count};
use crate::Error;
use crate::claim::Owner;
use crate::events::{WARNING, api_message};

pub struct Sync {
    pub d: Deployment,
    pub api: Api<ReplicaSet>,
    /// The ReplicaSets this Deployment controls, kept current as we write.
    pub sets: Vec<ReplicaSet>,
    pub ctx: Arc<Ctx>,
}

fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn created(rs: &ReplicaSet) -> (Option<jiff::Timestamp>, String) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rs.name_any(),
    )
}

impl Sync {
    pub fn recreate(&self) -> bool {
        self.d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate")
    }

    /// Index of the ReplicaSet whose template is the Deployment's
    /// (the oldest one, if several).
    pub fn new_index_public(&self) -> Option<usize> {
        self.new_index()
    }

    fn new_index(&self) -> Option<usize> {
        let t = template(&self.d);
        let mut idx: Vec<usize> = (0..self.sets.len())
            .filter(|&i| {
                self.sets[i]
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|rt| util::equal_ignore_hash(rt, &t))
            })
            .collect();
        idx.sort_by_key(|&i| created(&self.sets[i]));
        idx.first().copied()
    }

    fn old_indices(&self) -> Vec<usize> {
        let new = self.new_index();
        let mut v: Vec<usize> = (0..self.sets.len()).filter(|&i| Some(i) != new).collect();
        v.sort_by_key(|&i| created(&self.sets[i]));
        v
    }

    /// A replica-count change that is not a template change: some active
    /// set's desired-replicas annotation disagrees with `spec.replicas`.
    pub fn is_scaling_event(&self) -> bool {
        let want = i64::from(util::replicas(&self.d));
        self.sets
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| util::annotation(rs, DESIRED_REPLICAS).is_some_and(|v| v != want))
    }

    pub fn complete(&self) -> bool {
        let s = self.d.status.clone().unwrap_or_default();
        let want = util::replicas(&self.d);
        s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && s.available_replicas == Some(want)
            && s.observed_generation >= self.d.metadata.generation
    }

    /// Finds the new ReplicaSet, syncing its revision, or creates it.
    async fn new_replica_set(&mut self, create: bool) -> Result<Option<usize>, Error> {
        let max_old = self
            .old_indices()
            .iter()
            .map(|&i| util::revision(&self.sets[i]))
            .max()
            .unwrap_or(0);
        let revision = max_old + 1;
        if let Some(i) = self.new_index() {
            if util::revision(&self.sets[i]) < revision {
                let name = self.sets[i].name_any();
                let patch = json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
                self.sets[i] = self
                    .api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            self.set_deployment_revision(util::revision(&self.sets[i]))
                .await?;
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let mut t = template(&self.d);
        let hash = util::pod_template_hash(&t, collisions);
        t.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let replicas = if self.recreate() {
            0
        } else {
            self.new_rs_replicas(0)
        };
        let (surge, _) = util::fenceposts(&self.d);
        let want = util::replicas(&self.d);
        let mut annotations = self.copied_annotations();
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), want.to_string());
        annotations.insert(MAX_REPLICAS.into(), (want + surge).to_string());
        let name = format!("{}-{hash}", self.d.name_any());
        let selector_for_owner = super::selector_of(&self.d)?;
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                labels: t.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![Owner::of(&self.d, selector_for_owner).reference()]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(t),
            }),
            status: None,
        };
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if replicas > 0 {
                    self.ctx
                        .recorder
                        .normal(
                            &self.d,
                            "ScalingReplicaSet",
                            format!("Scaled up replica set {name} from 0 to {replicas}"),
                        )
                        .await;
                }
                self.sets.push(created);
                self.set_deployment_revision(revision).await?;
                self.record_new_replica_set(&name).await?;
                Ok(Some(self.sets.len() - 1))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // A set of that name exists with another template (a hash
                // collision) or is not in our cache yet: change the hash
                // and retry through the error path.
                let existing = self.api.get_opt(&name).await?;
                let ours = existing.as_ref().is_some_and(|e| {
                    e.spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|et| util::equal_ignore_hash(et, &template(&self.d)))
                });
                match existing {
                    // Ours, just not in the cache yet.
                    Some(e)
                        if ours
                            && crate::claim::controller_of(&e)
                                .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref()) =>
                    {
                        self.sets.push(e);
                        Ok(Some(self.sets.len() - 1))
                    }
                    _ => {
                        if !ours {
                            let dapi: Api<Deployment> = Api::namespaced(
                                self.ctx.client.clone(),
                                &self.d.namespace().unwrap_or_default(),
                            );
                            bump_collision_count(&dapi, &self.d).await?;
                        }
                        Err(kube::Error::Api(s).into())
                    }
                }
            }
            Err(e) => {
                self.ctx.recorder.emit(
                    &self.d,
                    WARNING,
                    "ReplicaSetCreateError",
                    format!(
                        "Failed to create new replica set \"{name}\": {}",
                        api_message(&e)
                    ),
                );
                Err(e.into())
            }
        }
    }

    /// `SetDeploymentRevision`: the Deployment carries the revision of its
    /// new ReplicaSet in the same annotation (`kubectl describe` shows it,
    /// `kubectl rollout status --revision` checks it).
    async fn set_deployment_revision(&mut self, revision: i64) -> Result<(), Error> {
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .and_then(|v| v.parse::<i64>().ok());
        if current == Some(revision) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        );
        let patch = json!({"metadata": {
            "resourceVersion": self.d.metadata.resource_version,
            "annotations": {REVISION: revision.to_string()},
        }});
        let updated = api
            .patch_status(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        self.d.metadata = updated.metadata;
        Ok(())
    }

    /// Deployment annotations a ReplicaSet inherits (not kubectl's
    /// last-applied configuration nor the controller's own).
    fn copied_annotations(&self) -> std::collections::BTreeMap<String, String> {
        let mut a = self.d.metadata.annotations.clone().unwrap_or_default();
        a.retain(|k, _| {
            k != "kubectl.kubernetes.io/last-applied-configuration"
                && k != REVISION
                && k != DESIRED_REPLICAS
                && k != MAX_REPLICAS
                && k != "deployment.kubernetes.io/revision-history"
        });
        a
    }

    /// `NewRSNewReplicas` for RollingUpdate: grow the new set as far as
    /// maxSurge allows. Each set counts with the larger of its desired and
    /// actual size, so pods an old set has not yet removed still count
    /// against the surge.
    fn new_rs_replicas(&self, current_new: i32) -> i32 {
        let want = util::replicas(&self.d);
        let (surge, _) = util::fenceposts(&self.d);
        let current: i32 = self
            .sets
            .iter()
            .map(|rs| spec_replicas(rs).max(status_of(rs).0))
            .sum();
        let max_total = want + surge;
        if current >= max_total {
            return current_new;
        }
        let up = (max_total - current).min(want - current_new).max(0);
        current_new + up
    }

    /// Scales set `i` to `n`, refreshing the replica annotations.
    async fn scale(&mut self, i: usize, n: i32) -> Result<bool, Error> {
        let rs = &self.sets[i];
        let want = util::replicas(&self.d);
        let (surge, _) = util::fenceposts(&self.d);
        let old = spec_replicas(rs);
        let annotations_ok = util::annotation(rs, DESIRED_REPLICAS) == Some(i64::from(want))
            && util::annotation(rs, MAX_REPLICAS) == Some(i64::from(want + surge));
        if old == n && annotations_ok {
            return Ok(false);
        }
        let name = rs.name_any();
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.metadata.resource_version,
                "annotations": {DESIRED_REPLICAS: want.to_string(), MAX_REPLICAS: (want + surge).to_string()},
            },
            "spec": {"replicas": n},
        });
        self.sets[i] = self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if old != n {
            let dir = if n > old { "up" } else { "down" };
            self.ctx
                .recorder
                .normal(
                    &self.d,
                    "ScalingReplicaSet",
                    format!("Scaled {dir} replica set {name} from {old} to {n}"),
                )
                .await;
        }
        Ok(old != n)
    }

    pub async fn rollout_rolling(&mut self) -> Result<(), Error> {
        let new = self.new_replica_set(true).await?;
        if let Some(n) = new {
            let want = util::replicas(&self.d);
            let cur = spec_replicas(&self.sets[n]);
            let target = if cur > want {
                want
            } else {
                self.new_rs_replicas(cur)
            };
            if target != cur {
                self.scale(n, target).await?;
                return self.sync_rollout_status(new).await;
            }
        }
        if self.reconcile_old(new).await? {
            return self.sync_rollout_status(new).await;
        }
        self.finish(new).await
    }

    async fn finish(&mut self, new: Option<usize>) -> Result<(), Error> {
        let mut probe = self.d.clone();
        probe.status = Some(self.calculate_status(new));
        let done = {
            let s = probe.status.clone().unwrap_or_default();
            let want = util::replicas(&self.d);
            s.updated_replicas == Some(want)
                && s.replicas == Some(want)
                && s.available_replicas == Some(want)
        };
        if done {
            self.cleanup(new).await?;
        }
        self.sync_rollout_status(new).await
    }

    /// `reconcileOldReplicaSets`: scale old sets down while at least
    /// `replicas - maxUnavailable` pods stay available.
    async fn reconcile_old(&mut self, new: Option<usize>) -> Result<bool, Error> {
        let old = self.old_indices();
        if old
            .iter()
            .map(|&i| spec_replicas(&self.sets[i]))
            .sum::<i32>()
            == 0
        {
            return Ok(false);
        }
        let all: i32 = self.sets.iter().map(spec_replicas).sum();
        let min_available = util::replicas(&self.d) - util::max_unavailable(&self.d);
        let new_unavailable = new.map_or(0, |n| {
            spec_replicas(&self.sets[n]) - status_of(&self.sets[n]).2
        });
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // First drop old pods that are not available anyway.
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let spec = spec_replicas(&self.sets[i]);
            let unhealthy = spec - status_of(&self.sets[i]).2;
            if spec == 0 || unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - cleaned);
            self.scale(i, spec - down).await?;
            cleaned += down;
        }
        let available: i32 = self.sets.iter().map(|rs| status_of(rs).2).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &old {
                if scaled >= total {
                    break;
                }
                let spec = spec_replicas(&self.sets[i]);
                if spec == 0 {
                    continue;
                }
                let down = spec.min(total - scaled);
                self.scale(i, spec - down).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    pub async fn rollout_recreate(&mut self) -> Result<(), Error> {
        let new = self.new_replica_set(false).await?;
        let mut scaled = false;
        for i in self.old_indices() {
            if spec_replicas(&self.sets[i]) > 0 {
                scaled |= self.scale(i, 0).await?;
            }
        }
        if scaled {
            return self.sync_rollout_status(new).await;
        }
        // Recreate waits until no old pod is left. We read the old sets'
        // status, which counts their active pods.
        if self
            .old_indices()
            .iter()
            .any(|&i| status_of(&self.sets[i]).0 > 0)
        {
            return self.sync_rollout_status(new).await;
        }
        let new = match new {
            Some(n) => Some(n),
            None => self.new_replica_set(true).await?,
        };
        if let Some(n) = new {
            let want = util::replicas(&self.d);
            self.scale(n, want).await?;
        }
        self.finish(new).await
    }

    /// `sync`: scaling (also while paused) without rolling.
    pub async fn sync(&mut self, paused: bool) -> Result<(), Error> {
        let new = self.new_replica_set(false).await?;
        self.scale_proportionally(new).await?;
        if paused {
            self.cleanup(new).await?;
        }
        self.sync_status_with(new).await
    }

    /// `scale` in `sync.go`: one active set takes the new size; several
    /// share the change in proportion to their size.
    async fn scale_proportionally(&mut self, new: Option<usize>) -> Result<(), Error> {
        let want = util::replicas(&self.d);
        let active: Vec<usize> = (0..self.sets.len())
            .filter(|&i| spec_replicas(&self.sets[i]) > 0)
            .collect();
        if active.len() <= 1 {
            let target = active
                .first()
                .copied()
                .or(new)
                .or_else(|| self.old_indices().last().copied());
            if let Some(i) = target {
                self.scale(i, want).await?;
            }
            return Ok(());
        }
        if let Some(n) = new {
            let s = &self.sets[n];
            if spec_replicas(s) == want && status_of(s).2 == want {
                for i in self.old_indices() {
                    self.scale(i, 0).await?;
                }
                return Ok(());
            }
        }
        if self.recreate() {
            return Ok(());
        }
        let (surge, _) = util::fenceposts(&self.d);
        let allowed = if want > 0 { want + surge } else { 0 };
        let current: i32 = active.iter().map(|&i| spec_replicas(&self.sets[i])).sum();
        let to_add = allowed - current;
        let mut order = active.clone();
        // Larger sets first; ties to the newer when growing, the older when
        // shrinking (`ReplicaSetsBySizeNewer` / `BySizeOlder`).
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&self.sets[a], &self.sets[b]);
            spec_replicas(rb).cmp(&spec_replicas(ra)).then_with(|| {
                if to_add > 0 {
                    created(rb).cmp(&created(ra))
                } else {
                    created(ra).cmp(&created(rb))
                }
            })
        });
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut added = 0;
        let mut sizes: Vec<(usize, i32)> = Vec::new();
        for &i in &order {
            let rs = &self.sets[i];
            let spec = spec_replicas(rs);
            let fraction = if to_add == 0 {
                0
            } else {
                let annotated = util::annotation(rs, MAX_REPLICAS)
                    .map(|v| v as i32)
                    .filter(|v| *v > 0)
                    .unwrap_or(status_replicas.max(1));
                let size =
                    (f64::from(spec) * f64::from(allowed) / f64::from(annotated)).round() as i32;
                size - spec
            };
            let left = to_add - added;
            let p = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
            added += p;
            sizes.push((i, spec + p));
        }
        if let Some(first) = sizes.first_mut() {
            first.1 += to_add - added;
            first.1 = first.1.max(0);
        }
        for (i, n) in sizes {
            self.scale(i, n).await?;
        }
        Ok(())
    }

    /// Deletes the oldest fully scaled-down sets beyond
    /// `revisionHistoryLimit` (default 10).
    async fn cleanup(&mut self, new: Option<usize>) -> Result<(), Error> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut old: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|&i| Some(i) != new && self.sets[i].metadata.deletion_timestamp.is_none())
            .collect();
        if old.len() <= limit {
            return Ok(());
        }
        old.sort_by_key(|&i| (util::revision(&self.sets[i]), created(&self.sets[i])));
        let excess = old.len() - limit;
        for &i in old.iter().take(excess) {
            let rs = &self.sets[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if spec_replicas(rs) != 0 || status_of(rs).0 != 0 || observed < rs.metadata.generation {
                continue;
            }
            match self
                .api
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
