#!/usr/bin/env python3
"""Generates apiserver/src/protobuf/schema_gen.rs, the protobuf schema of the
kinds ferrokube serves, for decoding `application/vnd.kubernetes.protobuf`
request bodies.

Two sources, because neither is enough alone:
  * the k8s-pb crate (prost-generated Rust for every Kubernetes type) gives
    each message's fields: tag, wire type, message type, repeated/map;
  * the Go types (k8s.io/api and k8s.io/apimachinery, whose struct tags
    carry `protobuf:"...,<tag>,..."`) give what the wire cannot: the JSON
    name, whether the Go field is a pointer or lacks `omitempty` (so a zero
    value on the wire is a real value, not "unset"), and whether the field
    is embedded inline in JSON (`Volume.VolumeSource`).

Usage:
  scripts/gen-proto-schema.py K8S_PB_SRC GO_API_DIR GO_APIMACHINERY_DIR [OUT]

  K8S_PB_SRC           ~/.cargo/registry/src/*/k8s-pb-0.9.0/src
  GO_API_DIR           a checkout of github.com/kubernetes/api
  GO_APIMACHINERY_DIR  a checkout of github.com/kubernetes/apimachinery
  OUT                  default apiserver/src/protobuf/schema_gen.rs

Only python3's standard library is used.
"""

import os
import re
import sys

# Packages we serve, as k8s-pb module directories; the Go directory of each
# is relative to the Go checkout named by the first element.
PACKAGES = {
    "api/core/v1": ("api", "core/v1"),
    "api/apps/v1": ("api", "apps/v1"),
    "api/batch/v1": ("api", "batch/v1"),
    "api/coordination/v1": ("api", "coordination/v1"),
    "api/discovery/v1": ("api", "discovery/v1"),
    "api/events/v1": ("api", "events/v1"),
    "api/scheduling/v1": ("api", "scheduling/v1"),
    "api/autoscaling/v1": ("api", "autoscaling/v1"),
    "api/policy/v1": ("api", "policy/v1"),
    "apimachinery/pkg/apis/meta/v1": ("apimachinery", "pkg/apis/meta/v1"),
    "apimachinery/pkg/api/resource": ("apimachinery", "pkg/api/resource"),
    "apimachinery/pkg/util/intstr": ("apimachinery", "pkg/util/intstr"),
    "apimachinery/pkg/runtime": ("apimachinery", "pkg/runtime"),
}

# The kinds whose bodies clients send, and the envelope around them.
ROOTS = [
    "io.k8s.api.core.v1." + k
    for k in [
        "Namespace", "Pod", "Node", "Service", "Endpoints", "ConfigMap",
        "Secret", "ServiceAccount", "Event", "Binding",
        "PersistentVolume", "PersistentVolumeClaim",
    ]
] + [
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.apps.v1.DaemonSet",
    "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.batch.v1.Job",
    "io.k8s.api.batch.v1.CronJob",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.api.events.v1.Event",
    "io.k8s.api.policy.v1.Eviction",
    "io.k8s.api.scheduling.v1.PriorityClass",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.runtime.Unknown",
]

SCALARS = {
    "string": "Str",
    "bool": "Bool",
    "int32": "I32",
    "int64": "I64",
    "double": "F64",
    "bytes": "Bytes",
}

WRAPPERS = [
    "::core::option::Option<",
    "::prost::alloc::vec::Vec<",
    "::prost::alloc::boxed::Box<",
    "::prost::alloc::collections::BTreeMap<",
    "::prost::alloc::string::String,",
    ">",
]


