//! The EndpointSlice controller (upstream's `pkg/controller/endpointslice`): for
//! every Service with a selector, EndpointSlices of at most [`MAX_ENDPOINTS`]
//! endpoints, one set per address family and per set of resolved ports, each endpoint
//! with its `ready` / `serving` / `terminating` conditions, node, zone and (for
//! headless Services) hostname. Slices carry the `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by` labels and are owned by the Service, so
//! the garbage collector removes them with it.
//!
//! [`plan`] is pure: from the Service, its pods and the slices that exist it decides
//! what to create, update and delete, changing as few slices as it can (endpoints
//! stay in their slice; new ones fill free room before a new slice is made). A
//! Service with no endpoints keeps one empty placeholder slice, as upstream's does.
//! Because new slices are named by the server (`generateName`), the controller
//! remembers its own writes and waits for its cache to show them before deciding
//! again, so that a slow cache never makes a slice twice.

use crate::endpoints::{
    self, Batcher, Feed, HEADLESS, Key, TRIGGER_TIME, TriggerTracker, find_port, is_headless, pod_ip, pod_ready,
    should_pod_be_in_endpoints, should_set_hostname,
};
use crate::gc::queue::WorkQueue;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_ENDPOINTS: usize = 100;
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// What one pass should write.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The address types a Service's slices have.
pub fn address_types(svc: &Service) -> Vec<&'static str> {
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.clone()).unwrap_or_default();
    let mut out: Vec<&'static str> =
        families.iter().map(|f| if f == "IPv6" { "IPv6" } else { "IPv4" }).collect::<Vec<_>>();
    out.dedup();
    if out.is_empty() {
        out.push(endpoints::service_family(svc));
    }
    out
}

fn family_of(address_type: &str) -> &'static str {
    if address_type == "IPv6" { "IPv6" } else { "IPv4" }
}

/// The endpoint of one pod (upstream's `podToEndpoint`).
pub fn endpoint_for(svc: &Service, pod: &Pod, ip: String, zone: Option<String>) -> Endpoint {
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let serving = pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            // Never ready while terminating, unless not-ready addresses are published.
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: should_set_hostname(pod, svc).then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone())).flatten(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        zone,
        ..Default::default()
    }
}

/// The ports of one pod's endpoint: the Service's ports it resolves, sorted.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let mut out: Vec<EndpointPort> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|sp| {
            find_port(pod, sp).map(|n| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.name.as_deref(), a.port).cmp(&(b.name.as_deref(), b.port)));
    out
}

fn ports_key(ports: &[EndpointPort]) -> String {
    let mut sorted: Vec<&EndpointPort> = ports.iter().collect();
    sorted.sort_by(|a, b| (a.name.as_deref(), a.port).cmp(&(b.name.as_deref(), b.port)));
    serde_json::to_string(&sorted).unwrap_or_default()
}

fn endpoint_key(ep: &Endpoint) -> String {
    match ep.target_ref.as_ref().and_then(|r| r.uid.clone()) {
        Some(uid) => uid,
        None => ep.addresses.join(","),
    }
}

/// The labels every slice of the Service carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.remove(HEADLESS);
    labels.insert(SERVICE_NAME.into(), svc.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    if is_headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Service names up to 58 characters prefix their slices' names, as upstream's do.
fn generate_name(svc: &Service) -> String {
    let name = svc.name_any();
    let cut: String = name.chars().take(58).collect();
    format!("{cut}-")
}

fn new_slice(svc: &Service, address_type: &str, ports: Vec<EndpointPort>, eps: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(svc)),
            namespace: svc.namespace(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![owner(svc)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: eps,
        ports: Some(ports),
    }
}

fn stamp(slice: &mut EndpointSlice, svc: &Service, trigger: Option<Timestamp>) {
    slice.metadata.labels = Some(slice_labels(svc));
    slice.metadata.owner_references = Some(vec![owner(svc)]);
    slice.metadata.managed_fields = None;
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), endpoints::rfc3339(t)),
        None => annotations.remove(TRIGGER_TIME),
    };
}

fn metadata_right(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.metadata.labels.as_ref() == Some(&slice_labels(svc))
        && slice.metadata.owner_references.as_deref() == Some(&[owner(svc)][..])
}

/// The endpoints sharing one set of resolved ports, with their keys.
type PortGroup = (Vec<EndpointPort>, Vec<(String, Endpoint)>);

/// A write a pass made: the slice's name and revision, or `None` once deleted.
pub(crate) type Written = (String, Option<i64>);

