//! Validation as upstream does it for the served kinds: names, labels, annotations,
//! required and immutable fields. Every failure is a [`Cause`] naming its field, with
//! upstream's field paths and messages.
//!
//! Start with [`validate_create`], [`validate_update`] and [`validate_status_update`];
//! they expect defaulted objects (see [`crate::defaults`]), as upstream validates after
//! defaulting. Each kind's rules live in a module named after its API area.

mod apps;
mod batch;
mod corev1;
pub mod field;
pub mod meta;
mod names;
mod net;
mod pod;
mod quantity;
mod scheduling;
mod service;

pub use names::*;
pub use pod::validate_binding;
pub use quantity::{Format, QUANTITY_FORMAT_MESSAGE, Quantity, QuantityError, parse_quantity};
pub use scheduling::{HIGHEST_USER_DEFINABLE_PRIORITY, SYSTEM_PRIORITY_CLASSES};

use crate::registry::Resource;
use crate::status::Cause;
use field::{Path, sub};
use serde_json::Value;

/// The rules that apply to a served kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConfigMap,
    Endpoints,
    Event,
    /// `events.k8s.io/v1`: the same objects under stricter rules.
    EventV1,
    Namespace,
    Node,
    Pod,
    Secret,
    ServiceAccount,
    Service,
    ControllerRevision,
    DaemonSet,
    Deployment,
    ReplicaSet,
    StatefulSet,
    CronJob,
    Job,
    Lease,
    EndpointSlice,
    PodDisruptionBudget,
    PriorityClass,
    /// Served but without kind rules here: only the checks every object passes.
    Other,
}

fn kind_of(resource: &Resource) -> Kind {
    match (resource.group, resource.kind) {
        ("", "ConfigMap") => Kind::ConfigMap,
        ("", "Endpoints") => Kind::Endpoints,
        ("", "Event") => Kind::Event,
        ("events.k8s.io", "Event") => Kind::EventV1,
        ("", "Namespace") => Kind::Namespace,
        ("", "Node") => Kind::Node,
        ("", "Pod") => Kind::Pod,
        ("", "Secret") => Kind::Secret,
        ("", "ServiceAccount") => Kind::ServiceAccount,
        ("", "Service") => Kind::Service,
        ("apps", "ControllerRevision") => Kind::ControllerRevision,
        ("apps", "DaemonSet") => Kind::DaemonSet,
        ("apps", "Deployment") => Kind::Deployment,
        ("apps", "ReplicaSet") => Kind::ReplicaSet,
        ("apps", "StatefulSet") => Kind::StatefulSet,
        ("batch", "CronJob") => Kind::CronJob,
        ("batch", "Job") => Kind::Job,
        ("coordination.k8s.io", "Lease") => Kind::Lease,
        ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
        ("policy", "PodDisruptionBudget") => Kind::PodDisruptionBudget,
        ("scheduling.k8s.io", "PriorityClass") => Kind::PriorityClass,
        _ => Kind::Other,
    }
}

