//! Taints and tolerations, as upstream's node lifecycle controller and taint manager
//! decide them: which taints a node's conditions call for, whether a pod tolerates a
//! node's `NoExecute` taints, and for how long.

use k8s_openapi::api::core::v1::{NodeCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// The taint keys the controller owns with `NoSchedule`: one per condition it maps,
/// plus cordoning. Taints with other keys (or these keys with other effects) belong
/// to someone else and are left alone.
const NO_SCHEDULE_KEYS: &[&str] =
    &[NOT_READY, UNREACHABLE, UNSCHEDULABLE, MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE, NETWORK_UNAVAILABLE];

/// The `NoSchedule` taint a condition in a given status calls for (upstream's
/// nodeConditionToTaintKeyStatusMap).
fn condition_taint(type_: &str, status: &str) -> Option<&'static str> {
    match (type_, status) {
        ("Ready", "False") => Some(NOT_READY),
        ("Ready", "Unknown") => Some(UNREACHABLE),
        ("MemoryPressure", "True") => Some(MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(PID_PRESSURE),
        _ => None,
    }
}

/// The Ready condition's status: `True`, `False`, `Unknown`, or `None` when the node
/// never reported one.
pub fn ready_status(conditions: &[NodeCondition]) -> Option<&str> {
    conditions.iter().rev().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

/// The `NoExecute` taint the Ready condition calls for: `not-ready` when the agent
/// says so, `unreachable` when nobody knows. The two exclude each other, as upstream.
pub fn no_execute_key(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

fn taint(key: &str, effect: &str, now: Timestamp) -> Taint {
    Taint { key: key.to_string(), effect: effect.to_string(), time_added: Some(Time(now)), value: None }
}

fn owned(t: &Taint) -> bool {
    (t.effect == NO_SCHEDULE && NO_SCHEDULE_KEYS.contains(&t.key.as_str()))
        || (t.effect == NO_EXECUTE && (t.key == NOT_READY || t.key == UNREACHABLE))
}

/// The node's taints as they should be: the controller's `NoSchedule` taints follow
/// the conditions and `spec.unschedulable`; its `NoExecute` taint is `no_execute`
/// (none during a full disruption). Taints that stay keep their `timeAdded`; new ones
/// get `now`. `None` when nothing changes.
pub fn desired_taints(
    current: &[Taint],
    conditions: &[NodeCondition],
    unschedulable: bool,
    no_execute: Option<&str>,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let mut wanted: Vec<(&str, &str)> =
        conditions.iter().filter_map(|c| condition_taint(&c.type_, &c.status)).map(|k| (k, NO_SCHEDULE)).collect();
    if unschedulable {
        wanted.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    if let Some(key) = no_execute {
        wanted.push((key, NO_EXECUTE));
    }
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !owned(t) || wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(taint(key, effect, now));
        }
    }
    let same = out.len() == current.len()
        && out.iter().all(|t| current.iter().any(|c| c.key == t.key && c.effect == t.effect));
    (!same).then_some(out)
}

/// The node's `NoExecute` taints, which the taint manager acts on.
pub fn no_execute(taints: &[Taint]) -> Vec<Taint> {
    taints.iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect()
}

/// Whether a toleration tolerates a taint (upstream's ToleratesTaint): an empty effect
/// or key matches any; `Exists` ignores the value, `Equal` (the default) compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if toleration.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// What the taint manager does with a pod on a node with `NoExecute` taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// No `NoExecute` taint, or every one tolerated forever: the pod stays.
    Stay,
    /// Some taint is not tolerated: delete the pod at once.
    EvictNow,
    /// All taints are tolerated, the shortest for this long: delete it then.
    EvictAfter(Duration),
}

/// Decides from the node's `NoExecute` taints and the pod's tolerations. Each taint
/// uses the first toleration that matches it; the shortest `tolerationSeconds` among
/// those wins, and zero or less means now (upstream's getMinTolerationTime).
pub fn plan(taints: &[Taint], tolerations: &[Toleration]) -> Plan {
    if taints.is_empty() {
        return Plan::Stay;
    }
    let mut shortest: Option<i64> = None;
    for taint in taints {
        let Some(used) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Plan::EvictNow;
        };
        if let Some(secs) = used.toleration_seconds {
            if secs <= 0 {
                return Plan::EvictNow;
            }
            shortest = Some(shortest.map_or(secs, |s| s.min(secs)));
        }
    }
    match shortest {
        None => Plan::Stay,
        Some(secs) => Plan::EvictAfter(Duration::from_secs(secs as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str) -> NodeCondition {
        NodeCondition { type_: type_.into(), status: status.into(), ..Default::default() }
    }

    fn t(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), ..Default::default() }
    }

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            effect: Some(effect.into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    fn keys(taints: &[Taint]) -> Vec<String> {
        let mut k: Vec<String> = taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
        k.sort();
        k
    }

    #[test]
    fn conditions_and_cordon_call_for_no_schedule_taints() {
        let now = Timestamp::UNIX_EPOCH;
        let conds = [cond("Ready", "Unknown"), cond("MemoryPressure", "True"), cond("DiskPressure", "False")];
        let out = desired_taints(&[], &conds, true, Some(UNREACHABLE), now).unwrap();
        assert_eq!(
            keys(&out),
            [
                "node.kubernetes.io/memory-pressure:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule",
            ]
        );
        assert!(out.iter().all(|t| t.time_added.is_some()));
        // Applying it again changes nothing.
        assert_eq!(desired_taints(&out, &conds, true, Some(UNREACHABLE), now), None);
    }

    #[test]
    fn a_healthy_node_loses_only_the_controllers_taints() {
        let now = Timestamp::UNIX_EPOCH;
        let current = vec![
            t(UNREACHABLE, NO_EXECUTE),
            t(UNREACHABLE, NO_SCHEDULE),
            t("dedicated", NO_SCHEDULE),
            // The same key with an effect the controller never sets belongs to a user.
            t(NOT_READY, "PreferNoSchedule"),
        ];
        let out = desired_taints(&current, &[cond("Ready", "True")], false, None, now).unwrap();
        assert_eq!(keys(&out), ["dedicated:NoSchedule", "node.kubernetes.io/not-ready:PreferNoSchedule"]);
    }

    #[test]
    fn not_ready_and_unreachable_swap() {
        let now = Timestamp::UNIX_EPOCH;
        let current = vec![t(UNREACHABLE, NO_EXECUTE), t(UNREACHABLE, NO_SCHEDULE)];
        let conds = [cond("Ready", "False")];
        let out = desired_taints(&current, &conds, false, no_execute_key(ready_status(&conds)), now).unwrap();
        assert_eq!(keys(&out), ["node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/not-ready:NoSchedule"]);
        assert_eq!(no_execute_key(Some("True")), None);
        assert_eq!(no_execute_key(None), None);
    }

    #[test]
    fn kept_taints_keep_their_time() {
        let added = Timestamp::from_second(100).unwrap();
        let mut old = t(UNREACHABLE, NO_EXECUTE);
        old.time_added = Some(Time(added));
        let out = desired_taints(&[old], &[cond("Ready", "Unknown")], false, Some(UNREACHABLE), Timestamp::UNIX_EPOCH)
            .unwrap();
        let kept = out.iter().find(|t| t.effect == NO_EXECUTE).unwrap();
        assert_eq!(kept.time_added, Some(Time(added)));
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let taint = Taint { key: "k".into(), effect: NO_EXECUTE.into(), value: Some("v".into()), time_added: None };
        assert!(tolerates(&Toleration { operator: Some("Exists".into()), ..Default::default() }, &taint));
        assert!(tolerates(&tol("k", "Exists", "", None), &taint));
        assert!(!tolerates(&tol("k", "Exists", NO_SCHEDULE, None), &taint));
        assert!(!tolerates(&tol("other", "Exists", NO_EXECUTE, None), &taint));
        let equal = Toleration { key: Some("k".into()), value: Some("v".into()), ..Default::default() };
        assert!(tolerates(&equal, &taint));
        let wrong = Toleration { key: Some("k".into()), value: Some("w".into()), ..Default::default() };
        assert!(!tolerates(&wrong, &taint));
        assert!(!tolerates(&tol("k", "Lt", NO_EXECUTE, None), &taint));
    }

    #[test]
    fn eviction_plans() {
        let unreachable = [t(UNREACHABLE, NO_EXECUTE)];
        assert_eq!(plan(&[], &[]), Plan::Stay);
        assert_eq!(plan(&unreachable, &[]), Plan::EvictNow);
        let defaults =
            [tol(NOT_READY, "Exists", NO_EXECUTE, Some(300)), tol(UNREACHABLE, "Exists", NO_EXECUTE, Some(2))];
        assert_eq!(plan(&unreachable, &defaults), Plan::EvictAfter(Duration::from_secs(2)));
        assert_eq!(plan(&unreachable, &[tol(UNREACHABLE, "Exists", NO_EXECUTE, None)]), Plan::Stay);
        assert_eq!(plan(&unreachable, &[tol(UNREACHABLE, "Exists", NO_EXECUTE, Some(0))]), Plan::EvictNow);
        // Two taints: the shortest toleration wins; one untolerated taint evicts now.
        let both = [t(UNREACHABLE, NO_EXECUTE), t("custom", NO_EXECUTE)];
        let tols = [tol(UNREACHABLE, "Exists", "", Some(30)), tol("custom", "Exists", NO_EXECUTE, Some(10))];
        assert_eq!(plan(&both, &tols), Plan::EvictAfter(Duration::from_secs(10)));
        assert_eq!(plan(&both, &tols[..1]), Plan::EvictNow);
        // The first matching toleration is the one used, as upstream.
        let first_forever = [tol("", "Exists", "", None), tol(UNREACHABLE, "Exists", NO_EXECUTE, Some(1))];
        assert_eq!(plan(&unreachable, &first_forever), Plan::Stay);
    }
}
