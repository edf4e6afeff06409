//! A create's `managedFields` entry is decided on the object as decoded and
//! defaulted, before admission and the strategy's preparation, as
//! kube-apiserver's create handler runs its field manager: the fields
//! defaulting adds are the creator's, those admission adds (a pod's
//! service-account token volume and mount, its service account, default
//! tolerations and priority) and those preparation adds (a Job's generated
//! selector and labels, a namespace's finalizer) are nobody's. Every way a
//! create is encoded records the same entry: the typed walk (JSON), the
//! tree (YAML), a dry run, and a create whose body brings managed fields
//! (the general bookkeeping).

mod support;

use serde_json::{Value, json};
use support::{call, server};

const PODS: &str = "/api/v1/namespaces/default/pods";

/// `kubectl run web --image=nginx:1.27 --labels=app=x`, as the real
/// kube-apiserver records it for the `kubectl-run` manager.
fn run_fields() -> Value {
    json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:containers": {"k:{\"name\":\"web\"}": {
                ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                "f:resources": {}, "f:terminationMessagePath": {},
                "f:terminationMessagePolicy": {}
            }},
            "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
            "f:schedulerName": {}, "f:securityContext": {},
            "f:terminationGracePeriodSeconds": {}
        }
    })
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {}}]}})
}

fn only_entry(obj: &Value) -> &Value {
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields in {obj}"));
    assert_eq!(entries.len(), 1, "{obj}");
    &entries[0]
}

#[tokio::test]
async fn a_pods_entry_owns_what_defaulting_adds_but_not_what_admission_adds() {
    let (_dir, app) = server().await;
    let manager = "?fieldManager=kubectl-run";
    let yaml = |name: &str| serde_yaml_ng::to_string(&pod(name)).expect("yaml");
    let cases = [
        (
            "json",
            format!("{PODS}{manager}"),
            "application/json",
            pod("json").to_string(),
        ),
        (
            "yaml",
            format!("{PODS}{manager}"),
            "application/yaml",
            yaml("yaml"),
        ),
        (
            "dry",
            format!("{PODS}{manager}&dryRun=All"),
            "application/json",
            pod("dry").to_string(),
        ),
    ];
    for (name, uri, content_type, body) in cases {
        let created = call(&app, "POST", &uri, content_type, &body).await;
        assert_eq!(created.code, 201, "{name}: {}", created.body);
        // Admission did its work on the object itself…
        let spec = &created.body["spec"];
        assert_eq!(spec["serviceAccountName"], "default", "{name}");
        let volume = spec["volumes"][0]["name"].as_str().unwrap_or_default();
        assert!(volume.starts_with("kube-api-access-"), "{name}: {spec}");
        assert!(spec["tolerations"].is_array(), "{name}: {spec}");
        // …but none of it is the creator's.
        let entry = only_entry(&created.body);
        assert_eq!(entry["manager"], "kubectl-run", "{name}");
        assert_eq!(entry["operation"], "Update", "{name}");
        assert_eq!(entry["fieldsV1"], run_fields(), "{name}");
        if name != "dry" {
            let stored = call(&app, "GET", &format!("{PODS}/{name}"), "", "").await;
            assert_eq!(only_entry(&stored.body)["fieldsV1"], run_fields(), "{name}");
        }
    }
    let dry = call(&app, "GET", &format!("{PODS}/dry"), "", "").await;
    assert_eq!(dry.code, 404, "a dry run stores nothing");
}

#[tokio::test]
async fn a_body_with_managed_fields_gets_the_same_creators_entry() {
    let (_dir, app) = server().await;
    let mut body = pod("brought");
    body["metadata"]["managedFields"] = json!([{"manager": "earlier", "operation": "Update",
        "apiVersion": "v1", "fieldsType": "FieldsV1", "time": "2026-01-01T00:00:00Z",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]);
    let uri = format!("{PODS}?fieldManager=kubectl-run");
    let created = call(&app, "POST", &uri, "application/json", &body.to_string()).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let entries = created.body["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let run = entries
        .iter()
        .find(|e| e["manager"] == "kubectl-run")
        .expect("the creator's entry");
    let spec = &run["fieldsV1"]["f:spec"];
    assert!(spec.get("f:dnsPolicy").is_some(), "{run}");
    for admitted in [
        "f:volumes",
        "f:serviceAccountName",
        "f:tolerations",
        "f:priority",
    ] {
        assert!(spec.get(admitted).is_none(), "{admitted} in {run}");
    }
}

/// Creates `body` at `collection` as `kubectl create` does, and answers
/// the created object.
async fn create(app: &axum::Router, collection: &str, body: &Value) -> Value {
    let uri = format!("{collection}?fieldManager=kubectl-create");
    let created = call(app, "POST", &uri, "application/json", &body.to_string()).await;
    assert_eq!(created.code, 201, "{}", created.body);
    created.body
}

#[tokio::test]
async fn preparation_adds_no_owned_fields() {
    let (_dir, app) = server().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    let created = create(&app, "/api/v1/namespaces", &ns).await;
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        only_entry(&created)["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}})
    );

    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "j", "image": "busybox"}]}}}});
    let created = create(&app, "/apis/batch/v1/namespaces/default/jobs", &job).await;
    assert!(created["spec"]["selector"]["matchLabels"].is_object());
    let fields = &only_entry(&created)["fieldsV1"];
    assert!(fields["f:spec"].get("f:selector").is_none(), "{fields}");
    assert!(fields.get("f:metadata").is_none(), "{fields}");
    assert!(fields["f:spec"]["f:backoffLimit"].is_object(), "{fields}");
}
