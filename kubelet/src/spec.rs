//! The OCI runtime spec of one container, built with `oci-spec` from the
//! pod, the container and the image config with Kubernetes' rules:
//! `command` replaces the image entrypoint, `args` its cmd (and a command
//! without args drops the image cmd), container env overrides image env,
//! `workingDir` overrides the image's; memory and cpu limits become cgroup
//! limits under the kubelet's cgroup parent; the pod's network namespace
//! is joined unless the pod uses the host network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use serde::Deserialize;

use crate::quantity::{cpu_millis, memory_bytes};

/// The CFS period the kubelet uses (100 ms).
pub const CPU_PERIOD: u64 = 100_000;
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {container}: {source}")]
    Oci {
        container: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("container {container} has no command and its image none either")]
    NoCommand { container: String },
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error("container {container}: invalid {resource} quantity {value:?}")]
    Quantity {
        container: String,
        resource: String,
        value: String,
    },
}

/// The parts of an image config (`config` in the image's config blob)
/// that shape the process.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageProcess {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `uid`, `uid:gid`, or a user name.
    #[serde(default)]
    pub user: Option<String>,
}

/// Where and how the container runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The pod's network namespace file; `None` for `hostNetwork` pods.
    pub netns: Option<PathBuf>,
    /// The cgroups path (cgroupfs driver), `/ferrokube/pod<uid>/<id>`.
    pub cgroups_path: String,
    pub hostname: String,
    /// Extra environment (resolved `fieldRef`s) the caller computed.
    pub extra_env: Vec<(String, String)>,
    /// The container's volume mounts.
    pub mounts: Vec<crate::volumes::BindMount>,
    /// The pod's resolv.conf, bound at `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
}

/// The final argv: Kubernetes' command/args rules over the image's.
pub fn argv(container: &Container, image: &ImageProcess) -> Vec<String> {
    let image_entry = image.entrypoint.clone().unwrap_or_default();
    let image_cmd = image.cmd.clone().unwrap_or_default();
    match (&container.command, &container.args) {
        (Some(cmd), Some(args)) => cmd.iter().chain(args).cloned().collect(),
        (Some(cmd), None) => cmd.clone(),
        (None, Some(args)) => image_entry
            .into_iter()
            .chain(args.iter().cloned())
            .collect(),
        (None, None) => image_entry.into_iter().chain(image_cmd).collect(),
    }
}

