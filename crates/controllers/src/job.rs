//! The Job controller (`job-controller`, upstream's `pkg/controller/job`, plus the
//! `ttl-after-finished` cleanup): runs a Job's Pods to `completions` with at most
//! `parallelism` at a time, replaces failed ones after an exponential backoff until
//! `backoffLimit`, enforces `activeDeadlineSeconds`, honours `suspend`, and deletes
//! finished Jobs after `ttlSecondsAfterFinished`.
//!
//! Every Pod carries the `batch.kubernetes.io/job-tracking` finalizer until its end
//! is counted in the Job's status, so a Pod that finishes and vanishes is never
//! lost. The decisions live in [`decide`] (a sync in four pure steps); this file does
//! the I/O between them. Start at [`run`].

mod backoff;
pub mod cache;
pub mod decide;
mod expectations;
mod indexes;
pub mod pods;
mod policy;

use crate::Error;
use crate::Informers;
use crate::events::{Event as KubeEvent, EventType, Recorder};
use backoff::BackoffRecord;
use cache::{LastWritten, OwnerIndex, batch_owner};
use decide::{Input, Note, Outcome, PodAction, Sync, Timing, finished_condition};
use expectations::Expectations;
use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Config as ControllerConfig, applier};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// The name upstream's controller records Events under.
pub const CONTROLLER_NAME: &str = "job-controller";
/// `spec.managedBy` of Jobs this controller owns (also the meaning of no value).
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// A Job with nothing pending is looked at again after this long anyway.
const RESYNC: Duration = Duration::from_secs(600);
/// Upstream's first batch of Pod creates; each good batch doubles the next.
const SLOW_START: usize = 1;

/// A Pod whose tracking finalizer may have to go because its Job is gone, finished,
/// or no longer its controller.
#[derive(Debug)]
struct Orphan {
    namespace: String,
    name: String,
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    jobs_ready: AtomicBool,
    pods: OwnerIndex<Pod>,
    expectations: Expectations,
    backoffs: Mutex<HashMap<String, BackoffRecord>>,
    written: LastWritten<Job>,
    recorder: Recorder,
    timing: Timing,
    orphans: mpsc::UnboundedSender<Orphan>,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The namespace is being deleted: creating more in it is pointless, not an error.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.contains("because it is being terminated"))
}

fn job_ref(job: &Job) -> ObjectReference {
    job.object_ref(&())
}

/// The strategic merge patch upstream sends to drop the tracking finalizer.
fn remove_finalizer_patch() -> Patch<serde_json::Value> {
    Patch::Strategic(serde_json::json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": [pods::TRACKING_FINALIZER]}
    }))
}

/// What `ttlSecondsAfterFinished` asks of a finished Job.
#[derive(Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL (or not finished): keep it.
    Keep,
    /// Delete it after this long.
    Wait(Duration),
    /// Delete it now.
    Expired,
}

/// The TTL verdict at `now`, counted from the finished condition's transition
/// (upstream's `ttlafterfinished.timeLeft`).
pub fn ttl(job: &Job, now: Timestamp) -> Ttl {
    let Some(secs) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else { return Ttl::Keep };
    if job.metadata.deletion_timestamp.is_some() {
        return Ttl::Keep;
    }
    let Some(done) = finished_condition(job) else { return Ttl::Keep };
    let finished_at = done.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
    let expires = pods::add_secs(finished_at, i64::from(secs));
    match Duration::try_from(expires.duration_since(now)) {
        Ok(d) if !d.is_zero() => Ttl::Wait(d),
        _ => Ttl::Expired,
    }
}

impl Ctx {
    async fn publish(&self, job: &Job, note: &Note, related: Option<ObjectReference>) {
        let ev = KubeEvent {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.clone(),
            note: Some(note.message.clone()),
            action: note.reason.clone(),
            secondary: related,
        };
        if let Err(e) = self.recorder.publish(&ev, &job_ref(job)).await {
            tracing::debug!(error = %e, reason = %note.reason, "recording job event failed");
        }
    }

    fn job_in_store(&self, namespace: &str, name: &str) -> Option<Arc<Job>> {
        self.jobs.get(&ObjectRef::new(name).within(namespace))
    }

