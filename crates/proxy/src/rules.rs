//! The nftables rules, as text for `nft -f -`, decided without I/O. The shapes are
//! those of kube-proxy's nftables mode: one `ip` table of our own; verdict maps
//! from `address . protocol . port` to a chain per service port; `numgen random mod
//! N` to spread new connections over a chain per endpoint, which DNATs; a packet
//! mark for what must be masqueraded; `no-endpoint-*` maps that reject (or drop)
//! in the filter hooks, where an un-DNATed packet still has its Service address.
//!
//! Each Service contributes a [`ServiceRules`] (its chains, affinity sets and map
//! elements), so a sync rewrites only the Services that changed: see
//! [`diff_script`].

use crate::model::{Endpoint, Key, ServiceInfo, ServicePort, State};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// The packet mark bit meaning "masquerade this on the way out".
const MASQUERADE_MARK: &str = "0x4000";

/// The node-level facts the rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Endpoints on this node are "local" for the `Local` traffic policies.
    pub name: String,
    /// Addresses that accept NodePort traffic.
    pub ips: Vec<Ipv4Addr>,
    /// The pod network: traffic from outside it to a ClusterIP is masqueraded.
    pub cluster_cidr: String,
    /// When set, traffic to unallocated addresses in it is dropped.
    pub service_cidr: Option<String>,
}

/// What one Service puts in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chain name → its rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Set name → its definition (`{ type … ; }`).
    pub sets: BTreeMap<String, String>,
    /// `(set or map, key)` → the map value (`None` for set elements).
    pub elements: BTreeMap<(&'static str, String), Option<String>>,
}

/// A short stable hash for chain names, as kube-proxy prefixes them: names stay
/// readable, and the hash keeps them unique when truncation or odd characters
/// would not.
pub fn hash8(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (0..8).map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char).collect()
}

/// The endpoints new connections go to: the ready ones, or when none is ready,
/// those still serving while terminating (so a rolling restart does not drop
/// connections that could have been served).
fn usable(eps: &[(Endpoint, u16)], filter: impl Fn(&Endpoint) -> bool) -> Vec<(Endpoint, u16)> {
    let candidates: Vec<&(Endpoint, u16)> = eps.iter().filter(|(e, _)| filter(e)).collect();
    let ready: Vec<(Endpoint, u16)> = candidates.iter().filter(|(e, _)| e.ready).map(|&c| c.clone()).collect();
    if !ready.is_empty() {
        return ready;
    }
    candidates.into_iter().filter(|(e, _)| e.serving && e.terminating).cloned().collect()
}

struct Names {
    base: String,
    service: String,
    external: String,
    local: String,
}

impl Names {
    fn new(key: &Key, port: &ServicePort) -> Names {
        let base = format!("{}/{}/{}/{}", key.0, key.1, port.protocol.nft(), port.name);
        let h = hash8(&base);
        Names {
            service: format!("service-{h}-{base}"),
            external: format!("external-{h}-{base}"),
            local: format!("local-{h}-{base}"),
            base,
        }
    }

    fn endpoint(&self, ip: Ipv4Addr, port: u16) -> String {
        let tail = format!("{}__{ip}/{port}", self.base);
        format!("endpoint-{}-{tail}", hash8(&tail))
    }

    /// Per endpoint, as kube-proxy does; the timeout is part of the hash so a new
    /// timeout makes a new set instead of altering one in use.
    fn affinity(&self, ip: Ipv4Addr, port: u16, timeout: u32) -> String {
        let tail = format!("{}__{ip}/{port}", self.base);
        format!("affinity-{}-{tail}", hash8(&format!("{tail}@{timeout}")))
    }
}

/// The rules of one Service, given every endpoint the state has for it.
pub fn service_rules(key: &Key, svc: &ServiceInfo, state: &State, node: &Node) -> ServiceRules {
    let mut out = ServiceRules::default();
    if svc.cluster_ip.is_none() && svc.external_ips.is_empty() {
        // Headless: DNS hands out the endpoints themselves; nothing to route.
        return out;
    }
    if let Some(cip) = svc.cluster_ip {
        out.elements.insert(("cluster-ips", cip.to_string()), None);
    }
    for port in &svc.ports {
        port_rules(&mut out, key, svc, port, state, node);
    }
    out
}

