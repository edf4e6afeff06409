//! Server-side apply and managed-fields scenarios, following what
//! `kubectl apply --server-side`, `kubectl scale` and friends do to an
//! object over its life.

use super::super::fieldpath::{FieldSet, PathElement};
use super::super::managed;
use super::*;
use serde_json::json;

const T1: &str = "2025-01-01T00:00:01Z";
const T2: &str = "2025-01-01T00:00:02Z";
const T3: &str = "2025-01-01T00:00:03Z";

fn req<'a>(manager: &'a str, now: &'a str) -> ManagerRequest<'a> {
    ManagerRequest {
        manager,
        api_version: "apps/v1",
        subresource: None,
        now,
    }
}

fn manifest(replicas: Option<u32>, env: bool) -> Value {
    let mut container = json!({"name": "app", "image": "x:1"});
    if env {
        container["env"] = json!([{"name": "A", "value": "1"}]);
    }
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [container]}
        }
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": spec
    })
}

fn apply(live: Option<&Value>, applied: &Value, manager: &str, now: &str, force: bool) -> Value {
    server_side_apply(live, applied, &req(manager, now), force)
        .unwrap_or_else(|e| panic!("apply by {manager} failed: {e}"))
}

/// What the API server adds after an apply: defaults and identity.
fn persist(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("7");
    let c = &mut obj["spec"]["template"]["spec"]["containers"][0];
    if c.get("imagePullPolicy").is_none() {
        c["imagePullPolicy"] = json!("IfNotPresent");
    }
    obj
}

fn entry<'v>(obj: &'v Value, manager: &str) -> &'v Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no managedFields entry for {manager} in {obj}"))
}

/// The field set `manager`'s entry in `obj`'s managedFields holds.
fn owned_fields(obj: &Value, manager: &str) -> Option<FieldSet> {
    managed::decode(obj)
        .ok()?
        .into_iter()
        .find(|e| e.manager == manager)
        .map(|e| e.set)
}

fn f(name: &str) -> PathElement {
    PathElement::Field(name.to_string())
}

#[test]
fn apply_creates_the_object_and_records_fields_in_the_kubernetes_format() {
    let created = apply(None, &manifest(Some(2), true), "kubectl", T1, false);
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(
        entry(&created, "kubectl"),
        &json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                            ".": {},
                            "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {}
                        }}}
                    }
                }
            }
        })
    );
}

#[test]
fn the_ssa_lifecycle_reapply_prune_conflict_and_force() {
    // Create, then the server defaults and stores it.
    let live = persist(apply(None, &manifest(Some(2), true), "kubectl", T1, false));

    // Re-applying the same manifest changes nothing, not even the time.
    let same = apply(Some(&live), &manifest(Some(2), true), "kubectl", T2, false);
    assert_eq!(same, live);

    // Dropping env from the manifest removes it; server defaults stay.
    let live = persist(apply(
        Some(&live),
        &manifest(Some(2), false),
        "kubectl",
        T2,
        false,
    ));
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container.get("env"), None);
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(entry(&live, "kubectl")["time"], T2);
    let applier = owned_fields(&live, "kubectl").expect("applier entry");
    let app = PathElement::key(&[("name", json!("app"))]);
    let containers = [f("spec"), f("template"), f("spec"), f("containers"), app];
    assert!(applier.has(&containers));
    assert!(!applier.has_at_or_below(&[&containers[..], &[f("env")]].concat()));

    // `kubectl scale` (an Update by another manager) takes .spec.replicas.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    update_managed_fields(Some(&live), &mut scaled, &req("kubectl-scale", T3));
    assert!(
        owned_fields(&scaled, "kubectl-scale").is_some_and(|s| s.has(&[f("spec"), f("replicas")]))
    );
    assert!(owned_fields(&scaled, "kubectl").is_some_and(|s| !s.has(&[f("spec"), f("replicas")])));

    // Applying replicas: 2 again now conflicts.
    let err = server_side_apply(
        Some(&scaled),
        &manifest(Some(2), false),
        &req("kubectl", T3),
        false,
    )
    .expect_err("conflict with kubectl-scale");
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
    );
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("expected conflicts, got {err:?}")
    };
    assert_eq!(
        conflicts[0].cause_message(),
        "conflict with \"kubectl-scale\" using apps/v1"
    );
    assert_eq!(conflicts[0].field, ".spec.replicas");

    // Leaving replicas out of the manifest is fine and keeps the scale.
    let kept = apply(Some(&scaled), &manifest(None, false), "kubectl", T3, false);
    assert_eq!(kept["spec"]["replicas"], 5);

    // Forcing moves ownership back to the applier.
    let forced = apply(
        Some(&scaled),
        &manifest(Some(2), false),
        "kubectl",
        T3,
        true,
    );
    assert_eq!(forced["spec"]["replicas"], 2);
    assert!(owned_fields(&forced, "kubectl").is_some_and(|s| s.has(&[f("spec"), f("replicas")])));
    assert!(owned_fields(&forced, "kubectl-scale").is_none());
}

