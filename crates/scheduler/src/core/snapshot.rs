//! The cluster as the core sees it: nodes with their pods, namespaces' labels, and
//! disruption budgets. Updated incrementally (a pod added, a node changed) so each
//! decision sees the previous one without a rebuild.

use super::model::{Labels, Node, NodeInfo, Pdb, PodInfo};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pod uid to the name of the node it is on.
    pod_node: HashMap<String, String>,
    /// Pods bound to nodes the snapshot does not have (yet), by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    namespaces: HashMap<String, Labels>,
    pdbs: Vec<Pdb>,
    /// Pending pods that preemption nominated to a node, by uid.
    nominated: HashMap<String, Arc<PodInfo>>,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }

    pub fn pdbs(&self) -> &[Pdb] {
        &self.pdbs
    }

    /// Whether any pod in the cluster has (anti-)affinity terms, and required anti-affinity.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    pub fn any_pod_with_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    /// Adds a node or replaces what is known of it, keeping its pods.
    pub fn upsert_node(&mut self, node: Node) {
        if let Some(&i) = self.index.get(&node.name) {
            self.nodes[i].node = node;
            return;
        }
        let name = node.name.clone();
        let mut info = NodeInfo::new(node);
        for pod in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(pod);
        }
        self.index.insert(name, self.nodes.len());
        self.nodes.push(info);
    }

    /// Removes a node; its pods are kept aside until it comes back or they go.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].node.name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(name.to_string(), info.pods);
        }
    }

    /// Adds a pod bound to `pod.node_name`, replacing an earlier version of it.
    /// Pods without a node are ignored.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.uid);
        let Some(node) = pod.node_name.clone() else { return };
        self.pod_node.insert(pod.uid.clone(), node.clone());
        self.pods_with_affinity += usize::from(pod.has_affinity());
        self.pods_with_required_anti_affinity += usize::from(!pod.required_anti_affinity.is_empty());
        match self.index.get(&node) {
            Some(&i) => self.nodes[i].add_pod(pod),
            None => self.orphans.entry(node).or_default().push(pod),
        }
    }

    /// Records that `pod` goes to `node` before the binding is confirmed, so the next
    /// decision sees it (upstream's assume).
    pub fn assume(&mut self, pod: &PodInfo, node: &str) -> Arc<PodInfo> {
        let mut assumed = pod.clone();
        assumed.node_name = Some(node.to_string());
        assumed.nominated_node = None;
        let assumed = Arc::new(assumed);
        self.nominated.remove(&pod.uid);
        self.add_pod(assumed.clone());
        assumed
    }

    /// Removes a pod wherever it is; returns it when it was there.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let node = self.pod_node.remove(uid)?;
        let removed = match self.index.get(&node) {
            Some(&i) => self.nodes[i].remove_pod(uid),
            None => {
                let list = self.orphans.get_mut(&node)?;
                let i = list.iter().position(|p| p.uid == uid)?;
                let pod = list.swap_remove(i);
                if list.is_empty() {
                    self.orphans.remove(&node);
                }
                Some(pod)
            }
        };
        if let Some(pod) = &removed {
            self.pods_with_affinity -= usize::from(pod.has_affinity());
            self.pods_with_required_anti_affinity -= usize::from(!pod.required_anti_affinity.is_empty());
        }
        removed
    }

    /// Every pod on a node (or waiting for its node), by uid.
    pub fn pod_uids(&self) -> impl Iterator<Item = &String> {
        self.pod_node.keys()
    }

    pub fn contains_pod(&self, uid: &str) -> bool {
        self.pod_node.contains_key(uid)
    }

    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        self.namespaces.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn set_pdbs(&mut self, pdbs: Vec<Pdb>) {
        self.pdbs = pdbs;
    }

    /// Records (or clears, with `None`) the node preemption nominated a pending pod to.
    pub fn set_nominated(&mut self, pod: &PodInfo) {
        match &pod.nominated_node {
            Some(_) if pod.node_name.is_none() => {
                self.nominated.insert(pod.uid.clone(), Arc::new(pod.clone()));
            }
            _ => {
                self.nominated.remove(&pod.uid);
            }
        }
    }

    pub fn clear_nominated(&mut self, uid: &str) {
        self.nominated.remove(uid);
    }

    /// Nominated pods on `node` other than `except_uid` with at least `min_priority`:
    /// filters treat them as already there (upstream's RunFilterPluginsWithNominatedPods).
    pub fn nominated_on(&self, node: &str, except_uid: &str, min_priority: i32) -> Vec<Arc<PodInfo>> {
        if self.nominated.is_empty() {
            return Vec::new();
        }
        self.nominated
            .values()
            .filter(|p| p.uid != except_uid && p.priority >= min_priority && p.nominated_node.as_deref() == Some(node))
            .cloned()
            .collect()
    }

    pub fn has_nominated(&self) -> bool {
        !self.nominated.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        Node { name: name.into(), allowed_pods: 110, ..Default::default() }
    }

    fn pod(uid: &str, node: Option<&str>, cpu: i64) -> Arc<PodInfo> {
        let mut p = PodInfo { uid: uid.into(), name: uid.into(), namespace: "default".into(), ..Default::default() };
        p.node_name = node.map(str::to_string);
        p.requests.milli_cpu = cpu;
        Arc::new(p)
    }

    #[test]
    fn pods_follow_their_node_in_and_out() {
        let mut s = Snapshot::new();
        s.add_pod(pod("a", Some("n1"), 100));
        assert!(s.contains_pod("a"));
        s.upsert_node(node("n1"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 100, "pods seen before their node are kept");
        s.add_pod(pod("a", Some("n1"), 300));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 300, "a new version replaces the old one");
        s.remove_node("n1");
        assert!(s.node("n1").is_none());
        s.upsert_node(node("n1"));
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
        assert!(s.remove_pod("a").is_some());
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
        assert!(s.remove_pod("a").is_none());
    }

    #[test]
    fn removing_a_node_keeps_the_index_right() {
        let mut s = Snapshot::new();
        for n in ["n1", "n2", "n3"] {
            s.upsert_node(node(n));
        }
        s.remove_node("n1");
        assert_eq!(s.nodes().len(), 2);
        assert_eq!(s.node("n3").unwrap().node.name, "n3");
        assert_eq!(s.node("n2").unwrap().node.name, "n2");
    }

    #[test]
    fn assume_makes_the_next_decision_see_the_pod() {
        let mut s = Snapshot::new();
        s.upsert_node(node("n1"));
        let p = pod("a", None, 250);
        s.assume(&p, "n1");
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 250);
        // The bound pod arriving from the watch replaces the assumed one.
        s.add_pod(pod("a", Some("n1"), 250));
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
    }

    #[test]
    fn nominated_pods_are_listed_per_node_by_priority() {
        let mut s = Snapshot::new();
        let mut p = (*pod("a", None, 1)).clone();
        p.priority = 10;
        p.nominated_node = Some("n1".into());
        s.set_nominated(&p);
        assert_eq!(s.nominated_on("n1", "other", 5).len(), 1);
        assert!(s.nominated_on("n1", "other", 11).is_empty());
        assert!(s.nominated_on("n1", "a", 0).is_empty());
        assert!(s.nominated_on("n2", "other", 0).is_empty());
        p.nominated_node = None;
        s.set_nominated(&p);
        assert!(!s.has_nominated());
    }
}
