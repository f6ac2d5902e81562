//! The node lifecycle controller (upstream's `pkg/controller/nodelifecycle`, with its
//! taint manager, `pkg/controller/tainteviction`): it watches Nodes, their Leases and
//! the pods bound to them, and
//!
//! - marks a node whose Lease was not seen renewed within the grace period Ready
//!   `Unknown` ("Kubelet stopped posting node status.") through `nodes/status`;
//! - keeps the node's taints in line with its conditions: `NoSchedule` for each bad
//!   condition and for cordoning, and `node.kubernetes.io/unreachable` (Ready Unknown)
//!   or `node.kubernetes.io/not-ready` (Ready False) with `NoExecute`, removed again
//!   once the node's agent reports Ready;
//! - marks the pods of a node that is not Ready not ready (upstream's MarkPodsNotReady);
//! - evicts pods from nodes with `NoExecute` taints they do not tolerate, at once, or
//!   when their `tolerationSeconds` run out (event `TaintManagerEviction`);
//! - force-deletes pods that are being deleted on an unreachable node. Upstream leaves
//!   those to the pod garbage collector, which only acts on nodes tainted
//!   out-of-service; nobody else would ever finish their graceful deletion (their
//!   agent is gone), and replacements must run elsewhere within 15 s, so this
//!   controller does it as soon as the pod is marked for deletion.
//!
//! Staleness is judged by when the controller itself saw a renewal, and only while it
//! can trust its own view: see [`health::Sight`]. The pure decisions live in
//! [`health`] and [`taints`]; this file holds the watches and the writes.

pub mod health;
pub mod taints;

use crate::Informers;
use crate::events::{Event, EventType, Recorder};
use crate::recorder;
use futures_util::StreamExt;
use health::{Probe, Scheduled, Sight, View};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

/// Timings, with upstream's flag names. The defaults bring a lost node's pods back
/// elsewhere within 15 s: the loss is noticed within grace + period (9 s), the
/// default toleration adds 2 s (see the API server's `--default-toleration-seconds`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--node-monitor-period`: how often node health is checked.
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go unseen before it is
    /// marked Unknown (upstream: 40 s).
    pub grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never reported Ready.
    pub startup_grace_period: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            monitor_period: Duration::from_secs(1),
            grace_period: Duration::from_secs(8),
            startup_grace_period: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// How late the canary and the monitor passes may be before the controller
    /// distrusts its view: half the grace period, and never less than three periods.
    fn blind_after(&self) -> Duration {
        (self.grace_period / 2).max(self.monitor_period * 3)
    }
}

/// The Lease the controller writes to check that its writes come back through its
/// watch (see [`health::Sight`]).
pub const CANARY_NAMESPACE: &str = "kube-system";
pub const CANARY_NAME: &str = "node-lifecycle-controller";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Nodes with this label do not count when deciding whether every node is down.
const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";
/// The most writes in flight at once.
const MAX_IN_FLIGHT: usize = 32;

type PodKey = (String, String);

/// What the controller keeps of a pod: enough to decide, not the whole object.
#[derive(Debug, Clone)]
struct PodInfo {
    uid: String,
    node: String,
    tolerations: Vec<Toleration>,
    ready: bool,
    deleting: bool,
}

impl PodInfo {
    fn of(pod: &Pod) -> (PodKey, PodInfo) {
        let spec = pod.spec.as_ref();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        (
            (pod.namespace().unwrap_or_default(), pod.name_any()),
            PodInfo {
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
                tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
                ready,
                deleting: pod.metadata.deletion_timestamp.is_some(),
            },
        )
    }
}

/// A watched collection kept as the watcher's events say, replacing its contents
/// whole after a relist so that objects deleted meanwhile go too.
struct Mirror<K, T> {
    items: HashMap<K, T>,
    fresh: Option<HashMap<K, T>>,
    synced: bool,
}

impl<K: std::hash::Hash + Eq + Clone, T> Mirror<K, T> {
    fn new() -> Self {
        Mirror { items: HashMap::new(), fresh: None, synced: false }
    }

