//! Tests of the shared apimachinery validators.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, OwnerReference};

use super::*;
use crate::registry::strategies::testutil::{labels, messages, selector};

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn meta(name: Option<&str>, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: name.map(str::to_string),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn names_are_checked_by_their_rule() {
    let long = "a".repeat(64);
    let cases: Vec<(NameRule, &str, bool, Vec<String>)> = vec![
        (NameRule::Dns1123Subdomain, "web.example", false, vec![]),
        (
            NameRule::Dns1123Subdomain,
            "Web",
            false,
            vec![SUBDOMAIN_MSG.to_string()],
        ),
        (NameRule::Dns1123Subdomain, "web-", true, vec![]),
        (
            NameRule::Dns1123Label,
            "é-",
            true,
            vec![LABEL_MSG.to_string()],
        ),
        (
            NameRule::Dns1123Label,
            "a.b",
            false,
            vec![LABEL_MSG.to_string()],
        ),
        (
            NameRule::Dns1123Label,
            &long,
            false,
            vec!["must be no more than 63 characters".to_string()],
        ),
        (
            NameRule::PathSegment,
            "..",
            false,
            vec!["may not be '..'".to_string()],
        ),
        (
            NameRule::PathSegment,
            "a/b%c",
            false,
            vec![
                "may not contain '/'".to_string(),
                "may not contain '%'".to_string(),
            ],
        ),
        (NameRule::PathSegment, "Any_Name.1", false, vec![]),
    ];
    for (rule, name, prefix, want) in cases {
        assert_eq!(validate_name(rule, name, prefix), want, "{rule:?} {name}");
    }
}

#[test]
fn object_meta_is_validated_as_apimachinery_does() {
    assert_eq!(
        messages(&validate_object_meta(
            &meta(Some("web"), Some("default")),
            true,
            NameRule::Dns1123Subdomain
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta(None, Some("default")),
            true,
            NameRule::Dns1123Subdomain
        )),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta(Some("web"), None),
            true,
            NameRule::Dns1123Subdomain
        )),
        vec!["metadata.namespace: Required value"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta(Some("n1"), Some("default")),
            false,
            NameRule::Dns1123Subdomain
        )),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta(Some("Web"), Some("default")),
            true,
            NameRule::Dns1123Subdomain
        )),
        vec![format!(
            "metadata.name: Invalid value: \"Web\": {SUBDOMAIN_MSG}"
        )]
    );
    let mut generated = meta(Some("web-x7k2p"), Some("default"));
    generated.generate_name = Some("Web-".into());
    assert_eq!(
        messages(&validate_object_meta(
            &generated,
            true,
            NameRule::Dns1123Subdomain
        )),
        vec![format!(
            "metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}"
        )]
    );
}

#[test]
fn labels_annotations_and_owner_references_follow_apimachinery() {
    let mut m = meta(Some("web"), Some("default"));
    m.labels = Some(labels(&[("app", "web!"), ("-bad", "ok")]));
    m.annotations = Some(labels(&[("Example.com/Note", "x")]));
    m.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-1".into(),
        uid: String::new(),
        ..Default::default()
    }]);
    assert_eq!(
        messages(&validate_object_meta(&m, true, NameRule::Dns1123Subdomain)),
        vec![
            "metadata.labels: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"web!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
        ]
    );
    let mut big = meta(Some("web"), Some("default"));
    big.annotations = Some(labels(&[("a", &"x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT))]));
    assert_eq!(
        messages(&validate_object_meta(
            &big,
            true,
            NameRule::Dns1123Subdomain
        )),
        vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

#[test]
fn qualified_names_and_port_names_carry_exact_messages() {
    assert_eq!(is_qualified_name("example.com/name"), Vec::<String>::new());
    assert_eq!(
        is_qualified_name("/name"),
        vec!["prefix part must be non-empty".to_string()]
    );
    assert_eq!(
        is_qualified_name("Example.com/name"),
        vec![format!("prefix part {SUBDOMAIN_MSG}")]
    );
    assert_eq!(is_qualified_name("a/b/c").len(), 1);
    assert_eq!(
        is_valid_port_name("-http--"),
        vec![
            "must not contain consecutive hyphens".to_string(),
            "must not begin or end with a hyphen".to_string(),
        ]
    );
    assert_eq!(
        is_valid_port_name("8080"),
        vec!["must contain at least one letter (a-z)".to_string()]
    );
    assert_eq!(
        is_valid_port_num(0),
        vec!["must be between 1 and 65535, inclusive".to_string()]
    );
}

#[test]
fn label_selectors_validate_and_print_like_kubernetes() {
    let mut sel = selector(&[("app", "web")]);
    sel.match_expressions = Some(vec![
        LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["b".into(), "a".into()]),
        },
        LabelSelectorRequirement {
            key: "canary".into(),
            operator: "DoesNotExist".into(),
            values: None,
        },
        LabelSelectorRequirement {
            key: "env".into(),
            operator: "Exists".into(),
            values: None,
        },
    ]);
    // Requirements are sorted by key, as `labels.Selector` sorts them.
    assert_eq!(
        selector_string(&sel),
        "app=web,!canary,env,tier notin (a,b)"
    );
    assert_eq!(format_label_selector(&Default::default()), "<none>");
    let bad = LabelSelector {
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: None,
            },
            LabelSelectorRequirement {
                key: "b".into(),
                operator: "Exists".into(),
                values: Some(vec!["x".into()]),
            },
            LabelSelectorRequirement {
                key: "c".into(),
                operator: "Near".into(),
                values: None,
            },
        ]),
        ..Default::default()
    };
    assert_eq!(
        messages(&validate_label_selector(
            &bad,
            &FieldPath::new("spec").child("selector")
        )),
        vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator",
        ]
    );
}

#[test]
fn config_keys_and_env_names_follow_kubernetes() {
    assert_eq!(is_config_map_key("app.properties"), Vec::<String>::new());
    assert_eq!(is_config_map_key("."), vec!["must not be '.'".to_string()]);
    assert_eq!(is_env_var_name("MY VAR"), Vec::<String>::new());
    assert_eq!(is_env_var_name("A=B").len(), 1);
    assert_eq!(is_dns1035_label("1abc").len(), 1);
    assert_eq!(is_dns1035_label("abc-1"), Vec::<String>::new());
}
