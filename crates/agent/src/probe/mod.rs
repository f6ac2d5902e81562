//! Probes, as the kubelet's prober does them: exec ([`exec`]), httpGet, tcpSocket
//! and grpc (`grpc.health.v1` over h2c), with `initialDelaySeconds`,
//! `periodSeconds`, `timeoutSeconds` and the success and failure thresholds
//! ([`ProbeState`], pure). A probe that cannot run at all is an [`Outcome::Error`],
//! which the worker reports as an event. httpGet with `scheme: HTTPS` does TLS
//! without verifying the certificate, as the kubelet does (`InsecureSkipVerify`).

pub mod exec;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// As the kubelet's events name it.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// One run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed, with what the kubelet puts in the event.
    Failure(String),
    /// Could not run: a warning, and no change to the result.
    Error(String),
}

/// The probe's timing and thresholds, with the API's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// A probe's running result: it flips only after enough consecutive runs agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub result: bool,
    successes: u32,
    failures: u32,
}

impl ProbeState {
    /// Readiness and startup start failing (not ready, not started); liveness
    /// starts succeeding.
    pub fn new(kind: Kind) -> ProbeState {
        ProbeState { result: kind == Kind::Liveness, successes: 0, failures: 0 }
    }

    /// Consecutive failures so far (the startup probe, which starts out failing,
    /// gives up on these alone).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records one run; returns the new result if it changed.
    pub fn record(&mut self, outcome: &Outcome, timing: &Timing) -> Option<bool> {
        match outcome {
            Outcome::Error(_) => return None,
            Outcome::Success => {
                self.successes += 1;
                self.failures = 0;
                if !self.result && self.successes >= timing.success_threshold {
                    self.result = true;
                    return Some(true);
                }
            }
            Outcome::Failure(_) => {
                self.failures += 1;
                self.successes = 0;
                if self.result && self.failures >= timing.failure_threshold {
                    self.result = false;
                    return Some(false);
                }
            }
        }
        None
    }
}

/// Where a probe reaches the container.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod_ip: String,
    pub exec: exec::ExecTarget,
}

fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(name) => match name.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name)),
        },
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Runs a probe once.
pub async fn run(probe: &Probe, container: &Container, target: &Target) -> Outcome {
    let timeout = Timing::of(probe).timeout;
    if let Some(e) = &probe.exec {
        let argv = e.command.clone().unwrap_or_default();
        return match exec::exec(&target.exec, &argv, timeout).await {
            exec::ExecResult::Exited { code: 0, .. } => Outcome::Success,
            exec::ExecResult::Exited { output, .. } => Outcome::Failure(output),
            exec::ExecResult::TimedOut => Outcome::Failure(format!("command {argv:?} timed out")),
            exec::ExecResult::Failed(m) => Outcome::Error(m),
        };
    }
    if let Some(h) = &probe.http_get {
        let port = match port(container, &h.port) {
            Ok(p) => p,
            Err(m) => return Outcome::Error(m),
        };
        let host = h.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
        let tls = match h.scheme.as_deref().unwrap_or("HTTP") {
            s if s.eq_ignore_ascii_case("HTTPS") => true,
            s if s.eq_ignore_ascii_case("HTTP") => false,
            other => return Outcome::Error(format!("unsupported scheme {other:?}")),
        };
        let mut path = h.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let headers: Vec<(String, String)> =
            h.http_headers.iter().flatten().map(|hh| (hh.name.clone(), hh.value.clone())).collect();
        return match tokio::time::timeout(timeout, http_get(&host, port, &path, &headers, tls)).await {
            Err(_) => Outcome::Failure(format!(
                "Get \"{}://{}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                if tls { "https" } else { "http" },
                host_port(&host, port)
            )),
            Ok(r) => r,
        };
    }
    if let Some(t) = &probe.tcp_socket {
        let port = match port(container, &t.port) {
            Ok(p) => p,
            Err(m) => return Outcome::Error(m),
        };
        let host = t.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
        let addr = host_port(&host, port);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else { return Outcome::Error(format!("invalid port number: {}", g.port)) };
        let service = g.service.clone().unwrap_or_default();
        return match tokio::time::timeout(timeout, grpc_check(&target.pod_ip, port, &service)).await {
            Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
            Ok(r) => r,
        };
    }
    Outcome::Error("probe has no handler (exec, httpGet, tcpSocket or grpc)".into())
}

