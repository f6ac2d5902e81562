//! The node agent (the kubelet): it registers this machine as a Node, keeps its Lease
//! and status fresh, and runs the pods bound to it in real containers through the
//! `runtime` crate, reporting their status back.
//!
//! Where to start reading:
//! - [`Agent::run`] wires everything: [`heartbeat`] registers the node ([`node`]
//!   builds what it writes) and renews its Lease; [`pods`] watches the pods bound to
//!   the node, adopts the containers a previous run left, and gives each pod a
//!   [`worker`].
//! - A worker turns the pod spec into containers: [`container`] (security context,
//!   resources, namespaces), [`env`], [`volumes`], [`etc`] (`/etc/hosts` and
//!   friends), [`network`] (the pod sandbox, behind a trait; [`sandbox`] is the real
//!   one, CNI over the node's podCIDR), [`probe`], and writes
//!   [`status`] (phase, conditions, QoS) back; [`backoff`] paces restarts and pulls.
//!   The ConfigMaps and Secrets pods refer to come from [`objects`] (one watch per
//!   object in use), service-account tokens from [`token`].
//!   Containers go in the kubelet's QoS cgroup tree ([`cgroups`]); [`heap`] gives
//!   freed memory back after pods go.
//! - [`lookup`] answers "which container is `ns/pod -c name`" for [`server`], the
//!   streaming endpoint on the kubelet port (logs, exec, attach, port-forward),
//!   reached by the API server only (its serving certificate comes from the cluster
//!   CA: [`Config::kubelet_tls`]).
//!
//! On disk, under the data dir: `images/`, `snapshots/`, `runc/` (the runtime's),
//! `containers/<id>/` (bundles: `config.json` and the root filesystem),
//! `pods/<uid>/<container>/<restartCount>.log`, and `pod-data/<uid>/` (volumes and
//! the `/etc` files).

pub mod backoff;
pub mod cgroups;
pub mod container;
pub mod env;
pub mod etc;
pub mod heartbeat;
pub mod lookup;
pub mod network;
pub mod node;
pub mod objects;
pub mod pods;
pub mod probe;
pub mod quantity;
pub mod run_dir;
pub mod sandbox;
pub mod server;
pub mod service_proxy;
pub mod spread;
pub mod stats;
pub mod status;
pub mod token;
pub mod turns;
pub mod volumes;
pub mod worker;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("opening the image store: {0}")]
    Images(#[from] runtime::images::ImageStoreError),
    #[error("opening the snapshots: {0}")]
    Snapshots(#[from] runtime::snapshot::SnapshotError),
    #[error("starting the runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Register(#[from] heartbeat::HeartbeatError),
    #[error("creating {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("listening on the kubelet port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// The node's address (default: the source address of the default route).
    pub node_ip: Option<IpAddr>,
    /// Logs, volumes and the containers' writable layers live here.
    pub data_dir: PathBuf,
    /// What lasts only until the machine restarts, as containers do: runc's state,
    /// container bundles, the pods' /etc files. A tmpfs the agent mounts
    /// ([`run_dir::prepare`]), as containerd keeps these under `/run`: made and
    /// removed for every container, they cost more on disk than the rest of a start
    /// (an ext4 without a journal scans its recently freed inodes for each new one).
    pub run_dir: PathBuf,
    /// The image store and layer snapshots (shared with `rudder image`).
    pub image_dir: PathBuf,
    pub registry_config: runtime::RegistryConfig,
    pub kubelet_port: u16,
    /// The streaming server's certificate (signed by the cluster CA) and the CA its
    /// clients must come from; `None`: no streaming server.
    pub kubelet_tls: Option<server::ServerTls>,
    pub runc: runtime::runc::RuncConfig,
    pub dns: etc::DnsConfig,
    /// The node's service proxy (`None`: no proxy, e.g. several agents on one host).
    pub proxy: Option<service_proxy::Settings>,
    pub heartbeat: heartbeat::Periods,
    /// How often every pod is looked at again even without a change.
    pub resync: Duration,
}

impl Config {
    /// The defaults for a node named `node_name` with its state in `data_dir`.
    pub fn new(node_name: &str, data_dir: PathBuf) -> Result<Config, AgentError> {
        let run_dir = data_dir.join("run");
        let runc = runtime::runc::RuncConfig::new(&run_dir.join("runc"))?;
        Ok(Config {
            node_name: node_name.to_string(),
            node_ip: None,
            image_dir: data_dir.clone(),
            run_dir,
            data_dir,
            registry_config: runtime::RegistryConfig::default(),
            kubelet_port: 10250,
            kubelet_tls: None,
            runc,
            dns: etc::DnsConfig::default(),
            proxy: None,
            heartbeat: heartbeat::Periods::default(),
            resync: Duration::from_secs(60),
        })
    }

    /// A container's bundle (its spec, its shim's and runc's files, the mount point).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join("containers").join(id)
    }

    /// The containers' writable layers.
    pub fn layers_dir(&self) -> PathBuf {
        self.data_dir.join("containers")
    }

    /// A container's writable layer.
    pub fn layer_dir(&self, id: &str) -> PathBuf {
        self.layers_dir().join(id)
    }

    /// Where a container's root filesystem is mounted and its writes go.
    pub fn rootfs_dirs(&self, id: &str) -> runtime::snapshot::RootfsDirs {
        runtime::snapshot::RootfsDirs::new(&self.bundle_dir(id), &self.layer_dir(id))
    }

    /// The pods' logs, termination message files and disk volumes, a directory each.
    pub fn pods_dir(&self) -> PathBuf {
        self.data_dir.join("pods")
    }

    /// A pod's logs (`CONTAINER/ATTEMPT.log`) and termination message files.
    pub fn pod_log_dir(&self, pod_uid: &str) -> PathBuf {
        self.pods_dir().join(pod_uid)
    }

    /// The pods' state kept on disk (volumes on disk, what ran), a directory each.
    pub fn pod_states_dir(&self) -> PathBuf {
        self.data_dir.join("pod-data")
    }

    /// A pod's state kept on disk.
    pub fn pod_state_dir(&self, pod_uid: &str) -> PathBuf {
        self.pod_states_dir().join(pod_uid)
    }

    /// The pods' files on the tmpfs, a directory each.
    pub fn pod_runs_dir(&self) -> PathBuf {
        self.run_dir.join("pods")
    }

    /// A pod's files on the tmpfs: its /etc files, its volumes that hold credentials.
    pub fn pod_run_dir(&self, pod_uid: &str) -> PathBuf {
        self.pod_runs_dir().join(pod_uid)
    }

    /// The three places that hold a directory per pod: logs, state on disk, files on
    /// the tmpfs.
    pub fn all_pods_dirs(&self) -> [PathBuf; 3] {
        [self.pods_dir(), self.pod_states_dir(), self.pod_runs_dir()]
    }

    /// A pod's directory in each of [`Config::all_pods_dirs`].
    pub fn pod_dirs(&self, pod_uid: &str) -> [PathBuf; 3] {
        self.all_pods_dirs().map(|d| d.join(pod_uid))
    }
}

