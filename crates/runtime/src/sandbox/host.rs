//! The node side of pod networking, outside any one pod: IP forwarding, the masquerade
//! rule for pod traffic leaving the cluster, and routes to other nodes' podCIDRs.
//!
//! Everything here runs `ip` and `iptables` (Debian `iproute2`, `iptables`) on a thread
//! in the node's network namespace. Nothing needs `br_netfilter`: pods on one bridge
//! talk at layer 2, and everything else is routed through the node.

use super::Cidr;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;

/// Routing protocol number that marks the routes [`route_commands`] installs, so that a
/// resync removes only ours (`ip route show proto 82`). Not in iproute2's rt_protos.
pub const ROUTE_PROTO: u8 = 82;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot enable IP forwarding: {0}")]
    Forwarding(std::io::Error),
    #[error("cannot read routes: {0}")]
    Routes(String),
}

/// Runs a command to completion on the calling thread.
pub fn run(program: &str, args: &[String]) -> Result<String, HostError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| HostError::Spawn { program: program.into(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(HostError::Command { command: format!("{program} {}", args.join(" ")), stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Turns on forwarding for the pod CIDR's family in the calling thread's network
/// namespace (`/proc/sys/net` shows the namespace of the task that opens it).
pub fn enable_forwarding(pod_cidr: &Cidr) -> Result<(), HostError> {
    let path =
        if pod_cidr.is_ipv4() { "/proc/sys/net/ipv4/ip_forward" } else { "/proc/sys/net/ipv6/conf/all/forwarding" };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, b"1").map_err(HostError::Forwarding)
}

/// Names of the node's own chains; per bridge so that two networks on one host (tests)
/// do not share them. iptables allows 28 characters; a Linux bridge name has at most 15.
pub fn masquerade_chain(bridge: &str) -> String {
    format!("RUDDER-MASQ-{bridge}")
}

pub fn forward_chain(bridge: &str) -> String {
    format!("RUDDER-FWD-{bridge}")
}

fn iptables_for(pod_cidr: &Cidr) -> &'static str {
    if pod_cidr.is_ipv4() { "iptables" } else { "ip6tables" }
}

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

/// The rules of the node's masquerade and forward chains, as iptables argument lists
/// (without the `-t TABLE -A CHAIN` prefix), in order.
///
/// Pod traffic to a pod on any node keeps its source address (so NetworkPolicy and
/// logs see the pod), like kubenet's `--non-masquerade-cidr`; traffic leaving the
/// cluster takes the node's address. Forwarding is accepted for the pod CIDR both ways,
/// so a host whose FORWARD policy is DROP (Docker sets it) still carries pod traffic.
pub fn node_rules(bridge: &str, pod_cidr: &Cidr, cluster_cidr: Option<&Cidr>) -> Vec<(String, String, Vec<String>)> {
    let masq = masquerade_chain(bridge);
    let fwd = forward_chain(bridge);
    let multicast = if pod_cidr.is_ipv4() { "224.0.0.0/4" } else { "ff00::/8" };
    let mut masq_rules = vec![args(&["-d", &pod_cidr.to_string(), "-j", "RETURN"])];
    if let Some(cluster) = cluster_cidr.filter(|c| c.is_ipv4() == pod_cidr.is_ipv4()) {
        masq_rules.push(args(&["-d", &cluster.to_string(), "-j", "RETURN"]));
    }
    masq_rules.push(args(&["-d", multicast, "-j", "RETURN"]));
    masq_rules.push(args(&["-j", "MASQUERADE"]));
    let fwd_rules = vec![
        args(&["-s", &pod_cidr.to_string(), "-j", "ACCEPT"]),
        args(&["-d", &pod_cidr.to_string(), "-j", "ACCEPT"]),
    ];
    let mut out = Vec::new();
    for r in masq_rules {
        out.push(("nat".to_string(), masq.clone(), r));
    }
    for r in fwd_rules {
        out.push(("filter".to_string(), fwd.clone(), r));
    }
    out
}

/// The jumps from the built-in chains into ours.
pub fn node_jumps(bridge: &str, pod_cidr: &Cidr) -> Vec<(String, String, Vec<String>)> {
    let comment = format!("rudder pods on {bridge}");
    vec![
        (
            "nat".into(),
            "POSTROUTING".into(),
            args(&[
                "-s",
                &pod_cidr.to_string(),
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                &masquerade_chain(bridge),
            ]),
        ),
        (
            "filter".into(),
            "FORWARD".into(),
            args(&["-m", "comment", "--comment", &comment, "-j", &forward_chain(bridge)]),
        ),
    ]
}

/// Installs (or refreshes) the node's chains: each chain is flushed and refilled, so a
/// changed cluster CIDR takes effect, and each jump is added once.
pub fn ensure_node_rules(bridge: &str, pod_cidr: &Cidr, cluster_cidr: Option<&Cidr>) -> Result<(), HostError> {
    let ipt = iptables_for(pod_cidr);
    let rules = node_rules(bridge, pod_cidr, cluster_cidr);
    let mut chains: Vec<(&str, &str)> = rules.iter().map(|(t, c, _)| (t.as_str(), c.as_str())).collect();
    chains.dedup();
    for (table, chain) in &chains {
        // -N fails when the chain exists, which is the state we want.
        let _ = run(ipt, &args(&["-w", "-t", table, "-N", chain]));
        run(ipt, &args(&["-w", "-t", table, "-F", chain]))?;
    }
    for (table, chain, rule) in &rules {
        let mut a = args(&["-w", "-t", table, "-A", chain]);
        a.extend(rule.iter().cloned());
        run(ipt, &a)?;
    }
    for (table, chain, rule) in node_jumps(bridge, pod_cidr) {
        let mut check = args(&["-w", "-t", &table, "-C", &chain]);
        check.extend(rule.iter().cloned());
        if run(ipt, &check).is_err() {
            let mut add = args(&["-w", "-t", &table, "-A", &chain]);
            add.extend(rule);
            run(ipt, &add)?;
        }
    }
    Ok(())
}

/// Removes the node's chains and their jumps; missing ones are fine.
pub fn remove_node_rules(bridge: &str, pod_cidr: &Cidr) -> Result<(), HostError> {
    let ipt = iptables_for(pod_cidr);
    for (table, chain, rule) in node_jumps(bridge, pod_cidr) {
        let mut del = args(&["-w", "-t", &table, "-D", &chain]);
        del.extend(rule);
        while run(ipt, &del).is_ok() {}
    }
    for (table, chain) in [("nat", masquerade_chain(bridge)), ("filter", forward_chain(bridge))] {
        if run(ipt, &args(&["-w", "-t", table, "-F", &chain])).is_ok() {
            run(ipt, &args(&["-w", "-t", table, "-X", &chain]))?;
        }
    }
    Ok(())
}

/// One route of ours as `ip -j route show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRoute {
    pub dst: String,
    pub gateway: Option<IpAddr>,
}

/// Parses `ip -j route show proto N`: `dst` is `default`, an address (host route) or a
/// prefix; `gateway` is absent for routes without a next hop.
pub fn parse_routes(json: &str) -> Result<Vec<InstalledRoute>, HostError> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| HostError::Routes(e.to_string()))?;
    let list = v.as_array().ok_or_else(|| HostError::Routes("not a JSON array".into()))?;
    let mut out = Vec::new();
    for r in list {
        let Some(dst) = r.get("dst").and_then(|d| d.as_str()) else { continue };
        let gateway = r.get("gateway").and_then(|g| g.as_str()).and_then(|g| g.parse().ok());
        out.push(InstalledRoute { dst: dst.to_string(), gateway });
    }
    Ok(out)
}

