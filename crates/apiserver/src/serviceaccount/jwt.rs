//! Compact JWS (RFC 7515) with ES256: the service-account signing key, kept beside the
//! other PKI files, signing claims and verifying tokens it signed.
//!
//! Upstream signs with RS256 by default and also accepts ES256; `ring` signs ECDSA P-256
//! cheaply and generates the key itself, so no other crypto crate is needed. The `kid`
//! header is computed as upstream computes it: the unpadded base64url SHA-256 of the
//! public key's PKIX (SubjectPublicKeyInfo) DER.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::path::Path;

/// Why a token was not accepted (the API server logs these; clients only see 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header is not ES256 JSON")]
    Header,
    #[error("token signature is invalid")]
    Signature,
    #[error("token payload is not a JSON object")]
    Payload,
}

/// Why the signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading or writing {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path} holds no usable ECDSA P-256 private key")]
    Parse { path: std::path::PathBuf },
    #[error("generating the service-account key failed")]
    Generate,
    #[error(transparent)]
    Write(#[from] crate::pki::PkiError),
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The key that signs and verifies service-account tokens.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(label: &str, pem: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

impl SigningKey {
    /// A new random key (PKCS#8 DER).
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| KeyError::Generate)?;
        Ok(doc.as_ref().to_vec())
    }

    pub fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).ok()?;
        let public = pair.public_key().as_ref().to_vec();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&public);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Some(SigningKey { pair, public, kid, rng })
    }

    /// Loads `path` (a PEM `PRIVATE KEY`), creating it on first start.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
        let pem = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = pem_encode("PRIVATE KEY", &SigningKey::generate_pkcs8()?);
                crate::pki::write_private(path, pem.as_bytes())?;
                pem
            }
            Err(source) => return Err(KeyError::Io { path: path.to_path_buf(), source }),
        };
        pem_decode("PRIVATE KEY", &pem)
            .and_then(|der| SigningKey::from_pkcs8(&der))
            .ok_or_else(|| KeyError::Parse { path: path.to_path_buf() })
    }

    /// The key id in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as PEM (`PUBLIC KEY`, PKIX), for whoever verifies tokens elsewhere.
    pub fn public_pem(&self) -> String {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.public);
        pem_encode("PUBLIC KEY", &spki)
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let signing_input = format!("{}.{}", encode(&header), encode(claims));
        let sig = self.pair.sign(&self.rng, signing_input.as_bytes()).map_err(|_| JwtError::Signature)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// The claims of a token this key signed; no claim is checked here.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let decode = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| JwtError::Malformed);
        let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Header)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(JwtError::Header);
        }
        let sig = decode(s)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|_| JwtError::Payload)?;
        if !claims.is_object() {
            return Err(JwtError::Payload);
        }
        Ok(claims)
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts), so static tokens
/// are not run through signature checks.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn signs_and_verifies() {
        let k = key();
        let claims = json!({"sub": "system:serviceaccount:default:default", "exp": 10});
        let token = k.sign(&claims).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(k.verify(&token).unwrap(), claims);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": k.kid()}));
        assert_eq!(k.kid().len(), 43, "a base64url SHA-256");
    }

    #[test]
    fn rejects_tampering_and_other_keys() {
        let k = key();
        let token = k.sign(&json!({"sub": "a"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(br#"{"sub":"b"}"#), parts[2]);
        assert_eq!(k.verify(&forged), Err(JwtError::Signature));
        assert_eq!(key().verify(&token), Err(JwtError::Signature));
        assert_eq!(k.verify("a.b"), Err(JwtError::Malformed));
        assert_eq!(k.verify("a.b.c.d"), Err(JwtError::Malformed));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(k.verify(&none), Err(JwtError::Header));
        assert!(!looks_like_jwt("K10abc::node:secret"));
        assert!(!looks_like_jwt("deadbeef"));
    }

    #[test]
    fn the_key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service-account.key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.kid(), b.kid());
        let token = a.sign(&json!({"x": 1})).unwrap();
        assert_eq!(b.verify(&token).unwrap(), json!({"x": 1}));
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        assert!(a.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        std::fs::write(&path, "junk").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(KeyError::Parse { .. })));
    }
}
