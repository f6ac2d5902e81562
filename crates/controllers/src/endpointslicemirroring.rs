//! The EndpointSlice mirroring controller (upstream's
//! `pkg/controller/endpointslicemirroring`): for a Service without a selector whose
//! Endpoints object someone wrote by hand, EndpointSlices mirroring its subsets, so
//! that everything reading only slices (the service proxy, DNS) sees those addresses.
//!
//! As upstream's, every subset maps to one slice per address type and set of ports:
//! `addresses` become ready endpoints, `notReadyAddresses` not-ready ones, at most
//! [`MAX_ENDPOINTS_PER_SUBSET`] of them per subset (the rest are skipped and counted).
//! Slices carry the Endpoints' labels and annotations (so an `over-capacity`
//! annotation travels along) plus `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io`,
//! and are owned by the Endpoints object, as upstream's are, so the garbage collector
//! removes them with it. Endpoints labelled `endpointslice.kubernetes.io/skip-mirror=true`
//! (those the endpoints controller and the API server write) or carrying a
//! leader-election record are not mirrored; neither are those of a Service with a
//! selector. Whenever mirroring should not happen, the mirrored slices are deleted.
//!
//! [`plan`] is pure; [`run`] does the I/O over the shared endpoints [`Feed`] (for
//! Services) and watches of Endpoints and of the slices this controller manages.

use crate::endpoints::{self, Feed, Key, TRIGGER_TIME};
use crate::endpointslice::{Expectations, MANAGED_BY, SERVICE_NAME, SlicePlan, write_plan};
use crate::gc::queue::WorkQueue;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort as CorePort, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Upstream's `--mirroring-max-endpoints-per-subset` default.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Upstream's `resourcelock.LeaderElectionRecordAnnotationKey`: such Endpoints are locks.
pub const LEADER_ELECTION: &str = "control-plane.alpha.kubernetes.io/leader";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What one pass decided, with the addresses it could not mirror.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mirror {
    pub slices: SlicePlan,
    /// Addresses that are not IPs.
    pub invalid: usize,
    /// Addresses left out, the invalid ones and those beyond the per-subset cap.
    pub skipped: usize,
}

/// Whether the Endpoints of this Service are to be mirrored (upstream's
/// `shouldMirror` plus its selector and existence checks).
pub fn should_mirror(svc: Option<&Service>, ep: Option<&Endpoints>) -> bool {
    let (Some(svc), Some(ep)) = (svc, ep) else { return false };
    let has_selector = svc.spec.as_ref().is_some_and(|s| s.selector.is_some());
    !has_selector
        && ep.labels().get(SKIP_MIRROR).map(String::as_str) != Some("true")
        && !ep.annotations().contains_key(LEADER_ELECTION)
}

/// The endpoint of one address, with its address type, or `None` for a non-IP.
/// The IP is re-printed, as upstream does, so irregular forms come out canonical.
fn address_endpoint(addr: &EndpointAddress, ready: bool) -> Option<(&'static str, Endpoint)> {
    let ip: IpAddr = addr.ip.trim().parse().ok()?;
    // An IPv4-mapped IPv6 address counts as IPv4, as Go's `To4` sees it.
    let (kind, text) = match ip {
        IpAddr::V4(v4) => ("IPv4", v4.to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ("IPv4", v4.to_string()),
            None => ("IPv6", v6.to_string()),
        },
    };
    let ep = Endpoint {
        addresses: vec![text],
        conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
        hostname: addr.hostname.clone().filter(|h| !h.is_empty()),
        node_name: addr.node_name.clone(),
        target_ref: addr.target_ref.clone(),
        ..Default::default()
    };
    Some((kind, ep))
}

