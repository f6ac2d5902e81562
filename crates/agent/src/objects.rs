//! The kubelet's watch-based object manager (upstream's
//! `pkg/kubelet/util/manager/watch_based_manager.go`, the default
//! `configMapAndSecretChangeDetectionStrategy: Watch`): the ConfigMaps and Secrets
//! that pods on this node refer to, each kept current by a watch of that one object
//! (a `metadata.name` field selector) for as long as some pod refers to it.
//!
//! Why: a pod start used to GET every ConfigMap it refers to, and nearly every pod
//! refers to `kube-root-ca.crt` (its service-account volume). Ten pods starting at
//! once made ten GETs of the same object while the API server was busiest; now the
//! first pod's watch lists it once and the others read it from memory. Resyncs read
//! the cache too, which the watch keeps current.

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a read waits for a new watch's first list before giving up.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("timed out waiting for the watch of {kind} {namespace}/{name} to list it")]
    NotSynced { kind: String, namespace: String, name: String },
    #[error("reading {kind} {namespace}/{name}: {source}")]
    Get { kind: String, namespace: String, name: String, source: kube::Error },
}

/// What a kind must be to be watched here: a namespaced kind informers can share.
pub trait Kind: informer::Kind + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> {}
impl<K> Kind for K where K: informer::Kind + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> {}

/// One watched object: its store, the pods that refer to it, and the watch.
struct Item<K: Kind> {
    store: Store<K>,
    users: HashSet<String>,
    watch: tokio::task::JoinHandle<()>,
}

impl<K: Kind> Drop for Item<K> {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The watched objects of one kind, by namespace and name.
pub struct Watched<K: Kind> {
    client: kube::Client,
    items: Mutex<HashMap<(String, String), Item<K>>>,
}

impl<K: Kind> Watched<K> {
    pub fn new(client: kube::Client) -> Watched<K> {
        Watched { client, items: Mutex::new(HashMap::new()) }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Item<K>>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pod `uid` refers to `names` in `namespace`, and to no other object of this
    /// kind: watches start for names new to the node and stop for names that no pod
    /// refers to any more. Needs a tokio runtime.
    pub fn register(&self, uid: &str, namespace: &str, names: &[String]) {
        let mut items = self.items();
        for ((ns, name), item) in items.iter_mut() {
            if ns != namespace || !names.contains(name) {
                item.users.remove(uid);
            }
        }
        for name in names {
            let key = (namespace.to_string(), name.clone());
            let item = items.entry(key).or_insert_with(|| self.watch(namespace, name));
            item.users.insert(uid.to_string());
        }
        items.retain(|_, item| !item.users.is_empty());
    }

    /// Pod `uid` is gone from the node.
    pub fn unregister(&self, uid: &str) {
        let mut items = self.items();
        for item in items.values_mut() {
            item.users.remove(uid);
        }
        items.retain(|_, item| !item.users.is_empty());
    }

    fn watch(&self, namespace: &str, name: &str) -> Item<K> {
        let (store, writer) = reflector::store();
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(api, config).default_backoff().reflect(writer);
        let watch = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while stream.next().await.is_some() {}
        });
        Item { store, users: HashSet::new(), watch }
    }

    /// The object as its watch last saw it (`None`: it does not exist). A name no
    /// pod registered is read from the API server instead.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, ObjectError> {
        let store = self.items().get(&(namespace.to_string(), name.to_string())).map(|i| i.store.clone());
        let Some(store) = store else {
            let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
            return match api.get_opt(name).await {
                Ok(o) => Ok(o.map(Arc::new)),
                Err(source) => Err(ObjectError::Get {
                    kind: K::kind(&()).into_owned(),
                    namespace: namespace.into(),
                    name: name.into(),
                    source,
                }),
            };
        };
        // Pods starting together all wait for the same first list: the shared wait,
        // which wakes every one of them (see `informer::wait_until_ready`).
        match tokio::time::timeout(SYNC_TIMEOUT, informer::wait_until_ready(&store)).await {
            Ok(()) => Ok(store.get(&ObjectRef::new(name).within(namespace))),
            Err(_) => Err(ObjectError::NotSynced {
                kind: K::kind(&()).into_owned(),
                namespace: namespace.into(),
                name: name.into(),
            }),
        }
    }

    /// How many objects are watched (for tests).
    pub fn watched(&self) -> usize {
        self.items().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::PostParams;

    /// A real API server and an admin client of it over TLS.
    async fn server() -> (tempfile::TempDir, apiserver::ApiServer, kube::Client) {
        let dir = tempfile::tempdir().unwrap();
        let store = store::embedded::EmbeddedStore::open(&dir.path().join("s.db"), Default::default()).unwrap();
        let config = apiserver::Config::local(dir.path().join("server"));
        let server = apiserver::ApiServer::start(config, Arc::new(store)).await.unwrap();
        let url = format!("https://127.0.0.1:{}", server.addr.port());
        let yaml = apiserver::pki::kubeconfig(&url, &server.pki.ca_pem, &server.pki.admin_token);
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        (dir, server, kube::Client::try_from(config).unwrap())
    }

    fn data(cm: &ConfigMap) -> Option<String> {
        cm.data.as_ref()?.get("k").cloned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_what_pods_refer_to_for_as_long_as_they_do() {
        let (_dir, server, client) = server().await;
        let cms: Arc<Watched<ConfigMap>> = Arc::new(Watched::new(client.clone()));
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        cms.register("pod-a", "default", &["c1".into(), "missing".into()]);
        assert!(cms.get("default", "c1").await.unwrap().is_none());
        assert!(cms.get("default", "missing").await.unwrap().is_none());

        // Created, then changed: the watch brings both.
        let cm: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c1"}, "data": {"k": "v1"}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
        let mut seen = None;
        for _ in 0..200 {
            seen = cms.get("default", "c1").await.unwrap().and_then(|c| data(&c));
            if seen.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen.as_deref(), Some("v1"));
        let patch = serde_json::json!({"data": {"k": "v2"}});
        api.patch("c1", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
        for _ in 0..200 {
            seen = cms.get("default", "c1").await.unwrap().and_then(|c| data(&c));
            if seen.as_deref() == Some("v2") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen.as_deref(), Some("v2"));

        // Watches end with the last pod that refers to them.
        cms.register("pod-b", "default", &["c1".into()]);
        assert_eq!(cms.watched(), 2);
        cms.register("pod-a", "default", &["c1".into()]);
        assert_eq!(cms.watched(), 1, "no pod refers to `missing` any more");
        cms.unregister("pod-a");
        assert_eq!(cms.watched(), 1);
        cms.unregister("pod-b");
        assert_eq!(cms.watched(), 0);

        // Pods starting together (each its own task) all wait for the same first list,
        // and all of them are told when it is there.
        cms.register("pod-0", "default", &["c1".into()]);
        let began = std::time::Instant::now();
        let readers: Vec<_> = (0..20)
            .map(|_| {
                let cms = cms.clone();
                tokio::spawn(async move { cms.get("default", "c1").await.unwrap().and_then(|c| data(&c)) })
            })
            .collect();
        for r in readers {
            assert_eq!(r.await.unwrap().as_deref(), Some("v2"));
        }
        assert!(began.elapsed() < SYNC_TIMEOUT / 2, "readers woken only by their timeout");
        cms.unregister("pod-0");

        // A name no pod registered is read from the server.
        assert_eq!(cms.get("default", "c1").await.unwrap().and_then(|c| data(&c)).as_deref(), Some("v2"));
        server.shutdown().await;
    }
}
