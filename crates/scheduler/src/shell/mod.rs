//! The async shell: watches keep a [`Snapshot`] and the [`SchedulingQueue`] current,
//! one loop pops pods and asks the core, and the outcome is written through a
//! [`Writer`] (bind, events, status patches, preemption). [`State`] holds the logic
//! and is driven by plain calls in tests; [`run`] wires it to the API.

pub mod queue;
pub mod writer;

use crate::core::model::PodInfo;
use crate::core::{Scheduler, Snapshot, convert};
use futures_util::StreamExt;
use informer::{Informer, Informers, Kind};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::watcher::Event as WatchEvent;
use queue::SchedulingQueue;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use writer::{KubeWriter, PodRef, Recorder, SCHEDULER_NAME, Writer};

/// How many API writes may be outstanding before scheduling waits for them.
const MAX_IN_FLIGHT_WRITES: usize = 256;

/// What the pod's current PodScheduled condition says, to avoid rewriting it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Condition {
    status: String,
    reason: String,
    message: String,
}

#[derive(Clone, Debug)]
struct Pending {
    pod: PodRef,
    condition: Option<Condition>,
    nominated: Option<String>,
}

/// What to write after a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Bind {
        pod: PodRef,
        node: String,
    },
    Unschedulable {
        pod: PodRef,
        /// The FailedScheduling text.
        message: String,
        /// The strategic merge patch of `pods/status`, if anything changes.
        status_patch: Option<serde_json::Value>,
        /// The node preemption nominated and the pods to evict there.
        preemption: Option<(String, Vec<PodRef>)>,
    },
}

/// The scheduler's memory: snapshot, queue, what is pending and what is assumed.
pub struct State {
    pub snapshot: Snapshot,
    pub queue: SchedulingQueue,
    core: Scheduler,
    pending: HashMap<String, Pending>,
    /// Pods bound (or being bound) that the pod watch has not yet shown bound.
    assumed: HashSet<String>,
    pdbs: HashMap<(String, String), crate::core::Pdb>,
    recorder: Recorder,
    nodes_synced: bool,
    pods_synced: bool,
}

fn pod_ref(p: &PodInfo) -> PodRef {
    PodRef { namespace: p.namespace.clone(), name: p.name.clone(), uid: p.uid.clone() }
}

fn created_ns(pod: &Pod) -> i64 {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0.as_nanosecond() as i64).unwrap_or(0)
}

fn scheduled_condition(pod: &Pod) -> Option<Condition> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")?;
    Some(Condition {
        status: c.status.clone(),
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    })
}

/// Whether this scheduler should place the pod: pending, for `default-scheduler`,
/// not being deleted, and without scheduling gates (upstream's SchedulingGates keeps
/// gated pods out of the queue).
pub fn is_ours(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && spec.and_then(|s| s.node_name.as_deref()).unwrap_or("").is_empty()
        && spec.and_then(|s| s.scheduling_gates.as_ref()).is_none_or(Vec::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && !convert::is_terminal(pod)
}

/// A time as the API writes it: RFC 3339 in whole seconds, UTC.
fn rfc3339(t: Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap_or_default()
}

/// The patch setting PodScheduled=False (and the nominated node), or `None` when the
/// pod already says exactly that. The transition time moves only when the status does.
fn unschedulable_patch(
    current: Option<&Condition>,
    nominated_now: Option<&str>,
    message: &str,
    nominate: Option<&str>,
    now: Timestamp,
) -> Option<serde_json::Value> {
    let wanted = Condition { status: "False".into(), reason: "Unschedulable".into(), message: message.into() };
    let condition_same = current == Some(&wanted);
    let nominate_same = nominate.is_none() || nominate == nominated_now;
    if condition_same && nominate_same {
        return None;
    }
    let mut cond = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
    });
    if current.is_none_or(|c| c.status != "False") {
        cond["lastTransitionTime"] = json!(rfc3339(now));
    }
    let mut status = json!({"conditions": [cond]});
    if let Some(n) = nominate {
        status["nominatedNodeName"] = json!(n);
    }
    Some(json!({"status": status}))
}

impl State {
    pub fn new(seed: u64, instance: &str) -> State {
        State {
            snapshot: Snapshot::new(),
            queue: SchedulingQueue::new(),
            core: Scheduler::new(seed),
            pending: HashMap::new(),
            assumed: HashSet::new(),
            pdbs: HashMap::new(),
            recorder: Recorder::new(instance),
            nodes_synced: false,
            pods_synced: false,
        }
    }

