//! From the API's objects (k8s-openapi types) to the core's plain data: quantities
//! parsed, selectors turned into requirements, requests summed the way upstream's
//! `resourcehelper.PodRequests` does. Bad input degrades to "matches nothing" or
//! "requests nothing", never a panic.

use super::model::{
    AffinityTerm, DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, Effect, HostPort, Labels, Node, NodeSelectorTerm,
    Op, Pdb, PodInfo, PreferredSchedulingTerm, Requirement, Resources, Selector, SpreadConstraint, TAINT_NOT_READY,
    TAINT_UNREACHABLE, Taint, Toleration, TolerationOp, WeightedAffinityTerm, WhenUnsatisfiable,
};
use api::validation::Quantity as Q;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The value in thousandths (CPU), rounded up; 0 when it does not parse.
fn milli(q: &Quantity) -> i64 {
    Q::parse(&q.0).ok().and_then(|q| q.milli_value()).and_then(|v| i64::try_from(v).ok()).unwrap_or(0)
}

/// The value in whole units, rounded up (upstream's `Value()`).
fn whole(q: &Quantity) -> i64 {
    let m = Q::parse(&q.0).ok().and_then(|q| q.milli_value()).unwrap_or(0);
    i64::try_from((m + 999).div_euclid(1000)).unwrap_or(i64::MAX)
}

/// Resources from a resource list; `pods` and `storage` are not requests.
pub fn resources(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let mut r = Resources::default();
    for (name, q) in list.into_iter().flatten() {
        match name.as_str() {
            "cpu" => r.milli_cpu = milli(q),
            "memory" => r.memory = whole(q),
            "ephemeral-storage" => r.ephemeral_storage = whole(q),
            "pods" | "storage" => {}
            other => r.scalar.push((other.to_string(), whole(q))),
        }
    }
    r.scalar.sort();
    r
}

fn container_requests(c: &core::Container) -> Resources {
    resources(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// Requests with the scoring defaults for a container that states no CPU or memory.
fn non_zero(c: &core::Container) -> (i64, i64) {
    let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let cpu = req.and_then(|r| r.get("cpu")).map(milli).unwrap_or(DEFAULT_MILLI_CPU_REQUEST);
    let mem = req.and_then(|r| r.get("memory")).map(whole).unwrap_or(DEFAULT_MEMORY_REQUEST);
    (cpu, mem)
}

fn is_sidecar(c: &core::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Upstream's pod requests: containers plus sidecars, at least what any init
/// container needs while the sidecars before it run, plus the pod overhead.
fn pod_requests(spec: &core::PodSpec, each: impl Fn(&core::Container) -> Resources) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&each(c), 1);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = each(c);
        let running = if is_sidecar(c) {
            reqs.add(&own, 1);
            sidecars.add(&own, 1);
            sidecars.clone()
        } else {
            let mut r = own;
            r.add(&sidecars, 1);
            r
        };
        init_max.max_with(&running);
    }
    reqs.max_with(&init_max);
    reqs.add(&resources(spec.overhead.as_ref()), 1);
    reqs
}

fn labels(map: Option<&BTreeMap<String, String>>) -> Labels {
    map.cloned().unwrap_or_default()
}

fn op(s: &str) -> Op {
    match s {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::Gt,
        "Lt" => Op::Lt,
        _ => Op::Invalid,
    }
}

fn requirement(key: &str, operator: &str, values: Option<&Vec<String>>) -> Requirement {
    let values = values.cloned().unwrap_or_default();
    let mut op = op(operator);
    // Upstream rejects Gt/Lt without exactly one integer value: such a term matches nothing.
    if matches!(op, Op::Gt | Op::Lt) && (values.len() != 1 || values[0].parse::<i64>().is_err()) {
        op = Op::Invalid;
    }
    Requirement { key: key.to_string(), op, values }
}