/// Decides the slices of one Service. `zone_of` names a node's zone.
pub fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    zone_of: &dyn Fn(&str) -> Option<String>,
    trigger: Option<Timestamp>,
) -> SlicePlan {
    let mut out = SlicePlan::default();
    let types = address_types(svc);
    for slice in existing {
        if !types.contains(&slice.address_type.as_str()) {
            out.delete.push((**slice).clone());
        }
    }
    for address_type in types {
        // ports key -> (ports, endpoints by key, in pod order)
        let mut desired: BTreeMap<String, PortGroup> = BTreeMap::new();
        for pod in pods {
            if !should_pod_be_in_endpoints(pod, true) {
                continue;
            }
            let Some(ip) = pod_ip(pod, family_of(address_type)) else { continue };
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let ep = endpoint_for(svc, pod, ip, zone_of(&node));
            let ports = endpoint_ports(svc, pod);
            let entry = desired.entry(ports_key(&ports)).or_insert_with(|| (ports, Vec::new()));
            entry.1.push((endpoint_key(&ep), ep));
        }
        let mut wanted: HashMap<String, HashMap<String, Endpoint>> = desired
            .iter()
            .map(|(pk, (_, eps))| (pk.clone(), eps.iter().map(|(k, e)| (k.clone(), e.clone())).collect()))
            .collect();
        let mut placed: HashSet<(String, String)> = HashSet::new();
        let mut updated: Vec<(String, EndpointSlice)> = Vec::new();
        let mut unchanged: Vec<(String, EndpointSlice)> = Vec::new();
        let mut deleted: Vec<EndpointSlice> = Vec::new();
        let ours: Vec<&Arc<EndpointSlice>> = existing.iter().filter(|s| s.address_type == address_type).collect();
        for slice in &ours {
            let pk = ports_key(slice.ports.as_deref().unwrap_or_default());
            let Some(want) = wanted.get_mut(&pk) else {
                deleted.push((***slice).clone());
                continue;
            };
            let mut changed = !metadata_right(slice, svc);
            let mut eps = Vec::new();
            for ep in &slice.endpoints {
                let k = endpoint_key(ep);
                match want.remove(&k) {
                    Some(d) => {
                        changed |= d != *ep;
                        placed.insert((pk.clone(), k));
                        eps.push(d);
                    }
                    None => changed = true,
                }
            }
            let mut s = (***slice).clone();
            s.endpoints = eps;
            if s.endpoints.is_empty() {
                deleted.push((***slice).clone());
            } else if changed {
                updated.push((pk, s));
            } else {
                unchanged.push((pk, s));
            }
        }
        let mut created: Vec<EndpointSlice> = Vec::new();
        for (pk, (ports, eps)) in &desired {
            let mut left: Vec<Endpoint> = eps
                .iter()
                .filter(|(k, _)| !placed.contains(&(pk.clone(), k.clone())))
                .map(|(_, e)| e.clone())
                .collect();
            // Fill slices being written anyway, then untouched ones, then make new ones.
            for (spk, s) in updated.iter_mut() {
                while spk == pk && s.endpoints.len() < MAX_ENDPOINTS && !left.is_empty() {
                    s.endpoints.push(left.remove(0));
                }
            }
            let mut i = 0;
            while i < unchanged.len() && !left.is_empty() {
                if unchanged[i].0 == *pk && unchanged[i].1.endpoints.len() < MAX_ENDPOINTS {
                    let (spk, mut s) = unchanged.remove(i);
                    while s.endpoints.len() < MAX_ENDPOINTS && !left.is_empty() {
                        s.endpoints.push(left.remove(0));
                    }
                    updated.push((spk, s));
                } else {
                    i += 1;
                }
            }
            for chunk in left.chunks(MAX_ENDPOINTS) {
                created.push(new_slice(svc, address_type, ports.clone(), chunk.to_vec()));
            }
        }
        // No endpoints at all: one empty placeholder slice stays (or is made).
        if updated.is_empty() && unchanged.is_empty() && created.is_empty() {
            let keep =
                deleted.iter().position(|s| s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty));
            match keep {
                Some(i) => {
                    let s = deleted.remove(i);
                    if !metadata_right(&s, svc) {
                        updated.push((String::new(), s));
                    }
                }
                None => created.push(new_slice(svc, address_type, Vec::new(), Vec::new())),
            }
        }
        for (_, mut s) in updated {
            stamp(&mut s, svc, trigger);
            out.update.push(s);
        }
        for mut s in created {
            stamp(&mut s, svc, trigger);
            out.create.push(s);
        }
        out.delete.extend(deleted);
    }
    out
}

// ---- the controller

/// The slices a pass wrote, which the cache must show before the next pass decides.
#[derive(Default)]
pub(crate) struct Expectations {
    by_service: Mutex<HashMap<Key, (Instant, Vec<Written>)>>,
}

/// How long to wait for the cache before deciding anyway.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn rv(slice: &EndpointSlice) -> i64 {
    slice.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Expectations {
    /// `(name, Some(rv))` for a written slice, `(name, None)` for a deleted one.
    pub(crate) fn set(&self, key: &str, written: Vec<Written>) {
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        if written.is_empty() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), (Instant::now(), written));
        }
    }

    pub(crate) fn met(&self, key: &str, cache: &Store<EndpointSlice>, ns: &str) -> bool {
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        let Some((since, written)) = m.get(key) else { return true };
        let ok = since.elapsed() > EXPECTATION_TIMEOUT
            || written.iter().all(|(name, want)| {
                let have = cache.get(&ObjectRef::new(name).within(ns));
                match want {
                    Some(want) => have.is_some_and(|s| rv(&s) >= *want),
                    None => have.is_none(),
                }
            });
        if ok {
            m.remove(key);
        }
        ok
    }
}

