//! Certificates and credentials, generated on first start and kept in the data dir:
//! a CA, the serving certificate (re-issued when the names it must cover change), the
//! client certificate the API server presents to node agents (`kubelet-client`), the
//! admin bearer token and the node join secret; and serving certificates for node
//! agents, signed by the CA so that the API server can verify them.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("reading or writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path} holds no usable {what}")]
    Parse { path: PathBuf, what: &'static str },
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("service-account signing key: {0}")]
    ServiceAccountKey(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(contents).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a file, or creates it with `make` when absent.
fn read_or_create(path: &Path, make: impl FnOnce() -> Result<String, PkiError>) -> Result<String, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = make()?;
            write_private(path, s.as_bytes())?;
            Ok(s)
        }
        Err(e) => Err(PkiError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// A random secret as lowercase hex, from the operating system's generator.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("the operating system's random generator is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cluster's certificates and credentials.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The bearer token of the cluster administrator (group `system:masters`).
    pub admin_token: String,
    /// The secret part of the node join token.
    pub node_secret: String,
    /// The client certificate (and key) the API server presents to node agents, as
    /// upstream's `--kubelet-client-certificate`: CN `kube-apiserver-kubelet-client`,
    /// O `system:masters`, client authentication only.
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
    ca_key_pem: String,
    /// `service-account.key`: signs service-account tokens (ECDSA P-256, PKCS#8 PEM).
    service_account_key_path: PathBuf,
}

/// The file name of the service-account signing key in the PKI directory.
pub const SERVICE_ACCOUNT_KEY: &str = "service-account.key";

/// The common name of the API server's client certificate towards node agents.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "rudder-ca");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

impl Pki {
    /// Loads everything from `dir`, creating what is missing. `sans` are the names and
    /// addresses the serving certificate must cover.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let ca_key_path = dir.join("ca.key");
        let ca_key_pem = read_or_create(&ca_key_path, || Ok(KeyPair::generate()?.serialize_pem()))?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|_| PkiError::Parse { path: ca_key_path, what: "key" })?;
        let ca_pem = read_or_create(&dir.join("ca.crt"), || Ok(ca_params()?.self_signed(&ca_key)?.pem()))?;

        // The serving certificate is re-issued whenever the set of names changes.
        let wanted = sans.join(",");
        let sans_path = dir.join("server.sans");
        let current = fs::read_to_string(&sans_path).unwrap_or_default();
        let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
        if current != wanted || !cert_path.exists() || !key_path.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(sans.to_vec())?;
            params.distinguished_name.push(DnType::CommonName, "rudder-apiserver");
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let issuer = Issuer::new(ca_params()?, &ca_key);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_private(&cert_path, cert.pem().as_bytes())?;
            write_private(&sans_path, wanted.as_bytes())?;
        }
        let server_cert_pem = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let server_key_pem = fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let admin_token = read_or_create(&dir.join("admin.token"), || Ok(random_hex(32)))?.trim().to_string();
        let node_secret = read_or_create(&dir.join("node.secret"), || Ok(random_hex(32)))?.trim().to_string();

        // Made once, kept across restarts (agents only check that the CA signed it).
        let (kc_cert, kc_key) = (dir.join("apiserver-kubelet-client.crt"), dir.join("apiserver-kubelet-client.key"));
        if !kc_cert.exists() || !kc_key.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, KUBELET_CLIENT_CN);
            params.distinguished_name.push(DnType::OrganizationName, "system:masters");
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &Issuer::new(ca_params()?, &ca_key))?;
            write_private(&kc_key, key.serialize_pem().as_bytes())?;
            write_private(&kc_cert, cert.pem().as_bytes())?;
        }
        let kubelet_client_cert_pem = fs::read_to_string(&kc_cert).map_err(io(&kc_cert))?;
        let kubelet_client_key_pem = fs::read_to_string(&kc_key).map_err(io(&kc_key))?;
        let service_account_key_path = dir.join(SERVICE_ACCOUNT_KEY);
        crate::serviceaccount::jwt::SigningKey::load_or_create(&service_account_key_path)
            .map_err(|e| PkiError::ServiceAccountKey(e.to_string()))?;
        Ok(Pki {
            ca_pem,
            server_cert_pem,
            server_key_pem,
            admin_token,
            node_secret,
            kubelet_client_cert_pem,
            kubelet_client_key_pem,
            ca_key_pem,
            service_account_key_path,
        })
    }

    /// The key that signs service-account tokens (made on first start, then kept).
    pub fn service_account_key(&self) -> Result<crate::serviceaccount::jwt::SigningKey, PkiError> {
        crate::serviceaccount::jwt::SigningKey::load_or_create(&self.service_account_key_path)
            .map_err(|e| PkiError::ServiceAccountKey(e.to_string()))
    }

    /// A serving certificate and key for a node agent's kubelet port, signed by the
    /// CA, covering the node's name and addresses (the API server connects by
    /// address and checks the certificate against them).
    pub fn issue_kubelet_serving(&self, node_name: &str, addresses: &[String]) -> Result<(String, String), PkiError> {
        self.kubelet_issuer().issue(node_name, addresses)
    }

    /// What signs agents' serving certificates, for the API server to hand out.
    pub fn kubelet_issuer(&self) -> KubeletIssuer {
        KubeletIssuer { ca_key_pem: self.ca_key_pem.clone() }
    }

    /// The TLS client configuration towards node agents: the kubelet-client
    /// certificate, and the cluster CA as the only trusted issuer of their serving
    /// certificates.
    pub fn kubelet_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.kubelet_client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| PkiError::Parse { path: "apiserver-kubelet-client.crt".into(), what: "certificate" })?;
        let key = PrivateKeyDer::from_pem_slice(self.kubelet_client_key_pem.as_bytes())
            .map_err(|_| PkiError::Parse { path: "apiserver-kubelet-client.key".into(), what: "key" })?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let ca = ca.map_err(|_| PkiError::Parse { path: "ca.crt".into(), what: "certificate" })?;
            roots.add(ca)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The join token agents present: `K10<sha256 of the CA>::node:<secret>`, as k3s
    /// shapes it, so an agent can pin the CA before trusting the server.
    pub fn node_token(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.ca_pem.as_bytes());
        let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("K10{hash}::node:{}", self.node_secret)
    }

    /// The TLS configuration of the API listener (HTTP/2 and HTTP/1.1 by ALPN; the
    /// streaming upgrades need HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| PkiError::Parse { path: "server.crt".into(), what: "certificate" })?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|_| PkiError::Parse { path: "server.key".into(), what: "key" })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Signs serving certificates for node agents with the cluster CA.