    /// Turns one Pod watch event into the Jobs to reconcile, settling expectations
    /// and spotting orphans on the way.
    fn on_pod_event(&self, event: Event<Arc<Pod>>) -> Vec<ObjectRef<Job>> {
        let candidate = match &event {
            Event::Apply(p) | Event::InitApply(p) if pods::has_tracking_finalizer(p) => {
                let controller = p.owner_references().iter().find(|r| r.controller == Some(true));
                let ours = controller.is_none_or(|r| r.kind == "Job" && r.api_version.starts_with("batch/"));
                // Before the first Job list every Pod looks orphaned; the worker waits
                // for it and checks again.
                let suspect = !self.jobs_ready.load(Ordering::Acquire) || !self.still_tracked(p);
                (ours && suspect).then(|| Orphan { namespace: p.namespace().unwrap_or_default(), name: p.name_any() })
            }
            _ => None,
        };
        let mut out = Vec::new();
        for change in self.pods.apply_event(event) {
            if let Some(owner) = &change.owner {
                self.observe(&owner.uid, change.before.as_deref(), change.after.as_deref());
                out.push(ObjectRef::new(&owner.name).within(&owner.namespace));
            }
            if let Some(old) = &change.released_by {
                out.push(ObjectRef::new(&old.name).within(&old.namespace));
            }
        }
        if let Some(o) = candidate {
            // The orphan worker decides against the Job store; most are not orphans.
            let _ = self.orphans.send(o);
        }
        out
    }

    fn observe(&self, job_uid: &str, before: Option<&Pod>, after: Option<&Pod>) {
        let e = &self.expectations;
        match (before, after) {
            (None, Some(p)) if pods::is_deleting(p) => e.deletion_observed(job_uid),
            (None, Some(_)) => e.creation_observed(job_uid),
            (Some(b), Some(a)) if !pods::is_deleting(b) && pods::is_deleting(a) => e.deletion_observed(job_uid),
            (Some(_), None) => e.deletion_observed(job_uid),
            _ => {}
        }
        match (before, after) {
            (Some(b), None) => e.finalizer_removal_observed(job_uid, pods::uid(b)),
            (_, Some(a)) if !pods::has_tracking_finalizer(a) => e.finalizer_removal_observed(job_uid, pods::uid(a)),
            _ => {}
        }
    }

    /// A Job went: forget it and free its Pods of the finalizer (upstream's
    /// `cleanupPodFinalizers`).
    fn on_job_deleted(&self, job: &Job) {
        let uid = job.uid().unwrap_or_default();
        self.forget(&uid);
        for p in self.pods.children(&uid) {
            if pods::has_tracking_finalizer(&p) {
                let _ = self.orphans.send(Orphan { namespace: p.namespace().unwrap_or_default(), name: p.name_any() });
            }
        }
    }

    fn forget(&self, uid: &str) {
        self.expectations.forget(uid);
        self.written.forget(uid);
        self.backoffs.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// Whether a Pod carrying the finalizer is still tracked by a live Job.
    fn still_tracked(&self, pod: &Pod) -> bool {
        let Some(owner) = batch_owner(pod, "Job") else { return false };
        match self.job_in_store(&owner.namespace, &owner.name) {
            Some(job) => job.uid().as_deref() == Some(owner.uid.as_str()) && finished_condition(&job).is_none(),
            None => false,
        }
    }

    async fn write_status(&self, job: &Job) -> Result<Job, kube::Error> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let written = api.replace_status(&job.name_any(), &PostParams::default(), job).await?;
        self.written.remember(written.clone());
        Ok(written)
    }

