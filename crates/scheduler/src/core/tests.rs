//! Filters, scores, the FailedScheduling message, preemption and sampling over
//! snapshots built from plain data.

use super::filter::*;
use super::model::*;
use super::score::*;
use super::*;
use std::sync::Arc;

const GI: i64 = 1 << 30;

fn node(name: &str, milli_cpu: i64, memory: i64) -> Node {
    let mut labels = Labels::new();
    labels.insert(LABEL_HOSTNAME.into(), name.into());
    Node {
        name: name.into(),
        labels,
        allocatable: Resources { milli_cpu, memory, ephemeral_storage: 100 * GI, scalar: vec![] },
        allowed_pods: 110,
        ..Default::default()
    }
}

fn labeled(mut n: Node, kv: &[(&str, &str)]) -> Node {
    for (k, v) in kv {
        n.labels.insert(k.to_string(), v.to_string());
    }
    n
}

fn pod(name: &str) -> PodInfo {
    PodInfo {
        uid: name.into(),
        name: name.into(),
        namespace: "default".into(),
        non_zero_milli_cpu: DEFAULT_MILLI_CPU_REQUEST,
        non_zero_memory: DEFAULT_MEMORY_REQUEST,
        ..Default::default()
    }
}

fn with_labels(mut p: PodInfo, kv: &[(&str, &str)]) -> PodInfo {
    for (k, v) in kv {
        p.labels.insert(k.to_string(), v.to_string());
    }
    p
}

fn requesting(mut p: PodInfo, milli_cpu: i64, memory: i64) -> PodInfo {
    p.requests.milli_cpu = milli_cpu;
    p.requests.memory = memory;
    p.non_zero_milli_cpu = milli_cpu;
    p.non_zero_memory = memory;
    p
}

fn snapshot(nodes: Vec<Node>) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.upsert_node(n);
    }
    s
}

fn place(s: &mut Snapshot, p: PodInfo, node: &str) {
    let mut p = p;
    p.node_name = Some(node.into());
    s.add_pod(Arc::new(p));
}

/// The filter verdict for one node.
fn check(p: &PodInfo, s: &Snapshot, node: &str) -> Result<(), Status> {
    let state = CycleState::new(p, s);
    filter_node(&state, s.node(node).unwrap())
}

fn reason(r: Result<(), Status>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(s) => s.reasons.join(", "),
    }
}

fn selector(kv: &[(&str, &str)]) -> Selector {
    Selector::Match(kv.iter().map(|(k, v)| Requirement::new(k, Op::In, &[v])).collect())
}

fn term(kv: &[(&str, &str)], topology_key: &str) -> AffinityTerm {
    AffinityTerm {
        selector: selector(kv),
        namespaces: vec!["default".into()],
        namespace_selector: Selector::Nothing,
        topology_key: topology_key.into(),
    }
}

fn exists(key: &str) -> Toleration {
    Toleration { key: key.into(), op: TolerationOp::Exists, value: String::new(), effect: None }
}

fn taint(key: &str, value: &str, effect: Effect) -> Taint {
    Taint { key: key.into(), value: value.into(), effect }
}

// ---- filters ----

#[test]
fn cordoned_nodes_are_skipped_unless_tolerated() {
    let mut n = node("n1", 1000, GI);
    n.unschedulable = true;
    let s = snapshot(vec![n]);
    let p = pod("p");
    assert_eq!(check(&p, &s, "n1").unwrap_err(), Status::new(Code::UnschedulableAndUnresolvable, ERR_UNSCHEDULABLE));
    let mut tolerant = pod("p");
    tolerant.tolerations.push(exists(TAINT_UNSCHEDULABLE));
    assert!(check(&tolerant, &s, "n1").is_ok());
}

