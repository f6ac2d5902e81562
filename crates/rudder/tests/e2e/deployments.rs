//! Deployments and ReplicaSets end to end: scaling, rolling updates watched with
//! `kubectl rollout status`, history, undo, pause and resume, restart, Recreate, and
//! a bare ReplicaSet adopting a pod.
//!
//! Pods run on `rudder sim` nodes, placed there by the server's scheduler.

use crate::cluster::eventually;
use crate::{
    Cluster, KUBECTL_VERSIONS,
    cluster::{Kubectl, Sim},
};
use serde_json::Value;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const PREFIX: &str = "dep";

/// A cluster with simulated nodes Ready.
fn cluster() -> (Cluster, Sim) {
    let c = Cluster::start();
    let sim = Sim::start(&c, NODES, PREFIX);
    let k = c.kubectl("1.33");
    eventually(Duration::from_secs(30), "simulated nodes Ready", || {
        let out = k.run(&["get", "nodes", "--no-headers"]);
        (out.stdout.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count() == NODES).then_some(())
    });
    (c, sim)
}

fn deployment(ns: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 2
  revisionHistoryLimit: 10
  strategy: {strategy}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"
    )
}

fn json(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&all)).unwrap()
}

/// The ReplicaSets of `web` in `ns`: (name, image, spec replicas, revision).
fn replica_sets(k: &Kubectl, ns: &str) -> Vec<(String, String, i64, String)> {
    let list = json(k, &["get", "rs", "-n", ns, "-l", "app=web"]);
    let mut out: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort_by_key(|a| a.3.parse::<i64>().unwrap_or(0));
    out
}

