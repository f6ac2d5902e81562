//! `rudder server`: the control plane on this machine.

use crate::kubeconfig;
use anyhow::Context;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Embedded,
    Etcd,
}

#[derive(clap::Args)]
pub struct Args {
    /// Where state, certificates and credentials live.
    #[arg(long, default_value = "/var/lib/rudder")]
    data_dir: PathBuf,
    /// The address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// The API server's port.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Where cluster state is kept.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    store: StoreKind,
    /// etcd client URLs, comma-separated, for `--store etcd`.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Run the control plane without a node agent.
    #[arg(long)]
    disable_agent: bool,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The pod network.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The service network: where ClusterIPs come from.
    #[arg(long, default_value = apiserver::DEFAULT_SERVICE_CIDR)]
    service_cidr: String,
    /// The ports NodePort and LoadBalancer Services are given on every node.
    #[arg(long, default_value = apiserver::DEFAULT_NODE_PORT_RANGE)]
    service_node_port_range: String,
    /// The address the `kubernetes` Service's endpoints point at (default: the bind
    /// address, or the default route's interface address when bound to 0.0.0.0).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Run no cluster DNS server (pods then have no resolver for Service names).
    #[arg(long)]
    disable_dns: bool,
    /// The cluster DNS server's port on the advertise address (UDP and TCP; 0 picks one).
    #[arg(long, default_value_t = 53)]
    cluster_dns_port: u16,
    /// Resolvers for names outside the cluster, as ADDR:PORT (default: the host's resolv.conf).
    #[arg(long, value_delimiter = ',')]
    cluster_dns_upstream: Vec<std::net::SocketAddr>,
    /// Run this node's agent without the service proxy.
    #[arg(long)]
    disable_proxy: bool,
    /// The prefix length of each node's pod network, cut from the cluster CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How often node health is checked.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may go without renewing its Lease before it is marked NotReady.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// The same for a node that never reported Ready.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// How long pods stay on a not-ready or unreachable node unless they tolerate it
    /// for longer themselves.
    #[arg(long, default_value_t = apiserver::DEFAULT_TOLERATION_SECONDS)]
    default_toleration_seconds: i64,
    /// Registry mirrors and credentials (default: DATA_DIR/registries.yaml when present).
    #[arg(long)]
    registry_config: Option<PathBuf>,
    /// The port of this node's agent's streaming endpoint (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// How this node's pods get their network.
    #[arg(long, value_enum, default_value_t = crate::agent::PodNetworkKind::Cni)]
    pod_network: crate::agent::PodNetworkKind,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ::sim::parse_duration(s).map_err(|e| e.to_string())
}

/// The controllers' settings from the command line.
fn controllers_config(args: &Args) -> controllers::Config {
    controllers::Config {
        node_lifecycle: controllers::nodelifecycle::Config {
            monitor_period: args.node_monitor_period,
            grace_period: args.node_monitor_grace_period,
            startup_grace_period: args.node_startup_grace_period,
        },
        node_ipam: controllers::nodeipam::Config {
            cluster_cidr: args.cluster_cidr.clone(),
            node_cidr_mask_size: args.node_cidr_mask_size,
        },
        endpoints: controllers::endpoints::Config::default(),
        root_ca_pem: None,
    }
}

