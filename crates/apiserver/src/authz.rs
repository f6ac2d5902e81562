//! Authorisation: what a request asks to do ([`Attributes`], upstream's RequestInfo)
//! and whether its user may ([`authorize`]).
//!
//! There is no RBAC yet. Administrators and nodes may do anything, as before. Service
//! accounts get exactly what upstream's default ClusterRoles give every authenticated
//! user without any binding: `system:discovery` and `system:public-info-viewer` (GET on
//! `/api`, `/apis`, `/openapi`, `/version`, `/healthz`, `/livez`, `/readyz` and what
//! is below the first four) and `system:basic-user` (create selfsubjectreviews,
//! selfsubjectaccessreviews and selfsubjectrulesreviews). Everything else is 403 with
//! upstream's message.

use crate::auth::User;
use api::ApiError;

/// What a request asks for, as upstream's `RequestInfo` reads it from the path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub path: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

fn is_watch(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
}

/// Reads `/api/v1/...` and `/apis/{group}/{version}/...` as a resource request;
/// anything else (including the discovery documents of a group version) is a
/// non-resource request whose verb is the lowercase method.
pub fn attributes(method: &http::Method, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes { path: path.to_string(), verb: method.as_str().to_ascii_lowercase(), ..Default::default() };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => {
            a.api_version = v.to_string();
            rest
        }
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            a.api_group = g.to_string();
            a.api_version = v.to_string();
            rest
        }
        _ => return a,
    };
    a.resource_request = true;
    let mut parts: Vec<&str> = rest.to_vec();
    if parts[0] == "namespaces" && parts.len() > 1 {
        a.namespace = parts[1].to_string();
        // `namespaces/{ns}/status` and `/finalize` are subresources of the namespace.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    a.resource = parts.first().map(|s| s.to_string()).unwrap_or_default();
    a.name = parts.get(1).map(|s| s.to_string()).unwrap_or_default();
    a.subresource = parts.get(2).map(|s| s.to_string()).unwrap_or_default();
    a.verb = match *method {
        http::Method::GET | http::Method::HEAD if is_watch(query) => "watch",
        http::Method::GET | http::Method::HEAD if a.name.is_empty() => "list",
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if a.name.is_empty() => "deletecollection",
        http::Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    if a.verb.is_empty() {
        a.verb = method.as_str().to_ascii_lowercase();
    }
    a
}

/// Paths every authenticated user may GET (system:discovery, system:public-info-viewer).
fn discovery_path(path: &str) -> bool {
    let exact = ["/api", "/apis", "/openapi", "/version", "/version/", "/healthz", "/livez", "/readyz"];
    let below = ["/api/", "/apis/", "/openapi/"];
    exact.contains(&path) || below.iter().any(|p| path.starts_with(p))
}

/// What system:basic-user grants.
fn basic_user(a: &Attributes) -> bool {
    a.verb == "create"
        && a.subresource.is_empty()
        && matches!(
            (a.api_group.as_str(), a.resource.as_str()),
            ("authentication.k8s.io", "selfsubjectreviews")
                | ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews")
        )
}

/// What a user without any role binding may do.
pub fn allowed_without_bindings(a: &Attributes) -> bool {
    if a.resource_request { basic_user(a) } else { a.verb == "get" && discovery_path(&a.path) }
}

/// Decides a request: `Ok` or upstream's 403.
pub fn authorize(user: &User, a: &Attributes) -> Result<(), ApiError> {
    if !crate::serviceaccount::is_service_account(user) || allowed_without_bindings(a) {
        return Ok(());
    }
    Err(forbidden(user, a))
}

/// Upstream's `responsewriters.Forbidden` with no reason: `NewForbidden(group resource,
/// name, "User %q cannot %s ...")`.
pub fn forbidden(user: &User, a: &Attributes) -> ApiError {
    if !a.resource_request {
        return ApiError::forbidden(format!("forbidden: User {:?} cannot {} path {:?}", user.name, a.verb, a.path));
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let why =
        format!("User {:?} cannot {} resource {resource:?} in API group {:?} {scope}", user.name, a.verb, a.api_group);
    let qualified = if a.api_group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.api_group) };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {:?} is forbidden: {why}", a.name)
    };
    ApiError::forbidden(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn sa() -> User {
        User {
            name: "system:serviceaccount:default:default".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:default".into(),
                "system:authenticated".into(),
            ],
            ..User::default()
        }
    }

    #[test]
    fn paths_read_as_upstreams_request_info() {
        let a = attributes(&Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!((a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()), ("list", "pods", "default"));
        assert!(a.resource_request);
        let a = attributes(&Method::GET, "/api/v1/namespaces/default/pods/x/log", None);
        assert_eq!((a.verb.as_str(), a.name.as_str(), a.subresource.as_str()), ("get", "x", "log"));
        let a = attributes(&Method::GET, "/apis/apps/v1/deployments", Some("watch=true"));
        assert_eq!((a.verb.as_str(), a.api_group.as_str(), a.namespace.as_str()), ("watch", "apps", ""));
        let a = attributes(&Method::GET, "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
        let a = attributes(&Method::PUT, "/api/v1/namespaces/x/finalize", None);
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
            ("update", "namespaces", "finalize")
        );
        let a = attributes(&Method::DELETE, "/api/v1/namespaces/x/pods", None);
        assert_eq!(a.verb, "deletecollection");
        for discovery in ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/openapi/v3"] {
            assert!(!attributes(&Method::GET, discovery, None).resource_request, "{discovery}");
        }
    }

    #[test]
    fn service_accounts_get_discovery_only() {
        let user = sa();
        for ok in ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/openapi/v2", "/healthz", "/readyz"] {
            authorize(&user, &attributes(&Method::GET, ok, None)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let review = attributes(&Method::POST, "/apis/authentication.k8s.io/v1/selfsubjectreviews", None);
        authorize(&user, &review).unwrap();
        let e = authorize(&user, &attributes(&Method::GET, "/api/v1/namespaces/default/pods", None)).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let e = authorize(&user, &attributes(&Method::GET, "/apis/apps/v1/namespaces/ns/deployments/web", None))
            .unwrap_err();
        assert_eq!(
            e.message,
            r#"deployments.apps "web" is forbidden: User "system:serviceaccount:default:default" cannot get resource "deployments" in API group "apps" in the namespace "ns""#
        );
        let e = authorize(&user, &attributes(&Method::GET, "/api/v1/nodes", None)).unwrap_err();
        assert!(e.message.ends_with(r#"cannot list resource "nodes" in API group "" at the cluster scope"#));
        let e = authorize(&user, &attributes(&Method::GET, "/metrics", None)).unwrap_err();
        assert_eq!(e.message, r#"forbidden: User "system:serviceaccount:default:default" cannot get path "/metrics""#);
        let e = authorize(&user, &attributes(&Method::POST, "/api/v1/namespaces/d/pods/x/exec", None)).unwrap_err();
        assert!(e.message.contains(r#"cannot create resource "pods/exec""#), "{}", e.message);
        assert!(authorize(&user, &attributes(&Method::POST, "/api", None)).is_err());
    }

    #[test]
    fn other_users_keep_full_access() {
        let admin = User { name: "system:admin".into(), groups: vec!["system:masters".into()], ..User::default() };
        let node = User { name: "system:node".into(), groups: vec!["system:nodes".into()], ..User::default() };
        let a = attributes(&Method::DELETE, "/api/v1/namespaces/default/pods/x", None);
        authorize(&admin, &a).unwrap();
        authorize(&node, &a).unwrap();
    }
}
