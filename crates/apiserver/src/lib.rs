//! The Kubernetes REST front door.
//!
//! Start with [`ApiServer::start`]: it loads or creates the certificates and
//! credentials ([`pki`]), ensures the default namespaces exist, and serves HTTPS
//! ([`server`]). Requests on resources go to [`rest`], which reads and writes objects
//! through [`objects`] (the only user of the store) and fans watches out through
//! [`watch`]. Bodies are decoded by [`body`] (JSON, YAML, and [`decode`] for
//! protobuf), patched by [`patch`], and their field ownership is tracked by
//! [`fieldmanager`]. Discovery and OpenAPI are served from [`discovery`] and
//! [`openapi`].

pub mod admission;
pub mod alloc;
pub mod auth;
pub mod authz;
pub mod body;
pub mod decode;
pub mod discovery;
pub mod fieldcheck;
pub mod fieldmanager;
#[doc(hidden)]
pub mod fuzzing;
pub mod loopback;
pub mod metrics;
pub mod metricsapi;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod query;
pub mod rawjson;
pub mod rest;
pub mod server;
pub mod serviceaccount;
pub mod strategy;
pub mod table;
pub mod watch;
pub mod wire;

use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use store::Store;
use tokio::sync::watch as signal;

/// What every handler shares.
pub struct Ctx {
    pub objects: objects::Objects,
    pub hub: watch::WatchHub,
    pub auth: auth::Authenticator,
    pub metrics: metrics::Metrics,
    pub ready: AtomicBool,
    /// `host:port` as discovery advertises it.
    pub server_address: String,
    /// The cluster CA, served at `/cacerts` for joining nodes.
    pub ca_pem: String,
    /// TLS towards node agents (the kubelet-client certificate, the CA as the only
    /// issuer of their serving certificates), for the streaming subresources.
    pub kubelet_tls: Option<Arc<rustls::ClientConfig>>,
    /// Signs node agents' serving certificates (`/v1-rudder/serving-kubelet.crt`).
    pub kubelet_issuer: Option<pki::KubeletIssuer>,
    /// The `tolerationSeconds` admission gives pods for the not-ready and unreachable
    /// `NoExecute` taints (see [`admission`]).
    pub default_toleration_seconds: i64,
    /// Node and pod usage for `metrics.k8s.io` ([`metricsapi`]).
    pub resource_metrics: metricsapi::Cache,
    /// ClusterIPs and NodePorts of Services (see [`alloc`]).
    pub services: alloc::ServiceAllocator,
    /// Signs and checks service-account tokens ([`serviceaccount`]).
    pub sa_tokens: serviceaccount::Issuer,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Certificates and credentials live in `data_dir/tls`.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Extra names and addresses the serving certificate must cover.
    pub extra_sans: Vec<String>,
    /// `--default-toleration-seconds`: how long pods stay on a node that is not ready
    /// or unreachable unless they say otherwise (upstream: 300; ours is short so that a
    /// lost node's pods run elsewhere within 15 s).
    pub default_toleration_seconds: i64,
    /// `--service-cidr`: where ClusterIPs come from.
    pub service_cidr: String,
    /// `--service-node-port-range`: where NodePorts come from.
    pub node_port_range: String,
    /// `--advertise-address`: where the `kubernetes` Service's endpoints point
    /// (default: see [`alloc::kubernetes::advertise_address`]).
    pub advertise_address: Option<IpAddr>,
    /// The port of the cluster DNS server on the advertise address: when set, the
    /// `kube-system/kube-dns` Service is kept pointing at it.
    pub cluster_dns_port: Option<u16>,
}

impl Config {
    /// A server on loopback at a port the OS picks, with the default ranges: for
    /// tests and benchmarks that start one in-process.
    pub fn local(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            bind_address: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            extra_sans: vec![],
            default_toleration_seconds: DEFAULT_TOLERATION_SECONDS,
            service_cidr: DEFAULT_SERVICE_CIDR.into(),
            node_port_range: DEFAULT_NODE_PORT_RANGE.into(),
            advertise_address: None,
            cluster_dns_port: None,
        }
    }
}

