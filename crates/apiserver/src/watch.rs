//! Watch fan-out: one store watch per stored resource, shared by every client that
//! watches it.
//!
//! A [`Feed`] follows one storage prefix and keeps a bounded ring of recent events,
//! so a client resuming from a recent resourceVersion is served from memory. A client
//! further behind than the ring gets its own store watch from its revision (the store
//! keeps a longer history and answers 410 only once that is compacted too).

use crate::objects::{Objects, decode, set_resource_version, store_error};
use api::{ApiError, Resource};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use store::{EventType, Store, WatchStream};
use tokio::sync::broadcast;

/// How many recent events each feed keeps for resuming clients.
const RING: usize = 2048;

/// How long a change stays in a feed's ring at most. A client further behind reads
/// the store's history, which is kept at least this long (`COMPACTION_INTERVAL`); the
/// bound keeps a quiet server's ring, and so its memory, from filling with the
/// heartbeats of hours.
const FRESH: std::time::Duration = crate::COMPACTION_INTERVAL;

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

/// One change of one object, shared by all clients that receive it. A feed keeps
/// thousands of these, so a change holds its object only as the JSON every client
/// sends, and of the states before and after only what selectors read.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub rv: i64,
    pub key: String,
    /// The object after the change (for a deletion, its last state), serialised once
    /// however many clients send it: a slice of `line`.
    pub json: Bytes,
    /// The whole watch event line for this change's own kind
    /// (`{"type":"MODIFIED","object":...}` and a newline), which most clients send as
    /// it is: the same bytes for all, no copy per client.
    pub line: Bytes,
    /// What selectors read of that object, and of the object before the change (for
    /// selector transitions).
    pub now: Views,
    pub prev: Option<Views>,
    /// The object as `PartialObjectMetadata`, made once for the clients that watch
    /// metadata only (the garbage collector watches every resource so).
    partial: OnceLock<Bytes>,
    /// The event line without the object's `metadata.managedFields`, made once for
    /// the in-process control loops, which never read them (see
    /// [`crate::loopback::Loopback::without_managed_fields`]).
    lean: OnceLock<Bytes>,
    /// `partial` without the managedFields, for the same.
    lean_partial: OnceLock<Bytes>,
    /// When the feed received it.
    at: std::time::Instant,
}

impl Change {
    /// The whole object, for the clients that send something other than it as it is
    /// stored (tables, metadata only, another version).
    pub fn object(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The event line of this change's own kind, the object without its
    /// `metadata.managedFields`.
    pub fn lean_line(&self) -> &Bytes {
        self.lean.get_or_init(|| match crate::rawjson::without_managed_fields(&self.json) {
            Some(json) => event_line(self.kind.as_str(), &json),
            None => self.line.clone(),
        })
    }

    /// The object reduced to its metadata, as `PartialObjectMetadata` JSON, with or
    /// without its `managedFields`.
    pub fn partial(&self, without_managed_fields: bool) -> &Bytes {
        if without_managed_fields {
            // Cut from the metadata alone, not from a copy of the whole object.
            return self.lean_partial.get_or_init(|| {
                let partial = partial_of(&self.json);
                crate::rawjson::without_managed_fields(&partial).map_or(partial, Bytes::from)
            });
        }
        self.partial.get_or_init(|| partial_of(&self.json))
    }
}

/// An object's JSON reduced to its metadata, as `PartialObjectMetadata` JSON.
fn partial_of(json: &[u8]) -> Bytes {
    match crate::rawjson::metadata_span(json) {
        Some((start, end)) => {
            let head = br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#;
            let mut out = Vec::with_capacity(head.len() + end - start + 1);
            out.extend_from_slice(head);
            out.extend_from_slice(&json[start..end]);
            out.push(b'}');
            Bytes::from(out)
        }
        None => {
            let obj = serde_json::from_slice(json).unwrap_or(Value::Null);
            Bytes::from(serde_json::to_vec(&crate::table::partial(&obj)).unwrap_or_default())
        }
    }
}

/// What a feed publishes: only the revision of each change, which subscribers look
/// up in the ring. (The broadcast channel keeps its last messages until they are
/// overwritten; holding the changes themselves there would keep them alive after the
/// ring let them go.)
#[derive(Debug, Clone)]
enum Message {
    Change(i64),
    /// The feed lost track of the store (its watch was compacted away): every client
    /// must end its watch and relist.
    Reset,
}

/// A client's place in a feed.
pub struct Subscription {
    feed: Arc<Feed>,
    rx: broadcast::Receiver<Message>,
}

/// What a subscription gives next.
pub enum Next {
    Change(Arc<Change>),
    /// The client fell behind what the feed still holds (or the feed was reset):
    /// it must relist.
    Behind,
    /// The feed is gone.
    Closed,
}

impl Subscription {
    /// The next change; cancel-safe, as `tokio::select!` needs.
    pub async fn next(&mut self) -> Next {
        match self.rx.recv().await {
            Ok(Message::Change(rv)) => match self.feed.change(rv) {
                Some(c) => Next::Change(c),
                None => Next::Behind,
            },
            Ok(Message::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => Next::Behind,
            Err(broadcast::error::RecvError::Closed) => Next::Closed,
        }
    }
}

struct FeedState {
    ring: VecDeque<Arc<Change>>,
    /// Every change after this revision is in the ring.
    since: i64,
    tx: broadcast::Sender<Message>,
}

impl FeedState {
    /// Adds a change, first letting go of those the ring no longer keeps: past
    /// `RING` of them, or older than `FRESH`.
    fn push(&mut self, change: Arc<Change>, now: std::time::Instant) {
        while self.ring.front().is_some_and(|old| self.ring.len() >= RING || now.duration_since(old.at) > FRESH) {
            if let Some(old) = self.ring.pop_front() {
                self.since = old.rv;
            }
        }
        self.ring.push_back(change);
    }
}

pub struct Feed {
    state: Mutex<FeedState>,
}

/// How a client's watch starts.
pub enum Start {
    /// Changes after this revision, from the feed.
    Shared { backlog: Vec<Arc<Change>>, sub: Subscription },
    /// The client is behind the feed's ring: a dedicated store watch.
    Own(WatchStream),
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes without history (the caller reads the current state itself).
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        Subscription { feed: self.clone(), rx: self.lock().tx.subscribe() }
    }

