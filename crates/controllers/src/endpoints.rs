//! The Endpoints controller (upstream's `pkg/controller/endpoint`): keeps, for every
//! Service with a selector, an Endpoints object of the same name listing the matching
//! pods' addresses, ready ones under `addresses` and the rest under
//! `notReadyAddresses`, with each Service port's target resolved per pod (a named
//! `targetPort` may differ from pod to pod). Services without a selector are left to
//! whoever writes their endpoints by hand; ExternalName Services get none.
//!
//! [`Feed`] is shared with the EndpointSlice controller: one watch of pods, Services
//! and nodes that queues the Services a change concerns (by the pod's old and new
//! labels). The decision, [`desired_subsets`], is pure; [`run`] does the I/O. A
//! Service's key is never reconciled twice at once, and changes arriving while it is
//! reconciled are folded into one more pass; after a write, the next one waits for
//! the batch period, so a churn of pods costs a few writes, not one per pod.

use crate::Informers;
use crate::endpointslicemirroring::SKIP_MIRROR;
use crate::gc::queue::WorkQueue;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upstream's cap on the addresses of one Endpoints object.
pub const MAX_CAPACITY: usize = 1000;
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// How many Services are reconciled at once (upstream's `--concurrent-endpoint-syncs`).
pub const WORKERS: usize = 5;

#[derive(Debug, Clone)]
pub struct Config {
    /// The least time between two writes for one Service (upstream's
    /// `--endpoint-updates-batch-period`): changes in between are folded into one.
    pub batch_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { batch_period: Duration::from_millis(100) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the endpoint slice cache is behind our own writes")]
    StaleCache,
}

// ---- the pure part

/// Ready as the kubelet reports it.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Upstream's `ShouldPodBeInEndpoints`: not finished, has an address, and (unless
/// terminating pods are wanted) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if terminal(pod) {
        return false;
    }
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()) || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether the Service asks for endpoints from this controller at all.
pub fn has_selector(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() != Some("ExternalName") && spec.selector.is_some()
}

/// Whether the pod's hostname is published: a headless Service named as the pod's subdomain.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    let hostname = spec.hostname.as_deref().unwrap_or("");
    !hostname.is_empty()
        && spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace()
        && is_headless(svc)
}

/// Upstream's `FindPort`: a number as is, a name looked up among the pod's container
/// ports of the same protocol (restartable init containers count too).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers.iter().chain(sidecars).flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                (p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                    .then_some(p.container_port)
            })
        }
    }
}

/// The service's IP family: the first of `ipFamilies`, else its cluster IP's.
pub fn service_family(svc: &Service) -> &'static str {
    let spec = svc.spec.as_ref();
    if let Some(f) = spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()) {
        return if f == "IPv6" { "IPv6" } else { "IPv4" };
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()) {
        Some(ip) if ip.contains(':') => "IPv6",
        _ => "IPv4",
    }
}

