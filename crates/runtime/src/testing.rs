//! Test fixtures (the `testing` feature), for this crate's tests and end-to-end tests
//! of its users: images built here from Debian's `busybox-static` (tar layers and JSON
//! written by hand), a real `docker-registry` child process on a loopback port (plain,
//! with basic auth, with bearer tokens from a token server, or with TLS), and a push
//! client. Everything started here is stopped and removed on drop.
//!
//! Setup failures panic, as in any test fixture.

use crate::digest::Digest;
use crate::distribution::{PullError, Session};
use crate::oci::{self, Descriptor, ImageConfig, Platform};
use crate::registries::{Credentials, Endpoint, HostConfig, RegistryConfig, TlsConfig};
use crate::transport::Clients;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The one user of registries with authentication.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
/// `htpasswd -Bbn alice secret` (bcrypt), so tests need no apache2-utils.
const HTPASSWD: &str = "alice:$2y$05$beFmDSRoA08uFtD2IZ6gTuW5M47VWPfqXeZiVAtqbJCkccMIcA/2S\n";
const TOKEN_SERVICE: &str = "rudder-test-registry";
const TOKEN_ISSUER: &str = "rudder-test-issuer";

// ---- Images ----

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// Builds an uncompressed layer tar entry by entry (root-owned, fixed times).
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        LayerBuilder::new()
    }
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder { tar: tar::Builder::new(Vec::new()) }
    }

    fn append(mut self, path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if let Some(l) = link {
            h.set_link_name(l).expect("link name");
        }
        self.tar.append_data(&mut h, path, data).expect("appending to a layer");
        self
    }

    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.append(path, tar::EntryType::Directory, mode, b"", None)
    }

    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> Self {
        self.append(path, tar::EntryType::Regular, mode, data, None)
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.append(path, tar::EntryType::Symlink, 0o777, b"", Some(target))
    }

    /// Hides `path` of the layers below.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
        self.file(&wh, 0o644, b"")
    }

    /// Hides everything below `dir` in the layers below.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), 0o644, b"")
    }

    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("finishing a layer")
    }
}

/// A layer with a static busybox at `/bin/busybox`, a symlink for each of its applets
/// in `/bin`, and minimal `/etc/passwd`, `/etc/group`, `/tmp`.
pub fn busybox_layer() -> LayerBuilder {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .expect("busybox (Debian package busybox-static) must be installed: .ci/run installs it");
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/busybox", 0o755, &busybox)
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .dir("tmp", 0o1777)
        .dir("root", 0o700);
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            layer = layer.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    layer
}

/// One blob of a built image.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob { media_type: media_type.to_string(), digest: Digest::of(&bytes), bytes }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        }
    }
}

/// Assembles an image from layers and a run config.
pub struct ImageBuilder {
    layers: Vec<(Vec<u8>, LayerCompression)>,
    config: ImageConfig,
    platform: Platform,
    docker: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    pub fn new() -> ImageBuilder {
        ImageBuilder { layers: Vec::new(), config: ImageConfig::default(), platform: Platform::host(), docker: false }
    }

    pub fn layer(mut self, tar: Vec<u8>, compression: LayerCompression) -> Self {
        self.layers.push((tar, compression));
        self
    }

    pub fn config(mut self, config: ImageConfig) -> Self {
        self.config = config;
        self
    }

    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Docker v2 schema 2 media types instead of OCI ones.
    pub fn docker_media_types(mut self) -> Self {
        self.docker = true;
        self
    }

