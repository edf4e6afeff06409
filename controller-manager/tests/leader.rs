//! Leader election through a Lease against a real API server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::eventually;
use controller_manager::leader::{self, Config};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

fn candidate(
    client: kube::Client,
    identity: &str,
) -> (
    Arc<AtomicBool>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let leading = Arc::new(AtomicBool::new(false));
    let flag = leading.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    };
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        leader::run(client, config, stop, move |mut lost| {
            let flag = flag.clone();
            async move {
                flag.store(true, Ordering::SeqCst);
                let _ = lost.wait_for(|l| *l).await;
                flag.store(false, Ordering::SeqCst);
            }
        })
        .await;
    });
    (leading, tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_leads_and_a_standby_takes_over_when_it_stops() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let (a, stop_a, task_a) = candidate(client.clone(), "a");
    eventually("a leads", || async { a.load(Ordering::SeqCst) }).await;
    let (b, stop_b, task_b) = candidate(client.clone(), "b");
    // b stays a standby while a renews, well past the lease duration.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            a.load(Ordering::SeqCst) && !b.load(Ordering::SeqCst),
            "exactly one leader"
        );
    }
    let _ = stop_a.send(());
    task_a.await.expect("a stops");
    assert!(!a.load(Ordering::SeqCst));
    eventually("b takes over", || async { b.load(Ordering::SeqCst) }).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), leader::NAMESPACE);
    let lease = leases.get(leader::NAME).await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    let _ = stop_b.send(());
    task_b.await.expect("b stops");
}

/// A TCP proxy to the API server that can be cut, to kill a candidate's
/// connection to the cluster without letting it release its Lease (as a
/// crashed or partitioned process would not).
struct Proxy {
    addr: std::net::SocketAddr,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns.lock().expect("lock").push(conn);
            }
        });
        tasks.lock().expect("lock").push(accept);
        Proxy { addr, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

fn elected(client: kube::Client, identity: &str) -> tokio::task::JoinHandle<()> {
    let config = Config {
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    };
    tokio::spawn(controller_manager::run_elected(
        client,
        config,
        std::future::pending(),
    ))
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(leader::NAME)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leading_controller_manager_dies_the_standby_takes_over_without_duplicate_pods() {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt;
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::runtime::watcher;
    use std::collections::HashSet;

    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let proxy = Proxy::start(server.addr).await;
    let via_proxy = kube::Client::try_from(kube::Config::new(
        format!("http://{}", proxy.addr).parse().expect("url"),
    ))
    .expect("proxy client");
    let leases: Api<Lease> = Api::namespaced(client.clone(), leader::NAMESPACE);
    let a = elected(via_proxy, "a");
    eventually("a leads", || async {
        holder(&leases).await.as_deref() == Some("a")
    })
    .await;
    let b = elected(client.clone(), "b");
    let kubelet = tokio::spawn(common::fake_kubelet(client.clone()));

    // Every pod ever created, from a watch that starts before any.
    let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let record = seen.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
    let observer = tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    let _ = ready_tx.try_send(());
                }
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    record.lock().expect("lock").insert(p.name_any());
                }
                _ => {}
            }
        }
    });
    ready_rx.recv().await.expect("watch started");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let available = |n: i32| {
        let deployments = deployments.clone();
        async move {
            let s = deployments
                .get("web")
                .await
                .expect("deployment")
                .status
                .unwrap_or_default();
            s.available_replicas == Some(n) && s.replicas == Some(n)
        }
    };
    eventually("5 available under a", || available(5)).await;
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // The leader dies; meanwhile the cluster needs work done.
    proxy.cut();
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 8}})),
        )
        .await
        .expect("scale");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let victim = pod_api
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items[0]
        .name_any();
    pod_api
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete a pod");

    eventually("b takes over", || async {
        holder(&leases).await.as_deref() == Some("b")
    })
    .await;
    eventually("8 available under b", || available(8)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = pod_api
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items;
    assert_eq!(live.len(), 8);
    // 5 at first, 3 for the scale-up, 1 to replace the deleted pod.
    assert_eq!(
        seen.lock().expect("lock").len(),
        9,
        "no pod was created twice over"
    );
    for t in [a, b, kubelet, observer] {
        t.abort();
    }
}
