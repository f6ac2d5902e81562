//! The cgroup attach lock, and how a container start avoids waiting for it.
//!
//! `runc run` moves the container's init into its cgroups by writing its pid to
//! `cgroup.procs`. Every such write takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, and taking that percpu rwsem for writing
//! first waits for a full RCU grace period (`rcu_sync_enter` →
//! `synchronize_rcu`), unless another writer went through it less than about one
//! grace period ago. On a quiet node that wait is most of the difference between a
//! pod's `runc run` and the same `runc run` bare: traced at ~10 ms of ~28 ms, with
//! both CPUs idle meanwhile (`perf sched` with kernel stacks, BENCHMARKS.md "Pod
//! start"). A bare `runc run` right after other cgroup work does not wait, because
//! the lock is still "hot".
//!
//! The wait is a fixed delay, not work, so it can be overlapped: as soon as the
//! agent knows a start is coming, [`AttachLock::warm`] writes the agent's own pid
//! into the cgroup it already is in (in one hierarchy) on a thread of its own. That
//! write moves nothing but goes through the same lock, so it pays the grace period
//! while the agent requests the token, sets up volumes, mounts the root filesystem
//! and spawns the shim; runc's own writes then find the lock hot. (A pid that does
//! not exist would not do: recent kernels look the task up before taking the lock.)

use crate::snapshot::unescape_mountinfo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Warms the cgroup attach lock ahead of container starts.
#[derive(Debug, Clone)]
pub struct AttachLock {
    /// How to find the `cgroup.procs` of our own cgroup (read afresh each time, so
    /// that the write never moves the process anywhere it is not).
    source: Source,
    /// A warm-up is under way; another one would only wait for the same grace period.
    in_flight: Arc<AtomicBool>,
}

#[derive(Debug, Clone)]
enum Source {
    /// `/proc/self/cgroup` and `/proc/self/mountinfo`.
    Proc,
    /// A fixed file, for tests.
    File(PathBuf),
    /// Nothing to warm (warming disabled).
    None,
}

impl AttachLock {
    /// Warms through the cgroup this process is in.
    pub fn new() -> AttachLock {
        AttachLock { source: Source::Proc, in_flight: Arc::new(AtomicBool::new(false)) }
    }

    /// Warms by writing our pid to `file` (for tests).
    pub fn at(file: PathBuf) -> AttachLock {
        AttachLock { source: Source::File(file), in_flight: Arc::new(AtomicBool::new(false)) }
    }

    /// Never warms.
    pub fn disabled() -> AttachLock {
        AttachLock { source: Source::None, in_flight: Arc::new(AtomicBool::new(false)) }
    }

    /// Starts a warm-up in the background unless one is under way; returns its
    /// thread (for tests; callers drop it). Failures are ignored: without the
    /// warm-up a start is only slower.
    pub fn warm(&self) -> Option<std::thread::JoinHandle<()>> {
        if matches!(self.source, Source::None) {
            return None;
        }
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return None;
        }
        let source = self.source.clone();
        let in_flight = self.in_flight.clone();
        let spawned = std::thread::Builder::new().name("cgroup-warm".into()).spawn(move || {
            let file = match source {
                Source::File(f) => Some(f),
                Source::Proc => {
                    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
                    own_procs_file(&cgroup, &mountinfo)
                }
                Source::None => None,
            };
            if let Some(file) = file
                && let Err(e) = std::fs::write(&file, std::process::id().to_string())
            {
                tracing::debug!(file = %file.display(), error = %e, "warming the cgroup attach lock failed");
            }
            in_flight.store(false, Ordering::Release);
        });
        match spawned {
            Ok(handle) => Some(handle),
            Err(_) => {
                self.in_flight.store(false, Ordering::Release);
                None
            }
        }
    }
}

impl Default for AttachLock {
    fn default() -> Self {
        AttachLock::new()
    }
}