#[test]
fn resources_fit_checks_every_resource_and_pod_count() {
    let mut n = node("n1", 1000, GI);
    n.allowed_pods = 2;
    n.allocatable.scalar = vec![("example.com/gpu".into(), 1)];
    let mut s = snapshot(vec![n]);
    place(&mut s, requesting(pod("a"), 600, GI / 2), "n1");

    assert!(check(&requesting(pod("p"), 400, GI / 2), &s, "n1").is_ok());
    let too_much = check(&requesting(pod("p"), 500, GI), &s, "n1").unwrap_err();
    assert_eq!(too_much.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
    assert_eq!(too_much.code, Code::Unschedulable, "evicting pods would help");
    let never = check(&requesting(pod("p"), 2000, 0), &s, "n1").unwrap_err();
    assert_eq!(never.code, Code::UnschedulableAndUnresolvable, "more than the node has");

    let mut disk = pod("p");
    disk.requests.ephemeral_storage = 200 * GI;
    assert_eq!(reason(check(&disk, &s, "n1")), "Insufficient ephemeral-storage");
    let mut gpu = pod("p");
    gpu.requests.scalar = vec![("example.com/gpu".into(), 2)];
    assert_eq!(reason(check(&gpu, &s, "n1")), "Insufficient example.com/gpu");

    place(&mut s, pod("b"), "n1");
    assert_eq!(reason(check(&pod("p"), &s, "n1")), "Too many pods");
    assert_eq!(reason(check(&requesting(pod("p"), 900, 0), &s, "n1")), "Too many pods, Insufficient cpu");
}

#[test]
fn node_name_must_match() {
    let s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    let mut p = pod("p");
    p.node_name = Some("n2".into());
    assert_eq!(reason(check(&p, &s, "n1")), ERR_NODE_NAME);
    assert!(check(&p, &s, "n2").is_ok());
}

#[test]
fn node_selector_and_required_affinity_with_every_operator() {
    let s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("disk", "ssd"), ("gen", "5")]),
        labeled(node("n2", 1000, GI), &[("disk", "hdd"), ("gen", "3")]),
    ]);
    let mut p = pod("p");
    p.node_selector.insert("disk".into(), "ssd".into());
    assert!(check(&p, &s, "n1").is_ok());
    assert_eq!(reason(check(&p, &s, "n2")), ERR_NODE_AFFINITY);

    let aff = |reqs: Vec<Requirement>| {
        let mut p = pod("p");
        p.required_node_affinity = Some(vec![NodeSelectorTerm { match_expressions: reqs, match_fields: vec![] }]);
        p
    };
    let cases = [
        (Requirement::new("gen", Op::Gt, &["4"]), true, false),
        (Requirement::new("gen", Op::Lt, &["4"]), false, true),
        (Requirement::new("disk", Op::In, &["ssd", "nvme"]), true, false),
        (Requirement::new("disk", Op::NotIn, &["ssd"]), false, true),
        (Requirement::new("disk", Op::Exists, &[]), true, true),
        (Requirement::new("gpu", Op::DoesNotExist, &[]), true, true),
    ];
    for (req, n1, n2) in cases {
        let p = aff(vec![req.clone()]);
        assert_eq!(check(&p, &s, "n1").is_ok(), n1, "{req:?} on n1");
        assert_eq!(check(&p, &s, "n2").is_ok(), n2, "{req:?} on n2");
    }

    // Terms are ORed; matchFields on metadata.name.
    let mut p = pod("p");
    p.required_node_affinity = Some(vec![
        NodeSelectorTerm { match_expressions: vec![Requirement::new("disk", Op::In, &["nvme"])], match_fields: vec![] },
        NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![Requirement::new("metadata.name", Op::In, &["n2"])],
        },
    ]);
    assert!(check(&p, &s, "n1").is_err());
    assert!(check(&p, &s, "n2").is_ok());
}

#[test]
fn taints_need_tolerations_for_no_schedule_and_no_execute_only() {
    let mut n = node("n1", 1000, GI);
    n.taints = vec![taint("soft", "", Effect::PreferNoSchedule), taint("dedicated", "gpu", Effect::NoExecute)];
    let s = snapshot(vec![n]);
    let err = check(&pod("p"), &s, "n1").unwrap_err();
    assert_eq!(err, Status::new(Code::UnschedulableAndUnresolvable, "node(s) had untolerated taint {dedicated: gpu}"));
    let mut p = pod("p");
    p.tolerations.push(Toleration {
        key: "dedicated".into(),
        op: TolerationOp::Equal,
        value: "gpu".into(),
        effect: Some(Effect::NoExecute),
    });
    assert!(check(&p, &s, "n1").is_ok());
}

