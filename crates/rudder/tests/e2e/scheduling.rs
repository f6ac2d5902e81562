//! The scheduler in `rudder server`: pods land on the one node that fits, and a pod
//! that fits nowhere stays Pending with upstream's FailedScheduling reason.

use crate::Cluster;
use std::time::{Duration, Instant};

/// Three nodes as objects only (no agent): an SSD node, a tainted GPU node, a big node.
const NODES: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: ssd-1
    labels: {kubernetes.io/hostname: ssd-1, disk: ssd}
  status:
    capacity: {cpu: '1', memory: 2Gi, pods: '110'}
    allocatable: {cpu: '1', memory: 2Gi, pods: '110'}
    conditions:
    - {type: Ready, status: 'True', reason: KubeletReady, message: ready}
- apiVersion: v1
  kind: Node
  metadata:
    name: gpu-1
    labels: {kubernetes.io/hostname: gpu-1, accel: gpu}
  spec:
    taints:
    - {key: dedicated, value: gpu, effect: NoSchedule}
  status:
    capacity: {cpu: '2', memory: 2Gi, pods: '110'}
    allocatable: {cpu: '2', memory: 2Gi, pods: '110'}
    conditions:
    - {type: Ready, status: 'True', reason: KubeletReady, message: ready}
- apiVersion: v1
  kind: Node
  metadata:
    name: big-1
    labels: {kubernetes.io/hostname: big-1}
  status:
    capacity: {cpu: '8', memory: 16Gi, pods: '110'}
    allocatable: {cpu: '8', memory: 16Gi, pods: '110'}
    conditions:
    - {type: Ready, status: 'True', reason: KubeletReady, message: ready}
";

fn pod(name: &str, cpu: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{extra_spec}  containers:
  - name: c
    image: busybox
    resources:
      requests: {{cpu: {cpu}}}
"
    )
}

fn node_of(k: &crate::cluster::Kubectl, pod: &str) -> String {
    k.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

/// Waits until the pod is bound; returns the NODE column of `get -o wide`.
fn wait_bound(k: &crate::cluster::Kubectl, pod: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while node_of(k, pod).is_empty() {
        assert!(Instant::now() < deadline, "{pod} was not scheduled:\n{}", k.ok(&["describe", "pod", pod]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let wide = k.ok(&["get", "pod", pod, "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    let col = header.iter().position(|h| *h == "NODE").expect("a NODE column");
    wide.lines().nth(1).unwrap().split_whitespace().nth(col).unwrap().to_string()
}

/// Waits until `describe pod` shows a FailedScheduling event; returns the output.
fn wait_failed(k: &crate::cluster::Kubectl, pod: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = k.ok(&["describe", "pod", pod]);
        if out.contains("FailedScheduling") {
            return out;
        }
        assert!(Instant::now() < deadline, "no FailedScheduling event for {pod}:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_land_on_the_only_node_that_fits_or_say_why_not() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok_stdin(&["create", "-f", "-"], NODES);
    let nodes = k.ok(&["get", "nodes"]);
    assert_eq!(nodes.lines().count(), 4, "{nodes}");

    k.ok_stdin(&["create", "-f", "-"], &pod("by-selector", "100m", "  nodeSelector: {disk: ssd}\n"));
    k.ok_stdin(
        &["create", "-f", "-"],
        &pod(
            "by-toleration",
            "100m",
            "  nodeSelector: {accel: gpu}\n  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n",
        ),
    );
    k.ok_stdin(&["create", "-f", "-"], &pod("by-resources", "4", ""));
    assert_eq!(wait_bound(&k, "by-selector"), "ssd-1");
    assert_eq!(wait_bound(&k, "by-toleration"), "gpu-1");
    assert_eq!(wait_bound(&k, "by-resources"), "big-1");

    // The bound pod carries PodScheduled=True; `describe` shows who scheduled it.
    let cond =
        k.ok(&["get", "pod", "by-resources", "-o", "jsonpath={.status.conditions[?(@.type=='PodScheduled')].status}"]);
    assert_eq!(cond, "True");
    let described = k.ok(&["describe", "pod", "by-resources"]);
    assert!(
        described.contains("Scheduled") && described.contains("Successfully assigned default/by-resources to big-1"),
        "{described}"
    );

    // Fits nowhere: too much cpu everywhere it may go.
    k.ok_stdin(&["create", "-f", "-"], &pod("too-big", "100", ""));
    // Fits nowhere: selects the GPU node without tolerating its taint.
    k.ok_stdin(&["create", "-f", "-"], &pod("intolerant", "100m", "  nodeSelector: {accel: gpu}\n"));
    for v in crate::KUBECTL_VERSIONS {
        let kv = c.kubectl(v);
        let too_big = wait_failed(&kv, "too-big");
        assert!(
            too_big.contains(
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. \
                 preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
            ),
            "{too_big}"
        );
        assert!(too_big.contains("default-scheduler"), "{too_big}");
        let intolerant = wait_failed(&kv, "intolerant");
        assert!(
            intolerant.contains(
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
                 2 node(s) didn't match Pod's node affinity/selector. \
                 preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
            ),
            "{intolerant}"
        );
    }
    let status = k.ok(&["get", "pod", "too-big", "-o", "wide"]);
    assert!(status.contains("Pending") && status.contains("<none>"), "{status}");
    let cond = k.ok(&["get", "pod", "too-big", "-o", "jsonpath={.status.conditions[?(@.type=='PodScheduled')]}"]);
    let cond: serde_json::Value = serde_json::from_str(&cond).unwrap();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert!(cond["message"].as_str().unwrap().starts_with("0/3 nodes are available: "), "{cond}");

    // A node that fits arrives: the pending pod is retried and placed there.
    k.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1
kind: Node
metadata:
  name: huge-1
  labels: {kubernetes.io/hostname: huge-1}
status:
  allocatable: {cpu: '128', memory: 512Gi, pods: '110'}
  conditions:
  - {type: Ready, status: 'True'}
",
    );
    assert_eq!(wait_bound(&k, "too-big"), "huge-1");
    assert!(node_of(&k, "intolerant").is_empty());
}
