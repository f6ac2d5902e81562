//! Unpacking a layer tar into a directory that overlayfs can stack: OCI whiteouts
//! (`.wh.NAME` hides NAME below, `.wh..wh..opq` hides everything below in its
//! directory) become overlayfs whiteouts (a 0/0 character device, and the
//! `trusted.overlay.opaque` xattr). Modes, owners, times, xattrs, symlinks, hard links
//! and device nodes are kept. Paths never leave the target directory: `..` is clamped
//! and symlinks in parent paths are resolved inside it.

use crate::digest::{Digest, DigestReader};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("reading layer: {0}")]
    Read(io::Error),
    #[error("layer content has digest {actual}, the image config says {expected}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("hard link {path} points at {target}, which is not in the layer")]
    HardLinkTarget { path: String, target: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io { op, path: path.to_path_buf(), source }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Unknown from the media type (Docker archives): look at the first bytes.
    Detect,
}

impl Compression {
    /// The compression a layer media type declares, or `None` for a media type that
    /// is not a layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        use crate::oci::*;
        let base = media_type.trim_end_matches(".nondistributable");
        Some(match base {
            OCI_LAYER | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
            OCI_LAYER_GZIP
            | DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            // Some tools write layers as plain tar with this old Docker type.
            "application/vnd.docker.image.rootfs.diff.tar" | "" => Compression::Detect,
            _ => return None,
        })
    }

    fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// A decompressing reader over a layer blob. Compression is sniffed from the bytes
/// whatever the media type says, since registries and archives mislabel layers.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let head = io::BufRead::fill_buf(&mut reader).map_err(UnpackError::Read)?;
    Ok(match Compression::sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ZstdReader::new(reader)),
        _ => Box::new(reader),
    })
}

/// A zstd stream of any number of frames (zstd:chunked layers are many frames with
/// skippable frames between), decoded with the pure-Rust `ruzstd`.
pub struct ZstdReader<R: io::BufRead> {
    source: R,
    decoder: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: io::BufRead> ZstdReader<R> {
    pub fn new(source: R) -> ZstdReader<R> {
        ZstdReader { source, decoder: ruzstd::decoding::FrameDecoder::new(), in_frame: false }
    }
}

fn zstd_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: io::BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                        length, ..
                    })) => {
                        let skipped = io::copy(&mut (&mut self.source).take(length as u64), &mut io::sink())?;
                        if skipped != length as u64 {
                            return Err(zstd_err("truncated skippable frame"));
                        }
                        continue;
                    }
                    Err(e) => return Err(zstd_err(e)),
                }
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let want = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, ruzstd::decoding::BlockDecodingStrategy::UptoBytes(want))
                    .map_err(zstd_err)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

/// What unpacking a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The digest of the uncompressed tar (the layer's diff ID).
    pub diff_id: Digest,
    pub size: u64,
}

/// Unpacks a (possibly compressed) layer into `dest`, which must exist. When
/// `expected` is given, the uncompressed stream must hash to it.
pub fn unpack_layer<R: Read>(blob: R, dest: &Path, expected: Option<&Digest>) -> Result<Unpacked, UnpackError> {
    let tar_stream = DigestReader::new(decompress(blob)?);
    let mut archive = tar::Archive::new(tar_stream);
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let entries = archive.entries().map_err(UnpackError::Read)?;
    for entry in entries {
        let mut entry = entry.map_err(UnpackError::Read)?;
        if let Some(dir) = apply_entry(&mut entry, dest)? {
            dirs.push((dir, entry.header().clone()));
        }
    }
    // Directory times last: creating their children changed them.
    for (dir, header) in dirs.iter().rev() {
        set_times(dir, header);
    }
    let (diff_id, size) = archive.into_inner().finish().map_err(UnpackError::Read)?;
    if let Some(e) = expected
        && *e != diff_id
    {
        return Err(UnpackError::DiffIdMismatch { expected: e.clone(), actual: diff_id });
    }
    Ok(Unpacked { diff_id, size })
}

