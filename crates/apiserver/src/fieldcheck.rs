//! Decoding checks driven by the kind's schema: fields the kind does not have (which
//! `fieldValidation` turns into a 400, a warning, or nothing, and which are always
//! dropped, as decoding into upstream's Go types drops them) and values of the wrong
//! JSON type (always a 400, as upstream's decoder refuses them).

use api::schema::{Node, Schemas, Type};
use serde_json::Value;
use std::fmt::Write;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Paths like `spec.template.spec.containers[0].bogus`.
    pub unknown: Vec<String>,
    pub type_errors: Vec<String>,
}

/// Walks `obj` against `root`, removing unknown fields and reporting what it found.
pub fn check_and_prune(obj: &mut Value, root: &Node) -> Findings {
    let mut f = Findings::default();
    walk(Schemas::get(), root, obj, &mut String::new(), &mut f);
    f
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type(node: &Node) -> &'static str {
    match node.ty {
        Type::Object => "object",
        Type::Array => "array",
        Type::String => "string",
        Type::Integer => "int64",
        Type::Number => "float64",
        Type::Boolean => "bool",
        Type::IntOrString => "IntOrString",
        Type::Quantity => "Quantity",
        Type::Any | Type::Ref => "value",
    }
}

fn walk(s: &Schemas, node: &Node, v: &mut Value, path: &mut String, f: &mut Findings) {
    let Some(node) = s.resolve(node) else { return };
    if v.is_null() {
        // A null decodes to the zero value of any field.
        return;
    }
    let fits = match node.ty {
        Type::Any | Type::Ref => true,
        Type::Object => v.is_object(),
        Type::Array => v.is_array(),
        Type::String => v.is_string(),
        Type::Integer => v.is_i64() || v.is_u64(),
        Type::Number => v.is_number(),
        Type::Boolean => v.is_boolean(),
        Type::IntOrString => v.is_string() || v.is_i64() || v.is_u64(),
        Type::Quantity => v.is_string() || v.is_number(),
    };
    if !fits {
        f.type_errors.push(format!(
            "json: cannot unmarshal {} into Go struct field {} of type {}",
            json_type(v),
            if path.is_empty() { "." } else { path.as_str() },
            go_type(node)
        ));
        return;
    }
    match (node.ty, v) {
        (Type::Object, Value::Object(map)) => {
            let mut unknown = Vec::new();
            for (k, child) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match node.properties.get(k).or(node.additional.as_deref()) {
                    Some(child_node) => walk(s, child_node, child, path, f),
                    None => {
                        f.unknown.push(path.clone());
                        unknown.push(k.clone());
                    }
                }
                path.truncate(len);
            }
            for k in unknown {
                map.remove(&k);
            }
        }
        (Type::Array, Value::Array(items)) => {
            if let Some(item) = node.items.as_deref() {
                for (i, child) in items.iter_mut().enumerate() {
                    let len = path.len();
                    // Written into the one buffer, not formatted apart: every element of
                    // every write's object passes here.
                    let _ = write!(path, "[{i}]");
                    walk(s, item, child, path, f);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> &'static Node {
        Schemas::get().for_kind("apps", "v1", "Deployment").unwrap()
    }

    #[test]
    fn finds_and_drops_unknown_fields() {
        let mut obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any-key": "ok"}, "bogus": 1},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]}}}
        });
        let f = check_and_prune(&mut obj, deployment());
        assert_eq!(f.unknown, vec!["metadata.bogus", "spec.template.spec.containers[0].colour"]);
        assert!(f.type_errors.is_empty());
        assert!(obj["metadata"].get("bogus").is_none());
        assert!(obj["spec"]["template"]["spec"]["containers"][0].get("colour").is_none());
        assert_eq!(obj["metadata"]["labels"]["any-key"], "ok");
    }

    #[test]
    fn reports_wrong_types() {
        let mut obj = json!({"spec": {"replicas": "two", "strategy": {"rollingUpdate": {"maxSurge": "25%"}}}});
        let f = check_and_prune(&mut obj, deployment());
        assert_eq!(f.type_errors.len(), 1);
        assert!(f.type_errors[0].contains("spec.replicas"), "{:?}", f.type_errors);
        let mut quantities = json!({"spec":{"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":1,"memory":"1Gi"}}}]}}}});
        assert_eq!(check_and_prune(&mut quantities, deployment()), Findings::default());
    }
}
