//! Services, Endpoints and EndpointSlices (`pkg/apis/core/validation` and
//! `pkg/apis/discovery/validation`), plus the NodePort range check of the allocator.

use super::field::{self, Bad, Path, arr, get, int_of, obj, opt_str, str_of, sub};
use super::meta::{self, FIELD_IMMUTABLE};
use super::names::{self, NameRule};
use super::net;
use crate::status::Cause;
use serde_json::Value;
use std::collections::BTreeSet;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn dns_label(value: &str, path: &Path) -> Vec<Cause> {
    names::dns1123_label(value).iter().map(|m| field::invalid(path, Bad::Str(value), m)).collect()
}

fn qualified(value: &str, path: &Path) -> Vec<Cause> {
    names::qualified_name(value).iter().map(|m| field::invalid(path, Bad::Str(value), m)).collect()
}

fn protocol(v: &Value, path: &Path) -> Vec<Cause> {
    match str_of(v, "protocol") {
        "" => vec![field::required(path, "")],
        p if !PROTOCOLS.contains(&p) => vec![field::not_supported(path, Bad::Str(p), PROTOCOLS)],
        _ => Vec::new(),
    }
}

fn cluster_ips(spec: &Value) -> Vec<&str> {
    arr(spec, "clusterIPs").iter().map(|v| v.as_str().unwrap_or_default()).collect()
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec) == ["None"]
}

/// `service.ExternallyAccessible`.
fn externally_accessible(spec: &Value) -> bool {
    let t = str_of(spec, "type");
    t == "LoadBalancer" || t == "NodePort" || (t == "ClusterIP" && !arr(spec, "externalIPs").is_empty())
}

fn needs_health_check(spec: &Value) -> bool {
    str_of(spec, "type") == "LoadBalancer" && str_of(spec, "externalTrafficPolicy") == "Local"
}

/// Go's `%#v` of the internal `core.ServicePort` used as a duplicate key.
fn go_service_port_key(port: &Value) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        field::go_quote(str_of(port, "protocol")),
        int_of(port, "port").unwrap_or(0)
    )
}

