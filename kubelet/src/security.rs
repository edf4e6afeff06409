//! A container's security context applied to its OCI spec, as the kubelet
//! and containerd's CRI plugin do together: the effective settings merge
//! the pod's `securityContext` under the container's; the user and groups
//! (`runAsUser`, `runAsGroup`, the image's numeric `User`, then
//! `supplementalGroups` and `fsGroup` as additional groups);
//! `runAsNonRoot` refused with the kubelet's messages; containerd's default
//! capability set with `capabilities.add`/`drop` (`ALL` included);
//! `privileged` (every capability, nothing masked or read-only, `/sys`
//! writable, every device allowed); `allowPrivilegeEscalation: false` as
//! `noNewPrivileges`; `readOnlyRootFilesystem` as a read-only root.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, Spec,
};

/// containerd's default capabilities (`oci.DefaultCaps`), which Kubernetes
/// containers get unless they add or drop some.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability oci-spec knows, for `privileged` and `add: [ALL]`.
const ALL_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETGID",
    "SETFCAP",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The kubelet's `verifyRunAsNonRoot` messages.
    #[error(
        "container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})"
    )]
    RunAsUserRoot { pod: String, container: String },
    #[error(
        "container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})"
    )]
    ImageRunsAsRoot { pod: String, container: String },
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})"
    )]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("invalid user or group id {0}")]
    BadId(i64),
    #[error(transparent)]
    Oci(#[from] oci_spec::OciSpecError),
}

/// The settings in effect: the container's, else the pod's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    pub supplemental_groups: Vec<i64>,
    pub fs_group: Option<i64>,
    pub privileged: bool,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// Merges the pod's security context under the container's.
pub fn effective(pod: &Pod, container: &Container) -> Effective {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    Effective {
        run_as_user: sc
            .and_then(|s| s.run_as_user)
            .or_else(|| pod_sc.and_then(|s| s.run_as_user)),
        run_as_group: sc
            .and_then(|s| s.run_as_group)
            .or_else(|| pod_sc.and_then(|s| s.run_as_group)),
        run_as_non_root: sc
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
            .unwrap_or(false),
        supplemental_groups: pod_sc
            .and_then(|s| s.supplemental_groups.clone())
            .unwrap_or_default(),
        fs_group: pod_sc.and_then(|s| s.fs_group),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        read_only_root: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        // An unset allowPrivilegeEscalation allows it (no_new_privs off).
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
    }
}

/// The image's `User` as numeric uid and gid, when it is numeric.
pub fn image_ids(user: &str) -> (Option<u32>, Option<u32>) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    (u.parse().ok(), g.parse().ok())
}

/// `format.Pod`: `name_namespace(uid)`.
fn pod_label(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// The kubelet's `verifyRunAsNonRoot`.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    eff: &Effective,
    image_user: &str,
) -> Result<(), SecurityError> {
    if !eff.run_as_non_root {
        return Ok(());
    }
    let (pod, container) = (pod_label(pod), container.name.clone());
    if let Some(uid) = eff.run_as_user {
        return if uid == 0 {
            Err(SecurityError::RunAsUserRoot { pod, container })
        } else {
            Ok(())
        };
    }
    let user = image_user.split(':').next().unwrap_or_default();
    match image_ids(image_user).0 {
        Some(0) => Err(SecurityError::ImageRunsAsRoot { pod, container }),
        Some(_) => Ok(()),
        // An image without a user runs as root.
        None if user.is_empty() => Err(SecurityError::ImageRunsAsRoot { pod, container }),
        None => Err(SecurityError::NonNumericUser {
            user: user.into(),
            pod,
            container,
        }),
    }
}

fn parse_capability(name: &str) -> Result<Capability, SecurityError> {
    let bare = name.trim_start_matches("CAP_").to_ascii_uppercase();
    bare.parse()
        .map_err(|_| SecurityError::UnknownCapability(name.into()))
}

/// containerd's defaults with `add` then `drop` applied (`ALL` in either
/// means every capability).
pub fn capability_set(eff: &Effective) -> Result<Capabilities, SecurityError> {
    let all = || -> Result<HashSet<Capability>, SecurityError> {
        ALL_CAPABILITIES
            .iter()
            .map(|c| parse_capability(c))
            .collect()
    };
    if eff.privileged {
        return all();
    }
    let is_all = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut set: HashSet<Capability> = if is_all(&eff.add) {
        all()?
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| parse_capability(c))
            .collect::<Result<_, _>>()?
    };
    for name in eff.add.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        set.insert(parse_capability(name)?);
    }
    if is_all(&eff.drop) {
        set.clear();
        // `drop: [ALL]` then `add` keeps the added ones, as containerd does.
        for name in eff.add.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
            set.insert(parse_capability(name)?);
        }
    }
    for name in eff.drop.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        set.remove(&parse_capability(name)?);
    }
    Ok(set)
}

fn id(value: i64) -> Result<u32, SecurityError> {
    u32::try_from(value).map_err(|_| SecurityError::BadId(value))
}

