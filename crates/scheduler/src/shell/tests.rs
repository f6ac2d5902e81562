//! The shell's logic without a server: watch events fed to [`State`], decisions
//! executed against a recording [`Writer`].

use super::*;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;
use std::sync::Mutex as StdMutex;

#[derive(Default)]
struct Recording {
    calls: StdMutex<Vec<String>>,
    patches: StdMutex<Vec<Value>>,
    events: StdMutex<Vec<Event>>,
    fail_bind: bool,
}

impl Recording {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Writer for Recording {
    async fn bind(&self, pod: &PodRef, node: &str) -> Result<(), writer::Error> {
        self.calls.lock().unwrap().push(format!("bind {}/{} {node}", pod.namespace, pod.name));
        if self.fail_bind {
            return Err(writer::Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded));
        }
        Ok(())
    }
    async fn patch_pod_status(&self, pod: &PodRef, patch: Value) -> Result<(), writer::Error> {
        self.calls.lock().unwrap().push(format!("status {}", pod.name));
        self.patches.lock().unwrap().push(patch);
        Ok(())
    }
    async fn delete_pod(&self, pod: &PodRef) -> Result<(), writer::Error> {
        self.calls.lock().unwrap().push(format!("delete {}", pod.name));
        Ok(())
    }
    async fn create_event(&self, event: &Event) -> Result<(), writer::Error> {
        let name = event.involved_object.name.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(format!("event {} {name}", event.reason.clone().unwrap_or_default()));
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
    async fn update_event(&self, event: &Event) -> Result<(), writer::Error> {
        let name = event.involved_object.name.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(format!(
            "event+ {} {name} x{}",
            event.reason.clone().unwrap_or_default(),
            event.count.unwrap_or(0)
        ));
        Ok(())
    }
}

fn node(name: &str, cpu: &str, extra: Value) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut n, extra);
    serde_json::from_value(n).unwrap()
}

fn pod(name: &str, cpu: &str, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": "Pending"},
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            match b.get_mut(&k) {
                Some(bv @ Value::Object(_)) if v.is_object() => merge(bv, v),
                _ => {
                    b.insert(k, v);
                }
            }
        }
    }
}

fn synced_state(nodes: &[Node]) -> State {
    let mut s = State::new(1, "default-scheduler-test");
    let now = Instant::now();
    for n in nodes {
        s.on_node(n, now);
    }
    s.set_synced(true, true);
    s
}

fn shared(s: State) -> Shared {
    Shared { state: Mutex::new(s), wake: tokio::sync::Notify::new() }
}

fn wall() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

#[tokio::test]
async fn a_pending_pod_is_bound_and_gets_a_scheduled_event() {
    let mut s = synced_state(&[node("small", "1", json!({})), node("big", "8", json!({}))]);
    let now = Instant::now();
    s.on_pod(&pod("web", "4", json!({})), now);
    let action = s.schedule_next(now, wall()).unwrap();
    assert_eq!(
        action,
        Action::Bind {
            pod: PodRef { namespace: "default".into(), name: "web".into(), uid: "uid-web".into() },
            node: "big".into()
        }
    );
    assert_eq!(s.snapshot.node("big").unwrap().requested.milli_cpu, 4000, "assumed at once");

    let shared = shared(s);
    let w = Recording::default();
    execute(&shared, &w, action).await;
    assert_eq!(w.calls(), vec!["bind default/web big", "event Scheduled web"]);
    let ev = w.events.lock().unwrap()[0].clone();
    assert_eq!(ev.message.as_deref(), Some("Successfully assigned default/web to big"));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.reporting_component.as_deref(), Some("default-scheduler"));
    assert!(ev.metadata.name.unwrap().starts_with("web."));
    let mut s = shared.state.into_inner().unwrap();
    assert!(s.queue.is_empty());

    // The stale pending version arriving late changes nothing; the bound one confirms.
    s.on_pod(&pod("web", "4", json!({})), now);
    assert!(s.queue.is_empty());
    s.on_pod(&pod("web", "4", json!({"spec": {"nodeName": "big"}})), now);
    assert_eq!(s.snapshot.node("big").unwrap().pods.len(), 1);
}

#[test]
fn nothing_is_scheduled_before_the_first_lists_are_in() {
    let mut s = State::new(1, "x");
    let now = Instant::now();
    s.on_node(&node("n1", "1", json!({})), now);
    s.on_pod(&pod("web", "100m", json!({})), now);
    s.set_synced(true, false);
    assert!(s.schedule_next(now, wall()).is_none());
    s.set_synced(false, true);
    assert!(s.schedule_next(now, wall()).is_some());
}