    /// Marks the initial lists done; scheduling waits for both.
    pub fn set_synced(&mut self, nodes: bool, pods: bool) {
        self.nodes_synced |= nodes;
        self.pods_synced |= pods;
    }

    pub fn on_node(&mut self, node: &Node, now: Instant) {
        let n = convert::node(node);
        if self.snapshot.node(&n.name).is_some_and(|i| i.node == n) {
            return; // a heartbeat: nothing scheduling reads changed
        }
        self.snapshot.upsert_node(n);
        self.queue.move_all(now);
    }

    pub fn on_node_deleted(&mut self, name: &str) {
        self.snapshot.remove_node(name);
    }

    pub fn on_pod(&mut self, pod: &Pod, now: Instant) {
        let info = convert::pod_info(pod);
        let uid = info.uid.clone();
        if info.node_name.is_some() {
            self.queue.remove(&uid);
            self.pending.remove(&uid);
            self.assumed.remove(&uid);
            self.snapshot.clear_nominated(&uid);
            if convert::is_terminal(pod) {
                if self.snapshot.remove_pod(&uid).is_some() {
                    self.queue.move_all(now);
                }
            } else {
                self.snapshot.add_pod(Arc::new(info));
            }
            return;
        }
        if self.assumed.contains(&uid) {
            return; // being bound: the pending version is stale
        }
        if !is_ours(pod) {
            self.forget_pending(&uid);
            return;
        }
        self.pending.insert(
            uid.clone(),
            Pending {
                pod: pod_ref(&info),
                condition: scheduled_condition(pod),
                nominated: info.nominated_node.clone(),
            },
        );
        self.snapshot.set_nominated(&info);
        self.queue.add_or_update(Arc::new(info), created_ns(pod), now);
    }

    fn forget_pending(&mut self, uid: &str) {
        self.queue.remove(uid);
        self.pending.remove(uid);
        self.snapshot.clear_nominated(uid);
    }

    pub fn on_pod_deleted(&mut self, uid: &str, now: Instant) {
        self.forget_pending(uid);
        self.assumed.remove(uid);
        self.recorder.forget(uid);
        if self.snapshot.remove_pod(uid).is_some() {
            self.queue.move_all(now);
        }
    }

    /// After a re-list: forgets pods that were not listed.
    pub fn retain_pods(&mut self, listed: &HashSet<String>, now: Instant) {
        let gone: Vec<String> =
            self.snapshot.pod_uids().chain(self.pending.keys()).filter(|u| !listed.contains(*u)).cloned().collect();
        for uid in gone {
            self.on_pod_deleted(&uid, now);
        }
    }

    pub fn retain_nodes(&mut self, listed: &HashSet<String>) {
        let gone: Vec<String> =
            self.snapshot.nodes().iter().map(|n| n.node.name.clone()).filter(|n| !listed.contains(n)).collect();
        for name in gone {
            self.snapshot.remove_node(&name);
        }
    }

