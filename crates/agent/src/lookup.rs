//! The agent's view of its pods' containers by namespace and name, for the
//! streaming endpoints (logs, exec, attach, port-forward), with the kubelet's
//! messages when a container cannot be chosen.

use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The annotation naming the container `kubectl` picks when none is given.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEntry {
    pub name: String,
    pub container_id: String,
    pub restart_count: i32,
    pub running: bool,
    pub init: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PodEntry {
    uid: String,
    /// Spec order, app containers then init containers.
    names: Vec<String>,
    default: Option<String>,
    tty: HashMap<String, (bool, bool)>,
    containers: Vec<ContainerEntry>,
}

/// A container found for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pod_uid: String,
    pub container_id: String,
    /// `DATA/pods/<uid>/<name>`, holding `<restartCount>.log`.
    pub log_dir: PathBuf,
    pub restart_count: u32,
    pub tty: bool,
    pub stdin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("pods \"{0}\" not found")]
    PodNotFound(String),
    #[error("{0}")]
    Container(String),
}

pub struct PodCache {
    /// Where the pods' log directories are ([`crate::Config::pods_dir`]).
    pods_dir: PathBuf,
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

impl PodCache {
    pub fn new(pods_dir: PathBuf) -> PodCache {
        PodCache { pods_dir, pods: Mutex::new(HashMap::new()) }
    }

    pub fn update(&self, pod: &Pod, containers: Vec<ContainerEntry>) {
        let key = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        let spec = pod.spec.as_ref();
        let all = spec.into_iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()));
        let mut names = Vec::new();
        let mut tty = HashMap::new();
        for c in all {
            names.push(c.name.clone());
            tty.insert(c.name.clone(), (c.tty.unwrap_or(false), c.stdin.unwrap_or(false)));
        }
        let default = pod.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION)).cloned();
        let entry = PodEntry { uid: pod.metadata.uid.clone().unwrap_or_default(), names, default, tty, containers };
        self.pods.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry);
    }

    pub fn remove(&self, uid: &str) {
        self.pods.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, p| p.uid != uid);
    }

    pub fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.get(&(namespace.to_string(), pod.to_string())).map(|p| p.uid.clone())
    }

    /// The container a request means: the one named, else the default-container
    /// annotation's, else the only one.
    pub fn container(&self, namespace: &str, pod: &str, container: Option<&str>) -> Result<Found, LookupError> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let p = pods.get(&(namespace.to_string(), pod.to_string())).ok_or(LookupError::PodNotFound(pod.into()))?;
        let name = match container.filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None => match (&p.default, p.names.len()) {
                (Some(d), _) if p.names.contains(d) => d.clone(),
                (_, 1) => p.names[0].clone(),
                _ => {
                    return Err(LookupError::Container(format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]",
                        p.names.join(" ")
                    )));
                }
            },
        };
        if !p.names.contains(&name) {
            return Err(LookupError::Container(format!("container {name} is not valid for pod {pod}")));
        }
        let c = p.containers.iter().find(|c| c.name == name).ok_or_else(|| {
            LookupError::Container(format!(
                "container \"{name}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ))
        })?;
        let (tty, stdin) = p.tty.get(&name).copied().unwrap_or((false, false));
        Ok(Found {
            pod_uid: p.uid.clone(),
            container_id: c.container_id.clone(),
            log_dir: self.pods_dir.join(&p.uid).join(&name),
            restart_count: c.restart_count.max(0) as u32,
            tty,
            stdin,
        })
    }
}

/// The streaming server asks the agent's cache; its errors keep the kubelet's
/// wording, a missing pod as 404 and a container that cannot be chosen as 400.
impl crate::server::PodLookup for PodCache {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<crate::server::ContainerRef, crate::server::LookupError> {
        use crate::server::{ContainerRef, LookupError as ServerError};
        match PodCache::container(self, namespace, pod, container) {
            Ok(f) => Ok(ContainerRef {
                container_id: f.container_id,
                log_dir: f.log_dir,
                restart_count: f.restart_count,
                tty: f.tty,
                stdin: f.stdin,
                pod_uid: f.pod_uid,
            }),
            Err(e @ LookupError::PodNotFound(_)) => Err(ServerError::NotFound(e.to_string())),
            Err(LookupError::Container(m)) => Err(ServerError::BadRequest(m)),
        }
    }

    fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String> {
        PodCache::pod_uid(self, namespace, pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn choosing_containers() {
        let cache = PodCache::new("/d/pods".into());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "tty": true}, {"name": "b"}]}
        }))
        .unwrap();
        let entry = |name: &str| ContainerEntry {
            name: name.into(),
            container_id: format!("u1_{name}_1"),
            restart_count: 1,
            running: true,
            init: false,
        };
        cache.update(&pod, vec![entry("a")]);
        assert_eq!(cache.pod_uid("ns", "web").as_deref(), Some("u1"));
        assert_eq!(
            cache.container("ns", "web", None).unwrap_err().to_string(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        let a = cache.container("ns", "web", Some("a")).unwrap();
        assert_eq!((a.container_id.as_str(), a.restart_count, a.tty), ("u1_a_1", 1, true));
        assert_eq!(a.log_dir, PathBuf::from("/d/pods/u1/a"));
        assert!(cache.container("ns", "web", Some("b")).unwrap_err().to_string().contains("waiting to start"));
        assert!(matches!(cache.container("ns", "nope", None), Err(LookupError::PodNotFound(_))));
        let mut annotated = pod.clone();
        annotated.metadata.annotations = Some([(DEFAULT_CONTAINER_ANNOTATION.to_string(), "a".to_string())].into());
        cache.update(&annotated, vec![entry("a"), entry("b")]);
        assert_eq!(cache.container("ns", "web", None).unwrap().container_id, "u1_a_1");
        cache.remove("u1");
        assert_eq!(cache.pod_uid("ns", "web"), None);
    }

    #[test]
    fn the_streaming_server_sees_the_cache() {
        use crate::server::{LookupError as ServerError, PodLookup};
        let cache = PodCache::new("/d/pods".into());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "stdin": true, "tty": true}, {"name": "b"}]}
        }))
        .unwrap();
        let entry = ContainerEntry {
            name: "a".into(),
            container_id: "u1_a_0".into(),
            restart_count: 0,
            running: true,
            init: false,
        };
        cache.update(&pod, vec![entry]);
        let lookup: &dyn PodLookup = &cache;
        let a = lookup.container("ns", "web", Some("a")).unwrap();
        assert_eq!((a.container_id.as_str(), a.pod_uid.as_str(), a.stdin, a.tty), ("u1_a_0", "u1", true, true));
        assert_eq!(a.log_dir, PathBuf::from("/d/pods/u1/a"));
        assert_eq!(lookup.pod_uid("ns", "web").as_deref(), Some("u1"));
        assert_eq!(
            lookup.container("ns", "gone", None).unwrap_err(),
            ServerError::NotFound("pods \"gone\" not found".into())
        );
        assert!(
            matches!(lookup.container("ns", "web", Some("b")), Err(ServerError::BadRequest(m)) if m.contains("waiting to start"))
        );
        assert!(matches!(lookup.container("ns", "web", None), Err(ServerError::BadRequest(_))));
    }
}