/// Pods of `web` that are not being deleted.
fn live_pods(k: &Kubectl, ns: &str) -> Vec<Value> {
    let list = json(k, &["get", "pods", "-n", ns, "-l", "app=web"]);
    list["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned().collect()
}

fn rollout_status(c: &Cluster, k: &Kubectl, ns: &str) {
    let out = k.run(&["rollout", "status", "deploy/web", "-n", ns, "--timeout=90s"]);
    if !out.ok {
        let log = c.log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        let state = k.run(&["get", "deploy,rs,pods", "-n", ns, "-o", "wide"]).stdout;
        panic!(
            "rollout status failed ({}):\n{}{}\n{state}\nserver log tail:\n{}",
            out.code,
            out.stdout,
            out.stderr,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(out.stdout.contains("deployment \"web\" successfully rolled out"), "{}", out.stdout);
}

#[test]
fn deployment_scales_rolls_out_undoes_pauses_and_restarts() {
    let (c, _sim) = cluster();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("roll-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        k.ok_stdin(&["apply", "-f", "-"], &deployment(&ns, "{type: RollingUpdate}"));
        k.ok(&["annotate", "deploy/web", "-n", &ns, "kubernetes.io/change-cause=first release"]);
        rollout_status(&c, &k, &ns);

        // Scale up, then down: pods follow.
        k.ok(&["scale", "deploy/web", "-n", &ns, "--replicas=4"]);
        rollout_status(&c, &k, &ns);
        eventually(Duration::from_secs(30), "4 pods", || (live_pods(&k, &ns).len() == 4).then_some(()));
        let get = k.ok(&["get", "deploy", "web", "-n", &ns]);
        assert!(get.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("4/4")), "{get}");
        k.ok(&["scale", "deploy/web", "-n", &ns, "--replicas=2"]);
        rollout_status(&c, &k, &ns);
        eventually(Duration::from_secs(30), "2 pods", || (live_pods(&k, &ns).len() == 2).then_some(()));
        let rs_table = k.ok(&["get", "rs", "-n", &ns]);
        let header: Vec<&str> = rs_table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
        let row: Vec<&str> = rs_table.lines().nth(1).unwrap().split_whitespace().collect();
        assert!(row[0].starts_with("web-") && row[1..4] == ["2", "2", "2"], "{rs_table}");
        // Pods are the ReplicaSet's, named after it, and say so.
        let pod = &live_pods(&k, &ns)[0];
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("ReplicaSet"), Some(row[0])));
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert!(pod["metadata"]["name"].as_str().unwrap().starts_with(&format!("{}-", row[0])));
        let rs_events = k.ok(&["describe", "rs", row[0], "-n", &ns]);
        assert!(rs_events.contains("SuccessfulCreate") && rs_events.contains("Created pod: web-"), "{rs_events}");
        assert!(rs_events.contains("SuccessfulDelete"), "{rs_events}");

        // A rolling update to a new image.
        k.ok(&["set", "image", "deploy/web", "-n", &ns, "nginx=nginx:1.26"]);
        k.ok(&["annotate", "deploy/web", "-n", &ns, "--overwrite", "kubernetes.io/change-cause=second release"]);
        rollout_status(&c, &k, &ns);
        let rses = replica_sets(&k, &ns);
        assert_eq!(rses.len(), 2, "{rses:?}");
        assert_eq!((rses[0].1.as_str(), rses[0].2, rses[0].3.as_str()), ("nginx:1.25", 0, "1"));
        assert_eq!((rses[1].1.as_str(), rses[1].2, rses[1].3.as_str()), ("nginx:1.26", 2, "2"));
        let first_rs = rses[0].0.clone();
        let d = json(&k, &["get", "deploy", "web", "-n", &ns]);
        assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
        let conditions = d["status"]["conditions"].as_array().unwrap();
        let reason = |t: &str| conditions.iter().find(|c| c["type"] == t).map(|c| c["reason"].clone());
        assert_eq!(reason("Available"), Some("MinimumReplicasAvailable".into()));
        assert_eq!(reason("Progressing"), Some("NewReplicaSetAvailable".into()));

        let history = k.ok(&["rollout", "history", "deploy/web", "-n", &ns]);
        let revisions: Vec<&str> = history.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert!(revisions.contains(&"1") && revisions.contains(&"2"), "{history}");
        assert!(history.contains("second release"), "{history}");
        let first = k.ok(&["rollout", "history", "deploy/web", "-n", &ns, "--revision=1"]);
        assert!(first.contains("nginx:1.25") && first.contains("first release"), "{first}");

        let described = k.ok(&["describe", "deploy", "web", "-n", &ns]);
        for want in [
            "OldReplicaSets:",
            "NewReplicaSet:",
            "ScalingReplicaSet",
            "Scaled up replica set web-",
            "Scaled down replica set",
        ] {
            assert!(described.contains(want), "{want} missing:\n{described}");
        }

        // Undo goes back to the first ReplicaSet, which becomes revision 3.
        k.ok(&["rollout", "undo", "deploy/web", "-n", &ns]);
        rollout_status(&c, &k, &ns);
        let rses = replica_sets(&k, &ns);
        assert_eq!(rses.len(), 2, "no third ReplicaSet: {rses:?}");
        assert_eq!(
            (rses[1].0.as_str(), rses[1].1.as_str(), rses[1].2, rses[1].3.as_str()),
            (first_rs.as_str(), "nginx:1.25", 2, "3")
        );
        let history = k.ok(&["rollout", "history", "deploy/web", "-n", &ns]);
        let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(revisions, ["2", "3"], "{history}");
        // And to a named revision.
        k.ok(&["rollout", "undo", "deploy/web", "-n", &ns, "--to-revision=2"]);
        rollout_status(&c, &k, &ns);
        let rses = replica_sets(&k, &ns);
        assert_eq!(rses.len(), 2, "{rses:?}");
        assert_eq!((rses[1].1.as_str(), rses[1].3.as_str()), ("nginx:1.26", "4"));

        // Paused: a template change waits for resume.
        k.ok(&["rollout", "pause", "deploy/web", "-n", &ns]);
        k.ok(&["set", "image", "deploy/web", "-n", &ns, "nginx=nginx:1.27"]);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(replica_sets(&k, &ns).len(), 2, "no rollout while paused");
        let d = json(&k, &["get", "deploy", "web", "-n", &ns]);
        assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"], "status still updated while paused");
        let progressing =
            d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").cloned();
        assert_eq!(progressing.map(|c| c["reason"].clone()), Some("DeploymentPaused".into()));
        k.ok(&["rollout", "resume", "deploy/web", "-n", &ns]);
        rollout_status(&c, &k, &ns);
        let rses = replica_sets(&k, &ns);
        assert_eq!((rses.len(), rses[2].1.as_str(), rses[2].2, rses[2].3.as_str()), (3, "nginx:1.27", 2, "5"));

        // Restart: same image, a new ReplicaSet.
        k.ok(&["rollout", "restart", "deploy/web", "-n", &ns]);
        rollout_status(&c, &k, &ns);
        let rses = replica_sets(&k, &ns);
        assert_eq!(rses.len(), 4, "{rses:?}");
        assert_eq!((rses[3].1.as_str(), rses[3].2, rses[3].3.as_str()), ("nginx:1.27", 2, "6"));
        eventually(Duration::from_secs(30), "2 pods after the restart", || {
            (live_pods(&k, &ns).len() == 2).then_some(())
        });
    }
}

