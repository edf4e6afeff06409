//! API semantics kubectl relies on beyond plain CRUD: server-side dry run and
//! `kubectl diff`, the status subresource, generation, finalizers holding a
//! deletion, generateName, watches with a label selector (objects entering
//! and leaving it), `kubectl edit`, and version/raw/api-versions discovery.

use std::time::Duration;

use e2e::{Backend, Cluster, both_backends, manifest};
use serde_json::Value;

fn json(output: &str) -> Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("not JSON ({e}):\n{output}"))
}

fn dry_run_and_diff_change_nothing(backend: Backend) {
    let cluster = Cluster::start(backend);
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  k: v\n";
    assert_eq!(
        cluster.kubectl_stdin_ok(&["create", "--dry-run=server", "-f", "-"], doc),
        "configmap/dry created (server dry run)\n"
    );
    assert_eq!(
        cluster.kubectl_err(&["get", "configmap", "dry"], None),
        "Error from server (NotFound): configmaps \"dry\" not found\n"
    );

    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    let same = cluster.kubectl(&["diff", "-f", &manifest("shop.yaml")]);
    assert_eq!(
        (
            same.status.code(),
            String::from_utf8_lossy(&same.stdout).into_owned()
        ),
        (Some(0), String::new()),
        "diff of what was just applied is empty; stderr: {}",
        String::from_utf8_lossy(&same.stderr)
    );

    let changed = std::fs::read_to_string(manifest("shop.yaml"))
        .expect("shop.yaml")
        .replace("LOG_LEVEL: info", "LOG_LEVEL: debug");
    let diff = cluster.kubectl_with_stdin(&["diff", "-f", "-"], Some(&changed));
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "diff exits 1 on differences: {text}"
    );
    assert!(
        text.contains("-  LOG_LEVEL: info") && text.contains("+  LOG_LEVEL: debug"),
        "{text}"
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "configmap",
            "shop-config",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.LOG_LEVEL}"
        ]),
        "info",
        "diff's server-side dry run stores nothing"
    );
}

fn status_subresource_and_generation(backend: Backend) {
    let cluster = Cluster::start(backend);
    // A StatefulSet: no controller of ours writes its status (the
    // Deployment controller would overwrite a hand-written status).
    cluster.kubectl_ok(&["apply", "-f", &manifest("statefulset.yaml")]);
    let get = |path: &str| {
        cluster.kubectl_ok(&[
            "get",
            "statefulset",
            "kv",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };

    let status = r#"{"status":{"observedGeneration":1,"replicas":3,"updatedReplicas":3,"readyReplicas":2,"availableReplicas":2}}"#;
    assert_eq!(
        cluster.kubectl_ok(&[
            "patch",
            "statefulset",
            "kv",
            "--subresource=status",
            "--type=merge",
            "-p",
            status
        ]),
        "statefulset.apps/kv patched\n"
    );
    let table = cluster.kubectl_ok(&["get", "statefulset", "kv", "--no-headers"]);
    let cells: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(cells[..2], ["kv", "2/3"], "{table}");
    assert_eq!(
        get("{.metadata.generation}"),
        "1",
        "a status write leaves generation alone"
    );

    // The main resource ignores status, the status subresource ignores spec.
    cluster.kubectl_ok(&[
        "patch",
        "statefulset",
        "kv",
        "--type=merge",
        "-p",
        r#"{"status":{"readyReplicas":0}}"#,
    ]);
    assert_eq!(get("{.status.readyReplicas}"), "2");
    cluster.kubectl_ok(&[
        "patch",
        "statefulset",
        "kv",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]);
    assert_eq!(get("{.spec.replicas}"), "3");

    // Metadata changes keep the generation, spec changes bump it.
    cluster.kubectl_ok(&["label", "statefulset", "kv", "release=stable"]);
    assert_eq!(get("{.metadata.generation}"), "1");
    cluster.kubectl_ok(&[
        "set",
        "image",
        "statefulset/kv",
        "kv=docker.io/library/busybox:1.37",
    ]);
    assert_eq!(get("{.metadata.generation}"), "2");
    assert_eq!(
        get("{.status.readyReplicas}"),
        "2",
        "a spec write leaves status alone"
    );
}

fn finalizers_hold_a_deletion(backend: Backend) {
    let cluster = Cluster::start(backend);
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata:\n  k: v\n";
    cluster.kubectl_stdin_ok(&["create", "-f", "-"], doc);
    assert_eq!(
        cluster.kubectl_ok(&["delete", "configmap", "held", "--wait=false"]),
        "configmap \"held\" deleted\n"
    );
    let held = json(&cluster.kubectl_ok(&["get", "configmap", "held", "-o", "json"]));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);

    let refused = cluster.kubectl_err(
        &[
            "patch",
            "configmap",
            "held",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
        ],
        None,
    );
    assert!(
        refused.contains("metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"),
        "{refused}"
    );

    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert_eq!(
        cluster.kubectl_err(&["get", "configmap", "held"], None),
        "Error from server (NotFound): configmaps \"held\" not found\n",
        "removing the last finalizer completes the deletion"
    );
}

fn generate_name_makes_unique_names(backend: Backend) {
    let cluster = Cluster::start(backend);
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: batch-\ndata:\n  k: v\n";
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let out = cluster.kubectl_stdin_ok(&["create", "-f", "-", "-o", "name"], doc);
        let name = out
            .trim()
            .strip_prefix("configmap/batch-")
            .expect("configmap/batch-…")
            .to_owned();
        assert!(
            name.len() == 5
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "five random characters: {out}"
        );
        names.insert(name);
    }
    assert_eq!(names.len(), 3);
}

