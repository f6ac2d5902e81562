//! Service-account tokens, as upstream issues and checks them.
//!
//! - [`create_token`] serves `POST .../serviceaccounts/{name}/token` (TokenRequest,
//!   `authentication.k8s.io/v1`): a JWT signed by [`jwt::SigningKey`] with upstream's
//!   claims, optionally bound to a Pod, Secret or Node.
//! - [`authenticate`] turns such a token back into a user, as long as it is unexpired,
//!   meant for this API server, and the objects it names still exist with the same uid.
//! - [`self_subject_review`] answers `kubectl auth whoami`.
//!
//! The pure halves ([`claims`], [`check_claims`], [`validate_spec`]) are tested without
//! a store; the async halves only look objects up.

pub mod admission;
pub mod jwt;
pub mod proto;

use crate::Ctx;
use crate::auth::User;
use api::{ApiError, Cause, Resource};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The `iss` of every token and the API server's own audience, as k3s and kubeadm set
/// `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `spec.expirationSeconds` when the request leaves it out.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Upstream refuses shorter tokens (ValidateTokenRequest).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// And longer ones than 2^32 seconds.
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// What the ServiceAccount admission puts on the projected token of `kube-api-access-*`
/// volumes; a pod-bound request for exactly this long is valid for a year but carries a
/// `warnafter` claim at the requested expiry (`--service-account-extend-token-expiration`,
/// on by default upstream), so old clients that never re-read the file keep working.
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 60 * 60;
/// Tolerated clock skew on `exp` and `nbf` (go-jose's default leeway).
const LEEWAY_SECONDS: i64 = 60;
/// Objects marked for deletion longer ago than this no longer vouch for a token.
const DELETION_GRACE_SECONDS: i64 = 60;

/// The user name of a service account.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The groups of a service account (before `system:authenticated`).
pub fn groups(namespace: &str) -> Vec<String> {
    vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{namespace}")]
}

/// Whether a user is a service account.
pub fn is_service_account(user: &User) -> bool {
    user.name.starts_with("system:serviceaccount:")
}

/// Signs and checks service-account tokens.
#[derive(Debug)]
pub struct Issuer {
    key: jwt::SigningKey,
    pub issuer: String,
    /// The audiences tokens get by default and must share to authenticate here.
    pub audiences: Vec<String>,
}

impl Issuer {
    pub fn new(key: jwt::SigningKey) -> Issuer {
        Issuer { key, issuer: ISSUER.to_string(), audiences: vec![ISSUER.to_string()] }
    }

    pub fn key(&self) -> &jwt::SigningKey {
        &self.key
    }
}

/// An object a token is bound to, and the SA it is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// What goes into a token besides time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    pub namespace: String,
    pub service_account: ObjectRef,
    pub pod: Option<ObjectRef>,
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
}

fn reference(r: &ObjectRef) -> Value {
    json!({"name": r.name, "uid": r.uid})
}

/// The claims upstream's `serviceaccount.Claims` builds, plus `iss`: valid from `now`
/// for `expiration_seconds`; `warn_after_seconds` adds the `warnafter` claim.
pub fn claims(
    issuer: &str,
    audiences: &[String],
    subject: &Subject,
    now: i64,
    expiration_seconds: i64,
    warn_after_seconds: Option<i64>,
    jti: &str,
) -> Value {
    let mut k8s = json!({
        "namespace": subject.namespace,
        "serviceaccount": reference(&subject.service_account),
    });
    if let Some(p) = &subject.pod {
        k8s["pod"] = reference(p);
    }
    if let Some(s) = &subject.secret {
        k8s["secret"] = reference(s);
    }
    if let Some(n) = &subject.node {
        k8s["node"] = reference(n);
    }
    if let Some(w) = warn_after_seconds {
        k8s["warnafter"] = json!(now + w);
    }
    json!({
        "iss": issuer,
        "sub": username(&subject.namespace, &subject.service_account.name),
        "aud": audiences,
        "exp": now + expiration_seconds,
        "iat": now,
        "nbf": now,
        "jti": jti,
        "kubernetes.io": k8s,
    })
}

