//! The compact copy of Services and EndpointSlices the rules are made from: per
//! Service only what routing needs, IPv4 only (the table is `ip rudder`).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `(namespace, name)`.
pub type Key = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The IPv4 ClusterIP; `None` for headless and ExternalName Services, which
    /// the proxy leaves alone (unless they have external addresses).
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip`: reached like a NodePort.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP` and its timeout in seconds.
    pub affinity_seconds: Option<u32>,
    pub external_local: bool,
    pub internal_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<SlicePort>,
}

/// Everything the proxy knows: Services and their slices by Service.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub services: BTreeMap<Key, ServiceInfo>,
    /// Service key → slice name → slice.
    pub slices: BTreeMap<Key, BTreeMap<String, SliceInfo>>,
    slice_owner: HashMap<Key, Key>,
}

impl State {
    pub fn put_service(&mut self, key: Key, info: ServiceInfo) -> bool {
        self.services.insert(key.clone(), info.clone()) != Some(info)
    }

    pub fn remove_service(&mut self, key: &Key) -> bool {
        self.services.remove(key).is_some()
    }

    /// Stores a slice; returns the Services whose endpoints changed.
    pub fn put_slice(&mut self, slice_key: Key, service: Option<String>, slice: SliceInfo) -> Vec<Key> {
        let owner = service.map(|s| (slice_key.0.clone(), s));
        let same_owner = self.slice_owner.get(&slice_key) == owner.as_ref();
        if same_owner
            && let Some(owner) = &owner
            && self.slices.get(owner).and_then(|m| m.get(&slice_key.1)) == Some(&slice)
        {
            return Vec::new();
        }
        let mut changed = self.remove_slice(&slice_key);
        if let Some(owner) = owner {
            self.slices.entry(owner.clone()).or_default().insert(slice_key.1.clone(), slice);
            self.slice_owner.insert(slice_key, owner.clone());
            if !changed.contains(&owner) {
                changed.push(owner);
            }
        }
        changed
    }

    pub fn remove_slice(&mut self, slice_key: &Key) -> Vec<Key> {
        let Some(owner) = self.slice_owner.remove(slice_key) else { return Vec::new() };
        if let Some(map) = self.slices.get_mut(&owner) {
            map.remove(&slice_key.1);
            if map.is_empty() {
                self.slices.remove(&owner);
            }
        }
        vec![owner]
    }

    pub fn slice_keys(&self) -> Vec<Key> {
        self.slice_owner.keys().cloned().collect()
    }

    /// The endpoints serving one port of a Service (by the port's name, as
    /// EndpointSlices name them), with their target ports.
    pub fn endpoints_for(&self, key: &Key, port: &ServicePort) -> Vec<(Endpoint, u16)> {
        let mut out: Vec<(Endpoint, u16)> = Vec::new();
        for slice in self.slices.get(key).into_iter().flat_map(|m| m.values()) {
            let Some(sp) = slice.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol) else {
                continue;
            };
            for e in &slice.endpoints {
                // The same address may be in two slices while the controller moves it.
                if !out.iter().any(|(o, p)| o.ip == e.ip && *p == sp.port) {
                    out.push((e.clone(), sp.port));
                }
            }
        }
        out.sort_by_key(|(e, p)| (e.ip, *p));
        out
    }
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.trim().parse().ok()
}

/// The compact form of a Service; `None` when the proxy has nothing to do for it.
pub fn service_info(svc: &Service) -> Option<ServiceInfo> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let cluster_ip = spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()).filter_map(|s| ipv4(s)).next();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|&n| n > 0),
            })
        })
        .collect();
    let mut external_ips: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|s| ipv4(s)).collect();
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    external_ips.extend(ingress.into_iter().flatten().filter_map(|i| ipv4(i.ip.as_deref()?)));
    external_ips.sort();
    external_ips.dedup();
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|&t| t > 0);
        // Upstream's default: three hours.
        timeout.unwrap_or(10800)
    });
    let nodeport_type = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    Some(ServiceInfo {
        cluster_ip,
        ports: if nodeport_type {
            ports
        } else {
            ports.into_iter().map(|p| ServicePort { node_port: None, ..p }).collect()
        },
        external_ips,
        affinity_seconds,
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
    })
}

