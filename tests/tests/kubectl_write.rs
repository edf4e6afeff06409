//! kubectl's write verbs: `label`, `annotate`, `scale`, `patch` of each
//! type, client-side `apply` (created / unchanged / configured), server-side
//! apply with field ownership, `delete` by name, file and selector, and
//! `get -w` seeing the changes.

use std::time::Duration;

use e2e::{Backend, Cluster, both_backends, manifest};
use serde_json::Value;

fn json(output: &str) -> Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("not JSON ({e}):\n{output}"))
}

fn configmap(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n{data}"
    )
}

fn label_and_annotate_set_overwrite_and_remove(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["create", "configmap", "tags", "--from-literal=k=v"]);

    assert_eq!(
        cluster.kubectl_ok(&["label", "configmap", "tags", "tier=backend"]),
        "configmap/tags labeled\n"
    );
    let refused = cluster.kubectl_err(&["label", "configmap", "tags", "tier=frontend"], None);
    assert!(
        refused.contains("'tier' already has a value (backend), and --overwrite is false"),
        "{refused}"
    );
    cluster.kubectl_ok(&["label", "configmap", "tags", "tier=frontend", "--overwrite"]);
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "configmap",
            "tags",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "frontend"
    );
    assert_eq!(
        cluster.kubectl_ok(&["label", "configmap", "tags", "tier-"]),
        "configmap/tags unlabeled\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "configmaps", "-l", "tier", "-o", "name"]),
        ""
    );

    assert_eq!(
        cluster.kubectl_ok(&[
            "annotate",
            "configmap",
            "tags",
            "owner=alice",
            "example.com/ticket=42"
        ]),
        "configmap/tags annotated\n"
    );
    let annotations = json(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "tags",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]));
    assert_eq!(annotations["owner"], "alice");
    assert_eq!(annotations["example.com/ticket"], "42");
    cluster.kubectl_ok(&["annotate", "configmap", "tags", "owner-"]);
    let annotations = json(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "tags",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]));
    assert!(annotations.get("owner").is_none(), "{annotations}");
}

fn scale_uses_the_scale_subresource(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    assert_eq!(
        cluster.kubectl_ok(&[
            "scale",
            "deployment",
            "shop-web",
            "-n",
            "shop",
            "--replicas=5"
        ]),
        "deployment.apps/shop-web scaled\n"
    );
    let deploy =
        json(&cluster.kubectl_ok(&["get", "deployment", "shop-web", "-n", "shop", "-o", "json"]));
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(deploy["metadata"]["generation"], 2);

    let precondition = cluster.kubectl_err(
        &[
            "scale",
            "deployment",
            "shop-web",
            "-n",
            "shop",
            "--current-replicas=3",
            "--replicas=1",
        ],
        None,
    );
    assert!(
        precondition.contains("Expected replicas to be 3, was 5"),
        "{precondition}"
    );

    cluster.kubectl_ok(&["apply", "-f", &manifest("statefulset.yaml")]);
    assert_eq!(
        cluster.kubectl_ok(&["scale", "statefulset", "kv", "--replicas=1"]),
        "statefulset.apps/kv scaled\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "statefulset",
            "kv",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "1"
    );
}

