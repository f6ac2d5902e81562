//! The next steps for a StatefulSet, decided from a snapshot without I/O (upstream's
//! `updateStatefulSet`, `processReplica`, `processCondemned` and the rolling update
//! loop, with `OrderedReady` as its "monotonic" mode and `Parallel` as "burst").
//!
//! Ordered: pods are created one at a time in ordinal order, each Running and Ready
//! (and available) before the next; removed from the highest ordinal down, one at a
//! time; and a rolling update replaces the highest ordinal not yet updated, down to the
//! partition, waiting for each replacement to be available.

use crate::history::CONTROLLER_REVISION_HASH_LABEL;
use crate::owned_pods::{self, is_available, is_ready, is_terminating};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// The label with a pod's StatefulSet pod name (`apps.StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a pod's ordinal (`apps.PodIndexLabel`).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The parent name and ordinal in a pod name `<parent>-<ordinal>` (upstream's regex
/// `(.*)-([0-9]+)$`); `None` when the name has no 32-bit ordinal.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

/// Whether a pod's name makes it a member of the set.
pub fn is_member(set_name: &str, pod: &Pod) -> bool {
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).is_some_and(|(p, _)| p == set_name)
}

pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL)).map_or("", String::as_str)
}

fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0)
}

fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

fn min_ready(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn parallel(set: &StatefulSet) -> bool {
    set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel")
}

fn strategy(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// The partition of a rolling update, if the strategy names one.
fn partition(set: &StatefulSet) -> Option<i32> {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .map(|r| r.partition.unwrap_or(0))
}

fn is_running_and_ready(pod: &Pod) -> bool {
    owned_pods::phase(pod) == "Running" && is_ready(pod)
}

fn is_running_and_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    owned_pods::phase(pod) == "Running" && is_available(pod, min_ready, now)
}

/// "Created" in upstream's sense: the API server has given it a phase.
fn is_created(pod: &Pod) -> bool {
    !owned_pods::phase(pod).is_empty()
}

/// The name of the claim a volume claim template gives the pod with this ordinal.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// A new pod `<set>-<ordinal>` from `template` at revision `revision` (upstream's
/// `newStatefulSetPod` and `setPodRevision`): its identity labels, hostname and
/// subdomain, and a volume per claim template naming the pod's claim. Claims are not
/// created (PersistentVolumeClaims are not served yet), but the volumes name them as
/// upstream's do.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let oref = owned_pods::controller_ref("apps/v1", "StatefulSet", &set.metadata);
    let mut pod = owned_pods::pod_from_template(template, &set_name, oref);
    let name = format!("{set_name}-{ordinal}");
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.to_string(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_string(), ordinal.to_string());
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), revision.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set.spec.as_ref().and_then(|s| s.service_name.clone()).filter(|s| !s.is_empty());
    let claims = set.spec.as_ref().and_then(|s| s.volume_claim_templates.as_deref()).unwrap_or_default();
    if !claims.is_empty() {
        let mut volumes: Vec<Volume> = claims
            .iter()
            .map(|c| {
                let template_name = c.metadata.name.clone().unwrap_or_default();
                Volume {
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim_name(&template_name, &set_name, ordinal),
                        read_only: None,
                    }),
                    name: template_name,
                    ..Volume::default()
                }
            })
            .collect();
        let taken: Vec<String> = volumes.iter().map(|v| v.name.clone()).collect();
        volumes.extend(spec.volumes.take().unwrap_or_default().into_iter().filter(|v| !taken.contains(&v.name)));
        spec.volumes = Some(volumes);
    }
    pod
}

