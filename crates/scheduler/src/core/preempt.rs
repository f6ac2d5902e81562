//! Preemption (upstream's DefaultPreemption PostFilter): when a pod fits nowhere,
//! find the node where evicting the fewest, least important lower-priority pods
//! makes it fit, respecting PodDisruptionBudgets where possible.

use super::filter::{Code, CycleState, Status};
use super::model::{Pdb, PodInfo};
use super::{FitError, Scheduler, Snapshot, filter_node};
use std::sync::Arc;

pub const MSG_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const MSG_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const MSG_POLICY_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
pub const MSG_TERMINATING_ON_NOMINATED: &str = "not eligible due to a terminating pod on the nominated node.";
/// Upstream checks at least this share of the potential nodes, and at least 100.
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// The node to nominate and the pods to evict from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Preemption {
    pub node: String,
    /// Most important first.
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

/// Higher priority first; among equals, the one that started earlier.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority.cmp(&a.priority).then_with(|| a.start_time.unwrap_or(i64::MAX).cmp(&b.start_time.unwrap_or(i64::MAX)))
}

/// Splits pods (most important first) into those whose eviction would break a
/// disruption budget and the rest.
fn split_by_pdb(pods: Vec<Arc<PodInfo>>, pdbs: &[Pdb]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                // Already counted by the API server's eviction: not a new violation.
                if !pdb.selects(&pod) || pdb.disrupted_pods.iter().any(|n| *n == pod.name) {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated { violating.push(pod) } else { fine.push(pod) }
    }
    (violating, fine)
}

/// The fewest victims on `node` that let `pod` fit, or why there are none.
fn select_victims(
    state: &CycleState<'_>,
    node: &super::model::NodeInfo,
    pdbs: &[Pdb],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let pod = state.pod;
    let mut info = node.clone();
    let mut state = state.clone();
    let mut potential: Vec<Arc<PodInfo>> = Vec::new();
    for p in &node.pods {
        if p.priority < pod.priority {
            potential.push(p.clone());
            info.remove_pod(&p.uid);
            state.update_with_pod(p, node, -1);
        }
    }
    if potential.is_empty() {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, MSG_NO_VICTIMS));
    }
    // If the pod does not fit even with every lower-priority pod gone, this node is no use.
    filter_node(&state, &info)?;
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, fine) = split_by_pdb(potential, pdbs);
    let mut victims = Vec::new();
    let mut violations = 0;
    // Put pods back, most important first, as long as the pod still fits.
    let mut reprieve = |p: Arc<PodInfo>, info: &mut super::model::NodeInfo, state: &mut CycleState<'_>| -> bool {
        info.add_pod(p.clone());
        state.update_with_pod(&p, node, 1);
        if filter_node(state, info).is_ok() {
            return true;
        }
        info.remove_pod(&p.uid);
        state.update_with_pod(&p, node, -1);
        victims.push(p);
        false
    };
    for p in violating {
        if !reprieve(p, &mut info, &mut state) {
            violations += 1;
        }
    }
    for p in fine {
        reprieve(p, &mut info, &mut state);
    }
    victims.sort_by(|a, b| more_important(a, b));
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption`: fewest PDB violations, then the lowest
/// highest-priority victim, the smallest priority sum, the fewest victims, and the
/// latest start among the most important victims.
fn pick(candidates: &[Preemption]) -> Option<&Preemption> {
    let key = |c: &Preemption| {
        let top = c.victims.first().map(|v| v.priority).unwrap_or(i32::MIN);
        let sum: i64 = c.victims.iter().map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1).sum();
        let earliest_top_start =
            c.victims.iter().filter(|v| v.priority == top).filter_map(|v| v.start_time).min().unwrap_or(i64::MAX);
        (c.pdb_violations, top, sum, c.victims.len(), std::cmp::Reverse(earliest_top_start))
    };
    // min_by_key keeps the first of equals, like upstream's final "first candidate".
    candidates.iter().min_by_key(|c| key(c))
}

impl Scheduler {
    /// Tries preemption for a pod that `fit` says fits nowhere. On success returns the
    /// node to nominate and the victims; otherwise records upstream's explanation in
    /// `fit.post_filter_msg`.
    pub fn preempt(&mut self, pod: &PodInfo, snapshot: &Snapshot, fit: &mut FitError) -> Option<Preemption> {
        if let Some(msg) = not_eligible(pod, snapshot, fit) {
            fit.post_filter_msg = Some(format!("preemption: {}", msg.trim_end_matches('.')));
            return None;
        }
        let mut outcome = FitError::new(snapshot.nodes().len());
        outcome.absent = Some(Status::new(Code::UnschedulableAndUnresolvable, MSG_NOT_HELPFUL));
        let potential: Vec<_> = snapshot
            .nodes()
            .iter()
            .filter(|n| fit.status_of(&n.node.name).is_some_and(|s| s.code == Code::Unschedulable))
            .collect();
        let mut candidates = Vec::new();
        if !potential.is_empty() {
            let state = CycleState::new(pod, snapshot);
            let n = potential.len();
            let wanted = (n * MIN_CANDIDATE_NODES_PERCENTAGE / 100).max(MIN_CANDIDATE_NODES_ABSOLUTE).min(n);
            let offset = self.rng.below(n);
            for i in 0..n {
                let node = potential[(offset + i) % n];
                match select_victims(&state, node, snapshot.pdbs()) {
                    Ok((victims, pdb_violations)) if !victims.is_empty() => {
                        candidates.push(Preemption { node: node.node.name.clone(), victims, pdb_violations });
                        if candidates.len() >= wanted {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(status) => {
                        outcome.statuses.insert(node.node.name.clone(), status);
                    }
                }
            }
        }
        match pick(&candidates) {
            Some(best) => Some(best.clone()),
            None => {
                fit.post_filter_msg = Some(format!("preemption: {}", outcome.message().trim_end_matches('.')));
                None
            }
        }
    }
}

/// Why the pod may not preempt, in upstream's words.
fn not_eligible(pod: &PodInfo, snapshot: &Snapshot, fit: &FitError) -> Option<&'static str> {
    if pod.preempt_never {
        return Some(MSG_POLICY_NEVER);
    }
    let nominated = pod.nominated_node.as_deref()?;
    // A nominated node that can never work again lets the pod preempt elsewhere.
    if fit.status_of(nominated).is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable) {
        return None;
    }
    let node = snapshot.node(nominated)?;
    // Victims from the last round are still going: wait for them rather than evict more.
    node.pods.iter().any(|p| p.priority < pod.priority && p.terminating).then_some(MSG_TERMINATING_ON_NOMINATED)
}