    pub fn build(self) -> BuiltImage {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut raw = Vec::new();
        for (tar, compression) in self.layers {
            diff_ids.push(Digest::of(&tar));
            let (media_type, bytes) = match (compression, self.docker) {
                (LayerCompression::None, _) => (oci::OCI_LAYER, tar.clone()),
                (LayerCompression::Gzip, docker) => {
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(&tar).expect("gzip");
                    (if docker { oci::DOCKER_LAYER_GZIP } else { oci::OCI_LAYER_GZIP }, gz.finish().expect("gzip"))
                }
                (LayerCompression::Zstd, _) => (
                    oci::OCI_LAYER_ZSTD,
                    ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest),
                ),
            };
            layers.push(Blob::new(media_type, bytes));
            raw.push(tar);
        }
        let config_json = serde_json::json!({
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Blob::new(
            if self.docker { oci::DOCKER_CONFIG } else { oci::OCI_CONFIG },
            serde_json::to_vec(&config_json).expect("config json"),
        );
        let manifest_type = if self.docker { oci::DOCKER_MANIFEST } else { oci::OCI_MANIFEST };
        let manifest_json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(manifest_type, serde_json::to_vec(&manifest_json).expect("manifest json"));
        BuiltImage { manifest, config, layers, uncompressed: raw, diff_ids, platform: self.platform }
    }
}

/// A built image: its manifest, config and layer blobs.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The layers' tars before compression (what `docker save` holds).
    pub uncompressed: Vec<Vec<u8>>,
    pub diff_ids: Vec<Digest>,
    pub platform: Platform,
}

/// An image index over several built images, one per platform.
pub fn index_of(images: &[&BuiltImage]) -> Blob {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            let mut d = serde_json::to_value(i.manifest.descriptor()).expect("descriptor");
            d["platform"] = serde_json::to_value(&i.platform).expect("platform");
            d
        })
        .collect();
    let json = serde_json::json!({"schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": manifests});
    Blob::new(oci::OCI_INDEX, serde_json::to_vec(&json).expect("index json"))
}

fn tar_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, path, data).expect("archive entry");
}

impl BuiltImage {
    /// The image as an OCI image layout archive, named `name` in `index.json`.
    pub fn oci_archive(&self, name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        tar_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let mut desc = serde_json::to_value(self.manifest.descriptor()).expect("descriptor");
        desc["annotations"] = serde_json::json!({ (oci::REF_NAME_ANNOTATION): name });
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
        tar_file(&mut b, "index.json", &serde_json::to_vec(&index).expect("index"));
        for blob in self.layers.iter().chain([&self.config, &self.manifest]) {
            tar_file(&mut b, &format!("blobs/sha256/{}", blob.digest.hex()), &blob.bytes);
        }
        b.into_inner().expect("archive")
    }

    /// The image as `docker save` writes it (uncompressed `<id>/layer.tar` files, the
    /// config as `<id>.json`, and `manifest.json`).
    pub fn docker_archive(&self, repo_tag: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut layer_paths = Vec::new();
        for (tar, diff_id) in self.uncompressed.iter().zip(&self.diff_ids) {
            let path = format!("{}/layer.tar", diff_id.hex());
            tar_file(&mut b, &format!("{}/VERSION", diff_id.hex()), b"1.0");
            tar_file(&mut b, &path, tar);
            layer_paths.push(path);
        }
        let config_path = format!("{}.json", self.config.digest.hex());
        tar_file(&mut b, &config_path, &self.config.bytes);
        let manifest = serde_json::json!([{"Config": config_path, "RepoTags": [repo_tag], "Layers": layer_paths}]);
        tar_file(&mut b, "manifest.json", &serde_json::to_vec(&manifest).expect("manifest"));
        b.into_inner().expect("archive")
    }
}

/// The busybox image: one gzip layer, `sh` as its command.
pub fn busybox_image() -> BuiltImage {
    ImageBuilder::new()
        .layer(busybox_layer().finish(), LayerCompression::Gzip)
        .config(ImageConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()]),
            ..ImageConfig::default()
        })
        .build()
}

// ---- Registry ----

/// How the test registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// htpasswd: [`USER`] / [`PASSWORD`].
    Basic,
    /// Bearer tokens from a token server that accepts [`USER`] / [`PASSWORD`].
    Token,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryOptions {
    pub auth: RegistryAuth,
    /// Serve https with a certificate from a fresh CA (see [`Registry::ca_file`]).
    pub tls: bool,
}