#[test]
fn a_field_shared_with_another_applier_survives_when_one_drops_it() {
    let live = apply(None, &manifest(Some(2), true), "a", T1, false);
    // Same value from a second applier: shared ownership, no conflict.
    let live = apply(Some(&live), &manifest(Some(2), true), "b", T2, false);
    let live = apply(Some(&live), &manifest(None, true), "a", T3, false);
    assert_eq!(live["spec"]["replicas"], 2);
    assert!(owned_fields(&live, "b").is_some_and(|s| s.has(&[f("spec"), f("replicas")])));
    // A different value from b now conflicts with nobody, as b alone owns it.
    let live = apply(Some(&live), &manifest(Some(3), true), "b", T3, false);
    assert_eq!(live["spec"]["replicas"], 3);
}

#[test]
fn conflicts_with_several_managers_are_listed_per_manager() {
    let live = apply(None, &manifest(Some(2), false), "a", T1, false);
    let mut applied = manifest(Some(4), false);
    applied["metadata"]["labels"]["app"] = json!("other");
    let err =
        server_side_apply(Some(&live), &applied, &req("b", T2), false).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .metadata.labels.app\n- .spec.replicas"
    );
}

#[test]
fn removed_list_items_and_set_members_are_pruned() {
    let mut first = manifest(Some(1), false);
    first["metadata"]["finalizers"] = json!(["a", "b"]);
    first["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "app", "image": "x", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "s"}
    ]);
    let live = apply(None, &first, "kubectl", T1, false);
    let app_ports = &entry(&live, "kubectl")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"app\"}"]["f:ports"];
    assert_eq!(
        app_ports,
        &json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    assert_eq!(
        entry(&live, "kubectl")["fieldsV1"]["f:metadata"]["f:finalizers"],
        json!({"v:\"a\"": {}, "v:\"b\"": {}})
    );

    let mut second = first.clone();
    second["metadata"]["finalizers"] = json!(["b"]);
    second["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "x"}]);
    let live = apply(Some(&live), &second, "kubectl", T2, false);
    assert_eq!(live["metadata"]["finalizers"], json!(["b"]));
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "x"}])
    );
}

#[test]
fn ordinary_writes_record_what_they_set() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    let mut created = pod.clone();
    let create = ManagerRequest {
        manager: "kubectl-create",
        api_version: "v1",
        subresource: None,
        now: T1,
    };
    update_managed_fields(None, &mut created, &create);
    assert_eq!(
        entry(&created, "kubectl-create"),
        &json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}
            }
        })
    );

    // A label edit by another manager takes the label over; removing a
    // label takes it out of everyone's set.
    let mut labelled = created.clone();
    labelled["metadata"]["labels"] = json!({"tier": "front"});
    let label = ManagerRequest {
        manager: "kubectl-label",
        api_version: "v1",
        subresource: None,
        now: T2,
    };
    update_managed_fields(Some(&created), &mut labelled, &label);
    let creator =
        owned_fields(&labelled, "kubectl-create").expect("creator keeps its other fields");
    assert!(!creator.has(&[f("metadata"), f("labels"), f("app")]));
    assert!(
        owned_fields(&labelled, "kubectl-label").is_some_and(|s| s.has(&[
            f("metadata"),
            f("labels"),
            f("tier")
        ]))
    );

    // A write that changes nothing leaves the entries and times alone.
    let mut again = labelled.clone();
    update_managed_fields(
        Some(&labelled),
        &mut again,
        &ManagerRequest { now: T3, ..label },
    );
    assert_eq!(again, labelled);
}

