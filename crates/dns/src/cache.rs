//! What the DNS server knows of the cluster: a compact copy of each Service and
//! EndpointSlice, only the fields an answer needs, indexed for the lookups queries
//! make. It is fed by the watchers in `watch` and read by [`crate::answer`].

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Lowercase, as SRV labels are compared; empty for an unnamed port.
    pub name: String,
    /// Lowercase: `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP per family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: names resolve to the ready endpoints.
    Headless,
    /// A CNAME to this name.
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<IpAddr>,
    pub ready: bool,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Port>,
}

/// `(namespace, name)`, both lowercase (object names are already).
pub type Key = (String, String);

#[derive(Debug, Default)]
pub struct Cluster {
    services: HashMap<Key, ServiceEntry>,
    /// Service key → slice name → slice.
    slices: HashMap<Key, BTreeMap<String, Slice>>,
    /// Slice key → the Service it belongs to, so a deleted slice is found.
    slice_owner: HashMap<Key, Key>,
    namespaces: HashMap<String, usize>,
}

impl Cluster {
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_string(), name.to_string()))
    }

    /// Every slice of a Service (any order of slices, stable within one).
    pub fn slices(&self, namespace: &str, name: &str) -> impl Iterator<Item = &Slice> {
        self.slices.get(&(namespace.to_string(), name.to_string())).into_iter().flat_map(|m| m.values())
    }

    /// Whether any Service lives in the namespace: stands in for "the namespace
    /// exists" when telling NXDOMAIN from NODATA for `<ns>.svc.<zone>`.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|&n| n > 0)
    }

    pub fn services(&self) -> impl Iterator<Item = (&Key, &ServiceEntry)> {
        self.services.iter()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn put_service(&mut self, key: Key, entry: ServiceEntry) {
        if self.services.insert(key.clone(), entry).is_none() {
            *self.namespaces.entry(key.0).or_default() += 1;
        }
    }

    pub fn remove_service(&mut self, key: &Key) {
        if self.services.remove(key).is_some()
            && let Some(n) = self.namespaces.get_mut(&key.0)
        {
            *n -= 1;
            if *n == 0 {
                self.namespaces.remove(&key.0);
            }
        }
    }

    /// Stores a slice under its Service; a slice without the service-name label is
    /// not part of any Service and is dropped.
    pub fn put_slice(&mut self, slice_key: Key, service: Option<String>, slice: Slice) {
        self.remove_slice(&slice_key);
        let Some(service) = service else { return };
        let owner = (slice_key.0.clone(), service);
        self.slices.entry(owner.clone()).or_default().insert(slice_key.1.clone(), slice);
        self.slice_owner.insert(slice_key, owner);
    }

    pub fn remove_slice(&mut self, slice_key: &Key) {
        if let Some(owner) = self.slice_owner.remove(slice_key)
            && let Some(map) = self.slices.get_mut(&owner)
        {
            map.remove(&slice_key.1);
            if map.is_empty() {
                self.slices.remove(&owner);
            }
        }
    }

    pub fn service_keys(&self) -> Vec<Key> {
        self.services.keys().cloned().collect()
    }

    pub fn slice_keys(&self) -> Vec<Key> {
        self.slice_owner.keys().cloned().collect()
    }
}

/// The kinds the cache is filled from, for telling when both are listed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Service = 1,
    EndpointSlice = 2,
}

/// The cache shared by the watchers (writers) and the server (readers).
#[derive(Debug, Default)]
pub struct Shared {
    cluster: RwLock<Cluster>,
    /// A bit per [`Kind`] that has completed its first list.
    synced: AtomicU8,
}

