//! Pod volumes: what each one holds ([`projection`], pure: configMap, secret,
//! downwardAPI, projected, with items, keys and modes), how it is set up on the node
//! ([`set_up`]: a directory per volume, tmpfs for `emptyDir.medium: Memory`,
//! `hostPath` type checks), and the mounts a container gets ([`container_mounts`],
//! with `subPath`, `subPathExpr` and `readOnly`).
//!
//! Projected files are written as the kubelet's atomic writer does: the files in a
//! timestamped directory, `..data` pointing at it, and each top-level name a symlink
//! through `..data`, so an update swaps one symlink and readers never see half of it.
//! Secret volumes, and projected volumes with a secret or a service-account token,
//! live on a tmpfs of their own (the kubelet's memory-backed emptyDir wrapper), so
//! credentials never reach the node's disk; [`tear_down`] unmounts it. Tokens come
//! from [`crate::token`] through [`Sources::tokens`].
//!
//! `securityContext.fsGroup` is applied as the kubelet's `SetVolumeOwnership` does:
//! configMap, secret, downwardAPI and projected files (read-only volumes) get the
//! group and `mode | 0440`, their directories the group, setgid and `0550`; an emptyDir
//! gets the group and `02777`. A projected token is `0600` before that (so `0640`),
//! as upstream writes it when fsGroup is set. `fsGroupChangePolicy` is ignored: these
//! volumes are written fresh by the agent, so there is no existing tree whose walk
//! `OnRootMismatch` would save.

use crate::env::{PodFacts, Sources, field_value, resource_value};
use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, ServiceAccountTokenProjection, Volume};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    SecretKey(String),
    #[error("{0}")]
    Downward(#[from] crate::env::EnvError),
    #[error("invalid path {0:?}: must be relative and may not contain '..'")]
    BadPath(String),
    #[error("hostPath type check failed: {path} is not a {what}")]
    HostPathType { path: String, what: &'static str },
    #[error("volume {0:?} has a type this agent does not support")]
    Unsupported(String),
    #[error("volume {0:?} not found in the pod")]
    NoSuchVolume(String),
    #[error("failed to fetch token for {0:?}: the API server did not issue one")]
    Token(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io { op, path: path.to_path_buf(), source }
}

/// One file of a projected volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectedFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

const DEFAULT_MODE: u32 = 0o644;
/// What fsGroup adds to files of read-only volumes (upstream's `roMask`).
const FS_GROUP_FILE_MASK: u32 = 0o440;
/// And to their directories: setgid, group read and search.
const FS_GROUP_DIR_MASK: u32 = 0o2550;
/// The mode of an emptyDir with fsGroup: world-writable, setgid.
const FS_GROUP_EMPTY_DIR_MODE: u32 = 0o2777;

/// The pod's `securityContext.fsGroup`.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec.as_ref()?.security_context.as_ref()?.fs_group.and_then(|g| u32::try_from(g).ok())
}

/// The projected service-account token sources of a pod's volumes.
pub fn token_sources(pod: &Pod) -> Vec<&ServiceAccountTokenProjection> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .collect()
}

/// How a token source finds its token in [`Sources::tokens`]: sources that ask for
/// the same audience and lifetime share one.
pub fn token_key(source: &ServiceAccountTokenProjection) -> String {
    let exp = source.expiration_seconds.unwrap_or(crate::token::DEFAULT_EXPIRATION_SECONDS);
    format!("{}|{exp}", source.audience.as_deref().unwrap_or_default())
}

/// Whether a volume holds credentials and so lives on tmpfs.
fn memory_backed(volume: &Volume) -> bool {
    volume.secret.is_some()
        || volume.projected.as_ref().is_some_and(|p| {
            p.sources.iter().flatten().any(|s| s.secret.is_some() || s.service_account_token.is_some())
        })
}

/// A relative path without `..` (what the API server validates, checked again).
fn check_path(p: &str) -> Result<(), VolumeError> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(VolumeError::BadPath(p.to_string()));
    }
    Ok(())
}

