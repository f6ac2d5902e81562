//! `rudder sim`: simulated nodes that register, heartbeat, run bound pods (without
//! containers) and stop heartbeating when the process ends.

use crate::cluster::Sim;
use crate::cluster::eventually;
use crate::{Cluster, KUBECTL_VERSIONS, cluster::Kubectl};
use std::time::{Duration, Instant};

/// Polls `f` until it gives a value, for at most `timeout`.
/// The nodes with the simulated label that `kubectl get nodes` shows Ready.
fn ready_simulated_nodes(k: &Kubectl, prefix: &str) -> usize {
    let out = k.run(&["get", "nodes", "-l", "rudder.dev/simulated=true", "--no-headers"]);
    out.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")) && l.split_whitespace().nth(1) == Some("Ready"))
        .count()
}

fn renew_time(k: &Kubectl, node: &str) -> String {
    k.ok(&["get", "lease", node, "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}"])
}

/// The `kubectl get pod -o wide` row of a pod, split into columns.
fn wide_row(k: &Kubectl, pod: &str) -> Vec<String> {
    let out = k.ok(&["get", "pod", pod, "-o", "wide", "--no-headers"]);
    out.split_whitespace().map(str::to_string).collect()
}

const JOB: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  suspend: true
  # Hands the Job to no controller: the job controller would delete the pods of a
  # suspended Job that this test creates by hand.
  managedBy: rudder.dev/none
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
";

#[test]
fn simulated_nodes_run_pods_and_stop_heartbeating() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let mut sim = Sim::start(&c, 3, "sim");
    eventually(Duration::from_secs(20), "3 Ready simulated nodes", || {
        (ready_simulated_nodes(&k, "sim") == 3).then_some(())
    });
    for v in KUBECTL_VERSIONS {
        let wide = c.kubectl(v).ok(&["get", "nodes", "-o", "wide", "--show-labels"]);
        let row = wide.lines().find(|l| l.starts_with("sim-1 ")).unwrap_or_else(|| panic!("{wide}"));
        for want in
            ["Ready", "v1.33.0-sim", "10.255.0.2", "Rudder simulated node", "sim://0.1", "rudder.dev/simulated=true"]
        {
            assert!(row.contains(want), "{want} missing in {row}");
        }
    }
    let first = renew_time(&k, "sim-0");
    assert!(!first.is_empty());
    eventually(Duration::from_secs(6), "the lease to be renewed", || (renew_time(&k, "sim-0") != first).then_some(()));

    // A pod bound to a simulated node runs there, with an address of that node's.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  nodeName: sim-1\n  containers: [{name: nginx, image: nginx:1.25}]\n",
    );
    for v in KUBECTL_VERSIONS {
        let kv = c.kubectl(v);
        let row = eventually(Duration::from_secs(15), "web Running", || {
            let row = wide_row(&kv, "web");
            (row.get(2).map(String::as_str) == Some("Running")).then_some(row)
        });
        // NAME READY STATUS RESTARTS AGE IP NODE ...
        assert_eq!(row[1], "1/1", "{row:?}");
        assert_eq!(row[6], "sim-1", "{row:?}");
        assert!(row[5].starts_with("10.200.1."), "{row:?}");
    }
    let ready = k.ok(&["get", "pod", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready, "True");

    // Deleting waits for the node to let go of the pod, as a kubelet does.
    let started = Instant::now();
    assert!(k.ok(&["delete", "pod", "web", "--timeout=30s"]).contains("deleted"));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(k.fails(&["get", "pod", "web"]).contains("NotFound"));

    // A Job's pod runs to completion; an annotation makes one fail.
    k.ok_stdin(&["apply", "-f", "-"], JOB);
    let job_uid = k.ok(&["get", "job", "batch", "-o", "jsonpath={.metadata.uid}"]);
    let job_pod = |name: &str, annotations: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\n  ownerReferences:\n  - {{apiVersion: batch/v1, kind: Job, name: batch, uid: {job_uid}, controller: true}}\nspec:\n  nodeName: sim-2\n  restartPolicy: Never\n  containers: [{{name: main, image: busybox}}]\n"
        )
    };
    k.ok_stdin(&["apply", "-f", "-"], &job_pod("done", ""));
    k.ok_stdin(&["apply", "-f", "-"], &job_pod("broken", "sim.rudder.dev/exit-code: \"3\""));
    for (pod, status, phase) in [("done", "Completed", "Succeeded"), ("broken", "Error", "Failed")] {
        let row = eventually(Duration::from_secs(15), &format!("{pod} {status}"), || {
            let row = wide_row(&k, pod);
            (row.get(2).map(String::as_str) == Some(status)).then_some(row)
        });
        assert_eq!(row[1], "0/1", "{row:?}");
        assert_eq!(k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]), phase);
    }

    // A sim that ends leaves its nodes behind, no longer heartbeating.
    sim.kill();
    let stopped = renew_time(&k, "sim-0");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(renew_time(&k, "sim-0"), stopped, "the lease must not be renewed after the sim ended");
    assert_eq!(k.ok(&["get", "nodes", "-o", "name"]).lines().count(), 3, "nodes stay registered");
    assert!(!sim.log().contains("ERROR"), "{}", sim.log());
}

#[test]
fn five_hundred_nodes_register_within_seconds() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let started = Instant::now();
    let sim = Sim::start(&c, 500, "scale");
    eventually(Duration::from_secs(60), "500 Ready nodes", || {
        (ready_simulated_nodes(&k, "scale") == 500).then_some(())
    });
    let took = started.elapsed();
    eprintln!(
        "500 simulated nodes Ready in {took:?} (sim log: {})",
        sim.log().lines().find(|l| l.contains("registered")).unwrap_or("")
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    let leases = k.ok(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]);
    assert_eq!(leases.lines().count(), 500);
}
