//! The disruption controller (upstream's `pkg/controller/disruption`): keeps every
//! PodDisruptionBudget's status current, so that the API server's `eviction`
//! subresource (and with it `kubectl drain`) can tell whether one more pod may go.
//!
//! - `expectedPods`: the pods the budget covers, or, for `maxUnavailable` and
//!   percentages, the sum of the desired replicas of the pods' controllers (a
//!   Deployment for its ReplicaSets' pods, StatefulSets, ReplicaSets, any kind with a
//!   `scale` subresource);
//! - `desiredHealthy` from `minAvailable` / `maxUnavailable` (percentages round up);
//! - `currentHealthy`: ready pods not being deleted and not just evicted;
//! - `disruptedPods`: evictions the API server granted, kept until the pod is deleted
//!   or two minutes pass (then a `NotDeleted` event);
//! - `disruptionsAllowed`, `observedGeneration` and the `DisruptionAllowed` condition
//!   (`SufficientPods`, `InsufficientPods`, or `SyncFailed` with no disruption allowed
//!   when the status cannot be computed: upstream's fail-safe).
//!
//! The arithmetic is pure and tested with plain data; [`run`] does the watching.

use crate::Informers;
use crate::events::{Event, EventType, Recorder};
use crate::recorder;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{GroupVersionKind, Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long an eviction the API server granted counts the pod as gone before the
/// pod must actually be deleted (upstream's DeletionTimeout).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value {0:?}: not an integer percentage")]
    BadPercentage(String),
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    #[error("invalid selector: {0}")]
    Selector(String),
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Upstream's GetScaledValueFromIntOrPercent: an integer as is, `N%` of `total`,
/// rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or(Error::NotAPercentage)?;
            let pct: i64 = digits.parse().map_err(|_| Error::BadPercentage(s.clone()))?;
            let product = pct * i64::from(total);
            let v = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            Ok(v as i32)
        }
    }
}

/// Whether the budget is relative to the controllers' scale rather than the pods found.
pub fn needs_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `(expectedPods, desiredHealthy)` from the spec, the number of pods the budget
/// selects, and the controllers' total scale (used when [`needs_scale`]).
pub fn expected_and_desired(spec: &PodDisruptionBudgetSpec, pods: i32, scale: i32) -> Result<(i32, i32), Error> {
    if let Some(max) = &spec.max_unavailable {
        let unavailable = scaled_value(max, scale, true)?;
        return Ok((scale, (scale - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => Ok((pods, *min)),
        Some(min) => Ok((scale, scaled_value(min, scale, true)?)),
        None => Ok((0, 0)),
    }
}

/// What the budget needs to know of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub name: String,
    pub ready: bool,
    pub deleting: bool,
    pub controller: Option<OwnerReference>,
}

impl PodView {
    pub fn of(pod: &Pod) -> PodView {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        PodView {
            name: pod.name_any(),
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            controller: pod.owner_references().iter().find(|o| o.controller == Some(true)).cloned(),
        }
    }
}

/// The evictions still expected to happen: entries of pods that are still there, not
/// yet being deleted, and within the deletion timeout. Returns them, when to look
/// again (the earliest expiry), and the pods whose eviction never came.
pub fn disrupted_pods(
    recorded: Option<&BTreeMap<String, Time>>,
    pods: &[PodView],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut expired = Vec::new();
    let Some(recorded) = recorded else { return (kept, recheck, expired) };
    let timeout = SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::from_secs(120));
    for pod in pods {
        if pod.deleting {
            continue;
        }
        let Some(when) = recorded.get(&pod.name) else { continue };
        let deadline = when.0.saturating_add(timeout).unwrap_or(when.0);
        if deadline < now {
            expired.push(pod.name.clone());
        } else {
            recheck = Some(recheck.map_or(deadline, |r: Timestamp| r.min(deadline)));
            kept.insert(pod.name.clone(), when.clone());
        }
    }
    (kept, recheck, expired)
}

/// Ready pods that are neither being deleted nor just granted an eviction.
pub fn current_healthy(pods: &[PodView], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter().filter(|p| !p.deleting && !disrupted.contains_key(&p.name) && p.ready).count() as i32
}

pub const CONDITION: &str = "DisruptionAllowed";

/// Sets a condition as apimachinery's SetStatusCondition does: the transition time
/// moves only when the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
        None => {
            new.observed_generation = new.observed_generation.or(Some(0));
            conditions.push(new);
        }
    }
}

