//! The agent's volatile state directory ([`crate::Config::run_dir`]): a tmpfs of its
//! own, mounted once and kept across agent restarts (running containers' bundles
//! are in it), gone with the machine as the containers are.

use std::io;
use std::path::Path;

/// Mount options: private to root, and bounded (a container's bundle and runc's state
/// are a few KiB; the bound keeps a runaway runc log from taking the node's memory).
const TMPFS_OPTIONS: &std::ffi::CStr = c"mode=0700,size=256m";

/// Makes `dir` and mounts a tmpfs there unless one is there already; says whether
/// one is. Where mounting is not allowed (no privilege) the directory serves as it is.
pub fn prepare(dir: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    if runtime::snapshot::is_mount_point(dir) {
        return Ok(on_tmpfs(dir));
    }
    match rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        TMPFS_OPTIONS,
    ) {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::info!(dir = %dir.display(), error = %e, "no tmpfs for the volatile state; it stays on disk");
            Ok(on_tmpfs(dir))
        }
    }
}

/// `TMPFS_MAGIC` of `statfs(2)`.
const TMPFS_MAGIC: rustix::fs::FsWord = 0x0102_1994;

fn on_tmpfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == TMPFS_MAGIC)
}

/// Removes the containers an agent of the earlier layout left (runc's state and the
/// bundles under the data dir): they would run on unseen.
pub async fn remove_earlier_layout(config: &crate::Config) {
    let root = config.data_dir.join("runc");
    if !root.is_dir() || root == config.runc.root {
        return;
    }
    let (runc, containers) = (config.runc.runc.clone(), config.layers_dir());
    let _ = tokio::task::spawn_blocking(move || {
        let list = std::process::Command::new(&runc).arg("--root").arg(&root).args(["list", "-q"]).output();
        let ids = list.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            tracing::info!(container = id, "removing a container of the earlier state layout");
            let _ = std::process::Command::new(&runc)
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id])
                .stderr(std::process::Stdio::null())
                .status();
            let bundle = containers.join(id);
            let _ = runtime::snapshot::remove_rootfs(&bundle);
            let _ = std::fs::remove_dir_all(&bundle);
        }
        let _ = std::fs::remove_dir_all(&root);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tmpfs_once_kept_across_restarts() {
        if !rustix::process::geteuid().is_root() {
            // Mounting needs root (the agent always has it); without, the directory serves.
            let dir = tempfile::tempdir().unwrap();
            prepare(&dir.path().join("run")).unwrap();
            assert!(dir.path().join("run").is_dir());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert!(prepare(&run).unwrap());
        let mounted = || {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let target = run.display().to_string();
            info.lines().filter(|l| l.split(' ').nth(4) == Some(&target)).map(str::to_string).collect::<Vec<_>>()
        };
        let first = mounted();
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].contains(" - tmpfs "), "{}", first[0]);
        std::fs::write(run.join("kept"), b"x").unwrap();
        // A restarted agent keeps what is there: no second tmpfs over it.
        assert!(prepare(&run).unwrap());
        assert_eq!(mounted().len(), 1);
        assert!(run.join("kept").exists());
        rustix::mount::unmount(&run, rustix::mount::UnmountFlags::empty()).unwrap();
    }

    /// An earlier agent's container (runc's state in `DATA/runc`, its bundle in
    /// `DATA/containers/ID`) is stopped and removed, and so is that state.
    #[tokio::test]
    async fn containers_of_the_earlier_layout_are_removed() {
        let has_runc = std::process::Command::new("runc").arg("--version").output().is_ok();
        if !rustix::process::geteuid().is_root() || !has_runc {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        let config = crate::Config::new("n", data.clone()).unwrap();
        let (old_root, bundle) = (data.join("runc"), data.join("containers").join("earlier"));
        // Removes it even if the test fails.
        struct Guard(std::path::PathBuf);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&self.0)
                    .args(["delete", "--force", "earlier"])
                    .status();
            }
        }
        let _guard = Guard(old_root.clone());
        let bin = bundle.join("rootfs").join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        let spec = runtime::spec::ContainerConfig {
            rootfs: bundle.join("rootfs"),
            command: ["/bin/busybox", "sleep", "1000"].map(String::from).to_vec(),
            namespaces: runtime::spec::Namespaces { network: runtime::spec::NamespaceMode::Host, ..Default::default() },
            ..Default::default()
        };
        runtime::spec::generate(&spec).unwrap().write(&bundle).unwrap();
        let started = std::process::Command::new("runc")
            .arg("--root")
            .arg(&old_root)
            .args(["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg("earlier")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(started.success());
        let state = std::fs::read_to_string(old_root.join("earlier").join("state.json")).unwrap();
        let pid = serde_json::from_str::<serde_json::Value>(&state).unwrap()["init_process_pid"].as_i64().unwrap();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

        remove_earlier_layout(&config).await;
        assert!(!old_root.exists(), "the earlier state is gone");
        assert!(!bundle.exists(), "and the bundle");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z"), "the container's process ended: {stat}");
    }
}
