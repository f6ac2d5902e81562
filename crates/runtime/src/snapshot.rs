//! Layer snapshots and container root filesystems.
//!
//! Each layer is unpacked once into `DATA_DIR/snapshots/<chainID>/fs` (keyed by its
//! chain ID, so a layer is shared by every image with the same layers under it), and a
//! container's root filesystem is an overlay mount of those directories (read-only,
//! lower) under a per-container upper and work directory:
//!
//! ```text
//! <container dir>/rootfs   the overlay mount point (the bundle's root)
//! <container dir>/upper    what the container wrote
//! <container dir>/work     overlayfs scratch space
//! ```

use crate::digest::Digest;
use crate::images::{Image, ImageStore, ImageStoreError};
use crate::oci::chain_ids;
use crate::unpack::{UnpackError, unpack_layer};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("unpacking layer {layer}: {source}")]
    Unpack { layer: Digest, source: UnpackError },
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("image {image}: {layers} layers but {diff_ids} diff IDs")]
    LayerCount { image: String, layers: usize, diff_ids: usize },
    #[error("overlay mount options for {layers} layers are {len} bytes, over the kernel's page-size limit")]
    TooManyLayers { layers: usize, len: usize },
    #[error("path {0} cannot be used in overlay mount options (it contains ',' or ':')")]
    UnsafePath(PathBuf),
    #[error("mounting overlay at {target}: {source} (is the overlay filesystem available?)")]
    Mount { target: PathBuf, source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io { op, path: path.to_path_buf(), source }
}

/// The layer snapshots under one directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
}