#[test]
fn nodes_that_are_not_ready_are_skipped_through_their_lifecycle_taint() {
    let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1"},
        "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
                   "conditions": [{"type": "Ready", "status": "False"}]},
    }))
    .unwrap();
    let s = snapshot(vec![convert::node(&n)]);
    assert_eq!(reason(check(&pod("p"), &s, "n1")), "node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
}

#[test]
fn host_ports_conflict_with_pods_already_there() {
    let mut s = snapshot(vec![node("n1", 1000, GI)]);
    let web = |name: &str| {
        let mut p = pod(name);
        p.host_ports.push(HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 80 });
        p
    };
    assert!(check(&web("p"), &s, "n1").is_ok());
    place(&mut s, web("a"), "n1");
    let err = check(&web("p"), &s, "n1").unwrap_err();
    assert_eq!(err, Status::new(Code::Unschedulable, ERR_NODE_PORTS));
}

#[test]
fn required_pod_affinity_follows_matching_pods_by_topology() {
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
        node("n3", 1000, GI),
    ]);
    let mut p = with_labels(pod("p"), &[("app", "web")]);
    p.required_affinity.push(term(&[("app", "db")], "zone"));
    // Nothing matches yet and the pod does not match itself: nowhere.
    assert_eq!(reason(check(&p, &s, "n1")), ERR_AFFINITY);
    place(&mut s, with_labels(pod("db"), &[("app", "db")]), "n1");
    assert!(check(&p, &s, "n1").is_ok());
    assert_eq!(check(&p, &s, "n2").unwrap_err(), Status::new(Code::UnschedulableAndUnresolvable, ERR_AFFINITY));
    assert_eq!(reason(check(&p, &s, "n3")), ERR_AFFINITY, "nodes without the topology key never match");

    // The first of a group with affinity to itself may go where the topology exists.
    let mut first = with_labels(pod("first"), &[("app", "cache")]);
    first.required_affinity.push(term(&[("app", "cache")], "zone"));
    assert!(check(&first, &s, "n2").is_ok());
    assert!(check(&first, &s, "n3").is_err());
}

#[test]
fn required_anti_affinity_both_ways() {
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "a")]),
        labeled(node("n3", 1000, GI), &[("zone", "b")]),
    ]);
    place(&mut s, with_labels(pod("web-1"), &[("app", "web")]), "n1");
    let mut p = with_labels(pod("web-2"), &[("app", "web")]);
    p.required_anti_affinity.push(term(&[("app", "web")], "zone"));
    assert_eq!(check(&p, &s, "n2").unwrap_err(), Status::new(Code::Unschedulable, ERR_ANTI_AFFINITY));
    assert!(check(&p, &s, "n3").is_ok());

    // An existing pod's anti-affinity keeps matching pods out of its zone.
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
    ]);
    let mut loner = with_labels(pod("loner"), &[("app", "loner")]);
    loner.required_anti_affinity.push(term(&[("app", "web")], "zone"));
    place(&mut s, loner, "n1");
    let web = with_labels(pod("web"), &[("app", "web")]);
    assert_eq!(check(&web, &s, "n1").unwrap_err(), Status::new(Code::Unschedulable, ERR_EXISTING_ANTI_AFFINITY));
    assert!(check(&web, &s, "n2").is_ok());
    assert!(check(&with_labels(pod("other"), &[("app", "db")]), &s, "n1").is_ok());
}

#[test]
fn affinity_terms_respect_namespaces_and_namespace_selectors() {
    let mut s = snapshot(vec![labeled(node("n1", 1000, GI), &[("zone", "a")])]);
    s.set_namespace("prod", [("env".to_string(), "prod".to_string())].into());
    let mut other = with_labels(pod("db"), &[("app", "db")]);
    other.namespace = "prod".into();
    place(&mut s, other, "n1");
    let mut p = pod("p");
    p.required_affinity.push(term(&[("app", "db")], "zone"));
    assert!(check(&p, &s, "n1").is_err(), "the term looks in the pod's own namespace only");
    p.required_affinity[0].namespace_selector = selector(&[("env", "prod")]);
    assert!(check(&p, &s, "n1").is_ok());
}

fn spread(key: &str, max_skew: i32, when: WhenUnsatisfiable) -> SpreadConstraint {
    SpreadConstraint {
        max_skew,
        topology_key: key.into(),
        when_unsatisfiable: when,
        selector: selector(&[("app", "web")]),
        min_domains: None,
        honor_node_affinity: true,
        honor_node_taints: false,
    }
}

