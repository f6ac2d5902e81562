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

pub mod auth;
pub mod body;
pub mod decode;
pub mod discovery;
pub mod fieldcheck;
pub mod fieldmanager;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod query;
pub mod rest;
pub mod server;
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
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Certificates and credentials live in `data_dir/tls`.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Extra names and addresses the serving certificate must cover.
    pub extra_sans: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("creating the default namespaces: {0}")]
    Bootstrap(api::ApiError),
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub pki: pki::Pki,
    pub ctx: Arc<Ctx>,
    shutdown: signal::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
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
        });
        // Serve at once (health and discovery answer while the namespaces are made).
        let (shutdown, rx) = signal::channel(false);
        let task = tokio::spawn(server::serve(ctx.clone(), listener, tls, rx));
        bootstrap(&ctx).await.map_err(Error::Bootstrap)?;
        ctx.ready.store(true, Ordering::Release);
        Ok(ApiServer { addr, pki, ctx, shutdown, task })
    }

    /// Stops accepting, closes open connections and waits for the listener to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Creates the default namespaces that are missing.
async fn bootstrap(ctx: &Ctx) -> Result<(), api::ApiError> {
    let namespaces =
        api::registry::find("", "v1", "namespaces").ok_or_else(|| api::ApiError::internal("no namespaces"))?;
    for name in DEFAULT_NAMESPACES {
        let key = namespaces.storage_key(None, name);
        if ctx.objects.get(&key).await?.is_some() {
            continue;
        }
        let mut ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": rest::new_uid(),
                "creationTimestamp": api::time::now_rfc3339(),
            },
        });
        api::defaults::apply(namespaces, &mut ns);
        if let Some(schema) = rest::schema_of(namespaces) {
            let now = api::time::now_rfc3339();
            fieldmanager::update(None, &mut ns, "rudder", None, "v1", &now, schema);
        }
        match ctx.objects.create(namespaces, &key, ns).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
