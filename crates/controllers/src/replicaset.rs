//! The ReplicaSet controller: keeps exactly `spec.replicas` active pods matching a
//! ReplicaSet's selector (upstream's `pkg/controller/replicaset`).
//!
//! The pure parts come first: which pods a ReplicaSet owns, adopts and releases
//! ([`claim`]), how many pods to create or which to delete ([`decide`], ranking pods as
//! upstream's `ActivePodsWithRanks` does), and the status it reports ([`status`]). The
//! I/O follows: adoption patches, pod creation in slow-start batches, deletions,
//! [`Expectations`] so that a burst of watch events does not create twice, Events, and
//! the status write.

use crate::Error;
use crate::Informers;
use crate::events::{EventSink, event};
use futures_util::StreamExt;
use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name upstream gives this controller; Events carry it.
pub const CONTROLLER_NAME: &str = "replicaset-controller";
/// How often a ReplicaSet is synced without any event.
pub const RESYNC: Duration = Duration::from_secs(5 * 60);
/// At most this many pods are created or deleted in one sync (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first creation batch; each next batch doubles (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;
/// Expectations older than this are given up on, as upstream's `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The annotation that orders pods for deletion within a ReplicaSet.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

// ---------------------------------------------------------------------------------------
// Pod and owner helpers shared with the deployment controller.

/// The owner reference marked `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// A controller owner reference to `owner`, as upstream's `NewControllerRef`.
pub fn new_controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod counts while it is neither finished nor being deleted (`FilterActivePods`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && pod.metadata.deletion_timestamp.is_none()
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// When the pod's Ready condition last turned True, if it is True now.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(cond.last_transition_time.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready for longer than `min_ready_seconds` (upstream's `IsPodAvailable`: strictly longer).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_since(pod) {
        Some(since) if since != Timestamp::UNIX_EPOCH => {
            since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now
        }
        _ => false,
    }
}

/// The label selector of a ReplicaSet or Deployment, parsed.
pub fn parse_selector(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<Selector, Error> {
    Selector::try_from(selector.clone()).map_err(|e| Error::InvalidSelector(e.to_string()))
}

fn labels_of(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

// ---------------------------------------------------------------------------------------
// Claiming pods: adopt orphans that match, release owned pods that stopped matching.

/// What a controller does with the candidate objects of its namespace
/// (upstream's `ClaimObject` over each).
#[derive(Debug, Default, PartialEq)]
pub struct Claim<T> {
    /// Already ours and still matching.
    pub owned: Vec<T>,
    /// Orphans that match: to adopt (then ours).
    pub adopt: Vec<T>,
    /// Ours but no longer matching: to release.
    pub release: Vec<T>,
}

/// Sorts candidates into owned, to adopt and to release. `owner_deleting` stops
/// adoption and release, as upstream does while the owner is being deleted.
pub fn claim<'a, T: Resource + 'a>(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &Selector,
    candidates: impl IntoIterator<Item = &'a T>,
) -> Claim<&'a T> {
    let mut out = Claim { owned: Vec::new(), adopt: Vec::new(), release: Vec::new() };
    for obj in candidates {
        let meta = obj.meta();
        let matches = selector.matches(labels_of(meta));
        match controller_ref(meta) {
            Some(r) if r.uid == owner_uid => {
                if matches {
                    out.owned.push(obj);
                } else if !owner_deleting && meta.deletion_timestamp.is_none() {
                    out.release.push(obj);
                }
            }
            Some(_) => {}
            None => {
                if matches && !owner_deleting && meta.deletion_timestamp.is_none() {
                    out.adopt.push(obj);
                }
            }
        }
    }
    out
}

/// The strategic merge patch that makes `owner` the controller of an object, with the
/// object's uid as a precondition (upstream's adoption patch).
pub fn adopt_patch(owner: &OwnerReference, object_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [owner], "uid": object_uid}})
}

