//! `rudder agent`: join this machine to a cluster as a node and run the pods bound
//! to it (see the `agent` crate). `rudder server` runs the same agent in-process.

use crate::join;
use anyhow::Context;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How pods get their network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PodNetworkKind {
    /// A network namespace per pod on the node's bridge, through the CNI plugins,
    /// with an address from the node's podCIDR.
    Cni,
    /// Every pod on the node's own network with the node's address (no CNI plugins
    /// needed; pods share ports).
    Host,
}

/// The pod network of a node whose state is under `data_dir`.
pub fn pod_network(
    kind: PodNetworkKind,
    data_dir: &Path,
    cluster_cidr: &str,
) -> anyhow::Result<Option<Arc<dyn agent::network::PodNetwork>>> {
    Ok(match kind {
        // The agent's default.
        PodNetworkKind::Host => None,
        PodNetworkKind::Cni => {
            let mut settings = agent::sandbox::Settings::new(data_dir.join("sandboxes"));
            settings.cluster_cidr = Some(cluster_cidr.to_string());
            let network = agent::sandbox::SandboxNetwork::new(settings).context("setting up the pod network")?;
            Some(Arc::new(network))
        }
    })
}

#[derive(clap::Args)]
pub struct Args {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token (DATA_DIR/node-token on the server).
    #[arg(long)]
    token: String,
    /// Where images, containers, logs and volumes live.
    #[arg(long, default_value = "/var/lib/rudder/agent")]
    data_dir: PathBuf,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// This node's address (default: the address of the default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Registry mirrors and credentials (default: DATA_DIR/registries.yaml when present).
    #[arg(long)]
    registry_config: Option<PathBuf>,
    /// The port of the agent's streaming endpoint (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Cluster DNS servers for pods (the tenth address of the server's
    /// --service-cidr; empty: pods use the host's resolv.conf).
    #[arg(long, value_delimiter = ',', default_value = "10.43.0.10")]
    cluster_dns: Vec<String>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How pods get their network.
    #[arg(long, value_enum, default_value_t = PodNetworkKind::Cni)]
    pod_network: PodNetworkKind,
    /// The cluster's pod network (the server's --cluster-cidr): pod traffic within it
    /// is not masqueraded.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Run no service proxy on this node (e.g. several agents sharing one network namespace).
    #[arg(long)]
    disable_proxy: bool,
}

/// The host name, lowercased, as the kubelet names its node by default.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Loads the registry config: the named file, else `DIR/registries.yaml` if present.
pub fn registry_config(named: Option<&Path>, data_dir: &Path) -> anyhow::Result<runtime::RegistryConfig> {
    Ok(match named {
        Some(p) => runtime::RegistryConfig::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => runtime::RegistryConfig::load_optional(&data_dir.join("registries.yaml"))?,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (client, ca_pem) = join::client(&args.server, &args.token, "kubelet").await?;
    let node_name = args.node_name.clone().unwrap_or_else(host_name);
    let mut config = agent::Config::new(&node_name, args.data_dir.clone())?;
    let node_ip = args.node_ip.unwrap_or_else(agent::node::default_ip);
    config.node_ip = Some(node_ip);
    config.registry_config = registry_config(args.registry_config.as_deref(), &args.data_dir)?;
    config.kubelet_port = args.kubelet_port;
    config.dns = agent::etc::DnsConfig { servers: args.cluster_dns.clone(), domain: args.cluster_domain.clone() };
    let (cert_pem, key_pem) = join::serving_certificate(&client, &node_name, &[node_ip]).await?;
    config.kubelet_tls = Some(agent::server::ServerTls { cert_pem, key_pem, client_ca_pem: ca_pem });
    config.proxy = crate::cluster_dns::proxy(args.disable_proxy, &args.cluster_cidr, None);
    let network = pod_network(args.pod_network, &args.data_dir, &args.cluster_cidr)?;
    let agent = agent::Agent::new(client, config, network)?;
    tracing::info!(node = %node_name, data_dir = %args.data_dir.display(), "rudder agent starting");
    // Once settled, what runs from then on is what stays mapped (see `residency`).
    crate::residency::trim_once_settled();
    agent.run(crate::server::shutdown_signal()).await?;
    tracing::info!("agent stopped; its containers keep running and are adopted on the next start");
    Ok(())
}
