//! DaemonSets and StatefulSets on simulated nodes, observed as a user would with
//! `kubectl rollout status` and `kubectl rollout history`.
//!
//! `rudder sim` runs the nodes (it reports bound pods Running and Ready and lets
//! deleted ones go) and the scheduler binds the pods: a daemon pod to the node its
//! affinity names.

use crate::cluster::eventually;
use crate::{
    Cluster, KUBECTL_VERSIONS,
    cluster::{Kubectl, Sim},
};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Polls `f` until it gives a value, for at most `timeout`.
/// Prints the end of the server's log when a test fails, since the cluster's directory goes
/// with it.
struct LogOnFailure<'a>(&'a Cluster);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "server log ({} lines, last 60):\n{}",
                lines.len(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

/// The node a pod's required node affinity pins it to (`metadata.name In [node]`).
fn pinned_node(pod: &Value) -> Option<String> {
    let terms =
        pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?;
    terms.as_array()?.iter().find_map(|t| {
        t["matchFields"].as_array()?.iter().find_map(|f| {
            (f["key"] == "metadata.name" && f["operator"] == "In")
                .then(|| f["values"][0].as_str().map(str::to_string))?
        })
    })
}

fn json_of(k: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&k.ok(args)).unwrap()
}

/// Pod name -> (node, revision label, phase, terminating) for pods matching `selector`.
fn pods_by_name(k: &Kubectl, selector: &str) -> BTreeMap<String, (String, String, String, bool)> {
    let list = json_of(k, &["get", "pods", "-l", selector, "-o", "json"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string();
            (
                s("/metadata/name"),
                (
                    s("/spec/nodeName"),
                    s("/metadata/labels/controller-revision-hash"),
                    s("/status/phase"),
                    p.pointer("/metadata/deletionTimestamp").is_some(),
                ),
            )
        })
        .collect()
}

/// `kubectl rollout history` rows after the header, as (revision, rest).
fn history_rows(out: &str) -> Vec<(String, String)> {
    out.lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let rev = parts.next().unwrap_or_default().to_string();
            (rev, parts.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

const AGENT: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  annotations: {kubernetes.io/change-cause: CAUSE}
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: IMAGE
";

fn agent(image: &str, cause: &str) -> String {
    AGENT.replace("IMAGE", image).replace("CAUSE", cause)
}

#[test]
fn daemonset_runs_on_every_untainted_node_and_rolls_out() {
    let c = Cluster::start();
    let _log = LogOnFailure(&c);
    let _sim = Sim::start_ready(&c, 3, "n");
    let k = c.kubectl("1.33");
    k.ok(&["taint", "nodes", "n-2", "dedicated=infra:NoSchedule"]);
    k.ok_stdin(&["apply", "-f", "-"], &agent("busybox:1.36", "first"));

    for v in KUBECTL_VERSIONS {
        let out = c.kubectl(v).ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
        assert!(out.contains("daemon set \"agent\" successfully rolled out"), "{out}");
    }
    let pods = pods_by_name(&k, "app=agent");
    let nodes: HashSet<&str> = pods.values().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(nodes, HashSet::from(["n-0", "n-1"]), "one pod per untainted node: {pods:?}");
    let ds = json_of(&k, &["get", "ds", "agent", "-o", "json"]);
    let st = &ds["status"];
    for f in
        ["desiredNumberScheduled", "currentNumberScheduled", "numberReady", "numberAvailable", "updatedNumberScheduled"]
    {
        assert_eq!(st[f], 2, "{f}: {st}");
    }
    assert_eq!(st["numberMisscheduled"], 0);
    assert_eq!(st["observedGeneration"], ds["metadata"]["generation"]);
    let table = k.ok(&["get", "ds", "agent", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..6], ["agent", "2", "2", "2", "2", "2"], "{table}");

    // Each pod is pinned to its node by affinity, tolerates node problems, and names
    // its revision.
    let name = pods.keys().next().unwrap();
    let pod = json_of(&k, &["get", "pod", name, "-o", "json"]);
    let node = pods[name].0.clone();
    assert_eq!(pinned_node(&pod).as_deref(), Some(node.as_str()), "{pod}");
    let tolerations = pod["spec"]["tolerations"].to_string();
    for t in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable"] {
        assert!(tolerations.contains(t), "{tolerations}");
    }
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert!(name.starts_with("agent-"));
    let first_hash = pods[name].1.clone();
    assert!(!first_hash.is_empty());
    let described = k.ok(&["describe", "ds", "agent"]);
    assert!(described.contains("SuccessfulCreate") && described.contains("Created pod: agent-"), "{described}");

    // A new template rolls out node by node.
    k.ok_stdin(&["apply", "-f", "-"], &agent("busybox:1.37", "second"));
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = eventually(Duration::from_secs(20), "old daemon pods to go", || {
        let pods = pods_by_name(&k, "app=agent");
        (pods.len() == 2 && pods.values().all(|(_, h, ..)| *h != first_hash)).then_some(pods)
    });
    let nodes: HashSet<&str> = pods.values().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(nodes, HashSet::from(["n-0", "n-1"]));
    let described = k.ok(&["describe", "ds", "agent"]);
    assert!(described.contains("SuccessfulDelete") && described.contains("Deleted pod: agent-"), "{described}");

    for v in KUBECTL_VERSIONS {
        let kv = c.kubectl(v);
        let history = kv.ok(&["rollout", "history", "ds/agent"]);
        assert_eq!(
            history_rows(&history),
            [("1".to_string(), "first".to_string()), ("2".to_string(), "second".to_string())],
            "{history}"
        );
        let first = kv.ok(&["rollout", "history", "ds/agent", "--revision=1"]);
        assert!(first.contains("busybox:1.36") && !first.contains("busybox:1.37"), "{first}");
    }
    let revisions = k.ok(&["get", "controllerrevisions", "-l", "app=agent", "-o", "name"]);
    assert_eq!(revisions.lines().count(), 2, "{revisions}");

    // Rolling back reuses revision 1, renumbered as 3.
    k.ok(&["rollout", "undo", "ds/agent"]);
    k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let history = k.ok(&["rollout", "history", "ds/agent"]);
    let revs: Vec<String> = history_rows(&history).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, ["2", "3"], "{history}");
    eventually(Duration::from_secs(20), "pods back on the first revision", || {
        pods_by_name(&k, "app=agent").values().all(|(_, h, ..)| *h == first_hash).then_some(())
    });

    // Lifting the taint lets the daemon onto the third node.
    k.ok(&["taint", "nodes", "n-2", "dedicated=infra:NoSchedule-"]);
    eventually(Duration::from_secs(20), "a daemon pod on n-2", || {
        pods_by_name(&k, "app=agent").values().any(|(n, _, phase, _)| n == "n-2" && phase == "Running").then_some(())
    });
    k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let st = json_of(&k, &["get", "ds", "agent", "-o", "jsonpath={.status}"]);
    assert_eq!(st["desiredNumberScheduled"], 3, "{st}");
    assert_eq!(st["numberAvailable"], 3, "{st}");
}

