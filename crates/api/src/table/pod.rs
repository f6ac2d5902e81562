//! The Pod row: upstream `printPod`, whose Status column condenses phase, init
//! containers, container states and deletion into one word.

use super::fields::{arr_at, bool_at, int_at, is_deleting, name, obj_at, str_at, time_at};
use super::time::{Nanos, since};
use serde_json::Value;

/// The pod reason the node lifecycle controller sets on pods of an unreachable node.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

pub(super) fn row(pod: &Value, now: Nanos) -> Vec<Value> {
    let phase = str_at(pod, "/status/phase");
    let status_reason = str_at(pod, "/status/reason");
    let conditions = arr_at(pod, "/status/conditions");
    let mut reason = if status_reason.is_empty() { phase.to_string() } else { status_reason.to_string() };

    if conditions.iter().any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated") {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = arr_at(pod, "/spec/initContainers");
    // Sidecars (restartable init containers) run beside the main containers and count
    // towards READY.
    let total = arr_at(pod, "/spec/containers").len() + init_specs.iter().filter(|c| is_restartable(c)).count();
    // Upstream looks statuses up in a map by name, so the last spec of a name wins.
    let restartable_named =
        |n: &str| init_specs.iter().rev().find(|c| str_at(c, "/name") == n).is_some_and(is_restartable);

    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart: Option<Nanos> = None;
    let mut last_restartable_restart: Option<Nanos> = None;
    let mut initializing = false;

    for (i, status) in arr_at(pod, "/status/initContainerStatuses").iter().enumerate() {
        let count = int_at(status, "/restartCount");
        let finished = time_at(status, "/lastState/terminated/finishedAt");
        restarts = restarts.saturating_add(count);
        keep_latest(&mut last_restart, finished);
        let restartable = restartable_named(str_at(status, "/name"));
        if restartable {
            restartable_restarts = restartable_restarts.saturating_add(count);
            keep_latest(&mut last_restartable_restart, finished);
        }
        let terminated = obj_at(status, "/state/terminated");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if restartable && bool_at(status, "/started") {
            if bool_at(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(status, "/state/waiting/reason");
        reason = if let Some(t) = terminated {
            match str_at(t, "/reason") {
                "" => match int_at(t, "/signal") {
                    0 => format!("Init:ExitCode:{}", int_at(t, "/exitCode")),
                    signal => format!("Init:Signal:{signal}"),
                },
                r => format!("Init:{r}"),
            }
        } else if obj_at(status, "/state/waiting").is_some()
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        // Only sidecar restarts carry over: finished init containers no longer matter.
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for status in arr_at(pod, "/status/containerStatuses").iter().rev() {
            restarts = restarts.saturating_add(int_at(status, "/restartCount"));
            keep_latest(&mut last_restart, time_at(status, "/lastState/terminated/finishedAt"));
            let waiting_reason = str_at(status, "/state/waiting/reason");
            let terminated = obj_at(status, "/state/terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match (str_at(t, "/reason"), int_at(t, "/signal")) {
                    ("", 0) => format!("ExitCode:{}", int_at(t, "/exitCode")),
                    ("", signal) => format!("Signal:{signal}"),
                    (r, _) => r.to_string(),
                };
            } else if bool_at(status, "/ready") && obj_at(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose finished container was printed last still has one running.
        if reason == "Completed" && has_running {
            reason = if conditions.iter().any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if is_deleting(pod) && status_reason == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_string();
    } else if is_deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let node = or_none(str_at(pod, "/spec/nodeName"));
    let nominated = or_none(str_at(pod, "/status/nominatedNodeName"));
    let gates = arr_at(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| {
                // The first condition of the gate's type decides.
                let wanted = str_at(g, "/conditionType");
                conditions.iter().find(|c| str_at(c, "/type") == wanted).is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };

    vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        super::age(pod, now),
        Value::from(or_none(pod_ip(pod))),
        Value::from(node),
        Value::from(nominated),
        Value::from(readiness_gates),
    ]
}

/// The first pod IP. `status.podIP` wins over `podIPs` when both are set, as in
/// upstream's conversion from v1 (older kubelets only set `podIP`).
fn pod_ip(pod: &Value) -> &str {
    match str_at(pod, "/status/podIP") {
        "" => arr_at(pod, "/status/podIPs").first().map(|ip| str_at(ip, "/ip")).unwrap_or(""),
        ip => ip,
    }
}

fn is_restartable(container: &Value) -> bool {
    str_at(container, "/restartPolicy") == "Always"
}

/// The first condition of a type decides, as upstream's lookups do.
fn condition_true(conditions: &[Value], type_: &str) -> bool {
    conditions.iter().find(|c| str_at(c, "/type") == type_).is_some_and(|c| str_at(c, "/status") == "True")
}

fn keep_latest(latest: &mut Option<Nanos>, candidate: Option<Nanos>) {
    if candidate > *latest {
        *latest = candidate;
    }
}

fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".to_string() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use crate::table::testing::cells;
    use serde_json::{Value, json};

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-7d4b9c8f6-x2x9k", "namespace": "default", "creationTimestamp": "2025-06-01T11:00:00Z"},
            "spec": spec,
            "status": status
        })
    }

    fn two_containers() -> Value {
        json!({"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx"}, {"name": "log", "image": "busybox"}]})
    }

    fn status_of(cells: &[Value]) -> (&str, &str, &str) {
        (cells[1].as_str().unwrap(), cells[2].as_str().unwrap(), cells[3].as_str().unwrap())
    }

    #[test]
    fn running_pod_fills_every_column() {
        let p = pod(
            json!({"nodeName": "node-1", "containers": [{"name": "web"}, {"name": "log"}],
                   "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
            json!({
                "phase": "Running",
                "podIP": "10.42.0.7",
                "podIPs": [{"ip": "10.42.0.7"}, {"ip": "fd00::7"}],
                "nominatedNodeName": "node-2",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "example.com/lb", "status": "True"},
                    {"type": "example.com/dns", "status": "False"}
                ],
                "containerStatuses": [
                    {"name": "web", "ready": true, "restartCount": 3, "state": {"running": {"startedAt": "2025-06-01T11:54:00Z"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:55:00Z"}}},
                    {"name": "log", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:50:00Z"}}}
                ]
            }),
        );
        assert_eq!(
            cells("", "pods", &p),
            [
                json!("web-7d4b9c8f6-x2x9k"),
                json!("2/2"),
                json!("Running"),
                json!("5 (5m ago)"),
                json!("60m"),
                json!("10.42.0.7"),
                json!("node-1"),
                json!("node-2"),
                json!("1/2"),
            ]
        );
    }

    #[test]
    fn pending_pod_shows_placeholders() {
        let p = pod(json!({"containers": [{"name": "web"}]}), json!({"phase": "Pending"}));
        assert_eq!(
            cells("", "pods", &p),
            [
                json!("web-7d4b9c8f6-x2x9k"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("60m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_ip_falls_back_to_pod_ips() {
        let p = pod(two_containers(), json!({"phase": "Running", "podIPs": [{"ip": "fd00::9"}]}));
        assert_eq!(cells("", "pods", &p)[5], json!("fd00::9"));
    }

    #[test]
    fn waiting_reasons_replace_the_phase() {
        for reason in
            ["ContainerCreating", "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"]
        {
            let p = pod(
                two_containers(),
                json!({"phase": if reason == "CrashLoopBackOff" { "Running" } else { "Pending" },
                "containerStatuses": [
                    {"name": "web", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}},
                    {"name": "log", "ready": true, "restartCount": 0, "state": {"running": {}}}
                ]}),
            );
            assert_eq!(status_of(&cells("", "pods", &p)), ("1/2", reason, "0"));
        }
    }

    #[test]
    fn crash_loop_counts_restarts_with_last_restart_age() {
        let p = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 7,
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                 "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "2025-06-01T09:00:00Z"}}}
            ]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("0/1", "CrashLoopBackOff", "7 (3h ago)"));
    }

    #[test]
    fn terminated_containers_print_reason_signal_or_exit_code() {
        for (terminated, want) in [
            (json!({"exitCode": 137, "reason": "OOMKilled"}), "OOMKilled"),
            (json!({"exitCode": 0, "reason": "Completed"}), "Completed"),
            (json!({"exitCode": 1, "reason": "Error"}), "Error"),
            (json!({"exitCode": 143, "signal": 15}), "Signal:15"),
            (json!({"exitCode": 3}), "ExitCode:3"),
        ] {
            let p = pod(
                json!({"containers": [{"name": "web"}]}),
                json!({"phase": "Failed", "containerStatuses": [{"name": "web", "state": {"terminated": terminated}}]}),
            );
            assert_eq!(status_of(&cells("", "pods", &p)), ("0/1", want, "0"));
        }
    }

    #[test]
    fn succeeded_pod_is_completed() {
        let p = pod(
            json!({"containers": [{"name": "job"}]}),
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "job", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2025-06-01T11:10:00Z"}}}
            ]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("0/1", "Completed", "0"));
    }

    #[test]
    fn completed_container_beside_running_one_reads_running_or_not_ready() {
        let statuses = json!([
            {"name": "web", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "log", "ready": true, "state": {"running": {}}}
        ]);
        let ready = pod(
            two_containers(),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": statuses}),
        );
        assert_eq!(status_of(&cells("", "pods", &ready)), ("1/2", "Running", "0"));
        let not_ready = pod(
            two_containers(),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": statuses}),
        );
        assert_eq!(status_of(&cells("", "pods", &not_ready)), ("1/2", "NotReady", "0"));
    }

    #[test]
    fn init_containers_show_progress() {
        let spec = json!({"initContainers": [{"name": "migrate"}, {"name": "seed"}], "containers": [{"name": "web"}]});
        let running_first = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "migrate", "ready": false, "restartCount": 0, "state": {"running": {}}},
                {"name": "seed", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ], "containerStatuses": [{"name": "web", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        assert_eq!(status_of(&cells("", "pods", &running_first)), ("0/1", "Init:0/2", "0"));

        let second = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "seed", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}),
        );
        assert_eq!(status_of(&cells("", "pods", &second)), ("0/1", "Init:1/2", "0"));

        let no_statuses = pod(spec.clone(), json!({"phase": "Pending"}));
        assert_eq!(status_of(&cells("", "pods", &no_statuses)), ("0/1", "Pending", "0"));
    }

    #[test]
    fn failing_init_containers_show_their_reason() {
        let spec = json!({"initContainers": [{"name": "migrate"}], "containers": [{"name": "web"}]});
        for (state, want) in [
            (json!({"waiting": {"reason": "CrashLoopBackOff"}}), "Init:CrashLoopBackOff"),
            (json!({"waiting": {"reason": "ErrImagePull"}}), "Init:ErrImagePull"),
            (json!({"terminated": {"exitCode": 1, "reason": "Error"}}), "Init:Error"),
            (json!({"terminated": {"exitCode": 137, "signal": 9}}), "Init:Signal:9"),
            (json!({"terminated": {"exitCode": 2}}), "Init:ExitCode:2"),
            (json!({"waiting": {}}), "Init:0/1"),
        ] {
            let p = pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "migrate", "restartCount": 4, "state": state,
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:58:00Z"}}}
                ]}),
            );
            assert_eq!(status_of(&cells("", "pods", &p)), ("0/1", want, "4 (2m ago)"), "{want}");
        }
    }

    #[test]
    fn pod_initializing_once_init_is_done() {
        let p = pod(
            json!({"initContainers": [{"name": "migrate"}], "containers": [{"name": "web"}]}),
            json!({"phase": "Pending",
                   "conditions": [{"type": "Initialized", "status": "True"}],
                   "initContainerStatuses": [
                       {"name": "migrate", "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:30:00Z"}}}],
                   "containerStatuses": [{"name": "web", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        // Restarts of finished init containers no longer count once the pod is initialized.
        assert_eq!(status_of(&cells("", "pods", &p)), ("0/1", "PodInitializing", "0"));
    }

    #[test]
    fn sidecars_count_towards_ready_and_restarts() {
        let p = pod(
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "migrate"}],
                   "containers": [{"name": "web"}]}),
            json!({"phase": "Running",
                   "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "initContainerStatuses": [
                       {"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:40:00Z"}}},
                       {"name": "migrate", "restartCount": 3, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:50:00Z"}}}],
                   "containerStatuses": [{"name": "web", "ready": true, "restartCount": 1, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:20:00Z"}}}]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("2/2", "Running", "3 (20m ago)"));
    }

    #[test]
    fn sidecar_not_started_blocks_initialization() {
        let p = pod(
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "web"}]}),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "proxy", "started": false, "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("0/2", "Init:0/1", "0"));
    }

    #[test]
    fn deletion_shows_terminating_or_unknown() {
        let mut p = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": true, "state": {"running": {}}}]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2025-06-01T11:59:30Z");
        assert_eq!(status_of(&cells("", "pods", &p)), ("1/1", "Terminating", "0"));

        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(status_of(&cells("", "pods", &p)), ("1/1", "Unknown", "0"));

        let mut done = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "web", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        done["metadata"]["deletionTimestamp"] = json!("2025-06-01T11:59:30Z");
        assert_eq!(status_of(&cells("", "pods", &done)), ("0/1", "Completed", "0"));
    }

    #[test]
    fn pod_level_reasons_and_scheduling_gates() {
        let evicted = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
        );
        assert_eq!(status_of(&cells("", "pods", &evicted)), ("0/1", "Evicted", "0"));

        let gated = pod(
            json!({"containers": [{"name": "web"}], "schedulingGates": [{"name": "example.com/quota"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(status_of(&cells("", "pods", &gated)), ("0/1", "SchedulingGated", "0"));
    }

    #[test]
    fn absurd_restart_counts_do_not_overflow() {
        let p = pod(
            two_containers(),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "web", "restartCount": i64::MAX, "state": {"running": {}}},
                {"name": "log", "restartCount": i64::MAX, "state": {"running": {}}}
            ]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("0/2", "Running", i64::MAX.to_string().as_str()));
    }

    #[test]
    fn restarts_without_a_finish_time_have_no_suffix() {
        let p = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": true, "restartCount": 4, "state": {"running": {}}}]}),
        );
        assert_eq!(status_of(&cells("", "pods", &p)), ("1/1", "Running", "4"));
    }
}