/// A tar entry's path made relative and clean: leading `/` and `./` dropped, `..`
/// clamped at the root (as containerd does), so that nothing can land outside.
pub fn clean_path(raw: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolves `rel` under `root`, following symlinks as if `root` were `/`: an absolute
/// link target restarts at `root`, `..` never climbs above it. Missing components are
/// taken as they are. Returns a path inside `root`.
pub fn resolve_in_root(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = clean_components(rel).into_iter().rev().collect::<Vec<_>>();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::from_raw_os_error(40)); // ELOOP
                }
                let target = fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in raw_components(&target).into_iter().rev() {
                    pending.push(c);
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn clean_components(p: &Path) -> Vec<std::ffi::OsString> {
    raw_components(p)
}

/// Components with `.`, `/` dropped and `..` kept (resolved later, after symlinks).
fn raw_components(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Applies one entry. Returns the directory path when the entry was a directory (its
/// times are set at the end).
fn apply_entry<R: Read>(entry: &mut tar::Entry<'_, R>, root: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let raw_path = entry.path().map_err(UnpackError::Read)?.into_owned();
    let rel = clean_path(&raw_path);
    let kind = entry.header().entry_type();
    let Some(base) = rel.file_name().map(OsStr::to_os_string) else {
        // The root itself (`./`): only its metadata matters.
        if kind.is_dir() {
            set_metadata(root, entry, false)?;
            return Ok(Some(root.to_path_buf()));
        }
        return Ok(None);
    };
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = resolve_in_root(root, parent_rel).map_err(io_err("resolving", &rel))?;
    mkdir_all(&parent)?;
    let base_bytes = base.as_bytes();

    if base_bytes == OPAQUE_WHITEOUT.as_bytes() {
        rustix::fs::lsetxattr(&parent, OVERLAY_OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
            .map_err(|e| UnpackError::Io { op: "marking opaque", path: parent.clone(), source: io::Error::from(e) })?;
        return Ok(None);
    }
    if let Some(hidden) = base_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) || hidden.is_empty() {
            // Other `.wh..wh.` names are AUFS bookkeeping with no meaning here.
            return Ok(None);
        }
        let target = parent.join(OsStr::from_bytes(hidden));
        remove_existing(&target)?;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &target,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| UnpackError::Io {
            op: "creating whiteout",
            path: target.clone(),
            source: io::Error::from(e),
        })?;
        return Ok(None);
    }

    let target = parent.join(&base);
    let existing = fs::symlink_metadata(&target).ok();
    if let Some(m) = &existing
        && !(m.is_dir() && kind.is_dir())
    {
        remove_existing(&target)?;
    }
    let header_mode = entry.header().mode().unwrap_or(0o644);
    match kind {
        k if k.is_dir() => {
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                fs::DirBuilder::new().mode(0o755).create(&target).map_err(io_err("creating", &target))?;
            }
            set_metadata(&target, entry, false)?;
            return Ok(Some(target));
        }
        k if k.is_file() || k == tar::EntryType::Continuous || k == tar::EntryType::GNUSparse => {
            let mut f =
                fs::File::options().write(true).create_new(true).open(&target).map_err(io_err("creating", &target))?;
            io::copy(entry, &mut f).map_err(io_err("writing", &target))?;
            set_metadata(&target, entry, false)?;
        }
        k if k.is_symlink() => {
            let link = entry.link_name().map_err(UnpackError::Read)?.unwrap_or_default().into_owned();
            std::os::unix::fs::symlink(&link, &target).map_err(io_err("creating symlink", &target))?;
            set_metadata(&target, entry, true)?;
        }
        k if k.is_hard_link() => {
            let link = entry.link_name().map_err(UnpackError::Read)?.unwrap_or_default().into_owned();
            let link_rel = clean_path(&link);
            let link_parent = resolve_in_root(root, link_rel.parent().unwrap_or(Path::new("")))
                .map_err(io_err("resolving", &link_rel))?;
            let source = match link_rel.file_name() {
                Some(n) => link_parent.join(n),
                None => link_parent,
            };
            if fs::symlink_metadata(&source).is_err() {
                return Err(UnpackError::HardLinkTarget {
                    path: rel.display().to_string(),
                    target: link.display().to_string(),
                });
            }
            fs::hard_link(&source, &target).map_err(io_err("linking", &target))?;
        }
        k if k.is_character_special() || k.is_block_special() || k.is_fifo() => {
            let file_type = if k.is_character_special() {
                rustix::fs::FileType::CharacterDevice
            } else if k.is_block_special() {
                rustix::fs::FileType::BlockDevice
            } else {
                rustix::fs::FileType::Fifo
            };
            let major = entry.header().device_major().ok().flatten().unwrap_or(0);
            let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &target,
                file_type,
                rustix::fs::Mode::from_raw_mode(header_mode & 0o7777),
                rustix::fs::makedev(major, minor),
            )
            .map_err(|e| UnpackError::Io {
                op: "creating device",
                path: target.clone(),
                source: io::Error::from(e),
            })?;
            set_metadata(&target, entry, false)?;
        }
        // Global PAX headers and unknown types carry nothing to create.
        _ => {}
    }
    Ok(None)
}

