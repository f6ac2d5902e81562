//! Everything the scheduler writes to the API, behind [`Writer`] so the queue and
//! decision logic are tested without a server, and the core/v1 Events it writes,
//! aggregated so a pod retried every few seconds updates one event's count instead
//! of adding a new one each time.

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::HashMap;

pub const SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Which pod an action is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The writes the scheduler makes.
#[async_trait::async_trait]
pub trait Writer: Send + Sync + 'static {
    /// `POST pods/{name}/binding`.
    async fn bind(&self, pod: &PodRef, node: &str) -> Result<(), Error>;
    /// A strategic merge patch of `pods/{name}/status`.
    async fn patch_pod_status(&self, pod: &PodRef, patch: serde_json::Value) -> Result<(), Error>;
    async fn delete_pod(&self, pod: &PodRef) -> Result<(), Error>;
    async fn create_event(&self, event: &Event) -> Result<(), Error>;
    /// Updates `count`, `lastTimestamp` of an event created before.
    async fn update_event(&self, event: &Event) -> Result<(), Error>;
}

/// The [`Writer`] that talks to the API server.
pub struct KubeWriter {
    client: Client,
}

impl KubeWriter {
    pub fn new(client: Client) -> KubeWriter {
        KubeWriter { client }
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn url<K: kube::Resource<DynamicType = ()>>(ns: &str) -> kube::core::Request {
        kube::core::Request::new(K::url_path(&(), Some(ns)))
    }

    async fn send(&self, request: informer::write::Built) -> Result<(), Error> {
        Ok(informer::write::status_only(&self.client, request).await?)
    }
}

#[async_trait::async_trait]
impl Writer for KubeWriter {
    async fn bind(&self, pod: &PodRef, node: &str) -> Result<(), Error> {
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference { kind: Some("Node".into()), name: Some(node.into()), ..Default::default() },
        };
        let body = serde_json::to_vec(&binding).unwrap_or_default();
        self.send(Self::url::<Pod>(&pod.namespace).create_subresource(
            "binding",
            &pod.name,
            &PostParams::default(),
            body,
        ))
        .await
    }

    async fn patch_pod_status(&self, pod: &PodRef, patch: serde_json::Value) -> Result<(), Error> {
        self.pods(&pod.namespace).patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(patch)).await?;
        Ok(())
    }

    async fn delete_pod(&self, pod: &PodRef) -> Result<(), Error> {
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions { uid: Some(pod.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        self.pods(&pod.namespace).delete(&pod.name, &dp).await?;
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> Result<(), Error> {
        let ns = event.metadata.namespace.as_deref().unwrap_or_default();
        let body = serde_json::to_vec(event).unwrap_or_default();
        self.send(Self::url::<Event>(ns).create(&PostParams::default(), body)).await
    }

    async fn update_event(&self, event: &Event) -> Result<(), Error> {
        let ns = event.metadata.namespace.as_deref().unwrap_or_default();
        let name = event.metadata.name.as_deref().unwrap_or_default();
        let patch = serde_json::json!({"count": event.count, "lastTimestamp": event.last_timestamp});
        self.send(Self::url::<Event>(ns).patch(name, &PatchParams::default(), &Patch::Merge(patch))).await
    }
}

/// Builds core/v1 Events and folds repeats (same pod, reason and message) into one.
#[derive(Debug)]
pub struct Recorder {
    instance: String,
    /// Per pod (by uid), the events written for it by reason and message; keyed by
    /// pod first so forgetting a bound pod is one removal, not a scan.
    seen: HashMap<String, HashMap<(String, String), Event>>,
}

/// Past this many remembered pods the memory is cleared (repeats then start anew).
const MAX_REMEMBERED: usize = 10_000;

impl Recorder {
    pub fn new(instance: impl Into<String>) -> Recorder {
        Recorder { instance: instance.into(), seen: HashMap::new() }
    }

    /// The event to write and whether it is new (create) or a repeat (update).
    pub fn record(&mut self, pod: &PodRef, type_: &str, reason: &str, message: &str, now: Timestamp) -> (Event, bool) {
        let key = (reason.to_string(), message.to_string());
        if let Some(ev) = self.seen.get_mut(&pod.uid).and_then(|events| events.get_mut(&key)) {
            ev.count = Some(ev.count.unwrap_or(1) + 1);
            ev.last_timestamp = Some(Time(now));
            return (ev.clone(), false);
        }
        if self.seen.len() >= MAX_REMEMBERED && !self.seen.contains_key(&pod.uid) {
            self.seen.clear();
        }
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", pod.name, now.as_nanosecond())),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                uid: Some(pod.uid.clone()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            source: Some(EventSource { component: Some(SCHEDULER_NAME.into()), host: None }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(type_.into()),
            reporting_component: Some(SCHEDULER_NAME.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        self.seen.entry(pod.uid.clone()).or_default().insert(key, ev.clone());
        (ev, true)
    }

    /// Drops what is remembered about a pod (bound or gone).
    pub fn forget(&mut self, uid: &str) {
        self.seen.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_fold_into_one_event_with_a_count() {
        let mut r = Recorder::new("default-scheduler-host");
        let pod = PodRef { namespace: "ns".into(), name: "web".into(), uid: "u1".into() };
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let (first, new) = r.record(&pod, "Warning", "FailedScheduling", "0/1 nodes are available", t0);
        assert!(new);
        assert_eq!(first.metadata.name.as_deref(), Some(format!("web.{:x}", t0.as_nanosecond()).as_str()));
        assert_eq!(first.source.as_ref().unwrap().component.as_deref(), Some("default-scheduler"));
        assert_eq!(first.reporting_instance.as_deref(), Some("default-scheduler-host"));
        assert_eq!(first.involved_object.uid.as_deref(), Some("u1"));
        let t1 = Timestamp::from_second(1_700_000_010).unwrap();
        let (again, new) = r.record(&pod, "Warning", "FailedScheduling", "0/1 nodes are available", t1);
        assert!(!new);
        assert_eq!(again.metadata.name, first.metadata.name);
        assert_eq!(again.count, Some(2));
        assert_eq!(again.first_timestamp, first.first_timestamp);
        assert_eq!(again.last_timestamp, Some(Time(t1)));
        let (other, new) = r.record(&pod, "Warning", "FailedScheduling", "0/2 nodes are available", t1);
        assert!(new, "a different message is a different event");
        assert_ne!(other.metadata.name, first.metadata.name);
        r.forget("u1");
        assert!(r.record(&pod, "Warning", "FailedScheduling", "0/1 nodes are available", t1).1);
    }
}
