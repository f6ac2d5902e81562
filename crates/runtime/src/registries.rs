//! Registry mirrors, rewrites, credentials and TLS settings from a `registries.yaml` in
//! k3s's shape (DESIGN.md §3):
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//!     rewrite: {"^library/(.*)": "mirrored/$1"}
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: alice, password: secret}
//!     tls: {ca_file: /etc/ssl/ca.pem, insecure_skip_verify: false}
//! ```
//!
//! As in k3s and containerd, a registry's mirror endpoints are tried in order and its
//! own default endpoint last; rewrites apply to mirror endpoints only; `*` is a
//! mirror (and config) for every registry not named otherwise.

use crate::reference::{DEFAULT_DOMAIN, Reference};
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    #[error("reading registry config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing registry config: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    #[error("registry config: mirror {registry:?}: rewrite pattern {pattern:?}: {message}")]
    Rewrite { registry: String, pattern: String, message: String },
    #[error("registry config: endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("registry config: {host:?}: auth is not base64 of user:password")]
    Auth { host: String },
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mirrors: BTreeMap<String, RawMirror>,
    #[serde(default)]
    configs: BTreeMap<String, RawHostConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    #[serde(default)]
    endpoint: Vec<String>,
    #[serde(default)]
    rewrite: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostConfig {
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    tls: Option<TlsConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Credentials for one registry, from the config or from an image pull secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token realm.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // Never print secrets into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials { username: username.to_string(), password: password.to_string(), identity_token: None }
    }

    /// Decodes a Docker config `auth` field (base64 of `user:password`).
    pub fn from_auth_field(auth: &str) -> Option<Credentials> {
        let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials::basic(u, p))
    }
}

/// The credentials an image pull secret (`.dockerconfigjson`, or the older
/// `.dockercfg`) holds for an image, most specific key first, as the kubelet matches
/// them: a key is a registry host (with an optional port and path prefix; `*` may
/// stand for one DNS label), and any spelling of Docker Hub matches `docker.io`.
pub fn docker_config_credentials(json: &[u8], reference: &Reference) -> Vec<Credentials> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        identitytoken: Option<String>,
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else { return Vec::new() };
    let auths = value.get("auths").cloned().unwrap_or(value);
    let Ok(auths) = serde_json::from_value::<BTreeMap<String, Entry>>(auths) else { return Vec::new() };
    let mut matches: Vec<(usize, Credentials)> = Vec::new();
    for (key, entry) in auths {
        let Some(specificity) = key_matches(&key, reference) else { continue };
        let mut creds = match entry.auth.as_deref().filter(|a| !a.is_empty()).and_then(Credentials::from_auth_field) {
            Some(c) => c,
            None => {
                Credentials::basic(entry.username.as_deref().unwrap_or(""), entry.password.as_deref().unwrap_or(""))
            }
        };
        creds.identity_token = entry.identitytoken.filter(|t| !t.is_empty());
        matches.push((specificity, creds));
    }
    matches.sort_by_key(|m| std::cmp::Reverse(m.0));
    matches.into_iter().map(|(_, c)| c).collect()
}

/// Whether a docker config key covers an image; the key's length as specificity.
fn key_matches(key: &str, reference: &Reference) -> Option<usize> {
    let rest = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_matches('/')),
        None => (rest, ""),
    };
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    let host_ok = if hub(host) { reference.domain == DEFAULT_DOMAIN } else { glob_host(host, &reference.domain) };
    // Docker Hub keys carry the API version (`/v1/`), not a repository prefix.
    let path_ok = path.is_empty()
        || (hub(host) && (path == "v1" || path == "v2"))
        || reference.path == path
        || reference.path.starts_with(&format!("{path}/"));
    (host_ok && path_ok).then_some(key.len())
}

/// `*.example.com` matches `a.example.com` (one label per `*`); ports must match.
fn glob_host(pattern: &str, host: &str) -> bool {
    let split = |h: &str| match h.rsplit_once(':') {
        Some((n, p)) if !h.ends_with(']') => (n.to_string(), Some(p.to_string())),
        _ => (h.to_string(), None),
    };
    let ((pn, pp), (hn, hp)) = (split(pattern), split(host));
    if pp != hp {
        return false;
    }
    let (pl, hl): (Vec<&str>, Vec<&str>) = (pn.split('.').collect(), hn.split('.').collect());
    pl.len() == hl.len() && pl.iter().zip(&hl).all(|(p, h)| *p == "*" || p.eq_ignore_ascii_case(h))
}

