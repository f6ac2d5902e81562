//! JSON merge patch (RFC 7386, `application/merge-patch+json`): `kubectl scale`, `kubectl
//! patch --type merge`, and client-side apply of custom resources.

use serde_json::{Map, Value};

/// Applies a JSON merge patch: objects merge key by key, `null` deletes a key, anything
/// else (lists included) replaces the target wholesale.
pub fn apply(original: &Value, patch: &Value) -> Value {
    merge(Some(original), patch)
}

fn merge(target: Option<&Value>, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return pruned(patch);
    };
    let Some(Value::Object(target)) = target else {
        return pruned(&Value::Object(patch.clone()));
    };
    let mut result = target.clone();
    merge_into(&mut result, patch);
    Value::Object(result)
}

fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let merged = match (target.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(patch)) => {
                merge_into(existing, patch);
                continue;
            }
            (existing, value) => merge(existing.map(|v| &*v), value),
        };
        target.insert(key.clone(), merged);
    }
}

/// A value set wholesale carries no deletions: nulls inside its objects go, as in
/// `MergePatch({}, value)`. Like upstream's json-patch library we also prune objects inside
/// lists, but keep null list elements.
fn pruned(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), pruned(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of RFC 7386 appendix A: (target, patch, result).
    #[test]
    fn rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(apply(&target, &patch), expected, "{target} + {patch}");
        }
    }

    #[test]
    fn scale_patch_sets_replicas() {
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "template": {"spec": {}}}});
        let out = apply(&deploy, &json!({"spec": {"replicas": 3}}));
        assert_eq!(out, json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {}}}}));
    }

    #[test]
    fn lists_are_replaced_and_nulls_inside_new_values_dropped() {
        let target = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "env": null}, null]}});
        assert_eq!(apply(&target, &patch), json!({"spec": {"containers": [{"name": "c"}, null]}}));
    }

    #[test]
    fn original_is_untouched() {
        let target = json!({"a": {"b": 1}});
        let _ = apply(&target, &json!({"a": {"b": null}}));
        assert_eq!(target, json!({"a": {"b": 1}}));
    }
}
