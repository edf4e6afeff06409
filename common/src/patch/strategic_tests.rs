//! Table-driven tests for strategic merge patch, including the exact patch
//! shapes kubectl sends.

use super::*;
use serde_json::json;

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn smp(target: &Value, patch: Value, kind: &str) -> Value {
    apply_strategic_merge_patch(target, &patch, TypeHint::for_kind(kind))
        .unwrap_or_else(|e| panic!("patch {patch} failed: {e}"))
}

fn containers(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"]
}

#[test]
fn set_image_changes_only_the_named_container() {
    let live = deployment(json!([
        {"name": "app", "image": "x:1", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "s:1"}
    ]));
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"x:2"}]}}}});
    let out = smp(&live, patch, "Deployment");
    assert_eq!(
        containers(&out),
        &json!([
            {"name": "app", "image": "x:2", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "s:1"}
        ])
    );
    assert_eq!(out["spec"]["replicas"], 1);
}

#[test]
fn kubectl_apply_patch_with_set_element_order_merges_env_and_keeps_order() {
    let live = deployment(json!([{
        "name": "app", "image": "x:1",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}, {"name": "C", "value": "1"}]
    }]));
    // What `kubectl apply` sends after the user changed B, dropped C and
    // added D to the manifest.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "D"}],
                "env": [{"name": "B", "value": "2"}, {"name": "D", "value": "4"}, {"$patch": "delete", "name": "C"}],
                "name": "app"
            }]
        }}}
    });
    let out = smp(&live, patch, "Deployment");
    assert_eq!(
        containers(&out),
        &json!([{
            "name": "app", "image": "x:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "D", "value": "4"}]
        }])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
}

#[test]
fn list_shapes_merge_as_kubernetes_does() {
    let pod = |spec: Value| json!({"kind": "Pod", "spec": spec});
    let cases = [
        (
            "a new item comes first when the patch lists it before known ones",
            pod(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
            json!({"spec": {"containers": [{"name": "d"}, {"name": "b", "image": "i"}]}}),
            pod(
                json!({"containers": [{"name": "d"}, {"name": "a"}, {"name": "b", "image": "i"}, {"name": "c"}]}),
            ),
        ),
        (
            "$setElementOrder reorders the live list",
            pod(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
            pod(json!({"containers": [{"name": "b"}, {"name": "a"}]})),
        ),
        (
            "a delete directive removes the keyed item",
            pod(json!({"containers": [{"name": "a"}, {"name": "sidecar"}]})),
            json!({"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}),
            pod(json!({"containers": [{"name": "a"}]})),
        ),
        (
            "a replace directive replaces the whole list",
            pod(json!({"containers": [{"name": "a", "image": "1"}, {"name": "b"}]})),
            json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
            pod(json!({"containers": [{"name": "c"}]})),
        ),
        (
            "lists without a strategy are replaced",
            pod(
                json!({"tolerations": [{"key": "a"}, {"key": "b"}], "containers": [{"name": "a"}]}),
            ),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
            pod(json!({"tolerations": [{"key": "c"}], "containers": [{"name": "a"}]})),
        ),
        (
            "volume mounts merge by mount path inside a container",
            pod(
                json!({"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "x"}]}]}),
            ),
            json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/b", "name": "y"}]}]}}),
            pod(
                json!({"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/b", "name": "y"}, {"mountPath": "/a", "name": "x"}]}]}),
            ),
        ),
        (
            "a null inside a merged item deletes that key only",
            pod(json!({"containers": [{"name": "a", "image": "i", "command": ["sh"]}]})),
            json!({"spec": {"containers": [{"name": "a", "command": null}]}}),
            pod(json!({"containers": [{"name": "a", "image": "i"}]})),
        ),
        (
            "pod conditions merge by type",
            json!({"kind": "Pod", "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"kind": "Pod", "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
        ),
    ];
    for (name, live, patch, want) in cases {
        let got = apply_strategic_merge_patch(&live, &patch, TypeHint::for_kind("Pod"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn service_ports_merge_by_port() {
    let live = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    assert_eq!(
        smp(&live, patch, "Service"),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}})
    );
}

#[test]
fn metadata_edits_from_label_annotate_and_rollout_restart() {
    let live = deployment(json!([{"name": "app", "image": "x"}]));
    let cases = [
        (
            json!({"metadata": {"labels": {"tier": "front"}}}),
            "/metadata/labels",
            json!({"app": "web", "tier": "front"}),
        ),
        (
            json!({"metadata": {"labels": {"app": null}}}),
            "/metadata/labels",
            json!({}),
        ),
        (
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}),
            "/spec/template/metadata",
            json!({"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}),
        ),
        (json!({"spec": {"replicas": 5}}), "/spec/replicas", json!(5)),
    ];
    for (patch, pointer, want) in cases {
        let out = smp(&live, patch.clone(), "Deployment");
        assert_eq!(out.pointer(pointer), Some(&want), "patch {patch}");
        assert_eq!(containers(&out), containers(&live), "patch {patch}");
    }
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list_removes() {
    let live = json!({"metadata": {"finalizers": ["a", "b"]}});
    let cases = [
        (
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!(["c", "a", "b"]),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!(["b"]),
        ),
        (
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}),
            json!(["b", "a"]),
        ),
    ];
    for kind in ["ConfigMap", "Widget"] {
        for (patch, want) in &cases {
            let out = smp(&live, patch.clone(), kind);
            assert_eq!(out["metadata"]["finalizers"], *want, "{kind} patch {patch}");
        }
    }
}

#[test]
fn retain_keys_clears_the_old_strategy_fields() {
    let live = deployment(json!([{"name": "app"}]));
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
    let out = smp(&live, patch, "Deployment");
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn map_directives_replace_and_delete() {
    let live = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"x": 1}}});
    let cases = [
        (
            json!({"spec": {"template": {"$patch": "replace", "y": 2}}}),
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"y": 2}}}),
        ),
        (
            json!({"spec": {"template": {"$patch": "delete"}}}),
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {}}}),
        ),
        (
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}, "template": {"x": 1}}}),
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(
            smp(&live, patch.clone(), "Deployment"),
            want,
            "patch {patch}"
        );
    }
}