    /// Applies an event; returns the keys that changed (added, updated or gone).
    fn handle(&mut self, event: watcher::Event<(K, T)>) -> Vec<K> {
        match event {
            watcher::Event::Apply((k, v)) => {
                self.items.insert(k.clone(), v);
                vec![k]
            }
            watcher::Event::Delete((k, _)) => {
                self.items.remove(&k);
                vec![k]
            }
            watcher::Event::Init => {
                self.fresh = Some(HashMap::new());
                vec![]
            }
            watcher::Event::InitApply((k, v)) => {
                self.fresh.get_or_insert_with(HashMap::new).insert(k, v);
                vec![]
            }
            watcher::Event::InitDone => {
                let fresh = self.fresh.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.items, fresh);
                self.synced = true;
                old.into_keys().filter(|k| !self.items.contains_key(k)).chain(self.items.keys().cloned()).collect()
            }
        }
    }
}

fn map_event<A, B>(event: watcher::Event<A>, f: impl Fn(A) -> B) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(a) => watcher::Event::Apply(f(a)),
        watcher::Event::Delete(a) => watcher::Event::Delete(f(a)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(a) => watcher::Event::InitApply(f(a)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn keyed(node: Arc<Node>) -> (String, Arc<Node>) {
    (node.name_any(), node)
}

fn conditions(node: &Node) -> &[k8s_openapi::api::core::v1::NodeCondition] {
    node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[])
}

fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

fn ready_heartbeat(node: &Node) -> Option<Timestamp> {
    conditions(node).iter().rev().find(|c| c.type_ == "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0)
}

fn has_unreachable_no_execute(node: &Node) -> bool {
    node_taints(node).iter().any(|t| t.key == taints::UNREACHABLE && t.effect == taints::NO_EXECUTE)
}

/// Results of writes done in spawned tasks.
#[derive(Debug)]
enum Done {
    Node(String),
    Evicted { key: PodKey, ok: bool },
    Pod(PodKey),
    Canary,
}

/// What a pod is being written for, so that one op of each kind is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PodOp {
    NotReady,
    ForceDelete,
}

struct Writer {
    client: Client,
    slots: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Done>,
    node_events: Recorder,
    pod_events: Recorder,
}

impl Writer {
    fn spawn(&self, fut: impl std::future::Future<Output = Done> + Send + 'static) {
        let slots = self.slots.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let _ = done.send(fut.await);
        });
    }

    fn event(&self, recorder: &Recorder, reference: ObjectReference, type_: EventType, reason: &str, note: String) {
        let recorder = recorder.clone();
        let slots = self.slots.clone();
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "recording an event failed");
            }
        });
    }

    fn node_event(&self, node: &Node, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: node.metadata.name.clone(),
            uid: node.metadata.uid.clone(),
            ..Default::default()
        };
        self.event(&self.node_events, reference, type_, reason, note);
    }

    fn pod_event(&self, key: &PodKey, uid: &str, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(key.0.clone()),
            name: Some(key.1.clone()),
            uid: Some(uid.to_string()),
            ..Default::default()
        };
        self.event(&self.pod_events, reference, type_, reason, note);
    }
}

struct State {
    config: Config,
    nodes: Mirror<String, Arc<Node>>,
    leases: Mirror<(String, String), Option<Timestamp>>,
    pods: Mirror<PodKey, PodInfo>,
    /// Pods by node; may hold keys of pods gone since, checked against `pods`.
    by_node: HashMap<String, HashSet<PodKey>>,
    probes: HashMap<String, Probe>,
    sight: Sight,
    /// The last monitor pass had a clear view.
    sight_clear: bool,
    /// Nodes announced with RegisteredNode.
    known: HashSet<String>,
    /// Every node was not Ready at the last pass.
    disrupted: bool,
    /// Each node's Ready status at the last pass, to report transitions once.
    last_ready: HashMap<String, Option<String>>,
    /// Each node's `NoExecute` taints as the taint manager last acted on them.
    no_execute: HashMap<String, Vec<Taint>>,
    evictions: HashMap<PodKey, Scheduled>,
    evicting: HashSet<PodKey>,
    node_writes: HashSet<String>,
    pod_ops: HashSet<(PodKey, PodOp)>,
    canary_in_flight: bool,
    writer: Writer,
}

impl State {
    fn synced(&self) -> bool {
        self.nodes.synced && self.leases.synced && self.pods.synced
    }

