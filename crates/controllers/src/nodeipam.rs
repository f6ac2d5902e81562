//! The node IPAM controller (upstream's `pkg/controller/nodeipam` with its range
//! allocator): every node gets a pod network of its own, `spec.podCIDR` and
//! `spec.podCIDRs`, cut from the cluster CIDR (`--cluster-cidr`, a `/24` each by
//! default, `--node-cidr-mask-size`). No network is handed out twice: on start, and
//! after every relist, the set of used networks is rebuilt from the nodes that have
//! one (they keep it), and a deleted node's network is free again. When none is left
//! the node gets a `CIDRNotAvailable` event and waits for one.
//!
//! [`CidrSet`] is the pure allocator; [`run`] watches nodes and writes.

use crate::Informers;
use crate::events::{Event, EventType};
use crate::recorder;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Config {
    /// `--cluster-cidr`: the pod network all node networks are cut from.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`: the prefix length of each node's network.
    pub node_cidr_mask_size: u8,
}

impl Default for Config {
    fn default() -> Config {
        Config { cluster_cidr: "10.42.0.0/16".into(), node_cidr_mask_size: 24 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("invalid CIDR {0:?} (an IPv4 network such as 10.42.0.0/16 is expected)")]
    Invalid(String),
    #[error("node CIDR mask size {node} is smaller than the cluster CIDR's /{cluster}")]
    MaskTooSmall { node: u8, cluster: u8 },
    #[error("node CIDR mask size {node} cuts /{cluster} into more than 65536 networks")]
    TooManyNetworks { node: u8, cluster: u8 },
}

fn parse(cidr: &str) -> Result<(u32, u8), CidrError> {
    let bad = || CidrError::Invalid(cidr.to_string());
    let (ip, len) = cidr.trim().split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok((u32::from(ip) & mask(len), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

/// The node networks of one cluster CIDR and which are taken (upstream's cidrset):
/// handed out in order from where the last allocation left off, so a network just
/// freed is not reused at once.
#[derive(Debug, Clone)]
pub struct CidrSet {
    base: u32,
    node_len: u8,
    used: Vec<bool>,
    taken: usize,
    next: usize,
}

impl CidrSet {
    pub fn new(cluster_cidr: &str, node_len: u8) -> Result<CidrSet, CidrError> {
        let (base, cluster_len) = parse(cluster_cidr)?;
        if node_len < cluster_len || node_len > 32 {
            return Err(CidrError::MaskTooSmall { node: node_len, cluster: cluster_len });
        }
        if node_len - cluster_len > 16 {
            return Err(CidrError::TooManyNetworks { node: node_len, cluster: cluster_len });
        }
        let count = 1usize << (node_len - cluster_len);
        Ok(CidrSet { base, node_len, used: vec![false; count], taken: 0, next: 0 })
    }

    fn cidr(&self, index: usize) -> String {
        let ip = self.base + ((index as u32) << (32 - u32::from(self.node_len)));
        format!("{}/{}", Ipv4Addr::from(ip), self.node_len)
    }

    /// The indices of the node networks a CIDR covers, or none outside the cluster CIDR.
    fn indices(&self, cidr: &str) -> Option<std::ops::RangeInclusive<usize>> {
        let (ip, len) = parse(cidr).ok()?;
        let shift = 32 - u32::from(self.node_len);
        let last = ip | !mask(len);
        let size = (self.used.len() as u64) << shift;
        let (lo, hi) = (u64::from(ip), u64::from(last));
        let base = u64::from(self.base);
        if lo < base || hi >= base + size {
            return None;
        }
        Some(((lo - base) >> shift) as usize..=((hi - base) >> shift) as usize)
    }

    /// Takes the next free network, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        for i in 0..n {
            let index = (self.next + i) % n;
            if !self.used[index] {
                self.used[index] = true;
                self.taken += 1;
                self.next = (index + 1) % n;
                return Some(self.cidr(index));
            }
        }
        None
    }

    /// Marks a network a node already has as taken; false when it lies outside the
    /// cluster CIDR (then it is the node's business, and nothing here changes).
    pub fn occupy(&mut self, cidr: &str) -> bool {
        let Some(range) = self.indices(cidr) else { return false };
        for i in range {
            if !self.used[i] {
                self.used[i] = true;
                self.taken += 1;
            }
        }
        true
    }

    pub fn release(&mut self, cidr: &str) {
        let Some(range) = self.indices(cidr) else { return };
        for i in range {
            if self.used[i] {
                self.used[i] = false;
                self.taken -= 1;
            }
        }
    }

    pub fn free(&self) -> usize {
        self.used.len() - self.taken
    }
}

fn node_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if cidrs.is_empty()
        && let Some(c) = spec.and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty())
    {
        cidrs.push(c);
    }
    cidrs
}