/// Applies the security context to `spec` (built from oci-spec's defaults).
pub fn apply(
    spec: &mut Spec,
    pod: &Pod,
    container: &Container,
    image_user: &str,
) -> Result<(), SecurityError> {
    let eff = effective(pod, container);
    verify_run_as_non_root(pod, container, &eff, image_user)?;
    let (image_uid, image_gid) = image_ids(image_user);
    let uid = match eff.run_as_user {
        Some(u) => id(u)?,
        None => image_uid.unwrap_or(0),
    };
    let gid = match eff.run_as_group {
        Some(g) => id(g)?,
        None => image_gid.unwrap_or(0),
    };
    let mut groups: Vec<u32> = Vec::new();
    for g in eff.supplemental_groups.iter().chain(eff.fs_group.iter()) {
        let g = id(*g)?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let caps = capability_set(&eff)?;
    if let Some(process) = spec.process_mut() {
        let user = process.user_mut();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids((!groups.is_empty()).then_some(groups));
        process.set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()?,
        ));
        process.set_no_new_privileges(Some(eff.no_new_privileges && !eff.privileged));
    }
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(eff.read_only_root));
    }
    if eff.privileged {
        if let Some(linux) = spec.linux_mut() {
            linux.set_masked_paths(None);
            linux.set_readonly_paths(None);
            if let Some(resources) = linux.resources_mut() {
                resources.set_devices(Some(vec![
                    LinuxDeviceCgroupBuilder::default()
                        .allow(true)
                        .access("rwm")
                        .build()?,
                ]));
            }
        }
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts
                .iter_mut()
                .filter(|m| m.typ().as_deref() == Some("sysfs"))
            {
                let options = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| if o == "ro" { "rw".to_string() } else { o })
                    .collect();
                m.set_options(Some(options));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .expect("pod");
        let c = pod.spec.as_ref().expect("spec").containers[0].clone();
        (pod, c)
    }

    #[test]
    fn the_container_context_overrides_the_pods() {
        let (p, c) = pod(serde_json::json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000], "runAsNonRoot": true},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 1001,
                            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}}],
        }));
        let eff = effective(&p, &c);
        assert_eq!(eff.run_as_user, Some(1001));
        assert_eq!(eff.run_as_group, Some(3000));
        assert!(eff.run_as_non_root && eff.no_new_privileges && eff.read_only_root);
        let mut spec = Spec::default();
        apply(&mut spec, &p, &c, "").expect("apply");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["process"]["user"]["uid"], 1001);
        assert_eq!(json["process"]["user"]["gid"], 3000);
        assert_eq!(
            json["process"]["user"]["additionalGids"],
            serde_json::json!([4000, 2000])
        );
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["root"]["readonly"], true);
    }

    #[test]
    fn run_as_non_root_refuses_root_with_the_kubelets_messages() {
        let cases = [
            (
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 0}),
                "",
                Some(
                    "container's runAsUser breaks non-root policy (pod: \"p_ns(u)\", container: c)",
                ),
            ),
            (
                serde_json::json!({"runAsNonRoot": true}),
                "",
                Some(
                    "container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)",
                ),
            ),
            (
                serde_json::json!({"runAsNonRoot": true}),
                "0:0",
                Some(
                    "container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)",
                ),
            ),
            (
                serde_json::json!({"runAsNonRoot": true}),
                "nobody",
                Some(
                    "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"p_ns(u)\", container: c)",
                ),
            ),
            (serde_json::json!({"runAsNonRoot": true}), "65534", None),
            (
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 5}),
                "",
                None,
            ),
            (serde_json::json!({}), "", None),
        ];
        for (sc, image_user, want) in cases {
            let (p, c) =
                pod(serde_json::json!({"securityContext": sc, "containers": [{"name": "c"}]}));
            let got = verify_run_as_non_root(&p, &c, &effective(&p, &c), image_user)
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{sc} {image_user:?}");
        }
    }

    #[test]
    fn capabilities_start_from_containerds_defaults() {
        let names = |eff: &Effective| {
            let mut v: Vec<String> = capability_set(eff)
                .expect("caps")
                .iter()
                .map(|c| c.to_string())
                .collect();
            v.sort();
            v
        };
        let base = Effective::default();
        assert_eq!(names(&base).len(), DEFAULT_CAPABILITIES.len());
        let eff = Effective {
            add: vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into()],
            drop: vec!["KILL".into()],
            ..Effective::default()
        };
        let got = names(&eff);
        assert!(got.contains(&"NET_ADMIN".to_string()) && got.contains(&"SYS_TIME".to_string()));
        assert!(!got.contains(&"KILL".to_string()));
        let dropped = Effective {
            add: vec!["NET_BIND_SERVICE".into()],
            drop: vec!["ALL".into()],
            ..Effective::default()
        };
        assert_eq!(names(&dropped), vec!["NET_BIND_SERVICE"]);
        let privileged = Effective {
            privileged: true,
            ..Effective::default()
        };
        assert_eq!(names(&privileged).len(), ALL_CAPABILITIES.len());
        let bad = Effective {
            add: vec!["FLY".into()],
            ..Effective::default()
        };
        assert!(matches!(
            capability_set(&bad),
            Err(SecurityError::UnknownCapability(_))
        ));
    }
}
