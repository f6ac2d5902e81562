//! Privileged tests of pod sandboxes with the real CNI plugins (Debian
//! `containernetworking-plugins`), `ip` and `iptables`. They need root.
//!
//! Each test makes its own "node": a network namespace bind-mounted in a temporary
//! directory and handed to [`Sandboxes::with_host_netns`], so the bridge, veths,
//! iptables chains (portmap's and ours) and routes all live in it and vanish with it.
//! The [`Node`] guard unmounts every namespace it finds under its directory when
//! dropped, whether the test passed or panicked, which frees all of that.

use runtime::sandbox::{Cidr, PortMapping, SandboxConfig, SandboxInfo, SandboxRequest, Sandboxes, netns};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique suffix per node: bridges of parallel tests must differ even though each
/// lives in its own namespace, so that a leak into the host's would show which test.
fn unique() -> String {
    format!("{}{}", std::process::id() % 10000, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// Runs a command on a thread in `netns` and returns its stdout; panics with its stderr.
fn run_in(netns: &Path, program: &str, args: &[&str]) -> String {
    let (program, args): (String, Vec<String>) = (program.into(), args.iter().map(|s| s.to_string()).collect());
    let what = format!("{program} {}", args.join(" "));
    let out = netns::run_in(Some(netns), move || Command::new(&program).args(&args).output()).unwrap().unwrap();
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Node {
    sandboxes: Sandboxes,
    netns: PathBuf,
    bridge: String,
    /// The node's own address, on an uplink veth.
    ip: IpAddr,
    dir: tempfile::TempDir,
}

impl Node {
    /// A node whose network namespace has `lo` and an uplink `up0` with `ip/24` (its
    /// peer `up1` stays in the node too unless [`link`] moves it to another node).
    fn new(pod_cidr: &str, cluster_cidr: Option<&str>, ip: &str) -> Node {
        assert!(rustix::process::geteuid().is_root(), "these tests make namespaces and bridges: run them as root");
        let dir = tempfile::tempdir().unwrap();
        let node_ns_dir = dir.path().join("node");
        std::fs::create_dir(&node_ns_dir).unwrap();
        let kinds = netns::Kinds { net: true, ipc: false, uts: false };
        let created = netns::create(&node_ns_dir, kinds, "", None).unwrap();
        let netns = created.net.unwrap();
        let bridge = format!("rt{}", unique());
        let mut config = SandboxConfig::new(dir.path().join("sandboxes"), pod_cidr.parse().unwrap());
        config.bridge = bridge.clone();
        config.cluster_cidr = cluster_cidr.map(|c| c.parse().unwrap());
        let sandboxes = Sandboxes::new(config).unwrap().with_host_netns(&netns);
        let node = Node { sandboxes, netns, bridge, ip: ip.parse().unwrap(), dir };
        // Pod networking must not depend on br_netfilter: where the module is loaded,
        // switch it off for this node (the setting is per network namespace).
        netns::run_in(Some(&node.netns), || {
            for family in ["iptables", "ip6tables", "arptables"] {
                let _ = std::fs::write(format!("/proc/sys/net/bridge/bridge-nf-call-{family}"), b"0");
            }
        })
        .unwrap();
        node.ip(&["link", "set", "lo", "up"]);
        node.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
        node.ip(&["addr", "add", &format!("{ip}/24"), "dev", "up0"]);
        node.ip(&["link", "set", "up0", "up"]);
        node.ip(&["link", "set", "up1", "up"]);
        node
    }

    fn ip(&self, args: &[&str]) -> String {
        run_in(&self.netns, "ip", args)
    }

    fn request(&self, uid: &str, ports: Vec<PortMapping>) -> SandboxRequest {
        SandboxRequest {
            pod_uid: uid.into(),
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            hostname: format!("pod-{uid}"),
            port_mappings: ports,
            host_network: false,
        }
    }

    fn links(&self) -> Vec<String> {
        let out = self.ip(&["-j", "link", "show"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_string()).collect()
    }

    fn iptables_save(&self) -> String {
        run_in(&self.netns, "iptables-save", &[])
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("sandboxes")
    }
}

/// Moves `a`'s uplink peer into `b`, replacing `b`'s own, so the two nodes share a link.
fn link(a: &Node, b: &Node) {
    b.ip(&["link", "del", "up0"]);
    let b_ns = b.netns.to_str().unwrap().to_string();
    a.ip(&["link", "set", "up1", "netns", &b_ns]);
    b.ip(&["link", "set", "up1", "name", "up0"]);
    b.ip(&["addr", "add", &format!("{}/24", b.ip), "dev", "up0"]);
    b.ip(&["link", "set", "up0", "up"]);
}

impl Drop for Node {
    fn drop(&mut self) {
        // Pod namespaces first (their veths go with them), then the node's (its bridge,
        // chains and routes go with it). Nothing here needs the plugins to work.
        let root = self.state_dir();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for kind in ["net", "ipc", "uts"] {
                let p = entry.path().join("ns").join(kind);
                if let Err(e) = netns::unmount(&p) {
                    eprintln!("cleanup {}: {e}", p.display());
                }
            }
        }
        if let Err(e) = netns::unmount(&self.netns) {
            eprintln!("cleanup {}: {e}", self.netns.display());
        }
    }
}

/// A listener in `net_ns` on all addresses that answers each connection with "hello
/// from <peer address>" and closes it.
fn serve_in(net_ns: &Path, port: u16) -> SocketAddr {
    let listener = netns::run_in(Some(net_ns), move || TcpListener::bind(("0.0.0.0", port))).unwrap().unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let peer = conn.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            let _ = conn.write_all(format!("hello from {peer}").as_bytes());
        }
    });
    addr
}

