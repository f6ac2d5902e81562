//! Times the field manager on a realistic Deployment: `update` (run on every write)
//! for a create, a one-field change and a status write, and `apply` for a first
//! server-side apply, a re-apply that changes nothing, and one that changes the image.
//!
//! Run with `cargo bench -p apiserver --bench fieldmanager [-- NAME-FILTER]`; prints
//! operations per second.

mod common;

use api::schema::Schemas;
use apiserver::fieldmanager::{apply, update};
use common::time;
use serde_json::{Value, json};
use std::hint::black_box;

const ITERATIONS: u32 = 5_000;
const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:01:00Z";

/// The configuration a user applies.
fn config(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx", "image": image,
                            "ports": [{"containerPort": 80}, {"containerPort": 443}],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "info"},
                                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "conf", "mountPath": "/etc/nginx"}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 5}
                        },
                        {"name": "side", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "nginx-conf"}}]
                }
            }
        }
    })
}

/// The configuration as the server stores it after defaulting.
fn stored(image: &str) -> Value {
    let mut obj = config(image);
    let meta = &mut obj["metadata"];
    meta["uid"] = json!("6f1c0b9e-2c1d-4c59-9d0e-1b8f0d1e4a11");
    meta["resourceVersion"] = json!("1234");
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!(T0);
    let spec = &mut obj["spec"];
    spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    spec["revisionHistoryLimit"] = json!(10);
    spec["progressDeadlineSeconds"] = json!(600);
    let pod = &mut spec["template"]["spec"];
    pod["restartPolicy"] = json!("Always");
    pod["dnsPolicy"] = json!("ClusterFirst");
    pod["schedulerName"] = json!("default-scheduler");
    pod["terminationGracePeriodSeconds"] = json!(30);
    pod["securityContext"] = json!({});
    for c in pod["containers"].as_array_mut().unwrap() {
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["terminationMessagePolicy"] = json!("File");
    }
    obj
}

fn main() {
    let schema = Schemas::get().for_kind("apps", "v1", "Deployment").expect("Deployment schema");

    // A Deployment created by client-side apply, then scaled by another manager and
    // written by the controller's status updates: three managers, as in a real cluster.
    let mut created = stored("nginx:1.25");
    update(None, &mut created, "kubectl-client-side-apply", None, "apps/v1", T0, schema);
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    update(Some(&created), &mut scaled, "kubectl-scale", None, "apps/v1", T1, schema);
    let mut live = scaled.clone();
    live["status"] = json!({"observedGeneration": 1, "replicas": 5, "readyReplicas": 5, "availableReplicas": 5,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
    update(Some(&scaled), &mut live, "kube-controller-manager", Some("status"), "apps/v1", T1, schema);
    assert_eq!(live["metadata"]["managedFields"].as_array().map(Vec::len), Some(3), "three managers");

    let fresh = stored("nginx:1.25");
    time("update: create", ITERATIONS, || {
        let mut new = fresh.clone();
        update(None, black_box(&mut new), "kubectl-client-side-apply", None, "apps/v1", T1, schema);
        black_box(new);
    });

    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    time("update: change one field, 3 managers", ITERATIONS, || {
        let mut new = edited.clone();
        update(Some(black_box(&live)), &mut new, "kubectl-edit", None, "apps/v1", T1, schema);
        black_box(new);
    });

    let mut status = live.clone();
    status["status"]["readyReplicas"] = json!(4);
    time("update: status subresource", ITERATIONS, || {
        let mut new = status.clone();
        update(Some(black_box(&live)), &mut new, "kube-controller-manager", Some("status"), "apps/v1", T1, schema);
        black_box(new);
    });

    time("update: unchanged object", ITERATIONS, || {
        let mut new = live.clone();
        update(Some(black_box(&live)), &mut new, "kubectl-edit", None, "apps/v1", T1, schema);
        black_box(new);
    });

    let applied_config = config("nginx:1.25");
    time("apply: create", ITERATIONS, || {
        black_box(apply(None, black_box(&applied_config), "kubectl", false, schema, "apps/v1", T1).unwrap());
    });

    let mut ssa = apply(None, &applied_config, "kubectl", false, schema, "apps/v1", T0).expect("apply");
    ssa["metadata"]["uid"] = json!("6f1c0b9e-2c1d-4c59-9d0e-1b8f0d1e4a11");
    time("apply: same configuration again (no-op)", ITERATIONS, || {
        black_box(apply(Some(black_box(&ssa)), &applied_config, "kubectl", false, schema, "apps/v1", T1).unwrap());
    });

    let changed = config("nginx:1.26");
    let out = apply(Some(&ssa), &changed, "kubectl", false, schema, "apps/v1", T1).expect("apply");
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
    time("apply: change the image", ITERATIONS, || {
        black_box(apply(Some(black_box(&ssa)), &changed, "kubectl", false, schema, "apps/v1", T1).unwrap());
    });

    time("apply: over client-side apply (3 managers)", ITERATIONS, || {
        black_box(apply(Some(black_box(&live)), &changed, "kubectl", true, schema, "apps/v1", T1).unwrap());
    });
}
