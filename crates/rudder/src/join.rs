//! Joining a cluster with a node token: fetch the CA from `/cacerts` without trusting
//! it yet, check it against the hash the token carries (`K10<sha256>::node:<secret>`),
//! then talk to the API with that CA and the token.

use anyhow::{Context, bail};

/// The parts of a join token.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub ca_hash: String,
    pub secret: String,
}

impl Token {
    pub fn parse(token: &str) -> anyhow::Result<Token> {
        let token = token.trim();
        let Some(rest) = token.strip_prefix("K10") else {
            bail!("the join token must start with K10 (see DATA_DIR/node-token on the server)")
        };
        let Some((hash, cred)) = rest.split_once("::") else { bail!("the join token has no '::' separator") };
        let Some((_user, secret)) = cred.split_once(':') else { bail!("the join token has no credential after '::'") };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the join token's CA hash is not a sha256 hex digest");
        }
        Ok(Token { ca_hash: hash.to_ascii_lowercase(), secret: secret.to_string() })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Fetches the server's CA and checks it against the token.
async fn fetch_ca(server: &str, token: &Token) -> anyhow::Result<String> {
    // The CA is not known yet: accept any certificate for this one request and
    // trust the answer only if it hashes to what the token says.
    let mut config = kube::Config::new(server.parse().context("parsing --server")?);
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config)?;
    let req = http::Request::get("/cacerts").body(Vec::new())?;
    let pem = client.request_text(req).await.with_context(|| format!("fetching the CA from {server}/cacerts"))?;
    if sha256_hex(pem.as_bytes()) != token.ca_hash {
        bail!("the server's CA does not match the join token: refusing to trust {server}");
    }
    Ok(pem)
}

/// A client for the cluster at `server`, authenticated with the join token, naming
/// itself `program` (see [`crate::kubeconfig::client`]), and the cluster CA.
pub async fn client(server: &str, token: &str, program: &str) -> anyhow::Result<(kube::Client, String)> {
    let parsed = Token::parse(token)?;
    let ca = fetch_ca(server, &parsed).await?;
    let client = crate::kubeconfig::client(&crate::kubeconfig::render(server, &ca, token.trim()), program).await?;
    Ok((client, ca))
}

/// Splits what `/v1-rudder/serving-kubelet.crt` answers (the certificate, then its
/// key) in two.
pub fn split_cert_and_key(pem: &str) -> anyhow::Result<(String, String)> {
    const END: &str = "-----END CERTIFICATE-----";
    let Some(at) = pem.rfind(END) else { bail!("the serving certificate answer has no certificate") };
    let (cert, key) = pem.split_at(at + END.len());
    let key = key.trim_start();
    if !key.starts_with("-----BEGIN") || !key.contains("PRIVATE KEY-----") {
        bail!("the serving certificate answer has no key after the certificate");
    }
    Ok((format!("{cert}\n"), key.to_string()))
}

/// A serving certificate for this node's kubelet port, signed by the cluster CA,
/// which the API server checks when it connects for logs, exec and port-forward.
pub async fn serving_certificate(
    client: &kube::Client,
    node_name: &str,
    ips: &[std::net::IpAddr],
) -> anyhow::Result<(String, String)> {
    let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    let req = http::Request::get("/v1-rudder/serving-kubelet.crt")
        .header("Rudder-Node-Name", node_name)
        .header("Rudder-Node-IP", ips.join(","))
        .body(Vec::new())?;
    let pem = client.request_text(req).await.context("fetching the kubelet serving certificate")?;
    split_cert_and_key(&pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_refuse_garbage() {
        let hash = "ab".repeat(32);
        let t = Token::parse(&format!("K10{hash}::node:s3cret\n")).unwrap();
        assert_eq!(t, Token { ca_hash: hash.clone(), secret: "s3cret".into() });
        assert!(Token::parse("secret").is_err());
        assert!(Token::parse(&format!("K10{hash}node:x")).is_err());
        assert!(Token::parse("K10abc::node:x").is_err());
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn serving_answers_split_into_certificate_and_key() {
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        let (c, k) = split_cert_and_key(&format!("{cert}{key}")).unwrap();
        assert_eq!((c.as_str(), k.as_str()), (cert, key));
        assert!(split_cert_and_key(key).is_err());
        assert!(split_cert_and_key(cert).is_err());
    }
}
