//! Per-kind write rules, as upstream's registry strategies hold them: which kinds keep
//! a `generation`, what a create resets, how status and spec writes stay apart.

use api::{Resource, Subresource};
use serde_json::{Map, Value, json};

/// Kinds whose `metadata.generation` counts spec changes.
pub fn uses_generation(res: &Resource) -> bool {
    matches!(
        (res.group, res.kind),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job" | "CronJob")
            | ("policy", "PodDisruptionBudget")
            | ("", "Pod")
    )
}

fn has_status(res: &Resource) -> bool {
    res.has_subresource(Subresource::Status)
}

/// Everything but metadata and status: what a change of bumps the generation.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Resets what a client may not set on create.
pub fn prepare_for_create(res: &Resource, obj: &mut Value) {
    if uses_generation(res) {
        obj["metadata"]["generation"] = json!(1);
    }
    let Some(map) = obj.as_object_mut() else { return };
    match (res.group, res.kind) {
        // Nodes register with their status; namespaces get theirs from defaulting.
        ("", "Node") | ("", "Namespace") => {}
        ("", "Pod") => {
            map.insert("status".into(), json!({"phase": "Pending", "qosClass": qos_class(map.get("spec"))}));
        }
        _ if has_status(res) => {
            map.remove("status");
        }
        _ => {}
    }
}

/// Carries over what a write to the main resource may not change: the status, and the
/// generation unless the spec changed.
pub fn prepare_for_update(res: &Resource, new: &mut Value, old: &Value) {
    if has_status(res) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    carry_generation(res, new, old);
}

fn carry_generation(res: &Resource, new: &mut Value, old: &Value) {
    if !uses_generation(res) {
        return;
    }
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let bumped = if spec_part(new) != spec_part(old) { generation + 1 } else { generation };
    new["metadata"]["generation"] = json!(bumped);
}

/// A status write changes only the status (and metadata a controller may touch).
pub fn prepare_for_status_update(res: &Resource, new: &mut Value, old: &Value) {
    // Most status writes changed nothing else (a patch of `status` merged onto the
    // object read, a kubelet's or controller's update of it): nothing to put back,
    // and no copy of `old` (a third tree of the object, built and dropped) to make.
    if crate::objects::same_but(new, old, Some("status")) {
        return;
    }
    // Taken out, not copied: the rest of `new` is replaced by `old` below.
    let status = new.get_mut("status").map(Value::take);
    let rv = new.pointer_mut("/metadata/resourceVersion").map(Value::take);
    *new = old.clone();
    match status {
        Some(s) => new["status"] = s,
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
    // Upstream lets status writers change labels, annotations, finalizers and owner
    // references only through the main resource; keep the old metadata but the
    // resourceVersion precondition the client sent.
    if let Some(rv) = rv {
        new["metadata"]["resourceVersion"] = rv;
    }
    let _ = res;
}

/// The QoS class upstream computes for a pod: Guaranteed when every container has
/// equal cpu and memory requests and limits, BestEffort when none has any, Burstable otherwise.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.and_then(|s| s.get(*k)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&Map<String, Value>>| {
            m.map(|m| m.iter().filter(|(k, _)| *k == "cpu" || *k == "memory").count()).unwrap_or(0)
        };
        if relevant(requests) > 0 || relevant(limits) > 0 {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            // A request defaults to its limit.
            let request = requests.and_then(|q| q.get(r)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::registry::find;

    #[test]
    fn generation_follows_spec_changes_only() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata":{"name":"web"},"spec":{"replicas":1},"status":{"replicas":9}});
        prepare_for_create(deploy, &mut obj);
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj.get("status").is_none());
        let old = obj.clone();
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a":"b"});
        relabelled["status"] = json!({"replicas": 3});
        prepare_for_update(deploy, &mut relabelled, &old);
        assert_eq!(relabelled["metadata"]["generation"], 1);
        assert!(relabelled.get("status").is_none(), "status is not writable through the main resource");
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        prepare_for_update(deploy, &mut scaled, &old);
        assert_eq!(scaled["metadata"]["generation"], 2);
    }

    #[test]
    fn status_writes_keep_the_spec() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata":{"name":"web","generation":2},"spec":{"replicas":1}});
        let mut new =
            json!({"metadata":{"name":"web","resourceVersion":"7"},"spec":{"replicas":5},"status":{"replicas":1}});
        prepare_for_status_update(deploy, &mut new, &old);
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["metadata"]["resourceVersion"], "7");
    }

    /// Whether or not anything outside the status changed, the result is `old` with the
    /// new status and the new resourceVersion precondition.
    #[test]
    fn status_writes_are_old_with_the_new_status() {
        let pod = find("", "v1", "pods").unwrap();
        let old = json!({"metadata":{"name":"p","uid":"u","resourceVersion":"3","labels":{"a":"b"}},
                         "spec":{"nodeName":"n"},"status":{"phase":"Pending"}});
        let status = json!({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]});
        let edits: [fn(&mut Value); 6] = [
            |_| {},
            |n| n["metadata"]["resourceVersion"] = json!("9"),
            |n| n["spec"]["nodeName"] = json!("other"),
            |n| n["metadata"]["labels"]["c"] = json!("d"),
            |n| n["apiVersion"] = json!("v1"),
            |n| {
                n.as_object_mut().unwrap().remove("spec");
            },
        ];
        for edit in edits {
            let mut new = old.clone();
            new["status"] = status.clone();
            edit(&mut new);
            let mut want = old.clone();
            want["status"] = status.clone();
            want["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
            prepare_for_status_update(pod, &mut new, &old);
            assert_eq!(new, want);
        }
        let mut cleared = old.clone();
        cleared.as_object_mut().unwrap().remove("status");
        prepare_for_status_update(pod, &mut cleared, &old);
        assert!(cleared.get("status").is_none() && cleared["spec"] == old["spec"]);
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(Some(&json!({"containers":[{"name":"a"}]}))), "BestEffort");
        let g = json!({"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]});
        assert_eq!(qos_class(Some(&g)), "Guaranteed");
        let b = json!({"containers":[{"resources":{"requests":{"cpu":"1"}}}]});
        assert_eq!(qos_class(Some(&b)), "Burstable");
    }
}