/// Whether the pod's identity labels fit the set (upstream's `identityMatches`;
/// hostname and subdomain cannot change on a live pod, so they are not compared).
fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    parent_and_ordinal(name).is_some_and(|(p, _)| p == set_name)
        && pod.metadata.namespace == set.metadata.namespace
        && pod.metadata.labels.as_ref().and_then(|l| l.get(POD_NAME_LABEL)).map(String::as_str) == Some(name)
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Failed or Succeeded: it is recreated.
    Finished,
    /// Its ordinal is beyond the replicas.
    ScaleDown,
    /// It runs an old revision.
    Update,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create(Box<Pod>),
    Delete {
        name: String,
        uid: String,
        why: Why,
    },
    /// Put the identity labels on a pod that lacks them.
    Relabel {
        name: String,
        ordinal: i32,
    },
}

/// The status counts and revisions (upstream's `updateStatus` plus `completeRollingUpdate`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    pub observed_generation: i64,
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
    pub current_revision: String,
    pub update_revision: String,
    pub collision_count: i32,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub status: Status,
    /// What an ordered set waits for, if anything (for logs).
    pub waiting_for: Option<String>,
}

/// A snapshot of one StatefulSet's world.
pub struct View<'a> {
    pub set: &'a StatefulSet,
    /// The set's pods (claimed members).
    pub pods: &'a [&'a Pod],
    pub current_revision: &'a str,
    pub update_revision: &'a str,
    pub current_template: &'a PodTemplateSpec,
    pub update_template: &'a PodTemplateSpec,
    pub collision_count: i32,
    pub now: Timestamp,
}

/// A replica slot: a live pod, or one this pass creates.
enum Slot<'a> {
    Live(&'a Pod),
    New(Box<Pod>),
}

impl Slot<'_> {
    fn pod(&self) -> &Pod {
        match self {
            Slot::Live(p) => p,
            Slot::New(p) => p,
        }
    }
}

fn counts(status: &mut Status, pods: impl Iterator<Item = impl std::ops::Deref<Target = Pod>>, v: &View) {
    let (min, now) = (min_ready(v.set), v.now);
    for p in pods {
        if !is_created(&p) {
            continue;
        }
        status.replicas += 1;
        if is_running_and_ready(&p) {
            status.ready += 1;
            if is_running_and_available(&p, min, now) {
                status.available += 1;
            }
        }
        if !is_terminating(&p) {
            let r = pod_revision(&p);
            if r == v.current_revision {
                status.current += 1;
            }
            if r == v.update_revision {
                status.updated += 1;
            }
        }
    }
}

fn delete_step(p: &Pod, why: Why) -> Step {
    Step::Delete {
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        why,
    }
}

