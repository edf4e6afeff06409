//! Ingress and IngressClass strategies (`pkg/registry/networking/ingress`,
//! `ingressclass`; validation from `pkg/apis/networking/validation`).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressClassParametersReference,
    IngressSpec,
};

use super::validation::{
    invalid_all, invalid_rendered, is_dns1035_label, is_dns1123_subdomain, is_valid_port_name,
    is_valid_port_num,
};
use crate::registry::{FieldError, FieldPath, Strategy};

pub struct IngressStrategy;
pub struct IngressClassStrategy;

/// The legacy annotation `ingressClassName` replaced.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

/// `IsWildcardDNS1123Subdomain`.
fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    const MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(super::validation::max_len_error(253));
    }
    match value.strip_prefix("*.") {
        Some(rest) if is_dns1123_subdomain(rest).is_empty() => {}
        _ => errs.push(MSG.to_string()),
    }
    errs
}

fn validate_backend(b: &IngressBackend, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = path.child("resource");
            if r.kind.is_empty() {
                errs.push(FieldError::required(&rp.child("kind"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(&rp.child("name"), ""));
            }
        }
        (None, Some(svc)) => {
            let sp = path.child("service");
            if svc.name.is_empty() {
                errs.push(FieldError::required(&sp.child("name"), ""));
            } else {
                errs.extend(invalid_all(
                    &sp.child("name"),
                    &svc.name,
                    is_dns1035_label(&svc.name),
                ));
            }
            let port = svc.port.clone().unwrap_or_default();
            let name = port.name.unwrap_or_default();
            let number = port.number.unwrap_or(0);
            match (!name.is_empty(), number != 0) {
                (true, true) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (true, false) => errs.extend(invalid_all(
                    &sp.child("port").child("name"),
                    &name,
                    is_valid_port_name(&name),
                )),
                (false, true) => {
                    for msg in is_valid_port_num(number) {
                        errs.push(FieldError::invalid(
                            &sp.child("port").child("number"),
                            number,
                            &msg,
                        ));
                    }
                }
                (false, false) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn validate_path(p: &HTTPIngressPath, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(path_type) = Some(p.path_type.as_str()).filter(|t| !t.is_empty()) else {
        return vec![FieldError::required(
            &path.child("pathType"),
            "pathType must be specified",
        )];
    };
    let value = p.path.clone().unwrap_or_default();
    let pp = path.child("path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, &value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &pp,
                            &value,
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &pp,
                            &value,
                            &format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, &value, "must be an absolute path"));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("pathType"),
            other,
            PATH_TYPES,
        )),
    }
    errs.extend(validate_backend(&p.backend, &path.child("backend")));
    errs
}

