//! The served kinds: each resource of `common::resources::RESOURCES` bound
//! to its k8s-openapi type and strategy. Adding a kind is one line here
//! plus its strategy and printer.

use std::collections::HashMap;
use std::sync::Arc;

use common::ResourceInfo;

use crate::admission::Admission;
use crate::cache::{Cache, ResourceCache};
use crate::registry::hooks::WriteHooks;
use crate::registry::rest::Registry;
use crate::registry::store::{Shared, Store};
use crate::registry::strategies::*;
use crate::registry::{Printer, Strategy};

pub type Key = (&'static str, &'static str, &'static str);

/// A kind whose cache is registered but whose store waits for `Shared`.
trait Pending {
    fn build(
        self: Box<Self>,
        shared: Arc<Shared>,
        hooks: Option<Arc<dyn WriteHooks>>,
    ) -> Arc<dyn Registry>;
}

struct PendingStore<S: Strategy> {
    info: &'static ResourceInfo,
    strategy: Arc<S>,
    cache: Arc<ResourceCache>,
}

impl<S> Pending for PendingStore<S>
where
    S: Strategy,
    S::Object: Printer,
{
    fn build(
        self: Box<Self>,
        shared: Arc<Shared>,
        hooks: Option<Arc<dyn WriteHooks>>,
    ) -> Arc<dyn Registry> {
        let store = Store::new(self.info, self.strategy, self.cache, shared);
        Arc::new(match hooks {
            Some(h) => store.with_hooks(h),
            None => store,
        })
    }
}

/// Registers every kind's cache; the stores are built by [`Kinds::build`].
pub struct Kinds {
    pending: Vec<(Key, Box<dyn Pending>)>,
    pub namespaces: Option<Arc<ResourceCache>>,
}

impl Kinds {
    fn add<S>(&mut self, cache: &mut Cache, group: &str, plural: &str, strategy: S)
    where
        S: Strategy,
        S::Object: Printer,
    {
        let Some(info) = common::resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural)
        else {
            return;
        };
        let strategy = Arc::new(strategy);
        let rc = cache.register(info.storage_prefix(), Store::<S>::decoder(strategy.clone()));
        if info.group.is_empty() && info.plural == "namespaces" {
            self.namespaces = Some(rc.clone());
        }
        self.pending.push((
            (info.group, info.version, info.plural),
            Box::new(PendingStore {
                info,
                strategy,
                cache: rc,
            }),
        ));
    }

    /// Registers the caches of all served kinds; `admission` says which
    /// admission plugins mutate new pods.
    pub fn register(cache: &mut Cache, admission: Admission) -> Kinds {
        let mut k = Kinds {
            pending: Vec::new(),
            namespaces: None,
        };
        k.add::<NamespaceStrategy>(cache, "", "namespaces", NamespaceStrategy);
        k.add::<PodStrategy>(cache, "", "pods", PodStrategy { admission });
        k.add::<NodeStrategy>(cache, "", "nodes", NodeStrategy);
        k.add::<ServiceStrategy>(cache, "", "services", ServiceStrategy);
        k.add::<EndpointsStrategy>(cache, "", "endpoints", EndpointsStrategy);
        k.add::<ConfigMapStrategy>(cache, "", "configmaps", ConfigMapStrategy);
        k.add::<SecretStrategy>(cache, "", "secrets", SecretStrategy);
        k.add::<ServiceAccountStrategy>(cache, "", "serviceaccounts", ServiceAccountStrategy);
        k.add::<EventStrategy>(cache, "", "events", EventStrategy);
        k.add::<PersistentVolumeStrategy>(cache, "", "persistentvolumes", PersistentVolumeStrategy);
        k.add::<PersistentVolumeClaimStrategy>(
            cache,
            "",
            "persistentvolumeclaims",
            PersistentVolumeClaimStrategy,
        );
        k.add::<DeploymentStrategy>(cache, "apps", "deployments", DeploymentStrategy);
        k.add::<ReplicaSetStrategy>(cache, "apps", "replicasets", ReplicaSetStrategy);
        k.add::<DaemonSetStrategy>(cache, "apps", "daemonsets", DaemonSetStrategy);
        k.add::<StatefulSetStrategy>(cache, "apps", "statefulsets", StatefulSetStrategy);
        k.add::<JobStrategy>(cache, "batch", "jobs", JobStrategy);
        k.add::<CronJobStrategy>(cache, "batch", "cronjobs", CronJobStrategy);
        k.add::<LeaseStrategy>(cache, "coordination.k8s.io", "leases", LeaseStrategy);
        k.add::<EndpointSliceStrategy>(
            cache,
            "discovery.k8s.io",
            "endpointslices",
            EndpointSliceStrategy,
        );
        k.add::<EventsV1EventStrategy>(cache, "events.k8s.io", "events", EventsV1EventStrategy);
        k.add::<IngressStrategy>(cache, "networking.k8s.io", "ingresses", IngressStrategy);
        k.add::<IngressClassStrategy>(
            cache,
            "networking.k8s.io",
            "ingressclasses",
            IngressClassStrategy,
        );
        k.add::<PriorityClassStrategy>(
            cache,
            "scheduling.k8s.io",
            "priorityclasses",
            PriorityClassStrategy,
        );
        k
    }

    /// Builds every store; `hooks` gives kinds their write hooks by key.
    pub fn build(
        self,
        shared: Arc<Shared>,
        hooks: &HashMap<Key, Arc<dyn WriteHooks>>,
    ) -> HashMap<Key, Arc<dyn Registry>> {
        self.pending
            .into_iter()
            .map(|(key, p)| (key, p.build(shared.clone(), hooks.get(&key).cloned())))
            .collect()
    }
}
