//! What one sync of a Deployment does, decided without I/O (upstream's
//! `syncDeployment` with `sync.go`, `rolling.go`, `recreate.go` and `progress.go`).
//!
//! [`plan`] walks the same steps as upstream over local copies of the Deployment and
//! its ReplicaSets, applying each write to its copy as it goes, and returns the writes
//! in order. The caller carries them out and stops at the first failure; the next
//! sync starts again from what the caches then show.

use super::template::{POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash};
use crate::replicaset::{controller_ref, new_controller_ref};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The revision history annotation is kept under this many characters.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// A write the sync makes, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet (named `<deployment>-<pod-template-hash>`).
    CreateReplicaSet(Box<ReplicaSet>),
    /// Replace this ReplicaSet (scale, annotations, minReadySeconds).
    UpdateReplicaSet(Box<ReplicaSet>),
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`.
    DeleteReplicaSet { name: String },
    /// Set the Deployment's own `deployment.kubernetes.io/revision`.
    SetRevision(String),
    /// Write the Deployment's status.
    UpdateStatus(Box<DeploymentStatus>),
    /// Record an Event on the Deployment.
    Event { warning: bool, reason: &'static str, message: String },
}

/// The writes of one sync, and when to look again if nothing else triggers a sync.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue_after: Option<Duration>,
}

/// A pod of one of the Deployment's ReplicaSets, as Recreate needs to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedPod {
    pub owner_uid: String,
    pub phase: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("invalid value for IntOrString: {0}")]
    IntOrPercent(String),
    #[error("deployment type {0:?} isn't supported")]
    Strategy(String),
}

// ---------------------------------------------------------------------------------------
// Small readers of the objects.

fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn created(rs: &ReplicaSet) -> Timestamp {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A ReplicaSet's revision: 0 when it has none, `None` when it cannot be read.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(&rs.metadata, REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

pub fn max_revision<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rses.into_iter().filter_map(revision).max().unwrap_or(0).max(0)
}

/// Oldest first; the name breaks ties (upstream's `ReplicaSetsByCreationTimestamp`).
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn strategy_type(d: &Deployment) -> &str {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
}

pub fn is_rolling(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

/// Resolves an int-or-percent against `total`, rounding a percent up or down
/// (upstream's `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, PlanError> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| PlanError::IntOrPercent(format!("{s:?}: must be an integer or a percentage")))?;
            let product = pct * i64::from(total);
            let v = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            Ok(v as i32)
        }
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down), with maxUnavailable 1
/// when both come to zero (upstream's `ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), PlanError> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let default = || IntOrString::String("25%".into());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(default),
        ru.and_then(|r| r.max_unavailable.clone()).unwrap_or_else(default),
    )
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(Some(&s), Some(&u), d_replicas(d)).map(|r| r.0).unwrap_or(0)
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || d_replicas(d) == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    let unavailable = resolve_fenceposts(Some(&s), Some(&u), d_replicas(d)).map(|r| r.1).unwrap_or(0);
    unavailable.min(d_replicas(d))
}

// ---------------------------------------------------------------------------------------
// Conditions.

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition unless one with the same status and reason is there; a condition
/// whose status stays keeps its transition time (upstream's `SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            status.conditions = None;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Status arithmetic.

fn sum(rses: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rses.iter().map(|rs| f(rs)).sum()
}