/// The pod's address of a family, if it has one.
pub fn pod_ip(pod: &Pod, family: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let v6 = family == "IPv6";
    let ips = status.pod_ips.iter().flatten().map(|p| p.ip.clone());
    status.pod_ip.clone().into_iter().chain(ips).find(|ip| !ip.is_empty() && ip.contains(':') == v6)
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// When the pod last changed in a way endpoints care about: its readiness
/// transition, else its creation (upstream's `getPodTriggerTime`).
pub fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    ready.or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// One resolved port: name, number, protocol, application protocol.
type PortKey = (String, i32, String, Option<String>);

/// The subsets of a Service's Endpoints, packed as upstream's `RepackSubsets` packs
/// them (addresses grouped by identical port sets, everything sorted), and whether
/// they were cut to [`MAX_CAPACITY`].
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let family = service_family(svc);
    // Port set (sorted) -> (ready, not ready) addresses.
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    let service_ports = spec.ports.clone().unwrap_or_default();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod, family) else { continue };
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            hostname: should_set_hostname(pod, svc)
                .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
                .flatten(),
            target_ref: Some(target_ref(pod)),
        };
        let mut ports: Vec<PortKey> = Vec::new();
        if service_ports.is_empty() && !is_headless(svc) {
            continue;
        }
        for sp in &service_ports {
            if let Some(n) = find_port(pod, sp) {
                let protocol = sp.protocol.clone().unwrap_or("TCP".into());
                ports.push((sp.name.clone().unwrap_or_default(), n, protocol, sp.app_protocol.clone()));
            }
        }
        if ports.is_empty() && !service_ports.is_empty() {
            continue;
        }
        ports.sort();
        let entry = groups.entry(ports).or_default();
        if publish || pod_ready(pod) { entry.0.push(address) } else { entry.1.push(address) }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        (a.ip.as_str(), a.target_ref.as_ref().and_then(|r| r.uid.as_deref()))
            .cmp(&(b.ip.as_str(), b.target_ref.as_ref().and_then(|r| r.uid.as_deref())))
    };
    let total: usize = groups.values().map(|(r, n)| r.len() + n.len()).sum();
    let truncated = total > MAX_CAPACITY;
    let mut subsets = Vec::new();
    let mut budget = MAX_CAPACITY;
    for (ports, (mut ready, mut not_ready)) in groups {
        ready.sort_by(by_ip);
        not_ready.sort_by(by_ip);
        if truncated {
            // Keep each subset's share of the cap, ready addresses first.
            let share = ((ready.len() + not_ready.len()) * MAX_CAPACITY).div_ceil(total).min(budget);
            ready.truncate(share);
            not_ready.truncate(share - ready.len());
            budget -= ready.len() + not_ready.len();
        }
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        let ports: Vec<EndpointPort> = ports
            .into_iter()
            .map(|(name, port, protocol, app_protocol)| EndpointPort {
                name: (!name.is_empty()).then_some(name),
                port,
                protocol: Some(protocol),
                app_protocol,
            })
            .collect();
        subsets.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        });
    }
    (subsets, truncated)
}

/// The Endpoints object the Service should have, from the current one (whose
/// annotations are kept), or `None` when the current one is already right.
pub fn desired_endpoints(
    svc: &Service,
    current: Option<&Endpoints>,
    subsets: Vec<EndpointSubset>,
    truncated: bool,
    trigger: Option<Timestamp>,
) -> Option<Endpoints> {
    let mut labels = svc.labels().clone();
    labels.remove(HEADLESS);
    labels.remove(SKIP_MIRROR);
    if let Some(cur) = current {
        let mut cur_labels = cur.labels().clone();
        cur_labels.remove(HEADLESS);
        cur_labels.remove(SKIP_MIRROR);
        let capacity_right = cur.annotations().contains_key(OVER_CAPACITY) == truncated;
        let headless_right = cur.labels().contains_key(HEADLESS) == is_headless(svc);
        let mirror_right = cur.labels().get(SKIP_MIRROR).is_some_and(|v| v == "true");
        if cur.subsets.clone().unwrap_or_default() == subsets
            && cur_labels == labels
            && capacity_right
            && headless_right
            && mirror_right
        {
            return None;
        }
    }
    let mut ep = current.cloned().unwrap_or_default();
    ep.metadata.name = Some(svc.name_any());
    ep.metadata.namespace = svc.namespace();
    ep.metadata.managed_fields = None;
    if is_headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    // As upstream's controller does: Endpoints it writes have slices of their own from
    // the EndpointSlice controller, so the mirroring controller must leave them alone
    // (also after the Service loses its selector).
    labels.insert(SKIP_MIRROR.into(), "true".into());
    ep.metadata.labels = Some(labels);
    let annotations = ep.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), rfc3339(t)),
        None => annotations.remove(TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    ep.subsets = (!subsets.is_empty()).then_some(subsets);
    Some(ep)
}

/// RFC 3339 with second precision, as Go's `time.RFC3339Nano` prints a whole second.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

// ---- the shared watch

/// `namespace/name`.
pub type Key = String;

fn key_of(ns: &str, name: &str) -> Key {
    format!("{ns}/{name}")
}