#[test]
fn topology_spread_do_not_schedule_limits_skew() {
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
        node("n3", 1000, GI),
    ]);
    place(&mut s, with_labels(pod("w1"), &[("app", "web")]), "n1");
    let mut p = with_labels(pod("p"), &[("app", "web")]);
    p.spread.push(spread("zone", 1, WhenUnsatisfiable::DoNotSchedule));
    assert_eq!(check(&p, &s, "n1").unwrap_err(), Status::new(Code::Unschedulable, ERR_SPREAD));
    assert!(check(&p, &s, "n2").is_ok());
    assert_eq!(check(&p, &s, "n3").unwrap_err(), Status::new(Code::UnschedulableAndUnresolvable, ERR_SPREAD_LABEL));

    // With more domains required than exist, the global minimum is 0.
    p.spread[0].max_skew = 2;
    assert!(check(&p, &s, "n1").is_ok());
    place(&mut s, with_labels(pod("w2"), &[("app", "web")]), "n2");
    place(&mut s, with_labels(pod("w3"), &[("app", "web")]), "n2");
    assert!(check(&p, &s, "n1").is_ok(), "a:1 b:2: 1 + 1 - 1 <= 2");
    p.spread[0].max_skew = 1;
    p.spread[0].min_domains = Some(3);
    assert!(check(&p, &s, "n1").is_err(), "only 2 domains < minDomains 3: min counts as 0, 1+1 > 1");

    // nodeAffinityPolicy Honor (default) leaves out nodes the pod cannot go to.
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a"), ("disk", "ssd")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
    ]);
    place(&mut s, with_labels(pod("w1"), &[("app", "web")]), "n1");
    let mut p = with_labels(pod("p"), &[("app", "web")]);
    p.node_selector.insert("disk".into(), "ssd".into());
    p.spread.push(spread("zone", 1, WhenUnsatisfiable::DoNotSchedule));
    assert!(check(&p, &s, "n1").is_ok(), "zone b is not eligible, so zone a is the only domain");
    p.spread[0].honor_node_affinity = false;
    assert!(check(&p, &s, "n1").is_err());
}

// ---- scores ----

fn info(s: &Snapshot, name: &str) -> NodeInfo {
    s.node(name).unwrap().clone()
}

#[test]
fn least_allocated_prefers_emptier_nodes() {
    let mut s = snapshot(vec![node("n1", 4000, 4 * GI), node("n2", 4000, 4 * GI)]);
    place(&mut s, requesting(pod("a"), 2000, 2 * GI), "n1");
    let p = requesting(pod("p"), 1000, GI);
    // n1: cpu (4000-3000)*100/4000 = 25, memory 25 -> 25; n2: 75.
    assert_eq!(least_allocated(&p, &info(&s, "n1")), 25);
    assert_eq!(least_allocated(&p, &info(&s, "n2")), 75);
}

#[test]
fn balanced_allocation_prefers_even_use_and_skips_best_effort_pods() {
    let s = snapshot(vec![node("n1", 4000, 4 * GI)]);
    let n = info(&s, "n1");
    assert_eq!(balanced_allocation(&requesting(pod("p"), 1000, GI), &n), Some(100));
    // cpu 1.0, memory 0.0: std 0.5 -> 50.
    assert_eq!(balanced_allocation(&requesting(pod("p"), 4000, 0), &n), Some(50));
    assert_eq!(balanced_allocation(&pod("p"), &n), None);
}

#[test]
fn preferred_node_affinity_sums_weights_and_normalises() {
    let s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("disk", "ssd"), ("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("disk", "ssd")]),
        node("n3", 1000, GI),
    ]);
    let mut p = pod("p");
    let pref = |k: &str, v: &str, weight| PreferredSchedulingTerm {
        weight,
        term: NodeSelectorTerm { match_expressions: vec![Requirement::new(k, Op::In, &[v])], match_fields: vec![] },
    };
    p.preferred_node_affinity = vec![pref("disk", "ssd", 10), pref("zone", "a", 30)];
    let mut raw: Vec<i64> = ["n1", "n2", "n3"].iter().map(|n| node_affinity(&p, &info(&s, n))).collect();
    assert_eq!(raw, vec![40, 10, 0]);
    default_normalize(&mut raw, false);
    assert_eq!(raw, vec![100, 25, 0]);
}

