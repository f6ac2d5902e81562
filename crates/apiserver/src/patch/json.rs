//! JSON patch (RFC 6902, `application/json-patch+json`): `kubectl rollout undo`, `kubectl
//! patch --type json`, admission webhooks.
//!
//! Kubernetes applies these with `evanphx/json-patch` v4, and scripts written against a real
//! cluster rely on its leniencies, so we keep them: negative array indices count from the
//! end, `replace` and `copy` treat a missing object member as `null` (replace adds it), and
//! `test` of a missing member passes when the expected value is `null`. Error messages are
//! that library's.

use super::{LocationError, PatchError};
use serde_json::{Map, Value};

/// Upstream's `maxJSONPatchOperations`.
pub const MAX_OPERATIONS: usize = 10_000;

/// Applies the operations in order to a copy of `original`; the first failure aborts.
pub fn apply(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or(PatchError::NotAnOperationList { found: go_kind(patch) })?;
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::TooManyOperations { max: MAX_OPERATIONS, got: ops.len() });
    }
    let mut doc = original.clone();
    for op in ops {
        let op = op.as_object().ok_or(PatchError::NotAnOperationList { found: go_kind(op) })?;
        apply_operation(&mut doc, op)?;
    }
    Ok(doc)
}

fn apply_operation(doc: &mut Value, op: &Map<String, Value>) -> Result<(), PatchError> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    // A missing `value` behaves as `null`, as upstream's lazy decoding does.
    let value = || op.get("value").cloned().unwrap_or(Value::Null);
    match kind {
        "add" => {
            let path = string_field(op, "add", "path")?;
            let (parent, key) = locate(doc, path).ok_or_else(|| missing_path("add", path))?;
            insert(parent, &key, value()).map_err(|cause| location("add", "path", path, cause))
        }
        "remove" => {
            let path = string_field(op, "remove", "path")?;
            let (parent, key) = locate(doc, path).ok_or_else(|| missing_path("remove", path))?;
            remove(parent, &key).map(drop).map_err(|cause| location("remove", "path", path, cause))
        }
        "replace" => {
            let path = string_field(op, "replace", "path")?;
            if path.is_empty() {
                let value = value();
                if !(value.is_object() || value.is_array()) {
                    return Err(PatchError::RootNotContainer);
                }
                *doc = value;
                return Ok(());
            }
            let missing = || PatchError::MissingLocation { op: "replace", what: "path", path: path.to_string() };
            let (parent, key) = locate(doc, path).ok_or_else(missing)?;
            match parent {
                Value::Object(map) => {
                    map.insert(key, value());
                }
                Value::Array(items) => {
                    let index = array_index(items.len(), &key).ok().flatten().ok_or_else(|| {
                        PatchError::MissingLocation { op: "replace", what: "key", path: path.to_string() }
                    })?;
                    items[index] = value();
                }
                _ => return Err(missing()),
            }
            Ok(())
        }
        "move" => {
            let from = string_field(op, "move", "from")?;
            let (parent, key) = locate(doc, from).ok_or_else(|| PatchError::MissingLocation {
                op: "move",
                what: "from path",
                path: from.to_string(),
            })?;
            let moved = remove(parent, &key).map_err(|cause| location("move", "path", &key, cause))?;
            let path = string_field(op, "move", "path")?;
            let (parent, key) = locate(doc, path).ok_or_else(|| PatchError::MissingLocation {
                op: "move",
                what: "destination path",
                path: path.to_string(),
            })?;
            insert(parent, &key, moved).map_err(|cause| location("move", "path", path, cause))
        }
        "copy" => {
            let from = string_field(op, "copy", "from")?;
            let (parent, key) = locate(doc, from).ok_or_else(|| PatchError::MissingLocation {
                op: "copy",
                what: "from path",
                path: from.to_string(),
            })?;
            let copied = get(parent, &key).map_err(|cause| location("copy", "from", from, cause))?;
            let copied = copied.cloned().unwrap_or(Value::Null);
            let path = string_field(op, "copy", "path")?;
            let (parent, key) = locate(doc, path).ok_or_else(|| PatchError::MissingLocation {
                op: "copy",
                what: "destination path",
                path: path.to_string(),
            })?;
            insert(parent, &key, copied).map_err(|cause| location("copy", "path", path, cause))
        }
        "test" => {
            let path = string_field(op, "test", "path")?;
            let expected = value();
            let found = if path.is_empty() {
                Some(&*doc)
            } else {
                let (parent, key) =
                    locate(doc, path).ok_or_else(|| PatchError::TestMissingPath { path: path.to_string() })?;
                get(parent, &key).map_err(|cause| location("test", "path", path, cause))?.map(|v| &*v)
            };
            let equal = match found {
                Some(found) => json_equal(found, &expected),
                None => expected.is_null(),
            };
            if equal { Ok(()) } else { Err(PatchError::TestFailed { path: path.to_string() }) }
        }
        other => Err(PatchError::UnknownOperation { op: other.to_string() }),
    }
}