fn allowed_condition(status: &PodDisruptionBudgetStatus, now: Timestamp) -> Condition {
    let ok = status.disruptions_allowed > 0;
    Condition {
        type_: CONDITION.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { "SufficientPods" } else { "InsufficientPods" }.into(),
        message: String::new(),
        observed_generation: status.observed_generation,
        last_transition_time: Time(now),
    }
}

fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else { return false };
    let Some(c) = status.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == CONDITION)) else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == "SufficientPods"
    } else {
        c.status == "False" && c.reason == "InsufficientPods"
    }
}

/// The status the budget should have, or `None` when it has it already.
pub fn new_status(
    pdb: &PodDisruptionBudget,
    current: i32,
    desired: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    // A budget that expects no pods allows nothing, so that its first pods are safe
    // before this controller has counted them.
    let allowed = if expected <= 0 { 0 } else { (current - desired).max(0) };
    let old = pdb.status.clone().unwrap_or_default();
    let same = old.current_healthy == current
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.clone().unwrap_or_default() == disrupted
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb);
    if same {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: current,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: old.conditions.clone(),
    };
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(&mut conditions, allowed_condition(&status, now));
    status.conditions = Some(conditions);
    Some(status)
}

/// Upstream's fail-safe: when the status cannot be computed, allow nothing and say why.
pub fn failed_status(pdb: &PodDisruptionBudget, why: &str, now: Timestamp) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        Condition {
            type_: CONDITION.into(),
            status: "False".into(),
            reason: "SyncFailed".into(),
            message: why.to_string(),
            observed_generation: status.observed_generation,
            last_transition_time: Time(now),
        },
    );
    status.conditions = Some(conditions);
    status
}

/// Whether a budget covers a pod: a missing selector covers nothing; an empty one
/// covers every pod of the namespace (policy/v1).
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.namespace() != pod.namespace() {
        return false;
    }
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else { return false };
    match Selector::try_from(selector) {
        Ok(sel) => sel.matches(pod.labels()),
        Err(_) => false,
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    events: Recorder,
}

impl Ctx {
    fn event(&self, pdb: &PodDisruptionBudget, type_: EventType, reason: &str, note: String) {
        let recorder = self.events.clone();
        let reference = pdb.object_ref(&());
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        tokio::spawn(async move {
            let _ = recorder.publish(&ev, &reference).await;
        });
    }
}

