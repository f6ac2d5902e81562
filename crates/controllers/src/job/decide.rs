//! One sync of a Job, without I/O (upstream's `syncJob`, `manageJob` and
//! `trackJobStatusAndRemoveFinalizers`). The caller drives it in steps and carries out
//! what each step asks:
//!
//! 1. [`Sync::start`] counts the Pods, decides whether the Job has failed or met its
//!    success criteria, and returns the Pods to create or delete;
//! 2. [`Sync::after_pods`] takes how many creates and deletes worked and settles
//!    `active`, `ready`, `terminating` and the completion and suspension conditions;
//! 3. [`Sync::track`] moves newly finished Pods into `uncountedTerminatedPods`
//!    (written before any finalizer goes, so no Pod is lost or counted twice) and
//!    names the Pods whose tracking finalizer can go;
//! 4. [`Sync::finish`] counts the Pods whose finalizer went and, once nothing is left
//!    uncounted or terminating, sets the final `Complete` or `Failed` condition.

use super::backoff::BackoffRecord;
use super::indexes::Intervals;
use super::pods::{self, completion_index, has_tracking_finalizer, is_active, is_ready, is_terminating};
use super::policy;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Upstream caps `uncountedTerminatedPods` (and so the finalizers removed per sync)
/// to keep the status small and big Jobs from starving small ones.
const MAX_UNCOUNTED: usize = 500;
/// Creates and deletes per sync, as upstream.
const MAX_POD_CHANGES: usize = 500;
/// Upstream never requeues a Job sooner than its batching period.
const MIN_REQUEUE: Duration = Duration::from_secs(1);

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

/// Knobs of the pod-replacement backoff.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for Timing {
    /// Upstream's `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
    fn default() -> Timing {
        Timing { backoff_base: Duration::from_secs(10), backoff_max: Duration::from_secs(600) }
    }
}

/// An Event to record on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What to do to the Job's Pods in this sync.
#[derive(Debug, Default)]
pub enum PodAction {
    #[default]
    None,
    /// The Job is finishing: delete the running Pods, keeping their finalizers so
    /// they are still counted.
    DeleteActive(Vec<Arc<Pod>>),
    /// Too many Pods, or suspended: take the tracking finalizer off (they will not be
    /// counted), then delete.
    Remove(Vec<Arc<Pod>>),
    /// Create Pods; for an Indexed Job each with its completion index.
    Create(Vec<Option<i32>>),
}

/// How the Pod writes of [`PodAction`] went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub deleted: i32,
    pub deleted_ready: i32,
    pub created: i32,
}

/// What [`Sync::track`] asks of the caller.
#[derive(Debug, Default)]
pub struct Track {
    /// Write the status before touching finalizers.
    pub flush: bool,
    /// Pods whose tracking finalizer can go.
    pub remove_finalizers: Vec<Arc<Pod>>,
}

/// Everything one sync reads.
pub struct Input<'a> {
    pub job: &'a Job,
    pub pods: Vec<Arc<Pod>>,
    pub now: Timestamp,
    /// Every create and delete of earlier syncs is visible in `pods`.
    pub satisfied: bool,
    /// Pods whose finalizer was removed though `pods` may still show it.
    pub expected_rm: HashSet<String>,
    pub backoff: BackoffRecord,
    pub timing: Timing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Managed {
    /// Not managed this sync (finishing, cache behind, or Job being deleted).
    No,
    Deleted,
    Created,
    /// Replacements are due but held back by the failure backoff.
    Waiting,
    Idle,
}

/// The state of one sync between its steps.
pub struct Sync {
    /// The Job with the status as it will be written.
    pub job: Job,
    spec: JobSpec,
    pods: Vec<Arc<Pod>>,
    now: Timestamp,
    satisfied: bool,
    expected_rm: HashSet<String>,
    timing: Timing,
    indexed: bool,
    completions: Option<i32>,
    active_pods: usize,
    active: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    finished: Option<JobCondition>,
    prev_succeeded_ix: Intervals,
    succeeded_ix: Intervals,
    managed: Managed,
    needs_flush: bool,
    uids_with_finalizer: HashSet<String>,
    reached_max: bool,
    /// The backoff record after this sync's newly finished Pods; the caller keeps it
    /// once the status that counts them is written.
    pub new_backoff: BackoffRecord,
    pub notes: Vec<Note>,
    /// When the Job needs looking at again without any change (deadline, backoff).
    pub requeue: Option<Duration>,
}

