//! Conversion between a resource's served version and its stored shape. Upstream
//! stores `events.k8s.io/v1` Events as core `v1` Events (one object, two views);
//! every other served resource is stored as served.

use crate::Resource;
use serde_json::{Map, Value};

/// (core v1 field, events.k8s.io/v1 field).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields both shapes share under the same name.
const EVENT_SHARED: &[&str] =
    &["metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related", "type"];

fn is_events_v1(res: &Resource) -> bool {
    res.group == "events.k8s.io" && res.kind == "Event"
}

/// Whether objects of `res` are stored in another shape than they are served.
pub fn converts(res: &Resource) -> bool {
    is_events_v1(res)
}

fn rename(obj: Value, pairs: impl Iterator<Item = (&'static str, &'static str)>, api_version: &str) -> Value {
    let Value::Object(mut from) = obj else { return obj };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.to_string()));
    out.insert("kind".into(), Value::String("Event".into()));
    for k in EVENT_SHARED {
        if let Some(v) = from.remove(*k) {
            out.insert((*k).to_string(), v);
        }
    }
    for (src, dst) in pairs {
        if let Some(v) = from.remove(src) {
            out.insert(dst.to_string(), v);
        }
    }
    Value::Object(out)
}

/// The served shape of a stored object.
pub fn from_storage(res: &Resource, stored: Value) -> Value {
    if !is_events_v1(res) {
        return stored;
    }
    rename(stored, EVENT_FIELDS.iter().copied(), "events.k8s.io/v1")
}

/// Whether `res` is stored exactly as served (every resource but events.k8s.io/v1).
pub fn is_identity(res: &Resource) -> bool {
    !is_events_v1(res)
}

/// The stored shape of a served object.
pub fn to_storage(res: &Resource, served: Value) -> Value {
    if !is_events_v1(res) {
        return served;
    }
    rename(served, EVENT_FIELDS.iter().map(|(core, v1)| (*v1, *core)), "v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_versions() {
        let v1 = find("events.k8s.io", "v1", "events").unwrap();
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Scheduled", "message": "placed", "type": "Normal",
            "source": {"component": "scheduler"}, "count": 3,
            "firstTimestamp": "2024-01-01T00:00:00Z", "reportingComponent": "sched",
        });
        let served = from_storage(v1, core.clone());
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
        assert_eq!(served["regarding"]["name"], "p");
        assert_eq!(served["note"], "placed");
        assert_eq!(served["deprecatedCount"], 3);
        assert_eq!(served["deprecatedSource"]["component"], "scheduler");
        assert_eq!(served["reportingController"], "sched");
        assert!(served.get("message").is_none());
        assert_eq!(to_storage(v1, served), core);
        let core_res = find("", "v1", "events").unwrap();
        assert_eq!(from_storage(core_res, core.clone()), core);
    }
}