#[test]
fn pod_disruption_budget_selector_is_replaced() {
    let live = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}});
    let patch = json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}});
    assert_eq!(
        smp(&live, patch, "PodDisruptionBudget"),
        json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}})
    );
}

#[test]
fn custom_resources_replace_their_lists() {
    let live = json!({"spec": {"items": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({"spec": {"items": [{"name": "a", "x": 1}]}});
    assert_eq!(
        smp(&live, patch, "Widget"),
        json!({"spec": {"items": [{"name": "a", "x": 1}]}})
    );
}

#[test]
fn new_values_lose_their_directives_and_nulls() {
    let live = json!({"metadata": {"name": "p"}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "a", "env": [{"name": "X", "value": null}]}],
        "nodeSelector": {"disk": "ssd", "zone": null}
    }});
    assert_eq!(
        smp(&live, patch, "Pod"),
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "env": [{"name": "X"}]}],
            "nodeSelector": {"disk": "ssd"}
        }})
    );
}

#[test]
fn malformed_patches_are_refused_with_kubernetes_messages() {
    let live = deployment(json!([{"name": "app", "image": "x"}]));
    let cases = [
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "y"}]}}}}),
            500,
            "does not contain declared merge key: name",
        ),
        (
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            400,
            "invalid patch format of retainKeys",
        ),
        (
            json!({"metadata": {"finalizers": [["a"]]}}),
            422,
            "lists of lists are not supported",
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            400,
            "invalid patch format of primitive list",
        ),
        (
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "b"}]
            }}}}),
            400,
            "doesn't match $setElementOrder list",
        ),
    ];
    for (patch, status, message) in cases {
        let err = apply_strategic_merge_patch(&live, &patch, TypeHint::for_kind("Deployment"))
            .expect_err("patch must fail");
        assert_eq!(err.http_status(), status, "patch {patch}: {err}");
        assert!(err.to_string().contains(message), "patch {patch}: {err}");
    }
    let err = apply_strategic_merge_patch(&live, &json!([]), TypeHint::for_kind("Deployment"))
        .expect_err("array patch");
    assert_eq!(err.http_status(), 400);
}

#[test]
fn directives_kubernetes_refuses_are_refused() {
    let live = json!({"spec": {"containers": [{"name": "a"}]}});
    let cases = [
        (
            json!({"spec": {"$patch": "merge", "nodeName": "n"}}),
            "unknown patch type: merge in map",
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
            "merging lists cannot yet be specified in the patch",
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}),
            "unknown patch type: bogus in map",
        ),
        (
            json!({"spec": {"containers": [{"name": "a"}, "str"]}}),
            "list element types are not identical",
        ),
    ];
    for (patch, message) in cases {
        let err = apply_strategic_merge_patch(&live, &patch, TypeHint::for_kind("Pod"))
            .expect_err("refused");
        assert_eq!(err.http_status(), 500, "patch {patch}");
        assert!(err.to_string().contains(message), "patch {patch}: {err}");
    }
}
