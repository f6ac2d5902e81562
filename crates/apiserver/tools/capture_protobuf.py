#!/usr/bin/env python3
"""Capture the request bodies real kubectl binaries send for `kubectl create ...`.

kubectl 1.32+ writes typed objects as Kubernetes protobuf (`k8s\\0` + runtime.Unknown);
kubectl 1.31 writes the same objects as JSON. This script runs a throwaway HTTPS API
server that answers just enough for `create` to work (/version, aggregated discovery
on /api and /apis, 201 on POST), runs each scenario with both binaries and stores

    OUT/<scenario>.pb      the body kubectl 1.33 sent (protobuf)
    OUT/<scenario>.json    the body kubectl 1.31 sent (JSON): what decoding the .pb must give

Usage:
    python3 crates/apiserver/tools/capture_protobuf.py --out crates/apiserver/tests/fixtures/protobuf
    python3 crates/apiserver/tools/capture_protobuf.py --serve   # server only; prints the kubeconfig

Needs `openssl` for the self-signed certificate and the versioned kubectl binaries of
the Google Cloud SDK.
"""

import argparse
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading

KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"
PROTOBUF_KUBECTL = "kubectl.1.33"
JSON_KUBECTL = "kubectl.1.31"
TOKEN = "capture-token"
DISCOVERY_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# group -> [(plural, singular, kind, namespaced, short names)]
RESOURCES = {
    "": [
        ("namespaces", "namespace", "Namespace", False, ["ns"]),
        ("configmaps", "configmap", "ConfigMap", True, ["cm"]),
        ("secrets", "secret", "Secret", True, []),
        ("services", "service", "Service", True, ["svc"]),
        ("serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
    ],
    "apps": [("deployments", "deployment", "Deployment", True, ["deploy"])],
    "batch": [
        ("jobs", "job", "Job", True, []),
        ("cronjobs", "cronjob", "CronJob", True, ["cj"]),
    ],
    "policy": [("poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, ["pdb"])],
}

# (scenario name, kubectl arguments after `create`); {dir} is the scratch directory.
SCENARIOS = [
    ("namespace", ["namespace", "foo"]),
    ("configmap", ["configmap", "cfg", "--from-literal=a=1", "--from-literal=greeting=hello world"]),
    ("secret-generic", ["secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=password=s3cr3t"]),
    ("secret-tls", ["secret", "tls", "tls", "--cert={dir}/tls.crt", "--key={dir}/tls.key"]),
    (
        "secret-docker-registry",
        [
            "secret", "docker-registry", "regcred", "--docker-server=registry.example.com",
            "--docker-username=bob", "--docker-password=pw", "--docker-email=bob@example.com",
        ],
    ),
    ("deployment", ["deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80"]),
    ("deployment-zero-replicas", ["deployment", "idle", "--image=busybox", "--replicas=0"]),
    ("service-clusterip", ["service", "clusterip", "web", "--tcp=80:8080", "--tcp=443"]),
    ("service-nodeport", ["service", "nodeport", "np", "--tcp=80:http", "--node-port=30080"]),
    ("serviceaccount", ["serviceaccount", "robot"]),
    ("job", ["job", "once", "--image=busybox", "--", "echo", "hi"]),
    ("cronjob", ["cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"]),
    ("poddisruptionbudget", ["poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=2"]),
    ("poddisruptionbudget-percent", ["poddisruptionbudget", "pdbp", "--selector=app=web", "--max-unavailable=25%"]),
]


def discovery(groups):
    items = []
    for group in groups:
        resources = []
        for plural, singular, kind, namespaced, short in RESOURCES[group]:
            resources.append({
                "resource": plural,
                "singularResource": singular,
                "scope": "Namespaced" if namespaced else "Cluster",
                "responseKind": {"group": group, "version": "v1", "kind": kind},
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": short,
            })
        items.append({
            "metadata": {"name": group},
            "versions": [{"version": "v1", "freshness": "Current", "resources": resources}],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(data):
    """Yields (number, wire type, value) of one protobuf message; enough for the echo."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        wire = key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            n, i = varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield key >> 3, wire, value


def echo(body, content_type):
    """A minimal object for the 201 answer: apiVersion, kind and metadata.name."""
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        if not body.startswith(b"k8s\0"):
            raise ValueError("no protobuf magic")
        obj = {"metadata": {}}
        for number, _, value in fields(body[4:]):
            if number == 1:
                for n, _, v in fields(value):
                    obj["apiVersion" if n == 1 else "kind"] = v.decode()
            elif number == 2:
                for n, _, v in fields(value):
                    if n == 1:  # ObjectMeta
                        for mn, _, mv in fields(v):
                            if mn in (1, 3) and mv:
                                obj["metadata"]["name" if mn == 1 else "namespace"] = mv.decode()
        return obj
    src = json.loads(body)
    meta = {k: v for k, v in src.get("metadata", {}).items() if k in ("name", "namespace")}
    return {"apiVersion": src.get("apiVersion"), "kind": src.get("kind"), "metadata": meta}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    captured = []  # (path, content type, body)

    def log_message(self, fmt, *args):
        print("capture: " + fmt % args, file=sys.stderr)

    def answer(self, code, obj, content_type="application/json"):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.answer(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401})
        return False

    def do_GET(self):
        if not self.authorized():
            return
        path = self.path.split("?")[0]
        if path == "/version":
            self.answer(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.1", "platform": "linux/amd64"})
        elif path == "/api":
            self.answer(200, discovery([""]), DISCOVERY_TYPE)
        elif path == "/apis":
            self.answer(200, discovery([g for g in RESOURCES if g]), DISCOVERY_TYPE)
        else:
            self.answer(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def do_POST(self):
        if not self.authorized():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "")
        Handler.captured.append((self.path, content_type, body))
        try:
            obj = echo(body, content_type)
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            self.answer(400, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": str(e), "code": 400})
            return
        self.answer(201, obj)


def start(scratch):
    cert, key = os.path.join(scratch, "server.crt"), os.path.join(scratch, "server.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    kubeconfig = os.path.join(scratch, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: capture
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: capture
  user:
    token: {TOKEN}
contexts:
- name: capture
  context: {{cluster: capture, user: capture, namespace: default}}
current-context: capture
""")
    return server, kubeconfig


def capture(out, scratch, kubeconfig):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=tls.example.com",
         "-keyout", os.path.join(scratch, "tls.key"), "-out", os.path.join(scratch, "tls.crt")],
        check=True, capture_output=True,
    )
    os.makedirs(out, exist_ok=True)
    failures = 0
    for name, args in SCENARIOS:
        args = [a.replace("{dir}", scratch) for a in args]
        for binary, suffix in ((PROTOBUF_KUBECTL, ".pb"), (JSON_KUBECTL, ".json")):
            Handler.captured.clear()
            cmd = [os.path.join(KUBECTL_DIR, binary), "--kubeconfig", kubeconfig,
                   "--cache-dir", os.path.join(scratch, "cache-" + binary), "create"] + args
            run = subprocess.run(cmd, capture_output=True, text=True)
            posts = list(Handler.captured)
            if run.returncode != 0 or len(posts) != 1:
                print(f"{name} ({binary}): exit {run.returncode}, {len(posts)} POSTs: {run.stderr.strip()}", file=sys.stderr)
                failures += 1
                continue
            path, content_type, body = posts[0]
            print(f"{name} ({binary}): POST {path} [{content_type}] {len(body)} bytes", file=sys.stderr)
            if suffix == ".pb":
                if not content_type.startswith("application/vnd.kubernetes.protobuf"):
                    print(f"{name}: expected protobuf, got {content_type}", file=sys.stderr)
                    failures += 1
                    continue
                data = body
            else:
                data = (json.dumps(json.loads(body), indent=2, sort_keys=True) + "\n").encode()
            with open(os.path.join(out, name + suffix), "wb") as f:
                f.write(data)
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="fixture directory to write")
    ap.add_argument("--serve", action="store_true", help="only run the server until interrupted")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="capture-protobuf-") as scratch:
        server, kubeconfig = start(scratch)
        if args.serve:
            print(f"kubeconfig: {kubeconfig}", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
            return 0
        if not args.out:
            ap.error("--out or --serve is required")
        failures = capture(args.out, scratch, kubeconfig)
        server.shutdown()
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
