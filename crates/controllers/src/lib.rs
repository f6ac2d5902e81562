//! Controllers: reconcile loops that compare what is wanted with what is, and act.
//!
//! Every controller is a client of the API server (never of the store), built on
//! kube-runtime's `Controller`, which queues keys, never runs two reconciles of one key
//! at once, and retries with backoff. Each controller module splits a pure decision
//! (`decide`, tested with plain data) from the I/O that carries it out. Start with
//! [`run`], which starts them all.

pub mod namespace;

use kube::Client;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("discovery failed: {0}")]
    Discovery(String),
}

/// Runs every controller until `shutdown` resolves.
pub async fn run(client: Client, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
    tokio::select! {
        _ = namespace::run(client.clone()) => tracing::warn!("namespace controller ended"),
        _ = shutdown => {}
    }
}
