//! A real `rudder server` process on a loopback port with a data dir of its own,
//! driven with the real kubectl binaries. Dropping a [`Cluster`] kills the process
//! and removes the data dir, also when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl versions every end-to-end case runs with: the oldest and newest
/// supported, which differ on the wire (JSON vs protobuf bodies, v2beta1 vs v2
/// discovery, OpenAPI v2 vs v3 validation).
pub const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.33"];

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The address the server listens on (and its kubeconfig names).
    host: String,
    /// Run in this network namespace, with the server's own node agent (none otherwise).
    netns: Option<PathBuf>,
    extra: Vec<String>,
    child: Option<Child>,
}

/// A port nothing listens on now, for a server a test is about to start. Not one the
/// kernel picks (port 0): those come from the range it also hands to outgoing
/// connections (32768–60999 here), and the test's own kubectl or client connections
/// could take it before the server binds it. Ports below that range, spread by
/// process and by call, both of TCP and UDP free on every address.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let port = FIRST + (offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % SPAN;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Starts a server with extra flags (e.g. `--store etcd`).
    pub fn start_with(extra: &[&str]) -> Cluster {
        Cluster::start_on("127.0.0.1", extra)
    }

    /// Starts a server listening on `host` (an address of this machine), e.g. one that
    /// agents in other network namespaces reach.
    pub fn start_on(host: &str, extra: &[&str]) -> Cluster {
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            host: host.to_string(),
            netns: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        c.launch();
        c
    }

    /// Starts a server with its own node agent in the network namespace `netns` (as on
    /// a machine of its own), listening on `host`, one of that namespace's addresses.
    pub fn start_in(netns: &Path, host: &str, extra: &[&str]) -> Cluster {
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            host: host.to_string(),
            netns: Some(netns.to_path_buf()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        c.launch();
        c
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn launch(&mut self) {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(env!("CARGO_BIN_EXE_rudder"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_rudder")),
        };
        cmd.args(["server", "--bind-address", &self.host]);
        if self.netns.is_none() {
            cmd.arg("--disable-agent");
        }
        let child = cmd
            .args(["--port", &self.port.to_string()])
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder server");
        self.child = Some(child);
        // The kubeconfig is written once the API serves.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.kubeconfig().exists() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rudder server exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "server not ready within 20s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.launch();
    }

    pub fn kubectl(&self, version: &str) -> Kubectl {
        let cache = self.dir.path().join(format!("cache-{version}"));
        Kubectl {
            bin: format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"),
            kubeconfig: self.kubeconfig(),
            cache,
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tls/admin.token")).unwrap().trim().to_string()
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }

    /// A `curl` against the API with the admin token and the cluster CA.
    pub fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(self.dir.path().join("tls/ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {}", self.admin_token())])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Kubectl {
    bin: String,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

pub struct Out {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(&self.cache).args(args);
        c.env_remove("KUBECONFIG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None)
    }

    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("running {}: {e}", self.bin));
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Out {
            ok: out.status.success(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "{} {:?} failed ({}):\n{}{}", self.bin, args, out.code, out.stdout, out.stderr);
        out.stdout
    }

    /// Runs with input on stdin and expects success.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with(args, Some(stdin));
        assert!(out.ok, "{} {:?} failed ({}):\n{}{}", self.bin, args, out.code, out.stdout, out.stderr);
        out.stdout
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.ok, "{} {:?} should have failed:\n{}", self.bin, args, out.stdout);
        out.stderr
    }

    pub fn fails_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with(args, Some(stdin));
        assert!(!out.ok, "{} {:?} should have failed:\n{}", self.bin, args, out.stdout);
        out.stderr
    }
}

/// Polls `f` every 100 ms until it gives a value; fails the test after `timeout`,
/// naming what it waited for.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `rudder sim` process, killed when dropped (also when the test fails).
pub struct Sim {
    child: Option<Child>,
    log: PathBuf,
}

impl Sim {
    pub fn start(c: &Cluster, nodes: usize, prefix: &str) -> Sim {
        // The server writes the token just after the kubeconfig the harness waits for.
        let deadline = Instant::now() + Duration::from_secs(10);
        let token = loop {
            match std::fs::read_to_string(c.data_dir().join("node-token")) {
                Ok(t) if t.ends_with('\n') => break t,
                _ => assert!(Instant::now() < deadline, "no node token after 10 s"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = c.data_dir().join(format!("sim-{prefix}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["sim", "--server", &c.url(), "--token", token.trim()])
            .args(["--nodes", &nodes.to_string(), "--prefix", prefix])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting rudder sim");
        Sim { child: Some(child), log }
    }

    /// Starts the simulated nodes and waits until all of them are Ready.
    pub fn start_ready(c: &Cluster, nodes: usize, prefix: &str) -> Sim {
        let sim = Sim::start(c, nodes, prefix);
        let k = c.kubectl("1.33");
        let ours = format!("{prefix}-");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = k.run(&["get", "nodes", "--no-headers"]);
            let ready = out
                .stdout
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|f| f.len() > 1 && f[0].starts_with(&ours) && f[1] == "Ready")
                .count();
            if ready == nodes {
                return sim;
            }
            assert!(
                Instant::now() < deadline,
                "{nodes} simulated nodes not Ready after 30 s:\n{}\n{}",
                out.stdout,
                sim.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}
