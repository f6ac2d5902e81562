//! What to answer, decided without I/O: a query and a [`Cluster`] snapshot in, an
//! [`Outcome`] out. The shapes follow CoreDNS's `kubernetes` plugin as configured by
//! kubeadm (`pods insecure`, reverse zones falling through upstream):
//!
//! - `<svc>.<ns>.svc.<zone>`: the ClusterIPs (A for IPv4, AAAA for IPv6); for a
//!   headless Service the ready endpoints' addresses; for an ExternalName a CNAME.
//! - `<endpoint>.<svc>.<ns>.svc.<zone>`: one endpoint, named by its hostname or by
//!   its address with dashes (`10-42-0-5`).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV: per named port, targets the
//!   Service name (ClusterIP) or each endpoint's name (headless), with the
//!   addresses in the additional section.
//! - `<a-b-c-d>.<ns>.pod.<zone>`: the address spelled by the name.
//! - PTR for ClusterIPs and endpoint addresses; other reverse names go upstream.
//!
//! A name that exists without records of the asked type gets NODATA (NOERROR, no
//! answers, the zone's SOA in authority); a name that does not exist gets NXDOMAIN.

use crate::cache::{Cluster, Endpoint, Port, ServiceEntry, ServiceKind};
use crate::wire::{self, Flags, Message, Name, RData, Record};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The zone this server is authoritative for and how it answers.
#[derive(Debug, Clone)]
pub struct Zone {
    /// e.g. `cluster.local`.
    pub domain: Name,
    /// TTL of every answer, and the SOA's negative-caching minimum.
    pub ttl: u32,
    /// The server's own address (the `kube-dns` ClusterIP), glue for `ns.dns.<zone>`.
    pub dns_ip: Option<IpAddr>,
    pub serial: u32,
}

