//! The garbage collector and the service account controller, driven by kubectl.
//!
//! Most owner chains are built by hand (ConfigMaps owning ConfigMaps, a ReplicaSet
//! with zero replicas owning hand-made pods its selector does not match), so no other
//! controller touches them; the last case deletes a real Deployment whose ReplicaSet
//! and pods run on `rudder sim` nodes. Each would pass against a real cluster too.

use crate::cluster::{Kubectl, Sim};
use crate::{Cluster, DEPLOYMENT, KUBECTL_VERSIONS};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get(k: &Kubectl, ns: &str, kind: &str, name: &str) -> Option<Value> {
    let out = k.run(&["get", kind, name, "-n", ns, "-o", "json"]);
    if !out.ok {
        assert!(out.stderr.contains("NotFound"), "get {kind}/{name}: {}", out.stderr);
        return None;
    }
    Some(serde_json::from_str(&out.stdout).unwrap())
}

fn uid(k: &Kubectl, ns: &str, kind: &str, name: &str) -> String {
    get(k, ns, kind, name).unwrap_or_else(|| panic!("{kind}/{name} missing"))["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
}

fn configmap(ns: &str, name: &str, owners: Vec<Value>, finalizers: &[&str]) -> String {
    let mut meta = json!({"name": name, "namespace": ns, "ownerReferences": owners});
    if !finalizers.is_empty() {
        meta["finalizers"] = json!(finalizers);
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}).to_string()
}

fn create(k: &Kubectl, manifest: &str) {
    k.ok_stdin(&["create", "-f", "-"], manifest);
}

fn owners_of(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| a.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn background_deletion_removes_dependents_of_that_uid_only() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("gc-bg-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        k.ok(&["create", "configmap", "owner", "-n", &ns]);
        k.ok(&["create", "configmap", "keeper", "-n", &ns]);
        let owner = uid(&k, &ns, "cm", "owner");
        let keeper = uid(&k, &ns, "cm", "keeper");
        for d in ["dep-1", "dep-2"] {
            create(&k, &configmap(&ns, d, vec![owner_ref("v1", "ConfigMap", "owner", &owner, false)], &[]));
        }
        // Two owners: losing one leaves it to the other, without the dead reference.
        let both = vec![
            owner_ref("v1", "ConfigMap", "owner", &owner, false),
            owner_ref("v1", "ConfigMap", "keeper", &keeper, false),
        ];
        create(&k, &configmap(&ns, "shared", both, &[]));
        // Names an owner called "owner" that exists, but by a uid no object has:
        // ownership is by uid, so this one is garbage at once.
        let stale = "00000000-0000-0000-0000-000000000001";
        create(&k, &configmap(&ns, "impostor", vec![owner_ref("v1", "ConfigMap", "owner", stale, false)], &[]));
        wait_for("the dependent of a missing uid to go", || get(&k, &ns, "cm", "impostor").is_none());
        assert!(get(&k, &ns, "cm", "dep-1").is_some(), "a living owner keeps its dependents");

        k.ok(&["delete", "configmap", "owner", "-n", &ns, "--timeout=60s"]);
        wait_for("dependents to go", || get(&k, &ns, "cm", "dep-1").is_none() && get(&k, &ns, "cm", "dep-2").is_none());
        wait_for("the dead reference to go", || {
            get(&k, &ns, "cm", "shared").is_some_and(|o| owners_of(&o) == ["keeper"])
        });

        // A new owner under the old name does not adopt what named the old uid.
        k.ok(&["create", "configmap", "owner", "-n", &ns]);
        create(&k, &configmap(&ns, "late", vec![owner_ref("v1", "ConfigMap", "owner", &owner, false)], &[]));
        wait_for("a dependent of the old uid to go", || get(&k, &ns, "cm", "late").is_none());
        assert!(get(&k, &ns, "cm", "owner").is_some());
        assert!(get(&k, &ns, "cm", "keeper").is_some());
    }
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("gc-fg-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        k.ok(&["create", "configmap", "root", "-n", &ns]);
        let root = uid(&k, &ns, "cm", "root");
        create(&k, &configmap(&ns, "mid", vec![owner_ref("v1", "ConfigMap", "root", &root, true)], &[]));
        let mid = uid(&k, &ns, "cm", "mid");
        // The leaf holds on with a finalizer of its own, so the chain stays visible.
        let leaf_owner = vec![owner_ref("v1", "ConfigMap", "mid", &mid, true)];
        create(&k, &configmap(&ns, "leaf", leaf_owner, &["example.com/hold"]));

        k.ok(&["delete", "configmap", "root", "-n", &ns, "--cascade=foreground", "--wait=false"]);
        wait_for("the leaf to be marked for deletion", || {
            get(&k, &ns, "cm", "leaf").is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
        });
        std::thread::sleep(Duration::from_secs(1));
        for name in ["root", "mid"] {
            let o = get(&k, &ns, "cm", name).unwrap_or_else(|| panic!("{name} went before its dependents"));
            assert!(o["metadata"]["deletionTimestamp"].is_string(), "{o}");
            assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]), "{o}");
        }

        k.ok(&["patch", "configmap", "leaf", "-n", &ns, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
        wait_for("the whole chain to go", || ["leaf", "mid", "root"].iter().all(|n| get(&k, &ns, "cm", n).is_none()));
    }
}

