//! The pod network of a real node: [`runtime::sandbox::Sandboxes`] (a network, IPC
//! and UTS namespace per pod, set up by the standard CNI plugins) behind the agent's
//! [`PodNetwork`] and the streaming server's (port-forward connects inside the pod).
//!
//! The sandboxes need the node's podCIDR, which the control plane assigns after the
//! node registers, so they are made on [`PodNetwork::set_pod_cidr`]; until then pods
//! wait (hostNetwork ones too: their IPC namespace is a sandbox's as well).

use crate::network::{NetworkError, PodNetwork, SandboxInfo, SandboxRequest};
use runtime::sandbox::{Cidr, SandboxConfig, Sandboxes};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// How this node's sandboxes are set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Per-pod state and namespace mounts, e.g. `DATA/sandboxes`.
    pub state_dir: PathBuf,
    /// The node's bridge.
    pub bridge: String,
    /// Pod traffic to it keeps its source address (the cluster's pod network).
    pub cluster_cidr: Option<String>,
    /// Where the CNI plugins are (default: Debian's `/usr/lib/cni`, then `/opt/cni/bin`).
    pub cni_bin_dirs: Option<Vec<PathBuf>>,
}

impl Settings {
    pub fn new(state_dir: PathBuf) -> Settings {
        Settings { state_dir, bridge: "rudder0".into(), cluster_cidr: None, cni_bin_dirs: None }
    }
}

fn error(e: impl std::fmt::Display) -> NetworkError {
    NetworkError { message: e.to_string() }
}

/// Pods in sandboxes of their own on the node's bridge.
pub struct SandboxNetwork {
    settings: Settings,
    /// Made once the podCIDR is known.
    sandboxes: RwLock<Option<(Cidr, Arc<Sandboxes>)>>,
}

impl SandboxNetwork {
    /// Checks the settings now, so that a bad flag fails at start, not at the first pod.
    pub fn new(settings: Settings) -> Result<SandboxNetwork, NetworkError> {
        if let Some(c) = &settings.cluster_cidr {
            c.parse::<Cidr>().map_err(|e| error(format!("invalid cluster CIDR {c:?}: {e}")))?;
        }
        std::fs::create_dir_all(&settings.state_dir)
            .map_err(|e| error(format!("creating {}: {e}", settings.state_dir.display())))?;
        Ok(SandboxNetwork { settings, sandboxes: RwLock::new(None) })
    }

    fn current(&self) -> Option<Arc<Sandboxes>> {
        self.sandboxes.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, s)| s.clone())
    }

    fn ready(&self) -> Result<Arc<Sandboxes>, NetworkError> {
        self.current().ok_or_else(|| error("the node's pod network is not ready: it has no podCIDR yet"))
    }

    fn build(&self, cidr: Cidr) -> Result<Sandboxes, NetworkError> {
        let mut config = SandboxConfig::new(self.settings.state_dir.clone(), cidr);
        config.bridge = self.settings.bridge.clone();
        config.cluster_cidr = self.settings.cluster_cidr.as_deref().and_then(|c| c.parse().ok());
        if let Some(dirs) = &self.settings.cni_bin_dirs {
            config.cni_bin_dirs = dirs.clone();
        }
        Sandboxes::new(config).map_err(error)
    }
}

fn info(i: runtime::sandbox::SandboxInfo) -> SandboxInfo {
    SandboxInfo { pod_uid: i.pod_uid, ips: i.ips, net_ns: i.net_ns, ipc_ns: Some(i.ipc_ns), uts_ns: i.uts_ns }
}

#[async_trait::async_trait]
impl PodNetwork for SandboxNetwork {
    async fn create(&self, r: &SandboxRequest) -> Result<SandboxInfo, NetworkError> {
        let sandboxes = self.ready()?;
        let made = sandboxes.create(r).await.map_err(error)?;
        if !r.host_network && made.ips.is_empty() {
            return Err(error(format!("the pod network gave pod {} no address", r.pod_uid)));
        }
        Ok(info(made))
    }

    async fn remove(&self, pod_uid: &str) -> Result<(), NetworkError> {
        match self.current() {
            Some(s) => s.remove(pod_uid).await.map_err(error),
            // Nothing was made by this run; what a previous run left waits for the
            // podCIDR (CNI DEL needs the network it was added to).
            None if !self.settings.state_dir.join(pod_uid).exists() => Ok(()),
            None => Err(error("the node's pod network is not ready: it has no podCIDR yet")),
        }
    }

    fn needs_pod_cidr(&self) -> bool {
        true
    }

