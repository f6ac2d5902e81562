//! Services across nodes: a `rudder server` with its own agent and two more `rudder
//! agent`s, each node in a network namespace of its own behind a switch namespace (as
//! in `network.rs`), each running its service proxy (nftables, in its namespace) and
//! pods in CNI sandboxes. A client pod on the server's node reaches backends on the
//! other two through a Service's ClusterIP, its name and its NodePort.
//!
//! ```text
//!  host: rhNN 10.199.X.1 (kubectl, the fake upstream resolver)
//!    │ veth
//!  switch namespace: bridge br0
//!    │ veth              │ veth        │ veth
//!  node 0: .2 server    node 1: .3    node 2: .4
//!  (API, DNS, agent)    agent         agent
//! ```
//!
//! The server runs inside node 0 with that node's address as its advertise address,
//! so that its DNS server (behind kube-dns, 10.43.0.10) is reachable from every pod.
//! Everything (namespaces, containers, mounts) is removed afterwards, also when the
//! test fails. Needs root, runc, nft, the CNI plugins and iproute2.

use crate::Cluster;
use crate::cluster::Kubectl;
use crate::netcheck::{fake_upstream, http_get};
use crate::netlab::{Fabric, clean_node_data, pull_into};
use crate::pods::{LONG, apply, block_on, condition, eventually, phase, wait_pod};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KUBECTL: &str = "1.33";
const OUTSIDE_NAME: &str = "outside.example";
const OUTSIDE_IP: [u8; 4] = [192, 0, 2, 78];
/// How long a backend that stops being ready (or is deleted) may still get traffic:
/// the probe (1 s period), the status update, the endpoint controllers and the
/// proxies of the nodes each take a moment.
const DRAIN: Duration = Duration::from_secs(15);

fn tail(what: &str, log: &str) {
    let lines: Vec<&str> = log.lines().rev().take(60).collect();
    eprintln!("--- {what} (last lines) ---");
    for l in lines.iter().rev() {
        eprintln!("{l}");
    }
}

/// The server with its own agent in node 0; dropping it stops the server and removes
/// what its agent left.
struct ServerNode(Cluster);

impl Drop for ServerNode {
    fn drop(&mut self) {
        self.0.kill9();
        if std::thread::panicking() {
            tail("server log", &self.0.log());
        }
        clean_node_data(&self.0.data_dir().join("agent"));
        clean_node_data(self.0.data_dir());
    }
}

/// A `rudder agent` in a node's namespace; dropping it kills it and cleans its data.
struct NodeAgent {
    child: Child,
    dir: tempfile::TempDir,
    name: String,
}

impl NodeAgent {
    fn start(c: &Cluster, fabric: &Fabric, i: usize, name: &str, image: &str) -> NodeAgent {
        let token = eventually(Duration::from_secs(10), "the node token", || {
            std::fs::read_to_string(c.data_dir().join("node-token")).ok().filter(|t| t.ends_with('\n'))
        });
        let dir = tempfile::tempdir().unwrap();
        pull_into(&dir.path().join("images"), image);
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", fabric.nodes[i].display()))
            .arg(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--server", &c.url(), "--token", token.trim()])
            .args(["--node-name", name, "--node-ip", &fabric.node_ip(i)])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info,proxy=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder agent");
        NodeAgent { child, dir, name: name.to_string() }
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default();
            tail(&format!("agent {} log", self.name), &log);
        }
        clean_node_data(self.dir.path());
    }
}

fn node_ready(k: &Kubectl, node: &str) {
    eventually(LONG, &format!("node {node} Ready with a podCIDR"), || {
        let out = k.run(&["get", "node", node, "-o", "json"]);
        let n: Value = serde_json::from_str(&out.stdout).ok()?;
        let ready = n["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && n["spec"]["podCIDR"].is_string()).then_some(())
    });
}

fn running(k: &Kubectl, name: &str) -> Value {
    wait_pod(k, name, &format!("{name} Running and Ready"), |p| {
        phase(p) == "Running" && condition(p, "Ready") == "True"
    })
}

/// A backend on `node` answering "hello from NAME" on 8080; Ready while /tmp/ready
/// exists, so that the test can take it out of service without stopping it.
fn backend(name: &str, node: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'touch /tmp/ready; mkdir -p /www; echo hello from $(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www']
    readinessProbe:
      exec: {{command: [cat, /tmp/ready]}}
      periodSeconds: 1
      failureThreshold: 1
    ports:
    - {{name: http, containerPort: 8080}}
"#
    )
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web-headless
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  type: ExternalName
  externalName: outside.example
"#;

/// Runs a shell script in the client pod; its stdout (empty when exec fails).
fn in_client(k: &Kubectl, script: &str) -> String {
    let out = k.run(&["exec", "client", "--", "sh", "-c", script]);
    if !out.ok {
        eprintln!("exec in client: {}", out.stderr);
    }
    out.stdout
}

/// `n` requests to `target` port 80 from the client; how many each backend answered,
/// and how many got no answer from anyone.
fn spread(k: &Kubectl, target: &str, n: usize) -> (std::collections::BTreeMap<String, usize>, usize) {
    let script = format!(
        "for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 80 | grep 'hello from' || echo NONE; done"
    );
    let out = in_client(k, &script);
    let mut seen = std::collections::BTreeMap::new();
    let mut none = 0;
    for l in out.lines() {
        match l.strip_prefix("hello from ") {
            Some(who) => *seen.entry(who.trim().to_string()).or_insert(0) += 1,
            None => none += 1,
        }
    }
    // Lines missing altogether (exec failed) count as unanswered.
    let answered: usize = seen.values().sum();
    (seen, n.saturating_sub(answered).max(none))
}