impl Snapshotter {
    /// Opens `root` (usually `DATA_DIR/snapshots`), removing unpacks that a crash left
    /// half done.
    pub fn open(root: &Path) -> Result<Snapshotter, SnapshotError> {
        fs::create_dir_all(root).map_err(io_err("creating", root))?;
        for entry in fs::read_dir(root).map_err(io_err("reading", root))?.flatten() {
            if entry.file_name().to_string_lossy().contains(".tmp-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(Snapshotter { root: root.to_path_buf() })
    }

    /// Where a layer's files are once unpacked.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex()).join("fs")
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// Unpacks whatever layers of `image` are not unpacked yet and returns the layer
    /// directories, bottom first. Blocking: call from a blocking thread.
    pub fn prepare(&self, store: &ImageStore, image: &Image) -> Result<Vec<PathBuf>, SnapshotError> {
        if image.layers.len() != image.diff_ids.len() {
            return Err(SnapshotError::LayerCount {
                image: image.name.clone(),
                layers: image.layers.len(),
                diff_ids: image.diff_ids.len(),
            });
        }
        let chain = chain_ids(&image.diff_ids);
        let mut dirs = Vec::with_capacity(chain.len());
        for ((layer, diff_id), chain_id) in image.layers.iter().zip(&image.diff_ids).zip(&chain) {
            if !self.has_layer(chain_id) {
                self.unpack(store, &layer.digest, diff_id, chain_id)?;
            }
            dirs.push(self.layer_dir(chain_id));
        }
        Ok(dirs)
    }

    /// Unpacks into a scratch directory and renames it into place, so a snapshot that
    /// exists is complete; if another unpack of the same layer won the race, ours goes.
    fn unpack(
        &self,
        store: &ImageStore,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<(), SnapshotError> {
        let scratch = self.root.join(format!("{}.tmp-{}", chain_id.hex(), crate::images::unique()));
        let fs_dir = scratch.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err("creating", &fs_dir))?;
        let result = (|| {
            let path = store.blob_path(blob);
            let file = fs::File::open(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SnapshotError::Store(ImageStoreError::BlobNotFound(blob.clone())),
                _ => SnapshotError::Io { op: "opening", path: path.clone(), source: e },
            })?;
            unpack_layer(file, &fs_dir, Some(diff_id))
                .map_err(|source| SnapshotError::Unpack { layer: blob.clone(), source })?;
            let dest = self.root.join(chain_id.hex());
            match fs::rename(&scratch, &dest) {
                Ok(()) => Ok(()),
                Err(_) if self.has_layer(chain_id) => Ok(()),
                Err(e) => Err(SnapshotError::Io { op: "renaming into", path: dest, source: e }),
            }
        })();
        if scratch.exists() {
            let _ = fs::remove_dir_all(&scratch);
        }
        result
    }

    /// Removes layer snapshots not in `keep` (chain IDs of images still stored).
    pub fn prune(&self, keep: &[Digest]) -> Result<usize, SnapshotError> {
        let keep: std::collections::HashSet<&str> = keep.iter().map(|d| d.hex()).collect();
        let mut removed = 0;
        for entry in fs::read_dir(&self.root).map_err(io_err("reading", &self.root))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && !keep.contains(name.as_str()) {
                fs::remove_dir_all(entry.path()).map_err(io_err("removing", &entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The overlay options for layers given bottom first (overlayfs wants the top first).
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String, SnapshotError> {
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(SnapshotError::UnsafePath(p.to_path_buf()));
        }
    }
    let lower: Vec<String> = lowers.iter().rev().map(|p| p.display().to_string()).collect();
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    // The kernel copies mount data into one page.
    if options.len() >= 4096 {
        return Err(SnapshotError::TooManyLayers { layers: lowers.len(), len: options.len() });
    }
    Ok(options)
}

/// Where a container's root filesystem goes: its mount point (`rootfs` in the bundle)
/// and the directory that holds the writable layer (`upper`, and overlayfs' `work`).
/// The agent keeps bundles on a tmpfs and the writable layer on disk beside the image
/// layers, as containerd does (`/run/containerd` and `/var/lib/containerd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsDirs {
    pub rootfs: PathBuf,
    pub layer: PathBuf,
}

impl RootfsDirs {
    /// The mount point in `bundle`, the writable layer in `layer`.
    pub fn new(bundle: &Path, layer: &Path) -> RootfsDirs {
        RootfsDirs { rootfs: bundle.join("rootfs"), layer: layer.to_path_buf() }
    }

    /// Both in one directory.
    pub fn in_bundle(bundle: &Path) -> RootfsDirs {
        RootfsDirs::new(bundle, bundle)
    }
}

/// Mounts a container's root filesystem at `<container_dir>/rootfs` over the layer
/// directories (bottom first), its writable layer in `container_dir` too, and returns
/// the mount point. Mounting again what is already mounted is a no-op.
pub fn mount_rootfs(lowers: &[PathBuf], container_dir: &Path) -> Result<PathBuf, SnapshotError> {
    mount_rootfs_at(lowers, &RootfsDirs::in_bundle(container_dir))
}

/// [`mount_rootfs`] with the mount point and the writable layer where `dirs` says.
pub fn mount_rootfs_at(lowers: &[PathBuf], dirs: &RootfsDirs) -> Result<PathBuf, SnapshotError> {
    let rootfs = dirs.rootfs.clone();
    let upper = dirs.layer.join("upper");
    let work = dirs.layer.join("work");
    for d in [&rootfs, &upper, &work] {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    if is_mount_point(&rootfs) {
        return Ok(rootfs);
    }
    let mut lowers = lowers.to_vec();
    if lowers.is_empty() {
        // An image with no layers still needs one lower directory.
        let empty = dirs.layer.join("empty");
        fs::create_dir_all(&empty).map_err(io_err("creating", &empty))?;
        lowers.push(empty);
    }
    let options = overlay_options(&lowers, &upper, &work)?;
    let data = std::ffi::CString::new(options).map_err(|_| SnapshotError::UnsafePath(dirs.layer.clone()))?;
    rustix::mount::mount("overlay", &rootfs, "overlay", rustix::mount::MountFlags::empty(), data.as_c_str())
        .map_err(|e| SnapshotError::Mount { target: rootfs.clone(), source: io::Error::from(e) })?;
    Ok(rootfs)
}

/// Unmounts a container's root filesystem and removes its upper and work directories.
/// Already unmounted or removed is fine.
pub fn remove_rootfs(container_dir: &Path) -> Result<(), SnapshotError> {
    remove_rootfs_at(&RootfsDirs::in_bundle(container_dir))
}

/// [`remove_rootfs`] of what [`mount_rootfs_at`] made; a separate layer directory
/// goes too.
pub fn remove_rootfs_at(dirs: &RootfsDirs) -> Result<(), SnapshotError> {
    let rootfs = &dirs.rootfs;
    // A lazy unmount as a last resort: a process that still has a file open in the
    // rootfs must not keep the container from being removed.
    while is_mount_point(rootfs) {
        if let Err(e) = rustix::mount::unmount(rootfs, rustix::mount::UnmountFlags::empty()) {
            if e == rustix::io::Errno::BUSY {
                rustix::mount::unmount(rootfs, rustix::mount::UnmountFlags::DETACH).map_err(|e| SnapshotError::Io {
                    op: "unmounting",
                    path: rootfs.clone(),
                    source: io::Error::from(e),
                })?;
            } else if e != rustix::io::Errno::INVAL {
                return Err(SnapshotError::Io { op: "unmounting", path: rootfs.clone(), source: io::Error::from(e) });
            } else {
                break;
            }
        }
    }
    let layer = ["upper", "work", "empty"].map(|d| dirs.layer.join(d));
    for p in std::iter::once(rootfs.clone()).chain(layer) {
        match fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SnapshotError::Io { op: "removing", path: p, source: e }),
        }
    }
    if dirs.rootfs.parent() != Some(dirs.layer.as_path()) {
        // Its own directory, now empty (or already gone).
        let _ = fs::remove_dir(&dirs.layer);
    }
    Ok(())
}

/// Whether `path` (symlinks followed) is a mount point.
///
/// One `statx` (the kernel's mount-root attribute, Linux 5.8+) instead of reading
/// the whole mountinfo: the agent asks for every volume and root filesystem it sets
/// up or tears down, and a node with many pods has a long mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
    match rustix::fs::statx(CWD, path, AtFlags::NO_AUTOMOUNT, StatxFlags::empty()) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Ok(_) | Err(rustix::io::Errno::NOSYS) => listed_in_mountinfo(path),
        Err(_) => false,
    }
}

