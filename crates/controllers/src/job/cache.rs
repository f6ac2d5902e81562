//! Caches the batch controllers share. [`OwnerIndex`] keeps only the objects a given
//! kind controls (a Job's Pods, a CronJob's Jobs), grouped by the controller's UID, so
//! a reconcile reads its children in O(children) and Pods of other workloads cost no
//! memory. [`LastWritten`] remembers the status this controller last wrote, so a
//! reconcile that runs before the watch delivers that write does not act on the
//! older copy.

use kube::Resource;
use kube::runtime::watcher::Event;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The controller of an object, as its controller ownerReference names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The controller ownerReference of `obj` if it is a `batch/*` object of `kind`.
pub fn batch_owner<K: Resource>(obj: &K, kind: &str) -> Option<Owner> {
    let meta = obj.meta();
    let r = meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))?;
    (r.kind == kind && r.api_version.starts_with("batch/")).then(|| Owner {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: r.name.clone(),
        uid: r.uid.clone(),
    })
}

fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    format!("{}/{}", m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default())
}

struct Inner<K> {
    ready: bool,
    by_owner: HashMap<String, HashMap<String, Arc<K>>>,
    owner_of: HashMap<String, Owner>,
    relist: Option<Vec<Arc<K>>>,
}

/// What one watch event changed, for the caller to trigger reconciles and settle
/// expectations.
#[derive(Debug)]
pub struct Change<K> {
    /// The controller the object belongs to now, or belonged to before it went.
    pub owner: Option<Owner>,
    /// A former controller that let go of it (ownerReference edited).
    pub released_by: Option<Owner>,
    /// The object as cached before the event.
    pub before: Option<Arc<K>>,
    /// The object as cached after the event (`None` when deleted or not ours).
    pub after: Option<Arc<K>>,
}

/// Objects controlled by `owner_kind`, grouped by their controller's UID.
pub struct OwnerIndex<K> {
    owner_kind: &'static str,
    inner: RwLock<Inner<K>>,
}

