//! The StatefulSet controller (`statefulset-controller`, upstream's
//! `pkg/controller/statefulset`): pods with stable names `<set>-<ordinal>`, started and
//! stopped in order (or all at once with `Parallel`), updated revision by revision from
//! the highest ordinal down to the partition.
//!
//! Start with [`plan::decide`] (the next steps, pure); `reconcile` below keeps the
//! revision history (`currentRevision` and `updateRevision`), carries out the steps and
//! writes the status.
//!
//! Volume claim templates: PersistentVolumeClaims are not served yet, so no claims are
//! created; each pod still gets the volumes naming its claims (`<template>-<set>-<n>`),
//! as upstream's pods do, and will wait for them once a kubelet mounts volumes.

pub mod plan;

use crate::history::{self, HASH_LABEL, UpdateRevision};
use crate::owned_pods::{self, Claim, Expectations, Seen};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use plan::{Step, View, Why};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The name Events carry in their From column, as upstream.
pub const CONTROLLER_NAME: &str = "statefulset-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    History(#[from] history::Error),
    #[error("{verb} Pod {pod} in StatefulSet {set} failed error: {source}")]
    Pod { verb: &'static str, pod: String, set: String, source: kube::Error },
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    retries: owned_pods::Retries,
}

fn key(set: &StatefulSet) -> String {
    format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any())
}

/// Expectations belong to one incarnation: a StatefulSet deleted and made again under the
/// same name does not wait for its predecessor's writes.
fn expectations_key(set: &StatefulSet) -> String {
    format!("{}/{}", key(set), set.uid().unwrap_or_default())
}

pub async fn run(client: Client) {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().labels(plan::POD_NAME_LABEL))
        .default_backoff()
        .modify(owned_pods::slim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let (revisions, rev_writer) = reflector::store();
    let rev_events =
        watcher(Api::<ControllerRevision>::all(client.clone()), watcher::Config::default().labels(HASH_LABEL))
            .default_backoff()
            .reflect(rev_writer)
            .touched_objects();
    let ctx = Arc::new(Ctx {
        recorder: crate::recorder(&client, CONTROLLER_NAME),
        client,
        pods,
        revisions,
        expectations: Expectations::default(),
        retries: owned_pods::Retries::default(),
    });
    Controller::new(sets, watcher::Config::default())
        .owns_stream(pod_events)
        .owns_stream(rev_events)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move { owned_pods::log_run_result(CONTROLLER_NAME, r) })
        .await;
}

fn error_policy(set: Arc<StatefulSet>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let k = key(&set);
    let delay = ctx.retries.failed(&k);
    tracing::warn!(statefulset = %k, error = %err, ?delay, "statefulset sync failed; retrying");
    Action::requeue(delay)
}

