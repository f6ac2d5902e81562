//! Errors as Kubernetes `Status` objects: the right HTTP code, `reason`, message and
//! details (with field causes for 422), shaped as upstream's `apierrors` builds them.

use crate::registry::Resource;
use serde_json::{Value, json};

/// One cause of a failure, e.g. one invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn new(reason: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause { reason: reason.into(), field: field.into(), message: message.into() }
    }
}

/// An API error, rendered as a `Status` at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn about(mut self, resource: &Resource, name: &str) -> ApiError {
        self.name = Some(name.to_string());
        self.group = Some(resource.group.to_string());
        self.kind = Some(resource.plural.to_string());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn not_found(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{} \"{}\" not found", resource.qualified_plural(), name))
            .about(resource, name)
    }

    /// A 404 for a path that names no resource at all.
    pub fn no_route() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(409, "AlreadyExists", format!("{} \"{}\" already exists", resource.qualified_plural(), name))
            .about(resource, name)
    }

    /// The optimistic-concurrency failure of an update with a stale resourceVersion.
    pub fn conflict(resource: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{}\": {}", resource.qualified_plural(), name, why),
        )
        .about(resource, name)
    }

    pub fn stale(resource: &Resource, name: &str) -> ApiError {
        ApiError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410 for a watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Gone", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 422 with one cause per bad field; the message lists them as upstream does.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let list: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let summary = match list.len() {
            0 => String::new(),
            1 => list[0].clone(),
            _ => format!("[{}]", list.join(", ")),
        };
        let mut e = ApiError::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {summary}"));
        e.name = Some(name.to_string());
        e.group = Some(group.to_string());
        e.kind = Some(kind.to_string());
        e.causes = causes;
        e
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: Option<u32>) -> ApiError {
        let mut e = ApiError::new(429, "TooManyRequests", message);
        e.retry_after_seconds = retry_after_seconds;
        e
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    pub fn with_cause(mut self, cause: Cause) -> ApiError {
        self.causes.push(cause);
        self
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if self.reason.is_empty() {
            status.as_object_mut().map(|m| m.remove("reason"));
        }
        status
    }
}

/// A `Status` of success, as returned by deletes of collections and evictions.
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(deploy, "web").to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["code"], 404);
    }

    #[test]
    fn invalid_lists_each_field() {
        let e = ApiError::invalid(
            "ConfigMap",
            "",
            "cfg",
            vec![
                Cause::new("FieldValueInvalid", "metadata.name", "Invalid value: \"A\": bad"),
                Cause::new("FieldValueRequired", "data", "Required value"),
            ],
        );
        assert_eq!(
            e.message,
            "ConfigMap \"cfg\" is invalid: [metadata.name: Invalid value: \"A\": bad, data: Required value]"
        );
        assert_eq!(e.to_status()["details"]["causes"].as_array().unwrap().len(), 2);
    }
}