/// Pods, Services and nodes as both endpoint controllers see them, and the queues
/// of the controllers that want to hear which Services changed.
#[derive(Clone)]
pub struct Feed {
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub nodes: Store<Node>,
    queues: Arc<Mutex<Vec<Arc<WorkQueue<Key>>>>>,
    /// Pods by namespace, for selecting without scanning every pod.
    index: Arc<Mutex<PodIndex>>,
}

/// Pod keys by namespace and by `(namespace, label, value)`: a selector reads the
/// smallest set of its labels instead of every pod.
#[derive(Default)]
pub struct PodIndex {
    by_namespace: HashMap<String, HashSet<Key>>,
    by_label: HashMap<(String, String, String), HashSet<Key>>,
}

impl PodIndex {
    pub fn set(
        &mut self,
        ns: &str,
        key: &Key,
        old: Option<&BTreeMap<String, String>>,
        new: Option<&BTreeMap<String, String>>,
    ) {
        for (k, v) in old.into_iter().flatten() {
            let entry = (ns.to_string(), k.clone(), v.clone());
            if let Some(set) = self.by_label.get_mut(&entry) {
                set.remove(key);
                if set.is_empty() {
                    self.by_label.remove(&entry);
                }
            }
        }
        match new {
            Some(labels) => {
                self.by_namespace.entry(ns.to_string()).or_default().insert(key.clone());
                for (k, v) in labels {
                    self.by_label.entry((ns.to_string(), k.clone(), v.clone())).or_default().insert(key.clone());
                }
            }
            None => {
                if let Some(set) = self.by_namespace.get_mut(ns) {
                    set.remove(key);
                }
            }
        }
    }

    /// The keys of pods that may match `selector` (every one that does).
    pub fn candidates(&self, ns: &str, selector: &BTreeMap<String, String>) -> Vec<Key> {
        let sets: Option<Vec<&HashSet<Key>>> =
            selector.iter().map(|(k, v)| self.by_label.get(&(ns.to_string(), k.clone(), v.clone()))).collect();
        let smallest = match sets {
            None => return Vec::new(),
            Some(sets) => sets.into_iter().min_by_key(|s| s.len()),
        };
        smallest.or_else(|| self.by_namespace.get(ns)).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// What the dispatcher hears.
enum Change {
    Pod(watcher::Event<Arc<Pod>>),
    Service(watcher::Event<Arc<Service>>),
}

impl Feed {
    /// Subscribes to the shared pod, Service and node informers; the dispatcher runs
    /// until the process ends.
    pub fn start(informers: &Informers) -> Feed {
        let (pods, services) = (informers.get::<Pod>(), informers.get::<Service>());
        let feed = Feed {
            pods: pods.store(),
            services: services.store(),
            nodes: informers.get::<Node>().store(),
            queues: Arc::default(),
            index: Arc::default(),
        };
        let pod_events = pods.subscribe().map(Change::Pod);
        let svc_events = services.subscribe().map(Change::Service);
        let dispatcher = feed.clone();
        tokio::spawn(async move {
            let mut merged = std::pin::pin!(futures_util::stream::select(pod_events, svc_events));
            let mut labels: HashMap<Key, BTreeMap<String, String>> = HashMap::new();
            while let Some(change) = merged.next().await {
                dispatcher.dispatch(change, &mut labels);
            }
        });
        feed
    }

    /// Registers a controller's queue.
    pub fn subscribe(&self, queue: Arc<WorkQueue<Key>>) {
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).push(queue);
    }

    fn enqueue(&self, key: Key) {
        for q in self.queues.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            q.add(key.clone());
        }
    }

