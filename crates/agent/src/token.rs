//! The kubelet's token manager: service-account tokens for projected
//! `serviceAccountToken` volume sources, requested through `serviceaccounts/token`
//! bound to the pod, cached, and renewed once 80% of their lifetime has passed or
//! they are older than 24 hours (with up to 10 s of jitter, so a node's pods do not
//! all renew at once), as upstream's `pkg/kubelet/token` does.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::Api;
use kube::api::PostParams;
use std::collections::HashMap;
use std::sync::Mutex;

/// What upstream's admission puts on the projected token (and the API default when a
/// source leaves it out is 1 h; the kubelet sends what the source says).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3607;
/// Tokens older than this are renewed whatever their lifetime.
pub const MAX_TTL_SECONDS: i64 = 24 * 60 * 60;
/// The most jitter added to a renewal time.
pub const MAX_JITTER_SECONDS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the pod has no name, namespace or uid")]
    Incomplete,
    #[error("failed to fetch token: {0}")]
    Request(#[from] kube::Error),
    #[error("failed to fetch token: the answer has no token")]
    Empty,
}

/// Which token a source asks for: tokens are shared between sources that ask alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub namespace: String,
    pub service_account: String,
    pub audience: Option<String>,
    pub expiration_seconds: i64,
    pub pod_uid: String,
}

/// A token the API server issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    /// `status.expirationTimestamp` (unix seconds).
    pub expires: i64,
    /// The lifetime asked for, from which the issue time is derived as upstream does.
    pub expiration_seconds: i64,
}

/// Upstream's `requiresRefresh`: renew after 24 h or within the last 20% of the lifetime.
pub fn requires_refresh(now: i64, t: &Issued, jitter: i64) -> bool {
    let issued = t.expires - t.expiration_seconds;
    if now > issued + MAX_TTL_SECONDS - jitter {
        return true;
    }
    now > t.expires - t.expiration_seconds * 20 / 100 - jitter
}

/// The key a source asks by.
pub fn key_of(pod: &Pod, source: &ServiceAccountTokenProjection) -> Result<TokenKey, TokenError> {
    let namespace = pod.metadata.namespace.clone().filter(|s| !s.is_empty()).ok_or(TokenError::Incomplete)?;
    let pod_uid = pod.metadata.uid.clone().filter(|s| !s.is_empty()).ok_or(TokenError::Incomplete)?;
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string());
    Ok(TokenKey {
        namespace,
        service_account,
        audience: source.audience.clone().filter(|a| !a.is_empty()),
        expiration_seconds: source.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        pod_uid,
    })
}

/// The TokenRequest for a source, bound to the pod.
pub fn request_for(pod: &Pod, key: &TokenKey) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: key.audience.iter().cloned().collect(),
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: Some(key.pod_uid.clone()),
            }),
        },
        ..Default::default()
    }
}

fn now_unix() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

fn jitter() -> i64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    i64::from(nanos) % (MAX_JITTER_SECONDS + 1)
}

/// Requests and caches tokens for the pods of this node.
pub struct TokenManager {
    client: kube::Client,
    cache: Mutex<HashMap<TokenKey, Issued>>,
}

impl TokenManager {
    pub fn new(client: kube::Client) -> TokenManager {
        TokenManager { client, cache: Mutex::new(HashMap::new()) }
    }

    fn cached(&self, key: &TokenKey) -> Option<Issued> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    /// The token for a pod's source: the cached one unless it is due for renewal. A
    /// failed renewal keeps handing out the cached token while it is still valid.
    pub async fn token(&self, pod: &Pod, source: &ServiceAccountTokenProjection) -> Result<String, TokenError> {
        let key = key_of(pod, source)?;
        let now = now_unix();
        let cached = self.cached(&key);
        if let Some(c) = cached.as_ref().filter(|c| !requires_refresh(now, c, jitter())) {
            return Ok(c.token.clone());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key.namespace);
        let answer =
            api.create_token_request(&key.service_account, &PostParams::default(), &request_for(pod, &key)).await;
        let issued = match answer {
            Ok(tr) => {
                let status = tr.status.ok_or(TokenError::Empty)?;
                if status.token.is_empty() {
                    return Err(TokenError::Empty);
                }
                Issued {
                    token: status.token,
                    expires: status.expiration_timestamp.0.as_second(),
                    expiration_seconds: tr.spec.expiration_seconds.unwrap_or(key.expiration_seconds),
                }
            }
            Err(e) => {
                return match cached.filter(|c| c.expires > now) {
                    Some(c) => {
                        tracing::warn!(pod = ?pod.metadata.name, error = %e, "renewing a service account token failed");
                        Ok(c.token)
                    }
                    None => Err(e.into()),
                };
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, issued.clone());
        }
        Ok(issued.token)
    }

    /// Drops the tokens of a pod that is gone.
    pub fn forget_pod(&self, pod_uid: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|k, _| k.pod_uid != pod_uid);
        }
    }

    /// Drops expired tokens of pods this node no longer runs.
    pub fn cleanup(&self, now: i64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, t| t.expires > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issued(expires: i64, lifetime: i64) -> Issued {
        Issued { token: "t".into(), expires, expiration_seconds: lifetime }
    }

    #[test]
    fn renews_at_eighty_percent_or_after_a_day() {
        // Issued at 0 for an hour: fresh until 2880 s (80%), due after.
        let t = issued(3600, 3600);
        assert!(!requires_refresh(0, &t, 0));
        assert!(!requires_refresh(2880, &t, 0));
        assert!(requires_refresh(2881, &t, 0));
        // Jitter brings renewal forward.
        assert!(requires_refresh(2871, &t, 10));
        // A week-long token is renewed after 24 h, not at 80%.
        let week = issued(7 * 86400, 7 * 86400);
        assert!(!requires_refresh(86400, &week, 0));
        assert!(requires_refresh(86401, &week, 0));
        assert!((0..=MAX_JITTER_SECONDS).contains(&jitter()));
    }

    #[test]
    fn requests_are_bound_to_the_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"serviceAccountName": "builder", "containers": []}
        }))
        .unwrap();
        let source = ServiceAccountTokenProjection { path: "token".into(), ..Default::default() };
        let key = key_of(&pod, &source).unwrap();
        assert_eq!(
            key,
            TokenKey {
                namespace: "ns".into(),
                service_account: "builder".into(),
                audience: None,
                expiration_seconds: 3607,
                pod_uid: "u1".into(),
            }
        );
        let req = serde_json::to_value(request_for(&pod, &key)).unwrap();
        assert_eq!(
            req["spec"],
            json!({"audiences": [], "expirationSeconds": 3607,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u1"}})
        );
        let vault = ServiceAccountTokenProjection {
            path: "t".into(),
            audience: Some("vault".into()),
            expiration_seconds: Some(600),
        };
        let k2 = key_of(&pod, &vault).unwrap();
        assert_eq!((k2.audience.as_deref(), k2.expiration_seconds), (Some("vault"), 600));
        let nameless: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(matches!(key_of(&nameless, &source), Err(TokenError::Incomplete)));
    }
}