fn service_port(port: &Value, require_name: bool, names_seen: &mut BTreeSet<String>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name = str_of(port, "name");
    if require_name && name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(dns_label(name, &path.child("name")));
        if !names_seen.insert(name.to_string()) {
            errs.push(field::duplicate(&path.child("name"), Bad::Str(name)));
        }
    }
    let p = int_of(port, "port").unwrap_or(0);
    errs.extend(names::port_number(p).iter().map(|m| field::invalid(&path.child("port"), Bad::Int(p), m)));
    errs.extend(protocol(port, &path.child("protocol")));
    let tp = path.child("targetPort");
    match get(port, "targetPort") {
        Some(Value::String(s)) => errs.extend(names::port_name(s).iter().map(|m| field::invalid(&tp, Bad::Str(s), m))),
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            errs.extend(names::port_number(n).iter().map(|m| field::invalid(&tp, Bad::Int(n), m)));
        }
    }
    if let Some(ap) = opt_str(port, "appProtocol") {
        errs.extend(qualified(ap, &path.child("appProtocol")));
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ip_fields(spec: &Value) -> Vec<Cause> {
    if str_of(spec, "type") == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let ips_path = sp.child("clusterIPs");
    let ips = cluster_ips(spec);
    let ips_json = Value::Array(arr(spec, "clusterIPs").to_vec());
    let cluster_ip = str_of(spec, "clusterIP");
    if !cluster_ip.is_empty() {
        match ips.first() {
            None => errs.push(field::required(&ips_path, "")),
            Some(first) if *first != cluster_ip => {
                errs.push(field::invalid(&ips_path, Bad::Json(&ips_json), "first value must match `clusterIP`"))
            }
            _ => {}
        }
    } else if !ips.is_empty() {
        errs.push(field::invalid(&ips_path, Bad::Json(&ips_json), "must be empty when `clusterIP` is not specified"));
    }
    let mut seen = BTreeSet::new();
    for (i, fam) in arr(spec, "ipFamilies").iter().enumerate() {
        let fam = fam.as_str().unwrap_or_default();
        let fp = sp.child("ipFamilies").index(i);
        if fam != "IPv4" && fam != "IPv6" {
            errs.push(field::not_supported(&fp, Bad::Str(fam), &["IPv4", "IPv6"]));
        }
        if !seen.insert(fam) {
            errs.push(field::duplicate(&fp, Bad::Str(fam)));
        }
    }
    if let Some(policy) = opt_str(spec, "ipFamilyPolicy") {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&policy) {
            errs.push(field::not_supported(&sp.child("ipFamilyPolicy"), Bad::Str(policy), POLICIES));
        }
    }
    let mut bad_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                bad_ips = true;
                errs.push(field::invalid(&ips_path, Bad::Json(&ips_json), "'None' must be the first and only value"));
            }
            continue;
        }
        let e = net::validate_ip(&ips_path.index(i), ip);
        bad_ips |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(field::invalid(&ips_path, Bad::Json(&ips_json), "may only hold up to 2 values"));
    }
    if bad_ips {
        return errs;
    }
    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| net::is_ipv6(ip)).count();
        if v6 != 1 {
            errs.push(field::invalid(
                &ips_path,
                Bad::Json(&ips_json),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (ip, fam)) in ips.iter().zip(arr(spec, "ipFamilies")).enumerate() {
            match fam.as_str() {
                Some("IPv4") if net::is_ipv6(ip) => errs.push(field::invalid(
                    &ips_path.index(i),
                    Bad::Str(ip),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                )),
                Some("IPv6") if !net::is_ipv6(ip) => errs.push(field::invalid(
                    &ips_path.index(i),
                    Bad::Str(ip),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                )),
                _ => {}
            }
        }
    }
    errs
}

