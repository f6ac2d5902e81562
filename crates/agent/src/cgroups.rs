//! The QoS cgroup tree, as the kubelet's cgroupfs driver lays it out: containers of
//! BestEffort pods under `kubepods/besteffort`, Burstable under `kubepods/burstable`,
//! Guaranteed straight under `kubepods`, with `kubepods` weighted like the node's CPUs
//! and `besteffort` at the minimum weight.
//!
//! Why it matters: a BestEffort container gets `cpu.shares` 2. Left at the top of the
//! cpu hierarchy (runc's default place), that weight competes with every process of
//! the host, so while the node is busy (the agent, the API server, other containers
//! starting) the container's `runc init` barely runs and `runc run` takes several
//! times as long as it does for the same container without the weight. Under
//! `kubepods` the weight of 2 only counts against other pods' containers; against the
//! host, all pods together weigh as much as the node's CPUs, as upstream intends.
//!
//! Paths are relative (`kubepods/besteffort/<id>`), so runc puts them under its own
//! cgroup in each hierarchy, exactly where it puts a container without a
//! `cgroupsPath` today. Only the cgroup v1 cpu hierarchy is prepared here; on a
//! unified (v2) host the containers keep runc's default place (nothing changes).

use std::path::{Path, PathBuf};

/// The tree's root, relative to the agent's own cgroup.
pub const KUBEPODS: &str = "kubepods";
/// upstream's `MinShares`.
const MIN_SHARES: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("the host uses the unified cgroup hierarchy (v2); containers stay at runc's default place")]
    Unified,
    #[error("no cpu controller in /proc/self/cgroup")]
    NoCpuController,
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

/// The prepared tree: where the containers of each QoS class go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosCgroups {
    /// `kubepods` in the cpu hierarchy (for tests and diagnostics).
    pub cpu_dir: PathBuf,
}

impl QosCgroups {
    /// Creates `kubepods`, `kubepods/besteffort` and `kubepods/burstable` in the cpu
    /// hierarchy under the agent's own cgroup (`proc_self_cgroup` is the text of
    /// `/proc/self/cgroup`, `mount` where the hierarchies are mounted) and sets their
    /// weights: `kubepods` as `node_cpu_millis`, `besteffort` the minimum.
    /// `burstable` keeps the default weight (upstream sums its pods' requests there;
    /// its containers' own shares still divide it by request).
    pub fn prepare(proc_self_cgroup: &str, mount: &Path, node_cpu_millis: u64) -> Result<QosCgroups, CgroupError> {
        if mount.join("cgroup.controllers").exists() {
            return Err(CgroupError::Unified);
        }
        let (controllers, own) = proc_self_cgroup
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers.split(',').any(|c| c == "cpu").then_some((controllers, path))
            })
            .next()
            .ok_or(CgroupError::NoCpuController)?;
        let kubepods = mount.join(controllers).join(own.trim_start_matches('/')).join(KUBEPODS);
        for dir in [kubepods.join("besteffort"), kubepods.join("burstable")] {
            std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Io { op: "creating", path: dir, source })?;
        }
        write(&kubepods.join("cpu.shares"), milli_cpu_to_shares(node_cpu_millis))?;
        write(&kubepods.join("besteffort").join("cpu.shares"), MIN_SHARES)?;
        Ok(QosCgroups { cpu_dir: kubepods })
    }

    /// The `cgroupsPath` of a container of a pod in QoS class `qos`.
    pub fn path(&self, qos: &str, container_id: &str) -> String {
        match qos {
            "Guaranteed" => format!("{KUBEPODS}/{container_id}"),
            "Burstable" => format!("{KUBEPODS}/burstable/{container_id}"),
            _ => format!("{KUBEPODS}/besteffort/{container_id}"),
        }
    }
}

/// upstream's `MilliCPUToShares`.
fn milli_cpu_to_shares(milli: u64) -> u64 {
    (milli * 1024 / 1000).max(MIN_SHARES)
}

fn write(path: &Path, value: u64) -> Result<(), CgroupError> {
    std::fs::write(path, value.to_string()).map_err(|source| CgroupError::Io {
        op: "writing",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_made_under_the_agents_own_cpu_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path();
        std::fs::create_dir_all(mount.join("cpu,cpuacct/agent.scope")).unwrap();
        let text = "4:memory:/m\n2:cpu,cpuacct:/agent.scope\n0::/\n";
        let q = QosCgroups::prepare(text, mount, 2000).unwrap();
        let kubepods = mount.join("cpu,cpuacct/agent.scope/kubepods");
        assert_eq!(q.cpu_dir, kubepods);
        assert_eq!(std::fs::read_to_string(kubepods.join("cpu.shares")).unwrap(), "2048");
        assert_eq!(std::fs::read_to_string(kubepods.join("besteffort/cpu.shares")).unwrap(), "2");
        assert!(kubepods.join("burstable").is_dir());
        assert_eq!(q.path("BestEffort", "u_c_0"), "kubepods/besteffort/u_c_0");
        assert_eq!(q.path("Burstable", "u_c_0"), "kubepods/burstable/u_c_0");
        assert_eq!(q.path("Guaranteed", "u_c_0"), "kubepods/u_c_0");
        // Preparing again (an agent restart) is fine.
        assert!(QosCgroups::prepare(text, mount, 2000).is_ok());
    }

    #[test]
    fn unified_hosts_and_missing_controllers_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        assert!(matches!(QosCgroups::prepare("0::/\n", dir.path(), 1000), Err(CgroupError::Unified)));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            QosCgroups::prepare("4:memory:/m\ngarbage\n", dir.path(), 1000),
            Err(CgroupError::NoCpuController)
        ));
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
    }
}
