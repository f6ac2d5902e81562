//! The etcd backend: the same contract served by a real etcd cluster over gRPC, for
//! control planes that outgrow one machine.

use crate::{
    Event, EventType, KeyValue, Op, OpResult, RangeRequest, RangeResponse, Store, StoreError, Txn, TxnResponse,
    WatchStream,
};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client as etcd;
use tokio::sync::mpsc;

pub struct EtcdStore {
    client: etcd::Client,
}

impl EtcdStore {
    /// Connects to the given endpoints (`http://127.0.0.1:2379`, ...).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StoreError> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_keep_alive(std::time::Duration::from_secs(10), std::time::Duration::from_secs(5));
        let client = etcd::Client::connect(endpoints, Some(options)).await.map_err(map_err)?;
        Ok(EtcdStore { client })
    }
}

fn map_err(e: etcd::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        StoreError::Compacted { requested: 0, compacted: 0 }
    } else if text.contains("future revision") {
        StoreError::FutureRevision { requested: 0, current: 0 }
    } else {
        StoreError::Etcd(text)
    }
}

fn kv(k: &etcd::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: Bytes::copy_from_slice(k.value()),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
    }
}

fn header_revision(h: Option<&etcd::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

fn to_op(op: Op) -> etcd::TxnOp {
    match op {
        Op::Put { key, value } => etcd::TxnOp::put(key, value.to_vec(), Some(etcd::PutOptions::new().with_prev_key())),
        Op::Delete { key } => etcd::TxnOp::delete(key, Some(etcd::DeleteOptions::new().with_prev_key())),
        Op::Get { key } => etcd::TxnOp::get(key, None),
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let mut opts = etcd::GetOptions::new().with_revision(req.revision).with_limit(req.limit);
        if let Some(end) = &req.range_end {
            // etcd spells "to the end of the keyspace" as a single zero byte.
            opts = if end.is_empty() { opts.with_range(vec![0u8]) } else { opts.with_range(end.as_bytes()) };
        }
        let resp = self.client.kv_client().get(req.key.as_bytes(), Some(opts)).await.map_err(map_err)?;
        Ok(RangeResponse {
            kvs: resp.kvs().iter().map(kv).collect(),
            more: resp.more(),
            count: resp.count(),
            revision: header_revision(resp.header()),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let compares: Vec<etcd::Compare> = txn
            .compares
            .iter()
            .map(|c| etcd::Compare::mod_revision(c.key.as_bytes(), etcd::CompareOp::Equal, c.mod_revision))
            .collect();
        let request = etcd::Txn::new()
            .when(compares)
            .and_then(txn.success.into_iter().map(to_op).collect::<Vec<_>>())
            .or_else(txn.failure.into_iter().map(to_op).collect::<Vec<_>>());
        let resp = self.client.kv_client().txn(request).await.map_err(map_err)?;
        let results = resp
            .op_responses()
            .into_iter()
            .map(|r| match r {
                etcd::TxnOpResponse::Put(p) => OpResult::Put { prev: p.prev_key().map(kv) },
                etcd::TxnOpResponse::Delete(d) => OpResult::Delete { prev: d.prev_kvs().first().map(kv) },
                etcd::TxnOpResponse::Get(g) => OpResult::Get(g.kvs().first().map(kv)),
                etcd::TxnOpResponse::Txn(_) => OpResult::Get(None),
            })
            .collect();
        Ok(TxnResponse { succeeded: resp.succeeded(), revision: header_revision(resp.header()), results })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchStream, StoreError> {
        let mut opts = etcd::WatchOptions::new().with_prefix().with_prev_key();
        if start_revision > 0 && start_revision <= self.current_revision().await? {
            // etcd reports a compacted start only after the watch is created, as a
            // later cancel; a read at that revision tells at once.
            let probe = RangeRequest::prefix(prefix).at_revision(start_revision).with_limit(1);
            if let Err(StoreError::Compacted { .. }) = self.range(probe).await {
                return Err(StoreError::Compacted { requested: start_revision, compacted: 0 });
            }
        }
        if start_revision > 0 {
            opts = opts.with_start_revision(start_revision);
        }
        let mut stream = self.client.watch_client().watch(prefix.as_bytes(), Some(opts)).await.map_err(map_err)?;
        // etcd answers a watch on a compacted revision by cancelling it; report that
        // before handing the stream out, as the embedded backend does.
        let first = stream.message().await.map_err(map_err)?;
        let (tx, rx) = mpsc::channel(64);
        let pending = match first {
            Some(r) if r.canceled() || r.compact_revision() > 0 => {
                return Err(StoreError::Compacted { requested: start_revision, compacted: r.compact_revision() });
            }
            Some(r) => Some(r),
            None => return Err(StoreError::Closed),
        };
        tokio::spawn(async move {
            let mut next = pending;
            loop {
                let Some(resp) = next.take() else {
                    match stream.message().await {
                        Ok(Some(r)) => next = Some(r),
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(map_err(e))).await;
                            return;
                        }
                    }
                    continue;
                };
                if resp.canceled() || resp.compact_revision() > 0 {
                    let compacted = resp.compact_revision();
                    let _ = tx.send(Err(StoreError::Compacted { requested: start_revision, compacted })).await;
                    return;
                }
                let events: Vec<Event> = resp
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let k = kv(e.kv()?);
                        let prev = e.prev_kv().map(kv);
                        Some(match e.event_type() {
                            etcd::EventType::Put => Event { kind: EventType::Put, kv: k, prev },
                            etcd::EventType::Delete => Event {
                                kind: EventType::Delete,
                                kv: KeyValue { value: Bytes::new(), create_revision: 0, ..k },
                                prev,
                            },
                        })
                    })
                    .collect();
                if !events.is_empty() && tx.send(Ok(events)).await.is_err() {
                    // The watcher went away; dropping `stream` cancels the etcd watch.
                    return;
                }
            }
        });
        Ok(WatchStream { rx })
    }

    async fn compact(&self, revision: i64) -> Result<(), StoreError> {
        let opts = etcd::CompactionOptions::new().with_physical();
        self.client.kv_client().compact(revision, Some(opts)).await.map_err(map_err)?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<i64, StoreError> {
        let resp = self
            .client
            .kv_client()
            .get("\0".as_bytes(), Some(etcd::GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        Ok(header_revision(resp.header()))
    }
}
