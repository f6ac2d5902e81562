//! Filters: can this pod go on this node? Each returns upstream's reason strings and
//! status code, since the FailedScheduling message and preemption depend on both.
//! [`CycleState`] holds what upstream's PreFilter computes once per pod (topology
//! counts for inter-pod affinity and spreading).

use super::model::{
    AffinityTerm, Effect, NodeInfo, Op, PodInfo, SpreadConstraint, TAINT_UNSCHEDULABLE, Taint, WhenUnsatisfiable,
    first_untolerated_taint, tolerated,
};
use super::snapshot::Snapshot;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_TOO_MANY_PODS: &str = "Too many pods";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Whether removing pods from the node could help (`Unschedulable`) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// Why a node was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Status {
        Status { code, reasons: vec![reason.into()] }
    }
}

type Pair = (String, String);

/// Topology pair counts for inter-pod affinity (upstream's `topologyToMatchedTermCount`).
#[derive(Clone, Debug, Default)]
struct AffinityState {
    /// Pairs where existing pods' required anti-affinity matches the incoming pod.
    existing_anti: HashMap<Pair, i64>,
    /// Pairs with pods matching all the incoming pod's required affinity terms.
    affinity: HashMap<Pair, i64>,
    /// Pairs with pods matching one of the incoming pod's required anti-affinity terms.
    anti: HashMap<Pair, i64>,
}

fn bump(map: &mut HashMap<Pair, i64>, node: &NodeInfo, key: &str, delta: i64) {
    if let Some(v) = node.node.labels.get(key) {
        let pair = (key.to_string(), v.clone());
        let e = map.entry(pair.clone()).or_insert(0);
        *e += delta;
        if *e == 0 {
            map.remove(&pair);
        }
    }
}

/// Domain counts for DoNotSchedule spread constraints (upstream's PreFilter state).
#[derive(Clone, Debug, Default)]
struct SpreadState {
    /// Indices into the pod's `spread` of the DoNotSchedule constraints.
    constraints: Vec<usize>,
    /// Per constraint: topology value to matching pods, for every eligible domain.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count (the global minimum).
    min: Vec<i64>,
}

/// What upstream's PreFilter plugins compute once per scheduling attempt.
#[derive(Clone, Debug)]
pub struct CycleState<'a> {
    pub pod: &'a PodInfo,
    pub snapshot: &'a Snapshot,
    tolerates_unschedulable: bool,
    /// Nodes named by required node affinity `matchFields metadata.name In` in every term.
    pub node_names: Option<HashSet<String>>,
    affinity: Option<AffinityState>,
    spread: Option<SpreadState>,
    /// A PreFilter that rejected the pod outright (upstream's `PreFilterMsg`).
    pub prefilter_failure: Option<Status>,
}

impl<'a> CycleState<'a> {
    pub fn new(pod: &'a PodInfo, snapshot: &'a Snapshot) -> CycleState<'a> {
        let unschedulable_taint =
            Taint { key: TAINT_UNSCHEDULABLE.to_string(), value: String::new(), effect: Effect::NoSchedule };
        let mut state = CycleState {
            pod,
            snapshot,
            tolerates_unschedulable: tolerated(&pod.tolerations, &unschedulable_taint),
            node_names: None,
            affinity: None,
            spread: None,
            prefilter_failure: None,
        };
        state.node_names = required_node_names(pod);
        if state.node_names.as_ref().is_some_and(HashSet::is_empty) {
            state.prefilter_failure = Some(Status::new(Code::UnschedulableAndUnresolvable, ERR_NODE_AFFINITY_CONFLICT));
        }
        state.affinity = affinity_state(pod, snapshot);
        state.spread = spread_state(pod, snapshot);
        state
    }

    /// Updates the counts as if `other` were added to (`delta` 1) or removed from
    /// (`delta` -1) `node`, as upstream's AddPod / RemovePod extensions do for preemption.
    pub fn update_with_pod(&mut self, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let pod = self.pod;
        let snapshot = self.snapshot;
        if let Some(a) = self.affinity.as_mut() {
            let pod_ns = snapshot.namespace_labels(&pod.namespace);
            for t in &other.required_anti_affinity {
                if t.matches(pod, pod_ns) {
                    bump(&mut a.existing_anti, node, &t.topology_key, delta);
                }
            }
            let other_ns = snapshot.namespace_labels(&other.namespace);
            if !pod.required_affinity.is_empty() && pod.required_affinity.iter().all(|t| t.matches(other, other_ns)) {
                for t in &pod.required_affinity {
                    bump(&mut a.affinity, node, &t.topology_key, delta);
                }
            }
            for t in &pod.required_anti_affinity {
                if t.matches(other, other_ns) {
                    bump(&mut a.anti, node, &t.topology_key, delta);
                }
            }
        }
        if let Some(s) = self.spread.as_mut() {
            if other.namespace != pod.namespace || !spread_node_eligible(pod, &s.constraints, node) {
                return;
            }
            for (i, &ci) in s.constraints.iter().enumerate() {
                let c = &pod.spread[ci];
                if !c.selector.matches(&other.labels) {
                    continue;
                }
                let v = node.node.labels.get(&c.topology_key).cloned().unwrap_or_default();
                *s.counts[i].entry(v).or_insert(0) += delta;
                s.min[i] = s.counts[i].values().copied().min().unwrap_or(0);
            }
        }
    }
}

