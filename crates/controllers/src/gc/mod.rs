//! The garbage collector (upstream's `pkg/controller/garbagecollector`): deletes
//! objects whose owners are gone and carries out the `foregroundDeletion` and
//! `orphan` finalizers the API server puts on owners deleted with those policies.
//!
//! How it fits together:
//! - discovery finds every resource that can be listed, watched and deleted; one
//!   metadata-only watch per resource feeds a single channel ([`monitor`]);
//! - one task folds those changes into the dependency [`graph`] (by uid) and queues
//!   the uids that need a look;
//! - delete workers check each queued object against the API server and delete it,
//!   strip dead references, or finish a foreground deletion ([`decide`] holds the
//!   choices); orphan workers strip an owner's references from its dependents and
//!   then drop its `orphan` finalizer.
//!
//! The graph keeps identities, owner references and a few flags per object, never the
//! objects, so memory grows with the number of objects but not with their size.

pub mod decide;
pub mod graph;
pub mod queue;

use crate::events::{Event as KubeEvent, EventType};
use decide::{Decision, ForegroundStep, OwnerState};
use futures_util::StreamExt;
use graph::{Change, Effect, FOREGROUND, Graph, Identity, ORPHAN, Observed};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use queue::WorkQueue;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The name upstream's events carry.
pub const CONTROLLER: &str = "garbage-collector-controller";

/// Resources never watched: events are many, short-lived and never own anything.
const IGNORED: [(&str, &str); 2] = [("", "events"), ("events.k8s.io", "events")];
/// Upstream runs 20 workers (`--concurrent-gc-syncs`); these are I/O-bound tasks.
const DELETE_WORKERS: usize = 10;
const ORPHAN_WORKERS: usize = 3;
/// Dependents patched at once while orphaning, so a large owner does not open
/// thousands of requests together.
const ORPHAN_CONCURRENCY: usize = 16;
/// How often discovery is re-run to pick up new resources (upstream: 30 s).
const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);
/// How long workers wait for every watch's first list before starting anyway.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Owners known to be absent, remembered to spare lookups (upstream keeps 500).
const ABSENT_OWNERS: usize = 500;
/// Attempts to drop a finalizer when the object keeps changing under us.
const FINALIZER_TRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unable to get REST mapping for {api_version}/{kind}")]
    RestMapping { api_version: String, kind: String },
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScoped,
    #[error("{identity}: {source}")]
    Api {
        identity: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot remove finalizer {finalizer} from {identity}: it kept changing after {FINALIZER_TRIES} tries")]
    FinalizerConflict { identity: String, finalizer: String },
    #[error("orphaning the dependents of {owner} failed: {first} ({failed} failed)")]
    Orphan { owner: String, failed: usize, first: String },
}

fn api_error(identity: &Identity, source: kube::Error) -> Error {
    Error::Api { identity: identity.to_string(), source }
}

fn status_code(e: &Error) -> Option<u16> {
    match e {
        Error::Api { source: kube::Error::Api(s), .. } => Some(s.code),
        _ => None,
    }
}

/// Maps an ownerReference's apiVersion and kind to the resource serving it, over
/// every served version (not only the preferred one), as upstream's REST mapper does.
#[derive(Default)]
struct Mapper {
    kinds: HashMap<(String, String), (ApiResource, bool)>,
}

impl Mapper {
    fn from_discovery(d: &Discovery) -> Mapper {
        let mut kinds = HashMap::new();
        for group in d.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let namespaced = caps.scope == Scope::Namespaced;
                    kinds.entry((ar.api_version.clone(), ar.kind.clone())).or_insert((ar, namespaced));
                }
            }
        }
        Mapper { kinds }
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Result<(ApiResource, bool), Error> {
        self.kinds
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
            .ok_or_else(|| Error::RestMapping { api_version: api_version.to_string(), kind: kind.to_string() })
    }
}