/// What every pod worker shares.
pub struct Ctx {
    pub client: kube::Client,
    pub config: Config,
    pub node: Arc<heartbeat::NodeState>,
    pub runtime: Arc<dyn runtime::Runtime>,
    pub puller: runtime::Puller,
    pub snapshots: runtime::snapshot::Snapshotter,
    pub network: Arc<dyn network::PodNetwork>,
    /// Events go out through here, after the pod starts under way ([`Ctx::starting`]).
    pub recorder: controllers::events::Recorder,
    /// Whether [`Config::run_dir`] is a tmpfs (credential volumes go there then).
    pub run_dir_in_memory: bool,
    /// Pod workers starting containers, until their status is written: events wait.
    pub starting: Arc<controllers::events::Busy>,
    pub lookup: Arc<lookup::PodCache>,
    /// Service-account tokens of projected volumes ([`token`]).
    pub tokens: Arc<token::TokenManager>,
    /// The ConfigMaps and Secrets pods here refer to, each watched ([`objects`]).
    pub config_maps: objects::Watched<k8s_openapi::api::core::v1::ConfigMap>,
    pub secrets: objects::Watched<k8s_openapi::api::core::v1::Secret>,
    /// The QoS cgroup tree containers go in (`None`: runc's default place).
    pub cgroups: Option<cgroups::QosCgroups>,
    /// Bounds the pod status writes in flight (see [`STATUS_WRITES`]).
    pub status_writes: tokio::sync::Semaphore,
    /// Turns for `runc run`, one per CPU ([`turns`]).
    pub start_turns: turns::Turns,
}

/// How many pod status writes may be in flight at once. The client speaks HTTP/1.1,
/// one request per connection: fifty pods starting together would otherwise open
/// fifty TLS connections to the API server at once (a handshake each, on both ends,
/// competing with the containers being started) and keep them in the pool. The
/// kubelet's status manager writes from one goroutine over one HTTP/2 connection; a
/// few at a time keeps most of that and reuses the pooled connections.
pub const STATUS_WRITES: usize = 4;

/// A node agent, ready to run.
pub struct Agent {
    ctx: Arc<Ctx>,
}

