//! Pod spec validation as `pkg/apis/core/validation` has it
//! (`ValidatePodSpec`, `validateContainers`, `ValidateVolumes`, ...), shared
//! by pods and the pod templates of workloads; containers are checked in
//! [`super::container_validation`].

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Container, PodDNSConfig, PodSpec, PodTemplateSpec, Toleration, Volume,
};

use super::gofmt::go_string_slice;

use super::container_validation::validate_container;
use super::validation::{
    invalid_all, invalid_rendered, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_ip, is_valid_label_value, validate_annotations, validate_dns1123_label,
    validate_labels,
};
use crate::registry::{FieldError, FieldPath};

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// Whether validation is for a pod itself or for a template, on which
/// Kubernetes skips a few pod-only checks (image whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecOf {
    Pod,
    Template,
}

/// `ValidatePodTemplateSpec`: template labels/annotations and the spec.
pub fn validate_pod_template(t: &PodTemplateSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(meta) = &t.metadata {
        let mp = path.child("metadata");
        if let Some(labels) = &meta.labels {
            errs.extend(validate_labels(labels, &mp.child("labels")));
        }
        if let Some(annotations) = &meta.annotations {
            errs.extend(validate_annotations(annotations, &mp.child("annotations")));
        }
    }
    let empty = PodSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    errs.extend(validate_pod_spec(
        spec,
        &path.child("spec"),
        SpecOf::Template,
    ));
    errs
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, of: SpecOf) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = spec.volumes.as_deref().unwrap_or(&[]);
    let (volume_names, volume_errs) = validate_volumes(volumes, &path.child("volumes"));
    errs.extend(volume_errs);

    let cpath = path.child("containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = cpath.index(i);
        errs.extend(validate_container(c, &p, &volume_names, &mut names, of));
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
        for (field, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(probe) = probe {
                let st = probe.success_threshold.unwrap_or(0);
                if st != 1 {
                    errs.push(FieldError::invalid(
                        &p.child(field).child("successThreshold"),
                        st,
                        "must be 1",
                    ));
                }
            }
        }
        if let Some(tgps) = c
            .readiness_probe
            .as_ref()
            .and_then(|r| r.termination_grace_period_seconds)
        {
            errs.push(FieldError::invalid(
                &p.child("readinessProbe")
                    .child("terminationGracePeriodSeconds"),
                tgps,
                "must not be set for readinessProbes",
            ));
        }
    }
    errs.extend(host_port_conflicts(&spec.containers, &cpath));
    let ipath = path.child("initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = ipath.index(i);
        errs.extend(validate_container(c, &p, &volume_names, &mut names, of));
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if let Some(rp) = c.restart_policy.as_deref().filter(|rp| *rp != "Always") {
            errs.push(FieldError::not_supported(
                &p.child("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
        if !sidecar {
            let forbidden = [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            for (field, set) in forbidden {
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                if port.host_port.is_some_and(|h| h != port.container_port) {
                    errs.push(FieldError::invalid(
                        &cpath
                            .index(i)
                            .child("ports")
                            .index(j)
                            .child("containerPort"),
                        port.container_port,
                        "must match `hostPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    let rp = spec.restart_policy.as_deref().unwrap_or("");
    if rp.is_empty() {
        errs.push(FieldError::required(&path.child("restartPolicy"), ""));
    } else if !RESTART_POLICIES.contains(&rp) {
        errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            rp,
            RESTART_POLICIES,
        ));
    }
    let dp = spec.dns_policy.as_deref().unwrap_or("");
    if dp.is_empty() {
        errs.push(FieldError::required(&path.child("dnsPolicy"), ""));
    } else if !DNS_POLICIES.contains(&dp) {
        errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            dp,
            DNS_POLICIES,
        ));
    } else if dp == "None" && spec.dns_config.is_none() {
        errs.push(FieldError::required(
            &path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    if let Some(sc) = &spec.security_context {
        let sp = path.child("securityContext");
        let ids = [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ];
        errs.extend(validate_ids(&sp, &ids));
    }
    if let Some(dns) = &spec.dns_config {
        errs.extend(validate_dns_config(dns, &path.child("dnsConfig")));
    }
    if let Some(sel) = &spec.node_selector {
        errs.extend(validate_labels(sel, &path.child("nodeSelector")));
    }
    errs.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or(&[]),
        &path.child("tolerations"),
    ));
    let subdomain_fields = [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ];
    for (field, value) in subdomain_fields {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.extend(invalid_all(&path.child(field), v, is_dns1123_subdomain(v)));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.extend(validate_dns1123_label(v, &path.child(field)));
        }
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    errs
}

/// `IsValidUserID`/`IsValidGroupID` over security context ids.
pub fn validate_ids(path: &FieldPath, ids: &[(&str, Option<i64>)]) -> Vec<FieldError> {
    ids.iter()
        .filter_map(|(field, id)| id.map(|id| (field, id)))
        .filter(|(_, id)| !(0..=i64::from(i32::MAX)).contains(id))
        .map(|(field, id)| {
            FieldError::invalid(
                &path.child(field),
                id,
                "must be between 0 and 2147483647, inclusive",
            )
        })
        .collect()
}

/// `validatePodDNSConfig` (the limits of resolv.conf).
fn validate_dns_config(dns: &PodDNSConfig, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let nameservers = dns.nameservers.as_deref().unwrap_or(&[]);
    if nameservers.len() > 3 {
        errs.push(invalid_rendered(
            &path.child("nameservers"),
            go_string_slice(nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(invalid_all(
            &path.child("nameservers").index(i),
            ns,
            is_valid_ip(ns),
        ));
    }
    let searches = dns.searches.as_deref().unwrap_or(&[]);
    if searches.len() > 32 {
        errs.push(invalid_rendered(
            &path.child("searches"),
            go_string_slice(searches),
            "must not have more than 32 search paths",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        // A trailing dot marks an absolute domain and is allowed.
        let trimmed = search.strip_suffix('.').unwrap_or(search);
        errs.extend(invalid_all(
            &path.child("searches").index(i),
            trimmed,
            is_dns1123_subdomain(trimmed),
        ));
    }
    for (i, option) in dns.options.iter().flatten().enumerate() {
        if option.name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "Option.Name must not be empty",
            ));
        }
    }
    errs
}

/// `checkHostPortConflicts`: one `hostIP/protocol/hostPort` per pod.
fn host_port_conflicts(containers: &[Container], path: &FieldPath) -> Vec<FieldError> {
    let mut seen = BTreeSet::new();
    let mut errs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                port.host_ip.as_deref().unwrap_or(""),
                port.protocol.as_deref().unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                let container = path.index(i);
                let port = container.item("ports", j);
                let p = port.child("hostPort");
                errs.push(FieldError::duplicate(&p, &key));
            }
        }
    }
    errs
}

/// `ValidateVolumes`: returns the valid volume names for mount checks.
fn validate_volumes(volumes: &[Volume], path: &FieldPath) -> (BTreeSet<String>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        let np = p.child("name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&np, ""));
        } else {
            let msgs = is_dns1123_label(&v.name);
            if !msgs.is_empty() {
                errs.extend(invalid_all(&np, &v.name, msgs));
            } else if !names.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(&np, &v.name));
            }
        }
        let sources = count_sources(v);
        if sources == 0 {
            errs.push(FieldError::required(&p, "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(cm) = &v.config_map
            && cm.name.is_empty()
        {
            errs.push(FieldError::required(
                &p.child("configMap").child("name"),
                "",
            ));
        }
        if let Some(s) = &v.secret
            && s.secret_name.as_deref().unwrap_or("").is_empty()
        {
            errs.push(FieldError::required(
                &p.child("secret").child("secretName"),
                "",
            ));
        }
        if let Some(h) = &v.host_path
            && h.path.is_empty()
        {
            errs.push(FieldError::required(&p.child("hostPath").child("path"), ""));
        }
        if let Some(c) = &v.persistent_volume_claim
            && c.claim_name.is_empty()
        {
            errs.push(FieldError::required(
                &p.child("persistentVolumeClaim").child("claimName"),
                "",
            ));
        }
    }
    (names, errs)
}

/// How many volume sources `v` sets. The destructuring names every field,
/// so a source added to `Volume` by a new k8s-openapi fails to compile
/// here instead of going uncounted.
fn count_sources(v: &Volume) -> usize {
    let Volume {
        name: _,
        aws_elastic_block_store,
        azure_disk,
        azure_file,
        cephfs,
        cinder,
        config_map,
        csi,
        downward_api,
        empty_dir,
        ephemeral,
        fc,
        flex_volume,
        flocker,
        gce_persistent_disk,
        git_repo,
        glusterfs,
        host_path,
        image,
        iscsi,
        nfs,
        persistent_volume_claim,
        photon_persistent_disk,
        portworx_volume,
        projected,
        quobyte,
        rbd,
        scale_io,
        secret,
        storageos,
        vsphere_volume,
    } = v;
    [
        aws_elastic_block_store.is_some(),
        azure_disk.is_some(),
        azure_file.is_some(),
        cephfs.is_some(),
        cinder.is_some(),
        config_map.is_some(),
        csi.is_some(),
        downward_api.is_some(),
        empty_dir.is_some(),
        ephemeral.is_some(),
        fc.is_some(),
        flex_volume.is_some(),
        flocker.is_some(),
        gce_persistent_disk.is_some(),
        git_repo.is_some(),
        glusterfs.is_some(),
        host_path.is_some(),
        image.is_some(),
        iscsi.is_some(),
        nfs.is_some(),
        persistent_volume_claim.is_some(),
        photon_persistent_disk.is_some(),
        portworx_volume.is_some(),
        projected.is_some(),
        quobyte.is_some(),
        rbd.is_some(),
        scale_io.is_some(),
        secret.is_some(),
        storageos.is_some(),
        vsphere_volume.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count()
}

const TOLERATION_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            errs.extend(invalid_all(&p.child("key"), key, is_qualified_name(key)));
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => errs.extend(invalid_all(
                &p.child("operator"),
                value,
                is_valid_label_value(value),
            )),
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TOLERATION_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                &p.child("effect"),
                effect,
                TOLERATION_EFFECTS,
            ));
        }
    }
    errs
}
