//! Containers with the real runc: run to completion, logs, signals, whiteouts, create
//! errors, OOM kills, and adoption by a new driver.

use crate::{Node, block_on};
use runtime::container::{Runtime, RuntimeError, Status, bundle_files, wait_stopped};
use runtime::oci::ImageConfig;
use runtime::registries::RegistryConfig;
use runtime::runc::Runc;
use runtime::snapshot::RootfsDirs;
use runtime::spec::Resources;
use runtime::testing::{ImageBuilder, LayerBuilder, LayerCompression, Registry, busybox_image, busybox_layer};
use runtime::{Image, Puller, Reference};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// Pushes an image to a fresh registry and pulls it into the node's store.
async fn pull(node: &Node, image: &runtime::testing::BuiltImage) -> (Registry, Image) {
    let registry = Registry::start();
    registry.push("test/image", "v1", image).await.unwrap();
    let puller = Puller::new(node.store.clone(), RegistryConfig::default());
    let r = Reference::parse_normalized(&format!("{}/test/image:v1", registry.host)).unwrap();
    let pulled = puller.pull(&r, &[]).await.unwrap();
    (registry, pulled)
}

async fn wait_for_log(node: &Node, id: &str, line: &str) {
    let deadline = Instant::now() + LONG;
    while !node.log_lines(id).iter().any(|l| l == line) {
        assert!(Instant::now() < deadline, "no {line:?} in the log of {id}: {:?}", node.log_lines(id));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn echo_hello_to_completion() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let options = node.bundle("echo", &image, &["echo", "hello"], |_| {});
        let (mut ours, mut creates, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..5 {
            let t = Instant::now();
            node.runc.create("echo", &options).await.unwrap();
            creates.push(t.elapsed());
            let s = Instant::now();
            node.runc.start("echo").await.unwrap();
            starts.push(s.elapsed());
            let state = wait_stopped(&node.runc, "echo", LONG).await.unwrap();
            ours.push(t.elapsed());
            assert_eq!(state.status, Status::Stopped);
            let exit = state.exit.expect("the shim recorded the exit");
            assert_eq!((exit.code, exit.signal, exit.oom_killed), (0, None, false));
            assert!(state.started_at.is_some());
            assert_eq!(node.log_lines("echo").len(), round + 1, "one line per run: {:?}", node.log_lines("echo"));
            node.runc.delete("echo", false).await.unwrap();
        }
        // Create and start in one runc call.
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            node.runc.run("echo", &options).await.unwrap();
            runs.push(t.elapsed());
            let state = wait_stopped(&node.runc, "echo", LONG).await.unwrap();
            assert_eq!(state.exit.unwrap().code, 0);
            assert!(state.started_at.is_some());
            node.runc.delete("echo", false).await.unwrap();
        }
        assert_eq!(node.log_lines("echo").len(), 10);
        assert!(node.log_lines("echo").iter().all(|l| l == "stdout hello"), "{:?}", node.log_lines("echo"));
        let raw = std::fs::read_to_string(node.log_path("echo")).unwrap();
        let first = raw.lines().next().unwrap();
        assert!(
            first.ends_with(" stdout F hello") && first.len() == "2024-01-02T03:04:05.123456789Z stdout F hello".len(),
            "{first}"
        );

        // The same bundle under a bare `runc run` (foreground, output to us), for comparison.
        let bare = node.bundle("bare", &image, &["echo", "hello"], |_| {});
        let root = node.data.join("runc-bare");
        let mut bare_times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let out = std::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["run", "--bundle"])
                .arg(&bare.bundle)
                .arg("bare")
                .output()
                .unwrap();
            bare_times.push(t.elapsed());
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", "bare"])
                .status();
        }
        println!(
            "    figures: echo through the shim: create {:.1} ms, start {:.1} ms, run (both at once) {:.1} ms, create→exit seen {:.1} ms (medians of 5); bare `runc run` (to exit) {:.1} ms",
            median(creates).as_secs_f64() * 1e3,
            median(starts).as_secs_f64() * 1e3,
            median(runs).as_secs_f64() * 1e3,
            median(ours).as_secs_f64() * 1e3,
            median(bare_times).as_secs_f64() * 1e3
        );
    })
}

