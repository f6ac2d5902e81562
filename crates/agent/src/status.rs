//! Pod status as the kubelet computes it, from the spec and the containers' statuses:
//! the phase (`getPhase`), the conditions (`PodReadyToStartContainers`,
//! `Initialized`, `Ready`, `ContainersReady`, `PodScheduled`, in that order, each
//! keeping its transition time while unchanged) and the QoS class. Pure.

use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, HostIP, PodCondition, PodIP, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `Guaranteed`, `Burstable` or `BestEffort`, as `qos.GetPodQOS` decides.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let mut any_set = false;
    let mut guaranteed = true;
    for c in containers {
        let resources = c.resources.as_ref();
        let requests = resources.and_then(|r| r.requests.as_ref());
        let limits = resources.and_then(|r| r.limits.as_ref());
        for name in ["cpu", "memory"] {
            let request = requests.and_then(|r| r.get(name)).and_then(|q| Quantity::parse(&q.0).ok());
            let limit = limits.and_then(|l| l.get(name)).and_then(|q| Quantity::parse(&q.0).ok());
            let nonzero = |q: &Option<Quantity>| q.as_ref().is_some_and(|q| !q.is_zero());
            if nonzero(&request) || nonzero(&limit) {
                any_set = true;
            }
            match (request, limit) {
                // A request defaults to the limit.
                (None, Some(l)) if !l.is_zero() => {}
                (Some(r), Some(l)) if r.milli_ceil() == l.milli_ceil() && !l.is_zero() => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any_set, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

fn last_terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.last_state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn is_waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

/// The pod phase (`getPhase`). `terminal` is set once the pod is being finished
/// (deleted): containers that stopped then do not count as restarting.
pub fn phase(spec: &PodSpec, init: &[ContainerStatus], statuses: &[ContainerStatus], terminal: bool) -> &'static str {
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init, &c.name) else {
            pending_init += 1;
            continue;
        };
        if is_running(s) {
            pending_init += 1;
        } else if let Some(code) = terminated_code(s) {
            if code != 0 {
                failed_init += 1;
            }
        } else if is_waiting(s) {
            match last_terminated_code(s) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if is_running(s) {
            running += 1;
        } else if let Some(code) = terminated_code(s) {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if is_waiting(s) {
            if last_terminated_code(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match (terminal, policy) {
            (true, _) if stopped == succeeded => "Succeeded",
            (true, _) => "Failed",
            (false, "Always") => "Running",
            _ if stopped == succeeded => "Succeeded",
            (false, "Never") => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// What the conditions are made from besides the container statuses.
#[derive(Debug, Clone)]
pub struct ConditionInput<'a> {
    pub spec: &'a PodSpec,
    pub init: &'a [ContainerStatus],
    pub statuses: &'a [ContainerStatus],
    pub phase: &'a str,
    /// The sandbox (network namespace, IPs) exists.
    pub sandbox_ready: bool,
    /// The conditions written before (transition times carry over).
    pub previous: &'a [PodCondition],
    pub now: Timestamp,
}

fn names(list: &[&str]) -> String {
    format!("[{}]", list.join(" "))
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: &[PodCondition],
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The kubelet's conditions, in its order.
pub fn conditions(input: &ConditionInput) -> Vec<PodCondition> {
    let ConditionInput { spec, init, statuses, phase, previous, now, .. } = input;
    let now = *now;
    let mut out = Vec::new();
    out.push(condition("PodReadyToStartContainers", input.sandbox_ready, None, None, previous, now));

    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| {
            find(init, &c.name).is_none_or(|s| {
                let done = terminated_code(s) == Some(0)
                    // A finished init container whose record was released counts as done.
                    || (!is_running(s) && last_terminated_code(s) == Some(0) && !is_waiting(s));
                !done
            })
        })
        .map(|c| c.name.as_str())
        .collect();
    let initialized = if incomplete.is_empty() || *phase == "Succeeded" {
        condition(
            "Initialized",
            true,
            if *phase == "Succeeded" { Some("PodCompleted") } else { None },
            None,
            previous,
            now,
        )
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: {}", names(&incomplete))),
            previous,
            now,
        )
    };
    out.push(initialized);

    let unready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| find(statuses, &c.name).is_none_or(|s| !s.ready))
        .map(|c| c.name.as_str())
        .collect();
    let (ready, reason, message) = if *phase == "Succeeded" || *phase == "Failed" {
        (false, Some("PodCompleted"), None)
    } else if !incomplete.is_empty() {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: {}", names(&incomplete))),
        )
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (false, Some("ContainersNotReady"), Some(format!("containers with unready status: {}", names(&unready))))
    };
    out.push(condition("Ready", ready, reason, message.clone(), previous, now));
    out.push(condition("ContainersReady", ready, reason, message, previous, now));
    // The scheduler's condition, kept as it was (or set: the pod is on this node).
    out.push(
        previous
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .cloned()
            .unwrap_or_else(|| condition("PodScheduled", true, None, None, previous, now)),
    );
    // Conditions others own (DisruptionTarget, readiness gates) stay.
    for c in previous.iter() {
        if !out.iter().any(|o| o.type_ == c.type_) {
            out.push(c.clone());
        }
    }
    out
}

/// Everything a pod status is made from.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    pub spec: &'a PodSpec,
    pub init: Vec<ContainerStatus>,
    pub statuses: Vec<ContainerStatus>,
    pub previous: Option<&'a PodStatus>,
    pub pod_ips: &'a [String],
    pub host_ip: &'a str,
    pub start_time: Timestamp,
    pub sandbox_ready: bool,
    /// The pod is being finished: the phase becomes terminal.
    pub terminal: bool,
    pub now: Timestamp,
}

/// The whole status the agent writes.
pub fn pod_status(input: StatusInput) -> PodStatus {
    let previous_conditions = input.previous.and_then(|p| p.conditions.clone()).unwrap_or_default();
    // A terminal phase is never left (the kubelet's rule).
    let previous_phase = input.previous.and_then(|p| p.phase.as_deref());
    let phase = match previous_phase {
        Some(p @ ("Succeeded" | "Failed")) => {
            if p == "Succeeded" {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ => phase(input.spec, &input.init, &input.statuses, input.terminal),
    };
    let conditions = conditions(&ConditionInput {
        spec: input.spec,
        init: &input.init,
        statuses: &input.statuses,
        phase,
        sandbox_ready: input.sandbox_ready,
        previous: &previous_conditions,
        now: input.now,
    });
    let pod_ips: Vec<PodIP> = input.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect();
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: input.host_ip.to_string() }]),
        pod_ip: input.pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty()).then_some(pod_ips),
        start_time: Some(input.previous.and_then(|p| p.start_time.clone()).unwrap_or(Time(input.start_time))),
        init_container_statuses: (!input.init.is_empty()).then_some(input.init),
        container_statuses: Some(input.statuses),
        qos_class: Some(qos_class(input.spec).into()),
        ..Default::default()
    }
}