fn validate_spec(spec: &IngressSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = spec.rules.as_deref().unwrap_or(&[]);
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(invalid_rendered(
            path,
            "null".into(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = &spec.default_backend {
        errs.extend(validate_backend(b, &path.child("defaultBackend")));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = path.item("rules", i);
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            let hp = rp.child("host");
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    &hp,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                is_wildcard_dns1123_subdomain(host)
            } else {
                is_dns1123_subdomain(host)
            };
            errs.extend(invalid_all(&hp, host, msgs));
        }
        if let Some(http) = &rule.http {
            let hp = rp.child("http.paths");
            if http.paths.is_empty() {
                errs.push(FieldError::required(&hp, ""));
            }
            for (j, p) in http.paths.iter().enumerate() {
                errs.extend(validate_path(p, &hp.index(j)));
            }
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        let tp = path.item("tls", i);
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            let msgs = if host.contains('*') {
                is_wildcard_dns1123_subdomain(host)
            } else {
                is_dns1123_subdomain(host)
            };
            errs.extend(invalid_all(&tp.child("hosts").index(j), host, msgs));
        }
        if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            errs.extend(invalid_all(
                &tp.child("secretName"),
                secret,
                is_dns1123_subdomain(secret),
            ));
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.extend(invalid_all(
            &path.child("ingressClassName"),
            class,
            is_dns1123_subdomain(class),
        ));
    }
    errs
}

fn validate_ingress(ing: &Ingress) -> Vec<FieldError> {
    match &ing.spec {
        Some(spec) => validate_spec(spec, &FieldPath::new("spec")),
        None => validate_spec(&IngressSpec::default(), &FieldPath::new("spec")),
    }
}

impl Strategy for IngressStrategy {
    type Object = Ingress;

    fn validate(&self, ing: &Ingress) -> Vec<FieldError> {
        let mut errs = validate_ingress(ing);
        // ValidateIngressCreate: the annotation and the field must agree.
        let annotation = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION));
        let class = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_ref());
        if let (Some(a), Some(c)) = (annotation, class)
            && a != c
        {
            errs.push(FieldError::invalid(
                &FieldPath::new("annotations").child(INGRESS_CLASS_ANNOTATION),
                a,
                "must match `ingressClassName` when both are specified",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Ingress, _old: &Ingress) -> Vec<FieldError> {
        validate_ingress(new)
    }
}

/// `IsDomainPrefixedPath`: `acme.io/foo`.
fn validate_controller(controller: &str, path: &FieldPath) -> Vec<FieldError> {
    if controller.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let mut errs = Vec::new();
    if controller.len() > 250 {
        errs.push(FieldError::too_long(path, 250));
    }
    let Some((host, rest)) = controller
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        errs.push(FieldError::invalid(
            path,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return errs;
    };
    errs.extend(invalid_all(path, host, is_dns1123_subdomain(host)));
    let valid_path = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
    if !valid_path {
        errs.push(FieldError::invalid(
            path,
            rest,
            "must be a valid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
    errs
}

fn validate_parameters(p: &IngressClassParametersReference, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.kind.is_empty() {
        errs.push(FieldError::required(
            &path.child("kind"),
            "kind is required",
        ));
    }
    if p.name.is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "name is required",
        ));
    }
    match p.scope.as_deref() {
        Some("Cluster") | None => {
            if p.namespace.is_some() {
                errs.push(FieldError::forbidden(
                    &path.child("namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        Some("Namespace") => match p.namespace.as_deref() {
            None => errs.push(FieldError::required(
                &path.child("namespace"),
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => errs.extend(invalid_all(
                &path.child("namespace"),
                ns,
                super::validation::is_dns1123_label(ns),
            )),
        },
        Some(other) => errs.push(FieldError::not_supported(
            &path.child("scope"),
            other,
            &["Cluster", "Namespace"],
        )),
    }
    errs
}

fn validate_class(class: &IngressClass) -> Vec<FieldError> {
    let spec = class.spec.clone().unwrap_or_default();
    let path = FieldPath::new("spec");
    let mut errs = validate_controller(
        spec.controller.as_deref().unwrap_or(""),
        &path.child("controller"),
    );
    if let Some(p) = &spec.parameters {
        errs.extend(validate_parameters(p, &path.child("parameters")));
    }
    errs
}

impl Strategy for IngressClassStrategy {
    type Object = IngressClass;

    fn default(&self, class: &mut IngressClass) {
        // SetDefaults_IngressClass: parameters are cluster-scoped unless said.
        if let Some(p) = class.spec.as_mut().and_then(|s| s.parameters.as_mut())
            && p.scope.is_none()
        {
            p.scope = Some("Cluster".into());
        }
    }

    fn validate(&self, class: &IngressClass) -> Vec<FieldError> {
        validate_class(class)
    }

    fn validate_update(&self, new: &IngressClass, old: &IngressClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let controller = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
        if controller(new) != controller(old) {
            errs.push(FieldError::invalid(
                &FieldPath::new("spec").child("controller"),
                controller(new).unwrap_or_default(),
                "field is immutable",
            ));
        }
        errs.extend(validate_class(new));
        errs
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
