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