/// Upstream's `recordPodEvent`: "create Pod web-0 in StatefulSet web successful".
async fn pod_event(ctx: &Ctx, set: &StatefulSet, verb: &'static str, pod: &str, err: Option<&kube::Error>) {
    let title = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
    // Naming the pod keeps one Event per pod rather than one series for all.
    let related = Some(owned_pods::reference("Pod", "v1", set.namespace().as_deref(), pod));
    match err {
        None => {
            let msg = format!("{verb} Pod {pod} in StatefulSet {} successful", set.name_any());
            owned_pods::record(
                &ctx.recorder,
                &set.object_ref(&()),
                related,
                false,
                &format!("Successful{title}"),
                &msg,
            )
            .await;
        }
        Some(e) => {
            let msg = format!("{verb} Pod {pod} in StatefulSet {} failed error: {e}", set.name_any());
            owned_pods::record(&ctx.recorder, &set.object_ref(&()), related, true, &format!("Failed{title}"), &msg)
                .await;
        }
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let k = key(&set);
    let action = sync(set, ctx.clone()).await?;
    ctx.retries.succeeded(&k);
    Ok(action)
}

async fn sync(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !owned_pods::synced(&ctx.pods) || !owned_pods::synced(&ctx.revisions) {
        tracing::debug!(key = %key(&set), "caches not synced yet");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    // A set being deleted is left to the garbage collector: no new revisions or pods.
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = set.spec.as_ref() else { return Ok(Action::await_change()) };
    let Some(selector) = owned_pods::selector(&spec.selector) else { return Ok(Action::await_change()) };
    let k = key(&set);
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();

    let pods = claim_pods(&ctx, &set, &selector).await?;
    let mut revisions = claim_revisions(&ctx, &set, &selector).await?;
    history::sort_revisions(&mut revisions);
    let (current, update, collisions) = set_revisions(&ctx, &set, &revisions).await?;
    let current_template = history::template_of(&current).unwrap_or_else(|_| spec.template.clone());
    let update_template = history::template_of(&update)?;

    let pod_refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
    let view = View {
        set: &set,
        pods: &pod_refs,
        current_revision: current.metadata.name.as_deref().unwrap_or_default(),
        update_revision: update.metadata.name.as_deref().unwrap_or_default(),
        current_template: &current_template,
        update_template: &update_template,
        collision_count: collisions,
        now: Timestamp::now(),
    };
    let decided = plan::decide(&view);

    let satisfied = ctx.expectations.satisfied(&expectations_key(&set), |pod| {
        match ctx.pods.get(&ObjectRef::new(pod).within(&ns)) {
            None => Seen::Absent,
            Some(p) => Seen::Present { uid: p.uid().unwrap_or_default(), terminating: owned_pods::is_terminating(&p) },
        }
    });
    let outcome = if satisfied { carry_out(&ctx, &set, &decided.steps).await } else { Ok(()) };
    if let Some(w) = &decided.waiting_for {
        tracing::debug!(statefulset = %k, "waiting for {w}");
    }
    write_status(&ctx, &set, &decided.status).await?;
    let live: HashSet<&str> =
        pods.iter().map(|p| plan::pod_revision(p)).chain([view.current_revision, view.update_revision]).collect();
    truncate_history(&ctx, &set, &revisions, &live).await?;
    outcome?;
    if !satisfied {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Come back when a ready pod turns available.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let soonest = pods.iter().filter_map(|p| owned_pods::available_in(p, min_ready, view.now)).min();
    tracing::trace!(statefulset = %name, "synced");
    Ok(Action::requeue(soonest.unwrap_or(Duration::from_secs(300))))
}

/// Carries the steps out in order, stopping at the first failure (an ordered set's
/// steps are at most one create or delete after any relabels).
async fn carry_out(ctx: &Ctx, set: &StatefulSet, steps: &[Step]) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    let mut result = Ok(());
    // Creations and deletions of a Parallel set go out in slow-start batches.
    let (creates, others): (Vec<&Step>, Vec<&Step>) = steps.iter().partition(|s| matches!(s, Step::Create(_)));
    for step in others {
        let r = match step {
            Step::Delete { name, uid, why } => {
                if *why == Why::Update {
                    tracing::info!(statefulset = %set.name_any(), pod = %name, "terminating pod for update");
                }
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {
                        pod_event(ctx, set, "delete", name, None).await;
                        deleted.push((name.clone(), uid.clone()));
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => {
                        pod_event(ctx, set, "delete", name, Some(&e)).await;
                        Err(Error::Pod { verb: "delete", pod: name.clone(), set: set.name_any(), source: e })
                    }
                }
            }
            Step::Relabel { name, ordinal } => {
                let patch = json!({"metadata": {"labels": {
                    plan::POD_NAME_LABEL: name,
                    plan::POD_INDEX_LABEL: ordinal.to_string(),
                }}});
                match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => {
                        pod_event(ctx, set, "update", name, None).await;
                        Ok(())
                    }
                    Err(e) => {
                        pod_event(ctx, set, "update", name, Some(&e)).await;
                        Err(Error::Pod { verb: "update", pod: name.clone(), set: set.name_any(), source: e })
                    }
                }
            }
            Step::Create(_) => Ok(()),
        };
        if r.is_err() {
            result = r;
            break;
        }
    }
    if result.is_ok() {
        let pods: Vec<&Pod> = creates
            .iter()
            .filter_map(|s| match s {
                Step::Create(p) => Some(&**p),
                _ => None,
            })
            .collect();
        let outcomes = owned_pods::slow_start(pods, |pod: &Pod| {
            let api = api.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                match api.create(&PostParams::default(), pod).await {
                    Ok(_) => {
                        pod_event(ctx, set, "create", &name, None).await;
                        Ok(Some(name))
                    }
                    // The cache was behind: it exists, which is what was wanted.
                    Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(None),
                    Err(e) => {
                        pod_event(ctx, set, "create", &name, Some(&e)).await;
                        Err(Error::Pod { verb: "create", pod: name, set: set.name_any(), source: e })
                    }
                }
            }
        })
        .await;
        for o in outcomes {
            match o {
                Ok(Some(name)) => created.push(name),
                Ok(None) => {}
                Err(e) if result.is_ok() => result = Err(e),
                Err(_) => {}
            }
        }
    }
    ctx.expectations.expect(&expectations_key(set), created, deleted);
    result
}

/// The set's pods: members it controls or adopts.
async fn claim_pods(ctx: &Ctx, set: &StatefulSet, selector: &kube::core::Selector) -> Result<Vec<Arc<Pod>>, Error> {
    let ns = set.namespace();
    let name = set.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns.as_deref().unwrap_or_default());
    let oref = set.controller_owner_ref(&()).unwrap_or_default();
    let mut mine = Vec::new();
    for p in ctx.pods.state_filter(|p| p.metadata.namespace == ns) {
        let selected = owned_pods::selects(selector, &p.metadata) && plan::is_member(&name, &p);
        match owned_pods::claim(&p.metadata, &set.metadata, selected) {
            Claim::Mine => mine.push(p),
            Claim::Adopt => match owned_pods::adopt(&api, &p.metadata, &oref).await {
                Ok(_) => mine.push(p),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {}
                Err(e) => return Err(e.into()),
            },
            Claim::Release => owned_pods::release(&api, &p.metadata, &set.uid().unwrap_or_default()).await?,
            Claim::NotMine => {}
        }
    }
    Ok(mine)
}

