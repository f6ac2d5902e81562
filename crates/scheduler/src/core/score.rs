//! Scores: how good is each feasible node? Each plugin scores, normalises to
//! 0..=100 as upstream does, and the weighted sum (upstream's default weights)
//! decides.

use super::filter::{count_matching, inclusion_policies_match};
use super::model::{
    AffinityTerm, Effect, LABEL_HOSTNAME, Labels, NodeInfo, PodInfo, SpreadConstraint, Toleration, WhenUnsatisfiable,
    tolerated,
};
use super::snapshot::Snapshot;
use std::collections::HashMap;

pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream's default score plugin weights.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_RESOURCES_FIT: i64 = 1;
pub const WEIGHT_TOPOLOGY_SPREAD: i64 = 2;
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
/// Weight of an existing pod's required affinity term matched by the incoming pod.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Scales scores so the largest becomes 100 (or, reversed, the smallest).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// NodeResourcesFit with the LeastAllocated strategy over cpu and memory (weight 1 each),
/// using requests with defaults for containers that request nothing.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let alloc = &node.node.allocatable;
    let parts = [
        (node.non_zero_milli_cpu + pod.non_zero_milli_cpu, alloc.milli_cpu),
        (node.non_zero_memory + pod.non_zero_memory, alloc.memory),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (requested, capacity) in parts {
        if capacity == 0 {
            continue;
        }
        sum += if requested > capacity { 0 } else { (capacity - requested) * MAX_NODE_SCORE / capacity };
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

/// NodeResourcesBalancedAllocation: 100 when cpu and memory are equally used, lower
/// as they diverge (one minus the standard deviation of the used fractions).
/// `None` for a pod that requests neither: upstream skips it, so such pods do not
/// all pile onto one node.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
    if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
        return None;
    }
    let alloc = &node.node.allocatable;
    let parts = [
        (node.requested.milli_cpu + pod.requests.milli_cpu, alloc.milli_cpu),
        (node.requested.memory + pod.requests.memory, alloc.memory),
    ];
    // With two resources the standard deviation is half their difference; with one
    // (the other has no capacity) it is zero.
    let mut fractions = parts.iter().filter(|(_, c)| *c != 0).map(|(r, c)| (*r as f64 / *c as f64).min(1.0));
    let std = match (fractions.next(), fractions.next()) {
        (Some(a), Some(b)) => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    Some(((1.0 - std) * MAX_NODE_SCORE as f64) as i64)
}

/// Preferred node affinity: the summed weights of the terms the node matches.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|t| t.weight != 0 && t.term.matches(&node.node.name, &node.node.labels))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// TaintToleration: PreferNoSchedule taints the pod does not tolerate (fewer is better).
pub fn intolerable_prefer_no_schedule(pod: &PodInfo, node: &NodeInfo) -> i64 {
    count_intolerable(&prefer_no_schedule_tolerations(pod), node)
}

/// The tolerations that can tolerate a PreferNoSchedule taint.
fn prefer_no_schedule_tolerations(pod: &PodInfo) -> Vec<Toleration> {
    pod.tolerations
        .iter()
        .filter(|t| t.effect.is_none() || t.effect == Some(Effect::PreferNoSchedule))
        .cloned()
        .collect()
}

fn count_intolerable(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    node.node.taints.iter().filter(|t| t.effect == Effect::PreferNoSchedule && !tolerated(tolerations, t)).count()
        as i64
}

type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn add_term(
    scores: &mut TopologyScore,
    term: &AffinityTerm,
    weight: i64,
    pod: &PodInfo,
    ns_labels: Option<&Labels>,
    node: &NodeInfo,
) {
    if term.matches(pod, ns_labels)
        && let Some(v) = node.node.labels.get(&term.topology_key)
    {
        *scores.entry(term.topology_key.clone()).or_default().entry(v.clone()).or_insert(0) += weight;
    }
}

/// InterPodAffinity scores for `nodes`, normalised between the lowest and highest;
/// `None` when nothing in the cluster expresses a preference (upstream skips then).
pub fn inter_pod_affinity(pod: &PodInfo, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    if !own && !snapshot.any_pod_with_affinity() {
        return None;
    }
    let pod_ns = snapshot.namespace_labels(&pod.namespace);
    let mut topo = TopologyScore::new();
    for node in snapshot.nodes() {
        if node.node.labels.is_empty() || (!own && node.pods_with_affinity == 0) {
            continue;
        }
        for other in &node.pods {
            if !own && !other.has_affinity() {
                continue;
            }
            let other_ns = snapshot.namespace_labels(&other.namespace);
            for t in &pod.preferred_affinity {
                add_term(&mut topo, &t.term, i64::from(t.weight), other, other_ns, node);
            }
            for t in &pod.preferred_anti_affinity {
                add_term(&mut topo, &t.term, -i64::from(t.weight), other, other_ns, node);
            }
            for t in &other.required_affinity {
                add_term(&mut topo, t, HARD_POD_AFFINITY_WEIGHT, pod, pod_ns, node);
            }
            for t in &other.preferred_affinity {
                add_term(&mut topo, &t.term, i64::from(t.weight), pod, pod_ns, node);
            }
            for t in &other.preferred_anti_affinity {
                add_term(&mut topo, &t.term, -i64::from(t.weight), pod, pod_ns, node);
            }
        }
    }
    if topo.is_empty() {
        return None;
    }
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|n| topo.iter().filter_map(|(k, values)| n.node.labels.get(k).and_then(|v| values.get(v))).copied().sum())
        .collect();
    let (min, max) = (scores.iter().copied().min().unwrap_or(0), scores.iter().copied().max().unwrap_or(0));
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 { (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64 } else { 0 };
    }
    Some(scores)
}