/// Image env, then the container's literal env and `extra`, later wins;
/// `$(VAR)` references are expanded as Kubernetes does.
pub fn environment(
    container: &Container,
    image: &ImageProcess,
    extra: &[(String, String)],
) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    fn set(
        order: &mut Vec<String>,
        values: &mut BTreeMap<String, String>,
        name: String,
        value: String,
    ) {
        if !values.contains_key(&name) {
            order.push(name.clone());
        }
        values.insert(name, value);
    }
    for entry in image.env.iter().flatten() {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(&mut order, &mut values, k.to_string(), v.to_string());
    }
    for (k, v) in extra {
        set(&mut order, &mut values, k.clone(), v.clone());
    }
    for var in container.env.iter().flatten() {
        if var.value_from.is_some() {
            continue;
        }
        let expanded = expand(var.value.as_deref().unwrap_or(""), &values);
        set(&mut order, &mut values, var.name.clone(), expanded);
    }
    if !values.contains_key("PATH") {
        let (k, v) = DEFAULT_PATH.split_once('=').unwrap_or(("PATH", ""));
        set(&mut order, &mut values, k.into(), v.into());
    }
    order
        .into_iter()
        .map(|k| {
            let v = values.get(&k).cloned().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect()
}

/// `$(NAME)` → the value if defined, `$$` → `$`, else left as written.
fn expand(input: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = values.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Builds the runtime spec.
pub fn build(
    pod: &Pod,
    container: &Container,
    image: &ImageProcess,
    place: &Placement,
) -> Result<Spec, SpecError> {
    let name = container.name.clone();
    let oci = |source| SpecError::Oci {
        container: name.clone(),
        source,
    };
    let args = argv(container, image);
    if args.is_empty() {
        return Err(SpecError::NoCommand { container: name });
    }
    let cwd = container
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".into());
    // The security context sets the real user, groups and capabilities.
    let user = UserBuilder::default().build().map_err(oci)?;
    let process = ProcessBuilder::default()
        .args(args)
        .env(environment(container, image, &place.extra_env))
        .cwd(cwd)
        .user(user)
        .no_new_privileges(false)
        .build()
        .map_err(oci)?;
    let process = {
        // Keep the default capability set and rlimits of oci-spec's
        // default process (docker's defaults).
        let mut base = oci_spec::runtime::Process::default();
        base.set_args(process.args().clone());
        base.set_env(process.env().clone());
        base.set_cwd(process.cwd().clone());
        base.set_user(process.user().clone());
        base.set_no_new_privileges(Some(false));
        base
    };

    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let quantity_err = |resource: &str, value: &str| SpecError::Quantity {
        container: container.name.clone(),
        resource: resource.into(),
        value: value.into(),
    };
    let mut resources = LinuxResourcesBuilder::default().devices(vec![]);
    if let Some(q) = limits.and_then(|l| l.get("memory")) {
        let bytes = memory_bytes(&q.0).ok_or_else(|| quantity_err("memory", &q.0))?;
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(bytes)
                .build()
                .map_err(oci)?,
        );
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut has_cpu = false;
    if let Some(q) = limits.and_then(|l| l.get("cpu")) {
        let millis = cpu_millis(&q.0).ok_or_else(|| quantity_err("cpu", &q.0))?;
        // The kubelet's minimum quota is 1 ms.
        let quota = (millis * CPU_PERIOD as i64 / 1000).max(1000);
        cpu = cpu.quota(quota).period(CPU_PERIOD);
        has_cpu = true;
    }
    if let Some(q) = requests
        .and_then(|r| r.get("cpu"))
        .or_else(|| limits.and_then(|l| l.get("cpu")))
    {
        let millis = cpu_millis(&q.0).ok_or_else(|| quantity_err("cpu", &q.0))?;
        cpu = cpu.shares(((millis * 1024) / 1000).max(2) as u64);
        has_cpu = true;
    }
    if has_cpu {
        resources = resources.cpu(cpu.build().map_err(oci)?);
    }

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(oci)?,
        );
    }
    if let Some(netns) = &place.netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(netns.clone())
                .build()
                .map_err(oci)?,
        );
    }
    let defaults = oci_spec::runtime::Linux::default();
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(oci)?)
        .cgroups_path(PathBuf::from(&place.cgroups_path))
        .masked_paths(defaults.masked_paths().clone().unwrap_or_default())
        .readonly_paths(defaults.readonly_paths().clone().unwrap_or_default())
        .build()
        .map_err(oci)?;
    let mut mounts = oci_spec::runtime::get_default_mounts();
    if let Some(conf) = &place.resolv_conf {
        mounts.push(bind(&conf.to_string_lossy(), "/etc/resolv.conf", true).map_err(oci)?);
    } else if place.netns.is_none() && Path::new("/etc/resolv.conf").exists() {
        mounts.push(bind("/etc/resolv.conf", "/etc/resolv.conf", true).map_err(oci)?);
    }
    for m in &place.mounts {
        let source = m.source.to_string_lossy();
        mounts.push(bind(&source, &m.destination, m.read_only).map_err(oci)?);
    }
    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()
                .map_err(oci)?,
        )
        .hostname(place.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(oci)?;
    crate::security::apply(
        &mut spec,
        pod,
        container,
        image.user.as_deref().unwrap_or_default(),
    )?;
    Ok(spec)
}