    /// Carries out the Pod writes of one sync; returns how they went and the first
    /// error, which fails the sync after its status is written.
    async fn carry_out(&self, job: &Job, action: PodAction) -> (Outcome, Option<kube::Error>) {
        let ns = job.namespace().unwrap_or_default();
        let uid = job.uid().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut outcome = Outcome::default();
        let mut first_err = None;
        match action {
            PodAction::None => {}
            PodAction::DeleteActive(list) => {
                let dp = DeleteParams::default();
                let results = join_all(list.iter().map(|p| api.delete(pods::name(p), &dp))).await;
                for (p, r) in list.iter().zip(results) {
                    match r {
                        Ok(_) => self.deleted(job, p, &mut outcome).await,
                        Err(e) if is_not_found(&e) => outcome.deleted += 1,
                        Err(e) => {
                            self.failed_delete(job, p, &e).await;
                            first_err.get_or_insert(e);
                        }
                    }
                    if pods::is_ready(p) {
                        outcome.deleted_ready += 1;
                    }
                }
            }
            PodAction::Remove(list) => {
                self.expectations.expect(&uid, 0, list.len());
                let results = join_all(list.iter().map(|p| async {
                    if pods::has_tracking_finalizer(p) {
                        api.patch(pods::name(p), &PatchParams::default(), &remove_finalizer_patch()).await?;
                    }
                    api.delete(pods::name(p), &DeleteParams::default()).await.map(|_| ())
                }))
                .await;
                for (p, r) in list.iter().zip(results) {
                    match r {
                        Ok(()) => self.deleted(job, p, &mut outcome).await,
                        Err(e) => {
                            // The cache will not see this deletion: stop waiting for it.
                            self.expectations.deletion_observed(&uid);
                            if !is_not_found(&e) {
                                self.failed_delete(job, p, &e).await;
                                first_err.get_or_insert(e);
                            }
                        }
                    }
                    if pods::is_ready(p) {
                        outcome.deleted_ready += 1;
                    }
                }
            }
            PodAction::Create(indexes) => {
                self.expectations.expect(&uid, indexes.len(), 0);
                let mut rest = indexes.as_slice();
                let mut batch = SLOW_START.min(rest.len());
                while !rest.is_empty() {
                    let (now, later) = rest.split_at(batch.min(rest.len()));
                    let pp = PostParams::default();
                    let new: Vec<Pod> = now.iter().map(|ix| pods::pod_for(job, *ix)).collect();
                    let results = join_all(new.iter().map(|p| api.create(&pp, p))).await;
                    let mut failed = false;
                    for r in results {
                        match r {
                            Ok(pod) => {
                                outcome.created += 1;
                                let note = Note {
                                    warning: false,
                                    reason: "SuccessfulCreate".into(),
                                    message: format!("Created pod: {}", pod.name_any()),
                                };
                                self.publish(job, &note, Some(pod.object_ref(&()))).await;
                            }
                            Err(e) => {
                                self.expectations.creation_observed(&uid);
                                if namespace_terminating(&e) {
                                    continue;
                                }
                                failed = true;
                                let note = Note {
                                    warning: true,
                                    reason: "FailedCreate".into(),
                                    message: format!("Error creating: {e}"),
                                };
                                self.publish(job, &note, None).await;
                                first_err.get_or_insert(e);
                            }
                        }
                    }
                    rest = later;
                    if failed {
                        // Slow start: after a failing batch the rest waits for the next sync.
                        for _ in rest {
                            self.expectations.creation_observed(&uid);
                        }
                        break;
                    }
                    batch = (batch * 2).max(1);
                }
            }
        }
        (outcome, first_err)
    }

    async fn deleted(&self, job: &Job, p: &Pod, outcome: &mut Outcome) {
        outcome.deleted += 1;
        let note = Note {
            warning: false,
            reason: "SuccessfulDelete".into(),
            message: format!("Deleted pod: {}", pods::name(p)),
        };
        self.publish(job, &note, Some(p.object_ref(&()))).await;
    }

    async fn failed_delete(&self, job: &Job, p: &Pod, e: &kube::Error) {
        let note = Note { warning: true, reason: "FailedDelete".into(), message: format!("Error deleting: {e}") };
        self.publish(job, &note, Some(p.object_ref(&()))).await;
    }

    /// Removes the tracking finalizer; returns the UIDs it is gone from and the first
    /// error.
    async fn remove_finalizers(&self, job_uid: &str, list: &[Arc<Pod>]) -> (HashSet<String>, Option<kube::Error>) {
        if list.is_empty() {
            return (HashSet::new(), None);
        }
        self.expectations.expect_finalizers_removed(job_uid, list.iter().map(|p| pods::uid(p).to_string()));
        let results = join_all(list.iter().map(|p| {
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), p.metadata.namespace.as_deref().unwrap_or_default());
            async move { api.patch(pods::name(p), &PatchParams::default(), &remove_finalizer_patch()).await }
        }))
        .await;
        let mut removed = HashSet::new();
        let mut first_err = None;
        for (p, r) in list.iter().zip(results) {
            match r {
                Ok(_) => {
                    removed.insert(pods::uid(p).to_string());
                }
                Err(e) => {
                    self.expectations.finalizer_removal_observed(job_uid, pods::uid(p));
                    if is_not_found(&e) {
                        removed.insert(pods::uid(p).to_string());
                    } else {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        (removed, first_err)
    }

    /// Deletes a Job whose TTL ran out, after re-reading it so a Job edited meanwhile
    /// (TTL raised, restarted) is spared; the precondition guards the rest of the race.
    async fn expire(&self, job: &Job) -> Result<Action, Error> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let Some(fresh) = api.get_opt(&job.name_any()).await? else { return Ok(Action::await_change()) };
        match ttl(&fresh, Timestamp::now()) {
            Ttl::Keep => return Ok(Action::await_change()),
            Ttl::Wait(d) => return Ok(Action::requeue(d)),
            Ttl::Expired => {}
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions { resource_version: fresh.resource_version(), uid: fresh.uid() }),
            ..Default::default()
        };
        match api.delete(&fresh.name_any(), &dp).await {
            Ok(_) => tracing::info!(job = %fresh.name_any(), "deleted finished job after its ttl"),
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::await_change())
    }
}

