//! Container validation as `pkg/apis/core/validation` has it
//! (`validateContainerCommon`: names, images, ports, env, mounts,
//! resources, probes), for the containers and init containers of a pod spec.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod_validation::{SpecOf, validate_ids};
use super::quantity::{QUANTITY_FORMAT_ERROR, parse_nanos};
use super::validation::{
    invalid_all, is_config_map_key, is_dns1123_subdomain, is_env_var_name, is_qualified_name,
    is_valid_port_name, is_valid_port_num, validate_dns1123_label, validate_nonnegative,
};
use crate::registry::{FieldError, FieldPath};

pub const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

pub fn validate_container(
    c: &Container,
    p: &FieldPath,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    of: SpecOf,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let np = p.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        errs.extend(validate_dns1123_label(&c.name, &np));
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(&np, &c.name));
        }
    }
    let image = c.image.as_deref().unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(&p.child("image"), ""));
    } else if image != image.trim() && of == SpecOf::Pod {
        // Templates tolerate it: " " is a placeholder some tools rewrite.
        errs.push(FieldError::invalid(
            &p.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = p.item("ports", i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(invalid_all(&pp.child("name"), name, msgs));
            } else if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&pp.child("containerPort"), ""));
        } else {
            for msg in is_valid_port_num(port.container_port) {
                errs.push(FieldError::invalid(
                    &pp.child("containerPort"),
                    port.container_port,
                    &msg,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|h| *h != 0) {
            for msg in is_valid_port_num(hp) {
                errs.push(FieldError::invalid(&pp.child("hostPort"), hp, &msg));
            }
        }
        errs.extend(validate_protocol(
            port.protocol.as_deref(),
            &pp.child("protocol"),
        ));
    }
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or(&[]),
        &p.child("env"),
    ));
    errs.extend(validate_env_from(
        c.env_from.as_deref().unwrap_or(&[]),
        &p.child("envFrom"),
    ));
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = p.item("volumeMounts", i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&mp.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(&mp.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mp.child("mountPath"), ""));
        }
        if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                &mp.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            errs.extend(validate_local_descending_path(sub, &mp.child("subPath")));
        }
    }
    if let Some(r) = &c.resources {
        errs.extend(validate_resources(r, &p.child("resources")));
    }
    if let Some(sc) = &c.security_context {
        let ids = [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
        ];
        errs.extend(validate_ids(&p.child("securityContext"), &ids));
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            errs.push(FieldError::invalid(
                &p.child("securityContext"),
                "",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
    }
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            errs.extend(validate_probe(probe, &p.child(field)));
        }
    }
    let pull = c.image_pull_policy.as_deref().unwrap_or("");
    if pull.is_empty() {
        errs.push(FieldError::required(&p.child("imagePullPolicy"), ""));
    } else if !PULL_POLICIES.contains(&pull) {
        errs.push(FieldError::not_supported(
            &p.child("imagePullPolicy"),
            pull,
            PULL_POLICIES,
        ));
    }
    let tmp_path = p.child("terminationMessagePolicy");
    match c.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(&tmp_path, "")),
        other => errs.push(FieldError::not_supported(
            &tmp_path,
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs
}

/// Port protocols: required, one of SCTP/TCP/UDP.
pub fn validate_protocol(protocol: Option<&str>, path: &FieldPath) -> Vec<FieldError> {
    match protocol.unwrap_or("") {
        "" => vec![FieldError::required(path, "")],
        p if PORT_PROTOCOLS.contains(&p) => Vec::new(),
        p => vec![FieldError::not_supported(path, p, PORT_PROTOCOLS)],
    }
}

/// `ValidatePortNumOrName`.
pub fn validate_port_num_or_name(port: &IntOrString, path: &FieldPath) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) => is_valid_port_num(*n)
            .into_iter()
            .map(|m| FieldError::invalid(path, n, &m))
            .collect(),
        IntOrString::String(s) => invalid_all(path, s, is_valid_port_name(s)),
    }
}

fn validate_local_descending_path(target: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    if target.split(['/', '\\']).any(|part| part == "..") {
        errs.push(FieldError::invalid(path, target, "must not contain '..'"));
    }
    errs
}

