//! What a simulated kubelet does with a pod bound to one of its nodes, and the status
//! it reports: pure functions of the pod and the time.
//!
//! Every pod runs until deleted, except pods whose containers exit by design: those
//! with `restartPolicy: Never` or `OnFailure` that a Job owns (or that carry the
//! [`COMPLETE_AFTER`] annotation) finish after a delay, so Job tests can complete.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Seconds (decimals allowed) from start until the pod's containers exit.
pub const COMPLETE_AFTER: &str = "sim.rudder.dev/complete-after";
/// The exit code the pod's containers end with; non-zero makes the pod Failed.
pub const EXIT_CODE: &str = "sim.rudder.dev/exit-code";
/// How long a Job's pod runs when it does not say.
pub const DEFAULT_COMPLETE_AFTER: Duration = Duration::from_secs(1);

/// How a pod that runs to completion ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Completion {
    pub after: Duration,
    pub exit_code: i32,
}

/// When and how the pod's containers exit, for pods that exit by design; `None` for
/// pods that run until deleted. Unparseable annotations fall back to the defaults.
pub fn completion(pod: &Pod) -> Option<Completion> {
    let spec = pod.spec.as_ref()?;
    let restarts = spec.restart_policy.as_deref().unwrap_or("Always");
    if restarts == "Always" {
        return None;
    }
    let annotations = pod.metadata.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).map(|v| v.trim());
    let owned_by_job = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && o.api_version.starts_with("batch/") && o.controller == Some(true));
    if !owned_by_job && annotation(COMPLETE_AFTER).is_none() {
        return None;
    }
    let after = annotation(COMPLETE_AFTER)
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_COMPLETE_AFTER);
    let exit_code = annotation(EXIT_CODE).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
    Some(Completion { after, exit_code })
}

/// What to do with a pod bound to one of our nodes.
#[derive(Debug, PartialEq)]
pub enum PodAction {
    /// Nothing: it has finished, or it runs until deleted and already is Running.
    Nothing,
    /// Report it Running and Ready.
    Start,
    /// It exits by design, but not yet: look again after this long.
    WaitToFinish(Duration),
    /// Its time is up: report its containers terminated with this exit code.
    Finish { exit_code: i32 },
    /// It is being deleted: remove it for good, as a kubelet does once its
    /// containers have stopped (there are none to stop here).
    Delete { uid: String },
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Decides from the pod alone.
pub fn decide(pod: &Pod, now: Timestamp) -> PodAction {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodAction::Delete { uid: pod.metadata.uid.clone().unwrap_or_default() };
    }
    match phase(pod) {
        "Succeeded" | "Failed" => PodAction::Nothing,
        "Running" => {
            let Some(done) = completion(pod) else { return PodAction::Nothing };
            let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map_or(now, |t| t.0);
            let ran = now.duration_since(started);
            let left = SignedDuration::try_from(done.after).unwrap_or(SignedDuration::MAX) - ran;
            if left.is_positive() {
                PodAction::WaitToFinish(Duration::try_from(left).unwrap_or(done.after))
            } else {
                PodAction::Finish { exit_code: done.exit_code }
            }
        }
        _ => PodAction::Start,
    }
}

