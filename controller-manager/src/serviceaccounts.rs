//! Two per-namespace publishers that service account tokens rely on:
//! Kubernetes' serviceaccounts-controller (every namespace has a `default`
//! ServiceAccount, which the ServiceAccount admission assigns to pods and
//! the TokenRequest API needs) and root-ca-cert-publisher (every namespace
//! has the `kube-root-ca.crt` ConfigMap whose `ca.crt` the
//! `kube-api-access-*` volume projects).
//!
//! Kubernetes publishes `--root-ca-file`, else the CA data of its own
//! client configuration; ferrokube's API server speaks plain HTTP, so
//! without an explicit bundle `ca.crt` is published empty.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};

use crate::informers::{Informers, wait_synced};
use crate::{Error, RESYNC, RETRY};

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The annotation Kubernetes' publisher sets on the ConfigMap.
pub const ANN_DESCRIPTION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub struct Ctx {
    pub client: Client,
    /// The PEM bundle published as `ca.crt`.
    pub root_ca: String,
}

/// Runs both publishers with an empty CA bundle (a plain-HTTP cluster).
pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_with_root_ca(client, informers, String::new(), stop).await;
}

pub async fn run_with_root_ca(
    client: Client,
    informers: Informers,
    root_ca: String,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // The ConfigMap and ServiceAccount watches are filtered to one name:
    // cheap, and no other controller wants them.
    let namespaces = informers.get::<Namespace>();
    let mut stop = Box::pin(stop);
    if !wait_synced(&mut stop, namespaces.ready()).await {
        return;
    }
    Controller::for_shared_stream(namespaces.applied(), namespaces.store())
        // A deleted or edited ConfigMap / ServiceAccount is put back.
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
            |cm: ConfigMap| Some(ObjectRef::new(&cm.namespace().unwrap_or_default())),
        )
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}")),
            |sa: ServiceAccount| Some(ObjectRef::new(&sa.namespace().unwrap_or_default())),
        )
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, Arc::new(Ctx { client, root_ca }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "serviceaccounts controller");
            }
        })
        .await;
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::info!(namespace = %ns.name_any(), error = %err, "service account publishing failed; retrying");
    Action::requeue(RETRY)
}

fn created_or_exists<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        // A namespace being deleted refuses new objects.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ConfigMap the publisher keeps in every namespace.
pub fn root_ca_config_map(namespace: &str, root_ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            annotations: Some([(ANN_DESCRIPTION.to_string(), DESCRIPTION.to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some([("ca.crt".to_string(), root_ca.to_string())].into()),
        ..ConfigMap::default()
    }
}

pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let pp = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    if accounts.get_opt(DEFAULT_SERVICE_ACCOUNT).await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                namespace: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        created_or_exists(accounts.create(&pp, &sa).await)?;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let want = root_ca_config_map(&name, &ctx.root_ca);
    match config_maps.get_opt(ROOT_CA_CONFIG_MAP).await? {
        None => created_or_exists(config_maps.create(&pp, &want).await)?,
        Some(mut have) if have.data != want.data => {
            have.data = want.data;
            config_maps.replace(ROOT_CA_CONFIG_MAP, &pp, &have).await?;
        }
        Some(_) => {}
    }
    Ok(Action::requeue(RESYNC))
}