fn slice_ports(ports: &[CorePort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// Slices are grouped by address type and set of ports, order aside.
fn group_key(address_type: &str, ports: &[EndpointPort]) -> String {
    let mut sorted: Vec<String> = ports.iter().map(|p| serde_json::to_string(p).unwrap_or_default()).collect();
    sorted.sort();
    format!("{address_type}/{}", sorted.join(","))
}

/// Endpoints compared as a set: the order within a slice carries no meaning.
fn endpoint_set(eps: &[Endpoint]) -> Vec<String> {
    let mut out: Vec<String> = eps.iter().map(|e| serde_json::to_string(e).unwrap_or_default()).collect();
    out.sort();
    out
}

fn labels(ep: &Endpoints) -> BTreeMap<String, String> {
    let mut out = ep.labels().clone();
    out.insert(SERVICE_NAME.into(), ep.name_any());
    out.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    out
}

fn annotations(ep: &Endpoints) -> BTreeMap<String, String> {
    let mut out = ep.annotations().clone();
    out.remove(TRIGGER_TIME);
    out.remove(LAST_APPLIED);
    out
}

fn owner(ep: &Endpoints) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: ep.name_any(),
        uid: ep.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Upstream's `getEndpointSlicePrefix`: the name and a dash while that stays a valid
/// DNS subdomain (253 characters), else the bare name.
fn prefix(name: &str) -> String {
    if name.len() < 253 { format!("{name}-") } else { name.to_string() }
}

fn new_slice(
    ep: &Endpoints,
    address_type: &str,
    ports: Vec<EndpointPort>,
    name: Option<&EndpointSlice>,
) -> EndpointSlice {
    let mut metadata = ObjectMeta {
        namespace: ep.namespace(),
        labels: Some(labels(ep)),
        annotations: Some(annotations(ep)),
        owner_references: Some(vec![owner(ep)]),
        ..Default::default()
    };
    match name {
        // Updating: keep the slice's name and revision, so a write from a stale cache conflicts.
        Some(old) => {
            metadata.name = old.metadata.name.clone();
            metadata.resource_version = old.metadata.resource_version.clone();
        }
        None => metadata.generate_name = Some(prefix(&ep.name_any())),
    }
    EndpointSlice { metadata, address_type: address_type.into(), endpoints: Vec::new(), ports: Some(ports) }
}

fn up_to_date(have: &EndpointSlice, want: &EndpointSlice) -> bool {
    endpoint_set(&have.endpoints) == endpoint_set(&want.endpoints)
        && have.metadata.labels.clone().unwrap_or_default() == want.metadata.labels.clone().unwrap_or_default()
        && have.metadata.annotations.clone().unwrap_or_default()
            == want.metadata.annotations.clone().unwrap_or_default()
        && have.metadata.owner_references == want.metadata.owner_references
}

/// Decides the mirrored slices of one Endpoints object, given the slices this
/// controller made for it. The caller has already checked [`should_mirror`].
pub fn plan(ep: &Endpoints, existing: &[Arc<EndpointSlice>]) -> Mirror {
    let mut out = Mirror::default();
    // group key -> (address type, ports, endpoints), in the order subsets list them.
    let mut desired: BTreeMap<String, (&'static str, Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for subset in ep.subsets.as_deref().unwrap_or_default() {
        let ports = slice_ports(subset.ports.as_deref().unwrap_or_default());
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        let mut added = 0;
        let mut total = 0;
        for (addr, is_ready) in ready.chain(not_ready) {
            total += 1;
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                continue;
            }
            let Some((kind, endpoint)) = address_endpoint(addr, is_ready) else {
                out.invalid += 1;
                continue;
            };
            added += 1;
            let entry = desired.entry(group_key(kind, &ports)).or_insert_with(|| (kind, ports.clone(), Vec::new()));
            // The same address listed twice (in two subsets with equal ports) is one endpoint.
            if !entry.2.contains(&endpoint) {
                entry.2.push(endpoint);
            }
        }
        out.skipped += total - added;
    }
    let mut by_group: BTreeMap<String, Vec<&Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        by_group.entry(group_key(&s.address_type, s.ports.as_deref().unwrap_or_default())).or_default().push(s);
    }
    let mut creates = Vec::new();
    let mut deletes: Vec<EndpointSlice> = Vec::new();
    for (key, slices) in &by_group {
        if !desired.contains_key(key) {
            deletes.extend(slices.iter().map(|s| (***s).clone()));
        }
    }
    for (key, (kind, ports, eps)) in desired {
        let have = by_group.get(&key).cloned().unwrap_or_default();
        // One slice per group: the first one found stays, any others go.
        deletes.extend(have.iter().skip(1).map(|s| (***s).clone()));
        let first = have.first().map(|s| &***s);
        let mut want = new_slice(ep, kind, ports, first);
        want.endpoints = eps.into_iter().take(MAX_ENDPOINTS_PER_SUBSET).collect();
        match first {
            Some(old) if up_to_date(old, &want) => {}
            Some(_) => out.slices.update.push(want),
            None => creates.push(want),
        }
    }
    // Upstream's `recycleSlices`: a slice about to be deleted takes a new one's place.
    for mut c in creates {
        match deletes.pop() {
            Some(old) => {
                c.metadata.generate_name = None;
                c.metadata.name = old.metadata.name.clone();
                c.metadata.resource_version = old.metadata.resource_version.clone();
                out.slices.update.push(c);
            }
            None => out.slices.create.push(c),
        }
    }
    out.slices.delete = deletes;
    out
}