/// TLS settings for one registry host.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// What the config says about one host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub auth: Option<Credentials>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone)]
struct Mirror {
    endpoints: Vec<String>,
    rewrites: Vec<(regex::Regex, String)>,
}

/// A parsed and checked `registries.yaml`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    mirrors: BTreeMap<String, Mirror>,
    configs: BTreeMap<String, HostConfig>,
}

/// One place to ask for an image: a registry API base and the repository name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API prefix, `/v2` unless the endpoint URL names another path ending in `/v2`.
    pub prefix: String,
    /// The repository at this endpoint (after any rewrite).
    pub repository: String,
    /// A mirror rather than the registry's own endpoint.
    pub mirror: bool,
    pub config: HostConfig,
}

impl Endpoint {
    /// `scheme://host/prefix`.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.prefix)
    }
}

impl RegistryConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistryConfigError::Read { path: path.to_path_buf(), source })?;
        RegistryConfig::from_yaml(&text)
    }

    /// Reads `path` when it exists, else an empty config (the default
    /// `DATA_DIR/registries.yaml` is optional).
    pub fn load_optional(path: &Path) -> Result<RegistryConfig, RegistryConfigError> {
        if path.exists() { RegistryConfig::load(path) } else { Ok(RegistryConfig::default()) }
    }

    pub fn from_yaml(text: &str) -> Result<RegistryConfig, RegistryConfigError> {
        // An empty file is an empty config, not a parse error.
        let raw: RawConfig = if text.trim().is_empty() { RawConfig::default() } else { serde_yaml_ng::from_str(text)? };
        let mut mirrors = BTreeMap::new();
        for (registry, m) in raw.mirrors {
            let mut rewrites = Vec::new();
            for (pattern, replacement) in m.rewrite {
                let re = regex::Regex::new(&pattern).map_err(|e| RegistryConfigError::Rewrite {
                    registry: registry.clone(),
                    pattern: pattern.clone(),
                    message: e.to_string(),
                })?;
                rewrites.push((re, replacement));
            }
            for e in &m.endpoint {
                parse_endpoint_url(e)?;
            }
            mirrors.insert(registry, Mirror { endpoints: m.endpoint, rewrites });
        }
        let mut configs = BTreeMap::new();
        for (host, c) in raw.configs {
            let auth = match c.auth {
                None => None,
                Some(a) => {
                    let mut creds = match (&a.auth, &a.username) {
                        (Some(encoded), _) if !encoded.is_empty() => Credentials::from_auth_field(encoded)
                            .ok_or_else(|| RegistryConfigError::Auth { host: host.clone() })?,
                        _ => {
                            Credentials::basic(a.username.as_deref().unwrap_or(""), a.password.as_deref().unwrap_or(""))
                        }
                    };
                    creds.identity_token = a.identitytoken.filter(|t| !t.is_empty());
                    Some(creds)
                }
            };
            // Configs may be keyed by URL as well as by host; the host is what matters.
            let key = match parse_endpoint_url(&host) {
                Ok((_, h, _)) if host.contains("://") => h,
                _ => host,
            };
            configs.insert(key, HostConfig { auth, tls: c.tls });
        }
        Ok(RegistryConfig { mirrors, configs })
    }

    /// The settings for one endpoint host (exact match, else `*`).
    pub fn host_config(&self, host: &str) -> HostConfig {
        self.configs.get(host).or_else(|| self.configs.get("*")).cloned().unwrap_or_default()
    }

    /// Where to look for an image, in order: the mirrors of its registry (or of `*`),
    /// then the registry itself.
    pub fn endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        let mirror = self.mirrors.get(&reference.domain).or_else(|| self.mirrors.get("*"));
        if let Some(m) = mirror {
            for url in &m.endpoints {
                // Checked when the config was loaded.
                let Ok((scheme, host, prefix)) = parse_endpoint_url(url) else { continue };
                let repository = rewrite(&m.rewrites, &reference.path);
                let config = self.host_config(&host);
                let e = Endpoint { scheme, host, prefix, repository, mirror: true, config };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        let host = if reference.domain == DEFAULT_DOMAIN { "registry-1.docker.io" } else { &reference.domain };
        let config = self.host_config(&reference.domain);
        // Docker's rule: a registry on a loopback address may speak plain http; a TLS
        // setting for it asks for https.
        let scheme = if is_loopback(host) && config.tls.is_none() { "http" } else { "https" };
        let default = Endpoint {
            scheme: scheme.to_string(),
            host: host.to_string(),
            prefix: "/v2".to_string(),
            repository: reference.path.clone(),
            mirror: false,
            config,
        };
        // A mirror list naming the registry itself should not send us there twice.
        if !out.iter().any(|e| e.host == default.host && e.scheme == default.scheme && e.prefix == default.prefix) {
            out.push(default);
        }
        out
    }
}

