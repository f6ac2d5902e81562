//! What the API benches share: a real `rudder server` process (the release binary
//! `cargo bench` builds) on a loopback port with a temp data dir, an HTTPS client over
//! hyper and tokio-rustls that trusts the server's CA and sends its admin token, and
//! the statistics the benches print.

#![allow(dead_code)] // Each bench binary uses its own part of this module.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

pub const RUDDER: &str = env!("CARGO_BIN_EXE_rudder");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `rudder server` process; killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    /// When `spawn` was called.
    pub spawned: Instant,
}

impl Server {
    /// Spawns the server on `dir` (which may hold an earlier server's state) without
    /// waiting for it.
    pub fn spawn(dir: &Path, port: u16) -> Server {
        Server::spawn_with(dir, port, &[])
    }

    /// Spawns the server with extra flags.
    pub fn spawn_with(dir: &Path, port: u16, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let spawned = Instant::now();
        let child = Command::new(RUDDER)
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(extra)
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder server");
        Server { child: Some(child), dir: dir.to_path_buf(), port, spawned }
    }

    /// Spawns the server and waits until `/readyz` answers 200.
    pub async fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[]).await
    }

    /// Spawns the server with extra flags and waits until `/readyz` answers 200.
    pub async fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let server = Server::spawn_with(dir, free_port(), extra);
        server.wait_ready(Duration::from_secs(30)).await;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Polls `/readyz` over TLS every millisecond; returns the time since `spawn`.
    /// On a first start the CA appears only once the server has made it, so the
    /// client is built as soon as the files are there; one keep-alive connection
    /// carries the polls, so they cost the starting server no repeated handshakes.
    pub async fn wait_ready(&self, limit: Duration) -> Duration {
        let deadline = self.spawned + limit;
        let mut client: Option<Client> = None;
        let mut conn: Option<Conn> = None;
        loop {
            assert!(Instant::now() < deadline, "server not ready within {limit:?}:\n{}", self.log());
            if client.is_none() {
                client = Client::try_new(&self.dir, self.port);
            }
            if let Some(c) = &client {
                if conn.is_none() {
                    conn = c.h1().await.ok();
                }
                if let Some(k) = conn.as_mut() {
                    match k.send(c.get("/readyz")).await {
                        Ok((200, _)) => return self.spawned.elapsed(),
                        Ok(_) => {}
                        Err(_) => conn = None,
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::try_new(&self.dir, self.port).expect("the server's CA and admin token")
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTPS client of one server: trusts `DIR/tls/ca.crt`, sends `DIR/tls/admin.token`.
#[derive(Clone)]
pub struct Client {
    h1_tls: TlsConnector,
    h2_tls: TlsConnector,
    pub addr: SocketAddr,
    token: String,
}

impl Client {
    pub fn try_new(dir: &Path, port: u16) -> Option<Client> {
        let ca = std::fs::read(dir.join("tls/ca.crt")).ok()?;
        let token = std::fs::read_to_string(dir.join("tls/admin.token")).ok()?.trim().to_string();
        if token.is_empty() {
            return None;
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.ok()?).ok()?;
        }
        let config = |alpn: &[u8]| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            Some(TlsConnector::from(Arc::new(c)))
        };
        Some(Client {
            h1_tls: config(b"http/1.1")?,
            h2_tls: config(b"h2")?,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            token,
        })
    }

    async fn tls(
        &self,
        connector: &TlsConnector,
    ) -> Result<TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        Ok(TokioIo::new(tls))
    }

    /// A new HTTP/1.1 keep-alive connection.
    pub async fn h1(&self) -> Result<Conn, String> {
        let io = self.tls(&self.h1_tls).await?;
        let (sender, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H1(sender))
    }

    /// A new HTTP/2 connection; clones of it multiplex streams over it.
    pub async fn h2(&self) -> Result<Conn, String> {
        let io = self.tls(&self.h2_tls).await?;
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H2(sender))
    }

    fn request(&self, method: http::Method, path: &str, body: Bytes) -> Req {
        // HTTP/2 needs the scheme and authority in the URI; HTTP/1.1 sends a Host header.
        let absolute = format!("https://{}{path}", self.addr);
        let h1 = http::Request::builder()
            .method(method)
            .uri(absolute)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .unwrap();
        Req(h1)
    }

    pub fn get(&self, path: &str) -> Req {
        self.request(http::Method::GET, path, Bytes::new())
    }

    pub fn post(&self, path: &str, body: impl Into<Bytes>) -> Req {
        self.request(http::Method::POST, path, body.into())
    }
}

/// A request ready for either protocol.
pub struct Req(http::Request<Full<Bytes>>);

impl Req {
    fn for_h1(self, host: &str) -> http::Request<Full<Bytes>> {
        let (mut parts, body) = self.0.into_parts();
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        parts.uri = path.parse().unwrap();
        parts.headers.insert(http::header::HOST, host.parse().unwrap());
        http::Request::from_parts(parts, body)
    }
}

pub enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// Sends a request and reads the whole answer.
    pub async fn send(&mut self, req: Req) -> Result<(u16, Bytes), String> {
        let resp = self.send_streaming(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }

    /// Sends a request; the body is left to the caller (for watches).
    pub async fn send_streaming(&mut self, req: Req) -> Result<http::Response<hyper::body::Incoming>, String> {
        match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                let host = req.0.uri().authority().map(|a| a.to_string()).unwrap_or_default();
                s.send_request(req.for_h1(&host)).await.map_err(|e| e.to_string())
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req.0).await.map_err(|e| e.to_string())
            }
        }
    }

    pub fn clone_h2(&self) -> Option<Conn> {
        match self {
            Conn::H2(s) => Some(Conn::H2(s.clone())),
            Conn::H1(_) => None,
        }
    }
}