    fn on_node(&mut self, name: &str, now: Instant) {
        let Some(node) = self.nodes.items.get(name) else {
            // Gone: forget it, and any eviction of its pods (they have no node now).
            self.probes.remove(name);
            self.no_execute.remove(name);
            if let Some(pods) = self.by_node.remove(name) {
                for key in pods {
                    self.evictions.remove(&key);
                }
            }
            if self.known.remove(name) {
                let gone = Node {
                    metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
                    ..Default::default()
                };
                self.writer.node_event(
                    &gone,
                    EventType::Normal,
                    "RemovingNode",
                    format!("Node {name} event: Removing Node {name} from Controller"),
                );
            }
            return;
        };
        let heartbeat = ready_heartbeat(node);
        let unreachable = has_unreachable_no_execute(node);
        let taints = taints::no_execute(node_taints(node));
        self.probes.entry(name.to_string()).or_insert_with(|| Probe::new(now)).saw_heartbeat(heartbeat, now);
        let before = self.no_execute.get(name).cloned().unwrap_or_default();
        let same = before.len() == taints.len()
            && before
                .iter()
                .all(|b| taints.iter().any(|t| t.key == b.key && t.effect == b.effect && t.value == b.value));
        if !same {
            if taints.is_empty() {
                self.no_execute.remove(name);
            } else {
                self.no_execute.insert(name.to_string(), taints);
            }
            let pods: Vec<PodKey> = self.by_node.get(name).map(|s| s.iter().cloned().collect()).unwrap_or_default();
            for key in pods {
                self.taint_check(&key, now);
            }
        }
        if unreachable {
            let pods: Vec<PodKey> = self.by_node.get(name).map(|s| s.iter().cloned().collect()).unwrap_or_default();
            for key in pods {
                self.force_delete_check(&key);
            }
        }
    }

    fn on_lease(&mut self, key: &(String, String), now: Instant) {
        let (ns, name) = key;
        if ns == CANARY_NAMESPACE && name == CANARY_NAME {
            if self.leases.items.contains_key(key) {
                self.sight.echo(now);
            }
            return;
        }
        if ns != NODE_LEASE_NAMESPACE {
            return;
        }
        if let Some(renew) = self.leases.items.get(key) {
            self.probes.entry(name.clone()).or_insert_with(|| Probe::new(now)).saw_lease(*renew, now);
        }
    }

    fn on_pod(&mut self, key: &PodKey, now: Instant) {
        let Some(pod) = self.pods.items.get(key) else {
            self.evictions.remove(key);
            return;
        };
        let node = pod.node.clone();
        self.by_node.entry(node).or_default().insert(key.clone());
        self.taint_check(key, now);
        self.force_delete_check(key);
        self.not_ready_check(key);
    }

    /// The taint manager's look at one pod.
    fn taint_check(&mut self, key: &PodKey, now: Instant) {
        let Some(pod) = self.pods.items.get(key) else {
            self.evictions.remove(key);
            return;
        };
        if pod.deleting {
            // Already going; the force deletion below finishes it on a lost node.
            self.evictions.remove(key);
            return;
        }
        let plan = match self.no_execute.get(&pod.node) {
            Some(t) => taints::plan(t, &pod.tolerations),
            None => taints::Plan::Stay,
        };
        let existing = self.evictions.get(key).copied();
        match health::reschedule(existing, plan, now) {
            Some(s) => {
                if existing.is_none() {
                    tracing::debug!(pod = %format!("{}/{}", key.0, key.1), ?plan, "pod scheduled for eviction");
                }
                self.evictions.insert(key.clone(), s);
            }
            None => {
                if self.evictions.remove(key).is_some() {
                    self.writer.pod_event(
                        key,
                        &pod.uid,
                        EventType::Normal,
                        "TaintManagerEviction",
                        format!("Cancelling deletion of Pod {}/{}", key.0, key.1),
                    );
                }
            }
        }
    }