fn keyed(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    missing: impl Fn(&str) -> VolumeError,
    optional: bool,
    out: &mut Vec<ProjectedFile>,
) -> Result<(), VolumeError> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.push(ProjectedFile { path: k.clone(), data: v.clone(), mode: default_mode });
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push(ProjectedFile {
                        path: item.path.clone(),
                        data: v.clone(),
                        mode: item.mode.map(|m| m as u32).unwrap_or(default_mode),
                    }),
                    None if optional => {}
                    None => return Err(missing(&item.key)),
                }
            }
        }
    }
    Ok(())
}

/// The files of a configMap, secret, downwardAPI or projected volume; `None` for
/// other kinds.
pub fn projection(
    pod: &Pod,
    volume: &Volume,
    sources: &Sources,
    facts: &PodFacts,
) -> Result<Option<Vec<ProjectedFile>>, VolumeError> {
    let mut out = Vec::new();
    if let Some(cm) = &volume.config_map {
        let mode = cm.default_mode.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
        let optional = cm.optional == Some(true);
        match sources.config_maps.get(&cm.name) {
            Some(data) => {
                keyed(data, cm.items.as_ref(), mode, |k| VolumeError::ConfigMapKey(k.into()), optional, &mut out)?
            }
            None if optional => {}
            None => return Err(VolumeError::ConfigMapNotFound(cm.name.clone())),
        }
    } else if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let mode = s.default_mode.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
        let optional = s.optional == Some(true);
        match sources.secrets.get(&name) {
            Some(data) => {
                keyed(data, s.items.as_ref(), mode, |k| VolumeError::SecretKey(k.into()), optional, &mut out)?
            }
            None if optional => {}
            None => return Err(VolumeError::SecretNotFound(name)),
        }
    } else if let Some(d) = &volume.downward_api {
        let mode = d.default_mode.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
        downward(pod, d.items.as_deref().unwrap_or(&[]), mode, facts, &mut out)?;
    } else if let Some(p) = &volume.projected {
        let mode = p.default_mode.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional == Some(true);
                match sources.config_maps.get(&cm.name) {
                    Some(data) => keyed(
                        data,
                        cm.items.as_ref(),
                        mode,
                        |k| VolumeError::ConfigMapKey(k.into()),
                        optional,
                        &mut out,
                    )?,
                    None if optional => {}
                    None => return Err(VolumeError::ConfigMapNotFound(cm.name.clone())),
                }
            }
            if let Some(s) = &source.secret {
                let optional = s.optional == Some(true);
                match sources.secrets.get(&s.name) {
                    Some(data) => {
                        keyed(data, s.items.as_ref(), mode, |k| VolumeError::SecretKey(k.into()), optional, &mut out)?
                    }
                    None if optional => {}
                    None => return Err(VolumeError::SecretNotFound(s.name.clone())),
                }
            }
            if let Some(d) = &source.downward_api {
                downward(pod, d.items.as_deref().unwrap_or(&[]), mode, facts, &mut out)?;
            }
            if let Some(t) = &source.service_account_token {
                let token = sources.tokens.get(&token_key(t)).ok_or_else(|| VolumeError::Token(t.path.clone()))?;
                // Upstream writes the token owner-only when fsGroup is set (0640 after it).
                let mode = if fs_group(pod).is_some() { 0o600 } else { mode };
                out.push(ProjectedFile { path: t.path.clone(), data: token.clone().into_bytes(), mode });
            }
        }
    } else {
        return Ok(None);
    }
    let group_readable = fs_group(pod).is_some();
    for f in &mut out {
        check_path(&f.path)?;
        if group_readable {
            f.mode |= FS_GROUP_FILE_MASK;
        }
    }
    Ok(Some(out))
}

fn downward(
    pod: &Pod,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    default_mode: u32,
    facts: &PodFacts,
    out: &mut Vec<ProjectedFile>,
) -> Result<(), VolumeError> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, facts, &f.field_path, true)?
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(pod, None, r, facts)?
        } else {
            String::new()
        };
        out.push(ProjectedFile {
            path: item.path.clone(),
            data: value.into_bytes(),
            mode: item.mode.map(|m| m as u32).unwrap_or(default_mode),
        });
    }
    Ok(())
}

// ---- On disk ----

