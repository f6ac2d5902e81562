//! `rudder image import`: images from an OCI image layout archive or a `docker save`
//! archive (either may be gzip-compressed), read in one pass.
//!
//! Blobs under `blobs/sha256/` are checked against their names on the way in; the
//! other files of a Docker archive (`<id>/layer.tar`, `<id>.json`) are stored under
//! the digest of their content. A Docker archive has no manifest, so one is written
//! (OCI, with uncompressed layers), as containerd does on import.

use crate::digest::Digest;
use crate::images::{Image, ImageStore, ImageStoreError};
use crate::oci::{self, Descriptor, ImageConfigFile, Index, Manifest, ManifestDoc, OciError, Platform};
use crate::reference::Reference;
use crate::unpack::{UnpackError, clean_path, decompress};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Small files kept in memory while reading (JSON documents).
const MAX_SMALL_FILE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the archive: {0}")]
    Read(io::Error),
    #[error(transparent)]
    Decompress(#[from] UnpackError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("the archive is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")]
    UnknownFormat,
    #[error("the archive names {0}, which it does not contain")]
    Missing(String),
    #[error("malformed {file}: {message}")]
    Malformed { file: String, message: String },
    #[error("image name {name:?}: {message}")]
    Name { name: String, message: String },
    #[error("the archive has no named image (no RepoTags, no org.opencontainers.image.ref.name annotation)")]
    NoNamedImage,
}

/// Imports every named image in the archive and returns them.
pub fn import_archive(store: &ImageStore, reader: impl Read, platform: &Platform) -> Result<Vec<Image>, ImportError> {
    let contents = read_archive(store, reader)?;
    let images = if contents.small.contains_key(Path::new("manifest.json")) {
        docker_images(store, &contents)?
    } else if contents.small.contains_key(Path::new("index.json")) {
        oci_images(store, &contents, platform)?
    } else {
        return Err(ImportError::UnknownFormat);
    };
    if images.is_empty() {
        return Err(ImportError::NoNamedImage);
    }
    for image in &images {
        store.put(image.clone())?;
    }
    Ok(images)
}

#[derive(Default)]
struct Contents {
    /// JSON documents and other small files, by path.
    small: HashMap<PathBuf, Vec<u8>>,
    /// Every stored file, by path.
    blobs: HashMap<PathBuf, (Digest, u64)>,
    /// Symlinks (older docker archives link repeated layers), by path.
    links: HashMap<PathBuf, PathBuf>,
}

impl Contents {
    fn blob(&self, path: &str) -> Result<(Digest, u64), ImportError> {
        let mut p = clean_path(Path::new(path));
        for _ in 0..16 {
            if let Some(b) = self.blobs.get(&p) {
                return Ok(b.clone());
            }
            match self.links.get(&p) {
                Some(target) => p = target.clone(),
                None => break,
            }
        }
        Err(ImportError::Missing(path.to_string()))
    }

    fn document(&self, store: &ImageStore, path: &str) -> Result<Vec<u8>, ImportError> {
        let p = clean_path(Path::new(path));
        if let Some(b) = self.small.get(&p) {
            return Ok(b.clone());
        }
        let (digest, _) = self.blob(path)?;
        Ok(store.read_blob(&digest)?)
    }
}

fn read_archive(store: &ImageStore, reader: impl Read) -> Result<Contents, ImportError> {
    let mut archive = tar::Archive::new(decompress(reader)?);
    let mut contents = Contents::default();
    for entry in archive.entries().map_err(ImportError::Read)? {
        let mut entry = entry.map_err(ImportError::Read)?;
        let path = clean_path(&entry.path().map_err(ImportError::Read)?);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                let base = if kind.is_symlink() { path.parent().unwrap_or(Path::new("")) } else { Path::new("") };
                let target = clean_path(&base.join(target));
                contents.links.insert(path, target);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let name = path.to_string_lossy().into_owned();
        let expected = name.strip_prefix("blobs/sha256/").and_then(|h| Digest::from_hex(h).ok());
        let document = name.ends_with(".json") || name == "oci-layout" || name == "repositories";
        if document && expected.is_none() && size <= MAX_SMALL_FILE {
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(ImportError::Read)?;
            contents.small.insert(path, buf);
            continue;
        }
        if let Some(d) = &expected
            && store.has_blob(d)
        {
            contents.blobs.insert(path, (d.clone(), size));
            continue;
        }
        let mut ingest = store.ingest()?;
        io::copy(&mut entry, &mut ingest).map_err(ImportError::Read)?;
        ingest.flush().map_err(ImportError::Read)?;
        let (digest, size) = ingest.commit(expected.as_ref(), Some(size))?;
        contents.blobs.insert(path, (digest, size));
    }
    Ok(contents)
}

fn malformed(file: &str, e: impl std::fmt::Display) -> ImportError {
    ImportError::Malformed { file: file.to_string(), message: e.to_string() }
}