fn rewrite(rewrites: &[(regex::Regex, String)], path: &str) -> String {
    for (re, replacement) in rewrites {
        if re.is_match(path) {
            return re.replace(path, replacement.as_str()).into_owned();
        }
    }
    path.to_string()
}

/// Splits an endpoint URL into scheme, host and API prefix. A URL without a scheme is
/// https (http on loopback); the prefix always ends in `/v2`.
fn parse_endpoint_url(url: &str) -> Result<(String, String, String), RegistryConfigError> {
    let err = |message: &str| RegistryConfigError::Endpoint { endpoint: url.to_string(), message: message.into() };
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, url),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
        return Err(err("no host"));
    }
    let scheme = match scheme.as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        Some(_) => return Err(err("the scheme must be http or https")),
        None if is_loopback(host) => "http",
        None => "https",
    };
    let mut prefix = path.trim_end_matches('/').to_string();
    if !prefix.ends_with("/v2") {
        prefix.push_str("/v2");
    }
    Ok((scheme.to_string(), host.to_string(), prefix))
}

/// `localhost`, `127.0.0.0/8` or `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name == "localhost" || name.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap()
    }

    #[test]
    fn no_config_means_the_registry_itself() {
        let c = RegistryConfig::default();
        let e = c.endpoints(&r("busybox"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].base_url(), "https://registry-1.docker.io/v2");
        assert_eq!(e[0].repository, "library/busybox");
        let e = c.endpoints(&r("127.0.0.1:5000/app"));
        assert_eq!(e[0].base_url(), "http://127.0.0.1:5000/v2", "loopback registries speak http");
        let e = c.endpoints(&r("localhost:5000/app"));
        assert_eq!(e[0].scheme, "http");
        let e = c.endpoints(&r("registry.example.com:5000/app"));
        assert_eq!(e[0].base_url(), "https://registry.example.com:5000/v2");
    }

    #[test]
    fn mirrors_first_then_default_with_rewrites_on_mirrors_only() {
        let c = RegistryConfig::from_yaml(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com/prefix/"
    rewrite:
      "^library/(.*)": "mirrored/$1"
configs:
  "127.0.0.1:5000":
    auth:
      username: alice
      password: secret
  mirror.example.com:
    tls:
      ca_file: /etc/ca.pem
      insecure_skip_verify: true
"#,
        )
        .unwrap();
        let e = c.endpoints(&r("busybox:1.36"));
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].base_url(), "http://127.0.0.1:5000/v2");
        assert_eq!(e[0].repository, "mirrored/busybox");
        assert_eq!(e[0].config.auth, Some(Credentials::basic("alice", "secret")));
        assert!(e[0].mirror);
        assert_eq!(e[1].base_url(), "https://mirror.example.com/prefix/v2");
        let tls = e[1].config.tls.as_ref().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert!(tls.insecure_skip_verify);
        assert_eq!(e[2].base_url(), "https://registry-1.docker.io/v2");
        assert_eq!(e[2].repository, "library/busybox", "no rewrite on the registry itself");
        assert!(!e[2].mirror);
        // Other registries are untouched.
        let e = c.endpoints(&r("quay.io/app"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].base_url(), "https://quay.io/v2");
    }

    #[test]
    fn wildcard_mirror_and_config() {
        let c = RegistryConfig::from_yaml(
            "mirrors:\n  \"*\":\n    endpoint: [\"localhost:5000\"]\nconfigs:\n  \"*\":\n    auth: {auth: YWxpY2U6c2VjcmV0}\n",
        )
        .unwrap();
        let e = c.endpoints(&r("quay.io/app"));
        assert_eq!(e[0].base_url(), "http://localhost:5000/v2");
        assert_eq!(e[0].config.auth, Some(Credentials::basic("alice", "secret")));
        assert_eq!(e[1].base_url(), "https://quay.io/v2");
    }

    #[test]
    fn a_mirror_list_naming_the_registry_does_not_repeat_it() {
        let c = RegistryConfig::from_yaml(
            "mirrors:\n  registry.example.com:\n    endpoint: [\"https://registry.example.com\"]\n",
        )
        .unwrap();
        assert_eq!(c.endpoints(&r("registry.example.com/x")).len(), 1);
    }

    #[test]
    fn identity_token_and_tls_for_loopback() {
        let c = RegistryConfig::from_yaml(
            "configs:\n  \"localhost:5443\":\n    auth: {identitytoken: tok}\n    tls: {ca_file: /ca.pem}\n",
        )
        .unwrap();
        let e = c.endpoints(&r("localhost:5443/app"));
        assert_eq!(e[0].scheme, "https", "a TLS config asks for https even on loopback");
        assert_eq!(e[0].config.auth.as_ref().unwrap().identity_token.as_deref(), Some("tok"));
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(matches!(
            RegistryConfig::from_yaml("mirrors:\n  docker.io:\n    rewrite: {\"(\": x}\n"),
            Err(RegistryConfigError::Rewrite { .. })
        ));
        assert!(matches!(
            RegistryConfig::from_yaml("mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n"),
            Err(RegistryConfigError::Endpoint { .. })
        ));
        assert!(matches!(
            RegistryConfig::from_yaml("configs:\n  x:\n    auth: {auth: \"!!!\"}\n"),
            Err(RegistryConfigError::Auth { .. })
        ));
        assert!(matches!(RegistryConfig::from_yaml("mirrorz: {}\n"), Err(RegistryConfigError::Parse(_))));
        assert!(RegistryConfig::from_yaml("").is_ok());
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "[fe80::1]:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn pull_secret_credentials_match_like_the_kubelet() {
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
            "registry.example.com:5000": {"username": "r", "password": "rp"},
            "registry.example.com:5000/team": {"username": "team", "password": "tp"},
            "*.corp.example": {"username": "g", "password": "gp"},
            "other.io": {"username": "o", "password": "op", "identitytoken": "tok"}
        }}"#;
        let users = |image: &str| -> Vec<String> {
            docker_config_credentials(json, &r(image)).into_iter().map(|c| c.username).collect()
        };
        assert_eq!(users("busybox"), ["hub"]);
        assert_eq!(docker_config_credentials(json, &r("busybox"))[0].password, "hubpw");
        assert_eq!(users("registry.example.com:5000/team/app"), ["team", "r"], "most specific first");
        assert_eq!(users("registry.example.com:5000/app"), ["r"]);
        assert!(users("registry.example.com/app").is_empty(), "ports must match");
        assert_eq!(users("git.corp.example/x"), ["g"]);
        assert!(users("a.b.corp.example/x").is_empty(), "one label per *");
        assert_eq!(docker_config_credentials(json, &r("other.io/x"))[0].identity_token.as_deref(), Some("tok"));
        // The older .dockercfg shape has no "auths" wrapper.
        let legacy = br#"{"quay.io": {"username": "q", "password": "qp"}}"#;
        assert_eq!(docker_config_credentials(legacy, &r("quay.io/app"))[0].username, "q");
        assert!(docker_config_credentials(b"not json", &r("busybox")).is_empty());
    }

    #[test]
    fn credentials_do_not_print_passwords() {
        let c = Credentials::basic("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