    /// Queues the Services of the pod's namespace whose selector matches `labels`.
    fn enqueue_selecting(&self, ns: &str, labels: &BTreeMap<String, String>) {
        for svc in self.services.state() {
            if svc.namespace().as_deref() != Some(ns) {
                continue;
            }
            let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else { continue };
            if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                self.enqueue(key_of(ns, &svc.name_any()));
            }
        }
    }

    fn dispatch(&self, change: Change, labels: &mut HashMap<Key, BTreeMap<String, String>>) {
        match change {
            Change::Pod(e) => match e {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => self.pod_changed(&pod, labels),
                watcher::Event::Delete(pod) => self.pod_deleted(&pod, labels),
                _ => {}
            },
            Change::Service(e) => match e {
                watcher::Event::Apply(svc) | watcher::Event::InitApply(svc) | watcher::Event::Delete(svc) => {
                    self.enqueue(key_of(&svc.namespace().unwrap_or_default(), &svc.name_any()));
                }
                _ => {}
            },
        }
    }

    fn pod_changed(&self, pod: &Pod, labels: &mut HashMap<Key, BTreeMap<String, String>>) {
        let ns = pod.namespace().unwrap_or_default();
        let key = key_of(&ns, &pod.name_any());
        let new = pod.labels().clone();
        let old = labels.insert(key.clone(), new.clone());
        self.index.lock().unwrap_or_else(|e| e.into_inner()).set(&ns, &key, old.as_ref(), Some(&new));
        if let Some(old) = old
            && old != new
        {
            self.enqueue_selecting(&ns, &old);
        }
        self.enqueue_selecting(&ns, &new);
    }

    fn pod_deleted(&self, pod: &Pod, labels: &mut HashMap<Key, BTreeMap<String, String>>) {
        let ns = pod.namespace().unwrap_or_default();
        let key = key_of(&ns, &pod.name_any());
        let old = labels.remove(&key).unwrap_or_else(|| pod.labels().clone());
        self.index.lock().unwrap_or_else(|e| e.into_inner()).set(&ns, &key, Some(&old), None);
        self.enqueue_selecting(&ns, &old);
    }

    pub fn service(&self, key: &str) -> Option<Arc<Service>> {
        let (ns, name) = key.split_once('/')?;
        self.services.get(&ObjectRef::new(name).within(ns))
    }

    /// The pods of the Service's namespace its selector matches.
    pub fn selected_pods(&self, svc: &Service) -> Vec<Arc<Pod>> {
        let ns = svc.namespace().unwrap_or_default();
        let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return Vec::new() };
        let names = self.index.lock().unwrap_or_else(|e| e.into_inner()).candidates(&ns, selector);
        names
            .iter()
            .filter_map(|k| k.split_once('/').and_then(|(ns, n)| self.pods.get(&ObjectRef::new(n).within(ns))))
            .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
            .collect()
    }

    pub async fn wait_ready(&self) {
        informer::wait_until_ready(&self.pods).await;
        informer::wait_until_ready(&self.services).await;
    }
}

/// Remembers, per Service, the pods' states last written, so that the trigger time
/// names the earliest change not yet reflected (upstream's TriggerTimeTracker).
#[derive(Default)]
pub struct TriggerTracker {
    seen: Mutex<HashMap<Key, HashMap<String, Option<Timestamp>>>>,
}

impl TriggerTracker {
    /// The earliest trigger time among pods new or changed since the last call, or
    /// the Service's creation on its first sync.
    pub fn compute(&self, key: &str, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let first = !seen.contains_key(key);
        let last = seen.entry(key.to_string()).or_default();
        let mut now = HashMap::new();
        let mut earliest: Option<Timestamp> = None;
        for pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let t = pod_trigger_time(pod);
            if last.get(&uid) != Some(&t)
                && let Some(t) = t
            {
                earliest = Some(earliest.map_or(t, |e: Timestamp| e.min(t)));
            }
            now.insert(uid, t);
        }
        *last = now;
        if first {
            let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
            earliest = match (earliest, created) {
                (Some(e), Some(c)) => Some(e.min(c)),
                (e, c) => e.or(c),
            };
        }
        earliest
    }

    pub fn forget(&self, key: &str) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// When each Service was last written, for the batch period.
#[derive(Default)]
pub struct Batcher {
    last: Mutex<HashMap<Key, Instant>>,
}

