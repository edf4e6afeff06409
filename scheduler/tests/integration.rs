//! The scheduler against a real in-process API server with hollow nodes:
//! placement by selector, affinity, taints, resources and host ports; the
//! exact message left on pods that do not fit; retry when a node appears.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apiserver::testing::TestServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use scheduler::framework::config::KubeSchedulerConfiguration;
use scheduler::hollow::{self, HollowSpec, parse_taint};
use scheduler::scheduler::Scheduler;
use serde_json::{Value, json};

struct Cluster {
    _server: TestServer,
    client: kube::Client,
    scheduler: Arc<Scheduler>,
    registered: std::sync::atomic::AtomicUsize,
}

async fn cluster() -> Cluster {
    let server = TestServer::start().await.expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let frameworks = KubeSchedulerConfiguration::default()
        .build()
        .expect("default profile");
    let scheduler = Scheduler::new(client.clone(), frameworks);
    tokio::spawn(scheduler.clone().run(None, std::future::pending()));
    Cluster {
        _server: server,
        client,
        scheduler,
        registered: Default::default(),
    }
}

impl Cluster {
    async fn hollow(
        &self,
        prefix: &str,
        count: usize,
        cpu: &str,
        labels: &[(&str, &str)],
        taints: &[&str],
    ) {
        let spec = HollowSpec {
            count,
            cpu: cpu.into(),
            name_prefix: prefix.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            taints: taints
                .iter()
                .map(|t| parse_taint(t).expect("taint"))
                .collect(),
            ..HollowSpec::default()
        };
        // Register synchronously so nodes exist when this returns.
        hollow::register(&self.client, &spec)
            .await
            .expect("register");
        // Wait for the scheduler's cache too, so that each test's first
        // decision already sees every node.
        let want = self
            .registered
            .fetch_add(count, std::sync::atomic::Ordering::SeqCst)
            + count;
        for _ in 0..200 {
            if self.scheduler.node_count() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::spawn(hollow::run(
            self.client.clone(),
            spec,
            std::future::pending(),
        ));
    }

    async fn create(&self, name: &str, spec: Value) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "registry.k8s.io/pause:3.10"}]);
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }

    async fn pod(&self, name: &str) -> Pod {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        pods.get(name).await.expect("get pod")
    }

    /// Polls until `f` holds for the pod, or panics after 20 s.
    async fn wait_pod(&self, name: &str, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
        for _ in 0..200 {
            let p = self.pod(name).await;
            if f(&p) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pod {name}: timed out waiting for {what}: {:?}",
            self.pod(name).await.status
        );
    }

    async fn wait_bound(&self, name: &str) -> String {
        let p = self
            .wait_pod(name, "binding", |p| node_of(p).is_some())
            .await;
        node_of(&p).unwrap_or_default()
    }

    /// Waits until the pod's PodScheduled=False message is `want` (an
    /// earlier attempt, made before all nodes registered, may say otherwise).
    async fn wait_unschedulable(&self, name: &str, want: &str) {
        let p = self
            .wait_pod(name, want, |p| {
                scheduled_condition(p).as_deref() == Some(want)
            })
            .await;
        assert_eq!(node_of(&p), None, "{name} must stay pending");
    }
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn scheduled_condition(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find_map(|c| {
            (c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable"))
            .then(|| c.message.clone().unwrap_or_default())
        })
}

fn cpu(c: &str) -> Value {
    json!([{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": c}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_and_required_affinity_pick_the_matching_nodes() {
    let c = cluster().await;
    c.hollow("zone-a-", 2, "4", &[("zone", "a")], &[]).await;
    c.hollow("zone-b-", 2, "4", &[("zone", "b"), ("disk", "ssd")], &[])
        .await;
    c.create("by-selector", json!({"nodeSelector": {"zone": "b"}}))
        .await;
    c.create("by-affinity", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}})).await;
    c.create("nowhere", json!({"nodeSelector": {"zone": "c"}}))
        .await;
    assert!(c.wait_bound("by-selector").await.starts_with("zone-b-"));
    assert!(c.wait_bound("by-affinity").await.starts_with("zone-a-"));
    c.wait_unschedulable("nowhere", "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.").await;
}

const TOO_BIG: &str = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_keep_pods_off_unless_tolerated_and_the_message_says_why() {
    let c = cluster().await;
    c.hollow("gpu-", 1, "8", &[], &["dedicated=gpu:NoSchedule"])
        .await;
    c.hollow("small-", 2, "1", &[], &[]).await;
    c.create("too-big", json!({"containers": cpu("2")})).await;
    c.create("tolerant", json!({"containers": cpu("2"), "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})).await;
    c.wait_unschedulable("too-big", TOO_BIG).await;
    assert_eq!(c.wait_bound("tolerant").await, "gpu-0");
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    // The Event is written just after the condition.
    let mut list = events.list(&ListParams::default()).await.expect("events");
    for _ in 0..50 {
        if list
            .items
            .iter()
            .any(|e| e.message.as_deref() == Some(TOO_BIG))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        list = events.list(&ListParams::default()).await.expect("events");
    }
    // Earlier attempts (before every node registered) leave their own events.
    let failed = list
        .items
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("FailedScheduling")
                && e.involved_object.name.as_deref() == Some("too-big")
                && e.message.as_deref() == Some(TOO_BIG)
        })
        .expect("a FailedScheduling event with the final message");
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.involved_object.kind.as_deref(), Some("Pod"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_resources_leave_exactly_the_extra_pods_pending() {
    let c = cluster().await;
    c.hollow("n-", 2, "2", &[], &[]).await;
    for i in 0..5 {
        c.create(&format!("p{i}"), json!({"containers": cpu("1")}))
            .await;
    }
    let mut bound = BTreeMap::<String, usize>::new();
    let mut pending = Vec::new();
    for _ in 0..200 {
        bound.clear();
        pending.clear();
        for i in 0..5 {
            let p = c.pod(&format!("p{i}")).await;
            match node_of(&p) {
                Some(n) => *bound.entry(n).or_default() += 1,
                None if scheduled_condition(&p).is_some() => {
                    pending.push(scheduled_condition(&p).unwrap_or_default())
                }
                None => {}
            }
        }
        if bound.values().sum::<usize>() == 4 && pending.len() == 1 && pending[0].starts_with("0/2")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        bound.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{bound:?}"
    );
    assert_eq!(
        pending,
        vec!["0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_conflict_on_the_same_node() {
    let c = cluster().await;
    c.hollow("one-", 1, "4", &[], &[]).await;
    let ported = json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    c.create("first", ported.clone()).await;
    assert_eq!(c.wait_bound("first").await, "one-0");
    c.create("second", ported).await;
    c.wait_unschedulable("second", "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_pod_is_scheduled_as_soon_as_a_fitting_node_is_added() {
    let c = cluster().await;
    c.hollow("plain-", 1, "4", &[], &[]).await;
    c.create("wants-ssd", json!({"nodeSelector": {"disk": "ssd"}}))
        .await;
    c.wait_unschedulable(
        "wants-ssd",
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    )
    .await;
    let added = std::time::Instant::now();
    c.hollow("ssd-", 1, "4", &[("disk", "ssd")], &[]).await;
    assert_eq!(c.wait_bound("wants-ssd").await, "ssd-0");
    // The first retry waits out one backoff (1 s), not the 5-minute flush.
    assert!(
        added.elapsed() < Duration::from_secs(5),
        "took {:?}",
        added.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_run_their_pods_and_renew_leases() {
    let c = cluster().await;
    c.hollow("h-", 2, "4", &[], &[]).await;
    c.create("app", json!({})).await;
    let p = c
        .wait_pod("app", "Running", |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await;
    let status = p.status.expect("status");
    assert!(
        status
            .pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10."))
    );
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready);
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), hollow::LEASE_NAMESPACE);
    for _ in 0..50 {
        if leases.get_opt("h-1").await.expect("lease").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = leases.get("h-1").await.expect("lease for h-1");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("h-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanations_show_filter_verdicts_and_scores_over_http() {
    let c = cluster().await;
    c.hollow("e-", 3, "4", &[], &[]).await;
    c.hollow("t-", 1, "4", &[], &["k=v:NoSchedule"]).await;
    // The explanation is of the one attempt: make it see every node.
    for _ in 0..100 {
        if c.scheduler.node_count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.scheduler.node_count(), 4);
    c.create("explained", json!({})).await;
    c.wait_bound("explained").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            scheduler::explain::router(c.scheduler.explanations.clone()),
        )
        .await;
    });
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /explain/default/explained HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("read");
    let json_start = body.find("\r\n\r\n").expect("headers") + 4;
    let v: Value = serde_json::from_str(&body[json_start..]).expect("json");
    assert_eq!(v["numAllNodes"], 4);
    assert_eq!(v["numFeasible"], 3);
    assert_eq!(
        v["filters"].as_array().map(Vec::len),
        Some(1),
        "only rejections are listed"
    );
    let rejected: Vec<&Value> = v["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["status"]["code"] != "Success")
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["node"], "t-0");
    assert_eq!(rejected[0]["status"]["plugin"], "TaintToleration");
    assert_eq!(v["scores"].as_array().map(Vec::len), Some(3));
    assert!(v["scores"][0]["plugins"]["NodeResourcesFit"]["weight"].is_number());
    assert!(
        v["selectedNode"]
            .as_str()
            .is_some_and(|n| n.starts_with("e-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_preempts_a_lower_priority_one() {
    let c = cluster().await;
    c.hollow("p-", 1, "2", &[], &[]).await;
    c.create("low", json!({"priority": 1, "containers": cpu("1500m")}))
        .await;
    c.wait_bound("low").await;
    c.create("high", json!({"priority": 100, "containers": cpu("1")}))
        .await;
    assert_eq!(c.wait_bound("high").await, "p-0");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    assert!(
        pods.get_opt("low").await.expect("get").is_none(),
        "the victim is gone"
    );
    c.create(
        "never",
        json!({"priority": 1000, "preemptionPolicy": "Never", "containers": cpu("1500m")}),
    )
    .await;
    c.wait_unschedulable(
        "never",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_spread_constraints_balance_pods_over_zones() {
    let c = cluster().await;
    // Three nodes in z1, one in z2: spreading by node alone would put
    // most pods in z1.
    c.hollow("z1-", 3, "8", &[("zone", "z1")], &[]).await;
    c.hollow("z2-", 1, "8", &[("zone", "z2")], &[]).await;
    let mut zones = BTreeMap::<String, usize>::new();
    for i in 0..6 {
        let name = format!("spread-{i}");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "spread"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]}
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create");
        // One at a time, so each decision sees the previous placements.
        let node = c.wait_bound(&name).await;
        let zone = node.split('-').next().unwrap_or_default().to_string();
        *zones.entry(zone).or_default() += 1;
    }
    assert_eq!(
        zones.values().copied().collect::<Vec<_>>(),
        vec![3, 3],
        "{zones:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_anti_affinity_puts_one_replica_per_host() {
    let c = cluster().await;
    c.hollow("host-", 2, "8", &[], &[]).await;
    let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "solo"}}}]}}});
    let mut hosts = Vec::new();
    for i in 0..3 {
        let name = format!("solo-{i}");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let mut pod =
            json!({"metadata": {"name": name, "labels": {"app": "solo"}}, "spec": spec.clone()});
        pod["spec"]["containers"] = json!([{"name": "c", "image": "nginx"}]);
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create");
        if i < 2 {
            hosts.push(c.wait_bound(&name).await);
        }
    }
    hosts.sort();
    assert_eq!(hosts, vec!["host-0", "host-1"]);
    c.wait_unschedulable(
        "solo-2",
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_pods_wait_until_their_gates_are_removed() {
    let c = cluster().await;
    c.hollow("g-", 1, "4", &[], &[]).await;
    c.create(
        "gated",
        json!({"schedulingGates": [{"name": "example.com/wait"}]}),
    )
    .await;
    c.create("free", json!({})).await;
    c.wait_bound("free").await;
    let gated = c.pod("gated").await;
    assert_eq!(node_of(&gated), None);
    assert_eq!(
        scheduled_condition(&gated),
        None,
        "no scheduling attempt was made"
    );
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.patch(
        "gated",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"schedulingGates": null}})),
    )
    .await
    .expect("remove the gate");
    assert_eq!(c.wait_bound("gated").await, "g-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_node_and_pod_affinity_steer_pods_to_the_preferred_zone() {
    let c = cluster().await;
    c.hollow("za-", 2, "4", &[("zone", "a")], &[]).await;
    c.hollow("zb-", 2, "4", &[("zone", "b")], &[]).await;
    // Preferred node affinity: every node fits, zone b scores higher.
    c.create("likes-b", json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}}))
        .await;
    assert!(c.wait_bound("likes-b").await.starts_with("zb-"));
    // Preferred pod affinity: next to the db's zone; anti-affinity: away from it.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let db: Pod = serde_json::from_value(json!({"metadata": {"name": "db", "labels": {"app": "db"}},
        "spec": {"nodeSelector": {"zone": "a"}, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}))
        .expect("pod");
    pods.create(&PostParams::default(), &db).await.expect("db");
    assert!(c.wait_bound("db").await.starts_with("za-"));
    let term = json!([{"weight": 100, "podAffinityTerm": {"topologyKey": "zone",
        "labelSelector": {"matchLabels": {"app": "db"}}}}]);
    for i in 0..3 {
        c.create(
            &format!("near-db-{i}"),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": term}}}),
        )
        .await;
        c.create(
            &format!("far-from-db-{i}"),
            json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": term}}}),
        )
        .await;
    }
    for i in 0..3 {
        let near = c.wait_bound(&format!("near-db-{i}")).await;
        assert!(near.starts_with("za-"), "near-db-{i} on {near}");
        let far = c.wait_bound(&format!("far-from-db-{i}")).await;
        assert!(far.starts_with("zb-"), "far-from-db-{i} on {far}");
    }
}
