//! `kubectl top nodes` and `kubectl top pods` (with `-l`, `-A`, `--containers`, and
//! one pod by name) with the real kubectl 1.27 and 1.33: a `rudder agent` process runs
//! a real pod under runc that burns CPU and holds memory, the API server scrapes the
//! agent's `/metrics/resource` and serves `metrics.k8s.io/v1beta1`.
//!
//! The agent's kubelet-port server is what the API server scrapes. The agent runs
//! pods on the host network (`--pod-network host`), so the test leaves no bridge or
//! iptables chains on the machine. Needs root and runc.

use crate::cluster::{Cluster, KUBECTL_VERSIONS, Kubectl};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "timed out waiting for {what}; last:\n{last}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A `rudder agent` process on its own data dir and kubelet port; dropping it kills
/// it and removes its containers and mounts.
struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    name: String,
    port: u16,
}

impl Agent {
    fn start(c: &Cluster) -> Agent {
        let token = eventually(Duration::from_secs(10), "the node token", || {
            std::fs::read_to_string(c.data_dir().join("node-token"))
                .ok()
                .filter(|t| t.ends_with('\n'))
                .ok_or_else(|| "none yet".to_string())
        });
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let name = format!("top-{}", c.port);
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--server", &c.url(), "--token", token.trim()])
            .args(["--node-name", &name, "--node-ip", "127.0.0.1", "--kubelet-port", &port.to_string()])
            .args(["--pod-network", "host"])
            .arg("--data-dir")
            .arg(dir.path())
            // Many agents share the host's network here: one proxy table would not do.
            .arg("--disable-proxy")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder agent");
        Agent { child: Some(child), dir, name, port }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.data().join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- agent log (last lines) ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        crate::netlab::clean_node_data(self.data());
    }
}

/// The rows of `kubectl top` output whose first column is `first`, split on spaces.
fn rows(out: &str, first: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.first().is_some_and(|c| c == first))
        .collect()
}

/// `16Mi` → 16 (kubectl prints memory in Mi).
fn mebibytes(s: &str) -> u64 {
    s.trim_end_matches("Mi").parse().unwrap_or(0)
}

fn top(k: &Kubectl, args: &[&str]) -> Result<String, String> {
    let out = k.run(args);
    if out.ok { Ok(out.stdout) } else { Err(format!("{}{}", out.stdout, out.stderr)) }
}

const BURN: &str = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; while true; do :; done";

#[test]
fn top_nodes_and_pods_with_kubectl() {
    if !rustix::process::geteuid().is_root() || Command::new("runc").arg("--version").output().is_err() {
        eprintln!("top end-to-end test skipped: it needs root and runc");
        return;
    }
    let c = Cluster::start();
    let registry = runtime::testing::Registry::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
    let agent = Agent::start(&c);
    let k = c.kubectl(KUBECTL_VERSIONS[1]);
    eventually(LONG, "the node to register Ready", || {
        let out =
            k.run(&["get", "node", &agent.name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        if out.ok && out.stdout == "True" { Ok(()) } else { Err(out.stderr) }
    });
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: burner\n  labels: {{app: burner}}\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: burn\n    image: {}/test/busybox:v1\n    command: [sh, -c, '{BURN}']\n    resources:\n      limits: {{cpu: 100m, memory: 64Mi}}\n",
        agent.name, registry.host
    );
    k.ok_stdin(&["apply", "-f", "-"], &pod);
    eventually(LONG, "the pod Running", || {
        let out = k.run(&["get", "pod", "burner", "-o", "jsonpath={.status.phase}"]);
        if out.stdout == "Running" { Ok(()) } else { Err(format!("{}{}", out.stdout, out.stderr)) }
    });
    // The agent serves its kubelet port itself (the API server scrapes it there).
    eventually(LONG, "the agent's kubelet port", || {
        std::net::TcpStream::connect(("127.0.0.1", agent.port)).map(|_| ()).map_err(|e| e.to_string())
    });

    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let nodes = eventually(LONG, "kubectl top nodes", || {
            let out = top(&k, &["top", "nodes"])?;
            let r = rows(&out, &agent.name);
            // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
            match r.first() {
                Some(f) if f.len() >= 5 && mebibytes(&f[3]) > 0 => Ok(out),
                _ => Err(out),
            }
        });
        assert!(nodes.starts_with("NAME"), "{nodes}");

        let pods = eventually(LONG, "kubectl top pods", || {
            let out = top(&k, &["top", "pods"])?;
            match rows(&out, "burner").first() {
                // NAME CPU(cores) MEMORY(bytes): the loop burns CPU and the pod holds
                // 24 MiB in its /dev/shm.
                Some(f) if f.len() == 3 && mebibytes(&f[2]) >= 20 && f[1] != "0m" => Ok(out),
                _ => Err(out),
            }
        });
        assert!(pods.contains("CPU(cores)"), "{pods}");

        let selected = k.ok(&["top", "pods", "-l", "app=burner"]);
        assert_eq!(rows(&selected, "burner").len(), 1, "{selected}");
        let none = k.run(&["top", "pods", "-l", "app=nothing"]);
        assert!(none.ok && rows(&none.stdout, "burner").is_empty(), "{}{}", none.stdout, none.stderr);
        assert!(none.stderr.contains("No resources found"), "{}", none.stderr);

        let all = k.ok(&["top", "pods", "--all-namespaces"]);
        assert_eq!(
            rows(&all, "default").iter().filter(|r| r.get(1).is_some_and(|n| n == "burner")).count(),
            1,
            "{all}"
        );

        let containers = k.ok(&["top", "pod", "burner", "--containers"]);
        // POD NAME CPU(cores) MEMORY(bytes)
        let row = rows(&containers, "burner");
        assert!(row.len() == 1 && row[0][1] == "burn" && mebibytes(&row[0][3]) >= 20, "{containers}");

        eprintln!("kubectl {v}:\n{nodes}{pods}{containers}");
        let one = k.ok(&["top", "node", &agent.name]);
        assert_eq!(rows(&one, &agent.name).len(), 1, "{one}");
        // `kubectl get` on the metrics resources prints metrics-server's Table.
        let got = k.ok(&["get", "pods.metrics.k8s.io", "burner"]);
        assert!(got.contains("WINDOW") && rows(&got, "burner").len() == 1, "{got}");
        let got = k.ok(&["get", "nodes.metrics.k8s.io"]);
        assert!(rows(&got, &agent.name).len() == 1, "{got}");

        let missing = k.run(&["top", "pod", "nope"]);
        assert!(!missing.ok && missing.stderr.contains("not found"), "{}", missing.stderr);
    }

    // The raw API, as metrics-server answers it.
    let raw = c.curl(&[&format!("{}/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner", c.url())]);
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(m["kind"], "PodMetrics", "{m}");
    assert_eq!(m["metadata"]["labels"]["app"], "burner", "{m}");
    assert!(m["window"].as_str().is_some_and(|w| w.ends_with('s')), "{m}");
    let cpu = m["containers"][0]["usage"]["cpu"].as_str().unwrap_or_default().to_string();
    assert!(!cpu.is_empty() && cpu != "0", "{m}");
    k.ok(&["delete", "pod", "burner", "--wait=false"]);
}
