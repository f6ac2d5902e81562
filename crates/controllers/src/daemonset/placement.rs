//! Which nodes a DaemonSet's pods belong on: node name, node selector, required node
//! affinity, and taints against the pod's tolerations plus the ones every daemon pod
//! gets (upstream's `NodeShouldRunDaemonPod`, `predicates` and
//! `util.AddOrUpdateDaemonPodTolerations`). Pure functions over typed objects.

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint,
    Toleration,
};
use std::collections::BTreeMap;

/// The field a daemon pod's node affinity pins it with (`metav1.ObjectNameField`).
pub const OBJECT_NAME_FIELD: &str = "metadata.name";

/// What a node means for a DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A daemon pod should be created here if there is none.
    pub should_run: bool,
    /// A daemon pod already here may stay (it tolerates every NoExecute taint).
    pub should_continue_running: bool,
}

/// A DaemonSet's pod template with the daemon tolerations added once, to judge many
/// nodes against.
pub struct DaemonPod<'a> {
    spec: &'a PodSpec,
    tolerations: Vec<Toleration>,
}

impl<'a> DaemonPod<'a> {
    pub fn new(spec: &'a PodSpec) -> DaemonPod<'a> {
        let tolerations =
            with_daemon_tolerations(spec.tolerations.as_deref().unwrap_or_default(), spec.host_network == Some(true));
        DaemonPod { spec, tolerations }
    }

    /// Upstream's `NodeShouldRunDaemonPod`.
    pub fn fit(&self, node: &Node) -> Fit {
        let none = Fit { should_run: false, should_continue_running: false };
        let spec = self.spec;
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
            return none;
        }
        if !matches_node_selector(spec.node_selector.as_ref(), node)
            || !matches_required_affinity(spec.affinity.as_ref(), node)
        {
            return none;
        }
        let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
        let untolerated = |effects: &[&str]| {
            taints
                .iter()
                .any(|t| effects.contains(&t.effect.as_str()) && !self.tolerations.iter().any(|tol| tolerates(tol, t)))
        };
        if untolerated(&["NoSchedule", "NoExecute"]) {
            return Fit { should_run: false, should_continue_running: !untolerated(&["NoExecute"]) };
        }
        Fit { should_run: true, should_continue_running: true }
    }
}

/// [`DaemonPod::fit`] for one node.
pub fn node_fit(node: &Node, spec: &PodSpec) -> Fit {
    DaemonPod::new(spec).fit(node)
}

/// Whether every `nodeSelector` label is on the node.
pub fn matches_node_selector(selector: Option<&BTreeMap<String, String>>, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)))
}

/// Whether the required node affinity admits the node: any term, each term's
/// expressions and fields all. A term that is empty or does not parse admits nothing.
pub fn matches_required_affinity(affinity: Option<&Affinity>, node: &Node) -> bool {
    let Some(required) = affinity
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
    else {
        return true;
    };
    required.node_selector_terms.iter().any(|term| term_matches(term, node))
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    exprs.iter().all(|r| expression_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| field_matches(r, name))
}

fn expression_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (value.and_then(number), values) else { return false };
            let Some(want) = number(want) else { return false };
            if r.operator == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

/// Node fields support only `metadata.name`, with `In` or `NotIn` and one value.
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    match (r.key.as_str(), r.operator.as_str(), r.values.as_deref().unwrap_or_default()) {
        (OBJECT_NAME_FIELD, "In", [v]) => v == node_name,
        (OBJECT_NAME_FIELD, "NotIn", [v]) => v != node_name,
        _ => false,
    }
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    if !s(&tol.effect).is_empty() && s(&tol.effect) != taint.effect {
        return false;
    }
    if !s(&tol.key).is_empty() && s(&tol.key) != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => s(&tol.value) == s(&taint.value),
        "Exists" => true,
        _ => false,
    }
}