#[test]
fn status_writes_are_recorded_under_their_subresource() {
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Pending"}});
    let mut running = pod.clone();
    running["status"]["phase"] = json!("Running");
    let kubelet = ManagerRequest {
        manager: "kubelet",
        api_version: "v1",
        subresource: Some("status"),
        now: T1,
    };
    update_managed_fields(Some(&pod), &mut running, &kubelet);
    assert_eq!(entry(&running, "kubelet")["subresource"], "status");
    assert_eq!(
        entry(&running, "kubelet")["fieldsV1"],
        json!({"f:status": {"f:phase": {}}})
    );
}

#[test]
fn a_request_may_reset_managed_fields_with_an_empty_list() {
    let live = apply(None, &manifest(Some(2), false), "kubectl", T1, false);
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    update_managed_fields(Some(&live), &mut reset, &req("kubectl-edit", T2));
    assert_eq!(reset["metadata"].get("managedFields"), None);
}

#[test]
fn apply_ignores_status_and_server_metadata_on_the_main_resource() {
    let mut applied = manifest(Some(1), false);
    applied["status"] = json!({"replicas": 9});
    applied["metadata"]["uid"] = json!("forged");
    let created = apply(None, &applied, "kubectl", T1, false);
    assert_eq!(created.get("status"), None);
    assert_eq!(created["metadata"].get("uid"), None);
}

