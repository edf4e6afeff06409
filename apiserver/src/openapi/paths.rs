//! The REST operations of each served resource, described once and rendered
//! into both OpenAPI dialects by [`super::document`].
//!
//! kubectl reads these, not just the schemas: `kubectl explain` finds a
//! resource's kind through the `x-kubernetes-group-version-kind` of its
//! operations, the `--validate` query-param verifier looks for the
//! `fieldValidation` parameter on the kind's PATCH operation (and falls back
//! to downloading OpenAPI v2 as protobuf when it cannot decide), and
//! client-side apply only uses the v3 schemas for its strategic merge patch
//! when the PATCH operation accepts `application/strategic-merge-patch+json`.

use common::resources::ResourceInfo;

use super::schemas::Gvk;

/// One query parameter kube-apiserver documents.
#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    pub ty: &'static str,
    pub description: &'static str,
}

const fn q(name: &'static str, ty: &'static str, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        ty,
        description,
    }
}

const DRY_RUN: QueryParam = q(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
);
const FIELD_MANAGER: QueryParam = q(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
);
const FIELD_VALIDATION: QueryParam = q(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
);
const FORCE: QueryParam = q(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
const GRACE_PERIOD: QueryParam = q(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
);
const PROPAGATION: QueryParam = q(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
);
const ORPHAN: QueryParam = q(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
);
const RESOURCE_VERSION: QueryParam = q(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
);
const LIST_PARAMS: &[QueryParam] = &[
    q(
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
    ),
    q(
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize.",
    ),
    q(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    q(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    q(
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
    ),
    RESOURCE_VERSION,
    q(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    q(
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent.",
    ),
    q(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
    ),
    q(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
];
pub const PRETTY: QueryParam = q(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user agent indicates a browser or command-line HTTP tool (curl and wget).",
);

/// What a request body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// An object of the operation's kind (create, replace, binding).
    Object,
    /// A patch document in one of the four patch media types.
    Patch,
    /// Optional `DeleteOptions`.
    DeleteOptions,
}

/// One operation under a path.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Lower-case HTTP method, as OpenAPI keys it.
    pub method: &'static str,
    /// `x-kubernetes-action`.
    pub action: &'static str,
    pub operation_id: String,
    pub description: String,
    pub gvk: Gvk,
    /// The request body and its schema name, if any.
    pub body: Option<(Body, String)>,
    /// Schema name of the 200 response.
    pub response: String,
    /// Status codes beside 200 answered with the same schema.
    pub also: &'static [&'static str],
    pub params: Vec<QueryParam>,
}

/// One path with its path parameters and operations.
#[derive(Debug, Clone)]
pub struct PathItem {
    pub path: String,
    pub namespaced: bool,
    pub named: bool,
    pub ops: Vec<Operation>,
}

/// `apps` → `Apps`, `coordination.k8s.io` → `Coordination`, core → `Core`:
/// the group token kube-apiserver puts in operation ids.
fn group_token(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `core_v1`, `apps_v1`, `coordination_v1`: the tag kube-apiserver groups
/// operations under.
pub fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.trim_end_matches(".k8s.io").replace('.', "_")
    };
    format!("{g}_{version}")
}

/// Every path and operation of `resources` (all of one group/version),
/// with schema names resolved through `schema_of(kind)`.
pub fn path_items(
    resources: &[&ResourceInfo],
    schema_of: &dyn Fn(&str, &str, &str) -> Option<String>,
) -> Vec<PathItem> {
    let mut out = Vec::new();
    for r in resources {
        let Some(schema) = schema_of(r.group, r.version, r.kind) else {
            continue;
        };
        let list_schema = format!("{schema}List");
        let gvk = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let scope = if r.namespaced() { "Namespaced" } else { "" };
        let id = |verb: &str, suffix: &str| {
            format!(
                "{verb}{}{}{scope}{}{suffix}",
                group_token(r.group),
                capitalize(r.version),
                r.kind
            )
        };
        let collection = if r.namespaced() {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let write_params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
        let mut patch_params = write_params.clone();
        patch_params.push(FORCE);
        let delete_params = vec![DRY_RUN, GRACE_PERIOD, ORPHAN, PROPAGATION];
        let mut collection_delete_params = LIST_PARAMS.to_vec();
        collection_delete_params.extend([DRY_RUN, GRACE_PERIOD, ORPHAN, PROPAGATION]);
        let op = |method,
                  action,
                  operation_id: String,
                  description: String,
                  body,
                  response: &str,
                  also,
                  params| Operation {
            method,
            action,
            operation_id,
            description,
            gvk,
            body,
            response: response.to_string(),
            also,
            params,
        };
        out.push(PathItem {
            path: collection.clone(),
            namespaced: r.namespaced(),
            named: false,
            ops: vec![
                op(
                    "get",
                    "list",
                    id("list", ""),
                    format!("list or watch objects of kind {}", r.kind),
                    None,
                    &list_schema,
                    &[],
                    LIST_PARAMS.to_vec(),
                ),
                op(
                    "post",
                    "post",
                    id("create", ""),
                    format!("create a {}", r.kind),
                    Some((Body::Object, schema.clone())),
                    &schema,
                    &["201", "202"],
                    write_params.clone(),
                ),
                op(
                    "delete",
                    "deletecollection",
                    format!(
                        "delete{}{}Collection{scope}{}",
                        group_token(r.group),
                        capitalize(r.version),
                        r.kind
                    ),
                    format!("delete collection of {}", r.kind),
                    Some((
                        Body::DeleteOptions,
                        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
                    )),
                    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                    &[],
                    collection_delete_params,
                ),
            ],
        });
        let item = format!("{collection}/{{name}}");
        out.push(PathItem {
            path: item.clone(),
            namespaced: r.namespaced(),
            named: true,
            ops: vec![
                op(
                    "get",
                    "get",
                    id("read", ""),
                    format!("read the specified {}", r.kind),
                    None,
                    &schema,
                    &[],
                    vec![],
                ),
                op(
                    "put",
                    "put",
                    id("replace", ""),
                    format!("replace the specified {}", r.kind),
                    Some((Body::Object, schema.clone())),
                    &schema,
                    &["201"],
                    write_params.clone(),
                ),
                op(
                    "patch",
                    "patch",
                    id("patch", ""),
                    format!("partially update the specified {}", r.kind),
                    Some((
                        Body::Patch,
                        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
                    )),
                    &schema,
                    &["201"],
                    patch_params.clone(),
                ),
                op(
                    "delete",
                    "delete",
                    id("delete", ""),
                    format!("delete a {}", r.kind),
                    Some((
                        Body::DeleteOptions,
                        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
                    )),
                    &schema,
                    &["202"],
                    delete_params,
                ),
            ],
        });
        if r.namespaced() {
            out.push(PathItem {
                path: format!("{base}/{}", r.plural),
                namespaced: false,
                named: false,
                ops: vec![op(
                    "get",
                    "list",
                    format!(
                        "list{}{}{}ForAllNamespaces",
                        group_token(r.group),
                        capitalize(r.version),
                        r.kind
                    ),
                    format!("list or watch objects of kind {}", r.kind),
                    None,
                    &list_schema,
                    &[],
                    LIST_PARAMS.to_vec(),
                )],
            });
        }
        for sub in r.subresources {
            let suffix = capitalize(sub);
            let (sub_gvk, sub_schema) = match *sub {
                "status" => (gvk, schema.clone()),
                "scale" => (
                    Gvk {
                        group: "autoscaling",
                        version: "v1",
                        kind: "Scale",
                    },
                    "io.k8s.api.autoscaling.v1.Scale".to_string(),
                ),
                "binding" => (
                    Gvk {
                        group: "",
                        version: "v1",
                        kind: "Binding",
                    },
                    "io.k8s.api.core.v1.Binding".to_string(),
                ),
                _ => continue,
            };
            let sop = |method, action, verb: &str, description: String, body, also, params| {
                let mut o = op(
                    method,
                    action,
                    id(verb, &suffix),
                    description,
                    body,
                    &sub_schema,
                    also,
                    params,
                );
                o.gvk = sub_gvk;
                o
            };
            let ops = if *sub == "binding" {
                vec![sop(
                    "post",
                    "post",
                    "create",
                    format!("create binding of a {}", r.kind),
                    Some((Body::Object, sub_schema.clone())),
                    &["201", "202"][..],
                    write_params.clone(),
                )]
            } else {
                vec![
                    sop(
                        "get",
                        "get",
                        "read",
                        format!("read {sub} of the specified {}", r.kind),
                        None,
                        &[][..],
                        vec![],
                    ),
                    sop(
                        "put",
                        "put",
                        "replace",
                        format!("replace {sub} of the specified {}", r.kind),
                        Some((Body::Object, sub_schema.clone())),
                        &["201"][..],
                        write_params.clone(),
                    ),
                    sop(
                        "patch",
                        "patch",
                        "patch",
                        format!("partially update {sub} of the specified {}", r.kind),
                        Some((
                            Body::Patch,
                            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
                        )),
                        &["201"][..],
                        patch_params.clone(),
                    ),
                ]
            };
            out.push(PathItem {
                path: format!("{item}/{sub}"),
                namespaced: r.namespaced(),
                named: true,
                ops,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items_for(plural: &str) -> Vec<PathItem> {
        let r = common::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural && r.group != "events.k8s.io")
            .expect("resource");
        path_items(&[r], &|g, v, k| super::super::schemas::schema_name(g, v, k))
    }

    #[test]
    fn namespaced_resources_get_namespaced_item_paths_and_an_all_namespaces_list() {
        let paths: Vec<String> = items_for("pods").into_iter().map(|p| p.path).collect();
        for want in [
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "/api/v1/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "{want} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn operation_ids_follow_kube_apiserver() {
        let ids: Vec<String> = items_for("deployments")
            .into_iter()
            .flat_map(|p| p.ops.into_iter().map(|o| o.operation_id))
            .collect();
        for want in [
            "listAppsV1NamespacedDeployment",
            "createAppsV1NamespacedDeployment",
            "deleteAppsV1CollectionNamespacedDeployment",
            "patchAppsV1NamespacedDeployment",
            "listAppsV1DeploymentForAllNamespaces",
            "readAppsV1NamespacedDeploymentScale",
            "patchAppsV1NamespacedDeploymentStatus",
        ] {
            assert!(ids.iter().any(|i| i == want), "{want} missing from {ids:?}");
        }
        let cluster: Vec<String> = items_for("namespaces")
            .into_iter()
            .flat_map(|p| p.ops.into_iter().map(|o| o.operation_id))
            .collect();
        assert!(
            cluster
                .iter()
                .any(|i| i == "deleteCoreV1CollectionNamespace"),
            "{cluster:?}"
        );
        assert!(cluster.iter().any(|i| i == "readCoreV1Namespace"));
    }

    #[test]
    fn every_patch_operation_offers_field_validation_and_force() {
        for p in items_for("deployments") {
            for o in p.ops.iter().filter(|o| o.method == "patch") {
                let names: Vec<&str> = o.params.iter().map(|q| q.name).collect();
                for want in ["fieldValidation", "fieldManager", "dryRun", "force"] {
                    assert!(names.contains(&want), "{} lacks {want}", o.operation_id);
                }
            }
        }
    }

    #[test]
    fn scale_operations_speak_autoscaling_scale() {
        let scale = items_for("deployments")
            .into_iter()
            .find(|p| p.path.ends_with("/scale"))
            .expect("scale path");
        let methods: Vec<&str> = scale.ops.iter().map(|o| o.method).collect();
        assert_eq!(methods, ["get", "put", "patch"]);
        assert!(
            scale
                .ops
                .iter()
                .all(|o| o.gvk.kind == "Scale" && o.gvk.group == "autoscaling")
        );
    }

    #[test]
    fn group_tokens_and_tags_match_kubernetes() {
        let cases = [
            ("", "Core", "core_v1"),
            ("apps", "Apps", "apps_v1"),
            ("coordination.k8s.io", "Coordination", "coordination_v1"),
            ("scheduling.k8s.io", "Scheduling", "scheduling_v1"),
        ];
        for (group, token, t) in cases {
            assert_eq!(group_token(group), token);
            assert_eq!(tag(group, "v1"), t);
        }
    }
}
