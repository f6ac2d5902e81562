//! The DaemonSet controller (`daemonset-controller`, upstream's `pkg/controller/daemon`):
//! one pod per eligible node, replaced revision by revision on a rolling update.
//!
//! Each pod is created for one node and pinned to it with the node affinity
//! `metadata.name In [node]`; the scheduler binds it there. Start with [`plan::decide`]
//! (what to create and delete, pure) and [`placement::node_fit`] (which nodes qualify);
//! `reconcile` below reads the caches, keeps the revision history, carries out the plan
//! and writes the status.
//!
//! The pod cache holds only pods labelled `controller-revision-hash` that are not
//! StatefulSet pods: every pod this controller creates carries that label, so a
//! hand-made pod without it is not adopted (upstream adopts any orphan its selector
//! covers).

pub mod placement;
pub mod plan;

use crate::Informers;
use crate::events::Recorder;
use crate::history::{self, CONTROLLER_REVISION_HASH_LABEL};
use crate::owned_pods::{self, Claim, Expectations, Seen};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use plan::{Doomed, View};
use serde_json::{Value, json};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name Events carry in their From column, as upstream.
pub const CONTROLLER_NAME: &str = "daemonset-controller";

/// Upstream's `BurstReplicas`: at most this many creates (or deletes) per sync.
const BURST_REPLICAS: usize = 250;

/// The failed-pod backoff (upstream: 1 s doubling to 15 min).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Pods this controller watches: revisioned, but not a StatefulSet's.
const POD_LABELS: &str = "controller-revision-hash,!statefulset.kubernetes.io/pod-name";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    History(#[from] history::Error),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("hash collision for revision {0}: collisionCount raised, retrying")]
    Collision(String),
    #[error("{0} of the pod writes failed; first: {1}")]
    Writes(usize, String),
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    nodes: Store<Node>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    retries: owned_pods::Retries,
    /// Failed-pod backoff per `<ds uid>/<node>`: (last deletion, delay).
    backoff: Mutex<HashMap<String, (Instant, Duration)>>,
}

fn key(ds: &DaemonSet) -> String {
    format!("{}/{}", ds.namespace().unwrap_or_default(), ds.name_any())
}

/// Expectations belong to one incarnation: a DaemonSet deleted and made again under the
/// same name does not wait for its predecessor's writes.
fn expectations_key(ds: &DaemonSet) -> String {
    format!("{}/{}", key(ds), ds.uid().unwrap_or_default())
}