/// Keep-alive connections shared by many concurrent requests: a fixed set of HTTP/1.1
/// connections (a request waits for an idle one) or one HTTP/2 connection.
#[derive(Clone)]
pub struct Pool {
    client: Client,
    idle: Arc<Mutex<Vec<Conn>>>,
    permits: Arc<Semaphore>,
    h2: bool,
}

impl Pool {
    pub async fn new(client: &Client, http2: bool, size: usize) -> Pool {
        let mut conns = Vec::new();
        let size = if http2 { 1 } else { size };
        for _ in 0..size {
            conns.push(if http2 { client.h2().await } else { client.h1().await }.expect("connecting"));
        }
        Pool {
            client: client.clone(),
            idle: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(if http2 { 1 << 20 } else { size })),
            h2: http2,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends on an idle connection; a connection that failed is replaced.
    pub async fn send(&self, req: Req) -> Result<(u16, Bytes), String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        if self.h2 {
            let mut conn = self.idle.lock().unwrap().first().and_then(Conn::clone_h2).ok_or("no connection")?;
            return conn.send(req).await;
        }
        let mut conn = self.idle.lock().unwrap().pop().ok_or("no idle connection")?;
        let result = conn.send(req).await;
        if let Err(failed) = &result {
            match self.client.h1().await {
                Ok(fresh) => conn = fresh,
                Err(e) => return Err(format!("{failed} (and reconnecting failed: {e})")),
            }
        }
        self.idle.lock().unwrap().push(conn);
        result
    }
}

/// Latencies of one run and what they add up to.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub ok: usize,
    pub errors: usize,
    /// Completed requests per second over the run.
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Summary {
        latencies.sort();
        Summary {
            ok: latencies.len(),
            errors,
            rate: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    /// The median of each figure over several runs.
    pub fn median(runs: &[Summary]) -> Summary {
        let m = |f: &dyn Fn(&Summary) -> f64| median(runs.iter().map(f).collect());
        let d = |f: &dyn Fn(&Summary) -> Duration| Duration::from_secs_f64(m(&|s| f(s).as_secs_f64()));
        Summary {
            ok: m(&|s| s.ok as f64) as usize,
            errors: m(&|s| s.errors as f64) as usize,
            rate: m(&|s| s.rate),
            p50: d(&|s| s.p50),
            p99: d(&|s| s.p99),
            max: d(&|s| s.max),
        }
    }

    pub fn row(&self, what: &str, extra: &str) -> String {
        format!(
            "| {what} | {:.0} | {} | {} | {} | {} |{extra}",
            self.rate,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.errors
        )
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds a process has used (`/proc/PID/stat`).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are fixed.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// A `VmRSS:`-style line of `/proc/PID/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// The 1-minute load average, to show how busy the shared machine was.
pub fn load_average() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().next().unwrap_or("?").to_string()
}

/// Seconds per run from `BENCH_SECS`, else `default`.
pub fn bench_secs(default: f64) -> f64 {
    std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Rounds from `BENCH_ROUNDS`, else 3.
pub fn bench_rounds() -> usize {
    std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

/// A ConfigMap of about 1 KiB, like a small real one.
pub fn configmap(name: &str, sent_nanos: u128) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"sent": sent_nanos.to_string(), "payload": "x".repeat(900)},
    })
    .to_string()
}