#[derive(Clone)]
pub struct KubeletIssuer {
    ca_key_pem: String,
}

impl KubeletIssuer {
    /// A certificate and key for `node_name`, covering it and `addresses`.
    pub fn issue(&self, node_name: &str, addresses: &[String]) -> Result<(String, String), PkiError> {
        let ca_key =
            KeyPair::from_pem(&self.ca_key_pem).map_err(|_| PkiError::Parse { path: "ca.key".into(), what: "key" })?;
        let key = KeyPair::generate()?;
        let mut sans = vec![node_name.to_string()];
        sans.extend(addresses.iter().filter(|a| !a.is_empty() && *a != node_name).cloned());
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, format!("system:node:{node_name}"));
        params.distinguished_name.push(DnType::OrganizationName, "system:nodes");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &Issuer::new(ca_params()?, &ca_key))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A kubeconfig (as kubectl reads it) for the server at `server`, trusting `ca_pem`
/// and sending `token`: what `rudder server` writes for its administrator, and what
/// clients of an in-process server in tests and benchmarks load.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rudder\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: rudder\n  context:\n    cluster: rudder\n    user: admin\ncurrent-context: rudder\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let a = Pki::load_or_create(dir.path(), &sans).unwrap();
        let b = Pki::load_or_create(dir.path(), &sans).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(a.admin_token.len(), 64);
        assert!(a.node_token().starts_with("K10"));
        a.server_config().unwrap();
        // A new name re-issues the serving certificate from the same CA.
        let c = Pki::load_or_create(dir.path(), &["localhost".to_string(), "10.0.0.1".to_string()]).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.server_cert_pem, c.server_cert_pem);
        // The kubelet-client certificate is kept across restarts and re-issues.
        assert_eq!(a.kubelet_client_cert_pem, c.kubelet_client_cert_pem);
        assert!(a.kubelet_client_cert_pem.contains("BEGIN CERTIFICATE"));
        a.kubelet_client_config().unwrap();
        let (cert, key) = a.issue_kubelet_serving("node-1", &["127.0.0.1".to_string()]).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
        assert_eq!(a.service_account_key().unwrap().kid(), c.service_account_key().unwrap().kid());
        let mode = fs::metadata(dir.path().join("ca.key")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }
}