impl Zone {
    pub fn new(domain: &str) -> Option<Zone> {
        Some(Zone { domain: Name::parse(domain)?, ttl: 5, dns_ip: None, serial: 1 })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete reply.
    Reply(Message),
    /// Not ours: send the query upstream and relay the reply.
    Forward,
    /// An ExternalName whose target is outside the zone: `reply` holds the CNAME;
    /// resolve `target` for `qtype` upstream and append its answers.
    Chase { reply: Message, target: Name, qtype: u16 },
}

/// The reply skeleton for `query`: same ID and question, RD echoed, RA set
/// (names outside the zone are resolved upstream), and an OPT record when the
/// query had one.
pub fn reply_to(query: &Message, rcode: u8) -> Message {
    let flags = Flags::default().with_qr(true).with_rd(query.flags.rd()).with_ra(true).with_rcode(rcode);
    let mut reply = Message { id: query.id, flags, questions: query.questions.clone(), ..Message::default() };
    if query.edns().is_some() {
        reply.additionals.push(Record::opt(wire::EDNS_UDP_SIZE));
    }
    reply
}

pub fn respond(query: &Message, cluster: &Cluster, zone: &Zone) -> Outcome {
    if query.flags.opcode() != 0 {
        return Outcome::Reply(reply_to(query, wire::RCODE_NOTIMP));
    }
    let [question] = query.questions.as_slice() else {
        return Outcome::Reply(reply_to(query, wire::RCODE_FORMERR));
    };
    if let Some(rest) = question.name.strip_suffix(&zone.domain) {
        let Some(labels) = lowercase(rest) else {
            return Outcome::Reply(negative(query, zone, wire::RCODE_NXDOMAIN));
        };
        return in_zone(query, &labels, question.qtype, cluster, zone);
    }
    if question.qtype == wire::TYPE_PTR
        && let Some(ip) = reverse_ip(&question.name)
        && let Some(target) = ptr_target(cluster, zone, ip)
    {
        let mut reply = reply_to(query, wire::RCODE_NOERROR);
        reply.flags = reply.flags.with_aa(true);
        reply.answers.push(Record::new(question.name.clone(), zone.ttl, RData::Ptr(target)));
        return Outcome::Reply(reply);
    }
    Outcome::Forward
}

/// The labels as lowercase text, nearest the zone first.
fn lowercase(labels: &[Vec<u8>]) -> Option<Vec<String>> {
    labels.iter().rev().map(|l| String::from_utf8(l.to_ascii_lowercase()).ok()).collect()
}

fn soa(zone: &Zone) -> Record {
    let mname = zone.domain.prepend(&[b"ns", b"dns"]).unwrap_or_else(|| zone.domain.clone());
    let rname = zone.domain.prepend(&[b"hostmaster"]).unwrap_or_else(|| zone.domain.clone());
    let data =
        RData::Soa { mname, rname, serial: zone.serial, refresh: 7200, retry: 1800, expire: 86400, minimum: zone.ttl };
    Record::new(zone.domain.clone(), zone.ttl, data)
}

/// NXDOMAIN or NODATA: the zone's SOA in authority, for negative caching.
fn negative(query: &Message, zone: &Zone, rcode: u8) -> Message {
    let mut reply = reply_to(query, rcode);
    reply.flags = reply.flags.with_aa(true);
    reply.authorities.push(soa(zone));
    reply
}

fn nodata(query: &Message, zone: &Zone) -> Outcome {
    Outcome::Reply(negative(query, zone, wire::RCODE_NOERROR))
}

fn nxdomain(query: &Message, zone: &Zone) -> Outcome {
    Outcome::Reply(negative(query, zone, wire::RCODE_NXDOMAIN))
}

fn in_zone(query: &Message, labels: &[String], qtype: u16, cluster: &Cluster, zone: &Zone) -> Outcome {
    let qname = &query.questions[0].name;
    let ns_name = || zone.domain.prepend(&[b"ns", b"dns"]);
    match labels.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => {
            let mut reply = reply_to(query, wire::RCODE_NOERROR);
            reply.flags = reply.flags.with_aa(true);
            if matches!(qtype, wire::TYPE_SOA | wire::TYPE_ANY) {
                reply.answers.push(soa(zone));
            }
            if matches!(qtype, wire::TYPE_NS | wire::TYPE_ANY)
                && let Some(ns) = ns_name()
            {
                reply.answers.push(Record::new(qname.clone(), zone.ttl, RData::Ns(ns.clone())));
                reply.additionals.extend(glue(zone, &ns));
            }
            if reply.answers.is_empty() {
                return nodata(query, zone);
            }
            Outcome::Reply(reply)
        }
        ["dns"] | ["svc"] | ["pod"] | ["pod", _] => nodata(query, zone),
        // The Kubernetes DNS specification's schema version record.
        ["dns-version"] if matches!(qtype, wire::TYPE_TXT | wire::TYPE_ANY) => {
            let mut reply = reply_to(query, wire::RCODE_NOERROR);
            reply.flags = reply.flags.with_aa(true);
            reply.answers.push(Record::new(qname.clone(), zone.ttl, RData::Raw(b"\x051.1.0".to_vec())));
            Outcome::Reply(reply)
        }
        ["dns-version"] => nodata(query, zone),
        ["dns", "ns"] => {
            let records: Vec<Record> = glue(zone, qname).into_iter().filter(|r| r.rtype == qtype).collect();
            if records.is_empty() {
                return nodata(query, zone);
            }
            let mut reply = reply_to(query, wire::RCODE_NOERROR);
            reply.flags = reply.flags.with_aa(true);
            reply.answers = records;
            Outcome::Reply(reply)
        }
        ["svc", ns] => {
            if cluster.has_namespace(ns) {
                nodata(query, zone)
            } else {
                nxdomain(query, zone)
            }
        }
        ["svc", ns, svc] => service(query, cluster, zone, Request { ns, svc, endpoint: None, port: "", proto: "" }),
        ["svc", ns, svc, endpoint] => {
            service(query, cluster, zone, Request { ns, svc, endpoint: Some(endpoint), port: "", proto: "" })
        }
        ["svc", ns, svc, proto, port] => match (proto.strip_prefix('_'), port.strip_prefix('_')) {
            (Some(proto), Some(port)) => {
                service(query, cluster, zone, Request { ns, svc, endpoint: None, port, proto })
            }
            _ => nxdomain(query, zone),
        },
        ["pod", _ns, ip] => match dashed_ip(ip) {
            Some(ip) => addresses(query, zone, qtype, &[ip]),
            None => nxdomain(query, zone),
        },
        _ => nxdomain(query, zone),
    }
}

