//! `fieldValidation` on create and update, as kube-apiserver's strict JSON
//! decoder reports it: unknown and duplicate fields of a raw JSON body in
//! document order, one Warning header each for `Warn`, a 400 for `Strict`;
//! a `scale` body is checked against `Scale`, not the workload; a YAML body
//! (no duplicates survive its parser) still gets its unknown fields.

mod support;

use serde::Deserialize as _;
use serde_json::{Value, json};
use support::{call, server};

/// A duplicate inside metadata, then an unknown field in a container, then
/// a duplicate at the top: the decoder meets them in this order.
const POD: &str = r#"{"apiVersion":"v1","kind":"Pod",
    "metadata":{"name":"web","labels":{"a":"1"},"labels":{"a":"2"}},
    "spec":{"containers":[{"name":"c","image":"busybox","imagee":"x"}]},
    "kind":"Pod"}"#;

#[tokio::test]
async fn unknown_and_duplicate_fields_are_reported_in_document_order() {
    let (_dir, app) = server().await;
    let pods = "/api/v1/namespaces/default/pods";
    let json = "application/json";

    let strict = call(
        &app,
        "POST",
        &format!("{pods}?fieldValidation=Strict"),
        json,
        POD,
    )
    .await;
    assert_eq!(strict.code, 400, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: \
         duplicate field \"metadata.labels\", unknown field \"spec.containers[0].imagee\", \
         duplicate field \"kind\""
    );

    let warn = call(
        &app,
        "POST",
        &format!("{pods}?fieldValidation=Warn"),
        json,
        POD,
    )
    .await;
    assert_eq!(warn.code, 201, "{}", warn.body);
    assert_eq!(
        warn.warnings,
        [
            r#"299 - "duplicate field \"metadata.labels\"""#,
            r#"299 - "unknown field \"spec.containers[0].imagee\"""#,
            r#"299 - "duplicate field \"kind\"""#,
        ]
    );
    // The last duplicate wins, as in Go.
    assert_eq!(warn.body["metadata"]["labels"]["a"], "2");

    // An update is checked the same way.
    let mut pod = warn.body.clone();
    pod["spec"]["containers"][0]["imagePullPolicyy"] = "Always".into();
    let put = call(
        &app,
        "PUT",
        &format!("{pods}/web?fieldValidation=Strict"),
        json,
        &pod.to_string(),
    )
    .await;
    assert_eq!(put.code, 400, "{}", put.body);
    assert!(
        put.body["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("unknown field \"spec.containers[0].imagePullPolicyy\"")),
        "{}",
        put.body
    );

    let ignore = call(
        &app,
        "POST",
        &format!("{pods}?fieldValidation=Ignore"),
        json,
        &POD.replace("\"web\"", "\"quiet\""),
    )
    .await;
    assert_eq!(ignore.code, 201, "{}", ignore.body);
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);
}