/// The canonical `prefix` form of an `ip route` destination, to compare with a [`Cidr`].
fn normalize_dst(dst: &str) -> String {
    match dst {
        "default" => "0.0.0.0/0".into(),
        d if d.contains('/') => d.into(),
        d if d.contains(':') => format!("{d}/128"),
        d => format!("{d}/32"),
    }
}

/// What to change so that exactly `wanted` (destination -> node IP) of ours is
/// installed, given what of ours is: `ip route` argument lists, deletions first. The
/// node's own podCIDR is never routed elsewhere; a destination listed twice keeps its
/// last node IP.
pub fn route_commands(own: &Cidr, wanted: &[(Cidr, IpAddr)], installed: &[InstalledRoute]) -> Vec<Vec<String>> {
    let proto = ROUTE_PROTO.to_string();
    let mut want: BTreeMap<String, (Cidr, IpAddr)> = BTreeMap::new();
    for (cidr, via) in wanted {
        if cidr == own || cidr.is_ipv4() != via.is_ipv4() {
            continue;
        }
        want.insert(cidr.to_string(), (*cidr, *via));
    }
    let mut have: BTreeMap<String, Option<IpAddr>> = BTreeMap::new();
    for r in installed {
        have.insert(normalize_dst(&r.dst), r.gateway);
    }
    let family = |s: &str| if s.contains(':') { "-6" } else { "-4" };
    let mut cmds = Vec::new();
    for dst in have.keys() {
        if !want.contains_key(dst) {
            cmds.push(args(&[family(dst), "route", "del", dst, "proto", &proto]));
        }
    }
    for (dst, (_, via)) in &want {
        if have.get(dst) != Some(&Some(*via)) {
            let via = via.to_string();
            cmds.push(args(&[family(dst), "route", "replace", dst, "via", &via, "proto", &proto]));
        }
    }
    cmds
}