fn glue(zone: &Zone, owner: &Name) -> Option<Record> {
    Some(Record::new(owner.clone(), zone.ttl, ip_data(zone.dns_ip?)))
}

fn ip_data(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(v4),
        IpAddr::V6(v6) => RData::Aaaa(v6),
    }
}

fn wants(qtype: u16, ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => matches!(qtype, wire::TYPE_A | wire::TYPE_ANY),
        IpAddr::V6(_) => matches!(qtype, wire::TYPE_AAAA | wire::TYPE_ANY),
    }
}

/// A or AAAA records for `ips` owned by the question's name; NODATA when none is of
/// the asked type.
fn addresses(query: &Message, zone: &Zone, qtype: u16, ips: &[IpAddr]) -> Outcome {
    let qname = &query.questions[0].name;
    let mut reply = reply_to(query, wire::RCODE_NOERROR);
    reply.flags = reply.flags.with_aa(true);
    let mut seen = HashSet::new();
    for ip in ips.iter().filter(|ip| wants(qtype, ip)) {
        if seen.insert(*ip) {
            reply.answers.push(Record::new(qname.clone(), zone.ttl, ip_data(*ip)));
        }
    }
    if reply.answers.is_empty() {
        return nodata(query, zone);
    }
    Outcome::Reply(reply)
}

struct Request<'a> {
    ns: &'a str,
    svc: &'a str,
    endpoint: Option<&'a str>,
    port: &'a str,
    proto: &'a str,
}

/// One address a name resolves to, with the port it serves and the name its own
/// records are owned by (SRV targets).
struct Item {
    ip: IpAddr,
    port: Option<u16>,
    host: Name,
}

/// CoreDNS's wildcard rules: an empty, `*` or `any` side matches everything.
fn matches_label(query: &str, value: &str) -> bool {
    matches!(query, "" | "*" | "any") || query == value
}

fn port_matches(req: &Request<'_>, port: &Port) -> bool {
    matches_label(req.port, &port.name) && matches_label(req.proto, &port.protocol)
}