#[test]
fn only_pending_pods_for_this_scheduler_are_queued() {
    let mut s = synced_state(&[node("n1", "1", json!({}))]);
    let now = Instant::now();
    s.on_pod(&pod("other", "100m", json!({"spec": {"schedulerName": "custom"}})), now);
    s.on_pod(&pod("going", "100m", json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})), now);
    s.on_pod(&pod("bound", "100m", json!({"spec": {"nodeName": "n1"}})), now);
    s.on_pod(&pod("done", "100m", json!({"status": {"phase": "Succeeded"}})), now);
    s.on_pod(&pod("gated", "100m", json!({"spec": {"schedulingGates": [{"name": "wait"}]}})), now);
    assert!(s.queue.is_empty());
    assert_eq!(s.snapshot.node("n1").unwrap().requested.milli_cpu, 100, "bound pods count on their node");
    s.on_pod(&pod("gated", "100m", json!({})), now);
    assert_eq!(s.queue.len(), 1, "a pod whose gates are removed is queued");
    s.on_pod(&pod("bound", "100m", json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}})), now);
    assert_eq!(s.snapshot.node("n1").unwrap().requested.milli_cpu, 0, "finished pods free their resources");
}

#[test]
fn higher_priority_pods_go_first() {
    let mut s = synced_state(&[node("n1", "1", json!({}))]);
    let now = Instant::now();
    s.on_pod(&pod("low", "800m", json!({})), now);
    s.on_pod(&pod("high", "800m", json!({"spec": {"priority": 1000}})), now);
    match s.schedule_next(now, wall()).unwrap() {
        Action::Bind { pod, .. } => assert_eq!(pod.name, "high"),
        other => panic!("{other:?}"),
    }
    match s.schedule_next(now, wall()).unwrap() {
        Action::Unschedulable { pod, message, .. } => {
            assert_eq!(pod.name, "low");
            assert_eq!(
                message,
                "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unschedulable_pods_get_an_event_and_the_condition_once() {
    let tainted = node(
        "cp",
        "4",
        json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
    );
    let mut s = synced_state(&[tainted, node("w1", "1", json!({})), node("w2", "1", json!({}))]);
    let t0 = Instant::now();
    s.on_pod(&pod("big", "2", json!({})), t0);
    let action = s.schedule_next(t0, wall()).unwrap();
    let Action::Unschedulable { message, status_patch, preemption, .. } = &action else { panic!("{action:?}") };
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    assert!(preemption.is_none());
    assert_eq!(
        status_patch.clone().unwrap(),
        json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": null, "lastTransitionTime": "2023-11-14T22:13:20Z",
        }]}})
    );
    let shared = shared(s);
    let w = Recording::default();
    execute(&shared, &w, action).await;
    assert_eq!(w.calls(), vec!["event FailedScheduling big", "status big"]);
    assert_eq!(w.events.lock().unwrap()[0].type_.as_deref(), Some("Warning"));

    // Retried after a change and still unschedulable: same message, no new patch, event count 2.
    let mut s = shared.state.into_inner().unwrap();
    s.on_node(&node("w3", "1", json!({})), t0);
    assert!(s.schedule_next(t0, wall()).is_none(), "backing off for 1s");
    let action = s.schedule_next(t0 + Duration::from_secs(1), wall()).unwrap();
    let Action::Unschedulable { status_patch, message: second, .. } = &action else { panic!("{action:?}") };
    let second = second.clone();
    // The message now says 0/4, so the condition changes, without a new transition time.
    let patch = status_patch.clone().unwrap();
    assert!(patch["status"]["conditions"][0].get("lastTransitionTime").is_none());
    let shared2 = super::Shared { state: Mutex::new(s), wake: tokio::sync::Notify::new() };
    execute(&shared2, &w, action).await;
    let mut s = shared2.state.into_inner().unwrap();
    // The watch shows the patched pod: it stays parked, and the condition is known.
    let patched = json!({"status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": second},
    ]}});
    s.on_pod(&pod("big", "2", patched), t0);
    assert_eq!(s.queue.place("uid-big"), Some(queue::Place::Unschedulable));
    s.queue.move_all(t0 + Duration::from_secs(10));
    let action = s.schedule_next(t0 + Duration::from_secs(10), wall()).unwrap();
    let Action::Unschedulable { status_patch, .. } = &action else { panic!("{action:?}") };
    assert!(status_patch.is_none(), "same message: the condition is already right");
    let shared3 = super::Shared { state: Mutex::new(s), wake: tokio::sync::Notify::new() };
    execute(&shared3, &w, action).await;
    assert_eq!(w.calls().last().unwrap(), "event+ FailedScheduling big x2");
}

