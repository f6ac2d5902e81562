//! The content-addressed image store under `DATA_DIR/images`, shared by every pod:
//!
//! ```text
//! images/blobs/sha256/<hex>   manifests, configs and compressed layers, by digest
//! images/ingest/              blobs being written (renamed into blobs/ once verified)
//! images/index.json           image name → manifest, config and layers
//! images/lock                 serialises index updates between processes
//! ```
//!
//! A blob lands under its digest only after its bytes were hashed and checked, so a
//! blob present is a blob verified; a crash mid-write leaves only ingest litter.

use crate::digest::{Digest, Digester};
use crate::oci::{Descriptor, ImageConfigFile};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("image store index {path} is corrupt: {message}")]
    CorruptIndex { path: PathBuf, message: String },
    #[error("blob {0} is not in the image store")]
    BlobNotFound(Digest),
    #[error("image {0:?} is not in the image store")]
    ImageNotFound(String),
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageStoreError + 'a {
    move |source| ImageStoreError::Io { op, path: path.to_path_buf(), source }
}

/// An image the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The normalised reference it was pulled or imported as
    /// (`docker.io/library/busybox:latest`).
    pub name: String,
    /// What the name resolved to (an index or a manifest): the repo digest.
    pub digest: Digest,
    /// The manifest for this platform.
    pub manifest: Digest,
    /// The config blob; its digest is the image ID.
    pub config: Digest,
    /// Compressed layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Uncompressed layer digests, from the config.
    pub diff_ids: Vec<Digest>,
    /// Bytes of the config and the compressed layers.
    pub size: u64,
}

impl Image {
    /// The image ID, as `crictl images` shows it.
    pub fn id(&self) -> &Digest {
        &self.config
    }

    /// `repository@digest`, what Kubernetes reports as a container's `imageID`.
    pub fn repo_digest(&self) -> String {
        let repo = match self.name.split_once('@') {
            Some((n, _)) => n,
            None => {
                let slash = self.name.rfind('/').map(|i| i + 1).unwrap_or(0);
                match self.name[slash..].rfind(':') {
                    Some(i) => &self.name[..slash + i],
                    None => &self.name,
                }
            }
        };
        format!("{repo}@{}", self.digest)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    images: Vec<Image>,
}

/// The image store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` (usually `DATA_DIR/images`).
    pub fn open(root: &Path) -> Result<ImageStore, ImageStoreError> {
        for d in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
        }
        Ok(ImageStore { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Starts writing a blob whose digest is known once it is all written.
    pub fn ingest(&self) -> Result<Ingest, ImageStoreError> {
        let dir = self.root.join("ingest");
        let file = tempfile_in(&dir)?;
        Ok(Ingest { store: self.clone(), file: Some(file.0), tmp: file.1, digester: Digester::new() })
    }

    /// Stores bytes held in memory (manifests, configs).
    pub fn put_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, ImageStoreError> {
        let digest = Digest::of(bytes);
        if let Some(e) = expected
            && *e != digest
        {
            return Err(ImageStoreError::DigestMismatch { expected: e.clone(), actual: digest });
        }
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut ingest = self.ingest()?;
        ingest.write_all(bytes).map_err(io_err("writing", &ingest.tmp.clone()))?;
        ingest.commit(Some(&digest), None).map(|(d, _)| d)
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ImageStoreError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageStoreError::BlobNotFound(digest.clone()),
            _ => ImageStoreError::Io { op: "reading", path, source: e },
        })
    }

    /// The parsed config of an image (entrypoint, cmd, env, user, working dir).
    pub fn config(&self, image: &Image) -> Result<ImageConfigFile, ImageStoreError> {
        Ok(ImageConfigFile::parse(&self.read_blob(&image.config)?)?)
    }

    /// Every image, sorted by name.
    pub fn list(&self) -> Result<Vec<Image>, ImageStoreError> {
        Ok(self.read_index()?.images)
    }

    /// The image stored under a normalised name.
    pub fn get(&self, name: &str) -> Result<Option<Image>, ImageStoreError> {
        Ok(self.read_index()?.images.into_iter().find(|i| i.name == name))
    }

    /// Records an image under its name, replacing what the name pointed to. Every blob
    /// it names must already be stored.
    pub fn put(&self, image: Image) -> Result<(), ImageStoreError> {
        for d in [&image.manifest, &image.config].into_iter().chain(image.layers.iter().map(|l| &l.digest)) {
            if !self.has_blob(d) {
                return Err(ImageStoreError::BlobNotFound(d.clone()));
            }
        }
        self.update_index(|index| {
            index.images.retain(|i| i.name != image.name);
            index.images.push(image);
            index.images.sort_by(|a, b| a.name.cmp(&b.name));
            true
        })
    }

    /// Forgets a name (blobs stay until a garbage collection).
    pub fn remove(&self, name: &str) -> Result<bool, ImageStoreError> {
        let mut found = false;
        self.update_index(|index| {
            let before = index.images.len();
            index.images.retain(|i| i.name != name);
            found = index.images.len() != before;
            found
        })?;
        Ok(found)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn read_index(&self) -> Result<IndexFile, ImageStoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageStoreError::CorruptIndex { path, message: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(ImageStoreError::Io { op: "reading", path, source: e }),
        }
    }