async fn claim_revisions(
    ctx: &Ctx,
    set: &StatefulSet,
    selector: &kube::core::Selector,
) -> Result<Vec<ControllerRevision>, Error> {
    let ns = set.namespace();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns.as_deref().unwrap_or_default());
    let oref = set.controller_owner_ref(&()).unwrap_or_default();
    let mut mine = Vec::new();
    for r in ctx.revisions.state_filter(|r| r.metadata.namespace == ns) {
        match owned_pods::claim(&r.metadata, &set.metadata, owned_pods::selects(selector, &r.metadata)) {
            Claim::Mine => mine.push((*r).clone()),
            Claim::Adopt => match owned_pods::adopt(&api, &r.metadata, &oref).await {
                Ok(adopted) => mine.push(adopted),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {}
                Err(e) => return Err(e.into()),
            },
            // Upstream lists only revisions its selector covers, and never releases any.
            Claim::Release | Claim::NotMine => {}
        }
    }
    Ok(mine)
}

/// The current and update revisions and the collision count (upstream's
/// `getStatefulSetRevisions`): the set's template gets a revision, reused, renumbered
/// or created.
async fn set_revisions(
    ctx: &Ctx,
    set: &StatefulSet,
    sorted: &[ControllerRevision],
) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let oref = set.controller_owner_ref(&()).unwrap_or_default();
    let mut candidate =
        history::new_revision(&ns, &set.metadata, oref, &template, &[], history::next_revision(sorted))?;
    let data = candidate.data.as_ref().map(|d| d.0.clone()).unwrap_or(Value::Null);
    let hash = history::revision_hash(&data, Some(collisions))?;
    candidate.metadata.labels.get_or_insert_with(Default::default).insert(HASH_LABEL.to_string(), hash.clone());
    candidate.metadata.name = Some(history::revision_name(&set.name_any(), &hash));
    let update = match history::choose_update_revision(sorted, &candidate) {
        UpdateRevision::Newest => sorted.last().cloned().unwrap_or_default(),
        UpdateRevision::Renumber(i, n) => history::renumber(&api, &sorted[i], n).await?,
        UpdateRevision::Create => {
            history::create_with_probe(&api, &set.name_any(), &candidate, &mut collisions).await?
        }
    };
    let wanted = set.status.as_ref().and_then(|s| s.current_revision.as_deref()).unwrap_or_default();
    let current = sorted.iter().find(|r| r.metadata.name.as_deref() == Some(wanted)).cloned().unwrap_or(update.clone());
    Ok((current, update, collisions))
}

/// Deletes revisions no pod runs and neither status revision names, oldest first,
/// beyond `revisionHistoryLimit` (upstream's `truncateHistory`).
async fn truncate_history(
    ctx: &Ctx,
    set: &StatefulSet,
    sorted: &[ControllerRevision],
    live: &HashSet<&str>,
) -> Result<(), Error> {
    let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
    let is_live = |r: &ControllerRevision| live.contains(r.metadata.name.as_deref().unwrap_or_default());
    let dead = sorted.iter().filter(|r| !is_live(r)).count();
    if limit < 0 || dead <= limit as usize {
        return Ok(());
    }
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for r in history::to_prune(sorted, dead - limit as usize, is_live) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A count as upstream writes it: fields it omits when zero are removed.
fn omit_zero(n: i32) -> Value {
    if n == 0 { Value::Null } else { json!(n) }
}

fn omit_empty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

async fn write_status(ctx: &Ctx, set: &StatefulSet, s: &plan::Status) -> Result<(), Error> {
    let old = set.status.clone().unwrap_or_default();
    let consistent = old.observed_generation.unwrap_or(0) >= s.observed_generation
        && old.replicas == s.replicas
        && old.current_replicas.unwrap_or(0) == s.current
        && old.ready_replicas.unwrap_or(0) == s.ready
        && old.available_replicas.unwrap_or(0) == s.available
        && old.updated_replicas.unwrap_or(0) == s.updated
        && old.current_revision.as_deref().unwrap_or_default() == s.current_revision
        && old.update_revision.as_deref().unwrap_or_default() == s.update_revision
        && old.collision_count.unwrap_or(0) == s.collision_count
        && old.collision_count.is_some();
    if consistent {
        return Ok(());
    }
    let status = json!({
        "observedGeneration": s.observed_generation,
        "replicas": s.replicas,
        "readyReplicas": omit_zero(s.ready),
        "currentReplicas": omit_zero(s.current),
        "updatedReplicas": omit_zero(s.updated),
        "availableReplicas": s.available,
        "currentRevision": omit_empty(&s.current_revision),
        "updateRevision": omit_empty(&s.update_revision),
        "collisionCount": s.collision_count,
    });
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    match api.patch_status(&set.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_like_upstream() {
        assert_eq!(omit_zero(0), Value::Null);
        assert_eq!(omit_zero(2), json!(2));
        assert_eq!(omit_empty(""), Value::Null);
        assert_eq!(omit_empty("web-1"), json!("web-1"));
    }
}
