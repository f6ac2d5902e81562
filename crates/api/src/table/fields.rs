//! Reading wire objects leniently (a missing or mistyped field reads as Go's zero value,
//! as it would after decoding) and the shared cell formats: label maps, label selectors,
//! container lists.

use super::time::{Nanos, parse_rfc3339};
use crate::validation as names;
use serde_json::Value;

pub(crate) fn get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    get(v, pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn int_at(v: &Value, pointer: &str) -> i64 {
    get(v, pointer).and_then(as_int).unwrap_or(0)
}

pub(crate) fn opt_int_at(v: &Value, pointer: &str) -> Option<i64> {
    get(v, pointer).and_then(as_int)
}

fn as_int(v: &Value) -> Option<i64> {
    // Integers arrive as JSON numbers; a float (from a lax client) truncates as Go would.
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

pub(crate) fn bool_at(v: &Value, pointer: &str) -> bool {
    get(v, pointer).and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn arr_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    get(v, pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn obj_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    get(v, pointer).filter(|v| v.is_object())
}

/// Number of entries of a map field (or items of a list field).
pub(crate) fn len_at(v: &Value, pointer: &str) -> usize {
    match get(v, pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

pub(crate) fn time_at(v: &Value, pointer: &str) -> Option<Nanos> {
    get(v, pointer).and_then(Value::as_str).and_then(parse_rfc3339)
}

/// `metadata.deletionTimestamp != nil`: any non-null value counts, even one that does
/// not parse, because upstream would not have decoded such an object at all.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    get(obj, "/metadata/deletionTimestamp").is_some()
}

pub(crate) fn name(obj: &Value) -> Value {
    Value::from(str_at(obj, "/metadata/name"))
}

/// Upstream `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    // Upstream sorts the joined pairs, not the keys; the two differ for keys that are
    // prefixes of one another ("a.b=y" sorts before "a=x").
    pairs.sort();
    if pairs.is_empty() { "<none>".to_string() } else { pairs.join(",") }
}

/// Why a structured label selector could not become a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorFormatError {
    #[error("invalid label key {0:?}")]
    Key(String),
    #[error("invalid label value {0:?}")]
    Value(String),
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    #[error("operator {operator} on key {key:?} takes {expected}")]
    Values { key: String, operator: String, expected: &'static str },
}

/// Upstream `metav1.LabelSelectorAsSelector(...).String()`: requirements sorted by key
/// (match labels before expressions on equal keys), `""` for a nil or empty selector.
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, SelectorFormatError> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut keys: Vec<&String> = ml.keys().collect();
        keys.sort();
        for k in keys {
            let v = ml[k].as_str().unwrap_or("");
            check_key(k)?;
            check_value(v)?;
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    for expr in sel.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let key = str_at(expr, "/key");
        let operator = str_at(expr, "/operator");
        let mut values: Vec<&str> = arr_at(expr, "/values").iter().map(|v| v.as_str().unwrap_or("")).collect();
        check_key(key)?;
        let wrong =
            |expected| SelectorFormatError::Values { key: key.to_string(), operator: operator.to_string(), expected };
        let text = match operator {
            "In" | "NotIn" => {
                if values.is_empty() {
                    return Err(wrong("at least one value"));
                }
                for v in &values {
                    check_value(v)?;
                }
                values.sort_unstable();
                let op = if operator == "In" { "in" } else { "notin" };
                format!("{key} {op} ({})", values.join(","))
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    return Err(wrong("no values"));
                }
                if operator == "Exists" { key.to_string() } else { format!("!{key}") }
            }
            other => return Err(SelectorFormatError::Operator(other.to_string())),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(","))
}

fn check_key(k: &str) -> Result<(), SelectorFormatError> {
    if names::qualified_name(k).is_empty() { Ok(()) } else { Err(SelectorFormatError::Key(k.to_string())) }
}

fn check_value(v: &str) -> Result<(), SelectorFormatError> {
    if names::label_value(v).is_empty() { Ok(()) } else { Err(SelectorFormatError::Value(v.to_string())) }
}

/// Upstream `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(_) => "<error>".to_string(),
    }
}

/// Upstream `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map(|s| arr_at(s, "/containers")).unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_treat_missing_null_and_mistyped_as_zero() {
        let v = json!({"a": {"s": "x", "n": 3, "f": 2.0, "b": true, "z": null, "l": [1, 2], "m": {"k": 1}}});
        assert_eq!(str_at(&v, "/a/s"), "x");
        assert_eq!(str_at(&v, "/a/n"), "");
        assert_eq!(str_at(&v, "/missing"), "");
        assert_eq!(int_at(&v, "/a/n"), 3);
        assert_eq!(int_at(&v, "/a/f"), 2);
        assert_eq!(int_at(&v, "/a/s"), 0);
        assert_eq!(opt_int_at(&v, "/a/z"), None);
        assert!(bool_at(&v, "/a/b"));
        assert!(!bool_at(&v, "/a/s"));
        assert_eq!(arr_at(&v, "/a/l").len(), 2);
        assert!(arr_at(&v, "/a/m").is_empty());
        assert_eq!(len_at(&v, "/a/m"), 1);
        assert_eq!(len_at(&v, "/a/l"), 2);
        assert!(obj_at(&v, "/a/z").is_none());
        assert!(!is_deleting(&json!({"metadata": {"deletionTimestamp": null}})));
        assert!(is_deleting(&json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}})));
    }

    #[test]
    fn labels_sort_as_joined_pairs() {
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(Some(&json!({"app": "web", "a.b": "y", "a": "x"}))), "a.b=y,a=x,app=web");
    }

    #[test]
    fn selectors_format_like_upstream() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "In", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(format_label_selector(Some(&sel)), "app=shop,!canary,env notin (dev,prod),gpu,tier=web,zone in (b)");
        assert_eq!(selector_string(None), Ok(String::new()));
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for sel in [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
            json!({"matchLabels": {"bad key": "x"}}),
            json!({"matchLabels": {"k": "bad value!"}}),
        ] {
            assert_eq!(format_label_selector(Some(&sel)), "<error>", "{sel}");
        }
    }

    #[test]
    fn containers_lay_out_on_one_line() {
        let spec = json!({"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]});
        assert_eq!(container_cells(Some(&spec)), ("web,log".to_string(), "nginx:1.27,busybox".to_string()));
        assert_eq!(container_cells(None), (String::new(), String::new()));
    }
}
