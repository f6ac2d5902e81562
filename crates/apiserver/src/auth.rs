//! Authentication by bearer token, and the few paths anonymous clients may read.

use http::HeaderMap;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
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
        let admin =
            User { name: "system:admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] };
        let node =
            User { name: "system:node".into(), groups: vec!["system:nodes".into(), "system:authenticated".into()] };
        Authenticator {
            tokens: vec![
                (admin_token.to_string(), admin),
                (node_token.to_string(), node.clone()),
                (node_secret.to_string(), node),
            ],
        }
    }

    /// The user behind the request's `Authorization: Bearer` header, if any is valid.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<User> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
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
