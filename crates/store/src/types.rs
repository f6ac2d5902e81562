//! The values that cross the [`crate::Store`] contract.

use bytes::Bytes;
use tokio::sync::mpsc;

/// One key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision that created the key (since its last deletion).
    pub create_revision: i64,
    /// The revision of the last change.
    pub mod_revision: i64,
}

/// A read of one key or a key range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub key: String,
    /// `None` reads only `key`; otherwise the half-open range `[key, range_end)`.
    pub range_end: Option<String>,
    /// 0 reads the newest revision.
    pub revision: i64,
    /// 0 means no limit.
    pub limit: i64,
}

impl RangeRequest {
    pub fn key(key: &str) -> RangeRequest {
        RangeRequest { key: key.to_string(), ..Default::default() }
    }

    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &str) -> RangeRequest {
        RangeRequest { key: prefix.to_string(), range_end: Some(prefix_end(prefix)), ..Default::default() }
    }

    pub fn at_revision(mut self, revision: i64) -> RangeRequest {
        self.revision = revision;
        self
    }

    pub fn with_limit(mut self, limit: i64) -> RangeRequest {
        self.limit = limit;
        self
    }

    /// Starts a prefix range at `key` instead (for continuing a paginated list).
    pub fn starting_at(mut self, key: &str) -> RangeRequest {
        self.key = key.to_string();
        self
    }
}

/// The end of the range holding every key that starts with `prefix`, as etcd computes it.
pub fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            // Keys are UTF-8 strings; a bumped final byte of a multi-byte sequence is
            // not, so fall back to a lossy form, which still sorts after the prefix.
            return String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        }
    }
    // An empty end means "to the end of the keyspace".
    String::new()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut the answer short.
    pub more: bool,
    /// How many keys the whole range holds.
    pub count: i64,
    /// The revision the read saw.
    pub revision: i64,
}

/// A guard of a transaction: the key's mod-revision equals `mod_revision`
/// (0 = the key does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: i64,
}

impl Compare {
    pub fn mod_revision(key: &str, mod_revision: i64) -> Compare {
        Compare { key: key.to_string(), mod_revision }
    }

    pub fn absent(key: &str) -> Compare {
        Compare::mod_revision(key, 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Bytes },
    Delete { key: String },
    Get { key: String },
}

impl Op {
    pub fn put(key: &str, value: impl Into<Bytes>) -> Op {
        Op::Put { key: key.to_string(), value: value.into() }
    }
    pub fn delete(key: &str) -> Op {
        Op::Delete { key: key.to_string() }
    }
    pub fn get(key: &str) -> Op {
        Op::Get { key: key.to_string() }
    }
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } | Op::Get { key } => key,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.compares.extend(compares);
        self
    }
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.success.extend(ops);
        self
    }
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.failure.extend(ops);
        self
    }
    pub(crate) fn writes(&self, succeeded: bool) -> bool {
        let ops = if succeeded { &self.success } else { &self.failure };
        ops.iter().any(|op| !matches!(op, Op::Get { .. }))
    }
}

/// What one operation of a transaction saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The key's value before the put, if it existed.
    Put {
        prev: Option<KeyValue>,
    },
    /// The deleted value, or `None` if there was nothing to delete.
    Delete {
        prev: Option<KeyValue>,
    },
    Get(Option<KeyValue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store's revision after the transaction (its own revision if it wrote).
    pub revision: i64,
    pub results: Vec<OpResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// For a delete: the key with an empty value and the deletion's revision.
    pub kv: KeyValue,
    /// The value before the change, if the key existed.
    pub prev: Option<KeyValue>,
}

/// The changes a watch delivers, in revision order, in batches.
#[derive(Debug)]
pub struct WatchStream {
    pub(crate) rx: mpsc::Receiver<Result<Vec<Event>, StoreError>>,
}

impl WatchStream {
    /// The next batch of events; `None` when the store shut the watch down. An error
    /// ends the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<Event>, StoreError>> {
        self.rx.recv().await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("store i/o failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store file {path} is corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("the store is shut down")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bumps_the_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert_eq!(prefix_end(""), "");
        assert_eq!(RangeRequest::prefix("/a/").range_end.as_deref(), Some("/a0"));
    }
}
