//! Node lifecycle, node IPAM and disruption budgets, with `rudder sim` nodes and the
//! real kubectl: `drain` blocked by a PodDisruptionBudget and then let through,
//! cordon and uncordon, two evictions racing for the last disruption, a lost node's
//! pods evicted and replaced elsewhere within 15 s, a stalled server that loses no
//! node, and distinct pod CIDRs.
//!
//! Pods are bound with `spec.nodeName` and owned by a ReplicaSet object the test
//! creates (drain wants a controller); they are created first and the ReplicaSet
//! after, so that a ReplicaSet controller, once there, adopts them instead of making
//! its own.

use crate::cluster::eventually;
use crate::cluster::{Kubectl, Sim};
use crate::{Cluster, KUBECTL_VERSIONS};
use std::process::Command;
use std::time::{Duration, Instant};

/// `kubectl get nodes` STATUS column by node name.
fn node_status(k: &Kubectl, node: &str) -> String {
    let out = k.run(&["get", "node", node, "--no-headers"]);
    out.stdout.split_whitespace().nth(1).unwrap_or_default().to_string()
}

fn wait_nodes_ready(k: &Kubectl, nodes: &[String]) {
    for n in nodes {
        eventually(Duration::from_secs(20), &format!("{n} Ready"), || (node_status(k, n) == "Ready").then_some(()));
    }
}

fn jsonpath(k: &Kubectl, args: &[&str], path: &str) -> String {
    let expr = format!("jsonpath={path}");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", &expr]);
    k.run(&all).stdout
}

fn pod_manifest(name: &str, app: &str, node: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\nspec:\n  nodeName: {node}\n{extra_spec}  containers: [{{name: c, image: nginx:1.25}}]\n"
    )
}

/// Creates the pods, then a ReplicaSet selecting them, and makes it their controller.
fn owned_pods(k: &Kubectl, app: &str, pods: &[(&str, &str)]) {
    for (name, node) in pods {
        k.ok_stdin(&["apply", "-f", "-"], &pod_manifest(name, app, node, ""));
    }
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {app}}}\nspec:\n  replicas: {n}\n  selector:\n    matchLabels: {{app: {app}}}\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      containers: [{{name: c, image: nginx:1.25}}]\n",
        n = pods.len()
    );
    k.ok_stdin(&["apply", "-f", "-"], &rs);
    let uid = k.ok(&["get", "rs", app, "-o", "jsonpath={.metadata.uid}"]);
    let owner = format!(
        r#"{{"metadata":{{"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{app}","uid":"{uid}","controller":true,"blockOwnerDeletion":true}}]}}}}"#
    );
    for (name, _) in pods {
        k.ok(&["patch", "pod", name, "--type=merge", "-p", &owner]);
    }
}

fn wait_running(k: &Kubectl, pods: &[&str]) {
    for p in pods {
        eventually(Duration::from_secs(20), &format!("{p} Running and ready"), || {
            let ready = jsonpath(k, &["get", "pod", p], "{.status.conditions[?(@.type==\"Ready\")].status}");
            (ready == "True").then_some(())
        });
    }
}

