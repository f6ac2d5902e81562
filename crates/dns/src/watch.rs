//! Keeps the [`Shared`] cache current from two watches: Services, and the
//! EndpointSlices that name a Service. A restarted watch relists, and whatever the
//! relist no longer holds is dropped, so a missed delete heals.

use crate::cache::{self, Key, SERVICE_NAME_LABEL, Shared};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::collections::HashSet;
use std::sync::Arc;

fn key_of<K: ResourceExt>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// One watch: `put` and `remove` apply an object to the cache, `keys` lists what
/// the cache holds of this kind (to drop what a relist no longer returns), and
/// `synced` is called after each complete list.
async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    shared: &Shared,
    put: impl Fn(&mut cache::Cluster, &K),
    remove: impl Fn(&mut cache::Cluster, &Key),
    keys: impl Fn(&cache::Cluster) -> Vec<Key>,
    synced: impl Fn(),
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let mut listed: HashSet<Key> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(obj)) => put(&mut shared.write(), &obj),
            Ok(watcher::Event::Delete(obj)) => remove(&mut shared.write(), &key_of(&obj)),
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(obj)) => {
                listed.insert(key_of(&obj));
                put(&mut shared.write(), &obj);
            }
            Ok(watcher::Event::InitDone) => {
                let mut cluster = shared.write();
                for key in keys(&cluster).into_iter().filter(|k| !listed.contains(k)) {
                    remove(&mut cluster, &key);
                }
                drop(cluster);
                listed = HashSet::new();
                synced();
            }
            // The backoff retries; the cache keeps answering from what it has.
            Err(e) => tracing::warn!(error = %e, "dns watch failed; retrying"),
        }
    }
}

/// Runs both watches until the task is dropped.
pub async fn watch(client: kube::Client, shared: Arc<Shared>) {
    let services = follow(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &shared,
        |c, svc: &Service| c.put_service(key_of(svc), cache::service_entry(svc)),
        |c, key| c.remove_service(key),
        |c| c.service_keys(),
        || shared.mark_synced(cache::Kind::Service),
    );
    let slices = follow(
        Api::<EndpointSlice>::all(client),
        // Only slices that belong to a Service matter.
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
        &shared,
        |c, slice: &EndpointSlice| {
            let (service, entry) = cache::slice_entry(slice);
            c.put_slice(key_of(slice), service, entry);
        },
        |c, key| c.remove_slice(key),
        |c| c.slice_keys(),
        || shared.mark_synced(cache::Kind::EndpointSlice),
    );
    tokio::join!(services, slices);
}
