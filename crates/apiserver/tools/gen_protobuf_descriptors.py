#!/usr/bin/env python3
"""Generate crates/apiserver/src/decode/descriptors.rs from upstream Kubernetes sources.

The protobuf decoder needs, for every message reachable from the kinds kubectl writes,
each field's number, JSON name and type, plus two facts the .proto files do not carry
and the Go types do:

* whether a field is `json:",inline"` (Volume.volumeSource, Probe.handler,
  SecretKeySelector.localObjectReference, ...): its fields belong to the parent
  object in JSON;
* whether a scalar is a Go value with `omitempty` (gogo protobuf writes every
  non-pointer field, even "" / 0 / false, while encoding/json drops those) or a
  pointer / a field without `omitempty` (a present zero is part of the object, as
  `replicas: 0`).

So the script reads both `generated.proto` and the Go files beside it. Point it at
checkouts (or `git archive` extracts) of k8s.io/api and k8s.io/apimachinery at the
same Kubernetes release:

    git -C <api mirror> archive v0.33.1 | tar -x -C /tmp/api
    git -C <apimachinery mirror> archive v0.33.1 | tar -x -C /tmp/apimachinery
    python3 crates/apiserver/tools/gen_protobuf_descriptors.py \
        --api /tmp/api --apimachinery /tmp/apimachinery --release v0.33.1 \
        > crates/apiserver/src/decode/descriptors.rs

Nothing from those repositories is copied into ours: the output is a table of
numbers, names and type tags.
"""

import argparse
import os
import re
import sys

# Proto package -> (which checkout, directory inside it).
PACKAGES = {
    "k8s.io.api.core.v1": ("api", "core/v1"),
    "k8s.io.api.apps.v1": ("api", "apps/v1"),
    "k8s.io.api.batch.v1": ("api", "batch/v1"),
    "k8s.io.api.policy.v1": ("api", "policy/v1"),
    "k8s.io.api.coordination.v1": ("api", "coordination/v1"),
    "k8s.io.api.discovery.v1": ("api", "discovery/v1"),
    "k8s.io.api.events.v1": ("api", "events/v1"),
    "k8s.io.api.autoscaling.v1": ("api", "autoscaling/v1"),
    "k8s.io.api.scheduling.v1": ("api", "scheduling/v1"),
    "k8s.io.apimachinery.pkg.apis.meta.v1": ("apimachinery", "pkg/apis/meta/v1"),
    "k8s.io.apimachinery.pkg.api.resource": ("apimachinery", "pkg/api/resource"),
    "k8s.io.apimachinery.pkg.util.intstr": ("apimachinery", "pkg/util/intstr"),
    "k8s.io.apimachinery.pkg.runtime": ("apimachinery", "pkg/runtime"),
    "k8s.io.apimachinery.pkg.runtime.schema": ("apimachinery", "pkg/runtime/schema"),
}

# The kinds a client may send: every kind in api::registry::RESOURCES plus the
# subresource bodies and DeleteOptions ("*": any group version, as every group
# registers it).
ROOTS = [
    ("v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap"),
    ("v1", "Endpoints", "k8s.io.api.core.v1.Endpoints"),
    ("v1", "Event", "k8s.io.api.core.v1.Event"),
    ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
    ("v1", "Node", "k8s.io.api.core.v1.Node"),
    ("v1", "Pod", "k8s.io.api.core.v1.Pod"),
    ("v1", "Secret", "k8s.io.api.core.v1.Secret"),
    ("v1", "ServiceAccount", "k8s.io.api.core.v1.ServiceAccount"),
    ("v1", "Service", "k8s.io.api.core.v1.Service"),
    ("v1", "Binding", "k8s.io.api.core.v1.Binding"),
    ("apps/v1", "ControllerRevision", "k8s.io.api.apps.v1.ControllerRevision"),
    ("apps/v1", "DaemonSet", "k8s.io.api.apps.v1.DaemonSet"),
    ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "k8s.io.api.apps.v1.ReplicaSet"),
    ("apps/v1", "StatefulSet", "k8s.io.api.apps.v1.StatefulSet"),
    ("batch/v1", "CronJob", "k8s.io.api.batch.v1.CronJob"),
    ("batch/v1", "Job", "k8s.io.api.batch.v1.Job"),
    ("coordination.k8s.io/v1", "Lease", "k8s.io.api.coordination.v1.Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice", "k8s.io.api.discovery.v1.EndpointSlice"),
    ("events.k8s.io/v1", "Event", "k8s.io.api.events.v1.Event"),
    ("policy/v1", "PodDisruptionBudget", "k8s.io.api.policy.v1.PodDisruptionBudget"),
    ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
    ("scheduling.k8s.io/v1", "PriorityClass", "k8s.io.api.scheduling.v1.PriorityClass"),
    ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
    ("*", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
]

