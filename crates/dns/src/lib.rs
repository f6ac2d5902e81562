//! Cluster DNS: an authoritative server for the cluster domain (`cluster.local`)
//! on UDP and TCP, answering from Services and EndpointSlices the way CoreDNS's
//! `kubernetes` plugin does, and forwarding every other name to the node's
//! upstream resolvers.
//!
//! Start with [`run`]. The parts: [`wire`] reads and writes DNS messages,
//! [`cache`] holds the compact copy of the cluster that `watch` keeps current,
//! [`answer`] decides the reply to a query without I/O, [`forward`] talks to the
//! upstream resolvers, and `server` moves packets between them.

pub mod answer;
pub mod cache;
pub mod forward;
pub mod fuzzing;
mod server;
mod watch;
pub mod wire;

pub use server::Server;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster domain {0:?}")]
    InvalidDomain(String),
    #[error("binding {proto} {addr}: {source}")]
    Bind { proto: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("reading {path}: {source}")]
    ResolvConf { path: PathBuf, source: std::io::Error },
    #[error("{path} names no nameserver to forward to")]
    NoUpstream { path: PathBuf },
    #[error("none of the {tried} upstream resolvers answered")]
    UpstreamFailed { tried: usize },
    #[error("upstream reply is malformed: {0}")]
    UpstreamReply(wire::WireError),
    #[error("serving DNS: {0}")]
    Io(#[from] std::io::Error),
}

/// How the server listens and answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP and TCP are both served on each address; port 0 picks one port for both.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// TTL of every cluster answer (CoreDNS's default is 5 s).
    pub ttl: u32,
    /// Where the upstream resolvers are listed.
    pub resolv_conf: PathBuf,
    /// Upstreams to use instead of reading `resolv_conf`.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long to wait for one upstream before trying the next.
    pub upstream_timeout: Duration,
    /// The server's own ClusterIP (the `kube-dns` Service), for `ns.dns.<domain>`.
    pub dns_ip: Option<IpAddr>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 53))],
            domain: "cluster.local".into(),
            ttl: 5,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            upstreams: None,
            upstream_timeout: Duration::from_secs(2),
            dns_ip: None,
        }
    }
}

/// Binds the listeners, watches Services and EndpointSlices through `client`, and
/// serves until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let server = Server::bind(&config).await?;
    server.run(client, shutdown).await
}