fn replicaset(ns: &str, name: &str) -> String {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": format!("{name}-managed")}},
            "template": {
                "metadata": {"labels": {"app": format!("{name}-managed")}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}
            }
        }
    })
    .to_string()
}

/// A pod owned by the ReplicaSet but outside its selector, so a ReplicaSet controller
/// neither adopts, releases nor deletes it.
fn pod(ns: &str, name: &str, owner: &str, owner_uid: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": format!("{owner}-hand-made")},
            "ownerReferences": [owner_ref("apps/v1", "ReplicaSet", owner, owner_uid, true)]
        },
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}
    })
    .to_string()
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("gc-orphan-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        for rs in ["keep", "drop"] {
            create(&k, &replicaset(&ns, rs));
            let rs_uid = uid(&k, &ns, "rs", rs);
            for i in 0..2 {
                create(&k, &pod(&ns, &format!("{rs}-{i}"), rs, &rs_uid));
            }
        }

        // kubectl waits for the ReplicaSet to be gone, which needs the finalizer dropped.
        k.ok(&["delete", "rs", "keep", "-n", &ns, "--cascade=orphan", "--timeout=60s"]);
        assert!(get(&k, &ns, "rs", "keep").is_none());
        for i in 0..2 {
            let p = get(&k, &ns, "pod", &format!("keep-{i}")).expect("orphaned pods stay");
            assert!(owners_of(&p).is_empty(), "{p}");
        }

        k.ok(&["delete", "rs", "drop", "-n", &ns, "--timeout=60s"]);
        wait_for("the background cascade to delete the pods", || {
            (0..2).all(|i| get(&k, &ns, "pod", &format!("drop-{i}")).is_none())
        });
        let left = k.ok(&["get", "pods", "-n", &ns, "-o", "name"]);
        assert_eq!(left.lines().collect::<Vec<_>>(), ["pod/keep-0", "pod/keep-1"]);
    }
}

#[test]
fn an_owner_in_another_namespace_is_not_an_owner() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    for ns in ["gc-home", "gc-away"] {
        k.ok(&["create", "namespace", ns]);
    }
    k.ok(&["create", "configmap", "owner", "-n", "gc-home"]);
    let owner = uid(&k, "gc-home", "cm", "owner");
    create(&k, &configmap("gc-away", "stray", vec![owner_ref("v1", "ConfigMap", "owner", &owner, false)], &[]));
    // Owner references are namespace-local: there is no such owner in gc-away.
    wait_for("the stray dependent to go", || get(&k, "gc-away", "cm", "stray").is_none());
    assert!(get(&k, "gc-home", "cm", "owner").is_some(), "the other namespace is left alone");
    wait_for("the warning event", || {
        let events = k.ok(&["get", "events", "-n", "gc-away", "-o", "json"]);
        let events: Value = serde_json::from_str(&events).unwrap();
        events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "OwnerRefInvalidNamespace"
                && e["type"] == "Warning"
                && e["involvedObject"]["name"] == "stray"
                && e["message"]
                    == format!(
                        "ownerRef [v1/ConfigMap, namespace: gc-away, name: owner, uid: {owner}] does not exist in namespace \"gc-away\""
                    )
        })
    });
}