/// Drops exact repeats: upstream runs some metadata checks more than once per request,
/// and a person needs to read each problem once.
fn dedup(causes: Vec<Cause>) -> Vec<Cause> {
    let mut out: Vec<Cause> = Vec::with_capacity(causes.len());
    for c in causes {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The metadata checks every stored object passes whatever its kind; its name must
/// only be usable as a URL path segment.
fn common_meta(resource: &Resource, obj: &Value) -> Vec<Cause> {
    meta::common_object_meta(sub(obj, "metadata"), resource.namespaced, NameRule::PathSegment, &Path::new("metadata"))
}

/// Checks a defaulted object about to be created.
pub fn validate_create(resource: &Resource, obj: &Value) -> Vec<Cause> {
    let errs = match kind_of(resource) {
        Kind::ConfigMap => corev1::validate_config_map(obj),
        Kind::Endpoints => service::validate_endpoints(obj),
        Kind::Event => corev1::validate_event(obj, false),
        Kind::EventV1 => corev1::validate_event(obj, true),
        Kind::Namespace => corev1::validate_namespace(obj),
        Kind::Node => corev1::validate_node(obj),
        Kind::Pod => pod::validate_pod_create(obj),
        Kind::Secret => corev1::validate_secret(obj),
        Kind::ServiceAccount => corev1::validate_service_account(obj),
        Kind::Service => service::validate_service(obj),
        Kind::ControllerRevision => apps::validate_controller_revision(obj),
        Kind::DaemonSet => apps::validate_daemonset(obj),
        Kind::Deployment => apps::validate_deployment(obj),
        Kind::ReplicaSet => apps::validate_replicaset(obj),
        Kind::StatefulSet => apps::validate_statefulset(obj),
        Kind::CronJob => batch::validate_cronjob(obj),
        Kind::Job => batch::validate_job(obj),
        Kind::Lease => corev1::validate_lease(obj),
        Kind::EndpointSlice => service::validate_endpoint_slice(obj),
        Kind::PodDisruptionBudget => corev1::validate_pdb(obj),
        Kind::PriorityClass => scheduling::validate_priority_class(obj),
        Kind::Other => Vec::new(),
    };
    // Upstream runs the common metadata checks only once the kind's own rules pass, so
    // the more specific messages win.
    if errs.is_empty() { dedup(common_meta(resource, obj)) } else { dedup(errs) }
}

/// Checks an update of the main resource (not a subresource). `new` is defaulted and
/// carries the resourceVersion the update is conditional on.
pub fn validate_update(resource: &Resource, new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = common_meta(resource, new);
    errs.extend(meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata")));
    errs.extend(match kind_of(resource) {
        Kind::ConfigMap => corev1::validate_config_map_update(new, old),
        Kind::Endpoints => service::validate_endpoints_update(new, old),
        Kind::Event => corev1::validate_event_update(new, old, false),
        Kind::EventV1 => corev1::validate_event_update(new, old, true),
        Kind::Namespace => corev1::validate_namespace_update(new, old),
        Kind::Node => corev1::validate_node_update(new, old),
        Kind::Pod => pod::validate_pod_update(new, old),
        Kind::Secret => corev1::validate_secret_update(new, old),
        Kind::ServiceAccount => corev1::validate_service_account_update(new, old),
        Kind::Service => service::validate_service_update(new, old),
        Kind::ControllerRevision => apps::validate_controller_revision_update(new, old),
        Kind::DaemonSet => apps::validate_daemonset_update(new, old),
        Kind::Deployment => apps::validate_deployment_update(new, old),
        Kind::ReplicaSet => apps::validate_replicaset_update(new, old),
        Kind::StatefulSet => apps::validate_statefulset_update(new, old),
        Kind::CronJob => batch::validate_cronjob_update(new, old),
        Kind::Job => batch::validate_job_update(new, old),
        Kind::Lease => corev1::validate_lease_update(new, old),
        Kind::EndpointSlice => service::validate_endpoint_slice_update(new, old),
        Kind::PodDisruptionBudget => corev1::validate_pdb(new),
        Kind::PriorityClass => scheduling::validate_priority_class_update(new, old),
        Kind::Other => Vec::new(),
    });
    dedup(errs)
}

/// Checks a write through the `status` subresource: metadata rules, plus the sanity
/// of the status upstream enforces for the kind. The caller copies the spec from `old`
/// first, as upstream's status strategies do.
pub fn validate_status_update(resource: &Resource, new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = common_meta(resource, new);
    errs.extend(meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata")));
    errs.extend(match kind_of(resource) {
        Kind::Pod => pod::validate_pod_status_update(new, old),
        Kind::Namespace => corev1::validate_namespace_status_update(new, old),
        Kind::Node => corev1::validate_node_update(new, old),
        Kind::Service => service::validate_service_status_update(new, old),
        Kind::Deployment => apps::validate_deployment_status_update(new, old),
        Kind::ReplicaSet => apps::validate_replicaset_status_update(new, old),
        Kind::StatefulSet => apps::validate_statefulset_status_update(new, old),
        Kind::DaemonSet => apps::validate_daemonset_status_update(new, old),
        Kind::Job => batch::validate_job_status_update(new, old),
        Kind::PodDisruptionBudget => corev1::validate_pdb_status_update(new, old),
        _ => Vec::new(),
    });
    dedup(errs)
}

/// Checks a `namespaces/{name}/finalize` write.
pub fn validate_namespace_finalize(new: &Value, old: &Value) -> Vec<Cause> {
    dedup(corev1::validate_namespace_finalize_update(new, old))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{RESOURCES, find};
    use serde_json::json;

    #[test]
    fn every_served_kind_requires_a_name() {
        // Each kind's own rules are tested in its module; here every resource dispatches
        // and reports metadata problems.
        for r in RESOURCES {
            let meta = if r.namespaced { json!({"namespace": "default"}) } else { json!({}) };
            let errs = validate_create(r, &json!({"metadata": meta}));
            assert!(errs.iter().any(|c| c.field == "metadata.name"), "{} did not require a name: {errs:?}", r.kind);
        }
    }

    /// Manifests as kubectl sends them; once defaulted they must pass validation, and a
    /// no-op update of the stored object must pass too.
    #[test]
    fn defaulted_manifests_validate() {
        let tpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
             "readinessProbe": {"httpGet": {"port": 80}}, "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
             "volumeMounts": [{"name": "cfg", "mountPath": "/etc/web"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "web"}}]}});
        let sel = json!({"matchLabels": {"app": "web"}});
        let m = |name: &str| json!({"name": name, "namespace": "default"});
        let manifests = [
            ("", "pods", json!({"metadata": m("web"), "spec": tpl["spec"].clone()})),
            ("apps", "deployments", json!({"metadata": m("web"), "spec": {"selector": sel, "template": tpl}})),
            ("apps", "replicasets", json!({"metadata": m("web-1"), "spec": {"selector": sel, "template": tpl}})),
            (
                "apps",
                "statefulsets",
                json!({"metadata": m("db"), "spec": {"serviceName": "db", "selector": sel, "template": tpl,
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            ),
            ("apps", "daemonsets", json!({"metadata": m("agent"), "spec": {"selector": sel, "template": tpl}})),
            (
                "batch",
                "cronjobs",
                json!({"metadata": m("nightly"), "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}}),
            ),
            (
                "",
                "services",
                json!({"metadata": m("web"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            ),
            (
                "",
                "services",
                json!({"metadata": m("np"), "spec": {"type": "NodePort", "selector": {"app": "web"},
                "clusterIP": "10.43.0.20", "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
            ("", "configmaps", json!({"metadata": m("web"), "data": {"index.html": "hi"}})),
            ("", "secrets", json!({"metadata": m("web"), "stringData": {"password": "x"}})),
            ("", "namespaces", json!({"metadata": {"name": "team-a"}})),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": m("web"), "subsets": [{"addresses": [{"ip": "10.42.0.9"}], "ports": [{"port": 80}]}]}),
            ),
            (
                "",
                "events",
                json!({"metadata": m("web.1"), "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                "reason": "Scheduled", "message": "assigned", "type": "Normal", "source": {"component": "scheduler"}}),
            ),
            ("", "serviceaccounts", json!({"metadata": m("default")})),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": m("web-x"), "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.42.0.9"]}], "ports": [{"port": 80}]}),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
            ),
            (
                "policy",
                "poddisruptionbudgets",
                json!({"metadata": m("web"), "spec": {"maxUnavailable": "25%", "selector": sel}}),
            ),
        ];
        for (group, plural, mut obj) in manifests {
            let r = find(group, "v1", plural).unwrap();
            crate::defaults::apply(r, &mut obj);
            let errs = validate_create(r, &obj);
            assert!(errs.is_empty(), "{plural}: {errs:?}");
            let mut stored = obj.clone();
            stored["metadata"]["resourceVersion"] = json!("5");
            stored["metadata"]["uid"] = json!("u");
            crate::defaults::apply(r, &mut stored);
            let errs = validate_update(r, &stored, &stored);
            assert!(errs.is_empty(), "{plural} update: {errs:?}");
            assert!(validate_status_update(r, &stored, &stored).is_empty(), "{plural} status");
        }

        // A Job validates once the server has given it a UID and generated its selector.
        let jobs = find("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": m("pi"), "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl"}], "restartPolicy": "Never"}}}});
        crate::defaults::apply(jobs, &mut job);
        assert!(validate_create(jobs, &job).iter().any(|c| c.field == "spec.selector"));
        job["metadata"]["uid"] = json!("1f0c");
        crate::defaults::job_selector(&mut job);
        assert!(validate_create(jobs, &job).is_empty(), "{:?}", validate_create(jobs, &job));
    }

    #[test]
    fn kinds_without_own_metadata_rules_still_check_names() {
        let pdb = find("policy", "v1", "poddisruptionbudgets").unwrap();
        let obj = json!({"metadata": {"name": "a/b", "namespace": "d"}, "spec": {}});
        let errs = validate_create(pdb, &obj);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].message, "Invalid value: \"a/b\": may not contain '/'");
        // Specific errors come first and alone.
        let obj = json!({"metadata": {"name": "a/b", "namespace": "d"}, "spec": {"minAvailable": -1}});
        assert_eq!(validate_create(pdb, &obj)[0].field, "spec.minAvailable");
    }

    #[test]
    fn updates_check_identity_and_dedupe() {
        let cm = find("", "v1", "configmaps").unwrap();
        let old = json!({"metadata": {"name": "c", "namespace": "d", "uid": "1", "resourceVersion": "3"}, "data": {}});
        let mut new = old.clone();
        new["metadata"]["uid"] = json!("2");
        new["metadata"]["labels"] = json!({"bad key": "v"});
        let errs = validate_update(cm, &new, &old);
        assert_eq!(errs.iter().filter(|c| c.field == "metadata.uid").count(), 1, "{errs:?}");
        assert_eq!(errs.iter().filter(|c| c.field == "metadata.labels").count(), 1, "{errs:?}");
        let mut ok = old.clone();
        ok["data"] = json!({"k": "v"});
        assert!(validate_update(cm, &ok, &old).is_empty());
    }

    #[test]
    fn status_updates_check_metadata_and_status() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let old =
            json!({"metadata": {"name": "w", "namespace": "d", "resourceVersion": "3", "generation": 2}, "spec": {}});
        let mut new = old.clone();
        new["status"] = json!({"replicas": 1, "updatedReplicas": 2});
        new["metadata"]["generation"] = json!(1);
        let errs = validate_status_update(deploy, &new, &old);
        let fields: Vec<&str> = errs.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"status.updatedReplicas"), "{fields:?}");
        assert!(fields.contains(&"metadata.generation"), "{fields:?}");
        let lease = find("coordination.k8s.io", "v1", "leases").unwrap();
        let old = json!({"metadata": {"name": "l", "namespace": "d", "resourceVersion": "3"}});
        assert!(validate_status_update(lease, &old, &old).is_empty());
    }
}