#[test]
fn recreate_stops_old_pods_before_starting_new_ones() {
    let (c, _sim) = cluster();
    let k = c.kubectl("1.33");
    k.ok(&["create", "namespace", "recreate"]);
    k.ok_stdin(&["apply", "-f", "-"], &deployment("recreate", "{type: Recreate}"));
    rollout_status(&c, &k, "recreate");
    k.ok(&["set", "image", "deploy/web", "-n", "recreate", "nginx=nginx:1.26"]);
    // Never pods of both templates alive at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = json(&k, &["get", "pods", "-n", "recreate", "-l", "app=web"]);
        let images: std::collections::BTreeSet<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap().to_string())
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        let live = live_pods(&k, "recreate");
        if live.len() == 2 && live.iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.26") {
            break;
        }
        assert!(Instant::now() < deadline, "Recreate did not finish: {}", k.ok(&["get", "pods,rs", "-n", "recreate"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    rollout_status(&c, &k, "recreate");
    // The old set was scaled to 0 before the new one was scaled up. Ordered by the
    // events' revisions: creation timestamps have whole seconds, both usually fall in
    // the same one, and kubectl's --sort-by leaves ties in no set order (a run failed
    // on that).
    let events = json(&k, &["get", "events", "-n", "recreate"]);
    let revisions = |needle: &str| -> Vec<u64> {
        let items = events["items"].as_array().unwrap().iter();
        items
            .filter(|e| e["reason"] == "ScalingReplicaSet" && e["message"].as_str().unwrap().contains(needle))
            .map(|e| e["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let down = *revisions("to 0").iter().min().unwrap_or_else(|| panic!("{events}"));
    let up = *revisions("from 0 to 2").iter().max().unwrap_or_else(|| panic!("{events}"));
    assert!(down < up, "{events}");
}

#[test]
fn a_replica_set_adopts_matching_pods_and_replaces_deleted_ones() {
    let (c, _sim) = cluster();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("rs-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        // An orphan that matches, created first: the ReplicaSet adopts it and makes two more.
        k.ok_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata: {name: stray, labels: {app: cache}}\nspec:\n  containers: [{name: c, image: redis:7}]\n",
        );
        k.ok_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache}
spec:
  replicas: 3
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: c, image: redis:7}]
",
        );
        eventually(Duration::from_secs(30), "3 ready replicas", || {
            let rs = json(&k, &["get", "rs", "cache", "-n", &ns]);
            (rs["status"]["readyReplicas"] == 3 && rs["status"]["availableReplicas"] == 3).then_some(())
        });
        let rs = json(&k, &["get", "rs", "cache", "-n", &ns]);
        assert_eq!(rs["status"]["fullyLabeledReplicas"], 3);
        assert_eq!(rs["status"]["observedGeneration"], rs["metadata"]["generation"]);
        let stray = json(&k, &["get", "pod", "stray", "-n", &ns]);
        assert_eq!(stray["metadata"]["ownerReferences"][0]["uid"], rs["metadata"]["uid"], "adopted");
        let pods = json(&k, &["get", "pods", "-n", &ns, "-l", "app=cache"]);
        assert_eq!(pods["items"].as_array().unwrap().len(), 3, "no extra pods");

        // A deleted pod is replaced; a relabelled one is released and replaced.
        k.ok(&["delete", "pod", "stray", "-n", &ns]);
        eventually(Duration::from_secs(30), "a replacement", || {
            (json(&k, &["get", "rs", "cache", "-n", &ns])["status"]["readyReplicas"] == 3).then_some(())
        });
        let victim = live_cache_pods(&k, &ns)[0].clone();
        k.ok(&["label", "pod", &victim, "-n", &ns, "--overwrite", "app=debug"]);
        eventually(Duration::from_secs(30), "the relabelled pod released", || {
            let p = json(&k, &["get", "pod", &victim, "-n", &ns]);
            p["metadata"]["ownerReferences"].as_array().is_none_or(|o| o.is_empty()).then_some(())
        });
        eventually(Duration::from_secs(30), "3 cache pods again", || {
            (live_cache_pods(&k, &ns).len() == 3).then_some(())
        });

        // Scaling down removes pods, and the ReplicaSet reports it.
        k.ok(&["scale", "rs", "cache", "-n", &ns, "--replicas=1"]);
        eventually(Duration::from_secs(30), "1 replica", || {
            let rs = json(&k, &["get", "rs", "cache", "-n", &ns]);
            (rs["status"]["replicas"] == 1 && live_cache_pods(&k, &ns).len() == 1).then_some(())
        });
        let table = k.ok(&["get", "rs", "cache", "-n", &ns]);
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[1..4], ["1", "1", "1"], "{table}");
    }
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let (c, _sim) = cluster();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("stuck-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        let manifest = deployment(&ns, "{type: RollingUpdate}")
            .replace("  replicas: 2\n", "  replicas: 2\n  progressDeadlineSeconds: 3\n")
            .replace(
                "    spec:\n      containers:",
                "    spec:\n      nodeSelector: {e2e: nowhere}\n      containers:",
            );
        k.ok_stdin(&["apply", "-f", "-"], &manifest);
        let out = k.run(&["rollout", "status", "deploy/web", "-n", &ns, "--timeout=60s"]);
        assert!(!out.ok, "{}", out.stdout);
        assert!(
            out.stderr.contains("deployment \"web\" exceeded its progress deadline"),
            "{}{}",
            out.stdout,
            out.stderr
        );
        let d = json(&k, &["get", "deploy", "web", "-n", &ns]);
        let conditions = d["status"]["conditions"].as_array().unwrap();
        let progressing = conditions.iter().find(|c| c["type"] == "Progressing").unwrap();
        assert_eq!(
            (progressing["status"].as_str(), progressing["reason"].as_str()),
            (Some("False"), Some("ProgressDeadlineExceeded"))
        );
        let available = conditions.iter().find(|c| c["type"] == "Available").unwrap();
        assert_eq!(available["reason"], "MinimumReplicasUnavailable");
        assert_eq!(d["status"]["unavailableReplicas"], 2);
    }
}

fn live_cache_pods(k: &Kubectl, ns: &str) -> Vec<String> {
    let list = json(k, &["get", "pods", "-n", ns, "-l", "app=cache"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}
