//! The resources the API server serves: group, version, kind, plural, scope, short
//! names, categories and subresources, as upstream's discovery documents list them.

/// A subresource served under `.../{name}/{subresource}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Binding,
    Eviction,
    Log,
    Exec,
    Attach,
    PortForward,
    Proxy,
    /// A namespace's `spec.finalizers`, written by the namespace controller.
    Finalize,
    /// A service account's TokenRequest (served by the authentication layer, which
    /// answers it before routing; listed here so discovery shows it).
    Token,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
            Subresource::Finalize => "finalize",
            Subresource::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Subresource> {
        ALL_SUBRESOURCES.iter().copied().find(|r| r.name() == s)
    }

    /// The verbs discovery lists for the subresource.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
            Subresource::Binding | Subresource::Eviction | Subresource::Token => &["create"],
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::Attach | Subresource::PortForward => &["create", "get"],
            Subresource::Proxy => &["create", "delete", "get", "patch", "update"],
            Subresource::Finalize => &["update"],
        }
    }

    /// The (group, version, kind) of what the subresource takes and returns, or `None`
    /// when it is the parent's own kind.
    pub fn response_kind(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Subresource::Status | Subresource::Finalize => None,
            Subresource::Scale => Some(("autoscaling", "v1", "Scale")),
            Subresource::Binding => Some(("", "v1", "Binding")),
            Subresource::Eviction => Some(("policy", "v1", "Eviction")),
            Subresource::Log => Some(("", "v1", "Pod")),
            Subresource::Exec => Some(("", "v1", "PodExecOptions")),
            Subresource::Attach => Some(("", "v1", "PodAttachOptions")),
            Subresource::PortForward => Some(("", "v1", "PodPortForwardOptions")),
            Subresource::Proxy => Some(("", "v1", "PodProxyOptions")),
            Subresource::Token => Some(("authentication.k8s.io", "v1", "TokenRequest")),
        }
    }
}

const ALL_SUBRESOURCES: &[Subresource] = &[
    Subresource::Status,
    Subresource::Scale,
    Subresource::Binding,
    Subresource::Eviction,
    Subresource::Log,
    Subresource::Exec,
    Subresource::Attach,
    Subresource::PortForward,
    Subresource::Proxy,
    Subresource::Finalize,
    Subresource::Token,
];

/// One served resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The resource whose storage holds these objects. `events.k8s.io` events are the
    /// core events seen through another version, as upstream stores them.
    pub storage: &'static str,
}

impl Resource {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The name used in error messages: `pods`, `deployments.apps`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The key prefix under which every object of this resource is stored.
    pub fn storage_prefix(&self) -> String {
        format!("/registry/{}/", self.storage)
    }

    /// The store key of one object.
    pub fn storage_key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{}/{}", self.storage, ns, name),
            _ => format!("/registry/{}/{}", self.storage, name),
        }
    }

    /// The key prefix of one namespace's objects, or of all objects.
    pub fn storage_list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{}/", self.storage, ns),
            _ => self.storage_prefix(),
        }
    }

    /// The verbs discovery lists for the resource itself.
    pub fn verbs(&self) -> &'static [&'static str] {
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

use Subresource::*;

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr,
     short: [$($short:expr),*], categories: [$($cat:expr),*], sub: [$($sub:expr),*]) => {
        resource!($group, $version, $kind, $plural, $singular, $namespaced,
            short: [$($short),*], categories: [$($cat),*], sub: [$($sub),*], storage: $plural)
    };
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr,
     short: [$($short:expr),*], categories: [$($cat:expr),*], sub: [$($sub:expr),*], storage: $storage:expr) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            storage: $storage,
        }
    };
}

/// Every served resource, grouped in discovery preference order.
pub static RESOURCES: &[Resource] = &[
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", true, short: ["cm"], categories: [], sub: []),
    resource!("", "v1", "Endpoints", "endpoints", "endpoints", true, short: ["ep"], categories: [], sub: []),
    resource!("", "v1", "Event", "events", "event", true, short: ["ev"], categories: [], sub: []),
    resource!("", "v1", "Namespace", "namespaces", "namespace", false, short: ["ns"], categories: [], sub: [Status, Finalize]),
    resource!("", "v1", "Node", "nodes", "node", false, short: ["no"], categories: [], sub: [Status]),
    resource!("", "v1", "Pod", "pods", "pod", true, short: ["po"], categories: ["all"], sub: [Attach, Binding, Eviction, Exec, Log, PortForward, Status]),
    resource!("", "v1", "Secret", "secrets", "secret", true, short: [], categories: [], sub: []),
    resource!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, short: ["sa"], categories: [], sub: [Token]),
    resource!("", "v1", "Service", "services", "service", true, short: ["svc"], categories: ["all"], sub: [Status]),
    resource!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, short: [], categories: [], sub: []),
    resource!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, short: ["ds"], categories: ["all"], sub: [Status]),
    resource!("apps", "v1", "Deployment", "deployments", "deployment", true, short: ["deploy"], categories: ["all"], sub: [Status, Scale]),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, short: ["rs"], categories: ["all"], sub: [Status, Scale]),
    resource!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, short: ["sts"], categories: ["all"], sub: [Status, Scale]),
    resource!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, short: ["cj"], categories: ["all"], sub: [Status]),
    resource!("batch", "v1", "Job", "jobs", "job", true, short: [], categories: ["all"], sub: [Status]),
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, short: [], categories: [], sub: []),
    resource!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, short: [], categories: [], sub: []),
    resource!("events.k8s.io", "v1", "Event", "events", "event", true, short: ["ev"], categories: [], sub: [], storage: "events"),
    resource!("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, short: ["pc"], categories: [], sub: []),
    resource!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, short: ["pdb"], categories: [], sub: [Status]),
];

/// The `autoscaling/v1` Scale that the `scale` subresources read and write; not a
/// stored resource of its own.
pub static SCALE: Resource =
    resource!("autoscaling", "v1", "Scale", "scale", "scale", true, short: [], categories: [], sub: []);

/// The served API groups in preference order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group-version.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// Looks up a resource by its URL coordinates.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks up a resource by its kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_core_first() {
        let g = groups();
        assert_eq!(g[0], ("", vec!["v1"]));
        assert!(g.iter().any(|(name, _)| *name == "apps"));
    }

    #[test]
    fn keys_separate_namespaces_and_share_event_storage() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.storage_key(Some("default"), "web"), "/registry/pods/default/web");
        assert_eq!(pods.qualified_plural(), "pods");
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(ns.storage_key(Some("ignored"), "kube-system"), "/registry/namespaces/kube-system");
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(ev.storage_prefix(), find("", "v1", "events").unwrap().storage_prefix());
        assert_eq!(find("apps", "v1", "deployments").unwrap().qualified_plural(), "deployments.apps");
    }

    #[test]
    fn every_kind_has_a_schema() {
        let s = crate::schema::Schemas::get();
        for r in RESOURCES {
            assert!(s.for_kind(r.group, r.version, r.kind).is_some(), "{} has no schema", r.kind);
        }
    }
}