#[test]
fn taint_toleration_scores_prefer_no_schedule_in_reverse() {
    let mut n1 = node("n1", 1000, GI);
    n1.taints = vec![taint("a", "", Effect::PreferNoSchedule), taint("b", "", Effect::PreferNoSchedule)];
    let mut n2 = node("n2", 1000, GI);
    n2.taints = vec![taint("a", "", Effect::PreferNoSchedule)];
    let s = snapshot(vec![n1, n2, node("n3", 1000, GI)]);
    let mut p = pod("p");
    let mut raw: Vec<i64> =
        ["n1", "n2", "n3"].iter().map(|n| intolerable_prefer_no_schedule(&p, &info(&s, n))).collect();
    assert_eq!(raw, vec![2, 1, 0]);
    default_normalize(&mut raw, true);
    assert_eq!(raw, vec![0, 50, 100]);
    p.tolerations.push(exists("b"));
    assert_eq!(intolerable_prefer_no_schedule(&p, &info(&s, "n1")), 1);
    // A NoSchedule-only toleration does not help with PreferNoSchedule.
    let mut q = pod("q");
    q.tolerations.push(Toleration { effect: Some(Effect::NoSchedule), ..exists("a") });
    assert_eq!(intolerable_prefer_no_schedule(&q, &info(&s, "n2")), 1);
}

#[test]
fn preferred_inter_pod_affinity_and_anti_affinity() {
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
        labeled(node("n3", 1000, GI), &[("zone", "c")]),
    ]);
    place(&mut s, with_labels(pod("db"), &[("app", "db")]), "n1");
    place(&mut s, with_labels(pod("web"), &[("app", "web")]), "n2");
    let mut p = pod("p");
    p.preferred_affinity.push(WeightedAffinityTerm { weight: 10, term: term(&[("app", "db")], "zone") });
    p.preferred_anti_affinity.push(WeightedAffinityTerm { weight: 5, term: term(&[("app", "web")], "zone") });
    let nodes: Vec<NodeInfo> = ["n1", "n2", "n3"].iter().map(|n| info(&s, n)).collect();
    let refs: Vec<&NodeInfo> = nodes.iter().collect();
    // Raw: n1 10, n2 -5, n3 0 -> (s - min) / (max - min) * 100.
    assert_eq!(inter_pod_affinity(&p, &s, &refs), Some(vec![100, 0, 33]));
    assert_eq!(inter_pod_affinity(&pod("plain"), &s, &refs), None, "nobody has affinity: skipped");

    // An existing pod's required affinity draws matching pods (hard weight 1).
    let mut s2 = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "b")]),
    ]);
    let mut sticky = pod("sticky");
    sticky.required_affinity.push(term(&[("app", "web")], "zone"));
    place(&mut s2, sticky, "n2");
    let nodes: Vec<NodeInfo> = ["n1", "n2"].iter().map(|n| info(&s2, n)).collect();
    let refs: Vec<&NodeInfo> = nodes.iter().collect();
    assert_eq!(inter_pod_affinity(&with_labels(pod("w"), &[("app", "web")]), &s2, &refs), Some(vec![0, 100]));
}

#[test]
fn topology_spread_schedule_anyway_prefers_emptier_domains() {
    let mut s = snapshot(vec![
        labeled(node("n1", 1000, GI), &[("zone", "a")]),
        labeled(node("n2", 1000, GI), &[("zone", "a")]),
        labeled(node("n3", 1000, GI), &[("zone", "b")]),
        node("n4", 1000, GI),
    ]);
    place(&mut s, with_labels(pod("w1"), &[("app", "web")]), "n1");
    place(&mut s, with_labels(pod("w2"), &[("app", "web")]), "n2");
    let mut p = with_labels(pod("p"), &[("app", "web")]);
    p.spread.push(spread("zone", 1, WhenUnsatisfiable::ScheduleAnyway));
    let nodes: Vec<NodeInfo> = ["n1", "n2", "n3", "n4"].iter().map(|n| info(&s, n)).collect();
    let refs: Vec<&NodeInfo> = nodes.iter().collect();
    // Zone a has 2, b has 0; weight ln(2+2); raw a = round(2*1.386) = 3, b = 0.
    // Normalised: 100 * (max + min - s) / max -> a 0, b 100; n4 lacks the key: 0.
    assert_eq!(topology_spread(&p, &s, &refs), Some(vec![0, 0, 100, 0]));
    assert_eq!(topology_spread(&pod("plain"), &s, &refs), None);
}

