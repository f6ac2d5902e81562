//! The plain data the core decides over: pods and nodes reduced to what scheduling
//! reads, already parsed (quantities to integers, selectors to requirements), so a
//! decision does no parsing and no allocation per node.

use std::collections::BTreeMap;
use std::sync::Arc;

pub type Labels = BTreeMap<String, String>;

/// The key of the taint a cordoned node is treated as having.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The lifecycle taints for nodes whose Ready condition is False / Unknown.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// Default requests used for scoring containers that request nothing, as upstream's
/// `DefaultMilliCPURequest` and `DefaultMemoryRequest`.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources a pod requests or a node offers. CPU in millicores,
/// memory and ephemeral storage in bytes, extended resources in whole units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`nvidia.com/gpu`, `hugepages-2Mi`), sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)).map(|i| self.scalar[i].1).unwrap_or(0)
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_string(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    /// Adds (`sign` 1) or subtracts (`sign` -1) another amount.
    pub fn add(&mut self, other: &Resources, sign: i64) {
        self.milli_cpu += sign * other.milli_cpu;
        self.memory += sign * other.memory;
        self.ephemeral_storage += sign * other.ephemeral_storage;
        for (name, v) in &other.scalar {
            *self.scalar_mut(name) += sign * v;
        }
    }

    /// Raises each amount to at least the other's.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let mine = self.scalar_mut(name);
            *mine = (*mine).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    /// An effect this scheduler does not know; never filtered on.
    Other,
}

impl Effect {
    pub fn parse(s: &str) -> Effect {
        match s {
            "NoSchedule" => Effect::NoSchedule,
            "PreferNoSchedule" => Effect::PreferNoSchedule,
            "NoExecute" => Effect::NoExecute,
            _ => Effect::Other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOp {
    Equal,
    Exists,
    /// Unknown operators tolerate nothing, as upstream's `ToleratesTaint`.
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// Empty tolerates every key (with `Exists`).
    pub key: String,
    pub op: TolerationOp,
    pub value: String,
    /// `None` tolerates every effect.
    pub effect: Option<Effect>,
}

impl Toleration {
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.op {
            TolerationOp::Equal => self.value == taint.value,
            TolerationOp::Exists => true,
            TolerationOp::Invalid => false,
        }
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    /// An operator or value that does not parse: matches nothing.
    Invalid,
}

/// One requirement on a label (or a field) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn new(key: &str, op: Op, values: &[&str]) -> Requirement {
        Requirement { key: key.to_string(), op, values: values.iter().map(|s| s.to_string()).collect() }
    }

    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                // Both sides must be integers; a single value was checked at conversion.
                let (Some(v), Some(bound)) = (value, self.values.first()) else { return false };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else { return false };
                if self.op == Op::Gt { v > bound } else { v < bound }
            }
            Op::Invalid => false,
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }
}

/// A label selector: `Nothing` for an absent selector (matches no object), otherwise
/// the ANDed requirements (none: matches everything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Nothing,
    Match(Vec<Requirement>),
}

