//! The network lab the multi-node end-to-end tests share: node network namespaces
//! behind a switch namespace, reached from the host through one veth, so that each
//! agent has a network of its own and bridged traffic never meets the host's
//! firewall; and the clean-up of what an agent leaves under its data dir.

use crate::pods::block_on;
use runtime::sandbox::netns;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn can_run(what: &str) -> bool {
    let has = |p: &str| Path::new(p).exists();
    let ok = rustix::process::geteuid().is_root()
        && Command::new("runc").arg("--version").output().is_ok()
        && Command::new("iptables").arg("--version").output().is_ok()
        && Command::new("nft").arg("--version").output().is_ok()
        && (has("/usr/lib/cni/bridge") || has("/opt/cni/bin/bridge"));
    if !ok {
        eprintln!("{what} skipped: it needs root, runc, nft, iptables and the CNI plugins");
    }
    ok
}

/// Runs a command; panics with its stderr when it fails.
pub(crate) fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip` in a network namespace.
pub(crate) fn ip_in(ns: &Path, args: &[&str]) -> String {
    let net = format!("--net={}", ns.display());
    let mut all = vec![net.as_str(), "ip"];
    all.extend_from_slice(args);
    sh("nsenter", &all)
}

/// The host end, the switch and the nodes' namespaces. Dropping it removes them.
pub(crate) struct Fabric {
    dir: tempfile::TempDir,
    pub(crate) host_if: String,
    subnet: String,
    switch: PathBuf,
    pub(crate) nodes: Vec<PathBuf>,
}

impl Fabric {
    /// A host interface with `.1` and `count` node namespaces with `.2`, `.3`, …, on
    /// a /24 under `10.<octet>.0.0/16` (tests that may run side by side pick
    /// different octets and tags for their interface names).
    pub(crate) fn new(count: usize, octet: u8, tag: &str) -> Fabric {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 1000;
        let subnet = format!("10.{octet}.{}", 20 + (id * 7 + n * 31) % 200);
        let mut f = Fabric {
            dir: tempfile::tempdir().unwrap(),
            host_if: format!("r{tag}{id}x{n}"),
            subnet,
            switch: PathBuf::new(),
            nodes: Vec::new(),
        };
        let make = |name: &str| -> PathBuf {
            let dir = f.dir.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            let kinds = netns::Kinds { net: true, ipc: false, uts: false };
            netns::create(&dir, kinds, "", None).unwrap().net.unwrap()
        };
        f.switch = make("switch");
        ip_in(&f.switch, &["link", "add", "br0", "type", "bridge"]);
        ip_in(&f.switch, &["link", "set", "br0", "up"]);
        let sw = f.switch.display().to_string();
        sh("ip", &["link", "add", &f.host_if, "type", "veth", "peer", "name", "up0", "netns", &sw]);
        sh("ip", &["addr", "add", &format!("{}.1/24", f.subnet), "dev", &f.host_if]);
        sh("ip", &["link", "set", &f.host_if, "up"]);
        ip_in(&f.switch, &["link", "set", "up0", "master", "br0", "up"]);
        for i in 0..count {
            let node = make(&format!("node{i}"));
            let port = format!("p{i}");
            let ns = node.display().to_string();
            ip_in(&f.switch, &["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip_in(&f.switch, &["link", "set", &port, "master", "br0", "up"]);
            ip_in(&node, &["link", "set", "lo", "up"]);
            ip_in(&node, &["addr", "add", &format!("{}/24", Fabric::node_ip_of(&f.subnet, i)), "dev", "eth0"]);
            ip_in(&node, &["link", "set", "eth0", "up"]);
            ip_in(&node, &["route", "add", "default", "via", &format!("{}.1", f.subnet)]);
            f.nodes.push(node);
        }
        f
    }

    fn node_ip_of(subnet: &str, i: usize) -> String {
        format!("{subnet}.{}", i + 2)
    }

    pub(crate) fn host_ip(&self) -> String {
        format!("{}.1", self.subnet)
    }

    pub(crate) fn node_ip(&self, i: usize) -> String {
        Fabric::node_ip_of(&self.subnet, i)
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // The host's end takes its peer with it; each namespace goes with its last
        // mount (the agents, their containers and pod namespaces are gone by now).
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).stderr(Stdio::null()).status();
        for ns in self.nodes.iter().chain(std::iter::once(&self.switch)) {
            if let Err(e) = netns::unmount(ns) {
                eprintln!("cleanup {}: {e}", ns.display());
            }
        }
    }
}

/// runc's state directory of an agent with its data in `data`, where `agent::Config`
/// puts it.
fn runc_root(data: &Path) -> PathBuf {
    agent::Config::new("e2e", data.to_path_buf()).expect("agent config").runc.root
}

/// The containers runc has for the agent with its data in `data`.
pub(crate) fn containers(data: &Path) -> Vec<String> {
    let out = Command::new("runc").arg("--root").arg(runc_root(data)).args(["list", "-q"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Removes what an agent left under its data dir: runc's containers, then the mounts
/// (root filesystems, volumes, pod namespaces; their veths go with them).
pub(crate) fn clean_node_data(data: &Path) {
    let root = runc_root(data);
    for id in containers(data) {
        let _ = Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", &id]).status();
    }
    let prefix = format!("{}/", data.display());
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    for m in mounts.iter().rev() {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
}

/// Puts `image` (from the host's loopback registry) in the image store at `dir`.
pub(crate) fn pull_into(dir: &Path, image: &str) {
    block_on(async {
        let store = runtime::ImageStore::open(dir).unwrap();
        let puller = runtime::Puller::new(store, runtime::RegistryConfig::default());
        puller.pull(&runtime::Reference::parse_normalized(image).unwrap(), &[]).await.unwrap();
    });
}
