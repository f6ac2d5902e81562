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

/// A field label and where it lives in the stored object; `flag` fields are booleans
/// that read "false" when absent, as upstream's typed structs do.
struct Label {
    field: &'static str,
    pointer: &'static str,
    flag: bool,
}

const fn label(field: &'static str, pointer: &'static str) -> Label {
    Label { field, pointer, flag: false }
}

const fn flag(field: &'static str, pointer: &'static str) -> Label {
    Label { field, pointer, flag: true }
}

const POD: &[Label] = &[
    label("spec.nodeName", "/spec/nodeName"),
    label("spec.restartPolicy", "/spec/restartPolicy"),
    label("spec.schedulerName", "/spec/schedulerName"),
    label("spec.serviceAccountName", "/spec/serviceAccountName"),
    flag("spec.hostNetwork", "/spec/hostNetwork"),
    label("status.phase", "/status/phase"),
    label("status.podIP", "/status/podIP"),
    label("status.nominatedNodeName", "/status/nominatedNodeName"),
];
const NODE: &[Label] = &[flag("spec.unschedulable", "/spec/unschedulable")];
const NAMESPACE: &[Label] = &[label("status.phase", "/status/phase")];
const SECRET: &[Label] = &[label("type", "/type")];
const SERVICE: &[Label] = &[label("spec.clusterIP", "/spec/clusterIP"), label("spec.type", "/spec/type")];
const REPLICASET: &[Label] = &[label("status.replicas", "/status/replicas")];
const JOB: &[Label] = &[label("status.successful", "/status/succeeded")];
/// Events are stored in the core shape; both versions select on its fields.
const EVENT: &[Label] = &[
    label("involvedObject.kind", "/involvedObject/kind"),
    label("involvedObject.namespace", "/involvedObject/namespace"),
    label("involvedObject.name", "/involvedObject/name"),
    label("involvedObject.uid", "/involvedObject/uid"),
    label("involvedObject.apiVersion", "/involvedObject/apiVersion"),
    label("involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
    label("involvedObject.fieldPath", "/involvedObject/fieldPath"),
    label("reason", "/reason"),
    label("reportingComponent", "/reportingComponent"),
    label("source", "/source/component"),
    label("type", "/type"),
];

/// The field labels of a kind beyond `metadata.name` and `metadata.namespace`.
fn labels(res: &Resource) -> &'static [Label] {
    match (res.group, res.kind) {
        ("", "Pod") => POD,
        ("", "Node") => NODE,
        ("", "Namespace") => NAMESPACE,
        ("", "Secret") => SECRET,
        ("", "Service") => SERVICE,
        ("apps", "ReplicaSet") => REPLICASET,
        ("batch", "Job") => JOB,
        ("", "Event") | ("events.k8s.io", "Event") => EVENT,
        _ => &[],
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
    let l = labels(res).iter().find(|l| l.field == field)?;
    if l.flag {
        return Some(obj.pointer(l.pointer).and_then(Value::as_bool).unwrap_or(false).to_string());
    }
    Some(text(obj, l.pointer))
}

/// Only what label and field selectors read of a stored object (its name,
/// namespace, labels and the kind's field labels), in the same places: a small
/// stand-in for the object wherever many versions of it are kept only to be matched
/// later (the watch cache's ring). Read straight from the JSON, without building the
/// rest of the object.
pub fn selectable(res: &Resource, json: &[u8]) -> Result<Value, serde_json::Error> {
    let mut pointers = vec!["/metadata/name", "/metadata/namespace", "/metadata/labels"];
    pointers.extend(labels(res).iter().map(|l| l.pointer));
    crate::project::project(json, &pointers)
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

    #[test]
    fn selectable_keeps_what_selectors_read_and_nothing_else() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}, "uid": "u", "managedFields": []},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": []},
        });
        let view = selectable(pods, pod.to_string().as_bytes()).unwrap();
        assert_eq!(
            view,
            json!({
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "hostNetwork": true},
                "status": {"phase": "Running"},
            })
        );
        for l in POD {
            assert_eq!(field_value(pods, &view, l.field), field_value(pods, &pod, l.field), "{}", l.field);
        }
        let events = find("events.k8s.io", "v1", "events").unwrap();
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "source": {"component": "k"}, "message": "m"});
        assert_eq!(
            selectable(events, ev.to_string().as_bytes()).unwrap(),
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "source": {"component": "k"}})
        );
        // A kind without field labels keeps only its metadata.
        let cms = find("", "v1", "configmaps").unwrap();
        assert_eq!(
            selectable(cms, br#"{"metadata": {"name": "c"}, "data": {"a": "b"}}"#).unwrap(),
            json!({"metadata": {"name": "c"}})
        );
    }
}