/// A bounded set of identities known not to exist; the oldest entry goes first.
#[derive(Default)]
struct AbsentOwners {
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
}

impl AbsentOwners {
    fn add(&mut self, id: Identity) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > ABSENT_OWNERS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: &Identity) -> bool {
        self.set.contains(id)
    }
}

/// What the graph task receives.
enum Msg {
    Change(Change),
    /// A watch finished a complete list.
    Synced(String),
}

/// A watch task that ends when its handle is dropped (the resource is no longer
/// served, or the collector stops).
struct Monitor(tokio::task::JoinHandle<()>);

impl Drop for Monitor {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a worker needs of one node, copied out so no lock is held across I/O.
struct Item {
    identity: Identity,
    virtual_: bool,
    being_deleted: bool,
    deleting_dependents: bool,
    has_dependents: bool,
    a_dependent_waits: bool,
    blocking: Vec<(String, bool)>,
    dependents: Vec<Identity>,
}

enum Outcome {
    Forget,
    Requeue,
}

enum Step {
    Done,
    /// The object is gone; the graph was told and will queue what follows.
    Gone,
}

struct Gc {
    client: Client,
    recorder: crate::Recorder,
    graph: Mutex<Graph>,
    mapper: RwLock<Mapper>,
    absent: Mutex<AbsentOwners>,
    to_delete: WorkQueue<String>,
    to_orphan: WorkQueue<String>,
    changes: mpsc::UnboundedSender<Msg>,
    /// Watches whose first list the graph has not absorbed yet; `None` before discovery.
    pending: Mutex<Option<HashSet<String>>>,
    synced: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the data whole, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The observed form of an object's metadata, with the identity its watch gives it.
pub fn observed(ar: &ApiResource, meta: &ObjectMeta) -> Option<Observed> {
    let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    Some(Observed {
        identity: Identity {
            kind: ar.kind.clone(),
            api_version: ar.api_version.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid,
        },
        owners: meta.owner_references.clone().unwrap_or_default(),
        being_deleted: meta.deletion_timestamp.is_some(),
        orphan_finalizer: finalizers.iter().any(|f| f == ORPHAN),
        foreground_finalizer: finalizers.iter().any(|f| f == FOREGROUND),
    })
}

/// The resources to watch: every preferred resource that supports list, watch and
/// delete, except the ignored ones; keyed `apiVersion/plural`.
fn deletable(d: &Discovery) -> BTreeMap<String, ApiResource> {
    let mut out = BTreeMap::new();
    for group in d.groups() {
        for (ar, caps) in group.recommended_resources() {
            let ops = [verbs::LIST, verbs::WATCH, verbs::DELETE];
            if !ops.iter().all(|op| caps.supports_operation(op)) {
                continue;
            }
            if IGNORED.contains(&(ar.group.as_str(), ar.plural.as_str())) {
                continue;
            }
            out.insert(format!("{}/{}", ar.api_version, ar.plural), ar);
        }
    }
    out
}

async fn discover(client: &Client) -> Result<Discovery, kube::Error> {
    match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => Ok(d),
        Err(_) => Discovery::new(client.clone()).run().await,
    }
}

/// Lists and watches one resource's metadata and forwards every change to the graph.
async fn monitor(client: Client, key: String, ar: ApiResource, changes: mpsc::UnboundedSender<Msg>) {
    // Asks for PartialObjectMetadata; a server that sends whole objects is fine too,
    // as only the metadata is decoded and kept.
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut seen = HashSet::new();
    while let Some(event) = stream.next().await {
        let msg = match event {
            Ok(watcher::Event::Init) => {
                seen.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(m)) => {
                let Some(o) = observed(&ar, &m.metadata) else { continue };
                seen.insert(o.identity.uid.clone());
                Msg::Change(Change::Upsert(o))
            }
            Ok(watcher::Event::InitDone) => {
                let relisted = Change::Relisted {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    seen: std::mem::take(&mut seen),
                };
                if changes.send(Msg::Change(relisted)).is_err() {
                    return;
                }
                Msg::Synced(key.clone())
            }
            Ok(watcher::Event::Apply(m)) => match observed(&ar, &m.metadata) {
                Some(o) => Msg::Change(Change::Upsert(o)),
                None => continue,
            },
            Ok(watcher::Event::Delete(m)) => match observed(&ar, &m.metadata) {
                Some(o) => Msg::Change(Change::Delete(o)),
                None => continue,
            },
            Err(e) => {
                tracing::debug!(resource = %key, error = %e, "garbage collector watch failed; retrying");
                continue;
            }
        };
        if changes.send(msg).is_err() {
            return;
        }
    }
}

impl Gc {
    /// Copies out what a worker needs of a node. Dependents' identities are copied only
    /// for orphaning and blocking dependents only for a foreground deletion, as an
    /// owner of thousands may be looked at once per dependent that goes.
    fn snapshot(&self, uid: &str, for_orphaning: bool) -> Option<Item> {
        let graph = lock(&self.graph);
        let node = graph.node(uid)?;
        let dependents = || node.dependents.iter().filter_map(|d| graph.node(d));
        Some(Item {
            identity: node.identity.clone(),
            virtual_: node.virtual_,
            being_deleted: node.being_deleted,
            deleting_dependents: node.deleting_dependents,
            has_dependents: !node.dependents.is_empty(),
            a_dependent_waits: dependents().any(|d| d.deleting_dependents),
            blocking: if node.deleting_dependents {
                graph.blocking_dependents(uid).iter().map(|d| (d.identity.uid.clone(), d.deleting_dependents)).collect()
            } else {
                Vec::new()
            },
            dependents: if for_orphaning { dependents().map(|d| d.identity.clone()).collect() } else { Vec::new() },
        })
    }

