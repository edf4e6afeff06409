//! The Service strategy (`pkg/registry/core/service/strategy.go`): v1
//! defaults, `ValidateService`, and the type-dependent fields dropped on
//! update. Cluster IP allocation is the store's allocator's business;
//! only the single-stack IPv4 family defaults are set here.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ClientIPConfig, Service, ServiceSpec, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container_validation::{validate_port_num_or_name, validate_protocol};
use super::gofmt::go_string_slice;
use super::validation::{
    invalid_all, invalid_rendered, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain,
    is_qualified_name, is_valid_ip, is_valid_port_num, validate_dns1123_label, validate_labels,
};
use crate::registry::{FieldError, FieldPath, NameRule, Strategy};

pub struct ServiceStrategy;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
/// `v1.MaxClientIPServiceAffinitySeconds`, and the default of ClientIP affinity.
const MAX_CLIENT_IP_AFFINITY_SECONDS: i32 = 86400;
const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i32 = 10800;

fn type_of(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("")
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

/// `service.ExternallyAccessible`.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    matches!(type_of(spec), "LoadBalancer" | "NodePort")
        || (type_of(spec) == "ClusterIP"
            && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()))
}

fn default_service(spec: &mut ServiceSpec) {
    if spec.session_affinity.as_deref().unwrap_or("").is_empty() {
        spec.session_affinity = Some("None".to_string());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_AFFINITY_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    if type_of(spec).is_empty() {
        spec.type_ = Some("ClusterIP".to_string());
    }
    for port in spec.ports.iter_mut().flatten() {
        if port.protocol.as_deref().unwrap_or("").is_empty() {
            port.protocol = Some("TCP".to_string());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if externally_accessible(spec)
        && spec
            .external_traffic_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
    {
        spec.external_traffic_policy = Some("Cluster".to_string());
    }
    let ty = type_of(spec).to_string();
    if spec.internal_traffic_policy.is_none()
        && matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP")
    {
        spec.internal_traffic_policy = Some("Cluster".to_string());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    // The REST layer's IP-family defaulting for a single-stack IPv4 cluster;
    // headless services without selector accept any family.
    if ty != "ExternalName" {
        if spec.ip_family_policy.is_none() {
            let selectorless_headless =
                is_headless(spec) && spec.selector.as_ref().is_none_or(|s| s.is_empty());
            let policy = if selectorless_headless {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            spec.ip_family_policy = Some(policy.to_string());
        }
        if spec.ip_families.as_ref().is_none_or(|f| f.is_empty()) {
            spec.ip_families = Some(vec!["IPv4".to_string()]);
        }
    }
}

/// `core.ServicePort{Protocol, Port}` as Go prints the duplicate key.
fn go_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
    )
}

fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // Service names are DNS-1035 labels; the store has checked the RFC
    // 1123 label form, this adds the leading-letter rule.
    if let Some(name) = svc.metadata.name.as_deref()
        && is_dns1123_label(name).is_empty()
    {
        errs.extend(invalid_all(
            &FieldPath::new("metadata").child("name"),
            name,
            is_dns1035_label(name),
        ));
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let path = FieldPath::new("spec");
    let ty = type_of(&spec);
    let ports = spec.ports.clone().unwrap_or_default();
    let ports_path = path.child("ports");
    if ports.is_empty() && !is_headless(&spec) && ty != "ExternalName" {
        errs.push(FieldError::required(&ports_path, ""));
    }
    if ty == "ExternalName" {
        if spec.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            errs.push(FieldError::forbidden(
                &path.child("clusterIPs"),
                "may not be set for ExternalName services",
            ));
        }
        let external = spec.external_name.as_deref().unwrap_or("");
        if external.is_empty() {
            errs.push(FieldError::required(&path.child("externalName"), ""));
        } else {
            let trimmed = external.strip_suffix('.').unwrap_or(external);
            errs.extend(invalid_all(
                &path.child("externalName"),
                external,
                is_dns1123_subdomain(trimmed),
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = ports_path.index(i);
        let name = port.name.as_deref().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&pp.child("name"), ""));
        } else if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &pp.child("name")));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        for msg in is_valid_port_num(port.port) {
            errs.push(FieldError::invalid(&pp.child("port"), port.port, &msg));
        }
        errs.extend(validate_protocol(
            port.protocol.as_deref(),
            &pp.child("protocol"),
        ));
        if let Some(tp) = &port.target_port {
            errs.extend(validate_port_num_or_name(tp, &pp.child("targetPort")));
        }
        if let Some(ap) = port.app_protocol.as_deref() {
            errs.extend(invalid_all(
                &pp.child("appProtocol"),
                ap,
                is_qualified_name(ap),
            ));
        }
    }
    if !SERVICE_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            &path.child("type"),
            ty,
            SERVICE_TYPES,
        ));
    }
    let affinity = spec.session_affinity.as_deref().unwrap_or("");
    match affinity {
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout.filter(|t| *t <= 0 || *t > MAX_CLIENT_IP_AFFINITY_SECONDS) {
                errs.push(FieldError::invalid(
                    &path
                        .child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    t,
                    &format!(
                        "must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"
                    ),
                ));
            }
        }
        "None" => {
            if let Some(c) = &spec.session_affinity_config {
                errs.push(FieldError::invalid(
                    &path.child("sessionAffinityConfig"),
                    serde_json::to_string(c).unwrap_or_default(),
                    "must not be set when session affinity is None",
                ));
            }
        }
        "" => errs.push(FieldError::required(&path.child("sessionAffinity"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        errs.extend(invalid_all(
            &path.child("clusterIPs").index(0),
            ip,
            is_valid_ip(ip),
        ));
    }
    if is_headless(&spec) && (ty == "NodePort" || ty == "LoadBalancer") {
        errs.push(FieldError::invalid(
            &path.child("clusterIPs").index(0),
            "None",
            &format!("may not be set to 'None' for {ty} services"),
        ));
    }
    let mut seen_ports = BTreeSet::new();
    let mut seen_node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = ports_path.index(i);
        let protocol = port.protocol.clone().unwrap_or_default();
        if !seen_ports.insert((protocol.clone(), port.port)) {
            errs.push(FieldError {
                field: pp.render(),
                kind: crate::registry::FieldErrorKind::Duplicate(go_port_key(&protocol, port.port)),
                detail: String::new(),
            });
        }
        let node_port = port.node_port.unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        if ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                &pp.child("nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
            continue;
        }
        for msg in is_valid_port_num(node_port) {
            errs.push(FieldError::invalid(&pp.child("nodePort"), node_port, &msg));
        }
        if !seen_node_ports.insert((protocol, node_port)) {
            errs.push(FieldError::duplicate(&pp.child("nodePort"), node_port));
        }
    }
    if let Some(selector) = &spec.selector {
        errs.extend(validate_labels(selector, &path.child("selector")));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        errs.extend(invalid_all(
            &path.child("externalIPs").index(i),
            ip,
            is_valid_ip(ip),
        ));
    }
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible(&spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(
            &path.child("externalTrafficPolicy"),
            "",
        ));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            &path.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    if spec.health_check_node_port.unwrap_or(0) != 0 && !(ty == "LoadBalancer" && etp == "Local") {
        errs.push(FieldError::invalid(
            &path.child("healthCheckNodePort"),
            spec.health_check_node_port.unwrap_or(0),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(FieldError::required(
                &path.child("internalTrafficPolicy"),
                "",
            ));
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            errs.push(FieldError::not_supported(
                &path.child("internalTrafficPolicy"),
                p,
                &["Cluster", "Local"],
            ));
        }
        _ => {}
    }
    if let Some(p) = spec.ip_family_policy.as_deref() {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&p) {
            errs.push(FieldError::not_supported(
                &path.child("ipFamilyPolicy"),
                p,
                &supported,
            ));
        }
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(FieldError::required(
            &path.child("allocateLoadBalancerNodePorts"),
            "",
        ));
    }
    errs
}

