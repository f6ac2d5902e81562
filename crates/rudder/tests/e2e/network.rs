//! Pods in CNI sandboxes on real nodes: `rudder agent` processes, each in a network
//! namespace of its own (as if on a machine of its own), joined to a real server, run
//! pods with the real runc and the real CNI plugins; kubectl reaches them through the
//! API server and the agents' streaming servers.
//!
//! The test wires a small network and removes it afterwards, also when it fails:
//!
//! ```text
//!  host: rhNN 10.199.X.1 (the API server listens here)
//!    │ veth
//!  switch namespace: bridge br0 (bridged traffic never meets the host's iptables)
//!    │ veth            │ veth
//!  node a: eth0 .2   node b: eth0 .3   each runs `nsenter --net=… rudder agent`
//! ```
//!
//! Each agent makes its bridge, pod namespaces, iptables chains and routes inside its
//! node's namespace, so they vanish with it. Images are put in each agent's store
//! beforehand (the registry listens on the host's loopback, which a node cannot reach).
//! Needs root, runc, the CNI plugins, iproute2 and iptables.

use crate::Cluster;
use crate::cluster::{Kubectl, free_port};
use crate::netlab::{Fabric, clean_node_data, pull_into};
use crate::pods::{LONG, apply, block_on, condition, events, eventually, phase, pod_json, wait_pod};
use runtime::sandbox::Cidr;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KUBECTLS: &[&str] = crate::KUBECTL_VERSIONS;
/// Upstream's node grace period: the server's default (8 s) is shorter than the
/// agent's 10 s heartbeat, and on a loaded machine a missed beat would have the node
/// lifecycle controller evict the pods these tests watch.
const SERVER_FLAGS: &[&str] = &["--node-monitor-grace-period", "40s"];

/// A `rudder agent` in a node's network namespace, with a data dir of its own.
struct NodeAgent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    name: String,
    netns: PathBuf,
    ip: String,
    server: String,
    token: String,
}

impl NodeAgent {
    fn start(c: &Cluster, fabric: &Fabric, i: usize, name: &str, image: &str) -> NodeAgent {
        let token = eventually(Duration::from_secs(10), "the node token", || {
            std::fs::read_to_string(c.data_dir().join("node-token")).ok().filter(|t| t.ends_with('\n'))
        });
        let a = NodeAgent {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            name: name.to_string(),
            netns: fabric.nodes[i].clone(),
            ip: fabric.node_ip(i),
            server: c.url(),
            token: token.trim().to_string(),
        };
        // The image, pulled on the host into the agent's store.
        pull_into(&a.dir.path().join("images"), image);
        let mut a = a;
        a.launch();
        a
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data().join("agent.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--server", &self.server, "--token", &self.token])
            .args(["--node-name", &self.name, "--node-ip", &self.ip])
            .arg("--data-dir")
            .arg(self.dir.path())
            .env("RUST_LOG", "info,agent=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder agent");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("agent.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn containers(&self) -> Vec<String> {
        crate::netlab::containers(self.data())
    }

    fn sandbox_dir(&self, uid: &str) -> PathBuf {
        self.data().join("sandboxes").join(uid)
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- agent {} log (last lines) ---", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        clean_node_data(self.data());
    }
}

/// Removes what a node's agent left under its data dir: runc's containers, then the
/// root filesystems, tmpfs volumes and pod namespaces (their veths go with them).
fn wait_ready(k: &Kubectl, node: &str) -> Value {
    eventually(LONG, &format!("node {node} Ready with a podCIDR"), || {
        let out = k.run(&["get", "node", node, "-o", "json"]);
        let n: Value = serde_json::from_str(&out.stdout).ok()?;
        let ready = n["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && n["spec"]["podCIDR"].is_string()).then_some(n)
    })
}

fn pod_cidr(node: &Value) -> Cidr {
    node["spec"]["podCIDR"].as_str().unwrap().parse().unwrap()
}

/// A pod that serves "hello from NAME" over HTTP on 8080 (Ready once it listens, as
/// the agent's probe sees it by pod IP) and, on demand, logs a line.
fn web_pod(name: &str, node: &str, image: &str, extra_port: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo started; mkdir -p /www; echo hello from $(hostname) > /www/index.html; httpd -p 8080 -h /www; while true; do if [ -f /tmp/go ]; then echo followed; rm -f /tmp/go; fi; sleep 0.1; done']
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
    ports:
    - containerPort: 8080{extra_port}
  - name: reader
    image: {image}
    imagePullPolicy: IfNotPresent
    stdin: true
    command: [sh, -c, 'while read l; do echo got $l; done']
"#
    )
}