    fn force_delete_check(&mut self, key: &PodKey) {
        let Some(pod) = self.pods.items.get(key) else { return };
        if !pod.deleting || self.pod_ops.contains(&(key.clone(), PodOp::ForceDelete)) {
            return;
        }
        if !self.nodes.items.get(&pod.node).is_some_and(|n| has_unreachable_no_execute(n))
            || !self.judged_down(&pod.node)
        {
            return;
        }
        self.pod_ops.insert((key.clone(), PodOp::ForceDelete));
        let (client, key, uid, node) = (self.writer.client.clone(), key.clone(), pod.uid.clone(), pod.node.clone());
        tracing::info!(pod = %format!("{}/{}", key.0, key.1), %node, "force-deleting a terminating pod on an unreachable node");
        self.writer.spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &key.0);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&key.1, &dp).await {
                tracing::debug!(pod = %key.1, error = %e, "force deletion failed");
            }
            Done::Pod(key)
        });
    }

    /// Marks a ready pod on a node that is not Ready not ready (upstream's
    /// MarkPodsNotReady), so that Services stop sending it traffic at once.
    fn not_ready_check(&mut self, key: &PodKey) {
        let Some(pod) = self.pods.items.get(key) else { return };
        if !pod.ready {
            return;
        }
        // Checked for every pod every monitor pass: the node first, as nearly all are
        // Ready, then the pending operations (whose lookup copies the key).
        let Some(node) = self.nodes.items.get(&pod.node) else { return };
        if taints::ready_status(conditions(node)) == Some("True") || taints::ready_status(conditions(node)).is_none() {
            return;
        }
        if self.pod_ops.contains(&(key.clone(), PodOp::NotReady)) {
            return;
        }
        self.pod_ops.insert((key.clone(), PodOp::NotReady));
        let (client, key, uid) = (self.writer.client.clone(), key.clone(), pod.uid.clone());
        let events = self.writer.pod_events.clone();
        self.writer.spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &key.0);
            let patch = json!({
                "metadata": {"uid": uid},
                "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": Timestamp::now()}]},
            });
            match api.patch_status(&key.1, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        namespace: Some(key.0.clone()),
                        name: Some(key.1.clone()),
                        uid: Some(uid),
                        ..Default::default()
                    };
                    let ev = Event {
                        type_: EventType::Warning,
                        reason: "NodeNotReady".into(),
                        note: Some("Node is not ready".into()),
                        action: "NodeNotReady".into(),
                        secondary: None,
                    };
                    let _ = events.publish(&ev, &reference).await;
                }
                Err(e) => tracing::debug!(pod = %key.1, error = %e, "marking a pod not ready failed"),
            }
            Done::Pod(key)
        });
    }

    /// See [`health::judged_down`].
    fn judged_down(&self, node: &str) -> bool {
        health::judged_down(self.sight_clear, self.disrupted, self.last_ready.get(node).map(|r| r.as_deref()))
    }

    /// Whether every `NoExecute` taint on the node is one this controller sets.
    fn only_own_no_execute(&self, node: &str) -> bool {
        self.no_execute
            .get(node)
            .is_some_and(|ts| ts.iter().all(|t| t.key == taints::NOT_READY || t.key == taints::UNREACHABLE))
    }

    /// Starts the evictions that are due.
    fn evict_due(&mut self, now: Instant) {
        let due: Vec<PodKey> = self
            .evictions
            .iter()
            .filter(|(k, s)| s.due <= now && !self.evicting.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(pod) = self.pods.items.get(&key) else {
                self.evictions.remove(&key);
                continue;
            };
            if self.only_own_no_execute(&pod.node) && !self.judged_down(&pod.node) {
                // Not until the next pass has confirmed (or lifted) the node's taint.
                if let Some(s) = self.evictions.get_mut(&key) {
                    s.due = now + self.config.monitor_period;
                }
                continue;
            }
            self.evicting.insert(key.clone());
            let uid = pod.uid.clone();
            self.writer.pod_event(
                &key,
                &uid,
                EventType::Normal,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {}/{}", key.0, key.1),
            );
            tracing::info!(pod = %format!("{}/{}", key.0, key.1), node = %pod.node, "evicting a pod from a node with a NoExecute taint");
            let client = self.writer.client.clone();
            self.writer.spawn(async move {
                let ok = evict(client, &key, uid).await;
                Done::Evicted { key, ok }
            });
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.evictions.iter().filter(|(k, _)| !self.evicting.contains(*k)).map(|(_, s)| s.due).min()
    }

    fn on_done(&mut self, done: Done, now: Instant) {
        match done {
            Done::Node(name) => {
                self.node_writes.remove(&name);
            }
            Done::Evicted { key, ok } => {
                self.evicting.remove(&key);
                if ok {
                    self.evictions.remove(&key);
                } else if let Some(s) = self.evictions.get_mut(&key) {
                    s.due = now + Duration::from_secs(1);
                }
            }
            Done::Pod(key) => {
                self.pod_ops.retain(|(k, _)| *k != key);
            }
            Done::Canary => self.canary_in_flight = false,
        }
    }

    fn canary(&mut self) {
        if self.canary_in_flight {
            return;
        }
        self.canary_in_flight = true;
        let client = self.writer.client.clone();
        self.writer.spawn(async move {
            if let Err(e) = write_canary(client).await {
                tracing::debug!(error = %e, "writing the canary lease failed");
            }
            Done::Canary
        });
    }

    /// One pass over every node: judge health, then set taints.
    fn monitor(&mut self, now: Instant) {
        if !self.synced() {
            return;
        }
        let view = self.sight.pass(now, self.config.blind_after());
        self.sight_clear = view != View::Blind;
        match view {
            View::Blind => {
                tracing::debug!("not judging node health: the controller's view of the API is stale");
                return;
            }
            View::Regained => {
                tracing::info!("the controller's view of the API is current again; restarting every node's clock");
                for p in self.probes.values_mut() {
                    p.at = now;
                }
            }
            View::Clear => {}
        }
        let wall = Timestamp::now();
        let names: Vec<String> = self.nodes.items.keys().cloned().collect();
        let mut readiness: Vec<Option<String>> = Vec::with_capacity(names.len());
        let mut effective: HashMap<&str, Option<String>> = HashMap::with_capacity(names.len());
        let mut to_silence = Vec::new();
        for name in &names {
            let Some(node) = self.nodes.items.get(name) else { continue };
            if self.known.insert(name.clone()) {
                self.writer.node_event(
                    node,
                    EventType::Normal,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                );
            }
            if !self.probes.contains_key(name) {
                self.probes.insert(name.clone(), Probe::new(now));
            }
            let Some(probe) = self.probes.get(name) else { continue };
            let mut ready = taints::ready_status(conditions(node)).map(str::to_string);
            let grace = health::grace_for(
                ready.as_deref(),
                probe.renew_time.is_some(),
                self.config.grace_period,
                self.config.startup_grace_period,
            );
            if probe.is_stale(now, grace)
                && !self.node_writes.contains(name)
                && let Some(new) = health::silenced(conditions(node), node.metadata.creation_timestamp.as_ref(), wall)
            {
                tracing::info!(node = %name, unseen_for = ?now.saturating_duration_since(probe.at), "node stopped renewing its lease; marking it Unknown");
                ready = Some("Unknown".into());
                to_silence.push((name.clone(), node.metadata.resource_version.clone(), new));
            }
            let was = match self.last_ready.get_mut(name) {
                Some(last) => std::mem::replace(last, ready.clone()),
                None => self.last_ready.insert(name.clone(), ready.clone()).flatten(),
            };
            if was.as_deref() == Some("True") && ready.as_deref() != Some("True") {
                self.writer.node_event(
                    node,
                    EventType::Normal,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
            }
            let excluded = node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION));
            if !excluded {
                readiness.push(ready.clone());
            }
            effective.insert(name, ready);
        }
        self.last_ready.retain(|n, _| effective.contains_key(n.as_str()));
        let disrupted = health::full_disruption(readiness.iter().map(|r| r.as_deref()));
        if disrupted != self.disrupted {
            self.disrupted = disrupted;
            if disrupted {
                tracing::warn!("no node is Ready: entering full disruption mode, no NoExecute taints or evictions");
            } else {
                tracing::info!("some nodes are Ready: leaving full disruption mode; restarting every node's clock");
                for p in self.probes.values_mut() {
                    p.at = now;
                }
            }
        }
        for (name, rv, new) in to_silence {
            self.node_writes.insert(name.clone());
            let client = self.writer.client.clone();
            let no_execute = (!disrupted).then_some(taints::UNREACHABLE);
            self.writer.spawn(async move {
                if let Err(e) = silence(client, &name, rv, new, no_execute).await {
                    tracing::warn!(node = %name, error = %e, "marking the node Unknown failed; retrying");
                }
                Done::Node(name)
            });
        }
        for name in &names {
            let Some(node) = self.nodes.items.get(name) else { continue };
            if !self.node_writes.contains(name) {
                let ready = effective.get(name.as_str()).cloned().flatten();
                let no_execute = if disrupted { None } else { taints::no_execute_key(ready.as_deref()) };
                let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
                if let Some(wanted) =
                    taints::desired_taints(node_taints(node), conditions(node), unschedulable, no_execute, wall)
                {
                    self.node_writes.insert(name.clone());
                    let client = self.writer.client.clone();
                    let (name, rv) = (name.clone(), node.metadata.resource_version.clone());
                    self.writer.spawn(async move {
                        if let Err(e) = write_taints(&client, &name, rv, &wanted).await {
                            tracing::debug!(node = %name, error = %e, "updating node taints failed; retrying");
                        }
                        Done::Node(name)
                    });
                }
            }
            // Level-triggered repairs: retries of whatever failed before. Index entries
            // of pods gone or moved (a name reused on another node) are dropped here.
            // The node's set is taken out while its pods are checked (the checks do not
            // touch it), not copied: this runs for every pod every pass.
            let Some(mut pods) = self.by_node.get_mut(name).map(std::mem::take) else { continue };
            pods.retain(|key| self.pods.items.get(key).is_some_and(|p| p.node == *name));
            for key in &pods {
                self.force_delete_check(key);
                self.not_ready_check(key);
            }
            if let Some(slot) = self.by_node.get_mut(name) {
                slot.extend(pods);
            }
        }
        self.by_node.retain(|n, s| !s.is_empty() || self.nodes.items.contains_key(n));
    }
}