fn patch_merge_json_and_strategic(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);

    let merge = cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "shop-config",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"LOG_LEVEL":"debug","CART_TTL_SECONDS":null}}"#,
    ]);
    assert_eq!(merge, "configmap/shop-config patched\n");
    let cm = json(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "shop-config",
        "-n",
        "shop",
        "-o",
        "json",
    ]));
    assert_eq!(cm["data"]["LOG_LEVEL"], "debug");
    assert!(
        cm["data"].get("CART_TTL_SECONDS").is_none(),
        "null removes a key: {cm}"
    );
    assert!(cm["data"]["index.html"].is_string());

    let unchanged = cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "shop-config",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"LOG_LEVEL":"debug"}}"#,
    ]);
    assert_eq!(unchanged, "configmap/shop-config patched (no change)\n");

    let json_patch = cluster.kubectl_ok(&[
        "patch", "configmap", "shop-config", "-n", "shop", "--type=json",
        "-p", r#"[{"op":"test","path":"/data/LOG_LEVEL","value":"debug"},{"op":"add","path":"/data/REGION","value":"eu"},{"op":"remove","path":"/data/LOG_LEVEL"}]"#,
    ]);
    assert_eq!(json_patch, "configmap/shop-config patched\n");
    let cm = json(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "shop-config",
        "-n",
        "shop",
        "-o",
        "json",
    ]));
    assert_eq!(cm["data"]["REGION"], "eu");
    assert!(cm["data"].get("LOG_LEVEL").is_none(), "{cm}");
    let failed_test = cluster.kubectl_err(
        &[
            "patch",
            "configmap",
            "shop-config",
            "-n",
            "shop",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/REGION","value":"us"}]"#,
        ],
        None,
    );
    // Kubernetes answers a JSON patch that does not apply with a bare 422
    // (`NewGenericServerResponse`), which kubectl prints this way.
    assert!(
        failed_test.contains(
            "The request is invalid: the server rejected our request due to an error in our request"
        ),
        "a failed test op is refused: {failed_test}"
    );

    // Strategic merge: containers merge by name, so the env and ports stay.
    let strategic = cluster.kubectl_ok(&[
        "patch", "deployment", "shop-web", "-n", "shop",
        "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"docker.io/library/busybox:1.37"}]}}}}"#,
    ]);
    assert_eq!(strategic, "deployment.apps/shop-web patched\n");
    let deploy =
        json(&cluster.kubectl_ok(&["get", "deployment", "shop-web", "-n", "shop", "-o", "json"]));
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "docker.io/library/busybox:1.37");
    assert_eq!(
        containers[0]["env"].as_array().map(Vec::len),
        Some(2),
        "{deploy}"
    );
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    assert_eq!(deploy["metadata"]["generation"], 2);

    // `$patch: delete` removes one list element by its merge key.
    cluster.kubectl_ok(&[
        "patch", "deployment", "shop-web", "-n", "shop", "--type=strategic",
        "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"LOG_LEVEL","$patch":"delete"}]}]}}}}"#,
    ]);
    let env = json(&cluster.kubectl_ok(&[
        "get",
        "deployment",
        "shop-web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]));
    assert_eq!(env.as_array().map(Vec::len), Some(1), "{env}");
    assert_eq!(env[0]["name"], "DB_PASSWORD");
}

fn apply_reports_created_unchanged_and_configured(backend: Backend) {
    let cluster = Cluster::start(backend);
    let first = configmap("settings", "  color: blue\n  size: large\n");
    assert_eq!(
        cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &first),
        "configmap/settings created\n"
    );
    assert_eq!(
        cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &first),
        "configmap/settings unchanged\n"
    );

    // A key dropped from the manifest is pruned through last-applied-configuration,
    // a key added by someone else survives.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"kept"}}"#,
    ]);
    let second = configmap("settings", "  color: green\n");
    assert_eq!(
        cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &second),
        "configmap/settings configured\n"
    );
    let cm = json(&cluster.kubectl_ok(&["get", "configmap", "settings", "-o", "json"]));
    assert_eq!(
        cm["data"],
        serde_json::json!({"color": "green", "extra": "kept"})
    );
    let last_applied =
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("apply records the last applied configuration");
    assert_eq!(
        json(last_applied)["data"],
        serde_json::json!({"color": "green"})
    );

    // The multi-document manifest round-trips the same way, except the
    // Secret: Kubernetes folds `stringData` into `data` and never stores
    // it, so kubectl's three-way diff sends it again on every apply and
    // prints "configured", as it does against Kubernetes itself.
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    let again = cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    assert_eq!(
        again,
        "namespace/shop unchanged\nconfigmap/shop-config unchanged\nsecret/shop-db configured\n\
         deployment.apps/shop-web unchanged\nservice/shop-web unchanged\n"
    );
}

