//! A small network made of namespaces, for privileged tests: a "node" namespace
//! that routes and holds the rules, a "client" and any number of "backends", each
//! joined to the node by a veth pair on a /24 of its own. Backends serve HTTP with
//! busybox httpd, answering `/id` with their name; requests are made with curl. Dropping the [`Lab`] kills the
//! servers and deletes the namespaces, also when a test fails.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const CLUSTER_CIDR: &str = "10.99.0.0/16";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

pub fn ok(args: &[&str]) -> String {
    let out = sh(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Lab {
    prefix: String,
    pub node: String,
    pub client: String,
    sink: String,
    pub backends: Vec<String>,
    servers: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
}

impl Lab {
    /// The node's address on the client link: where NodePorts are reached.
    pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    pub fn backend_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, (i + 1) as u8, 2)
    }

    /// Each namespace on a routed /24 link of its own.
    pub fn new(backends: usize) -> Lab {
        Lab::build(backends, false)
    }

    /// Client and backends on one bridge in the node, one /16 (as pods on one node
    /// behind the CNI bridge), with hairpin on each port and bridged traffic passed
    /// through the IP hooks (`bridge-nf-call-iptables`), as a node must have them.
    pub fn bridged(backends: usize) -> Lab {
        Lab::build(backends, true)
    }

    fn build(backends: usize, bridged: bool) -> Lab {
        for tool in ["ip", "nft", "busybox", "curl"] {
            assert!(
                sh(&["sh", "-c", &format!("command -v {tool}")]).status.success(),
                "{tool} is needed (apt-get install iproute2 nftables busybox-static curl)"
            );
        }
        let prefix = format!("rp{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut lab = Lab {
            node: format!("{prefix}-node"),
            client: format!("{prefix}-client"),
            sink: format!("{prefix}-sink"),
            backends: (0..backends).map(|i| format!("{prefix}-b{i}")).collect(),
            prefix,
            servers: Vec::new(),
            dirs: Vec::new(),
        };
        for ns in [lab.node.clone(), lab.client.clone()].iter().chain(lab.backends.clone().iter()) {
            ok(&["ip", "netns", "add", ns]);
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        ok(&["ip", "netns", "exec", &lab.node, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // Service addresses are routed to a "sink" namespace that does not forward
        // and so drops them without a word (like a default route to a far network:
        // forwarded, never answered), so a quick "refused" can only come from the
        // proxy's reject.
        ok(&["ip", "netns", "add", &lab.sink]);
        lab.link("s", &lab.sink.clone(), Ipv4Addr::new(10, 98, 0, 1), Ipv4Addr::new(10, 98, 0, 2));
        ok(&["ip", "-n", &lab.node, "route", "add", SERVICE_CIDR, "via", "10.98.0.2"]);
        if bridged {
            ok(&["ip", "-n", &lab.node, "link", "add", "br0", "type", "bridge"]);
            ok(&["ip", "-n", &lab.node, "addr", "add", &format!("{}/16", Lab::NODE_IP), "dev", "br0"]);
            ok(&["ip", "-n", &lab.node, "link", "set", "br0", "up"]);
            ok(&["ip", "netns", "exec", &lab.node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
            lab.port("c", &lab.client.clone(), Lab::CLIENT_IP);
        } else {
            lab.link("c", &lab.client.clone(), Lab::NODE_IP, Lab::CLIENT_IP);
        }
        for i in 0..backends {
            let ns = lab.backends[i].clone();
            if bridged {
                lab.port(&format!("b{i}"), &ns, Lab::backend_ip(i));
            } else {
                let gw = Ipv4Addr::new(10, 99, (i + 1) as u8, 1);
                lab.link(&format!("b{i}"), &ns, gw, Lab::backend_ip(i));
            }
            lab.serve(i);
        }
        lab
    }

    /// A veth pair from `ns` (`ip`/16) to a port of the node's bridge.
    fn port(&self, name: &str, ns: &str, ip: Ipv4Addr) {
        ok(&["ip", "-n", &self.node, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        ok(&["ip", "-n", &self.node, "link", "set", name, "master", "br0"]);
        ok(&["ip", "-n", &self.node, "link", "set", name, "up"]);
        ok(&["bridge", "-n", &self.node, "link", "set", "dev", name, "hairpin", "on"]);
        ok(&["ip", "-n", ns, "addr", "add", &format!("{ip}/16"), "dev", "eth0"]);
        ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        ok(&["ip", "-n", ns, "route", "add", "default", "via", &Lab::NODE_IP.to_string()]);
    }

    /// A veth pair between the node (`node_ip`) and `ns` (`ip`), `ns` routing
    /// everything through the node.
    fn link(&self, name: &str, ns: &str, node_ip: Ipv4Addr, ip: Ipv4Addr) {
        ok(&["ip", "-n", &self.node, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        ok(&["ip", "-n", &self.node, "addr", "add", &format!("{node_ip}/24"), "dev", name]);
        ok(&["ip", "-n", &self.node, "link", "set", name, "up"]);
        ok(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        ok(&["ip", "-n", ns, "route", "add", "default", "via", &node_ip.to_string()]);
    }

    fn serve(&mut self, i: usize) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), format!("b{i}")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.backends[i], "busybox", "httpd", "-f", "-p", "8080", "-h"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
        self.dirs.push(dir);
        // Wait until it listens.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .get(&self.client.clone(), &format!("{}:8080", Lab::backend_ip(i)))
            .is_ok_and(|b| b == format!("b{i}"))
        {
            assert!(Instant::now() < deadline, "backend b{i} does not serve");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET http://addr/id` from inside `ns`: the body, or curl's complaint.
    pub fn get(&self, ns: &str, addr: &str) -> Result<String, String> {
        let out = sh(&["ip", "netns", "exec", ns, "curl", "-sS", "-m", "2", &format!("http://{addr}/id")]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// The node's ruleset, for failure messages and checks.
    pub fn ruleset(&self) -> String {
        ok(&["ip", "netns", "exec", &self.node, "nft", "list", "ruleset"])
    }

    pub fn nft(&self) -> proxy::NftCommand {
        proxy::NftCommand { program: "nft".into(), netns: Some(self.node.clone()) }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.node, &self.client, &self.sink].into_iter().chain(&self.backends) {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let _ = &self.prefix;
    }
}