/// The strategic merge patch that removes the owner reference with `owner_uid`.
pub fn release_patch(owner_uid: &str, object_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": object_uid}})
}

// ---------------------------------------------------------------------------------------
// Deciding how many pods to create and which to delete.

/// What one sync of a ReplicaSet does to its pods.
#[derive(Debug, PartialEq)]
pub struct Plan<'a> {
    /// Pods to create now (at most [`BURST_REPLICAS`]).
    pub create: usize,
    /// Pods to delete now, most expendable first.
    pub delete: Vec<&'a Pod>,
}

/// Compares active pods the way upstream's `ActivePodsWithRanks.Less` does: the pod that
/// sorts first is deleted first. `rank` counts related pods on the same node.
pub fn deletion_order(a: (&Pod, usize), b: (&Pod, usize), now: Timestamp) -> Ordering {
    let (pa, ra) = a;
    let (pb, rb) = b;
    // Unscheduled before scheduled.
    let unassigned = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("").is_empty();
    if unassigned(pa) != unassigned(pb) {
        return if unassigned(pa) { Ordering::Less } else { Ordering::Greater };
    }
    // Pending before Unknown before Running.
    let phase = |p: &Pod| match pod_phase(p) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    if phase(pa) != phase(pb) {
        return phase(pa).cmp(&phase(pb));
    }
    // Not ready before ready.
    if is_pod_ready(pa) != is_pod_ready(pb) {
        return if is_pod_ready(pa) { Ordering::Greater } else { Ordering::Less };
    }
    // Lower deletion cost first.
    let cost = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(POD_DELETION_COST))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0)
    };
    if cost(pa) != cost(pb) {
        return cost(pa).cmp(&cost(pb));
    }
    // Doubled up on a node before alone.
    if ra != rb {
        return rb.cmp(&ra);
    }
    let uid_order = || pa.metadata.uid.cmp(&pb.metadata.uid);
    // Ready for less time before ready for longer (in log2 buckets of age, as upstream's
    // LogarithmicScaleDown), then by uid.
    if let (Some(ta), Some(tb)) = (pod_ready_since(pa), pod_ready_since(pb))
        && ta != tb
    {
        return newer_first(ta, tb, now).unwrap_or_else(uid_order);
    }
    // More restarts first.
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    if restarts(pa) != restarts(pb) {
        return restarts(pb).cmp(&restarts(pa));
    }
    // Newer before older.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH);
    if created(pa) != created(pb) {
        return newer_first(created(pa), created(pb), now).unwrap_or_else(uid_order);
    }
    Ordering::Equal
}

/// `Less` when `a` is more recent; `None` when both fall in the same log2 bucket of age.
/// The epoch stands for "no time" and sorts first, as upstream's `afterOrZero`.
fn newer_first(a: Timestamp, b: Timestamp, now: Timestamp) -> Option<Ordering> {
    let zero = Timestamp::UNIX_EPOCH;
    if a == zero || b == zero {
        return Some(if a == zero { Ordering::Less } else { Ordering::Greater });
    }
    let bucket = |t: Timestamp| {
        let d = now.as_nanosecond() - t.as_nanosecond();
        if d > 0 { (d as f64).log2() as i64 } else { -1 }
    };
    match bucket(a).cmp(&bucket(b)) {
        Ordering::Equal => None,
        o => Some(o),
    }
}

/// How many related pods (those of ReplicaSets with the same controller) run on each
/// pod's node: upstream prefers deleting pods that are doubled up.
pub fn ranks(pods: &[&Pod], related: &[&Pod]) -> Vec<usize> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && is_pod_active(p)
        {
            *on_node.entry(node).or_default() += 1;
        }
    }
    pods.iter()
        .map(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()).and_then(|n| on_node.get(n)).copied().unwrap_or(0)
        })
        .collect()
}

