//! Times the patch engines on what kubectl sends most: the strategic merge patch of a
//! client-side `kubectl apply` to a Deployment (kubectl-wire.md §2.1).
//!
//! Run with `cargo bench -p apiserver --bench patch`; prints operations per second.

mod common;

use api::schema::Schemas;
use apiserver::patch::{json, merge, strategic};
use common::time;
use serde_json::{Value, json};
use std::hint::black_box;

const ITERATIONS: u32 = 10_000;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "6f1c0b9e-2c1d-4c59-9d0e-1b8f0d1e4a11",
            "resourceVersion": "1234", "generation": 3,
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "3"}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx", "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "info"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent"
                        },
                        {"name": "side", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler"
                }
            }
        }
    })
}

fn main() {
    let original = deployment();
    let schema = Schemas::get().for_kind("apps", "v1", "Deployment");
    let apply_patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx", "env": null}, {"$patch": "delete", "name": "side"}]
        }}}
    });
    // Check once that the patch does what it should, so the timing measures real work.
    let patched = strategic::apply(&original, &apply_patch, schema).expect("kubectl's patch applies");
    assert_eq!(patched["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");

    time("strategic merge patch (kubectl apply)", ITERATIONS, || {
        black_box(strategic::apply(black_box(&original), black_box(&apply_patch), schema).unwrap());
    });
    let scale = json!({"spec": {"replicas": 5}});
    time("json merge patch (kubectl scale)", ITERATIONS, || {
        black_box(merge::apply(black_box(&original), black_box(&scale)));
    });
    let undo = json!([
        {"op": "replace", "path": "/spec/template", "value": original["spec"]["template"].clone()},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "4"}}
    ]);
    time("json patch (kubectl rollout undo)", ITERATIONS, || {
        black_box(json::apply(black_box(&original), black_box(&undo)).unwrap());
    });
}