impl Shared {
    pub fn read(&self) -> RwLockReadGuard<'_, Cluster> {
        // A writer that panicked leaves whole entries behind: keep serving them.
        self.cluster.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Cluster> {
        self.cluster.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mark_synced(&self, kind: Kind) {
        self.synced.fetch_or(kind as u8, Ordering::Release);
    }

    /// Whether Services and EndpointSlices have both been listed once: before
    /// that, "no such name" could be a lie.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) == Kind::Service as u8 | Kind::EndpointSlice as u8
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn ports_of<'a>(ports: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, Option<i32>)>) -> Vec<Port> {
    ports
        .filter_map(|(name, protocol, port)| {
            Some(Port {
                name: name.unwrap_or("").to_ascii_lowercase(),
                protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(port?).ok()?,
            })
        })
        .collect()
}

/// The compact form of a Service.
pub fn service_entry(svc: &Service) -> ServiceEntry {
    let spec = svc.spec.clone().unwrap_or_default();
    let ports = ports_of(spec.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), Some(p.port))));
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.unwrap_or_default())
    } else {
        let ips: Vec<String> = match spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.into_iter().collect(),
        };
        if ips.iter().any(|ip| ip == "None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(ips.iter().filter_map(|s| parse_ip(s)).collect())
        }
    };
    ServiceEntry { kind, ports }
}

/// The compact form of an EndpointSlice and the Service it belongs to.
pub fn slice_entry(slice: &EndpointSlice) -> (Option<String>, Slice) {
    let service = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned();
    // FQDN slices carry names, not addresses: nothing to answer with.
    let fqdn = slice.address_type == "FQDN";
    let endpoints = slice
        .endpoints
        .iter()
        .filter(|_| !fqdn)
        .map(|e| Endpoint {
            addresses: e.addresses.iter().filter_map(|a| parse_ip(a)).collect(),
            // An unset condition means ready (discovery.k8s.io/v1 documents it so).
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            hostname: e.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        })
        .collect();
    let ports = ports_of(slice.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), p.port)));
    (service, Slice { endpoints, ports })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_cluster_ip_headless_and_external_name_services() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7", "fd00::7"],
                     "ports": [{"name": "HTTP", "port": 80}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let e = service_entry(&svc);
        assert_eq!(e.kind, ServiceKind::ClusterIp(vec!["10.43.0.7".parse().unwrap(), "fd00::7".parse().unwrap()]));
        assert_eq!(e.ports[0], Port { name: "http".into(), protocol: "tcp".into(), port: 80 });
        assert_eq!(e.ports[1], Port { name: "".into(), protocol: "udp".into(), port: 53 });

        let headless: Service =
            serde_json::from_value(json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}})).unwrap();
        assert_eq!(service_entry(&headless).kind, ServiceKind::Headless);
        let ext: Service =
            serde_json::from_value(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})).unwrap();
        assert_eq!(service_entry(&ext).kind, ServiceKind::ExternalName("example.com".into()));
    }

    #[test]
    fn reads_slices_with_unset_readiness_as_ready() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.42.0.5"], "hostname": "Web-0"},
                {"addresses": ["10.42.0.6"], "conditions": {"ready": false}}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let (svc, s) = slice_entry(&slice);
        assert_eq!(svc.as_deref(), Some("web"));
        assert!(s.endpoints[0].ready);
        assert_eq!(s.endpoints[0].hostname.as_deref(), Some("web-0"));
        assert!(!s.endpoints[1].ready);
        assert_eq!(s.ports[0].port, 8080);
    }

    #[test]
    fn slices_follow_their_service_and_namespaces_count_services() {
        let mut c = Cluster::default();
        let key = ("default".to_string(), "web".to_string());
        c.put_service(key.clone(), ServiceEntry { kind: ServiceKind::Headless, ports: vec![] });
        c.put_service(key.clone(), ServiceEntry { kind: ServiceKind::Headless, ports: vec![] });
        assert!(c.has_namespace("default"));
        let slice_key = ("default".to_string(), "web-abc".to_string());
        let slice = Slice { endpoints: vec![], ports: vec![] };
        c.put_slice(slice_key.clone(), Some("web".into()), slice.clone());
        assert_eq!(c.slices("default", "web").count(), 1);
        // Relabelled to another service: moves.
        c.put_slice(slice_key.clone(), Some("other".into()), slice);
        assert_eq!(c.slices("default", "web").count(), 0);
        assert_eq!(c.slices("default", "other").count(), 1);
        c.remove_slice(&slice_key);
        assert_eq!(c.slices("default", "other").count(), 0);
        c.remove_service(&key);
        assert!(!c.has_namespace("default"));
    }
}
