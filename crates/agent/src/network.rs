//! The pod network step behind a narrow trait, so the pod workers do not care
//! whether pods get a network namespace of their own (`runtime::sandbox::Sandboxes`,
//! through CNI) or share the host's ([`HostNetwork`], for tests and until the
//! sandbox lands). The shapes follow `runtime::sandbox`'s request and info.

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NetworkError {
    pub message: String,
}

/// What a pod asks of its network: the runtime's own request, so the agent and the
/// sandboxes speak one type.
pub use runtime::sandbox::{PortMapping, SandboxRequest};

/// A pod's namespaces and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub pod_uid: String,
    pub ips: Vec<IpAddr>,
    /// `None`: the host's network.
    pub net_ns: Option<PathBuf>,
    /// `None`: each container gets an IPC namespace of its own.
    pub ipc_ns: Option<PathBuf>,
    /// `None`: each container gets a UTS namespace of its own (with the pod's
    /// hostname), or the host's for hostNetwork pods.
    pub uts_ns: Option<PathBuf>,
}

#[async_trait::async_trait]
pub trait PodNetwork: Send + Sync {
    /// Creates the pod's sandbox, or returns the one that exists.
    async fn create(&self, request: &SandboxRequest) -> Result<SandboxInfo, NetworkError>;
    /// Removes it; removing what is gone succeeds.
    async fn remove(&self, pod_uid: &str) -> Result<(), NetworkError>;
    /// Whether pods not on the host network must wait for the node's pod CIDR.
    fn needs_pod_cidr(&self) -> bool;
    /// Tells the network the node's pod CIDR once it is known.
    fn set_pod_cidr(&self, _cidr: &str) {}
    /// A TCP connection to `localhost:port` as the pod sees it (port-forward).
    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream>;
    /// The pods (by uid) that have a sandbox on this node, so that a restarted agent
    /// removes those whose pod is gone.
    async fn list(&self) -> Result<Vec<String>, NetworkError> {
        Ok(Vec::new())
    }
    /// Whether other nodes' pod CIDRs must be routed to them ([`sync_routes`]).
    ///
    /// [`sync_routes`]: PodNetwork::sync_routes
    fn routes_to_nodes(&self) -> bool {
        false
    }
    /// Routes each pod CIDR to its node's address, and only those.
    async fn sync_routes(&self, _routes: &[(String, IpAddr)]) -> Result<(), NetworkError> {
        Ok(())
    }
}

/// The agent's pod network as the streaming server needs it (port-forward's way
/// into a pod).
pub struct Streaming(pub std::sync::Arc<dyn PodNetwork>);

#[async_trait::async_trait]
impl crate::server::PodNetwork for Streaming {
    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        self.0.connect(pod_uid, port).await
    }
}

/// What other nodes' pods are reached through: each node's pod CIDRs (`spec.podCIDRs`,
/// else `spec.podCIDR`) via its InternalIP, for every node but `own` that has both.
pub fn routes_from_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Node>,
    own: &str,
) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(own) {
            continue;
        }
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        let ips: Vec<IpAddr> = addresses
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let spec = node.spec.as_ref();
        let cidrs: Vec<String> = match spec.and_then(|s| s.pod_cidrs.clone()).filter(|c| !c.is_empty()) {
            Some(list) => list,
            None => spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect(),
        };
        for cidr in cidrs {
            // A route's gateway has the family of its destination.
            let v4 = !cidr.contains(':');
            if let Some(ip) = ips.iter().find(|ip| ip.is_ipv4() == v4) {
                out.push((cidr, *ip));
            }
        }
    }
    out.sort();
    out
}

/// Keeps the routes to other nodes' pods in step with the Nodes: on every change,
/// once this node has its own podCIDR (`pod_cidr`), and again every `resync` (a
/// route someone removed comes back). Runs until aborted.
pub async fn route_to_nodes(
    client: kube::Client,
    own: String,
    network: std::sync::Arc<dyn PodNetwork>,
    mut pod_cidr: tokio::sync::watch::Receiver<Option<String>>,
    resync: std::time::Duration,
) {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::Node;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event};
    use std::collections::BTreeMap;
    let api: kube::Api<Node> = kube::Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Node>> = None;
    let mut applied: Option<Vec<(String, IpAddr)>> = None;
    let mut tick = tokio::time::interval(resync);
    loop {
        let mut force = false;
        tokio::select! {
            _ = tick.tick() => force = true,
            changed = pod_cidr.changed() => {
                if changed.is_err() {
                    return;
                }
                force = true;
            }
            event = stream.next() => match event {
                None => return,
                Some(Ok(Event::Init)) => listing = Some(BTreeMap::new()),
                Some(Ok(Event::InitApply(n))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(n.metadata.name.clone().unwrap_or_default(), n);
                    }
                    continue;
                }
                Some(Ok(Event::InitDone)) => nodes = listing.take().unwrap_or_default(),
                Some(Ok(Event::Apply(n))) => {
                    nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                }
                Some(Ok(Event::Delete(n))) => {
                    nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watching nodes for routes");
                    continue;
                }
            },
        }
        // The node's network is made with its podCIDR; until then there is nowhere
        // to put routes.
        if pod_cidr.borrow().is_none() {
            continue;
        }
        let wanted = routes_from_nodes(nodes.values(), &own);
        if !force && applied.as_ref() == Some(&wanted) {
            continue;
        }
        match network.sync_routes(&wanted).await {
            Ok(()) => applied = Some(wanted),
            Err(e) => {
                tracing::warn!(error = %e, "routing other nodes' pod CIDRs");
                applied = None;
            }
        }
    }
}