/// The compact form of an EndpointSlice and the Service it belongs to; IPv6 and
/// FQDN slices have nothing for an `ip` table.
pub fn slice_info(slice: &EndpointSlice) -> (Option<String>, SliceInfo) {
    let service = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned();
    if slice.address_type != "IPv4" {
        return (service, SliceInfo { endpoints: Vec::new(), ports: Vec::new() });
    }
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            // Unset conditions: ready and serving unless terminating (the API's rule).
            let terminating = c.terminating.unwrap_or(false);
            let ready = c.ready.unwrap_or(!terminating);
            Some(Endpoint {
                ip: ipv4(e.addresses.first()?)?,
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating,
                node_name: e.node_name.clone(),
            })
        })
        .collect();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    (service, SliceInfo { endpoints, ports })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_services_of_each_type() {
        let svc: Service = serde_json::from_value(json!({
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5", "clusterIPs": ["fd00::5", "10.43.0.5"],
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
                     "externalIPs": ["192.0.2.9"], "sessionAffinity": "ClientIP",
                     "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example"}]}}
        }))
        .unwrap();
        let info = service_info(&svc).unwrap();
        assert_eq!(info.cluster_ip, Some(Ipv4Addr::new(10, 43, 0, 5)));
        assert_eq!(info.ports[0].node_port, Some(30080));
        assert_eq!(info.external_ips, vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 9)]);
        assert_eq!(info.affinity_seconds, Some(10800));
        assert!(info.external_local && !info.internal_local);

        // A ClusterIP Service never opens node ports, whatever the spec says.
        let svc: Service = serde_json::from_value(json!({
            "spec": {"clusterIP": "10.43.0.6", "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}
        }))
        .unwrap();
        let info = service_info(&svc).unwrap();
        assert_eq!(info.ports[0], ServicePort { name: "".into(), protocol: Protocol::Udp, port: 53, node_port: None });
        let ext: Service = serde_json::from_value(json!({"spec": {"type": "ExternalName"}})).unwrap();
        assert!(service_info(&ext).is_none());
    }

    #[test]
    fn reads_endpoint_conditions_as_the_api_defines_them() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.42.0.1"], "nodeName": "n1"},
                {"addresses": ["10.42.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}}
            ],
            "ports": [{"name": "http", "port": 8080}]
        }))
        .unwrap();
        let (svc, info) = slice_info(&slice);
        assert_eq!(svc.as_deref(), Some("web"));
        assert!(info.endpoints[0].ready && info.endpoints[0].serving && !info.endpoints[0].terminating);
        assert!(!info.endpoints[1].ready && info.endpoints[1].serving && info.endpoints[1].terminating);
        assert_eq!(info.ports[0].port, 8080);
    }

    #[test]
    fn tracks_which_services_a_slice_change_touches() {
        let mut s = State::default();
        let slice = SliceInfo { endpoints: vec![], ports: vec![] };
        let k = ("ns".to_string(), "web-1".to_string());
        assert_eq!(s.put_slice(k.clone(), Some("web".into()), slice.clone()), vec![("ns".into(), "web".into())]);
        assert!(s.put_slice(k.clone(), Some("web".into()), slice.clone()).is_empty(), "unchanged");
        let moved = s.put_slice(k.clone(), Some("api".into()), slice);
        assert_eq!(moved, vec![("ns".into(), "web".into()), ("ns".into(), "api".into())]);
        assert_eq!(s.remove_slice(&k), vec![("ns".into(), "api".into())]);
        assert!(s.slices.is_empty());
    }
}
