//! The Deployment controller (upstream's `pkg/controller/deployment`): rolls a pod
//! template out through ReplicaSets named `<deployment>-<pod-template-hash>`, with
//! RollingUpdate or Recreate, revisions, rollback by template, pause and resume, and
//! the Progressing and Available conditions that `kubectl rollout status` reads.
//!
//! [`plan`] decides a sync without I/O; [`template`] hashes and compares templates;
//! this module claims ReplicaSets, carries the plan out and triggers syncs.

pub mod plan;
pub mod template;

use crate::Error;
use crate::Informers;
use crate::events::{EventSink, event};
use crate::replicaset::{
    adopt_patch, claim, controller_ref, error_message, log_trouble, new_controller_ref, parse_selector, release_patch,
    strip,
};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action as ControllerAction, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use plan::{Action, OwnedPod};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The name upstream gives this controller; Events carry it.
pub const CONTROLLER_NAME: &str = "deployment-controller";
/// How often a Deployment is synced without any event.
pub const RESYNC: Duration = Duration::from_secs(5 * 60);

struct Ctx {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    events: EventSink,
}

/// The merge patch that writes a Deployment's status; zero counts are removed, as
/// upstream's `omitempty` leaves them out.
pub fn status_patch(s: &DeploymentStatus) -> Value {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    json!({"status": {
        "observedGeneration": s.observed_generation,
        "replicas": nz(s.replicas),
        "updatedReplicas": nz(s.updated_replicas),
        "readyReplicas": nz(s.ready_replicas),
        "availableReplicas": nz(s.available_replicas),
        "unavailableReplicas": nz(s.unavailable_replicas),
        "conditions": s.conditions,
        "collisionCount": s.collision_count,
    }})
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<ControllerAction, Error> {
    informer::wait_until_ready(&ctx.replica_sets).await;
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let Some(label_selector) = d.spec.as_ref().map(|s| s.selector.clone()) else {
        return Ok(ControllerAction::await_change());
    };
    let selector = match parse_selector(&label_selector) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(deployment = %format!("{ns}/{name}"), error = %e, "invalid selector");
            return Ok(ControllerAction::await_change());
        }
    };
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let candidates = ctx.replica_sets.state_filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()));
    let claimed = claim(&uid, deleting, &selector, candidates.iter().map(|r| r.as_ref()));
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned: Vec<ReplicaSet> = claimed.owned.into_iter().cloned().collect();
    if !claimed.adopt.is_empty() {
        let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        let fresh = d_api.get_opt(&name).await?;
        if fresh.is_some_and(|f| f.metadata.uid == d.metadata.uid && f.metadata.deletion_timestamp.is_none()) {
            let owner = new_controller_ref("apps/v1", "Deployment", &d.metadata);
            for rs in claimed.adopt {
                let patch = adopt_patch(&owner, rs.metadata.uid.as_deref().unwrap_or_default());
                match rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                    Ok(adopted) => owned.push(adopted),
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for rs in claimed.release {
        let patch = release_patch(&uid, rs.metadata.uid.as_deref().unwrap_or_default());
        match rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Recreate waits for the old pods to be gone; nothing else needs pods.
    let pods =
        if plan::is_rolling(&d) || deleting { Vec::new() } else { owned_pods(&ctx, &ns, &selector, &owned).await? };
    let plan = plan::plan(&d, &owned, &pods, Timestamp::now())?;
    execute(&ctx, &d, plan.actions).await?;
    // A resync now and then heals whatever a lost event left behind.
    Ok(ControllerAction::requeue(plan.requeue_after.unwrap_or(RESYNC).min(RESYNC)))
}

/// The pods of the Deployment's ReplicaSets, read fresh from the API server.
async fn owned_pods(
    ctx: &Ctx,
    ns: &str,
    selector: &kube::core::Selector,
    owned: &[ReplicaSet],
) -> Result<Vec<OwnedPod>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = api.list(&ListParams::default().labels(&selector.to_string())).await?;
    let uids: Vec<&str> = owned.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
    Ok(list
        .items
        .iter()
        .filter_map(|p| {
            let owner = controller_ref(&p.metadata)?;
            uids.contains(&owner.uid.as_str()).then(|| OwnedPod {
                owner_uid: owner.uid.clone(),
                phase: p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default(),
            })
        })
        .collect())
}

/// Carries out a plan in order; stops at the first failure.
async fn execute(ctx: &Ctx, d: &Deployment, actions: Vec<Action>) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let regarding = d.object_ref(&());
    // A ReplicaSet written twice in one sync needs the resourceVersion of the first write.
    let mut versions: HashMap<String, Option<String>> = HashMap::new();
    for action in actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                let rs_name = rs.name_any();
                match rs_api.create(&PostParams::default(), &rs).await {
                    Ok(created) => {
                        versions.insert(rs_name, created.metadata.resource_version);
                    }
                    Err(e) if is_status(&e, 409) => return on_create_conflict(ctx, d, &rs).await,
                    Err(e) if is_status(&e, 403) && error_message(&e).contains("being terminated") => return Ok(()),
                    Err(e) => {
                        let msg = format!("Failed to create new replica set {rs_name:?}: {}", error_message(&e));
                        if let Some(status) = plan::failed_create_status(d, &msg, Timestamp::now()) {
                            let _ = d_api
                                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status_patch(&status)))
                                .await;
                        }
                        ctx.events.publish(
                            regarding.clone(),
                            event(EventType::Warning, plan::FAILED_RS_CREATE, "Create", msg),
                        );
                        return Err(e.into());
                    }
                }
            }
            Action::UpdateReplicaSet(mut rs) => {
                let rs_name = rs.name_any();
                if let Some(rv) = versions.get(&rs_name) {
                    rs.metadata.resource_version = rv.clone();
                }
                let updated = rs_api.replace(&rs_name, &PostParams::default(), &rs).await?;
                versions.insert(rs_name, updated.metadata.resource_version);
            }
            Action::DeleteReplicaSet { name: rs_name } => match rs_api.delete(&rs_name, &DeleteParams::default()).await
            {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e.into()),
            },
            Action::SetRevision(revision) => {
                let patch = json!({"metadata": {"annotations": {plan::REVISION: revision}}});
                d_api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
            }
            Action::UpdateStatus(status) => {
                d_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status_patch(&status))).await?;
            }
            Action::Event { warning, reason, message } => {
                let type_ = if warning { EventType::Warning } else { EventType::Normal };
                ctx.events.publish(regarding.clone(), event(type_, reason, "Scale", message));
            }
        }
    }
    Ok(())
}

