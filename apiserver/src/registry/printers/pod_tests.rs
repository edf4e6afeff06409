//! Tests of the Pod table, one case per STATUS branch of `printPod`.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::registry::Printer;
use crate::registry::printers::testing::{ago, cells, headers, object};

/// A pod named `web` created an hour ago with the given spec and status
/// merged over one app container.
fn pod(spec: Value, status: Value) -> Pod {
    let mut base = json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(3600)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {},
    });
    merge(&mut base["spec"], spec);
    merge(&mut base["status"], status);
    object(base)
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn running(name: &str, ready: bool) -> Value {
    json!({"name": name, "image": "nginx", "imageID": "", "ready": ready, "restartCount": 0,
           "state": {"running": {"startedAt": ago(600)}}})
}

fn waiting(name: &str, reason: &str, restarts: i32) -> Value {
    json!({"name": name, "image": "nginx", "imageID": "", "ready": false, "restartCount": restarts,
           "state": {"waiting": {"reason": reason}}})
}

fn terminated(name: &str, terminated: Value) -> Value {
    json!({"name": name, "image": "nginx", "imageID": "", "ready": false, "restartCount": 0,
           "state": {"terminated": terminated}})
}

/// `(READY, STATUS, RESTARTS)` of a pod.
fn summary(pod: &Pod) -> (String, String, String) {
    let c = cells(pod);
    let s = |i: usize| c[i].as_str().expect("string cell").to_string();
    (s(1), s(2), s(3))
}

#[test]
fn pod_columns_follow_printers_go() {
    assert_eq!(
        headers::<Pod>(),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ]
    );
    assert!(Pod::columns().iter().all(|c| c.type_ == "string"));
}

#[test]
fn pod_status_covers_every_branch_of_print_pod() {
    let two_inits = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}]});
    let deleting = |mut p: Pod| {
        p.metadata.deletion_timestamp = Some(object(json!(ago(5))));
        p
    };
    let cases: Vec<(&str, Pod, (&str, &str, &str))> = vec![
        (
            "pending without statuses shows the phase",
            pod(json!({}), json!({"phase": "Pending"})),
            ("0/1", "Pending", "0"),
        ),
        (
            "a ready running container",
            pod(
                json!({}),
                json!({"phase": "Running", "containerStatuses": [running("app", true)]}),
            ),
            ("1/1", "Running", "0"),
        ),
        (
            "running but not ready",
            pod(
                json!({}),
                json!({"phase": "Running", "containerStatuses": [running("app", false)]}),
            ),
            ("0/1", "Running", "0"),
        ),
        (
            "status.reason wins over the phase",
            pod(json!({}), json!({"phase": "Failed", "reason": "Evicted"})),
            ("0/1", "Evicted", "0"),
        ),
        (
            "a scheduling gate",
            pod(
                json!({}),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            ("0/1", "SchedulingGated", "0"),
        ),
        (
            "first init container still initializing",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    waiting("i1", "PodInitializing", 0), waiting("i2", "PodInitializing", 0)]}),
            ),
            ("0/1", "Init:0/2", "0"),
        ),
        (
            "second init container running",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    terminated("i1", json!({"exitCode": 0, "reason": "Completed"})),
                    running("i2", false)]}),
            ),
            ("0/1", "Init:1/2", "0"),
        ),
        (
            "init container in crash loop counts its restarts",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [{
                    "name": "i1", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}]}),
            ),
            ("0/1", "Init:CrashLoopBackOff", "3 (5m ago)"),
        ),
        (
            "init container failed with a reason",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    terminated("i1", json!({"exitCode": 1, "reason": "Error"}))]}),
            ),
            ("0/1", "Init:Error", "0"),
        ),
        (
            "init container failed with an exit code only",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    terminated("i1", json!({"exitCode": 2}))]}),
            ),
            ("0/1", "Init:ExitCode:2", "0"),
        ),
        (
            "init container killed by a signal",
            pod(
                two_inits.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    terminated("i1", json!({"exitCode": 137, "signal": 9}))]}),
            ),
            ("0/1", "Init:Signal:9", "0"),
        ),
        (
            "container waiting to be created",
            pod(
                json!({}),
                json!({"phase": "Pending", "containerStatuses": [
                waiting("app", "ContainerCreating", 0)]}),
            ),
            ("0/1", "ContainerCreating", "0"),
        ),
        (
            "image pull back-off",
            pod(
                json!({}),
                json!({"phase": "Pending", "containerStatuses": [
                waiting("app", "ImagePullBackOff", 0)]}),
            ),
            ("0/1", "ImagePullBackOff", "0"),
        ),
        (
            "crash loop shows when the last restart was",
            pod(
                json!({}),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(150)}}}]}),
            ),
            ("0/1", "CrashLoopBackOff", "5 (2m30s ago)"),
        ),
        (
            "restarts without a finish time have no suffix",
            pod(
                json!({}),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 2,
                    "state": {"running": {}}}]}),
            ),
            ("1/1", "Running", "2"),
        ),
        (
            "a succeeded pod is Completed",
            pod(
                json!({}),
                json!({"phase": "Succeeded", "containerStatuses": [
                    terminated("app", json!({"exitCode": 0, "reason": "Completed"}))]}),
            ),
            ("0/1", "Completed", "0"),
        ),
        (
            "a container ended with an exit code only",
            pod(
                json!({}),
                json!({"phase": "Failed", "containerStatuses": [
                terminated("app", json!({"exitCode": 3}))]}),
            ),
            ("0/1", "ExitCode:3", "0"),
        ),
        (
            "a container killed by a signal",
            pod(
                json!({}),
                json!({"phase": "Failed", "containerStatuses": [
                terminated("app", json!({"exitCode": 143, "signal": 15}))]}),
            ),
            ("0/1", "Signal:15", "0"),
        ),
        (
            "the first container's state wins",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running", "containerStatuses": [
                    terminated("a", json!({"exitCode": 1, "reason": "OOMKilled"})),
                    waiting("b", "CrashLoopBackOff", 0)]}),
            ),
            ("0/2", "OOMKilled", "0"),
        ),
        (
            "completed next to a running container and Ready shows Running",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [
                    terminated("a", json!({"exitCode": 0, "reason": "Completed"})),
                    running("b", true)]}),
            ),
            ("1/2", "Running", "0"),
        ),
        (
            "completed next to a running container and not Ready shows NotReady",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [
                    terminated("a", json!({"exitCode": 0, "reason": "Completed"})),
                    running("b", true)]}),
            ),
            ("1/2", "NotReady", "0"),
        ),
        (
            "a deleted running pod is Terminating",
            deleting(pod(
                json!({}),
                json!({"phase": "Running", "containerStatuses": [running("app", true)]}),
            )),
            ("1/1", "Terminating", "0"),
        ),
        (
            "a deleted succeeded pod stays Completed",
            deleting(pod(
                json!({}),
                json!({"phase": "Succeeded", "containerStatuses": [
                    terminated("app", json!({"exitCode": 0, "reason": "Completed"}))]}),
            )),
            ("0/1", "Completed", "0"),
        ),
        (
            "a deleted pod on a lost node is Unknown",
            deleting(pod(
                json!({}),
                json!({"phase": "Running", "reason": "NodeLost"}),
            )),
            ("0/1", "Unknown", "0"),
        ),
    ];
    for (name, pod, (ready, status, restarts)) in cases {
        let got = summary(&pod);
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2.as_str()),
            (ready, status, restarts),
            "{name}"
        );
    }
}