#[test]
fn default_normalize_handles_all_zero() {
    let mut v = vec![0, 0];
    default_normalize(&mut v, false);
    assert_eq!(v, vec![0, 0]);
    default_normalize(&mut v, true);
    assert_eq!(v, vec![100, 100]);
}

// ---- whole decisions ----

#[test]
fn schedule_picks_the_only_node_that_fits_each_way() {
    let mut tainted = node("tainted", 4000, 4 * GI);
    tainted.taints.push(taint("dedicated", "gpu", Effect::NoSchedule));
    let s = snapshot(vec![labeled(node("ssd", 1000, GI), &[("disk", "ssd")]), tainted, node("big", 8000, 16 * GI)]);
    let mut sched = Scheduler::new(1);

    let mut by_selector = pod("a");
    by_selector.node_selector.insert("disk".into(), "ssd".into());
    assert_eq!(sched.schedule(&by_selector, &s).unwrap(), "ssd");

    let mut by_toleration = requesting(pod("b"), 3000, 2 * GI);
    by_toleration.tolerations.push(exists("dedicated"));
    by_toleration.required_node_affinity = Some(vec![NodeSelectorTerm {
        match_expressions: vec![Requirement::new(LABEL_HOSTNAME, Op::NotIn, &["big"])],
        match_fields: vec![],
    }]);
    assert_eq!(sched.schedule(&by_toleration, &s).unwrap(), "tainted");

    assert_eq!(sched.schedule(&requesting(pod("c"), 6000, GI), &s).unwrap(), "big");
}