/// What about a node can change where daemons run.
fn node_fingerprint(node: &Node) -> u64 {
    let mut h = DefaultHasher::new();
    node.metadata.labels.hash(&mut h);
    if let Some(spec) = node.spec.as_ref() {
        spec.unschedulable.hash(&mut h);
        for t in spec.taints.iter().flatten() {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    if let Some(a) = node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
        for (k, v) in a {
            (k, &v.0).hash(&mut h);
        }
    }
    h.finish()
}

pub async fn run(client: Client, informers: Informers) {
    let dss: Api<DaemonSet> = Api::all(client.clone());
    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().labels(POD_LABELS))
        .default_backoff()
        .modify(owned_pods::slim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let (revisions, rev_writer) = reflector::store();
    let rev_events = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(CONTROLLER_REVISION_HASH_LABEL),
    )
    .default_backoff()
    .reflect(rev_writer)
    .touched_objects();
    let node_informer = informers.get::<Node>();
    let nodes = node_informer.store();
    // Node heartbeats must not wake every DaemonSet: only changes to labels, taints,
    // cordons and capacity (and additions and removals) pass.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let node_events = node_informer.subscribe().filter_map(move |ev| {
        let pass = match ev {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                (seen.insert(n.name_any(), node_fingerprint(&n)) != Some(node_fingerprint(&n))).then_some(n)
            }
            watcher::Event::Delete(n) => {
                seen.remove(&n.name_any());
                Some(n)
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        std::future::ready(pass)
    });

    let controller = Controller::new(dss, watcher::Config::default());
    let all_ds = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: crate::recorder(&client, CONTROLLER_NAME),
        client,
        nodes,
        pods,
        revisions,
        expectations: Expectations::default(),
        retries: owned_pods::Retries::default(),
        backoff: Mutex::new(HashMap::new()),
    });
    controller
        .owns_stream(pod_events)
        .owns_stream(rev_events)
        .watches_shared_stream(node_events, move |_node: Arc<Node>| {
            all_ds.state().iter().map(|ds| ObjectRef::from_obj(&**ds)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move { owned_pods::log_run_result(CONTROLLER_NAME, r) })
        .await;
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let k = key(&ds);
    let delay = ctx.retries.failed(&k);
    tracing::warn!(daemonset = %k, error = %err, ?delay, "daemonset sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let k = key(&ds);
    let action = sync(ds, ctx.clone()).await?;
    ctx.retries.succeeded(&k);
    Ok(action)
}

async fn sync(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Acting on a cache that has not listed yet would create a second pod per node.
    if !owned_pods::synced(&ctx.pods) || !owned_pods::synced(&ctx.nodes) || !owned_pods::synced(&ctx.revisions) {
        tracing::debug!(key = %key(&ds), "caches not synced yet");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    // A DaemonSet being deleted is left to the garbage collector; its status cannot be
    // trusted while its pods and revisions go.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = ds.spec.as_ref() else { return Ok(Action::await_change()) };
    let ns = ds.namespace().unwrap_or_default();
    let everything = spec.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && spec.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if everything {
        publish(
            &ctx,
            &ds,
            None,
            true,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(selector) = owned_pods::selector(&spec.selector) else { return Ok(Action::await_change()) };

    let (cur, old) = construct_history(&ctx, &ds, &selector).await?;
    let hash = cur.labels().get(CONTROLLER_REVISION_HASH_LABEL).cloned().unwrap_or_default();

    let pods = claim_pods(&ctx, &ds, &selector).await?;
    let nodes = ctx.nodes.state();
    let node_refs: Vec<&Node> = nodes.iter().map(|n| &**n).collect();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in &pods {
        // A terminal pod being deleted is the kubelet's or the pod GC's business.
        if owned_pods::is_terminal(p) && owned_pods::is_terminating(p) {
            continue;
        }
        if let Some(n) = placement::target_node(p) {
            by_node.entry(n.to_string()).or_default().push(p);
        }
    }
    let backoff = nodes_in_backoff(&ctx, &ds);
    let now = Timestamp::now();
    let view = View { ds: &ds, nodes: &node_refs, pods_by_node: &by_node, hash: &hash, now, backoff: &backoff };

    let satisfied = ctx.expectations.satisfied(&expectations_key(&ds), |name| {
        match ctx.pods.get(&ObjectRef::new(name).within(&ns)) {
            None => Seen::Absent,
            Some(p) => Seen::Present { uid: p.uid().unwrap_or_default(), terminating: owned_pods::is_terminating(&p) },
        }
    });
    if !satisfied {
        // Writes not yet in the cache: report what is known, without claiming to have
        // processed this generation.
        write_status(&ctx, &ds, plan::counts(&view), false).await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }

    let decided = plan::decide(&view)?;
    for note in &decided.notes {
        let related = note.pod.as_deref().map(|p| ("Pod", p));
        publish(&ctx, &ds, related, note.warning, note.reason, &note.message).await;
    }
    note_failures(&ctx, &ds, &decided.failed_on);
    let synced = sync_nodes(&ctx, &ds, &node_refs, &decided.create_on, &decided.delete, &hash).await;
    if synced.is_ok() {
        cleanup_history(&ctx, &ds, old, &pods).await?;
    }
    let counts = plan::counts(&view);
    write_status(&ctx, &ds, counts, true).await?;
    synced?;

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if min_ready > 0 && counts.ready != counts.available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    if decided.backoff_waits {
        return Ok(Action::requeue(BACKOFF_INITIAL));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Records an Event about the DaemonSet, also about `related` (a pod or node) if given.
async fn publish(ctx: &Ctx, ds: &DaemonSet, related: Option<(&str, &str)>, warning: bool, reason: &str, message: &str) {
    let ns = ds.namespace();
    let related = related.map(|(kind, name)| match kind {
        "Node" => owned_pods::reference(kind, "v1", None, name),
        _ => owned_pods::reference(kind, "v1", ns.as_deref(), name),
    });
    owned_pods::record(&ctx.recorder, &ds.object_ref(&()), related, warning, reason, message).await;
}

fn nodes_in_backoff(ctx: &Ctx, ds: &DaemonSet) -> HashSet<String> {
    let prefix = format!("{}/", ds.uid().unwrap_or_default());
    let now = Instant::now();
    let table = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
    table
        .iter()
        .filter(|(k, (last, delay))| k.starts_with(&prefix) && now < *last + *delay)
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect()
}

fn note_failures(ctx: &Ctx, ds: &DaemonSet, nodes: &[String]) {
    let mut table = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    // Entries long past their delay are forgotten, so the table does not grow forever.
    table.retain(|_, (last, delay)| now.duration_since(*last) < (*delay * 2).max(BACKOFF_MAX));
    for n in nodes {
        let k = format!("{}/{n}", ds.uid().unwrap_or_default());
        let delay = match table.get(&k) {
            Some((_, d)) => (*d * 2).min(BACKOFF_MAX),
            None => BACKOFF_INITIAL,
        };
        table.insert(k, (now, delay));
    }
}

/// The DaemonSet's pods from the cache, adopting orphans it selects and releasing its
/// pods it no longer selects.
async fn claim_pods(ctx: &Ctx, ds: &DaemonSet, selector: &kube::core::Selector) -> Result<Vec<Arc<Pod>>, Error> {
    let ns = ds.namespace();
    let candidates = ctx.pods.state_filter(|p| p.metadata.namespace == ns);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns.as_deref().unwrap_or_default());
    let oref = ds.controller_owner_ref(&()).unwrap_or_default();
    let mut mine = Vec::new();
    for p in candidates {
        match owned_pods::claim(&p.metadata, &ds.metadata, owned_pods::selects(selector, &p.metadata)) {
            Claim::Mine => mine.push(p),
            Claim::Adopt => match owned_pods::adopt(&api, &p.metadata, &oref).await {
                Ok(_) => mine.push(p),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {}
                Err(e) => return Err(e.into()),
            },
            Claim::Release => owned_pods::release(&api, &p.metadata, &ds.uid().unwrap_or_default()).await?,
            Claim::NotMine => {}
        }
    }
    Ok(mine)
}

/// The DaemonSet's revisions: the current one (created or renumbered if need be) and
/// the old ones (upstream's `constructHistory`).
async fn construct_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    selector: &kube::core::Selector,
) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let oref = ds.controller_owner_ref(&()).unwrap_or_default();
    let mut histories = Vec::new();
    for r in ctx.revisions.state_filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str())) {
        match owned_pods::claim(&r.metadata, &ds.metadata, owned_pods::selects(selector, &r.metadata)) {
            Claim::Mine => histories.push((*r).clone()),
            Claim::Adopt => match owned_pods::adopt(&api, &r.metadata, &oref).await {
                Ok(adopted) => histories.push(adopted),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {}
                Err(e) => return Err(e.into()),
            },
            Claim::Release => owned_pods::release(&api, &r.metadata, &ds.uid().unwrap_or_default()).await?,
            Claim::NotMine => {}
        }
    }
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let patch = history::template_patch(&template)?;
    let (mut cur, old): (Vec<_>, Vec<_>) = histories.into_iter().partition(|r| history::data_equals(r, &patch));
    let next = history::max_revision(&old) + 1;
    if cur.is_empty() {
        return Ok((snapshot(ctx, ds, &api, &template, next).await?, old));
    }
    // Keep the highest-numbered duplicate, move pods onto its hash, drop the others.
    cur.sort_by_key(|r| r.revision);
    let keep = cur.pop().unwrap_or_default();
    if !cur.is_empty() {
        let keep_hash = keep.labels().get(CONTROLLER_REVISION_HASH_LABEL).cloned().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        for p in claim_pods(ctx, ds, selector).await? {
            if p.labels().get(CONTROLLER_REVISION_HASH_LABEL) != Some(&keep_hash) {
                let patch = json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}});
                pods.patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
        }
        for dup in &cur {
            delete_revision(&api, dup).await?;
        }
    }
    let keep = if keep.revision < next { history::renumber(&api, &keep, next).await? } else { keep };
    Ok((keep, old))
}

