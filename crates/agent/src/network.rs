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

/// A host port to forward to a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRequest {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub port_mappings: Vec<PortMapping>,
    pub host_network: bool,
}

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
}
