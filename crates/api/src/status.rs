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

/// The `details` of a `Status`: what the error is about, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

/// An API error, rendered as a `Status` at the HTTP edge. The details are boxed so
/// that `Result<_, ApiError>` stays small on the paths that succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    details: Option<Box<Details>>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason: reason.to_string(), message: message.into(), details: None }
    }

    pub fn details(&self) -> Option<&Details> {
        self.details.as_deref()
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Default::default)
    }

    pub fn causes(&self) -> &[Cause] {
        self.details.as_ref().map_or(&[], |d| &d.causes)
    }

    pub fn retry_after_seconds(&self) -> Option<u32> {
        self.details.as_ref().and_then(|d| d.retry_after_seconds)
    }

    /// Replaces the causes.
    pub fn with_causes(mut self, causes: Vec<Cause>) -> ApiError {
        self.details_mut().causes = causes;
        self
    }

    fn about(mut self, resource: &Resource, name: &str) -> ApiError {
        let d = self.details_mut();
        d.name = Some(name.to_string());
        d.group = Some(resource.group.to_string());
        d.kind = Some(resource.plural.to_string());
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
        ApiError::conflict_on(&resource.qualified_plural(), name, why).about(resource, name)
    }

    /// A conflict that upstream reports on a subresource of the core group, as
    /// `pods/binding`: the name goes into the message and the details' kind whole.
    pub fn core_subresource_conflict(subresource: &str, name: &str, why: &str) -> ApiError {
        let mut e = ApiError::conflict_on(subresource, name, why);
        let d = e.details_mut();
        d.name = Some(name.to_string());
        d.group = Some(String::new());
        d.kind = Some(subresource.to_string());
        e
    }

    fn conflict_on(qualified_resource: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified_resource} \"{name}\": {why}"),
        )
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
        let d = e.details_mut();
        d.name = Some(name.to_string());
        d.group = Some(group.to_string());
        d.kind = Some(kind.to_string());
        d.causes = causes;
        e
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: Option<u32>) -> ApiError {
        let mut e = ApiError::new(429, "TooManyRequests", message);
        e.details_mut().retry_after_seconds = retry_after_seconds;
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
        self.details_mut().causes.push(cause);
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
        let d = self.details.as_deref().cloned().unwrap_or_default();
        if let Some(name) = &d.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &d.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &d.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> =
                d.causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = d.retry_after_seconds {
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