/// The node names every required node affinity term restricts the pod to, when each
/// term has a `metadata.name In` field requirement (upstream's NodeAffinity PreFilter).
fn required_node_names(pod: &PodInfo) -> Option<HashSet<String>> {
    let terms = pod.required_node_affinity.as_ref()?;
    let mut all: Option<HashSet<String>> = None;
    for t in terms {
        let mut term_names: Option<HashSet<String>> = None;
        for r in &t.match_fields {
            if r.key == "metadata.name" && r.op == Op::In {
                let s: HashSet<String> = r.values.iter().cloned().collect();
                term_names = Some(match term_names {
                    None => s,
                    Some(prev) => prev.intersection(&s).cloned().collect(),
                });
            }
        }
        // A term without a name requirement lets every node through: the terms are ORed.
        let names = term_names?;
        all.get_or_insert_with(HashSet::new).extend(names);
    }
    all
}

fn affinity_state(pod: &PodInfo, snapshot: &Snapshot) -> Option<AffinityState> {
    let incoming = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
    let existing = snapshot.any_pod_with_required_anti_affinity();
    if !incoming && !existing {
        return None;
    }
    let mut state = AffinityState::default();
    let pod_ns = snapshot.namespace_labels(&pod.namespace);
    for node in snapshot.nodes() {
        if existing && node.pods_with_required_anti_affinity > 0 {
            for other in &node.pods {
                for t in &other.required_anti_affinity {
                    if t.matches(pod, pod_ns) {
                        bump(&mut state.existing_anti, node, &t.topology_key, 1);
                    }
                }
            }
        }
        if incoming {
            for other in &node.pods {
                let other_ns = snapshot.namespace_labels(&other.namespace);
                if !pod.required_affinity.is_empty() && pod.required_affinity.iter().all(|t| t.matches(other, other_ns))
                {
                    for t in &pod.required_affinity {
                        bump(&mut state.affinity, node, &t.topology_key, 1);
                    }
                }
                for t in &pod.required_anti_affinity {
                    if t.matches(other, other_ns) {
                        bump(&mut state.anti, node, &t.topology_key, 1);
                    }
                }
            }
        }
    }
    Some(state)
}

/// Whether a node counts for spreading: it has every constraint's topology key and
/// passes the node inclusion policies.
fn spread_node_eligible(pod: &PodInfo, constraints: &[usize], node: &NodeInfo) -> bool {
    constraints.iter().all(|&ci| {
        let c = &pod.spread[ci];
        node.node.labels.contains_key(&c.topology_key) && inclusion_policies_match(pod, c, node)
    })
}

pub(crate) fn inclusion_policies_match(pod: &PodInfo, c: &SpreadConstraint, node: &NodeInfo) -> bool {
    (!c.honor_node_affinity || pod.matches_node_selector(&node.node))
        && (!c.honor_node_taints || pod.tolerates_node(&node.node))
}

/// Pods on the node in `namespace`, not terminating, matching `c`'s selector.
pub(crate) fn count_matching(node: &NodeInfo, c: &SpreadConstraint, namespace: &str) -> i64 {
    node.pods.iter().filter(|p| !p.terminating && p.namespace == namespace && c.selector.matches(&p.labels)).count()
        as i64
}

