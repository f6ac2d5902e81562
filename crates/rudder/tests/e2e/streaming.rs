//! Streaming end to end: `kubectl logs` (`-f`, `--tail`, `--timestamps`, `--since`,
//! `--since-time`, `--previous`), `exec` (with and without `-it`, the exit code coming
//! back), `attach` and `port-forward`, with the real kubectl 1.27 (SPDY) and 1.33
//! (WebSocket v5, and SPDY tunnelled in WebSocket for port-forward), through the real
//! `rudder server` to the agent's streaming server, and real containers under runc.
//! Also a raw `v4.channel.k8s.io` client (as the official Python client speaks it)
//! for exec and port-forward.
//!
//! The agent's pod workers are not part of this: the test runs the pods' containers
//! with the runtime itself and serves the streaming server with a `PodLookup` over
//! them. Needs root (runc, mounts).

use crate::cluster::{Cluster, KUBECTL_VERSIONS};
use agent::server::{ContainerRef, LookupError, PodLookup, PodNetwork, ServerTls};
use runtime::container::{CreateOptions, Runtime, Status, wait_stopped};
use runtime::registries::RegistryConfig;
use runtime::runc::{Runc, RuncConfig};
use runtime::snapshot::{self, Snapshotter};
use runtime::spec::{self, ContainerConfig};
use runtime::testing::{Registry, busybox_image};
use runtime::{Image, ImageStore, Puller, Reference};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODE: &str = "stream-node";
const LONG: Duration = Duration::from_secs(30);

/// The containers of the test pods, as the agent would know them.
#[derive(Default)]
struct Pods {
    containers: Mutex<HashMap<(String, String), ContainerRef>>,
}

impl Pods {
    fn set(&self, pod: &str, container: &str, c: ContainerRef) {
        self.containers.lock().unwrap().insert((pod.to_string(), container.to_string()), c);
    }
}

impl PodLookup for Pods {
    fn container(&self, _ns: &str, pod: &str, container: Option<&str>) -> Result<ContainerRef, LookupError> {
        let map = self.containers.lock().unwrap();
        let mut mine = map.iter().filter(|((p, _), _)| p == pod);
        let found = match container {
            Some(c) => map.get(&(pod.to_string(), c.to_string())).cloned(),
            None => mine.next().map(|(_, c)| c.clone()),
        };
        found.ok_or_else(|| LookupError::NotFound(format!("container {container:?} not found in pod {pod:?}")))
    }

    fn pod_uid(&self, _ns: &str, pod: &str) -> Option<String> {
        let map = self.containers.lock().unwrap();
        map.iter().find(|((p, _), _)| p == pod).map(|(_, c)| c.pod_uid.clone())
    }
}

/// Reaches a pod's ports through the network namespace of its container.
struct Netns {
    runc: Arc<Runc>,
    pods: Arc<Pods>,
}

#[async_trait::async_trait]
impl PodNetwork for Netns {
    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        let id = {
            let map = self.pods.containers.lock().unwrap();
            map.values().find(|c| c.pod_uid == pod_uid).map(|c| c.container_id.clone())
        }
        .ok_or_else(|| std::io::Error::other("no such pod"))?;
        let state = self.runc.state(&id).await.map_err(std::io::Error::other)?;
        agent::server::portforward::connect_in_netns(PathBuf::from(format!("/proc/{}/ns/net", state.pid)), port).await
    }
}

/// Removes containers and their root filesystems, whatever happened.
struct Containers {
    runc_root: PathBuf,
    made: Mutex<Vec<(String, PathBuf)>>,
}

impl Drop for Containers {
    fn drop(&mut self) {
        for (id, dir) in self.made.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
            let _ = snapshot::remove_rootfs(dir);
        }
    }
}

struct Node {
    containers: Containers,
    store: ImageStore,
    snapshots: Snapshotter,
    runc: Arc<Runc>,
    image: Image,
    data: PathBuf,
    _registry: Registry,
}

