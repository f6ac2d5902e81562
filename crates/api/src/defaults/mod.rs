//! Defaulting as upstream's scheme applies it when it decodes an object: the
//! `SetDefaults_*` functions of `pkg/apis/{core,apps,batch,discovery}/v1`, plus what Go's
//! typed structs always write back (`resources: {}`, `status: {}`, canonical quantities,
//! `creationTimestamp: null` in templates), so stored objects read like upstream's.
//!
//! [`apply`] is the entry point; it is idempotent, so the server may run it on every
//! write. [`job_selector`] finishes a Job once it has a UID, and [`service_update`]
//! carries allocated Service fields across an update.

mod corev1;
mod pod;
mod workloads;

pub use workloads::job_selector;

use crate::registry::Resource;
use crate::validation::Quantity;
use serde_json::{Map, Value};

/// Fills in upstream's defaults for an object of `resource`, in place.
pub fn apply(resource: &Resource, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (resource.group, resource.kind) {
        ("", "Pod") => pod::pod(obj),
        ("", "Service") => corev1::service(obj),
        ("", "Secret") => corev1::secret(obj),
        ("", "Namespace") => corev1::namespace(obj),
        ("", "Node") => corev1::node(obj),
        ("", "Endpoints") => corev1::endpoints(obj),
        ("", "Event") => corev1::event(obj),
        ("events.k8s.io", "Event") => corev1::event_v1(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replicaset(obj),
        ("apps", "StatefulSet") => workloads::statefulset(obj),
        ("apps", "DaemonSet") => workloads::daemonset(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cronjob(obj),
        ("discovery.k8s.io", "EndpointSlice") => corev1::endpoint_slice(obj),
        ("coordination.k8s.io", "Lease") => corev1::lease(obj),
        ("policy", "PodDisruptionBudget") => corev1::pdb(obj),
        ("scheduling.k8s.io", "PriorityClass") => corev1::priority_class(obj),
        _ => {}
    }
}

/// Carries what the Service allocator assigned (cluster IPs, node ports, the health
/// check port) from the stored object into an update that left them out, as upstream's
/// `patchAllocatedValues` does before validation.
pub fn service_update(new: &mut Value, old: &Value) {
    corev1::patch_allocated_values(new, old);
}

// ---- helpers shared by the defaulters

/// Whether a field is unset in Go's sense for pointers: missing or null.
fn is_unset(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Sets a pointer-like field when it is missing or null.
fn default_value(m: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(m, key) {
        m.insert(key.to_string(), value);
    }
}

/// Sets a string field when it is missing, null or empty (Go's zero value).
fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if m.get(key).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        m.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The object at `key`, created empty when missing or null; `None` when the field holds
/// something else (validation reports that).
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if is_unset(m, key) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key` if it is one; never creates it.
fn existing<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the list at `key`.
fn items<'a>(m: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `SetDefaults_ResourceList` plus Go's serialization: rounds up to thousandths and
/// writes each quantity in canonical form. Unparsable values are left for validation.
fn resource_list(m: &mut Map<String, Value>, key: &str) {
    let Some(list) = existing(m, key) else { return };
    for v in list.values_mut() {
        canonical_quantity(v);
    }
}

fn canonical_quantity(v: &mut Value) {
    if let Ok(q) = Quantity::from_json(v) {
        *v = Value::String(q.round_up_to_milli().canonical());
    }
}

/// Go writes a template's zero `creationTimestamp` as `null`.
fn template_metadata(m: &mut Map<String, Value>) {
    if let Some(meta) = child(m, "metadata") {
        default_value(meta, "creationTimestamp", Value::Null);
    }
}

/// Zero counters Go's non-`omitempty` status fields always carry.
fn status_zeros(m: &mut Map<String, Value>, keys: &[&str]) {
    if let Some(status) = child(m, "status") {
        for k in keys {
            default_value(status, k, Value::from(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{RESOURCES, find};
    use serde_json::json;

    #[test]
    fn every_resource_defaults_without_panicking_and_idempotently() {
        for r in RESOURCES {
            for input in [
                json!({}),
                json!({"spec": null, "metadata": {"name": "x"}}),
                json!({"spec": "odd", "status": 3}),
                json!(null),
            ] {
                let mut once = input.clone();
                apply(r, &mut once);
                let mut twice = once.clone();
                apply(r, &mut twice);
                assert_eq!(once, twice, "{} is not idempotent for {input}", r.kind);
            }
        }
    }

    #[test]
    fn quantities_are_canonical() {
        let mut v = json!("0.5");
        canonical_quantity(&mut v);
        assert_eq!(v, json!("500m"));
        let mut v = json!(2);
        canonical_quantity(&mut v);
        assert_eq!(v, json!("2"));
        let mut v = json!("lots");
        canonical_quantity(&mut v);
        assert_eq!(v, json!("lots"));
    }

    #[test]
    fn services_keep_allocations_across_updates() {
        let svc = find("", "v1", "services").unwrap();
        let mut old = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}});
        old["spec"]["clusterIP"] = json!("10.43.0.7");
        apply(svc, &mut old);
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "ports": [{"name": "http", "port": 80}]}});
        service_update(&mut new, &old);
        apply(svc, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    }
}