/// Upstream k3s's defaults for [`Config::service_cidr`] and [`Config::node_port_range`].
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// Our default for [`Config::default_toleration_seconds`].
pub const DEFAULT_TOLERATION_SECONDS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("creating the default namespaces: {0}")]
    Bootstrap(api::ApiError),
    #[error("service ranges: {0}")]
    Ranges(#[from] alloc::RangeError),
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub pki: pki::Pki,
    pub ctx: Arc<Ctx>,
    shutdown: signal::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    compactor: tokio::task::JoinHandle<()>,
    endpoint_reconciler: tokio::task::JoinHandle<()>,
}

/// How often history older than the previous interval is compacted away, as upstream's
/// API server compacts etcd: watches and paginated lists can resume from any revision
/// of the last five to ten minutes.
pub const COMPACTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Compacts the store, every `interval`, to the revision it had one interval before.
async fn compact_periodically(store: Arc<dyn Store>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = None;
    loop {
        tick.tick().await;
        let Ok(now) = store.current_revision().await else { continue };
        if let Some(rev) = previous {
            match store.compact(rev).await {
                Ok(()) => tracing::debug!(revision = rev, "compacted store history"),
                // Already compacted further (the embedded store bounds its own history).
                Err(store::StoreError::Compacted { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "store compaction failed"),
            }
        }
        previous = Some(now);
    }
}

/// The namespaces every cluster starts with.
pub const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<ApiServer, Error> {
        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        if !config.bind_address.is_unspecified() {
            sans.push(config.bind_address.to_string());
        }
        for s in &config.extra_sans {
            if !sans.contains(s) {
                sans.push(s.clone());
            }
        }
        let services = alloc::ServiceAllocator::new(&config.service_cidr, &config.node_port_range)?;
        let pki = pki::Pki::load_or_create(&config.data_dir.join("tls"), &sans)?;
        let tls = pki.server_config()?;
        let addr = SocketAddr::new(config.bind_address, config.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let objects = objects::Objects::new(store);
        let ctx = Arc::new(Ctx {
            hub: watch::WatchHub::new(&objects),
            objects,
            auth: auth::Authenticator::new(&pki.admin_token, &pki.node_token(), &pki.node_secret),
            metrics: metrics::Metrics::default(),
            ready: AtomicBool::new(false),
            server_address: addr.to_string(),
            ca_pem: pki.ca_pem.clone(),
            kubelet_tls: Some(pki.kubelet_client_config()?),
            kubelet_issuer: Some(pki.kubelet_issuer()),
            default_toleration_seconds: config.default_toleration_seconds,
            resource_metrics: metricsapi::Cache::default(),
            services,
            sa_tokens: serviceaccount::Issuer::new(pki.service_account_key()?),
        });
        // Serve at once (health and discovery answer while the namespaces are made).
        let (shutdown, rx) = signal::channel(false);
        let task = tokio::spawn(server::serve(ctx.clone(), listener, tls, rx));
        let compactor = tokio::spawn(compact_periodically(ctx.objects.store.clone(), COMPACTION_INTERVAL));
        bootstrap(&ctx).await.map_err(Error::Bootstrap)?;
        let advertise = alloc::kubernetes::advertise_address(config.bind_address, config.advertise_address);
        let system = system_services(&ctx, advertise, addr.port(), config.cluster_dns_port);
        for want in &system {
            alloc::kubernetes::reconcile(&ctx, want).await.map_err(Error::Bootstrap)?;
        }
        let endpoint_reconciler = tokio::spawn(alloc::kubernetes::run(ctx.clone(), system));
        ctx.ready.store(true, Ordering::Release);
        Ok(ApiServer { addr, pki, ctx, shutdown, task, compactor, endpoint_reconciler })
    }

    /// Stops accepting, closes open connections and waits for the listener to end.
    pub async fn shutdown(self) {
        self.compactor.abort();
        self.endpoint_reconciler.abort();
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// The Services the API server keeps itself: `kubernetes` at the first address of
/// the service CIDR and, with a DNS server, `kube-dns` at the tenth.
fn system_services(
    ctx: &Ctx,
    advertise: IpAddr,
    port: u16,
    dns_port: Option<u16>,
) -> Vec<alloc::kubernetes::SystemService> {
    use alloc::kubernetes as k;
    let mut out = Vec::new();
    if let Some(ip) = ctx.services.ips.nth(1) {
        out.push(k::kubernetes(ip, advertise, port));
    }
    if let (Some(ip), Some(dns_port)) = (ctx.services.ips.nth(k::DNS_IP_INDEX), dns_port) {
        out.push(k::kube_dns(ip, advertise, dns_port));
    }
    out
}

/// Creates the default namespaces and the system priority classes that are missing.
async fn bootstrap(ctx: &Ctx) -> Result<(), api::ApiError> {
    // What Services hold is known before any is written (requests wait for it).
    let report = ctx.services.repair(ctx.objects.store.as_ref()).await?;
    if report != alloc::RepairReport::default() {
        tracing::warn!(?report, "repaired service allocations");
    }
    let find = |g, v, p| api::registry::find(g, v, p).ok_or_else(|| api::ApiError::internal(format!("{p} not served")));
    let namespaces = find("", "v1", "namespaces")?;
    for name in DEFAULT_NAMESPACES {
        ensure(ctx, namespaces, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await?;
    }
    let classes = find("scheduling.k8s.io", "v1", "priorityclasses")?;
    for (name, value) in api::validation::SYSTEM_PRIORITY_CLASSES {
        let description = "Used for system critical pods that must not be moved from their current node.";
        let class = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
        });
        ensure(ctx, classes, class).await?;
    }
    Ok(())
}

/// Creates a cluster-scoped object unless it exists.
async fn ensure(ctx: &Ctx, res: &'static api::Resource, mut obj: serde_json::Value) -> Result<(), api::ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let key = res.storage_key(None, &name);
    if ctx.objects.get(res, &key).await?.is_some() {
        return Ok(());
    }
    obj["metadata"]["uid"] = json!(rest::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(api::time::now_rfc3339());
    api::defaults::apply(res, &mut obj);
    if let Some(schema) = rest::schema_of(res) {
        let now = api::time::now_rfc3339();
        fieldmanager::update(None, &mut obj, "rudder", None, &res.api_version(), &now, schema);
    }
    match ctx.objects.create(res, &key, obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// A started server on loopback over an embedded store in a temporary directory,
/// without controllers, for tests that need the whole request path or a `Ctx`.
#[cfg(test)]
pub(crate) async fn test_server() -> (tempfile::TempDir, ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::local(dir.path().to_path_buf());
    let store: Arc<dyn Store> =
        Arc::new(store::embedded::EmbeddedStore::open(&dir.path().join("s.db"), Default::default()).unwrap());
    let server = ApiServer::start(config, store).await.unwrap();
    (dir, server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Op, RangeRequest, StoreError, Txn};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_older_than_one_interval_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Store> =
            Arc::new(store::embedded::EmbeddedStore::open(&dir.path().join("s.db"), Default::default()).unwrap());
        let first = s.txn(Txn::new().and_then([Op::put("/k", "1")])).await.unwrap().revision;
        s.txn(Txn::new().and_then([Op::put("/k", "2")])).await.unwrap();
        let task = tokio::spawn(compact_periodically(s.clone(), std::time::Duration::from_millis(100)));
        // The first tick records the revision; the second compacts to it.
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        task.abort();
        let old = s.range(RangeRequest::key("/k").at_revision(first)).await;
        assert!(matches!(old, Err(StoreError::Compacted { .. })), "{old:?}");
        assert_eq!(s.get("/k").await.unwrap().unwrap().value, "2");
    }
}
