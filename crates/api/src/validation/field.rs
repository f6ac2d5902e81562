//! Field paths and error constructors shaped like `k8s.io/apimachinery/pkg/util/validation/field`,
//! plus the small JSON accessors the validators share. Messages render bad values the way
//! Go's `ErrorBody` does (`%q` for strings, `%v` for numbers, `%#v` for maps and selectors).

use crate::status::Cause;
use serde_json::{Map, Value};

/// A field path such as `spec.template.spec.containers[0].image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn new(name: &str) -> Path {
        Path(name.to_string())
    }

    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() { Path(name.to_string()) } else { Path(format!("{}.{}", self.0, name)) }
    }

    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{}]", self.0, i))
    }

    pub fn key(&self, k: &str) -> Path {
        Path(format!("{}[{}]", self.0, k))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bad value as Go's error body prints it.
pub enum Bad<'a> {
    Str(&'a str),
    Int(i64),
    /// A raw JSON value, printed by its type: strings quoted, numbers bare, others as JSON.
    Json(&'a Value),
    /// Already rendered (e.g. a Go `%#v` of a map).
    Raw(String),
}

impl Bad<'_> {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(n) => n.to_string(),
            Bad::Json(Value::String(s)) => go_quote(s),
            Bad::Json(Value::Null) => "null".to_string(),
            Bad::Json(v) => v.to_string(),
            Bad::Raw(s) => s.clone(),
        }
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() { head } else { format!("{head}: {detail}") }
}

pub fn required(path: &Path, detail: &str) -> Cause {
    Cause::new("FieldValueRequired", path.as_str(), with_detail("Required value".into(), detail))
}

pub fn forbidden(path: &Path, detail: &str) -> Cause {
    Cause::new("FieldValueForbidden", path.as_str(), with_detail("Forbidden".into(), detail))
}

pub fn invalid(path: &Path, value: Bad<'_>, detail: &str) -> Cause {
    Cause::new("FieldValueInvalid", path.as_str(), with_detail(format!("Invalid value: {}", value.render()), detail))
}

pub fn duplicate(path: &Path, value: Bad<'_>) -> Cause {
    Cause::new("FieldValueDuplicate", path.as_str(), format!("Duplicate value: {}", value.render()))
}

pub fn not_found(path: &Path, value: Bad<'_>) -> Cause {
    Cause::new("FieldValueNotFound", path.as_str(), format!("Not found: {}", value.render()))
}

pub fn not_supported(path: &Path, value: Bad<'_>, valid: &[&str]) -> Cause {
    let list: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    let detail = if list.is_empty() { String::new() } else { format!("supported values: {}", list.join(", ")) };
    Cause::new(
        "FieldValueNotSupported",
        path.as_str(),
        with_detail(format!("Unsupported value: {}", value.render()), &detail),
    )
}

pub fn too_long(path: &Path, max: usize) -> Cause {
    Cause::new("FieldValueTooLong", path.as_str(), format!("Too long: may not be more than {max} bytes"))
}

pub fn too_many(path: &Path, actual: usize, max: usize) -> Cause {
    let items = if max == 1 { "item" } else { "items" };
    Cause::new("FieldValueTooMany", path.as_str(), format!("Too many: {actual}: must have at most {max} {items}"))
}

/// Go's `strconv.Quote`: double quotes, backslash escapes for quotes, backslashes and
/// control characters; printable Unicode stays as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as `fmt` prints maps).
pub fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or_default())))
                .collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`, as upstream prints it in immutability errors.
pub fn go_label_selector(sel: &Value) -> String {
    let labels = go_string_map(sel.get("matchLabels").and_then(Value::as_object));
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => format!(
                            "[]string{{{}}}",
                            vs.iter().map(|v| go_quote(v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_of(e, "key")),
                        go_quote(str_of(e, "operator")),
                        values
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

// ---- JSON accessors: a missing key, a null and a value of the wrong type all read as absent.

/// The non-null value at `key`.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

pub fn opt_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The string at `key`, or `""` as Go's zero value.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    opt_str(v, key).unwrap_or_default()
}

pub fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

pub fn bool_of(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

pub fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// A `map[string]string` field as pairs (non-string values read as `""`).
pub fn string_map<'a>(v: &'a Value, key: &str) -> Vec<(&'a str, &'a str)> {
    obj(v, key)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// The object at `key`, or a shared empty object, so nested reads need no unwrapping.
pub fn sub<'a>(v: &'a Value, key: &str) -> &'a Value {
    static EMPTY: Value = Value::Null;
    get(v, key).unwrap_or(&EMPTY)
}

/// Whether two optional values differ, treating null and absent alike.
pub fn differs(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |x: Option<&Value>| x.filter(|v| !v.is_null()).cloned();
    norm(a) != norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_like_upstream() {
        let p = Path::new("spec").child("containers").index(0).child("image");
        assert_eq!(p.as_str(), "spec.containers[0].image");
        assert_eq!(Path::new("data").key("a.b").as_str(), "data[a.b]");
        assert_eq!(Path::new("").child("x").as_str(), "x");
    }

    #[test]
    fn messages_render_values_like_go() {
        let c = invalid(&Path::new("metadata.name"), Bad::Str("A\"b"), "bad");
        assert_eq!(c.message, "Invalid value: \"A\\\"b\": bad");
        assert_eq!(c.reason, "FieldValueInvalid");
        let c = not_supported(&Path::new("x"), Bad::Str("Z"), &["A", "B"]);
        assert_eq!(c.message, "Unsupported value: \"Z\": supported values: \"A\", \"B\"");
        assert_eq!(required(&Path::new("x"), "").message, "Required value");
        assert_eq!(forbidden(&Path::new("x"), "no").message, "Forbidden: no");
        assert_eq!(too_long(&Path::new("x"), 10).message, "Too long: may not be more than 10 bytes");
        assert_eq!(invalid(&Path::new("x"), Bad::Int(-1), "neg").message, "Invalid value: -1: neg");
        assert_eq!(duplicate(&Path::new("x"), Bad::Json(&json!("a"))).message, "Duplicate value: \"a\"");
    }

    #[test]
    fn go_renderings() {
        let m = json!({"b": "2", "a": "1"});
        assert_eq!(go_string_map(m.as_object()), "map[string]string{\"a\":\"1\", \"b\":\"2\"}");
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(&json!({"matchLabels": {"app": "web"}})),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(go_quote("a\nb\u{1}"), "\"a\\nb\\x01\"");
    }

    #[test]
    fn accessors_treat_null_and_wrong_types_as_absent() {
        let v = json!({"a": null, "b": "x", "c": 3, "d": [1], "e": {"k": "v"}});
        assert!(get(&v, "a").is_none());
        assert_eq!(str_of(&v, "c"), "");
        assert_eq!(int_of(&v, "c"), Some(3));
        assert_eq!(arr(&v, "d").len(), 1);
        assert_eq!(string_map(&v, "e"), vec![("k", "v")]);
        assert!(sub(&v, "zz").is_null());
        assert!(!differs(Some(&Value::Null), None));
    }
}