fn server_side_apply_tracks_field_managers(backend: Backend) {
    let cluster = Cluster::start(backend);
    let doc = configmap("ssa", "  owner: a\n");
    assert_eq!(
        cluster.kubectl_stdin_ok(
            &[
                "apply",
                "--server-side",
                "--field-manager=team-a",
                "-f",
                "-"
            ],
            &doc
        ),
        "configmap/ssa serverside-applied\n"
    );
    let cm = json(&cluster.kubectl_ok(&[
        "get",
        "configmap",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    let managers = cm["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    assert!(
        managers
            .iter()
            .any(|m| m["manager"] == "team-a" && m["operation"] == "Apply"),
        "{managers:?}"
    );

    // Another manager setting the same field conflicts…
    let other = configmap("ssa", "  owner: b\n");
    let conflict = cluster.kubectl_err(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(
        conflict.contains(r#"Apply failed with 1 conflict: conflict with "team-a": .data.owner"#),
        "{conflict}"
    );
    // …until it forces, and then owns it.
    cluster.kubectl_stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other,
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "configmap", "ssa", "-o", "jsonpath={.data.owner}"]),
        "b"
    );

    // team-a re-applies without the field: it no longer owns it, so it stays.
    let a_only = configmap("ssa", "  color: red\n");
    cluster.kubectl_stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-a",
            "-f",
            "-",
        ],
        &a_only,
    );
    let cm = json(&cluster.kubectl_ok(&["get", "configmap", "ssa", "-o", "json"]));
    assert_eq!(
        cm["data"],
        serde_json::json!({"owner": "b", "color": "red"})
    );

    // A field removed from a manager's own apply is removed from the object.
    let b_nothing =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\n";
    cluster.kubectl_stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "-f",
            "-",
        ],
        b_nothing,
    );
    let cm = json(&cluster.kubectl_ok(&["get", "configmap", "ssa", "-o", "json"]));
    assert_eq!(cm["data"], serde_json::json!({"color": "red"}));
}

fn delete_by_name_file_and_selector(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    cluster.kubectl_ok(&["apply", "-f", &manifest("pod.yaml")]);

    assert_eq!(
        cluster.kubectl_ok(&["delete", "service", "shop-web", "-n", "shop"]),
        "service \"shop-web\" deleted\n"
    );
    // An unscheduled pod is deleted at once, so kubectl's wait ends.
    assert_eq!(
        cluster.kubectl_ok(&["delete", "-f", &manifest("pod.yaml")]),
        "pod \"hello\" deleted\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "delete",
            "configmaps,secrets",
            "-n",
            "shop",
            "-l",
            "app=shop"
        ]),
        "configmap \"shop-config\" deleted\nsecret \"shop-db\" deleted\n"
    );
    let left = cluster.kubectl_ok(&[
        "get",
        "configmaps,secrets,services,pods",
        "-n",
        "shop",
        "-o",
        "name",
    ]);
    // Only the Deployment's pods (its controllers keep them) remain.
    assert!(
        left.lines()
            .all(|l| l.starts_with("pod/shop-web-") || l == "configmap/kube-root-ca.crt"),
        "left behind:\n{left}"
    );
    assert_eq!(cluster.kubectl_ok(&["get", "pods", "-o", "name"]), "");
    let missing = cluster.kubectl_err(&["delete", "configmap", "shop-config", "-n", "shop"], None);
    assert_eq!(
        missing,
        "Error from server (NotFound): configmaps \"shop-config\" not found\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "delete",
            "configmap",
            "shop-config",
            "-n",
            "shop",
            "--ignore-not-found"
        ]),
        ""
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "deployment", "-n", "shop", "-o", "name"]),
        "deployment.apps/shop-web\n"
    );
}

fn get_watch_sees_added_then_modified(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["create", "configmap", "watched", "--from-literal=step=1"]);
    let watch = cluster.watch(&["configmap", "watched"]);
    let next = || watch.next_event(Duration::from_secs(20));

    let added = next();
    assert_eq!(added["type"], "ADDED", "{added}");
    assert_eq!(added["object"]["data"]["step"], "1");

    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"step":"2"}}"#,
    ]);
    let modified = next();
    assert_eq!(modified["type"], "MODIFIED", "{modified}");
    assert_eq!(modified["object"]["data"]["step"], "2");
    let before: u64 = added["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    let after: u64 = modified["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    assert!(after > before, "resourceVersion grows: {before} → {after}");

    cluster.kubectl_ok(&["delete", "configmap", "watched"]);
    let deleted = next();
    assert_eq!(deleted["type"], "DELETED", "{deleted}");
}

both_backends!(
    label_and_annotate_set_overwrite_and_remove,
    scale_uses_the_scale_subresource,
    patch_merge_json_and_strategic,
    apply_reports_created_unchanged_and_configured,
    server_side_apply_tracks_field_managers,
    delete_by_name_file_and_selector,
    get_watch_sees_added_then_modified,
);