/// `ValidateService` (the NodePort range is the allocator's to enforce).
pub fn validate_service(svc: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let m = sub(svc, "metadata");
    let mut errs = meta::validate_object_meta(m, true, NameRule::Dns1035Label, &mp);
    let annotations = obj(m, "annotations");
    let hints = annotations.and_then(|a| a.get("service.kubernetes.io/topology-aware-hints")).and_then(Value::as_str);
    let mode = annotations.and_then(|a| a.get("service.kubernetes.io/topology-mode")).and_then(Value::as_str);
    if let (Some(h), Some(md)) = (hints, mode)
        && h != md
    {
        errs.push(field::invalid(
            &mp.child("annotations").key("service.kubernetes.io/topology-mode"),
            Bad::Str(md),
            "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
        ));
    }
    let spec = sub(svc, "spec");
    let sp = Path::new("spec");
    let ty = str_of(spec, "type");
    let ports = arr(spec, "ports");
    if ports.is_empty() && !is_headless(spec) && ty != "ExternalName" {
        errs.push(field::required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if is_headless(spec) => errs.push(field::invalid(
            &sp.child("clusterIPs").index(0),
            Bad::Str("None"),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                errs.push(field::forbidden(&sp.child("clusterIPs"), "may not be set for ExternalName services"));
            }
            if !arr(spec, "ipFamilies").is_empty() {
                errs.push(field::forbidden(&sp.child("ipFamilies"), "may not be set for ExternalName services"));
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                errs.push(field::forbidden(&sp.child("ipFamilyPolicy"), "may not be set for ExternalName services"));
            }
            let cname = str_of(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(field::required(&sp.child("externalName"), ""));
            } else {
                errs.extend(
                    names::dns1123_subdomain(cname)
                        .iter()
                        .map(|m| field::invalid(&sp.child("externalName"), Bad::Str(cname), m)),
                );
            }
        }
        _ => {}
    }
    let mut names_seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(service_port(port, ports.len() > 1, &mut names_seen, &sp.child("ports").index(i)));
    }
    if obj(spec, "selector").is_some() {
        errs.extend(meta::validate_labels(obj(spec, "selector"), &sp.child("selector")));
    }
    let affinity = str_of(spec, "sessionAffinity");
    let ap = sp.child("sessionAffinityConfig");
    match affinity {
        "" => errs.push(field::required(&sp.child("sessionAffinity"), "")),
        "ClientIP" => {
            let when = "when session affinity type is ClientIP";
            match get(spec, "sessionAffinityConfig") {
                None => errs.push(field::required(&ap, when)),
                Some(cfg) => match get(cfg, "clientIP") {
                    None => errs.push(field::required(&ap.child("clientIP"), when)),
                    Some(cip) => match int_of(cip, "timeoutSeconds") {
                        None => errs.push(field::required(&ap.child("clientIP").child("timeoutSeconds"), when)),
                        Some(t) if t <= 0 || t > 86400 => errs.push(field::invalid(
                            &ap.child("clientIP").child("timeoutSeconds"),
                            Bad::Int(t),
                            "must be greater than 0 and less than 86400",
                        )),
                        Some(_) => {}
                    },
                },
            }
        }
        "None" => {
            if get(spec, "sessionAffinityConfig").is_some() {
                errs.push(field::forbidden(&ap, "must not be set when session affinity is None"));
            }
        }
        other => errs.push(field::not_supported(&sp.child("sessionAffinity"), Bad::Str(other), &["ClientIP", "None"])),
    }
    errs.extend(cluster_ip_fields(spec));
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or_default();
        let p = sp.child("externalIPs").index(i);
        let e = net::validate_ip(&p, ip);
        if e.is_empty() {
            errs.extend(net::validate_non_special_ip(&p, ip));
        } else {
            errs.extend(e);
        }
    }
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    match ty {
        "" => errs.push(field::required(&sp.child("type"), "")),
        t if !TYPES.contains(&t) => errs.push(field::not_supported(&sp.child("type"), Bad::Str(t), TYPES)),
        _ => {}
    }
    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        let np = int_of(port, "nodePort").unwrap_or(0);
        if ty == "ClusterIP" && np != 0 {
            errs.push(field::forbidden(&pp.child("nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
        if np != 0 && !node_ports.insert((str_of(port, "protocol").to_string(), np)) {
            errs.push(field::duplicate(&pp.child("nodePort"), Bad::Int(np)));
        }
        if !port_keys.insert((str_of(port, "protocol").to_string(), int_of(port, "port").unwrap_or(0))) {
            errs.push(field::duplicate(&pp, Bad::Raw(go_service_port_key(port))));
        }
    }
    let ranges = arr(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let rp = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(field::forbidden(&rp, "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(net::validate_cidr(&rp.index(i), r.as_str().unwrap_or_default().trim()));
        }
    }
    if get(spec, "allocateLoadBalancerNodePorts").is_some() && ty != "LoadBalancer" {
        errs.push(field::forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && get(spec, "allocateLoadBalancerNodePorts").is_none() {
        errs.push(field::required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }
    if let Some(class) = opt_str(spec, "loadBalancerClass") {
        let cp = sp.child("loadBalancerClass");
        if ty != "LoadBalancer" {
            errs.push(field::forbidden(&cp, "may only be used when `type` is 'LoadBalancer'"));
        } else {
            errs.extend(qualified(class, &cp));
        }
    }
    let etp = str_of(spec, "externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(field::invalid(
                &sp.child("externalTrafficPolicy"),
                Bad::Str(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(field::required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(field::not_supported(&sp.child("externalTrafficPolicy"), Bad::Str(etp), &["Cluster", "Local"]));
    }
    let hc = int_of(spec, "healthCheckNodePort").unwrap_or(0);
    let hp = sp.child("healthCheckNodePort");
    if !needs_health_check(spec) {
        if hc != 0 {
            errs.push(field::invalid(
                &hp,
                Bad::Int(hc),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(field::required(&hp, ""));
    } else {
        errs.extend(names::port_number(hc).iter().map(|m| field::invalid(&hp, Bad::Int(hc), m)));
    }
    match opt_str(spec, "internalTrafficPolicy") {
        None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(field::required(&sp.child("internalTrafficPolicy"), ""));
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            errs.push(field::not_supported(&sp.child("internalTrafficPolicy"), Bad::Str(p), &["Cluster", "Local"]));
        }
        _ => {}
    }
    if let Some(td) = opt_str(spec, "trafficDistribution")
        && td != "PreferClose"
    {
        errs.push(field::not_supported(&sp.child("trafficDistribution"), Bad::Str(td), &["PreferClose"]));
    }
    errs
}

/// `ValidateServiceUpdate`: cluster IPs and families may be added or released but not
/// changed; the load balancer class and health check port are fixed.
pub fn validate_service_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let (ns, os) = (sub(new, "spec"), sub(old, "spec"));
    let ips_path = Path::new("spec.clusterIPs");
    let external = str_of(ns, "type") == "ExternalName" || str_of(os, "type") == "ExternalName";
    let both_headless = is_headless(ns) && is_headless(os);
    if !external && !both_headless {
        let (n, o) = (cluster_ips(ns), cluster_ips(os));
        let nj = Value::Array(arr(ns, "clusterIPs").to_vec());
        if n.len() == o.len() {
            for (i, ip) in o.iter().enumerate() {
                if n[i] != *ip {
                    errs.push(field::invalid(&ips_path.index(i), Bad::Json(&nj), "may not change once set"));
                }
            }
        } else if o.len() > n.len() {
            if n.is_empty() {
                errs.push(field::invalid(&ips_path.index(0), Bad::Json(&nj), "primary clusterIP can not be unset"));
            }
            if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
                errs.push(field::invalid(&ips_path.index(0), Bad::Json(&nj), "may not change once set"));
            }
            if n.len() == 1 && opt_str(ns, "ipFamilyPolicy") != Some("SingleStack") {
                errs.push(field::invalid(
                    &Path::new("spec.ipFamilyPolicy"),
                    Bad::Json(get(ns, "ipFamilyPolicy").unwrap_or(&Value::Null)),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !o.is_empty() && n[0] != o[0] {
            errs.push(field::invalid(&ips_path.index(0), Bad::Json(&nj), "may not change once set"));
        }
    }
    if !external && is_headless(ns) == is_headless(os) && !is_headless(ns) {
        let fam = |s: &Value| -> Vec<String> {
            arr(s, "ipFamilies").iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect()
        };
        let (n, o) = (fam(ns), fam(os));
        let fp = Path::new("spec.ipFamilies").index(0);
        let nj = Value::Array(arr(ns, "ipFamilies").to_vec());
        if n.len() == o.len() {
            if n != o {
                errs.push(field::invalid(&fp, Bad::Json(&nj), "may not change once set"));
            }
        } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(field::invalid(&fp, Bad::Json(&nj), "may not change once set"));
        }
    }
    if str_of(os, "type") == "LoadBalancer"
        && str_of(ns, "type") == "LoadBalancer"
        && field::differs(get(ns, "loadBalancerClass"), get(os, "loadBalancerClass"))
    {
        errs.push(field::invalid(
            &Path::new("spec.loadBalancerClass"),
            Bad::Json(get(ns, "loadBalancerClass").unwrap_or(&Value::Null)),
            "may not change once set",
        ));
    }
    if needs_health_check(os)
        && needs_health_check(ns)
        && int_of(ns, "healthCheckNodePort") != int_of(os, "healthCheckNodePort")
    {
        errs.push(field::forbidden(&Path::new("spec.healthCheckNodePort"), FIELD_IMMUTABLE));
    }
    errs.extend(validate_service(new));
    errs
}

pub fn validate_service_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let lb = Path::new("status.loadBalancer.ingress");
    for (i, ing) in arr(sub(sub(new, "status"), "loadBalancer"), "ingress").iter().enumerate() {
        let p = lb.index(i);
        if let Some(ip) = opt_str(ing, "ip") {
            errs.extend(net::validate_ip(&p.child("ip"), ip));
        }
        if let Some(host) = opt_str(ing, "hostname") {
            errs.extend(
                names::dns1123_subdomain(host).iter().map(|m| field::invalid(&p.child("hostname"), Bad::Str(host), m)),
            );
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(field::invalid(
                    &p.child("hostname"),
                    Bad::Str(host),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
        if let Some(mode) = opt_str(ing, "ipMode") {
            if get(ing, "ip").is_none() {
                errs.push(field::forbidden(&p.child("ipMode"), "may not be specified when `ip` is not set"));
            } else if mode != "Proxy" && mode != "VIP" {
                errs.push(field::not_supported(&p.child("ipMode"), Bad::Str(mode), &["Proxy", "VIP"]));
            }
        } else if get(ing, "ip").is_some() {
            errs.push(field::required(&p.child("ipMode"), "must be specified when `ip` is set"));
        }
    }
    errs
}

// ---- Endpoints

pub fn validate_endpoints(ep: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(ep, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    let sp = Path::new("subsets");
    for (i, ss) in arr(ep, "subsets").iter().enumerate() {
        let p = sp.index(i);
        if arr(ss, "addresses").is_empty() && arr(ss, "notReadyAddresses").is_empty() {
            errs.push(field::required(&p, "must specify `addresses` or `notReadyAddresses`"));
        }
        for key in ["addresses", "notReadyAddresses"] {
            for (j, addr) in arr(ss, key).iter().enumerate() {
                let ap = p.child(key).index(j);
                let ip = str_of(addr, "ip");
                errs.extend(net::validate_ip(&ap.child("ip"), ip));
                let host = str_of(addr, "hostname");
                if !host.is_empty() {
                    errs.extend(dns_label(host, &ap.child("hostname")));
                }
                if let Some(node) = opt_str(addr, "nodeName") {
                    errs.extend(
                        names::dns1123_subdomain(node)
                            .iter()
                            .map(|m| field::invalid(&ap.child("nodeName"), Bad::Str(node), m)),
                    );
                }
                errs.extend(net::validate_non_special_ip(&ap.child("ip"), ip));
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            let name = str_of(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(field::required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                errs.extend(dns_label(name, &pp.child("name")));
            }
            let n = int_of(port, "port").unwrap_or(0);
            errs.extend(names::port_number(n).iter().map(|m| field::invalid(&pp.child("port"), Bad::Int(n), m)));
            errs.extend(protocol(port, &pp.child("protocol")));
            if let Some(ap) = opt_str(port, "appProtocol") {
                errs.extend(qualified(ap, &pp.child("appProtocol")));
            }
        }
    }
    errs
}

pub fn validate_endpoints_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(validate_endpoints(new));
    errs
}

// ---- EndpointSlice

fn fqdn(path: &Path, name: &str) -> Vec<Cause> {
    if name.is_empty() {
        return vec![field::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = names::dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![field::invalid(path, Bad::Str(name), &errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![field::invalid(
            path,
            Bad::Str(name),
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let e = names::dns1123_label(label);
        if !e.is_empty() {
            return vec![field::invalid(path, Bad::Str(label), &e.join(","))];
        }
    }
    Vec::new()
}

pub fn validate_endpoint_slice(es: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(es, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    let addr_type = str_of(es, "addressType");
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    match addr_type {
        "" => errs.push(field::required(&Path::new("addressType"), "")),
        t if !TYPES.contains(&t) => errs.push(field::not_supported(&Path::new("addressType"), Bad::Str(t), TYPES)),
        _ => {}
    }
    let ep_path = Path::new("endpoints");
    let endpoints = arr(es, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(field::too_many(&ep_path, endpoints.len(), 1000));
    } else {
        for (i, ep) in endpoints.iter().enumerate() {
            let p = ep_path.index(i);
            let ap = p.child("addresses");
            let addrs = arr(ep, "addresses");
            if addrs.is_empty() {
                errs.push(field::required(&ap, "must contain at least 1 address"));
            } else if addrs.len() > 100 {
                errs.push(field::too_many(&ap, addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = a.as_str().unwrap_or_default();
                let aj = ap.index(j);
                match addr_type {
                    "IPv4" | "IPv6" => {
                        let want_v6 = addr_type == "IPv6";
                        let parsed = net::parse_ip_sloppy(a);
                        let ok = match parsed {
                            Some(std::net::IpAddr::V4(_)) => !want_v6,
                            Some(std::net::IpAddr::V6(v6)) => want_v6 || v6.to_ipv4_mapped().is_some(),
                            None => false,
                        };
                        if !ok {
                            errs.push(field::invalid(
                                &aj,
                                Bad::Str(a),
                                &format!("must be a valid {addr_type} address"),
                            ));
                        }
                        errs.extend(net::validate_non_special_ip(&aj, a));
                    }
                    "FQDN" => errs.extend(fqdn(&aj, a)),
                    _ => {}
                }
            }
            if let Some(node) = opt_str(ep, "nodeName") {
                errs.extend(
                    names::dns1123_subdomain(node)
                        .iter()
                        .map(|m| field::invalid(&p.child("nodeName"), Bad::Str(node), m)),
                );
            }
            let tp = p.child("deprecatedTopology");
            if let Some(t) = obj(ep, "deprecatedTopology")
                && t.len() > 16
            {
                errs.push(field::too_many(&tp, t.len(), 16));
            }
            errs.extend(meta::validate_labels(obj(ep, "deprecatedTopology"), &tp));
            if let Some(h) = opt_str(ep, "hostname") {
                errs.extend(dns_label(h, &p.child("hostname")));
            }
            if let Some(hints) = get(ep, "hints") {
                let zp = p.child("hints").child("forZones");
                let zones = arr(hints, "forZones");
                if zones.len() > 8 {
                    errs.push(field::too_many(&zp, zones.len(), 8));
                } else {
                    let mut seen = BTreeSet::new();
                    for (k, z) in zones.iter().enumerate() {
                        let name = str_of(z, "name");
                        let np = zp.index(k).child("name");
                        if !seen.insert(name) {
                            errs.push(field::duplicate(&np, Bad::Str(name)));
                        }
                        errs.extend(names::label_value(name).iter().map(|m| field::invalid(&np, Bad::Str(name), m)));
                    }
                }
            }
        }
    }
    let pp = Path::new("ports");
    let ports = arr(es, "ports");
    if ports.len() > 20000 {
        errs.push(field::too_many(&pp, ports.len(), 20000));
    } else {
        let mut seen = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let p = pp.index(i);
            let name = str_of(port, "name");
            if !name.is_empty() {
                errs.extend(dns_label(name, &p.child("name")));
            }
            if !seen.insert(name) {
                errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
            }
            match opt_str(port, "protocol") {
                None => errs.push(field::required(&p.child("protocol"), "")),
                Some(pr) if !PROTOCOLS.contains(&pr) => {
                    errs.push(field::not_supported(&p.child("protocol"), Bad::Str(pr), PROTOCOLS))
                }
                _ => {}
            }
            if let Some(ap) = opt_str(port, "appProtocol") {
                errs.extend(qualified(ap, &p.child("appProtocol")));
            }
        }
    }
    errs
}

pub fn validate_endpoint_slice_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(validate_endpoint_slice(new));
    if str_of(new, "addressType") != str_of(old, "addressType") {
        errs.push(field::invalid(&Path::new("addressType"), Bad::Str(str_of(new, "addressType")), FIELD_IMMUTABLE));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `kubectl expose` / `create service clusterip` output after defaulting and allocation.
    fn service() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]
            }
        })
    }

    fn find<'a>(errs: &'a [Cause], f: &str) -> Option<&'a Cause> {
        errs.iter().find(|c| c.field == f)
    }

    #[test]
    fn a_defaulted_service_is_valid() {
        assert!(validate_service(&service()).is_empty(), "{:?}", validate_service(&service()));
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        let mut s = service();
        s["metadata"]["name"] = json!("1web");
        assert!(find(&validate_service(&s), "metadata.name").unwrap().message.contains("DNS-1035 label"));
    }

    #[test]
    fn ports() {
        let mut s = service();
        s["spec"]["ports"] = json!([]);
        assert_eq!(find(&validate_service(&s), "spec.ports").unwrap().message, "Required value");
        s["spec"]["ports"] = json!([
            {"port": 80, "protocol": "TCP", "targetPort": 80},
            {"port": 0, "protocol": "HTTP", "targetPort": "Bad_Name", "name": "x"},
            {"port": 80, "protocol": "TCP", "targetPort": 80, "name": "x", "nodePort": 30001}
        ]);
        let errs = validate_service(&s);
        assert_eq!(find(&errs, "spec.ports[0].name").unwrap().message, "Required value");
        assert_eq!(
            find(&errs, "spec.ports[1].port").unwrap().message,
            "Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        assert_eq!(find(&errs, "spec.ports[1].protocol").unwrap().reason, "FieldValueNotSupported");
        assert!(find(&errs, "spec.ports[1].targetPort").is_some());
        assert_eq!(find(&errs, "spec.ports[2].name").unwrap().reason, "FieldValueDuplicate");
        assert_eq!(
            find(&errs, "spec.ports[2].nodePort").unwrap().message,
            "Forbidden: may not be used when `type` is 'ClusterIP'"
        );
        assert!(find(&errs, "spec.ports[2]").unwrap().message.starts_with("Duplicate value: core.ServicePort{"));
    }

    #[test]
    fn headless_and_external_name() {
        let mut s = service();
        s["spec"]["clusterIP"] = json!("None");
        s["spec"]["clusterIPs"] = json!(["None"]);
        s["spec"]["ports"] = json!([]);
        assert!(validate_service(&s).is_empty(), "{:?}", validate_service(&s));
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["externalTrafficPolicy"] = json!("Cluster");
        assert!(
            find(&validate_service(&s), "spec.clusterIPs[0]")
                .unwrap()
                .message
                .contains("may not be set to 'None' for NodePort services")
        );

        let ext = json!({"metadata": {"name": "db", "namespace": "d"}, "spec": {
            "type": "ExternalName", "externalName": "db.example.com.", "sessionAffinity": "None"}});
        assert!(validate_service(&ext).is_empty(), "{:?}", validate_service(&ext));
        let mut bad = ext.clone();
        bad["spec"]["externalName"] = json!("");
        bad["spec"]["clusterIPs"] = json!(["10.0.0.1"]);
        let errs = validate_service(&bad);
        assert_eq!(find(&errs, "spec.externalName").unwrap().message, "Required value");
        assert!(find(&errs, "spec.clusterIPs").is_some());
    }

    #[test]
    fn types_policies_and_node_ports() {
        let mut s = service();
        s["spec"]["type"] = json!("Magic");
        assert_eq!(
            find(&validate_service(&s), "spec.type").unwrap().message,
            "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        );
        let mut s = service();
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(80);
        let errs = validate_service(&s);
        assert_eq!(find(&errs, "spec.externalTrafficPolicy").unwrap().message, "Required value");
        // The range is the allocator's to enforce (it is a server flag).
        assert!(find(&errs, "spec.ports[0].nodePort").is_none());
        let mut s = service();
        s["spec"]["externalTrafficPolicy"] = json!("Local");
        s["spec"]["sessionAffinity"] = json!("ClientIP");
        assert!(
            find(&validate_service(&s), "spec.externalTrafficPolicy")
                .unwrap()
                .message
                .contains("externally-accessible")
        );
        assert!(find(&validate_service(&s), "spec.sessionAffinityConfig").is_some());
    }

    #[test]
    fn cluster_ips() {
        let mut s = service();
        s["spec"]["clusterIPs"] = json!(["10.43.0.11"]);
        assert!(
            find(&validate_service(&s), "spec.clusterIPs")
                .unwrap()
                .message
                .contains("first value must match `clusterIP`")
        );
        let mut s = service();
        s["spec"]["clusterIP"] = json!("10.43.0.300");
        s["spec"]["clusterIPs"] = json!(["10.43.0.300"]);
        assert!(find(&validate_service(&s), "spec.clusterIPs[0]").is_some());

        let mut old = service();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.99");
        new["spec"]["clusterIPs"] = json!(["10.43.0.99"]);
        let errs = validate_service_update(&new, &old);
        assert!(find(&errs, "spec.clusterIPs[0]").unwrap().message.ends_with("may not change once set"));
        let mut new = old.clone();
        new["spec"]["ports"][0]["port"] = json!(8080);
        assert!(validate_service_update(&new, &old).is_empty());
    }

    #[test]
    fn endpoints() {
        let ep = json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [{
            "addresses": [{"ip": "10.42.0.5", "nodeName": "n1"}],
            "ports": [{"port": 80, "protocol": "TCP"}]}]});
        assert!(validate_endpoints(&ep).is_empty(), "{:?}", validate_endpoints(&ep));
        let bad = json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [
            {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]},
            {"addresses": [{"ip": "127.0.0.1"}]}]});
        let errs = validate_endpoints(&bad);
        assert_eq!(
            find(&errs, "subsets[0]").unwrap().message,
            "Required value: must specify `addresses` or `notReadyAddresses`"
        );
        assert_eq!(find(&errs, "subsets[0].ports[0].name").unwrap().message, "Required value");
        assert!(find(&errs, "subsets[1].addresses[0].ip").unwrap().message.contains("loopback"));
    }

    #[test]
    fn endpoint_slices() {
        let es = json!({"metadata": {"name": "web-abc", "namespace": "d"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}]});
        assert!(validate_endpoint_slice(&es).is_empty(), "{:?}", validate_endpoint_slice(&es));
        let mut bad = es.clone();
        bad["addressType"] = json!("IPv5");
        bad["endpoints"] = json!([{"addresses": []}]);
        bad["ports"] = json!([{"name": "a", "protocol": "TCP"}, {"name": "a"}]);
        let errs = validate_endpoint_slice(&bad);
        assert_eq!(
            find(&errs, "addressType").unwrap().message,
            "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        );
        assert_eq!(
            find(&errs, "endpoints[0].addresses").unwrap().message,
            "Required value: must contain at least 1 address"
        );
        assert_eq!(find(&errs, "ports[1].name").unwrap().reason, "FieldValueDuplicate");
        assert_eq!(find(&errs, "ports[1].protocol").unwrap().message, "Required value");
        let mut v6 = es.clone();
        v6["endpoints"][0]["addresses"] = json!(["fd00::1"]);
        assert!(
            find(&validate_endpoint_slice(&v6), "endpoints[0].addresses[0]")
                .unwrap()
                .message
                .contains("must be a valid IPv4 address")
        );
        let mut old = es.clone();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["addressType"] = json!("IPv6");
        new["endpoints"] = json!([]);
        assert!(
            find(&validate_endpoint_slice_update(&new, &old), "addressType")
                .unwrap()
                .message
                .ends_with("field is immutable")
        );
    }
}