# apimachinery types whose JSON form is not their protobuf shape; the decoder
# renders each by hand.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
}

SCALARS = {
    "string": "String",
    "int32": "Int32",
    "int64": "Int64",
    "bool": "Bool",
    "bytes": "Bytes",
    "double": "Double",
}


def fail(msg):
    sys.exit("gen_protobuf_descriptors: " + msg)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


FIELD_RE = re.compile(
    r"^(optional|repeated|required)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;$"
)


def parse_proto(path):
    """Returns (package, {message: [(label, type, key, value, name, number)]})."""
    text = strip_comments(open(path, encoding="utf-8").read())
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    messages = {}
    for m in re.finditer(r"^message\s+(\w+)\s*\{(.*?)^\}", text, re.M | re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for line in body.split(";"):
            line = " ".join(line.split())
            if not line:
                continue
            if line.startswith(("message ", "enum ", "oneof ", "reserved ", "extensions ")):
                fail(f"{path}: {name}: unsupported construct {line!r}")
            fm = FIELD_RE.match(line + ";")
            if not fm:
                fail(f"{path}: {name}: cannot parse {line!r}")
            label, typ, key, value, fname, number, opts = fm.groups()
            if opts and "packed" in opts:
                fail(f"{path}: {name}.{fname}: packed option not expected")
            fields.append((label or "optional", typ, key, value, fname, int(number)))
        messages[name] = fields
    return package, messages


GO_STRUCT_RE = re.compile(r"^type\s+(\w+)\s+struct\s*\{\n(.*?)^\}", re.M | re.S)
GO_FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`\s*$")


def parse_go(directory):
    """Returns {struct: {proto number: (json name, pointer, omitempty, inline)}}."""
    structs = {}
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".go") or fname.endswith("_test.go") or fname.startswith(("zz_", "generated")):
            continue
        text = open(os.path.join(directory, fname), encoding="utf-8").read()
        for m in GO_STRUCT_RE.finditer(text):
            fields = {}
            for line in m.group(2).splitlines():
                line = re.sub(r"//.*$", "", line) if "`" not in line else line
                fm = GO_FIELD_RE.match(line)
                if not fm:
                    continue
                _, gotype, tags = fm.groups()
                pm = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tags)
                if not pm:
                    continue
                jm = re.search(r'json:"([^"]*)"', tags)
                parts = jm.group(1).split(",") if jm else [""]
                fields[int(pm.group(1))] = (
                    parts[0],
                    gotype.startswith("*"),
                    "omitempty" in parts[1:],
                    "inline" in parts[1:],
                )
            structs[m.group(1)] = fields
    return structs


