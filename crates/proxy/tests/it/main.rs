//! Privileged tests: real nftables rules in network namespaces made by [`lab::Lab`],
//! with real TCP traffic from a client namespace to backend namespaces.

mod api;
mod lab;

use lab::{CLUSTER_CIDR, Lab, SERVICE_CIDR};
use proxy::model::{Endpoint, Key, Protocol, ServiceInfo, ServicePort, SliceInfo, SlicePort, State};
use proxy::rules::Node;
use proxy::{NftCommand, Proxier};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const CLUSTER_IP: &str = "10.96.0.10";

fn node() -> Node {
    Node {
        name: "node-a".into(),
        ips: vec![Lab::NODE_IP],
        cluster_cidr: CLUSTER_CIDR.into(),
        service_cidr: Some(SERVICE_CIDR.into()),
    }
}

fn service(cip: &str, node_port: Option<u16>) -> ServiceInfo {
    ServiceInfo {
        cluster_ip: Some(cip.parse().unwrap()),
        ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port }],
        external_ips: vec![],
        affinity_seconds: None,
        external_local: false,
        internal_local: false,
    }
}

fn key(name: &str) -> Key {
    ("default".into(), name.into())
}

fn put(state: &mut State, name: &str, svc: ServiceInfo, backends: &[usize]) {
    state.put_service(key(name), svc);
    let endpoints = backends
        .iter()
        .map(|&i| Endpoint {
            ip: Lab::backend_ip(i),
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(format!("node-{i}")),
        })
        .collect();
    let ports = vec![SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }];
    state.put_slice(("default".into(), format!("{name}-1")), Some(name.into()), SliceInfo { endpoints, ports });
}

/// curl's exit 7 is "failed to connect" (a reset or an ICMP unreachable), as
/// opposed to 28 for a timeout: the connection was refused, not left hanging.
fn refused(curl_error: &str) -> bool {
    curl_error.starts_with("curl: (7)")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn sync(rt: &tokio::runtime::Runtime, p: &mut Proxier<NftCommand>, state: &State, dirty: Option<&[&str]>) {
    let dirty: Option<BTreeSet<Key>> = dirty.map(|names| names.iter().map(|n| key(n)).collect());
    rt.block_on(p.sync(state, dirty.as_ref())).unwrap();
}

fn counts(lab: &Lab, ns: &str, addr: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let body = lab.get(ns, addr).unwrap_or_else(|e| panic!("GET {addr}: {e}\n{}", lab.ruleset()));
        *seen.entry(body).or_default() += 1;
    }
    seen
}

#[test]
fn cluster_ip_spreads_over_both_backends_and_follows_endpoint_changes() {
    let lab = Lab::new(2);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    put(&mut state, "web", service(CLUSTER_IP, None), &[0, 1]);
    sync(&rt, &mut p, &state, None);
    let seen = counts(&lab, &lab.client, &format!("{CLUSTER_IP}:80"), 40);
    // 40 fair coin flips land at least 8 on each side with overwhelming odds.
    assert!(seen.get("b0").copied().unwrap_or(0) >= 8 && seen.get("b1").copied().unwrap_or(0) >= 8, "{seen:?}");

    // One endpoint goes: a partial sync, and every request lands on the other.
    put(&mut state, "web", service(CLUSTER_IP, None), &[1]);
    sync(&rt, &mut p, &state, Some(&["web"]));
    assert_eq!(counts(&lab, &lab.client, &format!("{CLUSTER_IP}:80"), 10), HashMap::from([("b1".into(), 10)]));
    // A port the Service does not have is refused.
    let err = lab.get(&lab.client, &format!("{CLUSTER_IP}:81")).unwrap_err();
    assert!(refused(&err), "{err}");
}

#[test]
fn node_port_reaches_the_backends_through_the_node_address() {
    let lab = Lab::new(2);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    put(&mut state, "web", service(CLUSTER_IP, Some(30080)), &[0, 1]);
    sync(&rt, &mut p, &state, None);
    let seen = counts(&lab, &lab.client, &format!("{}:30080", Lab::NODE_IP), 20);
    assert_eq!(seen.values().sum::<usize>(), 20, "{seen:?}");
    assert!(seen.len() == 2, "both backends answer: {seen:?}");
}