#[test]
fn sidecars_count_towards_ready_and_restarts() {
    let p = pod(
        json!({"initContainers": [
            {"name": "setup"},
            {"name": "proxy", "restartPolicy": "Always"}]}),
        json!({"phase": "Running",
               "conditions": [{"type": "Initialized", "status": "True"}],
               "initContainerStatuses": [
                   {"name": "setup", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}},
                   {"name": "proxy", "image": "x", "imageID": "", "ready": true, "restartCount": 2,
                    "started": true, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(1200)}}}],
               "containerStatuses": [
                   {"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(900)}}}]}),
    );
    // The plain init container's restarts (and its later finish) no longer
    // count once the pod is initialized; the sidecar's do.
    assert_eq!(
        summary(&p),
        ("2/2".into(), "Running".into(), "3 (15m ago)".into())
    );
}

#[test]
fn init_restarts_count_while_initializing() {
    let p = pod(
        json!({"initContainers": [{"name": "i1"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "image": "x", "imageID": "", "ready": false, "restartCount": 7,
             "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}],
            "containerStatuses": [waiting("app", "PodInitializing", 0)]}),
    );
    assert_eq!(
        summary(&p),
        ("0/1".into(), "Init:Error".into(), "7 (30s ago)".into())
    );
}

#[test]
fn wide_cells_show_ip_node_nomination_and_gates() {
    let p = pod(
        json!({"nodeName": "node-1", "readinessGates": [
            {"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running", "podIP": "10.0.0.5",
               "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::5"}],
               "nominatedNodeName": "node-2",
               "conditions": [
                   {"type": "example.com/lb", "status": "True"},
                   {"type": "example.com/dns", "status": "False"}]}),
    );
    let c = cells(&p);
    assert_eq!(c[0], json!("web"));
    assert_eq!(c[4], json!("60m"));
    assert_eq!(
        &c[5..],
        &[
            json!("10.0.0.5"),
            json!("node-1"),
            json!("node-2"),
            json!("1/2")
        ]
    );

    let bare = pod(json!({}), json!({}));
    assert_eq!(
        &cells(&bare)[5..],
        &[
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    let ips_only = pod(json!({}), json!({"podIPs": [{"ip": "fd00::7"}]}));
    assert_eq!(cells(&ips_only)[5], json!("fd00::7"));
}
