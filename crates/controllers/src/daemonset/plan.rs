//! What a DaemonSet needs, decided from a snapshot without I/O: which nodes need a daemon
//! pod, which pods must go (failed, excess, misplaced, or replaced by a rolling update),
//! and the status counts (upstream's `podsShouldBeOnNode`, `manage`, `rollingUpdate`
//! and `updateDaemonSetStatus`).

use super::placement::{DaemonPod, Fit};
use crate::owned_pods::{is_available, is_ready, is_terminating};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// The label pods carried before revisions existed (`DaemonSetTemplateGenerationKey`).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation that holds that generation, when an API server sets it.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("invalid value for {field}: {value}")]
    IntOrPercent { field: &'static str, value: String },
}

/// A snapshot of one DaemonSet's world.
pub struct View<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [&'a Node],
    /// The DaemonSet's pods (claimed, deleted terminal ones left out) by the node they
    /// are on or meant for.
    pub pods_by_node: &'a BTreeMap<String, Vec<&'a Pod>>,
    /// The current revision's hash.
    pub hash: &'a str,
    pub now: Timestamp,
    /// Nodes where deleting a failed pod again must wait (the failed-pod backoff).
    pub backoff: &'a HashSet<String>,
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub name: String,
    pub uid: String,
}

/// An Event the decision explains itself with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The pod the Event is also about.
    pub pod: Option<String>,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes that get a new daemon pod.
    pub create_on: Vec<String>,
    pub delete: Vec<Doomed>,
    pub notes: Vec<Note>,
    /// Nodes whose failed pods are deleted now (their backoff starts or grows).
    pub failed_on: Vec<String>,
    /// A failed pod waits for its backoff: come back later.
    pub backoff_waits: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

/// The status counts (`kubectl get ds` columns and `kubectl rollout status`).
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
}

impl Counts {
    pub fn unavailable(&self) -> i32 {
        self.desired - self.available
    }
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn doomed(p: &Pod) -> Doomed {
    Doomed { name: pod_name(p), uid: p.metadata.uid.clone().unwrap_or_default() }
}

fn label<'p>(p: &'p Pod, key: &str) -> Option<&'p str> {
    p.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn spec(ds: &DaemonSet) -> (&k8s_openapi::api::core::v1::PodSpec, i32) {
    static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> = std::sync::OnceLock::new();
    let s = ds.spec.as_ref();
    let pod_spec = s.and_then(|s| s.template.spec.as_ref()).unwrap_or_else(|| EMPTY.get_or_init(Default::default));
    (pod_spec, s.and_then(|s| s.min_ready_seconds).unwrap_or(0))
}

/// The template generation from the DaemonSet's annotation, if it has one.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata.annotations.as_ref()?.get(TEMPLATE_GENERATION_ANNOTATION)?.parse().ok()
}