#[test]
fn no_endpoints_refuses_at_once() {
    let lab = Lab::new(1);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    put(&mut state, "empty", service("10.96.0.11", Some(30081)), &[]);
    sync(&rt, &mut p, &state, None);
    for addr in ["10.96.0.11:80".to_string(), format!("{}:30081", Lab::NODE_IP)] {
        let started = Instant::now();
        let err = lab.get(&lab.client, &addr).unwrap_err();
        assert!(refused(&err), "{addr}: {err}\n{}", lab.ruleset());
        assert!(started.elapsed() < Duration::from_millis(1500), "{addr}: refused, not hung");
    }
    // Endpoints appear: the same address now answers.
    put(&mut state, "empty", service("10.96.0.11", Some(30081)), &[0]);
    sync(&rt, &mut p, &state, Some(&["empty"]));
    assert_eq!(lab.get(&lab.client, "10.96.0.11:80").unwrap(), "b0");
}

#[test]
fn client_ip_affinity_sticks() {
    let lab = Lab::new(2);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    let mut svc = service(CLUSTER_IP, None);
    svc.affinity_seconds = Some(60);
    put(&mut state, "sticky", svc, &[0, 1]);
    sync(&rt, &mut p, &state, None);
    let seen = counts(&lab, &lab.client, &format!("{CLUSTER_IP}:80"), 15);
    assert_eq!(seen.len(), 1, "one backend for one client: {seen:?}");
}

#[test]
fn hairpin_traffic_reaches_the_pod_itself() {
    let lab = Lab::new(1);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    put(&mut state, "self", service(CLUSTER_IP, None), &[0]);
    sync(&rt, &mut p, &state, None);
    // Without masquerade the reply would go straight back from b0 to b0 and the
    // connection would never complete.
    assert_eq!(lab.get(&lab.backends[0], &format!("{CLUSTER_IP}:80")).unwrap(), "b0");
}

#[test]
fn pods_behind_one_bridge_reach_each_other_and_themselves() {
    let lab = Lab::bridged(2);
    let rt = runtime();
    let mut p = Proxier::new(lab.nft(), "rudder", node());
    let mut state = State::default();
    put(&mut state, "web", service(CLUSTER_IP, None), &[0, 1]);
    put(&mut state, "self", service("10.96.0.11", None), &[0]);
    sync(&rt, &mut p, &state, None);
    // The reply comes back over the bridge and is un-NATed on the way, not sent
    // straight to the client with the pod's address.
    let seen = counts(&lab, &lab.client, &format!("{CLUSTER_IP}:80"), 20);
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Hairpin: back out of the port it came in, masqueraded.
    assert_eq!(lab.get(&lab.backends[0], "10.96.0.11:80").unwrap(), "b0");
}

#[test]
fn restart_converges_and_stop_removes_the_table() {
    let lab = Lab::new(1);
    let rt = runtime();
    let mut state = State::default();
    put(&mut state, "web", service(CLUSTER_IP, None), &[0]);
    put(&mut state, "old", service("10.96.0.12", None), &[0]);
    let mut first = Proxier::new(lab.nft(), "rudder", node());
    sync(&rt, &mut first, &state, None);
    // Something else's table is never touched.
    lab::ok(&["ip", "netns", "exec", &lab.node, "nft", "add table ip other"]);

    // A new proxier (a restarted agent) with a different view replaces the table whole.
    state.remove_service(&key("old"));
    let mut second = Proxier::new(lab.nft(), "rudder", node());
    sync(&rt, &mut second, &state, None);
    let rules = lab.ruleset();
    assert!(!rules.contains("10.96.0.12"), "{rules}");
    assert_eq!(lab.get(&lab.client, &format!("{CLUSTER_IP}:80")).unwrap(), "b0");

    rt.block_on(second.cleanup()).unwrap();
    let rules = lab.ruleset();
    assert!(!rules.contains("table ip rudder"), "{rules}");
    assert!(rules.contains("table ip other"), "{rules}");
    // Stopping twice is fine.
    rt.block_on(second.cleanup()).unwrap();
    let _: Ipv4Addr = Lab::CLIENT_IP;
}