fn api_group(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn uid_matches(meta: &kube::api::ObjectMeta, owner: &OwnerReference) -> bool {
    meta.uid.as_deref() == Some(owner.uid.as_str())
}

/// The controlling object's UID and desired replicas, upstream's finders in order: a
/// ReplicaSet run by a Deployment counts as that Deployment.
async fn scale_of(client: &Client, ns: &str, owner: &OwnerReference) -> Result<Option<(String, i32)>, Error> {
    let found = |meta: &kube::api::ObjectMeta, replicas: Option<i32>| {
        Some((meta.uid.clone().unwrap_or_default(), replicas.unwrap_or(1)))
    };
    let not_found = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    match (api_group(&owner.api_version).0, owner.kind.as_str()) {
        ("apps", "ReplicaSet") => {
            let rs = match Api::<ReplicaSet>::namespaced(client.clone(), ns).get(&owner.name).await {
                Ok(rs) if uid_matches(&rs.metadata, owner) => rs,
                Ok(_) => return Ok(None),
                Err(e) if not_found(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let parent = rs.owner_references().iter().find(|o| o.controller == Some(true)).cloned();
            if let Some(d) = parent.filter(|o| o.kind == "Deployment" && api_group(&o.api_version).0 == "apps") {
                return match Api::<Deployment>::namespaced(client.clone(), ns).get(&d.name).await {
                    Ok(dep) if uid_matches(&dep.metadata, &d) => {
                        Ok(found(&dep.metadata, dep.spec.as_ref().and_then(|s| s.replicas)))
                    }
                    Ok(_) => Ok(None),
                    Err(e) if not_found(&e) => Ok(None),
                    Err(e) => Err(e.into()),
                };
            }
            Ok(found(&rs.metadata, rs.spec.as_ref().and_then(|s| s.replicas)))
        }
        ("apps", "StatefulSet") => match Api::<StatefulSet>::namespaced(client.clone(), ns).get(&owner.name).await {
            Ok(s) if uid_matches(&s.metadata, owner) => {
                Ok(found(&s.metadata, s.spec.as_ref().and_then(|s| s.replicas)))
            }
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        },
        ("", "ReplicationController") => {
            match Api::<ReplicationController>::namespaced(client.clone(), ns).get(&owner.name).await {
                Ok(s) if uid_matches(&s.metadata, owner) => {
                    Ok(found(&s.metadata, s.spec.as_ref().and_then(|s| s.replicas)))
                }
                Ok(_) => Ok(None),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        (group, kind) => {
            // Any other kind that has a scale subresource (upstream's generic finder).
            let version = api_group(&owner.api_version).1;
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (ar, _) = match kube::discovery::pinned_kind(client, &gvk).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(kind, error = %e, "no scale for the pod's controller");
                    return Ok(None);
                }
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            match api.get_scale(&owner.name).await {
                Ok(scale) if uid_matches(&scale.metadata, owner) => {
                    Ok(Some((owner.uid.clone(), scale.spec.and_then(|s| s.replicas).unwrap_or(0))))
                }
                Ok(_) => Ok(None),
                Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 405) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The sum of the scales of the pods' controllers, each counted once, and the pods
/// that have no controller.
async fn expected_scale(client: &Client, ns: &str, pods: &[PodView]) -> Result<(i32, Vec<String>), Error> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut seen_owner: HashMap<String, ()> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = &pod.controller else {
            unmanaged.push(pod.name.clone());
            continue;
        };
        if seen_owner.insert(owner.uid.clone(), ()).is_some() {
            continue;
        }
        match scale_of(client, ns, owner).await? {
            Some((uid, replicas)) => {
                scales.insert(uid, replicas);
            }
            None => return Err(Error::NoController(pod.name.clone())),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

async fn write_status(ctx: &Ctx, pdb: &PodDisruptionBudget, status: PodDisruptionBudgetStatus) -> Result<(), Error> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &pdb.namespace().unwrap_or_default());
    let mut new = pdb.clone();
    new.status = Some(status);
    new.metadata.managed_fields = None;
    // The resourceVersion read makes this write lose against an eviction's decrement.
    api.replace_status(&pdb.name_any(), &PostParams::default(), &new).await?;
    Ok(())
}

async fn sync(pdb: &PodDisruptionBudget, ctx: &Ctx) -> Result<Option<Timestamp>, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods: Vec<PodView> = ctx.pods.state().iter().filter(|p| selects(pdb, p)).map(|p| PodView::of(p)).collect();
    if pods.is_empty() {
        ctx.event(pdb, EventType::Normal, "NoPods", "No matching pods found".into());
    }
    let (scale, unmanaged) =
        if needs_scale(&spec) { expected_scale(&ctx.client, &ns, &pods).await? } else { (0, Vec::new()) };
    if !unmanaged.is_empty() {
        let selector = spec.selector.as_ref().map(|s| format!("{s:?}")).unwrap_or_default();
        ctx.event(
            pdb,
            EventType::Warning,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        );
    }
    let (expected, desired) = match expected_and_desired(&spec, pods.len() as i32, scale) {
        Ok(v) => v,
        Err(e) => {
            ctx.event(
                pdb,
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            return Err(e);
        }
    };
    let now = Timestamp::now();
    let recorded = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let (disrupted, recheck, expired) = disrupted_pods(recorded, &pods, now);
    for name in expired {
        tracing::info!(pod = %name, pdb = %pdb.name_any(), "pod was expected to be deleted but it wasn't");
        let recorder = ctx.events.clone();
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns.clone()),
            name: Some(name),
            ..Default::default()
        };
        let note = format!("Pod was expected by PDB {ns}/{} to be deleted but it wasn't", pdb.name_any());
        let ev = Event {
            type_: EventType::Warning,
            reason: "NotDeleted".into(),
            note: Some(note),
            action: "NotDeleted".into(),
            secondary: None,
        };
        tokio::spawn(async move {
            let _ = recorder.publish(&ev, &reference).await;
        });
    }
    let healthy = current_healthy(&pods, &disrupted);
    if let Some(status) = new_status(pdb, healthy, desired, expected, disrupted, now) {
        write_status(ctx, pdb, status).await?;
    }
    Ok(recheck)
}

fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    match sync(&pdb, &ctx).await {
        Ok(Some(recheck)) => {
            let wait = recheck.duration_since(Timestamp::now()).unsigned_abs();
            Ok(Action::requeue(wait + Duration::from_millis(100)))
        }
        Ok(None) => Ok(Action::await_change()),
        // Someone (an eviction) wrote the status since it was read: read it again.
        Err(e) if is_conflict(&e) => Err(e),
        Err(e) => {
            tracing::warn!(pdb = %pdb.name_any(), error = %e, "syncing the disruption budget failed");
            write_status(&ctx, &pdb, failed_status(&pdb, &e.to_string(), Timestamp::now())).await?;
            Err(e)
        }
    }
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    if is_conflict(err) {
        return Action::requeue(Duration::from_millis(200));
    }
    Action::requeue(Duration::from_secs(5))
}

pub async fn run(client: Client, informers: Informers) {
    let pods = informers.get::<Pod>();
    let pod_events = pods.touched();
    let pods = pods.store();
    let pdbs: Api<PodDisruptionBudget> = Api::all(client.clone());
    let controller = Controller::new(pdbs, watcher::Config::default());
    let budgets = controller.store();
    let ctx = Arc::new(Ctx { client: client.clone(), pods, events: recorder(&client, "controllermanager") });
    controller
        .watches_shared_stream(pod_events, move |pod: Arc<Pod>| {
            budgets.state().iter().filter(|b| selects(b, &pod)).map(|b| ObjectRef::from_obj(&**b)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn spec(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudgetSpec {
        PodDisruptionBudgetSpec { min_available: min, max_unavailable: max, ..Default::default() }
    }

    fn pod(name: &str, ready: bool) -> PodView {
        PodView { name: name.into(), ready, deleting: false, controller: None }
    }

    #[test]
    fn percentages_round_up_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&pct("50%"), 3, true).unwrap(), 2);
        assert_eq!(scaled_value(&pct("50%"), 3, false).unwrap(), 1);
        assert_eq!(scaled_value(&pct("100%"), 7, true).unwrap(), 7);
        assert_eq!(scaled_value(&pct("0%"), 7, true).unwrap(), 0);
        assert_eq!(scaled_value(&IntOrString::Int(4), 7, true).unwrap(), 4);
        assert!(matches!(scaled_value(&pct("50"), 3, true), Err(Error::NotAPercentage)));
        assert!(matches!(scaled_value(&pct("x%"), 3, true), Err(Error::BadPercentage(_))));
    }

    #[test]
    fn expected_and_desired_follow_the_kind_of_budget() {
        let int = IntOrString::Int;
        let pct = |s: &str| IntOrString::String(s.into());
        // An integer minAvailable counts the pods found; no scale needed.
        let s = spec(Some(int(2)), None);
        assert!(!needs_scale(&s));
        assert_eq!(expected_and_desired(&s, 3, 0).unwrap(), (3, 2));
        // Percentages and maxUnavailable are relative to the controllers' scale.
        let s = spec(Some(pct("50%")), None);
        assert!(needs_scale(&s));
        assert_eq!(expected_and_desired(&s, 2, 5).unwrap(), (5, 3));
        let s = spec(None, Some(int(1)));
        assert_eq!(expected_and_desired(&s, 2, 3).unwrap(), (3, 2));
        let s = spec(None, Some(pct("30%")));
        assert_eq!(expected_and_desired(&s, 10, 10).unwrap(), (10, 7));
        // More unavailable than replicas: nothing needs to stay.
        let s = spec(None, Some(int(5)));
        assert_eq!(expected_and_desired(&s, 2, 2).unwrap(), (2, 0));
    }

    #[test]
    fn healthy_pods_exclude_deleting_and_just_evicted_ones() {
        let mut deleting = pod("d", true);
        deleting.deleting = true;
        let pods = vec![pod("a", true), pod("b", true), pod("c", false), deleting];
        let recorded: BTreeMap<String, Time> = [("b".to_string(), Time(ts(1000)))].into();
        let (disrupted, recheck, expired) = disrupted_pods(Some(&recorded), &pods, ts(1010));
        assert_eq!(disrupted.len(), 1);
        assert_eq!(recheck, Some(ts(1120)));
        assert!(expired.is_empty());
        assert_eq!(current_healthy(&pods, &disrupted), 1);
        // After the timeout the pod counts again, with a NotDeleted to report.
        let (disrupted, recheck, expired) = disrupted_pods(Some(&recorded), &pods, ts(1121));
        assert!(disrupted.is_empty());
        assert_eq!(recheck, None);
        assert_eq!(expired, ["b"]);
        assert_eq!(current_healthy(&pods, &disrupted), 2);
        // Entries for pods gone or being deleted are dropped.
        let recorded: BTreeMap<String, Time> =
            [("gone".to_string(), Time(ts(1000))), ("d".to_string(), Time(ts(1000)))].into();
        assert!(disrupted_pods(Some(&recorded), &pods, ts(1010)).0.is_empty());
    }

    fn budget(generation: i64, status: Option<PodDisruptionBudgetStatus>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta { name: Some("b".into()), generation: Some(generation), ..Default::default() },
            spec: Some(spec(Some(IntOrString::Int(2)), None)),
            status,
        }
    }

    #[test]
    fn status_and_condition() {
        let now = ts(5000);
        let s = new_status(&budget(1, None), 3, 2, 3, BTreeMap::new(), now).unwrap();
        assert_eq!((s.current_healthy, s.desired_healthy, s.expected_pods, s.disruptions_allowed), (3, 2, 3, 1));
        assert_eq!(s.observed_generation, Some(1));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("DisruptionAllowed", "True", "SufficientPods")
        );
        assert_eq!(c.observed_generation, Some(1));
        // Written once, nothing changes on the next look.
        assert_eq!(new_status(&budget(1, Some(s.clone())), 3, 2, 3, BTreeMap::new(), ts(6000)), None);
        // A new generation is observed even when the numbers stay.
        assert!(new_status(&budget(2, Some(s.clone())), 3, 2, 3, BTreeMap::new(), ts(6000)).is_some());
        // Too few healthy pods: nothing allowed, and the condition flips with a new time.
        let low = new_status(&budget(1, Some(s.clone())), 2, 2, 3, BTreeMap::new(), ts(7000)).unwrap();
        assert_eq!(low.disruptions_allowed, 0);
        let c = &low.conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InsufficientPods"));
        assert_eq!(c.last_transition_time, Time(ts(7000)));
        // No pods expected: no disruption, whatever the arithmetic says.
        let none = new_status(&budget(1, None), 0, -1, 0, BTreeMap::new(), now).unwrap();
        assert_eq!(none.disruptions_allowed, 0);
        // The fail-safe allows nothing and says why.
        let failed = failed_status(&budget(1, Some(s)), "found no controllers for pod \"x\"", now);
        assert_eq!(failed.disruptions_allowed, 0);
        let c = &failed.conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "SyncFailed"));
        assert!(c.message.contains("no controllers"));
    }

    #[test]
    fn selectors_missing_empty_and_set() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        }))
        .unwrap();
        let mut b = budget(1, None);
        b.metadata.namespace = Some("ns".into());
        assert!(!selects(&b, &pod), "no selector selects nothing");
        b.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(selects(&b, &pod), "an empty selector selects the whole namespace");
        b.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: Some([("app".to_string(), "db".to_string())].into()),
            ..Default::default()
        });
        assert!(!selects(&b, &pod));
        b.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        });
        assert!(selects(&b, &pod));
        b.metadata.namespace = Some("other".into());
        assert!(!selects(&b, &pod));
    }
}
