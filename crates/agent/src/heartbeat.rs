//! The node's own I/O: registration, Lease renewal, status updates, and learning the
//! pod CIDR the node IPAM controller assigns.
//!
//! As the kubelet: the Lease is renewed every 10 s (duration 40 s); the status is
//! computed every 10 s (`nodeStatusUpdateFrequency`) and written when it changed or
//! 5 minutes passed since the last write (`nodeStatusReportFrequency`).

use crate::node::{self, Identity, LEASE_NAMESPACE, Machine};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

/// How often things happen. Status as the kubelet does; the Lease every 2 s rather
/// than the kubelet's 10 s, because Rudder's node-lifecycle controller gives a node
/// 8 s of silence (not upstream's 40 s) so that a lost node's pods run elsewhere
/// within 15 s: four renewals fit in that grace period.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub lease_renew: Duration,
    pub status_update: Duration,
    pub status_report: Duration,
}

impl Default for Periods {
    fn default() -> Self {
        Periods {
            lease_renew: Duration::from_secs(2),
            status_update: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
        }
    }
}

/// What the pods side needs to know about the node.
pub struct NodeState {
    pub identity: Identity,
    pub machine: Mutex<Machine>,
    /// `spec.podCIDR` once assigned.
    pub pod_cidr: tokio::sync::watch::Sender<Option<String>>,
    uid: Mutex<Option<String>>,
    last_status: Mutex<Option<(NodeStatus, Instant)>>,
    data_dir: PathBuf,
}

impl NodeState {
    pub fn new(identity: Identity, machine: Machine, data_dir: PathBuf) -> NodeState {
        NodeState {
            identity,
            machine: Mutex::new(machine),
            pod_cidr: tokio::sync::watch::channel(None).0,
            uid: Mutex::new(None),
            last_status: Mutex::new(None),
            data_dir,
        }
    }

    pub fn machine(&self) -> Machine {
        self.machine.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, node: &Node) {
        *self.uid.lock().unwrap_or_else(|e| e.into_inner()) = node.metadata.uid.clone();
        let cidr = node::pod_cidr(node);
        self.pod_cidr.send_if_modified(|c| {
            if *c != cidr && cidr.is_some() {
                *c = cidr;
                true
            } else {
                false
            }
        });
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Creates the Node, or takes over the one of that name (a restarted agent, or a node
/// that rejoins), as the kubelet does; then makes sure the Lease exists.
pub async fn register(client: &kube::Client, state: &NodeState) -> Result<(), HeartbeatError> {
    let name = state.identity.name.clone();
    let err = |source| HeartbeatError::Register { node: name.clone(), source };
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now();
    let machine = state.machine();
    let object = node::node_object(&state.identity, &machine, now);
    let mut delay = Duration::from_millis(200);
    let node = loop {
        let attempt = match nodes.create(&PostParams::default(), &object).await {
            Err(e) if is_status(&e, 409) => {
                let labels = json!({"metadata": {"labels": object.metadata.labels}});
                match nodes.patch(&name, &PatchParams::default(), &Patch::Merge(&labels)).await {
                    Ok(existing) => {
                        let previous = existing.status.and_then(|s| s.conditions).unwrap_or_default();
                        let status = node::node_status(&state.identity, &machine, &previous, now);
                        nodes
                            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(json!({"status": status})))
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match attempt {
            Ok(node) => break node,
            // The server may be starting, or busy: the kubelet retries forever.
            Err(e) if !matches!(&e, kube::Error::Api(s) if s.code < 500 && s.code != 429) => {
                tracing::warn!(node = %name, error = %e, "node registration failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
            Err(e) => return Err(err(e)),
        }
    };
    state.record(&node);
    *state.last_status.lock().unwrap_or_else(|e| e.into_inner()) = node.status.clone().map(|s| (s, Instant::now()));
    tracing::info!(node = %name, pod_cidr = ?node::pod_cidr(&node), "node registered");
    renew_lease(client, state).await;
    Ok(())
}

/// Renews the Lease; creates it when it is missing (first start, or someone deleted it).
pub async fn renew_lease(client: &kube::Client, state: &NodeState) {
    let name = &state.identity.name;
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = Timestamp::now();
    let renewal = json!({"spec": {
        "holderIdentity": name,
        "leaseDurationSeconds": node::LEASE_DURATION_SECONDS,
        "renewTime": MicroTime(now),
    }});
    let result = match leases.patch(name, &PatchParams::default(), &Patch::Merge(&renewal)).await {
        Err(e) if is_status(&e, 404) => {
            let uid = state.uid.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let lease = node::lease_for(name, uid.as_deref(), now);
            leases.create(&PostParams::default(), &lease).await.map(drop)
        }
        other => other.map(drop),
    };
    if let Err(e) = result {
        tracing::warn!(node = %name, error = %e, "lease renewal failed");
    }
}

/// Computes the status and writes it if it changed or is due for a report.
pub async fn update_status(client: &kube::Client, state: &NodeState, report_every: Duration) {
    let name = &state.identity.name;
    let machine = {
        let mut m = state.machine.lock().unwrap_or_else(|e| e.into_inner());
        m.refresh(&state.data_dir);
        m.clone()
    };
    let now = Timestamp::now();
    let (previous, due) = {
        let last = state.last_status.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((s, at)) => (Some(s.clone()), at.elapsed() >= report_every),
            None => (None, true),
        }
    };
    let previous_conditions = previous.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let status = node::node_status(&state.identity, &machine, &previous_conditions, now);
    let changed = previous.as_ref().is_none_or(|p| node::status_changed(p, &status));
    let nodes: Api<Node> = Api::all(client.clone());
    if !changed && !due {
        // Still look for the pod CIDR while it has not come.
        if state.pod_cidr.borrow().is_none()
            && let Ok(node) = nodes.get(name).await
        {
            state.record(&node);
        }
        return;
    }
    match nodes.patch_status(name, &PatchParams::default(), &Patch::Strategic(json!({"status": status}))).await {
        Ok(node) => {
            state.record(&node);
            *state.last_status.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, Instant::now()));
        }
        Err(e) if is_status(&e, 404) => {
            tracing::warn!(node = %name, "the node is gone from the server; registering again");
            if let Err(e) = register(client, state).await {
                tracing::warn!(error = %e, "registering again failed");
            }
        }
        Err(e) => tracing::warn!(node = %name, error = %e, "node status update failed"),
    }
}

/// Renews the Lease and updates the status until the task is dropped.
pub async fn run(client: kube::Client, state: Arc<NodeState>, periods: Periods) {
    let mut lease = tokio::time::interval(periods.lease_renew);
    lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // While the pod CIDR is missing, look for it every second rather than every 10.
    let mut status = tokio::time::interval(periods.status_update);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cidr_poll = tokio::time::interval(Duration::from_secs(1));
    lease.tick().await;
    status.tick().await;
    loop {
        tokio::select! {
            _ = lease.tick() => renew_lease(&client, &state).await,
            _ = status.tick() => update_status(&client, &state, periods.status_report).await,
            _ = cidr_poll.tick(), if state.pod_cidr.borrow().is_none() => {
                let nodes: Api<Node> = Api::all(client.clone());
                if let Ok(node) = nodes.get(&state.identity.name).await {
                    state.record(&node);
                }
            }
        }
    }
}