#[test]
fn invalid_apply_requests_are_refused() {
    let mut with_managed = manifest(Some(1), false);
    with_managed["metadata"]["managedFields"] = json!([]);
    let mut keyless = manifest(Some(1), false);
    keyless["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let cases = [
        (with_managed, 400, "metadata.managedFields must be nil"),
        (keyless, 500, "omits key field \"name\""),
        (json!([1]), 400, "must be an object"),
    ];
    for (applied, status, message) in cases {
        let err =
            server_side_apply(None, &applied, &req("kubectl", T1), false).expect_err("refused");
        assert_eq!(err.http_status(), status, "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn status_changes_through_the_main_resource_are_not_owned() {
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": ""}, "status": {"phase": "Pending"}});
    let mut updated = pod.clone();
    updated["status"]["phase"] = json!("Running");
    updated["spec"]["nodeName"] = json!("n1");
    let r = ManagerRequest {
        manager: "scheduler",
        api_version: "v1",
        subresource: None,
        now: T1,
    };
    update_managed_fields(Some(&pod), &mut updated, &r);
    assert_eq!(
        entry(&updated, "scheduler")["fieldsV1"],
        json!({"f:spec": {"f:nodeName": {}}})
    );
}

#[test]
fn applying_over_an_untracked_object_conflicts_with_before_first_apply() {
    let mut live = manifest(Some(3), false);
    live["metadata"]["uid"] = json!("u-1");
    let err = server_side_apply(
        Some(&live),
        &manifest(Some(2), false),
        &req("kubectl", T1),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
    let same = apply(Some(&live), &manifest(Some(3), false), "kubectl", T1, false);
    assert!(
        owned_fields(&same, "before-first-apply")
            .is_some_and(|s| s.has(&[f("spec"), f("replicas")]))
    );
    assert!(owned_fields(&same, "kubectl").is_some_and(|s| s.has(&[f("spec"), f("replicas")])));
}

#[test]
fn updates_of_an_untracked_existing_object_stay_untracked() {
    let mut live = manifest(Some(3), false);
    live["metadata"]["uid"] = json!("u-1");
    let mut updated = live.clone();
    updated["spec"]["replicas"] = json!(4);
    update_managed_fields(Some(&live), &mut updated, &req("kubectl-edit", T1));
    assert_eq!(updated["metadata"].get("managedFields"), None);
    assert_eq!(updated["spec"]["replicas"], 4);
}

#[test]
fn moving_from_client_side_apply_forgives_conflicts_the_annotation_agrees_with() {
    // What `kubectl apply` (client-side) leaves behind.
    let mut live = manifest(Some(2), false);
    live["metadata"]["uid"] = json!("u-1");
    let last = manifest(Some(2), false);
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": last.to_string()
    });
    let csa = ManagerRequest {
        manager: "kubectl-client-side-apply",
        api_version: "apps/v1",
        subresource: None,
        now: T1,
    };
    let mut tracked = live.clone();
    tracked["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("uid");
    update_managed_fields(None, &mut tracked, &csa);
    tracked["metadata"]["uid"] = json!("u-1");

    // The server-side apply changes replicas, which the annotation agreed
    // with the live value on: no conflict, and the annotation follows.
    let applied = manifest(Some(4), false);
    let out = apply(Some(&tracked), &applied, "kubectl", T2, false);
    assert_eq!(out["spec"]["replicas"], 4);
    let annotation =
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("annotation kept");
    let recorded: Value = serde_json::from_str(annotation).expect("annotation is JSON");
    assert_eq!(recorded["spec"]["replicas"], 4);

    // Another manager gets no such leniency.
    let err = server_side_apply(Some(&tracked), &applied, &req("other", T2), false)
        .expect_err("conflict");
    assert!(
        err.to_string().contains("kubectl-client-side-apply"),
        "{err}"
    );
}

#[test]
fn atomic_maps_are_owned_and_replaced_whole() {
    let mut first = manifest(Some(1), false);
    let pod_spec = &mut first["spec"]["template"]["spec"];
    pod_spec["nodeSelector"] = json!({"disk": "ssd", "zone": "a"});
    pod_spec["containers"][0]["env"] =
        json!([{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    let live = apply(None, &first, "kubectl", T1, false);
    let fields = &entry(&live, "kubectl")["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
    assert_eq!(fields["f:nodeSelector"], json!({}));
    assert_eq!(
        fields["f:containers"]["k:{\"name\":\"app\"}"]["f:env"]["k:{\"name\":\"P\"}"]["f:valueFrom"],
        json!({"f:secretKeyRef": {}})
    );

    let mut second = first.clone();
    second["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "hdd"});
    let live = apply(Some(&live), &second, "kubectl", T2, false);
    assert_eq!(
        live["spec"]["template"]["spec"]["nodeSelector"],
        json!({"disk": "hdd"})
    );
}

/// `structured-merge-diff`'s `remove_one_with_dangling_subitem_keep_one`
/// and `remove_one_keep_one_with_dangling_subitem`, on container ports.
#[test]
fn a_dropped_item_goes_unless_another_manager_owns_the_item_itself() {
    let pod = |containers: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
    let at = |manager, now| ManagerRequest {
        manager,
        api_version: "v1",
        subresource: None,
        now,
    };
    let port = |n: u32| json!({"containerPort": n});
    for (second_applier_shares_b, want) in [
        (false, json!([{"name": "a", "ports": [port(81)]}])),
        (
            true,
            json!([{"name": "a", "ports": [port(81)]}, {"name": "b", "ports": [port(82), port(90)]}]),
        ),
    ] {
        let one = pod(json!([{"name": "a"}, {"name": "b", "ports": [port(80)]}]));
        let live = server_side_apply(None, &one, &at("apply-one", T1), false).expect("apply-one");
        let two = if second_applier_shares_b {
            pod(json!([{"name": "a", "ports": [port(81)]}, {"name": "b", "ports": [port(82)]}]))
        } else {
            pod(json!([{"name": "a", "ports": [port(81)]}]))
        };
        let live =
            server_side_apply(Some(&live), &two, &at("apply-two", T2), false).expect("apply-two");
        let mut controlled = live.clone();
        let b = controlled["spec"]["containers"]
            .as_array_mut()
            .and_then(|c| c.iter_mut().find(|c| c["name"] == "b"))
            .expect("container b");
        b["ports"].as_array_mut().expect("ports").push(port(90));
        update_managed_fields(Some(&live), &mut controlled, &at("controller", T2));
        let live = server_side_apply(
            Some(&controlled),
            &pod(json!([{"name": "a"}])),
            &at("apply-one", T3),
            false,
        )
        .expect("apply-one again");
        assert_eq!(
            live["spec"]["containers"], want,
            "shared: {second_applier_shares_b}"
        );
    }
}

#[test]
fn the_create_fast_path_records_what_the_general_path_records() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1",
                     "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                  "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                  "env": [{"name": "A", "value": "1"}]}],
                 "tolerations": [{"key": "k", "operator": "Exists"}]},
        "status": {"phase": "Pending"}
    });
    for object in [pod, manifest(Some(3), true)] {
        let r = req("creator", "2025-01-01T00:00:01Z");
        let mut fast = object.clone();
        update_managed_fields(None, &mut fast, &r);
        let mut general = object.clone();
        // The kind's zero object as the old one takes the general path with
        // the same meaning.
        update_managed_fields(Some(zero_of(&object)), &mut general, &r);
        assert_eq!(fast, general);
        assert!(fast["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].is_object());
        assert!(
            fast["metadata"]["managedFields"][0]["fieldsV1"]
                .get("f:status")
                .is_none()
        );
    }
}

/// The managed fields of a create as the general comparison with the
/// kind's zero object computes them: every added or changed path, minus
/// status and what no manager owns.
fn created_fields_through_the_set(obj: &Value) -> Value {
    let root = kind_root(&[Some(obj)]);
    let cmp = typed::compare(zero_of(obj), obj, root);
    let changed = cmp.added.union(&cmp.modified);
    let set = managed::strip(&changed.without_top(&PathElement::Field("status".into())));
    set.to_fields_v1()
}

#[test]
fn a_creates_managed_fields_equal_what_the_general_comparison_gives() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "d", "uid": "u", "generation": 1,
                     "labels": {"app": "web", "tier": "x"}, "annotations": {},
                     "finalizers": ["a/b", "c/d", "a/b"],
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "rs", "uid": "rsu", "controller": true}]},
        "spec": {
            "containers": [{
                "name": "app", "image": "x:1", "command": ["sh", "-c", "sleep 1"],
                // Duplicate env names happen in stored objects.
                "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom":
                         {"fieldRef": {"fieldPath": "status.podIP"}}}, {"name": "A", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
                "resources": {"requests": {"cpu": "100m"}, "limits": {}},
                "volumeMounts": [{"name": "v", "mountPath": "/v"}]
            }, {"name": "side", "image": "y"}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "nodeSelector": {"zone": "a"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]
        },
        "status": {"phase": "Pending"}
    });
    let deployment = manifest(Some(3), true);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "namespace": "d"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                 "clusterIPs": [], "type": "ClusterIP"}
    });
    let configmap = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d", "managedFields": [{"manager": "old"}]},
        "data": {"a": "1", "b": ""}
    });
    let unknown = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"list": [1, 2], "nested": {"x": {"y": null}}}
    });
    let bare = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
    for obj in [pod, deployment, service, configmap, unknown, bare] {
        let want = created_fields_through_the_set(&obj);
        let mut created = obj.clone();
        update_managed_fields(None, &mut created, &req("kubectl", T1));
        let got = created
            .pointer("/metadata/managedFields/0/fieldsV1")
            .cloned()
            .unwrap_or_else(|| json!({}));
        assert_eq!(got, want, "{obj}");
        if want != json!({}) {
            let entry = &created["metadata"]["managedFields"][0];
            assert_eq!(entry["manager"], "kubectl");
            assert_eq!(entry["operation"], "Update");
            assert_eq!(entry["time"], T1);
            assert_eq!(
                created["metadata"]["managedFields"]
                    .as_array()
                    .map(Vec::len),
                Some(1)
            );
        }
    }
}
