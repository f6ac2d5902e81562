//! The embedded store: pure Rust, one file under the data dir, durable before it answers.
//!
//! Reads are served from an in-memory multi-version index ([`mvcc`]). Every write goes
//! to one committer thread, which takes all writes waiting at that moment as a batch,
//! checks their guards in order, appends their records to the file ([`log`]) and syncs
//! once for the whole batch (group commit), then makes them visible and answers. So a
//! reader never sees a write that a crash could still take away, and concurrent writers
//! share one sync. History is kept for a bounded window of revisions for watches, and
//! compacted automatically.

mod log;
mod mvcc;

use crate::{
    Compare, Event, KeyValue, Op, OpResult, RangeRequest, RangeResponse, Store, StoreError, Txn, TxnResponse,
    WatchStream,
};
use async_trait::async_trait;
use log::Log;
use mvcc::{Change, Mvcc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc as std_mpsc};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The most transactions one sync makes durable.
const MAX_BATCH: usize = 4096;
/// The longest a batch waits to grow to the size of the last one.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);

/// Adds what is queued already to `batch`, up to [`MAX_BATCH`].
fn drain(rx: &std_mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

/// How the embedded store behaves; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Revisions of history always kept for watches and old reads.
    pub history: i64,
    /// Memory history may use (superseded values and events) before the oldest half is
    /// compacted away. The API server also compacts on its own schedule, as upstream's
    /// does with etcd; this bound holds between its compactions.
    pub history_bytes: u64,
    /// The file is rewritten as a snapshot once it is larger than this and four times
    /// the live data.
    pub rewrite_threshold: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { history: 1_000, history_bytes: 64 << 20, rewrite_threshold: 64 << 20 }
    }
}

/// Counters that show group commit at work.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Transactions that wrote.
    pub writes: u64,
    /// File syncs; fewer than writes when writers shared them.
    pub syncs: u64,
}