    fn api(&self, id: &Identity) -> Result<Api<DynamicObject>, Error> {
        let (ar, namespaced) =
            self.mapper.read().unwrap_or_else(|p| p.into_inner()).resolve(&id.api_version, &id.kind)?;
        if !namespaced {
            return Ok(Api::all_with(self.client.clone(), &ar));
        }
        if id.namespace.is_empty() {
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        Ok(Api::namespaced_with(self.client.clone(), &id.namespace, &ar))
    }

    async fn get(&self, id: &Identity) -> Result<Option<PartialObjectMeta<DynamicObject>>, Error> {
        self.api(id)?.get_metadata_opt(&id.name).await.map_err(|e| api_error(id, e))
    }

    fn gone(&self, id: &Identity) -> Step {
        let _ = self.changes.send(Msg::Change(Change::VirtualDelete(id.clone())));
        Step::Gone
    }

    /// Applies one graph effect.
    fn effect(&self, e: Effect) {
        match e {
            Effect::AttemptToDelete(uid) => self.to_delete.add(uid),
            Effect::AttemptToDeleteLater(uid) => self.to_delete.add_rate_limited(uid),
            Effect::AttemptToOrphan(uid) => self.to_orphan.add(uid),
            Effect::AbsentOwner(id) => lock(&self.absent).add(id),
            Effect::InvalidOwnerNamespace { dependent, owner } => {
                tracing::info!(item = %dependent, owner = %owner, "item references an owner but does not match namespaces");
                let recorder = self.recorder.clone();
                let note = format!("ownerRef {owner} does not exist in namespace {:?}", dependent.namespace);
                let reference = ObjectReference {
                    api_version: Some(dependent.api_version),
                    kind: Some(dependent.kind),
                    namespace: Some(dependent.namespace).filter(|n| !n.is_empty()),
                    name: Some(dependent.name),
                    uid: Some(dependent.uid),
                    ..Default::default()
                };
                // The graph task does not wait for the recorder.
                tokio::spawn(async move {
                    let event = KubeEvent {
                        type_: EventType::Warning,
                        reason: "OwnerRefInvalidNamespace".into(),
                        note: Some(note),
                        action: "GarbageCollect".into(),
                        secondary: None,
                    };
                    if let Err(e) = recorder.publish(&event, &reference).await {
                        tracing::debug!(error = %e, "cannot record event");
                    }
                });
            }
        }
    }

    /// What became of the owner `r` names, for an object at `item`.
    async fn owner_state(&self, r: &OwnerReference, item: &Identity) -> Result<OwnerState, Error> {
        let mut key = Identity::of_owner(r, "");
        if lock(&self.absent).contains(&key) {
            return Ok(OwnerState::Absent);
        }
        key.namespace = item.namespace.clone();
        if lock(&self.absent).contains(&key) {
            return Ok(OwnerState::Absent);
        }
        let (_, namespaced) = self.mapper.read().unwrap_or_else(|p| p.into_inner()).resolve(&r.api_version, &r.kind)?;
        if !namespaced {
            key.namespace.clear();
        } else if item.namespace.is_empty() {
            tracing::info!(item = %item, owner = %key, "item is cluster-scoped, but refers to a namespaced owner");
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        match self.get(&key).await? {
            Some(owner) if owner.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let deleting = owner.metadata.deletion_timestamp.is_some();
                let foreground = owner.metadata.finalizers.iter().flatten().any(|f| f == FOREGROUND);
                Ok(OwnerState::Present { waiting: deleting && foreground })
            }
            // Missing, or recreated under the same name: not this object's owner.
            _ => {
                lock(&self.absent).add(key);
                Ok(OwnerState::Absent)
            }
        }
    }

    /// Patches with a strategic merge patch, or for kinds without one (415), with the
    /// JSON merge patch `merge` builds from the latest resourceVersion and references.
    async fn patch(
        &self,
        id: &Identity,
        strategic: serde_json::Value,
        merge: impl FnOnce(&str, &[OwnerReference]) -> serde_json::Value,
    ) -> Result<(), Error> {
        let api = self.api(id)?;
        let pp = PatchParams::default();
        match api.patch_metadata(&id.name, &pp, &Patch::Strategic(strategic)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 415 => {
                let Some(latest) = self.get(id).await? else {
                    return Ok(());
                };
                let rv = latest.metadata.resource_version.unwrap_or_default();
                let body = merge(&rv, latest.metadata.owner_references.as_deref().unwrap_or_default());
                api.patch_metadata(&id.name, &pp, &Patch::Merge(body)).await.map(|_| ()).map_err(|e| api_error(id, e))
            }
            Err(e) => Err(api_error(id, e)),
        }
    }

    /// Deletes with uid and resourceVersion preconditions; returns false if already gone.
    async fn delete(
        &self,
        id: &Identity,
        resource_version: Option<String>,
        owners: &[OwnerReference],
        policy: decide::Policy,
    ) -> Result<bool, Error> {
        let api = self.api(id)?;
        let params = |rv: Option<String>| DeleteParams {
            propagation_policy: Some(policy.as_kube()),
            preconditions: Some(Preconditions { uid: Some(id.uid.clone()), resource_version: rv }),
            ..DeleteParams::default()
        };
        tracing::debug!(item = %id, ?policy, "deleting garbage");
        match api.delete(&id.name, &params(resource_version.clone())).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 && resource_version.is_some() => {
                // Changed since we looked: if only the resourceVersion moved and the
                // owners are as judged, the judgement stands.
                match self.get(id).await? {
                    None => Ok(false),
                    Some(live)
                        if live.metadata.uid.as_deref() == Some(id.uid.as_str())
                            && live.metadata.resource_version != resource_version
                            && live.metadata.owner_references.as_deref().unwrap_or_default() == owners =>
                    {
                        match api.delete(&id.name, &params(None)).await {
                            Ok(_) => Ok(true),
                            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                            Err(e) => Err(api_error(id, e)),
                        }
                    }
                    Some(_) => Err(api_error(id, kube::Error::Api(s))),
                }
            }
            Err(e) => Err(api_error(id, e)),
        }
    }