async fn open_store(args: &Args) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match args.store {
        StoreKind::Embedded => {
            let path = args.data_dir.join("db").join("state.db");
            let s = store::embedded::EmbeddedStore::open(&path, store::embedded::Options::default())
                .with_context(|| format!("opening the store at {}", path.display()))?;
            Arc::new(s)
        }
        StoreKind::Etcd => Arc::new(
            store::etcd::EtcdStore::connect(&args.etcd_endpoints)
                .await
                .with_context(|| format!("connecting to etcd at {}", args.etcd_endpoints.join(",")))?,
        ),
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store = open_store(&args).await?;
    let advertise = apiserver::alloc::kubernetes::advertise_address(args.bind_address, args.advertise_address);
    let dns_ip = crate::cluster_dns::dns_ip(&args.service_cidr)?;
    let dns_config =
        crate::cluster_dns::config((advertise, args.cluster_dns_port).into(), dns_ip, &args.cluster_dns_upstream);
    let dns = if args.disable_dns { None } else { crate::cluster_dns::bind(&dns_config).await };
    let config = apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        port: args.port,
        extra_sans: args.node_name.iter().cloned().collect(),
        default_toleration_seconds: args.default_toleration_seconds,
        service_cidr: args.service_cidr.clone(),
        node_port_range: args.service_node_port_range.clone(),
        advertise_address: args.advertise_address,
        cluster_dns_port: dns.as_ref().and_then(|d| d.local_addrs().first().map(|a| a.port())),
    };
    let server = apiserver::ApiServer::start(config, store).await.context("starting the API server")?;
    let host = if args.bind_address.is_unspecified() { "127.0.0.1".to_string() } else { args.bind_address.to_string() };
    let url = format!("https://{host}:{}", server.addr.port());
    let kubeconfig_path = args.data_dir.join("admin.kubeconfig");
    apiserver::pki::write_private(
        &kubeconfig_path,
        kubeconfig::render(&url, &server.pki.ca_pem, &server.pki.admin_token).as_bytes(),
    )?;
    apiserver::pki::write_private(
        &args.data_dir.join("node-token"),
        format!("{}\n", server.pki.node_token()).as_bytes(),
    )?;
    let admin = |program| kubeconfig::control_loop(&server.ctx, &server.pki.admin_token, program);
    let controllers = spawn_control_loops(
        admin("kube-controller-manager")?,
        admin("kube-scheduler")?,
        controllers::Config { root_ca_pem: Some(server.pki.ca_pem.clone()), ..controllers_config(&args) },
    )
    .context("starting the control loops")?;
    let dns = match dns {
        Some(d) => Some(tokio::spawn(crate::cluster_dns::serve(d, admin("rudder-dns")?))),
        None => None,
    };
    let node_agent = if args.disable_agent {
        None
    } else {
        let client = kubeconfig::in_process(&server.ctx, &server.pki.node_token(), "kubelet")?;
        let mut config = agent_config(&args)?;
        // The server's own agent gets its serving certificate straight from the CA.
        let ip = config.node_ip.unwrap_or_else(agent::node::default_ip);
        config.node_ip = Some(ip);
        let (cert_pem, key_pem) = server
            .pki
            .issue_kubelet_serving(&config.node_name, &[ip.to_string()])
            .context("issuing the agent's serving certificate")?;
        config.kubelet_tls =
            Some(agent::server::ServerTls { cert_pem, key_pem, client_ca_pem: server.pki.ca_pem.clone() });
        let network = crate::agent::pod_network(args.pod_network, &config.data_dir, &args.cluster_cidr)?;
        Some(tokio::spawn(run_agent(client, config, network)))
    };
    tracing::info!(
        address = %server.addr,
        kubeconfig = %kubeconfig_path.display(),
        ready_in_ms = started.elapsed().as_millis() as u64,
        "rudder server is ready"
    );
    // Once settled, what runs from then on is what stays mapped (see `residency`).
    crate::residency::trim_once_settled();
    shutdown_signal().await;
    tracing::info!("shutting down");
    // The agent stops on the same signal; waiting lets its proxy remove its rules.
    if let Some(mut a) = node_agent
        && tokio::time::timeout(Duration::from_secs(10), &mut a).await.is_err()
    {
        a.abort();
    }
    if let Some(d) = dns {
        d.abort();
    }
    drop(controllers);
    server.shutdown().await;
    Ok(())
}

/// The server's own node agent: state under `DATA/agent`, images in `DATA/images`
/// (shared with `rudder image`).
fn agent_config(args: &Args) -> anyhow::Result<agent::Config> {
    let node_name = args.node_name.clone().unwrap_or_else(crate::agent::host_name);
    let mut config = agent::Config::new(&node_name, args.data_dir.join("agent"))?;
    config.image_dir = args.data_dir.clone();
    config.kubelet_port = args.kubelet_port;
    config.registry_config = crate::agent::registry_config(args.registry_config.as_deref(), &args.data_dir)?;
    if !args.bind_address.is_unspecified() && !args.bind_address.is_loopback() {
        config.node_ip = Some(args.bind_address);
    }
    if !args.disable_dns {
        config.dns.servers = vec![crate::cluster_dns::dns_ip(&args.service_cidr)?.to_string()];
    }
    config.proxy = crate::cluster_dns::proxy(args.disable_proxy, &args.cluster_cidr, Some(&args.service_cidr));
    Ok(config)
}

async fn run_agent(client: kube::Client, config: agent::Config, network: Option<Arc<dyn agent::network::PodNetwork>>) {
    match agent::Agent::new(client, config, network) {
        Ok(a) => {
            if let Err(e) = a.run(shutdown_signal()).await {
                tracing::error!(error = %e, "the node agent stopped");
            }
        }
        Err(e) => tracing::error!(error = %e, "the node agent cannot start"),
    }
}

/// Runs the controllers and the scheduler on a runtime (and an OS thread) of their own
/// until the returned sender is dropped. A burst of reconciling then cannot hold the
/// API server's workers between two of its await points: the kernel shares the cores
/// between the two, as it would between separate processes, and request latency does
/// not depend on what the control loops happen to be doing.
fn spawn_control_loops(
    controllers: kube::Client,
    scheduler: kube::Client,
    config: controllers::Config,
) -> std::io::Result<tokio::sync::oneshot::Sender<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new().name("control-loops".into()).spawn(move || {
        runtime.block_on(async move {
            tokio::select! {
                () = run_controllers(controllers, scheduler, config) => {}
                _ = stopped => {}
            }
        });
        // Do not wait for tasks blocked on the network at shutdown.
        runtime.shutdown_background();
    })?;
    Ok(stop)
}

/// The controllers and the scheduler run in-process but reach the API like any client
/// (in-process transport, same authentication and admission).
async fn run_controllers(controllers: kube::Client, scheduler: kube::Client, config: controllers::Config) {
    // One watch and one cache per kind for all of them, as upstream's controller
    // manager shares informers (the scheduler's reads go through them too).
    let informers = controllers::Informers::new(controllers.clone());
    tokio::join!(
        controllers::run(controllers, informers.clone(), config, std::future::pending()),
        scheduler::run(scheduler, informers)
    );
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