/// Writes the Unknown conditions (with the node's resourceVersion, so that a status
/// the agent posted meanwhile wins), then the taints they call for.
async fn silence(
    client: Client,
    name: &str,
    rv: Option<String>,
    silenced: Vec<k8s_openapi::api::core::v1::NodeCondition>,
    no_execute: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"resourceVersion": rv}, "status": {"conditions": silenced}});
    let node = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if let Some(wanted) =
        taints::desired_taints(node_taints(&node), conditions(&node), unschedulable, no_execute, Timestamp::now())
    {
        // The taint must not wait for the next pass: its toleration clock starts now.
        write_taints(&client, name, node.metadata.resource_version.clone(), &wanted).await?;
    }
    Ok(())
}

async fn write_taints(client: &Client, name: &str, rv: Option<String>, wanted: &[Taint]) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let taints = if wanted.is_empty() { serde_json::Value::Null } else { json!(wanted) };
    let patch = json!({"metadata": {"resourceVersion": rv}, "spec": {"taints": taints}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Deletes a pod the taint manager gave up on, as upstream: a DisruptionTarget
/// condition first, so its owner can tell why, then a normal (graceful) deletion.
async fn evict(client: Client, key: &PodKey, uid: String) -> bool {
    let api: Api<Pod> = Api::namespaced(client, &key.0);
    let condition = json!({
        "metadata": {"uid": uid},
        "status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": Timestamp::now(),
        }]},
    });
    if let Err(e) = api.patch_status(&key.1, &PatchParams::default(), &Patch::Strategic(&condition)).await {
        match e {
            kube::Error::Api(ref s) if s.code == 404 || s.code == 409 => return true,
            _ => tracing::debug!(pod = %key.1, error = %e, "setting DisruptionTarget failed; deleting anyway"),
        }
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&key.1, &dp).await {
        Ok(_) => true,
        // Gone, or another pod of the same name: nothing of ours left to evict.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => true,
        Err(e) => {
            tracing::warn!(pod = %key.1, error = %e, "evicting a pod failed; retrying");
            false
        }
    }
}

