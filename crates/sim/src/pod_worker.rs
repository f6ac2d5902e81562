//! The pods' I/O: one watch of all pods (not one per node), keeping only those bound
//! to our nodes, and a kube-runtime controller that acts on each per [`pod::decide`]:
//! status writes through `pods/status`, deletions with grace period 0. The
//! controller never runs two reconciles of one pod at once and retries with backoff;
//! a periodic reconcile of every pod repairs whatever an event missed.

use crate::pod::{self, PodAction};
use crate::slim::SlimPod;
use crate::{Error, Sim, bump};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

fn is_gone(e: &kube::Error) -> bool {
    // 404: deleted meanwhile; 409 on delete: a new pod of that name (uid precondition).
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// The address the pod gets: its node's for host-network pods, else one of the
/// node's pod network, the same one on every retry.
fn pod_ip(sim: &Sim, index: usize, pod: &Pod) -> Result<Ipv4Addr, Error> {
    let node = &sim.nodes[index];
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return Ok(node.ip);
    }
    let cidr = node.pod_cidr();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    node.state()
        .ips
        .allocate(uid, cidr)
        .ok_or_else(|| Error::PodIpsExhausted { node: node.name.clone(), cidr: cidr.to_string() })
}

/// After a restart of the sim, the addresses of pods already Running stay theirs.
fn claim_running_ip(sim: &Sim, index: usize, pod: &Pod) {
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let ip = status.and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    if let (true, Some(ip), Some(uid)) = (running, ip, pod.metadata.uid.as_deref())
        && ip != sim.nodes[index].ip
    {
        sim.nodes[index].state().ips.claim(uid, ip);
    }
}

fn release_ip(sim: &Sim, index: usize, pod: &Pod) {
    if let Some(uid) = pod.metadata.uid.as_deref() {
        sim.nodes[index].state().ips.release(uid);
    }
}

async fn reconcile(pod: Arc<Pod>, sim: Arc<Sim>) -> Result<Action, Error> {
    let Some(index) = sim.node_of(&pod) else { return Ok(Action::await_change()) };
    // The answers (the pod echoed back) are not read: only their status is.
    let url = kube::core::Request::new(<Pod as kube::Resource>::url_path(&(), pod.namespace().as_deref()));
    let write = |request| informer::write::status_only(&sim.client, request);
    let name = pod.name_any();
    let pp = PatchParams::default();
    match pod::decide(&pod, Timestamp::now()) {
        PodAction::Nothing => {
            claim_running_ip(&sim, index, &pod);
            Ok(Action::await_change())
        }
        PodAction::Start => {
            let ip = pod_ip(&sim, index, &pod)?;
            let status = pod::pod_status_for(&pod, sim.nodes[index].ip, ip, Timestamp::now());
            match write(url.patch_subresource("status", &name, &pp, &Patch::Merge(&status))).await {
                Ok(()) => bump(&sim.stats.pods_started),
                Err(e) if is_gone(&e) => {
                    release_ip(&sim, index, &pod);
                    return Ok(Action::await_change());
                }
                Err(e) => return Err(e.into()),
            }
            // Pods that exit by design are looked at again when their time is up.
            Ok(match pod::completion(&pod) {
                Some(done) => Action::requeue(done.after),
                None => Action::await_change(),
            })
        }
        PodAction::WaitToFinish(left) => Ok(Action::requeue(left)),
        PodAction::Finish { exit_code } => {
            let status = pod::pod_finished_status(&pod, exit_code, Timestamp::now());
            match write(url.patch_subresource("status", &name, &pp, &Patch::Merge(&status))).await {
                Ok(()) => bump(&sim.stats.pods_finished),
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
            // A finished pod's sandbox is gone, and its address with it.
            release_ip(&sim, index, &pod);
            Ok(Action::await_change())
        }
        PodAction::Delete { uid } => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::default()
            };
            match write(url.delete(&name, &dp)).await {
                Ok(()) => bump(&sim.stats.pods_deleted),
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
            release_ip(&sim, index, &pod);
            Ok(Action::await_change())
        }
    }
}

fn error_policy(pod: Arc<Pod>, error: &Error, sim: Arc<Sim>) -> Action {
    bump(&sim.stats.pod_errors);
    tracing::debug!(pod = %pod.name_any(), namespace = ?pod.namespace(), %error, "pod action failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Every `period`, forever.
fn ticks(period: Duration) -> impl futures_util::Stream<Item = ()> + Send {
    futures_util::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// Forgets addresses of pods that went without us seeing them go (force-deleted,
/// or deleted while the watch was down).
async fn sweep_ips(sim: Arc<Sim>, pods: Store<Pod>) {
    loop {
        tokio::time::sleep(sim.opts.resync).await;
        let alive: HashSet<String> = pods.state().iter().filter_map(|p| p.metadata.uid.clone()).collect();
        for node in &sim.nodes {
            node.state().ips.retain(|uid| alive.contains(uid));
        }
    }
}

/// The watch's pods as the rest of the sim reads them (decoded without their
/// managed fields, [`SlimPod`]).
fn unslim(event: Event<SlimPod>) -> Event<Pod> {
    match event {
        Event::Apply(p) => Event::Apply(p.0),
        Event::Delete(p) => Event::Delete(p.0),
        Event::Init => Event::Init,
        Event::InitApply(p) => Event::InitApply(p.0),
        Event::InitDone => Event::InitDone,
    }
}

/// Watches all pods and drives those bound to our nodes, forever.
pub(crate) async fn run(sim: Arc<Sim>) {
    let api: Api<SlimPod> = Api::all(sim.client.clone());
    let (reader, writer) = reflector::store();
    let ours = sim.clone();
    // Filtering before the reflector keeps only our pods in memory: a cluster of
    // 50,000 pods over several sims need not be held by each.
    // One list in a single response when the watch (re)starts: under heavy write
    // load a paginated list can outlive the server's history and never finish.
    let config = watcher::Config { page_size: None, ..watcher::Config::default() };
    let events = watcher::watcher(api, config).map(|event| event.map(unslim)).default_backoff().filter(move |event| {
        let keep = match event {
            Ok(Event::Apply(p) | Event::InitApply(p) | Event::Delete(p)) => ours.node_of(p).is_some(),
            _ => true,
        };
        std::future::ready(keep)
    });
    let objects = reflector::reflector(writer, events).applied_objects();
    let config = controller::Config::default().concurrency(sim.opts.pod_in_flight().min(u16::MAX as usize) as u16);
    let controller = Controller::for_stream(objects, reader.clone())
        .with_config(config)
        .reconcile_all_on(ticks(sim.opts.resync))
        .run(reconcile, error_policy, sim.clone())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "pod controller");
            }
            std::future::ready(())
        });
    tokio::select! {
        () = controller => tracing::warn!("the pod watch ended"),
        () = sweep_ips(sim.clone(), reader) => {}
    }
}