fn after_finish(job: &Job) -> Action {
    match ttl(job, Timestamp::now()) {
        Ttl::Keep => Action::await_change(),
        Ttl::Wait(d) => Action::requeue(d),
        Ttl::Expired => Action::requeue(Duration::ZERO),
    }
}

async fn reconcile(cached: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.pods.ready() {
        // Without the full Pod list, "no Pods" would mean creating them all again.
        tracing::debug!(job = %cached.name_any(), "pod cache not synced yet");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let job = ctx.written.freshest(cached);
    tracing::debug!(job = %job.name_any(), namespace = ?job.namespace(), "syncing job");
    let uid = job.uid().unwrap_or_default();
    if finished_condition(&job).is_some() {
        ctx.backoffs.lock().unwrap_or_else(PoisonError::into_inner).remove(&uid);
        for p in ctx.pods.children(&uid) {
            if pods::has_tracking_finalizer(&p) {
                let _ = ctx.orphans.send(Orphan { namespace: p.namespace().unwrap_or_default(), name: p.name_any() });
            }
        }
        return match ttl(&job, Timestamp::now()) {
            Ttl::Expired => ctx.expire(&job).await,
            _ => Ok(after_finish(&job)),
        };
    }
    let spec = job.spec.clone().unwrap_or_default();
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
        return Ok(Action::await_change());
    }
    if spec.completion_mode.as_deref().is_some_and(|m| m != "NonIndexed" && m != "Indexed") {
        let note = Note {
            warning: true,
            reason: "UnknownCompletionMode".into(),
            message: "Skipped Job sync because completion mode is unknown".into(),
        };
        ctx.publish(&job, &note, None).await;
        return Ok(Action::await_change());
    }

    // Expectations first: a Pod arriving after this read is then at worst ignored
    // until the next sync, never counted as missing.
    let satisfied = ctx.expectations.satisfied(&uid);
    let input = Input {
        job: &job,
        pods: ctx.pods.children(&uid),
        now: Timestamp::now(),
        satisfied,
        expected_rm: ctx.expectations.finalizers_pending(&uid),
        backoff: ctx.backoffs.lock().unwrap_or_else(PoisonError::into_inner).get(&uid).copied().unwrap_or_default(),
        timing: ctx.timing,
    };
    let (mut sync, action) = Sync::start(input);
    let (outcome, pods_err) = ctx.carry_out(&job, action).await;
    sync.after_pods(outcome);
    let track = sync.track();
    if track.flush {
        match ctx.write_status(&sync.job).await {
            Ok(written) => {
                sync.written(written);
                ctx.backoffs.lock().unwrap_or_else(PoisonError::into_inner).insert(uid.clone(), sync.new_backoff);
            }
            // A newer Job is on its way through the watch; that event syncs again.
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(500))),
            Err(e) => return Err(e.into()),
        }
    }
    let (removed, rm_err) = ctx.remove_finalizers(&uid, &track.remove_finalizers).await;
    if sync.finish(&removed) {
        match ctx.write_status(&sync.job).await {
            Ok(written) => sync.written(written),
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(500))),
            Err(e) => return Err(e.into()),
        }
    }
    for note in &sync.notes {
        ctx.publish(&sync.job, note, None).await;
    }
    if let Some(e) = rm_err.or(pods_err) {
        return Err(e.into());
    }
    if sync.is_finished() {
        return Ok(after_finish(&sync.job));
    }
    Ok(Action::requeue(sync.requeue.unwrap_or(RESYNC).min(RESYNC)))
}

