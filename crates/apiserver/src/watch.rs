//! Watch fan-out: one store watch per stored resource, shared by every client that
//! watches it.
//!
//! A [`Feed`] follows one storage prefix and keeps a bounded ring of recent events,
//! so a client resuming from a recent resourceVersion is served from memory. A client
//! further behind than the ring gets its own store watch from its revision (the store
//! keeps a longer history and answers 410 only once that is compacted too).

use crate::objects::{Objects, decode, set_resource_version, store_error};
use api::ApiError;
use bytes::Bytes;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use store::{EventType, Store, WatchStream};
use tokio::sync::broadcast;

/// How many recent events each feed keeps for resuming clients.
const RING: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Modified,
    Deleted,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "ADDED",
            Kind::Modified => "MODIFIED",
            Kind::Deleted => "DELETED",
        }
    }
}

/// One change of one object, shared by all clients that receive it.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub rv: i64,
    pub key: String,
    /// The object after the change; for a deletion, its last state.
    pub obj: Arc<Value>,
    /// The object before the change, for selector transitions.
    pub prev: Option<Arc<Value>>,
    json: OnceLock<Bytes>,
}

impl Change {
    pub fn new(kind: Kind, rv: i64, key: String, obj: Value, prev: Option<Value>) -> Change {
        Change { kind, rv, key, obj: Arc::new(obj), prev: prev.map(Arc::new), json: OnceLock::new() }
    }

    /// The object serialised once, however many clients send it.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| Bytes::from(serde_json::to_vec(&*self.obj).unwrap_or_default()))
    }
}

/// What a feed publishes.
#[derive(Debug, Clone)]
pub enum Message {
    Change(Arc<Change>),
    /// The feed lost track of the store (its watch was compacted away): every client
    /// must end its watch and relist.
    Reset,
}

struct FeedState {
    ring: VecDeque<Arc<Change>>,
    /// Every change after this revision is in the ring.
    since: i64,
    tx: broadcast::Sender<Message>,
}

pub struct Feed {
    state: Mutex<FeedState>,
}

/// How a client's watch starts.
pub enum Start {
    /// Changes after this revision, from the feed.
    Shared { backlog: Vec<Arc<Change>>, rx: broadcast::Receiver<Message> },
    /// The client is behind the feed's ring: a dedicated store watch.
    Own(WatchStream),
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes without history (the caller reads the current state itself).
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.lock().tx.subscribe()
    }
}

/// Converts one store event into a change.
pub fn change_from_event(e: &store::Event) -> Result<Change, ApiError> {
    let prev = e.prev.as_ref().map(decode).transpose()?;
    match e.kind {
        EventType::Put => {
            let obj = decode(&e.kv)?;
            let kind = if prev.is_some() { Kind::Modified } else { Kind::Added };
            Ok(Change::new(kind, e.kv.mod_revision, e.kv.key.clone(), obj, prev))
        }
        EventType::Delete => {
            let mut last = prev.clone().unwrap_or(Value::Null);
            set_resource_version(&mut last, e.kv.mod_revision);
            Ok(Change::new(Kind::Deleted, e.kv.mod_revision, e.kv.key.clone(), last, prev))
        }
    }
}

pub struct WatchHub {
    store: Arc<dyn Store>,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl WatchHub {
    pub fn new(objects: &Objects) -> WatchHub {
        WatchHub { store: objects.store.clone(), feeds: Mutex::new(HashMap::new()) }
    }

    /// Number of live feeds (one per watched resource).
    pub fn feeds(&self) -> usize {
        self.feeds.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// The feed of a storage prefix, started on first use.
    pub async fn feed(&self, prefix: &str) -> Result<Arc<Feed>, ApiError> {
        if let Some(f) = self.feeds.lock().unwrap_or_else(|e| e.into_inner()).get(prefix) {
            return Ok(f.clone());
        }
        let since = self.store.current_revision().await.map_err(store_error)?;
        let stream = self.store.watch(prefix, since + 1).await.map_err(store_error)?;
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = feeds.get(prefix) {
            // Another request started it meanwhile; ours is dropped.
            return Ok(f.clone());
        }
        let (tx, _) = broadcast::channel(RING);
        let feed = Arc::new(Feed { state: Mutex::new(FeedState { ring: VecDeque::new(), since, tx }) });
        feeds.insert(prefix.to_string(), feed.clone());
        tokio::spawn(follow(self.store.clone(), prefix.to_string(), feed.clone(), stream));
        Ok(feed)
    }

    /// Starts a client's watch of `prefix` after revision `rv`.
    pub async fn start(&self, prefix: &str, rv: i64) -> Result<Start, ApiError> {
        let feed = self.feed(prefix).await?;
        {
            let st = feed.lock();
            if rv >= st.since {
                let backlog = st.ring.iter().filter(|c| c.rv > rv).cloned().collect();
                return Ok(Start::Shared { backlog, rx: st.tx.subscribe() });
            }
        }
        let stream = self.store.watch(prefix, rv + 1).await.map_err(|e| match e {
            store::StoreError::Compacted { .. } => ApiError::expired(format!("too old resource version: {rv}")),
            other => store_error(other),
        })?;
        Ok(Start::Own(stream))
    }
}

/// Follows the store for one feed until the process ends, restarting the store watch
/// when it fails.
async fn follow(store: Arc<dyn Store>, prefix: String, feed: Arc<Feed>, mut stream: WatchStream) {
    let mut last = feed.lock().since;
    loop {
        match stream.next().await {
            Some(Ok(events)) => {
                let mut st = feed.lock();
                for e in &events {
                    let change = match change_from_event(e) {
                        Ok(c) => Arc::new(c),
                        Err(err) => {
                            tracing::error!(key = %e.kv.key, error = %err, "skipping an undecodable stored object");
                            continue;
                        }
                    };
                    last = change.rv;
                    if st.ring.len() == RING
                        && let Some(old) = st.ring.pop_front()
                    {
                        st.since = old.rv;
                    }
                    st.ring.push_back(change.clone());
                    let _ = st.tx.send(Message::Change(change));
                }
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(prefix = %prefix, error = %e, "store watch ended; restarting");
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                match store.watch(&prefix, last + 1).await {
                    Ok(s) => stream = s,
                    Err(store::StoreError::Compacted { .. }) => {
                        // Changes were lost: start over from now, and make every
                        // client relist.
                        let Ok(now) = store.current_revision().await else { continue };
                        let Ok(s) = store.watch(&prefix, now + 1).await else { continue };
                        stream = s;
                        last = now;
                        let mut st = feed.lock();
                        st.ring.clear();
                        st.since = now;
                        let _ = st.tx.send(Message::Reset);
                    }
                    Err(e) => tracing::warn!(prefix = %prefix, error = %e, "store watch restart failed"),
                }
            }
        }
    }
}
