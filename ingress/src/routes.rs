//! The routing table: which Ingresses are ours (IngressClass), and for a
//! request's host and path which Service endpoints serve it. Pure: built
//! from cached objects, swapped in whole by the feed, tested alone.
//!
//! Matching follows the Ingress specification: exact hosts before `*.`
//! wildcards (one label) before rules without a host; within those, the
//! longest matching path wins, Exact before Prefix on a tie; Prefix
//! matches path elements (`/foo` matches `/foo/bar`, not `/foobar`);
//! ImplementationSpecific is treated as Prefix.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

/// Marks the IngressClass used for Ingresses that name none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The legacy per-Ingress class annotation.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which IngressClass objects are ours: those whose `spec.controller` is
/// this controller's name.
#[derive(Clone, Debug)]
pub struct ClassFilter {
    pub controller: String,
}

/// A Service backend with its ready endpoints, resolved when the table is
/// built; the counter spreads requests round-robin.
#[derive(Debug)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    /// The next endpoint in turn; `None` when the Service has no ready one.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.endpoints[i % self.endpoints.len()])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathKind {
    Exact,
    Prefix,
}

#[derive(Debug)]
struct Route {
    kind: PathKind,
    /// Exact: the path; Prefix: its elements (`/a/b/` → ["a", "b"]).
    path: String,
    elements: Vec<String>,
    backend: Arc<Backend>,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.path,
            PathKind::Prefix => {
                let mut request = path.split('/').filter(|e| !e.is_empty());
                self.elements
                    .iter()
                    .all(|want| request.next() == Some(want.as_str()))
            }
        }
    }

    /// Longer paths win; on a tie Exact wins.
    fn rank(&self) -> (usize, bool) {
        match self.kind {
            PathKind::Exact => (self.path.len(), true),
            PathKind::Prefix => {
                let len = self.elements.iter().map(|e| e.len() + 1).sum::<usize>();
                (len, false)
            }
        }
    }
}

/// The routing table of one moment.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<String, Vec<Route>>,
    /// Keyed by the suffix after `*` (`.example.com`).
    wildcard: HashMap<String, Vec<Route>>,
    any_host: Vec<Route>,
    default_backend: Option<Arc<Backend>>,
    /// Our Ingresses, `namespace/name`, for the status writer.
    pub ingresses: Vec<(String, String)>,
}

/// What a request is answered with.
#[derive(Debug)]
pub enum Decision {
    Backend(Arc<Backend>),
    /// No rule and no default backend: 404.
    NoRoute,
}

/// The longest match; on a full tie the first route (in Ingress order).
fn best<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    let mut found: Option<&Route> = None;
    for r in routes.iter().filter(|r| r.matches(path)) {
        if found.is_none_or(|f| r.rank() > f.rank()) {
            found = Some(r);
        }
    }
    found
}

impl Table {
    /// The backend for `host` (without port, any case) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Decision {
        let host = host.to_ascii_lowercase();
        let wildcard = host
            .split_once('.')
            .and_then(|(_, rest)| self.wildcard.get(&format!(".{rest}")));
        let found = self
            .exact
            .get(&host)
            .and_then(|r| best(r, path))
            .or_else(|| wildcard.and_then(|r| best(r, path)))
            .or_else(|| best(&self.any_host, path));
        match (found, &self.default_backend) {
            (Some(r), _) => Decision::Backend(r.backend.clone()),
            (None, Some(b)) => Decision::Backend(b.clone()),
            (None, None) => Decision::NoRoute,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any_host.is_empty()
    }
}

/// Whether an Ingress is served by this controller, as Kubernetes'
/// IngressClass rules say: `spec.ingressClassName` naming one of our
/// classes, else the legacy annotation, else our class being the default.
pub fn is_ours(ing: &Ingress, classes: &[&IngressClass], filter: &ClassFilter) -> bool {
    let ours = |c: &&IngressClass| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(filter.controller.as_str())
    };
    let named = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION).cloned())
        });
    match named {
        Some(name) => classes
            .iter()
            .copied()
            .filter(ours)
            .any(|c| c.metadata.name.as_deref() == Some(name.as_str())),
        None => classes.iter().copied().filter(ours).any(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        }),
    }
}