/// A `docker-registry` (distribution) child process on a loopback port.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The CA of its certificate, when it serves https.
    pub ca_file: Option<PathBuf>,
    pub options: RegistryOptions,
    _token_server: Option<TokenServer>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port()
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(RegistryOptions::default())
    }

    pub fn start_with(options: RegistryOptions) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: {}\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: rudder-test\n",
            if std::env::var_os("RUDDER_TEST_REGISTRY_LOG").is_some() { "debug" } else { "error" },
            dir.path().join("data").display()
        );
        let mut ca_file = None;
        if options.tls {
            let (ca, cert, key) = tls_files(dir.path());
            config.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display()));
            ca_file = Some(ca);
        }
        let mut token_server = None;
        match options.auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, HTPASSWD).expect("htpasswd");
                config.push_str(&format!("auth:\n  htpasswd:\n    realm: rudder-test\n    path: {}\n", path.display()));
            }
            RegistryAuth::Token => {
                let server = TokenServer::start(dir.path());
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm,
                    server.cert_file.display()
                ));
                token_server = Some(server);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("RUDDER_TEST_REGISTRY_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect(
                "the docker-registry binary (Debian package docker-registry) must be installed: .ci/run installs it",
            );
        let registry = Registry { child, host, ca_file, options, _token_server: token_server, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen within 20s");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.options.tls { "https" } else { "http" }, self.host)
    }

    /// A scratch directory that lives as long as the registry.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The endpoint to push to.
    fn endpoint(&self, repository: &str, credentials: Option<&Credentials>) -> Endpoint {
        Endpoint {
            scheme: if self.options.tls { "https" } else { "http" }.into(),
            host: self.host.clone(),
            prefix: "/v2".into(),
            repository: repository.into(),
            mirror: false,
            config: HostConfig {
                auth: credentials.cloned(),
                tls: self.ca_file.as_ref().map(|ca| TlsConfig { ca_file: Some(ca.clone()), ..TlsConfig::default() }),
            },
        }
    }

    /// The credentials this registry accepts, if it wants any.
    pub fn credentials(&self) -> Option<Credentials> {
        match self.options.auth {
            RegistryAuth::None => None,
            _ => Some(Credentials::basic(USER, PASSWORD)),
        }
    }

    /// Pushes an image's blobs and manifest as `repository:tag`.
    pub async fn push(&self, repository: &str, tag: &str, image: &BuiltImage) -> Result<(), PullError> {
        let creds = self.credentials();
        let clients = Clients::default();
        let config = RegistryConfig::default();
        let endpoint = self.endpoint(repository, creds.as_ref());
        let mut session = Session::new(&clients, &config, &endpoint, &[], "pull,push")?;
        for blob in image.layers.iter().chain([&image.config]) {
            push_blob(&mut session, blob).await?;
        }
        put_manifest(&mut session, &image.manifest.digest.to_string(), &image.manifest).await?;
        put_manifest(&mut session, tag, &image.manifest).await
    }

    /// Pushes several images and an index over them as `repository:tag`.
    pub async fn push_index(&self, repository: &str, tag: &str, images: &[&BuiltImage]) -> Result<Blob, PullError> {
        for image in images {
            self.push(repository, &format!("m-{}", &image.manifest.digest.hex()[..12]), image).await?;
        }
        let index = index_of(images);
        let creds = self.credentials();
        let clients = Clients::default();
        let config = RegistryConfig::default();
        let endpoint = self.endpoint(repository, creds.as_ref());
        let mut session = Session::new(&clients, &config, &endpoint, &[], "pull,push")?;
        put_manifest(&mut session, tag, &index).await?;
        Ok(index)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn check(resp: http::Response<hyper::body::Incoming>, url: &str) -> Result<(), PullError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = crate::transport::read_body(resp, url, 64 << 10).await.unwrap_or_default();
    Err(PullError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        message: crate::distribution::registry_message(body),
    })
}