impl Agent {
    /// Opens the node's stores and runtime. `network` is the pod network (default:
    /// pods share the host's network).
    pub fn new(
        client: kube::Client,
        config: Config,
        network: Option<Arc<dyn network::PodNetwork>>,
    ) -> Result<Agent, AgentError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| AgentError::Io { path: config.data_dir.clone(), source })?;
        let run_dir_in_memory = run_dir::prepare(&config.run_dir)
            .map_err(|source| AgentError::Io { path: config.run_dir.clone(), source })?;
        for dir in [config.layers_dir(), config.pods_dir(), config.pod_states_dir()] {
            let spread =
                spread::spread_subdirectories(&dir).map_err(|source| AgentError::Io { path: dir.clone(), source })?;
            tracing::debug!(dir = %dir.display(), spread, "subdirectories spread over the file system's groups");
        }
        let store = runtime::ImageStore::open(&config.image_dir.join("images"))?;
        let snapshots = runtime::snapshot::Snapshotter::open(&config.image_dir.join("snapshots"))?;
        let runc = runtime::runc::Runc::new(config.runc.clone())?;
        let machine = node::Machine::read(&config.data_dir, &config.runc.runc);
        let ip = config.node_ip.unwrap_or_else(node::default_ip);
        let identity = node::Identity { name: config.node_name.clone(), ip, kubelet_port: config.kubelet_port };
        let node = Arc::new(heartbeat::NodeState::new(identity, machine, config.data_dir.clone()));
        let network = network.unwrap_or_else(|| Arc::new(network::HostNetwork { host_ip: ip }));
        let puller = runtime::Puller::new(store, config.registry_config.clone());
        let starting = Arc::new(controllers::events::Busy::default());
        let recorder = controllers::events::Recorder::gated(client.clone(), "kubelet", starting.clone());
        let lookup = Arc::new(lookup::PodCache::new(config.pods_dir()));
        let tokens = Arc::new(token::TokenManager::new(client.clone()));
        let cgroups = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|source| cgroups::CgroupError::Io { op: "reading", path: "/proc/self/cgroup".into(), source })
            .and_then(|text| {
                let millis = u64::from(node.machine().cpus) * 1000;
                cgroups::QosCgroups::prepare(&text, std::path::Path::new("/sys/fs/cgroup"), millis)
            });
        let cgroups = match cgroups {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::info!(error = %e, "containers go in runc's default cgroups, not a QoS tree");
                None
            }
        };
        let runtime = Arc::new(runc);
        let (config_maps, secrets) = (objects::Watched::new(client.clone()), objects::Watched::new(client.clone()));
        let ctx = Ctx {
            client,
            config,
            node,
            runtime,
            puller,
            snapshots,
            network,
            recorder,
            starting,
            run_dir_in_memory,
            lookup,
            tokens,
            config_maps,
            secrets,
            cgroups,
            status_writes: tokio::sync::Semaphore::new(STATUS_WRITES),
            start_turns: turns::Turns::per_cpu(),
        };
        Ok(Agent { ctx: Arc::new(ctx) })
    }

    /// The containers by pod, for the streaming endpoints.
    pub fn lookup(&self) -> &lookup::PodCache {
        &self.ctx.lookup
    }

    pub fn runtime(&self) -> Arc<dyn runtime::Runtime> {
        self.ctx.runtime.clone()
    }

    /// The address the node registers with.
    pub fn node_ip(&self) -> IpAddr {
        self.ctx.node.identity.ip
    }

    /// Registers the node and runs until `shutdown` completes. Containers keep
    /// running after the agent stops; the next run adopts them.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
        let ctx = self.ctx;
        // Listen first: a port in use is a reason not to join at all.
        let (stop_server, stop_rx) = tokio::sync::watch::channel(false);
        let mut streaming = None;
        if let Some(tls) = ctx.config.kubelet_tls.clone() {
            let port = ctx.config.kubelet_port;
            let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
                .await
                .map_err(|source| AgentError::Listen { port, source })?;
            let network = Arc::new(network::Streaming(ctx.network.clone()));
            let serve = server::serve(listener, tls, ctx.lookup.clone(), ctx.runtime.clone(), network, stop_rx);
            streaming = Some(tokio::spawn(async move {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "the kubelet streaming server stopped");
                }
            }));
        }
        heartbeat::register(&ctx.client, &ctx.node).await?;
        let heartbeat = tokio::spawn(heartbeat::run(ctx.client.clone(), ctx.node.clone(), ctx.config.heartbeat));
        let mut cidr = ctx.node.pod_cidr.subscribe();
        let network = ctx.network.clone();
        let cidr_task = tokio::spawn(async move {
            loop {
                if let Some(c) = cidr.borrow_and_update().clone() {
                    network.set_pod_cidr(&c);
                }
                if cidr.changed().await.is_err() {
                    return;
                }
            }
        });
        let routes = ctx.network.routes_to_nodes().then(|| {
            let every = ctx.config.resync.min(std::time::Duration::from_secs(30));
            tokio::spawn(network::route_to_nodes(
                ctx.client.clone(),
                ctx.config.node_name.clone(),
                ctx.network.clone(),
                ctx.node.pod_cidr.subscribe(),
                every,
            ))
        });
        let proxy = ctx.config.proxy.as_ref().map(|s| {
            let c = service_proxy::proxy_config(&ctx.config.node_name, ctx.node.identity.ip, s);
            service_proxy::start(ctx.client.clone(), c)
        });
        pods::run(ctx.clone(), shutdown).await;
        if let Some(p) = proxy {
            p.stop().await;
        }
        heartbeat.abort();
        cidr_task.abort();
        if let Some(r) = routes {
            r.abort();
        }
        let _ = stop_server.send(true);
        if let Some(s) = streaming {
            let _ = s.await;
        }
        Ok(())
    }
}