fn port_rules(out: &mut ServiceRules, key: &Key, svc: &ServiceInfo, port: &ServicePort, state: &State, node: &Node) {
    let names = Names::new(key, port);
    let proto = port.protocol.nft();
    let all = state.endpoints_for(key, port);
    let cluster = usable(&all, |_| true);
    let local = usable(&all, |e| e.node_name.as_deref() == Some(node.name.as_str()));
    let has_cluster = !cluster.is_empty();
    let has_local = !local.is_empty();
    let internal_ok = if svc.internal_local { has_local } else { has_cluster };
    let external_ok = if svc.external_local { has_local } else { has_cluster };
    let has_external = port.node_port.is_some() || !svc.external_ips.is_empty();
    // Without endpoints at all a connection is refused; with endpoints but none
    // that the policy allows here, it is dropped (kube-proxy's choice: the client
    // may retry and reach another node).
    let no_endpoints = if has_cluster { "drop" } else { "goto reject-chain" }.to_string();
    let cidr = &node.cluster_cidr;

    if has_cluster {
        let mut endpoints: Vec<&(Endpoint, u16)> = cluster.iter().chain(local.iter()).collect();
        endpoints.sort_by_key(|(e, p)| (e.ip, *p));
        endpoints.dedup_by_key(|(e, p)| (e.ip, *p));
        for (e, target) in endpoints {
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", e.ip)];
            if let Some(timeout) = svc.affinity_seconds {
                let set = names.affinity(e.ip, *target, timeout);
                rules.push(format!("update @{set} {{ ip saddr }}"));
                out.sets.insert(set, format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"));
            }
            rules.push(format!("meta l4proto {proto} dnat to {}:{target}", e.ip));
            out.chains.insert(names.endpoint(e.ip, *target), rules);
        }
        let mut service = Vec::new();
        if let Some(cip) = svc.cluster_ip {
            service.push(format!("ip daddr {cip} ip saddr != {cidr} jump mark-for-masquerade"));
        }
        if svc.internal_local {
            if has_local {
                service.push(format!("goto {}", names.local));
            }
        } else {
            service.extend(spread(&names, svc, &cluster));
        }
        out.chains.insert(names.service.clone(), service);
        if (svc.internal_local || svc.external_local) && has_local {
            out.chains.insert(names.local.clone(), spread(&names, svc, &local));
        }
        if has_external {
            let external = if svc.external_local {
                let mut rules = vec![
                    // Pods and the node itself reach the Service as from inside.
                    format!("ip saddr {cidr} goto {}", names.service),
                    "fib saddr type local jump mark-for-masquerade".to_string(),
                    format!("fib saddr type local goto {}", names.service),
                ];
                if has_local {
                    rules.push(format!("goto {}", names.local));
                }
                rules
            } else {
                vec!["jump mark-for-masquerade".to_string(), format!("goto {}", names.service)]
            };
            out.chains.insert(names.external.clone(), external);
        }
    }

    let mut element = |map: &'static str, k: String, v: String| {
        out.elements.insert((map, k), Some(v));
    };
    if let Some(cip) = svc.cluster_ip {
        let k = format!("{cip} . {proto} . {}", port.port);
        if internal_ok {
            element("service-ips", k, format!("goto {}", names.service));
        } else {
            element("no-endpoint-services", k, no_endpoints.clone());
        }
    }
    for ip in &svc.external_ips {
        let k = format!("{ip} . {proto} . {}", port.port);
        if has_cluster {
            element("service-ips", k.clone(), format!("goto {}", names.external));
        }
        if !external_ok {
            element("no-endpoint-services", k, no_endpoints.clone());
        }
    }
    if let Some(np) = port.node_port {
        let k = format!("{proto} . {np}");
        if has_cluster {
            element("service-nodeports", k.clone(), format!("goto {}", names.external));
        }
        if !external_ok {
            element("no-endpoint-nodeports", k, no_endpoints);
        }
    }
}