    /// Drops `finalizer` from the object, retrying while it changes under us.
    async fn remove_finalizer(&self, id: &Identity, finalizer: &str) -> Result<(), Error> {
        let api = self.api(id)?;
        for _ in 0..FINALIZER_TRIES {
            let Some(latest) = self.get(id).await? else { return Ok(()) };
            if latest.metadata.uid.as_deref() != Some(id.uid.as_str()) {
                return Ok(());
            }
            let rv = latest.metadata.resource_version.unwrap_or_default();
            let finalizers = latest.metadata.finalizers.unwrap_or_default();
            let Some(body) = decide::remove_finalizer(&rv, &finalizers, finalizer) else {
                return Ok(());
            };
            match api.patch_metadata(&id.name, &PatchParams::default(), &Patch::Merge(body)).await {
                Ok(_) => {
                    tracing::debug!(item = %id, finalizer, "finalizer removed");
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(api_error(id, e)),
            }
        }
        Err(Error::FinalizerConflict { identity: id.to_string(), finalizer: finalizer.to_string() })
    }

    async fn attempt_to_delete(&self, uid: &str) -> Outcome {
        let Some(item) = self.snapshot(uid, false) else { return Outcome::Forget };
        match self.attempt_to_delete_item(&item).await {
            Ok(Step::Gone) => Outcome::Forget,
            // A virtual node is looked at again until a watch sees the object or the
            // API server says it is gone, so none is left behind in the graph.
            Ok(Step::Done) if item.virtual_ => Outcome::Requeue,
            Ok(Step::Done) => Outcome::Forget,
            Err(Error::NamespacedOwnerOfClusterScoped) => Outcome::Forget,
            Err(e @ Error::RestMapping { .. }) => {
                // An owner kind not served (yet): maybe a later discovery finds it.
                tracing::warn!(item = %item.identity, error = %e, "garbage collector cannot resolve an owner");
                Outcome::Requeue
            }
            Err(e) => {
                tracing::warn!(item = %item.identity, error = %e, "garbage collection failed; retrying");
                Outcome::Requeue
            }
        }
    }

    async fn attempt_to_delete_item(&self, item: &Item) -> Result<Step, Error> {
        // Being deleted is a one-way trip: wait for it to finish, then handle the
        // dependents (unless the deletion waits on them in the foreground).
        if item.being_deleted && !item.deleting_dependents {
            return Ok(Step::Done);
        }
        let latest = match self.get(&item.identity).await? {
            Some(l) if l.metadata.uid.as_deref() == Some(item.identity.uid.as_str()) => l,
            _ => return Ok(self.gone(&item.identity)),
        };
        if item.deleting_dependents {
            match decide::foreground_step(&item.blocking) {
                ForegroundStep::RemoveFinalizer => self.remove_finalizer(&item.identity, FOREGROUND).await?,
                ForegroundStep::CheckDependents(uids) => uids.into_iter().for_each(|u| self.to_delete.add(u)),
            }
            return Ok(Step::Done);
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(Step::Done);
        }
        let mut states = Vec::with_capacity(owners.len());
        for r in &owners {
            states.push(self.owner_state(r, &item.identity).await?);
        }
        let classified = decide::classify(&owners, &states);
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        let rv = latest.metadata.resource_version.clone();
        match decide::decide(&classified, &finalizers, item.has_dependents, item.a_dependent_waits) {
            Decision::Keep => Ok(Step::Done),
            Decision::RemoveOwnerRefs(uids) => {
                tracing::debug!(item = %item.identity, ?uids, "removing references to owners that are gone or waiting");
                let strategic = decide::delete_owner_refs_strategic(&item.identity.uid, &uids);
                self.patch(&item.identity, strategic, |rv, refs| decide::delete_owner_refs_merge(rv, refs, &uids))
                    .await?;
                Ok(Step::Done)
            }
            Decision::Delete { policy, unblock_first } => {
                if unblock_first {
                    let strategic = decide::unblock_strategic(&item.identity.uid, &owners);
                    self.patch(&item.identity, strategic, decide::unblock_merge).await?;
                }
                if self.delete(&item.identity, rv, &owners, policy).await? {
                    Ok(Step::Done)
                } else {
                    Ok(self.gone(&item.identity))
                }
            }
        }
    }

    /// Removes the references to `owner_uid` from `dep`; a dependent already gone is fine.
    async fn drop_reference(&self, dep: &Identity, owner_uid: &[String]) -> Result<(), Error> {
        let strategic = decide::delete_owner_refs_strategic(&dep.uid, owner_uid);
        match self.patch(dep, strategic, |rv, refs| decide::delete_owner_refs_merge(rv, refs, owner_uid)).await {
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            other => other,
        }
    }

    /// Strips the owner's references from its dependents, then drops `orphan`.
    async fn attempt_to_orphan(&self, uid: &str) -> Outcome {
        let Some(item) = self.snapshot(uid, true) else { return Outcome::Forget };
        let owner_uid = [item.identity.uid.clone()];
        let mut results = Vec::with_capacity(item.dependents.len());
        for batch in item.dependents.chunks(ORPHAN_CONCURRENCY) {
            let patches = batch.iter().map(|dep| self.drop_reference(dep, &owner_uid));
            results.extend(futures_util::future::join_all(patches).await);
        }
        let failed: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
        if let Some(first) = failed.first() {
            let e = Error::Orphan { owner: item.identity.to_string(), failed: failed.len(), first: first.to_string() };
            tracing::warn!(error = %e, "orphaning failed; retrying");
            return Outcome::Requeue;
        }
        match self.remove_finalizer(&item.identity, ORPHAN).await {
            Ok(()) => Outcome::Forget,
            Err(e) => {
                tracing::warn!(error = %e, "orphan finalizer removal failed; retrying");
                Outcome::Requeue
            }
        }
    }
}

/// Folds watch changes into the graph, one at a time, and hands out the work.
async fn build(gc: Arc<Gc>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Change(change) => {
                let effects = lock(&gc.graph).apply(change);
                for e in effects {
                    gc.effect(e);
                }
            }
            Msg::Synced(key) => {
                let mut pending = lock(&gc.pending);
                if let Some(p) = pending.as_mut()
                    && p.remove(&key)
                    && p.is_empty()
                {
                    tracing::info!(
                        objects = lock(&gc.graph).len(),
                        "garbage collector: all resource monitors have synced"
                    );
                    gc.synced.send_replace(true);
                }
            }
        }
    }
}