fn normalise(name: &str) -> Result<String, ImportError> {
    Reference::parse_normalized(name)
        .map(|r| r.to_string())
        .map_err(|e| ImportError::Name { name: name.to_string(), message: e.to_string() })
}

/// `docker save`: `manifest.json` lists each image's config, tags and layer files.
fn docker_images(store: &ImageStore, contents: &Contents) -> Result<Vec<Image>, ImportError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Layers", default)]
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(&contents.small[Path::new("manifest.json")])
        .map_err(|e| malformed("manifest.json", e))?;
    let mut images = Vec::new();
    for entry in entries {
        let config_bytes = contents.document(store, &entry.config)?;
        let config_digest = store.put_blob(&config_bytes, None)?;
        let config = ImageConfigFile::parse(&config_bytes)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(malformed(
                &entry.config,
                format!("{} diff IDs for {} layers", config.rootfs.diff_ids.len(), entry.layers.len()),
            ));
        }
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let (digest, size) = contents.blob(layer)?;
            let media_type = match sniff(store, &digest)? {
                Sniffed::Gzip => oci::OCI_LAYER_GZIP,
                Sniffed::Zstd => oci::OCI_LAYER_ZSTD,
                Sniffed::Tar => oci::OCI_LAYER,
            };
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                platform: None,
                annotations: None,
                urls: None,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: oci::OCI_CONFIG.into(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: None,
                urls: None,
            },
            layers,
            annotations: None,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| malformed("manifest", e))?;
        let manifest_digest = store.put_blob(&manifest_bytes, None)?;
        for tag in entry.repo_tags.unwrap_or_default() {
            images.push(Image {
                name: normalise(&tag)?,
                digest: manifest_digest.clone(),
                manifest: manifest_digest.clone(),
                config: config_digest.clone(),
                size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
                layers: manifest.layers.clone(),
                diff_ids: config.rootfs.diff_ids.clone(),
            });
        }
    }
    Ok(images)
}

enum Sniffed {
    Gzip,
    Zstd,
    Tar,
}

fn sniff(store: &ImageStore, digest: &Digest) -> Result<Sniffed, ImportError> {
    let path = store.blob_path(digest);
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(&path).map_err(|source| ImageStoreError::Io {
        op: "opening",
        path: path.clone(),
        source,
    })?;
    let n = f.read(&mut head).map_err(ImportError::Read)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Sniffed::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Sniffed::Zstd,
        _ => Sniffed::Tar,
    })
}

/// An OCI layout: `index.json` names manifests (or indexes) with their image names in
/// annotations.
fn oci_images(store: &ImageStore, contents: &Contents, platform: &Platform) -> Result<Vec<Image>, ImportError> {
    let index: Index =
        serde_json::from_slice(&contents.small[Path::new("index.json")]).map_err(|e| malformed("index.json", e))?;
    let mut images = Vec::new();
    for desc in &index.manifests {
        let annotations = desc.annotations.clone().unwrap_or_default();
        // containerd writes the full name in its own annotation; the OCI one may be a
        // full reference or only a tag (which names nothing on its own).
        let name = annotations
            .get(oci::CONTAINERD_NAME_ANNOTATION)
            .cloned()
            .or_else(|| annotations.get(oci::REF_NAME_ANNOTATION).filter(|n| n.contains(['/', ':'])).cloned());
        let Some(name) = name else { continue };
        let name = normalise(&name)?;
        let top = load_blob(store, &desc.digest)?;
        let (manifest_digest, manifest) =
            match oci::parse_manifest(Some(&desc.media_type).filter(|m| !m.is_empty()).map(|s| s.as_str()), &top)? {
                ManifestDoc::Manifest(m) => (desc.digest.clone(), *m),
                ManifestDoc::Index(i) => {
                    let chosen = i.select(platform)?;
                    let bytes = load_blob(store, &chosen.digest)?;
                    match oci::parse_manifest(Some(&chosen.media_type), &bytes)? {
                        ManifestDoc::Manifest(m) => (chosen.digest.clone(), *m),
                        ManifestDoc::Index(_) => return Err(malformed("index.json", "an index inside an index")),
                    }
                }
            };
        let config = ImageConfigFile::parse(&load_blob(store, &manifest.config.digest)?)?;
        for layer in &manifest.layers {
            if !store.has_blob(&layer.digest) {
                return Err(ImportError::Missing(layer.digest.to_string()));
            }
        }
        images.push(Image {
            name,
            digest: desc.digest.clone(),
            manifest: manifest_digest,
            config: manifest.config.digest.clone(),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            layers: manifest.layers,
            diff_ids: config.rootfs.diff_ids,
        });
    }
    Ok(images)
}

fn load_blob(store: &ImageStore, digest: &Digest) -> Result<Vec<u8>, ImportError> {
    store.read_blob(digest).map_err(|e| match e {
        ImageStoreError::BlobNotFound(d) => ImportError::Missing(d.to_string()),
        other => other.into(),
    })
}
