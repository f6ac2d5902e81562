//! Registry authentication challenges: the `WWW-Authenticate` header a registry answers
//! 401 with, and the token endpoint's answer (the Docker token protocol:
//! <https://distribution.github.io/distribution/spec/auth/token/>).

use serde::Deserialize;
use std::collections::BTreeMap;

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic { realm: Option<String> },
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses a `WWW-Authenticate` value: `Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"`. Several challenges may share one header; unknown schemes are
/// skipped.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let scheme_end = rest.find(|c: char| c.is_whitespace() || c == ',').unwrap_or(rest.len());
        let scheme = rest[..scheme_end].to_ascii_lowercase();
        rest = rest[scheme_end..].trim_start_matches([' ', '\t', ',']);
        let mut params = BTreeMap::new();
        // Parameters run until the next token that is not followed by `=` (a new scheme).
        while let Some(eq) = rest.find('=') {
            let key = &rest[..eq];
            if key.is_empty() || key.contains([' ', '\t', ',']) {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.insert(key.to_ascii_lowercase(), value);
            rest = remaining.trim_start_matches([' ', '\t', ',']);
        }
        match scheme.as_str() {
            "basic" => out.push(Challenge::Basic { realm: params.remove("realm") }),
            "bearer" => {
                if let Some(realm) = params.remove("realm") {
                    out.push(Challenge::Bearer {
                        realm,
                        service: params.remove("service"),
                        scope: params.remove("scope"),
                    });
                }
            }
            _ => {}
        }
        if scheme.is_empty() {
            break;
        }
    }
    out
}

/// What a token endpoint answers.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    /// `token` is the Docker name, `access_token` the OAuth2 one; either will do.
    pub fn into_token(self) -> Option<String> {
        self.token.filter(|t| !t.is_empty()).or(self.access_token.filter(|t| !t.is_empty()))
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_all_parameters() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            [Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
    }

    #[test]
    fn basic_and_multiple_challenges() {
        assert_eq!(parse_challenges(r#"Basic realm="test""#), [Challenge::Basic { realm: Some("test".into()) }]);
        let c = parse_challenges(r#"Basic realm="a", Bearer realm="https://t/token", service=reg"#);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[1],
            Challenge::Bearer { realm: "https://t/token".into(), service: Some("reg".into()), scope: None }
        );
    }

    #[test]
    fn quoted_commas_and_escapes() {
        let c = parse_challenges(r#"Bearer realm="https://t/token",scope="repository:a:pull,push",service="x\"y""#);
        assert_eq!(
            c,
            [Challenge::Bearer {
                realm: "https://t/token".into(),
                service: Some("x\"y".into()),
                scope: Some("repository:a:pull,push".into()),
            }]
        );
    }

    #[test]
    fn junk_does_not_panic() {
        for h in ["", "Bearer", "Bearer realm", "Bearer realm=\"unterminated", "=,=,", "Negotiate abc", ",,,"] {
            let _ = parse_challenges(h);
        }
        assert!(parse_challenges("Bearer service=x").is_empty(), "a bearer challenge needs a realm");
    }

    #[test]
    fn token_fields_and_escaping() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("a"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"b","access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("b"));
        assert_eq!(query_escape("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
    }
}