/// Reads what `..data` holds now, as files.
fn current_files(dir: &Path) -> Option<Vec<ProjectedFile>> {
    let data = dir.join("..data");
    let target = std::fs::canonicalize(&data).ok()?;
    let mut out = Vec::new();
    fn walk(base: &Path, rel: &Path, out: &mut Vec<ProjectedFile>) -> io::Result<()> {
        for e in std::fs::read_dir(base.join(rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let meta = e.metadata()?;
            if meta.is_dir() {
                walk(base, &r, out)?;
            } else {
                out.push(ProjectedFile {
                    path: r.to_string_lossy().into_owned(),
                    data: std::fs::read(base.join(&r))?,
                    mode: meta.permissions().mode() & 0o7777,
                });
            }
        }
        Ok(())
    }
    walk(&target, Path::new(""), &mut out).ok()?;
    Some(out)
}

/// Gives `path` the group `gid` (the owner stays), without following a symlink.
fn chgrp(path: &Path, gid: u32) -> Result<(), VolumeError> {
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io_err("changing the group of", path))
}

/// Writes the files atomically into `dir` (see the module docs), owned by group
/// `gid` when given (fsGroup; the modes already carry its mask); returns whether
/// anything changed.
pub fn write_atomic(dir: &Path, files: &[ProjectedFile], gid: Option<u32>) -> Result<bool, VolumeError> {
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let mut wanted: Vec<ProjectedFile> = files.to_vec();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(mut have) = current_files(dir) {
        have.sort_by(|a, b| a.path.cmp(&b.path));
        if have == wanted {
            return Ok(false);
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let new_dir = dir.join(&stamp);
    std::fs::create_dir_all(&new_dir).map_err(io_err("creating", &new_dir))?;
    for f in &wanted {
        let path = new_dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        std::fs::write(&path, &f.data).map_err(io_err("writing", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).map_err(io_err("chmod", &path))?;
        if let Some(gid) = gid {
            chgrp(&path, gid)?;
        }
    }
    if let Some(gid) = gid {
        // The new data directory and those below it, before readers can see them.
        let mut dirs = vec![new_dir.clone()];
        while let Some(d) = dirs.pop() {
            chgrp(&d, gid)?;
            let mode = std::fs::metadata(&d).map_err(io_err("reading", &d))?.permissions().mode() & 0o7777;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | FS_GROUP_DIR_MASK))
                .map_err(io_err("chmod", &d))?;
            for e in std::fs::read_dir(&d).map_err(io_err("reading", &d))?.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(io_err("linking", &tmp))?;
    if let Some(gid) = gid {
        chgrp(&tmp, gid)?;
    }
    std::fs::rename(&tmp, dir.join("..data")).map_err(io_err("renaming", &tmp))?;
    // The user-visible names: one symlink per top-level entry.
    let mut tops: Vec<String> = wanted
        .iter()
        .filter_map(|f| Path::new(&f.path).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    tops.sort();
    tops.dedup();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link).map_err(io_err("linking", &link))?;
            if let Some(gid) = gid {
                chgrp(&link, gid)?;
            }
        }
    }
    if let Some(gid) = gid {
        chgrp(dir, gid)?;
        let mode = std::fs::metadata(dir).map_err(io_err("reading", dir))?.permissions().mode() & 0o7777;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | FS_GROUP_DIR_MASK))
            .map_err(io_err("chmod", dir))?;
    }
    for e in std::fs::read_dir(dir).map_err(io_err("reading", dir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Where a volume's data lives on the node: its directory, or the host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSource {
    pub host_path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are mounted read-only.
    pub read_only: bool,
}

fn check_host_path(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path);
    let fail = |what| Err(VolumeError::HostPathType { path: p.clone(), what });
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail("directory"),
            Err(_) => {
                std::fs::create_dir_all(path).map_err(io_err("creating", path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", path))
            }
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("directory"),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => fail("file"),
            Err(_) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(drop)
                .map_err(io_err("creating", path)),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("block device"),
        },
        _ => Ok(()),
    }
}

/// Mounts a tmpfs at `dir` unless one is there already.
fn mount_tmpfs(dir: &Path, options: &str) -> Result<(), VolumeError> {
    if runtime::snapshot::is_mount_point(dir) {
        return Ok(());
    }
    let data = std::ffi::CString::new(options).map_err(|_| VolumeError::BadPath(dir.display().to_string()))?;
    rustix::mount::mount("tmpfs", dir, "tmpfs", rustix::mount::MountFlags::empty(), data.as_c_str()).map_err(|e| {
        VolumeError::Io {
            op: "mounting tmpfs at",
            path: dir.to_path_buf(),
            source: io::Error::from_raw_os_error(e.raw_os_error()),
        }
    })
}

