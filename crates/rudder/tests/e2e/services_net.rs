//! Services on the wire: a `rudder server` WITH its own agent (so its service proxy
//! and cluster DNS run), real runc pods from the busybox test image, the real
//! kubectl. Pods may share the host's network (pod IP = node IP) or sit in CNI
//! sandboxes: the checks only use ClusterIPs, names and the node IP, so they hold
//! either way.
//!
//! The proxy's nftables table lives in the host's network namespace, so this file
//! has one test (two would fight over the table), a service CIDR no other test uses,
//! and a fake upstream resolver (the machine may have no internet).

use crate::cluster::{eventually, free_port};
use crate::netcheck::{fake_upstream, http_get};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);
const SERVICE_CIDR: &str = "10.99.7.0/24";
const DNS_IP: &str = "10.99.7.10";
const OUTSIDE_NAME: &str = "outside.example";
const OUTSIDE_IP: [u8; 4] = [192, 0, 2, 77];

/// `rudder server` with its agent; stopped with SIGTERM on drop so that the proxy
/// removes its table, then its containers and mounts are removed.
struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    fn start(upstream: SocketAddr) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["server", "--bind-address", "127.0.0.1", "--port", &free_port().to_string()])
            .args(["--service-cidr", SERVICE_CIDR, "--cluster-dns-port", "0"])
            .args(["--cluster-dns-upstream", &upstream.to_string()])
            // Pods on the node's network, so that the test leaves no bridge behind on
            // the machine and its DNS server on 127.0.0.1 is reachable from them
            // (network.rs covers pods in CNI sandboxes); a free kubelet port, so that
            // tests running side by side do not share 10250.
            .args(["--pod-network", "host", "--kubelet-port", &free_port().to_string()])
            .args(["--node-name", &format!("svcnet-{}", std::process::id())])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info,proxy=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder server");
        let s = Server { dir, child: Some(child) };
        eventually(Duration::from_secs(30), "the kubeconfig", || s.kubeconfig().exists().then_some(()));
        s
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33");
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, None);
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &str) {
        let out = self.kubectl(&["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// What a pod's container has written so far, read from the node's log file
    /// (no streaming endpoint needed).
    fn pod_log(&self, uid: &str) -> String {
        let path = self.dir.path().join("agent").join("pods").join(uid).join("main").join("0.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().filter_map(runtime::logfile::parse_record).map(|r| r.content).collect();
        lines.join("\n")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- server log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        // The agent's containers, then every mount under the server's data dir.
        crate::netlab::clean_node_data(&self.dir.path().join("agent"));
        crate::netlab::clean_node_data(self.dir.path());
    }
}

fn pod(name: &str, labels: &str, image: &str, command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, '{command}']\n"
    )
}

fn wait_ready(s: &Server, name: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let p = s.json(&["get", "pod", name]);
        let ready = p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if ready {
            return;
        }
        // What the pod got to says which part stalled: the scheduler (no node), the
        // agent (no container status) or the container.
        assert!(
            Instant::now() < deadline,
            "timed out after {LONG:?} waiting for pod {name} Ready; node {}, status {}",
            p["spec"]["nodeName"],
            p["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_reach_services_by_cluster_ip_and_name_and_the_node_port_and_port_forward_answer() {
    let upstream = fake_upstream("127.0.0.1", OUTSIDE_NAME, OUTSIDE_IP);
    let registry = runtime::testing::Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let image = format!("{}/test/busybox:v1", registry.host);
    let s = Server::start(upstream);

    // The DNS Service the API server keeps.
    let dns = eventually(LONG, "the kube-dns Service", || {
        let out = s.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "json"], None);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(dns["spec"]["clusterIP"], DNS_IP);
    assert_eq!(dns["metadata"]["labels"]["k8s-app"], "kube-dns");
    let slice = s.json(&["get", "endpointslice", "-n", "kube-system", "kube-dns"]);
    assert_ne!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );

    // A backend (busybox httpd) on a port of its own: with host networking pods share ports.
    let port = free_port();
    let backend =
        format!("mkdir -p /www && echo hello-from-backend > /www/index.html && exec httpd -f -p {port} -h /www");
    s.apply(&pod("backend", "app: web", &image, &backend));
    s.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  ports:\n  - port: 80\n    targetPort: {port}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: nobody\nspec:\n  selector: {{app: nobody}}\n  ports:\n  - port: 80\n"
    ));
    wait_ready(&s, "backend");
    let web = s.json(&["get", "svc", "web"]);
    let web_ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = web["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let nobody_ip = s.json(&["get", "svc", "nobody"])["spec"]["clusterIP"].as_str().unwrap().to_string();

    // The client checks in rounds and writes what it saw; the test reads its log.
    let get = "printf \"GET / HTTP/1.0\\r\\n\\r\\n\"";
    let client = [
        "cat /etc/resolv.conf".to_string(),
        "echo NS-WEB; nslookup web.default.svc.cluster.local".to_string(),
        "echo NS-KUBE; nslookup kubernetes.default".to_string(),
        format!("echo NS-OUT; nslookup {OUTSIDE_NAME}"),
        format!("echo HTTP-IP; {get} | nc -w 3 {web_ip} 80"),
        format!("echo HTTP-NAME; {get} | nc -w 3 web 80"),
        format!("a=$(date +%s); printf x | nc -w 5 {nobody_ip} 80; echo NOBODY-EXIT=$? SECONDS=$(( $(date +%s) - a ))"),
    ]
    .join("; ");
    s.apply(&pod(
        "client",
        "app: client",
        &image,
        &format!("while true; do echo ROUND; {client}; echo END; sleep 2; done"),
    ));
    wait_ready(&s, "client");
    let uid = s.json(&["get", "pod", "client"])["metadata"]["uid"].as_str().unwrap().to_string();

    // One whole round after everything is programmed (names and rules converge in seconds).
    let round = eventually(LONG, "a client round that reaches web by its ClusterIP", || {
        let log = s.pod_log(&uid);
        let rounds: Vec<&str> = log.split("ROUND").filter(|r| r.contains("END")).collect();
        rounds
            .iter()
            .rev()
            .find(|r| {
                r.split("HTTP-IP")
                    .nth(1)
                    .and_then(|x| x.split("HTTP-NAME").next())
                    .is_some_and(|x| x.contains("hello-from-backend"))
            })
            .map(|r| r.to_string())
    });
    // resolv.conf as the kubelet writes it for ClusterFirst.
    assert!(round.contains(&format!("nameserver {DNS_IP}")), "{round}");
    assert!(round.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{round}");
    assert!(round.contains("options ndots:5"), "{round}");
    // Names: a Service's, the kubernetes Service's through the search path, one outside.
    let section =
        |from: &str, to: &str| round.split(from).nth(1).and_then(|r| r.split(to).next()).unwrap_or("").to_string();
    assert!(section("NS-WEB", "NS-KUBE").contains(&web_ip), "{round}");
    assert!(section("NS-KUBE", "NS-OUT").contains("10.99.7.1"), "{round}");
    assert!(section("NS-OUT", "HTTP-IP").contains("192.0.2.77"), "names outside go upstream: {round}");
    // No endpoints: refused at once, not left hanging.
    let nobody = section("NOBODY-EXIT=", "END");
    assert!(!nobody.starts_with('0'), "{round}");
    let secs: u64 = section("SECONDS=", "\n").trim().parse().unwrap_or(99);
    assert!(secs < 4, "refused, not timed out: {round}");

    // The NodePort on the node's address.
    let node = s.json(&["get", "nodes"]);
    let node_ip = node["items"][0]["status"]["addresses"][0]["address"].as_str().unwrap().to_string();
    let addr: SocketAddr = format!("{node_ip}:{node_port}").parse().unwrap();
    let answer = eventually(LONG, "the NodePort", || http_get(addr).filter(|a| a.contains("hello-from-backend")));
    assert!(answer.starts_with("HTTP/1."), "{answer}");

    // `kubectl port-forward service/web`: kubectl picks a ready pod behind the Service
    // and forwards to the Service port's target port on it, through the API server
    // and the agent.
    for version in ["1.27", "1.33"] {
        let local = free_port();
        let child = Command::new(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"))
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .args(["port-forward", "service/web", &format!("{local}:80")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _forward = KillOnDrop(child);
        let addr: SocketAddr = format!("127.0.0.1:{local}").parse().unwrap();
        let answer = eventually(LONG, "port-forward to service/web", || {
            http_get(addr).filter(|a| a.contains("hello-from-backend"))
        });
        assert!(answer.starts_with("HTTP/1."), "kubectl {version}: {answer}");
    }
}

/// A child process killed when the test lets go of it, even on failure.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
