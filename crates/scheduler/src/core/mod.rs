//! The pure core: given a pod and a [`Snapshot`], pick a node (filter, score,
//! choose) or say why none fits, and find preemption victims. No I/O, no async;
//! the behaviour follows upstream's `pkg/scheduler` default profile.

pub mod convert;
pub mod filter;
pub mod model;
pub mod preempt;
pub mod score;
pub mod snapshot;

use filter::{Code, CycleState, Status, run_filters};
use model::{NodeInfo, PodInfo};
use std::collections::{BTreeMap, HashMap};

pub use model::{Node, Pdb};
pub use preempt::Preemption;
pub use snapshot::Snapshot;

/// Below this many nodes every node is checked (upstream's `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// What upstream says when the cluster has no nodes at all.
pub const ERR_NO_NODES: &str = "no nodes available to schedule pods";
/// The adaptive percentage never goes below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// Why a pod fits no node: a status per node (and for nodes not in the map), in the
/// shape of upstream's `FitError`, whose [`message`](FitError::message) is the
/// FailedScheduling text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// A PreFilter rejected the pod before any node was looked at.
    pub prefilter: Option<Status>,
    pub statuses: HashMap<String, Status>,
    /// The status of nodes absent from `statuses`.
    pub absent: Option<Status>,
    /// What preemption said, e.g. `preemption: 0/3 nodes are available: ...`.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    fn new(num_all_nodes: usize) -> FitError {
        FitError { num_all_nodes, prefilter: None, statuses: HashMap::new(), absent: None, post_filter_msg: None }
    }

    /// The status of a node: its own, or the one for absent nodes.
    pub fn status_of(&self, node: &str) -> Option<&Status> {
        self.statuses.get(node).or(self.absent.as_ref())
    }

    /// How many nodes gave each reason.
    pub fn reason_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for s in self.statuses.values() {
            for r in &s.reasons {
                *counts.entry(r.to_string()).or_insert(0) += 1;
            }
        }
        if let Some(absent) = &self.absent
            && self.statuses.len() < self.num_all_nodes
        {
            for r in &absent.reasons {
                *counts.entry(r.to_string()).or_insert(0) += self.num_all_nodes - self.statuses.len();
            }
        }
        counts
    }

    /// Upstream's text: `0/3 nodes are available: 1 node(s) had untolerated taint {k: v},
    /// 2 Insufficient cpu. preemption: ...`. Reasons are `"<count> <reason>"` sorted as
    /// strings, as upstream sorts them.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 && self.prefilter.is_none() {
            return ERR_NO_NODES.to_string();
        }
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(p) = &self.prefilter {
            msg.push_str(&format!(" {}.", p.reasons.join(", ")));
        } else {
            let mut reasons: Vec<String> = self.reason_counts().into_iter().map(|(r, n)| format!("{n} {r}")).collect();
            reasons.sort();
            if !reasons.is_empty() {
                msg.push_str(&format!(" {}.", reasons.join(", ")));
            }
        }
        if let Some(post) = &self.post_filter_msg {
            msg.push_str(&format!(" {post}."));
        }
        msg
    }
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// A small seedable generator (splitmix64) for tie-breaks and preemption offsets.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The decision maker. Holds only what carries over between decisions: where the
/// next node search starts (so every node gets its turn) and the random generator.
#[derive(Clone, Debug)]
pub struct Scheduler {
    next_start: usize,
    rng: Rng,
    /// Upstream's `percentageOfNodesToScore`; 0 picks it from the cluster size.
    pub percentage_of_nodes_to_score: usize,
}

impl Scheduler {
    pub fn new(seed: u64) -> Scheduler {
        Scheduler { next_start: 0, rng: Rng::new(seed), percentage_of_nodes_to_score: 0 }
    }

    /// How many feasible nodes to find before scoring: all below 100 nodes, else
    /// `50 - nodes/125` percent (at least 5%), and never fewer than 100.
    pub fn num_feasible_nodes_to_find(&self, num_all_nodes: usize) -> usize {
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
            return num_all_nodes;
        }
        let mut percentage = self.percentage_of_nodes_to_score;
        if percentage == 0 {
            percentage = 50usize.saturating_sub(num_all_nodes / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE);
        }
        (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Picks the node for `pod`, or says why there is none.
    pub fn schedule(&mut self, pod: &PodInfo, snapshot: &Snapshot) -> Result<String, Box<FitError>> {
        let all = snapshot.nodes();
        let mut fit = Box::new(FitError::new(all.len()));
        if all.is_empty() {
            return Err(fit);
        }
        let state = CycleState::new(pod, snapshot);
        if let Some(status) = &state.prefilter_failure {
            fit.prefilter = Some(status.clone());
            fit.absent = Some(status.clone());
            return Err(fit);
        }

        // A node preemption nominated earlier is likely the only one that fits: try it first.
        if let Some(nominated) = pod.nominated_node.as_deref().and_then(|n| snapshot.node(n))
            && filter_node(&state, nominated).is_ok()
        {
            return Ok(nominated.node.name.clone());
        }

        // Only nodes named by required node affinity, when it names them; otherwise all
        // (without copying 5,000 references per pod).
        let named: Option<Vec<&NodeInfo>> = state.node_names.as_ref().map(|names| {
            fit.absent = Some(Status::new(
                Code::UnschedulableAndUnresolvable,
                "node(s) didn't satisfy plugin(s) [NodeAffinity]",
            ));
            all.iter().filter(|n| names.contains(&n.node.name)).collect()
        });
        let n = named.as_ref().map_or(all.len(), Vec::len);
        let want = self.num_feasible_nodes_to_find(n);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want);
        let mut processed = 0;
        for i in 0..n {
            if feasible.len() >= want {
                break;
            }
            let j = (self.next_start + i) % n;
            let node = named.as_ref().map_or(&all[j], |c| c[j]);
            processed += 1;
            match filter_node(&state, node) {
                Ok(()) => feasible.push(node),
                Err(status) => {
                    fit.statuses.insert(node.node.name.clone(), status);
                }
            }
        }
        if n > 0 {
            self.next_start = (self.next_start + processed) % all.len();
        }
        match feasible.len() {
            0 => Err(fit),
            1 => Ok(feasible[0].node.name.clone()),
            _ => {
                let scores = score::total_scores(pod, snapshot, &feasible);
                Ok(feasible[self.select(&scores)].node.name.clone())
            }
        }
    }

    /// The index of a highest score, chosen uniformly among ties (reservoir sampling).
    fn select(&mut self, scores: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 1;
        for (i, &s) in scores.iter().enumerate().skip(1) {
            if s > scores[best] {
                best = i;
                ties = 1;
            } else if s == scores[best] {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = i;
                }
            }
        }
        best
    }
}

/// Runs the filters, also with the higher-or-equal priority pods nominated to the
/// node counted as there (both must pass, as upstream's
/// `RunFilterPluginsWithNominatedPods`).
pub(crate) fn filter_node(state: &CycleState<'_>, node: &NodeInfo) -> Result<(), Status> {
    if state.snapshot.has_nominated() {
        let nominated = state.snapshot.nominated_on(&node.node.name, &state.pod.uid, state.pod.priority);
        if !nominated.is_empty() {
            let mut with = node.clone();
            let mut with_state = state.clone();
            for p in nominated {
                with_state.update_with_pod(&p, node, 1);
                with.add_pod(p);
            }
            run_filters(&with_state, &with)?;
        }
    }
    run_filters(state, node)
}

#[cfg(test)]
mod tests;