/// Where a pod's volumes go, one directory each.
#[derive(Debug, Clone)]
pub struct VolumeDirs {
    /// On disk: emptyDir, ConfigMaps, the downward API.
    pub disk: PathBuf,
    /// A directory on a tmpfs already (the agent's run dir), where volumes holding
    /// credentials go without a tmpfs of their own; `None`: each gets its own.
    pub memory: Option<PathBuf>,
}

/// Sets a volume up in `dirs` and returns where its data is. Idempotent: run on every
/// sync, it refreshes projected contents.
pub fn set_up(
    pod: &Pod,
    volume: &Volume,
    dirs: &VolumeDirs,
    sources: &Sources,
    facts: &PodFacts,
) -> Result<VolumeSource, VolumeError> {
    let in_memory = memory_backed(volume).then_some(dirs.memory.as_ref()).flatten();
    let dir = in_memory.unwrap_or(&dirs.disk).join(&volume.name);
    if let Some(h) = &volume.host_path {
        let path = PathBuf::from(&h.path);
        check_host_path(&path, h.type_.as_deref().unwrap_or(""))?;
        return Ok(VolumeSource { host_path: path, read_only: false });
    }
    if let Some(e) = &volume.empty_dir {
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        if e.medium.as_deref() == Some("Memory") {
            let mut options = String::from("mode=0777");
            if let Some(bytes) = e.size_limit.as_ref().and_then(|q| crate::node::bytes_of(&q.0)).filter(|b| *b > 0) {
                options.push_str(&format!(",size={bytes}"));
            }
            mount_tmpfs(&dir, &options)?;
        } else {
            // World-writable, as the kubelet makes emptyDir volumes.
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        }
        if let Some(gid) = fs_group(pod) {
            chgrp(&dir, gid)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(FS_GROUP_EMPTY_DIR_MODE))
                .map_err(io_err("chmod", &dir))?;
        }
        return Ok(VolumeSource { host_path: dir, read_only: false });
    }
    match projection(pod, volume, sources, facts)? {
        Some(files) => {
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            if in_memory.is_some() {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
                    .map_err(io_err("chmod", &dir))?;
            } else if memory_backed(volume) {
                // As the kubelet's wrapped memory emptyDir: sticky and world-writable
                // at the root (the container sees it read-only).
                mount_tmpfs(&dir, "mode=1777")?;
            }
            write_atomic(&dir, &files, fs_group(pod))?;
            Ok(VolumeSource { host_path: dir, read_only: true })
        }
        None => Err(VolumeError::Unsupported(volume.name.clone())),
    }
}

/// Unmounts tmpfs volumes and removes the pod's volume directories, both places.
pub fn tear_down(dirs: &VolumeDirs) -> Result<(), VolumeError> {
    tear_down_dir(&dirs.disk)?;
    dirs.memory.as_deref().map_or(Ok(()), tear_down_dir)
}

/// [`tear_down`] of one directory of volumes.
pub fn tear_down_dir(volumes_dir: &Path) -> Result<(), VolumeError> {
    let Ok(entries) = std::fs::read_dir(volumes_dir) else { return Ok(()) };
    for e in entries.flatten() {
        let p = e.path();
        while runtime::snapshot::is_mount_point(&p) {
            if rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH).is_err() {
                break;
            }
        }
    }
    match std::fs::remove_dir_all(volumes_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::Io { op: "removing", path: volumes_dir.to_path_buf(), source: e }),
    }
}