    /// Read, change and atomically replace the index, under an exclusive lock so that
    /// `rudder image import` and a running agent do not lose each other's updates.
    fn update_index(&self, change: impl FnOnce(&mut IndexFile) -> bool) -> Result<(), ImageStoreError> {
        let lock_path = self.root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| ImageStoreError::Io {
            op: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let mut index = self.read_index()?;
        if !change(&mut index) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| ImageStoreError::CorruptIndex { path: self.index_path(), message: e.to_string() })?;
        write_atomic(&self.index_path(), &bytes)
        // The lock is released when `lock` is closed.
    }
}

/// A blob being written: bytes are hashed as they arrive, and the file is renamed under
/// its digest only if it matches what was expected. Dropped unfinished, it is removed.
pub struct Ingest {
    store: ImageStore,
    file: Option<File>,
    tmp: PathBuf,
    digester: Digester,
}

impl Ingest {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// Checks the digest (and size) and moves the blob into place.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64), ImageStoreError> {
        let file = self.file.take();
        let digester = std::mem::take(&mut self.digester);
        let size = digester.len();
        let digest = digester.finish();
        if let Some(e) = expected
            && *e != digest
        {
            return Err(ImageStoreError::DigestMismatch { expected: e.clone(), actual: digest });
        }
        if let Some(s) = expected_size
            && s != size
        {
            return Err(ImageStoreError::SizeMismatch { digest, expected: s, actual: size });
        }
        if let Some(f) = file {
            f.sync_all().map_err(io_err("syncing", &self.tmp))?;
        }
        let dest = self.store.blob_path(&digest);
        fs::rename(&self.tmp, &dest).map_err(io_err("storing", &dest))?;
        Ok((digest, size))
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("ingest already committed"))?;
        let n = f.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // After a commit the file was renamed away and this finds nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A new file with a unique name in `dir`.
fn tempfile_in(dir: &Path) -> Result<(File, PathBuf), ImageStoreError> {
    for attempt in 0..100u32 {
        let path = dir.join(format!("{}-{}-{attempt}", std::process::id(), unique()));
        match File::options().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ImageStoreError::Io { op: "creating", path, source: e }),
        }
    }
    Err(ImageStoreError::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source: io::Error::other("no free temporary name"),
    })
}

/// A number that differs between calls in one process (and very likely between processes).
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos << 20) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Writes a file so that readers see either the old or the new content, never half.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageStoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (mut f, tmp) = tempfile_in(dir)?;
    let result = f.write_all(bytes).and_then(|_| f.sync_all()).and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ImageStoreError::Io { op: "writing", path: path.to_path_buf(), source: e });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::OCI_LAYER;

    fn image(store: &ImageStore, name: &str) -> Image {
        let layer = store.put_blob(b"layer", None).unwrap();
        let config = store.put_blob(b"{}", None).unwrap();
        let manifest = store.put_blob(b"manifest", None).unwrap();
        Image {
            name: name.into(),
            digest: manifest.clone(),
            manifest,
            config,
            layers: vec![Descriptor {
                media_type: OCI_LAYER.into(),
                digest: layer,
                size: 5,
                platform: None,
                annotations: None,
                urls: None,
            }],
            diff_ids: vec![],
            size: 7,
        }
    }

    #[test]
    fn blobs_are_verified_before_they_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let d = store.put_blob(b"hello", None).unwrap();
        assert!(store.has_blob(&d));
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        assert!(matches!(store.put_blob(b"hello!", Some(&wrong)), Err(ImageStoreError::DigestMismatch { .. })));
        let mut ingest = store.ingest().unwrap();
        ingest.write_all(b"abc").unwrap();
        assert!(matches!(ingest.commit(Some(&Digest::of(b"abc")), Some(4)), Err(ImageStoreError::SizeMismatch { .. })));
        assert!(!store.has_blob(&Digest::of(b"abc")));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0, "failed ingests leave nothing");
        assert!(matches!(store.read_blob(&wrong), Err(ImageStoreError::BlobNotFound(_))));
    }

    #[test]
    fn index_put_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        assert!(store.list().unwrap().is_empty());
        store.put(image(&store, "docker.io/library/b:latest")).unwrap();
        store.put(image(&store, "docker.io/library/a:latest")).unwrap();
        store.put(image(&store, "docker.io/library/a:latest")).unwrap();
        let names: Vec<_> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["docker.io/library/a:latest", "docker.io/library/b:latest"]);
        assert!(store.get("docker.io/library/a:latest").unwrap().is_some());
        assert!(store.remove("docker.io/library/a:latest").unwrap());
        assert!(!store.remove("docker.io/library/a:latest").unwrap());
        assert!(store.get("docker.io/library/a:latest").unwrap().is_none());
        // Reopening sees the same index.
        let again = ImageStore::open(dir.path()).unwrap();
        assert_eq!(again.list().unwrap().len(), 1);
    }

    #[test]
    fn put_refuses_images_with_missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let mut img = image(&store, "x");
        img.config = Digest::of(b"missing");
        assert!(matches!(store.put(img), Err(ImageStoreError::BlobNotFound(_))));
    }

    #[test]
    fn corrupt_index_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("index.json"), b"{nope").unwrap();
        assert!(matches!(store.list(), Err(ImageStoreError::CorruptIndex { .. })));
    }

    #[test]
    fn repo_digests() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let img = image(&store, "localhost:5000/app:v1");
        assert_eq!(img.repo_digest(), format!("localhost:5000/app@{}", img.digest));
        let img = image(&store, &format!("docker.io/library/busybox@{}", Digest::of(b"x")));
        assert_eq!(img.repo_digest(), format!("docker.io/library/busybox@{}", img.digest));
    }
}