/// Why a token does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jwt(#[from] jwt::JwtError),
    #[error("token was not issued by this server")]
    Issuer,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token audiences {0:?} is invalid for the target audiences {1:?}")]
    Audience(Vec<String>, Vec<String>),
    #[error("service account token claims are incomplete: {0}")]
    Claims(&'static str),
    #[error("{kind} {namespace}/{name} has been deleted")]
    Deleted { kind: &'static str, namespace: String, name: String },
    #[error("{kind} UID ({have}) does not match claim ({claim})")]
    UidMismatch { kind: &'static str, have: String, claim: String },
    #[error("looking up {0}: {1}")]
    Lookup(&'static str, String),
}

/// A token's claims, checked for time, issuer and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: Subject,
    pub jti: Option<String>,
}

fn ref_of(v: &Value) -> Option<ObjectRef> {
    let name = v.get("name")?.as_str()?.to_string();
    let uid = v.get("uid").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(ObjectRef { name, uid })
}

/// Checks what does not need the store: issuer, `exp`/`nbf` (with a minute's leeway),
/// an audience shared with `audiences`, and the `kubernetes.io` claim's shape.
pub fn check_claims(claims: &Value, issuer: &str, audiences: &[String], now: i64) -> Result<Verified, TokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenError::Issuer);
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(TokenError::Claims("exp"))?;
    if now > exp + LEEWAY_SECONDS {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now + LEEWAY_SECONDS < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    let token_auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    // A token without audiences is meant for the API server itself.
    if !token_auds.is_empty() && !token_auds.iter().any(|a| audiences.contains(a)) {
        return Err(TokenError::Audience(token_auds, audiences.to_vec()));
    }
    let k = claims.get("kubernetes.io").ok_or(TokenError::Claims("kubernetes.io"))?;
    let namespace = k.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    if namespace.is_empty() {
        return Err(TokenError::Claims("kubernetes.io.namespace"));
    }
    let service_account = k
        .get("serviceaccount")
        .and_then(ref_of)
        .filter(|r| !r.name.is_empty() && !r.uid.is_empty())
        .ok_or(TokenError::Claims("kubernetes.io.serviceaccount"))?;
    if claims.get("sub").and_then(Value::as_str) != Some(username(&namespace, &service_account.name).as_str()) {
        return Err(TokenError::Claims("sub"));
    }
    let subject = Subject {
        namespace,
        service_account,
        pod: k.get("pod").and_then(ref_of),
        secret: k.get("secret").and_then(ref_of),
        node: k.get("node").and_then(ref_of),
    };
    let jti = claims.get("jti").and_then(Value::as_str).map(str::to_string);
    Ok(Verified { subject, jti })
}

/// The user a verified token stands for, with upstream's extra fields.
pub fn user_of(v: &Verified) -> User {
    let s = &v.subject;
    let mut groups = groups(&s.namespace);
    groups.push("system:authenticated".to_string());
    let mut extra = BTreeMap::new();
    if let Some(p) = &s.pod {
        extra.insert("authentication.kubernetes.io/pod-name".to_string(), vec![p.name.clone()]);
        extra.insert("authentication.kubernetes.io/pod-uid".to_string(), vec![p.uid.clone()]);
    }
    if let Some(n) = &s.node {
        extra.insert("authentication.kubernetes.io/node-name".to_string(), vec![n.name.clone()]);
        extra.insert("authentication.kubernetes.io/node-uid".to_string(), vec![n.uid.clone()]);
    }
    if let Some(j) = &v.jti {
        extra.insert("authentication.kubernetes.io/credential-id".to_string(), vec![format!("JTI={j}")]);
    }
    User { name: username(&s.namespace, &s.service_account.name), uid: s.service_account.uid.clone(), groups, extra }
}

fn res(group: &str, plural: &str) -> Result<&'static Resource, ApiError> {
    api::registry::find(group, "v1", plural).ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// Whether `obj` (looked up as `kind`) still vouches for the claim `r`.
fn still_vouches(
    kind: &'static str,
    namespace: &str,
    r: &ObjectRef,
    obj: Option<&Value>,
    now: i64,
) -> Result<(), TokenError> {
    let deleted = || TokenError::Deleted { kind, namespace: namespace.to_string(), name: r.name.clone() };
    let obj = obj.ok_or_else(deleted)?;
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
    if uid != r.uid {
        return Err(TokenError::UidMismatch { kind, have: uid.to_string(), claim: r.uid.clone() });
    }
    let marked = obj.pointer("/metadata/deletionTimestamp").and_then(Value::as_str).and_then(api::time::parse_rfc3339);
    if marked.is_some_and(|t| t < now - DELETION_GRACE_SECONDS) {
        return Err(deleted());
    }
    Ok(())
}

async fn lookup(ctx: &Ctx, res: &Resource, namespace: Option<&str>, name: &str) -> Result<Option<Value>, ApiError> {
    Ok(ctx.objects.get(res, &res.storage_key(namespace, name)).await?.map(|(v, _)| v))
}

/// The service account behind a bearer token signed by this server, if it still holds.
pub async fn authenticate(ctx: &Ctx, token: &str) -> Result<User, TokenError> {
    let claims = ctx.sa_tokens.key.verify(token)?;
    let now = api::time::now_unix();
    let v = check_claims(&claims, &ctx.sa_tokens.issuer, &ctx.sa_tokens.audiences, now)?;
    let s = &v.subject;
    let ns = Some(s.namespace.as_str());
    let failed = |what| move |e: ApiError| TokenError::Lookup(what, e.message);
    let sa = lookup(ctx, res("", "serviceaccounts").map_err(failed("serviceaccounts"))?, ns, &s.service_account.name)
        .await
        .map_err(failed("serviceaccounts"))?;
    still_vouches("service account", &s.namespace, &s.service_account, sa.as_ref(), now)?;
    if let Some(p) = &s.pod {
        let pod = lookup(ctx, res("", "pods").map_err(failed("pods"))?, ns, &p.name).await.map_err(failed("pods"))?;
        still_vouches("pod", &s.namespace, p, pod.as_ref(), now)?;
    }
    if let Some(sec) = &s.secret {
        let secret = lookup(ctx, res("", "secrets").map_err(failed("secrets"))?, ns, &sec.name)
            .await
            .map_err(failed("secrets"))?;
        still_vouches("secret", &s.namespace, sec, secret.as_ref(), now)?;
    }
    // A node named beside a pod is informational (where the pod ran); a token bound to
    // the node alone lives as long as the node.
    if let (Some(n), None) = (&s.node, &s.pod) {
        let node =
            lookup(ctx, res("", "nodes").map_err(failed("nodes"))?, None, &n.name).await.map_err(failed("nodes"))?;
        still_vouches("node", "", n, node.as_ref(), now)?;
    }
    Ok(user_of(&v))
}

/// The parsed `spec` of a TokenRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub bound: Option<BoundRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundRef {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub uid: String,
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Reads and defaults a TokenRequest's spec, and validates it as upstream's
/// `ValidateTokenRequest` does (422 with field causes).
pub fn validate_spec(req: &Value, default_audiences: &[String]) -> Result<TokenSpec, ApiError> {
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = default_audiences.to_vec();
    }
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "json: cannot unmarshal {v} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64"
            ))
        })?,
    };
    let bound = spec.get("boundObjectRef").filter(|b| b.is_object()).map(|b| BoundRef {
        kind: str_at(b, "/kind").to_string(),
        api_version: str_at(b, "/apiVersion").to_string(),
        name: str_at(b, "/name").to_string(),
        uid: str_at(b, "/uid").to_string(),
    });
    let field = "spec.expirationSeconds";
    let mut causes = Vec::new();
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        causes.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {expiration_seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        causes.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {expiration_seconds}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    if !causes.is_empty() {
        return Err(invalid("", causes));
    }
    Ok(TokenSpec { audiences, expiration_seconds, bound })
}