/// Removes one of a pod's directories ([`crate::Config::pod_dirs`]), unmounting the
/// volumes in it first.
pub fn remove_pod_dir(dir: &Path) {
    let _ = tear_down_dir(&dir.join("volumes"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A bind mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// The container's `volumeMounts` as bind mounts from the volumes' sources;
/// `subPathExpr` is expanded with the container's environment.
pub fn container_mounts(
    container: &Container,
    volumes: &BTreeMap<String, VolumeSource>,
    env: &[(String, String)],
) -> Result<Vec<BindMount>, VolumeError> {
    let vars: std::collections::HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let v = volumes.get(&m.name).ok_or_else(|| VolumeError::NoSuchVolume(m.name.clone()))?;
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(e)) if !e.is_empty() => Some(crate::env::expand(e, &vars)),
            _ => None,
        };
        let source = match sub {
            Some(s) => {
                check_path(&s)?;
                let p = v.host_path.join(&s);
                if std::fs::symlink_metadata(&p).is_err() {
                    // The kubelet creates a missing subPath as a directory.
                    std::fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
                }
                p
            }
            None => v.host_path.clone(),
        };
        out.push(BindMount {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only == Some(true) || v.read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}]}
        }))
        .unwrap()
    }

    fn volume(v: serde_json::Value) -> Volume {
        serde_json::from_value(v).unwrap()
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert("cfg".into(), [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into());
        s.secrets.insert("sec".into(), [("pw".to_string(), b"hunter2".to_vec())].into());
        s.tokens.insert("|3607".into(), "jwt".into());
        s
    }

    fn paths(files: &[ProjectedFile]) -> Vec<(&str, &[u8], u32)> {
        files.iter().map(|f| (f.path.as_str(), f.data.as_slice(), f.mode)).collect()
    }

    #[test]
    fn config_maps_and_secrets_with_items_and_modes() {
        let f = PodFacts::default();
        let all = projection(&pod(), &volume(json!({"name": "v", "configMap": {"name": "cfg"}})), &sources(), &f)
            .unwrap()
            .unwrap();
        assert_eq!(paths(&all), [("a", &b"1"[..], 0o644), ("b", &b"2"[..], 0o644)]);
        let items = volume(json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600,
            "items": [{"key": "b", "path": "dir/bee"}, {"key": "a", "path": "x", "mode": 0o400}]}}));
        let some = projection(&pod(), &items, &sources(), &f).unwrap().unwrap();
        assert_eq!(paths(&some), [("dir/bee", &b"2"[..], 0o600), ("x", &b"1"[..], 0o400)]);
        let missing_key =
            volume(json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}));
        assert_eq!(
            projection(&pod(), &missing_key, &sources(), &f).unwrap_err().to_string(),
            "configmap references non-existent config key: zz"
        );
        let gone = volume(json!({"name": "v", "configMap": {"name": "nope"}}));
        assert_eq!(projection(&pod(), &gone, &sources(), &f).unwrap_err().to_string(), "configmap \"nope\" not found");
        let optional = volume(json!({"name": "v", "secret": {"secretName": "nope", "optional": true}}));
        assert_eq!(projection(&pod(), &optional, &sources(), &f).unwrap(), Some(vec![]));
        let secret = volume(json!({"name": "v", "secret": {"secretName": "sec"}}));
        assert_eq!(
            paths(&projection(&pod(), &secret, &sources(), &f).unwrap().unwrap()),
            [("pw", &b"hunter2"[..], 0o644)]
        );
        let evil = volume(json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "../x"}]}}));
        assert!(matches!(projection(&pod(), &evil, &sources(), &f), Err(VolumeError::BadPath(_))));
        assert_eq!(projection(&pod(), &volume(json!({"name": "v", "emptyDir": {}})), &sources(), &f).unwrap(), None);
    }

    #[test]
    fn downward_api_and_projected() {
        let facts = PodFacts { node_memory: Some("1Gi".into()), ..PodFacts::default() };
        let d = volume(json!({"name": "v", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
        ]}}));
        let files = projection(&pod(), &d, &sources(), &facts).unwrap().unwrap();
        assert_eq!(
            paths(&files),
            [("labels", &b"app=\"web\""[..], 0o644), ("name", &b"web"[..], 0o644), ("mem", &b"32"[..], 0o644)]
        );
        let p = volume(json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}},
            {"secret": {"name": "sec"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "token"}}
        ]}}));
        let files = projection(&pod(), &p, &sources(), &facts).unwrap().unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["a", "pw", "ns", "token"]);
        assert!(files.iter().all(|f| f.mode == 0o440));
        assert_eq!(files[3].data, b"jwt");
        // A token that could not be had fails the mount, as upstream's does.
        let vault = volume(json!({"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}));
        assert_eq!(
            projection(&pod(), &vault, &sources(), &facts).unwrap_err().to_string(),
            "failed to fetch token for \"token\": the API server did not issue one"
        );
    }

    #[test]
    fn token_sources_and_keys() {
        let mut p = pod();
        p.spec.as_mut().unwrap().volumes = Some(vec![
            volume(json!({"name": "a", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "cfg"}}]}})),
            volume(json!({"name": "b", "projected": {"sources": [
                {"serviceAccountToken": {"path": "t", "audience": "vault", "expirationSeconds": 600}}]}})),
            volume(json!({"name": "c", "secret": {"secretName": "sec"}})),
        ]);
        let keys: Vec<String> = token_sources(&p).into_iter().map(token_key).collect();
        assert_eq!(keys, ["|3607", "vault|600"]);
        let vs = p.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        assert!(memory_backed(&vs[0]) && memory_backed(&vs[1]) && memory_backed(&vs[2]));
        assert!(!memory_backed(&volume(json!({"name": "d", "configMap": {"name": "cfg"}}))));
    }

    fn with_fs_group(gid: u32) -> Pod {
        let mut p = pod();
        p.spec.as_mut().unwrap().security_context = Some(serde_json::from_value(json!({"fsGroup": gid})).unwrap());
        p
    }

    #[test]
    fn fs_group_makes_files_group_readable() {
        let f = PodFacts::default();
        let p = with_fs_group(1234);
        let secret = volume(json!({"name": "v", "secret": {"secretName": "sec", "defaultMode": 0o400}}));
        assert_eq!(paths(&projection(&p, &secret, &sources(), &f).unwrap().unwrap()), [("pw", &b"hunter2"[..], 0o440)]);
        let token = volume(json!({"name": "v", "projected": {"defaultMode": 0o644, "sources": [
            {"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}}]}}));
        let files = projection(&p, &token, &sources(), &f).unwrap().unwrap();
        assert_eq!(paths(&files), [("token", &b"jwt"[..], 0o640), ("a", &b"1"[..], 0o644)]);
    }

    #[test]
    fn fs_group_owns_what_is_written() {
        use std::os::unix::fs::MetadataExt;
        // Our own group: changing to it needs no privilege.
        let gid = rustix::process::getegid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("sec");
        let files = vec![
            ProjectedFile { path: "pw".into(), data: b"x".to_vec(), mode: 0o440 },
            ProjectedFile { path: "sub/k".into(), data: b"y".to_vec(), mode: 0o640 },
        ];
        write_atomic(&v, &files, Some(gid)).unwrap();
        for f in ["pw", "sub/k", "..data", ""] {
            let m = std::fs::metadata(v.join(f)).unwrap();
            assert_eq!(m.gid(), gid, "{f}");
        }
        assert_eq!(std::fs::metadata(v.join("pw")).unwrap().mode() & 0o7777, 0o440);
        let sub = std::fs::metadata(v.join("sub")).unwrap().mode() & 0o7777;
        assert_eq!(sub & FS_GROUP_DIR_MASK, FS_GROUP_DIR_MASK, "{sub:o}");
    }

    #[test]
    fn credentials_live_on_tmpfs_until_torn_down() {
        let dir = tempfile::tempdir().unwrap();
        let volumes_dir = VolumeDirs { disk: dir.path().join("volumes"), memory: None };
        let secret = volume(json!({"name": "sec", "secret": {"secretName": "sec"}}));
        let cfg = volume(json!({"name": "cfg", "configMap": {"name": "cfg"}}));
        let f = PodFacts::default();
        let on_disk = set_up(&pod(), &cfg, &volumes_dir, &sources(), &f).unwrap();
        assert!(!runtime::snapshot::is_mount_point(&on_disk.host_path));
        if !rustix::process::geteuid().is_root() {
            // Mounting needs root (the agent always has it); the rest is covered above.
            assert!(set_up(&pod(), &secret, &volumes_dir, &sources(), &f).is_err());
            return;
        }
        let src = set_up(&pod(), &secret, &volumes_dir, &sources(), &f).unwrap();
        assert!(runtime::snapshot::is_mount_point(&src.host_path), "secrets are on tmpfs");
        assert_eq!(std::fs::read(src.host_path.join("pw")).unwrap(), b"hunter2");
        // Again: the same mount, nothing stacked on it.
        set_up(&pod(), &secret, &volumes_dir, &sources(), &f).unwrap();
        tear_down(&volumes_dir).unwrap();
        assert!(!src.host_path.exists(), "unmounted and removed");

        // With a directory on a tmpfs already (the agent's run dir): there, without a
        // mount of its own; ConfigMaps stay on disk.
        let memory = dir.path().join("run");
        std::fs::create_dir_all(&memory).unwrap();
        rustix::mount::mount("tmpfs", &memory, "tmpfs", rustix::mount::MountFlags::empty(), c"mode=0700").unwrap();
        let dirs = VolumeDirs { disk: dir.path().join("volumes"), memory: Some(memory.join("volumes")) };
        let src = set_up(&pod(), &secret, &dirs, &sources(), &f).unwrap();
        let on_disk = set_up(&pod(), &cfg, &dirs, &sources(), &f).unwrap();
        assert!(src.host_path.starts_with(&memory) && !runtime::snapshot::is_mount_point(&src.host_path));
        assert!(on_disk.host_path.starts_with(dir.path().join("volumes")));
        assert_eq!(std::fs::read(src.host_path.join("pw")).unwrap(), b"hunter2");
        tear_down(&dirs).unwrap();
        assert!(!src.host_path.exists() && !on_disk.host_path.exists(), "both places cleared");
        rustix::mount::unmount(&memory, rustix::mount::UnmountFlags::empty()).unwrap();
    }

    #[test]
    fn atomic_writes_swap_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("cfg");
        let files = vec![
            ProjectedFile { path: "a".into(), data: b"1".to_vec(), mode: 0o644 },
            ProjectedFile { path: "sub/b".into(), data: b"2".to_vec(), mode: 0o600 },
        ];
        assert!(write_atomic(&v, &files, None).unwrap());
        assert_eq!(std::fs::read(v.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(v.join("sub/b")).unwrap(), b"2");
        assert!(std::fs::symlink_metadata(v.join("a")).unwrap().file_type().is_symlink());
        assert!(!write_atomic(&v, &files, None).unwrap(), "the same content is not rewritten");
        let first = std::fs::read_link(v.join("..data")).unwrap();
        let updated = vec![ProjectedFile { path: "a".into(), data: b"3".to_vec(), mode: 0o644 }];
        assert!(write_atomic(&v, &updated, None).unwrap());
        assert_eq!(std::fs::read(v.join("a")).unwrap(), b"3");
        assert!(std::fs::symlink_metadata(v.join("sub")).is_err(), "names that went away are removed");
        assert!(!v.join(first).exists(), "the old data directory is removed");
    }

    #[test]
    fn host_paths_are_type_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made");
        check_host_path(&d, "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        check_host_path(&d, "Directory").unwrap();
        let err = check_host_path(&d, "File").unwrap_err();
        assert_eq!(err.to_string(), format!("hostPath type check failed: {} is not a file", d.display()));
        let f = dir.path().join("f");
        check_host_path(&f, "FileOrCreate").unwrap();
        check_host_path(&f, "File").unwrap();
        assert!(check_host_path(&dir.path().join("none"), "Directory").is_err());
        assert!(check_host_path(&f, "Socket").is_err());
        check_host_path(&dir.path().join("whatever"), "").unwrap();
    }

    #[test]
    fn mounts_with_sub_paths_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD)"},
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "data", "mountPath": "/ro", "readOnly": true}
        ]}))
        .unwrap();
        let volumes: BTreeMap<String, VolumeSource> = [
            ("data".to_string(), VolumeSource { host_path: dir.path().join("data"), read_only: false }),
            ("cfg".to_string(), VolumeSource { host_path: dir.path().join("cfg"), read_only: true }),
        ]
        .into();
        let m = container_mounts(&c, &volumes, &[("POD".into(), "web".into())]).unwrap();
        assert_eq!(m[0], BindMount { source: dir.path().join("data"), destination: "/data".into(), read_only: false });
        assert_eq!(m[1].source, dir.path().join("data/logs/web"));
        assert!(m[1].source.is_dir(), "a missing subPath is created");
        assert!(m[2].read_only && m[3].read_only);
        let bad: Container =
            serde_json::from_value(json!({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))
                .unwrap();
        assert!(matches!(container_mounts(&bad, &volumes, &[]), Err(VolumeError::NoSuchVolume(_))));
    }
}