impl Node {
    async fn start(data: &Path) -> Node {
        let store = ImageStore::open(&data.join("images")).unwrap();
        let snapshots = Snapshotter::open(&data.join("snapshots")).unwrap();
        let registry = Registry::start();
        registry.push("test/busybox", "v1", &busybox_image()).await.unwrap();
        let puller = Puller::new(store.clone(), RegistryConfig::default());
        let r = Reference::parse_normalized(&format!("{}/test/busybox:v1", registry.host)).unwrap();
        let image = puller.pull(&r, &[]).await.unwrap();
        let runc = Runc::new(RuncConfig {
            runc: "runc".into(),
            root: data.join("runc"),
            shim: vec![env!("CARGO_BIN_EXE_rudder").into(), "shim".into()],
        })
        .unwrap();
        Node {
            containers: Containers { runc_root: data.join("runc"), made: Mutex::new(Vec::new()) },
            store,
            snapshots,
            runc: Arc::new(runc),
            image,
            data: data.to_path_buf(),
            _registry: registry,
        }
    }

    /// Runs a container and returns what the agent would know of it.
    async fn run(&self, uid: &str, name: &str, restart: u32, script: &str, stdin: bool, tty: bool) -> ContainerRef {
        let id = format!("{uid}-{name}-{restart}");
        let dir = self.data.join("containers").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        self.containers.made.lock().unwrap().push((id.clone(), dir.clone()));
        let layers = self.snapshots.prepare(&self.store, &self.image).unwrap();
        let rootfs = snapshot::mount_rootfs(&layers, &dir).unwrap();
        let config = ContainerConfig {
            rootfs,
            image: self.store.config(&self.image).unwrap().config.unwrap_or_default(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            hostname: Some(uid.to_string()),
            ..ContainerConfig::default()
        };
        spec::generate(&config).unwrap().write(&dir).unwrap();
        let log_dir = self.data.join("pods").join(uid).join(name);
        let options = CreateOptions { bundle: dir, log_path: log_dir.join(format!("{restart}.log")), stdin, tty };
        self.runc.run(&id, &options).await.unwrap();
        ContainerRef { container_id: id, log_dir, restart_count: restart, tty, stdin, pod_uid: uid.to_string() }
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs a command with optional input, giving up after a minute.
fn run(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Proc(cmd.spawn().unwrap());
    if let Some(input) = stdin {
        child.0.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let (mut out, mut err) = (child.0.stdout.take().unwrap(), child.0.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{cmd:?} did not finish within a minute");
        std::thread::sleep(Duration::from_millis(10));
    };
    Out { code: status.code().unwrap_or(-1), stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

fn kubectl(c: &Cluster, version: &str, args: &[&str]) -> Command {
    c.kubectl(version).command(args)
}

fn ok(c: &Cluster, version: &str, args: &[&str]) -> String {
    let out = run(kubectl(c, version, args), None);
    assert_eq!(out.code, 0, "kubectl {version} {args:?}:\n{}{}\nserver log:\n{}", out.stdout, out.stderr, c.log());
    out.stdout
}

/// Under a terminal (`script`), as a person at a keyboard would run it.
fn in_terminal(c: &Cluster, version: &str, args: &[&str], input: &str) -> Out {
    let k = c.kubectl(version);
    let probe = k.command(args);
    let mut line = shell_quote(probe.get_program().to_str().unwrap());
    for a in probe.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(a.to_str().unwrap()));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"]);
    cmd.env_remove("KUBECONFIG");
    // Input arrives a little later, as typing does, so that the remote side is ready.
    let input = input.to_string();
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Proc(cmd.spawn().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = stdin.write_all(input.as_bytes());
        // Keep the terminal open until the command ends by itself.
        std::thread::sleep(Duration::from_secs(20));
    });
    let mut out = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{line} did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(writer);
    Out { code: status.code().unwrap_or(-1), stdout: reader.join().unwrap(), stderr: String::new() }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn curl(c: &Cluster, method: &str, path: &str, content_type: &str, body: &str) {
    let out = c.curl(&[
        "-f",
        "-X",
        method,
        "-H",
        &format!("Content-Type: {content_type}"),
        "-d",
        body,
        &format!("{}{path}", c.url()),
    ]);
    assert!(
        out.status.success(),
        "{method} {path}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod_yaml(name: &str, container: &str, stdin: bool, tty: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {NODE}\n  containers:\n  - name: {container}\n    image: busybox\n    stdin: {stdin}\n    tty: {tty}\n"
    )
}

fn wait_for_log(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + LONG;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what:?} in {}: {text}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

const WEB: &str = "echo line1; echo line2; echo line3; sleep 0.3; echo err1 >&2; sleep 2; echo late; \
    mkdir -p /www; echo hello from the pod > /www/index.html; \
    dd if=/dev/zero of=/www/big bs=1M count=32 2>/dev/null; httpd -p 127.0.0.1:8080 -h /www; \
    while true; do if [ -f /tmp/go ]; then echo followed; rm -f /tmp/go; fi; sleep 0.1; done";

#[test]
fn logs_exec_attach_and_port_forward_with_kubectl() {
    if !rustix::process::geteuid().is_root() || Command::new("runc").arg("--version").output().is_err() {
        eprintln!("streaming end-to-end test skipped: it needs root and runc");
        return;
    }
    let c = Cluster::start();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let data = tempfile::tempdir().unwrap();
    let node = tokio.block_on(Node::start(data.path()));
    let pods = Arc::new(Pods::default());

    // The agent's streaming server, with a serving certificate the API server issues
    // to a node (with the join token) from the cluster CA.
    let token = std::fs::read_to_string(c.data_dir().join("node-token")).unwrap();
    let issued = Command::new("curl")
        .args(["-sS", "-f", "--cacert"])
        .arg(c.data_dir().join("tls/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-H", &format!("Rudder-Node-Name: {NODE}"), "-H", "Rudder-Node-IP: 127.0.0.1"])
        .arg(format!("{}/v1-rudder/serving-kubelet.crt", c.url()))
        .output()
        .unwrap();
    let pem = String::from_utf8(issued.stdout).unwrap();
    assert!(issued.status.success(), "{pem}{}", String::from_utf8_lossy(&issued.stderr));
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    let ca_pem = std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap();
    let tls = ServerTls { cert_pem: pem[..end].to_string(), key_pem: pem[end..].to_string(), client_ca_pem: ca_pem };
    let listener = tokio.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let agent_port = listener.local_addr().unwrap().port();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let runtime: Arc<dyn Runtime> = node.runc.clone();
    let network = Arc::new(Netns { runc: node.runc.clone(), pods: pods.clone() });
    tokio.spawn(agent::server::serve(listener, tls, pods.clone(), runtime, network, stop_rx));

    // The Node and Pods, as the agent would report them.
    let k = KUBECTL_VERSIONS[0];
    let node_yaml = format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n");
    let dir = c.data_dir();
    std::fs::write(dir.join("node.yaml"), node_yaml).unwrap();
    ok(&c, k, &["apply", "-f", dir.join("node.yaml").to_str().unwrap()]);
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}},{{"type":"Hostname","address":"{NODE}"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{agent_port}}}}}}}}}"#
    );
    curl(&c, "PATCH", &format!("/api/v1/nodes/{NODE}/status"), "application/merge-patch+json", &status);
    for (pod, container, stdin, tty) in
        [("web", "app", false, false), ("reader", "reader", true, false), ("term", "term", true, true)]
    {
        std::fs::write(dir.join(format!("{pod}.yaml")), pod_yaml(pod, container, stdin, tty)).unwrap();
        ok(&c, k, &["apply", "-f", dir.join(format!("{pod}.yaml")).to_str().unwrap()]);
        curl(
            &c,
            "PATCH",
            &format!("/api/v1/namespaces/default/pods/{pod}/status"),
            "application/merge-patch+json",
            r#"{"status":{"phase":"Running"}}"#,
        );
    }

    // web: a first run that ended (for --previous), then the running one.
    tokio.block_on(async {
        let first = node.run("uid-web", "app", 0, "echo previous run; exit 1", false, false).await;
        let state = wait_stopped(node.runc.as_ref(), &first.container_id, LONG).await.unwrap();
        assert_eq!(state.status, Status::Stopped);
        let web = node.run("uid-web", "app", 1, WEB, false, false).await;
        pods.set("web", "app", web);
        let reader = node.run("uid-reader", "reader", 0, "while read l; do echo got $l; done", true, false).await;
        pods.set("reader", "reader", reader);
    });
    let web_log = node.data.join("pods/uid-web/app/1.log");
    let text = wait_for_log(&web_log, " stdout F late\n");
    let late_at = text.lines().find(|l| l.ends_with(" stdout F late")).unwrap().split(' ').next().unwrap().to_string();
    let line3_at =
        text.lines().find(|l| l.ends_with(" stdout F line3")).unwrap().split(' ').next().unwrap().to_string();
    // kubectl sends sinceTime with whole seconds; the two lines are more than a second apart.
    let since_time = format!("{}Z", &late_at[..19]);
    assert!(since_time > line3_at, "{since_time} {line3_at}");
    wait_for_log(&web_log, " stdout F late\n");

    for (round, &v) in KUBECTL_VERSIONS.iter().enumerate() {
        // logs
        // Each round's `logs -f` check adds a line at the end.
        let all = ok(&c, v, &["logs", "web"]);
        let expected = format!("line1\nline2\nline3\nerr1\nlate\n{}", "followed\n".repeat(round));
        assert_eq!(all, expected, "kubectl {v} logs");
        let last_two: Vec<&str> = all.lines().rev().take(2).collect();
        assert_eq!(ok(&c, v, &["logs", "web", "--tail=2"]), format!("{}\n{}\n", last_two[1], last_two[0]));
        assert_eq!(ok(&c, v, &["logs", "web", "-c", "app", "--previous"]), "previous run\n");
        assert_eq!(ok(&c, v, &["logs", "web", "--since=1h"]), all);
        assert_eq!(
            ok(&c, v, &["logs", "web", &format!("--since-time={since_time}")]),
            &all[all.find("late").unwrap()..]
        );
        assert_eq!(ok(&c, v, &["logs", "web", "--limit-bytes=8"]), "line1\nli");
        let stamped = ok(&c, v, &["logs", "web", "--timestamps", "--tail=3"]);
        assert_eq!(stamped.lines().count(), 3);
        for (l, plain) in stamped.lines().zip(all.lines().skip(all.lines().count() - 3)) {
            let (ts, rest) = l.split_once(' ').unwrap();
            assert!(ts.len() == 30 && ts.ends_with('Z') && rest == plain, "{l}");
        }
        assert!(ok(&c, v, &["logs", "web", "--timestamps"]).contains(&format!("{late_at} late\n")));
        let wrong = run(kubectl(&c, v, &["logs", "web", "-c", "nope"]), None);
        assert!(
            wrong.code != 0 && wrong.stderr.contains("container nope is not valid for pod web"),
            "{}",
            wrong.stderr
        );
        let none = run(kubectl(&c, v, &["logs", "reader", "--previous"]), None);
        assert!(
            none.stderr.contains("previous terminated container \"reader\" in pod \"reader\" not found"),
            "{}",
            none.stderr
        );

        // logs -f sees a line written after it started.
        let mut follow = Proc(
            kubectl(&c, v, &["logs", "-f", "web", "--tail=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(follow.0.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), all.lines().last().unwrap());
        ok(&c, v, &["exec", "web", "--", "touch", "/tmp/go"]);
        assert_eq!(lines.next().unwrap().unwrap(), "followed", "kubectl {v} logs -f");
        drop(follow);

        // exec: output on both streams and the exit code.
        let out = run(kubectl(&c, v, &["exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]), None);
        assert_eq!(out.code, 3, "kubectl {v} exec: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "out\n");
        assert!(
            out.stderr.contains("err\n") && out.stderr.contains("command terminated with exit code 3"),
            "{}",
            out.stderr
        );
        let out = run(kubectl(&c, v, &["exec", "-i", "web", "--", "tr", "a-z", "A-Z"]), Some("hello\n"));
        assert_eq!((out.code, out.stdout.as_str()), (0, "HELLO\n"), "kubectl {v} exec -i: {}", out.stderr);
        // With a terminal.
        let out = in_terminal(&c, v, &["exec", "-it", "web", "--", "sh"], "tty; echo typed; exit 5\n");
        assert_eq!(out.code, 5, "kubectl {v} exec -it: {}", out.stdout);
        assert!(out.stdout.contains("/dev/pts/") && out.stdout.contains("typed"), "{}", out.stdout);
        // The protocol is the one this kubectl prefers: no fallback happened.
        let verbose = run(kubectl(&c, v, &["-v=6", "exec", "web", "--", "true"]), None);
        let method = if v == "1.27" { "POST" } else { "GET" };
        let upgraded = verbose.stderr.lines().any(|l| l.contains(method) && l.contains("/exec?") && l.contains("101"));
        let other = if v == "1.27" { "GET" } else { "POST" };
        let fell_back = verbose.stderr.lines().any(|l| l.contains(other) && l.contains("/exec?"));
        assert!(upgraded && !fell_back, "kubectl {v} exec did not upgrade with {method}:\n{}", verbose.stderr);
        let started = Instant::now();
        for _ in 0..5 {
            ok(&c, v, &["exec", "web", "--", "true"]);
        }
        println!(
            "    figures: kubectl {v} exec -- true: {:.0} ms each (mean of 5, kubectl start included)",
            started.elapsed().as_secs_f64() * 200.0
        );

        // attach without a terminal: input in, output out.
        let mut attach = Proc(
            kubectl(&c, v, &["attach", "-i", "reader"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(attach.0.stdout.take().unwrap()).lines();
        let mut input = attach.0.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        writeln!(input, "one {v}").unwrap();
        input.flush().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), format!("got one {v}"), "kubectl {v} attach");
        drop(attach);

        // attach to a terminal: a fresh shell for each version, ended by `exit`.
        let term = tokio.block_on(node.run("uid-term", "term", round as u32, "sh", true, true));
        pods.set("term", "term", term);
        let out = in_terminal(&c, v, &["attach", "-it", "term"], "echo attached-$((6*7))\nexit\n");
        assert!(out.stdout.contains("attached-42"), "kubectl {v} attach -it: {}", out.stdout);

        // port-forward, and its throughput.
        let local = free_port();
        let mut pf = Proc(
            kubectl(&c, v, &["port-forward", "pod/web", &format!("{local}:8080")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut pf_out = BufReader::new(pf.0.stdout.take().unwrap()).lines();
        let first = pf_out.next().unwrap().unwrap();
        // 1.27 upgrades with a SPDY POST, 1.33 with a WebSocket GET tunnelling SPDY.
        let mut verbose_pf = Proc(
            kubectl(&c, v, &["-v=6", "port-forward", "pod/web", &format!("{}:8080", free_port())])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut pf_log = BufReader::new(verbose_pf.0.stderr.take().unwrap()).lines();
        let pf_method = if v == "1.27" { "POST" } else { "GET" };
        let mut seen = Vec::new();
        loop {
            let l = pf_log.next().expect("kubectl port-forward -v=6 ended").unwrap();
            seen.push(l.clone());
            if l.contains("/portforward") && l.contains("101") {
                assert!(l.contains(pf_method), "kubectl {v} port-forward: {seen:#?}");
                break;
            }
            assert!(
                !l.contains("/portforward") || !l.contains(" 400 "),
                "kubectl {v} port-forward fell back: {seen:#?}"
            );
        }
        drop(verbose_pf);
        assert!(first.starts_with("Forwarding from"), "{first}");
        let get = |path: &str| {
            Command::new("curl")
                .args(["-sS", "--max-time", "30", &format!("http://127.0.0.1:{local}{path}")])
                .output()
                .unwrap()
        };
        let page = get("/index.html");
        assert_eq!(
            String::from_utf8_lossy(&page.stdout),
            "hello from the pod\n",
            "kubectl {v} port-forward: {}",
            String::from_utf8_lossy(&page.stderr)
        );
        let t = Instant::now();
        let big = get("/big");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(big.stdout.len(), 32 << 20, "{}", String::from_utf8_lossy(&big.stderr));
        println!("    figures: kubectl {v} port-forward: 32 MiB in {secs:.2} s ({:.0} MiB/s)", 32.0 / secs);
        drop(pf);
    }

    // A raw v4.channel.k8s.io client, as client libraries speak it.
    tokio.block_on(raw::v4_exec_and_port_forward(&c));

    // logs -f ends when the container stops.
    let v = KUBECTL_VERSIONS[KUBECTL_VERSIONS.len() - 1];
    let mut follow =
        Proc(kubectl(&c, v, &["logs", "-f", "reader"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let reader_id = pods.container("default", "reader", Some("reader")).unwrap().container_id;
    tokio.block_on(node.runc.kill(&reader_id, 9, false)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = follow.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "kubectl logs -f did not end when the container stopped");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

mod raw {
    //! A bare `v4.channel.k8s.io` WebSocket client over TLS, with the admin token.
    use super::*;
    use agent::server::websocket::{Message, OP_BINARY, Reader, encode};
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

    async fn connect(
        c: &Cluster,
        path: &str,
        protocol: &str,
    ) -> (Reader<tokio::io::ReadHalf<Tls>>, tokio::io::WriteHalf<Tls>) {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(c.data_dir().join("tls/ca.crt")).unwrap();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", c.port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
            c.admin_token()
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        // The answer's head, byte by byte so that nothing after it is lost.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains(&format!("sec-websocket-protocol: {protocol}")), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        let (rd, wr) = tokio::io::split(tls);
        (Reader::new(rd), wr)
    }

    async fn next_data(r: &mut Reader<tokio::io::ReadHalf<Tls>>) -> Option<(u8, Vec<u8>)> {
        loop {
            match tokio::time::timeout(LONG, r.next()).await.unwrap().unwrap()? {
                Message::Binary(b) if !b.is_empty() => return Some((b[0], b[1..].to_vec())),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    pub async fn v4_exec_and_port_forward(c: &Cluster) {
        // exec with an exit code: stdout, then the Status on channel 3, then close.
        let path = "/api/v1/namespaces/default/pods/web/exec?container=app&command=sh&command=-c&command=echo%20hi%3B%20exit%202&stdout=true&stderr=true";
        let (mut r, _w) = connect(c, path, "v4.channel.k8s.io").await;
        let mut stdout = Vec::new();
        let mut status = None;
        while let Some((ch, data)) = next_data(&mut r).await {
            match ch {
                1 => stdout.extend(data),
                3 => status = Some(serde_json::from_slice::<serde_json::Value>(&data).unwrap()),
                _ => {}
            }
        }
        assert_eq!(stdout, b"hi\n");
        let status = status.expect("a status on the error channel");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "2");

        // Round trips through `cat`, to measure exec latency end to end.
        let path = "/api/v1/namespaces/default/pods/web/exec?container=app&command=cat&stdin=true&stdout=true";
        let (mut r, mut w) = connect(c, path, "v4.channel.k8s.io").await;
        let mut times = Vec::new();
        for i in 0..50 {
            let line = format!("{i}\n");
            let mut msg = vec![0u8];
            msg.extend_from_slice(line.as_bytes());
            let t = Instant::now();
            w.write_all(&encode(OP_BINARY, &msg, Some([1, 2, 3, 4]))).await.unwrap();
            let mut got = Vec::new();
            while got != line.as_bytes() {
                let (ch, data) = next_data(&mut r).await.unwrap();
                if ch == 1 {
                    got.extend(data);
                }
            }
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "    figures: exec stdin->stdout round trip through the API server and agent (v4 websocket): p50 {:?}, p99 {:?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
        drop(w);

        // port-forward on channels: the port first on both, then the data.
        let path = "/api/v1/namespaces/default/pods/web/portforward?ports=8080";
        let (mut r, mut w) = connect(c, path, "v4.channel.k8s.io").await;
        let (mut data, mut error) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (ch, d) = next_data(&mut r).await.unwrap();
            if ch == 0 { data.extend(d) } else { error.extend(d) }
        }
        assert_eq!((data.as_slice(), error.as_slice()), (&8080u16.to_le_bytes()[..], &8080u16.to_le_bytes()[..]));
        let mut msg = vec![0u8];
        msg.extend_from_slice(b"GET /index.html HTTP/1.0\r\n\r\n");
        w.write_all(&encode(OP_BINARY, &msg, Some([9, 8, 7, 6]))).await.unwrap();
        let mut response = Vec::new();
        while let Some((ch, d)) = next_data(&mut r).await {
            if ch == 0 {
                response.extend(d);
            }
            if response.ends_with(b"hello from the pod\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.") && text.ends_with("hello from the pod\n"), "{text}");
    }
}
