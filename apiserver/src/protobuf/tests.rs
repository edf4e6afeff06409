//! Decoding bodies hand-encoded as gogo-protobuf would write them.

use serde_json::json;

use super::*;

/// A message being encoded; fields in the order written.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn varint(mut self, tag: u32, v: u64) -> Enc {
        self.raw_varint(u64::from(tag) << 3);
        self.raw_varint(v);
        self
    }

    fn bytes(mut self, tag: u32, b: &[u8]) -> Enc {
        self.raw_varint((u64::from(tag) << 3) | 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(self, tag: u32, s: &str) -> Enc {
        self.bytes(tag, s.as_bytes())
    }

    fn msg(self, tag: u32, m: Enc) -> Enc {
        self.bytes(tag, &m.0)
    }

    fn entry(self, tag: u32, key: &str, value: Enc) -> Enc {
        self.msg(tag, Enc::default().str(1, key).msg(2, value))
    }

    fn str_entry(self, tag: u32, key: &str, value: &[u8]) -> Enc {
        self.msg(tag, Enc::default().str(1, key).bytes(2, value))
    }
}

fn envelope(api_version: &str, kind: &str, object: Enc) -> Vec<u8> {
    let unknown = Enc::default()
        .msg(1, Enc::default().str(1, api_version).str(2, kind))
        .msg(2, object)
        .str(3, "")
        .str(4, "");
    [MAGIC.as_slice(), &unknown.0].concat()
}

/// ObjectMeta as gogo writes it for a new object: every non-pointer
/// scalar, zero or not, and the zero creationTimestamp as an empty message.
fn meta(name: &str, namespace: &str) -> Enc {
    Enc::default()
        .str(1, name)
        .str(2, "")
        .str(3, namespace)
        .str(5, "")
        .str(6, "")
        .varint(7, 0)
        .msg(8, Enc::default())
}

#[test]
fn configmap_decodes_with_data_and_without_gogo_zero_values() {
    let body = envelope(
        "v1",
        "ConfigMap",
        Enc::default()
            .msg(1, meta("a", "default"))
            .str_entry(2, "k", b"v")
            .str_entry(2, "empty", b"")
            .str_entry(3, "bin", &[0, 1, 2]),
    );
    let got = decode_body(&body).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default"},
            "data": {"k": "v", "empty": ""},
            "binaryData": {"bin": "AAEC"},
        })
    );
}

#[test]
fn secret_data_becomes_base64_and_type_is_kept() {
    let body = envelope(
        "v1",
        "Secret",
        Enc::default()
            .msg(1, meta("s", "default"))
            .str_entry(2, "password", b"hunter2")
            .str(3, "Opaque"),
    );
    let got = decode_body(&body).expect("decodes");
    assert_eq!(got["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(got["type"], "Opaque");
}

#[test]
fn deployment_decodes_intorstring_quantity_time_and_explicit_zero_pointers() {
    let quantity = |s: &str| Enc::default().str(1, s);
    let container = Enc::default()
        .str(1, "web")
        .str(2, "busybox")
        .msg(6, Enc::default().str(1, "").varint(3, 80).str(4, "TCP"))
        .msg(8, Enc::default().entry(1, "cpu", quantity("100m")))
        .str(13, "File")
        .varint(18, 0);
    let volume = Enc::default()
        .str(1, "scratch")
        .msg(2, Enc::default().msg(2, Enc::default()));
    let template = Enc::default()
        .msg(
            1,
            Enc::default()
                .msg(8, Enc::default())
                .str_entry(11, "app", b"web"),
        )
        .msg(2, Enc::default().msg(2, container).msg(1, volume));
    let strategy = Enc::default().str(1, "RollingUpdate").msg(
        2,
        Enc::default()
            .msg(1, Enc::default().varint(1, 1).str(3, "25%"))
            .msg(2, Enc::default().varint(1, 0).varint(2, 0)),
    );
    let spec = Enc::default()
        .varint(1, 0)
        .msg(2, Enc::default().str_entry(1, "app", b"web"))
        .msg(3, template)
        .msg(4, strategy);
    let mut meta = meta("web", "default");
    meta = meta.msg(9, Enc::default().varint(1, 1_767_225_600).varint(2, 5));
    let status = Enc::default().varint(1, 0).varint(2, 0);
    let body = envelope(
        "apps/v1",
        "Deployment",
        Enc::default().msg(1, meta).msg(2, spec).msg(3, status),
    );
    let got = decode_body(&body).expect("decodes");
    assert_eq!(got["metadata"]["deletionTimestamp"], "2026-01-01T00:00:00Z");
    assert_eq!(got["metadata"].get("creationTimestamp"), None);
    assert_eq!(got["spec"]["replicas"], 0, "a pointer's zero is a value");
    assert_eq!(
        got["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let rolling = &got["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(rolling["maxUnavailable"], "25%");
    assert_eq!(rolling["maxSurge"], 0, "*IntOrString keeps its zero");
    let pod = &got["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0],
        json!({
            "name": "web",
            "image": "busybox",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "100m"}},
            "terminationMessagePath": "File",
        })
    );
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "scratch", "emptyDir": {}})
    );
    assert_eq!(got["status"], json!({}));
}