/// `dropTypeDependentFields`: fields that only made sense for the old
/// type are cleared when the type changes, unless the user changed them.
fn drop_type_dependent_fields(new: &mut ServiceSpec, old: &ServiceSpec) {
    let new_ty = type_of(new).to_string();
    if new_ty == type_of(old) {
        return;
    }
    if new_ty == "ExternalName" {
        new.cluster_ip = None;
        new.cluster_ips = None;
        new.ip_families = None;
        new.ip_family_policy = None;
    }
    let needs_node_ports = new_ty == "NodePort"
        || (new_ty == "LoadBalancer" && new.allocate_load_balancer_node_ports != Some(false));
    if !needs_node_ports {
        let old_ports = old.ports.clone().unwrap_or_default();
        for port in new.ports.iter_mut().flatten() {
            let same = old_ports.iter().any(|o| {
                o.port == port.port && o.protocol == port.protocol && o.node_port == port.node_port
            });
            if same {
                port.node_port = None;
            }
        }
    }
    if new_ty != "LoadBalancer" {
        if new.allocate_load_balancer_node_ports == old.allocate_load_balancer_node_ports {
            new.allocate_load_balancer_node_ports = None;
        }
        if new.load_balancer_class == old.load_balancer_class {
            new.load_balancer_class = None;
        }
        if new.health_check_node_port == old.health_check_node_port {
            new.health_check_node_port = None;
        }
    }
    if !externally_accessible(new) && new.external_traffic_policy == old.external_traffic_policy {
        new.external_traffic_policy = None;
    }
}

impl Strategy for ServiceStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["spec.clusterIP", "spec.type"];

    type Object = Service;

    /// Services are DNS-1035 labels in Kubernetes; the leading-letter part
    /// of that rule is checked in `validate`.
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }

    fn default(&self, svc: &mut Service) {
        default_service(svc.spec.get_or_insert_with(Default::default));
    }

    fn prepare_for_create(&self, svc: &mut Service) {
        svc.status = Some(Default::default());
    }

    fn prepare_for_update(&self, new: &mut Service, old: &Service) {
        let old_spec = old.spec.clone().unwrap_or_default();
        drop_type_dependent_fields(new.spec.get_or_insert_with(Default::default), &old_spec);
    }

    fn validate(&self, svc: &Service) -> Vec<FieldError> {
        validate_service(svc)
    }

    fn validate_update(&self, new: &Service, old: &Service) -> Vec<FieldError> {
        let mut errs = validate_service(new);
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let external = type_of(&new_spec) == "ExternalName" || type_of(&old_spec) == "ExternalName";
        let both_headless = is_headless(&new_spec) && is_headless(&old_spec);
        let new_ips = new_spec.cluster_ips.clone().unwrap_or_default();
        let old_ips = old_spec.cluster_ips.clone().unwrap_or_default();
        if !external && !both_headless && new_ips.len() == old_ips.len() {
            for (i, (n, o)) in new_ips.iter().zip(&old_ips).enumerate() {
                if n != o {
                    errs.push(invalid_rendered(
                        &FieldPath::new("spec").child("clusterIPs").index(i),
                        go_string_slice(&new_ips),
                        "may not change once set",
                    ));
                }
            }
        }
        errs
    }

    fn selectable_fields(&self, svc: &Service) -> Vec<(&'static str, String)> {
        let spec = svc.spec.clone().unwrap_or_default();
        vec![
            ("spec.clusterIP", spec.cluster_ip.unwrap_or_default()),
            ("spec.type", spec.type_.unwrap_or_default()),
        ]
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