struct Shared {
    state: RwLock<Mvcc>,
    writes: AtomicU64,
    syncs: AtomicU64,
    /// Each committed batch's events, for live watches.
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

enum Request {
    Txn(Txn, oneshot::Sender<Result<TxnResponse, StoreError>>),
    Compact(i64, oneshot::Sender<Result<(), StoreError>>),
}

/// The embedded backend. Cheap to share behind an `Arc`; dropping the last handle
/// stops the committer thread.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    /// Taken on drop, which ends the committer.
    requests: Option<std_mpsc::Sender<Request>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    /// Waits for the committer to finish its batch and release the file, so the same
    /// file can be reopened right away.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path, options: Options) -> Result<EmbeddedStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (log, mvcc) = Log::open(path)?;
        let (events, _) = broadcast::channel(4096);
        let shared =
            Arc::new(Shared { state: RwLock::new(mvcc), writes: AtomicU64::new(0), syncs: AtomicU64::new(0), events });
        let (tx, rx) = std_mpsc::channel();
        let committer = Committer { shared: shared.clone(), log, options, failed: None };
        let handle = std::thread::Builder::new().name("store-commit".into()).spawn(move || committer.run(rx))?;
        Ok(EmbeddedStore { shared, requests: Some(tx), committer: Some(handle) })
    }

    pub fn stats(&self) -> Stats {
        Stats { writes: self.shared.writes.load(Ordering::Relaxed), syncs: self.shared.syncs.load(Ordering::Relaxed) }
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests.as_ref().ok_or(StoreError::Closed)?.send(request).map_err(|_| StoreError::Closed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Mvcc> {
        // A panic while holding the lock would be a bug; the index itself stays usable.
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.read().range(&req)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Txn(txn, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchStream, StoreError> {
        // Subscribe before reading history so that nothing falls between the two.
        let mut live = self.shared.events.subscribe();
        let (initial, mut last) = {
            let state = self.read();
            if start_revision > 0 {
                (state.events_since(start_revision, prefix)?, state.revision.max(start_revision - 1))
            } else {
                (Vec::new(), state.revision)
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let prefix = prefix.to_string();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if !initial.is_empty() && tx.send(Ok(initial)).await.is_err() {
                return;
            }
            loop {
                let batch: Vec<Event> = match live.recv().await {
                    Ok(batch) => batch
                        .iter()
                        .filter(|e| e.kv.mod_revision > last && e.kv.key.starts_with(&prefix))
                        .cloned()
                        .collect(),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the live feed: catch up from history instead.
                        let since = {
                            let state = shared.state.read().unwrap_or_else(|e| e.into_inner());
                            state.events_since(last + 1, &prefix)
                        };
                        match since {
                            Ok(events) => events,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if let Some(e) = batch.last() {
                    last = e.kv.mod_revision;
                    if tx.send(Ok(batch)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(WatchStream { rx })
    }

    async fn compact(&self, revision: i64) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Compact(revision, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn current_revision(&self) -> Result<i64, StoreError> {
        Ok(self.read().revision)
    }
}

/// The single writer: batches, logs, syncs, publishes.
struct Committer {
    shared: Arc<Shared>,
    log: Log,
    options: Options,
    /// Set after a failed write or sync: the file's tail is unknown, so every later
    /// write is refused until a restart replays what is really on disk.
    failed: Option<String>,
}

/// A transaction decided but not yet durable.
struct Decided {
    reply: oneshot::Sender<Result<TxnResponse, StoreError>>,
    response: TxnResponse,
    write: Option<(i64, Vec<Change>)>,
}

impl Committer {
    fn run(mut self, rx: std_mpsc::Receiver<Request>) {
        // While writers are many (the last sync was shared), a batch waits a little
        // for more before syncing, so that one sync serves more writes, but no longer
        // than until it is as large as the last one: writers that each wait for their
        // write before sending the next are all back by then, and waiting longer would
        // only delay them.
        let mut last = 1;
        while let Ok(first) = rx.recv() {
            let started = std::time::Instant::now();
            let mut batch = vec![first];
            drain(&rx, &mut batch);
            while batch.len() < last.min(MAX_BATCH) {
                let left = LINGER.saturating_sub(started.elapsed());
                match rx.recv_timeout(left) {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
                drain(&rx, &mut batch);
            }
            last = batch.len();
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let mut decided = Vec::with_capacity(batch.len());
        let mut compactions = Vec::new();
        let mut records = Vec::new();
        {
            let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
            // The values this batch has written so far, ahead of the index.
            let mut overlay: HashMap<String, Option<KeyValue>> = HashMap::new();
            let mut revision = state.revision;
            for request in batch {
                match request {
                    Request::Txn(txn, reply) => {
                        if let Some(why) = &self.failed {
                            let _ = reply.send(Err(StoreError::Io(std::io::Error::other(why.clone()))));
                            continue;
                        }
                        let d = decide(&state, &mut overlay, &mut revision, txn, reply);
                        if let Some((rev, changes)) = &d.write {
                            log::encode_txn(&mut records, *rev, changes);
                        }
                        decided.push(d);
                    }
                    Request::Compact(rev, reply) => compactions.push((rev, reply)),
                }
            }
        }
        if !records.is_empty() {
            if let Err(e) = self.log.append(&records).and_then(|_| self.log.sync()) {
                tracing::error!(error = %e, "store write failed; refusing writes until restart");
                self.failed = Some(e.to_string());
                for d in decided {
                    let _ = d.reply.send(Err(StoreError::Io(std::io::Error::other(e.to_string()))));
                }
                return;
            }
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        let mut published = Vec::new();
        {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            for d in &mut decided {
                if let Some((rev, changes)) = d.write.take() {
                    self.shared.writes.fetch_add(1, Ordering::Relaxed);
                    published.extend(state.apply(rev, changes, true));
                }
            }
            for (rev, reply) in compactions {
                let result = if rev > state.revision {
                    Err(StoreError::FutureRevision { requested: rev, current: state.revision })
                } else if rev < state.compacted {
                    Err(StoreError::Compacted { requested: rev, compacted: state.compacted })
                } else {
                    state.compact(rev);
                    Ok(())
                };
                let _ = reply.send(result);
            }
            while state.history_bytes > self.options.history_bytes
                && state.revision - state.compacted > self.options.history
            {
                let half = state.compacted + (state.revision - state.compacted) / 2;
                let to = half.min(state.revision - self.options.history);
                state.compact(to);
            }
            let oversized = self.log.size > self.options.rewrite_threshold && self.log.size > 4 * state.live_bytes;
            if oversized && let Err(e) = self.log.rewrite(&state) {
                // The old file is still intact; keep appending to it.
                tracing::warn!(error = %e, "store file rewrite failed");
            }
        }
        if !published.is_empty() {
            let _ = self.shared.events.send(Arc::new(published));
        }
        for d in decided {
            let _ = d.reply.send(Ok(d.response));
        }
    }
}

/// Evaluates one transaction against the index plus this batch's earlier writes.
fn decide(
    state: &Mvcc,
    overlay: &mut HashMap<String, Option<KeyValue>>,
    revision: &mut i64,
    txn: Txn,
    reply: oneshot::Sender<Result<TxnResponse, StoreError>>,
) -> Decided {
    let current = |overlay: &HashMap<String, Option<KeyValue>>, key: &str| match overlay.get(key) {
        Some(v) => v.clone(),
        None => state.latest(key),
    };
    let holds = |c: &Compare| current(overlay, &c.key).map_or(0, |kv| kv.mod_revision) == c.mod_revision;
    let succeeded = txn.compares.iter().all(holds);
    let writes = txn.writes(succeeded);
    let ops = if succeeded { txn.success } else { txn.failure };
    let rev = if writes { *revision + 1 } else { *revision };
    let mut results = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    for op in ops {
        match op {
            Op::Get { key } => results.push(OpResult::Get(current(overlay, &key))),
            Op::Put { key, value } => {
                let prev = current(overlay, &key);
                let create_revision = prev.as_ref().map_or(rev, |p| p.create_revision);
                let kv = KeyValue { key: key.clone(), value: value.clone(), create_revision, mod_revision: rev };
                overlay.insert(key.clone(), Some(kv));
                changes.push(Change { key, value: Some(value) });
                results.push(OpResult::Put { prev });
            }
            Op::Delete { key } => {
                let prev = current(overlay, &key);
                if prev.is_some() {
                    overlay.insert(key.clone(), None);
                    changes.push(Change { key, value: None });
                }
                results.push(OpResult::Delete { prev });
            }
        }
    }
    // A transaction whose writes changed nothing (a delete of a missing key) takes no revision.
    let write = if changes.is_empty() {
        None
    } else {
        *revision = rev;
        Some((rev, changes))
    };
    Decided { reply, response: TxnResponse { succeeded, revision: *revision, results }, write }
}