/// Whether a status differs from the one written before in what matters (not in
/// the order of fields): compared as JSON.
pub fn differs(a: &PodStatus, b: &PodStatus) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}

/// The spec's container by name (init containers too).
pub fn container<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn status(v: serde_json::Value) -> ContainerStatus {
        let mut base = json!({"name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        status(json!({"name": name, "ready": ready, "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}))
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        status(
            json!({"name": name, "state": {"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"}}}}),
        )
    }

    fn waiting(name: &str, reason: &str, last_code: Option<i32>) -> ContainerStatus {
        let mut v = json!({"name": name, "state": {"waiting": {"reason": reason}}});
        if let Some(c) = last_code {
            v["lastState"] = json!({"terminated": {"exitCode": c}});
        }
        status(v)
    }

    fn two(policy: &str) -> PodSpec {
        spec(json!({"restartPolicy": policy, "containers": [{"name": "a"}, {"name": "b"}]}))
    }

    #[test]
    fn qos_classes() {
        let be = spec(json!({"containers": [{"name": "a"}]}));
        assert_eq!(qos_class(&be), "BestEffort");
        let g = spec(json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}));
        assert_eq!(qos_class(&g), "Guaranteed", "requests default to limits");
        let g2 = spec(json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "1000m", "memory": "64Mi"}}}]}));
        assert_eq!(qos_class(&g2), "Guaranteed", "equal quantities in other spellings");
        let b = spec(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}));
        assert_eq!(qos_class(&b), "Burstable");
        let mixed = spec(json!({"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}},
            {"name": "b"}]}));
        assert_eq!(qos_class(&mixed), "Burstable");
        let init = spec(json!({"initContainers": [{"name": "i", "resources": {"requests": {"memory": "1Mi"}}}],
                               "containers": [{"name": "a"}]}));
        assert_eq!(qos_class(&init), "Burstable");
    }

    #[test]
    fn phases() {
        let s = two("Always");
        assert_eq!(phase(&s, &[], &[], false), "Pending", "nothing known yet");
        let creating = [waiting("a", "ContainerCreating", None), running("b", true)];
        assert_eq!(phase(&s, &[], &creating, false), "Pending");
        assert_eq!(phase(&s, &[], &[running("a", true), running("b", false)], false), "Running");
        let crashing = [waiting("a", "CrashLoopBackOff", Some(1)), running("b", true)];
        assert_eq!(phase(&s, &[], &crashing, false), "Running", "a restarting container counts as stopped");
        let done = [exited("a", 0), exited("b", 0)];
        assert_eq!(phase(&s, &[], &done, false), "Running", "Always restarts them");
        assert_eq!(phase(&two("Never"), &[], &done, false), "Succeeded");
        assert_eq!(phase(&two("OnFailure"), &[], &done, false), "Succeeded");
        let failed = [exited("a", 0), exited("b", 2)];
        assert_eq!(phase(&two("Never"), &[], &failed, false), "Failed");
        assert_eq!(phase(&two("OnFailure"), &[], &failed, false), "Running");
        assert_eq!(phase(&two("Never"), &[], &[exited("a", 0), running("b", true)], false), "Running");
        // Being deleted: stopped containers make the pod terminal.
        assert_eq!(phase(&s, &[], &[exited("a", 143), exited("b", 0)], true), "Failed");
        assert_eq!(phase(&s, &[], &done, true), "Succeeded");
    }

    #[test]
    fn init_container_phases() {
        let s = spec(json!({"restartPolicy": "Never", "initContainers": [{"name": "i1"}, {"name": "i2"}],
                            "containers": [{"name": "a"}]}));
        let app = [waiting("a", "PodInitializing", None)];
        assert_eq!(phase(&s, &[], &app, false), "Pending");
        assert_eq!(phase(&s, &[exited("i1", 0), running("i2", false)], &app, false), "Pending");
        assert_eq!(
            phase(&s, &[exited("i1", 0), exited("i2", 1)], &app, false),
            "Failed",
            "Never: init failure fails the pod"
        );
        let mut retry = s.clone();
        retry.restart_policy = Some("Always".into());
        let init = [exited("i1", 0), waiting("i2", "CrashLoopBackOff", Some(1))];
        assert_eq!(phase(&retry, &init, &app, false), "Pending");
        assert_eq!(phase(&s, &[exited("i1", 0), exited("i2", 0)], &[running("a", true)], false), "Running");
    }

    #[test]
    fn conditions_in_order_with_reasons() {
        let s = spec(json!({"initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}]}));
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let init = [running("i", false)];
        let app = [waiting("a", "PodInitializing", None), waiting("b", "PodInitializing", None)];
        let input = ConditionInput {
            spec: &s,
            init: &init,
            statuses: &app,
            phase: "Pending",
            sandbox_ready: true,
            previous: &[],
            now: t0,
        };
        let c = conditions(&input);
        let kinds: Vec<(&str, &str)> = c.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("PodReadyToStartContainers", "True"),
                ("Initialized", "False"),
                ("Ready", "False"),
                ("ContainersReady", "False"),
                ("PodScheduled", "True")
            ]
        );
        assert_eq!(c[1].reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(c[1].message.as_deref(), Some("containers with incomplete status: [i]"));
        let init = [exited("i", 0)];
        let app = [running("a", true), running("b", false)];
        let later = conditions(&ConditionInput {
            init: &init,
            statuses: &app,
            phase: "Running",
            previous: &c,
            now: t1,
            ..input.clone()
        });
        assert_eq!(later[1].status, "True");
        assert_eq!(later[1].last_transition_time, Some(Time(t1)));
        assert_eq!(later[0].last_transition_time, Some(Time(t0)), "unchanged keeps its time");
        assert_eq!(later[2].reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(later[2].message.as_deref(), Some("containers with unready status: [b]"));
        let app = [running("a", true), running("b", true)];
        let ready = conditions(&ConditionInput {
            init: &init,
            statuses: &app,
            phase: "Running",
            previous: &later,
            now: t1,
            ..input.clone()
        });
        assert_eq!((ready[2].status.as_str(), ready[3].status.as_str()), ("True", "True"));
        let done = conditions(&ConditionInput {
            init: &init,
            statuses: &app,
            phase: "Succeeded",
            previous: &ready,
            now: t1,
            ..input
        });
        assert_eq!(done[2].reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn the_whole_status() {
        let s = two("Always");
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let st = pod_status(StatusInput {
            spec: &s,
            init: vec![],
            statuses: vec![running("a", true), running("b", true)],
            previous: None,
            pod_ips: &["10.42.0.7".to_string()],
            host_ip: "192.168.1.2",
            start_time: t0,
            sandbox_ready: true,
            terminal: false,
            now: t0,
        });
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["phase"], "Running");
        assert_eq!(v["podIP"], "10.42.0.7");
        assert_eq!(v["podIPs"], json!([{"ip": "10.42.0.7"}]));
        assert_eq!(v["hostIPs"], json!([{"ip": "192.168.1.2"}]));
        assert_eq!(v["qosClass"], "BestEffort");
        assert_eq!(v["startTime"], "2025-01-01T00:00:00Z");
        assert!(v.get("initContainerStatuses").is_none());
        // A terminal phase stays, whatever the containers say.
        let mut prev = st.clone();
        prev.phase = Some("Failed".into());
        let again = pod_status(StatusInput {
            spec: &s,
            init: vec![],
            statuses: vec![running("a", true), running("b", true)],
            previous: Some(&prev),
            pod_ips: &[],
            host_ip: "192.168.1.2",
            start_time: t0,
            sandbox_ready: true,
            terminal: false,
            now: t0,
        });
        assert_eq!(again.phase.as_deref(), Some("Failed"));
        assert!(!differs(&st, &st.clone()));
        assert!(differs(&st, &again));
    }
}
