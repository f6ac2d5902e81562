//! Shared informers, as client-go's `SharedInformerFactory` gives upstream's
//! controller manager: one watch and one cache per resource kind, however many
//! in-process consumers (controllers, the scheduler) want that kind.
//!
//! Before this, every controller kept its own watch of pods and its own typed copy
//! of every pod: a pod write was encoded, sent, decoded and cached some eight times
//! inside one process, which cost more than scheduling and grew memory with every
//! consumer. Now [`Informers::get`] starts one watch per kind; its objects live once,
//! as `Arc`s in a kube-runtime [`Store`] that every consumer reads, and each consumer
//! [`Informer::subscribe`]s to the changes, which are the same `Arc`s.
//!
//! Delivery to a subscriber never blocks the watch and never drops a change (each
//! subscriber has an unbounded queue of pointers). A (re)list is delivered whole,
//! as `Init`, one `InitApply` per object, `InitDone`, once it has completed; a
//! subscriber that arrives after the first list gets the same sequence at once.

pub mod write;

use futures_util::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{Lookup, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// A change as subscribers see it: kube-runtime's watch event over shared objects.
pub type Change<K> = Event<Arc<K>>;

/// What a kind must be to be watched and shared.
pub trait Kind: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<K> Kind for K where K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

/// The informers of one client, created on first use and shared from then on.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    kinds: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

impl Informers {
    pub fn new(client: Client) -> Informers {
        Informers { client, kinds: Arc::default() }
    }

    /// The informer of every `K` in the cluster, started (on the current tokio
    /// runtime) the first time any consumer asks.
    pub fn get<K: Kind>(&self) -> Informer<K> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = kinds.get(&TypeId::of::<K>()).and_then(|b| b.downcast_ref::<Informer<K>>()) {
            return found.clone();
        }
        let informer = Informer::watch(Api::all(self.client.clone()));
        kinds.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }
}

/// One kind's shared cache and its subscribers.
pub struct Informer<K: Lookup + Clone + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    fanout: Arc<Mutex<Fanout<K>>>,
}

impl<K: Lookup + Clone + 'static> Clone for Informer<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Informer { store: self.store.clone(), fanout: self.fanout.clone() }
    }
}

/// No consumer reads managed fields; dropping them keeps the one cache small.
fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