/// Decides creations and deletions from the active pods the ReplicaSet owns.
pub fn decide<'a>(rs: &ReplicaSet, active: &[&'a Pod], related: &[&Pod], now: Timestamp) -> Plan<'a> {
    let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let have = active.len();
    if have < want {
        return Plan { create: (want - have).min(BURST_REPLICAS), delete: Vec::new() };
    }
    let diff = (have - want).min(BURST_REPLICAS);
    if diff == 0 {
        return Plan { create: 0, delete: Vec::new() };
    }
    let rank = ranks(active, related);
    let mut order: Vec<(&'a Pod, usize)> = active.iter().copied().zip(rank).collect();
    order.sort_by(|a, b| deletion_order(*a, *b, now));
    Plan { create: 0, delete: order.into_iter().take(diff).map(|(p, _)| p).collect() }
}

/// Sizes of upstream's slow-start batches for `count` creations: 1, 2, 4, ...
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        out.push(batch);
        remaining -= batch;
        batch = remaining.min(batch * 2);
    }
    out
}

/// The pod a ReplicaSet creates from its template (upstream's `GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template: PodTemplateSpec = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![new_controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

// ---------------------------------------------------------------------------------------
// Status.

pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status a ReplicaSet reports over its active owned pods (upstream's
/// `calculateStatus` plus `observedGeneration`). `manage_error` is the error of this
/// sync's creations or deletions, if any: it sets the ReplicaFailure condition.
pub fn status(rs: &ReplicaSet, active: &[&Pod], manage_error: Option<&str>, now: Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels =
        spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in active {
        let labels = labels_of(&pod.metadata);
        if template_labels.as_ref().is_none_or(|t| t.iter().all(|(k, v)| labels.get(k) == Some(v))) {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(msg) if !has_failure => {
            let want = spec.and_then(|s| s.replicas).unwrap_or(1) as usize;
            let reason = match active.len().cmp(&want) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(msg.into()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    let nz = |n: i32| (n != 0).then_some(n);
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: nz(fully_labeled),
        ready_replicas: nz(ready),
        available_replicas: nz(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// The merge patch that writes `status`; zero counts are removed, as upstream's
/// `omitempty` leaves them out.
pub fn status_patch(status: &ReplicaSetStatus) -> Value {
    json!({"status": {
        "replicas": status.replicas,
        "fullyLabeledReplicas": status.fully_labeled_replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "observedGeneration": status.observed_generation,
        "conditions": status.conditions,
    }})
}

/// When a pod that is ready but not yet available becomes available, so the status is
/// recomputed then (upstream requeues after `minReadySeconds`).
pub fn next_availability(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready, now))
        .filter_map(|p| pod_ready_since(p))
        .map(|since| {
            let at = since + SignedDuration::from_secs(i64::from(min_ready));
            let wait = at.as_nanosecond() - now.as_nanosecond();
            // Availability needs strictly more than minReadySeconds: look a little later.
            Duration::from_nanos(wait.max(0) as u64) + Duration::from_millis(100)
        })
        .min()
}

// ---------------------------------------------------------------------------------------
// Expectations.

/// Creations and deletions issued but not yet seen in the pod cache, per ReplicaSet
/// (upstream's `ControllerExpectations`, tracked by pod name so that no event type
/// needs to be told apart).
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    /// Names of pods created, to appear in the cache.
    creates: Vec<String>,
    /// (name, uid) of pods deleted, to vanish from the cache or show deletion.
    deletes: Vec<(String, String)>,
    since: Instant,
}

impl Expectations {
    pub fn expect(&self, key: &str, creates: Vec<String>, deletes: Vec<(String, String)>) {
        if creates.is_empty() && deletes.is_empty() {
            return;
        }
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), Pending { creates, deletes, since: Instant::now() });
    }

    /// True when nothing is pending for `key`: every created pod is in the cache and
    /// every deleted one gone or terminating. `lookup` reads the cache by pod name.
    pub fn satisfied(&self, key: &str, lookup: impl Fn(&str) -> Option<Arc<Pod>>) -> bool {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(key) else { return true };
        if p.since.elapsed() > EXPECTATIONS_TIMEOUT {
            map.remove(key);
            return true;
        }
        p.creates.retain(|name| lookup(name).is_none());
        p.deletes.retain(|(name, uid)| {
            lookup(name).is_some_and(|pod| {
                pod.metadata.uid.as_deref() == Some(uid.as_str()) && pod.metadata.deletion_timestamp.is_none()
            })
        });
        if p.creates.is_empty() && p.deletes.is_empty() {
            map.remove(key);
            return true;
        }
        false
    }

    pub fn forget(&self, key: &str) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

// ---------------------------------------------------------------------------------------
// I/O.

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    expectations: Expectations,
    events: EventSink,
}

/// The message of an API error as upstream prints `err.Error()`.
pub fn error_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// A create refused because the namespace is being deleted: nothing to report.
fn is_namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

fn key_of(rs: &ReplicaSet) -> String {
    format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any())
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Deciding on a partial pod cache would create pods that exist.
    informer::wait_until_ready(&ctx.pods).await;
    let ns = rs.namespace().unwrap_or_default();
    let key = key_of(&rs);
    let now = Timestamp::now();
    let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let Some(label_selector) = rs.spec.as_ref().map(|s| s.selector.clone()) else {
        return Ok(Action::await_change());
    };
    let selector = match parse_selector(&label_selector) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(replicaset = %key, error = %e, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let candidates: Vec<Arc<Pod>> =
        ctx.pods.state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_pod_active(p));
    let claimed = claim(&rs_uid, deleting, &selector, candidates.iter().map(|p| p.as_ref()));
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut active: Vec<&Pod> = claimed.owned;
    if !claimed.adopt.is_empty() {
        // Adopt only if the ReplicaSet read fresh is still this one and alive.
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let fresh = rs_api.get_opt(&rs.name_any()).await?;
        let can_adopt =
            fresh.is_some_and(|f| f.metadata.uid == rs.metadata.uid && f.metadata.deletion_timestamp.is_none());
        if can_adopt {
            let owner = new_controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
            for pod in claimed.adopt {
                let patch = adopt_patch(&owner, pod.metadata.uid.as_deref().unwrap_or_default());
                match pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                    Ok(_) => active.push(pod),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for pod in claimed.release {
        let patch = release_patch(&rs_uid, pod.metadata.uid.as_deref().unwrap_or_default());
        match pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }

    let lookup = |name: &str| ctx.pods.get(&ObjectRef::new(name).within(&ns));
    let mut manage_error: Option<String> = None;
    if ctx.expectations.satisfied(&key, lookup) && !deleting {
        let related = related_pods(&ctx, &rs);
        let related: Vec<&Pod> = related.iter().map(|p| p.as_ref()).collect();
        let plan = decide(&rs, &active, &related, now);
        if plan.create > 0 {
            manage_error = create_pods(&ctx, &rs, &key, plan.create).await;
        } else if !plan.delete.is_empty() {
            manage_error = delete_pods(&ctx, &rs, &key, &plan.delete).await;
        }
    }

    let new_status = status(&rs, &active, manage_error.as_deref(), Timestamp::now());
    if rs.status.as_ref() != Some(&new_status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(status_patch(&new_status))).await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(msg) = manage_error {
        return Err(Error::Manage(msg));
    }
    // A resync now and then heals whatever a lost event left behind.
    let after = next_availability(&rs, &active, Timestamp::now()).unwrap_or(RESYNC).min(RESYNC);
    Ok(Action::requeue(after))
}

/// Active pods of every ReplicaSet sharing this one's controller (a Deployment's RSes).
fn related_pods(ctx: &Ctx, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
    let Some(owner) = controller_ref(&rs.metadata) else { return Vec::new() };
    let ns = rs.namespace().unwrap_or_default();
    let siblings: Vec<String> = ctx
        .replica_sets
        .state_filter(|r| {
            r.metadata.namespace.as_deref() == Some(ns.as_str())
                && controller_ref(&r.metadata).is_some_and(|o| o.uid == owner.uid)
        })
        .iter()
        .filter_map(|r| r.metadata.uid.clone())
        .collect();
    ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && is_pod_active(p)
            && controller_ref(&p.metadata).is_some_and(|o| siblings.contains(&o.uid))
    })
}

/// Creates `count` pods in slow-start batches; returns the first error, if any.
async fn create_pods(ctx: &Ctx, rs: &ReplicaSet, key: &str, count: usize) -> Option<String> {
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pod_from_template(rs);
    let regarding = rs.object_ref(&());
    let mut created = Vec::new();
    let mut failure = None;
    let params = PostParams::default();
    for batch in slow_start_batches(count, SLOW_START_INITIAL_BATCH) {
        let results = join_all((0..batch).map(|_| api.create(&params, &pod))).await;
        for r in results {
            match r {
                Ok(p) => {
                    let name = p.name_any();
                    ctx.events.publish(
                        regarding.clone(),
                        event(EventType::Normal, "SuccessfulCreate", "Create", format!("Created pod: {name}")),
                    );
                    created.push(name);
                }
                Err(e) if is_namespace_terminating(&e) => {}
                Err(e) => {
                    let msg = error_message(&e);
                    ctx.events.publish(
                        regarding.clone(),
                        event(EventType::Warning, "FailedCreate", "Create", format!("Error creating: {msg}")),
                    );
                    failure.get_or_insert(msg);
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    ctx.expectations.expect(key, created, Vec::new());
    failure
}

async fn delete_pods(ctx: &Ctx, rs: &ReplicaSet, key: &str, pods: &[&Pod]) -> Option<String> {
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let regarding = rs.object_ref(&());
    let params = DeleteParams::default();
    let results =
        join_all(pods.iter().map(|p| api.delete(p.metadata.name.as_deref().unwrap_or_default(), &params))).await;
    let mut deleted = Vec::new();
    let mut failure = None;
    for (pod, r) in pods.iter().zip(results) {
        let name = pod.name_any();
        match r {
            Ok(_) => {
                ctx.events.publish(
                    regarding.clone(),
                    event(EventType::Normal, "SuccessfulDelete", "Delete", format!("Deleted pod: {name}")),
                );
                deleted.push((name, pod.metadata.uid.clone().unwrap_or_default()));
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                let msg = error_message(&e);
                ctx.events.publish(
                    regarding.clone(),
                    event(EventType::Warning, "FailedDelete", "Delete", format!("Error deleting: {msg}")),
                );
                failure.get_or_insert(msg);
            }
        }
    }
    ctx.expectations.expect(key, Vec::new(), deleted);
    failure
}

/// A write refused because the cache was stale: expected now and then, retried soon.
pub fn is_conflict(err: &Error) -> bool {
    matches!(err, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    if is_conflict(err) {
        tracing::debug!(replicaset = %key_of(&rs), error = %err, "replicaset sync raced a write; retrying");
        return Action::requeue(Duration::from_millis(100));
    }
    tracing::warn!(replicaset = %key_of(&rs), error = %err, "replicaset sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The ReplicaSets a pod event concerns: its controller if that is a ReplicaSet, or,
/// for an orphan, every ReplicaSet of its namespace whose selector matches it.
fn pod_to_replica_sets(pod: &Pod, replica_sets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_ref(&pod.metadata) {
        if owner.kind == "ReplicaSet" && owner.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = labels_of(&pod.metadata);
    replica_sets
        .state_filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(ns.as_str())
                && rs
                    .spec
                    .as_ref()
                    .and_then(|s| parse_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.selects_all() && sel.matches(labels))
        })
        .iter()
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// Logs what goes wrong outside reconciles (watches); failed reconciles are logged by
/// their error policy and vanished objects need no word.
pub fn log_trouble<K, E: std::fmt::Display, Q: std::fmt::Display>(
    controller: &str,
    res: Result<K, kube::runtime::controller::Error<E, Q>>,
) {
    use kube::runtime::controller::Error as E2;
    match res {
        Ok(_) | Err(E2::ObjectNotFound(_)) | Err(E2::ReconcilerFailed(..)) => {}
        Err(e) => tracing::warn!(controller, error = %e, "controller trouble"),
    }
}

/// Drops what no controller reads, to keep the caches small.
pub fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

pub async fn run(client: Client, informers: Informers) {
    let (replica_sets, pods) = (informers.get::<ReplicaSet>(), informers.get::<Pod>());
    let rs_store = replica_sets.store();
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), CONTROLLER_NAME),
        client,
        pods: pods.store(),
        replica_sets: rs_store.clone(),
        expectations: Expectations::default(),
    });
    let mapper_store = rs_store.clone();
    Controller::for_shared_stream(replica_sets.touched(), rs_store)
        .watches_shared_stream(pods.touched(), move |pod| pod_to_replica_sets(&pod, &mapper_store))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move { log_trouble("replicaset", res) })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: labels(&[("app", "web"), ("tier", "front")]),
                        annotations: labels(&[("note", "x")]),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A pod: `node` empty means unscheduled; `ready_at` Some means Ready since then.
    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: labels(&[("app", "web"), ("tier", "front")]),
                creation_timestamp: Some(Time(ts(created))),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "web".into(),
                    uid: "rs-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!node.is_empty()).then(|| node.to_string()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready_at.is_some() { "True" } else { "False" }.into(),
                    last_transition_time: ready_at.map(|t| Time(ts(t))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn creates_the_missing_pods_capped_by_the_burst() {
        let r = rs(3);
        let p = pod("a", "n1", "Running", Some(10), 1);
        let plan = decide(&r, &[&p], &[], ts(100));
        assert_eq!(plan, Plan { create: 2, delete: vec![] });
        let plan = decide(&rs(10_000), &[], &[], ts(100));
        assert_eq!(plan.create, BURST_REPLICAS);
        assert_eq!(decide(&r, &[&p, &p, &p], &[], ts(100)).create, 0);
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_pending_then_not_ready_then_recently_ready() {
        let unscheduled = pod("unscheduled", "", "Pending", None, 1);
        let pending = pod("pending", "n1", "Pending", None, 1);
        let not_ready = pod("not-ready", "n1", "Running", None, 1);
        let ready_recently = pod("ready-recently", "n2", "Running", Some(990), 1);
        let ready_long = pod("ready-long", "n3", "Running", Some(100), 1);
        let all = [&ready_long, &ready_recently, &not_ready, &pending, &unscheduled];
        for n in 1..=5 {
            let plan = decide(&rs(5 - n as i32), &all, &[], ts(1000));
            let names: Vec<_> = plan.delete.iter().map(|p| p.name_any()).collect();
            let expected = ["unscheduled", "pending", "not-ready", "ready-recently", "ready-long"];
            assert_eq!(names, expected[..n], "deleting {n}");
        }
    }

    #[test]
    fn deletion_order_prefers_doubled_up_costly_restarting_and_new_pods() {
        let now = ts(100_000);
        let a = pod("a", "n1", "Running", Some(10), 1);
        let b = pod("b", "n2", "Running", Some(10), 1);
        // More pods on a's node: a goes first.
        assert_eq!(deletion_order((&a, 3), (&b, 1), now), Ordering::Less);
        // A lower deletion cost goes first, before ranks count.
        let mut cheap = b.clone();
        cheap.metadata.annotations = labels(&[(POD_DELETION_COST, "-5")]);
        assert_eq!(deletion_order((&a, 3), (&cheap, 1), now), Ordering::Greater);
        // More restarts go first.
        let mut crashy = b.clone();
        crashy.status.as_mut().unwrap().container_statuses =
            Some(vec![k8s_openapi::api::core::v1::ContainerStatus { restart_count: 4, ..Default::default() }]);
        assert_eq!(deletion_order((&crashy, 0), (&a, 0), now), Ordering::Less);
        // Same everything but age: the newer (in a different log2 bucket) goes first.
        let old = pod("old", "n1", "Running", None, 10);
        let young = pod("young", "n1", "Running", None, 99_990);
        assert_eq!(deletion_order((&young, 0), (&old, 0), now), Ordering::Less);
        // Within one log2 bucket, the uid decides.
        let y1 = pod("y1", "n1", "Running", None, 99_000);
        let y2 = pod("y2", "n1", "Running", None, 99_001);
        assert_eq!(deletion_order((&y2, 0), (&y1, 0), now), Ordering::Greater);
    }

    #[test]
    fn ranks_count_related_active_pods_per_node() {
        let a = pod("a", "n1", "Running", Some(1), 1);
        let b = pod("b", "n1", "Running", Some(1), 1);
        let c = pod("c", "n2", "Running", Some(1), 1);
        let u = pod("u", "", "Pending", None, 1);
        assert_eq!(ranks(&[&a, &c, &u], &[&a, &b, &c]), vec![2, 1, 0]);
    }

    #[test]
    fn slow_start_doubles_each_batch() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(500, 1), vec![1, 2, 4, 8, 16, 32, 64, 128, 245]);
    }

    #[test]
    fn claim_adopts_matching_orphans_and_releases_mismatches() {
        let sel = parse_selector(&rs(1).spec.unwrap().selector).unwrap();
        let owned = pod("owned", "n", "Running", None, 1);
        let mut orphan = owned.clone();
        orphan.metadata.name = Some("orphan".into());
        orphan.metadata.owner_references = None;
        let mut other = orphan.clone();
        other.metadata.name = Some("other".into());
        other.metadata.labels = labels(&[("app", "db")]);
        let mut relabelled = owned.clone();
        relabelled.metadata.name = Some("relabelled".into());
        relabelled.metadata.labels = labels(&[("app", "db")]);
        let mut foreign = owned.clone();
        foreign.metadata.name = Some("foreign".into());
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
        let mut dying_orphan = orphan.clone();
        dying_orphan.metadata.deletion_timestamp = Some(Time(ts(5)));
        let all = [owned, orphan, other, relabelled, foreign, dying_orphan];
        let c = claim("rs-uid", false, &sel, all.iter());
        let names = |v: &Vec<&Pod>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(names(&c.owned), ["owned"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["relabelled"]);
        // An owner being deleted neither adopts nor releases.
        let c = claim("rs-uid", true, &sel, all.iter());
        assert!(c.adopt.is_empty() && c.release.is_empty());
        let patch = release_patch("rs-uid", "p1");
        assert_eq!(patch["metadata"]["ownerReferences"][0]["$patch"], "delete");
        let owner = new_controller_ref("apps/v1", "ReplicaSet", &rs(1).metadata);
        let patch = adopt_patch(&owner, "p1");
        assert_eq!(patch["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
        assert_eq!(patch["metadata"]["uid"], "p1");
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        let mut r = rs(3);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let long_ready = pod("a", "n", "Running", Some(10), 1);
        let just_ready = pod("b", "n", "Running", Some(95), 1);
        let mut partly_labeled = pod("c", "n", "Running", None, 1);
        partly_labeled.metadata.labels = labels(&[("app", "web")]);
        let s = status(&r, &[&long_ready, &just_ready, &partly_labeled], None, ts(100));
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions, None);
        // b becomes available just after 95 + 30.
        let after = next_availability(&r, &[&long_ready, &just_ready], ts(100)).unwrap();
        assert!(after > Duration::from_secs(25) && after < Duration::from_secs(26), "{after:?}");
        // Zero counts are removed from the patch, as upstream omits them.
        let empty = status(&r, &[], None, ts(100));
        let patch = status_patch(&empty);
        assert_eq!(patch["status"]["replicas"], 0);
        assert!(patch["status"]["readyReplicas"].is_null());
    }

    #[test]
    fn a_failed_create_sets_replica_failure_and_success_clears_it() {
        let r = rs(2);
        let s = status(&r, &[], Some("pods \"web-x\" is forbidden: quota"), ts(100));
        let cond = &s.conditions.as_ref().unwrap()[0];
        assert_eq!((cond.type_.as_str(), cond.reason.as_deref()), ("ReplicaFailure", Some("FailedCreate")));
        let mut failed = r.clone();
        failed.status = Some(s);
        assert_eq!(status(&failed, &[], None, ts(101)).conditions, None);
    }

    #[test]
    fn pods_from_the_template_carry_a_controller_reference() {
        let p = pod_from_template(&rs(1));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.labels, labels(&[("app", "web"), ("tier", "front")]));
        assert_eq!(p.metadata.annotations, labels(&[("note", "x")]));
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ReplicaSet", "rs-uid"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    }

    #[test]
    fn availability_needs_strictly_more_than_min_ready_seconds() {
        let p = pod("a", "n", "Running", Some(100), 1);
        assert!(is_pod_available(&p, 0, ts(100)));
        assert!(!is_pod_available(&p, 10, ts(110)));
        assert!(is_pod_available(&p, 10, ts(111)));
        let mut done = p.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!is_pod_active(&done));
    }

    #[test]
    fn expectations_wait_for_created_pods_and_deleted_pods() {
        let e = Expectations::default();
        let cache: Mutex<HashMap<String, Arc<Pod>>> = Mutex::new(HashMap::new());
        let lookup = |n: &str| cache.lock().unwrap().get(n).cloned();
        assert!(e.satisfied("ns/web", lookup));
        e.expect("ns/web", vec!["web-a".into(), "web-b".into()], vec![]);
        assert!(!e.satisfied("ns/web", lookup));
        cache.lock().unwrap().insert("web-a".into(), Arc::new(pod("web-a", "", "Pending", None, 1)));
        assert!(!e.satisfied("ns/web", lookup));
        cache.lock().unwrap().insert("web-b".into(), Arc::new(pod("web-b", "", "Pending", None, 1)));
        assert!(e.satisfied("ns/web", lookup));
        // A deletion is seen once the pod is gone or terminating.
        e.expect("ns/web", vec![], vec![("web-a".into(), "uid-web-a".into()), ("web-b".into(), "uid-web-b".into())]);
        assert!(!e.satisfied("ns/web", lookup));
        cache.lock().unwrap().remove("web-a");
        let mut terminating = pod("web-b", "n", "Running", None, 1);
        terminating.metadata.deletion_timestamp = Some(Time(ts(5)));
        cache.lock().unwrap().insert("web-b".into(), Arc::new(terminating));
        assert!(e.satisfied("ns/web", lookup));
        e.expect("ns/web", vec!["web-z".into()], vec![]);
        e.forget("ns/web");
        assert!(e.satisfied("ns/web", lookup));
    }

    #[test]
    fn orphan_pods_map_to_every_matching_replica_set() {
        let (store, mut writer) = kube::runtime::reflector::store::<ReplicaSet>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(rs(1)));
        let mut other = rs(1);
        other.metadata.name = Some("db".into());
        other.spec.as_mut().unwrap().selector.match_labels = labels(&[("app", "db")]);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(other));
        let owned = pod("a", "", "Pending", None, 1);
        assert_eq!(pod_to_replica_sets(&owned, &store), vec![ObjectRef::new("web").within("default")]);
        let mut orphan = owned.clone();
        orphan.metadata.owner_references = None;
        assert_eq!(pod_to_replica_sets(&orphan, &store), vec![ObjectRef::new("web").within("default")]);
    }
}
