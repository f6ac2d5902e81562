//! Request bodies to objects: JSON (also when no Content-Type is sent, as kubectl's
//! Scale PUT does), YAML, and the protobuf envelope kubectl 1.32+ sends; then the
//! checks upstream's decoder makes: the right apiVersion and kind, known fields, and
//! the right JSON types.

use crate::fieldcheck;
use api::schema::Schemas;
use api::{ApiError, Resource};
use serde_json::Value;

/// The media type of a Content-Type header, without parameters, lowercased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Parses a body as JSON or YAML (any media type that is not protobuf).
pub fn parse_text(bytes: &[u8], media: &str) -> Result<Value, ApiError> {
    if media.ends_with("yaml") {
        return serde_yaml_ng::from_slice::<Value>(bytes)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {}", json_error(&e))))
}

fn json_error(e: &serde_json::Error) -> String {
    if e.is_eof() { "unexpected end of JSON input".to_string() } else { e.to_string() }
}

/// Decodes an object body for `res` by its Content-Type.
pub fn parse_object(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let media = media_type(content_type);
    let value = match media.as_str() {
        "" | "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml" | "*/*" => {
            parse_text(bytes, &media)?
        }
        crate::decode::protobuf::CONTENT_TYPE => {
            crate::decode::decode(bytes).map_err(|e| ApiError::bad_request(format!("protobuf: {e}")))?
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
    Ok(value)
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
    mut obj: Value,
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
        return Ok(Checked { obj, warnings: Vec::new() });
    };
    let _ = res;
    let findings = fieldcheck::check_and_prune(&mut obj, schema);
    if let Some(first) = findings.type_errors.first() {
        return Err(cannot(first.clone()));
    }
    let unknown: Vec<String> = findings.unknown.iter().map(|p| format!("unknown field \"{p}\"")).collect();
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