pub fn sigterm_and_sigkill() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let script = "trap 'echo got TERM; exit 0' TERM; echo started; while :; do sleep 0.1; done";
        let options = node.bundle("term", &image, &["sh", "-c", script], |_| {});
        node.start("term", &options).await;
        wait_for_log(&node, "term", "stdout started").await;
        let state = node.runc.state("term").await.unwrap();
        assert_eq!(state.status, Status::Running);
        assert!(state.pid > 0);
        node.runc.kill("term", 15, false).await.unwrap();
        let state = wait_stopped(&node.runc, "term", LONG).await.unwrap();
        assert_eq!(state.exit.unwrap().code, 0);
        assert!(node.log_lines("term").contains(&"stdout got TERM".to_string()));

        // PID 1 ignores SIGTERM without a handler; SIGKILL it is.
        let options = node.bundle("sleeper", &image, &["sleep", "1000"], |_| {});
        node.start("sleeper", &options).await;
        node.runc.kill("sleeper", 9, false).await.unwrap();
        let state = wait_stopped(&node.runc, "sleeper", LONG).await.unwrap();
        let exit = state.exit.unwrap();
        assert_eq!((exit.code, exit.signal), (137, Some(9)));
        // Already stopped: killing again and deleting twice are fine.
        node.runc.kill("sleeper", 9, false).await.unwrap();
        node.runc.delete("sleeper", false).await.unwrap();
        node.runc.delete("sleeper", false).await.unwrap();
        assert!(matches!(node.runc.state("sleeper").await, Err(RuntimeError::NotFound(_))));
        // A running container needs force to delete.
        let options = node.bundle("forced", &image, &["sleep", "1000"], |_| {});
        node.start("forced", &options).await;
        assert!(node.runc.delete("forced", false).await.is_err());
        node.runc.delete("forced", true).await.unwrap();
        assert!(matches!(node.runc.state("forced").await, Err(RuntimeError::NotFound(_))));
    })
}

pub fn whiteouts_hide_lower_files() {
    block_on(async {
        let node = Node::new();
        let lower = busybox_layer()
            .dir("data", 0o755)
            .file("data/a", 0o644, b"a")
            .file("data/b", 0o644, b"b")
            .dir("opq", 0o755)
            .file("opq/x", 0o644, b"x")
            .finish();
        let upper = LayerBuilder::new()
            .whiteout("data/a")
            .dir("opq", 0o755)
            .opaque("opq")
            .file("opq/y", 0o644, b"y")
            .dir("etc", 0o755)
            .file("etc/motd", 0o644, b"from the top layer\n")
            .finish();
        let image = ImageBuilder::new()
            .layer(lower, LayerCompression::Gzip)
            .layer(upper, LayerCompression::Zstd)
            .config(ImageConfig::default())
            .build();
        let (_registry, image) = pull(&node, &image).await;
        let options = node.bundle("wh", &image, &["sh", "-c", "ls /data; ls /opq; cat /etc/motd; ls /etc"], |_| {});
        node.start("wh", &options).await;
        let state = wait_stopped(&node.runc, "wh", LONG).await.unwrap();
        assert_eq!(state.exit.unwrap().code, 0, "{:?}", node.log_lines("wh"));
        assert_eq!(
            node.log_lines("wh"),
            ["stdout b", "stdout y", "stdout from the top layer", "stdout group", "stdout motd", "stdout passwd"]
        );
    })
}

/// The agent's layout: the bundle (with the root filesystem's mount point) on a tmpfs,
/// the writable layer on disk. What the container writes lands in the layer, and
/// removing the root filesystem clears both places.
pub fn the_writable_layer_lives_apart_from_the_bundle() {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let run = node.data.join("run");
        std::fs::create_dir_all(&run).unwrap();
        rustix::mount::mount("tmpfs", &run, "tmpfs", rustix::mount::MountFlags::empty(), c"mode=0700").unwrap();
        let _unmount = Unmount(run.clone());
        let dirs = RootfsDirs::new(&run.join("split"), &node.data.join("layers").join("split"));
        let options = node.bundle_at("split", &dirs, &image, &["sh", "-c", "echo kept > /written"], |_| {});
        node.start("split", &options).await;
        let state = wait_stopped(&node.runc, "split", LONG).await.unwrap();
        assert_eq!(state.exit.unwrap().code, 0, "{:?}", node.log_lines("split"));
        assert!(runtime::snapshot::is_mount_point(&dirs.rootfs));
        assert_eq!(std::fs::read_to_string(dirs.layer.join("upper/written")).unwrap(), "kept\n");
        assert!(!dirs.rootfs.parent().unwrap().join("upper").exists(), "nothing of the layer in the bundle");
        node.runc.delete("split", false).await.unwrap();
        runtime::snapshot::remove_rootfs_at(&dirs).unwrap();
        assert!(!dirs.rootfs.exists() && !dirs.layer.exists(), "both places cleared");
    })
}