/// Upstream's `calculateStatus`: counts from the ReplicaSets, and the Available condition.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = sum(all, rs_available);
    let total = sum(all, rs_replicas);
    let unavailable = (total - available).max(0);
    let old = d.status.clone().unwrap_or_default();
    let nz = |n: i32| (n != 0).then_some(n);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nz(sum(all, rs_status_replicas)),
        updated_replicas: nz(new.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: nz(sum(all, rs_ready)),
        available_replicas: nz(available),
        unavailable_replicas: nz(unavailable),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= d_replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.".into(), now),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every desired replica updated and available, no old one left, generation observed.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = d_replicas(d);
    count(s.updated_replicas) == want
        && count(s.replicas) == want
        && count(s.available_replicas) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Any progress between the stored status and `s` (upstream's `DeploymentProgressing`).
pub fn deployment_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = count(old.replicas) - count(old.updated_replicas);
    let new_old = count(s.replicas) - count(s.updated_replicas);
    count(s.updated_replicas) > count(old.updated_replicas)
        || new_old < old_old
        || count(s.ready_replicas) > count(old.ready_replicas)
        || count(s.available_replicas) > count(old.available_replicas)
}

/// The Progressing condition is older than the deadline (upstream's `DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(cond) = condition(s, PROGRESSING) else { return false };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => {
            let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
            let from = cond.last_update_time.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH);
            from + SignedDuration::from_secs(i64::from(deadline)) < now
        }
    }
}

/// The new ReplicaSet's size for the next step of a rollout (upstream's `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> Result<i32, PlanError> {
    match strategy_type(d) {
        "RollingUpdate" => {
            let (s, _) = rolling_params(d);
            let surge = scaled_value(&s, d_replicas(d), true)?;
            let current = sum(all, rs_replicas);
            let max_total = d_replicas(d) + surge;
            if current >= max_total {
                return Ok(rs_replicas(new));
            }
            let up = (max_total - current).min(d_replicas(d) - rs_replicas(new));
            Ok(rs_replicas(new) + up)
        }
        "Recreate" => Ok(d_replicas(d)),
        other => Err(PlanError::Strategy(other.to_string())),
    }
}

/// The new ReplicaSet holds all desired replicas, all available, by both its own and
/// the Deployment's account.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = annotation(&rs.metadata, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) else {
        return false;
    };
    rs_replicas(rs) == d_replicas(d) && desired == d_replicas(d) && rs_available(rs) == d_replicas(d)
}

/// The ReplicaSet whose template is the Deployment's, oldest first if several.
pub fn find_new(d: &Deployment, rses: &[ReplicaSet]) -> Option<usize> {
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut candidates: Vec<usize> = (0..rses.len())
        .filter(|&i| {
            rses[i].spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &template))
        })
        .collect();
    candidates.sort_by(|&a, &b| by_creation(&rses[a], &rses[b]));
    candidates.first().copied()
}

/// Copies the Deployment's annotations (but the controller's own) onto its new
/// ReplicaSet and raises its revision to `new_revision`, keeping the revisions it held
/// before in `revision-history` (upstream's `SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let skip = |k: &str| {
        matches!(k, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
    };
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut revisions: Vec<String> =
                if history.is_empty() { Vec::new() } else { history.split(',').map(String::from).collect() };
            revisions.push(old);
            while revisions.len() > 1 && revisions.join(",").len() > MAX_REVISION_HISTORY_CHARS {
                revisions.remove(0);
            }
            annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if !exists {
        changed |= set_replicas_annotations(rs, d_replicas(d), d_replicas(d) + max_surge(d));
    }
    changed
}

fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(k).map(String::as_str) != Some(v.to_string().as_str()) {
            annotations.insert(k.into(), v.to_string());
            changed = true;
        }
    }
    changed
}

fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// How many replicas a ReplicaSet gains or loses when a rollout is scaled
/// (upstream's `GetProportion`).
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if d_replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = d_replicas(d) + max_surge(d);
    let annotated = annotation(&rs.metadata, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    // Go's math.Round: half away from zero.
    size.round() as i32 - rs_replicas(rs)
}

// ---------------------------------------------------------------------------------------
// The planner.

struct Planner {
    d: Deployment,
    rses: Vec<ReplicaSet>,
    actions: Vec<Action>,
    requeue: Option<Duration>,
    now: Timestamp,
}