// ---- the controller

struct Ctx {
    client: Client,
    feed: Feed,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    expectations: Expectations,
}

enum Outcome {
    Done,
    Later(Duration),
}

async fn sync(ctx: &Ctx, key: &str) -> Result<Outcome, kube::Error> {
    let Some((ns, name)) = key.split_once('/') else { return Ok(Outcome::Done) };
    if !ctx.expectations.met(key, &ctx.slices, ns) {
        return Ok(Outcome::Later(Duration::from_millis(20)));
    }
    let svc = ctx.feed.service(key);
    let ep = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns) && s.labels().get(SERVICE_NAME).map(String::as_str) == Some(name)
        })
        .collect();
    let decided = match ep.as_deref() {
        Some(e) if should_mirror(svc.as_deref(), Some(e)) => {
            let m = plan(e, &existing);
            if m.skipped > 0 {
                tracing::warn!(endpoints = %key, skipped = m.skipped, invalid = m.invalid,
                    max = MAX_ENDPOINTS_PER_SUBSET, "addresses not mirrored to EndpointSlices");
            }
            m.slices
        }
        _ => SlicePlan { delete: existing.iter().map(|s| (**s).clone()).collect(), ..Default::default() },
    };
    if decided.is_empty() {
        return Ok(Outcome::Done);
    }
    // Upstream makes no new slices for Endpoints being deleted.
    let deleting = ep.as_ref().is_some_and(|e| e.metadata.deletion_timestamp.is_some());
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let create: &[EndpointSlice] = if deleting { &[] } else { &decided.create };
    let (written, result) = write_plan(&api, create, &decided).await;
    ctx.expectations.set(key, written);
    result.map(|()| Outcome::Done)
}

