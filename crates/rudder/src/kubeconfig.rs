//! Kubeconfig files for the cluster's administrator, usable as-is by kubectl.

use base64::Engine;
use std::path::{Path, PathBuf};

/// The kubeconfig text for a server URL, CA and bearer token.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rudder\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: rudder\n  context:\n    cluster: rudder\n    user: admin\ncurrent-context: rudder\n"
    )
}

#[derive(clap::Args)]
pub struct Args {
    /// The server's data dir.
    #[arg(long, default_value = "/var/lib/rudder")]
    data_dir: PathBuf,
    /// The server URL to put in the file.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    server: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tls = args.data_dir.join("tls");
    let read = |name: &str| -> anyhow::Result<String> {
        let p: &Path = &tls.join(name);
        std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("reading {}: {e} (has a server started on this data dir?)", p.display()))
    };
    print!("{}", render(&args.server, &read("ca.crt")?, read("admin.token")?.trim()));
    Ok(())
}