/// PodTopologySpread for ScheduleAnyway constraints: nodes in less crowded domains
/// score higher. `None` when the pod has no such constraints.
pub fn topology_spread(pod: &PodInfo, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let constraints: Vec<&SpreadConstraint> =
        pod.spread.iter().filter(|c| c.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway).collect();
    if constraints.is_empty() {
        return None;
    }
    let has_all_keys = |n: &NodeInfo| constraints.iter().all(|c| n.node.labels.contains_key(&c.topology_key));
    // Domains among the feasible nodes, whose pod counts come from every node.
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
    let mut ignored = vec![false; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        if !has_all_keys(n) {
            ignored[i] = true;
            continue;
        }
        for (ci, c) in constraints.iter().enumerate() {
            if c.topology_key != LABEL_HOSTNAME {
                counts[ci].insert(n.node.labels[&c.topology_key].as_str(), 0);
            }
        }
    }
    let considered = ignored.iter().filter(|x| !**x).count();
    let weights: Vec<f64> = constraints
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let size = if c.topology_key == LABEL_HOSTNAME { considered } else { counts[ci].len() };
            ((size + 2) as f64).ln()
        })
        .collect();
    for node in snapshot.nodes() {
        if !has_all_keys(node) {
            continue;
        }
        for (ci, c) in constraints.iter().enumerate() {
            if !inclusion_policies_match(pod, c, node) {
                continue;
            }
            if let Some(count) = node.node.labels.get(&c.topology_key).and_then(|v| counts[ci].get_mut(v.as_str())) {
                *count += count_matching(node, c, &pod.namespace);
            }
        }
    }
    let mut scores: Vec<i64> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if ignored[i] {
                return 0;
            }
            let mut score = 0.0;
            for (ci, c) in constraints.iter().enumerate() {
                if let Some(v) = n.node.labels.get(&c.topology_key) {
                    let cnt = if c.topology_key == LABEL_HOSTNAME {
                        count_matching(n, c, &pod.namespace)
                    } else {
                        counts[ci].get(v.as_str()).copied().unwrap_or(0)
                    };
                    score += cnt as f64 * weights[ci] + f64::from(c.max_skew - 1);
                }
            }
            score.round() as i64
        })
        .collect();
    let live = || scores.iter().zip(&ignored).filter(|(_, ig)| !**ig).map(|(s, _)| *s);
    let min = live().min().unwrap_or(0);
    let max = live().max().unwrap_or(0);
    for (s, ig) in scores.iter_mut().zip(&ignored) {
        *s = if *ig {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
    Some(scores)
}

/// The weighted total of every plugin's normalised score, per node in `nodes`.
pub fn total_scores(pod: &PodInfo, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total: Vec<i64> = nodes
        .iter()
        .map(|n| {
            WEIGHT_RESOURCES_FIT * least_allocated(pod, n)
                + WEIGHT_BALANCED_ALLOCATION * balanced_allocation(pod, n).unwrap_or(0)
        })
        .collect();

    // TaintToleration
    let tolerations = prefer_no_schedule_tolerations(pod);
    let mut taints: Vec<i64> = nodes.iter().map(|n| count_intolerable(&tolerations, n)).collect();
    default_normalize(&mut taints, true);
    add_weighted(&mut total, &taints, WEIGHT_TAINT_TOLERATION);

    if !pod.preferred_node_affinity.is_empty() {
        let mut aff: Vec<i64> = nodes.iter().map(|n| node_affinity(pod, n)).collect();
        default_normalize(&mut aff, false);
        add_weighted(&mut total, &aff, WEIGHT_NODE_AFFINITY);
    }
    if let Some(s) = topology_spread(pod, snapshot, nodes) {
        add_weighted(&mut total, &s, WEIGHT_TOPOLOGY_SPREAD);
    }
    if let Some(s) = inter_pod_affinity(pod, snapshot, nodes) {
        add_weighted(&mut total, &s, WEIGHT_INTER_POD_AFFINITY);
    }
    total
}

fn add_weighted(total: &mut [i64], scores: &[i64], weight: i64) {
    for (t, s) in total.iter_mut().zip(scores) {
        *t += weight * s;
    }
}
