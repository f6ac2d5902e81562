//! The OCI image formats (and their Docker v2 schema 2 twins): descriptors, indexes and
//! manifest lists, manifests, and the image config, as far as a runtime reads them.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a registry is asked for, most preferred first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The annotation an OCI layout uses for an image's name (or only its tag).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd writes with an image's full name in exported layouts.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("manifest media type {0:?} is not supported (Docker schema 1 and unknown types cannot be pulled)")]
    UnsupportedManifest(String),
    #[error("malformed {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("no manifest for platform {0} in the image index")]
    NoMatchingPlatform(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform of this machine, in Go's names (`linux/amd64`, `linux/arm64/v8`).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// Whether an image built for `candidate` runs here. An arm64 image without a
    /// variant is v8, as containerd's matcher treats it.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if candidate.os != self.os || candidate.architecture != self.architecture {
            return false;
        }
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            ("amd64", Some("v1")) => None,
            (_, v) => v.map(str::to_string),
        };
        norm(candidate) == norm(self) || candidate.variant.is_none()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    /// The manifest for a platform: the first that matches, as containerd chooses.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, OciError> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| OciError::NoMatchingPlatform(platform.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest document: an index (manifest list) or an image manifest.
#[derive(Debug, Clone)]
pub enum ManifestDoc {
    Index(Index),
    Manifest(Box<Manifest>),
}

/// Parses a manifest body, trusting the `Content-Type` a registry sent, else the body's
/// own `mediaType`, else its shape (an OCI index may omit both).
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<ManifestDoc, OciError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|source| OciError::Json { what: "manifest", source })?;
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain")
        .or(probe.media_type);
    let kind = match declared.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => "index",
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => "manifest",
        Some(other) => return Err(OciError::UnsupportedManifest(other.to_string())),
        None if probe.schema_version == Some(1) => return Err(OciError::UnsupportedManifest(DOCKER_SCHEMA1.into())),
        None if probe.manifests.is_some() => "index",
        None => "manifest",
    };
    if kind == "index" {
        serde_json::from_slice(body).map(ManifestDoc::Index).map_err(|source| OciError::Json { what: "index", source })
    } else {
        serde_json::from_slice(body)
            .map(|m| ManifestDoc::Manifest(Box::new(m)))
            .map_err(|source| OciError::Json { what: "manifest", source })
    }
}

/// The image config file (the blob a manifest's `config` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// How the image says to run it (Docker's names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

impl ImageConfigFile {
    pub fn parse(body: &[u8]) -> Result<ImageConfigFile, OciError> {
        serde_json::from_slice(body).map_err(|source| OciError::Json { what: "image config", source })
    }
}

/// The chain IDs of a stack of layers: a layer's snapshot is keyed by everything under
/// it too (`chain(n) = sha256(chain(n-1) + " " + diff(n))`, as the OCI spec defines).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn plat(arch: &str, variant: Option<&str>) -> Platform {
        Platform { architecture: arch.into(), os: "linux".into(), variant: variant.map(Into::into), os_version: None }
    }

    #[test]
    fn index_selects_the_host_platform_and_skips_attestations() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                {"mediaType": DOCKER_MANIFEST, "digest": digest('a').to_string(), "size": 1,
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('b').to_string(), "size": 2,
                 "platform": {"architecture": "unknown", "os": "unknown"}},
                {"mediaType": DOCKER_MANIFEST, "digest": digest('c').to_string(), "size": 3,
                 "platform": {"architecture": "amd64", "os": "linux"}},
            ]
        });
        let ManifestDoc::Index(index) = parse_manifest(None, body.to_string().as_bytes()).unwrap() else {
            panic!("an index")
        };
        assert_eq!(index.select(&plat("amd64", None)).unwrap().digest, digest('c'));
        assert_eq!(index.select(&plat("arm64", Some("v8"))).unwrap().digest, digest('a'));
        assert!(matches!(index.select(&plat("s390x", None)), Err(OciError::NoMatchingPlatform(_))));
    }

    #[test]
    fn platform_variants() {
        assert!(plat("arm64", Some("v8")).matches(&plat("arm64", None)));
        assert!(plat("amd64", None).matches(&plat("amd64", Some("v1"))));
        assert!(!plat("arm", Some("v6")).matches(&plat("arm", Some("v7"))));
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn manifest_kinds_by_header_body_or_shape() {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": OCI_CONFIG, "digest": digest('a').to_string(), "size": 10},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest('b').to_string(), "size": 20}],
        })
        .to_string();
        assert!(matches!(parse_manifest(Some(OCI_MANIFEST), m.as_bytes()), Ok(ManifestDoc::Manifest(_))));
        assert!(matches!(parse_manifest(None, m.as_bytes()), Ok(ManifestDoc::Manifest(_))));
        assert!(matches!(
            parse_manifest(Some("application/json; charset=utf-8"), m.as_bytes()),
            Ok(ManifestDoc::Manifest(_))
        ));
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": []}).to_string();
        assert!(matches!(parse_manifest(None, idx.as_bytes()), Ok(ManifestDoc::Index(_))));
        assert!(matches!(parse_manifest(Some(DOCKER_SCHEMA1), b"{}"), Err(OciError::UnsupportedManifest(_))));
        assert!(matches!(
            parse_manifest(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(OciError::UnsupportedManifest(_))
        ));
        assert!(matches!(parse_manifest(None, b"not json"), Err(OciError::Json { .. })));
        assert!(matches!(parse_manifest(Some(OCI_MANIFEST), b"{}"), Err(OciError::Json { .. })));
    }

    #[test]
    fn image_config_with_nulls() {
        let c = ImageConfigFile::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],"Env":["PATH=/bin"]},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let cfg = c.config.unwrap();
        assert_eq!(cfg.entrypoint, None);
        assert_eq!(cfg.cmd, Some(vec!["sh".to_string()]));
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let (a, b, c) = (digest('a'), digest('b'), digest('c'));
        let chain = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(chain[0], a);
        let ab = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain[1], ab);
        assert_eq!(chain[2], Digest::of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
