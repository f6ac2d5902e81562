//! The store conformance suite: every case runs against the embedded backend and
//! against a real etcd server, so both keep the same contract.

mod conformance;
mod embedded;

use std::sync::Arc;
use store::Store;

/// A backend under test, kept alive (with its files or server) for the test's length.
pub struct Backend {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

pub fn embedded() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let options = store::embedded::Options::default();
    let s = store::embedded::EmbeddedStore::open(&dir.path().join("store.db"), options).unwrap();
    Backend { store: Arc::new(s), _guard: Box::new(dir) }
}

pub async fn etcd() -> Backend {
    let server = store::testing::EtcdServer::start();
    let s = store::etcd::EtcdStore::connect(std::slice::from_ref(&server.endpoint)).await.unwrap();
    Backend { store: Arc::new(s), _guard: Box::new(server) }
}

/// Declares one conformance case for both backends.
#[macro_export]
macro_rules! conformance {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let b = $crate::embedded();
                super::$name(b.store.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                let b = $crate::etcd().await;
                super::$name(b.store.clone()).await;
            }
        }
    };
}