const WEB: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {disk: ssd}
      containers:
      - name: nginx
        image: nginx:1.25
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
";

fn image_of(k: &Kubectl, pod: &str) -> String {
    k.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.containers[0].image}"])
}

#[test]
fn statefulset_starts_in_order_scales_down_in_reverse_and_updates_by_partition() {
    let c = Cluster::start();
    let _log = LogOnFailure(&c);
    let _sim = Sim::start_ready(&c, 2, "n");
    let k = c.kubectl("1.33");
    k.ok(&["create", "service", "clusterip", "web", "--clusterip=None"]);

    // Ordered start: web-1 is not created while web-0 is not Running and Ready. No
    // node has the label the pods ask for yet, so web-0 waits unscheduled.
    k.ok_stdin(&["apply", "-f", "-"], WEB);
    eventually(Duration::from_secs(20), "web-0", || k.run(&["get", "pod", "web-0"]).ok.then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let early = pods_by_name(&k, "app=web");
    assert_eq!(early.keys().collect::<Vec<_>>(), ["web-0"], "{early:?}");
    assert_eq!(early["web-0"].0, "", "web-0 cannot be scheduled yet: {early:?}");
    let out = k.ok(&["rollout", "status", "sts/web", "--watch=false"]);
    assert!(out.contains("Waiting for 3 pods to be ready..."), "{out}");
    k.ok(&["label", "node", "n-1", "disk=ssd"]);
    for v in KUBECTL_VERSIONS {
        let out = c.kubectl(v).ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
        assert!(out.contains("partitioned roll out complete: 3 new pods have been updated..."), "{out}");
    }
    let placed = pods_by_name(&k, "app=web");
    assert!(placed.values().all(|(node, ..)| node == "n-1"), "only n-1 has disk=ssd: {placed:?}");
    // Each pod was created only after its predecessor became Ready.
    for (prev, next) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ready_at =
            k.ok(&["get", "pod", prev, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}"]);
        let created = k.ok(&["get", "pod", next, "-o", "jsonpath={.metadata.creationTimestamp}"]);
        assert!(created >= ready_at, "{next} created at {created}, before {prev} was ready at {ready_at}");
    }
    // Stable identity, revision labels, and the claim volumes named as upstream names them.
    let pod = json_of(&k, &["get", "pod", "web-1", "-o", "json"]);
    assert_eq!(pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "web");
    let volumes = pod["spec"]["volumes"].to_string();
    assert!(volumes.contains("\"claimName\":\"data-web-1\""), "{volumes}");
    let sts = json_of(&k, &["get", "sts", "web", "-o", "json"]);
    let st = &sts["status"];
    let first_rev = st["updateRevision"].as_str().unwrap().to_string();
    assert_eq!(st["currentRevision"], st["updateRevision"], "{st}");
    for f in ["replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"] {
        assert_eq!(st[f], 3, "{f}: {st}");
    }
    assert_eq!(pod["metadata"]["labels"]["controller-revision-hash"], first_rev.as_str());
    let table = k.ok(&["get", "sts", "web", "--no-headers"]);
    assert!(table.starts_with("web") && table.contains("3/3"), "{table}");
    let described = k.ok(&["describe", "sts", "web"]);
    assert!(described.contains("create Pod web-0 in StatefulSet web successful"), "{described}");

    // Scale down: web-2 goes first and web-1 only once web-2 is gone.
    k.ok(&["scale", "sts", "web", "--replicas=1"]);
    let mut snapshots = Vec::new();
    eventually(Duration::from_secs(30), "one pod left", || {
        let pods = pods_by_name(&k, "app=web");
        snapshots.push(pods.clone());
        (pods.len() == 1 && pods.contains_key("web-0")).then_some(())
    });
    for s in &snapshots {
        if s.contains_key("web-2") {
            let web1_leaving = s.get("web-1").is_none_or(|p| p.3);
            assert!(!web1_leaving, "web-1 left before web-2: {s:?}");
        }
    }
    let described = k.ok(&["describe", "sts", "web"]);
    assert!(described.contains("delete Pod web-2 in StatefulSet web successful"), "{described}");
    k.ok(&["scale", "sts", "web", "--replicas=3"]);
    k.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);

    // A partitioned update replaces only the pods at or above the partition.
    let patch = r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}},"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}"#;
    k.ok(&["patch", "sts", "web", "-p", patch]);
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(out.contains("partitioned roll out complete: 1 new pods have been updated..."), "{out}");
    eventually(Duration::from_secs(20), "web-2 updated", || (image_of(&k, "web-2") == "nginx:1.26").then_some(()));
    assert_eq!(image_of(&k, "web-0"), "nginx:1.25");
    assert_eq!(image_of(&k, "web-1"), "nginx:1.25");
    let st = json_of(&k, &["get", "sts", "web", "-o", "jsonpath={.status}"]);
    assert_eq!(st["currentRevision"], first_rev.as_str(), "{st}");
    assert_ne!(st["updateRevision"], first_rev.as_str(), "{st}");
    assert_eq!((st["currentReplicas"].as_i64(), st["updatedReplicas"].as_i64()), (Some(2), Some(1)), "{st}");

    // Lowering the partition finishes the update, from the highest ordinal down.
    k.ok(&["patch", "sts", "web", "-p", r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#]);
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(out.contains("partitioned roll out complete: 3 new pods have been updated..."), "{out}");
    for p in ["web-0", "web-1", "web-2"] {
        eventually(Duration::from_secs(20), &format!("{p} updated"), || {
            (image_of(&k, p) == "nginx:1.26").then_some(())
        });
    }
    let w0 = k.ok(&["get", "pod", "web-0", "-o", "jsonpath={.metadata.creationTimestamp}"]);
    let w1 = k.ok(&["get", "pod", "web-1", "-o", "jsonpath={.metadata.creationTimestamp}"]);
    assert!(w1 <= w0, "web-1 ({w1}) is replaced before web-0 ({w0})");
    let st = json_of(&k, &["get", "sts", "web", "-o", "jsonpath={.status}"]);
    assert_eq!(st["currentRevision"], st["updateRevision"], "{st}");
    assert_eq!(st["updatedReplicas"], 3, "{st}");

    for v in KUBECTL_VERSIONS {
        let kv = c.kubectl(v);
        let history = kv.ok(&["rollout", "history", "sts/web"]);
        let revs: Vec<String> = history_rows(&history).into_iter().map(|(r, _)| r).collect();
        assert_eq!(revs, ["1", "2"], "{history}");
        let first = kv.ok(&["rollout", "history", "sts/web", "--revision=1"]);
        assert!(first.contains("nginx:1.25") && !first.contains("nginx:1.26"), "{first}");
    }
}