pub fn find_condition<'a>(status: Option<&'a JobStatus>, type_: &str) -> Option<&'a JobCondition> {
    status?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn is_true(status: Option<&JobStatus>, type_: &str) -> bool {
    find_condition(status, type_).is_some_and(|c| c.status == "True")
}

/// Whether the Job has its final condition (`IsJobFinished`).
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    let s = job.status.as_ref();
    [COMPLETE, FAILED].into_iter().find_map(|t| find_condition(s, t).filter(|c| c.status == "True"))
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `ensureJobConditionStatus`: updates a condition of the type when it differs, and
/// adds one unless it would be a new `False`. Returns whether anything changed.
fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let reason_of = |c: &JobCondition| c.reason.clone().unwrap_or_default();
    let message_of = |c: &JobCondition| c.message.clone().unwrap_or_default();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status || reason_of(c) != reason || message_of(c) != message {
            *c = condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        conditions.push(condition(type_, status, reason, message, now));
        return true;
    }
    false
}

fn set_of(v: Option<&Vec<String>>) -> HashSet<String> {
    v.map(|v| v.iter().cloned().collect()).unwrap_or_default()
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

impl Sync {
    fn spec(&self) -> &JobSpec {
        &self.spec
    }

    fn suspended(&self) -> bool {
        self.spec().suspend == Some(true)
    }

    /// `onlyReplaceFailedPods`: with `podReplacementPolicy: Failed` (or a pod failure
    /// policy) a terminating Pod is replaced only once it has failed.
    fn only_replace_failed(&self) -> bool {
        let s = self.spec();
        s.pod_replacement_policy.as_deref() == Some("Failed") || s.pod_failure_policy.is_some()
    }

    /// `isPodFailed`: failed, or (unless only failed Pods are replaced) being deleted
    /// before it succeeded.
    fn pod_failed(&self, p: &Pod) -> bool {
        pods::phase(p) == "Failed"
            || (!self.only_replace_failed() && p.metadata.deletion_timestamp.is_some() && pods::phase(p) != "Succeeded")
    }

    fn valid_index(&self, p: &Pod) -> Option<i32> {
        completion_index(p).filter(|ix| *ix < self.completions.unwrap_or(0))
    }

    /// Pods not yet counted: with the finalizer, not in `uncounted`, not expected to
    /// have lost it, and for an Indexed Job with a valid index.
    fn uncounted_pods(&self, uncounted: &HashSet<String>, keep: impl Fn(&Pod) -> bool) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .filter(|p| {
                let uid = pods::uid(p);
                has_tracking_finalizer(p)
                    && !uncounted.contains(uid)
                    && !self.expected_rm.contains(uid)
                    && (!self.indexed || self.valid_index(p).is_some())
                    && keep(p)
            })
            .cloned()
            .collect()
    }

    fn counts_as_failure(&self, p: &Pod) -> bool {
        match &self.spec().pod_failure_policy {
            Some(pfp) => policy::match_failure(pfp, p).counts,
            None => true,
        }
    }

    fn note(&mut self, warning: bool, reason: &str, message: &str) {
        self.notes.push(Note { warning, reason: reason.into(), message: message.into() });
    }

    fn requeue_after(&mut self, d: Duration) {
        let d = d.max(MIN_REQUEUE);
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    /// Step 1: count, judge, and pick the Pod writes.
    pub fn start(input: Input<'_>) -> (Sync, PodAction) {
        let mut job = input.job.clone();
        let spec = job.spec.clone().unwrap_or_default();
        let status = job.status.get_or_insert_with(Default::default);
        let uncounted = status.uncounted_terminated_pods.get_or_insert_with(Default::default).clone();
        let mut sync = Sync {
            indexed: spec.completion_mode.as_deref() == Some("Indexed"),
            completions: spec.completions,
            spec: spec.clone(),
            uncounted_succeeded: set_of(uncounted.succeeded.as_ref()),
            uncounted_failed: set_of(uncounted.failed.as_ref()),
            job,
            pods: input.pods,
            now: input.now,
            satisfied: input.satisfied,
            expected_rm: input.expected_rm,
            timing: input.timing,
            active_pods: 0,
            active: 0,
            ready: 0,
            terminating: 0,
            succeeded: 0,
            finished: None,
            prev_succeeded_ix: Intervals::default(),
            succeeded_ix: Intervals::default(),
            managed: Managed::No,
            needs_flush: false,
            uids_with_finalizer: HashSet::new(),
            reached_max: false,
            new_backoff: input.backoff,
            notes: Vec::new(),
            requeue: None,
        };
        let active_pods: Vec<Arc<Pod>> = sync.pods.iter().filter(|p| is_active(p)).cloned().collect();
        sync.active_pods = active_pods.len();
        sync.ready = active_pods.iter().filter(|p| is_ready(p)).count() as i32;
        sync.terminating = sync.pods.iter().filter(|p| is_terminating(p)).count() as i32;

        let new_succeeded = sync.uncounted_pods(&sync.uncounted_succeeded, |p| pods::phase(p) == "Succeeded");
        let new_failed = sync.uncounted_pods(&sync.uncounted_failed, |p| sync.pod_failed(p));
        let status = sync.job.status.clone().unwrap_or_default();
        sync.succeeded =
            status.succeeded.unwrap_or(0) + new_succeeded.len() as i32 + sync.uncounted_succeeded.len() as i32;
        let counted_failures = new_failed.iter().filter(|p| sync.counts_as_failure(p)).count() as i32;
        let failed = status.failed.unwrap_or(0) + counted_failures + sync.uncounted_failed.len() as i32;

        if status.start_time.is_none() && !sync.suspended() {
            sync.job.status.get_or_insert_with(Default::default).start_time = Some(Time(sync.now));
        }
        sync.new_backoff = input.backoff.next(
            new_succeeded.iter().map(|p| pods::finish_time(p)).collect(),
            new_failed.iter().map(|p| pods::finish_time(p)).collect(),
        );

        // Judge: an earlier sync's verdict stands; otherwise policy, limits, deadline.
        let st = sync.job.status.clone();
        sync.finished = find_condition(st.as_ref(), SUCCESS_CRITERIA_MET).filter(|c| c.status == "True").cloned();
        if sync.finished.is_none() {
            if let Some(target) = find_condition(st.as_ref(), FAILURE_TARGET).filter(|c| c.status == "True") {
                let (reason, message) =
                    (target.reason.clone().unwrap_or_default(), target.message.clone().unwrap_or_default());
                sync.finished = Some(condition(FAILED, "True", &reason, &message, sync.now));
            } else if let Some(message) = sync.fail_job_message() {
                sync.finished = Some(condition(FAILURE_TARGET, "True", "PodFailurePolicy", &message, sync.now));
            }
        }
        if sync.finished.is_none() {
            let limit = spec.backoff_limit.unwrap_or(6);
            if failed > limit || sync.past_backoff_limit_on_failure(limit) {
                sync.finished = Some(condition(
                    FAILURE_TARGET,
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    sync.now,
                ));
            } else if let Some(left) = sync.deadline_left() {
                if left.is_zero() {
                    sync.finished = Some(condition(
                        FAILURE_TARGET,
                        "True",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                        sync.now,
                    ));
                } else {
                    sync.requeue_after(left);
                }
            }
        }
        if sync.indexed {
            let completions = sync.completions.unwrap_or(0);
            sync.prev_succeeded_ix = Intervals::parse(status.completed_indexes.as_deref().unwrap_or(""), completions);
            let mut fresh: Vec<i32> = sync
                .pods
                .iter()
                .filter(|p| pods::phase(p) == "Succeeded" && has_tracking_finalizer(p))
                .filter_map(|p| sync.valid_index(p))
                .collect();
            fresh.sort_unstable();
            fresh.dedup();
            sync.succeeded_ix = sync.prev_succeeded_ix.with_indexes(&fresh);
            sync.succeeded = sync.succeeded_ix.total();
            if sync.finished.is_none()
                && let Some(msg) = policy::match_success(spec.success_policy.as_ref(), completions, &sync.succeeded_ix)
            {
                sync.finished = Some(condition(SUCCESS_CRITERIA_MET, "True", "SuccessPolicy", &msg, sync.now));
            }
        }

        let action = if sync.finished.is_some() {
            PodAction::DeleteActive(active_pods)
        } else if sync.satisfied && sync.job.metadata.deletion_timestamp.is_none() {
            sync.manage(active_pods)
        } else {
            PodAction::None
        };
        (sync, action)
    }

    fn fail_job_message(&self) -> Option<String> {
        let pfp = self.spec().pod_failure_policy.as_ref()?;
        self.pods.iter().filter(|p| self.pod_failed(p)).find_map(|p| policy::match_failure(pfp, p).fail_job)
    }

    /// With `restartPolicy: OnFailure` failures show as container restarts.
    fn past_backoff_limit_on_failure(&self, limit: i32) -> bool {
        let restart_policy = self.spec().template.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
        if restart_policy != Some("OnFailure") {
            return false;
        }
        let restarts: i32 = self.pods.iter().map(|p| pods::restarts(p)).sum();
        if limit == 0 { restarts > 0 } else { restarts >= limit }
    }

    /// Time left before `activeDeadlineSeconds` (zero when past); `None` without a
    /// deadline or while suspended.
    fn deadline_left(&self) -> Option<Duration> {
        let ads = self.spec().active_deadline_seconds?;
        if self.suspended() {
            return None;
        }
        let start = self.job.status.as_ref()?.start_time.as_ref()?.0;
        let deadline = pods::add_secs(start, ads);
        Some(Duration::try_from(deadline.duration_since(self.now)).unwrap_or(Duration::ZERO))
    }

    /// `manageJob`: the Pods to remove or create to reach the wanted active count.
    fn manage(&mut self, active_pods: Vec<Arc<Pod>>) -> PodAction {
        let active = active_pods.len() as i32;
        let parallelism = self.spec().parallelism.unwrap_or(1);
        if self.suspended() {
            self.managed = Managed::Deleted;
            let all = active_pods.len();
            return PodAction::Remove(self.pods_for_removal(active_pods, all));
        }
        let want = match self.completions {
            None if self.succeeded > 0 => active,
            None => parallelism,
            Some(c) => (c - self.succeeded).min(parallelism).max(0),
        };
        let rm_at_least = (active - want).max(0) as usize;
        let mut remove = self.pods_for_removal(active_pods.clone(), rm_at_least);
        remove.truncate(MAX_POD_CHANGES);
        if !remove.is_empty() {
            self.managed = Managed::Deleted;
            return PodAction::Remove(remove);
        }
        let terminating = if self.only_replace_failed() { self.terminating } else { 0 };
        let diff = want - terminating - active;
        if diff <= 0 {
            self.managed = Managed::Idle;
            return PodAction::None;
        }
        let wait = self.new_backoff.remaining(self.now, self.timing.backoff_base, self.timing.backoff_max);
        if !wait.is_zero() {
            self.managed = Managed::Waiting;
            self.requeue_after(wait);
            return PodAction::None;
        }
        self.managed = Managed::Created;
        let diff = (diff as usize).min(MAX_POD_CHANGES);
        if self.indexed {
            let mut taken: Vec<i32> = active_pods.iter().filter_map(|p| completion_index(p)).collect();
            if self.only_replace_failed() {
                taken.extend(self.pods.iter().filter(|p| is_terminating(p)).filter_map(|p| completion_index(p)));
            }
            taken.sort_unstable();
            taken.dedup();
            let non_pending = self.succeeded_ix.with_indexes(&taken);
            let indexes = non_pending.first_missing(diff, self.completions.unwrap_or(0));
            PodAction::Create(indexes.into_iter().map(Some).collect())
        } else {
            PodAction::Create(vec![None; diff])
        }
    }

    /// `activePodsForRemoval`: for an Indexed Job first Pods without a valid index
    /// and duplicates of an index, then the cheapest to lose.
    fn pods_for_removal(&self, pods: Vec<Arc<Pod>>, at_least: usize) -> Vec<Arc<Pod>> {
        let (mut rm, mut left) = (Vec::new(), Vec::new());
        if self.indexed {
            let completions = self.completions.unwrap_or(0);
            let mut by_index: std::collections::BTreeMap<i32, Vec<Arc<Pod>>> = Default::default();
            for p in pods {
                match completion_index(&p).filter(|ix| *ix < completions) {
                    Some(ix) => by_index.entry(ix).or_default().push(p),
                    None => rm.push(p),
                }
            }
            for (_, mut group) in by_index {
                group.sort_by(|a, b| pods::removal_order(a, b));
                let keep = group.pop();
                rm.extend(group);
                left.extend(keep);
            }
        } else {
            left = pods;
        }
        if rm.len() < at_least {
            left.sort_by(|a, b| pods::removal_order(a, b));
            let more = (at_least - rm.len()).min(left.len());
            rm.extend(left.into_iter().take(more));
        }
        rm
    }

    /// Step 2: settle counts and conditions after the Pod writes.
    pub fn after_pods(&mut self, outcome: Outcome) {
        let before = self.active_pods as i32;
        let mut active = before;
        let mut suspend_changed = false;
        if self.finished.is_some() {
            // The verdict waits until every running Pod is being deleted and the cache
            // is known to be complete.
            if outcome.deleted != before || !self.satisfied {
                self.finished = None;
            }
            active -= outcome.deleted;
            self.terminating += outcome.deleted;
            self.ready -= outcome.deleted_ready;
        } else {
            match self.managed {
                Managed::Deleted => {
                    active -= outcome.deleted;
                    self.terminating += outcome.deleted;
                    self.ready -= outcome.deleted_ready;
                }
                Managed::Created => active += outcome.created,
                Managed::No | Managed::Idle | Managed::Waiting => {}
            }
            let complete = match self.completions {
                None => self.succeeded > 0 && active == 0,
                Some(c) => self.succeeded >= c && active == 0,
            };
            if complete {
                self.finished = Some(condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    self.now,
                ));
            } else if self.managed != Managed::No {
                let now = self.now;
                let suspended = self.suspended();
                let status = self.job.status.get_or_insert_with(Default::default);
                let conds = status.conditions.get_or_insert_with(Vec::new);
                if suspended {
                    suspend_changed = ensure_condition(conds, SUSPENDED, "True", "JobSuspended", "Job suspended", now);
                } else if ensure_condition(conds, SUSPENDED, "False", "JobResumed", "Job resumed", now) {
                    suspend_changed = true;
                    // The deadline counts time spent running, so it restarts now.
                    status.start_time = Some(Time(now));
                }
                if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                    status.conditions = None;
                }
                if suspend_changed {
                    let (reason, message) =
                        if suspended { ("Suspended", "Job suspended") } else { ("Resumed", "Job resumed") };
                    self.note(false, reason, message);
                }
            }
        }
        self.active = active.max(0);
        let status = self.job.status.get_or_insert_with(Default::default);
        self.needs_flush = suspend_changed
            || status.active.unwrap_or(0) != self.active
            || status.ready != Some(self.ready)
            || status.terminating != Some(self.terminating);
        status.active = nonzero(self.active);
        status.ready = Some(self.ready);
        status.terminating = Some(self.terminating);
    }

    /// Step 3: record newly finished Pods as uncounted and pick the finalizers to
    /// remove.
    pub fn track(&mut self) -> Track {
        let mut flush = self.needs_flush;
        let mut pods_sorted = self.pods.clone();
        if self.indexed {
            pods_sorted.sort_by_key(|p| completion_index(p).unwrap_or(-1));
        }
        self.uids_with_finalizer = self
            .pods
            .iter()
            .filter(|p| has_tracking_finalizer(p) && !self.expected_rm.contains(pods::uid(p)))
            .map(|p| pods::uid(p).to_string())
            .collect();
        let with_finalizer = self.uids_with_finalizer.clone();
        if clean_uncounted(self.job.status.get_or_insert_with(Default::default), &with_finalizer) {
            flush = true;
        }
        let deleting_job = self.job.metadata.deletion_timestamp.is_some();
        let failing = self.finished.as_ref().is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
        let mut remove = Vec::new();
        let mut new_ix = Vec::new();
        let mut uncounted = self.job.status.clone().unwrap_or_default().uncounted_terminated_pods.unwrap_or_default();
        for p in pods_sorted {
            let uid = pods::uid(&p).to_string();
            if !has_tracking_finalizer(&p) || self.expected_rm.contains(&uid) {
                continue;
            }
            let failed = self.pod_failed(&p);
            let succeeded = pods::phase(&p) == "Succeeded";
            if !(deleting_job || self.finished.is_some() || succeeded || failed) {
                continue;
            }
            remove.push(p.clone());
            if succeeded && !self.uncounted_failed.contains(&uid) {
                if self.indexed {
                    if let Some(ix) = self.valid_index(&p)
                        && !self.prev_succeeded_ix.has(ix)
                    {
                        new_ix.push(ix);
                        flush = true;
                    }
                } else if !self.uncounted_succeeded.contains(&uid) {
                    uncounted.succeeded.get_or_insert_with(Vec::new).push(uid.clone());
                    self.uncounted_succeeded.insert(uid.clone());
                    flush = true;
                }
            } else if (failed || failing)
                && !self.uncounted_failed.contains(&uid)
                && (!self.indexed || self.valid_index(&p).is_some())
                && self.counts_as_failure(&p)
            {
                uncounted.failed.get_or_insert_with(Vec::new).push(uid.clone());
                self.uncounted_failed.insert(uid);
                flush = true;
            }
            let n = new_ix.len()
                + uncounted.succeeded.as_ref().map_or(0, Vec::len)
                + uncounted.failed.as_ref().map_or(0, Vec::len);
            if n >= MAX_UNCOUNTED {
                self.reached_max = true;
                break;
            }
        }
        let status = self.job.status.get_or_insert_with(Default::default);
        status.uncounted_terminated_pods = Some(uncounted);
        if self.indexed {
            new_ix.sort_unstable();
            self.succeeded_ix = self.succeeded_ix.with_indexes(&new_ix);
            let text = self.succeeded_ix.to_string();
            if status.completed_indexes.as_deref().unwrap_or("") != text {
                flush = true;
            }
            status.succeeded = nonzero(self.succeeded_ix.total());
            status.completed_indexes = Some(text);
        }
        // The interim condition is written before the finalizers go, so the verdict
        // survives a crash in between; the final one follows once all is counted.
        if let Some(target) = self.finished.clone().filter(|c| c.type_ == FAILURE_TARGET) {
            if !is_true(Some(status), FAILURE_TARGET) {
                status.conditions.get_or_insert_with(Vec::new).push(target.clone());
                flush = true;
            }
            let (reason, message) = (target.reason.unwrap_or_default(), target.message.unwrap_or_default());
            self.finished = Some(condition(FAILED, "True", &reason, &message, self.now));
        }
        if let Some(met) = self.finished.clone().filter(|c| c.type_ == SUCCESS_CRITERIA_MET) {
            if !is_true(Some(status), SUCCESS_CRITERIA_MET) {
                status.conditions.get_or_insert_with(Vec::new).push(met.clone());
                flush = true;
            }
            let (reason, message) = (met.reason.unwrap_or_default(), met.message.unwrap_or_default());
            self.finished = Some(condition(COMPLETE, "True", &reason, &message, self.now));
        }
        self.needs_flush = false;
        Track { flush, remove_finalizers: remove }
    }

    /// The Job as the API server returned it after a status write.
    pub fn written(&mut self, job: Job) {
        self.job = job;
    }

    /// Step 4: count the Pods whose finalizer went (`removed`, by UID) and finish the
    /// Job if nothing is left to wait for. Returns whether the status must be written;
    /// [`Sync::notes`] then holds the Job's final Events.
    pub fn finish(&mut self, removed: &HashSet<String>) -> bool {
        let mut flush = false;
        let with_finalizer: HashSet<String> = self.uids_with_finalizer.difference(removed).cloned().collect();
        let status = self.job.status.get_or_insert_with(Default::default);
        if clean_uncounted(status, &with_finalizer) {
            flush = true;
        }
        let Some(done) = self.finished.clone() else { return flush };
        if self.reached_max {
            return flush;
        }
        let uncounted = status.uncounted_terminated_pods.as_ref();
        let left =
            uncounted.map_or(0, |u| u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len));
        if left > 0 || self.terminating > 0 {
            return flush;
        }
        let conds = status.conditions.get_or_insert_with(Vec::new);
        let reason = done.reason.clone().unwrap_or_default();
        let message = done.message.clone().unwrap_or_default();
        ensure_condition(conds, &done.type_, "True", &reason, &message, self.now);
        if done.type_ == COMPLETE {
            status.completion_time = Some(Time(self.now));
            let succeeded = status.succeeded.unwrap_or(0);
            if self.completions.is_some_and(|c| succeeded > c) {
                self.note(
                    true,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                );
            }
            self.note(false, "Completed", "Job completed");
        } else {
            self.note(true, &reason, &message);
        }
        true
    }

    /// Whether [`Sync::finish`] declared the Job finished.
    pub fn is_finished(&self) -> bool {
        finished_condition(&self.job).is_some()
    }
}

/// `cleanUncountedPodsWithoutFinalizers`: UIDs whose Pods lost the finalizer move
/// from `uncountedTerminatedPods` into the counters. Returns whether anything moved.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let u = status.uncounted_terminated_pods.get_or_insert_with(UncountedTerminatedPods::default);
    let mut changed = false;
    let moved = |list: &mut Option<Vec<String>>| -> i32 {
        let Some(v) = list.as_mut() else { return 0 };
        let before = v.len();
        v.retain(|uid| with_finalizer.contains(uid));
        let n = (before - v.len()) as i32;
        if v.is_empty() {
            *list = None;
        }
        n
    };
    let s = moved(&mut u.succeeded);
    let f = moved(&mut u.failed);
    if s > 0 {
        status.succeeded = nonzero(status.succeeded.unwrap_or(0) + s);
        changed = true;
    }
    if f > 0 {
        status.failed = nonzero(status.failed.unwrap_or(0) + f);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests;
