//! Image references, normalised as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/app` keeps its registry, a
//! reference may carry a tag, a digest or both. The grammar and the error messages
//! follow distribution's `reference` package.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name must be lowercase")]
    NameNotLowercase,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    NameIsDigest(String),
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("invalid reference format: {0}")]
    Digest(#[from] crate::digest::DigestError),
}

/// A fully qualified image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host, with its port if any (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// The repository inside the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` would, adding `:latest` when
    /// there is neither a tag nor a digest.
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_normalized_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalises the name, without adding a default tag.
    pub fn parse_normalized_named(s: &str) -> Result<Reference, ReferenceError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ReferenceError::NameIsDigest(s.to_string()));
        }
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if name.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let (domain, remainder) = split_docker_domain(name);
        if remainder.to_lowercase() != remainder {
            return Err(ReferenceError::NameNotLowercase);
        }
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        validate_domain(&domain)?;
        validate_path(&remainder)?;
        if domain.len() + 1 + remainder.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference { domain, path: remainder, tag: tag.map(str::to_string), digest })
    }

    /// `docker.io/library/busybox`: the name without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository pinned to a digest (`docker.io/library/busybox@sha256:…`), the
    /// form Kubernetes reports as a container's `imageID`.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference { domain: self.domain.clone(), path: self.path.clone(), tag: None, digest: Some(digest.clone()) }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_normalized(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The tag is after the last `:` that follows the last `/` (a `:` before it is a port).
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[slash..].rfind(':') {
        Some(i) => (&s[..slash + i], Some(&s[slash + i + 1..])),
        None => (s, None),
    }
}

/// Docker's rule: the first component is a registry if it has a `.` or a `:`, is
/// `localhost`, or has upper-case letters; otherwise the image is on Docker Hub, where a
/// single-component name is an official image under `library/`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..].iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok { Ok(()) } else { Err(ReferenceError::InvalidFormat) }
}

fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // An IPv6 literal: `[::1]:5000`.
        let (ip, after) = rest.split_once(']').ok_or(ReferenceError::InvalidFormat)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| ReferenceError::InvalidFormat)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(ReferenceError::InvalidFormat)?),
        };
        (None, port)
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ReferenceError::InvalidFormat);
    }
    if let Some(h) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !h.split('.').all(component_ok) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    Ok(())
}

/// Path components are lower-case alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::NameEmpty);
    }
    for component in path.split('/') {
        let b = component.as_bytes();
        if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
            return Err(ReferenceError::InvalidFormat);
        }
        let mut i = 0;
        while i < b.len() {
            if is_alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator run: `.`, `_`, `__`, or one or more `-`.
            let start = i;
            while i < b.len() && !is_alnum(b[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(ReferenceError::InvalidFormat);
            }
        }
    }
    Ok(())
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(norm("index.docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("docker.io/busybox"), "docker.io/library/busybox:latest");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = Reference::parse_normalized("localhost:5000/app/web:v1").unwrap();
        assert_eq!((r.domain.as_str(), r.path.as_str(), r.tag.as_deref()), ("localhost:5000", "app/web", Some("v1")));
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(norm("[::1]:5000/busybox"), "[::1]:5000/busybox:latest");
        assert_eq!(norm("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
        // A first component without `.` or `:` is a Docker Hub user, not a host.
        assert_eq!(norm("myhost/app"), "docker.io/myhost/app:latest");
    }

    #[test]
    fn digests_with_and_without_tags() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse_normalized(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = Reference::parse_normalized(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert_eq!(r.object(), d, "the digest wins over the tag");
        assert_eq!(r.with_digest(&d.parse().unwrap()).to_string(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn errors_as_docker_words_them() {
        assert_eq!(Reference::parse_normalized("Busybox"), Err(ReferenceError::NameNotLowercase));
        assert_eq!(Reference::parse_normalized("docker.io/Library/busybox"), Err(ReferenceError::NameNotLowercase));
        assert_eq!(Reference::parse_normalized("busybox:"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("busybox:-x"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("bus..box"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("busybox_"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("a//b"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized(""), Err(ReferenceError::NameEmpty));
        assert!(matches!(Reference::parse_normalized("busybox@sha256:abc"), Err(ReferenceError::Digest(_))));
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse_normalized(hex), Err(ReferenceError::NameIsDigest(_))));
        let long = "a".repeat(300);
        assert_eq!(Reference::parse_normalized(&long), Err(ReferenceError::NameTooLong));
        assert_eq!(Reference::parse_normalized("my-host.:5000/x"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("host:port/x"), Err(ReferenceError::InvalidFormat));
    }

    #[test]
    fn separators() {
        assert_eq!(norm("a.b_c__d-e---f"), "docker.io/library/a.b_c__d-e---f:latest");
        assert_eq!(Reference::parse_normalized("a___b"), Err(ReferenceError::InvalidFormat));
        assert_eq!(Reference::parse_normalized("a._b"), Err(ReferenceError::InvalidFormat));
    }
}