/// `10.42.0.5` → `10-42-0-5`; IPv6 with `:` turned into `-` (CoreDNS's
/// endpoint names for endpoints without a hostname).
fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn dashed_ip(label: &str) -> Option<IpAddr> {
    if label.contains(':') || label.contains('.') {
        return None;
    }
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn endpoint_label(endpoint: &Endpoint, ip: &IpAddr) -> String {
    endpoint.hostname.clone().unwrap_or_else(|| dashed(ip))
}

/// What a service name resolves to; empty means the name does not exist.
fn items(cluster: &Cluster, req: &Request<'_>, entry: &ServiceEntry, svc_name: &Name) -> Vec<Item> {
    let mut out = Vec::new();
    if let ServiceKind::ClusterIp(ips) = &entry.kind
        && req.endpoint.is_none()
    {
        for port in entry.ports.iter().filter(|p| port_matches(req, p)) {
            out.extend(ips.iter().map(|ip| Item { ip: *ip, port: Some(port.port), host: svc_name.clone() }));
        }
        return out;
    }
    for slice in cluster.slices(req.ns, req.svc) {
        // A slice without ports still names its endpoints (CoreDNS adds a
        // sentinel port for this), but has nothing for SRV.
        let ports: Vec<Option<&Port>> =
            if slice.ports.is_empty() { vec![None] } else { slice.ports.iter().map(Some).collect() };
        for endpoint in slice.endpoints.iter().filter(|e| e.ready) {
            for ip in &endpoint.addresses {
                let label = endpoint_label(endpoint, ip);
                if req.endpoint.is_some_and(|want| want != label) {
                    continue;
                }
                let Some(host) = svc_name.prepend(&[label.as_bytes()]) else { continue };
                for port in &ports {
                    match port {
                        None if req.port.is_empty() && req.proto.is_empty() => {
                            out.push(Item { ip: *ip, port: None, host: host.clone() });
                        }
                        Some(p) if port_matches(req, p) => {
                            out.push(Item { ip: *ip, port: Some(p.port), host: host.clone() })
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

fn service(query: &Message, cluster: &Cluster, zone: &Zone, req: Request<'_>) -> Outcome {
    let question = &query.questions[0];
    let qtype = question.qtype;
    let Some(entry) = cluster.service(req.ns, req.svc) else { return nxdomain(query, zone) };
    let Some(svc_name) = zone.domain.prepend(&[req.svc.as_bytes(), req.ns.as_bytes(), b"svc"]) else {
        return nxdomain(query, zone);
    };
    if let ServiceKind::ExternalName(target) = &entry.kind {
        return external_name(query, cluster, zone, target, req.endpoint.is_some() || !req.port.is_empty());
    }
    let items = items(cluster, &req, entry, &svc_name);
    if items.is_empty() {
        return nxdomain(query, zone);
    }
    if qtype != wire::TYPE_SRV {
        let ips: Vec<IpAddr> = items.iter().map(|i| i.ip).collect();
        return addresses(query, zone, qtype, &ips);
    }
    let mut reply = reply_to(query, wire::RCODE_NOERROR);
    reply.flags = reply.flags.with_aa(true);
    // One SRV record per (target, port), however many addresses the target has.
    let mut targets: Vec<(&Name, u16)> = Vec::new();
    for item in &items {
        if let Some(port) = item.port
            && !targets.contains(&(&item.host, port))
        {
            targets.push((&item.host, port));
        }
    }
    // CoreDNS spreads a weight of 100 over the records of one priority.
    let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(0);
    for (target, port) in targets {
        let data = RData::Srv { priority: 0, weight, port, target: target.clone() };
        reply.answers.push(Record::new(question.name.clone(), zone.ttl, data));
    }
    let mut seen = HashSet::new();
    for item in items.iter().filter(|i| i.port.is_some()) {
        if seen.insert((item.host.to_string(), item.ip)) {
            reply.additionals.push(Record::new(item.host.clone(), zone.ttl, ip_data(item.ip)));
        }
    }
    if reply.answers.is_empty() {
        return nodata(query, zone);
    }
    // The OPT record goes last, after the addresses.
    reply.additionals.sort_by_key(|r| r.rtype == wire::TYPE_OPT);
    Outcome::Reply(reply)
}

fn external_name(query: &Message, cluster: &Cluster, zone: &Zone, target: &str, sub: bool) -> Outcome {
    let question = &query.questions[0];
    // Only the Service name itself is an alias; names below it do not exist.
    let Some(target_name) = Name::parse(target).filter(|n| !sub && !n.labels().is_empty()) else {
        return nxdomain(query, zone);
    };
    let mut reply = reply_to(query, wire::RCODE_NOERROR);
    reply.flags = reply.flags.with_aa(true);
    reply.answers.push(Record::new(question.name.clone(), zone.ttl, RData::Cname(target_name.clone())));
    if question.qtype == wire::TYPE_CNAME {
        return Outcome::Reply(reply);
    }
    if target_name.strip_suffix(&zone.domain).is_some() {
        // A target inside the zone is answered here, once (no alias chains).
        let inner = Message::query(query.id, target_name, question.qtype);
        if let Outcome::Reply(r) = respond(&inner, cluster, zone) {
            reply.answers.extend(r.answers.into_iter().filter(|a| a.rtype != wire::TYPE_CNAME));
        }
        return Outcome::Reply(reply);
    }
    Outcome::Chase { reply, target: target_name, qtype: question.qtype }
}

/// The address a reverse name spells, if it is a complete one.
pub fn reverse_ip(name: &Name) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(&Name::parse("in-addr.arpa")?) {
        let [d, c, b, a] = rest else { return None };
        let octet = |l: &Vec<u8>| std::str::from_utf8(l).ok()?.parse::<u8>().ok();
        return Some(IpAddr::V4(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?)));
    }
    let rest = name.strip_suffix(&Name::parse("ip6.arpa")?)?;
    if rest.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, label) in rest.iter().rev().enumerate() {
        let [digit] = label.as_slice() else { return None };
        let nibble = (*digit as char).to_digit(16)? as u8;
        octets[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
    }
    Some(IpAddr::V6(Ipv6Addr::from(octets)))
}

/// The cluster name of an address: a Service's, for a ClusterIP; an endpoint's,
/// for an endpoint address.
fn ptr_target(cluster: &Cluster, zone: &Zone, ip: IpAddr) -> Option<Name> {
    let mut found = None;
    for ((ns, name), entry) in cluster.services() {
        let svc_name = || zone.domain.prepend(&[name.as_bytes(), ns.as_bytes(), b"svc"]);
        if let ServiceKind::ClusterIp(ips) = &entry.kind
            && ips.contains(&ip)
        {
            return svc_name();
        }
        if found.is_none() {
            for endpoint in cluster.slices(ns, name).flat_map(|s| &s.endpoints) {
                if endpoint.addresses.contains(&ip) {
                    found = svc_name().and_then(|n| n.prepend(&[endpoint_label(endpoint, &ip).as_bytes()]));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{ServiceEntry, Slice};
    use crate::wire::*;

    fn zone() -> Zone {
        let mut z = Zone::new("cluster.local").unwrap();
        z.dns_ip = Some("10.43.0.10".parse().unwrap());
        z
    }

    fn port(name: &str, protocol: &str, port: u16) -> Port {
        Port { name: name.into(), protocol: protocol.into(), port }
    }

    fn key(ns: &str, name: &str) -> (String, String) {
        (ns.into(), name.into())
    }

    fn ep(ip: &str, ready: bool, hostname: Option<&str>) -> Endpoint {
        Endpoint { addresses: vec![ip.parse().unwrap()], ready, hostname: hostname.map(Into::into) }
    }

    fn cluster() -> Cluster {
        let mut c = Cluster::default();
        c.put_service(
            key("default", "web"),
            ServiceEntry {
                kind: ServiceKind::ClusterIp(vec!["10.43.0.7".parse().unwrap(), "fd00:43::7".parse().unwrap()]),
                ports: vec![port("http", "tcp", 80), port("", "udp", 53)],
            },
        );
        c.put_service(
            key("default", "db"),
            ServiceEntry { kind: ServiceKind::Headless, ports: vec![port("pg", "tcp", 5432)] },
        );
        c.put_slice(
            key("default", "db-1"),
            Some("db".into()),
            Slice {
                endpoints: vec![
                    ep("10.42.1.5", true, Some("db-0")),
                    ep("10.42.2.6", true, None),
                    ep("10.42.2.7", false, Some("db-2")),
                ],
                ports: vec![port("pg", "tcp", 5432)],
            },
        );
        c.put_service(key("default", "empty"), ServiceEntry { kind: ServiceKind::Headless, ports: vec![] });
        c.put_service(
            key("default", "ext"),
            ServiceEntry { kind: ServiceKind::ExternalName("example.com".into()), ports: vec![] },
        );
        c.put_service(
            key("default", "alias"),
            ServiceEntry { kind: ServiceKind::ExternalName("web.default.svc.cluster.local".into()), ports: vec![] },
        );
        c
    }

    fn ask(name: &str, qtype: u16) -> Outcome {
        let q = Message::query(7, Name::parse(name).unwrap(), qtype);
        respond(&q, &cluster(), &zone())
    }

    fn reply(name: &str, qtype: u16) -> Message {
        match ask(name, qtype) {
            Outcome::Reply(m) => m,
            other => panic!("{name}: expected a reply, got {other:?}"),
        }
    }

    fn a(ip: &str) -> RData {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v) => RData::A(v),
            IpAddr::V6(v) => RData::Aaaa(v),
        }
    }

    fn data(m: &Message) -> Vec<RData> {
        m.answers.iter().map(|r| r.data.clone()).collect()
    }

    fn assert_nxdomain(name: &str, qtype: u16) {
        let m = reply(name, qtype);
        assert_eq!(m.flags.rcode(), RCODE_NXDOMAIN, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].rtype, TYPE_SOA, "{name}: SOA in authority");
    }

    fn assert_nodata(name: &str, qtype: u16) {
        let m = reply(name, qtype);
        assert_eq!(m.flags.rcode(), RCODE_NOERROR, "{name}");
        assert!(m.answers.is_empty(), "{name}: {:?}", m.answers);
        assert_eq!(m.authorities[0].rtype, TYPE_SOA, "{name}: SOA in authority");
        assert_eq!(m.authorities[0].ttl, 5);
    }

    #[test]
    fn cluster_ip_service_answers_a_and_aaaa() {
        let m = reply("web.default.svc.cluster.local", TYPE_A);
        assert!(m.flags.aa() && m.flags.qr() && m.flags.ra());
        assert_eq!(data(&m), vec![a("10.43.0.7")]);
        assert_eq!(m.answers[0].ttl, 5);
        let m = reply("WEB.default.svc.cluster.local.", TYPE_AAAA);
        assert_eq!(data(&m), vec![a("fd00:43::7")]);
        assert_eq!(m.answers[0].name.to_string(), "WEB.default.svc.cluster.local.");
    }

    #[test]
    fn srv_for_named_ports_targets_the_service() {
        let m = reply("_http._tcp.web.default.svc.cluster.local", TYPE_SRV);
        let target = Name::parse("web.default.svc.cluster.local").unwrap();
        assert_eq!(data(&m), vec![RData::Srv { priority: 0, weight: 100, port: 80, target: target.clone() }]);
        assert_eq!(m.additionals.len(), 2, "A and AAAA for the target");
        assert_nxdomain("_https._tcp.web.default.svc.cluster.local", TYPE_SRV);
        assert_nxdomain("_http._udp.web.default.svc.cluster.local", TYPE_SRV);
        // Without port and protocol: every port, weights shared.
        let m = reply("web.default.svc.cluster.local", TYPE_SRV);
        let ports: Vec<u16> = m
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::Srv { port, weight, .. } => {
                    assert_eq!(*weight, 50);
                    *port
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ports, vec![80, 53]);
    }

    #[test]
    fn headless_service_answers_ready_endpoints() {
        let m = reply("db.default.svc.cluster.local", TYPE_A);
        assert_eq!(data(&m), vec![a("10.42.1.5"), a("10.42.2.6")]);
        let m = reply("db-0.db.default.svc.cluster.local", TYPE_A);
        assert_eq!(data(&m), vec![a("10.42.1.5")]);
        let m = reply("10-42-2-6.db.default.svc.cluster.local", TYPE_A);
        assert_eq!(data(&m), vec![a("10.42.2.6")]);
        // Not ready: not there.
        assert_nxdomain("db-2.db.default.svc.cluster.local", TYPE_A);
        let m = reply("_pg._tcp.db.default.svc.cluster.local", TYPE_SRV);
        let targets: Vec<String> = m
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::Srv { target, port: 5432, .. } => target.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(targets, vec!["db-0.db.default.svc.cluster.local.", "10-42-2-6.db.default.svc.cluster.local."]);
        assert_eq!(m.additionals.len(), 2);
        // Exists, but only IPv4 endpoints.
        assert_nodata("db.default.svc.cluster.local", TYPE_AAAA);
    }

    #[test]
    fn headless_service_without_endpoints_does_not_exist() {
        // As CoreDNS: no endpoint records means NXDOMAIN, not NODATA.
        assert_nxdomain("empty.default.svc.cluster.local", TYPE_A);
    }

    #[test]
    fn external_name_is_a_cname_chased_upstream() {
        let q = Message::query(7, Name::parse("ext.default.svc.cluster.local").unwrap(), TYPE_A);
        match respond(&q, &cluster(), &zone()) {
            Outcome::Chase { reply, target, qtype } => {
                assert_eq!(target, Name::parse("example.com").unwrap());
                assert_eq!(qtype, TYPE_A);
                assert_eq!(data(&reply), vec![RData::Cname(target)]);
            }
            other => panic!("{other:?}"),
        }
        let m = reply("ext.default.svc.cluster.local", TYPE_CNAME);
        assert_eq!(data(&m), vec![RData::Cname(Name::parse("example.com").unwrap())]);
        // A target inside the zone is answered in the same reply.
        let m = reply("alias.default.svc.cluster.local", TYPE_A);
        assert_eq!(data(&m), vec![RData::Cname(Name::parse("web.default.svc.cluster.local").unwrap()), a("10.43.0.7")]);
    }

    #[test]
    fn pod_records_spell_their_address() {
        assert_eq!(data(&reply("10-42-0-5.default.pod.cluster.local", TYPE_A)), vec![a("10.42.0.5")]);
        assert_eq!(data(&reply("fd00--5.default.pod.cluster.local", TYPE_AAAA)), vec![a("fd00::5")]);
        assert_nodata("10-42-0-5.default.pod.cluster.local", TYPE_AAAA);
        assert_nxdomain("not-an-ip.default.pod.cluster.local", TYPE_A);
    }

    #[test]
    fn nxdomain_and_nodata_as_coredns() {
        assert_nxdomain("nope.default.svc.cluster.local", TYPE_A);
        assert_nxdomain("web.other.svc.cluster.local", TYPE_A);
        // Search-path expansions of outside names end here, quickly.
        assert_nxdomain("example.com.default.svc.cluster.local", TYPE_A);
        assert_nxdomain("foo.cluster.local", TYPE_A);
        assert_nodata("svc.cluster.local", TYPE_A);
        assert_nodata("default.svc.cluster.local", TYPE_A);
        assert_nxdomain("nons.svc.cluster.local", TYPE_A);
        assert_nodata("web.default.svc.cluster.local", TYPE_TXT);
        assert_nodata("cluster.local", TYPE_A);
        assert_nodata("dns-version.cluster.local", TYPE_A);
    }

    #[test]
    fn dns_version_is_the_specs_schema_version() {
        let m = reply("dns-version.cluster.local", TYPE_TXT);
        assert_eq!((m.answers[0].rtype, &m.answers[0].data), (TYPE_TXT, &RData::Raw(b"\x051.1.0".to_vec())));
    }

    #[test]
    fn apex_answers_soa_and_ns_with_glue() {
        let m = reply("cluster.local", TYPE_SOA);
        assert_eq!(m.answers[0].rtype, TYPE_SOA);
        let m = reply("cluster.local", TYPE_NS);
        assert_eq!(data(&m), vec![RData::Ns(Name::parse("ns.dns.cluster.local").unwrap())]);
        assert_eq!(m.additionals[0].data, a("10.43.0.10"));
        assert_eq!(data(&reply("ns.dns.cluster.local", TYPE_A)), vec![a("10.43.0.10")]);
    }

    #[test]
    fn ptr_for_service_ips_and_endpoints_others_forwarded() {
        let m = reply("7.0.43.10.in-addr.arpa", TYPE_PTR);
        assert_eq!(data(&m), vec![RData::Ptr(Name::parse("web.default.svc.cluster.local").unwrap())]);
        let m = reply("5.1.42.10.in-addr.arpa", TYPE_PTR);
        assert_eq!(data(&m), vec![RData::Ptr(Name::parse("db-0.db.default.svc.cluster.local").unwrap())]);
        let v6 = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa";
        let m = reply(v6, TYPE_PTR);
        assert_eq!(data(&m), vec![RData::Ptr(Name::parse("web.default.svc.cluster.local").unwrap())]);
        assert_eq!(ask("1.1.168.192.in-addr.arpa", TYPE_PTR), Outcome::Forward);
        assert_eq!(ask("example.com", TYPE_A), Outcome::Forward);
    }

    #[test]
    fn edns_is_echoed_and_bad_queries_refused() {
        let mut q = Message::query(9, Name::parse("web.default.svc.cluster.local").unwrap(), TYPE_A);
        q.additionals.push(Record::opt(4096));
        let Outcome::Reply(m) = respond(&q, &cluster(), &zone()) else { panic!() };
        assert_eq!(m.edns().map(|o| o.class), Some(EDNS_UDP_SIZE));
        assert_eq!(m.id, 9);

        let mut two = q.clone();
        two.questions.push(two.questions[0].clone());
        let Outcome::Reply(m) = respond(&two, &cluster(), &zone()) else { panic!() };
        assert_eq!(m.flags.rcode(), RCODE_FORMERR);

        let mut notify = q.clone();
        notify.flags = Flags(4 << 11);
        let Outcome::Reply(m) = respond(&notify, &cluster(), &zone()) else { panic!() };
        assert_eq!(m.flags.rcode(), RCODE_NOTIMP);
    }
}