impl Selector {
    pub fn everything() -> Selector {
        Selector::Match(Vec::new())
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Match(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    pub fn is_nothing(&self) -> bool {
        matches!(self, Selector::Nothing)
    }
}

/// One term of a node selector: expressions over labels and fields, ANDed. A term
/// with neither matches no node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
    /// Only `metadata.name` is a supported field; any other key matches nothing.
    pub match_fields: Vec<Requirement>,
}

impl NodeSelectorTerm {
    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions.iter().all(|r| r.matches(labels))
            && self.match_fields.iter().all(|r| {
                r.key == "metadata.name" && matches!(r.op, Op::In | Op::NotIn) && r.matches_value(Some(node_name))
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub term: NodeSelectorTerm,
}

/// A pod (anti-)affinity term with its namespaces resolved against the pod that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffinityTerm {
    pub selector: Selector,
    /// Listed namespaces; the owning pod's namespace when neither these nor a
    /// namespace selector were given.
    pub namespaces: Vec<String>,
    pub namespace_selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Whether `pod` (whose namespace carries `ns_labels`) matches this term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        static NO_LABELS: Labels = Labels::new();
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.matches(ns_labels.unwrap_or(&NO_LABELS));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedAffinityTerm {
    pub weight: i32,
    pub term: AffinityTerm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// The label selector with `matchLabelKeys` already merged in.
    pub selector: Selector,
    pub min_domains: Option<i32>,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes matching the pod's node
    /// selector and required affinity count.
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): only nodes whose taints the pod
    /// tolerates count.
    pub honor_node_taints: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// `0.0.0.0` when not given.
    pub ip: String,
    /// `TCP` when not given.
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// What scheduling reads of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// `spec.priority`, 0 when absent.
    pub priority: i32,
    /// `spec.preemptionPolicy: Never`.
    pub preempt_never: bool,
    /// `status.startTime` in seconds since the epoch, for ordering victims.
    pub start_time: Option<i64>,
    /// Effective requests: containers, init-container maximum, sidecars and overhead.
    pub requests: Resources,
    /// Requests with defaults for containers that request no CPU or memory (scoring).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    /// `spec.nodeName`: set for bound (or assumed) pods.
    pub node_name: Option<String>,
    /// `status.nominatedNodeName`.
    pub nominated_node: Option<String>,
    pub node_selector: Labels,
    /// Required node affinity terms (ORed); `None` when absent.
    pub required_node_affinity: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    pub spread: Vec<SpreadConstraint>,
    /// Has a deletion timestamp.
    pub terminating: bool,
}

impl PodInfo {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// Whether the pod's node selector and required node affinity accept the node.
    pub fn matches_node_selector(&self, node: &Node) -> bool {
        if !self.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            return false;
        }
        match &self.required_node_affinity {
            None => true,
            Some(terms) => terms.iter().any(|t| t.matches(&node.name, &node.labels)),
        }
    }

    /// Whether the pod tolerates every NoSchedule / NoExecute taint of the node.
    pub fn tolerates_node(&self, node: &Node) -> bool {
        first_untolerated_taint(&node.taints, &self.tolerations).is_none()
    }
}

/// The first NoSchedule / NoExecute taint no toleration covers (upstream's
/// `FindMatchingUntoleratedTaint` with the TaintToleration filter predicate).
pub fn first_untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| matches!(t.effect, Effect::NoSchedule | Effect::NoExecute))
        .find(|t| !tolerated(tolerations, t))
}

/// What scheduling reads of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub allocatable: Resources,
    /// `allocatable.pods`.
    pub allowed_pods: i64,
    /// Spec taints, plus the lifecycle taint for a node that is not Ready when the
    /// node lifecycle controller has not put one there yet.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
}

/// A node with the pods on it and their sums, kept current as pods come and go.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub node: Node,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: Vec<HostPort>,
    /// Pods with any (anti-)affinity, and with required anti-affinity.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Node) -> NodeInfo {
        NodeInfo { node, ..NodeInfo::default() }
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.account(&pod, 1);
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; returns it when it was there.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.account(&pod, -1);
        Some(pod)
    }

    fn account(&mut self, pod: &PodInfo, sign: i64) {
        self.requested.add(&pod.requests, sign);
        self.non_zero_milli_cpu += sign * pod.non_zero_milli_cpu;
        self.non_zero_memory += sign * pod.non_zero_memory;
        if sign > 0 {
            self.used_ports.extend(pod.host_ports.iter().cloned());
        } else {
            for p in &pod.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                    self.used_ports.swap_remove(i);
                }
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity = self.pods_with_affinity.saturating_add_signed(sign as isize);
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity =
                self.pods_with_required_anti_affinity.saturating_add_signed(sign as isize);
        }
    }
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pdb {
    pub namespace: String,
    /// An empty selector matches no pod for a PDB (upstream's policy).
    pub selector: Selector,
    pub disruptions_allowed: i32,
    /// `status.disruptedPods`: already counted against the budget.
    pub disrupted_pods: Vec<String>,
}