/// A label selector; `None` selects nothing.
pub fn selector(sel: Option<&LabelSelector>) -> Selector {
    let Some(sel) = sel else { return Selector::Nothing };
    let mut reqs: Vec<Requirement> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Requirement { key: k.clone(), op: Op::In, values: vec![v.clone()] })
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let r = requirement(&e.key, &e.operator, e.values.as_ref());
        // Gt and Lt are not label selector operators.
        reqs.push(if matches!(r.op, Op::Gt | Op::Lt) { Requirement { op: Op::Invalid, ..r } } else { r });
    }
    Selector::Match(reqs)
}

fn node_selector_term(t: &core::NodeSelectorTerm) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: t
            .match_expressions
            .iter()
            .flatten()
            .map(|e| requirement(&e.key, &e.operator, e.values.as_ref()))
            .collect(),
        match_fields: t
            .match_fields
            .iter()
            .flatten()
            .map(|e| requirement(&e.key, &e.operator, e.values.as_ref()))
            .collect(),
    }
}

fn toleration(t: &core::Toleration) -> Toleration {
    let op = match t.operator.as_deref() {
        None | Some("") | Some("Equal") => TolerationOp::Equal,
        Some("Exists") => TolerationOp::Exists,
        Some(_) => TolerationOp::Invalid,
    };
    Toleration {
        key: t.key.clone().unwrap_or_default(),
        op,
        value: t.value.clone().unwrap_or_default(),
        effect: t.effect.as_deref().filter(|e| !e.is_empty()).map(Effect::parse),
    }
}

/// Adds `key In/NotIn [pod's value]` for each listed key the pod has (upstream's
/// matchLabelKeys / mismatchLabelKeys).
fn merge_label_keys(sel: &mut Selector, pod_labels: &Labels, keys: Option<&Vec<String>>, op: Op) {
    if let Selector::Match(reqs) = sel {
        for k in keys.into_iter().flatten() {
            if let Some(v) = pod_labels.get(k) {
                reqs.push(Requirement { key: k.clone(), op, values: vec![v.clone()] });
            }
        }
    }
}

fn affinity_term(t: &core::PodAffinityTerm, namespace: &str, pod_labels: &Labels) -> AffinityTerm {
    let mut sel = selector(t.label_selector.as_ref());
    merge_label_keys(&mut sel, pod_labels, t.match_label_keys.as_ref(), Op::In);
    merge_label_keys(&mut sel, pod_labels, t.mismatch_label_keys.as_ref(), Op::NotIn);
    let mut namespaces = t.namespaces.clone().unwrap_or_default();
    if namespaces.is_empty() && t.namespace_selector.is_none() {
        namespaces.push(namespace.to_string());
    }
    AffinityTerm {
        selector: sel,
        namespaces,
        namespace_selector: selector(t.namespace_selector.as_ref()),
        topology_key: t.topology_key.clone(),
    }
}

fn weighted(ts: Option<&Vec<core::WeightedPodAffinityTerm>>, ns: &str, l: &Labels) -> Vec<WeightedAffinityTerm> {
    ts.into_iter()
        .flatten()
        .map(|w| WeightedAffinityTerm { weight: w.weight, term: affinity_term(&w.pod_affinity_term, ns, l) })
        .collect()
}

fn spread(c: &core::TopologySpreadConstraint, pod_labels: &Labels) -> SpreadConstraint {
    let mut sel = selector(c.label_selector.as_ref());
    merge_label_keys(&mut sel, pod_labels, c.match_label_keys.as_ref(), Op::In);
    SpreadConstraint {
        max_skew: c.max_skew,
        topology_key: c.topology_key.clone(),
        when_unsatisfiable: if c.when_unsatisfiable == "ScheduleAnyway" {
            WhenUnsatisfiable::ScheduleAnyway
        } else {
            WhenUnsatisfiable::DoNotSchedule
        },
        selector: sel,
        min_domains: c.min_domains,
        honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
    }
}