#[test]
fn the_unschedulable_message_matches_upstream() {
    let mut cp = node("cp", 4000, 4 * GI);
    cp.taints.push(taint("node-role.kubernetes.io/control-plane", "", Effect::NoSchedule));
    let s = snapshot(vec![cp, node("w1", 1000, GI), node("w2", 1000, GI)]);
    let mut sched = Scheduler::new(1);
    let p = requesting(pod("p"), 2000, 0);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    let counts = fit.reason_counts();
    assert_eq!(counts["Insufficient cpu"], 2);
    assert_eq!(counts["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"], 1);
    assert!(sched.preempt(&p, &s, &mut fit).is_none());
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn reasons_sort_as_strings_like_upstream() {
    let mut fit = FitError::new(12);
    for i in 0..10 {
        fit.statuses.insert(format!("a{i}"), Status::new(Code::Unschedulable, "Insufficient cpu"));
    }
    fit.statuses.insert("b".into(), Status::new(Code::Unschedulable, "Insufficient memory"));
    fit.statuses.insert(
        "c".into(),
        Status { code: Code::Unschedulable, reasons: vec!["Too many pods".into(), "Insufficient memory".into()] },
    );
    // "1 " sorts before "10", as Go's sort.Strings has it.
    assert_eq!(fit.message(), "0/12 nodes are available: 1 Too many pods, 10 Insufficient cpu, 2 Insufficient memory.");
}

#[test]
fn no_nodes_and_prefilter_failures_have_their_own_messages() {
    let mut sched = Scheduler::new(1);
    assert_eq!(
        sched.schedule(&pod("p"), &Snapshot::new()).unwrap_err().message(),
        "no nodes available to schedule pods"
    );
    let s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    let mut p = pod("p");
    p.required_node_affinity = Some(vec![NodeSelectorTerm {
        match_expressions: vec![],
        match_fields: vec![
            Requirement::new("metadata.name", Op::In, &["n1"]),
            Requirement::new("metadata.name", Op::In, &["n2"]),
        ],
    }]);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    sched.preempt(&p, &s, &mut fit);
    assert_eq!(
        fit.message(),
        "0/2 nodes are available: pod affinity terms conflict. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    // matchFields narrowing to one node: the others did not satisfy NodeAffinity.
    p.required_node_affinity = Some(vec![NodeSelectorTerm {
        match_expressions: vec![],
        match_fields: vec![Requirement::new("metadata.name", Op::In, &["n1"])],
    }]);
    assert_eq!(sched.schedule(&p, &s).unwrap(), "n1");
    let big = PodInfo { required_node_affinity: p.required_node_affinity.clone(), ..requesting(pod("big"), 5000, 0) };
    let fit = sched.schedule(&big, &s).unwrap_err();
    assert_eq!(
        fit.message(),
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    );
}

#[test]
fn assumed_pods_are_seen_by_the_next_decision() {
    let mut s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    let mut sched = Scheduler::new(7);
    let mut placed = Vec::new();
    for i in 0..4 {
        let p = requesting(pod(&format!("p{i}")), 500, 0);
        let n = sched.schedule(&p, &s).unwrap();
        s.assume(&p, &n);
        placed.push(n);
    }
    placed.sort();
    assert_eq!(placed, vec!["n1", "n1", "n2", "n2"], "least allocated spreads, assume fills");
    let fit = sched.schedule(&requesting(pod("p5"), 500, 0), &s).unwrap_err();
    assert_eq!(fit.message(), "0/2 nodes are available: 2 Insufficient cpu.");
}

#[test]
fn ties_are_broken_randomly_but_reproducibly() {
    let s = snapshot((0..10).map(|i| node(&format!("n{i}"), 1000, GI)).collect());
    let picks = |seed| {
        let mut sched = Scheduler::new(seed);
        (0..50).map(|i| sched.schedule(&pod(&format!("p{i}")), &s).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(picks(3), picks(3));
    let distinct: std::collections::HashSet<_> = picks(3).into_iter().collect();
    assert!(distinct.len() > 3, "equal nodes should all get picked sometimes: {distinct:?}");
}

#[test]
fn sampling_follows_the_adaptive_percentage() {
    let sched = Scheduler::new(0);
    assert_eq!(sched.num_feasible_nodes_to_find(50), 50);
    assert_eq!(sched.num_feasible_nodes_to_find(100), 100);
    assert_eq!(sched.num_feasible_nodes_to_find(1000), 420); // 50 - 8 = 42%
    assert_eq!(sched.num_feasible_nodes_to_find(5000), 500); // 50 - 40 = 10%
    assert_eq!(sched.num_feasible_nodes_to_find(6000), 300); // floor of 5%
    assert_eq!(sched.num_feasible_nodes_to_find(150), 100); // never fewer than 100
    let mut fixed = Scheduler::new(0);
    fixed.percentage_of_nodes_to_score = 100;
    assert_eq!(fixed.num_feasible_nodes_to_find(5000), 5000);
}

#[test]
fn the_search_starts_where_the_last_one_stopped() {
    // 1000 nodes: 420 feasible are enough, so two decisions look at different nodes.
    let mut s = snapshot((0..1000).map(|i| node(&format!("n{i:04}"), 1000, GI)).collect());
    let mut sched = Scheduler::new(0);
    let first = sched.schedule(&pod("a"), &s).unwrap();
    s.assume(&pod("a"), &first);
    assert_eq!(sched.next_start, 420);
    let second = sched.schedule(&pod("b"), &s).unwrap();
    let idx = |n: &str| n[1..].parse::<usize>().unwrap();
    assert!(idx(&first) < 420, "{first}");
    assert!((420..840).contains(&idx(&second)), "{second}");
    assert_eq!(sched.next_start, 840);
}

// ---- preemption ----

fn prio(p: PodInfo, priority: i32) -> PodInfo {
    PodInfo { priority, ..p }
}

#[test]
fn preemption_evicts_the_fewest_lowest_priority_pods() {
    let mut s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    place(&mut s, prio(requesting(pod("n1-low"), 500, 0), 1), "n1");
    place(&mut s, prio(requesting(pod("n1-mid"), 500, 0), 5), "n1");
    place(&mut s, prio(requesting(pod("n2-a"), 400, 0), 1), "n2");
    place(&mut s, prio(requesting(pod("n2-b"), 400, 0), 1), "n2");
    let p = prio(requesting(pod("p"), 600, 0), 10);
    let mut sched = Scheduler::new(1);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    let pre = sched.preempt(&p, &s, &mut fit).expect("a candidate");
    // n1 needs both its pods gone (500 + 600 > 1000); n2 needs one 400m pod gone
    // (400 + 600 = 1000), whose priority is lower too: n2.
    assert_eq!(pre.node, "n2");
    assert_eq!(pre.victims.len(), 1);
    assert_eq!(pre.victims[0].priority, 1);
    assert!(fit.post_filter_msg.is_none());
}

#[test]
fn preemption_prefers_nodes_without_pdb_violations() {
    let mut s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    place(&mut s, prio(with_labels(requesting(pod("guarded"), 1000, 0), &[("app", "db")]), 0), "n1");
    place(&mut s, prio(requesting(pod("free"), 1000, 0), 3), "n2");
    s.set_pdbs(vec![Pdb {
        namespace: "default".into(),
        selector: selector(&[("app", "db")]),
        disruptions_allowed: 0,
        disrupted_pods: vec![],
    }]);
    let p = prio(requesting(pod("p"), 1000, 0), 10);
    let mut sched = Scheduler::new(1);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    let pre = sched.preempt(&p, &s, &mut fit).unwrap();
    assert_eq!(pre.node, "n2", "a higher-priority victim beats breaking a budget");
    assert_eq!(pre.pdb_violations, 0);
    // With only the guarded node, it is still chosen, with the violation counted.
    s.remove_pod("free");
    place(&mut s, prio(requesting(pod("vip"), 1000, 0), 100), "n2");
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    let pre = sched.preempt(&p, &s, &mut fit).unwrap();
    assert_eq!((pre.node.as_str(), pre.pdb_violations), ("n1", 1));
}

#[test]
fn preemption_explains_why_it_cannot_help() {
    let mut s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI), node("n3", 500, GI)]);
    place(&mut s, prio(requesting(pod("a"), 800, 0), 50), "n1");
    place(&mut s, prio(requesting(pod("b"), 800, 0), 5), "n2");
    let p = prio(requesting(pod("p"), 900, 0), 10);
    let mut sched = Scheduler::new(1);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    // Only n2 has a lower-priority pod; evicting it frees enough.
    assert_eq!(sched.preempt(&p, &s, &mut fit).unwrap().node, "n2");

    let q = prio(requesting(pod("q"), 900, 0), 1);
    let mut fit = sched.schedule(&q, &s).unwrap_err();
    assert!(sched.preempt(&q, &s, &mut fit).is_none());
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
         1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );

    let mut never = prio(requesting(pod("never"), 900, 0), 100);
    never.preempt_never = true;
    let mut fit = sched.schedule(&never, &s).unwrap_err();
    assert!(sched.preempt(&never, &s, &mut fit).is_none());
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[test]
fn preemption_reports_filters_that_still_fail_without_victims() {
    let mut s = snapshot(vec![node("n1", 1000, GI)]);
    let mut web = prio(pod("web"), 1);
    web.host_ports.push(HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 80 });
    place(&mut s, prio(requesting(pod("hog"), 1000, 0), 100), "n1");
    place(&mut s, web.clone(), "n1");
    let mut p = prio(requesting(pod("p"), 500, 0), 10);
    p.host_ports = web.host_ports.clone();
    let mut sched = Scheduler::new(1);
    let mut fit = sched.schedule(&p, &s).unwrap_err();
    assert_eq!(fit.message(), "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.");
    assert!(sched.preempt(&p, &s, &mut fit).is_none());
    assert!(fit.message().ends_with("preemption: 0/1 nodes are available: 1 Insufficient cpu."), "{}", fit.message());
}

#[test]
fn nominated_pods_hold_their_place() {
    let mut s = snapshot(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    place(&mut s, requesting(pod("full"), 1000, 0), "n2");
    let mut nominee = prio(requesting(pod("nominee"), 800, 0), 10);
    nominee.nominated_node = Some("n1".into());
    s.set_nominated(&nominee);
    let mut sched = Scheduler::new(1);
    let fit = sched.schedule(&prio(requesting(pod("low"), 500, 0), 1), &s).unwrap_err();
    assert_eq!(fit.message(), "0/2 nodes are available: 2 Insufficient cpu.");
    // The nominee itself goes straight to its node.
    assert_eq!(sched.schedule(&nominee, &s).unwrap(), "n1");
}
