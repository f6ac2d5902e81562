//! The field labels each kind supports in field selectors, and their values, as
//! upstream's `GetAttrs`/`SelectableFields` functions define them.

use crate::Resource;
use serde_json::Value;

fn text(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The value of a field label for an object, or `None` when the kind does not
/// support selecting on it (upstream answers 400 "field label not supported").
pub fn field_value(res: &Resource, obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" => return Some(text(obj, "/metadata/name")),
        "metadata.namespace" if res.namespaced => return Some(text(obj, "/metadata/namespace")),
        _ => {}
    }
    let pointer = match (res.group, res.kind, field) {
        ("", "Pod", "spec.nodeName") => "/spec/nodeName",
        ("", "Pod", "spec.restartPolicy") => "/spec/restartPolicy",
        ("", "Pod", "spec.schedulerName") => "/spec/schedulerName",
        ("", "Pod", "spec.serviceAccountName") => "/spec/serviceAccountName",
        ("", "Pod", "spec.hostNetwork") => {
            return Some(obj.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false).to_string());
        }
        ("", "Pod", "status.phase") => "/status/phase",
        ("", "Pod", "status.podIP") => "/status/podIP",
        ("", "Pod", "status.nominatedNodeName") => "/status/nominatedNodeName",
        ("", "Node", "spec.unschedulable") => {
            return Some(obj.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false).to_string());
        }
        ("", "Namespace", "status.phase") => "/status/phase",
        ("", "Secret", "type") => "/type",
        ("", "Service", "spec.clusterIP") => "/spec/clusterIP",
        ("", "Service", "spec.type") => "/spec/type",
        ("apps", "ReplicaSet", "status.replicas") => "/status/replicas",
        ("batch", "Job", "status.successful") => "/status/succeeded",
        ("", "Event", f) => return core_event_field(obj, f),
        ("events.k8s.io", "Event", f) => return core_event_field(obj, f),
        _ => return None,
    };
    Some(text(obj, pointer))
}

/// Events are stored in the core shape; both versions select on its fields.
fn core_event_field(obj: &Value, field: &str) -> Option<String> {
    let pointer = match field {
        "involvedObject.kind" => "/involvedObject/kind",
        "involvedObject.namespace" => "/involvedObject/namespace",
        "involvedObject.name" => "/involvedObject/name",
        "involvedObject.uid" => "/involvedObject/uid",
        "involvedObject.apiVersion" => "/involvedObject/apiVersion",
        "involvedObject.resourceVersion" => "/involvedObject/resourceVersion",
        "involvedObject.fieldPath" => "/involvedObject/fieldPath",
        "reason" => "/reason",
        "reportingComponent" => "/reportingComponent",
        "source" => "/source/component",
        "type" => "/type",
        _ => return None,
    };
    Some(text(obj, pointer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use serde_json::json;

    #[test]
    fn pods_and_events() {
        let pods = find("", "v1", "pods").unwrap();
        let pod =
            json!({"metadata":{"name":"p","namespace":"ns"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}});
        assert_eq!(field_value(pods, &pod, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(field_value(pods, &pod, "status.phase").as_deref(), Some("Running"));
        assert_eq!(field_value(pods, &pod, "spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(field_value(pods, &pod, "spec.bogus"), None);
        let events = find("", "v1", "events").unwrap();
        let ev = json!({"metadata":{"name":"e"},"involvedObject":{"kind":"Node","name":"n1"}});
        assert_eq!(field_value(events, &ev, "involvedObject.namespace").as_deref(), Some(""));
        assert_eq!(field_value(events, &ev, "involvedObject.kind").as_deref(), Some("Node"));
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(field_value(ns, &json!({}), "metadata.namespace"), None);
    }
}