/// Brings our routes in the calling thread's network namespace to `wanted`; every change
/// is tried, the first failure returned.
pub fn sync_routes(own: &Cidr, wanted: &[(Cidr, IpAddr)]) -> Result<(), HostError> {
    let proto = ROUTE_PROTO.to_string();
    let mut families = vec![if own.is_ipv4() { "-4" } else { "-6" }];
    for (c, _) in wanted {
        let f = if c.is_ipv4() { "-4" } else { "-6" };
        if !families.contains(&f) {
            families.push(f);
        }
    }
    let mut installed = Vec::new();
    for f in families {
        let out = run("ip", &args(&["-j", f, "route", "show", "table", "main", "proto", &proto]))?;
        installed.extend(parse_routes(&out)?);
    }
    // One node whose address is unreachable must not keep the others' routes out.
    let mut first_err = None;
    for cmd in route_commands(own, wanted, &installed) {
        if let Err(e) = run("ip", &cmd) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn masquerade_exempts_the_cluster_and_multicast() {
        let rules = node_rules("rudder0", &c("10.42.1.0/24"), Some(&c("10.42.0.0/16")));
        let text: Vec<String> = rules.iter().map(|(t, ch, r)| format!("{t} {ch} {}", r.join(" "))).collect();
        assert_eq!(
            text,
            [
                "nat RUDDER-MASQ-rudder0 -d 10.42.1.0/24 -j RETURN",
                "nat RUDDER-MASQ-rudder0 -d 10.42.0.0/16 -j RETURN",
                "nat RUDDER-MASQ-rudder0 -d 224.0.0.0/4 -j RETURN",
                "nat RUDDER-MASQ-rudder0 -j MASQUERADE",
                "filter RUDDER-FWD-rudder0 -s 10.42.1.0/24 -j ACCEPT",
                "filter RUDDER-FWD-rudder0 -d 10.42.1.0/24 -j ACCEPT",
            ]
        );
        // Without a cluster CIDR (or one of the other family) only the node's own is exempt.
        let rules = node_rules("br1", &c("10.42.1.0/24"), Some(&c("fd00::/48")));
        assert_eq!(rules.iter().filter(|(t, _, _)| t == "nat").count(), 3);
        let v6 = node_rules("br1", &c("fd00:1::/64"), None);
        assert_eq!(v6[1].2, ["-d", "ff00::/8", "-j", "RETURN"]);
        let jumps = node_jumps("br1", &c("10.42.1.0/24"));
        assert_eq!(jumps[0].2.join(" "), "-s 10.42.1.0/24 -m comment --comment rudder pods on br1 -j RUDDER-MASQ-br1");
        assert!(masquerade_chain("abcdefghijklmno").len() <= 28);
    }

    #[test]
    fn parses_ip_route_json() {
        let out = r#"[{"dst":"10.42.2.0/24","gateway":"192.168.1.2","dev":"eth0","protocol":"82","flags":[]},
                      {"dst":"10.9.9.9","gateway":"192.168.1.3","dev":"eth0","flags":[]},
                      {"dst":"default","dev":"eth0","flags":[]}]"#;
        let routes = parse_routes(out).unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0], InstalledRoute { dst: "10.42.2.0/24".into(), gateway: Some(ip("192.168.1.2")) });
        assert_eq!(routes[2].gateway, None);
        assert!(parse_routes("").unwrap().is_empty());
        assert!(parse_routes("[]\n").unwrap().is_empty());
        assert!(parse_routes("{").is_err());
    }

    #[test]
    fn route_plan_adds_changes_and_removes_only_what_differs() {
        let own = c("10.42.1.0/24");
        let installed = vec![
            InstalledRoute { dst: "10.42.2.0/24".into(), gateway: Some(ip("192.168.1.2")) },
            InstalledRoute { dst: "10.42.3.0/24".into(), gateway: Some(ip("192.168.1.3")) },
            InstalledRoute { dst: "10.42.4.0/24".into(), gateway: Some(ip("192.168.1.4")) },
        ];
        let wanted = [
            (c("10.42.2.0/24"), ip("192.168.1.2")),  // unchanged
            (c("10.42.3.0/24"), ip("192.168.1.33")), // node IP changed
            (c("10.42.5.0/24"), ip("192.168.1.5")),  // new node
            (c("10.42.1.0/24"), ip("192.168.1.1")),  // ourselves: never
            (c("fd00::/64"), ip("192.168.1.9")),     // family mismatch: skipped
        ];
        let cmds: Vec<String> = route_commands(&own, &wanted, &installed).iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            cmds,
            [
                "-4 route del 10.42.4.0/24 proto 82",
                "-4 route replace 10.42.3.0/24 via 192.168.1.33 proto 82",
                "-4 route replace 10.42.5.0/24 via 192.168.1.5 proto 82",
            ]
        );
        // Already in the desired state: nothing to do.
        let done = [
            (c("10.42.2.0/24"), ip("192.168.1.2")),
            (c("10.42.3.0/24"), ip("192.168.1.3")),
            (c("10.42.4.0/24"), ip("192.168.1.4")),
        ];
        assert!(route_commands(&own, &done, &installed).is_empty());
        // Host routes print without a prefix length.
        let host = [InstalledRoute { dst: "10.9.9.9".into(), gateway: Some(ip("192.168.1.3")) }];
        assert!(route_commands(&own, &[(c("10.9.9.9/32"), ip("192.168.1.3"))], &host).is_empty());
        let v6 = route_commands(&c("fd00:1::/64"), &[(c("fd00:2::/64"), ip("fd00::2"))], &[]);
        assert_eq!(v6[0].join(" "), "-6 route replace fd00:2::/64 via fd00::2 proto 82");
    }
}