/// Connects from `net_ns` to `to` and returns what the server said.
fn fetch_from(net_ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    netns::run_in(Some(net_ns), move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .unwrap()
}

fn net(info: &SandboxInfo) -> &Path {
    info.net_ns.as_deref().unwrap()
}

#[test]
fn two_pods_on_one_bridge_reach_each_other() {
    let node = Node::new("10.201.1.0/24", Some("10.201.0.0/16"), "192.168.201.1");
    block_on(async {
        let a = node.sandboxes.create(&node.request("a", vec![])).await.unwrap();
        let b = node.sandboxes.create(&node.request("b", vec![])).await.unwrap();
        let cidr: Cidr = "10.201.1.0/24".parse().unwrap();
        assert_eq!(a.ips.len(), 1);
        assert!(cidr.contains(a.ips[0]) && cidr.contains(b.ips[0]), "{a:?} {b:?}");
        assert_ne!(a.ips, b.ips);

        serve_in(net(&b), 8080);
        let said = fetch_from(net(&a), SocketAddr::new(b.ips[0], 8080)).unwrap();
        assert_eq!(said, format!("hello from {}", a.ips[0]), "pod-to-pod traffic keeps the pod's address");

        // Port-forward's way in: localhost inside the pod, from a tokio task.
        let mut s = node.sandboxes.connect_in_pod("b", 8080).await.unwrap();
        let mut said = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut said).await.unwrap();
        assert_eq!(said, "hello from 127.0.0.1");
        assert!(node.sandboxes.connect_in_pod("a", 8080).await.is_err(), "nothing listens in a");
        assert!(node.sandboxes.connect_in_pod("nope", 8080).await.is_err());

        // Containers join the UTS namespace and find the pod's hostname.
        let uts = a.uts_ns.clone().unwrap();
        let out = Command::new("nsenter").arg(format!("--uts={}", uts.display())).arg("hostname").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod-a");
        let ns = a.namespaces();
        assert_eq!(ns.network, runtime::spec::NamespaceMode::Join(net(&a).to_path_buf()));

        // The plugins agree that everything ADD made is in place.
        node.sandboxes.check("a").await.unwrap();

        node.sandboxes.remove("a").await.unwrap();
        node.sandboxes.remove("b").await.unwrap();
    });
}