#[test]
fn new_nodes_bring_parked_pods_back_but_heartbeats_do_not() {
    let n1 = node("n1", "1", json!({}));
    let mut s = synced_state(std::slice::from_ref(&n1));
    let t0 = Instant::now();
    s.on_pod(&pod("big", "2", json!({})), t0);
    assert!(matches!(s.schedule_next(t0, wall()), Some(Action::Unschedulable { .. })));
    let later = t0 + Duration::from_secs(5);
    let mut beat = n1.clone();
    beat.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(wall()));
    s.on_node(&beat, later);
    assert!(s.schedule_next(later, wall()).is_none(), "a heartbeat changes nothing the pod needs");
    s.on_node(&node("n2", "4", json!({})), later);
    match s.schedule_next(later, wall()) {
        Some(Action::Bind { node, .. }) => assert_eq!(node, "n2"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failed_bindings_are_forgotten_and_retried() {
    let mut s = synced_state(&[node("n1", "1", json!({}))]);
    let t0 = Instant::now();
    s.on_pod(&pod("web", "500m", json!({})), t0);
    let action = s.schedule_next(t0, wall()).unwrap();
    let shared = shared(s);
    let w = Recording { fail_bind: true, ..Default::default() };
    execute(&shared, &w, action).await;
    assert_eq!(w.calls()[0], "bind default/web n1");
    assert_eq!(w.calls()[1], "event FailedScheduling web");
    assert!(w.events.lock().unwrap()[0].message.as_deref().unwrap().starts_with("Binding rejected: "));
    let mut s = shared.state.into_inner().unwrap();
    assert_eq!(s.snapshot.node("n1").unwrap().requested.milli_cpu, 0, "the assumption is undone");
    assert!(s.schedule_next(Instant::now(), wall()).is_none(), "backing off");
    assert!(matches!(s.schedule_next(Instant::now() + Duration::from_secs(2), wall()), Some(Action::Bind { .. })));
}

#[tokio::test]
async fn preemption_evicts_victims_and_nominates_the_node() {
    let mut s = synced_state(&[node("n1", "1", json!({}))]);
    let t0 = Instant::now();
    s.on_pod(&pod("low", "800m", json!({"spec": {"nodeName": "n1", "priority": 1}})), t0);
    s.on_pod(&pod("vip", "800m", json!({"spec": {"priority": 100}})), t0);
    let action = s.schedule_next(t0, wall()).unwrap();
    let Action::Unschedulable { message, status_patch, preemption, .. } = &action else { panic!("{action:?}") };
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
    assert_eq!(preemption.as_ref().unwrap().0, "n1");
    assert_eq!(status_patch.as_ref().unwrap()["status"]["nominatedNodeName"], "n1");
    let shared = shared(s);
    let w = Recording::default();
    execute(&shared, &w, action).await;
    assert_eq!(
        w.calls(),
        vec!["event Preempted low", "status low", "delete low", "event FailedScheduling vip", "status vip"]
    );
    assert_eq!(w.events.lock().unwrap()[0].message.as_deref(), Some("Preempted by pod uid-vip on node n1"));
    assert_eq!(w.patches.lock().unwrap()[0]["status"]["conditions"][0]["reason"], "PreemptionByScheduler");

    // Once the victim is gone the pod goes to its nominated node.
    let mut s = shared.state.into_inner().unwrap();
    s.on_pod_deleted("uid-low", t0);
    s.on_pod(&pod("vip", "800m", json!({"spec": {"priority": 100}, "status": {"nominatedNodeName": "n1"}})), t0);
    let later = t0 + Duration::from_secs(1);
    match s.schedule_next(later, wall()) {
        Some(Action::Bind { node, .. }) => assert_eq!(node, "n1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn relists_drop_what_is_gone() {
    let mut s = synced_state(&[node("n1", "1", json!({})), node("n2", "1", json!({}))]);
    let now = Instant::now();
    s.on_pod(&pod("a", "100m", json!({"spec": {"nodeName": "n1"}})), now);
    s.on_pod(&pod("b", "100m", json!({})), now);
    s.retain_pods(&HashSet::new(), now);
    assert!(s.queue.is_empty());
    assert_eq!(s.snapshot.node("n1").unwrap().pods.len(), 0);
    s.retain_nodes(&["n2".to_string()].into_iter().collect());
    assert!(s.snapshot.node("n1").is_none());
    assert!(s.snapshot.node("n2").is_some());
}
