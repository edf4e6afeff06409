//! Container lifecycle on a real containerd: liveness, readiness and
//! startup probes (exec, httpGet, tcpSocket), postStart and preStop
//! hooks, and init containers. Each test runs its own API server and
//! kubelet (with a private containerd) on a pod CIDR of its own; pods
//! mount host directories the tests read and write.

mod support;

use serde_json::json;
use support::{Node, condition, container, pod, status_of};

fn ready_condition(p: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    condition(p, "Ready").map(|(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_ready_both_ways_and_failed_liveness_restarts() {
    let mut node = Node::start(1).await;
    let gate = node.host_dir("gate");
    node.create(pod(
        "gate",
        &gate,
        json!({"containers": [container("main", "sleep 3600", json!({
            "readinessProbe": {
                "exec": {"command": ["cat", "/data/ready"]},
                "periodSeconds": 1, "failureThreshold": 1,
            },
        }))]}),
    ))
    .await;
    let live = node.host_dir("live");
    std::fs::write(live.join("alive"), "yes").expect("alive file");
    node.create(pod(
        "live",
        &live,
        json!({"containers": [container("main", "sleep 3600", json!({
            "livenessProbe": {
                "exec": {"command": ["cat", "/data/alive"]},
                "periodSeconds": 1, "failureThreshold": 2,
            },
        }))]}),
    ))
    .await;
    let web = node.host_dir("web");
    node.create(pod(
        "web",
        &web,
        json!({"containers": [container(
            "main",
            "busybox mkdir -p /www && echo ok > /www/index.html && exec busybox httpd -f -p 8080 -h /www",
            json!({
                "ports": [{"name": "web", "containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/index.html", "port": "web",
                                "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
                    "periodSeconds": 1,
                },
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }),
        )]}),
    ))
    .await;

    // Running, started, but not ready until the probe succeeds.
    let running = node
        .wait_pod("gate", "running", |p| {
            let cs = status_of(p, "main")?;
            cs.state.as_ref()?.running.as_ref()?;
            Some(p.clone())
        })
        .await;
    let cs = status_of(&running, "main").expect("status");
    assert!(!cs.ready, "not ready before the first success");
    assert_eq!(cs.started, Some(true));
    assert_eq!(
        condition(&running, "ContainersReady"),
        Some(("False".into(), Some("ContainersNotReady".into())))
    );
    std::fs::write(gate.join("ready"), "yes").expect("ready file");
    node.wait_pod("gate", "Ready", |p| {
        (ready_condition(p)? == "True" && status_of(p, "main")?.ready).then_some(())
    })
    .await;
    std::fs::remove_file(gate.join("ready")).expect("remove ready file");
    let unready = node
        .wait_pod("gate", "not Ready again", |p| {
            (ready_condition(p)? == "False").then(|| p.clone())
        })
        .await;
    assert!(!status_of(&unready, "main").expect("status").ready);
    assert_eq!(
        condition(&unready, "Ready"),
        Some(("False".into(), Some("ContainersNotReady".into())))
    );
    let unhealthy = node.events_of("gate", "Unhealthy").await;
    assert!(
        unhealthy.iter().any(|m| m
            .starts_with("Readiness probe failed: cat: can't open '/data/ready': No such file")),
        "{unhealthy:?}"
    );
    std::fs::write(gate.join("ready"), "yes").expect("ready file");
    node.wait_pod("gate", "Ready once more", |p| {
        (ready_condition(p)? == "True").then_some(())
    })
    .await;

    // httpGet by port name with headers; tcpSocket liveness keeps it alive.
    node.wait_pod("web", "Ready over HTTP", |p| {
        (ready_condition(p)? == "True").then_some(())
    })
    .await;

    // Liveness: fine while the file exists, then restarts with back-off.
    node.wait_pod("live", "running", |p| {
        status_of(p, "main")?.state?.running.map(|_| ())
    })
    .await;
    std::fs::remove_file(live.join("alive")).expect("remove alive file");
    let restarted = node
        .wait_pod("live", "a restart", |p| {
            (status_of(p, "main")?.restart_count >= 1).then(|| p.clone())
        })
        .await;
    let last = status_of(&restarted, "main")
        .and_then(|cs| cs.last_state?.terminated)
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 137, "killed after the grace period");
    let killing = node.events_of("live", "Killing").await;
    assert!(
        killing.contains(&"Container main failed liveness probe, will be restarted".to_string()),
        "{killing:?}"
    );
    let unhealthy = node.events_of("live", "Unhealthy").await;
    assert!(
        unhealthy
            .iter()
            .any(|m| m.starts_with("Liveness probe failed: cat: can't open '/data/alive'")),
        "{unhealthy:?}"
    );
    let described = node.kubectl(&["describe", "pod", "live"]);
    assert!(
        described.contains("Container main failed liveness probe, will be restarted"),
        "kubectl describe lists the kubelet's events:\n{described}"
    );
    let uid = restarted.metadata.uid.clone().expect("uid");
    let waiting = node
        .wait_pod("live", "CrashLoopBackOff", |p| {
            let waiting = status_of(p, "main")?.state?.waiting?;
            (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(waiting)
        })
        .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some(
            format!("back-off 10s restarting failed container=main pod=live_default({uid})")
                .as_str()
        )
    );
    node.wait_pod("live", "a second restart", |p| {
        (status_of(p, "main")?.restart_count >= 2).then_some(())
    })
    .await;

    node.finish(&["gate", "live", "web"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_probe_holds_off_liveness_until_it_succeeds() {
    let mut node = Node::start(2).await;
    let slow = node.host_dir("slow");
    node.create(pod(
        "slow",
        &slow,
        json!({"containers": [container("main", "sleep 3600", json!({
            "startupProbe": {
                "exec": {"command": ["cat", "/data/started"]},
                "periodSeconds": 1, "failureThreshold": 600,
            },
            // Fails at once, but only once the startup probe has passed.
            "livenessProbe": {
                "exec": {"command": ["false"]},
                "periodSeconds": 1, "failureThreshold": 1,
            },
        }))]}),
    ))
    .await;
    let stuck = node.host_dir("stuck");
    node.create(pod(
        "stuck",
        &stuck,
        json!({"containers": [container("main", "sleep 3600", json!({
            "startupProbe": {
                "exec": {"command": ["cat", "/data/never"]},
                "periodSeconds": 1, "failureThreshold": 2,
            },
        }))]}),
    ))
    .await;

    node.wait_pod("slow", "running", |p| {
        status_of(p, "main")?.state?.running.map(|_| ())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let held = node.pods.get("slow").await.expect("get pod");
    let cs = status_of(&held, "main").expect("status");
    assert_eq!(cs.restart_count, 0, "liveness waits for startup");
    assert_eq!(cs.started, Some(false));
    assert!(!cs.ready);
    assert!(node.events_of("slow", "Killing").await.is_empty());

    std::fs::write(slow.join("started"), "yes").expect("started file");
    node.wait_pod("slow", "the liveness restart", |p| {
        (status_of(p, "main")?.restart_count >= 1).then_some(())
    })
    .await;
    let killing = node.events_of("slow", "Killing").await;
    assert!(
        killing.contains(&"Container main failed liveness probe, will be restarted".to_string()),
        "{killing:?}"
    );

    node.wait_pod("stuck", "the startup restart", |p| {
        (status_of(p, "main")?.restart_count >= 1).then_some(())
    })
    .await;
    let killing = node.events_of("stuck", "Killing").await;
    assert!(
        killing.contains(&"Container main failed startup probe, will be restarted".to_string()),
        "{killing:?}"
    );

    node.finish(&["slow", "stuck"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_and_hooks_run() {
    let mut node = Node::start(3).await;
    let dir = node.host_dir("init");
    node.create(pod(
        "init",
        &dir,
        json!({
            "initContainers": [
                container("first", "echo first >> /data/order; sleep 2", json!({})),
                container("second", "echo second >> /data/order; sleep 2", json!({})),
            ],
            "containers": [container("main", "echo main >> /data/order; sleep 3600", json!({
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", "echo poststart >> /data/hooks"]}},
                    "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /data/hooks"]}},
                },
            }))],
        }),
    ))
    .await;
    let bad = node.host_dir("bad-init");
    node.create(pod(
        "bad-init",
        &bad,
        json!({
            "restartPolicy": "Never",
            "initContainers": [container("bad", "exit 3", json!({}))],
            "containers": [container("main", "echo ran > /data/main", json!({}))],
        }),
    ))
    .await;
    let flaky = node.host_dir("flaky-init");
    node.create(pod(
        "flaky-init",
        &flaky,
        json!({
            "initContainers": [container(
                "flaky",
                "if [ -f /data/tried ]; then exit 0; fi; echo > /data/tried; exit 1",
                json!({}),
            )],
            "containers": [container("main", "sleep 3600", json!({}))],
        }),
    ))
    .await;
    let hook = node.host_dir("bad-hook");
    node.create(pod(
        "bad-hook",
        &hook,
        json!({"containers": [container("main", "sleep 3600", json!({
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 1"]}}},
        }))]}),
    ))
    .await;

    // While the second init container runs: Pending, not initialized.
    let initializing = node
        .wait_pod("init", "the second init container to run", |p| {
            status_of(p, "second")?.state?.running.map(|_| p.clone())
        })
        .await;
    let status = initializing.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let first = status_of(&initializing, "first").expect("first");
    let done = first.state.and_then(|s| s.terminated).expect("first done");
    assert_eq!(done.reason.as_deref(), Some("Completed"));
    assert!(first.ready, "a completed init container is ready");
    assert_eq!(
        condition(&initializing, "Initialized"),
        Some(("False".into(), Some("ContainersNotInitialized".into())))
    );
    let main = status_of(&initializing, "main").expect("main");
    assert_eq!(
        main.state
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .as_deref(),
        Some("PodInitializing")
    );

    let running = node
        .wait_pod("init", "Running", |p| {
            (p.status.as_ref()?.phase.as_deref()? == "Running").then(|| p.clone())
        })
        .await;
    assert_eq!(
        condition(&running, "Initialized"),
        Some(("True".into(), None))
    );
    let line = node.kubectl(&["get", "pod", "init", "--no-headers"]);
    assert!(line.contains(" Running "), "{line}");
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).expect("order"),
        "first\nsecond\nmain\n"
    );
    support::eventually("the postStart hook", || async {
        let hooks = std::fs::read_to_string(dir.join("hooks")).unwrap_or_default();
        (hooks == "poststart\n").then_some(())
    })
    .await;

    // A failed init container under restartPolicy Never fails the pod.
    let failed = node
        .wait_pod("bad-init", "Failed", |p| {
            (p.status.as_ref()?.phase.as_deref()? == "Failed").then(|| p.clone())
        })
        .await;
    let bad_status = status_of(&failed, "bad")
        .and_then(|s| s.state?.terminated)
        .expect("terminated");
    assert_eq!(
        (bad_status.exit_code, bad_status.reason.as_deref()),
        (3, Some("Error"))
    );
    assert!(!bad.join("main").exists(), "app containers never ran");
    // kubectl computes its STATUS column from the statuses.
    let line = node.kubectl(&["get", "pod", "bad-init", "--no-headers"]);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns.get(1..3),
        Some(&["0/1", "Init:Error"][..]),
        "{line}"
    );

    // A failed init container is restarted (restartPolicy Always), then
    // the app containers start.
    let recovered = node
        .wait_pod("flaky-init", "Running", |p| {
            (p.status.as_ref()?.phase.as_deref()? == "Running").then(|| p.clone())
        })
        .await;
    let flaky_status = status_of(&recovered, "flaky").expect("init status");
    assert_eq!(flaky_status.restart_count, 1);
    let last = flaky_status
        .last_state
        .and_then(|s| s.terminated)
        .expect("the failed run");
    assert_eq!(last.exit_code, 1);

    // A failing postStart hook kills the container, which is restarted.
    node.wait_pod("bad-hook", "a restart", |p| {
        (status_of(p, "main")?.restart_count >= 1).then_some(())
    })
    .await;
    assert!(
        node.events_of("bad-hook", "FailedPostStartHook")
            .await
            .contains(&"PostStartHook failed".to_string())
    );
    assert!(
        node.events_of("bad-hook", "Killing")
            .await
            .contains(&"FailedPostStartHook".to_string())
    );

    node.finish(&["init", "bad-init", "flaky-init", "bad-hook"])
        .await;
    let stopping = node.events_of("init", "Killing").await;
    assert!(
        stopping.contains(&"Stopping container main".to_string()),
        "{stopping:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hooks")).expect("hooks"),
        "poststart\nprestop\n",
        "preStop ran before the container stopped"
    );
}

/// Deleting a pod whose process ignores SIGTERM waits out the grace
/// period, then SIGKILLs it and removes the pod object together with its
/// network namespace, its cgroups and its host-side veth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_ignoring_sigterm_is_killed_after_its_grace_period_and_fully_removed() {
    const GRACE: u64 = 3;
    let mut node = Node::start(4).await;
    let dir = node.host_dir("stubborn");
    // SIG_IGN is inherited through exec: `sleep` ignores SIGTERM too.
    let marker = format!("sleep 36{}", std::process::id() % 100);
    let mut spec = pod(
        "stubborn",
        &dir,
        json!({"containers": [container("main", &format!("trap '' TERM; {marker}"), json!({}))]}),
    );
    spec["spec"]["terminationGracePeriodSeconds"] = json!(GRACE);
    node.create(spec).await;
    let running = node
        .wait_pod("stubborn", "Running", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.clone())
        })
        .await;
    let uid = running.metadata.uid.clone().expect("uid");
    let netns = node.data_dir().join("netns").join(&uid);
    assert!(netns.exists(), "the pod has a network namespace");
    let cgroups: Vec<_> = kubelet::cgroups::Hierarchy::detect()
        .pod_dirs("/ferrokube", &uid)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(!cgroups.is_empty(), "the pod has cgroups");
    let veths = node.bridge_ports();
    assert_eq!(veths.len(), 1, "one veth on the bridge: {veths:?}");
    assert!(
        kubelet::testing::process_running(&marker),
        "the pod's process runs"
    );

    let asked = std::time::Instant::now();
    node.pods
        .delete("stubborn", &kube::api::DeleteParams::default())
        .await
        .expect("delete pod");
    support::eventually("the pod object to be removed", || async {
        node.pods
            .get_opt("stubborn")
            .await
            .expect("get pod")
            .is_none()
            .then_some(())
    })
    .await;
    let took = asked.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(GRACE),
        "the grace period was honoured: {took:?}"
    );
    // SIGKILL, teardown and the final delete take well under this.
    assert!(
        took < std::time::Duration::from_secs(GRACE + 12),
        "the pod was killed once its grace period ran out: {took:?}"
    );
    assert!(
        !kubelet::testing::process_running(&marker),
        "the process is gone"
    );
    assert!(!netns.exists(), "the network namespace is removed");
    let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "pod cgroups left: {left:?}");
    let veths = node.bridge_ports();
    assert!(veths.is_empty(), "veths left on the bridge: {veths:?}");
    let killed = node.events_of("stubborn", "Killing").await;
    assert_eq!(killed, ["Stopping container main"], "{killed:?}");
    node.finish(&[]).await;
}