/// Runs discovery now and every [`DISCOVERY_PERIOD`], watching what appears and
/// dropping the watches of what is no longer served.
async fn sync_monitors(gc: Arc<Gc>) {
    let mut monitors: HashMap<String, Monitor> = HashMap::new();
    let mut first = true;
    loop {
        match discover(&gc.client).await {
            Ok(d) => {
                *gc.mapper.write().unwrap_or_else(|p| p.into_inner()) = Mapper::from_discovery(&d);
                let wanted = deletable(&d);
                if first {
                    *lock(&gc.pending) = Some(wanted.keys().cloned().collect());
                    if wanted.is_empty() {
                        gc.synced.send_replace(true);
                    }
                    first = false;
                }
                monitors.retain(|k, _| wanted.contains_key(k));
                for (key, ar) in wanted {
                    if monitors.contains_key(&key) {
                        continue;
                    }
                    tracing::debug!(resource = %key, "garbage collector watching");
                    let task = tokio::spawn(monitor(gc.client.clone(), key.clone(), ar, gc.changes.clone()));
                    monitors.insert(key, Monitor(task));
                }
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed"),
        }
        let wait = if first { Duration::from_secs(1) } else { DISCOVERY_PERIOD };
        tokio::time::sleep(wait).await;
    }
}

async fn delete_worker(gc: Arc<Gc>) {
    loop {
        let uid = gc.to_delete.get().await;
        match gc.attempt_to_delete(&uid).await {
            Outcome::Forget => gc.to_delete.forget(&uid),
            Outcome::Requeue => gc.to_delete.add_rate_limited(uid.clone()),
        }
        gc.to_delete.done(&uid);
    }
}

async fn orphan_worker(gc: Arc<Gc>) {
    loop {
        let uid = gc.to_orphan.get().await;
        match gc.attempt_to_orphan(&uid).await {
            Outcome::Forget => gc.to_orphan.forget(&uid),
            Outcome::Requeue => gc.to_orphan.add_rate_limited(uid.clone()),
        }
        gc.to_orphan.done(&uid);
    }
}

async fn workers(gc: Arc<Gc>) {
    let mut synced = gc.synced.subscribe();
    if tokio::time::timeout(INITIAL_SYNC_TIMEOUT, synced.wait_for(|s| *s)).await.is_err() {
        tracing::info!("garbage collector: not all resource monitors could be synced, proceeding anyways");
    }
    let deleters = (0..DELETE_WORKERS).map(|_| delete_worker(gc.clone()));
    let orphaners = (0..ORPHAN_WORKERS).map(|_| orphan_worker(gc.clone()));
    tokio::join!(futures_util::future::join_all(deleters), futures_util::future::join_all(orphaners));
}

/// Runs the garbage collector until the future is dropped.
pub async fn run(client: Client) {
    let (tx, rx) = mpsc::unbounded_channel();
    let gc = Arc::new(Gc {
        recorder: crate::recorder(&client, CONTROLLER),
        client,
        graph: Mutex::new(Graph::default()),
        mapper: RwLock::new(Mapper::default()),
        absent: Mutex::new(AbsentOwners::default()),
        to_delete: WorkQueue::default(),
        to_orphan: WorkQueue::default(),
        changes: tx,
        pending: Mutex::new(None),
        synced: watch::Sender::new(false),
    });
    tokio::join!(build(gc.clone(), rx), sync_monitors(gc.clone()), workers(gc));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn metadata_becomes_an_observation_with_the_watchs_kind() {
        let ar = ApiResource::erase::<k8s_openapi::api::apps::v1::ReplicaSet>(&());
        let meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            finalizers: Some(vec!["foregroundDeletion".into()]),
            deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            ..Default::default()
        };
        let o = observed(&ar, &meta).unwrap();
        assert_eq!(o.identity.api_version, "apps/v1");
        assert_eq!(o.identity.kind, "ReplicaSet");
        assert!(o.being_deleted && o.foreground_finalizer && !o.orphan_finalizer);
        assert!(observed(&ar, &ObjectMeta::default()).is_none(), "no uid, nothing to track");
    }

    #[test]
    fn absent_owners_are_bounded_oldest_first() {
        let mut a = AbsentOwners::default();
        let id = |n: usize| Identity { uid: n.to_string(), ..Default::default() };
        for n in 0..=ABSENT_OWNERS {
            a.add(id(n));
        }
        a.add(id(3));
        assert!(!a.contains(&id(0)), "oldest evicted");
        assert!(a.contains(&id(1)) && a.contains(&id(ABSENT_OWNERS)));
        assert_eq!(a.order.len(), ABSENT_OWNERS);
    }

    #[test]
    fn unknown_kinds_do_not_resolve() {
        let m = Mapper::default();
        let err = m.resolve("example.com/v1", "Widget").unwrap_err();
        assert_eq!(err.to_string(), "unable to get REST mapping for example.com/v1/Widget");
    }
}