#[tokio::test]
async fn a_scale_body_is_checked_as_a_scale_and_yaml_bodies_still_are() {
    let (_dir, app) = server().await;
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
        "spec":{"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#;
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let created = call(&app, "POST", deployments, "application/json", deployment).await;
    assert_eq!(created.code, 201, "{}", created.body);

    // `status.selector` is a Scale's field, not a Deployment's.
    let scale = r#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},
        "spec":{"replicas":2},"status":{"replicas":1,"selector":"app=web"}}"#;
    let scaled = call(
        &app,
        "PUT",
        &format!("{deployments}/web/scale?fieldValidation=Strict"),
        "application/json",
        scale,
    )
    .await;
    assert_eq!(scaled.code, 200, "{}", scaled.body);
    assert_eq!(scaled.body["spec"]["replicas"], 2);
    // A Scale's own unknown field is reported as a Scale's.
    let typo = scale.replace("\"replicas\":2", "\"replicas\":3,\"replicaz\":3");
    let refused = call(
        &app,
        "PUT",
        &format!("{deployments}/web/scale?fieldValidation=Strict"),
        "application/json",
        &typo,
    )
    .await;
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(
        refused.body["message"],
        "Scale in version \"v1\" cannot be handled as a Scale: strict decoding error: \
         unknown field \"spec.replicaz\""
    );
    let warned = call(
        &app,
        "PUT",
        &format!("{deployments}/web/scale?fieldValidation=Warn"),
        "application/json",
        &typo,
    )
    .await;
    assert_eq!(warned.code, 200, "{}", warned.body);
    assert_eq!(warned.body["spec"]["replicas"], 3);
    assert_eq!(
        warned.warnings,
        [r#"299 - "unknown field \"spec.replicaz\"""#]
    );

    // A patch of the scale subresource applies to the Scale: its unknown
    // fields are the patched Scale's, a Deployment's own fields included.
    let scale_uri =
        |validation: &str| format!("{deployments}/web/scale?fieldValidation={validation}");
    let patch = r#"{"spec":{"replicas":4,"replicaz":4,"strategy":{}}}"#;
    let warned = call(
        &app,
        "PATCH",
        &scale_uri("Warn"),
        "application/merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(warned.code, 200, "{}", warned.body);
    assert_eq!(warned.body["kind"], "Scale");
    assert_eq!(warned.body["spec"]["replicas"], 4);
    assert_eq!(
        warned.warnings,
        [
            r#"299 - "unknown field \"spec.replicaz\"""#,
            r#"299 - "unknown field \"spec.strategy\"""#
        ]
    );
    let refused = call(
        &app,
        "PATCH",
        &scale_uri("Strict"),
        "application/merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(refused.code, 422, "{}", refused.body);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: "{\"apiVersion\":\"autoscaling/v1\",\"kind\":\"Scale\""#)
            && message.ends_with(
                r#"strict decoding error: unknown field "spec.replicaz", unknown field "spec.strategy""#
            ),
        "{message}"
    );
    let clean = call(
        &app,
        "PATCH",
        &scale_uri("Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!(clean.code, 200, "{}", clean.body);
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);

    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  k: v\n";
    let typo = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/yaml",
        yaml,
    )
    .await;
    assert_eq!(typo.code, 400, "{}", typo.body);
    assert_eq!(
        typo.body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: \
         unknown field \"datta\""
    );
}

/// `handlers/patch.go`: the raw patch's duplicates, then the patched
/// object's unknown fields; `Strict` is a 422 Invalid on `patch` with no
/// kind or name, showing the patched object (or, for a strategic merge
/// patch, the patch in Go's `%+v`).
#[tokio::test]
async fn patches_report_their_duplicates_then_the_patched_objects_unknown_fields() {
    let (_dir, app) = server().await;
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let created = call(
        &app,
        "POST",
        configmaps,
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.body);
    let uri = format!("{configmaps}/c?fieldValidation=Strict");
    let merge = r#"{"datta":{"x":"1"},"data":{"k":"1"},"data":{"k":"2"}}"#;

    let strict = call(&app, "PATCH", &uri, "application/merge-patch+json", merge).await;
    assert_eq!(strict.code, 422, "{}", strict.body);
    let message = strict.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "\": strict decoding error: duplicate field \"data\", unknown field \"datta\""
        ),
        "{message}"
    );
    assert_eq!(strict.body["details"]["causes"][0]["field"], "patch");
    assert_eq!(
        strict.body["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );

    let smp = r#"{"datta":{"x":1,"y":[true,null]}}"#;
    let strict = call(
        &app,
        "PATCH",
        &uri,
        "application/strategic-merge-patch+json",
        smp,
    )
    .await;
    assert_eq!(strict.code, 422, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        " \"\" is invalid: patch: Invalid value: \"map[datta:map[x:1 y:[true <nil>]]]\": \
         strict decoding error: unknown field \"datta\""
    );

    let json_patch = r#"[{"op":"add","op":"add","path":"/data/j","value":"1"}]"#;
    let warned = call(
        &app,
        "PATCH",
        &format!("{configmaps}/c?fieldValidation=Warn"),
        "application/json-patch+json",
        json_patch,
    )
    .await;
    assert_eq!(warned.code, 200, "{}", warned.body);
    assert_eq!(warned.warnings.len(), 1, "{:?}", warned.warnings);
    assert!(
        warned.warnings[0].starts_with(r#"299 - "json patch duplicate field \""#),
        "{:?}",
        warned.warnings
    );
    assert_eq!(warned.body["data"]["j"], "1");

    // `Ignore` takes the patch as it is: the last duplicate wins.
    let ignored = call(
        &app,
        "PATCH",
        &format!("{configmaps}/c?fieldValidation=Ignore"),
        "application/merge-patch+json",
        merge,
    )
    .await;
    assert_eq!(ignored.code, 200, "{}", ignored.body);
    assert!(ignored.warnings.is_empty());
    assert_eq!(ignored.body["data"]["k"], "2");
}

/// Server-side apply, as `handlers/patch.go` checks it after applying: the
/// YAML body's repeated keys, by line; `Strict` refuses with 400.
#[tokio::test]
async fn an_apply_bodys_repeated_yaml_keys_are_reported_by_line() {
    let (_dir, app) = server().await;
    let uri = |validation: &str| {
        format!(
            "/api/v1/namespaces/default/configmaps/cfg?fieldManager=m&fieldValidation={validation}"
        )
    };
    let body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n  b: \"2\"\n  a: \"3\"\n";
    let apply = "application/apply-patch+yaml";

    let refused = call(&app, "PATCH", &uri("Strict"), apply, body).await;
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(refused.body["reason"], "BadRequest");
    assert_eq!(
        refused.body["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  \
         line 8: key \"a\" already set in map"
    );
    let missing = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps/cfg",
        "",
        "",
    )
    .await;
    assert_eq!(missing.code, 404, "nothing was created: {}", missing.body);

    // Created under Warn, with the last value, as the Go decoder keeps it.
    let created = call(&app, "PATCH", &uri("Warn"), apply, body).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["data"]["a"], "3");
    assert_eq!(
        created.warnings,
        [r#"299 - "line 8: key \"a\" already set in map""#]
    );
    // An update by apply is checked the same way.
    let twice = body.replace("  b: \"2\"\n", "  b: \"2\"\n  b: \"4\"\n");
    let updated = call(&app, "PATCH", &uri("Warn"), apply, &twice).await;
    assert_eq!(updated.code, 200, "{}", updated.body);
    assert_eq!(
        updated.warnings,
        [
            r#"299 - "line 8: key \"b\" already set in map""#,
            r#"299 - "line 9: key \"a\" already set in map""#
        ]
    );
    let refused = call(&app, "PATCH", &uri("Strict"), apply, &twice).await;
    assert_eq!(refused.code, 400, "{}", refused.body);
    let ignored = call(&app, "PATCH", &uri("Ignore"), apply, &twice).await;
    assert_eq!(ignored.code, 200, "{}", ignored.body);
    assert!(ignored.warnings.is_empty(), "{:?}", ignored.warnings);
}

/// Every object of every example manifest (and of the kinds they lack),
/// given an unknown member or a repeated key in turn: a create answers
/// exactly the warnings the exact check finds in that body, whichever way
/// the server decodes it. (The one-pass check the typed create uses is
/// also asserted against the exact one on every create of a debug build.)
#[tokio::test]
async fn each_object_of_each_kind_reports_an_unknown_or_repeated_member_put_into_it() {
    let (_dir, app) = server().await;
    let mut bodies: Vec<Value> = Vec::new();
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");
    let mut files: Vec<_> = std::fs::read_dir(manifests)
        .expect("manifests")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("manifest");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(doc).expect("a YAML document");
            if doc.is_object() {
                bodies.push(doc);
            }
        }
    }
    bodies.extend([
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": {"holderIdentity": "h", "leaseDurationSeconds": 15}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "pc"}, "value": 1000}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "es"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
            "secrets": [{"name": "s"}]}),
    ]);

    let mut reported = 0;
    let mut variants = 0;
    for body in &mut bodies {
        let (api_version, kind) = (body["apiVersion"].clone(), body["kind"].clone());
        let info = common::RESOURCES
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
            .unwrap_or_else(|| panic!("a served kind: {kind}"));
        body["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("namespace");
        let prefix = if info.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", info.group, info.version)
        };
        let ns = if info.namespaced() {
            "/namespaces/default"
        } else {
            ""
        };
        let url = format!("{prefix}{ns}/{}?dryRun=All", info.plural);
        let clean = call(
            &app,
            "POST",
            &format!("{url}&fieldValidation=Strict"),
            "application/json",
            &body.to_string(),
        )
        .await;
        assert_eq!(clean.code, 201, "{kind}: {}", clean.body);
        assert!(clean.warnings.is_empty(), "{kind}: {:?}", clean.warnings);

        let objects = object_count(body);
        for target in 0..objects {
            for change in [Change::Unknown, Change::Repeat] {
                let mut text = String::new();
                let mut at = 0;
                write_changed(body, target, change, &mut at, &mut text);
                let exact = apiserver::openapi::validate::strict_errors(
                    info.group,
                    info.version,
                    info.kind,
                    text.as_bytes(),
                )
                .expect("well-formed JSON");
                let answer = call(
                    &app,
                    "POST",
                    &format!("{url}&fieldValidation=Warn"),
                    "application/json",
                    &text,
                )
                .await;
                let want: Vec<String> = exact
                    .iter()
                    .map(apiserver::openapi::validate::warning_header_value)
                    .collect();
                // A member added to a map may be refused as a key.
                if answer.code != 201 {
                    assert!(want.is_empty(), "{text}: {}", answer.body);
                    continue;
                }
                assert_eq!(answer.warnings, want, "{text}");
                variants += 1;
                reported += usize::from(!want.is_empty());
            }
        }
    }
    // Most objects are typed (opaque ones, such as a map's values or
    // fieldsV1, have nothing to report).
    assert!(reported * 2 > variants, "{reported} of {variants} reported");
}

#[derive(Clone, Copy)]
enum Change {
    /// A member no kind has.
    Unknown,
    /// The object's first member, once more.
    Repeat,
}

fn object_count(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(object_count).sum::<usize>(),
        Value::Array(items) => items.iter().map(object_count).sum(),
        _ => 0,
    }
}

/// `v` as JSON text, with `change` made to its `target`th object (in
/// document order, counted by `at`).
fn write_changed(v: &Value, target: usize, change: Change, at: &mut usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            let here = *at == target;
            *at += 1;
            let mut members: Vec<(String, String)> = Vec::new();
            for (k, value) in m {
                let mut text = String::new();
                write_changed(value, target, change, at, &mut text);
                members.push((serde_json::to_string(k).expect("a key"), text));
            }
            if here {
                match change {
                    // The first member's value: the type a map's values have.
                    Change::Unknown => {
                        let value = members.first().map_or("1".to_string(), |m| m.1.clone());
                        members.push((r#""zzUnknownMember""#.to_string(), value));
                    }
                    Change::Repeat => {
                        if let Some(first) = members.first().cloned() {
                            members.push(first);
                        }
                    }
                }
            }
            let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            out.push('{');
            out.push_str(&members.join(","));
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_changed(item, target, change, at, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
