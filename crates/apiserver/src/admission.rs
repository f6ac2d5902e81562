//! Admission: rules that need other objects than the one being written, applied after
//! defaulting and before validation, as upstream's admission plugins are.
//!
//! - Priority: a pod's `priorityClassName` (or the global default class) decides its
//!   `spec.priority` and `preemptionPolicy`; only one class may be the global default.
//! - DefaultTolerationSeconds: a new pod tolerates the `not-ready` and `unreachable`
//!   `NoExecute` taints for `--default-toleration-seconds`, unless it already says how
//!   long it tolerates them.
//! - ServiceAccount: a new pod runs as a service account that exists and gets its
//!   token volume (see [`crate::serviceaccount::admission`]).

use crate::Ctx;
use crate::rest::read::{Selectors, collect};
use api::selector::{FieldSelector, LabelSelector};
use api::{ApiError, Resource};
use serde_json::{Value, json};

fn priority_classes() -> &'static Resource {
    api::registry::find("scheduling.k8s.io", "v1", "priorityclasses").expect("priorityclasses are served")
}

async fn all_classes(ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let res = priority_classes();
    let all = Selectors { labels: LabelSelector::default(), fields: FieldSelector::default() };
    Ok(collect(ctx, res, &res.storage_prefix(), &all, 0, None, 0).await?.items)
}

/// The global default class: the lowest-valued one marked so, as upstream picks.
fn global_default(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
}

/// [`global_default`] of the stored classes, read for every pod created without a
/// class. Only classes whose stored bytes hold `"globalDefault":true` are parsed:
/// stored objects are compact JSON, and inside a JSON string that quote would be
/// escaped, so no other class can be the default.
async fn stored_global_default(ctx: &Ctx) -> Result<Option<Value>, ApiError> {
    const MARK: &[u8] = b"\"globalDefault\":true";
    let res = priority_classes();
    let page = ctx.objects.range(store::RangeRequest::prefix(&res.storage_prefix())).await?;
    let marked = page
        .kvs
        .iter()
        .filter(|kv| kv.value.windows(MARK.len()).any(|w| w == MARK))
        .map(|kv| crate::objects::decode_as(res, kv))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(global_default(&marked).cloned())
}

/// Mutates and checks a new object; a dry run writes nothing, here either.
pub async fn admit_create(ctx: &Ctx, res: &Resource, obj: &mut Value, dry_run: bool) -> Result<(), ApiError> {
    match (res.group, res.kind) {
        ("", "Pod") => {
            crate::serviceaccount::admission::admit_pod(ctx, obj, dry_run).await?;
            admit_pod_priority(ctx, res, obj).await?;
            default_tolerations(obj, ctx.default_toleration_seconds);
            Ok(())
        }
        ("scheduling.k8s.io", "PriorityClass") => admit_single_default(ctx, obj, None).await,
        _ => Ok(()),
    }
}

/// Checks an update.
pub async fn admit_update(ctx: &Ctx, res: &Resource, new: &Value, old: &Value) -> Result<(), ApiError> {
    match (res.group, res.kind) {
        ("scheduling.k8s.io", "PriorityClass") => admit_single_default(ctx, new, Some(old)).await,
        _ => Ok(()),
    }
}

async fn admit_pod_priority(ctx: &Ctx, res: &Resource, pod: &mut Value) -> Result<(), ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let wanted = pod.pointer("/spec/priorityClassName").and_then(Value::as_str).unwrap_or_default().to_string();
    let (class_name, priority, policy) = if wanted.is_empty() {
        match stored_global_default(ctx).await? {
            Some(c) => (
                c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                c.get("value").and_then(Value::as_i64).unwrap_or(0),
                c.get("preemptionPolicy").and_then(Value::as_str).unwrap_or("PreemptLowerPriority").to_string(),
            ),
            None => (String::new(), 0, "PreemptLowerPriority".to_string()),
        }
    } else {
        let pcs = priority_classes();
        let Some((class, _)) = ctx.objects.get(pcs, &pcs.storage_key(None, &wanted)).await? else {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: no PriorityClass with name {wanted} was found",
                res.qualified_plural()
            )));
        };
        (
            wanted,
            class.get("value").and_then(Value::as_i64).unwrap_or(0),
            class.get("preemptionPolicy").and_then(Value::as_str).unwrap_or("PreemptLowerPriority").to_string(),
        )
    };
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name",
            res.qualified_plural()
        )));
    }
    let spec = &mut pod["spec"];
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    spec["priority"] = json!(priority);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream's DefaultTolerationSeconds plugin: a toleration counts when its key is the
/// taint's or empty, and its effect `NoExecute` or empty, whatever its operator.
pub fn default_tolerations(pod: &mut Value, seconds: i64) {
    let tolerates = |pod: &Value, key: &str| {
        pod.pointer("/spec/tolerations").and_then(Value::as_array).is_some_and(|ts| {
            ts.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
            })
        })
    };
    let missing: Vec<&str> = [TAINT_NOT_READY, TAINT_UNREACHABLE].into_iter().filter(|k| !tolerates(pod, k)).collect();
    if missing.is_empty() || !pod.get("spec").is_some_and(Value::is_object) {
        return;
    }
    let spec = &mut pod["spec"];
    if !spec.get("tolerations").is_some_and(Value::is_array) {
        spec["tolerations"] = json!([]);
    }
    if let Some(list) = spec["tolerations"].as_array_mut() {
        for key in missing {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
}

async fn admit_single_default(ctx: &Ctx, class: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    if class.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let name = class.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let classes = all_classes(ctx).await?;
    if let Some(other) = classes.iter().find(|c| {
        c.get("globalDefault").and_then(Value::as_bool) == Some(true)
            && c.pointer("/metadata/name").and_then(Value::as_str) != Some(name)
    }) {
        let other = other.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let _ = old;
        return Err(ApiError::forbidden(format!(
            "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {other} is already marked as default. Only one default can exist"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_global_default_wins() {
        let classes = vec![
            json!({"metadata":{"name":"a"},"value":10,"globalDefault":true}),
            json!({"metadata":{"name":"b"},"value":5,"globalDefault":true}),
            json!({"metadata":{"name":"c"},"value":1}),
        ];
        assert_eq!(global_default(&classes).unwrap()["metadata"]["name"], "b");
        assert!(global_default(&classes[2..]).is_none());
    }

    #[test]
    fn default_tolerations_are_added_unless_the_pod_has_its_own() {
        let mut pod = json!({"spec": {"containers": []}});
        default_tolerations(&mut pod, 2);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
            ])
        );
        // Applying it again adds nothing.
        let before = pod.clone();
        default_tolerations(&mut pod, 2);
        assert_eq!(pod, before);

        // Its own toleration of one taint (any effect counts when empty) is kept.
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 60});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        default_tolerations(&mut pod, 2);
        let list = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own);
        assert_eq!(list[1]["key"], "node.kubernetes.io/not-ready");

        // An empty key tolerates everything; a NoSchedule one does not count.
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut all, 2);
        assert_eq!(all["spec"]["tolerations"].as_array().unwrap().len(), 1);
        let mut other = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}});
        default_tolerations(&mut other, 2);
        assert_eq!(other["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
