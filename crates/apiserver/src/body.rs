//! Request bodies to objects: JSON (also when no Content-Type is sent, as kubectl's
//! Scale PUT does), YAML, and the protobuf envelope kubectl 1.32+ sends; then the
//! checks upstream's decoder makes: the right apiVersion and kind, known fields, and
//! the right JSON types.

use crate::fieldcheck;
use api::schema::Schemas;
use api::{ApiError, Resource};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// The media type of a Content-Type header, without parameters, lowercased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Builds a JSON value while noting the paths of keys given twice in one object (the
/// last one wins, as in Go's decoder; `fieldValidation=Strict` refuses them).
struct Noting<'a> {
    /// Where this value is: a chain up to the document's root, spelled out only for
    /// a duplicate (every create's body passes through here, and duplicates are rare).
    at: Option<&'a Step<'a>>,
    duplicates: &'a RefCell<Vec<String>>,
}

struct Step<'a> {
    parent: Option<&'a Step<'a>>,
    part: Part<'a>,
}

enum Part<'a> {
    Key(&'a str),
    Index(usize),
}

impl Step<'_> {
    /// `a.b[2].c`, as upstream names a field.
    fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(step) = at {
            steps.push(&step.part);
            at = step.parent;
        }
        let mut out = String::new();
        for part in steps.iter().rev() {
            match part {
                Part::Key(k) if out.is_empty() => out.push_str(k),
                Part::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Part::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl<'de> DeserializeSeed<'de> for Noting<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Noting<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let step = Step { parent: self.at, part: Part::Index(out.len()) };
            match seq.next_element_seed(Noting { at: Some(&step), duplicates: self.duplicates })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = {
                let step = Step { parent: self.at, part: Part::Key(&key) };
                map.next_value_seed(Noting { at: Some(&step), duplicates: self.duplicates })?
            };
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(v);
                }
                serde_json::map::Entry::Occupied(mut slot) => {
                    let step = Step { parent: self.at, part: Part::Key(slot.key()) };
                    self.duplicates.borrow_mut().push(step.path());
                    slot.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON, returning the paths of duplicated keys too.
pub fn parse_json_noting_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let duplicates = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Noting { at: None, duplicates: &duplicates }.deserialize(&mut de)?;
    de.end()?;
    Ok((v, duplicates.into_inner()))
}

/// Parses a body as JSON or YAML (any media type that is not protobuf).
pub fn parse_text(bytes: &[u8], media: &str) -> Result<Value, ApiError> {
    Ok(parse_text_noting_duplicates(bytes, media)?.0)
}

/// [`parse_text`], also returning the paths of keys given twice (JSON only: the YAML
/// parser refuses duplicate keys outright).
pub fn parse_text_noting_duplicates(bytes: &[u8], media: &str) -> Result<(Value, Vec<String>), ApiError> {
    if media.ends_with("yaml") {
        return serde_yaml_ng::from_slice::<Value>(bytes)
            .map(|v| (v, Vec::new()))
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")));
    }
    parse_json_noting_duplicates(bytes)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {}", json_error(&e))))
}

fn json_error(e: &serde_json::Error) -> String {
    if e.is_eof() { "unexpected end of JSON input".to_string() } else { e.to_string() }
}

/// Decodes an object body by its Content-Type.
pub fn parse_object(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    Ok(parse_object_noting_duplicates(bytes, content_type)?.0)
}

/// [`parse_object`], also returning the paths of keys given twice.
pub fn parse_object_noting_duplicates(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<(Value, Vec<String>), ApiError> {
    let media = media_type(content_type);
    let (value, duplicates) = match media.as_str() {
        "" | "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml" | "*/*" => {
            parse_text_noting_duplicates(bytes, &media)?
        }
        crate::decode::protobuf::CONTENT_TYPE => {
            (crate::decode::decode(bytes).map_err(|e| ApiError::bad_request(format!("protobuf: {e}")))?, Vec::new())
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            match value {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "null",
            }
        )));
    }
    Ok((value, duplicates))
}

/// The outcome of checking a decoded object.
pub struct Checked {
    pub obj: Value,
    /// Warnings for `fieldValidation=Warn`.
    pub warnings: Vec<String>,
}

/// Checks apiVersion and kind (filling them in when absent), drops unknown fields
/// (refusing them under `Strict`), and refuses values of the wrong type.
pub fn check_object(
    res: &Resource,
    kind: &str,
    api_version: &str,
    obj: Value,
    validation: &str,
) -> Result<Checked, ApiError> {
    check_object_with_duplicates(res, kind, api_version, obj, &[], validation)
}

