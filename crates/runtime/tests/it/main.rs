//! Privileged tests of the runtime with the real thing: images built from
//! busybox-static and pushed to a real `docker-registry`, pulled back, unpacked,
//! mounted with overlayfs and run with the real runc.
//!
//! The binary has its own `main` (no libtest harness) because it doubles as the log
//! shim: the runc driver starts `<this binary> shim …` as production starts `rudder
//! shim …`. Tests run one after another (they mount, start processes and need root);
//! `it NAME…` runs those whose names contain one of the NAMEs. Every test removes its
//! containers, mounts, processes and directories, even when it fails.

mod containers;
mod exec;
mod images;
mod import;

use runtime::container::{CreateOptions, Runtime};
use runtime::runc::{Runc, RuncConfig};
use runtime::snapshot::{self, Snapshotter};
use runtime::spec::{self, ContainerConfig};
use runtime::{Image, ImageStore};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

type Test = fn();

const TESTS: &[(&str, Test)] = &[
    ("images::pull_verifies_and_stores", images::pull_verifies_and_stores),
    ("images::index_resolves_to_this_platform", images::index_resolves_to_this_platform),
    ("images::missing_image_is_not_found", images::missing_image_is_not_found),
    ("images::basic_auth", images::basic_auth),
    ("images::bearer_token_auth", images::bearer_token_auth),
    ("images::mirror_serves_docker_io_with_rewrite", images::mirror_serves_docker_io_with_rewrite),
    ("images::https_with_a_custom_ca", images::https_with_a_custom_ca),
    ("containers::echo_hello_to_completion", containers::echo_hello_to_completion),
    ("containers::sigterm_and_sigkill", containers::sigterm_and_sigkill),
    ("containers::whiteouts_hide_lower_files", containers::whiteouts_hide_lower_files),
    (
        "containers::the_writable_layer_lives_apart_from_the_bundle",
        containers::the_writable_layer_lives_apart_from_the_bundle,
    ),
    ("containers::missing_command_is_a_create_error", containers::missing_command_is_a_create_error),
    ("containers::oom_kill_is_recorded", containers::oom_kill_is_recorded),
    ("containers::a_new_driver_adopts_running_containers", containers::a_new_driver_adopts_running_containers),
    ("import::docker_archive_and_oci_layout", import::docker_archive_and_oci_layout),
    ("exec::exec_exit_codes_stdin_and_a_terminal", exec::exec_exit_codes_stdin_and_a_terminal),
    ("exec::attach_to_stdin_and_a_terminal", exec::attach_to_stdin_and_a_terminal),
    ("containers::shims_come_from_the_launcher", containers::shims_come_from_the_launcher),
];

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "shim") {
        std::process::exit(runtime::shim::main(args[1..].to_vec()));
    }
    let flags: Vec<&str> = args.iter().filter_map(|a| a.to_str()).filter(|a| a.starts_with('-')).collect();
    let filters: Vec<&str> = args.iter().filter_map(|a| a.to_str()).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, Test)> =
        TESTS.iter().filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f))).collect();
    if flags.contains(&"--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("these tests mount filesystems and run runc: run them as root");
        std::process::exit(1);
    }
    let total = selected.len();
    println!("\nrunning {total} tests");
    let mut failed = Vec::new();
    let started = Instant::now();
    for (name, test) in selected {
        let t = Instant::now();
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {} ({:.2}s)", if ok { "ok" } else { "FAILED" }, t.elapsed().as_secs_f64());
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        total - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for f in failed {
            println!("    {f}");
        }
        std::process::exit(101);
    }
}

/// Runs a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// Removes containers and their root filesystems when dropped, whatever happened.
struct Cleanup {
    runc_root: PathBuf,
    containers: Mutex<Vec<(String, PathBuf)>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        for (id, dir) in containers.iter() {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "--force", id])
                .stderr(std::process::Stdio::null())
                .status();
            if let Err(e) = snapshot::remove_rootfs(dir) {
                eprintln!("cleanup of {}: {e}", dir.display());
            }
        }
    }
}

/// A node's runtime state in a temporary data dir: image store, snapshots, runc.
pub struct Node {
    // Fields drop in order: containers and mounts go before the directory.
    cleanup: Cleanup,
    pub store: ImageStore,
    pub snapshots: Snapshotter,
    pub runc: Runc,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let store = ImageStore::open(&data.join("images")).unwrap();
        let snapshots = Snapshotter::open(&data.join("snapshots")).unwrap();
        let runc = Runc::new(Node::runc_config(&data)).unwrap();
        let cleanup = Cleanup { runc_root: data.join("runc"), containers: Mutex::new(Vec::new()) };
        Node { cleanup, store, snapshots, runc, data, _dir: dir }
    }

    /// runc from the system, and this test binary as the shim.
    pub fn runc_config(data: &Path) -> RuncConfig {
        RuncConfig {
            runc: "runc".into(),
            root: data.join("runc"),
            shim: vec![std::env::current_exe().unwrap().into(), "shim".into()],
        }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data.join("logs").join(format!("{id}.log"))
    }

    /// Unpacks, mounts and writes the bundle for a container running `command` in
    /// `image`; `configure` adjusts the spec input.
    pub fn bundle(
        &self,
        id: &str,
        image: &Image,
        command: &[&str],
        configure: impl FnOnce(&mut ContainerConfig),
    ) -> CreateOptions {
        self.bundle_at(id, &snapshot::RootfsDirs::in_bundle(&self.container_dir(id)), image, command, configure)
    }

    /// [`Node::bundle`] with the root filesystem's mount point (so the bundle) and
    /// writable layer where `dirs` says.
    pub fn bundle_at(
        &self,
        id: &str,
        dirs: &snapshot::RootfsDirs,
        image: &Image,
        command: &[&str],
        configure: impl FnOnce(&mut ContainerConfig),
    ) -> CreateOptions {
        let dir = dirs.rootfs.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        self.cleanup.containers.lock().unwrap().push((id.to_string(), dir.clone()));
        let layers = self.snapshots.prepare(&self.store, image).unwrap();
        let rootfs = snapshot::mount_rootfs_at(&layers, dirs).unwrap();
        let image_config = self.store.config(image).unwrap().config.unwrap_or_default();
        let mut config = ContainerConfig {
            rootfs,
            image: image_config,
            command: command.iter().map(|s| s.to_string()).collect(),
            hostname: Some(id.to_string()),
            ..ContainerConfig::default()
        };
        configure(&mut config);
        spec::generate(&config).unwrap().write(&dir).unwrap();
        CreateOptions { bundle: dir, log_path: self.log_path(id), ..CreateOptions::default() }
    }

    /// The log's records as `stream content` lines.
    pub fn log_lines(&self, id: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(id))
            .unwrap_or_default()
            .lines()
            .filter_map(runtime::logfile::parse_record)
            .map(|r| format!("{} {}", r.stream, r.content))
            .collect()
    }

    /// Creates and starts; returns when started.
    pub async fn start(&self, id: &str, options: &CreateOptions) {
        self.runc.create(id, options).await.unwrap();
        self.runc.start(id).await.unwrap();
    }
}