async fn worker(ctx: Arc<Ctx>, queue: Arc<WorkQueue<Key>>) {
    loop {
        let key = queue.get().await;
        match sync(&ctx, &key).await {
            Ok(Outcome::Done) => queue.forget(&key),
            Ok(Outcome::Later(d)) => queue.add_after(key.clone(), d),
            Err(e) => {
                tracing::debug!(endpoints = %key, error = %e, "mirroring endpoints failed");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Runs the mirroring controller; Services come from the shared [`Feed`].
pub async fn run(client: Client, feed: Feed) {
    let queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let (slices, slice_writer) = reflector::store();
    let selector = format!("{MANAGED_BY}={CONTROLLER_NAME}");
    let slice_events = watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default().labels(&selector))
        .default_backoff()
        .modify(|s| s.metadata.managed_fields = None)
        .reflect(slice_writer)
        .touched_objects();
    let q = queue.clone();
    // A mirrored slice changed or deleted by someone else is put right.
    tokio::spawn(slice_events.for_each(move |e| {
        if let Ok(s) = e
            && let Some(svc) = s.labels().get(SERVICE_NAME)
        {
            q.add(format!("{}/{svc}", s.namespace().unwrap_or_default()));
        }
        async {}
    }));
    let (eps, ep_writer) = reflector::store();
    let ep_events = watcher(Api::<Endpoints>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|e| e.metadata.managed_fields = None)
        .reflect(ep_writer);
    let q = queue.clone();
    // Deletions too: the slices of a deleted Endpoints object go at once.
    tokio::spawn(ep_events.for_each(move |e| {
        if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o)) = e {
            q.add(format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()));
        }
        async {}
    }));
    feed.wait_ready().await;
    informer::wait_until_ready(&slices).await;
    informer::wait_until_ready(&eps).await;
    feed.subscribe(queue.clone());
    for e in eps.state() {
        queue.add(format!("{}/{}", e.namespace().unwrap_or_default(), e.name_any()));
    }
    for s in slices.state() {
        if let Some(svc) = s.labels().get(SERVICE_NAME) {
            queue.add(format!("{}/{svc}", s.namespace().unwrap_or_default()));
        }
    }
    let ctx = Arc::new(Ctx { client, feed, endpoints: eps, slices, expectations: Expectations::default() });
    let workers: Vec<_> = (0..endpoints::WORKERS).map(|_| tokio::spawn(worker(ctx.clone(), queue.clone()))).collect();
    for w in workers {
        let _ = w.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints(v: serde_json::Value) -> Endpoints {
        let mut base = json!({"metadata": {"name": "ext", "namespace": "default", "uid": "u-1",
            "labels": {"team": "a"}, "annotations": {TRIGGER_TIME: "x", "note": "kept"}}});
        base["subsets"] = v;
        serde_json::from_value(base).expect("endpoints")
    }

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": spec}))
            .expect("service")
    }

    fn one() -> Endpoints {
        endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]))
    }

    /// Applies a plan as the API server would, naming new slices.
    fn apply(existing: &[Arc<EndpointSlice>], p: &SlicePlan) -> Vec<Arc<EndpointSlice>> {
        let mut out: Vec<Arc<EndpointSlice>> = existing
            .iter()
            .filter(|s| !p.delete.iter().chain(&p.update).any(|d| d.metadata.name == s.metadata.name))
            .cloned()
            .collect();
        out.extend(p.update.iter().cloned().map(Arc::new));
        for (i, s) in p.create.iter().enumerate() {
            let mut s = s.clone();
            s.metadata.name = Some(format!("ext-{}-{i}", out.len()));
            out.push(Arc::new(s));
        }
        out
    }

    fn ready(s: &EndpointSlice) -> Vec<(String, bool)> {
        s.endpoints
            .iter()
            .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
            .collect()
    }

    #[test]
    fn a_subset_becomes_one_slice_with_labels_annotations_owner_and_ports() {
        let p = plan(&one(), &[]).slices;
        assert_eq!(p.create.len(), 1);
        assert!(p.update.is_empty() && p.delete.is_empty());
        let s = &p.create[0];
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(ready(s), [("10.0.0.1".to_string(), true), ("10.0.0.2".to_string(), false)]);
        let l = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(l[SERVICE_NAME], "ext");
        assert_eq!(l[MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(l["team"], "a");
        let a = s.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get("note").map(String::as_str), Some("kept"));
        assert!(!a.contains_key(TRIGGER_TIME));
        let o = &s.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_str(), o.controller),
            ("Endpoints", "ext", "u-1", Some(true))
        );
        assert_eq!(s.metadata.generate_name.as_deref(), Some("ext-"));
        let port = &s.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("http"), Some(8080), Some("TCP"))
        );
    }

    #[test]
    fn an_applied_plan_is_stable_and_follows_changes() {
        let first = apply(&[], &plan(&one(), &[]).slices);
        assert!(plan(&one(), &first).slices.is_empty());
        // Order within the slice carries no meaning.
        let swapped = endpoints(json!([{"notReadyAddresses": [{"ip": "10.0.0.2"}], "addresses": [{"ip": "10.0.0.1"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]));
        assert!(plan(&swapped, &first).slices.is_empty());
        let changed = endpoints(json!([{"addresses": [{"ip": "10.0.0.3"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]));
        let p = plan(&changed, &first).slices;
        assert_eq!(p.update.len(), 1);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update[0].metadata.name, first[0].metadata.name);
        assert_eq!(ready(&p.update[0]), [("10.0.0.3".to_string(), true)]);
    }

    #[test]
    fn new_ports_recycle_the_old_slice_and_no_subsets_delete_it() {
        let first = apply(&[], &plan(&one(), &[]).slices);
        let ported = endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 9090}]}]));
        let p = plan(&ported, &first).slices;
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update[0].metadata.name, first[0].metadata.name);
        assert_eq!(p.update[0].ports.as_ref().expect("ports")[0].port, Some(9090));
        let empty = endpoints(json!(null));
        let p = plan(&empty, &first).slices;
        assert_eq!(p.delete.len(), 1);
        assert!(p.create.is_empty() && p.update.is_empty());
    }

    #[test]
    fn families_split_and_invalid_addresses_are_skipped() {
        let ep = endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}, {"ip": "::ffff:10.0.0.9"},
            {"ip": "not-an-ip"}], "ports": [{"port": 80}]}]));
        let m = plan(&ep, &[]);
        assert_eq!((m.invalid, m.skipped), (1, 1));
        let mut by_type: Vec<(String, Vec<String>)> = m
            .slices
            .create
            .iter()
            .map(|s| (s.address_type.clone(), s.endpoints.iter().map(|e| e.addresses[0].clone()).collect()))
            .collect();
        by_type.sort();
        assert_eq!(
            by_type,
            [
                ("IPv4".to_string(), vec!["10.0.0.1".to_string(), "10.0.0.9".to_string()]),
                ("IPv6".to_string(), vec!["fd00::1".to_string()])
            ]
        );
    }

    #[test]
    fn at_most_a_thousand_addresses_a_subset_are_mirrored() {
        let addrs: Vec<serde_json::Value> =
            (0..1005).map(|i| json!({"ip": format!("10.1.{}.{}", i / 250, i % 250 + 1)})).collect();
        let ep = endpoints(json!([{"addresses": addrs, "ports": [{"port": 80}]}]));
        let m = plan(&ep, &[]);
        assert_eq!(m.skipped, 5);
        assert_eq!(m.slices.create.len(), 1);
        assert_eq!(m.slices.create[0].endpoints.len(), MAX_ENDPOINTS_PER_SUBSET);
    }

    #[test]
    fn extra_slices_of_a_group_are_deleted() {
        let first = apply(&[], &plan(&one(), &[]).slices);
        let mut dup = (*first[0]).clone();
        dup.metadata.name = Some("ext-dup".into());
        let both = vec![first[0].clone(), Arc::new(dup)];
        let p = plan(&one(), &both).slices;
        assert_eq!(p.delete.iter().map(|s| s.name_any()).collect::<Vec<_>>(), ["ext-dup"]);
        assert!(p.create.is_empty() && p.update.is_empty());
    }

    #[test]
    fn only_hand_made_endpoints_of_selectorless_services_are_mirrored() {
        let plain = service(json!({"ports": [{"port": 80}]}));
        let selecting = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let ep = one();
        assert!(should_mirror(Some(&plain), Some(&ep)));
        assert!(!should_mirror(Some(&selecting), Some(&ep)));
        assert!(!should_mirror(None, Some(&ep)));
        assert!(!should_mirror(Some(&plain), None));
        let mut skipped = ep.clone();
        skipped.metadata.labels.get_or_insert_with(BTreeMap::new).insert(SKIP_MIRROR.into(), "true".into());
        assert!(!should_mirror(Some(&plain), Some(&skipped)));
        let mut lock = ep.clone();
        lock.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(LEADER_ELECTION.into(), "{}".into());
        assert!(!should_mirror(Some(&plain), Some(&lock)));
    }

    #[test]
    fn the_over_capacity_annotation_is_carried_over() {
        let mut ep = one();
        ep.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(endpoints::OVER_CAPACITY.into(), "truncated".into());
        let p = plan(&ep, &[]).slices;
        let a = p.create[0].metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get(endpoints::OVER_CAPACITY).map(String::as_str), Some("truncated"));
    }
}