impl<K: Resource + Clone> OwnerIndex<K> {
    pub fn new(owner_kind: &'static str) -> OwnerIndex<K> {
        OwnerIndex {
            owner_kind,
            inner: RwLock::new(Inner {
                ready: false,
                by_owner: HashMap::new(),
                owner_of: HashMap::new(),
                relist: None,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the first full list has been seen; before that, "no children" may be
    /// a lie and nothing may be created on its strength.
    pub fn ready(&self) -> bool {
        self.read().ready
    }

    /// The children of the controller with `uid`.
    pub fn children(&self, uid: &str) -> Vec<Arc<K>> {
        self.read().by_owner.get(uid).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// The cached object under `namespace/name`, if a controller of our kind owns it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = format!("{namespace}/{name}");
        let inner = self.read();
        let owner = inner.owner_of.get(&key)?;
        inner.by_owner.get(&owner.uid)?.get(&key).cloned()
    }

    /// Applies a watch event of the shared informer (the objects are its cached
    /// ones, so holding them here costs no copy). A relist is
    /// buffered and swapped in whole at its end; the swap reports every controller
    /// whose children may have changed, with no `before`/`after`.
    pub fn apply_event(&self, event: Event<Arc<K>>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => vec![self.upsert(obj)],
            Event::Delete(obj) => vec![self.remove(&obj)],
            Event::Init => {
                self.write().relist = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                if let Some(buf) = self.write().relist.as_mut() {
                    buf.push(obj);
                }
                Vec::new()
            }
            Event::InitDone => self.swap_relist(),
        }
    }

    fn upsert(&self, obj: Arc<K>) -> Change<K> {
        let key = key_of(&*obj);
        let owner = batch_owner(&*obj, self.owner_kind);
        let mut inner = self.write();
        let previous_owner = inner.owner_of.get(&key).cloned();
        let before = previous_owner.as_ref().and_then(|o| inner.by_owner.get_mut(&o.uid)?.remove(&key));
        if let Some(o) = &previous_owner
            && inner.by_owner.get(&o.uid).is_some_and(HashMap::is_empty)
        {
            inner.by_owner.remove(&o.uid);
        }
        let released_by = previous_owner.filter(|p| owner.as_ref() != Some(p));
        let after = match &owner {
            Some(o) => {
                inner.by_owner.entry(o.uid.clone()).or_default().insert(key.clone(), obj.clone());
                inner.owner_of.insert(key, o.clone());
                Some(obj)
            }
            None => {
                inner.owner_of.remove(&key);
                None
            }
        };
        Change { owner, released_by, before, after }
    }

    fn remove(&self, obj: &K) -> Change<K> {
        let key = key_of(obj);
        let mut inner = self.write();
        let previous_owner = inner.owner_of.remove(&key);
        let before = previous_owner.as_ref().and_then(|o| inner.by_owner.get_mut(&o.uid)?.remove(&key));
        if let Some(o) = &previous_owner
            && inner.by_owner.get(&o.uid).is_some_and(HashMap::is_empty)
        {
            inner.by_owner.remove(&o.uid);
        }
        Change {
            owner: previous_owner.or_else(|| batch_owner(obj, self.owner_kind)),
            released_by: None,
            before,
            after: None,
        }
    }

    fn swap_relist(&self) -> Vec<Change<K>> {
        let mut inner = self.write();
        let listed = inner.relist.take().unwrap_or_default();
        let mut touched: HashSet<Owner> = inner.owner_of.values().cloned().collect();
        let mut by_owner: HashMap<String, HashMap<String, Arc<K>>> = HashMap::new();
        let mut owner_of = HashMap::new();
        for obj in listed {
            if let Some(o) = batch_owner(&*obj, self.owner_kind) {
                let key = key_of(&*obj);
                by_owner.entry(o.uid.clone()).or_default().insert(key.clone(), obj);
                touched.insert(o.clone());
                owner_of.insert(key, o);
            }
        }
        inner.by_owner = by_owner;
        inner.owner_of = owner_of;
        inner.ready = true;
        touched.into_iter().map(|o| Change { owner: Some(o), released_by: None, before: None, after: None }).collect()
    }
}

/// Objects as this controller last wrote them, by UID, until the watch catches up.
pub struct LastWritten<K> {
    written: Mutex<HashMap<String, Arc<K>>>,
}

/// Resource versions are opaque to clients, but every store we serve from (ours and
/// etcd) uses increasing integers; when both parse, the larger is newer.
fn newer(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(|s| s.parse::<u64>().ok()), b.and_then(|s| s.parse::<u64>().ok())) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

impl<K: Resource> LastWritten<K> {
    pub fn new() -> LastWritten<K> {
        LastWritten { written: Mutex::new(HashMap::new()) }
    }

    pub fn remember(&self, obj: K) {
        if let Some(uid) = obj.meta().uid.clone() {
            self.written.lock().unwrap_or_else(PoisonError::into_inner).insert(uid, Arc::new(obj));
        }
    }

    pub fn forget(&self, uid: &str) {
        self.written.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// The newer of the cached object and the one last written.
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let Some(uid) = cached.meta().uid.clone() else { return cached };
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written.get(&uid) {
            Some(w) if newer(w.meta().resource_version.as_deref(), cached.meta().resource_version.as_deref()) => {
                w.clone()
            }
            Some(_) => {
                written.remove(&uid);
                cached
            }
            None => cached,
        }
    }
}

impl<K: Resource> Default for LastWritten<K> {
    fn default() -> Self {
        LastWritten::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, owner: Option<(&str, &str)>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                owner_references: owner.map(|(kind, uid)| {
                    vec![OwnerReference {
                        api_version: if kind == "Job" { "batch/v1".into() } else { "apps/v1".into() },
                        kind: kind.into(),
                        name: format!("{kind}-name"),
                        uid: uid.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn keeps_only_children_of_the_kind_grouped_by_owner() {
        let idx = OwnerIndex::<Pod>::new("Job");
        idx.apply_event(Event::Apply(pod("a", Some(("Job", "j1")))));
        idx.apply_event(Event::Apply(pod("b", Some(("Job", "j1")))));
        let c = idx.apply_event(Event::Apply(pod("c", Some(("ReplicaSet", "r1"))))).remove(0);
        assert!(c.owner.is_none() && c.after.is_none());
        assert_eq!(idx.children("j1").len(), 2);
        assert!(idx.children("r1").is_empty());
        assert!(idx.get("ns", "a").is_some() && idx.get("ns", "c").is_none());

        // Released: the old owner hears about it.
        let c = idx.apply_event(Event::Apply(pod("a", None))).remove(0);
        assert_eq!(c.released_by.unwrap().uid, "j1");
        assert!(c.before.is_some());
        assert_eq!(idx.children("j1").len(), 1);

        let c = idx.apply_event(Event::Delete(pod("b", Some(("Job", "j1"))))).remove(0);
        assert_eq!(c.owner.unwrap().uid, "j1");
        assert!(c.before.is_some() && idx.children("j1").is_empty());
    }

    #[test]
    fn a_relist_swaps_whole_and_reports_old_and_new_owners() {
        let idx = OwnerIndex::<Pod>::new("Job");
        assert!(!idx.ready());
        idx.apply_event(Event::Apply(pod("gone", Some(("Job", "j-old")))));
        idx.apply_event(Event::Init);
        idx.apply_event(Event::InitApply(pod("new", Some(("Job", "j-new")))));
        // Mid-relist the old view still serves.
        assert_eq!(idx.children("j-old").len(), 1);
        let mut owners: Vec<_> = idx.apply_event(Event::InitDone).into_iter().map(|c| c.owner.unwrap().uid).collect();
        owners.sort();
        assert_eq!(owners, ["j-new", "j-old"]);
        assert!(idx.ready() && idx.children("j-old").is_empty() && idx.children("j-new").len() == 1);
    }

    #[test]
    fn last_written_wins_only_while_newer() {
        let lw = LastWritten::<Pod>::new();
        let mut cached = (*pod("a", None)).clone();
        cached.metadata.resource_version = Some("10".into());
        let mut written = cached.clone();
        written.metadata.resource_version = Some("12".into());
        lw.remember(written);
        assert_eq!(lw.freshest(Arc::new(cached.clone())).metadata.resource_version.as_deref(), Some("12"));
        cached.metadata.resource_version = Some("12".into());
        assert_eq!(lw.freshest(Arc::new(cached.clone())).metadata.resource_version.as_deref(), Some("12"));
        // Caught up: the entry is dropped and the cache serves from now on.
        cached.metadata.resource_version = Some("11".into());
        assert_eq!(lw.freshest(Arc::new(cached)).metadata.resource_version.as_deref(), Some("11"));
    }
}