/// The rules that pick an endpoint: a sticky client goes back to its endpoint,
/// anyone else is spread evenly.
fn spread(names: &Names, svc: &ServiceInfo, eps: &[(Endpoint, u16)]) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(timeout) = svc.affinity_seconds {
        for (e, p) in eps {
            rules.push(format!("ip saddr @{} goto {}", names.affinity(e.ip, *p, timeout), names.endpoint(e.ip, *p)));
        }
    }
    let arms: Vec<String> =
        eps.iter().enumerate().map(|(i, (e, p))| format!("{i} : goto {}", names.endpoint(e.ip, *p))).collect();
    rules.push(format!("numgen random mod {} vmap {{ {} }}", eps.len(), arms.join(" , ")));
    rules
}

/// The table's fixed part: hooks, maps and the helper chains.
pub fn base_script(table: &str, node: &Node) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("add table {t} {{ comment \"rudder service proxy\" ; }}"));
    line(format!("add set {t} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"));
    line(format!("add set {t} nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"));
    for (name, key) in [
        ("no-endpoint-nodeports", "inet_proto . inet_service"),
        ("no-endpoint-services", "ipv4_addr . inet_proto . inet_service"),
        ("service-ips", "ipv4_addr . inet_proto . inet_service"),
        ("service-nodeports", "inet_proto . inet_service"),
    ] {
        line(format!("add map {t} {name} {{ type {key} : verdict ; }}"));
    }
    for chain in [
        "cluster-ips-check",
        "filter-forward { type filter hook forward priority 0 ; }",
        "filter-input { type filter hook input priority 0 ; }",
        "filter-output { type filter hook output priority 0 ; }",
        "mark-for-masquerade",
        "masquerading",
        "nat-output { type nat hook output priority -100 ; }",
        "nat-postrouting { type nat hook postrouting priority 100 ; }",
        "nat-prerouting { type nat hook prerouting priority -100 ; }",
        "nodeport-endpoints-check",
        "reject-chain",
        "services",
        "service-endpoints-check",
    ] {
        line(format!("add chain {t} {chain}"));
    }
    let mut rules = vec![
        ("cluster-ips-check", "ip daddr @cluster-ips reject".to_string()),
        ("filter-forward", "ct state new jump service-endpoints-check".into()),
        ("filter-forward", "ct state new jump cluster-ips-check".into()),
        ("filter-input", "ct state new jump nodeport-endpoints-check".into()),
        ("filter-input", "ct state new jump service-endpoints-check".into()),
        ("filter-output", "ct state new jump service-endpoints-check".into()),
        ("filter-output", "ct state new jump cluster-ips-check".into()),
        ("mark-for-masquerade", format!("mark set mark or {MASQUERADE_MARK}")),
        ("masquerading", format!("mark and {MASQUERADE_MARK} == 0 return")),
        ("masquerading", format!("mark set mark xor {MASQUERADE_MARK}")),
        ("masquerading", "masquerade fully-random".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        ("nat-prerouting", "jump services".into()),
        (
            "nodeport-endpoints-check",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        ),
        ("reject-chain", "reject".into()),
        ("services", "ip daddr . meta l4proto . th dport vmap @service-ips".into()),
        ("services", "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports".into()),
        ("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into()),
    ];
    if let Some(cidr) = &node.service_cidr {
        rules.insert(1, ("cluster-ips-check", format!("ip daddr {{ {cidr} }} drop")));
    }
    for (chain, rule) in rules {
        line(format!("add rule {t} {chain} {rule}"));
    }
    if !node.ips.is_empty() {
        let ips: Vec<String> = node.ips.iter().map(Ipv4Addr::to_string).collect();
        line(format!("add element {t} nodeport-ips {{ {} }}", ips.join(", ")));
    }
    s
}

fn element_line(out: &mut String, verb: &str, table: &str, map: &str, key: &str, value: Option<&String>) {
    let _ = match value {
        Some(v) if verb == "add" => writeln!(out, "add element ip {table} {map} {{ {key} : {v} }}"),
        _ => writeln!(out, "{verb} element ip {table} {map} {{ {key} }}"),
    };
}

/// Adds one Service's pieces to a script that creates them from nothing.
fn create(out: &mut String, table: &str, rules: &ServiceRules) {
    for (set, def) in &rules.sets {
        let _ = writeln!(out, "add set ip {table} {set} {def}");
    }
    for chain in rules.chains.keys() {
        let _ = writeln!(out, "add chain ip {table} {chain}");
    }
    for (chain, lines) in &rules.chains {
        for rule in lines {
            let _ = writeln!(out, "add rule ip {table} {chain} {rule}");
        }
    }
    for ((map, key), value) in &rules.elements {
        element_line(out, "add", table, map, key, value.as_ref());
    }
}

/// One transaction that replaces the whole table, whatever was there (a restart
/// converges): `add` then `delete` makes the delete succeed when no table exists.
pub fn full_script<'a>(table: &str, node: &Node, services: impl IntoIterator<Item = &'a ServiceRules>) -> String {
    let mut out = format!("add table ip {table}\ndelete table ip {table}\n");
    out.push_str(&base_script(table, node));
    for rules in services {
        create(&mut out, table, rules);
    }
    out
}