async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)], tls: bool) -> Outcome {
    let addr = host_port(host, port);
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get \"{url}\": dial tcp {addr}: connect: {e}")),
    };
    if !tls {
        return http_request(stream, &addr, &url, path, headers).await;
    }
    // An IP address is no server name: rustls then sends no SNI, as Go does not.
    let name = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => match rustls_pki_types::ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(e) => return Outcome::Error(format!("Get \"{url}\": invalid host {host:?}: {e}")),
        },
    };
    let config = match insecure_client_config() {
        Ok(c) => c,
        Err(e) => return Outcome::Error(format!("Get \"{url}\": no TLS: {e}")),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match connector.connect(name, stream).await {
        Ok(s) => http_request(s, &addr, &url, path, headers).await,
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {e}")),
    }
}

/// One GET over an open connection (plain or TLS), with the kubelet's headers.
async fn http_request<S>(stream: S, addr: &str, url: &str, path: &str, headers: &[(String, String)]) -> Outcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(e) => return Outcome::Failure(format!("Get \"{url}\": {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::get(path)
        .header("host", addr)
        .header("user-agent", "kube-probe/1.33")
        .header("accept", "*/*")
        .header("connection", "close");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = match req.body(Full::new(Bytes::new())) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("building the request for {url}: {e}")),
    };
    match sender.send_request(req).await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            if (200..400).contains(&code) {
                Outcome::Success
            } else {
                let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&body[..body.len().min(10 * 1024)]).into_owned();
                Outcome::Failure(if text.is_empty() {
                    format!("HTTP probe failed with statuscode: {code}")
                } else {
                    format!("HTTP probe failed with statuscode: {code}: {text}")
                })
            }
        }
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {e}")),
    }
}

/// TLS for probes: any certificate is accepted. The kubelet probes HTTPS endpoints with
/// `InsecureSkipVerify`, because a container's certificate is usually for its public
/// name, signed by a CA the node does not know, and a probe asks "does it answer",
/// not "is it who it claims". The runtime's `insecure_skip_verify` registry setting is
/// the same configuration (handshake signatures still checked), made once here.
fn insecure_client_config() -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let tls = runtime::registries::TlsConfig { insecure_skip_verify: true, ..Default::default() };
            runtime::transport::tls_client_config(Some(&tls)).map(std::sync::Arc::new).map_err(|e| e.to_string())
        })
        .clone()
}

/// `grpc.health.v1.Health/Check` over h2c.
async fn grpc_check(host: &str, port: u16, service: &str) -> Outcome {
    let addr = host_port(host, port);
    let stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failure(format!(
                "failed to connect service {addr:?} within 1s: dial tcp {addr}: connect: {e}"
            ));
        }
    };
    let handshake = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await;
    let (mut sender, conn) = match handshake {
        Ok(x) => x,
        Err(e) => return Outcome::Failure(format!("failed to connect service {addr:?}: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = match http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.33")
        .body(Full::new(Bytes::from(grpc_request(service))))
    {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(format!("health rpc failed: {e}")),
    };
    let header_status = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string);
    let collected = match resp.into_body().collect().await {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(format!("health rpc failed: {e}")),
    };
    let trailer_status =
        collected.trailers().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok()).map(str::to_string);
    let grpc_status = trailer_status.or(header_status).unwrap_or_else(|| "0".into());
    if grpc_status != "0" {
        return Outcome::Failure(format!("health rpc failed with grpc-status {grpc_status}"));
    }
    match grpc_serving_status(&collected.to_bytes()) {
        Some(1) => Outcome::Success,
        Some(s) => Outcome::Failure(format!("service unhealthy (responded with {:?})", serving_name(s))),
        None => Outcome::Failure("health rpc returned an unreadable response".into()),
    }
}

/// A length-prefixed `HealthCheckRequest{service}`.
pub fn grpc_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend(msg);
    out
}

/// The `status` of a length-prefixed `HealthCheckResponse` (0 when absent).
pub fn grpc_serving_status(body: &[u8]) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body.get(5..5 + len)?;
    let mut i = 0;
    while i < msg.len() {
        let key = msg[i];
        i += 1;
        let varint = |i: &mut usize| -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let b = *msg.get(*i)?;
                *i += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        };
        match (key >> 3, key & 7) {
            (1, 0) => return varint(&mut i),
            (_, 0) => {
                varint(&mut i)?;
            }
            (_, 2) => {
                let n = varint(&mut i)? as usize;
                i += n;
            }
            _ => return None,
        }
    }
    Some(0)
}

