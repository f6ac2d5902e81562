//! The agent's streaming server on the kubelet port (10250), as the kubelet serves
//! it to the API server:
//!
//! - `GET /containerLogs/{ns}/{pod}/{container}` ([`logs`]),
//! - `/exec/{ns}/{pod}/{container}?command=…` and `/attach/{ns}/{pod}/{container}`
//!   ([`remotecommand`]),
//! - `/portForward/{ns}/{pod}` ([`portforward`]),
//!
//! the streaming ones upgraded to WebSocket ([`websocket`], subprotocols
//! `channel.k8s.io` to `v5.channel.k8s.io`) or SPDY/3.1 ([`spdy`]). TLS with a client
//! certificate: only the API server, whose kubelet-client certificate the cluster CA
//! signed, gets in. Where the pods are comes from the agent through [`PodLookup`];
//! containers are reached through [`runtime::Runtime`] and pod ports through
//! [`PodNetwork`].

pub mod logs;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod websocket;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame, Incoming};
use hyper_util::rt::TokioIo;
use runtime::Runtime;
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

/// A container the server can stream from, as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub container_id: String,
    /// Holds `<restartCount>.log`.
    pub log_dir: PathBuf,
    pub restart_count: u32,
    pub tty: bool,
    pub stdin: bool,
    pub pod_uid: String,
}

/// Why a pod or container cannot be streamed from; the message is what the user
/// sees (upstream's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// 404, e.g. `pods "web" not found`.
    #[error("{0}")]
    NotFound(String),
    /// 400, e.g. `container "c" in pod "web" is waiting to start: ContainerCreating`.
    #[error("{0}")]
    BadRequest(String),
}

/// The agent's view of its pods.
pub trait PodLookup: Send + Sync + 'static {
    /// `container` None means the pod's only (or default-container-annotated)
    /// container.
    fn container(&self, namespace: &str, pod: &str, container: Option<&str>) -> Result<ContainerRef, LookupError>;
    fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String>;
}

/// Connections to ports inside a pod (its network namespace).
#[async_trait::async_trait]
pub trait PodNetwork: Send + Sync + 'static {
    /// A TCP connection to `127.0.0.1:port` as the pod sees it.
    async fn connect(&self, pod_uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream>;
}

/// The server's certificate, and the CA whose client certificates it accepts.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// The cluster CA: the API server's kubelet-client certificate is signed by it.
    pub client_ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("kubelet server tls: {0}")]
    Tls(String),
}

impl ServerTls {
    /// A rustls configuration that requires a client certificate signed by the CA
    /// (for client authentication: webpki checks its extended key usage), HTTP/1.1
    /// only (the streaming upgrades need it).
    pub fn config(&self) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
        let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| tls(&e))?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pki_types::CertificateDer::pem_slice_iter(self.client_ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| tls(&e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| tls(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What every request shares.
pub struct Ctx {
    pub lookup: Arc<dyn PodLookup>,
    pub runtime: Arc<dyn Runtime>,
    pub network: Arc<dyn PodNetwork>,
}

/// Serves TLS connections until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    lookup: Arc<dyn PodLookup>,
    runtime: Arc<dyn Runtime>,
    network: Arc<dyn PodNetwork>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config()?);
    let ctx = Arc::new(Ctx { lookup, runtime, network });
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return Ok(()),
        };
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(ctx, tls).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "kubelet server: tls handshake failed"),
                Err(_) => {}
            }
        });
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection, after TLS.
pub async fn serve_connection<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(ctx: Arc<Ctx>, io: T) {
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(route(&ctx, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "kubelet server: connection ended");
    }
}

pub type Body = UnsyncBoxBody<Bytes, Infallible>;
pub type Resp = Response<Body>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// An error as a `metav1.Status`, which the API server passes on to the client.
pub fn status_error(code: StatusCode, message: &str) -> Resp {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        _ => "InternalError",
    };
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    let mut r = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn lookup_error(e: LookupError) -> Resp {
    match e {
        LookupError::NotFound(m) => status_error(StatusCode::NOT_FOUND, &m),
        LookupError::BadRequest(m) => status_error(StatusCode::BAD_REQUEST, &m),
    }
}