fn running(k: &Kubectl, name: &str) -> Value {
    wait_pod(k, name, &format!("{name} Running and Ready"), |p| {
        phase(p) == "Running" && condition(p, "Ready") == "True"
    })
}

fn pod_ip(p: &Value) -> std::net::IpAddr {
    p["status"]["podIP"].as_str().unwrap_or_default().parse().unwrap()
}

/// A child's stdout lines as they come, readable with a timeout.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fetches `/` from `ip:8080` inside pod `from` (busybox nc: its static wget
/// crashes), retrying while routes settle.
fn fetch_from_pod(k: &Kubectl, from: &str, ip: std::net::IpAddr, want: &str) {
    let deadline = Instant::now() + LONG;
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080");
    loop {
        let out = k.run(&["exec", from, "-c", "web", "--", "sh", "-c", &script]);
        if out.ok && out.stdout.starts_with("HTTP/1.") && out.stdout.ends_with(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{from} -> {ip}:8080: {:?}{}", out.stdout, out.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_pod_in_its_sandbox_gets_an_address_and_streams() {
    if !crate::netlab::can_run("CNI end-to-end test") {
        return;
    }
    let fabric = Fabric::new(1, 199, "h");
    let c = Cluster::start_on(&fabric.host_ip(), SERVER_FLAGS);
    let registry = runtime::testing::Registry::start();
    block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let image = format!("{}/test/busybox:v1", registry.host);
    let agent = NodeAgent::start(&c, &fabric, 0, &format!("cni-{}", c.port), &image);
    let k = c.kubectl(KUBECTLS[KUBECTLS.len() - 1]);
    let node = wait_ready(&k, &agent.name);
    let host_port = 18080;
    apply(&k, &web_pod("web", &agent.name, &image, &format!("\n      hostPort: {host_port}")));
    let p = running(&k, "web");
    let cidr = pod_cidr(&node);
    let ip = pod_ip(&p);
    assert!(cidr.contains(ip), "pod IP {ip} outside the node's podCIDR {cidr}");
    assert_eq!(p["status"]["hostIP"], agent.ip.as_str());
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();

    // The pod's own hostname and address, and its HTTP server reached by pod IP and
    // through its hostPort on the node.
    let out = k.ok(&["exec", "web", "-c", "web", "--", "sh", "-c", "hostname; ip addr show eth0"]);
    assert!(out.starts_with("web\n") && out.contains(&format!("inet {ip}/")), "{out}");
    let from_host = |url: &str| Command::new("curl").args(["-sS", "--max-time", "5", url]).output().unwrap();
    let via_host_port = from_host(&format!("http://{}:{host_port}/", agent.ip));
    assert_eq!(String::from_utf8_lossy(&via_host_port.stdout), "hello from web\n", "{via_host_port:?}");

    for &v in KUBECTLS {
        let k = c.kubectl(v);
        // logs, and logs -f seeing a line written after it started.
        assert!(k.ok(&["logs", "web", "-c", "web"]).starts_with("started\n"), "kubectl {v} logs");
        let mut follow = Proc(
            k.command(&["logs", "-f", "web", "-c", "web", "--tail=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(&mut follow.0);
        let first = lines.recv_timeout(LONG).expect("kubectl logs -f printed nothing");
        assert!(first == "started" || first == "followed", "{first}");
        k.ok(&["exec", "web", "-c", "web", "--", "touch", "/tmp/go"]);
        assert_eq!(lines.recv_timeout(LONG).unwrap(), "followed", "kubectl {v} logs -f");
        drop(follow);

        // exec: the exit code comes back.
        let out = k.run(&["exec", "web", "-c", "web", "--", "sh", "-c", "echo out; exit 7"]);
        assert_eq!((out.code, out.stdout.as_str()), (7, "out\n"), "kubectl {v} exec: {}", out.stderr);

        // attach to the container that reads its stdin.
        let mut attach = Proc(
            k.command(&["attach", "-i", "web", "-c", "reader"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(&mut attach.0);
        let mut input = attach.0.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        writeln!(input, "hi {v}").unwrap();
        input.flush().unwrap();
        assert_eq!(lines.recv_timeout(LONG).unwrap(), format!("got hi {v}"), "kubectl {v} attach");
        drop(attach);

        // port-forward to the server in the pod (its localhost, in its namespace).
        let local = free_port();
        let mut pf = Proc(
            k.command(&["port-forward", "pod/web", &format!("{local}:8080")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(&mut pf.0);
        let first = lines.recv_timeout(LONG).expect("kubectl port-forward printed nothing");
        assert!(first.starts_with("Forwarding from"), "{first}");
        let page = from_host(&format!("http://127.0.0.1:{local}/"));
        assert_eq!(String::from_utf8_lossy(&page.stdout), "hello from web\n", "kubectl {v} port-forward: {page:?}");
        drop(pf);
    }

    // A hostNetwork pod has the node's network and address.
    let hn = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hn\nspec:\n  nodeName: {}\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: {image}, imagePullPolicy: IfNotPresent, command: [sleep, '1000']}}\n",
        agent.name
    );
    apply(&k, &hn);
    let p = running(&k, "hn");
    assert_eq!(p["status"]["podIP"], agent.ip.as_str());
    let out = k.ok(&["exec", "hn", "--", "ip", "addr", "show", "eth0"]);
    assert!(out.contains(&format!("inet {}/24", agent.ip)), "{out}");
    k.ok(&["delete", "pod", "hn", "--wait=true", "--timeout=30s"]);

    // Deleting the pod removes its sandbox.
    k.ok(&["delete", "pod", "web", "--wait=true", "--timeout=30s"]);
    eventually(LONG, "the containers and the sandbox to go", || {
        (agent.containers().is_empty() && !agent.sandbox_dir(&uid).exists()).then_some(())
    });
    let failed = from_host(&format!("http://{}:{host_port}/", agent.ip));
    assert!(failed.stdout.is_empty(), "the hostPort outlived its pod: {failed:?}");
}

#[test]
fn pods_on_two_nodes_reach_each_other_and_survive_an_agent_restart() {
    if !crate::netlab::can_run("CNI end-to-end test") {
        return;
    }
    let fabric = Fabric::new(2, 199, "h");
    let c = Cluster::start_on(&fabric.host_ip(), SERVER_FLAGS);
    let registry = runtime::testing::Registry::start();
    block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let image = format!("{}/test/busybox:v1", registry.host);
    let mut a = NodeAgent::start(&c, &fabric, 0, &format!("a-{}", c.port), &image);
    let b = NodeAgent::start(&c, &fabric, 1, &format!("b-{}", c.port), &image);
    let k = c.kubectl(KUBECTLS[KUBECTLS.len() - 1]);
    let (node_a, node_b) = (wait_ready(&k, &a.name), wait_ready(&k, &b.name));
    assert_ne!(pod_cidr(&node_a), pod_cidr(&node_b));
    apply(&k, &web_pod("pa", &a.name, &image, ""));
    apply(&k, &web_pod("pb", &b.name, &image, ""));
    let (pa, pb) = (running(&k, "pa"), running(&k, "pb"));
    let (ip_a, ip_b) = (pod_ip(&pa), pod_ip(&pb));
    assert!(pod_cidr(&node_a).contains(ip_a) && pod_cidr(&node_b).contains(ip_b), "{ip_a} {ip_b}");
    fetch_from_pod(&k, "pa", ip_b, "hello from pb\n");
    fetch_from_pod(&k, "pb", ip_a, "hello from pa\n");
    // The agent of node a stops and comes back: it adopts the pod and its sandbox.
    let before = pa["status"]["containerStatuses"].clone();
    a.kill9();
    assert_eq!(a.containers().len(), 2, "the containers outlive the agent");
    a.launch();
    std::thread::sleep(Duration::from_secs(5));
    let after = running(&k, "pa");
    assert_eq!(pod_ip(&after), ip_a, "{}", a.log());
    for (old, new) in before.as_array().unwrap().iter().zip(after["status"]["containerStatuses"].as_array().unwrap()) {
        assert_eq!(new["containerID"], old["containerID"], "{}", a.log());
        assert_eq!(new["restartCount"], 0);
        assert_eq!(new["state"]["running"]["startedAt"], old["state"]["running"]["startedAt"]);
    }
    assert_eq!(a.containers().len(), 2, "no duplicates: {:?}", a.containers());
    fetch_from_pod(&k, "pb", ip_a, "hello from pa\n");
    fetch_from_pod(&k, "pa", ip_b, "hello from pb\n");

    // A pod deleted while its agent is down: its containers and sandbox go on start.
    let uid_a = after["metadata"]["uid"].as_str().unwrap().to_string();
    a.kill9();
    k.ok(&["delete", "pod", "pa", "--grace-period=0", "--force", "--wait=false"]);
    a.launch();
    eventually(LONG, "the orphan's containers and sandbox to go", || {
        (a.containers().is_empty() && !a.sandbox_dir(&uid_a).exists()).then_some(())
    });
    assert!(pod_json(&k, "pa").is_none(), "{}", events(&k, "pa"));
}

/// A server with its own node agent; dropping it stops the server and removes what
/// its agent left.
struct OwnNode(Cluster);

impl Drop for OwnNode {
    fn drop(&mut self) {
        self.0.kill9();
        if std::thread::panicking() {
            let log = self.0.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- server log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        clean_node_data(&self.0.data_dir().join("agent"));
        clean_node_data(self.0.data_dir());
    }
}

#[test]
fn the_servers_own_agent_runs_pods_in_sandboxes_and_streams() {
    if !crate::netlab::can_run("CNI end-to-end test") {
        return;
    }
    let fabric = Fabric::new(1, 199, "h");
    let registry = runtime::testing::Registry::start();
    block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let image = format!("{}/test/busybox:v1", registry.host);
    let name = format!("srv-{}", fabric.host_if);
    let mut flags = vec!["--node-name", name.as_str()];
    flags.extend_from_slice(SERVER_FLAGS);
    let server = OwnNode(Cluster::start_in(&fabric.nodes[0], &fabric.node_ip(0), &flags));
    let c = &server.0;
    // The server's agent keeps its images in the server's data dir.
    pull_into(&c.data_dir().join("images"), &image);
    let k = c.kubectl(KUBECTLS[KUBECTLS.len() - 1]);
    let node = wait_ready(&k, &name);
    apply(&k, &web_pod("web", &name, &image, ""));
    let p = running(&k, "web");
    assert!(pod_cidr(&node).contains(pod_ip(&p)), "{}", p["status"]);
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    // Through the API server to the agent's streaming server, whose certificate the
    // server issued in-process.
    let out = k.run(&["exec", "web", "-c", "web", "--", "sh", "-c", "echo out; exit 4"]);
    assert_eq!((out.code, out.stdout.as_str()), (4, "out\n"), "{}", out.stderr);
    assert!(k.ok(&["logs", "web", "-c", "web"]).starts_with("started\n"));
    let local = free_port();
    let mut pf = Proc(
        k.command(&["port-forward", "pod/web", &format!("{local}:8080")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut pf.0);
    let first = lines.recv_timeout(LONG).expect("kubectl port-forward printed nothing");
    assert!(first.starts_with("Forwarding from"), "{first}");
    let page =
        Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{local}/")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout), "hello from web\n", "{page:?}");
    drop(pf);
    k.ok(&["delete", "pod", "web", "--wait=true", "--timeout=30s"]);
    let sandbox = c.data_dir().join("agent/sandboxes").join(&uid);
    eventually(LONG, "the sandbox to go", || (!sandbox.exists()).then_some(()));
}