/// A ReplicaSet of the new name exists: ours (a stale cache) or a hash collision, in
/// which case `collisionCount` goes up and the next sync picks another name.
async fn on_create_conflict(ctx: &Ctx, d: &Deployment, rs: &ReplicaSet) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = rs_api.get(&rs.name_any()).await?;
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let same = existing
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .is_some_and(|t| template::equal_ignore_hash(t, &template));
    if plan::owned_by(&existing, d) && same {
        // Our cache is behind our own write: sync again once it has caught up.
        return Err(Error::Manage(format!("replica set {:?} exists but is not cached yet", rs.name_any())));
    }
    let count = d.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({"status": {"collisionCount": count}});
    d_api.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    Err(Error::Manage(format!("hash collision for replica set {:?}; collisionCount now {count}", rs.name_any())))
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> ControllerAction {
    if crate::replicaset::is_conflict(err) {
        tracing::debug!(deployment = %d.name_any(), error = %err, "deployment sync raced a write; retrying");
        return ControllerAction::requeue(Duration::from_millis(100));
    }
    tracing::warn!(deployment = %format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any()), error = %err, "deployment sync failed; retrying");
    ControllerAction::requeue(Duration::from_secs(1))
}

/// The Deployments a ReplicaSet event concerns: its controller if that is a Deployment,
/// or, for an orphan, every Deployment of its namespace whose selector matches it.
fn rs_to_deployments(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_ref(&rs.metadata) {
        if owner.kind == "Deployment" && owner.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    deployments
        .state_filter(|d| {
            d.metadata.namespace.as_deref() == Some(ns.as_str())
                && d.spec
                    .as_ref()
                    .and_then(|s| parse_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.selects_all() && sel.matches(&labels))
        })
        .iter()
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

pub async fn run(client: Client, informers: Informers) {
    let d_api: Api<Deployment> = Api::all(client.clone());
    let (d_store, d_writer) = reflector::store();
    let d_stream =
        reflector::reflector(d_writer, watcher(d_api, watcher::Config::default()).default_backoff().modify(strip))
            .touched_objects();
    let replica_sets = informers.get::<ReplicaSet>();
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), CONTROLLER_NAME),
        client,
        replica_sets: replica_sets.store(),
    });
    let mapper_store = d_store.clone();
    Controller::for_stream(d_stream, d_store)
        .watches_shared_stream(replica_sets.touched(), move |rs| rs_to_deployments(&rs, &mapper_store))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move { log_trouble("deployment", res) })
        .await;
}