/// Waits until every one of `n` requests is answered, by exactly the backends `want`.
fn until_served_by(k: &Kubectl, target: &str, want: &[&str], timeout: Duration) -> Duration {
    let start = Instant::now();
    let n = 10 * want.len();
    loop {
        let (seen, none) = spread(k, target, n);
        let names: Vec<&str> = seen.keys().map(String::as_str).collect();
        if none == 0 && names == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{target}: want answers from {want:?}, last round {seen:?}, {none} unanswered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn nslookup(k: &Kubectl, name: &str, want: &[&str]) -> String {
    eventually(LONG, &format!("{name} to resolve to {want:?}"), || {
        let out = in_client(k, &format!("nslookup {name}"));
        want.iter().all(|w| out.contains(w)).then_some(out)
    })
}

#[test]
fn a_service_spreads_over_ready_backends_on_other_nodes_by_ip_name_and_node_port() {
    if !crate::netlab::can_run("multi-node Services test") {
        return;
    }
    // Declared first, dropped last: the namespaces go after everything in them.
    let fabric = Fabric::new(3, 198, "s");
    let upstream = fake_upstream(&fabric.host_ip(), OUTSIDE_NAME, OUTSIDE_IP);
    let registry = runtime::testing::Registry::start();
    block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let image = format!("{}/test/busybox:v1", registry.host);
    let names: Vec<String> = (0..3).map(|i| format!("sn{}-{i}", fabric.host_if)).collect();
    let flags = [
        "--node-name",
        names[0].as_str(),
        // Upstream's grace period: the agents renew every 10 s, and a loaded machine
        // must not make a node flap NotReady and drop its pods from the Services.
        "--node-monitor-grace-period",
        "40s",
        "--cluster-dns-upstream",
        &upstream.to_string(),
    ];
    let server = ServerNode(Cluster::start_in(&fabric.nodes[0], &fabric.node_ip(0), &flags));
    let c = &server.0;
    pull_into(&c.data_dir().join("images"), &image);
    let _a1 = NodeAgent::start(c, &fabric, 1, &names[1], &image);
    let _a2 = NodeAgent::start(c, &fabric, 2, &names[2], &image);
    let k = c.kubectl(KUBECTL);
    for n in &names {
        node_ready(&k, n);
    }

    // The client on node 0, backends on nodes 1 and 2.
    apply(
        &k,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: {image}, imagePullPolicy: IfNotPresent, command: [sleep, '100000']}}\n",
            names[0]
        ),
    );
    apply(&k, &backend("b1", &names[1], &image));
    apply(&k, &backend("b2", &names[2], &image));
    apply(&k, SERVICES);
    running(&k, "client");
    let ip_of = |p: &Value| p["status"]["podIP"].as_str().unwrap().to_string();
    let (b1, b2) = (running(&k, "b1"), running(&k, "b2"));
    assert_eq!(b1["spec"]["nodeName"], names[1].as_str());
    assert_eq!(b2["spec"]["nodeName"], names[2].as_str());
    let (ip1, ip2) = (ip_of(&b1), ip_of(&b2));
    let web = serde_json::from_str::<Value>(&k.ok(&["get", "svc", "web", "-o", "json"])).unwrap();
    let web_ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = web["spec"]["ports"][0]["nodePort"].as_u64().unwrap();

    // By ClusterIP and by name, spread over both backends.
    until_served_by(&k, &web_ip, &["b1", "b2"], LONG);
    until_served_by(&k, "web", &["b1", "b2"], Duration::from_secs(30));
    let out = nslookup(&k, "web.default.svc.cluster.local", &[&web_ip]);
    assert!(out.contains("Address"), "{out}");
    // A headless Service: the pods' own addresses.
    nslookup(&k, "web-headless.default.svc.cluster.local", &[&ip1, &ip2]);
    // ExternalName as a CNAME, and a name outside the cluster through the upstream.
    nslookup(&k, "ext.default.svc.cluster.local", &[OUTSIDE_NAME]);
    nslookup(&k, OUTSIDE_NAME, &["192.0.2.78"]);

    // Scaling up: a third backend joins.
    apply(&k, &backend("b3", &names[2], &image));
    running(&k, "b3");
    until_served_by(&k, &web_ip, &["b1", "b2", "b3"], Duration::from_secs(30));

    // The NodePort on every node's address, reached from outside the nodes.
    for i in 0..3 {
        let addr: SocketAddr = format!("{}:{node_port}", fabric.node_ip(i)).parse().unwrap();
        let answer = eventually(Duration::from_secs(30), &format!("the NodePort on node {i}"), || {
            http_get(addr).filter(|a| a.contains("hello from b"))
        });
        assert!(answer.starts_with("HTTP/1."), "{answer}");
    }

    // A backend that stops being ready drops out within seconds; back when ready again.
    k.ok(&["exec", "b1", "--", "rm", "/tmp/ready"]);
    let took = until_served_by(&k, &web_ip, &["b2", "b3"], DRAIN);
    eprintln!("b1 out of service after {took:?}");
    k.ok(&["exec", "b1", "--", "touch", "/tmp/ready"]);
    until_served_by(&k, &web_ip, &["b1", "b2", "b3"], DRAIN);

    // A deleted backend drops out within seconds too.
    k.ok(&["delete", "pod", "b2", "--wait=false"]);
    let took = until_served_by(&k, &web_ip, &["b1", "b3"], DRAIN);
    eprintln!("b2 out of service after {took:?}");
    nslookup(&k, "web-headless.default.svc.cluster.local", &[&ip1]);
}
