//! Namespaces that outlive the process that made them, and work done inside them.
//!
//! A pod's network, IPC and UTS namespaces are made by `unshare` on a fresh thread and
//! bind-mounted onto files, as `ip netns add` does, so that containers join them by
//! path (no pause process) and they survive an agent restart. Namespace membership is
//! per thread: every switch happens on a dedicated std thread that ends afterwards,
//! never on a tokio worker or blocking-pool thread, which would stay in the other
//! namespace and run unrelated tasks there.

use rustix::mount::UnmountFlags;
use rustix::thread::{LinkNameSpaceType, UnshareFlags};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// `statfs` type of a file that holds a namespace (`/proc/*/ns/*` or a bind mount of one).
const NSFS_MAGIC: i64 = 0x6e73_6673;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("cannot open namespace {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot enter namespace {path}: {source}")]
    Enter { path: PathBuf, source: io::Error },
    #[error("cannot create namespaces: {0}")]
    Unshare(io::Error),
    #[error("cannot set the hostname {hostname:?}: {source}")]
    Hostname { hostname: String, source: io::Error },
    #[error("cannot bind-mount namespace onto {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("cannot unmount namespace {path}: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("the namespace thread failed: {0}")]
    Thread(String),
}

/// The namespaces [`create`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// Where [`create`] put each namespace it made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Created {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// Runs `f` on a new thread that first joins the network namespace at `netns` (or stays
/// in the process's when `None`), and waits for it. Anything `f` spawns (a CNI plugin,
/// `ip`, `iptables`) starts in that namespace; sockets it makes stay there.
pub fn run_in<T, F>(netns: Option<&Path>, f: F) -> Result<T, NsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let netns = netns.map(Path::to_path_buf);
    let handle = std::thread::Builder::new()
        .name("rudder-netns".into())
        .spawn(move || -> Result<T, NsError> {
            if let Some(path) = &netns {
                enter_net(path)?;
            }
            Ok(f())
        })
        .map_err(|e| NsError::Thread(e.to_string()))?;
    handle.join().map_err(|_| NsError::Thread("panicked".into()))?
}

/// [`run_in`] without blocking the async runtime: the caller awaits the thread's answer.
pub async fn run_in_async<T, F>(netns: Option<&Path>, f: F) -> Result<T, NsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let netns = netns.map(Path::to_path_buf);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rudder-netns".into())
        .spawn(move || {
            let out = match &netns {
                Some(path) => enter_net(path).map(|()| f()),
                None => Ok(f()),
            };
            let _ = tx.send(out);
        })
        .map_err(|e| NsError::Thread(e.to_string()))?;
    rx.await.map_err(|_| NsError::Thread("panicked".into()))?
}

fn enter_net(path: &Path) -> Result<(), NsError> {
    let file = File::open(path).map_err(|source| NsError::Open { path: path.into(), source })?;
    rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(LinkNameSpaceType::Network))
        .map_err(|e| NsError::Enter { path: path.into(), source: e.into() })
}

/// Makes the namespaces in `kinds` and bind-mounts each onto `dir/{net,ipc,uts}`. The
/// work happens on a thread of its own that first joins `parent_net` (the node's network
/// namespace, when the node is not the process's own), so that the new network namespace
/// is made from there. Whatever was mounted is unmounted again when a later step fails.
pub fn create(dir: &Path, kinds: Kinds, hostname: &str, parent_net: Option<&Path>) -> Result<Created, NsError> {
    let dir = dir.to_path_buf();
    let hostname = hostname.to_string();
    run_in(parent_net, move || {
        let mut flags = UnshareFlags::empty();
        if kinds.net {
            flags |= UnshareFlags::NEWNET;
        }
        if kinds.ipc {
            flags |= UnshareFlags::NEWIPC;
        }
        if kinds.uts {
            flags |= UnshareFlags::NEWUTS;
        }
        unshare::namespaces(flags).map_err(NsError::Unshare)?;
        if kinds.uts {
            rustix::system::sethostname(hostname.as_bytes())
                .map_err(|e| NsError::Hostname { hostname: hostname.clone(), source: e.into() })?;
        }
        let mut created = Created::default();
        let steps = [(kinds.net, "net"), (kinds.ipc, "ipc"), (kinds.uts, "uts")];
        for (wanted, name) in steps {
            if !wanted {
                continue;
            }
            let target = dir.join(name);
            if let Err(e) = bind_thread_ns(name, &target) {
                for p in [&created.net, &created.ipc, &created.uts].into_iter().flatten() {
                    let _ = unmount(p);
                }
                return Err(e);
            }
            match name {
                "net" => created.net = Some(target),
                "ipc" => created.ipc = Some(target),
                _ => created.uts = Some(target),
            }
        }
        Ok(created)
    })?
}

/// Bind-mounts this thread's namespace `name` (not the process's: `/proc/self` names the
/// main thread, which never left the host's namespaces) onto `target`.
fn bind_thread_ns(name: &str, target: &Path) -> Result<(), NsError> {
    let mount_err = |source: io::Error| NsError::Mount { path: target.into(), source };
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(target).map_err(mount_err)?;
    let source = format!("/proc/thread-self/ns/{name}");
    rustix::mount::mount_bind(source.as_str(), target).map_err(|e| mount_err(e.into()))
}

/// Whether `path` holds a live namespace (a bind mount of one), rather than the empty
/// file left behind after a reboot or an unmount.
// f_type's width differs between architectures; the cast is a no-op only on some.
#[allow(clippy::unnecessary_cast)]
pub fn is_mounted(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == NSFS_MAGIC)
}

/// Detaches the namespace mounted at `path` and removes the file. Already unmounted or
/// missing is success, so a half-made sandbox can be removed.
pub fn unmount(path: &Path) -> Result<(), NsError> {
    // A namespace file may carry more than one mount if create ran twice on it.
    while is_mounted(path) {
        rustix::mount::unmount(path, UnmountFlags::DETACH)
            .map_err(|e| NsError::Unmount { path: path.into(), source: e.into() })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NsError::Unmount { path: path.into(), source }),
    }
}

/// The one place that needs `unsafe`: rustix marks `unshare` unsafe because unsharing
/// the file table (`CLONE_FILES`) would invalidate descriptors other threads hold.
#[allow(unsafe_code)]
mod unshare {
    use rustix::thread::UnshareFlags;

    pub(super) fn namespaces(flags: UnshareFlags) -> std::io::Result<()> {
        let allowed = UnshareFlags::NEWNET | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS;
        if !allowed.contains(flags) {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
        // SAFETY: only new network, IPC and UTS namespaces for the calling thread; no
        // file table or filesystem attributes are unshared, so no descriptor changes.
        unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_in_the_process_namespace_returns_the_value() {
        assert_eq!(run_in(None, || 7).unwrap(), 7);
    }

    #[test]
    fn run_in_a_missing_namespace_is_an_open_error() {
        let err = run_in(Some(Path::new("/nonexistent/ns")), || ()).unwrap_err();
        assert!(matches!(err, NsError::Open { .. }), "{err}");
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("net");
        std::fs::write(&f, b"").unwrap();
        assert!(!is_mounted(&f));
        // Removing a half-made namespace file (never mounted) succeeds, twice.
        unmount(&f).unwrap();
        unmount(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn unshare_refuses_other_flags() {
        let err = unshare::namespaces(UnshareFlags::FILES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn async_variant_returns_the_value() {
        assert_eq!(run_in_async(None, || "ok").await.unwrap(), "ok");
    }
}
