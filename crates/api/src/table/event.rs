//! The Event row (upstream `printEvent`), for core v1 events and for events.k8s.io/v1
//! ones, which upstream converts to the core type before printing. Both share storage,
//! so either shape may arrive under either resource; each field is read from its core
//! name first, then from its events.k8s.io name.

use super::fields::{get, int_at, name, obj_at, opt_int_at, str_at, time_at};
use super::time::{Nanos, since};
use serde_json::Value;

/// A field of the internal Event and where each wire shape keeps it.
fn either<'a>(ev: &'a Value, core: &str, events_k8s_io: &str) -> Option<&'a Value> {
    get(ev, core).or_else(|| get(ev, events_k8s_io))
}

fn either_str<'a>(ev: &'a Value, core: &str, events_k8s_io: &str) -> &'a str {
    match str_at(ev, core) {
        "" => str_at(ev, events_k8s_io),
        s => s,
    }
}

fn either_time(ev: &Value, core: &str, events_k8s_io: &str) -> Option<Nanos> {
    time_at(ev, core).or_else(|| time_at(ev, events_k8s_io))
}

pub(super) fn row(ev: &Value, now: Nanos) -> Vec<Value> {
    let first_seen = match either_time(ev, "/firstTimestamp", "/deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, "/eventTime"), now),
    };
    let mut last_seen = match either_time(ev, "/lastTimestamp", "/deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = opt_int_at(ev, "/count").or_else(|| opt_int_at(ev, "/deprecatedCount")).unwrap_or(0);
    if let Some(series) = obj_at(ev, "/series") {
        last_seen = since(time_at(series, "/lastObservedTime"), now);
        count = int_at(series, "/count");
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }

    let involved = either(ev, "/involvedObject", "/regarding");
    let kind = involved.map(|o| str_at(o, "/kind")).unwrap_or("").to_lowercase();
    let target = match involved.map(|o| str_at(o, "/name")).unwrap_or("") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let field_path = involved.map(|o| str_at(o, "/fieldPath")).unwrap_or("");

    let component = match either_str(ev, "/source/component", "/deprecatedSource/component") {
        "" => either_str(ev, "/reportingComponent", "/reportingController"),
        c => c,
    };
    let instance = match either_str(ev, "/source/host", "/deprecatedSource/host") {
        "" => str_at(ev, "/reportingInstance"),
        h => h,
    };
    let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };

    vec![
        Value::from(last_seen),
        Value::from(str_at(ev, "/type")),
        Value::from(str_at(ev, "/reason")),
        Value::from(target),
        Value::from(field_path),
        Value::from(source),
        Value::from(either_str(ev, "/message", "/note").trim()),
        Value::from(first_seen),
        Value::from(count),
        name(ev),
    ]
}

#[cfg(test)]
mod tests {
    use crate::table::testing::cells;
    use serde_json::json;

    #[test]
    fn core_event_from_the_kubelet() {
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.17f1c2a9e3b0a1b2", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "apiVersion": "v1",
                               "fieldPath": "spec.containers{web}"},
            "reason": "Pulled",
            "message": "Successfully pulled image \"nginx:1.27\" in 1.2s\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-06-01T11:00:00Z",
            "lastTimestamp": "2025-06-01T11:55:00Z",
            "count": 4,
            "type": "Normal",
            "eventTime": null,
            "reportingComponent": "kubelet",
            "reportingInstance": "node-1"
        });
        assert_eq!(
            cells("", "events", &ev),
            [
                json!("5m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx:1.27\" in 1.2s"),
                json!("60m"),
                json!(4),
                json!("web-1.17f1c2a9e3b0a1b2"),
            ]
        );
    }

    #[test]
    fn events_k8s_io_event_with_series() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17f1c2a9e3b0a1b3", "namespace": "default"},
            "eventTime": "2025-06-01T10:00:00.123456Z",
            "series": {"count": 12, "lastObservedTime": "2025-06-01T11:59:00.000000Z"},
            "reportingController": "default-scheduler",
            "reportingInstance": "default-scheduler-node-1",
            "action": "Scheduling",
            "reason": "FailedScheduling",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
            "note": "0/3 nodes are available: 3 Insufficient cpu.",
            "type": "Warning"
        });
        let want = [
            json!("60s"),
            json!("Warning"),
            json!("FailedScheduling"),
            json!("pod/web"),
            json!(""),
            json!("default-scheduler, default-scheduler-node-1"),
            json!("0/3 nodes are available: 3 Insufficient cpu."),
            json!("119m"),
            json!(12),
            json!("web.17f1c2a9e3b0a1b3"),
        ];
        assert_eq!(cells("events.k8s.io", "events", &ev), want);
        // The same stored object read through the core resource prints alike.
        assert_eq!(cells("", "events", &ev), want);
    }

    #[test]
    fn events_k8s_io_deprecated_fields_and_singletons() {
        let ev = json!({
            "metadata": {"name": "n1.1"},
            "regarding": {"kind": "Node", "name": "node-1"},
            "deprecatedSource": {"component": "node-controller"},
            "deprecatedFirstTimestamp": "2025-06-01T09:00:00Z",
            "deprecatedLastTimestamp": "2025-06-01T11:00:00Z",
            "deprecatedCount": 3,
            "reason": "NodeNotReady",
            "note": "Node node-1 status is now: NodeNotReady",
            "type": "Normal"
        });
        assert_eq!(
            cells("events.k8s.io", "events", &ev),
            [
                json!("60m"),
                json!("Normal"),
                json!("NodeNotReady"),
                json!("node/node-1"),
                json!(""),
                json!("node-controller"),
                json!("Node node-1 status is now: NodeNotReady"),
                json!("3h"),
                json!(3),
                json!("n1.1"),
            ]
        );
        let bare = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Namespace"}});
        assert_eq!(
            cells("", "events", &bare),
            [
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("namespace"),
                json!(""),
                json!(""),
                json!(""),
                json!("<unknown>"),
                json!(1),
                json!("x"),
            ]
        );
    }

    #[test]
    fn event_last_seen_falls_back_to_first_seen() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Deployment", "name": "web"},
            "firstTimestamp": "2025-06-01T11:58:00Z", "count": 0, "reason": "ScalingReplicaSet",
            "source": {"component": "deployment-controller"}, "message": "Scaled up replica set web-7d4b9c8f6 from 0 to 2"});
        let c = cells("", "events", &ev);
        assert_eq!(
            (c[0].clone(), c[3].clone(), c[5].clone(), c[7].clone(), c[8].clone()),
            (json!("2m"), json!("deployment/web"), json!("deployment-controller"), json!("2m"), json!(1))
        );
    }
}