def parse_pb_module(path, module):
    """Returns {struct name: [field dict]} for one k8s-pb mod.rs."""
    with open(path) as f:
        lines = [l for l in f if not l.strip().startswith("//")]
    text = "".join(lines)
    if re.search(r"^\s*pub mod ", text, re.M):
        sys.exit(f"{path}: nested modules are not supported")
    messages = {}
    for m in re.finditer(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.M | re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        parts = re.split(r"#\[prost\(", body)[1:]
        for part in parts:
            attr, rest = part.split(")]", 1)
            fm = re.match(r"\s*pub (?:r#)?(\w+):\s*(.*?),?\s*$", rest, re.S)
            if not fm:
                sys.exit(f"{path}: {name}: cannot read field after {attr}")
            fname, rust_ty = fm.group(1), re.sub(r"\s+", "", fm.group(2))
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            kind = attr.split(",")[0].strip()
            field = {"tag": tag, "name": fname}
            if kind.startswith("btree_map"):
                key, value = re.search(r'btree_map = "(\w+), (\w+)"', attr).groups()
                if key != "string":
                    sys.exit(f"{path}: {name}.{fname}: map key {key} unsupported")
                field["card"] = "Map"
                field["ty"] = message_or_scalar(value, rust_ty, module, path)
            else:
                kind = kind.split("=")[0].strip()
                field["card"] = "Many" if "repeated" in attr else "One"
                field["ty"] = message_or_scalar(kind, rust_ty, module, path)
            fields.append(field)
        messages[name] = fields
    return messages


def message_or_scalar(kind, rust_ty, module, path):
    if kind in SCALARS:
        return ("scalar", SCALARS[kind])
    if kind != "message":
        sys.exit(f"{path}: unsupported prost kind {kind}")
    ty = rust_ty
    for w in WRAPPERS:
        ty = ty.replace(w, "")
    segments = ty.strip(",").split("::")
    base = list(module)
    while segments and segments[0] == "super":
        segments.pop(0)
        base.pop()
    return ("message", "io.k8s." + ".".join(base + segments))


def parse_go_package(directory):
    """Returns {lowercased struct name: (Go name, {tag: go field})}."""
    structs = {}
    if not os.path.isdir(directory):
        sys.exit(f"{directory}: no such Go package directory")
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".go") or fname.endswith("_test.go"):
            continue
        if fname.startswith(("generated", "zz_generated")):
            continue
        with open(os.path.join(directory, fname)) as f:
            text = f.read()
        for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
            fields = {}
            for line in m.group(2).splitlines():
                fm = re.match(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`", line)
                if not fm:
                    continue
                go_name, go_ty, tags = fm.groups()
                pb = re.search(r'protobuf:"[^,]*,(\d+),', tags)
                if not pb:
                    continue
                js = re.search(r'json:"([^"]*)"', tags)
                js_parts = js.group(1).split(",") if js else [""]
                fields[int(pb.group(1))] = {
                    "json": js_parts[0],
                    "inline": go_name is None and js_parts[0] == "",
                    "pointer": go_ty.startswith("*"),
                    "omitempty": "omitempty" in js_parts[1:],
                }
            structs[m.group(1).lower()] = (m.group(1), fields)
    return structs


def lower_camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    pb_src, go_api, go_apimachinery = sys.argv[1:4]
    out = sys.argv[4] if len(sys.argv) == 5 else "apiserver/src/protobuf/schema_gen.rs"
    go_roots = {"api": go_api, "apimachinery": go_apimachinery}

    messages = {}
    for pkg, (go_root, go_dir) in PACKAGES.items():
        module = pkg.split("/")
        go = parse_go_package(os.path.join(go_roots[go_root], go_dir))
        for name, fields in parse_pb_module(os.path.join(pb_src, pkg, "mod.rs"), module).items():
            go_name, go_fields = go.get(name.lower(), (name, {}))
            for field in fields:
                g = go_fields.get(field["tag"])
                if g is None:
                    # Only the hand-written wire types (Time, Quantity...)
                    # lack Go tags; the decoder special-cases those.
                    g = {"json": lower_camel(field["name"]), "inline": False,
                         "pointer": False, "omitempty": True}
                field.update(g)
            messages["io.k8s." + ".".join(module) + "." + go_name] = fields
    by_lower = {k.lower(): k for k in messages}

    def resolve(ty):
        # prost renames AWSFoo to AwsFoo; the Go name is the real one.
        if ty[0] == "message":
            full = by_lower.get(ty[1].lower())
            if full is None:
                sys.exit(f"unknown message type {ty[1]}")
            return ("message", full)
        return ty

    reachable, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        if name not in messages:
            sys.exit(f"root or reference {name} not found")
        reachable.add(name)
        for field in messages[name]:
            field["ty"] = resolve(field["ty"])
            if field["ty"][0] == "message":
                todo.append(field["ty"][1])

    w = []
    w.append("// @generated by scripts/gen-proto-schema.py; do not edit.\n")
    w.append("// Regenerate with:\n")
    w.append("//   python3 scripts/gen-proto-schema.py \\\n")
    w.append("//     ~/.cargo/registry/src/*/k8s-pb-0.9.0/src \\\n")
    w.append("//     <checkout of github.com/kubernetes/api> \\\n")
    w.append("//     <checkout of github.com/kubernetes/apimachinery>\n")
    w.append("// Protobuf tags never change, so newer Go checkouts only add fields.\n")
    w.append("//! The protobuf schema of every message reachable from the served kinds.\n\n")
    w.append("use super::schema::{Card::*, Message, Ty::*, f};\n\n")
    w.append("#[rustfmt::skip]\n")
    w.append("pub static MESSAGES: &[Message] = &[\n")
    for name in sorted(reachable):
        w.append(f"    Message {{ name: \"{name}\", fields: &[\n")
        for fd in messages[name]:
            ty = f"Msg(\"{fd['ty'][1]}\")" if fd["ty"][0] == "message" else fd["ty"][1]
            keep_zero = fd["pointer"] or not fd["omitempty"]
            w.append(
                f"        f({fd['tag']}, \"{fd['json']}\", {ty}, {fd['card']}, "
                f"{str(keep_zero).lower()}, {str(fd['inline']).lower()}),\n"
            )
        w.append("    ] },\n")
    w.append("];\n")
    with open(out, "w") as f:
        f.write("".join(w))
    print(f"{out}: {len(reachable)} messages", file=sys.stderr)


if __name__ == "__main__":
    main()