/// The tolerations every daemon pod carries so node problems do not evict it and
/// condition taints do not keep it off (upstream's `AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        ..Default::default()
    };
    let mut v = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(exists("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// `tolerations` with the daemon tolerations added or, where one with the same key,
/// operator, value and effect exists, put in its place (`AddOrUpdateTolerationInPodSpec`).
pub fn with_daemon_tolerations(tolerations: &[Toleration], host_network: bool) -> Vec<Toleration> {
    let mut out = tolerations.to_vec();
    for want in daemon_tolerations(host_network) {
        let same = |t: &Toleration| {
            let s = |o: &Option<String>| o.clone().unwrap_or_default();
            s(&t.key) == s(&want.key)
                && s(&t.operator) == s(&want.operator)
                && s(&t.value) == s(&want.value)
                && s(&t.effect) == s(&want.effect)
        };
        match out.iter().position(same) {
            Some(i) => out[i] = want,
            None => out.push(want),
        }
    }
    out
}

/// The affinity a daemon pod for `node` is created with: the required node terms
/// replaced by `metadata.name In [node]`, so the scheduler binds it there (upstream's
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`; the controller already checked that the
/// template's own terms admit the node).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let pinned = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: OBJECT_NAME_FIELD.to_string(),
                operator: "In".to_string(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(pinned);
    affinity
}

/// The node a daemon pod is on or is meant for: its `nodeName`, else the single
/// `metadata.name In [...]` of its required node affinity (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        match (r.key.as_str(), r.operator.as_str(), r.values.as_deref().unwrap_or_default()) {
            (OBJECT_NAME_FIELD, "In", [v]) => Some(v.as_str()),
            _ => None,
        }
    })
}

/// The first resource the pod requests more of than the node can ever offer, if any:
/// such a daemon pod can never be scheduled there (upstream's old FailedPlacement check,
/// now a hint: the pod is still created, as upstream creates it for the scheduler).
pub fn insufficient_resource(spec: &PodSpec, node: &Node) -> Option<String> {
    let allocatable = node.status.as_ref()?.allocatable.as_ref()?;
    let request = |name: &str| -> i128 {
        let of = |c: &k8s_openapi::api::core::v1::Container| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(name))
                .and_then(|q| api::validation::parse_quantity(&q.0))
                .unwrap_or(0)
        };
        let sum: i128 = spec.containers.iter().map(of).sum();
        let init = spec.init_containers.iter().flatten().map(of).max().unwrap_or(0);
        sum.max(init)
    };
    ["cpu", "memory", "ephemeral-storage"].into_iter().find_map(|name| {
        let have = allocatable.get(name).and_then(|q| api::validation::parse_quantity(&q.0))?;
        (request(name) > have).then(|| format!("Insufficient {name}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, NodeSpec, NodeStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| Taint { key: k.to_string(), effect: e.to_string(), ..Default::default() })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn affinity(terms: Vec<NodeSelectorTerm>) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: terms }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const RUN: Fit = Fit { should_run: true, should_continue_running: true };
    const NEVER: Fit = Fit { should_run: false, should_continue_running: false };

    #[test]
    fn untainted_matching_nodes_run_the_daemon() {
        assert_eq!(node_fit(&node("n1", &[], &[]), &PodSpec::default()), RUN);
    }

    #[test]
    fn node_name_and_selector_restrict_nodes() {
        let pinned = PodSpec { node_name: Some("n2".into()), ..Default::default() };
        assert_eq!(node_fit(&node("n1", &[], &[]), &pinned), NEVER);
        assert_eq!(node_fit(&node("n2", &[], &[]), &pinned), RUN);
        let sel = PodSpec {
            node_selector: Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())])),
            ..Default::default()
        };
        assert_eq!(node_fit(&node("n1", &[("disk", "hdd")], &[]), &sel), NEVER);
        assert_eq!(node_fit(&node("n1", &[("disk", "ssd")], &[]), &sel), RUN);
    }

    #[test]
    fn required_affinity_ors_terms_and_ands_requirements() {
        let spec = |terms| PodSpec { affinity: Some(affinity(terms)), ..Default::default() };
        let zone_a_or_gpu = spec(vec![
            NodeSelectorTerm { match_expressions: Some(vec![req("zone", "In", &["a"])]), match_fields: None },
            NodeSelectorTerm { match_expressions: Some(vec![req("gpu", "Exists", &[])]), match_fields: None },
        ]);
        assert!(node_fit(&node("n", &[("zone", "a")], &[]), &zone_a_or_gpu).should_run);
        assert!(node_fit(&node("n", &[("gpu", "1")], &[]), &zone_a_or_gpu).should_run);
        assert!(!node_fit(&node("n", &[("zone", "b")], &[]), &zone_a_or_gpu).should_run);
        let both = spec(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("zone", "NotIn", &["b"]), req("cores", "Gt", &["4"])]),
            match_fields: None,
        }]);
        assert!(node_fit(&node("n", &[("cores", "8")], &[]), &both).should_run);
        assert!(!node_fit(&node("n", &[("cores", "2")], &[]), &both).should_run);
        assert!(!node_fit(&node("n", &[("zone", "b"), ("cores", "8")], &[]), &both).should_run);
        assert!(!node_fit(&node("n", &[("cores", "x")], &[]), &both).should_run, "unparsable numbers do not match");
        let lt = spec(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("cores", "Lt", &["4"])]),
            match_fields: None,
        }]);
        assert!(node_fit(&node("n", &[("cores", "2")], &[]), &lt).should_run);
        let by_name = spec(vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req(OBJECT_NAME_FIELD, "NotIn", &["n1"])]),
        }]);
        assert!(!node_fit(&node("n1", &[], &[]), &by_name).should_run);
        assert!(node_fit(&node("n2", &[], &[]), &by_name).should_run);
        let empty = spec(vec![NodeSelectorTerm::default()]);
        assert!(!node_fit(&node("n", &[], &[]), &empty).should_run, "an empty term matches nothing");
        let bad_field = spec(vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.labels", "In", &["x"])]),
        }]);
        assert!(!node_fit(&node("n", &[], &[]), &bad_field).should_run);
        assert!(
            !node_fit(
                &node("n", &[("zone", "a")], &[]),
                &spec(vec![NodeSelectorTerm {
                    match_expressions: Some(vec![req("zone", "Bogus", &["a"])]),
                    match_fields: None
                }])
            )
            .should_run
        );
        let absent = spec(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("x", "DoesNotExist", &[])]),
            match_fields: None,
        }]);
        assert!(node_fit(&node("n", &[], &[]), &absent).should_run);
    }

    #[test]
    fn taints_keep_daemons_off_unless_tolerated() {
        let tainted = node("n", &[], &[("dedicated", "NoSchedule")]);
        // NoSchedule: no new pod, but a running one stays.
        assert_eq!(node_fit(&tainted, &PodSpec::default()), Fit { should_run: false, should_continue_running: true });
        let evicting = node("n", &[], &[("dedicated", "NoExecute")]);
        assert_eq!(node_fit(&evicting, &PodSpec::default()), NEVER);
        let tolerant = PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(node_fit(&tainted, &tolerant), RUN);
        assert_eq!(node_fit(&evicting, &tolerant), RUN);
        // PreferNoSchedule never keeps a daemon off.
        assert_eq!(node_fit(&node("n", &[], &[("x", "PreferNoSchedule")]), &PodSpec::default()), RUN);
    }

    #[test]
    fn daemons_tolerate_node_conditions_and_cordons() {
        for (taint, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            assert_eq!(node_fit(&node("n", &[], &[(taint, effect)]), &PodSpec::default()), RUN, "{taint}");
        }
        let net = node("n", &[], &[("node.kubernetes.io/network-unavailable", "NoSchedule")]);
        assert!(!node_fit(&net, &PodSpec::default()).should_run);
        assert!(node_fit(&net, &PodSpec { host_network: Some(true), ..Default::default() }).should_run);
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let taint =
            Taint { key: "k".into(), value: Some("v".into()), effect: "NoSchedule".into(), ..Default::default() };
        let tol = |k: Option<&str>, op: Option<&str>, v: Option<&str>, e: Option<&str>| Toleration {
            key: k.map(Into::into),
            operator: op.map(Into::into),
            value: v.map(Into::into),
            effect: e.map(Into::into),
            toleration_seconds: None,
        };
        assert!(tolerates(&tol(Some("k"), None, Some("v"), None), &taint));
        assert!(tolerates(&tol(Some("k"), Some("Equal"), Some("v"), Some("NoSchedule")), &taint));
        assert!(!tolerates(&tol(Some("k"), Some("Equal"), Some("w"), None), &taint));
        assert!(!tolerates(&tol(Some("k"), Some("Exists"), None, Some("NoExecute")), &taint));
        assert!(tolerates(&tol(None, Some("Exists"), None, None), &taint), "an empty key with Exists tolerates all");
        assert!(!tolerates(&tol(Some("j"), Some("Exists"), None, None), &taint));
        assert!(!tolerates(&tol(Some("k"), Some("Gt"), Some("v"), None), &taint));
    }

    #[test]
    fn daemon_tolerations_are_added_once() {
        let existing = vec![Toleration {
            key: Some("node.kubernetes.io/not-ready".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(30),
            ..Default::default()
        }];
        let all = with_daemon_tolerations(&existing, false);
        assert_eq!(all.len(), 6);
        // The user's not-ready toleration is replaced in place by the unbounded one.
        assert_eq!(all[0].key.as_deref(), Some("node.kubernetes.io/not-ready"));
        assert_eq!(all[0].toleration_seconds, None);
        assert_eq!(with_daemon_tolerations(&all, false).len(), 6);
        assert_eq!(with_daemon_tolerations(&[], true).len(), 7);
    }

    #[test]
    fn pods_are_pinned_by_affinity_and_found_by_it() {
        let user = affinity(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("zone", "In", &["a"])]),
            match_fields: None,
        }]);
        let pinned = pin_to_node(Some(user), "n7");
        let terms = &pinned
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1, "the template's terms are replaced");
        assert_eq!(terms[0].match_fields.as_ref().unwrap()[0].values.as_ref().unwrap(), &["n7".to_string()]);
        let mut pod =
            Pod { spec: Some(PodSpec { affinity: Some(pinned), ..Default::default() }), ..Default::default() };
        assert_eq!(target_node(&pod), Some("n7"));
        pod.spec.as_mut().unwrap().node_name = Some("n8".into());
        assert_eq!(target_node(&pod), Some("n8"), "a bound pod is where it is bound");
        assert_eq!(target_node(&Pod::default()), None);
        assert!(pin_to_node(None, "x").node_affinity.is_some());
    }

    #[test]
    fn oversized_pods_are_reported() {
        let mut n = node("n", &[], &[]);
        n.status = Some(NodeStatus {
            allocatable: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("2".into())),
                ("memory".to_string(), Quantity("1Gi".into())),
            ])),
            ..Default::default()
        });
        let asks = |cpu: &str| PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(insufficient_resource(&asks("1500m"), &n), None);
        assert_eq!(insufficient_resource(&asks("3"), &n).as_deref(), Some("Insufficient cpu"));
        assert_eq!(insufficient_resource(&asks("3"), &node("bare", &[], &[])), None, "no allocatable, no verdict");
    }
}