pub fn missing_command_is_a_create_error() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let options = node.bundle("nope", &image, &["/no/such/binary"], |_| {});
        let err = node.runc.create("nope", &options).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Runc { op: "create", .. }), "{err}");
        assert!(err.to_string().contains("no such file or directory"), "{err}");
        assert!(matches!(node.runc.state("nope").await, Err(RuntimeError::NotFound(_))));
        // Nothing from runc's own failure lands in the container's log.
        assert!(node.log_lines("nope").is_empty(), "{:?}", node.log_lines("nope"));
    })
}

pub fn oom_kill_is_recorded() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        // `tail` keeps the last line of /dev/zero, which never ends.
        let options = node.bundle("oom", &image, &["sh", "-c", "echo start; tail /dev/zero"], |c| {
            c.resources = Resources { memory_limit: Some(16 << 20), ..Resources::default() };
        });
        node.start("oom", &options).await;
        let state = wait_stopped(&node.runc, "oom", LONG).await.unwrap();
        let exit = state.exit.unwrap();
        assert!(exit.oom_killed, "{exit:?}");
        assert_eq!(exit.code, 137);
    })
}

pub fn a_new_driver_adopts_running_containers() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let long = node.bundle("long", &image, &["sh", "-c", "echo up; exec sleep 1000"], |_| {});
        node.start("long", &long).await;
        let short = node.bundle("short", &image, &["sh", "-c", "sleep 0.2; echo bye; exit 3"], |_| {});
        node.start("short", &short).await;
        wait_for_log(&node, "long", "stdout up").await;

        // An agent restart: a new driver knows nothing but the data dir.
        let fresh = Runc::new(Node::runc_config(&node.data)).unwrap();
        let all = fresh.list().await.unwrap();
        let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert!(ids.contains(&"long") && ids.contains(&"short"), "{ids:?}");
        let l = all.iter().find(|c| c.id == "long").unwrap();
        assert_eq!((l.status, l.bundle.as_path()), (Status::Running, long.bundle.as_path()));
        assert!(l.started_at.is_some());
        // The container that ended meanwhile still has its exit code and output.
        let s = wait_stopped(&fresh, "short", LONG).await.unwrap();
        assert_eq!(s.exit.unwrap().code, 3);
        assert_eq!(node.log_lines("short"), ["stdout bye"]);
        // And the adopted one can be stopped as usual.
        fresh.kill("long", 9, false).await.unwrap();
        assert_eq!(wait_stopped(&fresh, "long", LONG).await.unwrap().exit.unwrap().code, 137);
    })
}

/// Shims are forked by the driver's launcher (`<this binary> shim --launcher`); when
/// the launcher is gone a shim is started by exec and a new launcher takes over.
pub fn shims_come_from_the_launcher() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node, &busybox_image()).await;
        let launcher = wait_for_launcher(&node, None).await;
        assert_eq!(run_and_kill(&node, &image, "forked").await, ("rudder-shim".to_string(), launcher));

        let pid = rustix::process::Pid::from_raw(launcher as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let (name, parent) = run_and_kill(&node, &image, "execed").await;
        assert_ne!(name, "rudder-shim");
        assert_eq!(parent, std::process::id(), "started by exec, a child of the driver's process");

        let again = wait_for_launcher(&node, Some(launcher)).await;
        assert_eq!(run_and_kill(&node, &image, "forked-again").await, ("rudder-shim".to_string(), again));
    })
}

/// Runs a container that says "up", and kills it: who held its output (see [`shim_of`]).
async fn run_and_kill(node: &Node, image: &Image, id: &str) -> (String, u32) {
    let options = node.bundle(id, image, &["sh", "-c", "echo up; exec sleep 1000"], |_| {});
    node.runc.run(id, &options).await.unwrap();
    wait_for_log(node, id, "stdout up").await;
    let shim = shim_of(node, id);
    node.runc.kill(id, 9, false).await.unwrap();
    let exit = wait_stopped(&node.runc, id, LONG).await.unwrap().exit.expect("the shim recorded the exit");
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    shim
}

/// The driver's running launcher, once there is one other than `not`.
async fn wait_for_launcher(node: &Node, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(pid) = node.runc.launcher_pid().filter(|p| Some(*p) != not) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no shim launcher");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The process that holds a container's output: its name, and its parent's pid.
fn shim_of(node: &Node, id: &str) -> (String, u32) {
    let pid = std::fs::read_to_string(node.container_dir(id).join(bundle_files::SHIM_PID)).unwrap();
    let pid = pid.trim();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap();
    (comm.trim_end().to_string(), ppid)
}
