//! Pod sandboxes: the namespaces a pod's containers share, and its network.
//!
//! [`Sandboxes::create`] makes a pod's IPC, UTS (hostname set) and, unless the pod uses
//! the host's network, network namespace, bind-mounted under `state_dir/<uid>/ns/` so
//! containers join them by path (OCI `namespaces[].path`, see [`SandboxInfo::namespaces`])
//! and they outlive the agent. The network is set up by the standard CNI plugins
//! (`containernetworking-plugins`): loopback, then bridge with host-local IPAM over the
//! node's podCIDR, then portmap for host ports ([`cni`]). The node side (forwarding,
//! masquerading, routes to other nodes' podCIDRs) is in [`host`].
//!
//! On disk: `state_dir/<uid>/sandbox.json` (what was asked and what CNI answered,
//! [`state`]), `state_dir/<uid>/ns/{net,ipc,uts}`, and host-local's reservations under
//! `state_dir/.cni/`.
//!
//! Host requirements: root (CAP_SYS_ADMIN, CAP_NET_ADMIN), the CNI plugins, `iptables`
//! (portmap and the masquerade rule) and `ip` (iproute2, routes). IPv4 forwarding is
//! switched on here; `br_netfilter` is not needed.

pub mod cidr;
pub mod cni;
pub mod host;
pub mod netns;
mod state;

pub use cidr::{Cidr, CidrError};
pub use cni::CniError;
pub use host::HostError;
pub use netns::NsError;

use crate::spec::{NamespaceMode, Namespaces};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use state::Record;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The node's network settings for its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Per-pod state and namespace bind mounts, e.g. `DATA/sandboxes`.
    pub state_dir: PathBuf,
    /// Where to look for CNI plugins, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The node's bridge, made by the bridge plugin on first use.
    pub bridge: String,
    /// The node's `spec.podCIDR`.
    pub pod_cidr: Cidr,
    /// Pod traffic to addresses in it keeps its source address (not masqueraded).
    pub cluster_cidr: Option<Cidr>,
    pub mtu: Option<u32>,
}

impl SandboxConfig {
    /// The defaults for a node: bridge `rudder0`, plugins from Debian's `/usr/lib/cni`
    /// or the upstream `/opt/cni/bin`.
    pub fn new(state_dir: PathBuf, pod_cidr: Cidr) -> SandboxConfig {
        SandboxConfig {
            state_dir,
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "rudder0".into(),
            pod_cidr,
            cluster_cidr: None,
            mtu: None,
        }
    }
}

/// A `hostPort` of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (any case).
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub pod_uid: String,
    /// Empty for a hostNetwork pod (it has the node's) and for a half-made sandbox that
    /// [`Sandboxes::list`] found.
    pub ips: Vec<IpAddr>,
    /// `None` for hostNetwork.
    pub net_ns: Option<PathBuf>,
    pub ipc_ns: PathBuf,
    /// `None` for hostNetwork (the pod has the node's hostname).
    pub uts_ns: Option<PathBuf>,
}

