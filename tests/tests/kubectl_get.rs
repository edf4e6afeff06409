//! `kubectl apply` of the example manifests and `kubectl get` in every output
//! format: the table columns Kubernetes 1.32 prints, `-o yaml|json|wide|name`,
//! label and field selectors, `-A`, and the discovery-driven commands
//! `api-resources` and `explain`.

use e2e::{Backend, Cluster, both_backends, manifest, table};
use serde_json::Value;

/// The row whose first cell is `name`, without the header.
fn row(output: &str, name: &str) -> Vec<String> {
    table(output)
        .into_iter()
        .skip(1)
        .find(|cells| cells.first().is_some_and(|c| c == name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{output}"))
}

fn header(output: &str) -> Vec<String> {
    table(output).into_iter().next().unwrap_or_default()
}

fn json(output: &str) -> Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("not JSON ({e}):\n{output}"))
}

fn apply_multi_document_manifest_creates_every_object(backend: Backend) {
    let cluster = Cluster::start(backend);
    let out = cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    assert_eq!(
        out,
        "namespace/shop created\nconfigmap/shop-config created\nsecret/shop-db created\n\
         deployment.apps/shop-web created\nservice/shop-web created\n"
    );

    let ns = cluster.kubectl_ok(&["get", "namespaces"]);
    assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"]);
    for name in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "shop",
    ] {
        assert_eq!(row(&ns, name)[1], "Active", "{ns}");
    }

    let cm = cluster.kubectl_ok(&["get", "configmaps", "-n", "shop"]);
    assert_eq!(header(&cm), ["NAME", "DATA", "AGE"]);
    assert_eq!(row(&cm, "shop-config")[1], "3");

    let secret = cluster.kubectl_ok(&["get", "secrets", "-n", "shop"]);
    assert_eq!(header(&secret), ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(row(&secret, "shop-db")[1..3], ["Opaque", "2"]);
    // stringData is folded into data on write.
    let username = cluster.kubectl_ok(&[
        "get",
        "secret",
        "shop-db",
        "-n",
        "shop",
        "-o",
        "jsonpath={.data.username}",
    ]);
    assert_eq!(username, "c2hvcA==");

    let deploy = cluster.kubectl_ok(&["get", "deployments", "-n", "shop"]);
    assert_eq!(
        header(&deploy),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    // The controllers create the 3 pods at once; nothing makes them ready.
    assert_eq!(row(&deploy, "shop-web")[1..4], ["0/3", "3", "0"]);

    let wide = cluster.kubectl_ok(&["get", "deployment", "shop-web", "-n", "shop", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        row(&wide, "shop-web")[5..],
        [
            "web",
            "docker.io/library/busybox:latest",
            "app=shop,tier=web"
        ]
    );

    let svc = cluster.kubectl_ok(&["get", "services", "-n", "shop"]);
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let svc_row = row(&svc, "shop-web");
    assert_eq!(svc_row[1], "ClusterIP");
    assert!(
        svc_row[2].parse::<std::net::Ipv4Addr>().is_ok(),
        "a ClusterIP Service is allocated an address: {svc}"
    );
    assert_eq!(svc_row[3..5], ["<none>", "80/TCP"]);

    let names = cluster.kubectl_ok(&["get", "all", "-n", "shop", "-o", "name"]);
    for expected in ["service/shop-web", "deployment.apps/shop-web"] {
        assert!(
            names.lines().any(|l| l == expected),
            "{expected} missing from get all:\n{names}"
        );
    }
}

fn get_prints_yaml_json_and_names(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);

    let yaml = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "shop-config",
        "-n",
        "shop",
        "-o",
        "yaml",
    ]);
    let object: Value = serde_yaml_ng::from_str(&yaml).expect("-o yaml is YAML");
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(object["metadata"]["namespace"], "shop");
    assert_eq!(object["data"]["CART_TTL_SECONDS"], "3600");
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            object["metadata"][field].is_string(),
            "metadata.{field} is set:\n{yaml}"
        );
    }

    let list =
        json(&cluster.kubectl_ok(&["get", "deployments,services", "-n", "shop", "-o", "json"]));
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["Deployment", "Service"]);

    let names = cluster.kubectl_ok(&[
        "get",
        "configmaps,secrets",
        "-n",
        "shop",
        "-l",
        "app=shop",
        "-o",
        "name",
    ]);
    assert_eq!(names, "configmap/shop-config\nsecret/shop-db\n");

    // kubectl pages with limit/continue; tiny pages must give the same list.
    let whole = cluster.kubectl_ok(&["get", "configmaps,secrets,namespaces", "-A", "-o", "name"]);
    let paged = cluster.kubectl_ok(&[
        "get",
        "configmaps,secrets,namespaces",
        "-A",
        "-o",
        "name",
        "--chunk-size=2",
    ]);
    assert_eq!(paged, whole);
    assert!(whole.lines().count() >= 7, "{whole}");
}