    pub fn on_namespace(&mut self, ns: &Namespace) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        self.snapshot.set_namespace(&name, ns.metadata.labels.clone().unwrap_or_default());
    }

    pub fn on_pdb(&mut self, pdb: &PodDisruptionBudget, deleted: bool) {
        let key = (pdb.metadata.namespace.clone().unwrap_or_default(), pdb.metadata.name.clone().unwrap_or_default());
        if deleted {
            self.pdbs.remove(&key);
        } else {
            self.pdbs.insert(key, convert::pdb(pdb));
        }
        self.snapshot.set_pdbs(self.pdbs.values().cloned().collect());
    }

    pub fn retain_pdbs(&mut self, listed: &HashSet<String>) {
        self.pdbs.retain(|(ns, name), _| listed.contains(&format!("{ns}/{name}")));
        self.snapshot.set_pdbs(self.pdbs.values().cloned().collect());
    }

    /// Pops the next pod and decides; the returned action still has to be written.
    pub fn schedule_next(&mut self, now: Instant, wall: Timestamp) -> Option<Action> {
        if !(self.nodes_synced && self.pods_synced) {
            return None;
        }
        let (pod, pending) = loop {
            let pod = self.queue.pop(now)?;
            match self.pending.get(&pod.uid) {
                Some(p) => break (pod.clone(), p.clone()),
                None => self.queue.remove(&pod.uid),
            }
        };
        match self.core.schedule(&pod, &self.snapshot) {
            Ok(node) => {
                self.snapshot.assume(&pod, &node);
                self.assumed.insert(pod.uid.clone());
                Some(Action::Bind { pod: pending.pod, node })
            }
            Err(mut fit) => {
                let preemption = self.core.preempt(&pod, &self.snapshot, &mut fit);
                let message = fit.message();
                let nominate = preemption.as_ref().map(|p| p.node.as_str());
                let status_patch = unschedulable_patch(
                    pending.condition.as_ref(),
                    pending.nominated.as_deref(),
                    &message,
                    nominate,
                    wall,
                );
                if let Some(p) = &preemption {
                    let mut nominated = (*pod).clone();
                    nominated.nominated_node = Some(p.node.clone());
                    self.snapshot.set_nominated(&nominated);
                }
                if let Some(entry) = self.pending.get_mut(&pod.uid) {
                    entry.condition = Some(Condition {
                        status: "False".into(),
                        reason: "Unschedulable".into(),
                        message: message.clone(),
                    });
                    if let Some(n) = nominate {
                        entry.nominated = Some(n.to_string());
                    }
                }
                self.queue.unschedulable(&pod.uid, now);
                Some(Action::Unschedulable {
                    pod: pending.pod,
                    message,
                    status_patch,
                    preemption: preemption.map(|p| (p.node, p.victims.iter().map(|v| pod_ref(v)).collect())),
                })
            }
        }
    }

    /// The binding succeeded: the pod leaves the queue (the watch confirms the rest).
    pub fn bound(&mut self, pod: &PodRef) {
        self.queue.remove(&pod.uid);
        self.pending.remove(&pod.uid);
        self.recorder.forget(&pod.uid);
    }

    /// The binding failed: forget the assumption and retry after backoff.
    pub fn bind_failed(&mut self, pod: &PodRef, now: Instant) {
        if self.assumed.remove(&pod.uid) {
            self.snapshot.remove_pod(&pod.uid);
        }
        self.queue.retry_later(&pod.uid, now);
    }
}

struct Shared {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic elsewhere must not stop scheduling: keep using the state.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

async fn write_event<W: Writer>(shared: &Shared, writer: &W, pod: &PodRef, type_: &str, reason: &str, message: &str) {
    let (event, new) = shared.with(|s| s.recorder.record(pod, type_, reason, message, Timestamp::now()));
    let result = if new { writer.create_event(&event).await } else { writer.update_event(&event).await };
    if let Err(e) = result {
        tracing::debug!(error = %e, pod = %pod.name, reason, "writing an event failed");
    }
}

/// Writes what a decision needs written.
async fn execute<W: Writer>(shared: &Shared, writer: &W, action: Action) {
    match action {
        Action::Bind { pod, node } => match writer.bind(&pod, &node).await {
            Ok(()) => {
                shared.with(|s| s.bound(&pod));
                let msg = format!("Successfully assigned {}/{} to {}", pod.namespace, pod.name, node);
                write_event(shared, writer, &pod, "Normal", "Scheduled", &msg).await;
            }
            Err(e) => {
                tracing::info!(pod = %pod.name, node, error = %e, "binding failed; retrying");
                shared.with(|s| s.bind_failed(&pod, Instant::now()));
                shared.wake.notify_one();
                write_event(shared, writer, &pod, "Warning", "FailedScheduling", &format!("Binding rejected: {e}"))
                    .await;
            }
        },
        Action::Unschedulable { pod, message, status_patch, preemption } => {
            if let Some((node, victims)) = &preemption {
                for v in victims {
                    let msg = format!("Preempted by pod {} on node {}", pod.uid, node);
                    write_event(shared, writer, v, "Normal", "Preempted", &msg).await;
                    let patch = json!({"status": {"conditions": [{
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "PreemptionByScheduler",
                        "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
                        "lastTransitionTime": rfc3339(Timestamp::now()),
                    }]}});
                    if let Err(e) = writer.patch_pod_status(v, patch).await {
                        tracing::debug!(victim = %v.name, error = %e, "marking the victim failed");
                    }
                    if let Err(e) = writer.delete_pod(v).await {
                        tracing::info!(victim = %v.name, error = %e, "deleting a preemption victim failed");
                    }
                }
            }
            write_event(shared, writer, &pod, "Warning", "FailedScheduling", &message).await;
            if let Some(patch) = status_patch
                && let Err(e) = writer.patch_pod_status(&pod, patch).await
            {
                tracing::debug!(pod = %pod.name, error = %e, "updating PodScheduled failed");
            }
        }
    }
}

/// Pops and decides until there is nothing to do, then sleeps until woken or a
/// backoff ends; writes run concurrently, bounded.
async fn schedule_loop<W: Writer>(shared: Arc<Shared>, writer: Arc<W>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_WRITES));
    loop {
        let (action, wake_at) =
            shared.with(|s| (s.schedule_next(Instant::now(), Timestamp::now()), s.queue.next_wakeup()));
        match action {
            Some(action) => {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (shared, writer) = (shared.clone(), writer.clone());
                tokio::spawn(async move {
                    execute(&shared, writer.as_ref(), action).await;
                    drop(permit);
                });
            }
            None => {
                let deadline = wake_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
                }
            }
        }
    }
}

