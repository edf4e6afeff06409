//! The exact error texts kubectl prints for the server's Status answers:
//! NotFound, AlreadyExists, Conflict on a stale resourceVersion, Invalid with
//! its field causes, and strict decoding of unknown fields.

use e2e::{Backend, Cluster, both_backends};
use serde_json::Value;

fn missing_object_is_not_found(backend: Backend) {
    let cluster = Cluster::start(backend);
    assert_eq!(
        cluster.kubectl_err(&["get", "pod", "nope"], None),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(
        cluster.kubectl_err(&["get", "deployment", "nope", "-n", "kube-system"], None),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    assert_eq!(
        cluster.kubectl_err(&["get", "namespace", "nope"], None),
        "Error from server (NotFound): namespaces \"nope\" not found\n"
    );
    // Creating into a namespace that does not exist.
    assert_eq!(
        cluster.kubectl_err(&["create", "configmap", "c", "-n", "nowhere"], None),
        "error: failed to create configmap: namespaces \"nowhere\" not found\n"
    );
}

fn duplicate_create_already_exists(backend: Backend) {
    let cluster = Cluster::start(backend);
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n";
    cluster.kubectl_stdin_ok(&["create", "-f", "-"], doc);
    assert_eq!(
        cluster.kubectl_err(&["create", "-f", "-"], Some(doc)),
        "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"dup\" already exists\n"
    );
}

fn replace_with_stale_resource_version_conflicts(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["create", "configmap", "stale", "--from-literal=k=1"]);
    let old = cluster.kubectl_ok(&["get", "configmap", "stale", "-o", "json"]);
    cluster.kubectl_ok(&["label", "configmap", "stale", "bumped=yes"]);

    let mut object: Value = serde_json::from_str(&old).expect("-o json is JSON");
    object["data"]["k"] = "2".into();
    let stderr = cluster.kubectl_err(&["replace", "-f", "-"], Some(&object.to_string()));
    assert_eq!(
        stderr,
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on \
         configmaps \"stale\": the object has been modified; please apply your changes to the latest \
         version and try again\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "configmap", "stale", "-o", "jsonpath={.data.k}"]),
        "1"
    );

    // With the current resourceVersion the same replace goes through.
    let current: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "configmap", "stale", "-o", "json"]))
            .expect("JSON");
    object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    assert_eq!(
        cluster.kubectl_stdin_ok(&["replace", "-f", "-"], &object.to_string()),
        "configmap/stale replaced\n"
    );
}

fn invalid_object_names_the_field(backend: Backend) {
    let cluster = Cluster::start(backend);
    let no_image =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: main\n";
    assert_eq!(
        cluster.kubectl_err(&["create", "-f", "-"], Some(no_image)),
        "The Pod \"x\" is invalid: spec.containers[0].image: Required value\n"
    );
    let bad_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n";
    let stderr = cluster.kubectl_err(&["create", "-f", "-"], Some(bad_name));
    assert!(
        stderr.starts_with(
            "The ConfigMap \"Not_A_Name\" is invalid: metadata.name: Invalid value: \"Not_A_Name\": \
             a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
        ),
        "{stderr}"
    );
    let negative = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: neg\nspec:\n  replicas: -1\n  \
                    selector:\n    matchLabels: {app: neg}\n  template:\n    metadata:\n      labels: {app: neg}\n    \
                    spec:\n      containers:\n      - {name: c, image: busybox}\n";
    assert_eq!(
        cluster.kubectl_err(&["create", "-f", "-"], Some(negative)),
        "The Deployment \"neg\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0\n"
    );
    assert_eq!(
        cluster.kubectl_ok(&["get", "pods,deployments", "-o", "name"]),
        ""
    );
}

fn unknown_fields_are_rejected_by_strict_validation(backend: Backend) {
    let cluster = Cluster::start(backend);
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  k: v\n";
    assert_eq!(
        cluster.kubectl_err(&["create", "-f", "-"], Some(typo)),
        "Error from server (BadRequest): error when creating \"STDIN\": ConfigMap in version \"v1\" \
         cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\"\n"
    );
    // `--validate=false` drops the unknown field instead.
    assert_eq!(
        cluster.kubectl_stdin_ok(&["create", "--validate=false", "-f", "-"], typo),
        "configmap/typo created\n"
    );
}

both_backends!(
    missing_object_is_not_found,
    duplicate_create_already_exists,
    replace_with_stale_resource_version_conflicts,
    invalid_object_names_the_field,
    unknown_fields_are_rejected_by_strict_validation,
);