async fn write_canary(client: Client) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, CANARY_NAMESPACE);
    let spec = json!({"holderIdentity": CANARY_NAME, "leaseDurationSeconds": 15, "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now())});
    match api.patch(CANARY_NAME, &PatchParams::default(), &Patch::Merge(&json!({"spec": spec}))).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": CANARY_NAME, "namespace": CANARY_NAMESPACE}, "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            api.create(&PostParams::default(), &lease).await.map(drop)
        }
        other => other.map(drop),
    }
}

/// Only bound pods concern a node (a pod is never unbound again).
fn pod_event(event: watcher::Event<Arc<Pod>>) -> Option<watcher::Event<(PodKey, PodInfo)>> {
    let unbound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default().is_empty();
    match &event {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) | watcher::Event::Delete(p) if unbound(p) => None,
        _ => Some(map_event(event, |p| PodInfo::of(&p))),
    }
}

fn lease_event(event: watcher::Event<Lease>) -> watcher::Event<((String, String), Option<Timestamp>)> {
    map_event(event, |l| {
        ((l.namespace().unwrap_or_default(), l.name_any()), l.spec.and_then(|s| s.renew_time).map(|t| t.0))
    })
}

pub async fn run(client: Client, informers: Informers, config: Config) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let writer = Writer {
        client: client.clone(),
        slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        done: done_tx,
        node_events: recorder(&client, "node-controller"),
        pod_events: recorder(&client, "taint-eviction-controller"),
    };
    let mut nodes = informers.get::<Node>().subscribe().boxed();
    let mut leases = watcher(Api::<Lease>::all(client.clone()), watcher::Config::default()).default_backoff().boxed();
    let mut pods = informers.get::<Pod>().subscribe().filter_map(|ev| std::future::ready(pod_event(ev))).boxed();
    let mut monitor = tokio::time::interval(config.monitor_period);
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut st = State {
        config,
        nodes: Mirror::new(),
        leases: Mirror::new(),
        pods: Mirror::new(),
        by_node: HashMap::new(),
        probes: HashMap::new(),
        sight: Sight::default(),
        sight_clear: false,
        known: HashSet::new(),
        disrupted: false,
        last_ready: HashMap::new(),
        no_execute: HashMap::new(),
        evictions: HashMap::new(),
        evicting: HashSet::new(),
        node_writes: HashSet::new(),
        pod_ops: HashSet::new(),
        canary_in_flight: false,
        writer,
    };
    loop {
        let due = st.next_due();
        let sleep = async move {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(ev) = nodes.next() => {
                let now = Instant::now();
                for name in st.nodes.handle(map_event(ev, keyed)) {
                    st.on_node(&name, now);
                }
            }
            Some(ev) = leases.next() => match ev {
                Ok(ev) => {
                    let now = Instant::now();
                    for key in st.leases.handle(lease_event(ev)) {
                        st.on_lease(&key, now);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lease watch failed; retrying"),
            },
            Some(ev) = pods.next() => {
                let now = Instant::now();
                for key in st.pods.handle(ev) {
                    st.on_pod(&key, now);
                }
            }
            Some(done) = done_rx.recv() => st.on_done(done, Instant::now()),
            _ = monitor.tick() => {
                st.canary();
                st.monitor(Instant::now());
            }
            () = sleep => st.evict_due(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_replaces_its_contents_after_a_relist() {
        let mut m: Mirror<String, u32> = Mirror::new();
        assert_eq!(m.handle(watcher::Event::Apply(("a".into(), 1))), vec!["a".to_string()]);
        m.handle(watcher::Event::Apply(("b".into(), 2)));
        assert!(!m.synced);
        m.handle(watcher::Event::Init);
        m.handle(watcher::Event::InitApply(("b".into(), 3)));
        m.handle(watcher::Event::InitApply(("c".into(), 4)));
        // Nothing changes until the list is complete.
        assert_eq!(m.items.get("b"), Some(&2));
        let mut changed = m.handle(watcher::Event::InitDone);
        changed.sort();
        assert_eq!(changed, ["a", "b", "c"]);
        assert!(m.synced);
        assert_eq!(m.items.len(), 2);
        assert_eq!(m.items.get("b"), Some(&3));
        assert_eq!(m.handle(watcher::Event::Delete(("c".into(), 0))), vec!["c".to_string()]);
        assert!(!m.items.contains_key("c"));
    }

    #[test]
    fn pods_keep_only_what_decides() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}],
                     "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let ((ns, name), info) = PodInfo::of(&pod);
        assert_eq!((ns.as_str(), name.as_str(), info.uid.as_str(), info.node.as_str()), ("ns", "p", "u1", "n1"));
        assert!(info.ready && info.deleting);
        assert_eq!(info.tolerations.len(), 1);
    }

    #[test]
    fn blindness_is_judged_against_half_the_grace_period() {
        assert_eq!(Config::default().blind_after(), Duration::from_secs(4));
        let slow = Config { monitor_period: Duration::from_secs(5), ..Config::default() };
        assert_eq!(slow.blind_after(), Duration::from_secs(15));
    }
}
