//! Authentication by bearer token (the static admin and node tokens, and
//! service-account JWTs: see [`crate::serviceaccount`]), the few paths anonymous
//! clients may read, and [`gate`]: the one hook every request passes, which
//! authenticates, authorises ([`crate::authz`]) and answers the endpoints that are
//! about the caller itself (TokenRequest, SelfSubjectReview).

use crate::wire::{self, Resp};
use crate::{Ctx, authz, serviceaccount};
use api::ApiError;
use http::HeaderMap;
use std::collections::BTreeMap;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// The service account's uid (empty for the static users).
    pub uid: String,
    /// Upstream's `user.Info` extra (a service account's pod, node and credential id).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// Maps bearer tokens to users.
pub struct Authenticator {
    tokens: Vec<(String, User)>,
}

/// Compares without leaking where two secrets differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    pub fn new(admin_token: &str, node_token: &str, node_secret: &str) -> Authenticator {
        let admin = User {
            name: "system:admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..User::default()
        };
        let node = User {
            name: "system:node".into(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..User::default()
        };
        Authenticator {
            tokens: vec![
                (admin_token.to_string(), admin),
                (node_token.to_string(), node.clone()),
                (node_secret.to_string(), node),
            ],
        }
    }

    /// The user behind the request's `Authorization: Bearer` header, if it is one of
    /// the static tokens (service-account tokens need the store: see [`authenticate`]).
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<User> {
        let token = bearer(headers)?;
        // Check every token so timing does not reveal which one matched.
        let mut found = None;
        for (t, user) in &self.tokens {
            if same(t.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim())
}

/// The user behind a request: a static token, or a service-account token this server
/// signed whose objects still exist.
pub async fn authenticate(ctx: &Ctx, headers: &HeaderMap) -> Option<User> {
    if let Some(user) = ctx.auth.authenticate(headers) {
        return Some(user);
    }
    let token = bearer(headers)?;
    if !serviceaccount::jwt::looks_like_jwt(token) {
        return None;
    }
    match serviceaccount::authenticate(ctx, token).await {
        Ok(user) => Some(user),
        Err(e) => {
            tracing::debug!(error = %e, "service account token rejected");
            None
        }
    }
}

/// What [`gate`] decided about a request.
pub enum Gate {
    /// Route it as usual.
    Pass(crate::wire::Req),
    /// This is the answer (401, 403, or an endpoint about the caller).
    Answer(Resp),
}

/// The authentication and authorisation hook every request passes before routing.
pub async fn gate(ctx: &Ctx, req: crate::wire::Req) -> Gate {
    let path = req.uri().path();
    if is_public(path) {
        return Gate::Pass(req);
    }
    let Some(user) = authenticate(ctx, req.headers()).await else {
        return Gate::Answer(wire::error(&ApiError::unauthorized()));
    };
    let attrs = authz::attributes(req.method(), path, req.uri().query());
    if let Err(e) = authz::authorize(&user, &attrs) {
        return Gate::Answer(wire::error(&e));
    }
    match about_the_caller(&attrs) {
        Some(endpoint) => Gate::Answer(serve_caller_endpoint(ctx, &user, &attrs, endpoint, req).await),
        None => Gate::Pass(req),
    }
}

/// Endpoints whose answer depends on who asks, so they are served where the user is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallerEndpoint {
    TokenRequest,
    SelfSubjectReview,
}

fn about_the_caller(a: &authz::Attributes) -> Option<CallerEndpoint> {
    if !a.resource_request || a.api_version != "v1" {
        return None;
    }
    match (a.api_group.as_str(), a.resource.as_str(), a.subresource.as_str()) {
        ("", "serviceaccounts", "token") if !a.namespace.is_empty() && !a.name.is_empty() => {
            Some(CallerEndpoint::TokenRequest)
        }
        ("authentication.k8s.io", "selfsubjectreviews", "") if a.name.is_empty() => {
            Some(CallerEndpoint::SelfSubjectReview)
        }
        _ => None,
    }
}

async fn serve_caller_endpoint(
    ctx: &Ctx,
    user: &User,
    a: &authz::Attributes,
    endpoint: CallerEndpoint,
    req: crate::wire::Req,
) -> Resp {
    if a.verb != "create" {
        let what = match endpoint {
            CallerEndpoint::TokenRequest => "serviceaccounts/token",
            CallerEndpoint::SelfSubjectReview => "selfsubjectreviews",
        };
        return wire::error(&ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({what})"
        )));
    }
    match endpoint {
        CallerEndpoint::SelfSubjectReview => wire::created(&serviceaccount::self_subject_review(user)),
        CallerEndpoint::TokenRequest => {
            let content_type =
                req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let result = async {
                let bytes = wire::read_body(req.into_body()).await?;
                let body =
                    if content_type.as_deref().is_some_and(|c| c.starts_with(crate::decode::protobuf::CONTENT_TYPE)) {
                        serviceaccount::proto::decode_token_request(&bytes)
                            .map_err(|e| ApiError::bad_request(format!("protobuf: {e}")))?
                    } else {
                        crate::body::parse_object(&bytes, content_type.as_deref())?
                    };
                serviceaccount::create_token(ctx, user, &a.namespace, &a.name, body).await
            }
            .await;
            match result {
                Ok(v) => wire::created(&v),
                Err(e) => wire::error(&e),
            }
        }
    }
}

/// Paths served without credentials, as upstream's `system:public-info-viewer` allows,
/// plus `/cacerts`: the CA a joining node checks against the hash in its join token.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/version/" | "/healthz" | "/livez" | "/readyz" | "/cacerts")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_users() {
        let a = Authenticator::new("admintoken", "K10abc::node:secret", "secret");
        let mut h = HeaderMap::new();
        assert!(a.authenticate(&h).is_none());
        h.insert(http::header::AUTHORIZATION, "Bearer admintoken".parse().unwrap());
        assert!(a.authenticate(&h).unwrap().is_admin());
        h.insert(http::header::AUTHORIZATION, "Bearer K10abc::node:secret".parse().unwrap());
        assert_eq!(a.authenticate(&h).unwrap().name, "system:node");
        h.insert(http::header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(a.authenticate(&h).is_none());
        assert!(is_public("/readyz"));
        assert!(!is_public("/api"));
    }
}