/// The script that removes the table (stopping cleanly).
pub fn delete_script(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// One transaction that turns `old` into `new` for a set of Services, touching
/// nothing else: new sets and chains first (rules refer to them), changed chains
/// flushed and refilled, elements swapped, then the chains and sets nothing refers
/// to any more flushed and deleted.
pub fn diff_script<'a>(table: &str, changes: impl IntoIterator<Item = (&'a ServiceRules, &'a ServiceRules)>) -> String {
    let changes: Vec<(&ServiceRules, &ServiceRules)> = changes.into_iter().collect();
    let mut out = String::new();
    for (old, new) in &changes {
        for (set, def) in &new.sets {
            if old.sets.get(set) != Some(def) {
                let _ = writeln!(out, "add set ip {table} {set} {def}");
            }
        }
        for chain in new.chains.keys().filter(|c| !old.chains.contains_key(*c)) {
            let _ = writeln!(out, "add chain ip {table} {chain}");
        }
    }
    for (old, new) in &changes {
        for (chain, lines) in &new.chains {
            match old.chains.get(chain) {
                Some(before) if before == lines => continue,
                Some(_) => {
                    let _ = writeln!(out, "flush chain ip {table} {chain}");
                }
                None => {}
            }
            for rule in lines {
                let _ = writeln!(out, "add rule ip {table} {chain} {rule}");
            }
        }
    }
    for (old, new) in &changes {
        for (k @ (map, key), value) in &old.elements {
            if new.elements.get(k) != Some(value) {
                element_line(&mut out, "delete", table, map, key, None);
            }
        }
    }
    for (old, new) in &changes {
        for (k @ (map, key), value) in &new.elements {
            if old.elements.get(k) != Some(value) {
                element_line(&mut out, "add", table, map, key, value.as_ref());
            }
        }
    }
    let stale_chains: BTreeSet<&String> =
        changes.iter().flat_map(|(old, new)| old.chains.keys().filter(|c| !new.chains.contains_key(*c))).collect();
    for chain in &stale_chains {
        let _ = writeln!(out, "flush chain ip {table} {chain}");
    }
    for chain in &stale_chains {
        let _ = writeln!(out, "delete chain ip {table} {chain}");
    }
    for (old, new) in &changes {
        for set in old.sets.keys().filter(|s| !new.sets.contains_key(*s)) {
            let _ = writeln!(out, "delete set ip {table} {set}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, SliceInfo, SlicePort};

    fn node() -> Node {
        Node {
            name: "node-a".into(),
            ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: Some("10.43.0.0/16".into()),
        }
    }

    fn key(ns: &str, name: &str) -> Key {
        (ns.into(), name.into())
    }

    fn svc(cip: &str, node_port: Option<u16>) -> ServiceInfo {
        ServiceInfo {
            cluster_ip: Some(cip.parse().unwrap()),
            ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port }],
            external_ips: vec![],
            affinity_seconds: None,
            external_local: false,
            internal_local: false,
        }
    }

    fn ep(ip: &str, node: &str, ready: bool) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), ready, serving: ready, terminating: false, node_name: Some(node.into()) }
    }

    fn state_with(key: &Key, eps: Vec<Endpoint>) -> State {
        let mut s = State::default();
        let port = SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 };
        s.put_slice(
            (key.0.clone(), format!("{}-x", key.1)),
            Some(key.1.clone()),
            SliceInfo { endpoints: eps, ports: vec![port] },
        );
        s
    }

    /// The script that creates one Service, as golden text.
    fn golden(key: &Key, svc: &ServiceInfo, state: &State) -> String {
        let mut out = String::new();
        create(&mut out, "rudder", &service_rules(key, svc, state, &node()));
        out
    }

    fn assert_golden(actual: &str, expected: &str) {
        let expected: String =
            expected.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
        assert_eq!(actual, expected, "\n--- actual ---\n{actual}--- expected ---\n{expected}");
    }

    #[test]
    fn hashes_are_stable_and_short() {
        assert_eq!(hash8("ns1/svc1/tcp/p80"), hash8("ns1/svc1/tcp/p80"));
        assert_ne!(hash8("ns1/svc1/tcp/p80"), hash8("ns1/svc1/tcp/p81"));
        assert_eq!(hash8("x").len(), 8);
    }

    #[test]
    fn cluster_ip_with_two_endpoints() {
        let k = key("ns1", "web");
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true), ep("10.42.2.6", "node-c", true)]);
        let n = Names::new(&k, &svc("10.43.0.7", None).ports[0]);
        let (e1, e2) = (n.endpoint("10.42.1.5".parse().unwrap(), 8080), n.endpoint("10.42.2.6".parse().unwrap(), 8080));
        // Chains are written in name order, which the hash decides.
        let (c1, c2) = if e1 < e2 { (&e1, &e2) } else { (&e2, &e1) };
        let s = &n.service;
        assert_golden(
            &golden(&k, &svc("10.43.0.7", None), &st),
            &format!(
                "add chain ip rudder {c1}
                add chain ip rudder {c2}
                add chain ip rudder {s}
                add rule ip rudder {e1} ip saddr 10.42.1.5 jump mark-for-masquerade
                add rule ip rudder {e1} meta l4proto tcp dnat to 10.42.1.5:8080
                add rule ip rudder {e2} ip saddr 10.42.2.6 jump mark-for-masquerade
                add rule ip rudder {e2} meta l4proto tcp dnat to 10.42.2.6:8080
                add rule ip rudder {s} ip daddr 10.43.0.7 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
                add rule ip rudder {s} numgen random mod 2 vmap {{ 0 : goto {e1} , 1 : goto {e2} }}
                add element ip rudder cluster-ips {{ 10.43.0.7 }}
                add element ip rudder service-ips {{ 10.43.0.7 . tcp . 80 : goto {s} }}"
            ),
        );
        assert!(s.starts_with("service-") && s.ends_with("-ns1/web/tcp/http"));
    }

    #[test]
    fn no_endpoints_rejects_and_not_ready_ones_do_not_count() {
        let k = key("ns1", "web");
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", false)]);
        assert_golden(
            &golden(&k, &svc("10.43.0.7", Some(30080)), &st),
            "add element ip rudder cluster-ips { 10.43.0.7 }
            add element ip rudder no-endpoint-nodeports { tcp . 30080 : goto reject-chain }
            add element ip rudder no-endpoint-services { 10.43.0.7 . tcp . 80 : goto reject-chain }",
        );
    }

    #[test]
    fn terminating_but_serving_endpoints_are_used_when_none_is_ready() {
        let k = key("ns1", "web");
        let mut e = ep("10.42.1.5", "node-b", false);
        e.serving = true;
        e.terminating = true;
        let rules = service_rules(&k, &svc("10.43.0.7", None), &state_with(&k, vec![e]), &node());
        assert!(rules.elements.keys().any(|(m, _)| *m == "service-ips"));
    }

    #[test]
    fn node_port_with_cluster_policy_masquerades() {
        let k = key("ns1", "web");
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true)]);
        let mut service = svc("10.43.0.7", Some(30080));
        service.external_ips = vec!["192.0.2.10".parse().unwrap()];
        let n = Names::new(&k, &service.ports[0]);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(
            rules.chains[&n.external],
            vec!["jump mark-for-masquerade".to_string(), format!("goto {}", n.service)]
        );
        assert_eq!(rules.elements[&("service-nodeports", "tcp . 30080".into())], Some(format!("goto {}", n.external)));
        assert_eq!(
            rules.elements[&("service-ips", "192.0.2.10 . tcp . 80".into())],
            Some(format!("goto {}", n.external))
        );
        assert!(!rules.elements.keys().any(|(m, _)| m.starts_with("no-endpoint")));
    }

    #[test]
    fn external_policy_local_uses_local_endpoints_and_drops_without_them() {
        let k = key("ns1", "web");
        let mut service = svc("10.43.0.7", Some(30080));
        service.external_local = true;
        let n = Names::new(&k, &service.ports[0]);
        let local_ep = n.endpoint("10.42.0.9".parse().unwrap(), 8080);
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true), ep("10.42.0.9", "node-a", true)]);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(
            rules.chains[&n.external],
            vec![
                format!("ip saddr 10.42.0.0/16 goto {}", n.service),
                "fib saddr type local jump mark-for-masquerade".to_string(),
                format!("fib saddr type local goto {}", n.service),
                format!("goto {}", n.local),
            ]
        );
        assert_eq!(rules.chains[&n.local], vec![format!("numgen random mod 1 vmap {{ 0 : goto {local_ep} }}")]);
        // The ClusterIP still spreads over both.
        assert!(rules.chains[&n.service][1].contains("mod 2"));

        // No local endpoint: pods still get through, outside traffic is dropped.
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true)]);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(rules.chains[&n.external].len(), 3);
        assert!(!rules.chains.contains_key(&n.local));
        assert_eq!(rules.elements[&("no-endpoint-nodeports", "tcp . 30080".into())], Some("drop".into()));
        assert_eq!(rules.elements[&("service-nodeports", "tcp . 30080".into())], Some(format!("goto {}", n.external)));
    }

    #[test]
    fn internal_policy_local() {
        let k = key("ns1", "web");
        let mut service = svc("10.43.0.7", None);
        service.internal_local = true;
        let n = Names::new(&k, &service.ports[0]);
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true), ep("10.42.0.9", "node-a", true)]);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(rules.chains[&n.service][1], format!("goto {}", n.local));
        assert!(rules.chains[&n.local][0].contains("mod 1"));
        // Only remote endpoints: ClusterIP traffic from this node is dropped.
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true)]);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(rules.elements[&("no-endpoint-services", "10.43.0.7 . tcp . 80".into())], Some("drop".into()));
    }

    #[test]
    fn session_affinity_adds_sets_and_sticky_rules() {
        let k = key("ns1", "web");
        let mut service = svc("10.43.0.7", None);
        service.affinity_seconds = Some(60);
        let st = state_with(&k, vec![ep("10.42.1.5", "node-b", true)]);
        let n = Names::new(&k, &service.ports[0]);
        let e = n.endpoint("10.42.1.5".parse().unwrap(), 8080);
        let set = n.affinity("10.42.1.5".parse().unwrap(), 8080, 60);
        let rules = service_rules(&k, &service, &st, &node());
        assert_eq!(rules.sets[&set], "{ type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }");
        assert_eq!(rules.chains[&n.service][1], format!("ip saddr @{set} goto {e}"));
        assert_eq!(rules.chains[&e][1], format!("update @{set} {{ ip saddr }}"));
        assert_ne!(set, n.affinity("10.42.1.5".parse().unwrap(), 8080, 61), "a new timeout is a new set");
    }

    #[test]
    fn headless_services_get_nothing() {
        let k = key("ns1", "db");
        let mut service = svc("10.43.0.7", None);
        service.cluster_ip = None;
        assert_eq!(service_rules(&k, &service, &State::default(), &node()), ServiceRules::default());
    }

    #[test]
    fn base_script_golden() {
        let s = base_script("rudder", &node());
        assert!(s.starts_with("add table ip rudder { comment \"rudder service proxy\" ; }\n"));
        assert!(s.contains("add rule ip rudder cluster-ips-check ip daddr { 10.43.0.0/16 } drop\n"));
        assert!(s.contains("add rule ip rudder masquerading masquerade fully-random\n"));
        assert!(s.ends_with("add element ip rudder nodeport-ips { 192.168.0.2 }\n"));
        let mut n = node();
        n.ips.clear();
        n.service_cidr = None;
        let s = base_script("rudder", &n);
        assert!(!s.contains("nodeport-ips {  }") && !s.contains("} drop"));
    }

    #[test]
    fn diff_touches_only_what_changed() {
        let k = key("ns1", "web");
        let service = svc("10.43.0.7", None);
        let n = Names::new(&k, &service.ports[0]);
        let before = service_rules(&k, &service, &state_with(&k, vec![ep("10.42.1.5", "b", true)]), &node());
        let after = service_rules(
            &k,
            &service,
            &state_with(&k, vec![ep("10.42.2.6", "c", true), ep("10.42.3.7", "c", true)]),
            &node(),
        );
        let script = diff_script("rudder", [(&before, &after)]);
        let old_ep = n.endpoint("10.42.1.5".parse().unwrap(), 8080);
        let e2 = n.endpoint("10.42.2.6".parse().unwrap(), 8080);
        let e3 = n.endpoint("10.42.3.7".parse().unwrap(), 8080);
        let s = &n.service;
        // Chains are written in name order, which the hash decides.
        let mut created = [(&e2, "10.42.2.6"), (&e3, "10.42.3.7")];
        created.sort();
        let [(c1, ip1), (c2, ip2)] = created;
        assert_golden(
            &script,
            &format!(
                "add chain ip rudder {c1}
                add chain ip rudder {c2}
                add rule ip rudder {c1} ip saddr {ip1} jump mark-for-masquerade
                add rule ip rudder {c1} meta l4proto tcp dnat to {ip1}:8080
                add rule ip rudder {c2} ip saddr {ip2} jump mark-for-masquerade
                add rule ip rudder {c2} meta l4proto tcp dnat to {ip2}:8080
                flush chain ip rudder {s}
                add rule ip rudder {s} ip daddr 10.43.0.7 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
                add rule ip rudder {s} numgen random mod 2 vmap {{ 0 : goto {e2} , 1 : goto {e3} }}
                flush chain ip rudder {old_ep}
                delete chain ip rudder {old_ep}"
            ),
        );
        assert_eq!(diff_script("rudder", [(&after, &after)]), "", "nothing changed, nothing written");
        // Removing the Service removes all of it, elements before chains.
        let gone = diff_script("rudder", [(&after, &ServiceRules::default())]);
        let first_delete_chain = gone.find("delete chain").unwrap();
        assert!(
            gone.find("delete element ip rudder service-ips { 10.43.0.7 . tcp . 80 }").unwrap() < first_delete_chain
        );
        assert!(gone.contains("delete element ip rudder cluster-ips { 10.43.0.7 }"));
    }
}