fn string_field<'a>(
    op: &'a Map<String, Value>,
    kind: &'static str,
    field: &'static str,
) -> Result<&'a str, PatchError> {
    op.get(field).and_then(Value::as_str).ok_or(PatchError::MissingOperationField { op: kind, field })
}

fn missing_path(op: &'static str, path: &str) -> PatchError {
    PatchError::MissingPath { op, path: path.to_string() }
}

fn location(op: &'static str, what: &'static str, at: &str, cause: LocationError) -> PatchError {
    PatchError::Location { op, what, at: at.to_string(), cause }
}

/// Walks a JSON pointer to the container of its last token, returning that container and
/// the decoded last token. `None` when the pointer is not of the `/a/b` form or a step
/// is missing or not a container. The root itself has no parent, so `""` is `None`.
fn locate<'a>(doc: &'a mut Value, pointer: &str) -> Option<(&'a mut Value, String)> {
    let rest = pointer.strip_prefix('/')?;
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop()?;
    let mut current = doc;
    for token in &tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(items) => {
                let index = array_index(items.len(), token).ok()??;
                &mut items[index]
            }
            _ => return None,
        };
    }
    if current.is_object() || current.is_array() { Some((current, last)) } else { None }
}

/// RFC 6901 unescaping: `~1` is `/` and `~0` is `~`, decoded in one left-to-right pass so
/// that `~01` means `~1`.
fn unescape(token: &str) -> String {
    if !token.contains('~') {
        return token.to_string();
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('~', Some('1')) => {
                chars.next();
                out.push('/');
            }
            ('~', Some('0')) => {
                chars.next();
                out.push('~');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Parses an array token the way Go's `strconv.Atoi` does (optional sign, decimal digits).
fn parse_int(token: &str) -> Option<i64> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// The index an existing element is addressed by: `Ok(None)` when out of range.
fn array_index(len: usize, token: &str) -> Result<Option<usize>, LocationError> {
    let index = parse_int(token).ok_or_else(|| LocationError::NotAnIndex { token: token.to_string() })?;
    let len = len as i64;
    let resolved = if index < 0 { index + len } else { index };
    Ok((0..len).contains(&resolved).then_some(resolved as usize))
}

fn get<'a>(parent: &'a mut Value, key: &str) -> Result<Option<&'a mut Value>, LocationError> {
    match parent {
        Value::Object(map) => Ok(map.get_mut(key)),
        Value::Array(items) => {
            let index = array_index(items.len(), key)?;
            let index =
                index.ok_or_else(|| LocationError::InvalidIndex { index: parse_int(key).unwrap_or_default() })?;
            Ok(Some(&mut items[index]))
        }
        _ => Ok(None),
    }
}

fn insert(parent: &mut Value, key: &str, value: Value) -> Result<(), LocationError> {
    match parent {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let index = parse_int(key).ok_or_else(|| LocationError::NotAnArrayIndex { token: key.to_string() })?;
            // Inserting may address one past the end; negative indices count from there.
            let slots = items.len() as i64 + 1;
            let resolved = if index < 0 { index + slots } else { index };
            if !(0..slots).contains(&resolved) {
                return Err(LocationError::InvalidIndex { index });
            }
            items.insert(resolved as usize, value);
        }
        _ => {}
    }
    Ok(())
}