fn watch_with_label_selector_sees_objects_enter_and_leave(backend: Backend) {
    let cluster = Cluster::start(backend);
    // Without --watch-only: whether kubectl's list or its watch sees `mover`
    // first, it prints ADDED, and every later change comes from the watch.
    let watch = cluster.watch(&["configmaps", "-l", "team=a"]);
    let next = || watch.next_event(Duration::from_secs(20));
    let summary = |e: &Value| {
        format!(
            "{} {} {}",
            e["type"].as_str().unwrap_or_default(),
            e["object"]["metadata"]["name"].as_str().unwrap_or_default(),
            e["object"]["metadata"]["labels"]["team"]
                .as_str()
                .unwrap_or_default()
        )
    };

    cluster.kubectl_stdin_ok(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mover\n  labels: {team: a}\n",
    );
    cluster.kubectl_stdin_ok(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: outsider\n  labels: {team: b}\n",
    );
    assert_eq!(summary(&next()), "ADDED mover a");
    cluster.kubectl_ok(&["label", "configmap", "mover", "team=b", "--overwrite"]);
    // Leaving the selector is a DELETED carrying the new state.
    assert_eq!(summary(&next()), "DELETED mover b");
    cluster.kubectl_ok(&["label", "configmap", "outsider", "team=a", "--overwrite"]);
    assert_eq!(summary(&next()), "ADDED outsider a");
    cluster.kubectl_ok(&["annotate", "configmap", "outsider", "note=x"]);
    assert_eq!(summary(&next()), "MODIFIED outsider a");
    cluster.kubectl_ok(&["delete", "configmap", "mover"]);
    let stray = watch.drain(Duration::from_millis(500));
    assert!(
        stray.is_empty(),
        "no events for objects outside the selector: {stray:?}"
    );
}

fn edit_goes_through_the_editor(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_stdin_ok(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: edited\ndata:\n  color: blue\n",
    );
    let output = cluster
        .kubectl_command(&["edit", "configmap", "edited"])
        .env("KUBE_EDITOR", "sed -i -e s/blue/red/")
        .output()
        .expect("kubectl edit runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "configmap/edited edited\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "configmap", "edited", "-o", "jsonpath={.data.color}"]),
        "red"
    );
}

fn version_raw_and_api_versions(backend: Backend) {
    let cluster = Cluster::start(backend);
    let version = json(&cluster.kubectl_ok(&["version", "-o", "json"]));
    let server = &version["serverVersion"];
    assert_eq!(server["major"], "1", "{version}");
    assert!(
        server["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{version}"
    );

    let ns = json(&cluster.kubectl_ok(&["get", "--raw", "/api/v1/namespaces/kube-system"]));
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );

    let versions = cluster.kubectl_ok(&["api-versions"]);
    for expected in ["v1", "apps/v1", "batch/v1"] {
        assert!(
            versions.lines().any(|l| l == expected),
            "{expected} missing:\n{versions}"
        );
    }
}

both_backends!(
    dry_run_and_diff_change_nothing,
    status_subresource_and_generation,
    finalizers_hold_a_deletion,
    generate_name_makes_unique_names,
    watch_with_label_selector_sees_objects_enter_and_leave,
    edit_goes_through_the_editor,
    version_raw_and_api_versions,
);

/// `--disable-admission-plugins=ServiceAccount`, as scheduler_perf runs
/// kube-apiserver: new pods get no service account and no token volume,
/// while the other plugins still run.
#[test]
fn disabled_service_account_admission_leaves_new_pods_without_a_token() {
    let cluster = Cluster::start_with_args(
        Backend::Embedded,
        &["--disable-admission-plugins=ServiceAccount"],
    );
    cluster.kubectl_stdin_ok(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"plain"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
    );
    let pod = json(&cluster.kubectl_ok(&["get", "pod", "plain", "-o", "json"]));
    let spec = &pod["spec"];
    assert!(spec["serviceAccountName"].is_null(), "{spec}");
    assert!(
        spec["volumes"].as_array().is_none_or(|v| v.is_empty()),
        "{spec}"
    );
    assert!(spec["containers"][0]["volumeMounts"].is_null(), "{spec}");
    assert_eq!(spec["priority"], 0, "Priority admission still runs");
    assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
}
