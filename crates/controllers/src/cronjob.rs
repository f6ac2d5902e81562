//! The CronJob controller (`cronjob-controller`, upstream's `cronjob_controllerv2`):
//! creates a Job for each due slot of a CronJob's schedule, named
//! `<cronjob>-<minutes since the epoch>` so a slot never runs twice, applies the
//! concurrency policy, keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`, and deletes finished Jobs beyond the history limits. Instead
//! of polling, each CronJob is requeued for its next slot.
//!
//! [`api::cron`] reads cron expressions; [`decide`] is the pure "what is due at time
//! t"; this file does the I/O. Start at [`run`].

pub mod decide;

use crate::Error;
use crate::Informers;
use crate::events::{Event as KubeEvent, EventType, Recorder};
use crate::job::cache::{LastWritten, OwnerIndex};
use decide::{JobKey, Note, decide, forget_active, record_started};
use futures_util::{StreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, applier};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The name upstream's controller records Events under.
pub const CONTROLLER_NAME: &str = "cronjob-controller";

struct Ctx {
    client: Client,
    jobs: OwnerIndex<Job>,
    written: LastWritten<CronJob>,
    recorder: Recorder,
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Ctx {
    async fn publish(&self, cj: &CronJob, note: &Note) {
        let ev = KubeEvent {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.into(),
            note: Some(note.message.clone()),
            action: note.reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &cj.object_ref(&())).await {
            tracing::debug!(error = %e, reason = note.reason, "recording cronjob event failed");
        }
    }

    fn on_job_event(&self, event: Event<Arc<Job>>) -> Vec<ObjectRef<CronJob>> {
        let mut out = Vec::new();
        for change in self.jobs.apply_event(event) {
            for owner in change.owner.iter().chain(change.released_by.iter()) {
                out.push(ObjectRef::new(&owner.name).within(&owner.namespace));
            }
        }
        out
    }

    /// Deletes a Job with its Pods in the background; records the outcome.
    async fn delete_job(&self, cj: &CronJob, key: &JobKey) -> Result<(), kube::Error> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &cj.namespace().unwrap_or_default());
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => {
                let note = Note { warning: true, reason: "FailedDelete", message: format!("Deleted job: {e}") };
                self.publish(cj, &note).await;
                return Err(e);
            }
        }
        let note = Note { warning: false, reason: "SuccessfulDelete", message: format!("Deleted job {}", key.name) };
        self.publish(cj, &note).await;
        Ok(())
    }

    async fn write_status(&self, cj: &CronJob) -> Result<(), kube::Error> {
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), &cj.namespace().unwrap_or_default());
        let written = api.replace_status(&cj.name_any(), &PostParams::default(), cj).await?;
        self.written.remember(written);
        Ok(())
    }
}

async fn reconcile(cached: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.jobs.ready() {
        // Without the full Job list every slot would look unstarted.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let cj = ctx.written.freshest(cached);
    let ns = cj.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let children = ctx.jobs.children(&cj.uid().unwrap_or_default());

    // Active Jobs the cache lacks may just be slow to arrive: ask the API server.
    let known: HashSet<String> = children.iter().filter_map(|j| j.uid()).collect();
    let mut missing = HashSet::new();
    for r in cj.status.iter().flat_map(|s| s.active.iter().flatten()) {
        let (Some(uid), Some(name)) = (&r.uid, &r.name) else { continue };
        if !known.contains(uid) && jobs_api.get_opt(name).await?.is_none() {
            missing.insert(uid.clone());
        }
    }

    let plan = decide(&cj, &children, &missing, Timestamp::now());
    let mut status = plan.status;
    let mut changed = plan.status_changed;
    for key in &plan.cleanup {
        if ctx.delete_job(&cj, key).await.is_ok() {
            forget_active(&mut status, &key.uid);
            changed = true;
        }
    }
    for note in &plan.notes {
        ctx.publish(&cj, note).await;
    }
    let mut failure = None;
    for key in &plan.replace {
        match ctx.delete_job(&cj, key).await {
            Ok(()) => {
                forget_active(&mut status, &key.uid);
                changed = true;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none()
        && let Some((job, scheduled)) = plan.create
    {
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                let note = Note {
                    warning: false,
                    reason: "SuccessfulCreate",
                    message: format!("Created job {}", created.name_any()),
                };
                ctx.publish(&cj, &note).await;
                record_started(&mut status, &created, scheduled);
                changed = true;
            }
            Err(e) if api_code(&e) == Some(409) => {
                // Created before a status write was lost: adopt it if it is ours.
                if let Some(found) = jobs_api.get_opt(&job.name_any()).await? {
                    let ours = found
                        .owner_references()
                        .iter()
                        .any(|r| r.controller == Some(true) && r.uid == cj.uid().unwrap_or_default());
                    let listed = status.active.iter().flatten().any(|r| r.uid == found.uid());
                    if ours && !listed {
                        record_started(&mut status, &found, scheduled);
                        changed = true;
                    }
                }
            }
            Err(e) if matches!(&e, kube::Error::Api(s) if s.message.contains("because it is being terminated")) => {}
            Err(e) => {
                let note = Note { warning: true, reason: "FailedCreate", message: format!("Error creating job: {e}") };
                ctx.publish(&cj, &note).await;
                failure = Some(e);
            }
        }
    }
    if changed {
        let mut updated = (*cj).clone();
        updated.status = Some(status);
        ctx.write_status(&updated).await?;
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(plan.requeue.map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(cj: Arc<CronJob>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(cronjob = %cj.name_any(), namespace = ?cj.namespace(), error = %err, "cronjob sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the CronJob controller until the process ends.
pub async fn run(client: Client, informers: Informers) {
    let (reader, writer) = reflector::store::<CronJob>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs: OwnerIndex::new("CronJob"),
        written: LastWritten::new(),
        recorder: crate::recorder(&client, CONTROLLER_NAME),
    });
    let cj_ctx = ctx.clone();
    let cronjob_triggers =
        reflector::reflector(writer, watcher(Api::<CronJob>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .filter_map(move |ev| {
                let ctx = cj_ctx.clone();
                async move {
                    match ev {
                        Ok(Event::Apply(cj) | Event::InitApply(cj)) => Some(Ok(ObjectRef::from_obj(&cj))),
                        Ok(Event::Delete(cj)) => {
                            ctx.written.forget(&cj.uid().unwrap_or_default());
                            None
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "cronjob watch failed");
                            None
                        }
                    }
                }
            });
    let job_ctx = ctx.clone();
    let job_triggers = informers
        .get::<Job>()
        .subscribe()
        .flat_map(move |ev| stream::iter(job_ctx.on_job_event(ev).into_iter().map(Ok::<_, watcher::Error>)));
    let queue = stream::select(cronjob_triggers, job_triggers);
    applier(|cj, ctx| Box::pin(reconcile(cj, ctx)), error_policy, ctx, reader, queue, ControllerConfig::default())
        .for_each(|_| async {})
        .await;
}