/// The older kernels' way: whether mountinfo lists `path` as a mount point.
fn listed_in_mountinfo(path: &Path) -> bool {
    let Ok(canonical) = fs::canonicalize(path) else { return false };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let target = canonical.to_string_lossy();
    info.lines().any(|line| line.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(&*target))
}

/// Mountinfo escapes space, tab, newline and backslash as octal (`\040`); anything
/// else that looks like an escape but is not one stays as it is.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether this kernel has overlayfs.
pub fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems").map(|s| s.lines().any(|l| l.ends_with("\toverlay"))).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_put_the_top_layer_first() {
        let lowers = vec![PathBuf::from("/s/a/fs"), PathBuf::from("/s/b/fs")];
        let o = overlay_options(&lowers, Path::new("/c/upper"), Path::new("/c/work")).unwrap();
        assert_eq!(o, "lowerdir=/s/b/fs:/s/a/fs,upperdir=/c/upper,workdir=/c/work");
        assert!(matches!(
            overlay_options(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w")),
            Err(SnapshotError::UnsafePath(_))
        ));
        let many: Vec<PathBuf> =
            (0..100).map(|i| PathBuf::from(format!("/var/lib/rudder/snapshots/{i:064}/fs"))).collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(SnapshotError::TooManyLayers { layers: 100, .. })
        ));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/trailing\\04"), "/trailing\\04");
        assert_eq!(unescape_mountinfo("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape_mountinfo("\\9xx"), "\\9xx");
        // Not a byte: left alone rather than overflowing.
        assert_eq!(unescape_mountinfo("\\777"), "\\777");
    }

    #[test]
    fn overlay_is_available_here() {
        // The runtime needs it; the privileged tests mount with it.
        assert!(overlay_supported());
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }

    #[test]
    fn statx_and_mountinfo_agree() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mounted = rustix::mount::mount("tmpfs", &sub, "tmpfs", rustix::mount::MountFlags::empty(), c"size=64k");
        let inner = sub.join("inner");
        if mounted.is_ok() {
            fs::create_dir(&inner).unwrap();
        }
        let paths = [Path::new("/proc"), Path::new("/"), dir.path(), &sub, &inner, &dir.path().join("missing")];
        for p in paths {
            assert_eq!(is_mount_point(p), listed_in_mountinfo(p), "{}", p.display());
        }
        // Only as root can the test mount; then the mount point must be seen as one.
        if mounted.is_ok() {
            assert!(is_mount_point(&sub));
            assert!(!is_mount_point(&inner));
            rustix::mount::unmount(&sub, rustix::mount::UnmountFlags::empty()).unwrap();
        }
        assert!(!is_mount_point(&sub));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }
}
