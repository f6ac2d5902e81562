//! The nodes' own I/O: registration, Lease renewals spread evenly over the heartbeat
//! period, periodic status reports, and a resync that recreates nodes someone deleted
//! and reasserts readiness a node lifecycle controller took away.

use crate::node::{self, LEASE_NAMESPACE, SIMULATED_LABEL};
use crate::pacing::Pacer;
use crate::{Error, Sim, bump};
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Worth another try: the server was busy or unreachable, not refusing the request.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if is_transient(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

/// Remembers what the server says about the node.
fn record(sim: &Sim, index: usize, node: &Node) {
    let mut st = sim.nodes[index].state();
    st.uid = node.metadata.uid.clone();
    st.assigned_cidr = node::pod_cidr(node);
}

/// Creates node `index`, or takes over an existing one of that name (an earlier run
/// of the sim), as a restarted kubelet does; then makes sure it has a Lease.
async fn register(sim: &Sim, index: usize) -> Result<(), Error> {
    let name = &sim.nodes[index].name;
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let now = Timestamp::now();
    let object = node::node_object(&sim.opts, index, &sim.kernel_version, now);
    let (post, pp) = (PostParams::default(), PatchParams::default());
    let created = {
        let _permit = sim.node_permit().await;
        with_retries(|| nodes.create(&post, &object)).await
    };
    let node = match created {
        Ok(node) => node,
        Err(e) if is_status(&e, 409) => {
            let _permit = sim.node_permit().await;
            let labels = Patch::Merge(json!({"metadata": {"labels": node::node_labels(name)}}));
            with_retries(|| nodes.patch(name, &pp, &labels)).await?;
            let status =
                Patch::Strategic(json!({"status": node::node_status(&sim.opts, index, &sim.kernel_version, now, now)}));
            with_retries(|| nodes.patch_status(name, &pp, &status)).await?
        }
        Err(e) => return Err(e.into()),
    };
    sim.nodes[index].state().ready_since = now;
    record(sim, index, &node);
    let leases: Api<Lease> = Api::namespaced(sim.client.clone(), LEASE_NAMESPACE);
    let lease = node::lease_for(name, node.metadata.uid.as_deref(), sim.opts.lease_duration_seconds, now);
    let _permit = sim.node_permit().await;
    match with_retries(|| leases.create(&post, &lease)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => {
            // Left from an earlier run: renew it, owned by this node (which may be new).
            let mut renewal = node::lease_renewal(name, sim.opts.lease_duration_seconds, Timestamp::now());
            renewal["metadata"] = json!({"ownerReferences": lease.metadata.owner_references});
            let renewal = Patch::Merge(renewal);
            with_retries(|| leases.patch(name, &pp, &renewal)).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Registers every node, `max_in_flight` requests at a time; returns how many made it.
pub(crate) async fn register_all(sim: &Arc<Sim>) -> Result<usize, Error> {
    let results: Vec<(usize, Result<(), Error>)> = futures_util::stream::iter(0..sim.nodes.len())
        .map(|i| async move { (i, register(sim, i).await) })
        .buffer_unordered(sim.opts.max_in_flight)
        .collect()
        .await;
    let mut registered = 0;
    let mut last = None;
    for (i, r) in results {
        match r {
            Ok(()) => registered += 1,
            Err(e) => {
                // The resync tries again; say which and why once here.
                tracing::warn!(node = %sim.nodes[i].name, error = %e, "simulated node did not register");
                last = Some(e);
            }
        }
    }
    match (registered, last) {
        (0, Some(last)) => Err(Error::NothingRegistered { nodes: sim.nodes.len(), last: Box::new(last) }),
        _ => Ok(registered),
    }
}

/// Renews node `index`'s Lease; recreates it when someone deleted it.
async fn renew(sim: &Sim, index: usize) {
    let Some(_permit) = sim.node_permit().await else { return };
    let name = &sim.nodes[index].name;
    let leases: Api<Lease> = Api::namespaced(sim.client.clone(), LEASE_NAMESPACE);
    let d = sim.opts.lease_duration_seconds;
    let renewal = node::lease_renewal(name, d, Timestamp::now());
    let url = kube::core::Request::new(leases.resource_url());
    let patch = url.patch(name, &PatchParams::default(), &Patch::Merge(&renewal));
    // The Lease echoed back is not read: only the answer's status is.
    let result = match informer::write::status_only(&sim.client, patch).await {
        Err(e) if is_status(&e, 404) => {
            let uid = sim.nodes[index].state().uid.clone();
            let lease = node::lease_for(name, uid.as_deref(), d, Timestamp::now());
            leases.create(&PostParams::default(), &lease).await.map(drop)
        }
        other => other,
    };
    match result {
        Ok(()) => bump(&sim.stats.lease_renewals),
        Err(e) => {
            bump(&sim.stats.lease_errors);
            tracing::debug!(node = %name, error = %e, "lease renewal failed");
        }
    }
}

/// Refreshes node `index`'s conditions (heartbeat times; Ready again after an outage).
async fn report(sim: &Sim, index: usize) {
    let Some(_permit) = sim.node_permit().await else { return };
    let name = &sim.nodes[index].name;
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let since = sim.nodes[index].state().ready_since;
    let patch = node::status_heartbeat(since, Timestamp::now());
    match nodes.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
        Ok(node) => {
            bump(&sim.stats.status_reports);
            record(sim, index, &node);
        }
        Err(e) => {
            // A deleted node comes back with the next resync.
            bump(&sim.stats.status_errors);
            tracing::debug!(node = %name, error = %e, "node status report failed");
        }
    }
}

/// Starts a Lease renewal for node `index` unless the last one is still under way
/// (then the server is behind, and piling up more writes would not help it).
fn spawn_renew(sim: &Arc<Sim>, index: usize) {
    {
        let mut st = sim.nodes[index].state();
        if st.lease_busy {
            bump(&sim.stats.lease_skipped);
            return;
        }
        st.lease_busy = true;
    }
    let sim = sim.clone();
    tokio::spawn(async move {
        renew(&sim, index).await;
        sim.nodes[index].state().lease_busy = false;
    });
}

fn spawn_report(sim: &Arc<Sim>, index: usize) {
    {
        let mut st = sim.nodes[index].state();
        if st.report_busy {
            return;
        }
        st.report_busy = true;
    }
    let sim = sim.clone();
    tokio::spawn(async move {
        report(&sim, index).await;
        sim.nodes[index].state().report_busy = false;
    });
}

/// Renews every Lease each heartbeat period and reports every node's status each
/// report period, each spread evenly over its period.
pub(crate) async fn run(sim: Arc<Sim>) {
    let n = sim.nodes.len();
    let mut leases = Pacer::new(n, sim.opts.heartbeat);
    let mut reports = Pacer::new(n, sim.opts.status_report);
    let start = Instant::now();
    // The first status reports are due one period after registration, which reported.
    let reports_start = start + sim.opts.status_report;
    let mut tick = tokio::time::interval(leases.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for i in leases.turns(start.elapsed()) {
            spawn_renew(&sim, i);
        }
        if let Some(since) = Instant::now().checked_duration_since(reports_start) {
            for i in reports.turns(since) {
                spawn_report(&sim, i);
            }
        }
    }
}

/// Lists our nodes every resync period: recreates the missing, reasserts readiness
/// where it was taken away, and picks up pod CIDRs the server assigned since.
pub(crate) async fn resync(sim: Arc<Sim>) {
    loop {
        tokio::time::sleep(sim.opts.resync).await;
        match list_ours(&sim).await {
            Ok(present) => repair(&sim, &present).await,
            Err(e) => tracing::warn!(error = %e, "resync: listing the simulated nodes failed"),
        }
    }
}

/// Our nodes as the server has them, by index.
async fn list_ours(sim: &Sim) -> Result<Vec<Option<Node>>, Error> {
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let mut present: Vec<Option<Node>> = vec![None; sim.nodes.len()];
    let selector = format!("{SIMULATED_LABEL}=true");
    // Pages are fetched one after the other and outside the write budget: waiting
    // for a slot behind thousands of renewals would let the list's revision be
    // compacted away before the last page.
    let mut params = ListParams::default().labels(&selector).limit(500);
    loop {
        let page = match nodes.list(&params).await {
            Ok(page) => page,
            Err(e) if is_status(&e, 410) => {
                // History went faster than the pages (a busy server keeps little):
                // take one consistent list in a single response instead.
                present.iter_mut().for_each(|p| *p = None);
                params = ListParams::default().labels(&selector);
                nodes.list(&params).await?
            }
            Err(e) => return Err(e.into()),
        };
        for node in page.items {
            if let Some(&i) = node.metadata.name.as_ref().and_then(|n| sim.by_name.get(n)) {
                present[i] = Some(node);
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(present),
        }
    }
}

async fn repair(sim: &Arc<Sim>, present: &[Option<Node>]) {
    let mut missing = Vec::new();
    for (i, node) in present.iter().enumerate() {
        match node {
            None => missing.push(i),
            Some(node) => {
                record(sim, i, node);
                if !node::is_ready(node) {
                    tracing::info!(node = %sim.nodes[i].name, "resync: node is not Ready on the server; reporting it Ready");
                    sim.nodes[i].state().ready_since = Timestamp::now();
                    spawn_report(sim, i);
                }
            }
        }
    }
    if missing.is_empty() {
        return;
    }
    tracing::info!(count = missing.len(), "resync: registering simulated nodes that are gone from the server");
    futures_util::stream::iter(missing)
        .for_each_concurrent(sim.opts.node_in_flight(), |i| async move {
            if let Err(e) = register(sim, i).await {
                tracing::warn!(node = %sim.nodes[i].name, error = %e, "resync: simulated node did not register");
            }
        })
        .await;
}