    /// The change at revision `rv`, if the ring still holds it.
    fn change(&self, rv: i64) -> Option<Arc<Change>> {
        let st = self.lock();
        st.ring.binary_search_by_key(&rv, |c| c.rv).ok().map(|i| st.ring[i].clone())
    }
}

/// A watch event line: `{"type":KIND,"object":OBJECT}` and a newline, the object
/// already JSON. (The object's bytes end the line but for its last two bytes.)
pub fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// What selectors read of one stored object, made from its bytes when a watch with a
/// selector first asks: most watches have none (every control loop's), and making
/// both views of every change was a third of the watch hub's work.
#[derive(Debug)]
pub struct Views {
    stored: Bytes,
    full: OnceLock<Value>,
    labels: OnceLock<Value>,
}

impl Views {
    pub(crate) fn new(stored: Bytes) -> Views {
        Views { stored, full: OnceLock::new(), labels: OnceLock::new() }
    }

    /// What label and field selectors read ([`api::fields::selectable`]); `Null`,
    /// matching no selector, if the bytes do not parse.
    pub fn full(&self, res: &Resource) -> &Value {
        self.full.get_or_init(|| {
            if self.stored.is_empty() {
                return Value::Null;
            }
            api::fields::selectable(res, &self.stored).unwrap_or(Value::Null)
        })
    }