/// The `cgroup.procs` of the cgroup this process is in, in the first cgroup
/// hierarchy of `mountinfo` (the text of `/proc/self/mountinfo`) that
/// `proc_self_cgroup` (the text of `/proc/self/cgroup`) places us in. `None` when
/// no mounted hierarchy has us (a cgroup outside every mount's root, say).
pub fn own_procs_file(proc_self_cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    // (controllers or "" for the unified hierarchy, our path in it)
    let ours: Vec<(Vec<&str>, &str)> = proc_self_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let list = if controllers.is_empty() { Vec::new() } else { controllers.split(',').collect() };
            Some((list, path))
        })
        .collect();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mountpoint), Some(fstype)) = (left.get(3), left.get(4), right.first()) else {
            continue;
        };
        let options: Vec<&str> = right.get(2).map(|o| o.split(',').collect()).unwrap_or_default();
        let path = match *fstype {
            "cgroup2" => ours.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| *p),
            "cgroup" => {
                ours.iter().find(|(c, _)| !c.is_empty() && c.iter().all(|name| options.contains(name))).map(|(_, p)| *p)
            }
            _ => None,
        };
        let Some(path) = path else { continue };
        let root = unescape_mountinfo(root);
        let Some(rel) = Path::new(path).strip_prefix(&root).ok() else { continue };
        return Some(PathBuf::from(unescape_mountinfo(mountpoint)).join(rel).join("cgroup.procs"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/agent.scope\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
31 22 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
32 22 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
";

    #[test]
    fn the_first_hierarchy_that_has_us_is_used() {
        assert_eq!(
            own_procs_file(HYBRID_CGROUP, HYBRID_MOUNTS),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/cgroup.procs"))
        );
        // Joint controllers match as a set.
        let mounts = HYBRID_MOUNTS.lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            own_procs_file(HYBRID_CGROUP, &mounts),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/agent.scope/cgroup.procs"))
        );
        // The unified hierarchy when it is the only one.
        let mounts = HYBRID_MOUNTS.lines().skip(3).collect::<Vec<_>>().join("\n");
        assert_eq!(own_procs_file(HYBRID_CGROUP, &mounts), Some(PathBuf::from("/sys/fs/cgroup/unified/cgroup.procs")));
    }

    #[test]
    fn unified_hosts_and_mount_roots() {
        let mounts = "40 22 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            own_procs_file("0::/system.slice/rudder.service\n", mounts),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/rudder.service/cgroup.procs"))
        );
        // A mount of a sub-tree (a container's view): paths are relative to its root.
        let mounts = "40 22 0:30 /kubepods /host\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(own_procs_file("0::/kubepods/pod1\n", mounts), Some(PathBuf::from("/host cg/pod1/cgroup.procs")));
        // We are outside that sub-tree: nothing to write to.
        assert_eq!(own_procs_file("0::/elsewhere\n", mounts), None);
        // No cgroup mounts, or garbage.
        assert_eq!(own_procs_file("0::/\n", "22 1 0:20 / /sys rw - sysfs sysfs rw\n"), None);
        assert_eq!(own_procs_file("garbage", "garbage - \n"), None);
    }

    #[test]
    fn a_warm_up_writes_our_pid_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("procs");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let lock = AttachLock::at(fifo.clone());
        // The first write blocks until we read the FIFO, as a cold lock blocks the
        // write for a grace period; meanwhile another warm-up is not started.
        let first = lock.warm().expect("a warm-up");
        assert!(lock.warm().is_none(), "a second warm-up while one is under way");
        let mut reader = std::fs::File::open(&fifo).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
        first.join().unwrap();
        assert_eq!(text, std::process::id().to_string());
        // Once done, the next start warms again.
        let file = dir.path().join("plain");
        let lock = AttachLock::at(file.clone());
        lock.warm().expect("a warm-up").join().unwrap();
        lock.warm().expect("another").join().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), std::process::id().to_string());
        assert!(AttachLock::disabled().warm().is_none());
    }
}