/// Whether a pod runs the current template: its hash label, or the older template
/// generation label (upstream's `IsPodUpdated`).
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let by_hash = !hash.is_empty() && label(pod, CONTROLLER_REVISION_HASH_LABEL) == Some(hash);
    let by_generation = generation.is_some_and(|g| label(pod, TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    by_hash || by_generation
}

/// Sorts bound pods first, then oldest first, then by name (`podByCreationTimestampAndPhase`).
pub fn sort_oldest_first(pods: &mut [&Pod]) {
    let bound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    pods.sort_by(|a, b| {
        bound(b)
            .cmp(&bound(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    let t = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|u| u.type_.as_deref());
    matches!(t, None | Some("RollingUpdate"))
}

/// Upstream's `GetScaledValueFromIntOrPercent` rounding up.
pub fn scaled(v: Option<&IntOrString>, total: i32, field: &'static str) -> Result<i32, PlanError> {
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let bad = || PlanError::IntOrPercent { field, value: s.clone() };
            let pct: i64 = s.strip_suffix('%').ok_or_else(bad)?.parse().map_err(|_| bad())?;
            Ok(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` nodes; unavailability 1 when both are 0.
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> Result<(i32, i32), PlanError> {
    if !is_rolling_update(ds) {
        return Ok((0, 0));
    }
    let ru = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|u| u.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, "MaxSurge")?;
    // An absent maxUnavailable is defaulted to 1 by the API server.
    let unavailable = match ru.and_then(|r| r.max_unavailable.as_ref()) {
        None => 1,
        v => scaled(v, desired, "MaxUnavailable")?,
    };
    if desired > 0 && surge == 0 && unavailable == 0 { Ok((0, 1)) } else { Ok((surge, unavailable)) }
}

fn allows_surge(ds: &DaemonSet) -> bool {
    // Surge is a count of the desired nodes; any positive setting allows a second pod.
    is_rolling_update(ds) && surge_and_unavailable(ds, 1).is_ok_and(|(s, _)| s > 0)
}

/// Decides creations and deletions: node by node first; a rolling update only once
/// nothing else needs doing (upstream runs it after `manage` when expectations are met,
/// which they are only when `manage` did nothing).
pub fn decide(v: &View) -> Result<Plan, PlanError> {
    let mut plan = manage(v);
    if plan.is_empty() && is_rolling_update(v.ds) {
        let (create_on, delete) = rolling_update(v)?;
        plan.create_on = create_on;
        plan.delete = delete;
    }
    Ok(plan)
}

fn manage(v: &View) -> Plan {
    let mut plan = Plan::default();
    let (spec, min_ready) = spec(v.ds);
    let surge = allows_surge(v.ds);
    let ns = v.ds.metadata.namespace.as_deref().unwrap_or_default();
    let daemon = DaemonPod::new(spec);
    for node in v.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let fit = daemon.fit(node);
        let pods = v.pods_by_node.get(&name);
        match (fit, pods) {
            (Fit { should_run: true, .. }, None) => plan.create_on.push(name),
            (Fit { should_continue_running: true, should_run }, Some(pods)) => {
                let mut running: Vec<&Pod> = Vec::new();
                for p in pods.iter().copied().filter(|p| !is_terminating(p)) {
                    match crate::owned_pods::phase(p) {
                        "Failed" if v.backoff.contains(&name) => plan.backoff_waits = true,
                        "Failed" => {
                            plan.notes.push(Note {
                                pod: Some(pod_name(p)),
                                warning: true,
                                reason: "FailedDaemonPod",
                                message: format!(
                                    "Found failed daemon pod {ns}/{} on node {name}, will try to kill it",
                                    pod_name(p)
                                ),
                            });
                            plan.failed_on.push(name.clone());
                            plan.delete.push(doomed(p));
                        }
                        "Succeeded" => {
                            plan.notes.push(Note {
                                pod: Some(pod_name(p)),
                                warning: false,
                                reason: "SucceededDaemonPod",
                                message: format!(
                                    "Found succeeded daemon pod {ns}/{} on node {name}, will try to delete it",
                                    pod_name(p)
                                ),
                            });
                            plan.delete.push(doomed(p));
                        }
                        _ => running.push(p),
                    }
                }
                sort_oldest_first(&mut running);
                if !surge {
                    // One pod per node: the oldest stays.
                    plan.delete.extend(running.iter().skip(1).map(|p| doomed(p)));
                    continue;
                }
                if running.is_empty() {
                    // Surging needs at least one live pod on the node.
                    if should_run {
                        plan.create_on.push(name);
                    }
                    continue;
                }
                // With surge, an old and a new pod may overlap until the new one is
                // available: keep the oldest of each, then drop the old one when it is
                // not ready or the new one is available.
                let (mut oldest_new, mut oldest_old): (Option<&Pod>, Option<&Pod>) = (None, None);
                for p in &running {
                    let slot = if label(p, CONTROLLER_REVISION_HASH_LABEL) == Some(v.hash) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(p);
                    } else {
                        plan.delete.push(doomed(p));
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                    && (!is_ready(old) || is_available(new, min_ready, v.now))
                {
                    plan.delete.push(doomed(old));
                }
            }
            (Fit { should_continue_running: false, .. }, Some(pods)) => {
                plan.delete.extend(pods.iter().filter(|p| !is_terminating(p)).map(|p| doomed(p)));
            }
            _ => {}
        }
    }
    // Unscheduled pods meant for nodes that no longer exist would wait forever.
    let known: HashSet<&str> = v.nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    for (node, pods) in v.pods_by_node {
        if known.contains(node.as_str()) {
            continue;
        }
        for p in pods {
            if p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty) {
                plan.delete.push(doomed(p));
            }
        }
    }
    plan
}

/// At most one old and one new (non-terminating) pod on a node; `None` when there are
/// more, which the node-by-node pass cleans up first.
fn updated_pods_on_node<'p>(
    pods: &[&'p Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().copied().filter(|p| !is_terminating(p)) {
        let slot = if is_updated(p, hash, generation) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

fn rolling_update(v: &View) -> Result<(Vec<String>, Vec<Doomed>), PlanError> {
    let (spec, min_ready) = spec(v.ds);
    let generation = template_generation(v.ds);
    let available = |p: &Pod| is_available(p, min_ready, v.now);
    let nodes: HashMap<&str, &Node> = v.nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, *n))).collect();
    // Every desired node takes part, with or without pods.
    let mut per_node: BTreeMap<&str, &[&Pod]> =
        v.pods_by_node.iter().map(|(k, p)| (k.as_str(), p.as_slice())).collect();
    let mut desired = 0;
    let daemon = DaemonPod::new(spec);
    for n in v.nodes {
        if daemon.fit(n).should_run {
            desired += 1;
            per_node.entry(n.metadata.name.as_deref().unwrap_or_default()).or_insert(&[]);
        }
    }
    let (max_surge, max_unavailable) = surge_and_unavailable(v.ds, desired)?;

    if max_surge == 0 {
        // Delete just enough old pods to stay within maxUnavailable; the node pass then
        // creates their replacements.
        let mut unavailable = 0;
        let (mut replace_now, mut candidates) = (Vec::new(), Vec::new());
        for pods in per_node.values() {
            let Some((new, old)) = updated_pods_on_node(pods, v.hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replace_now.push(doomed(old));
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(doomed(old));
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        replace_now.extend(candidates.into_iter().take(room));
        return Ok((Vec::new(), replace_now));
    }

    // Surging: start a new pod beside an old one, delete the old one once the new one
    // is available, never more than maxSurge new pods in flight for available old ones.
    let mut delete = Vec::new();
    let mut misplaced = Vec::new();
    let (mut candidate_nodes, mut allowed_nodes) = (Vec::new(), Vec::new());
    let (mut surging, mut n_available) = (0, 0);
    for (node, pods) in &per_node {
        let Some((new, old)) = updated_pods_on_node(pods, v.hash, generation) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new)
            && available(p)
        {
            n_available += 1;
        }
        let should_run = nodes.get(node).is_some_and(|n| daemon.fit(n).should_run);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !available(old) => {
                if should_run {
                    allowed_nodes.push(node.to_string());
                } else {
                    delete.push(doomed(old));
                }
            }
            (None, Some(old)) => {
                if !should_run {
                    misplaced.push(doomed(old));
                } else if surging < max_surge {
                    candidate_nodes.push(node.to_string());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    delete.push(doomed(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes that no longer qualify go only while enough others are available.
    let deletable = (n_available - desired).clamp(0, misplaced.len() as i32) as usize;
    delete.extend(misplaced.into_iter().take(deletable));
    let room = (max_surge - surging).clamp(0, candidate_nodes.len() as i32) as usize;
    allowed_nodes.extend(candidate_nodes.into_iter().take(room));
    Ok((allowed_nodes, delete))
}

/// The status counts, from the oldest pod on each node.
pub fn counts(v: &View) -> Counts {
    let (spec, min_ready) = spec(v.ds);
    let generation = template_generation(v.ds);
    let mut c = Counts::default();
    let daemon = DaemonPod::new(spec);
    for node in v.nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let pods = v.pods_by_node.get(name).filter(|p| !p.is_empty());
        if daemon.fit(node).should_run {
            c.desired += 1;
            let Some(pods) = pods else { continue };
            c.current += 1;
            let mut pods = pods.clone();
            sort_oldest_first(&mut pods);
            let pod = pods[0];
            if is_ready(pod) {
                c.ready += 1;
                if is_available(pod, min_ready, v.now) {
                    c.available += 1;
                }
            }
            if is_updated(pod, v.hash, generation) {
                c.updated += 1;
            }
        } else if pods.is_some() {
            c.misscheduled += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
    use k8s_openapi::api::core::v1::{NodeSpec, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const NOW: i64 = 10_000;

    fn ds(strategy: &str, surge: i32, unavailable: i32) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta { name: Some("agent".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec { spec: Some(PodSpec::default()), ..Default::default() },
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some(strategy.into()),
                    rolling_update: (strategy == "RollingUpdate").then_some(RollingUpdateDaemonSet {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn node(name: &str, taint: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec {
                taints: taint.map(|e| vec![Taint { key: "dedicated".into(), effect: e.into(), ..Default::default() }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A pod on `node` at revision `hash`, created at `created`, in `phase`, ready or not.
    fn pod(name: &str, node: &str, hash: &str, created: i64, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                labels: Some([(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some(node.into()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready.then(|| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(created + 1).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn by_node(pods: &[Pod]) -> BTreeMap<String, Vec<&Pod>> {
        let mut m: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for p in pods {
            m.entry(super::super::placement::target_node(p).unwrap().to_string()).or_default().push(p);
        }
        m
    }

    fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], backoff: &[&str]) -> Plan {
        let nodes: Vec<&Node> = nodes.iter().collect();
        let map = by_node(pods);
        let backoff: HashSet<String> = backoff.iter().map(|s| s.to_string()).collect();
        let v = View {
            ds,
            nodes: &nodes,
            pods_by_node: &map,
            hash: "new",
            now: Timestamp::from_second(NOW).unwrap(),
            backoff: &backoff,
        };
        decide(&v).unwrap()
    }

    fn count(ds: &DaemonSet, nodes: &[Node], pods: &[Pod]) -> Counts {
        let nodes: Vec<&Node> = nodes.iter().collect();
        let map = by_node(pods);
        let none = HashSet::new();
        counts(&View {
            ds,
            nodes: &nodes,
            pods_by_node: &map,
            hash: "new",
            now: Timestamp::from_second(NOW).unwrap(),
            backoff: &none,
        })
    }

    fn names(d: &[Doomed]) -> Vec<&str> {
        d.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn every_eligible_node_without_a_pod_gets_one() {
        let d = ds("RollingUpdate", 0, 1);
        let nodes = [node("a", None), node("b", None), node("tainted", Some("NoSchedule"))];
        let pods = [pod("pa", "a", "new", 1, "Running", true)];
        let p = plan(&d, &nodes, &pods, &[]);
        assert_eq!(p.create_on, ["b"]);
        assert!(p.delete.is_empty());
        let c = count(&d, &nodes, &pods);
        assert_eq!(c, Counts { desired: 2, current: 1, misscheduled: 0, ready: 1, updated: 1, available: 1 });
        assert_eq!(c.unavailable(), 1);
    }

    #[test]
    fn pods_on_nodes_that_no_longer_fit_go() {
        let d = ds("RollingUpdate", 0, 1);
        // NoExecute evicts; NoSchedule lets a running pod stay but counts it misscheduled.
        let nodes = [node("x", Some("NoExecute")), node("y", Some("NoSchedule"))];
        let pods = [pod("px", "x", "new", 1, "Running", true), pod("py", "y", "new", 1, "Running", true)];
        let p = plan(&d, &nodes, &pods, &[]);
        assert_eq!(names(&p.delete), ["px"]);
        assert_eq!(count(&d, &nodes, &pods).misscheduled, 2);
    }

    #[test]
    fn excess_pods_go_oldest_first_kept() {
        let d = ds("RollingUpdate", 0, 1);
        let nodes = [node("a", None)];
        let pods = [pod("young", "a", "new", 5, "Running", true), pod("old", "a", "new", 1, "Running", true)];
        assert_eq!(names(&plan(&d, &nodes, &pods, &[]).delete), ["young"]);
    }

    #[test]
    fn failed_pods_are_replaced_with_backoff() {
        let d = ds("RollingUpdate", 0, 1);
        let nodes = [node("a", None)];
        let pods = [pod("dead", "a", "new", 1, "Failed", false)];
        let p = plan(&d, &nodes, &pods, &[]);
        assert_eq!(names(&p.delete), ["dead"]);
        assert_eq!(p.failed_on, ["a"]);
        assert_eq!(p.notes[0].reason, "FailedDaemonPod");
        assert_eq!(p.notes[0].message, "Found failed daemon pod ns/dead on node a, will try to kill it");
        let waiting = plan(&d, &nodes, &pods, &["a"]);
        assert!(waiting.delete.is_empty() && waiting.backoff_waits);
        let done = [pod("done", "a", "new", 1, "Succeeded", false)];
        assert_eq!(plan(&d, &nodes, &done, &[]).notes[0].reason, "SucceededDaemonPod");
    }

    #[test]
    fn unscheduled_pods_for_vanished_nodes_go() {
        let d = ds("RollingUpdate", 0, 1);
        let mut orphan = pod("lost", "gone", "new", 1, "Pending", false);
        orphan.spec =
            Some(PodSpec { affinity: Some(super::super::placement::pin_to_node(None, "gone")), ..Default::default() });
        let p = plan(&d, &[], &[orphan], &[]);
        assert_eq!(names(&p.delete), ["lost"]);
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let d = ds("RollingUpdate", 0, 1);
        let nodes = [node("a", None), node("b", None), node("c", None)];
        let old = [
            pod("pa", "a", "old", 1, "Running", true),
            pod("pb", "b", "old", 1, "Running", true),
            pod("pc", "c", "old", 1, "Running", true),
        ];
        // One at a time.
        assert_eq!(names(&plan(&d, &nodes, &old, &[]).delete), ["pa"]);
        // While a new pod is not yet available, no other old pod goes.
        let midway = [
            pod("na", "a", "new", 9, "Running", false),
            pod("pb", "b", "old", 1, "Running", true),
            pod("pc", "c", "old", 1, "Running", true),
        ];
        assert!(plan(&d, &nodes, &midway, &[]).is_empty());
        // Once it is, the next one goes; unavailable old pods go at once.
        let next = [
            pod("na", "a", "new", 9, "Running", true),
            pod("pb", "b", "old", 1, "Running", false),
            pod("pc", "c", "old", 1, "Running", true),
        ];
        assert_eq!(names(&plan(&d, &nodes, &next, &[]).delete), ["pb"]);
        let two = ds("RollingUpdate", 0, 2);
        assert_eq!(names(&plan(&two, &nodes, &old, &[]).delete), ["pa", "pb"]);
        let on_delete = ds("OnDelete", 0, 0);
        assert!(plan(&on_delete, &nodes, &old, &[]).is_empty(), "OnDelete waits for the user");
        assert_eq!(count(&d, &nodes, &old).updated, 0);
    }

    #[test]
    fn rolling_update_with_surge_overlaps_pods() {
        let d = ds("RollingUpdate", 1, 0);
        let nodes = [node("a", None), node("b", None)];
        let old = [pod("pa", "a", "old", 1, "Running", true), pod("pb", "b", "old", 1, "Running", true)];
        let p = plan(&d, &nodes, &old, &[]);
        assert_eq!(p.create_on, ["a"], "one surge pod at a time");
        assert!(p.delete.is_empty());
        // The new pod is not available yet: both stay, nothing more surges.
        let surging = [
            pod("pa", "a", "old", 1, "Running", true),
            pod("na", "a", "new", 9, "Running", false),
            pod("pb", "b", "old", 1, "Running", true),
        ];
        assert!(plan(&d, &nodes, &surging, &[]).is_empty());
        // Available: the old one on that node goes.
        let ready = [
            pod("pa", "a", "old", 1, "Running", true),
            pod("na", "a", "new", 9, "Running", true),
            pod("pb", "b", "old", 1, "Running", true),
        ];
        assert_eq!(names(&plan(&d, &nodes, &ready, &[]).delete), ["pa"]);
        // Counts look at the oldest pod on a node.
        assert_eq!(count(&d, &nodes, &ready).updated, 0);
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(Some(&IntOrString::String("10%".into())), 15, "x"), Ok(2));
        assert_eq!(scaled(Some(&IntOrString::String("0%".into())), 15, "x"), Ok(0));
        assert!(scaled(Some(&IntOrString::String("ten".into())), 15, "x").is_err());
        let zero = ds("RollingUpdate", 0, 0);
        assert_eq!(surge_and_unavailable(&zero, 3), Ok((0, 1)), "an impossible strategy still makes progress");
    }

    #[test]
    fn template_generation_labels_count_as_updated() {
        let mut d = ds("RollingUpdate", 0, 1);
        d.metadata.annotations = Some([(TEMPLATE_GENERATION_ANNOTATION.to_string(), "3".to_string())].into());
        let mut p = pod("p", "a", "other", 1, "Running", true);
        assert!(!is_updated(&p, "new", template_generation(&d)));
        p.metadata.labels.as_mut().unwrap().insert(TEMPLATE_GENERATION_LABEL.into(), "3".into());
        assert!(is_updated(&p, "new", template_generation(&d)));
    }
}