fn pdb_status(k: &Kubectl, name: &str) -> serde_json::Value {
    let out = k.ok(&["get", "pdb", name, "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["status"].clone()
}

/// POSTs an eviction; returns the HTTP code and the body.
fn evict(c: &Cluster, pod: &str) -> (String, String) {
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    let url = format!("{}/api/v1/namespaces/default/pods/{pod}/eviction", c.url());
    let out =
        c.curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", &body, "-w", "\n%{http_code}", &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

#[test]
fn drain_waits_for_the_disruption_budget_and_cordon_marks_the_node() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let _sim = Sim::start(&c, 2, "d");
    wait_nodes_ready(&k, &["d-0".into(), "d-1".into()]);
    owned_pods(&k, "web", &[("web-0", "d-0"), ("web-1", "d-0"), ("web-2", "d-1")]);
    wait_running(&k, &["web-0", "web-1", "web-2"]);

    // Cordon and uncordon: the table says so, and the controller taints the node.
    for v in KUBECTL_VERSIONS {
        let kv = c.kubectl(v);
        assert!(kv.ok(&["cordon", "d-1"]).contains("node/d-1 cordoned"));
        eventually(Duration::from_secs(10), "the unschedulable taint", || {
            let taints = jsonpath(&kv, &["get", "node", "d-1"], "{.spec.taints[*].key}");
            (node_status(&kv, "d-1") == "Ready,SchedulingDisabled"
                && taints.contains("node.kubernetes.io/unschedulable"))
            .then_some(())
        });
        assert!(kv.ok(&["uncordon", "d-1"]).contains("node/d-1 uncordoned"));
        eventually(Duration::from_secs(10), "the taint to go", || {
            let taints = jsonpath(&kv, &["get", "node", "d-1"], "{.spec.taints}");
            (node_status(&kv, "d-1") == "Ready" && taints.is_empty()).then_some(())
        });
    }

    // A budget that needs every pod: nothing may go.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 3\n  selector:\n    matchLabels: {app: web}\n",
    );
    let status = eventually(Duration::from_secs(10), "the budget's status", || {
        let s = pdb_status(&k, "web");
        (s["observedGeneration"] == 1 && s["currentHealthy"] == 3).then_some(s)
    });
    assert_eq!(status["expectedPods"], 3, "{status}");
    assert_eq!(status["desiredHealthy"], 3, "{status}");
    assert_eq!(status["disruptionsAllowed"], 0, "{status}");
    let cond = &status["conditions"][0];
    assert_eq!((cond["type"].as_str(), cond["status"].as_str()), (Some("DisruptionAllowed"), Some("False")));
    assert_eq!(cond["reason"], "InsufficientPods");
    let table = k.ok(&["get", "pdb", "web"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "3", "N/A", "0"], "{table}");

    for v in KUBECTL_VERSIONS {
        let out = c.kubectl(v).run(&["drain", "d-0", "--timeout=7s"]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!out.ok, "drain must not get past the budget:\n{all}");
        assert!(all.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{all}");
        assert!(all.contains("will retry after 5s"), "{all}");
    }
    assert_eq!(node_status(&k, "d-0"), "Ready,SchedulingDisabled", "drain cordons first");
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]).lines().count(), 3);

    // One disruption allowed, two evictions at once: exactly one gets through, and the
    // budget records it.
    k.ok(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":2}}"#]);
    eventually(Duration::from_secs(10), "one disruption allowed", || {
        let s = pdb_status(&k, "web");
        (s["observedGeneration"] == 2 && s["disruptionsAllowed"] == 1).then_some(())
    });
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| evict(&c, "web-0"));
        let b = s.spawn(|| evict(&c, "web-1"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a.0.clone(), b.0.clone()];
    codes.sort();
    assert_eq!(codes, ["201", "429"], "{a:?} {b:?}");
    let refused = if a.0 == "429" { &a.1 } else { &b.1 };
    assert!(refused.contains("\"reason\":\"TooManyRequests\""), "{refused}");
    // Which words it gives depends on whether the disruption controller recounted the
    // budget (the granted pod no longer healthy) before the loser's retry read it.
    assert!(
        refused.contains("The disruption budget web does not allow evicting pods currently")
            || refused.contains("The disruption budget web needs 2 healthy pods and has 2 currently"),
        "{refused}"
    );
    let evicted = if a.0 == "201" { "web-0" } else { "web-1" };
    let remaining = if evicted == "web-0" { "web-1" } else { "web-0" };
    // The evicted pod is marked and goes (its node lets go of it).
    eventually(Duration::from_secs(15), "the evicted pod to go", || {
        k.run(&["get", "pod", evicted]).stderr.contains("NotFound").then_some(())
    });

    // A budget that lets one go: the drain finishes.
    k.ok(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":1}}"#]);
    let out = k.run(&["drain", "d-0", "--timeout=40s"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok, "{all}");
    assert!(all.contains(&format!("pod/{remaining} evicted")), "{all}");
    assert!(all.contains("node/d-0 drained"), "{all}");
    let left = k.ok(&["get", "pods", "-o", "wide", "--no-headers"]);
    assert!(!left.contains(" d-0 "), "{left}");
    assert!(left.contains("web-2"), "{left}");
}

/// The server's process, found by its data dir (unique to this test).
fn server_pid(c: &Cluster) -> String {
    let out = Command::new("pgrep")
        .args(["-f", &format!("rudder server .*--data-dir {}", c.data_dir().display())])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0].to_string()
}

#[test]
fn a_lost_nodes_pods_are_replaced_within_15s_and_a_stalled_server_loses_no_node() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let mut lost = Sim::start(&c, 2, "lost");
    let _kept = Sim::start(&c, 2, "kept");
    let all: Vec<String> = ["lost-0", "lost-1", "kept-0", "kept-1"].iter().map(|s| s.to_string()).collect();
    wait_nodes_ready(&k, &all);

    // Every node gets a pod network of its own from the cluster CIDR.
    let cidrs = eventually(Duration::from_secs(10), "pod CIDRs", || {
        let cidrs: Vec<String> = all.iter().map(|n| jsonpath(&k, &["get", "node", n], "{.spec.podCIDR}")).collect();
        cidrs.iter().all(|c| !c.is_empty()).then_some(cidrs)
    });
    let mut unique = cidrs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{cidrs:?}");
    for (n, cidr) in all.iter().zip(&cidrs) {
        assert!(cidr.starts_with("10.42.") && cidr.ends_with(".0/24"), "{n}: {cidr}");
        assert_eq!(jsonpath(&k, &["get", "node", n], "{.spec.podCIDRs[0]}"), *cidr);
    }

    owned_pods(&k, "app", &[("app-0", "lost-0"), ("app-1", "lost-1"), ("app-2", "kept-0")]);
    // A pod that tolerates an unreachable node for good stays there.
    let forever = "  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}]\n";
    k.ok_stdin(&["apply", "-f", "-"], &pod_manifest("stays", "other", "lost-0", forever));
    wait_running(&k, &["app-0", "app-1", "app-2", "stays"]);
    for v in KUBECTL_VERSIONS {
        let described = c.kubectl(v).ok(&["describe", "pod", "app-0"]);
        assert!(described.contains("node.kubernetes.io/not-ready:NoExecute op=Exists for 2s"), "{described}");
        assert!(described.contains("node.kubernetes.io/unreachable:NoExecute op=Exists for 2s"), "{described}");
        let stays = c.kubectl(v).ok(&["describe", "pod", "stays"]);
        assert!(stays.contains("node.kubernetes.io/unreachable:NoExecute op=Exists\n"), "{stays}");
        assert!(stays.contains("node.kubernetes.io/not-ready:NoExecute op=Exists for 2s"), "{stays}");
    }

    // The server stops for longer than the grace period: when it runs again, it must
    // not take the silence for lost nodes.
    let pid = server_pid(&c);
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_secs(12));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let watch_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < watch_until {
        let nodes = k.ok(&["get", "nodes", "--no-headers"]);
        assert!(!nodes.contains("NotReady"), "a stall must not lose nodes:\n{nodes}\n{}", c.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(k.ok(&["get", "pods", "--no-headers"]).lines().count(), 4);

    // Now one sim really dies.
    lost.kill();
    let killed = Instant::now();
    let mut not_ready_at = None;
    let mut evicted_at = None;
    while evicted_at.is_none() || not_ready_at.is_none() {
        let elapsed = killed.elapsed();
        assert!(elapsed < Duration::from_secs(20), "nodes or pods not handled after {elapsed:?}:\n{}", c.log());
        if not_ready_at.is_none() {
            let tainted = ["lost-0", "lost-1"].iter().all(|n| {
                node_status(&k, n) == "NotReady"
                    && jsonpath(&k, &["get", "node", n], "{.spec.taints[?(@.effect==\"NoExecute\")].key}")
                        == "node.kubernetes.io/unreachable"
            });
            if tainted {
                not_ready_at = Some(elapsed);
            }
        }
        if evicted_at.is_none() {
            let pods = k.ok(&["get", "pods", "--no-headers", "-o", "custom-columns=NAME:.metadata.name"]);
            if !pods.lines().any(|p| p == "app-0" || p == "app-1") {
                evicted_at = Some(elapsed);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (not_ready_at, evicted_at) = (not_ready_at.unwrap(), evicted_at.unwrap());
    eprintln!("node lost -> NotReady and tainted: {not_ready_at:.1?}; node lost -> pods deleted: {evicted_at:.1?}");
    assert!(not_ready_at < Duration::from_secs(11), "{not_ready_at:?}");
    assert!(evicted_at < Duration::from_secs(15), "{evicted_at:?}");
    // Ready and heartbeat conditions say why.
    let reason = jsonpath(&k, &["get", "node", "lost-0"], "{.status.conditions[?(@.type==\"Ready\")].reason}");
    assert_eq!(reason, "NodeStatusUnknown");
    let described = k.ok(&["describe", "node", "lost-0"]);
    assert!(described.contains("Kubelet stopped posting node status."), "{described}");
    // The tolerating pod stays, marked not ready; the healthy node's pod is untouched.
    let stays = jsonpath(&k, &["get", "pod", "stays"], "{.status.conditions[?(@.type==\"Ready\")].status}");
    assert_eq!(stays, "False");
    assert_eq!(jsonpath(&k, &["get", "pod", "app-2"], "{.status.phase}"), "Running");
    let events = k.ok(&["get", "events"]);
    assert!(events.contains("Marking for deletion Pod default/app-0"), "{events}");
    assert!(events.contains("Node lost-0 status is now: NodeNotReady"), "{events}");

    // The ReplicaSet makes replacements, the scheduler puts them on the nodes left.
    let replaced = eventually(Duration::from_secs(20), "replacements Running on the kept nodes", || {
        let wide = k.ok(&["get", "pods", "-l", "app=app", "--no-headers", "-o", "wide"]);
        let running = wide.lines().filter(|l| l.contains(" Running ") && l.contains(" kept-")).count();
        (running == 3).then(|| killed.elapsed())
    });
    eprintln!("node lost -> replacement pods Running elsewhere: {replaced:.1?}");
    assert!(replaced < Duration::from_secs(15), "{replaced:?}");

    // The node comes back: its agent reports Ready and the taints go.
    let _back = Sim::start(&c, 2, "lost");
    eventually(Duration::from_secs(15), "lost-0 back and untainted", || {
        let taints = jsonpath(&k, &["get", "node", "lost-0"], "{.spec.taints}");
        (node_status(&k, "lost-0") == "Ready" && taints.is_empty()).then_some(())
    });
    assert!(!lost.log().contains("ERROR"), "{}", lost.log());
}