fn get_defaults_what_kubernetes_defaults(backend: Backend) {
    let cluster = Cluster::start(backend);
    cluster.kubectl_ok(&["apply", "-f", &manifest("shop.yaml")]);
    let deploy =
        json(&cluster.kubectl_ok(&["get", "deployment", "shop-web", "-n", "shop", "-o", "json"]));
    assert_eq!(deploy["metadata"]["generation"], 1);
    assert_eq!(deploy["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], 600);
    let pod_spec = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(pod_spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod_spec["terminationGracePeriodSeconds"], 30);
    // The shop runs `busybox:latest`, and `:latest` defaults to Always.
    assert_eq!(pod_spec["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(
        pod_spec["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
}

fn get_pods_with_selectors_and_all_namespaces(backend: Backend) {
    let cluster = Cluster::start(backend);
    assert_eq!(
        cluster.kubectl_ok(&["apply", "-f", &manifest("pod.yaml")]),
        "pod/hello created\n"
    );
    cluster.kubectl_ok(&["create", "namespace", "other"]);
    cluster.kubectl_ok(&[
        "run",
        "lonely",
        "--image=busybox:1.36",
        "-n",
        "other",
        "--labels=app=lonely",
    ]);

    let pods = cluster.kubectl_ok(&["get", "pods"]);
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(row(&pods, "hello")[1..4], ["0/1", "Pending", "0"]);
    assert!(
        !pods.contains("lonely"),
        "the default namespace only:\n{pods}"
    );

    let wide = cluster.kubectl_ok(&["get", "pod", "hello", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert_eq!(
        row(&wide, "hello")[5..],
        ["<none>", "<none>", "<none>", "<none>"]
    );

    let all = cluster.kubectl_ok(&["get", "pods", "-A"]);
    assert_eq!(
        header(&all),
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(row(&all, "default")[1], "hello");
    assert_eq!(row(&all, "other")[1], "lonely");

    let by_label =
        cluster.kubectl_ok(&["get", "pods", "-A", "-l", "app in (lonely)", "-o", "name"]);
    assert_eq!(by_label, "pod/lonely\n");
    let by_absent_label = cluster.kubectl_ok(&["get", "pods", "-A", "-l", "!app", "-o", "name"]);
    assert_eq!(by_absent_label, "");

    let by_field = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "metadata.name=hello",
        "-o",
        "name",
    ]);
    assert_eq!(by_field, "pod/hello\n");
    let pending = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending, "pod/hello\npod/lonely\n");
    let unscheduled = cluster.kubectl_ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=,metadata.namespace=default",
        "-o",
        "name",
    ]);
    assert_eq!(unscheduled, "pod/hello\n");
    let none = cluster.kubectl_err(&["get", "pods", "--field-selector", "spec.bogus=x"], None);
    assert!(
        none.contains("field label not supported: spec.bogus"),
        "unknown field labels are rejected: {none}"
    );
}

fn get_workload_tables(backend: Backend) {
    let cluster = Cluster::start(backend);
    let applied = |file: &str, expected: &str| {
        assert_eq!(
            cluster.kubectl_ok(&["apply", "-f", &manifest(file)]),
            expected
        );
    };
    applied("job.yaml", "job.batch/pi created\n");
    applied("cronjob.yaml", "cronjob.batch/clock created\n");
    applied("daemonset.yaml", "daemonset.apps/log-agent created\n");
    applied(
        "statefulset.yaml",
        "service/kv created\nstatefulset.apps/kv created\n",
    );

    let jobs = cluster.kubectl_ok(&["get", "jobs"]);
    assert_eq!(
        header(&jobs),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    assert_eq!(row(&jobs, "pi")[2], "0/1");

    let cronjobs = cluster.kubectl_ok(&["get", "cronjobs"]);
    assert_eq!(
        header(&cronjobs),
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(
        row(&cronjobs, "clock")[1..6],
        ["*/5 * * * *", "<none>", "False", "0", "<none>"]
    );

    let ds = cluster.kubectl_ok(&["get", "daemonsets", "-n", "kube-system"]);
    assert_eq!(
        header(&ds),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(
        row(&ds, "log-agent")[1..7],
        ["0", "0", "0", "0", "0", "<none>"]
    );

    let sts = cluster.kubectl_ok(&["get", "statefulsets"]);
    assert_eq!(header(&sts), ["NAME", "READY", "AGE"]);
    assert_eq!(row(&sts, "kv")[1], "0/3");

    let headless = cluster.kubectl_ok(&["get", "service", "kv"]);
    assert_eq!(
        row(&headless, "kv")[1..5],
        ["ClusterIP", "None", "<none>", "2379/TCP"]
    );
}

fn api_resources_and_explain_use_discovery_and_openapi(backend: Backend) {
    let cluster = Cluster::start(backend);
    let resources = cluster.kubectl_ok(&["api-resources"]);
    assert_eq!(
        header(&resources),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for expected in [
        ["pods", "po", "v1", "true", "Pod"],
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["configmaps", "cm", "v1", "true", "ConfigMap"],
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        ["cronjobs", "cj", "batch/v1", "true", "CronJob"],
    ] {
        assert_eq!(row(&resources, expected[0]), expected, "{resources}");
    }
    let namespaced = cluster.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(
        namespaced.lines().any(|l| l == "namespaces"),
        "{namespaced}"
    );
    assert!(!namespaced.lines().any(|l| l == "pods"), "{namespaced}");

    let explain = cluster.kubectl_ok(&["explain", "pod.spec.containers"]);
    for expected in [
        "KIND:       Pod",
        "VERSION:    v1",
        "FIELD: containers <[]Container>",
        "DESCRIPTION:",
        "FIELDS:",
        "  image\t<string>",
        "  name\t<string> -required-",
    ] {
        assert!(
            explain.contains(expected),
            "explain lacks {expected:?}:\n{explain}"
        );
    }
}

both_backends!(
    apply_multi_document_manifest_creates_every_object,
    get_prints_yaml_json_and_names,
    get_defaults_what_kubernetes_defaults,
    get_pods_with_selectors_and_all_namespaces,
    get_workload_tables,
    api_resources_and_explain_use_discovery_and_openapi,
);
