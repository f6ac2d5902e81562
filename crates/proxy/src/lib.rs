//! The per-node service proxy: nftables rules that send ClusterIP, NodePort,
//! external-IP and LoadBalancer traffic to the ready endpoints of each Service,
//! programmed from Services and EndpointSlices, as kube-proxy's nftables mode does.
//!
//! Start with [`run`], which the node agent calls. The parts: [`model`] is the
//! compact copy of the cluster, [`rules`] decides the nftables text without I/O
//! (per Service, so a change rewrites only that Service), and [`sync`] applies it
//! through `nft -f -`, one atomic transaction per sync. Everything lives in a table
//! of our own (`ip rudder`), deleted when the proxy stops cleanly and replaced
//! whole by the first sync after a start, so a restart converges.

pub mod model;
pub mod rules;
pub mod sync;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use model::{Key, State};
use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

pub use sync::{Nft, NftCommand, Proxier, RecordingNft};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running {program}: {source}")]
    NftSpawn { program: PathBuf, source: std::io::Error },
    #[error("talking to nft: {0}")]
    NftIo(std::io::Error),
    #[error("nft refused the transaction: {stderr}")]
    NftFailed { stderr: String },
    #[error("setting {path}: {source}")]
    Sysctl { path: &'static str, source: std::io::Error },
}

const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Passes bridged IPv4 traffic through the IP hooks, where the rules are. A kernel
/// without `br_netfilter` has no such file and no bridged traffic to worry about.
pub fn enable_bridge_netfilter() -> Result<(), Error> {
    match std::fs::read_to_string(BRIDGE_NF_CALL_IPTABLES) {
        Ok(v) if v.trim() == "1" => Ok(()),
        Ok(_) => std::fs::write(BRIDGE_NF_CALL_IPTABLES, "1")
            .map_err(|source| Error::Sysctl { path: BRIDGE_NF_CALL_IPTABLES, source }),
        Err(_) => Ok(()),
    }
}

/// What the proxy needs to know about its node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Endpoints with this `nodeName` are local (the `Local` traffic policies).
    pub node_name: String,
    /// The node's addresses: NodePorts answer on each.
    pub node_ips: Vec<Ipv4Addr>,
    /// The pod network, e.g. `10.42.0.0/16`: ClusterIP traffic from outside it is
    /// masqueraded so replies come back through this node.
    pub cluster_cidr: String,
    /// The Service network: traffic to unallocated addresses in it is dropped.
    pub service_cidr: Option<String>,
    /// The nftables table (family `ip`) the proxy owns.
    pub table: String,
    pub nft: NftCommand,
    /// Changes arriving closer together than this are applied in one transaction.
    pub min_sync_period: Duration,
    /// How often the whole table is rewritten anyway, repairing outside tampering.
    pub full_sync_period: Duration,
    /// Turn on `net.bridge.bridge-nf-call-iptables` in the proxy's network
    /// namespace at start: without it a pod reaching a ClusterIP whose endpoint is
    /// behind the same bridge gets the reply straight from the pod's address, which
    /// it drops (k3s's agent sets it for the same reason).
    pub bridge_netfilter: bool,
}

impl Config {
    pub fn new(node_name: impl Into<String>, node_ips: Vec<Ipv4Addr>, cluster_cidr: impl Into<String>) -> Config {
        Config {
            node_name: node_name.into(),
            node_ips,
            cluster_cidr: cluster_cidr.into(),
            service_cidr: None,
            table: "rudder".into(),
            nft: NftCommand::default(),
            min_sync_period: Duration::from_millis(100),
            full_sync_period: Duration::from_secs(3600),
            bridge_netfilter: true,
        }
    }

    fn node(&self) -> rules::Node {
        rules::Node {
            name: self.node_name.clone(),
            ips: self.node_ips.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            service_cidr: self.service_cidr.clone(),
        }
    }
}