async fn delete_revision(api: &Api<ControllerRevision>, r: &ControllerRevision) -> Result<(), Error> {
    match api.delete(&r.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records the DaemonSet's template as revision `number`, named `<ds>-<hash>`. A name
/// taken by another template raises `status.collisionCount`, which changes the hash on
/// the next try (upstream's `snapshot`).
async fn snapshot(
    ctx: &Ctx,
    ds: &DaemonSet,
    api: &Api<ControllerRevision>,
    template: &PodTemplateSpec,
    number: i64,
) -> Result<ControllerRevision, Error> {
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = history::compute_hash(template, collisions)?;
    let oref = ds.controller_owner_ref(&()).unwrap_or_default();
    let ns = ds.namespace().unwrap_or_default();
    let mut cr =
        history::new_revision(&ns, &ds.metadata, oref, template, &[(CONTROLLER_REVISION_HASH_LABEL, &hash)], number)?;
    let name = history::revision_name(&ds.name_any(), &hash);
    cr.metadata.name = Some(name.clone());
    match api.create(&PostParams::default(), &cr).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&name).await?;
            if existing.data == cr.data {
                return Ok(existing);
            }
            let dss: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
            let fresh = dss.get(&ds.name_any()).await?;
            let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
            // A stale count was hashed: the next sync sees the current one.
            if fresh_count == collisions {
                let patch = json!({"status": {"collisionCount": fresh_count.unwrap_or(0) + 1}});
                dss.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
            Err(Error::Collision(name))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes old revisions beyond `revisionHistoryLimit`, oldest first, sparing any a
/// pod still runs (upstream's `cleanupHistory`).
async fn cleanup_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    mut old: Vec<ControllerRevision>,
    pods: &[Arc<Pod>],
) -> Result<(), Error> {
    let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize;
    let Some(excess) = old.len().checked_sub(limit).filter(|n| *n > 0) else { return Ok(()) };
    let live: HashSet<&str> =
        pods.iter().filter_map(|p| p.labels().get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str)).collect();
    history::sort_revisions(&mut old);
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let doomed = history::to_prune(&old, excess, |r| {
        r.labels().get(CONTROLLER_REVISION_HASH_LABEL).is_some_and(|h| live.contains(h.as_str()))
    });
    for r in doomed {
        delete_revision(&api, r).await?;
    }
    Ok(())
}

/// The template daemon pods are made from: the DaemonSet's, with the revision hash (and
/// template generation) labels and the daemon tolerations (upstream's `CreatePodTemplate`).
fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    if let Some(g) = plan::template_generation(ds) {
        labels.insert(plan::TEMPLATE_GENERATION_LABEL.to_string(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string());
    }
    let spec = t.spec.get_or_insert_with(Default::default);
    spec.tolerations = Some(placement::with_daemon_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        spec.host_network == Some(true),
    ));
    t
}

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// Creates daemon pods on `create_on` (in slow-start batches) and deletes `delete`,
/// each at most [`BURST_REPLICAS`], with an Event per pod as upstream's pod control.
async fn sync_nodes(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[&Node],
    create_on: &[String],
    delete: &[Doomed],
    hash: &str,
) -> Result<(), Error> {
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let template = pod_template(ds, hash);
    let oref = ds.controller_owner_ref(&()).unwrap_or_default();
    let by_name: HashMap<&str, &Node> = nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, *n))).collect();
    let creates: Vec<String> = create_on.iter().take(BURST_REPLICAS).cloned().collect();
    let results = owned_pods::slow_start(creates, |node: String| {
        let mut pod = owned_pods::pod_from_template(&template, &ds.name_any(), oref.clone());
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.affinity = Some(placement::pin_to_node(spec.affinity.take(), &node));
        let api = api.clone();
        let placement_hint = by_name.get(node.as_str()).and_then(|n| placement::insufficient_resource(spec, n));
        async move {
            if let Some(reason) = placement_hint {
                publish(
                    ctx,
                    ds,
                    Some(("Node", &node)),
                    true,
                    "FailedPlacement",
                    &format!("failed to place pod on {node:?}: {reason}"),
                )
                .await;
            }
            match api.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    let name = created.name_any();
                    publish(ctx, ds, Some(("Pod", &name)), false, "SuccessfulCreate", &format!("Created pod: {name}"))
                        .await;
                    Ok(Some(created.name_any()))
                }
                Err(e) if namespace_terminating(&e) => Ok(None),
                Err(e) => {
                    publish(ctx, ds, Some(("Node", &node)), true, "FailedCreate", &format!("Error creating: {e}"))
                        .await;
                    Err(e)
                }
            }
        }
    })
    .await;
    let mut created = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for r in results {
        match r {
            Ok(Some(name)) => created.push(name),
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    let deletes: Vec<&Doomed> = delete.iter().take(BURST_REPLICAS).collect();
    let deleted = futures_util::future::join_all(deletes.iter().map(|d| {
        let api = api.clone();
        async move {
            match api.delete(&d.name, &DeleteParams::default()).await {
                Ok(_) => {
                    publish(
                        ctx,
                        ds,
                        Some(("Pod", &d.name)),
                        false,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {}", d.name),
                    )
                    .await;
                    Ok(Some((d.name.clone(), d.uid.clone())))
                }
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                Err(e) => {
                    publish(ctx, ds, Some(("Pod", &d.name)), true, "FailedDelete", &format!("Error deleting: {e}"))
                        .await;
                    Err(e)
                }
            }
        }
    }))
    .await;
    let mut gone = Vec::new();
    for r in deleted {
        match r {
            Ok(Some(d)) => gone.push(d),
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    ctx.expectations.expect(&expectations_key(ds), created, gone);
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(Error::Writes(errors.len(), first.clone())),
    }
}

/// A count as upstream writes it: fields it omits when zero are removed.
fn omit_zero(n: i32) -> Value {
    if n == 0 { Value::Null } else { json!(n) }
}

async fn write_status(ctx: &Ctx, ds: &DaemonSet, c: plan::Counts, observed: bool) -> Result<(), Error> {
    let generation = ds.metadata.generation.unwrap_or(0);
    let old = ds.status.clone().unwrap_or_default();
    // Without `observed`, this write does not claim the generation, so an older
    // observedGeneration is no reason to write.
    let unchanged = old.desired_number_scheduled == c.desired
        && old.current_number_scheduled == c.current
        && old.number_misscheduled == c.misscheduled
        && old.number_ready == c.ready
        && old.updated_number_scheduled.unwrap_or(0) == c.updated
        && old.number_available.unwrap_or(0) == c.available
        && old.number_unavailable.unwrap_or(0) == c.unavailable()
        && (!observed || old.observed_generation.unwrap_or(0) >= generation);
    if unchanged {
        return Ok(());
    }
    let mut status = json!({
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "updatedNumberScheduled": omit_zero(c.updated),
        "numberAvailable": omit_zero(c.available),
        "numberUnavailable": omit_zero(c.unavailable()),
    });
    if observed {
        status["observedGeneration"] = json!(generation);
    }
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    match api.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodSpec, Taint, Toleration};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn daemon_pods_carry_the_hash_and_the_daemon_tolerations() {
        let ds = DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                annotations: Some([(plan::TEMPLATE_GENERATION_ANNOTATION.to_string(), "2".to_string())].into()),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        tolerations: Some(vec![Toleration { key: Some("x".into()), ..Default::default() }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        };
        let t = pod_template(&ds, "abc");
        let labels = t.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app"], "agent");
        assert_eq!(labels[CONTROLLER_REVISION_HASH_LABEL], "abc");
        assert_eq!(labels[plan::TEMPLATE_GENERATION_LABEL], "2");
        let tolerations = t.spec.unwrap().tolerations.unwrap();
        assert_eq!(tolerations.len(), 7, "the user's toleration plus six daemon ones");
    }

    #[test]
    fn node_fingerprints_ignore_heartbeats() {
        let mut n = Node {
            metadata: ObjectMeta { name: Some("n".into()), ..Default::default() },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        };
        let before = node_fingerprint(&n);
        n.metadata.resource_version = Some("99".into());
        n.status.as_mut().unwrap().conditions = Some(vec![]);
        assert_eq!(node_fingerprint(&n), before);
        n.spec.as_mut().unwrap().taints =
            Some(vec![Taint { key: "k".into(), effect: "NoSchedule".into(), ..Default::default() }]);
        assert_ne!(node_fingerprint(&n), before);
        let tainted = node_fingerprint(&n);
        n.status.as_mut().unwrap().allocatable = Some([("cpu".to_string(), Quantity("4".into()))].into());
        assert_ne!(node_fingerprint(&n), tainted);
    }

    #[test]
    fn zero_counts_are_omitted() {
        assert_eq!(omit_zero(0), Value::Null);
        assert_eq!(omit_zero(3), json!(3));
    }
}