impl<K: Kind> Informer<K> {
    /// Watches `api` (list, then watch, relisting with backoff when the watch fails).
    pub fn watch(api: Api<K>) -> Informer<K> {
        Informer::from_events(watcher::watcher(api, watcher::Config::default()).default_backoff().modify(strip))
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Lookup<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// An informer fed by any stream of watch events (the API's, or a test's).
    pub fn from_events<S>(events: S) -> Informer<K>
    where
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        let writer = Writer::default();
        let store = writer.as_reader();
        let fanout = Arc::new(Mutex::new(Fanout { writer, subscribers: Vec::new(), synced: false }));
        let feed = fanout.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => lock(&feed).apply(event),
                    Err(e) => {
                        tracing::warn!(kind = <K as Resource>::kind(&()).as_ref(), error = %e, "shared watch failed; retrying")
                    }
                }
            }
        });
        Informer { store, fanout }
    }

    /// The shared cache: every object of the kind, as of the last change delivered.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every change from now on, after the current state if the first list is done.
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fanout = lock(&self.fanout);
        if fanout.synced {
            send_snapshot(&tx, &self.store);
        }
        fanout.subscribers.push(tx);
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|change| (change, rx)) })
    }

    /// The objects that changed (applied, listed or deleted), as kube-runtime's
    /// `touched_objects`: what a controller maps to the keys it reconciles.
    pub fn touched(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe().filter_map(|change| async move {
            match change {
                Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) => Some(o),
                Event::Init | Event::InitDone => None,
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking subscriber callback cannot leave the fan-out half-updated: every
    // update is a single push or send.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn send_snapshot<K>(tx: &mpsc::UnboundedSender<Change<K>>, store: &Store<K>) -> bool
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let mut ok = tx.send(Event::Init).is_ok();
    for obj in store.state() {
        ok &= tx.send(Event::InitApply(obj)).is_ok();
    }
    ok && tx.send(Event::InitDone).is_ok()
}

struct Fanout<K: Lookup + Clone + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
    /// The first list has completed.
    synced: bool,
}

impl<K> Fanout<K>
where
    K: Resource<DynamicType = ()> + Lookup<DynamicType = ()> + Clone + 'static,
{
    fn apply(&mut self, event: Event<K>) {
        self.writer.apply_watcher_event(&event);
        let store = self.writer.as_reader();
        let change = match event {
            // The cache holds the object now: hand out that same allocation.
            Event::Apply(obj) => Event::Apply(store.get(&obj.to_object_ref(())).unwrap_or_else(|| Arc::new(obj))),
            Event::Delete(obj) => Event::Delete(Arc::new(obj)),
            // A list is handed out whole once it is complete, from the cache.
            Event::Init | Event::InitApply(_) => return,
            Event::InitDone => {
                self.synced = true;
                self.subscribers.retain(|tx| send_snapshot(tx, &store));
                return;
            }
        };
        self.subscribers.retain(|tx| tx.send(change.clone()).is_ok());
    }
}

/// How often [`wait_until_ready`] looks again.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Waits until `store` has had its first list, for any number of waiters at once.
///
/// kube-runtime's own `Store::wait_until_ready` keeps one waker (its readiness is a
/// oneshot channel): of several tasks waiting together (reconciles of different
/// objects on a shared cache, controllers starting side by side) only the last to
/// poll is woken and the others wait for ever. This looks every 2 ms instead; the
/// readiness, once seen, is remembered by the store, so later calls return at once.
pub async fn wait_until_ready<K>(store: &Store<K>)
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures_util::FutureExt;
    while store.wait_until_ready().now_or_never().is_none() {
        tokio::time::sleep(READY_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector::ObjectRef;

    fn pod(name: &str, version: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(changes: &[Change<Pod>]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Event::Init => "init".to_string(),
                Event::InitDone => "done".to_string(),
                Event::InitApply(p) => format!("list {}", p.metadata.name.as_deref().unwrap_or_default()),
                Event::Apply(p) => format!("apply {}", p.metadata.name.as_deref().unwrap_or_default()),
                Event::Delete(p) => format!("delete {}", p.metadata.name.as_deref().unwrap_or_default()),
            })
            .collect()
    }

    async fn drain(stream: &mut (impl Stream<Item = Change<Pod>> + Unpin), n: usize) -> Vec<Change<Pod>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
            out.push(next.expect("a change in time").expect("the stream goes on"));
        }
        out
    }

    fn feed() -> (mpsc::UnboundedSender<Event<Pod>>, Informer<Pod>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
        (tx, Informer::from_events(events))
    }

    #[tokio::test]
    async fn a_list_arrives_whole_then_changes_share_the_cached_object() {
        let (tx, informer) = feed();
        let mut early = Box::pin(informer.subscribe());
        for e in [Event::Init, Event::InitApply(pod("a", "1")), Event::InitApply(pod("b", "1")), Event::InitDone] {
            tx.send(e).unwrap();
        }
        let mut listed = names(&drain(&mut early, 4).await);
        listed[1..3].sort();
        assert_eq!(listed, ["init", "list a", "list b", "done"]);

        tx.send(Event::Apply(pod("a", "2"))).unwrap();
        let changed = drain(&mut early, 1).await;
        let Event::Apply(a) = &changed[0] else { panic!("{changed:?}") };
        let cached = informer.store().get(&ObjectRef::new("a").within("default")).unwrap();
        assert!(Arc::ptr_eq(a, &cached), "subscribers get the cache's allocation");
        assert_eq!(cached.metadata.resource_version.as_deref(), Some("2"));

        tx.send(Event::Delete(pod("b", "3"))).unwrap();
        assert_eq!(names(&drain(&mut early, 1).await), ["delete b"]);
        assert!(informer.store().get(&ObjectRef::new("b").within("default")).is_none());
    }

    #[tokio::test]
    async fn a_late_subscriber_starts_from_the_current_state() {
        let (tx, informer) = feed();
        let mut first = Box::pin(informer.subscribe());
        for e in [Event::Init, Event::InitApply(pod("a", "1")), Event::InitDone, Event::Apply(pod("c", "2"))] {
            tx.send(e).unwrap();
        }
        drain(&mut first, 4).await;
        let mut late = Box::pin(informer.subscribe());
        let mut got = names(&drain(&mut late, 4).await);
        got[1..3].sort();
        assert_eq!(got, ["init", "list a", "list c", "done"]);
        tx.send(Event::Apply(pod("d", "3"))).unwrap();
        assert_eq!(names(&drain(&mut late, 1).await), ["apply d"]);
        assert_eq!(names(&drain(&mut first, 1).await), ["apply d"]);
    }

    #[tokio::test]
    async fn a_relist_replaces_the_state_and_is_delivered_again() {
        let (tx, informer) = feed();
        let mut sub = Box::pin(informer.touched());
        for e in [Event::Init, Event::InitApply(pod("a", "1")), Event::InitDone] {
            tx.send(e).unwrap();
        }
        let first = sub.next().await.unwrap();
        assert_eq!(first.metadata.name.as_deref(), Some("a"));
        // The watch broke and "a" went away meanwhile: the relist holds only "b".
        for e in [Event::Init, Event::InitApply(pod("b", "5")), Event::InitDone] {
            tx.send(e).unwrap();
        }
        let second = sub.next().await.unwrap();
        assert_eq!(second.metadata.name.as_deref(), Some("b"));
        assert_eq!(informer.store().state().len(), 1);
    }

    #[tokio::test]
    async fn a_dropped_subscriber_is_forgotten() {
        let (tx, informer) = feed();
        let sub = informer.subscribe();
        drop(sub);
        let mut kept = Box::pin(informer.subscribe());
        for e in [Event::Init, Event::InitDone, Event::Apply(pod("a", "1"))] {
            tx.send(e).unwrap();
        }
        assert_eq!(names(&drain(&mut kept, 3).await), ["init", "done", "apply a"]);
        assert_eq!(lock(&informer.fanout).subscribers.len(), 1);
    }

    #[tokio::test]
    async fn every_waiter_learns_that_the_store_is_ready() {
        let mut writer: Writer<Pod> = Writer::default();
        let store = writer.as_reader();
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { wait_until_ready(&store).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("a waiter was never woken")
                .unwrap();
        }
    }
}