fn key_of<K: ResourceExt>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Applies one watch event to the state; returns the Services it touched.
fn on_service(
    state: &mut State,
    listed: &mut HashSet<Key>,
    event: watcher::Event<Service>,
    dirty: &mut BTreeSet<Key>,
) -> bool {
    let put = |state: &mut State, svc: &Service, dirty: &mut BTreeSet<Key>| {
        let key = key_of(svc);
        let changed = match model::service_info(svc) {
            Some(info) => state.put_service(key.clone(), info),
            None => state.remove_service(&key),
        };
        if changed {
            dirty.insert(key);
        }
    };
    match event {
        watcher::Event::Apply(svc) => put(state, &svc, dirty),
        watcher::Event::Delete(svc) => {
            let key = key_of(&svc);
            if state.remove_service(&key) {
                dirty.insert(key);
            }
        }
        watcher::Event::Init => listed.clear(),
        watcher::Event::InitApply(svc) => {
            listed.insert(key_of(&svc));
            put(state, &svc, dirty);
        }
        watcher::Event::InitDone => {
            let gone: Vec<Key> = state.services.keys().filter(|k| !listed.contains(*k)).cloned().collect();
            for key in gone {
                state.remove_service(&key);
                dirty.insert(key);
            }
            return true;
        }
    }
    false
}

fn on_slice(
    state: &mut State,
    listed: &mut HashSet<Key>,
    event: watcher::Event<EndpointSlice>,
    dirty: &mut BTreeSet<Key>,
) -> bool {
    let put = |state: &mut State, slice: &EndpointSlice, dirty: &mut BTreeSet<Key>| {
        let (service, info) = model::slice_info(slice);
        dirty.extend(state.put_slice(key_of(slice), service, info));
    };
    match event {
        watcher::Event::Apply(slice) => put(state, &slice, dirty),
        watcher::Event::Delete(slice) => dirty.extend(state.remove_slice(&key_of(&slice))),
        watcher::Event::Init => listed.clear(),
        watcher::Event::InitApply(slice) => {
            listed.insert(key_of(&slice));
            put(state, &slice, dirty);
        }
        watcher::Event::InitDone => {
            for key in state.slice_keys().into_iter().filter(|k| !listed.contains(k)) {
                dirty.extend(state.remove_slice(&key));
            }
            return true;
        }
    }
    false
}

/// Watches Services and EndpointSlices through `client` and keeps the node's
/// nftables table in line with them until `shutdown`; then deletes the table.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if config.bridge_netfilter
        && let Err(e) = enable_bridge_netfilter()
    {
        tracing::warn!(error = %e, "pods behind one bridge may not reach each other's Services");
    }
    let mut proxier = Proxier::new(config.nft.clone(), config.table.clone(), config.node());
    let mut services =
        watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff().boxed();
    let mut slices =
        watcher(Api::<EndpointSlice>::all(client), watcher::Config::default().labels(model::SERVICE_NAME_LABEL))
            .default_backoff()
            .boxed();
    let mut state = State::default();
    let (mut listed_services, mut listed_slices) = (HashSet::new(), HashSet::new());
    let (mut services_synced, mut slices_synced) = (false, false);
    let mut dirty: BTreeSet<Key> = BTreeSet::new();
    let mut next_sync: Option<Instant> = None;
    let mut next_full = Instant::now() + config.full_sync_period;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let deadline = next_sync.unwrap_or(next_full).min(next_full);
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = services.next() => match event {
                Ok(e) => services_synced |= on_service(&mut state, &mut listed_services, e, &mut dirty),
                Err(e) => tracing::warn!(error = %e, "service watch failed; retrying"),
            },
            Some(event) = slices.next() => match event {
                Ok(e) => slices_synced |= on_slice(&mut state, &mut listed_slices, e, &mut dirty),
                Err(e) => tracing::warn!(error = %e, "endpointslice watch failed; retrying"),
            },
            () = tokio::time::sleep_until(deadline), if services_synced && slices_synced => {
                let full = Instant::now() >= next_full;
                let started = std::time::Instant::now();
                let result = proxier.sync(&state, (!full).then_some(&dirty)).await;
                match result {
                    Ok(done) => {
                        tracing::debug!(?done, elapsed = ?started.elapsed(), "proxy rules synced");
                        dirty.clear();
                        next_sync = None;
                        if full {
                            next_full = Instant::now() + config.full_sync_period;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "programming nftables failed; retrying in 1s");
                        next_sync = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
                continue;
            }
        }
        // The first sync waits for both lists; later ones for a quiet moment.
        if next_sync.is_none() && services_synced && slices_synced && (!dirty.is_empty() || !proxier.is_applied()) {
            next_sync = Some(Instant::now() + config.min_sync_period);
        }
    }
    proxier.cleanup().await
}