fn remove(parent: &mut Value, key: &str) -> Result<Value, LocationError> {
    match parent {
        Value::Object(map) => map.remove(key).ok_or_else(|| LocationError::NonexistentKey { key: key.to_string() }),
        Value::Array(items) => {
            let index = array_index(items.len(), key)?;
            let index =
                index.ok_or_else(|| LocationError::InvalidIndex { index: parse_int(key).unwrap_or_default() })?;
            Ok(items.remove(index))
        }
        _ => Err(LocationError::NonexistentKey { key: key.to_string() }),
    }
}

/// Structural equality with numbers compared by value (`1` equals `1.0`), as upstream
/// compares decoded `float64`s.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The JSON kind as Go's decoder names it in type errors.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, patch: Value) -> Result<Value, String> {
        apply(&doc, &patch).map_err(|e| e.to_string())
    }

    #[test]
    fn add_inserts_appends_and_replaces_members() {
        let doc = json!({"spec": {"list": [1, 2]}, "a": 1});
        let patch = json!([
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "add", "path": "/spec/list/0", "value": 0},
            {"op": "add", "path": "/spec/list/-1", "value": 9},
            {"op": "add", "path": "/spec/new", "value": {"x": true}},
            {"op": "add", "path": "/a", "value": 2},
        ]);
        assert_eq!(run(doc, patch).unwrap(), json!({"spec": {"list": [0, 1, 2, 3, 9], "new": {"x": true}}, "a": 2}));
    }

    #[test]
    fn add_reports_missing_parents_and_bad_indices() {
        let doc = json!({"spec": {"list": [1]}});
        assert_eq!(
            run(doc.clone(), json!([{"op": "add", "path": "/spec/foo/bar", "value": 1}])).unwrap_err(),
            r#"add operation does not apply: doc is missing path: "/spec/foo/bar": missing value"#
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "add", "path": "/spec/list/5", "value": 1}])).unwrap_err(),
            "error in add for path: '/spec/list/5': Unable to access invalid index: 5: invalid index referenced"
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "add", "path": "/spec/list/x", "value": 1}])).unwrap_err(),
            r#"error in add for path: '/spec/list/x': value was not a proper array index: 'x': strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(
            run(doc, json!([{"op": "add", "path": "", "value": 1}])).unwrap_err(),
            r#"add operation does not apply: doc is missing path: "": missing value"#
        );
    }

    #[test]
    fn remove_deletes_members_and_elements() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [1, 2, 3]});
        let patch = json!([
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "remove", "path": "/list/1"},
            {"op": "remove", "path": "/list/-1"},
        ]);
        assert_eq!(run(doc.clone(), patch).unwrap(), json!({"metadata": {"labels": {"b": "2"}}, "list": [1]}));
        assert_eq!(
            run(doc.clone(), json!([{"op": "remove", "path": "/metadata/labels/zz"}])).unwrap_err(),
            "error in remove for path: '/metadata/labels/zz': Unable to remove nonexistent key: zz: missing value"
        );
        assert_eq!(
            run(doc, json!([{"op": "remove", "path": "/list/3"}])).unwrap_err(),
            "error in remove for path: '/list/3': Unable to access invalid index: 3: invalid index referenced"
        );
    }

    #[test]
    fn replace_sets_values_and_the_whole_document() {
        let doc = json!({"spec": {"replicas": 1, "list": ["a"]}});
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/list/0", "value": "b"},
            // Upstream's v4 library adds a missing member rather than failing.
            {"op": "replace", "path": "/spec/paused", "value": true},
        ]);
        assert_eq!(run(doc.clone(), patch).unwrap(), json!({"spec": {"replicas": 3, "list": ["b"], "paused": true}}));
        assert_eq!(
            run(doc.clone(), json!([{"op": "replace", "path": "/spec/list/1", "value": "c"}])).unwrap_err(),
            "replace operation does not apply: doc is missing key: /spec/list/1: missing value"
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "replace", "path": "/status/x", "value": 1}])).unwrap_err(),
            "replace operation does not apply: doc is missing path: /status/x: missing value"
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "replace", "path": "", "value": {"a": 1}}])).unwrap(),
            json!({"a": 1})
        );
        assert!(run(doc, json!([{"op": "replace", "path": "", "value": 1}])).is_err());
    }

    #[test]
    fn move_and_copy() {
        let doc = json!({"a": {"b": [1, 2]}, "c": {}});
        let patch = json!([
            {"op": "copy", "from": "/a/b/0", "path": "/c/first"},
            {"op": "move", "from": "/a/b", "path": "/c/list"},
        ]);
        assert_eq!(run(doc.clone(), patch).unwrap(), json!({"a": {}, "c": {"first": 1, "list": [1, 2]}}));
        assert_eq!(
            run(doc.clone(), json!([{"op": "move", "from": "/x/y", "path": "/c/z"}])).unwrap_err(),
            "move operation does not apply: doc is missing from path: /x/y: missing value"
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "move", "from": "/a/zz", "path": "/c/z"}])).unwrap_err(),
            "error in move for path: 'zz': Unable to remove nonexistent key: zz: missing value"
        );
        assert_eq!(
            run(doc.clone(), json!([{"op": "copy", "from": "/a/b", "path": "/q/r"}])).unwrap_err(),
            "copy operation does not apply: doc is missing destination path: /q/r: missing value"
        );
        // A move into its own child finds its destination gone.
        assert!(run(doc, json!([{"op": "move", "from": "/a", "path": "/a/b/0"}])).is_err());
    }

    #[test]
    fn test_compares_structurally() {
        let doc = json!({"x": {"n": 1, "l": [1, "a"]}, "z": null});
        let ok = json!([
            {"op": "test", "path": "/x", "value": {"l": [1.0, "a"], "n": 1}},
            {"op": "test", "path": "/z", "value": null},
            {"op": "test", "path": "/missing", "value": null},
            {"op": "test", "path": "", "value": {"x": {"n": 1, "l": [1, "a"]}, "z": null}},
        ]);
        assert!(run(doc.clone(), ok).is_ok());
        assert_eq!(
            run(doc.clone(), json!([{"op": "test", "path": "/x/n", "value": 2}])).unwrap_err(),
            "testing value /x/n failed: test failed"
        );
        assert_eq!(
            run(doc, json!([{"op": "test", "path": "/q/r", "value": 2}])).unwrap_err(),
            "test operation does not apply: is missing path: /q/r: missing value"
        );
    }

    #[test]
    fn pointers_unescape_tilde_and_slash() {
        let doc = json!({"metadata": {"annotations": {"a/b": "1", "m~n": "2", "~1": "3"}}});
        let patch = json!([
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/metadata/annotations/m~0n"},
            {"op": "test", "path": "/metadata/annotations/~01", "value": "3"},
        ]);
        assert_eq!(run(doc, patch).unwrap(), json!({"metadata": {"annotations": {"a/b": "x", "~1": "3"}}}));
    }

    #[test]
    fn a_failing_operation_leaves_the_original_alone() {
        let doc = json!({"a": 1});
        let patch = json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 1}]);
        assert_eq!(run(doc.clone(), patch).unwrap_err(), "testing value /a failed: test failed");
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn malformed_patches_are_rejected() {
        let doc = json!({});
        assert_eq!(
            run(doc.clone(), json!({"op": "add"})).unwrap_err(),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(run(doc.clone(), json!([{"op": "frob", "path": "/a"}])).unwrap_err(), "Unexpected kind: frob");
        assert_eq!(run(doc.clone(), json!([{"path": "/a"}])).unwrap_err(), "Unexpected kind: unknown");
        assert_eq!(
            run(doc.clone(), json!([{"op": "remove"}])).unwrap_err(),
            "remove operation failed to decode path: missing value"
        );
        let many: Vec<Value> = (0..=MAX_OPERATIONS).map(|_| json!({"op": "test", "path": ""})).collect();
        let err = apply(&doc, &Value::Array(many)).unwrap_err();
        assert_eq!(err.status_code(), 413);
        assert_eq!(err.to_string(), "The allowed maximum operations in a JSON patch is 10000, got 10001");
    }

    #[test]
    fn rollout_undo_patch_applies() {
        // `kubectl rollout undo` replaces the template and the annotations in one patch.
        let deploy = json!({
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}
        });
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
            {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}},
        ]);
        let out = run(deploy, patch).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");
        assert_eq!(out["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
    }
}