#[test]
fn host_port_is_reachable_from_the_node() {
    let node = Node::new("10.201.2.0/24", Some("10.201.0.0/16"), "192.168.202.1");
    block_on(async {
        let port = PortMapping { host_port: 18080, container_port: 8080, protocol: "TCP".into(), host_ip: None };
        let pod = node.sandboxes.create(&node.request("web", vec![port])).await.unwrap();
        serve_in(net(&pod), 8080);
        let said = fetch_from(&node.netns, SocketAddr::new(node.ip, 18080)).unwrap();
        assert!(said.starts_with("hello from "), "{said}");
        // From another pod, through the node's address (DNAT, routed back via the bridge).
        let other = node.sandboxes.create(&node.request("client", vec![])).await.unwrap();
        let said = fetch_from(net(&other), SocketAddr::new(node.ip, 18080)).unwrap();
        assert!(said.starts_with("hello from "), "{said}");
        // Hairpin: the pod reaches itself through its host port.
        let said = fetch_from(net(&pod), SocketAddr::new(node.ip, 18080)).unwrap();
        assert!(said.starts_with("hello from "), "{said}");

        node.sandboxes.remove("web").await.unwrap();
        assert!(fetch_from(&node.netns, SocketAddr::new(node.ip, 18080)).is_err(), "the mapping is gone");
        node.sandboxes.remove("client").await.unwrap();
    });
}

#[test]
fn teardown_leaves_nothing_and_remove_is_idempotent() {
    let node = Node::new("10.201.3.0/24", None, "192.168.203.1");
    block_on(async {
        let links_before = node.links();
        let port = PortMapping { host_port: 18081, container_port: 80, protocol: "tcp".into(), host_ip: None };
        let req = node.request("p1", vec![port]);
        let first = node.sandboxes.create(&req).await.unwrap();
        // create is idempotent: the same sandbox, the same address.
        let again = node.sandboxes.create(&req).await.unwrap();
        assert_eq!(first, again);
        let ip = first.ips[0].to_string();
        assert!(node.iptables_save().contains("CNI-DN-"), "portmap made its chain");
        let ipam = node.state_dir().join(".cni/rudder").join(&ip);
        assert!(ipam.exists(), "host-local reserved {ip}");

        node.sandboxes.remove("p1").await.unwrap();
        node.sandboxes.remove("p1").await.unwrap();
        assert!(!node.state_dir().join("p1").exists());
        assert!(!ipam.exists(), "the address is released");
        let rules = node.iptables_save();
        assert!(!rules.contains("CNI-DN-") && !rules.contains(&ip), "{rules}");
        // Only the bridge remains of what CNI made on the node.
        let mut expected = links_before.clone();
        expected.push(node.bridge.clone());
        let mut links = node.links();
        links.sort();
        expected.sort();
        expected.dedup();
        assert_eq!(links, expected);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(node.state_dir().to_str().unwrap()), "namespace mounts are gone");
        assert!(node.sandboxes.list().unwrap().is_empty());

        // A half-made sandbox (the agent stopped mid-create) is listed and removable.
        let half = node.state_dir().join("half");
        std::fs::create_dir_all(half.join("ns")).unwrap();
        std::fs::write(half.join("ns/net"), b"").unwrap();
        let listed = node.sandboxes.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].pod_uid, "half");
        assert!(listed[0].ips.is_empty());
        node.sandboxes.remove("half").await.unwrap();
        assert!(!half.exists());

        // The node's own rules and the bridge go when the node leaves.
        node.sandboxes.remove_node_network().await.unwrap();
        assert!(!node.iptables_save().contains("RUDDER-"));
        assert_eq!(node.links().len(), links_before.len());
    });
}