/// Upstream's `NewInvalid(TokenRequest.authentication.k8s.io, name, errs)`.
fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    let mut e = ApiError::invalid("TokenRequest", "authentication.k8s.io", name, causes);
    e.message = e.message.replacen("TokenRequest ", "TokenRequest.authentication.k8s.io ", 1);
    e
}

/// Whether the audiences include this API server's.
fn for_this_server(audiences: &[String], ours: &[String]) -> bool {
    audiences.iter().any(|a| ours.contains(a))
}

/// NodeRestriction for `serviceaccounts/token`. Nodes here share one credential (the
/// join token), so the server cannot tell which node asks: a node may only get tokens
/// bound to a pod that is scheduled (to some node) and whose uid it names, which keeps
/// a node from minting free-standing or long-lived tokens. A node user named
/// `system:node:NAME` is held to pods on NAME, as upstream does.
fn node_restriction(user: &User, sa: &str, bound: Option<&BoundRef>, pod: Option<&Value>) -> Result<(), ApiError> {
    let is_node = user.groups.iter().any(|g| g == "system:nodes") && !user.is_admin();
    if !is_node {
        return Ok(());
    }
    let forbidden = |why: &str| ApiError::forbidden(format!("serviceaccounts \"{sa}\" is forbidden: {why}"));
    let (Some(bound), Some(pod)) = (bound, pod) else {
        return Err(forbidden("node requested token not bound to a pod"));
    };
    if bound.uid.is_empty() {
        return Err(forbidden("node requested token with a pod binding without a uid"));
    }
    let node_name = str_at(pod, "/spec/nodeName");
    let own = user.name.strip_prefix("system:node:");
    if node_name.is_empty() || own.is_some_and(|n| n != node_name) {
        return Err(forbidden("node requested token bound to a pod scheduled on a different node"));
    }
    Ok(())
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: the answer is the
/// TokenRequest with `status.token` and `status.expirationTimestamp` (201).
pub async fn create_token(ctx: &Ctx, user: &User, namespace: &str, name: &str, body: Value) -> Result<Value, ApiError> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty() && *k != "TokenRequest") {
        return Err(ApiError::bad_request(format!("expected TokenRequest, got {kind}")));
    }
    let mut causes = Vec::new();
    let body_name = str_at(&body, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {body_name:?}: must match the service account name if specified"),
        ));
    }
    let body_ns = str_at(&body, "/metadata/namespace");
    if !body_ns.is_empty() && body_ns != namespace {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.namespace",
            format!("Invalid value: {body_ns:?}: must match the service account namespace if specified"),
        ));
    }
    if !causes.is_empty() {
        return Err(invalid(name, causes));
    }
    let sas = res("", "serviceaccounts")?;
    let sa = lookup(ctx, sas, Some(namespace), name).await?.ok_or_else(|| ApiError::not_found(sas, name))?;
    let spec = validate_spec(&body, &ctx.sa_tokens.audiences)?;
    let now = api::time::now_unix();
    let mut subject = Subject {
        namespace: namespace.to_string(),
        service_account: ObjectRef { name: name.to_string(), uid: str_at(&sa, "/metadata/uid").to_string() },
        ..Subject::default()
    };
    let mut pod_obj = None;
    if let Some(b) = &spec.bound {
        let group = b.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let (uid, conflict_res) = match (group, b.kind.as_str()) {
            ("", "Pod") => {
                let pods = res("", "pods")?;
                let pod = lookup(ctx, pods, Some(namespace), &b.name)
                    .await?
                    .ok_or_else(|| ApiError::not_found(pods, &b.name))?;
                let pod_sa = str_at(&pod, "/spec/serviceAccountName");
                if pod_sa != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with serviceaccount {pod_sa:?}"
                    )));
                }
                let uid = str_at(&pod, "/metadata/uid").to_string();
                subject.pod = Some(ObjectRef { name: b.name.clone(), uid: uid.clone() });
                // Upstream names the pod's node too, when it is known.
                let node_name = str_at(&pod, "/spec/nodeName");
                if !node_name.is_empty()
                    && let Some(node) = lookup(ctx, res("", "nodes")?, None, node_name).await?
                {
                    let node_uid = str_at(&node, "/metadata/uid").to_string();
                    subject.node = Some(ObjectRef { name: node_name.to_string(), uid: node_uid });
                }
                pod_obj = Some(pod);
                (uid, pods)
            }
            ("", "Secret") => {
                let secrets = res("", "secrets")?;
                let s = lookup(ctx, secrets, Some(namespace), &b.name)
                    .await?
                    .ok_or_else(|| ApiError::not_found(secrets, &b.name))?;
                let uid = str_at(&s, "/metadata/uid").to_string();
                subject.secret = Some(ObjectRef { name: b.name.clone(), uid: uid.clone() });
                (uid, secrets)
            }
            ("", "Node") => {
                let nodes = res("", "nodes")?;
                let n = lookup(ctx, nodes, None, &b.name).await?.ok_or_else(|| ApiError::not_found(nodes, &b.name))?;
                let uid = str_at(&n, "/metadata/uid").to_string();
                subject.node = Some(ObjectRef { name: b.name.clone(), uid: uid.clone() });
                (uid, nodes)
            }
            _ => {
                let gvk = if group.is_empty() {
                    format!("/{}, Kind={}", b.api_version, b.kind)
                } else {
                    format!("{group}/{}, Kind={}", b.api_version.rsplit('/').next().unwrap_or_default(), b.kind)
                };
                return Err(ApiError::bad_request(format!("cannot bind token to object of type {gvk}")));
            }
        };
        if !b.uid.is_empty() && b.uid != uid {
            return Err(ApiError::conflict(
                conflict_res,
                &b.name,
                &format!(
                    "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                    b.uid
                ),
            ));
        }
    }
    node_restriction(user, name, spec.bound.as_ref().filter(|b| b.kind == "Pod"), pod_obj.as_ref())?;
    let (lifetime, warn_after) = if subject.pod.is_some()
        && spec.expiration_seconds == WARN_ONLY_EXPIRATION_SECONDS
        && for_this_server(&spec.audiences, &ctx.sa_tokens.audiences)
    {
        (EXTENDED_EXPIRATION_SECONDS, Some(spec.expiration_seconds))
    } else {
        (spec.expiration_seconds, None)
    };
    let jti = crate::rest::new_uid();
    let c = claims(&ctx.sa_tokens.issuer, &spec.audiences, &subject, now, lifetime, warn_after, &jti);
    let token = ctx.sa_tokens.key.sign(&c).map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    let mut out_spec = json!({"audiences": spec.audiences, "expirationSeconds": spec.expiration_seconds});
    if let Some(b) = body.pointer("/spec/boundObjectRef").filter(|b| b.is_object()) {
        out_spec["boundObjectRef"] = b.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": api::time::format_rfc3339(now)},
        "spec": out_spec,
        "status": {
            "token": token,
            // From the requested lifetime, not an extended one, so clients refresh on time.
            "expirationTimestamp": api::time::format_rfc3339(now + spec.expiration_seconds),
        },
    }))
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the caller is.
pub fn self_subject_review(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": api::time::now_rfc3339()},
        "status": {"userInfo": info},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            namespace: "default".into(),
            service_account: ObjectRef { name: "default".into(), uid: "sa-uid".into() },
            pod: Some(ObjectRef { name: "x".into(), uid: "pod-uid".into() }),
            ..Subject::default()
        }
    }

    fn auds() -> Vec<String> {
        vec![ISSUER.to_string()]
    }

    #[test]
    fn claims_are_upstreams() {
        let c = claims(ISSUER, &auds(), &subject(), 1000, 600, None, "j");
        assert_eq!(
            c,
            json!({
                "iss": ISSUER, "sub": "system:serviceaccount:default:default", "aud": [ISSUER],
                "exp": 1600, "iat": 1000, "nbf": 1000, "jti": "j",
                "kubernetes.io": {
                    "namespace": "default",
                    "serviceaccount": {"name": "default", "uid": "sa-uid"},
                    "pod": {"name": "x", "uid": "pod-uid"},
                },
            })
        );
        let w = claims(ISSUER, &auds(), &subject(), 1000, EXTENDED_EXPIRATION_SECONDS, Some(3607), "j");
        assert_eq!(w["kubernetes.io"]["warnafter"], 4607);
        assert_eq!(w["exp"], 1000 + EXTENDED_EXPIRATION_SECONDS);
    }

    #[test]
    fn claims_are_checked_for_time_issuer_and_audience() {
        let c = claims(ISSUER, &auds(), &subject(), 1000, 600, None, "j");
        let v = check_claims(&c, ISSUER, &auds(), 1000).unwrap();
        assert_eq!(v.subject, subject());
        assert_eq!(check_claims(&c, ISSUER, &auds(), 1600 + LEEWAY_SECONDS).unwrap().jti.as_deref(), Some("j"));
        assert_eq!(check_claims(&c, ISSUER, &auds(), 1601 + LEEWAY_SECONDS), Err(TokenError::Expired));
        assert_eq!(check_claims(&c, ISSUER, &auds(), 1000 - LEEWAY_SECONDS - 1), Err(TokenError::NotYetValid));
        assert_eq!(check_claims(&c, "https://other", &auds(), 1000), Err(TokenError::Issuer));
        let vault = claims(ISSUER, &["vault".to_string()], &subject(), 1000, 600, None, "j");
        assert!(matches!(check_claims(&vault, ISSUER, &auds(), 1000), Err(TokenError::Audience(..))));
        let mut forged = c.clone();
        forged["sub"] = json!("system:serviceaccount:kube-system:default");
        assert_eq!(check_claims(&forged, ISSUER, &auds(), 1000), Err(TokenError::Claims("sub")));
    }

    #[test]
    fn users_carry_upstreams_groups_and_extra() {
        let v = Verified { subject: subject(), jti: Some("j".into()) };
        let u = user_of(&v);
        assert_eq!(u.name, "system:serviceaccount:default:default");
        assert_eq!(u.uid, "sa-uid");
        assert_eq!(u.groups, ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]);
        assert_eq!(u.extra["authentication.kubernetes.io/pod-name"], ["x"]);
        assert_eq!(u.extra["authentication.kubernetes.io/credential-id"], ["JTI=j"]);
        assert!(is_service_account(&u));
        let review = self_subject_review(&u);
        assert_eq!(review["status"]["userInfo"]["username"], "system:serviceaccount:default:default");
    }

    #[test]
    fn bound_objects_must_still_vouch() {
        let r = ObjectRef { name: "x".into(), uid: "u".into() };
        let live = json!({"metadata": {"uid": "u"}});
        still_vouches("pod", "ns", &r, Some(&live), 1000).unwrap();
        assert!(matches!(still_vouches("pod", "ns", &r, None, 1000), Err(TokenError::Deleted { .. })));
        let other = json!({"metadata": {"uid": "v"}});
        assert!(matches!(still_vouches("pod", "ns", &r, Some(&other), 1000), Err(TokenError::UidMismatch { .. })));
        let t = api::time::format_rfc3339(1000);
        let deleting = json!({"metadata": {"uid": "u", "deletionTimestamp": t}});
        still_vouches("pod", "ns", &r, Some(&deleting), 1000 + DELETION_GRACE_SECONDS).unwrap();
        assert!(still_vouches("pod", "ns", &r, Some(&deleting), 1001 + DELETION_GRACE_SECONDS).is_err());
    }

    #[test]
    fn specs_are_defaulted_and_validated() {
        let s = validate_spec(&json!({}), &auds()).unwrap();
        assert_eq!((s.audiences, s.expiration_seconds, s.bound), (auds(), 3600, None));
        let s = validate_spec(
            &json!({"spec": {"audiences": ["vault"], "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "x"}}}),
            &auds(),
        )
        .unwrap();
        assert_eq!(s.audiences, ["vault"]);
        assert_eq!(s.bound.unwrap().name, "x");
        let e = validate_spec(&json!({"spec": {"expirationSeconds": 60}}), &auds()).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        let e = validate_spec(&json!({"spec": {"expirationSeconds": (1i64 << 32) + 1}}), &auds()).unwrap_err();
        assert!(e.message.ends_with("may not specify a duration larger than 2^32 seconds"), "{}", e.message);
    }

    #[test]
    fn nodes_only_get_tokens_for_scheduled_pods() {
        let node = User {
            name: "system:node".into(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..User::default()
        };
        let bound = BoundRef { kind: "Pod".into(), name: "x".into(), uid: "u".into(), ..BoundRef::default() };
        let scheduled = json!({"spec": {"nodeName": "n1"}});
        node_restriction(&node, "default", Some(&bound), Some(&scheduled)).unwrap();
        let e = node_restriction(&node, "default", None, None).unwrap_err();
        assert_eq!(e.message, "serviceaccounts \"default\" is forbidden: node requested token not bound to a pod");
        let pending = json!({"spec": {}});
        assert!(node_restriction(&node, "default", Some(&bound), Some(&pending)).is_err());
        let no_uid = BoundRef { uid: String::new(), ..bound.clone() };
        assert!(node_restriction(&node, "default", Some(&no_uid), Some(&scheduled)).is_err());
        let named = User { name: "system:node:n2".into(), ..node.clone() };
        assert!(node_restriction(&named, "default", Some(&bound), Some(&scheduled)).is_err());
        let admin = User {
            name: "system:admin".into(),
            groups: vec!["system:masters".into(), "system:nodes".into()],
            ..User::default()
        };
        node_restriction(&admin, "default", None, None).unwrap();
    }
}