/// One shared informer's changes, applied to the state: objects as they change, and
/// after each (re)list the set that was listed, so objects deleted while disconnected
/// are dropped.
async fn watch<K: Kind>(
    informer: Informer<K>,
    shared: Arc<Shared>,
    key: fn(&K) -> String,
    apply: fn(&mut State, &K, bool, Instant),
    synced: fn(&mut State, &HashSet<String>, Instant),
) {
    let mut stream = std::pin::pin!(informer.subscribe());
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            WatchEvent::Init => listed.clear(),
            WatchEvent::InitApply(obj) => {
                listed.insert(key(&obj));
                shared.with(|s| apply(s, &obj, false, Instant::now()));
            }
            WatchEvent::InitDone => {
                shared.with(|s| synced(s, &listed, Instant::now()));
                listed.clear();
                shared.wake.notify_one();
            }
            WatchEvent::Apply(obj) => {
                shared.with(|s| apply(s, &obj, false, Instant::now()));
                shared.wake.notify_one();
            }
            WatchEvent::Delete(obj) => {
                shared.with(|s| apply(s, &obj, true, Instant::now()));
                shared.wake.notify_one();
            }
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Runs the scheduler until the process ends: it reads the cluster through
/// `informers` (shared with the controllers when they run in the same process) and
/// writes through `client`.
pub async fn run(client: Client, informers: Informers) {
    run_with(informers, Arc::new(KubeWriter::new(client))).await
}

/// Runs with a given writer (the API one in production).
pub async fn run_with<W: Writer>(informers: Informers, writer: Arc<W>) {
    let seed = Timestamp::now().as_nanosecond() as u64;
    let instance = format!("{SCHEDULER_NAME}-{}", host_name());
    let shared = Arc::new(Shared { state: Mutex::new(State::new(seed, &instance)), wake: tokio::sync::Notify::new() });
    let nodes = watch::<Node>(
        informers.get::<Node>(),
        shared.clone(),
        |n| n.metadata.name.clone().unwrap_or_default(),
        |s, n, deleted, now| {
            if deleted {
                s.on_node_deleted(n.metadata.name.as_deref().unwrap_or_default());
            } else {
                s.on_node(n, now);
            }
        },
        |s, listed, _| {
            s.retain_nodes(listed);
            s.set_synced(true, false);
        },
    );
    let pods = watch::<Pod>(
        informers.get::<Pod>(),
        shared.clone(),
        |p| p.metadata.uid.clone().unwrap_or_default(),
        |s, p, deleted, now| {
            if deleted {
                s.on_pod_deleted(p.metadata.uid.as_deref().unwrap_or_default(), now);
            } else {
                s.on_pod(p, now);
            }
        },
        |s, listed, now| {
            s.retain_pods(listed, now);
            s.set_synced(false, true);
        },
    );
    let namespaces = watch::<Namespace>(
        informers.get::<Namespace>(),
        shared.clone(),
        |n| n.metadata.name.clone().unwrap_or_default(),
        |s, n, deleted, _| {
            if deleted {
                s.snapshot.remove_namespace(n.metadata.name.as_deref().unwrap_or_default());
            } else {
                s.on_namespace(n);
            }
        },
        |_, _, _| {},
    );
    let pdbs = watch::<PodDisruptionBudget>(
        informers.get::<PodDisruptionBudget>(),
        shared.clone(),
        |p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        },
        |s, p, deleted, _| s.on_pdb(p, deleted),
        |s, listed, _| s.retain_pdbs(listed),
    );
    tokio::select! {
        _ = nodes => tracing::warn!("scheduler node watch ended"),
        _ = pods => tracing::warn!("scheduler pod watch ended"),
        _ = namespaces => tracing::warn!("scheduler namespace watch ended"),
        _ = pdbs => tracing::warn!("scheduler pdb watch ended"),
        _ = schedule_loop(shared.clone(), writer) => tracing::warn!("scheduling loop ended"),
    }
}

#[cfg(test)]
mod tests;