    /// What label selectors read: the labels alone, cut from the metadata's bytes (the
    /// watches with selectors in the server's own control loops have label selectors
    /// only, and see every pod change).
    pub fn labels(&self, res: &Resource) -> &Value {
        self.labels.get_or_init(|| {
            let cut = || {
                let (start, end) = crate::rawjson::metadata_span(&self.stored)?;
                let meta = &self.stored[start..end];
                match crate::rawjson::value_of(meta, b"labels")? {
                    Some((from, to)) => serde_json::from_slice::<Value>(&meta[from..to]).ok(),
                    None => Some(Value::Null),
                }
            };
            match cut() {
                Some(Value::Null) => serde_json::json!({"metadata": {}}),
                Some(labels) => serde_json::json!({"metadata": {"labels": labels}}),
                None => self.full(res).clone(),
            }
        })
    }
}

/// Converts one store event of a resource into a change, from the stored bytes
/// without decoding the objects whole (see [`crate::rawjson`]).
pub fn change_from_event(e: &store::Event) -> Result<Change, ApiError> {
    let (kind, last) = match (e.kind, &e.prev) {
        (EventType::Put, None) => (Kind::Added, &e.kv),
        (EventType::Put, Some(_)) => (Kind::Modified, &e.kv),
        (EventType::Delete, Some(prev)) => (Kind::Deleted, prev),
        // A deletion the store could not give the last state of.
        (EventType::Delete, None) => (Kind::Deleted, &e.kv),
    };
    let unreadable = |key: &str, err: &dyn std::fmt::Display| {
        ApiError::internal(format!("stored object {key} does not decode: {err}"))
    };
    let json = match crate::rawjson::with_resource_version(&last.value, e.kv.mod_revision) {
        Some(json) => json,
        None => {
            let mut obj = if last.value.is_empty() { Value::Null } else { decode(last)? };
            set_resource_version(&mut obj, e.kv.mod_revision);
            serde_json::to_vec(&obj).map_err(|err| unreadable(&last.key, &err))?
        }
    };
    let line = event_line(kind.as_str(), &json);
    let json = line.slice(line.len() - json.len() - 2..line.len() - 2);
    Ok(Change {
        kind,
        rv: e.kv.mod_revision,
        key: e.kv.key.clone(),
        json,
        line,
        now: Views::new(last.value.clone()),
        prev: e.prev.as_ref().map(|p| Views::new(p.value.clone())),
        partial: OnceLock::new(),
        lean: OnceLock::new(),
        lean_partial: OnceLock::new(),
        at: std::time::Instant::now(),
    })
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

    /// The feed of a resource's storage, started on first use. (Resources that share
    /// storage, the two Event versions, share a feed: their field labels are the same.)
    pub async fn feed(&self, res: &'static Resource) -> Result<Arc<Feed>, ApiError> {
        let prefix = res.storage_prefix();
        let prefix = prefix.as_str();
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
        tokio::spawn(follow(self.store.clone(), res, feed.clone(), stream));
        Ok(feed)
    }

    /// Starts a client's watch of a resource after revision `rv`.
    pub async fn start(&self, res: &'static Resource, rv: i64) -> Result<Start, ApiError> {
        let feed = self.feed(res).await?;
        {
            let st = feed.lock();
            if rv >= st.since {
                let backlog = st.ring.iter().filter(|c| c.rv > rv).cloned().collect();
                return Ok(Start::Shared { backlog, sub: Subscription { feed: feed.clone(), rx: st.tx.subscribe() } });
            }
        }
        let stream = self.store.watch(&res.storage_prefix(), rv + 1).await.map_err(|e| match e {
            store::StoreError::Compacted { .. } => ApiError::expired(format!("too old resource version: {rv}")),
            other => store_error(other),
        })?;
        Ok(Start::Own(stream))
    }
}

/// Follows the store for one feed until the process ends, restarting the store watch
/// when it fails.
async fn follow(store: Arc<dyn Store>, res: &'static Resource, feed: Arc<Feed>, mut stream: WatchStream) {
    let prefix = res.storage_prefix();
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
                    st.push(change, std::time::Instant::now());
                    let _ = st.tx.send(Message::Change(last));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use store::KeyValue;

    fn kv(value: &Value, rev: i64) -> KeyValue {
        KeyValue {
            key: "/registry/pods/ns/p".into(),
            value: Bytes::from(serde_json::to_vec(value).unwrap()),
            create_revision: 1,
            mod_revision: rev,
        }
    }

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn changes_carry_the_event_line_the_object_and_selector_views() {
        let pods = api::registry::find("", "v1", "pods").unwrap();
        let before = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
        let mut after = before.clone();
        after["status"]["phase"] = json!("Running");
        after["metadata"]["labels"]["app"] = json!("b");

        let e = store::Event { kind: EventType::Put, kv: kv(&after, 9), prev: Some(kv(&before, 5)) };
        let c = change_from_event(&e).unwrap();
        assert_eq!((c.kind, c.rv), (Kind::Modified, 9));
        let mut want = after.clone();
        want["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(parse(&c.line), json!({"type": "MODIFIED", "object": want}));
        assert!(c.line.ends_with(b"}\n"));
        assert_eq!(parse(&c.json), want);
        assert_eq!(c.object(), want);
        assert_eq!(c.now.full(pods)["status"], json!({"phase": "Running"}));
        assert!(c.now.full(pods).get("spec").is_none(), "only what selectors read: {}", c.now.full(pods));
        assert_eq!(c.prev.as_ref().unwrap().full(pods)["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(c.prev.as_ref().unwrap().labels(pods), &json!({"metadata": {"labels": {"app": "a"}}}));
        assert_eq!(
            parse(c.partial(false)),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": want["metadata"]})
        );
        // Without managedFields (there are none here): the same.
        assert_eq!(parse(c.lean_line()), parse(&c.line));
        assert_eq!(parse(c.partial(true)), parse(c.partial(false)));

        // With managedFields, the lean forms leave them out and keep all else.
        let mut managed = after.clone();
        managed["metadata"]["managedFields"] = json!([{"manager": "m", "fieldsV1": {"f:status": {}}}]);
        let e = store::Event { kind: EventType::Put, kv: kv(&managed, 10), prev: Some(kv(&after, 9)) };
        let c = change_from_event(&e).unwrap();
        let mut lean = want.clone();
        lean["metadata"]["resourceVersion"] = json!("10");
        assert_eq!(parse(c.lean_line()), json!({"type": "MODIFIED", "object": lean}));
        assert_eq!(
            parse(c.partial(true)),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": lean["metadata"]})
        );
        assert_eq!(parse(c.partial(false))["metadata"]["managedFields"], managed["metadata"]["managedFields"]);
        assert_eq!(parse(&c.line)["object"]["metadata"]["managedFields"], managed["metadata"]["managedFields"]);

        // A deletion sends the last state, at the deletion's revision.
        let gone = KeyValue { value: Bytes::new(), ..kv(&after, 12) };
        let e = store::Event { kind: EventType::Delete, kv: gone, prev: Some(kv(&after, 9)) };
        let c = change_from_event(&e).unwrap();
        want["metadata"]["resourceVersion"] = json!("12");
        assert_eq!(parse(&c.line), json!({"type": "DELETED", "object": want}));
        assert_eq!(c.now.full(pods)["metadata"]["labels"], json!({"app": "b"}));
        assert_eq!(c.now.labels(pods), &json!({"metadata": {"labels": {"app": "b"}}}));

        // Bytes that are not an object with metadata take the slow way, same result.
        let odd = KeyValue { value: Bytes::from_static(br#"{"kind":"Pod"}"#), ..kv(&after, 3) };
        let c = change_from_event(&store::Event { kind: EventType::Put, kv: odd, prev: None }).unwrap();
        assert_eq!(parse(&c.json), json!({"kind": "Pod"}));
        assert_eq!(c.kind, Kind::Added);
        // And bytes that do not parse are an error, not a panic.
        let bad = KeyValue { value: Bytes::from_static(b"{\"metadata\":"), ..kv(&after, 4) };
        assert!(change_from_event(&store::Event { kind: EventType::Put, kv: bad, prev: None }).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribers_get_each_change_from_the_ring_and_resumers_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(store::embedded::EmbeddedStore::open(&dir.path().join("s.db"), Default::default()).unwrap());
        let hub = WatchHub::new(&Objects::new(store.clone()));
        let pods = api::registry::find("", "v1", "pods").unwrap();
        let feed = hub.feed(pods).await.unwrap();
        let mut sub = feed.subscribe();
        let mut revs = Vec::new();
        for name in ["a", "b"] {
            let obj = json!({"kind": "Pod", "metadata": {"name": name, "namespace": "ns"}});
            let put = store::Op::put(&format!("/registry/pods/ns/{name}"), serde_json::to_vec(&obj).unwrap());
            revs.push(store.txn(store::Txn::new().and_then([put])).await.unwrap().revision);
        }
        for (rv, name) in revs.iter().zip(["a", "b"]) {
            let Next::Change(c) = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await.unwrap()
            else {
                panic!("expected a change")
            };
            assert_eq!((c.rv, c.kind), (*rv, Kind::Added));
            assert_eq!(c.object()["metadata"]["name"], json!(name));
        }
        // A client resuming after the first change gets the second from the ring.
        let Start::Shared { backlog, .. } = hub.start(pods, revs[0]).await.unwrap() else {
            panic!("expected the shared feed")
        };
        assert_eq!(backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![revs[1]]);
        // The ring answers by revision; one it never held is not there.
        assert!(feed.change(revs[1]).is_some());
        assert!(feed.change(revs[1] + 100).is_none());
    }

    #[test]
    fn the_ring_lets_go_of_changes_past_its_size_or_age() {
        let obj = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}});
        let change = |rv: i64, at: std::time::Instant| {
            let e = store::Event { kind: EventType::Put, kv: kv(&obj, rv), prev: None };
            Arc::new(Change { at, ..change_from_event(&e).unwrap() })
        };
        // (Times counted forward from now: an Instant before boot does not exist.)
        let then = std::time::Instant::now();
        let now = then + FRESH + std::time::Duration::from_secs(1);
        let mut st = FeedState { ring: VecDeque::new(), since: 0, tx: broadcast::channel(1).0 };
        // Old enough to go: only once a newer change arrives.
        st.push(change(1, then), then);
        st.push(change(2, now), now);
        assert_eq!(st.ring.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![2]);
        assert_eq!(st.since, 1, "a client after revision 1 is still served from the ring");
        // Never more than RING.
        for rv in 3..(RING as i64 + 10) {
            st.push(change(rv, now), now);
        }
        assert_eq!(st.ring.len(), RING);
        assert_eq!(st.since, st.ring.front().unwrap().rv - 1);
    }
}