fn time(t: Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

/// The pod's conditions with `wanted` set: a condition whose status does not change
/// keeps its transition time, and conditions others own (readiness gates) stay.
fn conditions(pod: &Pod, wanted: &[(&str, &str, Option<&str>)], now: Timestamp) -> Value {
    let existing = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let mut out: Vec<Value> = wanted
        .iter()
        .map(|(kind, status, reason)| {
            let old = existing.and_then(|c| c.iter().find(|c| c.type_ == *kind));
            let since = match old {
                Some(old) if old.status == *status => old.last_transition_time.as_ref().map_or(now, |t| t.0),
                _ => now,
            };
            let mut c =
                json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": time(since)});
            if let Some(reason) = reason {
                c["reason"] = json!(reason);
            }
            c
        })
        .collect();
    for other in existing.into_iter().flatten() {
        if !wanted.iter().any(|(kind, _, _)| *kind == other.type_) {
            out.push(serde_json::to_value(other).unwrap_or(Value::Null));
        }
    }
    Value::Array(out)
}

fn container_id(pod: &Pod, c: &Container) -> String {
    format!("sim://{}-{}", pod.metadata.uid.as_deref().unwrap_or_default(), c.name)
}

fn image(c: &Container) -> &str {
    c.image.as_deref().unwrap_or_default()
}

fn running(pod: &Pod, c: &Container, since: Timestamp) -> Value {
    json!({
        "name": c.name,
        "image": image(c),
        "imageID": format!("sim://{}", image(c)),
        "containerID": container_id(pod, c),
        "ready": true,
        "started": true,
        "restartCount": 0,
        "state": {"running": {"startedAt": time(since)}},
        "lastState": {},
    })
}

fn terminated(pod: &Pod, c: &Container, exit_code: i32, started: Timestamp, finished: Timestamp) -> Value {
    json!({
        "name": c.name,
        "image": image(c),
        "imageID": format!("sim://{}", image(c)),
        "containerID": container_id(pod, c),
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"terminated": {
            "exitCode": exit_code,
            "reason": if exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": time(started),
            "finishedAt": time(finished),
            "containerID": container_id(pod, c),
        }},
        "lastState": {},
    })
}

/// Init containers ran to completion before the pod started; sidecars (init
/// containers that restart always) keep running beside the main containers.
fn init_statuses(pod: &Pod, now: Timestamp) -> Value {
    let inits = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref());
    Value::Array(
        inits
            .into_iter()
            .flatten()
            .map(|c| {
                if c.restart_policy.as_deref() == Some("Always") {
                    running(pod, c, now)
                } else {
                    terminated(pod, c, 0, now, now)
                }
            })
            .collect(),
    )
}

fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.as_ref().map(|s| s.containers.iter()).into_iter().flatten()
}

/// The merge patch that reports the pod Running and Ready on a node at `host_ip`.
pub fn pod_status_for(pod: &Pod, host_ip: Ipv4Addr, pod_ip: Ipv4Addr, now: Timestamp) -> Value {
    let start = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map_or(now, |t| t.0);
    let wanted = [
        ("PodReadyToStartContainers", "True", None),
        ("Initialized", "True", None),
        ("Ready", "True", None),
        ("ContainersReady", "True", None),
        ("PodScheduled", "True", None),
    ];
    let mut patch = json!({"status": {
        "phase": "Running",
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "startTime": time(start),
        "conditions": conditions(pod, &wanted, now),
        "containerStatuses": containers(pod).map(|c| running(pod, c, now)).collect::<Vec<_>>(),
    }});
    let inits = init_statuses(pod, now);
    if inits.as_array().is_some_and(|a| !a.is_empty()) {
        patch["status"]["initContainerStatuses"] = inits;
    }
    patch
}