/// Decoded query pairs, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |at: usize| b.get(at).and_then(|c| (*c as char).to_digit(16));
                    match (hex(i + 1), hex(i + 2)) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

async fn route(ctx: &Arc<Ctx>, req: hyper::Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query = query_pairs(req.uri().query());
    let m = req.method().clone();
    match (segs.as_slice(), &m) {
        (["healthz"], &Method::GET) => Response::new(full("ok")),
        (["metrics", "resource"], &Method::GET) => crate::stats::response(ctx.runtime.as_ref()).await,
        (["containerLogs", ns, pod, container], &Method::GET) => container_logs(ctx, ns, pod, container, &query).await,
        (["exec", ns, pod, container], &Method::GET | &Method::POST) => {
            let c = ctx.lookup.container(ns, pod, Some(container));
            streaming(ctx, req, c, &query, true)
        }
        (["attach", ns, pod, container], &Method::GET | &Method::POST) => {
            let c = ctx.lookup.container(ns, pod, Some(container));
            streaming(ctx, req, c, &query, false)
        }
        (["portForward", ns, pod], &Method::GET | &Method::POST) => port_forward(ctx, req, ns, pod, &query),
        _ => status_error(StatusCode::NOT_FOUND, &format!("the server could not find the requested resource ({path})")),
    }
}

/// A body fed from a channel, each chunk sent as it comes.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

struct RuntimeAlive {
    runtime: Arc<dyn Runtime>,
    id: String,
}

#[async_trait::async_trait]
impl logs::Alive for RuntimeAlive {
    async fn running(&self) -> bool {
        self.runtime.state(&self.id).await.is_ok_and(|s| s.status == runtime::Status::Running)
    }
}