def resolve(typ, package):
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        return typ[1:]
    return package + "." + typ


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", required=True, help="k8s.io/api checkout")
    ap.add_argument("--apimachinery", required=True, help="k8s.io/apimachinery checkout")
    ap.add_argument("--release", required=True, help="the tag both checkouts are at, for the header")
    args = ap.parse_args()
    roots = {"api": args.api, "apimachinery": args.apimachinery}

    messages = {}  # full name -> (package, fields)
    go = {}  # package -> structs
    for package, (repo, sub) in PACKAGES.items():
        directory = os.path.join(roots[repo], sub)
        pkg, msgs = parse_proto(os.path.join(directory, "generated.proto"))
        if pkg != package:
            fail(f"{directory}: package {pkg}, expected {package}")
        for name, fields in msgs.items():
            messages[f"{package}.{name}"] = (package, fields)
        go[package] = parse_go(directory)

    # Walk what the roots reach, in a stable order.
    order, seen = [], set()
    stack = [full for _, _, full in reversed(ROOTS)]
    while stack:
        full = stack.pop()
        if full in seen or full in SPECIAL:
            continue
        if full not in messages:
            fail(f"message {full} not found")
        seen.add(full)
        order.append(full)
        package, fields = messages[full]
        for _, typ, key, value, _, _ in reversed(fields):
            for t in (value,) if key else (typ,):
                r = resolve(t, package)
                if r not in SCALARS:
                    stack.append(r)
    order.sort()
    index = {full: i for i, full in enumerate(order)}

    def kind(t, package):
        r = resolve(t, package)
        if r in SCALARS:
            return SCALARS[r]
        if r in SPECIAL:
            return SPECIAL[r]
        return f"M({index[r]})"

    notes = []
    out = []
    out.append("// @generated by crates/apiserver/tools/gen_protobuf_descriptors.py from the")
    out.append(f"// generated.proto and Go types of k8s.io/api and k8s.io/apimachinery {args.release}.")
    out.append("// Do not edit; rerun the script (its docstring says how).")
    out.append("")
    out.append("use super::Kind::*;")
    out.append("use super::Label::*;")
    out.append("use super::{Message, f};")
    out.append("")
    out.append("/// Every message reachable from [`ROOTS`], sorted by name; `M(i)` refers to `MESSAGES[i]`.")
    out.append("#[rustfmt::skip]")
    out.append(f"pub(super) static MESSAGES: [Message; {len(order)}] = [")
    for full in order:
        package, fields = messages[full]
        short = full.rsplit(".", 1)[1]
        structs = go[package]
        if short not in structs:
            fail(f"no Go struct for {full}")
        gofields = structs[short]
        lines = []
        for label, typ, key, value, fname, number in sorted(fields, key=lambda x: x[5]):
            if number not in gofields:
                fail(f"{full}.{fname} ({number}) has no Go field")
            json_name, pointer, omitempty, inline = gofields[number]
            if key:
                if resolve(key, package) != "string":
                    fail(f"{full}.{fname}: map key {key} not supported")
                k = kind(value, package)
                lab = "Map"
            else:
                k = kind(typ, package)
                scalar = resolve(typ, package) in SCALARS
                if label == "repeated":
                    lab = "Repeated"
                elif inline:
                    if scalar or k in SPECIAL.values():
                        fail(f"{full}.{fname}: inline of a non-message")
                    lab = "Inline"
                elif scalar and not pointer and omitempty:
                    lab = "OmitZero"
                else:
                    lab = "Optional"
            if inline:
                json_name = fname  # unused: the fields go to the parent
            elif json_name != fname:
                notes.append(f"{full}.{fname}: JSON name {json_name!r}")
            lines.append(f'f({number}, "{json_name}", {k}, {lab})')
        body = ", ".join(lines)
        out.append(f"    // {index[full]}")
        out.append(f'    Message {{ name: "{full}", fields: &[{body}] }},')
    out.append("];")
    out.append("")
    out.append("/// The kinds a body may carry: (apiVersion, kind, message); `*` matches any apiVersion.")
    out.append("#[rustfmt::skip]")
    out.append("pub(super) static ROOTS: &[(&str, &str, u16)] = &[")
    for api_version, k, full in ROOTS:
        out.append(f'    ("{api_version}", "{k}", {index[full]}),')
    out.append("];")
    for note in notes:
        print("note: " + note, file=sys.stderr)
    print(f"{len(order)} messages", file=sys.stderr)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