/// Every pod on the host's network with the node's address: no isolation, for tests
/// and for machines without the CNI plugins.
pub struct HostNetwork {
    pub host_ip: IpAddr,
}

#[async_trait::async_trait]
impl PodNetwork for HostNetwork {
    async fn create(&self, request: &SandboxRequest) -> Result<SandboxInfo, NetworkError> {
        Ok(SandboxInfo {
            pod_uid: request.pod_uid.clone(),
            ips: vec![self.host_ip],
            net_ns: None,
            ipc_ns: None,
            uts_ns: None,
        })
    }

    async fn remove(&self, _pod_uid: &str) -> Result<(), NetworkError> {
        Ok(())
    }

    fn needs_pod_cidr(&self) -> bool {
        false
    }

    async fn connect(&self, _pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        // The pod's localhost is the node's.
        tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).await
    }
}

/// The sandbox request for a pod.
pub fn request_for(pod: &k8s_openapi::api::core::v1::Pod) -> SandboxRequest {
    let spec = pod.spec.as_ref();
    let mut ports = Vec::new();
    for c in spec.into_iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.and_then(|h| u16::try_from(h).ok()).filter(|h| *h > 0) else { continue };
            let Ok(container_port) = u16::try_from(p.container_port) else { continue };
            ports.push(PortMapping {
                host_port,
                container_port,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.as_deref().and_then(|h| h.parse().ok()),
            });
        }
    }
    SandboxRequest {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        hostname: crate::etc::hostname(pod),
        port_mappings: ports,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_carry_host_ports() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"hostname": "h", "containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "protocol": "UDP", "hostPort": 5353, "hostIP": "127.0.0.1"},
                {"containerPort": 9090}
            ]}]}
        }))
        .unwrap();
        let r = request_for(&pod);
        assert_eq!((r.pod_uid.as_str(), r.namespace.as_str(), r.hostname.as_str()), ("u1", "ns", "h"));
        assert!(!r.host_network);
        assert_eq!(r.port_mappings.len(), 2);
        assert_eq!(r.port_mappings[1].protocol, "udp");
        assert_eq!(r.port_mappings[1].host_ip, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn routes_go_to_other_nodes_internal_ips() {
        let node =
            |name: &str, spec: serde_json::Value, addresses: serde_json::Value| -> k8s_openapi::api::core::v1::Node {
                serde_json::from_value(
                    json!({"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}),
                )
                .unwrap()
            };
        let nodes = [
            node("me", json!({"podCIDR": "10.42.0.0/24"}), json!([{"type": "InternalIP", "address": "192.168.1.1"}])),
            node(
                "b",
                json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24", "fd42:1::/64"]}),
                json!([{"type": "Hostname", "address": "b"}, {"type": "InternalIP", "address": "192.168.1.2"},
                       {"type": "InternalIP", "address": "fd00::2"}]),
            ),
            // No address to route through, or no CIDR yet: nothing.
            node("c", json!({"podCIDR": "10.42.2.0/24"}), json!([{"type": "Hostname", "address": "c"}])),
            node("d", json!({}), json!([{"type": "InternalIP", "address": "192.168.1.4"}])),
            // An IPv4-only node gets no IPv6 route.
            node(
                "e",
                json!({"podCIDRs": ["10.42.3.0/24", "fd42:3::/64"]}),
                json!([{"type": "InternalIP", "address": "192.168.1.5"}]),
            ),
        ];
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            routes_from_nodes(&nodes, "me"),
            vec![
                ("10.42.1.0/24".to_string(), ip("192.168.1.2")),
                ("10.42.3.0/24".to_string(), ip("192.168.1.5")),
                ("fd42:1::/64".to_string(), ip("fd00::2")),
            ]
        );
    }
}
