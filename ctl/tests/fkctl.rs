//! fkctl against a real `ferrokube up` (embedded store and etcd): apply,
//! get and delete agree with the real kubectl, and explain-placement
//! tells, node by node, why a pod does not fit on hollow nodes.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{Backend, Cluster, both_backends, eventually, table};
use scheduler::hollow::{self, HollowSpec};

fn fkctl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fkctl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("fkctl runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "fkctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const MANIFEST: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
";

fn apply_get_delete(backend: Backend) {
    let c = Cluster::start(backend);
    let kc = c.kubeconfig();
    let file = c.dir().join("app.yaml");
    std::fs::write(&file, MANIFEST).expect("manifest written");
    let file = file.to_string_lossy().into_owned();

    let applied = ok(fkctl(&kc, &["apply", "-f", &file]));
    assert_eq!(
        applied,
        "configmap/settings serverside-applied\npod/web serverside-applied\n"
    );
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "fast"
    );
    // Server-side apply recorded fkctl as the manager of the fields.
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}"
        ]),
        "fkctl/Apply"
    );
    // Applying again changes nothing and says the same.
    assert_eq!(ok(fkctl(&kc, &["apply", "-f", &file])), applied);

    // `get` prints the server's table: the same columns kubectl shows.
    let ours = table(&ok(fkctl(&kc, &["get", "pods"])));
    let theirs = table(&c.kubectl_ok(&["get", "pods"]));
    assert_eq!(ours[0], theirs[0], "headers");
    assert_eq!(ours[1][0], "web");
    let cm = table(&ok(fkctl(&kc, &["get", "cm", "settings"])));
    assert_eq!(cm[0], vec!["NAME", "DATA", "AGE"]);
    assert_eq!(cm[1][..2], ["settings".to_string(), "1".to_string()]);
    let all = table(&ok(fkctl(&kc, &["get", "configmaps", "-A"])));
    assert_eq!(all[0][0], "NAMESPACE");

    // KUBECONFIG is honoured like kubectl's.
    let via_env = Command::new(env!("CARGO_BIN_EXE_fkctl"))
        .args(["get", "configmap", "settings"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("fkctl runs");
    assert!(ok(via_env).contains("settings"));

    // Errors read as kubectl's.
    let missing = fkctl(&kc, &["get", "pod", "nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
    let unknown = fkctl(&kc, &["get", "gadgets"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("gadgets"));

    assert_eq!(
        ok(fkctl(&kc, &["delete", "configmap", "settings"])),
        "configmap \"settings\" deleted\n"
    );
    let gone = c.kubectl_err(&["get", "configmap", "settings"], None);
    assert!(gone.contains("NotFound"), "{gone}");
    let none = fkctl(&kc, &["get", "configmaps", "-n", "empty-ns"]);
    assert!(none.status.success());
    assert_eq!(
        String::from_utf8_lossy(&none.stderr).trim(),
        "No resources found in empty-ns namespace."
    );
}

fn explain_placement(backend: Backend) {
    let c = Cluster::start(backend);
    let kc = c.kubeconfig();
    // The runtime lives as long as the test: the hollow nodes keep their
    // leases fresh, so the node lifecycle controller never taints them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = client::connect(Some(&kc)).await.expect("client");
        let spec = HollowSpec {
            count: 3,
            cpu: "1".into(),
            name_prefix: "hollow-".into(),
            ..HollowSpec::default()
        };
        hollow::register(&client, &spec)
            .await
            .expect("hollow nodes");
        tokio::spawn(hollow::run(client, spec, std::future::pending()));
    });
    // Wait until the scheduler's cache has all three nodes: a pod that
    // fits nowhere is then rejected by every one of them.
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: small}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/pause:3.10, resources: {requests: {cpu: 100m}}}\n",
    );
    eventually(Duration::from_secs(30), || {
        let node = c.kubectl_ok(&["get", "pod", "small", "-o", "jsonpath={.spec.nodeName}"]);
        (!node.is_empty()).then_some(())
    })
    .expect("small is bound");
    let placed = ok(fkctl(&kc, &["explain-placement", "small"]));
    assert!(
        placed.contains("Result:     scheduled to hollow-"),
        "{placed}"
    );
    assert!(placed.contains("NodeResourcesFit"), "{placed}");

    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/pause:3.10, resources: {requests: {cpu: '8'}}}\n",
    );
    let want = "0/3 nodes are available: 3 Insufficient cpu.";
    let out = eventually(Duration::from_secs(30), || {
        let out = fkctl(&kc, &["explain-placement", "huge", "-n", "default"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(want).then_some(text)
    })
    .expect("an explanation of the failed attempt");
    let rows = table(&out[out.find("NODE").expect("a rejection table")..]);
    assert_eq!(rows[0], vec!["NODE", "FILTER", "REASON"]);
    let mut nodes: Vec<&str> = rows[1..4].iter().map(|r| r[0].as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["hollow-0", "hollow-1", "hollow-2"]);
    for r in &rows[1..4] {
        assert_eq!(
            r[1..],
            [
                "NodeResourcesFit".to_string(),
                "Insufficient cpu".to_string()
            ]
        );
    }

    let none = fkctl(&kc, &["explain-placement", "never-created"]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr)
            .contains("no attempt recorded for pod default/never-created")
    );
}

both_backends!(apply_get_delete, explain_placement);