fn host_ports(spec: &core::PodSpec) -> Vec<HostPort> {
    let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// What scheduling reads of a pod.
pub fn pod_info(pod: &core::Pod) -> PodInfo {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let pod_labels = labels(meta.labels.as_ref());
    let mut info = PodInfo {
        uid: meta.uid.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        namespace: namespace.clone(),
        terminating: meta.deletion_timestamp.is_some(),
        ..PodInfo::default()
    };
    if let Some(status) = &pod.status {
        info.nominated_node = status.nominated_node_name.clone().filter(|s| !s.is_empty());
        info.start_time = status.start_time.as_ref().map(|t| t.0.as_second());
    }
    if let Some(spec) = &pod.spec {
        info.priority = spec.priority.unwrap_or(0);
        info.preempt_never = spec.preemption_policy.as_deref() == Some("Never");
        info.node_name = spec.node_name.clone().filter(|s| !s.is_empty());
        info.requests = pod_requests(spec, container_requests);
        let nz = pod_requests(spec, |c| {
            let (cpu, memory) = non_zero(c);
            Resources { milli_cpu: cpu, memory, ..Resources::default() }
        });
        info.non_zero_milli_cpu = nz.milli_cpu;
        info.non_zero_memory = nz.memory;
        info.node_selector = labels(spec.node_selector.as_ref());
        info.tolerations = spec.tolerations.iter().flatten().map(toleration).collect();
        info.host_ports = host_ports(spec);
        info.spread = spec.topology_spread_constraints.iter().flatten().map(|c| spread(c, &pod_labels)).collect();
        if let Some(aff) = &spec.affinity {
            if let Some(na) = &aff.node_affinity {
                info.required_node_affinity = na
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
                    .map(|s| s.node_selector_terms.iter().map(node_selector_term).collect());
                info.preferred_node_affinity = na
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|p| PreferredSchedulingTerm { weight: p.weight, term: node_selector_term(&p.preference) })
                    .collect();
            }
            if let Some(pa) = &aff.pod_affinity {
                info.required_affinity = pa
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|t| affinity_term(t, &namespace, &pod_labels))
                    .collect();
                info.preferred_affinity =
                    weighted(pa.preferred_during_scheduling_ignored_during_execution.as_ref(), &namespace, &pod_labels);
            }
            if let Some(pa) = &aff.pod_anti_affinity {
                info.required_anti_affinity = pa
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|t| affinity_term(t, &namespace, &pod_labels))
                    .collect();
                info.preferred_anti_affinity =
                    weighted(pa.preferred_during_scheduling_ignored_during_execution.as_ref(), &namespace, &pod_labels);
            }
        }
    }
    info.labels = pod_labels;
    info
}

/// Whether a pod has finished and no longer holds resources on its node.
pub fn is_terminal(pod: &core::Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// What scheduling reads of a node. A node whose Ready condition is not True gets the
/// lifecycle taint (`not-ready` for False, `unreachable` for Unknown or missing) that
/// upstream's node lifecycle controller would put there, unless it already has it.
pub fn node(node: &core::Node) -> Node {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let mut taints: Vec<Taint> = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: Effect::parse(&t.effect),
        })
        .collect();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let lifecycle = match ready {
        Some("True") => None,
        Some("False") => Some(TAINT_NOT_READY),
        _ => Some(TAINT_UNREACHABLE),
    };
    if let Some(key) = lifecycle
        && !taints.iter().any(|t| t.key == key && t.effect == Effect::NoSchedule)
    {
        taints.push(Taint { key: key.to_string(), value: String::new(), effect: Effect::NoSchedule });
    }
    Node {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: labels(node.metadata.labels.as_ref()),
        allocatable: resources(alloc),
        allowed_pods: alloc.and_then(|a| a.get("pods")).map(whole).unwrap_or(0),
        taints,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
    }
}