async fn push_blob(session: &mut Session<'_>, blob: &Blob) -> Result<(), PullError> {
    let (resp, _) =
        session.request(Method::HEAD, &format!("blobs/{}", blob.digest), &HeaderMap::new(), Bytes::new()).await?;
    if resp.status().is_success() {
        return Ok(());
    }
    let (resp, url) = session.request(Method::POST, "blobs/uploads/", &HeaderMap::new(), Bytes::new()).await?;
    let location = resp.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
    check(resp, &url).await?;
    let location = location.ok_or_else(|| PullError::Status {
        url: url.clone(),
        status: 202,
        message: "no Location for the upload".into(),
    })?;
    let base: http::Uri = url.parse().map_err(|_| crate::transport::TransportError::Url { url: url.clone() })?;
    let upload = crate::transport::resolve(&base, &location);
    let sep = if upload.contains('?') { '&' } else { '?' };
    let put_url = format!("{upload}{sep}digest={}", crate::auth::query_escape(&blob.digest.to_string()));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let (resp, url) = session.request(Method::PUT, &put_url, &headers, Bytes::from(blob.bytes.clone())).await?;
    check(resp, &url).await
}

async fn put_manifest(session: &mut Session<'_>, reference: &str, blob: &Blob) -> Result<(), PullError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&blob.media_type).unwrap_or(HeaderValue::from_static(oci::OCI_MANIFEST)),
    );
    let (resp, url) = session
        .request(Method::PUT, &format!("manifests/{reference}"), &headers, Bytes::from(blob.bytes.clone()))
        .await?;
    check(resp, &url).await
}

/// A CA and a server certificate for 127.0.0.1 and localhost.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "rudder-test-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.clone().self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
    params.distinguished_name.push(DnType::CommonName, "rudder-test-registry");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = Issuer::new(ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let (ca_path, cert_path, key_path) = (dir.join("ca.crt"), dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&ca_path, ca_cert.pem()).expect("ca.crt");
    std::fs::write(&cert_path, cert.pem()).expect("server.crt");
    std::fs::write(&key_path, key.serialize_pem()).expect("server.key");
    (ca_path, cert_path, key_path)
}

// ---- Token server ----

/// A token server for the registry's `token` auth: it checks basic credentials and
/// answers with an ES256 JWT (its certificate in `x5c`, trusted by the registry
/// through `rootcertbundle`) granting what the scope asks.
struct TokenServer {
    realm: String,
    cert_file: PathBuf,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("token key");
        let mut params = rcgen::CertificateParams::new(vec!["rudder-token".to_string()]).expect("token params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "rudder-token");
        let cert = params.self_signed(&key).expect("token cert");
        let cert_file = dir.join("token.crt");
        std::fs::write(&cert_file, cert.pem()).expect("token.crt");
        let rng = ring::rand::SystemRandom::new();
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .expect("token signing key");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").expect("token listener");
        let addr = listener.local_addr().expect("token addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = serve_token(conn, &signer, &rng, &x5c);
                }
            }
        });
        TokenServer { realm: format!("http://{addr}/token"), cert_file, stop, addr, thread: Some(thread) }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token(
    conn: TcpStream,
    signer: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    x5c: &str,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(v.trim().to_string()),
                "content-length" => content_length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scope = query.split('&').find_map(|kv| kv.strip_prefix("scope=")).map(percent_decode).unwrap_or_default();
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let (status, json) = if authorization.as_deref() != Some(expected.as_str()) {
        ("401 Unauthorized", serde_json::json!({"details": "bad credentials"}))
    } else {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut access = Vec::new();
        // `repository:NAME:ACTIONS`; the name may not contain ':' but actions are a list.
        if let Some(rest) = scope.strip_prefix("repository:")
            && let Some((name, actions)) = rest.rsplit_once(':')
        {
            access.push(serde_json::json!({"type": "repository", "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
        }
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": USER, "aud": TOKEN_SERVICE,
            "exp": now + 3600, "nbf": now - 60, "iat": now,
            "jti": format!("{now}-{}", crate::images::unique()), "access": access,
        });
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let sig = signer.sign(rng, signing_input.as_bytes()).map_err(|_| std::io::Error::other("signing"))?;
        let token =
            format!("{signing_input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref()));
        ("200 OK", serde_json::json!({"token": token, "expires_in": 3600}))
    };
    let body = json.to_string();
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