#[test]
fn every_namespace_has_a_default_service_account_and_the_root_ca() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("sa-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        wait_for("the default service account", || {
            k.ok(&["get", "sa", "-n", &ns, "-o", "name"]).lines().any(|l| l == "serviceaccount/default")
        });
        let table = k.ok(&["get", "sa", "-n", &ns]);
        assert!(table.lines().any(|l| l.starts_with("default")), "{table}");

        let first = uid(&k, &ns, "sa", "default");
        k.ok(&["delete", "sa", "default", "-n", &ns]);
        wait_for("the default service account to come back", || {
            get(&k, &ns, "sa", "default").is_some_and(|sa| sa["metadata"]["uid"] != first.as_str())
        });
    }
    let k = c.kubectl("1.33");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_for("service accounts in the built-in namespaces", || get(&k, ns, "sa", "default").is_some());
    }

    // The root CA publisher: the cluster CA in every namespace, put back when edited.
    let ca = std::fs::read_to_string(c.dir.path().join("tls/ca.crt")).unwrap();
    k.ok(&["create", "namespace", "ca-check"]);
    let published = || get(&k, "ca-check", "configmap", "kube-root-ca.crt");
    wait_for("kube-root-ca.crt", || published().is_some_and(|cm| cm["data"]["ca.crt"] == ca.as_str()));
    k.ok(&["patch", "configmap", "kube-root-ca.crt", "-n", "ca-check", "-p", r#"{"data":{"ca.crt":"x","extra":"y"}}"#]);
    wait_for("kube-root-ca.crt to be restored", || {
        published().is_some_and(|cm| cm["data"]["ca.crt"] == ca.as_str() && cm["data"].get("extra").is_none())
    });
}

fn items(k: &Kubectl, ns: &str, kind: &str) -> Vec<Value> {
    let out: Value = serde_json::from_str(&k.ok(&["get", kind, "-n", ns, "-o", "json"])).unwrap();
    out["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn deleting_a_deployment_cascades_as_kubectl_asks() {
    let c = Cluster::start();
    let _sim = Sim::start_ready(&c, 2, "gc");
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        for cascade in ["background", "foreground", "orphan"] {
            let ns = format!("gc-{cascade}-{}", v.replace('.', "-"));
            k.ok(&["create", "namespace", &ns]);
            k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], DEPLOYMENT);
            k.ok(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=60s"]);
            let rs = items(&k, &ns, "rs");
            assert_eq!(rs.len(), 1, "{rs:?}");
            let rs_name = rs[0]["metadata"]["name"].as_str().unwrap().to_string();
            assert_eq!(owners_of(&rs[0]), ["web"]);

            let flag = format!("--cascade={cascade}");
            k.ok(&["delete", "deployment", "web", "-n", &ns, &flag, "--timeout=60s"]);
            match cascade {
                "background" => wait_for("the ReplicaSet and its pods to go", || {
                    items(&k, &ns, "rs").is_empty() && items(&k, &ns, "pods").is_empty()
                }),
                "foreground" => {
                    // kubectl returned once the Deployment was gone, which waited for
                    // the ReplicaSet, which waited for its pods.
                    assert!(items(&k, &ns, "rs").is_empty());
                    assert!(items(&k, &ns, "pods").is_empty());
                }
                _ => {
                    // As in Kubernetes: the ReplicaSet stays, without its owner; the pods
                    // stay too, still owned by the ReplicaSet, which still exists.
                    std::thread::sleep(Duration::from_secs(1));
                    let rs = get(&k, &ns, "rs", &rs_name).expect("the ReplicaSet stays");
                    assert!(owners_of(&rs).is_empty(), "{rs}");
                    let pods = items(&k, &ns, "pods");
                    assert_eq!(pods.len(), 2);
                    assert!(pods.iter().all(|p| owners_of(p) == [rs_name.clone()]), "{pods:?}");
                }
            }
        }
    }
}