impl Pdb {
    pub fn selects(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.namespace
            && match &self.selector {
                Selector::Nothing => false,
                Selector::Match(r) if r.is_empty() => false,
                s => s.matches(&pod.labels),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn requirements_follow_upstream_operators() {
        let l = labels(&[("zone", "a"), ("gen", "5")]);
        assert!(Requirement::new("zone", Op::In, &["a", "b"]).matches(&l));
        assert!(!Requirement::new("zone", Op::NotIn, &["a"]).matches(&l));
        assert!(Requirement::new("missing", Op::NotIn, &["a"]).matches(&l));
        assert!(Requirement::new("zone", Op::Exists, &[]).matches(&l));
        assert!(Requirement::new("missing", Op::DoesNotExist, &[]).matches(&l));
        assert!(Requirement::new("gen", Op::Gt, &["4"]).matches(&l));
        assert!(!Requirement::new("gen", Op::Gt, &["5"]).matches(&l));
        assert!(Requirement::new("gen", Op::Lt, &["6"]).matches(&l));
        assert!(!Requirement::new("zone", Op::Lt, &["6"]).matches(&l), "non-integer labels never match Gt/Lt");
        assert!(!Requirement::new("missing", Op::Gt, &["1"]).matches(&l));
        assert!(!Requirement::new("zone", Op::Invalid, &["a"]).matches(&l));
    }

    #[test]
    fn selectors_distinguish_nothing_from_everything() {
        let l = labels(&[("app", "web")]);
        assert!(!Selector::Nothing.matches(&l));
        assert!(Selector::everything().matches(&l));
        assert!(Selector::Match(vec![Requirement::new("app", Op::In, &["web"])]).matches(&l));
    }

    #[test]
    fn empty_node_selector_terms_match_nothing_and_fields_only_know_the_name() {
        let l = labels(&[]);
        assert!(!NodeSelectorTerm::default().matches("n1", &l));
        let by_name = NodeSelectorTerm {
            match_fields: vec![Requirement::new("metadata.name", Op::In, &["n1"])],
            ..Default::default()
        };
        assert!(by_name.matches("n1", &l));
        assert!(!by_name.matches("n2", &l));
        let other_field = NodeSelectorTerm {
            match_fields: vec![Requirement::new("metadata.uid", Op::In, &["n1"])],
            ..Default::default()
        };
        assert!(!other_field.matches("n1", &l));
    }

    #[test]
    fn tolerations_match_like_upstream() {
        let taint = Taint { key: "k".into(), value: "v".into(), effect: Effect::NoSchedule };
        let t = |key: &str, op, value: &str, effect| Toleration { key: key.into(), op, value: value.into(), effect };
        assert!(t("k", TolerationOp::Equal, "v", None).tolerates(&taint));
        assert!(!t("k", TolerationOp::Equal, "w", None).tolerates(&taint));
        assert!(t("", TolerationOp::Exists, "", None).tolerates(&taint));
        assert!(!t("k", TolerationOp::Exists, "", Some(Effect::NoExecute)).tolerates(&taint));
        assert!(!t("k", TolerationOp::Invalid, "v", None).tolerates(&taint));
    }

    #[test]
    fn host_ports_conflict_on_wildcard_addresses() {
        let p = |ip: &str, proto: &str, port| HostPort { ip: ip.into(), protocol: proto.into(), port };
        assert!(p("0.0.0.0", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(!p("10.0.0.2", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(!p("0.0.0.0", "UDP", 80).conflicts(&p("0.0.0.0", "TCP", 80)));
        assert!(!p("0.0.0.0", "TCP", 81).conflicts(&p("0.0.0.0", "TCP", 80)));
    }

    #[test]
    fn node_info_sums_follow_pods() {
        let mut n = NodeInfo::new(Node::default());
        let pod = Arc::new(PodInfo {
            uid: "u1".into(),
            requests: Resources { milli_cpu: 100, memory: 10, scalar: vec![("gpu".into(), 1)], ..Default::default() },
            non_zero_milli_cpu: 100,
            non_zero_memory: 10,
            host_ports: vec![HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 80 }],
            ..Default::default()
        });
        n.add_pod(pod.clone());
        n.add_pod(Arc::new(PodInfo { uid: "u2".into(), ..(*pod).clone() }));
        assert_eq!(n.requested.milli_cpu, 200);
        assert_eq!(n.requested.scalar("gpu"), 2);
        assert_eq!(n.used_ports.len(), 2);
        assert!(n.remove_pod("u1").is_some());
        assert!(n.remove_pod("u1").is_none());
        assert_eq!(n.requested.milli_cpu, 100);
        assert_eq!(n.non_zero_memory, 10);
        assert_eq!(n.used_ports.len(), 1);
    }
}
