//! The pod spec on a real containerd: downwardAPI and projected volumes,
//! the service account token Kubernetes' admission injects (verified
//! against the API server's key), a PersistentVolumeClaim bound to a host
//! path, the security context (`runAsUser`, `readOnlyRootFilesystem`), and
//! the waiting reasons of bad specs (a missing ConfigMap, an unparsable
//! image, a missing executable). Pods use no CNI (a bare network
//! namespace), so this test shares no bridge or CIDR with others.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const NODE: &str = "kvolumes-node";
const TIMEOUT: Duration = Duration::from_secs(60);

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    kubelet::testing::eventually(what, TIMEOUT, check).await
}

fn pod(name: &str, script: &str, extra: serde_json::Value) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name, "tier": "test"}},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
        },
    });
    merge(&mut value, extra);
    serde_json::from_value(value).expect("pod")
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

async fn finished(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(&format!("{name} to finish"), || async {
        let pod = pods.get_opt(name).await.expect("get pod")?;
        let phase = pod.status.as_ref()?.phase.clone()?;
        (phase == "Succeeded" || phase == "Failed").then_some(pod)
    })
    .await
}

fn log_of(data_dir: &Path, pod: &Pod) -> String {
    let dir = data_dir.join("pods").join(format!(
        "default_{}_{}",
        pod.metadata.name.as_deref().expect("name"),
        pod.metadata.uid.as_deref().expect("uid")
    ));
    let raw = std::fs::read_to_string(dir.join("main/0.log")).expect("container log");
    // CRI log format: `<time> <stream> <F|P> <text>`; a full (F) line ended
    // with a newline, a partial (P) one did not.
    raw.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ').skip(2);
            let tag = parts.next().unwrap_or_default();
            let text = parts.next().unwrap_or_default();
            if tag == "F" {
                format!("{text}\n")
            } else {
                text.to_string()
            }
        })
        .collect()
}

async fn waiting(pods: &Api<Pod>, name: &str, reason: &str) -> String {
    eventually(&format!("{name} to wait with {reason}"), || async {
        let pod = pods.get_opt(name).await.expect("get pod")?;
        let waiting = pod
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (waiting.reason.as_deref() == Some(reason)).then(|| waiting.message.unwrap_or_default())
    })
    .await
}