/// Services and their slices, for backend resolution.
pub struct Endpoints<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> Endpoints<'a> {
    pub fn new(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Endpoints<'a> {
        let mut e = Endpoints {
            services: HashMap::new(),
            slices: HashMap::new(),
        };
        for s in services {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                e.services.insert((ns.as_str(), name.as_str()), s);
            }
        }
        for s in slices {
            let svc = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (&s.metadata.namespace, svc) {
                e.slices.entry((ns.as_str(), svc.as_str())).or_default().push(s);
            }
        }
        e
    }

    /// The ready endpoints of a Service port given by number or name: the
    /// Service port's name picks the slice port, whose number is the
    /// resolved target port (named targetPorts resolve per pod).
    fn resolve(&self, ns: &str, backend: &IngressBackend) -> Option<Backend> {
        let svc_ref = backend.service.as_ref()?;
        let port_ref = svc_ref.port.clone().unwrap_or_default();
        let mut endpoints = Vec::new();
        if let Some(svc) = self.services.get(&(ns, svc_ref.name.as_str())) {
            let port = svc.spec.iter().flat_map(|s| s.ports.iter().flatten()).find(|p| {
                match (&port_ref.name, port_ref.number) {
                    (Some(n), _) if !n.is_empty() => p.name.as_deref() == Some(n.as_str()),
                    (_, Some(num)) => p.port == num,
                    _ => false,
                }
            });
            if let Some(port) = port {
                let port_name = port.name.clone().unwrap_or_default();
                for slice in self.slices.get(&(ns, svc_ref.name.as_str())).into_iter().flatten() {
                    if slice.address_type == "FQDN" {
                        continue;
                    }
                    let Some(number) = slice
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.clone().unwrap_or_default() == port_name)
                        .and_then(|p| p.port)
                        .and_then(|p| u16::try_from(p).ok())
                    else {
                        continue;
                    };
                    for ep in &slice.endpoints {
                        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                        if !ready {
                            continue;
                        }
                        for a in &ep.addresses {
                            if let Ok(ip) = a.parse::<IpAddr>() {
                                endpoints.push(SocketAddr::new(ip, number));
                            }
                        }
                    }
                }
            }
        }
        endpoints.sort();
        endpoints.dedup();
        Some(Backend {
            namespace: ns.to_string(),
            service: svc_ref.name.clone(),
            endpoints,
            next: AtomicUsize::new(0),
        })
    }
}

/// Builds the table from our Ingresses (sorted by namespace/name so the
/// first one wins ties, and the oldest-named default backend is used).
pub fn build(ingresses: &[&Ingress], endpoints: &Endpoints<'_>) -> Table {
    let mut table = Table::default();
    let mut sorted: Vec<&Ingress> = ingresses.to_vec();
    sorted.sort_by_key(|i| (i.metadata.namespace.clone(), i.metadata.name.clone()));
    // One Backend per Service port, so round-robin is shared by every
    // route to it.
    let mut backends: HashMap<(String, String), Arc<Backend>> = HashMap::new();
    let mut backend_for = |ns: &str, b: &IngressBackend| -> Option<Arc<Backend>> {
        let key = (ns.to_string(), serde_json::to_string(b).ok()?);
        if let Some(existing) = backends.get(&key) {
            return Some(existing.clone());
        }
        let made = Arc::new(endpoints.resolve(ns, b)?);
        backends.insert(key, made.clone());
        Some(made)
    };
    for ing in sorted {
        let (Some(ns), Some(name)) = (&ing.metadata.namespace, &ing.metadata.name) else {
            continue;
        };
        table.ingresses.push((ns.clone(), name.clone()));
        let Some(spec) = &ing.spec else { continue };
        if table.default_backend.is_none()
            && let Some(b) = &spec.default_backend
        {
            table.default_backend = backend_for(ns, b);
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let Some(backend) = backend_for(ns, &p.backend) else {
                    continue;
                };
                let kind = match Some(p.path_type.as_str()) {
                    Some("Exact") => PathKind::Exact,
                    _ => PathKind::Prefix,
                };
                let path = p.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
                let route = Route {
                    kind,
                    elements: path
                        .split('/')
                        .filter(|e| !e.is_empty())
                        .map(str::to_string)
                        .collect(),
                    path,
                    backend,
                };
                if host.is_empty() {
                    table.any_host.push(route);
                } else if let Some(suffix) = host.strip_prefix('*') {
                    table.wildcard.entry(suffix.to_string()).or_default().push(route);
                } else {
                    table.exact.entry(host.clone()).or_default().push(route);
                }
            }
        }
    }
    table
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
