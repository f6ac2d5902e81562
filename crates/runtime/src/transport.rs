//! HTTP(S) to registries: one pooled client per TLS setting (system roots plus a
//! custom CA, a client certificate, or no verification when a config asks for it),
//! redirects followed by hand so that credentials never go to another host.

use crate::registries::TlsConfig;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long to wait for a registry to answer a request with headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a body may stall between two chunks.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: no response within {0:?}", RESPONSE_TIMEOUT)]
    Timeout { url: String },
    #[error("{url}: too many redirects")]
    TooManyRedirects { url: String },
    #[error("invalid URL {url:?}")]
    Url { url: String },
    #[error("TLS setting {what} {path}: {message}")]
    Tls { what: &'static str, path: String, message: String },
    #[error("{url}: reading the response body: {message}")]
    Body { url: String, message: String },
    #[error("{url}: response body larger than {limit} bytes")]
    BodyTooLarge { url: String, limit: usize },
}

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Clients keyed by their TLS settings, built once and reused for connection pooling.
#[derive(Default)]
pub struct Clients {
    clients: Mutex<HashMap<Option<TlsConfig>, HttpClient>>,
}

impl Clients {
    pub fn get(&self, tls: Option<&TlsConfig>) -> Result<HttpClient, TransportError> {
        let key = tls.cloned();
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let client = build_client(tls)?;
        map.insert(key, client.clone());
        Ok(client)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read once (`/etc/ssl/certs`).
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!(error = %e, "loading a system root certificate");
        }
        loaded.certs
    })
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|e| TransportError::Tls {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

pub fn tls_client_config(tls: Option<&TlsConfig>) -> Result<rustls::ClientConfig, TransportError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls { what: "protocols", path: String::new(), message: e.to_string() })?;
    let builder = if tls.is_some_and(|t| t.insecure_skip_verify) {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(native_roots().iter().cloned());
        if let Some(ca) = tls.and_then(|t| t.ca_file.as_deref()) {
            let pem = read_pem("ca_file", ca)?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| TransportError::Tls {
                    what: "ca_file",
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| TransportError::Tls {
                    what: "ca_file",
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(TransportError::Tls {
                    what: "ca_file",
                    path: ca.display().to_string(),
                    message: "no certificate in it".into(),
                });
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match tls.map(|t| (t.cert_file.as_deref(), t.key_file.as_deref())) {
        Some((Some(cert), Some(key))) => {
            let cert_pem = read_pem("cert_file", cert)?;
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<_, _>>().map_err(|e| {
                    TransportError::Tls { what: "cert_file", path: cert.display().to_string(), message: e.to_string() }
                })?;
            let key_pem = read_pem("key_file", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TransportError::Tls {
                what: "key_file",
                path: key.display().to_string(),
                message: e.to_string(),
            })?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| TransportError::Tls {
                what: "cert_file",
                path: cert.display().to_string(),
                message: e.to_string(),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

fn build_client(tls: Option<&TlsConfig>) -> Result<HttpClient, TransportError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(15)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_client_config(tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https))
}

/// `insecure_skip_verify`: any certificate is accepted (signatures are still checked,
/// so the connection is encrypted, just not authenticated).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends a request, following redirects; `Authorization` is dropped when a redirect
/// leaves the original host (blob storage behind a registry must not see it).
pub async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Response<Incoming>, String), TransportError> {
    let mut url = url.to_string();
    let mut headers = headers.clone();
    let original: Uri = url.parse().map_err(|_| TransportError::Url { url: url.clone() })?;
    for _ in 0..MAX_REDIRECTS {
        let uri: Uri = url.parse().map_err(|_| TransportError::Url { url: url.clone() })?;
        if uri.authority() != original.authority() {
            headers.remove(header::AUTHORIZATION);
        }
        let mut req = Request::builder().method(method.clone()).uri(uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(headers.clone());
            h.insert(header::USER_AGENT, http::HeaderValue::from_static("rudder"));
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| TransportError::Request { url: url.clone(), message: e.to_string() })?;
        let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, client.request(req)).await {
            Err(_) => return Err(TransportError::Timeout { url }),
            Ok(Err(e)) => return Err(TransportError::Request { url, message: error_chain(&e) }),
            Ok(Ok(r)) => r,
        };
        let redirect = matches!(
            resp.status(),
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        );
        if !redirect {
            return Ok((resp, url));
        }
        let Some(location) = resp.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()) else {
            return Ok((resp, url));
        };
        url = resolve(&uri, location);
    }
    Err(TransportError::TooManyRedirects { url })
}

/// Resolves a `Location` (absolute, absolute-path or relative) against a request URI.
pub fn resolve(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    format!("{scheme}://{authority}{dir}{location}")
}

/// Reads a whole body, refusing more than `limit` bytes (manifests, tokens, errors).
pub async fn read_body(resp: Response<Incoming>, url: &str, limit: usize) -> Result<Bytes, TransportError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(TransportError::Timeout { url: url.to_string() }),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(TransportError::Body { url: url.to_string(), message: error_chain(&e) }),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(TransportError::BodyTooLarge { url: url.to_string(), limit });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

/// An error with its causes, which is where hyper keeps the useful part
/// ("connection refused", "invalid peer certificate").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base: Uri = "http://127.0.0.1:5000/v2/app/blobs/sha256:abc".parse().unwrap();
        assert_eq!(resolve(&base, "https://s3.example.com/x?sig=1"), "https://s3.example.com/x?sig=1");
        assert_eq!(resolve(&base, "/v2/other"), "http://127.0.0.1:5000/v2/other");
        assert_eq!(resolve(&base, "//cdn.example.com/x"), "http://cdn.example.com/x");
        assert_eq!(resolve(&base, "sibling"), "http://127.0.0.1:5000/v2/app/blobs/sibling");
    }

    #[test]
    fn tls_settings_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig { ca_file: Some(dir.path().join("nope.pem")), ..TlsConfig::default() };
        let err = tls_client_config(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("ca_file") && err.contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let cfg = TlsConfig { ca_file: Some(empty), ..TlsConfig::default() };
        assert!(tls_client_config(Some(&cfg)).unwrap_err().to_string().contains("no certificate"));
        let insecure = TlsConfig { insecure_skip_verify: true, ..TlsConfig::default() };
        assert!(tls_client_config(Some(&insecure)).is_ok());
        assert!(tls_client_config(None).is_ok());
    }
}