/// Kills what the kubelet left running if the test fails midway.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let data = self.0.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&data)
                && let Ok(pid) = entry.file_name().to_string_lossy().parse()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for target in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if target.starts_with(&data) {
                let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_tokens_security_and_waiting_reasons_on_a_private_containerd() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kubelet=info")),
        )
        .with_test_writer()
        .try_init();
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _cleanup = Cleanup(data_dir.clone());
    std::fs::create_dir_all(data_dir.join("images")).expect("images dir");
    kubelet::busybox_image::write_busybox_image(
        Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &data_dir.join("images/busybox.tar"),
    )
    .expect("build busybox image");
    let mut config =
        kubelet::KubeletConfig::new(server.kubeconfig.clone(), NODE.into(), data_dir.clone());
    config.cni_bin_dir = None;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kubelet = tokio::spawn(kubelet::run(config, async {
        let _ = stopped.await;
    }));

    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let pp = PostParams::default();
    // The test server seeds the default ServiceAccount and an empty CA
    // bundle (plain HTTP); publish a certificate as a TLS cluster would.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ca = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";
    config_maps
        .patch(
            "kube-root-ca.crt",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"ca.crt": ca}})),
        )
        .await
        .expect("publish the CA bundle");
    config_maps
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}),
            )
            .expect("cm"),
        )
        .await
        .expect("create configmap");
    let host_dir = dir.path().join("pv-data");
    std::fs::create_dir_all(&host_dir).expect("pv dir");
    std::fs::write(host_dir.join("hello.txt"), "from-pv").expect("pv file");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    volumes
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "kvolumes-pv"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "hostPath": {"path": host_dir}, "storageClassName": "manual"},
            }))
            .expect("pv"),
        )
        .await
        .expect("create pv");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    claims
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                         "resources": {"requests": {"storage": "1Gi"}}},
            }))
            .expect("pvc"),
        )
        .await
        .expect("create pvc");
    // What the binder does (tested in the controller-manager).
    claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeName": "kvolumes-pv"}})),
        )
        .await
        .expect("bind claim");
    claims
        .patch_status(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .expect("claim status");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let projected_script = format!(
        "echo \"labels=$(cat /podinfo/labels | tr '\\n' ' ')\"; echo \"mem=$(cat /podinfo/mem)\"; \
         echo \"greeting=$(cat /projected/greeting)\"; echo \"name=$(cat /projected/podname)\"; \
         echo \"namespace=$(cat {sa}/namespace)\"; echo \"ca=$(head -1 {sa}/ca.crt)\"; \
         echo \"token=$(cat {sa}/token)\"; echo \"files=$(ls {sa} | tr '\\n' ' ')\""
    );
    let specs = [
        pod(
            "projected",
            &projected_script,
            json!({"spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", projected_script],
                "resources": {"limits": {"memory": "64Mi"}},
                "volumeMounts": [{"name": "podinfo", "mountPath": "/podinfo"},
                                 {"name": "all-in-one", "mountPath": "/projected", "readOnly": true}]}],
            "volumes": [
                {"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "mode": 384, "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}}]}},
                {"name": "all-in-one", "projected": {"sources": [
                    {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "greeting"}]}},
                    {"downwardAPI": {"items": [{"path": "podname", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
            ]}}),
        ),
        pod(
            "runas",
            "echo \"uid=$(id -u) gid=$(id -g) groups=$(id -G)\"; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace",
            json!({"spec": {"securityContext": {"runAsUser": 1234, "runAsGroup": 5678, "supplementalGroups": [4000]}}}),
        ),
        pod(
            "readonly",
            "if echo x > /probe; then echo writable; else echo refused; fi; echo y > /tmp-vol/ok && echo scratch-ok",
            json!({"spec": {
                "containers": [{"name": "main", "image": "busybox",
                    "command": ["sh", "-c", "if echo x > /probe; then echo writable; else echo refused; fi; echo y > /tmp-vol/ok && echo scratch-ok"],
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/tmp-vol"}]}],
                "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]}}),
        ),
        pod(
            "claim",
            "cat /data/hello.txt; echo; echo written > /data/out.txt",
            json!({"spec": {
                "containers": [{"name": "main", "image": "busybox",
                    "command": ["sh", "-c", "cat /data/hello.txt; echo; echo written > /data/out.txt"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}),
        ),
        pod(
            "needs-config",
            "echo \"late=$LATE\"",
            json!({"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo \"late=$LATE\""],
                "env": [{"name": "LATE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "v"}}}]}]}}),
        ),
        pod(
            "bad-image",
            "true",
            json!({"spec": {"containers": [{"name": "main", "image": "BusyBox:latest", "command": ["true"]}]}}),
        ),
        pod(
            "no-command",
            "true",
            json!({"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["/bin/does-not-exist"]}]}}),
        ),
    ];
    for p in &specs {
        pods.create(&pp, p).await.expect("create pod");
    }

    // The admission plugin added the token volume to every pod.
    let created = pods.get("runas").await.expect("get runas");
    let spec = created.spec.as_ref().expect("spec");
    let token_volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name.starts_with("kube-api-access-"))
        .expect("the kube-api-access volume");
    assert!(token_volume.projected.is_some());
    assert_eq!(
        created.status.as_ref().and_then(|s| s.qos_class.as_deref()),
        Some("BestEffort")
    );

    let projected = finished(&pods, "projected").await;
    let log = log_of(&data_dir, &projected);
    let line = |key: &str| -> String {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= line in {log:?}"))
            .to_string()
    };
    assert_eq!(line("labels").trim(), "app=\"projected\" tier=\"test\"");
    assert_eq!(line("mem"), "64");
    assert_eq!(line("greeting"), "hello");
    assert_eq!(line("name"), "projected");
    assert_eq!(line("namespace"), "default");
    assert_eq!(line("ca"), "-----BEGIN CERTIFICATE-----");
    assert_eq!(line("files").trim(), "ca.crt namespace token");
    let token = line("token");
    let signer =
        apiserver::serviceaccount::TokenSigner::load_or_create(&server.service_account_key)
            .expect("the API server's key");
    let claims = signer
        .verify(&token)
        .expect("the token verifies against the API server's key");
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "projected");
    assert_eq!(
        claims["kubernetes.io"]["pod"]["uid"].as_str(),
        projected.metadata.uid.as_deref()
    );
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 3607, "the admission plugin's expirationSeconds");

    let runas = finished(&pods, "runas").await;
    assert_eq!(
        log_of(&data_dir, &runas),
        "uid=1234 gid=5678 groups=5678 4000\ndefault\n"
    );

    let readonly = finished(&pods, "readonly").await;
    let log = log_of(&data_dir, &readonly);
    assert!(log.contains("Read-only file system"), "{log}");
    // stderr's line may land between stdout's two: their copiers race.
    let stdout: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("Read-only file system"))
        .collect();
    assert_eq!(stdout, ["refused", "scratch-ok"], "{log}");

    let claim = finished(&pods, "claim").await;
    assert_eq!(log_of(&data_dir, &claim), "from-pv\n");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("out.txt")).expect("written through the PV"),
        "written\n"
    );

    let message = waiting(&pods, "needs-config", "CreateContainerConfigError").await;
    assert_eq!(message, "configmap \"late\" not found");
    config_maps
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "late"}, "data": {"v": "arrived"}}),
            )
            .expect("cm"),
        )
        .await
        .expect("create late configmap");
    let started = finished(&pods, "needs-config").await;
    assert_eq!(log_of(&data_dir, &started), "late=arrived\n");

    let message = waiting(&pods, "bad-image", "InvalidImageName").await;
    assert_eq!(
        message,
        "Failed to apply default image tag \"BusyBox:latest\": couldn't parse image name \"BusyBox:latest\": invalid reference format: repository name (library/BusyBox) must be lowercase"
    );
    let message = waiting(&pods, "no-command", "RunContainerError").await;
    assert!(
        message.contains("/bin/does-not-exist") && message.contains("no such file or directory"),
        "{message}"
    );

    // Deleting the pods tears down their sandboxes, mounts and dirs.
    for p in &specs {
        let name = p.metadata.name.as_deref().expect("name");
        pods.delete(name, &Default::default())
            .await
            .expect("delete pod");
    }
    eventually("every pod to be torn down", || async {
        let left = pods
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len();
        let dirs = std::fs::read_dir(data_dir.join("pods")).map_or(0, |d| d.count());
        (left == 0 && dirs == 0).then_some(())
    })
    .await;
    let _ = stop.send(());
    kubelet.await.expect("kubelet task").expect("kubelet run");
}