fn error_policy(job: Arc<Job>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(job = %job.name_any(), namespace = ?job.namespace(), error = %err, "job sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Frees Pods of the tracking finalizer once no live Job counts on it (upstream's
/// orphan queue). Waits for the first full Job list, so a Job not yet listed is not
/// taken for gone.
async fn orphan_worker(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Orphan>) {
    while !ctx.jobs_ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Some(o) = rx.recv().await {
        if ctx.pods.get(&o.namespace, &o.name).is_some_and(|p| ctx.still_tracked(&p)) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &o.namespace);
        // Re-read: the event may be stale, and most Pods seen here are fine.
        let pod = match api.get_opt(&o.name).await {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, pod = %o.name, "reading a possibly orphaned pod failed");
                continue;
            }
        };
        if !pods::has_tracking_finalizer(&pod) || ctx.still_tracked(&pod) {
            continue;
        }
        let controller = pod.owner_references().iter().find(|r| r.controller == Some(true));
        if controller.is_some_and(|r| !(r.kind == "Job" && r.api_version.starts_with("batch/"))) {
            continue;
        }
        if let Err(e) = api.patch(&o.name, &PatchParams::default(), &remove_finalizer_patch()).await
            && !is_not_found(&e)
        {
            tracing::warn!(error = %e, pod = %o.name, "removing the job tracking finalizer from an orphan failed");
        }
    }
}

/// Runs the Job controller with upstream's timing.
pub async fn run(client: Client, informers: Informers) {
    run_with(client, informers, Timing::default()).await
}

/// Runs the Job controller; `timing` sets the pod-replacement backoff (tests shorten it).
pub async fn run_with(client: Client, informers: Informers, timing: Timing) {
    let jobs = informers.get::<Job>();
    let reader = jobs.store();
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs: reader.clone(),
        jobs_ready: AtomicBool::new(false),
        pods: OwnerIndex::new("Job"),
        expectations: Expectations::default(),
        backoffs: Mutex::new(HashMap::new()),
        written: LastWritten::new(),
        recorder: crate::recorder(&client, CONTROLLER_NAME),
        timing,
        orphans: orphan_tx,
    });

    let job_ctx = ctx.clone();
    let job_triggers = jobs.subscribe().filter_map(move |ev| {
        let ctx = job_ctx.clone();
        async move {
            match ev {
                Event::Apply(j) | Event::InitApply(j) => Some(Ok::<_, watcher::Error>(ObjectRef::from_obj(&*j))),
                Event::Delete(j) => {
                    ctx.on_job_deleted(&j);
                    None
                }
                Event::InitDone => {
                    ctx.jobs_ready.store(true, Ordering::Release);
                    None
                }
                Event::Init => None,
            }
        }
    });
    let pod_ctx = ctx.clone();
    let pod_triggers = informers
        .get::<Pod>()
        .subscribe()
        .flat_map(move |ev| stream::iter(pod_ctx.on_pod_event(ev).into_iter().map(Ok::<_, watcher::Error>)));
    let queue = stream::select(job_triggers, pod_triggers);
    let controller = applier(
        |job, ctx| Box::pin(reconcile(job, ctx)),
        error_policy,
        ctx.clone(),
        reader,
        queue,
        ControllerConfig::default(),
    )
    .for_each(|_| async {});
    tokio::join!(controller, orphan_worker(ctx, orphan_rx));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn finished_job(ttl_secs: Option<i32>, at: &str) -> Job {
        Job {
            metadata: Default::default(),
            spec: Some(JobSpec { ttl_seconds_after_finished: ttl_secs, ..Default::default() }),
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at.parse().unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ttl_counts_from_the_finished_condition() {
        let now: Timestamp = "2024-05-01T10:00:30Z".parse().unwrap();
        assert_eq!(ttl(&finished_job(None, "2024-05-01T10:00:00Z"), now), Ttl::Keep);
        assert_eq!(ttl(&finished_job(Some(60), "2024-05-01T10:00:00Z"), now), Ttl::Wait(Duration::from_secs(30)));
        assert_eq!(ttl(&finished_job(Some(30), "2024-05-01T10:00:00Z"), now), Ttl::Expired);
        assert_eq!(ttl(&finished_job(Some(0), "2024-05-01T10:00:30Z"), now), Ttl::Expired);
        let mut running = finished_job(Some(0), "2024-05-01T10:00:00Z");
        running.status = None;
        assert_eq!(ttl(&running, now), Ttl::Keep);
    }
}