    fn set_pod_cidr(&self, cidr: &str) {
        let parsed = match cidr.parse::<Cidr>() {
            Ok(c) => c,
            Err(e) => return tracing::error!(pod_cidr = %cidr, error = %e, "the node's podCIDR is invalid"),
        };
        let mut slot = self.sandboxes.write().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((c, _)) if *c == parsed => {}
            // Pods already on the bridge keep their addresses; the kubelet, too,
            // takes a changed podCIDR only on restart.
            Some((c, _)) => tracing::warn!(old = %c, new = %parsed, "the node's podCIDR changed; restart the agent"),
            None => match self.build(parsed) {
                Ok(s) => {
                    tracing::info!(pod_cidr = %parsed, bridge = %self.settings.bridge, "pod network ready");
                    *slot = Some((parsed, Arc::new(s)));
                }
                Err(e) => tracing::error!(error = %e, "setting up the pod network"),
            },
        }
    }

    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        let sandboxes = self.ready().map_err(std::io::Error::other)?;
        sandboxes.connect_in_pod(pod_uid, port).await.map_err(std::io::Error::other)
    }

    async fn list(&self) -> Result<Vec<String>, NetworkError> {
        // The directories are the record, podCIDR or not.
        let dir = &self.settings.state_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(error(format!("reading {}: {e}", dir.display()))),
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        Ok(out)
    }

    fn routes_to_nodes(&self) -> bool {
        true
    }

    async fn sync_routes(&self, routes: &[(String, IpAddr)]) -> Result<(), NetworkError> {
        let sandboxes = self.ready()?;
        let mut parsed = Vec::with_capacity(routes.len());
        for (cidr, via) in routes {
            match cidr.parse::<Cidr>() {
                Ok(c) => parsed.push((c, *via)),
                Err(e) => tracing::warn!(pod_cidr = %cidr, error = %e, "a node's podCIDR is invalid; not routed"),
            }
        }
        sandboxes.sync_routes(&parsed).await.map_err(error)
    }
}

/// Port-forward reaches the pod's own localhost, in its network namespace.
#[async_trait::async_trait]
impl crate::server::PodNetwork for SandboxNetwork {
    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        PodNetwork::connect(self, pod_uid, port).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_over() {
        let i = info(runtime::sandbox::SandboxInfo {
            pod_uid: "u1".into(),
            ips: vec!["10.42.0.5".parse().unwrap()],
            net_ns: Some("/s/u1/ns/net".into()),
            ipc_ns: "/s/u1/ns/ipc".into(),
            uts_ns: None,
        });
        assert_eq!(i.ipc_ns, Some(PathBuf::from("/s/u1/ns/ipc")));
        assert_eq!(i.net_ns, Some(PathBuf::from("/s/u1/ns/net")));
        assert_eq!(i.uts_ns, None);
    }

    #[tokio::test]
    async fn nothing_runs_before_the_pod_cidr_and_bad_settings_fail_early() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(dir.path().join("sandboxes"));
        settings.cluster_cidr = Some("10.42.0.0/33".into());
        assert!(SandboxNetwork::new(settings.clone()).is_err());
        settings.cluster_cidr = Some("10.42.0.0/16".into());
        let net = SandboxNetwork::new(settings).unwrap();
        assert!(net.needs_pod_cidr() && net.routes_to_nodes());
        let r = SandboxRequest {
            pod_uid: "u1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            hostname: "web".into(),
            port_mappings: vec![],
            host_network: true,
        };
        let e = net.create(&r).await.unwrap_err();
        assert!(e.message.contains("no podCIDR"), "{e}");
        assert!(net.sync_routes(&[]).await.is_err());
        assert!(PodNetwork::connect(&net, "u1", 80).await.is_err());
        // Removing what was never made succeeds; a previous run's sandbox waits.
        net.remove("u1").await.unwrap();
        std::fs::create_dir_all(dir.path().join("sandboxes/u2/ns")).unwrap();
        std::fs::create_dir_all(dir.path().join("sandboxes/.cni")).unwrap();
        assert!(net.remove("u2").await.is_err());
        assert_eq!(net.list().await.unwrap(), vec!["u2".to_string()]);
        // A bad podCIDR changes nothing; a good one makes the sandboxes, once.
        net.set_pod_cidr("nonsense");
        assert!(net.current().is_none());
        net.set_pod_cidr("10.42.3.0/24");
        let first = net.current().unwrap();
        assert_eq!(first.config().pod_cidr, "10.42.3.0/24".parse().unwrap());
        assert_eq!(first.config().cluster_cidr, Some("10.42.0.0/16".parse().unwrap()));
        net.set_pod_cidr("10.42.4.0/24");
        assert!(Arc::ptr_eq(&first, &net.current().unwrap()));
    }
}
