//! Pulling images from OCI Distribution registries into the image store.
//!
//! [`Puller::pull`] resolves a reference at each endpoint the registry config lists
//! (mirrors, then the registry), authenticates as the registry asks (anonymous, basic,
//! or bearer tokens from its token realm), picks this platform's manifest out of an
//! index, and streams the config and layers into the store, each checked against its
//! digest and size before it lands.

use crate::auth::{Challenge, TokenResponse, parse_challenges, query_escape};
use crate::digest::Digest;
use crate::images::{Image, ImageStore, ImageStoreError};
use crate::oci::{self, Descriptor, ImageConfigFile, ManifestDoc, OciError, Platform};
use crate::reference::Reference;
use crate::registries::{Credentials, Endpoint, RegistryConfig};
use crate::transport::{self, Clients, HttpClient, TransportError};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

const MAX_MANIFEST_BYTES: usize = 4 << 20;
const MAX_CONFIG_BYTES: usize = 16 << 20;
const MAX_SMALL_BODY: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{reference}: not found")]
    NotFound { reference: String, endpoint: String },
    #[error("pulling from {endpoint}: unauthorized: {message}")]
    Unauthorized { endpoint: String, message: String },
    #[error("{url}: unexpected status {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("{what} from {url} has digest {actual}, expected {expected}")]
    DigestMismatch { what: &'static str, url: String, expected: Digest, actual: Digest },
    #[error("{what} {digest} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch { what: &'static str, digest: Digest, expected: u64, actual: u64 },
    #[error("layer {digest}: media type {media_type:?} is not a layer this runtime unpacks")]
    UnsupportedLayer { digest: Digest, media_type: String },
    #[error("{reference}: config media type {media_type:?} is not a container image")]
    NotAnImage { reference: String, media_type: String },
    #[error("{reference}: the config lists {diff_ids} layers, the manifest {layers}")]
    LayerCountMismatch { reference: String, diff_ids: usize, layers: usize },
    #[error("writing {what}: {source}")]
    Write { what: String, source: std::io::Error },
}

impl PullError {
    /// A registry that said "no such image" (rather than "could not ask").
    pub fn is_not_found(&self) -> bool {
        matches!(self, PullError::NotFound { .. })
    }
}