#[test]
fn a_restarted_agent_finds_its_sandboxes() {
    let node = Node::new("10.201.4.0/24", None, "192.168.204.1");
    block_on(async {
        let pod = node.sandboxes.create(&node.request("kept", vec![])).await.unwrap();
        let mut host = node.request("hostnet", vec![]);
        host.host_network = true;
        let hostnet = node.sandboxes.create(&host).await.unwrap();
        assert!(hostnet.net_ns.is_none() && hostnet.uts_ns.is_none() && hostnet.ips.is_empty());
        assert_eq!(hostnet.namespaces().network, runtime::spec::NamespaceMode::Host);

        // A second driver over the same state, as after an agent restart.
        let mut config = node.sandboxes.config().clone();
        config.cni_bin_dirs = vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()];
        let restarted = Sandboxes::new(config).unwrap().with_host_netns(&node.netns);
        assert_eq!(restarted.list().unwrap(), vec![hostnet.clone(), pod.clone()]);
        assert_eq!(restarted.create(&node.request("kept", vec![])).await.unwrap(), pod);

        // hostNetwork: port-forward reaches the node's localhost.
        serve_in(&node.netns, 18090);
        let mut s = restarted.connect_in_pod("hostnet", 18090).await.unwrap();
        let mut said = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut said).await.unwrap();
        assert_eq!(said, "hello from 127.0.0.1");

        restarted.remove("kept").await.unwrap();
        restarted.remove("hostnet").await.unwrap();
        assert!(restarted.list().unwrap().is_empty());
    });
}

#[test]
fn pods_on_two_nodes_reach_each_other_after_sync_routes() {
    let cluster = Some("10.202.0.0/16");
    let a = Node::new("10.202.1.0/24", cluster, "192.168.210.1");
    let b = Node::new("10.202.2.0/24", cluster, "192.168.210.2");
    link(&a, &b);
    block_on(async {
        let pa = a.sandboxes.create(&a.request("pa", vec![])).await.unwrap();
        let pb = b.sandboxes.create(&b.request("pb", vec![])).await.unwrap();
        serve_in(net(&pb), 9000);
        let to_b = SocketAddr::new(pb.ips[0], 9000);
        assert!(fetch_from(net(&pa), to_b).is_err(), "no route yet");

        let cidr = |s: &str| s.parse::<Cidr>().unwrap();
        a.sandboxes.sync_routes(&[(cidr("10.202.2.0/24"), b.ip), (cidr("10.202.1.0/24"), a.ip)]).await.unwrap();
        b.sandboxes.sync_routes(&[(cidr("10.202.1.0/24"), a.ip)]).await.unwrap();
        // Idempotent: a second sync changes nothing and fails nothing.
        a.sandboxes.sync_routes(&[(cidr("10.202.2.0/24"), b.ip)]).await.unwrap();
        let said = fetch_from(net(&pa), to_b).unwrap();
        assert_eq!(said, format!("hello from {}", pa.ips[0]), "cluster traffic is not masqueraded");

        // Traffic leaving the cluster is: b's node sees a's node address.
        serve_in(&b.netns, 9001);
        let said = fetch_from(net(&pa), SocketAddr::new(b.ip, 9001)).unwrap();
        assert_eq!(said, format!("hello from {}", a.ip));

        // A node IP that is not reachable fails its route but not the others.
        let unreachable: IpAddr = "192.0.2.99".parse().unwrap();
        b.sandboxes.sync_routes(&[]).await.unwrap();
        assert!(fetch_from(net(&pa), to_b).is_err(), "b has no way back");
        // Sorted first, so the good route comes after the failed one.
        let err = b.sandboxes.sync_routes(&[(cidr("10.202.0.0/24"), unreachable), (cidr("10.202.1.0/24"), a.ip)]).await;
        assert!(err.unwrap_err().to_string().contains("10.202.0.0/24"));
        assert_eq!(fetch_from(net(&pa), to_b).unwrap(), format!("hello from {}", pa.ips[0]));

        // Routes no longer wanted go; only ours (a hand-made route stays).
        a.ip(&["route", "add", "10.99.0.0/24", "via", &b.ip.to_string()]);
        a.sandboxes.sync_routes(&[]).await.unwrap();
        assert_eq!(a.ip(&["route", "show", "proto", "82"]).trim(), "");
        assert!(a.ip(&["route", "show"]).contains("10.99.0.0/24"));
        assert!(fetch_from(net(&pa), to_b).is_err());

        a.sandboxes.remove("pa").await.unwrap();
        b.sandboxes.remove("pb").await.unwrap();
    });
}

