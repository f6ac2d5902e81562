//! Controllers: reconcile loops that compare what is wanted with what is, and act.
//!
//! Every controller is a client of the API server (never of the store), built on
//! kube-runtime's `Controller`, which queues keys, never runs two reconciles of one key
//! at once, and retries with backoff. Each controller module splits a pure decision
//! (`decide`, tested with plain data) from the I/O that carries it out, and reports
//! what it does as Events through [`recorder`]. Start with [`run`], which runs them all.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod events;
pub mod gc;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod owned_pods;
pub mod replicaset;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;

pub use events::Recorder;
pub use informer::Informers;
use kube::Client;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("invalid selector: {0}")]
    InvalidSelector(String),
    #[error("{0}")]
    Manage(String),
    #[error(transparent)]
    Plan(#[from] deployment::plan::PlanError),
}

/// Settings of the controllers that have any, each with upstream's meaning and our
/// defaults (see each module's `Config`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub node_lifecycle: nodelifecycle::Config,
    pub node_ipam: nodeipam::Config,
    /// The Endpoints and EndpointSlice controllers' batch period.
    pub endpoints: endpoints::Config,
    /// The cluster CA the root CA publisher puts in every namespace (PEM); none, no
    /// publisher.
    pub root_ca_pem: Option<String>,
}

/// An Event recorder for a controller, named as upstream names its controllers
/// (`replicaset-controller`, `deployment-controller`, ...); `kubectl describe` shows
/// the name in its From column.
pub fn recorder(client: &Client, controller: &'static str) -> Recorder {
    Recorder::new(client.clone(), controller)
}

/// Runs every controller until `shutdown` resolves. The controllers watch the kinds
/// several of them read (pods, nodes, ReplicaSets, Services, Jobs) through the
/// shared `informers`, which the scheduler may share too.
pub async fn run(
    client: Client,
    informers: Informers,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let all = async {
        // The endpoint controllers share one dispatcher of pod and Service changes.
        let feed = endpoints::Feed::start(&informers);
        // Each controller runs until the process ends; a new one adds its future here.
        tokio::join!(
            namespace::run(client.clone()),
            replicaset::run(client.clone(), informers.clone()),
            deployment::run(client.clone(), informers.clone()),
            job::run(client.clone(), informers.clone()),
            cronjob::run(client.clone(), informers.clone()),
            daemonset::run(client.clone(), informers.clone()),
            statefulset::run(client.clone()),
            nodelifecycle::run(client.clone(), informers.clone(), config.node_lifecycle.clone()),
            nodeipam::run(client.clone(), informers.clone(), config.node_ipam.clone()),
            disruption::run(client.clone(), informers.clone()),
            gc::run(client.clone()),
            serviceaccount::run(client.clone()),
            endpoints::run(client.clone(), feed.clone(), config.endpoints.clone()),
            endpointslice::run(client.clone(), feed.clone(), config.endpoints.clone()),
            endpointslicemirroring::run(client.clone(), feed.clone()),
            servicelb::run(client.clone(), informers.clone()),
            async {
                if let Some(ca) = config.root_ca_pem.clone() {
                    rootcacertpublisher::run(client.clone(), ca).await
                }
            },
        );
    };
    tokio::select! {
        _ = all => tracing::warn!("controllers ended"),
        _ = shutdown => {}
    }
}