impl Batcher {
    /// How long to wait before writing for `key` again, if at all.
    pub fn wait(&self, key: &str, period: Duration) -> Option<Duration> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner()).get(key)?;
        let since = last.elapsed();
        (since < period).then(|| period - since)
    }

    pub fn wrote(&self, key: &str) {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), Instant::now());
    }
}

// ---- the controller

struct Ctx {
    client: Client,
    feed: Feed,
    endpoints: Store<Endpoints>,
    triggers: TriggerTracker,
    batch: Batcher,
    config: Config,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What happened in one pass.
enum Outcome {
    Done,
    Later(Duration),
}

async fn sync(ctx: &Ctx, key: &str) -> Result<Outcome, Error> {
    let Some((ns, name)) = key.split_once('/') else { return Ok(Outcome::Done) };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let Some(svc) = ctx.feed.service(key) else {
        // The Service is gone: so are its endpoints (upstream deletes them too).
        ctx.triggers.forget(key);
        if ctx.endpoints.get(&ObjectRef::new(name).within(ns)).is_some() {
            match api.delete(name, &DeleteParams::default()).await {
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
        return Ok(Outcome::Done);
    };
    if !has_selector(&svc) {
        return Ok(Outcome::Done);
    }
    if let Some(wait) = ctx.batch.wait(key, ctx.config.batch_period) {
        return Ok(Outcome::Later(wait));
    }
    let pods = ctx.feed.selected_pods(&svc);
    let (subsets, truncated) = desired_subsets(&svc, &pods);
    let current = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
    let trigger = ctx.triggers.compute(key, &svc, &pods);
    let Some(desired) = desired_endpoints(&svc, current.as_deref(), subsets, truncated, trigger) else {
        return Ok(Outcome::Done);
    };
    ctx.batch.wrote(key);
    match current {
        None => match api.create(&PostParams::default(), &desired).await {
            // Our cache had not seen it yet; the next pass compares with it.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Outcome::Later(Duration::from_millis(50))),
            other => {
                other?;
            }
        },
        Some(_) => {
            api.replace(name, &PostParams::default(), &desired).await?;
        }
    }
    Ok(Outcome::Done)
}

async fn worker(ctx: Arc<Ctx>, queue: Arc<WorkQueue<Key>>) {
    loop {
        let key = queue.get().await;
        match sync(&ctx, &key).await {
            Ok(Outcome::Done) => queue.forget(&key),
            Ok(Outcome::Later(d)) => queue.add_after(key.clone(), d),
            Err(e) => {
                tracing::debug!(service = %key, error = %e, "syncing endpoints failed");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Runs the Endpoints controller on a shared [`Feed`].
pub async fn run(client: Client, feed: Feed, config: Config) {
    let (endpoints, writer) = reflector::store();
    let queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let events = watcher(Api::<Endpoints>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|e| e.metadata.managed_fields = None)
        .reflect(writer);
    let q = queue.clone();
    // As upstream, only a deletion is put right at once (an Endpoints object of a
    // Service with a selector is remade); other writers' edits last until the next
    // change of the Service or its pods, and an Endpoints object without a Service
    // is left alone.
    let watch = events.for_each(move |e| {
        if let Ok(watcher::Event::Delete(ep)) = e {
            q.add(key_of(&ep.namespace().unwrap_or_default(), &ep.name_any()));
        }
        async {}
    });
    tokio::spawn(watch);
    feed.wait_ready().await;
    informer::wait_until_ready(&endpoints).await;
    feed.subscribe(queue.clone());
    for svc in feed.services.state() {
        queue.add(key_of(&svc.namespace().unwrap_or_default(), &svc.name_any()));
    }
    let ctx = Arc::new(Ctx {
        client,
        feed,
        endpoints,
        triggers: TriggerTracker::default(),
        batch: Batcher::default(),
        config,
    });
    let workers: Vec<_> = (0..WORKERS).map(|_| tokio::spawn(worker(ctx.clone(), queue.clone()))).collect();
    for w in workers {
        let _ = w.await;
    }
}

#[cfg(test)]
pub(crate) mod tests;