/// Pulls images into a store.
pub struct Puller {
    store: ImageStore,
    config: RegistryConfig,
    platform: Platform,
    clients: Clients,
    /// One pull per name at a time: a second pod asking for the same image waits and
    /// then finds every blob present.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Puller {
    pub fn new(store: ImageStore, config: RegistryConfig) -> Puller {
        Puller {
            store,
            config,
            platform: Platform::host(),
            clients: Clients::default(),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Pulls for another platform than this machine's (tests, tools).
    pub fn with_platform(mut self, platform: Platform) -> Puller {
        self.platform = platform;
        self
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Pulls an image and records it under its normalised name. `credentials` (from
    /// image pull secrets) are tried after the registry config's own, in order.
    pub async fn pull(&self, reference: &Reference, credentials: &[Credentials]) -> Result<Image, PullError> {
        let name = reference.to_string();
        let lock = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.clone()).or_default().clone()
        };
        let result = {
            let _guard = lock.lock().await;
            self.pull_locked(reference, credentials).await
        };
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        // The map holds one reference; ours is the other: nobody else waits.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(&name);
        }
        result
    }

    async fn pull_locked(&self, reference: &Reference, credentials: &[Credentials]) -> Result<Image, PullError> {
        let mut last = None;
        for endpoint in self.config.endpoints(reference) {
            match self.pull_from(&endpoint, reference, credentials).await {
                Ok(image) => return Ok(image),
                Err(e) => {
                    tracing::debug!(endpoint = %endpoint.base_url(), error = %e, "pull attempt failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| PullError::NotFound { reference: reference.to_string(), endpoint: String::new() }))
    }

    async fn pull_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        credentials: &[Credentials],
    ) -> Result<Image, PullError> {
        let mut session = Session::new(&self.clients, &self.config, endpoint, credentials, "pull")?;
        let (top_bytes, content_type) = session.get_manifest(&reference.object(), reference).await?;
        let top_digest = Digest::of(&top_bytes);
        if let Some(expected) = &reference.digest
            && *expected != top_digest
        {
            return Err(PullError::DigestMismatch {
                what: "manifest",
                url: session.url(&format!("manifests/{}", reference.object())),
                expected: expected.clone(),
                actual: top_digest,
            });
        }
        let (manifest_digest, manifest_bytes, manifest) =
            match oci::parse_manifest(content_type.as_deref(), &top_bytes)? {
                ManifestDoc::Manifest(m) => (top_digest.clone(), top_bytes.clone(), *m),
                ManifestDoc::Index(index) => {
                    let desc = index.select(&self.platform)?.clone();
                    let (bytes, ct) = session.get_manifest(&desc.digest.to_string(), reference).await?;
                    let actual = Digest::of(&bytes);
                    if actual != desc.digest {
                        return Err(PullError::DigestMismatch {
                            what: "manifest",
                            url: session.url(&format!("manifests/{}", desc.digest)),
                            expected: desc.digest,
                            actual,
                        });
                    }
                    match oci::parse_manifest(ct.as_deref().or(Some(desc.media_type.as_str())), &bytes)? {
                        ManifestDoc::Manifest(m) => (actual, bytes, *m),
                        ManifestDoc::Index(_) => {
                            return Err(OciError::UnsupportedManifest("an index inside an index".into()).into());
                        }
                    }
                }
            };
        if ![oci::OCI_CONFIG, oci::DOCKER_CONFIG, ""].contains(&manifest.config.media_type.as_str()) {
            return Err(PullError::NotAnImage {
                reference: reference.to_string(),
                media_type: manifest.config.media_type.clone(),
            });
        }
        for layer in &manifest.layers {
            if crate::unpack::Compression::from_media_type(&layer.media_type).is_none() {
                return Err(PullError::UnsupportedLayer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
        }
        let config_bytes = if self.store.has_blob(&manifest.config.digest) {
            self.store.read_blob(&manifest.config.digest)?
        } else {
            let bytes = session.get_small_blob(&manifest.config, MAX_CONFIG_BYTES).await?;
            self.store.put_blob(&bytes, Some(&manifest.config.digest))?;
            bytes.to_vec()
        };
        let config = ImageConfigFile::parse(&config_bytes)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(PullError::LayerCountMismatch {
                reference: reference.to_string(),
                diff_ids: config.rootfs.diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }
        for layer in &manifest.layers {
            if !self.store.has_blob(&layer.digest) {
                session.fetch_blob(layer, &self.store).await?;
            }
        }
        self.store.put_blob(&manifest_bytes, Some(&manifest_digest))?;
        self.store.put_blob(&top_bytes, Some(&top_digest))?;
        let image = Image {
            name: reference.to_string(),
            digest: top_digest,
            manifest: manifest_digest,
            config: manifest.config.digest.clone(),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            layers: manifest.layers,
            diff_ids: config.rootfs.diff_ids,
        };
        self.store.put(image.clone())?;
        Ok(image)
    }
}

/// Requests to one endpoint for one repository, carrying whatever authorisation the
/// registry asked for and moving to the next credentials when some are refused.
pub(crate) struct Session<'a> {
    clients: &'a Clients,
    config: &'a RegistryConfig,
    client: HttpClient,
    endpoint: &'a Endpoint,
    /// Credentials to try in order; `None` is anonymous (only when there are none).
    candidates: Vec<Option<Credentials>>,
    current: usize,
    /// Which candidate the current `Authorization` header came from.
    authorized: Option<usize>,
    header: Option<HeaderValue>,
    /// The scope the current bearer token was granted for: a challenge for another
    /// (pushing after pulling) asks for a new token with the same credentials.
    scope: Option<String>,
    actions: &'static str,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        clients: &'a Clients,
        config: &'a RegistryConfig,
        endpoint: &'a Endpoint,
        credentials: &[Credentials],
        actions: &'static str,
    ) -> Result<Session<'a>, PullError> {
        let client = clients.get(endpoint.config.tls.as_ref())?;
        let mut candidates: Vec<Option<Credentials>> = Vec::new();
        if let Some(c) = &endpoint.config.auth {
            candidates.push(Some(c.clone()));
        }
        candidates.extend(credentials.iter().cloned().map(Some));
        if candidates.is_empty() {
            candidates.push(None);
        }
        Ok(Session {
            clients,
            config,
            client,
            endpoint,
            candidates,
            current: 0,
            authorized: None,
            header: None,
            scope: None,
            actions,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}/{}", self.endpoint.base_url(), self.endpoint.repository, path)
    }

    /// A request to `path` under the repository (or to an absolute URL, as an upload's
    /// `Location`), authorising as challenged.
    pub(crate) async fn request(
        &mut self,
        method: Method,
        path: &str,
        extra: &HeaderMap,
        body: Bytes,
    ) -> Result<(http::Response<Incoming>, String), PullError> {
        let url = if path.contains("://") { path.to_string() } else { self.url(path) };
        loop {
            let mut headers = extra.clone();
            if let Some(h) = &self.header {
                headers.insert(header::AUTHORIZATION, h.clone());
            }
            let (resp, final_url) = transport::send(&self.client, method.clone(), &url, &headers, body.clone()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok((resp, final_url));
            }
            let challenges: Vec<Challenge> = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .collect();
            let refused = registry_message(read_small(resp, &final_url).await);
            let wanted_scope = challenges.iter().find_map(|c| match c {
                Challenge::Bearer { scope, .. } => scope.clone(),
                Challenge::Basic { .. } => None,
            });
            let new_scope = wanted_scope.is_some() && wanted_scope != self.scope;
            if self.authorized == Some(self.current) && !new_scope {
                // These credentials were tried and refused.
                self.current += 1;
                self.header = None;
                self.authorized = None;
            }
            loop {
                let Some(creds) = self.candidates.get(self.current).cloned() else {
                    return Err(PullError::Unauthorized {
                        endpoint: self.endpoint.base_url(),
                        message: if refused.is_empty() { "authentication required".into() } else { refused },
                    });
                };
                match self.authorize(&challenges, creds.as_ref()).await {
                    Ok(h) => {
                        self.header = Some(h);
                        self.authorized = Some(self.current);
                        self.scope = wanted_scope.clone();
                        break;
                    }
                    Err(PullError::Unauthorized { .. }) => self.current += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn authorize(&self, challenges: &[Challenge], creds: Option<&Credentials>) -> Result<HeaderValue, PullError> {
        let unauthorized = |message: &str| PullError::Unauthorized {
            endpoint: self.endpoint.base_url(),
            message: message.to_string(),
        };
        if let Some(Challenge::Bearer { realm, service, scope }) =
            challenges.iter().find(|c| matches!(c, Challenge::Bearer { .. }))
        {
            let scope =
                scope.clone().unwrap_or_else(|| format!("repository:{}:{}", self.endpoint.repository, self.actions));
            let token = self.fetch_token(realm, service.as_deref(), &scope, creds).await?;
            return HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| unauthorized("malformed token"));
        }
        if challenges.iter().any(|c| matches!(c, Challenge::Basic { .. })) {
            let Some(c) = creds else { return Err(unauthorized("the registry asks for a username and password")) };
            return Ok(basic_header(&c.username, &c.password));
        }
        Err(unauthorized("the registry asks for an authentication scheme other than Basic or Bearer"))
    }

    /// The token protocol: GET the realm (with basic credentials if any), or POST an
    /// OAuth2 refresh token when the credentials are an identity token.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, PullError> {
        let realm_uri: http::Uri = realm.parse().map_err(|_| TransportError::Url { url: realm.to_string() })?;
        let realm_host = realm_uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let client = self.clients.get(self.config.host_config(&realm_host).tls.as_ref())?;
        let mut headers = HeaderMap::new();
        let (method, url, body) = match creds.and_then(|c| c.identity_token.as_deref()) {
            Some(refresh) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
                let mut form = format!(
                    "grant_type=refresh_token&client_id=rudder&refresh_token={}&scope={}",
                    query_escape(refresh),
                    query_escape(scope)
                );
                if let Some(s) = service {
                    form.push_str(&format!("&service={}", query_escape(s)));
                }
                (Method::POST, realm.to_string(), Bytes::from(form))
            }
            None => {
                let mut url =
                    format!("{realm}{}scope={}", if realm.contains('?') { '&' } else { '?' }, query_escape(scope));
                if let Some(s) = service {
                    url.push_str(&format!("&service={}", query_escape(s)));
                }
                if let Some(c) = creds {
                    headers.insert(header::AUTHORIZATION, basic_header(&c.username, &c.password));
                }
                (Method::GET, url, Bytes::new())
            }
        };
        let (resp, final_url) = transport::send(&client, method, &url, &headers, body).await?;
        let status = resp.status();
        let bytes = transport::read_body(resp, &final_url, MAX_SMALL_BODY).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(PullError::Unauthorized {
                endpoint: self.endpoint.base_url(),
                message: format!("token server {realm}: {}", registry_message(bytes)),
            });
        }
        if !status.is_success() {
            return Err(PullError::Status {
                url: final_url,
                status: status.as_u16(),
                message: registry_message(bytes),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| PullError::Status {
            url: final_url.clone(),
            status: status.as_u16(),
            message: format!("token response is not JSON: {e}"),
        })?;
        token.into_token().ok_or_else(|| PullError::Unauthorized {
            endpoint: self.endpoint.base_url(),
            message: format!("token server {realm} returned no token"),
        })
    }

    /// A manifest by tag or digest, with its `Content-Type`.
    async fn get_manifest(
        &mut self,
        object: &str,
        reference: &Reference,
    ) -> Result<(Bytes, Option<String>), PullError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(oci::MANIFEST_ACCEPT));
        let (resp, url) = self.request(Method::GET, &format!("manifests/{object}"), &headers, Bytes::new()).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(PullError::NotFound { reference: reference.to_string(), endpoint: self.endpoint.base_url() });
        }
        if !status.is_success() {
            let message = registry_message(read_small(resp, &url).await);
            return Err(PullError::Status { url, status: status.as_u16(), message });
        }
        let content_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = transport::read_body(resp, &url, MAX_MANIFEST_BYTES).await?;
        Ok((bytes, content_type))
    }

    async fn blob_response(&mut self, desc: &Descriptor) -> Result<(http::Response<Incoming>, String), PullError> {
        let (resp, url) =
            self.request(Method::GET, &format!("blobs/{}", desc.digest), &HeaderMap::new(), Bytes::new()).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let message = registry_message(read_small(resp, &url).await);
            return Err(PullError::Status { url, status, message });
        }
        Ok((resp, url))
    }

    async fn get_small_blob(&mut self, desc: &Descriptor, limit: usize) -> Result<Bytes, PullError> {
        let (resp, url) = self.blob_response(desc).await?;
        let bytes = transport::read_body(resp, &url, limit).await?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(PullError::DigestMismatch { what: "config", url, expected: desc.digest.clone(), actual });
        }
        Ok(bytes)
    }

    /// Streams a blob into the store, hashing as it goes; a body longer than the
    /// descriptor says is cut off at once.
    async fn fetch_blob(&mut self, desc: &Descriptor, store: &ImageStore) -> Result<(), PullError> {
        let (resp, url) = self.blob_response(desc).await?;
        let mut ingest = store.ingest()?;
        let mut body = resp.into_body();
        loop {
            let frame = match tokio::time::timeout(transport::BODY_IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err(TransportError::Timeout { url }.into()),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(TransportError::Body { url, message: transport::error_chain(&e) }.into());
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                ingest
                    .write_all(&data)
                    .map_err(|source| PullError::Write { what: format!("layer {}", desc.digest), source })?;
                if ingest.len() > desc.size {
                    return Err(PullError::SizeMismatch {
                        what: "layer",
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: ingest.len(),
                    });
                }
            }
        }
        ingest.commit(Some(&desc.digest), Some(desc.size))?;
        Ok(())
    }
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

async fn read_small(resp: http::Response<Incoming>, url: &str) -> Bytes {
    transport::read_body(resp, url, MAX_SMALL_BODY).await.unwrap_or_default()
}

/// The registry's error body (`{"errors":[{"code":…,"message":…}]}`) as one line.
pub(crate) fn registry_message(body: Bytes) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| match (i.code.is_empty(), i.message.is_empty()) {
                (false, false) => format!("{}: {}", i.code, i.message),
                (false, true) => i.code.clone(),
                _ => i.message.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    String::from_utf8_lossy(&body).trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_one_line() {
        let body =
            Bytes::from_static(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#);
        assert_eq!(registry_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_message(Bytes::from_static(b"  plain text\n")), "plain text");
        assert_eq!(registry_message(Bytes::new()), "");
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        assert_eq!(basic_header("alice", "secret"), "Basic YWxpY2U6c2VjcmV0");
    }
}