impl SandboxInfo {
    /// The namespaces of a container of this pod: its own mount and PID namespaces, the
    /// sandbox's network, IPC and UTS ones (or the host's for hostNetwork).
    pub fn namespaces(&self) -> Namespaces {
        let join_or_host = |p: &Option<PathBuf>| p.clone().map_or(NamespaceMode::Host, NamespaceMode::Join);
        Namespaces {
            ipc: NamespaceMode::Join(self.ipc_ns.clone()),
            uts: join_or_host(&self.uts_ns),
            network: join_or_host(&self.net_ns),
            ..Namespaces::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid pod UID {0:?}: letters, digits, '-', '_' and '.' only, not starting with '.'")]
    InvalidPodUid(String),
    #[error("invalid hostname {0:?}: 1 to 64 bytes")]
    InvalidHostname(String),
    #[error("invalid bridge name {0:?}: 1 to 15 letters, digits, '-', '_' or '.'")]
    InvalidBridge(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error(transparent)]
    Cni(#[from] CniError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("no sandbox for pod {0}")]
    NotFound(String),
    #[error("the network namespace of pod {0} is gone")]
    NetworkGone(String),
    #[error("cannot connect to port {port} in pod {pod_uid}: {source}")]
    Connect { pod_uid: String, port: u16, source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io { op, path: path.to_path_buf(), source }
}

/// The pod sandboxes of one node.
pub struct Sandboxes {
    config: SandboxConfig,
    /// host-local's `dataDir`.
    ipam_dir: PathBuf,
    /// The node's network namespace when it is not the process's (tests, and nodes
    /// simulated in namespaces): plugins, `ip` and `iptables` run there.
    host_netns: Option<PathBuf>,
    /// One operation at a time per pod.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Whether forwarding and the node's chains are in place.
    node_ready: tokio::sync::Mutex<bool>,
}

const NS_DIR: &str = "ns";
const IPAM_DIR: &str = ".cni";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Sandboxes {
    pub fn new(config: SandboxConfig) -> Result<Sandboxes, SandboxError> {
        let b = &config.bridge;
        let bridge_ok = !b.is_empty()
            && b.len() <= 15
            && b.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if !bridge_ok {
            return Err(SandboxError::InvalidBridge(b.clone()));
        }
        std::fs::create_dir_all(&config.state_dir).map_err(io_err("create", &config.state_dir))?;
        Ok(Sandboxes {
            ipam_dir: config.state_dir.join(IPAM_DIR),
            config,
            host_netns: None,
            locks: Mutex::new(HashMap::new()),
            node_ready: tokio::sync::Mutex::new(false),
        })
    }

    /// Makes this node's network namespace the one at `path` (a bind-mounted netns file)
    /// instead of the process's: for tests and for several nodes on one machine.
    pub fn with_host_netns(mut self, path: impl Into<PathBuf>) -> Sandboxes {
        self.host_netns = Some(path.into());
        self
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Makes the pod's sandbox, or returns it when it is already complete. A half-made
    /// one (the agent stopped mid-create) or one whose namespaces are gone (a reboot) is
    /// torn down and made again.
    pub async fn create(&self, req: &SandboxRequest) -> Result<SandboxInfo, SandboxError> {
        validate_uid(&req.pod_uid)?;
        if req.hostname.is_empty() || req.hostname.len() > 64 || req.hostname.contains('\0') {
            return Err(SandboxError::InvalidHostname(req.hostname.clone()));
        }
        let lock = self.lock(&req.pod_uid);
        let _guard = lock.lock().await;
        let dir = self.dir(&req.pod_uid);
        match state::read(&dir) {
            Ok(Some(rec)) if rec.ready && self.alive(&dir, &rec) => return Ok(info(&dir, &rec)),
            Ok(None) if !dir.exists() => {}
            _ => self.teardown(&req.pod_uid, &dir).await?,
        }
        if !req.host_network {
            self.ensure_node().await?;
        }
        let result = self.make(req, &dir).await;
        if result.is_err() {
            // Leave nothing behind; the error that matters is the one that stopped create.
            if let Err(e) = self.teardown(&req.pod_uid, &dir).await {
                tracing::warn!(pod_uid = %req.pod_uid, error = %e, "cleanup after a failed sandbox create");
            }
        }
        result
    }

    async fn make(&self, req: &SandboxRequest, dir: &Path) -> Result<SandboxInfo, SandboxError> {
        let ns_dir = dir.join(NS_DIR);
        std::fs::create_dir_all(&ns_dir).map_err(io_err("create", &ns_dir))?;
        let network = (!req.host_network).then(|| cni::network_config(&self.network_params(), &req.port_mappings));
        let mut rec = Record {
            pod_uid: req.pod_uid.clone(),
            namespace: req.namespace.clone(),
            name: req.name.clone(),
            hostname: req.hostname.clone(),
            host_network: req.host_network,
            port_mappings: req.port_mappings.clone(),
            network: network.clone(),
            result: None,
            ips: Vec::new(),
            ready: false,
        };
        state::write(dir, &rec).map_err(io_err("write", dir))?;

        let kinds = netns::Kinds { net: !req.host_network, ipc: true, uts: !req.host_network };
        let (ns_dir2, hostname, parent) = (ns_dir.clone(), req.hostname.clone(), self.host_netns.clone());
        netns::run_in_async(None, move || netns::create(&ns_dir2, kinds, &hostname, parent.as_deref())).await??;

        if let Some(network) = network {
            let net_path = ns_dir.join("net");
            let call = self.call_params(&req.pod_uid, &req.namespace, &req.name);
            let result =
                netns::run_in_async(self.host_netns.as_deref(), move || call.add(&net_path, &network)).await??;
            rec.ips = cni::result_ips("bridge", &result)?;
            rec.result = Some(result);
        }
        rec.ready = true;
        state::write(dir, &rec).map_err(io_err("write", dir))?;
        Ok(info(dir, &rec))
    }

    /// Tears the pod's sandbox down: CNI DEL (sending the ADD result), namespaces
    /// unmounted, state removed. Success when there is nothing (left) to remove; on a
    /// CNI failure the state stays, so that a retry can DEL again.
    pub async fn remove(&self, pod_uid: &str) -> Result<(), SandboxError> {
        validate_uid(pod_uid)?;
        let lock = self.lock(pod_uid);
        let result = {
            let _guard = lock.lock().await;
            self.teardown(pod_uid, &self.dir(pod_uid)).await
        };
        drop(lock);
        if result.is_ok() {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Only when nobody else waits on it, so two callers never hold different locks.
            if locks.get(pod_uid).is_some_and(|l| Arc::strong_count(l) == 1) {
                locks.remove(pod_uid);
            }
        }
        result
    }

    /// Every sandbox on disk, so that a restarted agent finds its pods' sandboxes (and
    /// the half-made ones it must remove: those have no IPs).
    pub fn list(&self) -> Result<Vec<SandboxInfo>, SandboxError> {
        let root = &self.config.state_dir;
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", root)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read", root))?;
            let Ok(uid) = entry.file_name().into_string() else { continue };
            if validate_uid(&uid).is_err() || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            out.push(match state::read(&dir) {
                Ok(Some(rec)) => info(&dir, &rec),
                _ => SandboxInfo {
                    pod_uid: uid,
                    ips: Vec::new(),
                    net_ns: None,
                    ipc_ns: dir.join(NS_DIR).join("ipc"),
                    uts_ns: None,
                },
            });
        }
        out.sort_by(|a, b| a.pod_uid.cmp(&b.pod_uid));
        Ok(out)
    }

    /// The pod's sandbox as recorded, if there is one.
    pub fn get(&self, pod_uid: &str) -> Result<Option<SandboxInfo>, SandboxError> {
        validate_uid(pod_uid)?;
        let dir = self.dir(pod_uid);
        Ok(state::read(&dir).map_err(io_err("read", &dir))?.map(|rec| info(&dir, &rec)))
    }

    /// CNI CHECK of the pod's network: the plugins verify that what ADD made is still
    /// there (the interface, its address, the port mappings).
    pub async fn check(&self, pod_uid: &str) -> Result<(), SandboxError> {
        validate_uid(pod_uid)?;
        let dir = self.dir(pod_uid);
        let rec = state::read(&dir).map_err(io_err("read", &dir))?;
        let rec = rec.filter(|r| r.ready).ok_or_else(|| SandboxError::NotFound(pod_uid.into()))?;
        let Some(network) = rec.network.clone() else { return Ok(()) };
        let net_path = dir.join(NS_DIR).join("net");
        if !netns::is_mounted(&net_path) {
            return Err(SandboxError::NetworkGone(pod_uid.into()));
        }
        let call = self.call_params(pod_uid, &rec.namespace, &rec.name);
        netns::run_in_async(self.host_netns.as_deref(), move || call.check(&net_path, &network, rec.result.as_ref()))
            .await??;
        Ok(())
    }

    /// Routes other nodes' podCIDRs to their node IPs, and removes routes of ours that
    /// are no longer listed (only ours: they carry protocol [`host::ROUTE_PROTO`]).
    pub async fn sync_routes(&self, routes: &[(Cidr, IpAddr)]) -> Result<(), SandboxError> {
        self.ensure_node().await?;
        let own = self.config.pod_cidr;
        let routes = routes.to_vec();
        netns::run_in_async(self.host_netns.as_deref(), move || host::sync_routes(&own, &routes)).await??;
        Ok(())
    }

    /// Removes what this node set up outside any pod: routes, masquerade and forward
    /// chains, and the bridge. For a node leaving the cluster; pods first.
    pub async fn remove_node_network(&self) -> Result<(), SandboxError> {
        let own = self.config.pod_cidr;
        let bridge = self.config.bridge.clone();
        netns::run_in_async(self.host_netns.as_deref(), move || -> Result<(), HostError> {
            host::sync_routes(&own, &[])?;
            host::remove_node_rules(&bridge, &own)?;
            let exists = host::run("ip", &["link".into(), "show".into(), bridge.clone()]).is_ok();
            if exists {
                host::run("ip", &["link".into(), "del".into(), bridge])?;
            }
            Ok(())
        })
        .await??;
        *self.node_ready.lock().await = false;
        Ok(())
    }

    /// Opens a TCP connection to localhost:port inside the pod's network namespace (for
    /// port-forward). The socket is made on a thread in that namespace and keeps it, so
    /// the stream works from any thread.
    pub async fn connect_in_pod(&self, pod_uid: &str, port: u16) -> Result<tokio::net::TcpStream, SandboxError> {
        validate_uid(pod_uid)?;
        let dir = self.dir(pod_uid);
        let rec = state::read(&dir).map_err(io_err("read", &dir))?;
        let rec = rec.filter(|r| r.ready).ok_or_else(|| SandboxError::NotFound(pod_uid.into()))?;
        let target = if rec.host_network {
            self.host_netns.clone()
        } else {
            let net = dir.join(NS_DIR).join("net");
            if !netns::is_mounted(&net) {
                return Err(SandboxError::NetworkGone(pod_uid.into()));
            }
            Some(net)
        };
        let connect_err = |source| SandboxError::Connect { pod_uid: pod_uid.into(), port, source };
        let stream =
            netns::run_in_async(target.as_deref(), move || connect_localhost(port)).await?.map_err(connect_err)?;
        stream.set_nonblocking(true).map_err(connect_err)?;
        tokio::net::TcpStream::from_std(stream).map_err(connect_err)
    }

    fn dir(&self, pod_uid: &str) -> PathBuf {
        self.config.state_dir.join(pod_uid)
    }

    fn lock(&self, pod_uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(pod_uid.to_string()).or_default().clone()
    }

    /// Whether the namespaces a ready record names are still mounted.
    fn alive(&self, dir: &Path, rec: &Record) -> bool {
        let ns = dir.join(NS_DIR);
        netns::is_mounted(&ns.join("ipc"))
            && (rec.host_network || (netns::is_mounted(&ns.join("net")) && netns::is_mounted(&ns.join("uts"))))
    }

    fn network_params(&self) -> cni::NetworkParams<'_> {
        cni::NetworkParams {
            bridge: &self.config.bridge,
            pod_cidr: self.config.pod_cidr,
            mtu: self.config.mtu,
            ipam_dir: &self.ipam_dir,
        }
    }

    fn call_params(&self, pod_uid: &str, namespace: &str, name: &str) -> CniCall {
        CniCall {
            container_id: pod_uid.to_string(),
            args: cni::cni_args(namespace, name, pod_uid),
            bin_dirs: self.config.cni_bin_dirs.clone(),
        }
    }

    /// Forwarding and the node's chains, once per process (and again after
    /// [`Sandboxes::remove_node_network`]).
    async fn ensure_node(&self) -> Result<(), SandboxError> {
        let mut ready = self.node_ready.lock().await;
        if *ready {
            return Ok(());
        }
        let (bridge, own, cluster) = (self.config.bridge.clone(), self.config.pod_cidr, self.config.cluster_cidr);
        netns::run_in_async(self.host_netns.as_deref(), move || -> Result<(), HostError> {
            host::enable_forwarding(&own)?;
            host::ensure_node_rules(&bridge, &own, cluster.as_ref())
        })
        .await??;
        *ready = true;
        Ok(())
    }

    /// Undoes whatever of a sandbox exists. DEL runs even when the record is missing or
    /// says create never reached CNI: DEL of what was never added is success, and it
    /// releases an address that a crash between ADD and the record's update would leak.
    async fn teardown(&self, pod_uid: &str, dir: &Path) -> Result<(), SandboxError> {
        if !dir.exists() {
            return Ok(());
        }
        let rec = state::read(dir).ok().flatten();
        let host_network = rec.as_ref().is_some_and(|r| r.host_network);
        if !host_network {
            let (network, result, namespace, name) = match &rec {
                Some(r) => (
                    r.network.clone().unwrap_or_else(|| cni::network_config(&self.network_params(), &r.port_mappings)),
                    r.result.clone(),
                    r.namespace.clone(),
                    r.name.clone(),
                ),
                None => (cni::network_config(&self.network_params(), &[]), None, String::new(), String::new()),
            };
            let net_path = dir.join(NS_DIR).join("net");
            // Without the namespace (a reboot, or create stopped before it) plugins get
            // an empty CNI_NETNS and release only what they hold on the node.
            let netns_arg = netns::is_mounted(&net_path).then_some(net_path);
            let call = self.call_params(pod_uid, &namespace, &name);
            netns::run_in_async(self.host_netns.as_deref(), move || {
                call.del(netns_arg.as_deref(), &network, result.as_ref())
            })
            .await??;
        }
        for kind in ["net", "ipc", "uts"] {
            netns::unmount(&dir.join(NS_DIR).join(kind))?;
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", dir)(e)),
        }
    }
}

/// What every plugin call of one pod shares; moved onto the thread that runs them.
struct CniCall {
    container_id: String,
    args: String,
    bin_dirs: Vec<PathBuf>,
}

impl CniCall {
    fn invocation<'a>(
        &'a self,
        command: cni::CniCommand,
        netns: Option<&'a Path>,
        ifname: &'a str,
    ) -> cni::Invocation<'a> {
        cni::Invocation {
            command,
            container_id: &self.container_id,
            netns,
            ifname,
            args: &self.args,
            bin_dirs: &self.bin_dirs,
        }
    }

    /// loopback on `lo`, then the list on `eth0`, each plugin's result the next one's
    /// `prevResult`; returns the last result.
    fn add(&self, netns: &Path, network: &Value) -> Result<Value, CniError> {
        let lo = cni::loopback_config();
        let lo_inv = self.invocation(cni::CniCommand::Add, Some(netns), "lo");
        for p in cni::plugins(&lo) {
            cni::exec_plugin(&lo_inv, &cni::plugin_stdin(&lo, &p, None))?;
        }
        let inv = self.invocation(cni::CniCommand::Add, Some(netns), cni::POD_IFNAME);
        let mut prev: Option<Value> = None;
        for p in cni::plugins(network) {
            prev = cni::exec_plugin(&inv, &cni::plugin_stdin(network, &p, prev.as_ref()))?;
        }
        prev.ok_or_else(|| CniError::Result { plugin: "(none)".into(), reason: "the network has no plugins".into() })
    }

    /// The list's plugins in reverse order, each sent the ADD result, then loopback. All
    /// of them run even when one fails (so one broken plugin does not leak another's
    /// state); the first error is returned.
    fn del(&self, netns: Option<&Path>, network: &Value, result: Option<&Value>) -> Result<(), CniError> {
        let mut first_err = None;
        let inv = self.invocation(cni::CniCommand::Del, netns, cni::POD_IFNAME);
        for p in cni::plugins(network).iter().rev() {
            if let Err(e) = cni::exec_plugin(&inv, &cni::plugin_stdin(network, p, result)) {
                first_err.get_or_insert(e);
            }
        }
        let lo = cni::loopback_config();
        let lo_inv = self.invocation(cni::CniCommand::Del, netns, "lo");
        for p in cni::plugins(&lo) {
            if let Err(e) = cni::exec_plugin(&lo_inv, &cni::plugin_stdin(&lo, &p, None)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn check(&self, netns: &Path, network: &Value, result: Option<&Value>) -> Result<(), CniError> {
        let inv = self.invocation(cni::CniCommand::Check, Some(netns), cni::POD_IFNAME);
        for p in cni::plugins(network) {
            cni::exec_plugin(&inv, &cni::plugin_stdin(network, &p, result))?;
        }
        Ok(())
    }
}

fn info(dir: &Path, rec: &Record) -> SandboxInfo {
    let ns = dir.join(NS_DIR);
    SandboxInfo {
        pod_uid: rec.pod_uid.clone(),
        ips: rec.ips.clone(),
        net_ns: (!rec.host_network).then(|| ns.join("net")),
        ipc_ns: ns.join("ipc"),
        uts_ns: (!rec.host_network).then(|| ns.join("uts")),
    }
}

/// A pod UID names a directory and is the CNI container ID, which the spec limits to
/// letters, digits, `_`, `.` and `-`. A leading `.` is refused so that `.cni` (and `.`,
/// `..`) can never be a pod's directory.
fn validate_uid(uid: &str) -> Result<(), SandboxError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(SandboxError::InvalidPodUid(uid.to_string())) }
}

/// localhost:port over IPv4, then IPv6, as a dial of `localhost` would.
fn connect_localhost(port: u16) -> io::Result<std::net::TcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e4) => {
            std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), CONNECT_TIMEOUT)
                .map_err(|_| e4)
        }
    }
}