/// The allocator's bookkeeping, apart from the watch and the writes.
struct Allocator {
    set: CidrSet,
    /// Each known node's networks (empty: it has none yet).
    nodes: HashMap<String, Vec<String>>,
    /// Networks being written to nodes.
    pending: HashMap<String, String>,
    /// Nodes told there is no network left, told once until one frees up.
    starved: HashSet<String>,
}

impl Allocator {
    /// Rebuilds the used set from the nodes as listed, and what is being written to
    /// nodes still there. The rotation point stays, so a just-freed network waits.
    fn rebuild(&mut self, nodes: HashMap<String, Vec<String>>) {
        self.set.used.iter_mut().for_each(|u| *u = false);
        self.set.taken = 0;
        self.pending.retain(|n, _| nodes.contains_key(n));
        for c in nodes.values().flatten().chain(self.pending.values()) {
            self.set.occupy(c);
        }
        self.starved.retain(|n| nodes.contains_key(n));
        self.nodes = nodes;
    }

    /// A node was added or changed: returns a network to give it, if it needs one.
    fn on_node(&mut self, name: &str, cidrs: Vec<String>) -> Option<String> {
        for c in &cidrs {
            self.set.occupy(c);
        }
        let needs = cidrs.is_empty() && !self.pending.contains_key(name);
        self.nodes.insert(name.to_string(), cidrs);
        if !needs {
            return None;
        }
        let cidr = self.set.allocate()?;
        self.pending.insert(name.to_string(), cidr.clone());
        Some(cidr)
    }

    fn on_delete(&mut self, name: &str) {
        for c in self.nodes.remove(name).unwrap_or_default() {
            self.set.release(&c);
        }
        if let Some(c) = self.pending.remove(name) {
            self.set.release(&c);
        }
        self.starved.remove(name);
    }

    /// A write finished: on failure the network is free again. A write no longer
    /// pending (its node was deleted or relisted away meanwhile) changes nothing here.
    fn written(&mut self, name: &str, cidr: &str, ok: bool) {
        if self.pending.get(name).map(String::as_str) != Some(cidr) {
            return;
        }
        self.pending.remove(name);
        if ok {
            self.starved.remove(name);
            self.nodes.insert(name.to_string(), vec![cidr.to_string()]);
        } else {
            self.set.release(cidr);
        }
    }