fn mkdir_all(dir: &Path) -> Result<(), UnpackError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io_err("creating", dir))
}

fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
        Err(_) => Ok(()),
    }
}

/// Owner, mode, extended attributes and times from the header. Ownership comes first:
/// `chown` clears set-user-ID bits that `chmod` then restores.
fn set_metadata<R: Read>(path: &Path, entry: &mut tar::Entry<'_, R>, symlink: bool) -> Result<(), UnpackError> {
    let header = entry.header();
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let nofollow = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        nofollow,
    )
    .map_err(|e| UnpackError::Io { op: "chown", path: path.to_path_buf(), source: io::Error::from(e) })?;
    if !symlink {
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))?;
    }
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                // Best effort, as containerd: a filesystem without `security.*` support
                // should not fail the whole image.
                if let Err(e) = rustix::fs::lsetxattr(path, name, ext.value_bytes(), rustix::fs::XattrFlags::empty()) {
                    tracing::debug!(path = %path.display(), xattr = name, error = %e, "setting xattr");
                }
            }
        }
    }
    if !entry.header().entry_type().is_dir() {
        set_times(path, entry.header());
    }
    Ok(())
}

fn set_times(path: &Path, header: &tar::Header) {
    let mtime = header.mtime().unwrap_or(0) as i64;
    let ts = rustix::fs::Timespec { tv_sec: mtime, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: ts, last_modification: ts };
    // Times are cosmetic; a failure is not worth failing the image for.
    let _ = rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    /// A layer exercising every kind of entry, whiteouts and escape attempts.
    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, mut h: tar::Header, data: &[u8]) {
            // Raw name bytes: the builder refuses `..`, which a hostile layer may have.
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        add(&mut b, "./", header(tar::EntryType::Directory, 0o755, 0), b"");
        add(&mut b, "bin/", header(tar::EntryType::Directory, 0o711, 0), b"");
        let mut h = header(tar::EntryType::Regular, 0o4755, 5);
        h.set_uid(1000);
        h.set_gid(1001);
        add(&mut b, "bin/hello", h, b"hello");
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name("hello").unwrap();
        add(&mut b, "bin/link", h, b"");
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        h.set_link_name("bin/hello").unwrap();
        add(&mut b, "bin/hard", h, b"");
        let mut h = header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        add(&mut b, "dev/null", h, b"");
        add(&mut b, "run/fifo", header(tar::EntryType::Fifo, 0o600, 0), b"");
        add(&mut b, "etc/.wh.passwd", header(tar::EntryType::Regular, 0o644, 0), b"");
        add(&mut b, "var/.wh..wh..opq", header(tar::EntryType::Regular, 0o644, 0), b"");
        add(&mut b, "var/kept", header(tar::EntryType::Regular, 0o644, 4), b"kept");
        add(&mut b, "../../escape", header(tar::EntryType::Regular, 0o644, 3), b"out");
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name("/").unwrap();
        add(&mut b, "evil", h, b"");
        add(&mut b, "evil/etc/inside", header(tar::EntryType::Regular, 0o644, 2), b"in");
        // A file replaced by a directory later in the same layer.
        add(&mut b, "swap", header(tar::EntryType::Regular, 0o644, 1), b"x");
        add(&mut b, "swap/", header(tar::EntryType::Directory, 0o755, 0), b"");
        b.append_pax_extensions([("SCHILY.xattr.user.note", b"hi".as_slice())]).unwrap();
        add(&mut b, "noted", header(tar::EntryType::Regular, 0o600, 0), b"");
        b.into_inner().unwrap()
    }

    fn check_tree(root: &Path) {
        let m = fs::metadata(root.join("bin/hello")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755, "setuid survives the chown");
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
        assert_eq!(m.mtime(), 1_700_000_000);
        assert_eq!(fs::metadata(root.join("bin")).unwrap().mode() & 0o777, 0o711);
        assert_eq!(fs::read_link(root.join("bin/link")).unwrap(), PathBuf::from("hello"));
        assert_eq!(fs::metadata(root.join("bin/hard")).unwrap().ino(), m.ino(), "a hard link");
        let null = fs::metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert!(fs::metadata(root.join("run/fifo")).unwrap().file_type().is_fifo());
        let wh = fs::symlink_metadata(root.join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "an overlay whiteout");
        assert!(!root.join("etc/.wh.passwd").exists());
        let mut opaque = [0u8; 4];
        let n = rustix::fs::lgetxattr(root.join("var"), OVERLAY_OPAQUE_XATTR, &mut opaque).unwrap();
        assert_eq!(&opaque[..n], b"y");
        assert!(!root.join("var/.wh..wh..opq").exists());
        assert_eq!(fs::read(root.join("var/kept")).unwrap(), b"kept");
        assert_eq!(fs::read(root.join("escape")).unwrap(), b"out", "`..` is clamped at the root");
        assert_eq!(fs::read(root.join("etc/inside")).unwrap(), b"in", "symlinks resolve inside the root");
        assert!(root.join("swap").is_dir());
        let mut note = [0u8; 8];
        let n = rustix::fs::lgetxattr(root.join("noted"), "user.note", &mut note).unwrap();
        assert_eq!(&note[..n], b"hi");
    }

    #[test]
    fn unpacks_plain_gzip_and_zstd_layers_alike() {
        let tar = layer_tar();
        let diff_id = Digest::of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
        for (name, blob) in [("plain", &tar), ("gzip", &gz), ("zstd", &zst)] {
            let dir = tempfile::tempdir().unwrap();
            let out = unpack_layer(&blob[..], dir.path(), Some(&diff_id)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.diff_id, diff_id, "{name}");
            check_tree(dir.path());
        }
    }

    #[test]
    fn a_wrong_diff_id_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = Digest::of(b"something else");
        assert!(matches!(
            unpack_layer(&layer_tar()[..], dir.path(), Some(&wrong)),
            Err(UnpackError::DiffIdMismatch { .. })
        ));
    }

    #[test]
    fn multi_frame_zstd_with_skippable_frames() {
        let tar = layer_tar();
        let (a, b) = tar.split_at(tar.len() / 2);
        let mut stream = ruzstd::encoding::compress_to_vec(a, ruzstd::encoding::CompressionLevel::Fastest);
        // A skippable frame (magic 0x184D2A50, little endian) between two data frames.
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend(ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest));
        let mut out = Vec::new();
        ZstdReader::new(&stream[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, tar);
    }

    #[test]
    fn a_hard_link_to_nothing_is_an_error() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        h.set_path("a").unwrap();
        h.set_link_name("missing").unwrap();
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tar = b.into_inner().unwrap();
        assert!(matches!(unpack_layer(&tar[..], dir.path(), None), Err(UnpackError::HardLinkTarget { .. })));
    }

    #[test]
    fn layer_media_types() {
        use crate::oci::*;
        assert_eq!(Compression::from_media_type(OCI_LAYER_GZIP), Some(Compression::Gzip));
        assert_eq!(Compression::from_media_type(DOCKER_LAYER_GZIP), Some(Compression::Gzip));
        assert_eq!(Compression::from_media_type(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(Compression::from_media_type(OCI_LAYER), Some(Compression::None));
        assert_eq!(Compression::from_media_type("application/vnd.cncf.helm.chart.content.v1.tar+gzip"), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"bin/"), Compression::None);
    }

    #[test]
    fn paths_are_clamped_inside() {
        assert_eq!(clean_path(Path::new("./bin/sh")), PathBuf::from("bin/sh"));
        assert_eq!(clean_path(Path::new("/etc/passwd")), PathBuf::from("etc/passwd"));
        assert_eq!(clean_path(Path::new("../../etc/passwd")), PathBuf::from("etc/passwd"));
        assert_eq!(clean_path(Path::new("a/../../b")), PathBuf::from("b"));
        assert_eq!(clean_path(Path::new("./")), PathBuf::new());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in_root(root, Path::new("lib/x")).unwrap(), root.join("usr/lib/x"));
        assert_eq!(resolve_in_root(root, Path::new("escape/etc")).unwrap(), root.join("etc"));
        assert_eq!(resolve_in_root(root, Path::new("up/etc")).unwrap(), root.join("etc"));
        assert!(resolve_in_root(root, Path::new("loop/x")).is_err());
        assert_eq!(resolve_in_root(root, Path::new("")).unwrap(), root.to_path_buf());
    }
}
