//! Times the byte-level edits every watched change and every write's answer go
//! through (`apiserver::rawjson`), on a pod as the scheduler benchmark stores it:
//! a service-account volume, defaulted fields, a Running status and the managed
//! fields of three writers.
//!
//! Run with `cargo bench -p apiserver --bench rawjson`; prints operations per second
//! and the time of one.

mod common;

use api::schema::Schemas;
use apiserver::fieldmanager::update;
use apiserver::rawjson::{metadata_span, with_resource_version, without_managed_fields};
use common::time;
use serde_json::{Value, json};
use std::hint::black_box;

const ITERATIONS: u32 = 200_000;
const T0: &str = "2026-11-25T10:00:00Z";

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-4711", "namespace": "bench", "uid": "6f1c0b9e-2c1d-4c59-9d0e-1b8f0d1e4a11",
            "creationTimestamp": T0, "labels": {"app": "bench", "run": "scheduler"}},
        "spec": {
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}},
                "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "schedulerName": "default-scheduler",
            "securityContext": {}, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

fn main() {
    let schema = Schemas::get().for_kind("", "v1", "Pod").expect("Pod schema");
    let created = {
        let mut p = pod();
        update(None, &mut p, "bench", None, "v1", T0, schema);
        p
    };
    let mut bound = created.clone();
    bound["spec"]["nodeName"] = json!("sim-123");
    bound["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}]);
    update(Some(&created), &mut bound, "kube-scheduler", None, "v1", T0, schema);
    let mut running = bound.clone();
    running["status"]["phase"] = json!("Running");
    running["status"]["podIP"] = json!("10.42.0.17");
    running["status"]["containerStatuses"] = json!([{"name": "pause", "ready": true, "restartCount": 0,
        "image": "registry.k8s.io/pause:3.10", "imageID": "", "started": true, "state": {"running": {"startedAt": T0}}}]);
    update(Some(&bound), &mut running, "kubelet", Some("status"), "v1", T0, schema);
    let stored = serde_json::to_vec(&running).expect("serialises");
    println!("a stored pod of {} bytes", stored.len());

    time("with_resource_version", ITERATIONS, || {
        black_box(with_resource_version(black_box(&stored), 123_456));
    });
    time("metadata_span", ITERATIONS, || {
        black_box(metadata_span(black_box(&stored)));
    });
    time("without_managed_fields", ITERATIONS, || {
        black_box(without_managed_fields(black_box(&stored)));
    });
    time("parse whole (serde_json::Value), to compare", ITERATIONS, || {
        black_box(serde_json::from_slice::<Value>(black_box(&stored)).ok());
    });
}
