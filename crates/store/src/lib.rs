//! Cluster state with revisions and watches, behind one etcd-shaped contract.
//!
//! Start with [`Store`]: range a key or prefix at a revision, run a transaction guarded
//! by mod-revisions, watch a prefix from a revision, compact history. Two backends
//! implement it: [`embedded::EmbeddedStore`] (the default; one durable file with group
//! commit) and [`etcd::EtcdStore`] (the real etcd server). The same conformance suite
//! (`tests/it`) runs against both. The store knows nothing about Kubernetes kinds.

pub mod embedded;
pub mod etcd;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use types::*;

use async_trait::async_trait;

/// The etcd-shaped contract every backend fulfils.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key, or `[key, range_end)`, as of `revision` (0 = the newest).
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError>;

    /// Evaluates the compares; runs `success` if all hold, `failure` otherwise. All
    /// writes of one transaction share one new revision; the answer comes only after
    /// the writes are durable.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Streams every change under `prefix` with a revision of at least `start_revision`
    /// (0 = from the next write). A start at or below the compacted revision fails with
    /// [`StoreError::Compacted`].
    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchStream, StoreError>;

    /// Forgets history at or below `revision`: older revisions can no longer be read or watched.
    async fn compact(&self, revision: i64) -> Result<(), StoreError>;

    /// The newest revision.
    async fn current_revision(&self) -> Result<i64, StoreError>;

    /// Reads the newest value of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.range(RangeRequest::key(key)).await?;
        Ok(resp.kvs.into_iter().next())
    }
}