/// `ValidateEnvFrom`: one source per entry, a valid prefix and name.
fn validate_env_from(sources: &[EnvFromSource], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = source.prefix.as_deref().filter(|x| !x.is_empty()) {
            errs.extend(invalid_all(
                &p.child("prefix"),
                prefix,
                is_env_var_name(prefix),
            ));
        }
        let refs = [
            (
                "configMapRef",
                source.config_map_ref.as_ref().map(|r| r.name.as_str()),
            ),
            (
                "secretRef",
                source.secret_ref.as_ref().map(|r| r.name.as_str()),
            ),
        ];
        let mut count = 0;
        for (field, name) in refs {
            let Some(name) = name else { continue };
            count += 1;
            let field_path = p.child(field);
            let np = field_path.child("name");
            if name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else {
                errs.extend(invalid_all(&np, name, is_dns1123_subdomain(name)));
            }
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_env(vars: &[EnvVar], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            errs.extend(invalid_all(
                &p.child("name"),
                &ev.name,
                is_env_var_name(&ev.name),
            ));
        }
        let Some(from) = &ev.value_from else { continue };
        let fp = p.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            let rp = fp.child("fieldRef");
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&rp.child("apiVersion"), ""));
            } else if f.field_path.is_empty() {
                errs.push(FieldError::required(&rp.child("fieldPath"), ""));
            } else if let Some((field, key)) = split_subscript(&f.field_path) {
                match field {
                    "metadata.annotations" => errs.extend(invalid_all(
                        &rp,
                        &key.to_lowercase(),
                        is_qualified_name(&key.to_lowercase()),
                    )),
                    "metadata.labels" => errs.extend(invalid_all(&rp, key, is_qualified_name(key))),
                    other => errs.push(FieldError::invalid(
                        &rp,
                        other,
                        "does not support subscript",
                    )),
                }
            } else if !ENV_FIELD_PATHS.contains(&f.field_path.as_str()) {
                errs.push(FieldError::not_supported(
                    &rp.child("fieldPath"),
                    &f.field_path,
                    ENV_FIELD_PATHS,
                ));
            }
        }
        if from.resource_field_ref.is_some() {
            sources += 1;
        }
        let key_refs = [
            (
                "configMapKeyRef",
                from.config_map_key_ref
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.key.as_str())),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.key.as_str())),
            ),
        ];
        for (field, r) in key_refs {
            let Some((name, key)) = r else { continue };
            sources += 1;
            let rp = fp.child(field);
            if name.is_empty() {
                errs.push(FieldError::required(&rp.child("name"), ""));
            } else {
                errs.extend(invalid_all(
                    &rp.child("name"),
                    name,
                    is_dns1123_subdomain(name),
                ));
            }
            if key.is_empty() {
                errs.push(FieldError::required(&rp.child("key"), ""));
            } else {
                errs.extend(invalid_all(&rp.child("key"), key, is_config_map_key(key)));
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !ev.value.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let (field, rest) = path.split_once("['")?;
    Some((field, rest.strip_suffix("']")?))
}

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

fn quantity_errors(name: &str, q: &Quantity, path: &FieldPath) -> (Option<i128>, Vec<FieldError>) {
    let mut errs = invalid_all(path, name, is_qualified_name(name));
    if !name.contains('/')
        && !STANDARD_CONTAINER_RESOURCES.contains(&name)
        && !name.starts_with("hugepages-")
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
    let value = parse_nanos(q);
    match value {
        None => errs.push(FieldError::invalid(path, &q.0, QUANTITY_FORMAT_ERROR)),
        Some(v) if v < 0 => errs.push(FieldError::invalid(
            path,
            &q.0,
            "must be greater than or equal to 0",
        )),
        Some(_) => {}
    }
    (value, errs)
}

/// `ValidateContainerResourceRequirements`.
pub fn validate_resources(r: &ResourceRequirements, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let mut limit_values = BTreeMap::new();
    for (name, q) in limits {
        let (v, e) = quantity_errors(name, q, &lim_path.key(name));
        errs.extend(e);
        if let Some(v) = v {
            limit_values.insert(name.as_str(), v);
        }
    }
    for (name, q) in r.requests.iter().flatten() {
        let (v, e) = quantity_errors(name, q, &req_path.key(name));
        errs.extend(e);
        match (v, limit_values.get(name.as_str()), limits.get(name)) {
            (Some(req), Some(lim), Some(lq)) => {
                if req != *lim && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        &q.0,
                        &format!("must be equal to {name} limit of {}", lq.0),
                    ));
                } else if req > *lim {
                    errs.push(FieldError::invalid(
                        &req_path,
                        &q.0,
                        &format!("must be less than or equal to {name} limit of {}", lq.0),
                    ));
                }
            }
            (_, _, None) if !overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
    }
    errs
}

fn validate_probe(p: &Probe, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let handlers = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ];
    let mut count = 0;
    for (field, set) in handlers {
        if set {
            count += 1;
            if count > 1 {
                errs.push(FieldError::forbidden(
                    &path.child(field),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    if let Some(e) = &p.exec
        && e.command.as_deref().unwrap_or(&[]).is_empty()
    {
        errs.push(FieldError::required(
            &path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(h) = &p.http_get {
        let hp = path.child("httpGet");
        if h.path.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(&hp.child("path"), ""));
        }
        errs.extend(validate_port_num_or_name(&h.port, &hp.child("port")));
        let scheme = h.scheme.as_deref().unwrap_or("");
        if !["HTTP", "HTTPS"].contains(&scheme) {
            errs.push(FieldError::not_supported(
                &hp.child("scheme"),
                scheme,
                &["HTTP", "HTTPS"],
            ));
        }
    }
    if let Some(t) = &p.tcp_socket {
        errs.extend(validate_port_num_or_name(
            &t.port,
            &path.child("tcpSocket").child("port"),
        ));
    }
    if let Some(g) = &p.grpc {
        for msg in is_valid_port_num(g.port) {
            errs.push(FieldError::invalid(
                &path.child("grpc").child("port"),
                g.port,
                &msg,
            ));
        }
    }
    let numbers = [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ];
    for (field, v) in numbers {
        errs.extend(validate_nonnegative(
            i64::from(v.unwrap_or(0)),
            &path.child(field),
        ));
    }
    if let Some(t) = p.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    errs
}