/// The merge patch that reports the pod's containers exited with `exit_code`:
/// Succeeded on 0, else Failed.
pub fn pod_finished_status(pod: &Pod, exit_code: i32, now: Timestamp) -> Value {
    let start = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map_or(now, |t| t.0);
    let succeeded = exit_code == 0;
    let not_ready = if succeeded { "PodCompleted" } else { "PodFailed" };
    let wanted = [
        ("PodReadyToStartContainers", "False", None),
        ("Initialized", "True", succeeded.then_some("PodCompleted")),
        ("Ready", "False", Some(not_ready)),
        ("ContainersReady", "False", Some(not_ready)),
        ("PodScheduled", "True", None),
    ];
    let started_at = |c: &Container| {
        let status = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        let ran = status.and_then(|all| all.iter().find(|s| s.name == c.name));
        let since = ran.and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.as_ref());
        since.map_or(start, |t| t.0)
    };
    json!({"status": {
        "phase": if succeeded { "Succeeded" } else { "Failed" },
        "conditions": conditions(pod, &wanted, now),
        "containerStatuses": containers(pod).map(|c| terminated(pod, c, exit_code, started_at(c), now)).collect::<Vec<_>>(),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "sim-1", "containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
            ]}
        })
    }

    fn job_pod(annotations: Value) -> Value {
        let mut p = web();
        p["spec"]["restartPolicy"] = json!("Never");
        p["metadata"]["annotations"] = annotations;
        p["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1", "controller": true}]);
        p
    }

    fn running_since(mut p: Value, start: &str) -> Value {
        p["status"]["phase"] = json!("Running");
        p["status"]["startTime"] = json!(start);
        p
    }

    #[test]
    fn a_pending_pod_starts_and_reports_running_and_ready() {
        let now = at("2025-01-01T00:00:05Z");
        let p = pod(web());
        assert_eq!(decide(&p, now), PodAction::Start);
        let patch = pod_status_for(&p, Ipv4Addr::new(10, 255, 0, 2), Ipv4Addr::new(10, 200, 1, 2), now);
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!((s["hostIP"].as_str(), s["podIP"].as_str()), (Some("10.255.0.2"), Some("10.200.1.2")));
        assert_eq!(s["podIPs"], json!([{"ip": "10.200.1.2"}]));
        assert_eq!(s["hostIPs"], json!([{"ip": "10.255.0.2"}]));
        assert_eq!(s["startTime"], "2025-01-01T00:00:05Z");
        let conds: Vec<(&str, &str)> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            conds,
            [
                ("PodReadyToStartContainers", "True"),
                ("Initialized", "True"),
                ("Ready", "True"),
                ("ContainersReady", "True"),
                ("PodScheduled", "True")
            ]
        );
        assert_eq!(s["conditions"][4]["lastTransitionTime"], "2025-01-01T00:00:00Z", "the scheduler's time stays");
        assert_eq!(s["conditions"][2]["lastTransitionTime"], "2025-01-01T00:00:05Z");
        let statuses = s["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 2);
        assert_eq!(
            statuses[0],
            json!({"name": "nginx", "image": "nginx:1.25", "imageID": "sim://nginx:1.25",
                   "containerID": "sim://u1-nginx", "ready": true, "started": true, "restartCount": 0,
                   "state": {"running": {"startedAt": "2025-01-01T00:00:05Z"}}, "lastState": {}})
        );
        assert!(s.get("initContainerStatuses").is_none(), "no init containers, no statuses");
        // Once Running, an ordinary pod needs nothing more.
        let mut after = web();
        after["status"] = s.clone();
        assert_eq!(decide(&pod(after), now), PodAction::Nothing);
    }

    #[test]
    fn init_containers_have_run_and_sidecars_keep_running() {
        let mut p = web();
        p["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"},
                                             {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
        let patch = pod_status_for(&pod(p), Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, at("2025-01-01T00:00:00Z"));
        let inits = &patch["status"]["initContainerStatuses"];
        assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(inits[0]["state"]["terminated"]["exitCode"], 0);
        assert!(inits[1]["state"]["running"].is_object());
        assert_eq!(inits[1]["ready"], true);
    }

    #[test]
    fn other_conditions_survive_and_restarts_keep_the_start_time() {
        let mut p = running_since(web(), "2024-12-31T00:00:00Z");
        p["status"]["conditions"] = json!([
            {"type": "example.com/gate", "status": "True", "lastTransitionTime": "2024-12-31T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-12-31T00:00:01Z"}
        ]);
        let patch = pod_status_for(&pod(p), Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, at("2025-01-01T00:00:00Z"));
        let s = &patch["status"];
        assert_eq!(s["startTime"], "2024-12-31T00:00:00Z");
        assert_eq!(s["conditions"][2]["lastTransitionTime"], "2024-12-31T00:00:01Z");
        assert_eq!(s["conditions"][5]["type"], "example.com/gate");
    }

    #[test]
    fn pods_being_deleted_are_removed_whatever_their_phase() {
        for phase in ["Pending", "Running", "Succeeded"] {
            let mut p = web();
            p["status"]["phase"] = json!(phase);
            p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:30Z");
            assert_eq!(decide(&pod(p), at("2025-01-01T00:00:00Z")), PodAction::Delete { uid: "u1".into() });
        }
    }

    #[test]
    fn finished_pods_are_left_alone() {
        for phase in ["Succeeded", "Failed"] {
            let mut p = job_pod(json!({}));
            p["status"]["phase"] = json!(phase);
            assert_eq!(decide(&pod(p), at("2025-01-01T00:00:00Z")), PodAction::Nothing);
        }
    }

    #[test]
    fn only_pods_that_exit_by_design_complete() {
        assert_eq!(completion(&pod(web())), None, "restartPolicy Always runs until deleted");
        let mut bare = web();
        bare["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(completion(&pod(bare.clone())), None, "a bare pod runs until deleted unless it asks");
        bare["metadata"]["annotations"] = json!({COMPLETE_AFTER: "2.5"});
        assert_eq!(completion(&pod(bare)), Some(Completion { after: Duration::from_millis(2500), exit_code: 0 }));
        assert_eq!(
            completion(&pod(job_pod(json!({})))),
            Some(Completion { after: DEFAULT_COMPLETE_AFTER, exit_code: 0 })
        );
        let failing = job_pod(json!({COMPLETE_AFTER: "0", EXIT_CODE: "3"}));
        assert_eq!(completion(&pod(failing)), Some(Completion { after: Duration::ZERO, exit_code: 3 }));
        let garbage = job_pod(json!({COMPLETE_AFTER: "-1", EXIT_CODE: "x"}));
        assert_eq!(completion(&pod(garbage)), Some(Completion { after: DEFAULT_COMPLETE_AFTER, exit_code: 0 }));
        let mut always = job_pod(json!({}));
        always["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(completion(&pod(always)), None);
    }

    #[test]
    fn job_pods_finish_after_their_delay() {
        let p = pod(running_since(job_pod(json!({COMPLETE_AFTER: "10"})), "2025-01-01T00:00:00Z"));
        assert_eq!(decide(&p, at("2025-01-01T00:00:04Z")), PodAction::WaitToFinish(Duration::from_secs(6)));
        assert_eq!(decide(&p, at("2025-01-01T00:00:10Z")), PodAction::Finish { exit_code: 0 });
        assert_eq!(decide(&p, at("2025-01-01T00:01:00Z")), PodAction::Finish { exit_code: 0 });
        // A pending job pod starts first.
        assert_eq!(decide(&pod(job_pod(json!({}))), at("2025-01-01T00:00:00Z")), PodAction::Start);
    }

    #[test]
    fn finished_status_says_completed_or_error() {
        let mut p = running_since(job_pod(json!({})), "2025-01-01T00:00:00Z");
        p["status"]["containerStatuses"] = json!([{"name": "nginx", "image": "nginx:1.25", "imageID": "", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": "2025-01-01T00:00:01Z"}}}]);
        let p = pod(p);
        let now = at("2025-01-01T00:00:09Z");
        let ok = pod_finished_status(&p, 0, now);
        assert_eq!(ok["status"]["phase"], "Succeeded");
        let term = &ok["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["reason"], "Completed");
        assert_eq!(term["exitCode"], 0);
        assert_eq!(term["startedAt"], "2025-01-01T00:00:01Z");
        assert_eq!(term["finishedAt"], "2025-01-01T00:00:09Z");
        assert_eq!(ok["status"]["containerStatuses"][1]["state"]["terminated"]["startedAt"], "2025-01-01T00:00:00Z");
        let ready = ok["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("PodCompleted")));
        let bad = pod_finished_status(&p, 2, now);
        assert_eq!(bad["status"]["phase"], "Failed");
        assert_eq!(bad["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Error");
        assert_eq!(bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 2);
    }
}