fn bind(
    source: &str,
    destination: &str,
    read_only: bool,
) -> Result<oci_spec::runtime::Mount, oci_spec::OciSpecError> {
    oci_spec::runtime::MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(vec![
            "rbind".to_string(),
            if read_only { "ro" } else { "rw" }.to_string(),
        ])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn container(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Container {
            name: "c".into(),
            command: command.map(v),
            args: args.map(v),
            ..Container::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let image = ImageProcess {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["default".into()]),
            ..ImageProcess::default()
        };
        type Case<'a> = (Option<&'a [&'a str]>, Option<&'a [&'a str]>, &'a [&'a str]);
        let cases: [Case; 4] = [
            (None, None, &["/entry", "default"]),
            (Some(&["sh"]), None, &["sh"]),
            (None, Some(&["x"]), &["/entry", "x"]),
            (Some(&["sh"]), Some(&["-c", "true"]), &["sh", "-c", "true"]),
        ];
        for (command, args, want) in cases {
            assert_eq!(
                argv(&container(command, args), &image),
                want,
                "{command:?} {args:?}"
            );
        }
    }

    #[test]
    fn container_env_overrides_image_env_and_expands_references() {
        let image = ImageProcess {
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            ..ImageProcess::default()
        };
        let mut c = container(Some(&["sh"]), None);
        c.env = Some(vec![
            EnvVar {
                name: "A".into(),
                value: Some("pod".into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "B".into(),
                value: Some("$(A)-$(MISSING)-$$".into()),
                ..EnvVar::default()
            },
        ]);
        let env = environment(&c, &image, &[("POD_NAME".into(), "p".into())]);
        assert_eq!(
            env,
            vec!["PATH=/bin", "A=pod", "POD_NAME=p", "B=pod-$(MISSING)-$"]
        );
    }

    #[test]
    fn limits_become_cgroup_limits_and_the_pod_netns_is_joined() {
        let mut c = container(Some(&["sleep", "1"]), None);
        c.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("memory".to_string(), Quantity("64Mi".into())),
                ("cpu".to_string(), Quantity("500m".into())),
            ])),
            ..ResourceRequirements::default()
        });
        let place = Placement {
            netns: Some("/run/netns/p".into()),
            cgroups_path: "/ferrokube/podu/c1".into(),
            hostname: "p".into(),
            extra_env: vec![],
            mounts: vec![crate::volumes::BindMount {
                source: "/var/lib/x".into(),
                destination: "/data".into(),
                read_only: true,
            }],
            resolv_conf: Some("/var/lib/pods/p/resolv.conf".into()),
        };
        let spec = build(&Pod::default(), &c, &ImageProcess::default(), &place).expect("spec");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(
            json["linux"]["resources"]["memory"]["limit"],
            64 * 1024 * 1024
        );
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 512);
        assert_eq!(json["linux"]["cgroupsPath"], "/ferrokube/podu/c1");
        let net = json["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .find(|n| n["type"] == "network")
            .expect("network namespace")
            .clone();
        assert_eq!(net["path"], "/run/netns/p");
        assert_eq!(json["process"]["args"], serde_json::json!(["sleep", "1"]));
        assert_eq!(json["root"]["path"], "rootfs");
        let resolv = json["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/etc/resolv.conf")
            .expect("the pod's resolv.conf is mounted");
        assert_eq!(resolv["source"], "/var/lib/pods/p/resolv.conf");
        let data = json["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/data")
            .expect("the volume mount")
            .clone();
        assert_eq!(data["source"], "/var/lib/x");
        assert_eq!(data["options"], serde_json::json!(["rbind", "ro"]));
    }

    #[test]
    fn a_container_without_any_command_is_refused() {
        let err = build(
            &Pod::default(),
            &container(None, None),
            &ImageProcess::default(),
            &Placement {
                netns: None,
                cgroups_path: String::new(),
                hostname: String::new(),
                extra_env: vec![],
                mounts: vec![],
                resolv_conf: None,
            },
        );
        assert!(matches!(err, Err(SpecError::NoCommand { .. })));
    }
}