fn serving_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn thresholds_flip_the_result() {
        let t = Timing::of(&probe(json!({"successThreshold": 2, "failureThreshold": 3})));
        assert_eq!(
            (t.period, t.timeout, t.initial_delay),
            (Duration::from_secs(10), Duration::from_secs(1), Duration::ZERO)
        );
        let mut ready = ProbeState::new(Kind::Readiness);
        assert!(!ready.result);
        assert_eq!(ready.record(&Outcome::Success, &t), None, "one success is not enough");
        assert_eq!(ready.record(&Outcome::Success, &t), Some(true));
        assert_eq!(ready.record(&Outcome::Failure("x".into()), &t), None);
        assert_eq!(ready.record(&Outcome::Error("cannot".into()), &t), None, "errors change nothing");
        assert_eq!(ready.record(&Outcome::Failure("x".into()), &t), None);
        assert_eq!(ready.record(&Outcome::Failure("x".into()), &t), Some(false));
        let mut live = ProbeState::new(Kind::Liveness);
        assert!(live.result, "alive until proven otherwise");
        let t1 = Timing::of(&probe(json!({"failureThreshold": 1})));
        assert_eq!(live.record(&Outcome::Failure("x".into()), &t1), Some(false));
        assert!(!ProbeState::new(Kind::Startup).result);
    }

    #[test]
    fn grpc_messages() {
        assert_eq!(grpc_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(grpc_request("ab"), [0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']);
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 9]), None);
        assert_eq!(grpc_serving_status(&[1]), None);
    }

    #[test]
    fn named_ports() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
        assert_eq!(port(&c, &IntOrString::String("http".into())), Ok(8080));
        assert_eq!(port(&c, &IntOrString::Int(81)), Ok(81));
        assert_eq!(port(&c, &IntOrString::String("nope".into())), Err("couldn't find port: nope in c".into()));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let resp = if req.starts_with("GET /healthz ") && req.contains("x-check: yes") {
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string()
                    } else {
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nsick".to_string()
                    };
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        let c: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let target = Target {
            pod_ip: "127.0.0.1".into(),
            exec: exec::ExecTarget { runc: "runc".into(), root: "/nonexistent".into(), container_id: "x".into() },
        };
        let ok = probe(
            json!({"httpGet": {"path": "/healthz", "port": port, "httpHeaders": [{"name": "x-check", "value": "yes"}]}}),
        );
        assert_eq!(run(&ok, &c, &target).await, Outcome::Success);
        let bad = probe(json!({"httpGet": {"path": "/other", "port": port}}));
        assert_eq!(
            run(&bad, &c, &target).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500: sick".into())
        );
        assert_eq!(run(&probe(json!({"tcpSocket": {"port": port}})), &c, &target).await, Outcome::Success);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(matches!(run(&probe(json!({"tcpSocket": {"port": closed}})), &c, &target).await, Outcome::Failure(_)));
        assert!(matches!(run(&probe(json!({"httpGet": {"port": closed}})), &c, &target).await, Outcome::Failure(_)));
        assert!(matches!(run(&probe(json!({"httpGet": {"port": "web"}})), &c, &target).await, Outcome::Error(_)));
        assert!(matches!(run(&probe(json!({})), &c, &target).await, Outcome::Error(_)));
    }

    #[tokio::test]
    async fn https_probes_accept_a_self_signed_certificate() {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pod.example".to_string()]).unwrap().self_signed(&key).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let seen = seen_tx.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let resp = if req.starts_with("GET /healthz ") {
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    } else {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"
                    };
                    let _ = seen.send(req);
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let c: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let target = Target {
            pod_ip: "127.0.0.1".into(),
            exec: exec::ExecTarget { runc: "runc".into(), root: "/nonexistent".into(), container_id: "x".into() },
        };
        let ok = probe(json!({"httpGet": {"scheme": "HTTPS", "path": "healthz", "port": port,
            "httpHeaders": [{"name": "X-Check", "value": "yes"}]}}));
        assert_eq!(run(&ok, &c, &target).await, Outcome::Success);
        let req = seen_rx.recv().await.unwrap().to_ascii_lowercase();
        for header in ["user-agent: kube-probe/1.33", "accept: */*", "x-check: yes", &format!("host: 127.0.0.1:{port}")]
        {
            assert!(req.contains(header), "{header:?} missing from {req:?}");
        }
        let bad = probe(json!({"httpGet": {"scheme": "HTTPS", "path": "/other", "port": port}}));
        assert_eq!(
            run(&bad, &c, &target).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503: busy".into())
        );
        // A plain HTTP server behind an HTTPS probe: the handshake fails, the probe fails.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = plain.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let wrong = probe(json!({"httpGet": {"scheme": "HTTPS", "port": plain_port}}));
        match run(&wrong, &c, &target).await {
            Outcome::Failure(m) => assert!(m.starts_with(&format!("Get \"https://127.0.0.1:{plain_port}/\": ")), "{m}"),
            other => panic!("{other:?}"),
        }
        let odd = probe(json!({"httpGet": {"scheme": "FTP", "port": port}}));
        assert!(matches!(run(&odd, &c, &target).await, Outcome::Error(_)));
    }
}