fn spread_state(pod: &PodInfo, snapshot: &Snapshot) -> Option<SpreadState> {
    let constraints: Vec<usize> = pod
        .spread
        .iter()
        .enumerate()
        .filter(|(_, c)| c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
        .map(|(i, _)| i)
        .collect();
    if constraints.is_empty() {
        return None;
    }
    let mut counts = vec![HashMap::new(); constraints.len()];
    for node in snapshot.nodes() {
        if !constraints.iter().all(|&ci| node.node.labels.contains_key(&pod.spread[ci].topology_key)) {
            continue;
        }
        for (i, &ci) in constraints.iter().enumerate() {
            let c = &pod.spread[ci];
            if !inclusion_policies_match(pod, c, node) {
                continue;
            }
            let value = node.node.labels[&c.topology_key].clone();
            *counts[i].entry(value).or_insert(0) += count_matching(node, c, &pod.namespace);
        }
    }
    let min = counts.iter().map(|m| m.values().copied().min().unwrap_or(0)).collect();
    Some(SpreadState { constraints, counts, min })
}

/// Runs the filters in upstream's default order; the first failure decides.
pub fn run_filters(state: &CycleState<'_>, node: &NodeInfo) -> Result<(), Status> {
    let pod = state.pod;
    // NodeUnschedulable
    if node.node.unschedulable && !state.tolerates_unschedulable {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_UNSCHEDULABLE));
    }
    // NodeName
    if pod.node_name.as_deref().is_some_and(|n| n != node.node.name) {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_NODE_NAME));
    }
    // TaintToleration (the lifecycle taints of a node that is not Ready are among them)
    if let Some(t) = first_untolerated_taint(&node.node.taints, &pod.tolerations) {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
        ));
    }
    // NodeAffinity
    if !pod.matches_node_selector(&node.node) {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_NODE_AFFINITY));
    }
    // NodePorts
    if pod.host_ports.iter().any(|want| node.used_ports.iter().any(|used| used.conflicts(want))) {
        return Err(Status::new(Code::Unschedulable, ERR_NODE_PORTS));
    }
    // NodeResourcesFit
    fits_resources(pod, node)?;
    // PodTopologySpread
    if let Some(s) = &state.spread {
        filter_spread(pod, s, node)?;
    }
    // InterPodAffinity
    if let Some(a) = &state.affinity {
        filter_affinity(pod, a, node)?;
    }
    Ok(())
}

fn fits_resources(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > node.node.allowed_pods {
        reasons.push(ERR_TOO_MANY_PODS.into());
    }
    let want = &pod.requests;
    if !want.is_zero() {
        let alloc = &node.node.allocatable;
        let used = &node.requested;
        let mut check = |want: i64, alloc: i64, used: i64, reason: Cow<'static, str>| {
            if want > 0 && want > alloc - used {
                reasons.push(reason);
                unresolvable |= want > alloc;
            }
        };
        check(want.milli_cpu, alloc.milli_cpu, used.milli_cpu, "Insufficient cpu".into());
        check(want.memory, alloc.memory, used.memory, "Insufficient memory".into());
        check(
            want.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
            "Insufficient ephemeral-storage".into(),
        );
        for (name, q) in &want.scalar {
            check(*q, alloc.scalar(name), used.scalar(name), format!("Insufficient {name}").into());
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    let code = if unresolvable { Code::UnschedulableAndUnresolvable } else { Code::Unschedulable };
    Err(Status { code, reasons })
}

fn filter_spread(pod: &PodInfo, s: &SpreadState, node: &NodeInfo) -> Result<(), Status> {
    for (i, &ci) in s.constraints.iter().enumerate() {
        let c = &pod.spread[ci];
        let Some(value) = node.node.labels.get(&c.topology_key) else {
            return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_SPREAD_LABEL));
        };
        // Fewer eligible domains than minDomains: the global minimum counts as 0.
        let min = if (s.counts[i].len() as i64) < i64::from(c.min_domains.unwrap_or(1)) { 0 } else { s.min[i] };
        let self_match = i64::from(c.selector.matches(&pod.labels));
        let matching = s.counts[i].get(value).copied().unwrap_or(0);
        if matching + self_match - min > i64::from(c.max_skew) {
            return Err(Status::new(Code::Unschedulable, ERR_SPREAD));
        }
    }
    Ok(())
}

fn filter_affinity(pod: &PodInfo, a: &AffinityState, node: &NodeInfo) -> Result<(), Status> {
    let labels = &node.node.labels;
    // Required affinity: every term's topology must exist here, with matching pods.
    let mut pods_exist = true;
    for t in &pod.required_affinity {
        let Some(v) = labels.get(&t.topology_key) else {
            return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_AFFINITY));
        };
        if a.affinity.get(&(t.topology_key.clone(), v.clone())).copied().unwrap_or(0) <= 0 {
            pods_exist = false;
        }
    }
    // The first of a group of pods with affinity to each other may go anywhere its
    // terms' topologies exist, if nothing else matches yet.
    let first_of_group = a.affinity.is_empty() && matches_own_terms(pod, &pod.required_affinity);
    if !pods_exist && !first_of_group {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, ERR_AFFINITY));
    }
    for t in &pod.required_anti_affinity {
        if let Some(v) = labels.get(&t.topology_key)
            && a.anti.get(&(t.topology_key.clone(), v.clone())).copied().unwrap_or(0) > 0
        {
            return Err(Status::new(Code::Unschedulable, ERR_ANTI_AFFINITY));
        }
    }
    for ((k, v), n) in &a.existing_anti {
        if *n > 0 && labels.get(k) == Some(v) {
            return Err(Status::new(Code::Unschedulable, ERR_EXISTING_ANTI_AFFINITY));
        }
    }
    Ok(())
}

fn matches_own_terms(pod: &PodInfo, terms: &[AffinityTerm]) -> bool {
    // The pod's own namespace labels are irrelevant when namespaces were listed; the
    // namespace selector case is judged without them, as upstream does here.
    terms.iter().all(|t| t.matches(pod, None))
}