async fn container_logs(ctx: &Arc<Ctx>, ns: &str, pod: &str, container: &str, query: &[(String, String)]) -> Resp {
    let c = match ctx.lookup.container(ns, pod, Some(container)) {
        Ok(c) => c,
        Err(e) => return lookup_error(e),
    };
    let opts = match logs::LogOptions::from_query(query, SystemTime::now()) {
        Ok(o) => o,
        Err(m) => return status_error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(path) = opts.file(&c.log_dir, c.restart_count) else {
        return status_error(
            StatusCode::BAD_REQUEST,
            &format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let start = match opts.tail_lines {
        Some(n) => logs::Start::Tail(n),
        None => logs::Start::Beginning,
    };
    let follow = opts.follow && !opts.previous;
    let mut follower = match logs::Follower::open(&path, start, follow).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return status_error(
                StatusCode::BAD_REQUEST,
                &if opts.previous {
                    format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
                } else {
                    format!("container \"{container}\" in pod \"{pod}\" has no log yet")
                },
            );
        }
        Err(e) => return status_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading {}: {e}", path.display())),
    };
    let alive: Box<dyn logs::Alive> = if follow {
        Box::new(RuntimeAlive { runtime: ctx.runtime.clone(), id: c.container_id.clone() })
    } else {
        Box::new(logs::Stopped)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut left = opts.limit_bytes;
        while let Ok(Some(record)) = follower.next(alive.as_ref()).await {
            let Some(mut out) = logs::render(&record, &opts) else { continue };
            if let Some(l) = left.as_mut() {
                out.truncate((*l).min(out.len() as u64) as usize);
                *l -= out.len() as u64;
            }
            if tx.send(Bytes::from(out)).await.is_err() || left == Some(0) {
                return;
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed_unsync());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// Which upgrade the client asks for.
enum Upgrade {
    WebSocket { key: String },
    Spdy,
}

fn upgrade_of(headers: &HeaderMap) -> Option<Upgrade> {
    let up = headers.get(header::UPGRADE)?.to_str().ok()?.to_ascii_lowercase();
    if up.split(',').any(|u| u.trim() == "websocket") {
        let key = headers.get("sec-websocket-key")?.to_str().ok()?.to_string();
        return Some(Upgrade::WebSocket { key });
    }
    if up.split(',').any(|u| u.trim() == "spdy/3.1") {
        return Some(Upgrade::Spdy);
    }
    None
}

/// The SPDY protocol: the first the client offers (one header each, or comma
/// separated) that we serve. No header at all means the oldest protocol.
fn spdy_protocol(headers: &HeaderMap, supported: &[&'static str]) -> Result<&'static str, String> {
    let offered = header_values(headers, "x-stream-protocol-version");
    if offered.is_empty() {
        return supported.last().copied().ok_or_else(|| "no protocol".to_string());
    }
    websocket::choose_protocol(offered.iter().copied(), supported).ok_or_else(|| {
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {:?}, server supports {:?}",
            offered, supported
        )
    })
}

fn switching(upgrade: &Upgrade, protocol: Option<&str>) -> Resp {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match upgrade {
        Upgrade::WebSocket { key } => {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&websocket::accept_key(key)) {
                h.insert("sec-websocket-accept", v);
            }
            if let Some(p) = protocol.filter(|p| !p.is_empty())
                && let Ok(v) = HeaderValue::from_str(p)
            {
                h.insert("sec-websocket-protocol", v);
            }
        }
        Upgrade::Spdy => {
            h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            if let Some(p) = protocol
                && let Ok(v) = HeaderValue::from_str(p)
            {
                h.insert("x-stream-protocol-version", v);
            }
        }
    }
    r
}

/// The subprotocol of a WebSocket request: the first offered that we serve; none
/// offered means the plain (`channel.k8s.io`-style) framing.
fn websocket_protocol(headers: &HeaderMap, supported: &[&'static str]) -> Result<&'static str, String> {
    let offered = header_values(headers, "sec-websocket-protocol");
    if offered.is_empty() {
        return Ok("");
    }
    websocket::choose_protocol(offered.iter().copied(), supported).ok_or_else(|| {
        format!("unable to upgrade: none of the subprotocols {offered:?} is supported (want one of {supported:?})")
    })
}

fn streaming(
    ctx: &Arc<Ctx>,
    mut req: hyper::Request<Incoming>,
    container: Result<ContainerRef, LookupError>,
    query: &[(String, String)],
    exec: bool,
) -> Resp {
    let c = match container {
        Ok(c) => c,
        Err(e) => return lookup_error(e),
    };
    let options = match remotecommand::StreamOptions::from_query(query, exec) {
        Ok(o) => o,
        Err(m) => return status_error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(upgrade) = upgrade_of(req.headers()) else {
        return status_error(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let target = if exec {
        remotecommand::Target::Exec { container_id: c.container_id.clone(), argv: options.command.clone() }
    } else {
        if !c.stdin && !c.tty && options.stdin {
            tracing::debug!(container = %c.container_id, "attach: the container has no stdin; input is dropped");
        }
        remotecommand::Target::Attach {
            container_id: c.container_id.clone(),
            log: c.log_dir.join(format!("{}.log", c.restart_count)),
        }
    };
    // An attach to a terminal is a terminal whatever the client asked.
    let tty = if exec { options.tty } else { c.tty };
    let options = remotecommand::StreamOptions { tty, ..options };
    let runtime = ctx.runtime.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    match upgrade {
        Upgrade::WebSocket { .. } => {
            let protocol = match websocket_protocol(req.headers(), remotecommand::WEBSOCKET_PROTOCOLS) {
                Ok(p) => p,
                Err(m) => return status_error(StatusCode::BAD_REQUEST, &m),
            };
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    let conn = websocket::Conn::start(TokioIo::new(io));
                    remotecommand::serve_websocket(conn, protocol, options, target, runtime).await;
                }
            });
            switching(&upgrade, Some(protocol))
        }
        Upgrade::Spdy => {
            let protocol = match spdy_protocol(req.headers(), remotecommand::SPDY_PROTOCOLS) {
                Ok(p) => p,
                Err(m) => return status_error(StatusCode::FORBIDDEN, &m),
            };
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    let session = spdy::Session::start(TokioIo::new(io));
                    remotecommand::serve_spdy(session, protocol, options, target, runtime).await;
                }
            });
            switching(&upgrade, Some(protocol))
        }
    }
}

fn port_forward(
    ctx: &Arc<Ctx>,
    mut req: hyper::Request<Incoming>,
    ns: &str,
    pod: &str,
    query: &[(String, String)],
) -> Resp {
    let Some(uid) = ctx.lookup.pod_uid(ns, pod) else {
        return status_error(StatusCode::NOT_FOUND, &format!("pods \"{pod}\" not found"));
    };
    let ports = match portforward::ports_from_query(query) {
        Ok(p) => p,
        Err(m) => return status_error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(upgrade) = upgrade_of(req.headers()) else {
        return status_error(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let pod = Arc::new(portforward::Pod { namespace: ns.to_string(), name: pod.to_string(), uid });
    let network = ctx.network.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    match upgrade {
        Upgrade::WebSocket { .. } => {
            let protocol = match websocket_protocol(req.headers(), portforward::WEBSOCKET_PROTOCOLS) {
                Ok(p) => p,
                Err(m) => return status_error(StatusCode::BAD_REQUEST, &m),
            };
            if protocol != portforward::TUNNEL_PROTOCOL && ports.is_empty() {
                return status_error(StatusCode::BAD_REQUEST, "query parameter \"port\" is required");
            }
            tokio::spawn(async move {
                let Ok(io) = on_upgrade.await else { return };
                let conn = websocket::Conn::start(TokioIo::new(io));
                if protocol == portforward::TUNNEL_PROTOCOL {
                    let session = spdy::Session::start(conn.into_byte_stream());
                    portforward::serve_spdy(session, pod, network).await;
                } else {
                    portforward::serve_websocket(conn, protocol, ports, pod, network).await;
                }
            });
            switching(&upgrade, Some(protocol))
        }
        Upgrade::Spdy => {
            let protocol = match spdy_protocol(req.headers(), &[portforward::SPDY_PROTOCOL]) {
                Ok(p) => p,
                Err(m) => return status_error(StatusCode::FORBIDDEN, &m),
            };
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    portforward::serve_spdy(spdy::Session::start(TokioIo::new(io)), pod, network).await;
                }
            });
            switching(&upgrade, Some(protocol))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = query_pairs(Some("command=sh&command=-c&command=echo%20hi%3B+exit%203&stdout=true&follow"));
        let want: Vec<(String, String)> =
            [("command", "sh"), ("command", "-c"), ("command", "echo hi; exit 3"), ("stdout", "true"), ("follow", "")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(q, want);
        assert_eq!(query_pairs(Some("a=%zz&b=%4")), [("a".into(), "%zz".into()), ("b".into(), "%4".into())]);
        assert!(query_pairs(None).is_empty());
    }

    #[test]
    fn protocol_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(spdy_protocol(&h, remotecommand::SPDY_PROTOCOLS), Ok("channel.k8s.io"));
        for v in ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"] {
            h.append("x-stream-protocol-version", HeaderValue::from_static(v));
        }
        assert_eq!(spdy_protocol(&h, remotecommand::SPDY_PROTOCOLS), Ok("v4.channel.k8s.io"));
        let mut pf = HeaderMap::new();
        pf.insert("x-stream-protocol-version", HeaderValue::from_static("portforward.k8s.io"));
        assert_eq!(spdy_protocol(&pf, &[portforward::SPDY_PROTOCOL]), Ok("portforward.k8s.io"));
        assert!(spdy_protocol(&pf, remotecommand::SPDY_PROTOCOLS).is_err());
        let mut ws = HeaderMap::new();
        assert_eq!(websocket_protocol(&ws, remotecommand::WEBSOCKET_PROTOCOLS), Ok(""));
        ws.insert("sec-websocket-protocol", HeaderValue::from_static("v5.channel.k8s.io"));
        assert_eq!(websocket_protocol(&ws, remotecommand::WEBSOCKET_PROTOCOLS), Ok("v5.channel.k8s.io"));
        ws.insert("sec-websocket-protocol", HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"));
        assert_eq!(websocket_protocol(&ws, portforward::WEBSOCKET_PROTOCOLS), Ok("SPDY/3.1+portforward.k8s.io"));
        assert!(websocket_protocol(&ws, remotecommand::WEBSOCKET_PROTOCOLS).is_err());
    }

    #[test]
    fn upgrades() {
        let mut h = HeaderMap::new();
        assert!(upgrade_of(&h).is_none());
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(matches!(upgrade_of(&h), Some(Upgrade::Spdy)));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_of(&h).is_none(), "a websocket upgrade needs its key");
        h.insert("sec-websocket-key", HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        let r = switching(&upgrade_of(&h).unwrap(), Some("v5.channel.k8s.io"));
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(r.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    /// A CA, a serving certificate for 127.0.0.1, and two client certificates: one
    /// from the CA, one self-signed.
    struct Certs {
        ca: String,
        server: (String, String),
        client: (String, String),
        stranger: (String, String),
    }

    fn certs() -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, issuer: Option<&Issuer<'_, &KeyPair>>| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![usage];
            let cert = match issuer {
                Some(i) => p.signed_by(&key, i).unwrap(),
                None => p.self_signed(&key).unwrap(),
            };
            (cert.pem(), key.serialize_pem())
        };
        Certs {
            ca: ca.pem(),
            server: leaf(vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth, Some(&issuer)),
            client: leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, Some(&issuer)),
            stranger: leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, None),
        }
    }

    struct OnePod {
        log_dir: PathBuf,
    }

    impl PodLookup for OnePod {
        fn container(&self, _ns: &str, pod: &str, container: Option<&str>) -> Result<ContainerRef, LookupError> {
            if container != Some("app") {
                return Err(LookupError::BadRequest(format!("container {container:?} is not valid for pod {pod}")));
            }
            Ok(ContainerRef {
                container_id: "c1".into(),
                log_dir: self.log_dir.clone(),
                restart_count: 0,
                tty: false,
                stdin: false,
                pod_uid: "u1".into(),
            })
        }

        fn pod_uid(&self, _ns: &str, _pod: &str) -> Option<String> {
            Some("u1".into())
        }
    }

    struct NoNetwork;

    #[async_trait::async_trait]
    impl PodNetwork for NoNetwork {
        async fn connect(&self, _pod_uid: &str, _port: u16) -> std::io::Result<tokio::net::TcpStream> {
            Err(std::io::Error::other("no network in this test"))
        }
    }

    async fn get(port: u16, ca: &str, client: Option<&(String, String)>, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes()).map(Result::unwrap).collect(),
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn only_clients_the_ca_signed_get_in_and_logs_come_out() {
        let c = certs();
        let dir = tempfile::tempdir().unwrap();
        let mut w = runtime::logfile::LogWriter::open(&dir.path().join("0.log")).unwrap();
        for l in ["one", "two", "three"] {
            w.write_record("stdout", false, l.as_bytes(), SystemTime::now()).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = ServerTls { cert_pem: c.server.0.clone(), key_pem: c.server.1.clone(), client_ca_pem: c.ca.clone() };
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            tls,
            Arc::new(OnePod { log_dir: dir.path().to_path_buf() }),
            Arc::new(runtime::recording::RecordingRuntime::new()),
            Arc::new(NoNetwork),
            stop_rx,
        ));
        let ok = get(port, &c.ca, Some(&c.client), "/containerLogs/default/web/app?tailLines=2").await.unwrap();
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("text/plain"), "{ok}");
        assert!(ok.contains("two\n") && ok.contains("three\n") && !ok.contains("one\n"), "{ok}");
        let bad = get(port, &c.ca, Some(&c.client), "/containerLogs/default/web/other").await.unwrap();
        assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("is not valid for pod web"), "{bad}");
        let nothing = get(port, &c.ca, Some(&c.client), "/nope").await.unwrap();
        assert!(nothing.starts_with("HTTP/1.1 404"), "{nothing}");
        let no_upgrade = get(port, &c.ca, Some(&c.client), "/exec/default/web/app?command=ls&stdout=1").await.unwrap();
        assert!(
            no_upgrade.starts_with("HTTP/1.1 400") && no_upgrade.contains("Upgrade request required"),
            "{no_upgrade}"
        );
        // Without a certificate, or with one the CA did not sign: no answer.
        for client in [None, Some(&c.stranger)] {
            let refused = get(port, &c.ca, client, "/containerLogs/default/web/app").await;
            assert!(refused.as_ref().map_or(true, |r| !r.contains("200 OK")), "{refused:?}");
        }
        stop.send(true).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn errors_are_statuses() {
        let r = status_error(StatusCode::BAD_REQUEST, "container \"x\" is not valid for pod \"y\"");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