    /// Nodes still without a network and none on its way.
    fn waiting(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(n, c)| c.is_empty() && !self.pending.contains_key(*n))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

pub async fn run(client: Client, informers: Informers, config: Config) {
    let set = match CidrSet::new(&config.cluster_cidr, config.node_cidr_mask_size) {
        Ok(set) => set,
        Err(e) => {
            tracing::error!(error = %e, "node IPAM is off");
            return;
        }
    };
    let events = recorder(&client, "cidrAllocator");
    let mut alloc = Allocator { set, nodes: HashMap::new(), pending: HashMap::new(), starved: HashSet::new() };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String, bool)>();
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = informers.get::<Node>().subscribe().boxed();
    let mut listing: Option<HashMap<String, Vec<String>>> = None;
    let mut synced = false;
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut wanted: Vec<(String, Option<String>)> = Vec::new();
        tokio::select! {
            Some(ev) = nodes.next() => match ev {
                watcher::Event::Init => listing = Some(HashMap::new()),
                watcher::Event::InitApply(node) => {
                    listing.get_or_insert_with(HashMap::new).insert(node.name_any(), node_cidrs(&node));
                }
                watcher::Event::InitDone => {
                    alloc.rebuild(listing.take().unwrap_or_default());
                    synced = true;
                    tracing::info!(nodes = alloc.nodes.len(), free = alloc.set.free(), "node IPAM synced");
                    for name in alloc.waiting() {
                        let cidr = alloc.on_node(&name, Vec::new());
                        wanted.push((name, cidr));
                    }
                }
                watcher::Event::Apply(node) if synced => {
                    let name = node.name_any();
                    let has = node_cidrs(&node);
                    let needs = has.is_empty() && !alloc.pending.contains_key(&name);
                    let cidr = alloc.on_node(&name, has);
                    if needs {
                        wanted.push((name, cidr));
                    }
                }
                watcher::Event::Apply(node) => {
                    listing.get_or_insert_with(HashMap::new).insert(node.name_any(), node_cidrs(&node));
                }
                watcher::Event::Delete(node) => alloc.on_delete(&node.name_any()),
            },
            Some((name, cidr, ok)) = done_rx.recv() => alloc.written(&name, &cidr, ok),
            _ = retry.tick(), if synced => {
                for name in alloc.waiting() {
                    let cidr = alloc.on_node(&name, Vec::new());
                    wanted.push((name, cidr));
                }
            }
        }
        for (name, cidr) in wanted {
            match cidr {
                Some(cidr) => {
                    let (api, done) = (api.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                        let ok = match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                            Ok(_) => {
                                tracing::info!(node = %name, %cidr, "assigned the node's pod CIDR");
                                true
                            }
                            Err(e) => {
                                tracing::warn!(node = %name, %cidr, error = %e, "assigning the pod CIDR failed");
                                false
                            }
                        };
                        let _ = done.send((name, cidr, ok));
                    });
                }
                None => {
                    if alloc.starved.insert(name.clone()) {
                        tracing::warn!(node = %name, cidr = %config.cluster_cidr, "no pod CIDR left for the node");
                        let reference = ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Node".into()),
                            name: Some(name.clone()),
                            ..Default::default()
                        };
                        let ev = Event {
                            type_: EventType::Normal,
                            reason: "CIDRNotAvailable".into(),
                            note: Some(format!("Node {name} status is now: CIDRNotAvailable")),
                            action: "CIDRNotAvailable".into(),
                            secondary: None,
                        };
                        let events = events.clone();
                        tokio::spawn(async move {
                            let _ = events.publish(&ev, &reference).await;
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_come_in_order_and_never_twice() {
        let mut s = CidrSet::new("10.42.0.0/16", 24).unwrap();
        assert_eq!(s.free(), 256);
        assert_eq!(s.allocate().as_deref(), Some("10.42.0.0/24"));
        assert!(s.occupy("10.42.1.0/24"));
        assert_eq!(s.allocate().as_deref(), Some("10.42.2.0/24"));
        // A freed network is reused only after the rest went round.
        s.release("10.42.0.0/24");
        assert_eq!(s.allocate().as_deref(), Some("10.42.3.0/24"));
        assert_eq!(s.free(), 256 - 3);
    }

    #[test]
    fn a_small_cluster_cidr_runs_out() {
        let mut s = CidrSet::new("10.0.0.0/30", 31).unwrap();
        assert_eq!(s.allocate().as_deref(), Some("10.0.0.0/31"));
        assert_eq!(s.allocate().as_deref(), Some("10.0.0.2/31"));
        assert_eq!(s.allocate(), None);
        s.release("10.0.0.2/31");
        assert_eq!(s.allocate().as_deref(), Some("10.0.0.2/31"));
    }

    #[test]
    fn foreign_and_wider_networks() {
        let mut s = CidrSet::new("10.42.0.0/16", 24).unwrap();
        assert!(!s.occupy("192.168.0.0/24"));
        assert!(!s.occupy("10.0.0.0/8"), "wider than the cluster CIDR");
        assert!(s.occupy("10.42.4.0/23"));
        assert_eq!(s.free(), 254);
        // A host address inside a network marks that network.
        assert!(s.occupy("10.42.9.7/32"));
        assert_eq!(s.free(), 253);
        s.release("10.42.4.0/23");
        assert_eq!(s.free(), 255);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(CidrSet::new("10.42.0.0", 24).unwrap_err(), CidrError::Invalid("10.42.0.0".into()));
        assert!(matches!(CidrSet::new("fd00::/48", 64), Err(CidrError::Invalid(_))));
        assert_eq!(CidrSet::new("10.42.0.0/16", 8).unwrap_err(), CidrError::MaskTooSmall { node: 8, cluster: 16 });
        assert_eq!(CidrSet::new("10.0.0.0/8", 28).unwrap_err(), CidrError::TooManyNetworks { node: 28, cluster: 8 });
        // Host bits in the cluster CIDR are ignored, as Go's ParseCIDR does.
        let mut s = CidrSet::new("10.42.7.9/16", 24).unwrap();
        assert_eq!(s.allocate().as_deref(), Some("10.42.0.0/24"));
    }

    #[test]
    fn the_allocator_rebuilds_from_existing_nodes_and_frees_deleted_ones() {
        let mut a = Allocator {
            set: CidrSet::new("10.42.0.0/16", 24).unwrap(),
            nodes: HashMap::new(),
            pending: HashMap::new(),
            starved: HashSet::new(),
        };
        let listed: HashMap<String, Vec<String>> = [
            ("a".to_string(), vec!["10.42.0.0/24".to_string()]),
            ("b".to_string(), vec![]),
            ("c".to_string(), vec!["10.42.1.0/24".to_string()]),
        ]
        .into();
        a.rebuild(listed);
        assert_eq!(a.waiting(), vec!["b".to_string()]);
        let given = a.on_node("b", vec![]).unwrap();
        assert_eq!(given, "10.42.2.0/24");
        // While the write is under way the node is not given another.
        assert_eq!(a.on_node("b", vec![]), None);
        assert!(a.waiting().is_empty());
        a.written("b", &given, true);
        // A failed write frees the network.
        let d = a.on_node("d", vec![]).unwrap();
        a.written("d", &d, false);
        assert_eq!(a.waiting(), vec!["d".to_string()]);
        assert_eq!(a.set.free(), 253);
        a.on_delete("a");
        assert_eq!(a.set.free(), 254);
        // A relist keeps what nodes have and what is being written.
        let e = a.on_node("e", vec![]).unwrap();
        a.rebuild([("b".to_string(), vec![given.clone()]), ("e".to_string(), vec![])].into());
        assert_eq!(a.pending.get("e"), Some(&e));
        assert_eq!(a.set.free(), 254);
    }
}