#[test]
fn create_and_remove_latency() {
    const N: usize = 10;
    let node = Node::new("10.201.5.0/24", None, "192.168.205.1");
    block_on(async {
        // The first create also makes the bridge and the node's rules.
        node.sandboxes.create(&node.request("warm", vec![])).await.unwrap();
        let mut create = Vec::new();
        let mut remove = Vec::new();
        for i in 0..N {
            let uid = format!("lat{i}");
            let t = Instant::now();
            node.sandboxes.create(&node.request(&uid, vec![])).await.unwrap();
            create.push(t.elapsed());
        }
        let t = Instant::now();
        let ports = vec![PortMapping { host_port: 18100, container_port: 80, protocol: "tcp".into(), host_ip: None }];
        node.sandboxes.create(&node.request("ported", ports)).await.unwrap();
        let with_port = t.elapsed();
        for i in 0..N {
            let t = Instant::now();
            node.sandboxes.remove(&format!("lat{i}")).await.unwrap();
            remove.push(t.elapsed());
        }
        let t = Instant::now();
        node.sandboxes.remove("ported").await.unwrap();
        let remove_port = t.elapsed();
        node.sandboxes.remove("warm").await.unwrap();
        create.sort();
        remove.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "sandbox create: p50 {:.1} ms, max {:.1} ms; remove: p50 {:.1} ms, max {:.1} ms; with a host port: create {:.1} ms, remove {:.1} ms",
            ms(create[N / 2]),
            ms(create[N - 1]),
            ms(remove[N / 2]),
            ms(remove[N - 1]),
            ms(with_port),
            ms(remove_port),
        );
    });
}

#[test]
fn a_missing_plugin_is_an_error_and_leaves_nothing() {
    let node = Node::new("10.201.6.0/24", None, "192.168.206.1");
    let mut config = node.sandboxes.config().clone();
    config.cni_bin_dirs = vec![node.dir.path().join("no-plugins")];
    let broken = Sandboxes::new(config).unwrap().with_host_netns(&node.netns);
    block_on(async {
        let err = broken.create(&node.request("x", vec![])).await.unwrap_err();
        assert!(err.to_string().contains("CNI plugin \"loopback\" not found"), "{err}");
        // Its cleanup could not run DEL either, so the record stays for a retry, which a
        // node with its plugins back completes.
        assert!(broken.remove("x").await.is_err());
        node.sandboxes.remove("x").await.unwrap();
        assert!(!node.state_dir().join("x").exists());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(node.state_dir().to_str().unwrap()));
    });
}

/// Deletes a runc container however the test ends.
struct RuncContainer {
    root: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn a_runc_container_joins_the_sandbox_by_path() {
    let node = Node::new("10.201.7.0/24", None, "192.168.207.1");
    let pod = block_on(node.sandboxes.create(&node.request("ctr", vec![]))).unwrap();

    // A root filesystem of busybox-static and its applets.
    let rootfs = node.dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "hostname", "ip", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let config = runtime::spec::ContainerConfig {
        rootfs: rootfs.clone(),
        command: vec!["/bin/sh".into(), "-c".into(), "hostname; ip -o -4 addr show eth0".into()],
        namespaces: pod.namespaces(),
        ..Default::default()
    };
    let bundle = node.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    runtime::spec::generate(&config).unwrap().write(&bundle).unwrap();

    let id = format!("sandbox-test-{}", unique());
    let guard = RuncContainer { root: node.dir.path().join("runc"), id: id.clone() };
    let out = Command::new("runc")
        .arg("--root")
        .arg(&guard.root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "runc: {} {stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("pod-ctr\n"), "{stdout}");
    assert!(stdout.contains(&format!("inet {}/24", pod.ips[0])), "{stdout}");
    drop(guard);
    block_on(node.sandboxes.remove("ctr")).unwrap();
}