struct Ctx {
    client: Client,
    feed: Feed,
    slices: Store<EndpointSlice>,
    expectations: Expectations,
    triggers: TriggerTracker,
    batch: Batcher,
    config: endpoints::Config,
}

enum Outcome {
    Done,
    Later(Duration),
}

fn zone(nodes: &Store<Node>, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    nodes.get(&ObjectRef::new(name)).and_then(|n| n.labels().get(ZONE).cloned())
}

async fn sync(ctx: &Ctx, key: &str) -> Result<Outcome, kube::Error> {
    let Some((ns, name)) = key.split_once('/') else { return Ok(Outcome::Done) };
    let Some(svc) = ctx.feed.service(key) else {
        // The garbage collector removes the slices the Service owned.
        ctx.triggers.forget(key);
        return Ok(Outcome::Done);
    };
    if !endpoints::has_selector(&svc) {
        return Ok(Outcome::Done);
    }
    if !ctx.expectations.met(key, &ctx.slices, ns) {
        return Ok(Outcome::Later(Duration::from_millis(20)));
    }
    if let Some(wait) = ctx.batch.wait(key, ctx.config.batch_period) {
        return Ok(Outcome::Later(wait));
    }
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns) && s.labels().get(SERVICE_NAME).map(String::as_str) == Some(name)
        })
        .collect();
    let pods = ctx.feed.selected_pods(&svc);
    let trigger = ctx.triggers.compute(key, &svc, &pods);
    let nodes = ctx.feed.nodes.clone();
    let decided = plan(&svc, &pods, &existing, &|n| zone(&nodes, n), trigger);
    if decided.is_empty() {
        return Ok(Outcome::Done);
    }
    ctx.batch.wrote(key);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let (written, result) = write_plan(&api, &decided.create, &decided).await;
    ctx.expectations.set(key, written);
    result.map(|()| Outcome::Done)
}

/// Writes a plan: `create` (the plan's creates, or none), then its updates, then its
/// deletes (a slice already gone counts as deleted). Every write that went through is
/// returned for the expectations, also when a later one failed.
pub(crate) async fn write_plan(
    api: &Api<EndpointSlice>,
    create: &[EndpointSlice],
    plan: &SlicePlan,
) -> (Vec<Written>, Result<(), kube::Error>) {
    let mut written = Vec::new();
    let result = async {
        for s in create {
            let made = api.create(&PostParams::default(), s).await?;
            written.push((made.name_any(), Some(rv(&made))));
        }
        for s in &plan.update {
            let made = api.replace(&s.name_any(), &PostParams::default(), s).await?;
            written.push((made.name_any(), Some(rv(&made))));
        }
        for s in &plan.delete {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                other => {
                    other?;
                }
            }
            written.push((s.name_any(), None));
        }
        Ok::<(), kube::Error>(())
    }
    .await;
    (written, result)
}

async fn worker(ctx: Arc<Ctx>, queue: Arc<WorkQueue<Key>>) {
    loop {
        let key = queue.get().await;
        match sync(&ctx, &key).await {
            Ok(Outcome::Done) => queue.forget(&key),
            Ok(Outcome::Later(d)) => queue.add_after(key.clone(), d),
            Err(e) => {
                tracing::debug!(service = %key, error = %e, "syncing endpoint slices failed");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Runs the EndpointSlice controller on a shared [`Feed`].
pub async fn run(client: Client, feed: Feed, config: endpoints::Config) {
    let (slices, writer) = reflector::store();
    let queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let selector = format!("{MANAGED_BY}={CONTROLLER_NAME}");
    let events = watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default().labels(&selector))
        .default_backoff()
        .modify(|s| s.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects();
    let q = queue.clone();
    // A slice changed by someone else is put right; our own writes come back here too
    // and find nothing to do.
    tokio::spawn(events.for_each(move |e| {
        if let Ok(s) = e
            && let Some(svc) = s.labels().get(SERVICE_NAME)
        {
            q.add(format!("{}/{svc}", s.namespace().unwrap_or_default()));
        }
        async {}
    }));
    feed.wait_ready().await;
    informer::wait_until_ready(&slices).await;
    feed.subscribe(queue.clone());
    for svc in feed.services.state() {
        queue.add(format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any()));
    }
    let ctx = Arc::new(Ctx {
        client,
        feed,
        slices,
        expectations: Expectations::default(),
        triggers: TriggerTracker::default(),
        batch: Batcher::default(),
        config,
    });
    let workers: Vec<_> = (0..endpoints::WORKERS).map(|_| tokio::spawn(worker(ctx.clone(), queue.clone()))).collect();
    for w in workers {
        let _ = w.await;
    }
}

#[cfg(test)]
mod tests;