#[test]
fn service_target_port_and_repeated_strings_decode() {
    let port = Enc::default()
        .str(1, "")
        .str(2, "TCP")
        .varint(3, 80)
        .msg(4, Enc::default().varint(1, 0).varint(2, 8080))
        .varint(5, 0);
    let spec = Enc::default()
        .msg(1, port)
        .str(4, "ClusterIP")
        .str(3, "10.0.0.1")
        .str(18, "");
    let got = decode_body(&envelope(
        "v1",
        "Service",
        Enc::default().msg(1, meta("web", "")).msg(2, spec),
    ))
    .expect("decodes");
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(got["spec"]["type"], "ClusterIP");
    assert_eq!(got["metadata"], json!({"name": "web"}));
}

#[test]
fn ingress_rules_decode_with_the_inline_rule_value() {
    let backend = Enc::default().msg(
        4,
        Enc::default()
            .str(1, "a")
            .msg(2, Enc::default().varint(2, 80)),
    );
    let path = Enc::default().str(1, "/a").str(3, "Prefix").msg(2, backend);
    let rule = Enc::default()
        .str(1, "shop.example")
        .msg(2, Enc::default().msg(1, Enc::default().msg(1, path)));
    let spec = Enc::default().str(4, "ferrokube").msg(3, rule);
    let got = decode_body(&envelope(
        "networking.k8s.io/v1",
        "Ingress",
        Enc::default().msg(1, meta("web", "")).msg(2, spec),
    ))
    .expect("decodes");
    assert_eq!(
        got["spec"],
        json!({"ingressClassName": "ferrokube", "rules": [{"host": "shop.example", "http": {"paths": [
            {"path": "/a", "pathType": "Prefix",
             "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}}]})
    );
}

#[test]
fn unknown_tags_are_skipped_as_go_does() {
    let body = envelope(
        "v1",
        "ConfigMap",
        Enc::default()
            .msg(1, meta("a", ""))
            .varint(99, 7)
            .str(98, "x"),
    );
    assert_eq!(
        decode_body(&body).expect("decodes")["metadata"]["name"],
        "a"
    );
}

#[test]
fn envelope_problems_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"kind\":\"ConfigMap\"}".to_vec(), "prefix"),
        (
            envelope("v1", "Frobnicator", Enc::default()),
            "no kind \"Frobnicator\"",
        ),
        (
            envelope("", "ConfigMap", Enc::default()),
            "missing apiVersion",
        ),
        (
            [
                MAGIC.as_slice(),
                &Enc::default()
                    .msg(1, Enc::default().str(1, "v1").str(2, "Pod"))
                    .str(3, "gzip")
                    .0,
            ]
            .concat(),
            "content encoding",
        ),
        (
            envelope("v1", "ConfigMap", Enc::default().varint(1, 5)),
            "wire type",
        ),
        (
            envelope(
                "v1",
                "ConfigMap",
                Enc::default().msg(1, Enc::default().bytes(1, &[0xff])),
            ),
            "UTF-8",
        ),
    ];
    for (body, want) in cases {
        let err = decode_body(&body).expect_err(want).to_string();
        assert!(err.contains(want), "{err:?} should mention {want:?}");
    }
}

#[test]
fn truncated_and_random_bodies_are_errors_not_panics() {
    let body = envelope(
        "apps/v1",
        "Deployment",
        Enc::default().msg(1, meta("web", "default")).msg(
            2,
            Enc::default().varint(1, 2).msg(
                3,
                Enc::default().msg(2, Enc::default().msg(2, Enc::default().str(1, "c"))),
            ),
        ),
    );
    assert!(decode_body(&body).is_ok());
    for len in 0..body.len() {
        let _ = decode_body(&body[..len]);
    }
    // A fixed-seed xorshift: reproducible noise, flipped into valid bodies
    // and appended after the prefix.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut mutated = body.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % mutated.len();
            mutated[i] = next() as u8;
        }
        let _ = decode_body(&mutated);
        let noise: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
        let _ = decode_body(&[MAGIC.as_slice(), &noise].concat());
    }
}

#[test]
fn every_served_kind_has_a_protobuf_schema() {
    for gvk in crate::openapi::schemas::all_kinds() {
        let api_version = match gvk.group {
            "" => gvk.version.to_string(),
            group => format!("{group}/{}", gvk.version),
        };
        let name = message_name(&api_version, gvk.kind)
            .unwrap_or_else(|| panic!("no protobuf schema for {api_version} {}", gvk.kind));
        assert!(name.ends_with(&format!(".{}", gvk.kind)), "{name}");
    }
    assert_eq!(
        message_name("v1", "DeleteOptions"),
        Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
    );
}

#[test]
fn micro_times_durations_and_raw_extensions_take_their_json_forms() {
    let body = envelope(
        "events.k8s.io/v1",
        "Event",
        Enc::default()
            .msg(1, meta("e", "default"))
            .msg(
                2,
                Enc::default()
                    .varint(1, 1_767_225_600)
                    .varint(2, 123_456_789),
            )
            .str(7, "Pulled"),
    );
    let got = decode_body(&body).expect("decodes");
    assert_eq!(got["eventTime"], "2026-01-01T00:00:00.123456Z");
    assert_eq!(got["reason"], "Pulled");

    let entry = Enc::default()
        .str(1, "kubectl")
        .str(2, "Update")
        .msg(4, Enc::default().varint(1, 1_767_225_600))
        .str(6, "FieldsV1")
        .msg(7, Enc::default().str(1, r#"{"f:data":{".":{}}}"#));
    let body = envelope(
        "v1",
        "ConfigMap",
        Enc::default().msg(1, Enc::default().str(1, "a").msg(17, entry)),
    );
    let got = decode_body(&body).expect("decodes");
    assert_eq!(
        got["metadata"]["managedFields"][0],
        json!({
            "manager": "kubectl",
            "operation": "Update",
            "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}}},
        })
    );
}

#[test]
fn repeated_ints_decode_packed_or_not_with_negative_values() {
    // PodSecurityContext.supplementalGroups (4): gogo writes one key per
    // element; a proto3-style writer packs them. -1 travels as ten bytes.
    let minus_one = u64::MAX;
    let unpacked = Enc::default().varint(4, 1000).varint(4, minus_one);
    let mut packed_values = Enc::default();
    packed_values.raw_varint(1000);
    packed_values.raw_varint(minus_one);
    let packed = Enc::default().bytes(4, &packed_values.0);
    for security_context in [unpacked, packed] {
        let spec = Enc::default().msg(14, security_context);
        let body = envelope(
            "v1",
            "Pod",
            Enc::default().msg(1, meta("p", "")).msg(2, spec),
        );
        let got = decode_body(&body).expect("decodes");
        assert_eq!(
            got["spec"]["securityContext"]["supplementalGroups"],
            json!([1000, -1])
        );
    }
}