/// [`check_object`], also reporting keys the body gave twice.
pub fn check_object_with_duplicates(
    res: &Resource,
    kind: &str,
    api_version: &str,
    mut obj: Value,
    duplicates: &[String],
    validation: &str,
) -> Result<Checked, ApiError> {
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {detail}",
            api_version.rsplit('/').next().unwrap_or(api_version)
        ))
    };
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != kind => {
            return Err(cannot(format!(
                "the object provided is unrecognized (kind {k:?} was expected to be {kind:?})"
            )));
        }
        _ => {}
    }
    obj["apiVersion"] = Value::String(api_version.to_string());
    obj["kind"] = Value::String(kind.to_string());
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let Some(schema) = Schemas::get().for_kind(group, version, kind) else {
        return Ok(Checked { obj, warnings: duplicates.iter().map(|p| format!("duplicate field \"{p}\"")).collect() });
    };
    let _ = res;
    let findings = fieldcheck::check_and_prune(&mut obj, schema);
    if let Some(first) = findings.type_errors.first() {
        return Err(cannot(first.clone()));
    }
    let mut unknown: Vec<String> = duplicates.iter().map(|p| format!("duplicate field \"{p}\"")).collect();
    unknown.extend(findings.unknown.iter().map(|p| format!("unknown field \"{p}\"")));
    match validation {
        "Strict" if !unknown.is_empty() => Err(cannot(format!("strict decoding error: {}", unknown.join(", ")))),
        "Ignore" => Ok(Checked { obj, warnings: Vec::new() }),
        _ => Ok(Checked { obj, warnings: unknown }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::registry::find;
    use serde_json::json;

    #[test]
    fn strict_refuses_unknown_fields_with_upstreams_words() {
        let cm = find("", "v1", "configmaps").unwrap();
        let obj = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"bogus":1});
        let e = check_object(cm, "ConfigMap", "v1", obj.clone(), "Strict").err().unwrap();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"bogus\""
        );
        let warned = check_object(cm, "ConfigMap", "v1", obj, "Warn").unwrap();
        assert_eq!(warned.warnings, vec!["unknown field \"bogus\""]);
        assert!(warned.obj.get("bogus").is_none());
    }

    #[test]
    fn duplicate_keys_are_strict_errors() {
        let cm = find("", "v1", "configmaps").unwrap();
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"},"data":{"k":"1"}}"#;
        let (obj, dups) = parse_object_noting_duplicates(body, None).unwrap();
        assert_eq!(dups, vec!["metadata.name"]);
        assert_eq!(obj["metadata"]["name"], "b", "the last one wins, as in Go");
        let e = check_object_with_duplicates(cm, "ConfigMap", "v1", obj.clone(), &dups, "Strict").err().unwrap();
        assert!(e.message.ends_with("strict decoding error: duplicate field \"metadata.name\""), "{}", e.message);
        let warned = check_object_with_duplicates(cm, "ConfigMap", "v1", obj, &dups, "Warn").unwrap();
        assert_eq!(warned.warnings, vec!["duplicate field \"metadata.name\""]);
        let nested = parse_object_noting_duplicates(br#"{"a":[{"b":1,"b":2}]}"#, None).unwrap();
        assert_eq!(nested.1, vec!["a[0].b"]);
        let deep = br#"{"k":1,"k":2,"x":{"y":[0,{"z":{"w":1,"w":2}}]},"a":{"b":[[{"c":1,"c":2}]]}}"#;
        assert_eq!(parse_object_noting_duplicates(deep, None).unwrap().1, vec!["k", "x.y[1].z.w", "a.b[0][0].c"]);
    }

    #[test]
    fn malformed_bodies_are_400() {
        assert_eq!(parse_object(b"{\"a\":", None).err().unwrap().code, 400);
        assert_eq!(parse_object(b"[1]", Some("application/json")).err().unwrap().code, 400);
        assert_eq!(parse_object(b"a: [", Some("application/yaml")).err().unwrap().code, 400);
        assert_eq!(parse_object(b"x", Some("text/html")).err().unwrap().code, 415);
        let y =
            parse_object(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n", Some("application/yaml")).unwrap();
        assert_eq!(y["metadata"]["name"], "c");
    }
}
