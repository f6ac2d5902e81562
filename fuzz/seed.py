#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/.

The seeds are realistic requests: the kubectl JSON and protobuf bodies captured in
crates/apiserver/tests/fixtures/protobuf, the strategic merge patches kubectl sends
(shared/reference/kubectl-wire.md, sections 2.1 and 2.9), and Deployment, Pod and
Service manifests as JSON and YAML. Inputs with two parts are split on a 0xFF byte,
as apiserver::fuzzing expects. The fuzzer starts from these and `cargo fuzz cmin`
keeps what adds coverage in fuzz/corpus/ (see README.md).
"""

import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
FIXTURES = ROOT.parent / "crates/apiserver/tests/fixtures/protobuf"
SEP = b"\xff"


def j(v):
    return json.dumps(v, separators=(",", ":")).encode()


def yaml(v, indent=0):
    """A small YAML writer: enough for manifests, no dependency."""
    pad = "  " * indent
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{k}:")
                out.append(yaml(x, indent + 1))
            else:
                out.append(f"{pad}{k}: {json.dumps(x)}")
    else:
        for x in v:
            if isinstance(x, dict) and x:
                inner = yaml(x, indent + 1).splitlines()
                out.append(f"{pad}- {inner[0].strip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {json.dumps(x)}")
    return "\n".join(out)


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.1"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    },
                    {"name": "side", "image": "busybox", "command": ["sleep", "3600"], "args": ["-v"]},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    },
}

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}, "finalizers": ["a/b"]},
    "spec": {
        "nodeName": "n1",
        "restartPolicy": "Always",
        "containers": [
            {
                "name": "nginx",
                "image": "nginx",
                "ports": [{"containerPort": 80, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            }
        ],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
    },
    "status": {"phase": "Running", "podIP": "10.0.0.5", "conditions": [{"type": "Ready", "status": "True"}]},
}

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "web"},
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ipFamilies": ["IPv4"],
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
    },
}

MANIFESTS = [DEPLOYMENT, POD, SERVICE]

# What kubectl apply (client-side) and kubectl edit/patch send (section 2.1).
SMP = [
    {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": j(DEPLOYMENT).decode() + "\n"}},
        "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}},
    },
    {"spec": {"template": {"spec": {"containers": [{"env": None, "name": "nginx"}, {"$patch": "delete", "name": "side"}]}}}},
    {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "$deleteFromPrimitiveList/args": ["-v"]}]}}}},
    {"spec": {"template": {"spec": {"volumes": [{"$patch": "replace"}, {"name": "x", "hostPath": {"path": "/x"}}]}}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 443}], "$setElementOrder/ports": [{"containerPort": 443}, {"containerPort": 80}]}]}}}},
    {"metadata": {"$patch": "replace", "name": "web"}},
    {"spec": {"unschedulable": True}},
    {"metadata": {"finalizers": ["c/d"], "$deleteFromPrimitiveList/finalizers": ["a/b"]}},
    {"spec": {"ports": [{"port": 443, "name": "https"}, {"port": 53, "$patch": "delete"}], "$setElementOrder/ports": [{"port": 443}, {"port": 80}]}},
    {"spec": {"replicas": 3}},
]

# kubectl rollout undo (section 2.9), and the other operations.
JSON_PATCHES = [
    [
        {"op": "replace", "path": "/spec/template", "value": {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}},
    ],
    [{"op": "add", "path": "/metadata/labels/a~1b", "value": "x"}, {"op": "remove", "path": "/metadata/labels/app"}],
    [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c", "image": "i"}}],
    [{"op": "move", "from": "/spec/replicas", "path": "/spec/x"}, {"op": "copy", "from": "/metadata", "path": "/spec/m"}],
    [{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 5}],
    [{"op": "add", "path": "/spec/template/spec/containers/0/env/1", "value": {"name": "C"}}],
    [{"op": "remove", "path": "/spec/template/spec/containers/1"}, {"op": "add", "path": "", "value": {}}],
    [{"op": "bogus", "path": "/x"}, {"op": "add", "path": "/~0~1"}],
]

MERGE_PATCHES = [
    {"metadata": {"labels": {"app": None, "new": "1"}}},
    {"spec": {"replicas": None, "template": {"spec": {"containers": [{"name": "x"}]}}}},
    {"spec": None},
    {"a": {"b": {"c": None}}},
]


def fixtures(suffix):
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*" + suffix))]


def managed_live():
    """A Deployment as the server stores it after a kubectl server-side apply and an edit."""
    live = json.loads(json.dumps(DEPLOYMENT))
    live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": j(DEPLOYMENT).decode()}
    live["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}, "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}},
                    },
                },
            },
        },
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:01Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:tolerations": {}, "f:volumes": {'k:{"name":"data"}': {".": {}}}}}}},
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "subresource": "status",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:replicas": {}, "f:conditions": {'k:{"type":"Available"}': {".": {}}}}},
        },
    ]
    live["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    return live


def seeds():
    out = {t: [] for t in ["body", "protobuf", "patch_json", "patch_merge", "patch_strategic", "apply", "selectors"]}
    out["body"] += fixtures(".json") + fixtures(".pb")
    out["body"] += [j(m) for m in MANIFESTS] + [yaml(m).encode() for m in MANIFESTS]
    changed = json.loads(json.dumps(DEPLOYMENT))
    changed["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    out["body"] += [j(changed) + SEP + j(DEPLOYMENT), j(POD) + SEP + j(POD), j(SERVICE) + SEP + j(SERVICE)]
    out["protobuf"] += fixtures(".pb")

    for m in MANIFESTS:
        out["patch_json"] += [j(m) + SEP + j(p) for p in JSON_PATCHES]
        out["patch_merge"] += [j(m) + SEP + j(p) for p in MERGE_PATCHES]
        out["patch_strategic"] += [j(m) + SEP + j(p) for p in SMP]

    live = managed_live()
    for m in MANIFESTS:
        out["apply"] += [SEP + yaml(m).encode(), SEP + j(m), j(m) + SEP + j(m)]
    changed = json.loads(json.dumps(DEPLOYMENT))
    changed["spec"]["replicas"] = 5
    del changed["spec"]["template"]["spec"]["containers"][1]
    out["apply"] += [j(live) + SEP + j(changed), j(live) + SEP + yaml(DEPLOYMENT).encode()]
    out["apply"].append(j(live) + SEP + j({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}))

    out["selectors"] += [
        s.encode()
        for s in [
            "app=web,tier!=db",
            "env in (prod, qa),!canary,tier notin (x),release",
            "a==b,c!=d,example.com/x=y-z_1.2",
            "metadata.name=web-0,metadata.namespace!=kube-system",
            "spec.nodeName=n1,status.phase=Running,a\\,b=c\\=d",
            "labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dx&limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJ3ZWItMVx1MDAwMCJ9",
            "watch=1&allowWatchBookmarks=true&resourceVersion=10&timeoutSeconds=300&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            "fieldManager=kubectl&fieldValidation=Strict&force=false&dryRun=All&propagationPolicy=Background&gracePeriodSeconds=0",
        ]
    ]
    out["selectors"].append(j({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db", "cache"]}, {"key": "x", "operator": "Exists"}]}))
    return out


def main():
    for target, inputs in seeds().items():
        d = ROOT / "seeds" / target
        d.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(inputs)} seeds")


if __name__ == "__main__":
    main()