/// What preemption reads of a PodDisruptionBudget.
pub fn pdb(pdb: &PodDisruptionBudget) -> Pdb {
    let status = pdb.status.as_ref();
    Pdb {
        namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
        selector: selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref())),
        disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
        disrupted_pods: status
            .and_then(|s| s.disrupted_pods.as_ref())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> PodInfo {
        let p: core::Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web", "tier": "a"}},
            "spec": spec,
        }))
        .unwrap();
        pod_info(&p)
    }

    #[test]
    fn requests_take_the_init_container_maximum_sidecars_and_overhead() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "nvidia.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "late", "resources": {"requests": {"cpu": "500m"}}},
            ],
            "overhead": {"cpu": "10m"},
        }));
        // Containers 300m + sidecar 50m = 350m; init max = max(1000, 500 + 50) = 1000m.
        assert_eq!(p.requests.milli_cpu, 1010);
        assert_eq!(p.requests.memory, 64 * 1024 * 1024);
        assert_eq!(p.requests.scalar("nvidia.com/gpu"), 1);
        // Scoring defaults: b and the sidecar state no memory, so 200Mi counts for each.
        assert_eq!(p.non_zero_memory, 64 * 1024 * 1024 + 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn containers_without_requests_get_scoring_defaults_only() {
        let p = pod(json!({"containers": [{"name": "a"}]}));
        assert!(p.requests.is_zero());
        assert_eq!(p.non_zero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(p.non_zero_memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn affinity_terms_default_to_the_pods_namespace_and_merge_label_keys() {
        let p = pod(json!({
            "containers": [{"name": "a"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "matchLabelKeys": ["tier"]},
            ]}},
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {}},
            ],
        }));
        let t = &p.required_anti_affinity[0];
        assert_eq!(t.namespaces, vec!["ns".to_string()]);
        assert!(t.namespace_selector.is_nothing());
        assert_eq!(
            t.selector,
            Selector::Match(vec![Requirement::new("app", Op::In, &["web"]), Requirement::new("tier", Op::In, &["a"])])
        );
        assert_eq!(p.spread[0].when_unsatisfiable, WhenUnsatisfiable::ScheduleAnyway);
        assert!(p.spread[0].honor_node_affinity);
        assert!(!p.spread[0].honor_node_taints);
    }

    #[test]
    fn host_ports_default_address_and_protocol() {
        let p = pod(json!({"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 81},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
        ]}]}));
        assert_eq!(
            p.host_ports,
            vec![
                HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 8080 },
                HostPort { ip: "10.0.0.1".into(), protocol: "UDP".into(), port: 53 },
            ]
        );
    }

    #[test]
    fn gt_with_a_non_integer_value_matches_nothing() {
        let r = requirement("k", "Gt", Some(&vec!["x".into()]));
        assert_eq!(r.op, Op::Invalid);
        assert_eq!(requirement("k", "Bogus", None).op, Op::Invalid);
    }

    #[test]
    fn nodes_that_are_not_ready_get_the_lifecycle_taint() {
        let n = |conditions: serde_json::Value, taints: serde_json::Value| -> Node {
            let n: core::Node = serde_json::from_value(json!({
                "metadata": {"name": "n1"},
                "spec": {"taints": taints},
                "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}, "conditions": conditions},
            }))
            .unwrap();
            node(&n)
        };
        let ready = n(json!([{"type": "Ready", "status": "True"}]), json!([]));
        assert!(ready.taints.is_empty());
        assert_eq!(ready.allocatable.milli_cpu, 2000);
        assert_eq!(ready.allocatable.memory, 1 << 30);
        assert_eq!(ready.allowed_pods, 110);
        let not_ready = n(json!([{"type": "Ready", "status": "False"}]), json!([]));
        assert_eq!(not_ready.taints[0].key, TAINT_NOT_READY);
        let unknown = n(json!([]), json!([]));
        assert_eq!(unknown.taints[0].key, TAINT_UNREACHABLE);
        let already =
            n(json!([{"type": "Ready", "status": "False"}]), json!([{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]));
        assert_eq!(already.taints.len(), 1);
    }

    #[test]
    fn bad_quantities_count_as_nothing() {
        let mut m = BTreeMap::new();
        m.insert("cpu".to_string(), Quantity("lots".into()));
        m.insert("memory".to_string(), Quantity("1.5".into()));
        let r = resources(Some(&m));
        assert_eq!(r.milli_cpu, 0);
        assert_eq!(r.memory, 2, "whole units round up");
    }
}