/// Decides the next steps and the status.
pub fn decide(v: &View) -> Plan {
    let set = v.set;
    let (start, count) = (start_ordinal(set), replicas(set));
    let end = start + count - 1;
    let min = min_ready(set);
    let monotonic = !parallel(set);
    let mut plan = Plan {
        status: Status {
            observed_generation: set.metadata.generation.unwrap_or(0),
            current_revision: v.current_revision.to_string(),
            update_revision: v.update_revision.to_string(),
            collision_count: v.collision_count,
            ..Default::default()
        },
        ..Default::default()
    };

    // Split pods into replica slots and condemned (valid ordinal, out of range).
    let mut slots: Vec<Option<Slot>> = (0..count).map(|_| None).collect();
    let mut condemned: Vec<&Pod> = Vec::new();
    for p in v.pods.iter().copied() {
        match ordinal(p) {
            Some(o) if o >= start && o <= end => slots[(o - start) as usize] = Some(Slot::Live(p)),
            Some(_) => condemned.push(p),
            None => {}
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    // Missing slots get a pod at the revision its ordinal should run.
    let rolling = strategy(set) == "RollingUpdate";
    let current_replicas = set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
    for (i, slot) in slots.iter_mut().enumerate() {
        if slot.is_none() {
            let ord = start + i as i32;
            let stays_current = rolling
                && match partition(set) {
                    None => ord < start + current_replicas,
                    Some(p) => ord < start + p,
                };
            *slot = Some(Slot::New(Box::new(if stays_current {
                new_pod(set, v.current_template, v.current_revision, ord)
            } else {
                new_pod(set, v.update_template, v.update_revision, ord)
            })));
        }
    }
    let slots: Vec<Slot> = slots.into_iter().flatten().collect();
    let unavailable = |p: &Pod| !is_running_and_available(p, min, v.now);
    let first_unavailable: Option<&str> = slots
        .iter()
        .map(Slot::pod)
        .chain(condemned.iter().rev().copied())
        .find(|p| unavailable(p))
        .and_then(|p| p.metadata.name.as_deref());

    let finish = |mut plan: Plan, slots: &[Slot], condemned: &[&Pod], current_adjust: i32| {
        counts(&mut plan.status, slots.iter().map(Slot::pod).chain(condemned.iter().copied()), v);
        plan.status.current += current_adjust;
        // A rolling update is complete when every pod runs, ready, at the update revision.
        if rolling && plan.status.updated == plan.status.replicas && plan.status.ready == plan.status.replicas {
            plan.status.current = plan.status.updated;
            plan.status.current_revision = plan.status.update_revision.clone();
        }
        plan
    };

    // A set being deleted only reports.
    if set.metadata.deletion_timestamp.is_some() {
        return finish(plan, &slots, &condemned, 0);
    }

    // Replicas, in ordinal order.
    for slot in &slots {
        let p = slot.pod();
        let name = p.metadata.name.clone().unwrap_or_default();
        if let Slot::Live(live) = slot
            && owned_pods::is_terminal(live)
        {
            if !is_terminating(live) {
                plan.steps.push(delete_step(live, Why::Finished));
            }
            if monotonic {
                plan.waiting_for = Some(format!("{name} to be replaced"));
                return finish(plan, &slots, &condemned, 0);
            }
            continue;
        }
        if let Slot::New(new) = slot {
            plan.steps.push(Step::Create(new.clone()));
            if monotonic {
                plan.waiting_for = Some(format!("{name} to be created"));
                return finish(plan, &slots, &condemned, 0);
            }
            continue;
        }
        if monotonic {
            if is_terminating(p) {
                plan.waiting_for = Some(format!("{name} to terminate"));
                return finish(plan, &slots, &condemned, 0);
            }
            if !is_running_and_ready(p) {
                plan.waiting_for = Some(format!("{name} to be Running and Ready"));
                return finish(plan, &slots, &condemned, 0);
            }
            if !is_running_and_available(p, min, v.now) {
                plan.waiting_for = Some(format!("{name} to be available"));
                return finish(plan, &slots, &condemned, 0);
            }
        }
        if !identity_matches(set, p) {
            plan.steps.push(Step::Relabel { name, ordinal: ordinal(p).unwrap_or(0) });
        }
    }

    // Condemned pods, highest ordinal first; ordered sets wait for each to go.
    for p in &condemned {
        let name = p.metadata.name.clone().unwrap_or_default();
        if is_terminating(p) {
            if monotonic {
                plan.waiting_for = Some(format!("{name} to terminate"));
                return finish(plan, &slots, &condemned, 0);
            }
            continue;
        }
        let first = first_unavailable == Some(name.as_str());
        if monotonic && !first && (!is_running_and_ready(p) || !is_running_and_available(p, min, v.now)) {
            plan.waiting_for = Some(format!("{} to be healthy before scaling down", first_unavailable.unwrap_or("")));
            return finish(plan, &slots, &condemned, 0);
        }
        plan.steps.push(delete_step(p, Why::ScaleDown));
        if monotonic {
            return finish(plan, &slots, &condemned, 0);
        }
    }

    if !rolling {
        // OnDelete: pods are replaced when a user deletes them.
        return finish(plan, &slots, &condemned, 0);
    }
    // Rolling update: the highest ordinal not at the update revision goes, down to the
    // partition, one at a time, each replacement available before the next.
    let floor = partition(set).unwrap_or(0).max(0) as usize;
    for slot in slots.iter().skip(floor).rev() {
        let p = slot.pod();
        if pod_revision(p) != v.update_revision && !is_terminating(p) {
            plan.steps.push(delete_step(p, Why::Update));
            return finish(plan, &slots, &condemned, -1);
        }
        if unavailable(p) {
            plan.waiting_for = Some(format!("{} to be updated", p.metadata.name.as_deref().unwrap_or("")));
            return finish(plan, &slots, &condemned, 0);
        }
    }
    finish(plan, &slots, &condemned, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetOrdinals, StatefulSetSpec, StatefulSetStatus,
        StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const NOW: i64 = 10_000;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn set(replicas: i32, policy: &str, strategy: &str, partition: Option<i32>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("set-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some("nginx".into()),
                pod_management_policy: Some(policy.into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some(strategy.into()),
                    rolling_update: partition
                        .map(|p| RollingUpdateStatefulSetStrategy { partition: Some(p), max_unavailable: None }),
                }),
                template: template("v2"),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus::default()),
        }
    }

    /// A pod `web-<ord>` at revision `rev`: phase, ready, terminating.
    fn pod(ord: i32, rev: &str, phase: &str, ready: bool, terminating: bool) -> Pod {
        let s = set(1, "OrderedReady", "RollingUpdate", Some(0));
        let mut p = new_pod(&s, &template(rev), rev, ord);
        p.metadata.uid = Some(format!("uid-{ord}"));
        if terminating {
            p.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
        }
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::from_second(1).unwrap())),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        p
    }

    fn up(ord: i32, rev: &str) -> Pod {
        pod(ord, rev, "Running", true, false)
    }

    fn decide_for(s: &StatefulSet, pods: &[Pod]) -> Plan {
        let refs: Vec<&Pod> = pods.iter().collect();
        let (t1, t2) = (template("v1"), template("v2"));
        decide(&View {
            set: s,
            pods: &refs,
            current_revision: "v1",
            update_revision: "v2",
            current_template: &t1,
            update_template: &t2,
            collision_count: 0,
            now: Timestamp::from_second(NOW).unwrap(),
        })
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Create(p) => p.metadata.name.clone(),
                _ => None,
            })
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<(String, Why)> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Delete { name, why, .. } => Some((name.clone(), *why)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web-99999999999"), None, "beyond 32 bits");
        assert!(is_member("web", &up(3, "v2")));
        assert!(!is_member("we", &up(3, "v2")));
    }

    #[test]
    fn new_pods_have_stable_identity_and_storage() {
        let mut s = set(3, "OrderedReady", "RollingUpdate", Some(0));
        s.spec.as_mut().unwrap().volume_claim_templates = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some("data".into()), ..Default::default() },
            ..Default::default()
        }]);
        let p = new_pod(&s, &template("v2"), "web-abc", 2);
        assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[CONTROLLER_REVISION_HASH_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vol = &spec.volumes.as_ref().unwrap()[0];
        assert_eq!(vol.name, "data");
        assert_eq!(vol.persistent_volume_claim.as_ref().unwrap().claim_name, "data-web-2");
        let oref = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((oref.kind.as_str(), oref.uid.as_str(), oref.controller), ("StatefulSet", "set-uid", Some(true)));
    }

    #[test]
    fn ordered_start_waits_for_each_pod_to_be_ready() {
        let s = set(3, "OrderedReady", "RollingUpdate", Some(0));
        assert_eq!(created(&decide_for(&s, &[])), ["web-0"]);
        // web-0 exists but is not ready: nothing more.
        let pending = decide_for(&s, &[pod(0, "v2", "Pending", false, false)]);
        assert!(pending.steps.is_empty());
        assert_eq!(pending.waiting_for.as_deref(), Some("web-0 to be Running and Ready"));
        assert_eq!(created(&decide_for(&s, &[up(0, "v2")])), ["web-1"]);
        assert_eq!(created(&decide_for(&s, &[up(0, "v2"), up(1, "v2")])), ["web-2"]);
        let done = decide_for(&s, &[up(0, "v2"), up(1, "v2"), up(2, "v2")]);
        assert!(done.steps.is_empty());
        assert_eq!((done.status.replicas, done.status.ready, done.status.updated), (3, 3, 3));
        assert_eq!(done.status.current_revision, "v2", "a finished rollout makes the update revision current");
        assert_eq!(done.status.current, 3);
    }

    #[test]
    fn parallel_creates_and_deletes_at_once() {
        let s = set(3, "Parallel", "RollingUpdate", Some(0));
        assert_eq!(created(&decide_for(&s, &[])), ["web-0", "web-1", "web-2"]);
        let s1 = set(1, "Parallel", "RollingUpdate", Some(0));
        let d = deleted(&decide_for(&s1, &[up(0, "v2"), pod(1, "v2", "Pending", false, false), up(2, "v2")]));
        assert_eq!(d, [("web-2".to_string(), Why::ScaleDown), ("web-1".to_string(), Why::ScaleDown)]);
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
        let s = set(1, "OrderedReady", "RollingUpdate", Some(0));
        let pods = [up(0, "v2"), up(1, "v2"), up(2, "v2")];
        assert_eq!(deleted(&decide_for(&s, &pods)), [("web-2".to_string(), Why::ScaleDown)]);
        // While web-2 terminates, web-1 stays.
        let terminating = [up(0, "v2"), up(1, "v2"), pod(2, "v2", "Running", true, true)];
        let p = decide_for(&s, &terminating);
        assert!(p.steps.is_empty());
        assert_eq!(p.waiting_for.as_deref(), Some("web-2 to terminate"));
        // Healthy pods go first even when a lower condemned pod is unhealthy...
        let unhealthy_low = [up(0, "v2"), pod(1, "v2", "Running", false, false), up(2, "v2")];
        assert_eq!(deleted(&decide_for(&s, &unhealthy_low)), [("web-2".to_string(), Why::ScaleDown)]);
        // ...but an unhealthy kept replica blocks scaling down.
        let unhealthy_kept = [pod(0, "v2", "Running", false, false), up(1, "v2")];
        assert!(decide_for(&s, &unhealthy_kept).steps.is_empty());
        // An unhealthy condemned pod that is not the first unhealthy one waits too.
        let s0 = set(0, "OrderedReady", "RollingUpdate", Some(0));
        let two_sick = [pod(0, "v2", "Running", false, false), pod(1, "v2", "Running", false, false)];
        assert!(decide_for(&s0, &two_sick).steps.is_empty());
        let low_sick = [pod(0, "v2", "Running", false, false), up(1, "v2")];
        assert_eq!(deleted(&decide_for(&s0, &low_sick)), [("web-1".to_string(), Why::ScaleDown)]);
        let unhealthy_high = [up(0, "v2"), up(1, "v2"), pod(2, "v2", "Running", false, false)];
        assert_eq!(deleted(&decide_for(&s, &unhealthy_high)), [("web-2".to_string(), Why::ScaleDown)]);
    }

    #[test]
    fn failed_pods_are_replaced() {
        let s = set(2, "OrderedReady", "RollingUpdate", Some(0));
        let p = decide_for(&s, &[pod(0, "v2", "Failed", false, false), up(1, "v2")]);
        assert_eq!(deleted(&p), [("web-0".to_string(), Why::Finished)]);
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let s = set(3, "OrderedReady", "RollingUpdate", Some(1));
        let old = [up(0, "v1"), up(1, "v1"), up(2, "v1")];
        let p = decide_for(&s, &old);
        assert_eq!(deleted(&p), [("web-2".to_string(), Why::Update)]);
        assert_eq!(p.status.current, 2, "the deleted pod no longer counts as current");
        // The replacement is created at the update revision.
        let recreated = decide_for(&s, &[up(0, "v1"), up(1, "v1")]);
        let Step::Create(new) = &recreated.steps[0] else { panic!("{:?}", recreated.steps) };
        assert_eq!(pod_revision(new), "v2");
        // While it is not ready, nothing else moves.
        assert!(decide_for(&s, &[up(0, "v1"), up(1, "v1"), pod(2, "v2", "Running", false, false)]).steps.is_empty());
        // Then web-1; web-0 is below the partition and stays.
        assert_eq!(
            deleted(&decide_for(&s, &[up(0, "v1"), up(1, "v1"), up(2, "v2")])),
            [("web-1".to_string(), Why::Update)]
        );
        let parted = decide_for(&s, &[up(0, "v1"), up(1, "v2"), up(2, "v2")]);
        assert!(parted.steps.is_empty());
        assert_eq!((parted.status.current, parted.status.updated), (1, 2));
        assert_eq!(parted.status.current_revision, "v1", "a partitioned rollout is not complete");
        // Below the partition, a missing pod comes back at the current revision.
        let again = decide_for(&s, &[up(1, "v2"), up(2, "v2")]);
        let Step::Create(p0) = &again.steps[0] else { panic!() };
        assert_eq!(pod_revision(p0), "v1");
    }

    #[test]
    fn on_delete_leaves_old_pods_alone() {
        let s = set(2, "OrderedReady", "OnDelete", None);
        assert!(decide_for(&s, &[up(0, "v1"), up(1, "v1")]).steps.is_empty());
        // A deleted pod comes back at the update revision.
        let p = decide_for(&s, &[up(0, "v1")]);
        let Step::Create(p1) = &p.steps[0] else { panic!() };
        assert_eq!(pod_revision(p1), "v2");
    }

    #[test]
    fn start_ordinal_shifts_names() {
        let mut s = set(2, "OrderedReady", "RollingUpdate", Some(0));
        s.spec.as_mut().unwrap().ordinals = Some(StatefulSetOrdinals { start: Some(5) });
        assert_eq!(created(&decide_for(&s, &[])), ["web-5"]);
        // web-0 is now outside the range.
        assert_eq!(
            deleted(&decide_for(&s, &[up(0, "v2"), up(5, "v2"), up(6, "v2")])),
            [("web-0".to_string(), Why::ScaleDown)]
        );
    }

    #[test]
    fn pods_missing_identity_labels_are_relabelled() {
        let s = set(1, "OrderedReady", "RollingUpdate", Some(0));
        let mut p = up(0, "v2");
        p.metadata.labels.as_mut().unwrap().remove(POD_NAME_LABEL);
        assert_eq!(decide_for(&s, &[p]).steps, [Step::Relabel { name: "web-0".into(), ordinal: 0 }]);
    }

    #[test]
    fn deleting_sets_only_report() {
        let mut s = set(3, "OrderedReady", "RollingUpdate", Some(0));
        s.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
        let p = decide_for(&s, &[up(0, "v2")]);
        assert!(p.steps.is_empty());
        assert_eq!(p.status.replicas, 1);
    }

    #[test]
    fn status_counts_pods_by_revision() {
        let mut s = set(3, "OrderedReady", "RollingUpdate", Some(3));
        s.spec.as_mut().unwrap().min_ready_seconds = Some(NOW as i32);
        let p = decide_for(&s, &[up(0, "v1"), up(1, "v2"), pod(2, "v2", "Pending", false, false)]);
        let st = &p.status;
        assert_eq!((st.replicas, st.ready, st.available, st.current, st.updated), (3, 2, 0, 1, 2));
        assert_eq!((st.observed_generation, st.update_revision.as_str()), (2, "v2"));
    }
}