/// Plans one sync of `d` over the ReplicaSets it owns (already claimed) and, for
/// Recreate, the pods of those ReplicaSets.
pub fn plan(d: &Deployment, owned: &[ReplicaSet], pods: &[OwnedPod], now: Timestamp) -> Result<Plan, PlanError> {
    // Stored times have second precision; so do ours, or every comparison would differ.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut p = Planner { d: d.clone(), rses: owned.to_vec(), actions: Vec::new(), requeue: None, now };
    p.sync(pods)?;
    Ok(Plan { actions: p.actions, requeue_after: p.requeue })
}

impl Planner {
    fn spec_replicas(&self) -> i32 {
        d_replicas(&self.d)
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    fn event(&mut self, reason: &'static str, message: String) {
        self.actions.push(Action::Event { warning: false, reason, message });
    }

    fn write_status(&mut self, status: DeploymentStatus) {
        self.d.status = Some(status.clone());
        self.actions.push(Action::UpdateStatus(Box::new(status)));
    }

    fn sync(&mut self, pods: &[OwnedPod]) -> Result<(), PlanError> {
        let selector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        let selects_all = selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && selector.match_expressions.as_ref().is_none_or(Vec::is_empty);
        if selects_all {
            self.actions.push(Action::Event {
                warning: true,
                reason: "SelectingAll",
                message: "This deployment is selecting all pods. A non-empty selector is required.".into(),
            });
            let mut status = self.status();
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
                self.write_status(status);
            }
            return Ok(());
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new, old) = self.all_replica_sets(false)?;
            self.sync_deployment_status(new, &old);
            return Ok(());
        }
        self.check_paused_conditions();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event()? {
            return self.sync_scale(paused);
        }
        match strategy_type(&self.d) {
            "Recreate" => self.rollout_recreate(pods),
            "RollingUpdate" => self.rollout_rolling(),
            other => Err(PlanError::Strategy(other.to_string())),
        }
    }

    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let status = self.status();
        let reason = condition(&status, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let paused_cond = reason.as_deref() == Some(PAUSED);
        let cond = if paused && !paused_cond {
            new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into(), self.now)
        } else if !paused && paused_cond {
            new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into(), self.now)
        } else {
            return;
        };
        let mut status = status;
        set_condition(&mut status, cond);
        self.write_status(status);
    }

    /// The new ReplicaSet (created when `create` and missing) and all old ones, with
    /// revisions synced (upstream's `getAllReplicaSetsAndSyncRevision`).
    fn all_replica_sets(&mut self, create: bool) -> Result<(Option<usize>, Vec<usize>), PlanError> {
        let existing = find_new(&self.d, &self.rses);
        let old: Vec<usize> = (0..self.rses.len()).filter(|&i| Some(i) != existing).collect();
        let new = self.new_replica_set(existing, &old, create)?;
        Ok((new, old))
    }

    fn new_replica_set(
        &mut self,
        existing: Option<usize>,
        old: &[usize],
        create: bool,
    ) -> Result<Option<usize>, PlanError> {
        let new_revision = max_revision(old.iter().map(|&i| &self.rses[i])) + 1;
        let d_min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(i) = existing {
            let mut copy = self.rses[i].clone();
            let annotations_updated = set_new_rs_annotations(&self.d, &mut copy, new_revision, true);
            let spec = copy.spec.get_or_insert_with(ReplicaSetSpec::default);
            let min_ready_update = spec.min_ready_seconds.unwrap_or(0) != d_min_ready.unwrap_or(0);
            if annotations_updated || min_ready_update {
                spec.min_ready_seconds = d_min_ready;
                self.rses[i] = copy.clone();
                self.actions.push(Action::UpdateReplicaSet(Box::new(copy)));
                return Ok(Some(i));
            }
            let rs_revision = annotation(&copy.metadata, REVISION).unwrap_or("").to_string();
            self.set_revision(&rs_revision);
            let mut status = self.status();
            if has_progress_deadline(&self.d) && condition(&status, PROGRESSING).is_none() {
                let msg = format!("Found new replica set {:?}", copy.metadata.name.as_deref().unwrap_or(""));
                set_condition(&mut status, new_condition(PROGRESSING, "True", FOUND_NEW_RS, msg, self.now));
                self.write_status(status);
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let spec = self.d.spec.clone().unwrap_or_default();
        let status = self.status();
        let hash = compute_hash(&spec.template, status.collision_count);
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
        tmeta.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = tmeta.labels.clone();
        let mut selector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{}", self.d.metadata.name.as_deref().unwrap_or(""), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![new_controller_ref("apps/v1", "Deployment", &self.d.metadata)]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().map(|&i| &self.rses[i]).chain(std::iter::once(&rs)).collect();
        let replicas = new_rs_new_replicas(&self.d, &all, &rs)?;
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        self.actions.push(Action::CreateReplicaSet(Box::new(rs.clone())));
        if replicas > 0 {
            self.event("ScalingReplicaSet", format!("Scaled up replica set {name} from 0 to {replicas}"));
        }
        self.set_revision(&new_revision.to_string());
        if has_progress_deadline(&self.d) {
            let mut status = self.status();
            let msg = format!("Created new replica set {name:?}");
            set_condition(&mut status, new_condition(PROGRESSING, "True", NEW_RS_CREATED, msg, self.now));
            if Some(&status) != self.d.status.as_ref() {
                self.write_status(status);
            }
        }
        rs.metadata.creation_timestamp = Some(Time(self.now));
        self.rses.push(rs);
        Ok(Some(self.rses.len() - 1))
    }

    fn set_revision(&mut self, revision: &str) {
        if annotation(&self.d.metadata, REVISION) != Some(revision) {
            self.d.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(REVISION.into(), revision.into());
            self.actions.push(Action::SetRevision(revision.into()));
        }
    }

    fn is_scaling_event(&mut self) -> Result<bool, PlanError> {
        let (new, old) = self.all_replica_sets(false)?;
        let want = self.spec_replicas();
        Ok(new.into_iter().chain(old).any(|i| {
            let rs = &self.rses[i];
            rs_replicas(rs) > 0
                && annotation(&rs.metadata, DESIRED_REPLICAS)
                    .and_then(|v| v.parse::<i32>().ok())
                    .is_some_and(|n| n != want)
        }))
    }

    /// Scaling (or a paused Deployment): upstream's `sync`.
    fn sync_scale(&mut self, paused: bool) -> Result<(), PlanError> {
        let (new, old) = self.all_replica_sets(false)?;
        self.scale(new, &old);
        if paused {
            self.cleanup(&old);
        }
        self.sync_deployment_status(new, &old);
        Ok(())
    }

    /// Sets a ReplicaSet's size and replica annotations; records an Event when the size
    /// changes (upstream's `scaleReplicaSet`).
    fn scale_rs(&mut self, i: usize, new_scale: i32, op: &str) {
        let want = self.spec_replicas();
        let max = want + max_surge(&self.d);
        let old_scale = rs_replicas(&self.rses[i]);
        let size_changes = old_scale != new_scale;
        if !size_changes && !replicas_annotations_need_update(&self.rses[i], want, max) {
            return;
        }
        let mut copy = self.rses[i].clone();
        copy.spec.get_or_insert_with(ReplicaSetSpec::default).replicas = Some(new_scale);
        set_replicas_annotations(&mut copy, want, max);
        self.rses[i] = copy.clone();
        self.actions.push(Action::UpdateReplicaSet(Box::new(copy)));
        if size_changes {
            let name = self.rses[i].metadata.name.clone().unwrap_or_default();
            self.event("ScalingReplicaSet", format!("Scaled {op} replica set {name} from {old_scale} to {new_scale}"));
        }
    }

    /// Returns whether the size changed (upstream's `scaleReplicaSetAndRecordEvent`).
    fn scale_and_record(&mut self, i: usize, new_scale: i32) -> bool {
        let current = rs_replicas(&self.rses[i]);
        if current == new_scale {
            return false;
        }
        let op = if current < new_scale { "up" } else { "down" };
        self.scale_rs(i, new_scale, op);
        true
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().copied().filter(|&i| rs_replicas(&self.rses[i]) > 0).collect()
    }

    /// Upstream's `scale`: proportional scaling of a rollout in progress.
    fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let want = self.spec_replicas();
        if let Some(i) = self.active_or_latest(new, old) {
            if rs_replicas(&self.rses[i]) != want {
                self.scale_and_record(i, want);
            }
            return;
        }
        if is_saturated(&self.d, new.map(|i| &self.rses[i])) {
            for i in self.active(old) {
                self.scale_and_record(i, 0);
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut all: Vec<usize> = self.active(&old.iter().copied().chain(new).collect::<Vec<_>>());
        let all_replicas: i32 = all.iter().map(|&i| rs_replicas(&self.rses[i])).sum();
        let allowed = if want > 0 { want + max_surge(&self.d) } else { 0 };
        let to_add = allowed - all_replicas;
        let op = match to_add.cmp(&0) {
            Ordering::Greater => {
                // Larger first; among equals, newer first.
                all.sort_by(|&a, &b| {
                    rs_replicas(&self.rses[b])
                        .cmp(&rs_replicas(&self.rses[a]))
                        .then_with(|| by_creation(&self.rses[b], &self.rses[a]))
                });
                "up"
            }
            Ordering::Less => {
                // Larger first; among equals, older first.
                all.sort_by(|&a, &b| {
                    rs_replicas(&self.rses[b])
                        .cmp(&rs_replicas(&self.rses[a]))
                        .then_with(|| by_creation(&self.rses[a], &self.rses[b]))
                });
                "down"
            }
            Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rses[i];
            if to_add != 0 {
                let p = proportion(rs, &self.d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (n, &i) in all.iter().enumerate() {
            let mut size = sizes[n];
            if n == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs(i, size, op);
        }
    }

    fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|&a, &b| by_creation(&self.rses[b], &self.rses[a]));
        let active = self.active(&old_sorted.iter().copied().chain(new).collect::<Vec<_>>());
        match active.len() {
            0 => new.or_else(|| old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// Deletes the oldest zero-sized ReplicaSets beyond `revisionHistoryLimit`.
    fn cleanup(&mut self, old: &[usize]) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return };
        if limit == i32::MAX {
            return;
        }
        let mut cleanable: Vec<usize> =
            old.iter().copied().filter(|&i| self.rses[i].metadata.deletion_timestamp.is_none()).collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rses[a], &self.rses[b]);
            match (revision(ra), revision(rb)) {
                (Some(x), Some(y)) if x != y => x.cmp(&y),
                _ => by_creation(ra, rb),
            }
        });
        for &i in cleanable.iter().take(diff as usize) {
            let rs = &self.rses[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if rs_status_replicas(rs) != 0 || rs_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
                continue;
            }
            self.actions.push(Action::DeleteReplicaSet { name: rs.metadata.name.clone().unwrap_or_default() });
        }
    }

    fn refs(&self, new: Option<usize>, old: &[usize]) -> (Vec<&ReplicaSet>, Option<&ReplicaSet>) {
        let all = old.iter().copied().chain(new).map(|i| &self.rses[i]).collect();
        (all, new.map(|i| &self.rses[i]))
    }

    fn sync_deployment_status(&mut self, new: Option<usize>, old: &[usize]) {
        let (all, new_rs) = self.refs(new, old);
        let status = calculate_status(&all, new_rs, &self.d, self.now);
        if Some(&status) != self.d.status.as_ref() {
            self.write_status(status);
        }
    }

    /// Upstream's `syncRolloutStatus`: counts, Available, Progressing and ReplicaFailure.
    fn sync_rollout_status(&mut self, new: Option<usize>, old: &[usize]) {
        let (all, new_rs) = self.refs(new, old);
        let mut status = calculate_status(&all, new_rs, &self.d, self.now);
        let new_name = new_rs.and_then(|r| r.metadata.name.clone());
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = condition(&self.status(), PROGRESSING).cloned();
        let complete_before = count(status.replicas) == count(status.updated_replicas)
            && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        if has_progress_deadline(&self.d) && !complete_before {
            let subject = |what: &str| match &new_name {
                Some(n) => format!("ReplicaSet {n:?} {what}"),
                None => format!("Deployment {:?} {what}", self.d.metadata.name.as_deref().unwrap_or("")),
            };
            if deployment_complete(&self.d, &status) {
                let msg = subject("has successfully progressed.");
                set_condition(&mut status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, self.now));
            } else if deployment_progressing(&self.d, &status) {
                let mut cond =
                    new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, subject("is progressing."), self.now);
                // Progress refreshes lastUpdateTime even when the reason stays.
                if let Some(c) = &current {
                    if c.status == "True" {
                        cond.last_transition_time = c.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, cond);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                let msg = subject("has timed out progressing.");
                set_condition(&mut status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, self.now));
            }
        }
        // A ReplicaSet's failure (the new one's first) becomes the Deployment's.
        let failure = new_rs.into_iter().chain(all.iter().copied()).find_map(|rs| {
            rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == REPLICA_FAILURE).cloned()
        });
        match failure {
            Some(c) => set_condition(
                &mut status,
                DeploymentCondition {
                    type_: c.type_,
                    status: c.status,
                    last_transition_time: c.last_transition_time.clone(),
                    last_update_time: c.last_transition_time,
                    reason: c.reason,
                    message: c.message,
                },
            ),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        if Some(&status) == self.d.status.as_ref() {
            self.requeue = self.requeue.or(self.stuck_requeue(&status));
            return;
        }
        self.write_status(status);
    }

    /// When a rollout that shows no progress would pass its deadline.
    fn stuck_requeue(&self, status: &DeploymentStatus) -> Option<Duration> {
        let current = condition(&self.status(), PROGRESSING)?.clone();
        if !has_progress_deadline(&self.d)
            || deployment_complete(&self.d, status)
            || current.reason.as_deref() == Some(TIMED_OUT)
        {
            return None;
        }
        let deadline = self.d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
        let from = current.last_update_time.map(|t| t.0).unwrap_or(self.now);
        let at = from + SignedDuration::from_secs(i64::from(deadline));
        let wait = at.as_nanosecond() - self.now.as_nanosecond();
        // The deadline is "strictly after": look a second later.
        Some(Duration::from_nanos(wait.max(0) as u64) + Duration::from_secs(1))
    }

    fn rollout_rolling(&mut self) -> Result<(), PlanError> {
        let (new, old) = self.all_replica_sets(true)?;
        let Some(new_i) = new else { return Ok(()) };
        if self.reconcile_new(new_i, &old)? {
            self.sync_rollout_status(new, &old);
            return Ok(());
        }
        if self.reconcile_old(new_i, &old) {
            self.sync_rollout_status(new, &old);
            return Ok(());
        }
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(new, &old);
        Ok(())
    }

    fn reconcile_new(&mut self, new: usize, old: &[usize]) -> Result<bool, PlanError> {
        let want = self.spec_replicas();
        let have = rs_replicas(&self.rses[new]);
        if have == want {
            return Ok(false);
        }
        if have > want {
            return Ok(self.scale_and_record(new, want));
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&new)).map(|&i| &self.rses[i]).collect();
        let count = new_rs_new_replicas(&self.d, &all, &self.rses[new])?;
        Ok(self.scale_and_record(new, count))
    }

    fn reconcile_old(&mut self, new: usize, old: &[usize]) -> bool {
        let old_active = self.active(old);
        let old_pods: i32 = old_active.iter().map(|&i| rs_replicas(&self.rses[i])).sum();
        if old_pods == 0 {
            return false;
        }
        let all_pods: i32 = old.iter().chain(std::iter::once(&new)).map(|&i| rs_replicas(&self.rses[i])).sum();
        let min_available = self.spec_replicas() - max_unavailable(&self.d);
        let new_rs = &self.rses[new];
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy old replicas go first: removing them costs no availability.
        let cleaned = self.cleanup_unhealthy(&old_active, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling(new, &old_active);
        cleaned + scaled > 0
    }

    fn cleanup_unhealthy(&mut self, old_active: &[usize], max_cleanup: i32) -> i32 {
        let mut sorted = old_active.to_vec();
        sorted.sort_by(|&a, &b| by_creation(&self.rses[a], &self.rses[b]));
        let mut total = 0;
        for i in sorted {
            if total >= max_cleanup {
                break;
            }
            let (replicas, available) = (rs_replicas(&self.rses[i]), rs_available(&self.rses[i]));
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            self.scale_and_record(i, replicas - down);
            total += down;
        }
        total
    }

    fn scale_down_old_for_rolling(&mut self, new: usize, old_active: &[usize]) -> i32 {
        let min_available = self.spec_replicas() - max_unavailable(&self.d);
        // Only the active old ReplicaSets count, as upstream filters them first.
        let available: i32 = old_active.iter().chain(std::iter::once(&new)).map(|&i| rs_available(&self.rses[i])).sum();
        if available <= min_available {
            return 0;
        }
        let mut sorted = old_active.to_vec();
        sorted.sort_by(|&a, &b| by_creation(&self.rses[a], &self.rses[b]));
        let target = available - min_available;
        let mut total = 0;
        for i in sorted {
            if total >= target {
                break;
            }
            let replicas = rs_replicas(&self.rses[i]);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(target - total);
            self.scale_and_record(i, replicas - down);
            total += down;
        }
        total
    }

    fn rollout_recreate(&mut self, pods: &[OwnedPod]) -> Result<(), PlanError> {
        let (mut new, mut old) = self.all_replica_sets(false)?;
        let mut scaled_down = false;
        for i in self.active(&old) {
            scaled_down |= self.scale_and_record(i, 0);
        }
        if scaled_down {
            self.sync_rollout_status(new, &old);
            return Ok(());
        }
        if self.old_pods_running(new, &old, pods) {
            self.sync_rollout_status(new, &old);
            // Pods going away change no ReplicaSet status: look again soon.
            self.requeue = Some(Duration::from_secs(1));
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.all_replica_sets(true)?;
        }
        if let Some(i) = new {
            let want = self.spec_replicas();
            self.scale_and_record(i, want);
        }
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(new, &old);
        Ok(())
    }

    fn old_pods_running(&self, new: Option<usize>, old: &[usize], pods: &[OwnedPod]) -> bool {
        if old.iter().map(|&i| rs_status_replicas(&self.rses[i])).sum::<i32>() > 0 {
            return true;
        }
        let new_uid = new.and_then(|i| self.rses[i].metadata.uid.clone());
        let old_uids: Vec<&str> = old.iter().filter_map(|&i| self.rses[i].metadata.uid.as_deref()).collect();
        pods.iter().any(|p| {
            Some(&p.owner_uid) != new_uid.as_ref()
                && old_uids.contains(&p.owner_uid.as_str())
                && !matches!(p.phase.as_str(), "Succeeded" | "Failed")
        })
    }
}

/// The status after a failed ReplicaSet create (upstream sets Progressing False with
/// reason ReplicaSetCreateError when the Deployment has a progress deadline).
pub fn failed_create_status(d: &Deployment, message: &str, now: Timestamp) -> Option<DeploymentStatus> {
    if !has_progress_deadline(d) {
        return None;
    }
    let mut status = d.status.clone().unwrap_or_default();
    set_condition(&mut status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, message.into(), now));
    Some(status)
}

/// Whether a ReplicaSet is this Deployment's by its controller reference.
pub fn owned_by(rs: &ReplicaSet, d: &Deployment) -> bool {
    controller_ref(&rs.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
}

#[cfg(test)]
mod tests;
