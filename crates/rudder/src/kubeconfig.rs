//! Kubeconfig files for the cluster's administrator, usable as-is by kubectl.

use std::path::{Path, PathBuf};

/// The kubeconfig text for a server URL, CA and bearer token.
pub use apiserver::pki::kubeconfig as render;

/// A client for a kubeconfig, introducing itself as `program` in its User-Agent, from
/// which the API server names it as a field manager (`kube-controller-manager`,
/// `kube-scheduler`, `kubelet`, as upstream's components are named).
pub async fn client(kubeconfig: &str, program: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_str(&user_agent(program))?));
    Ok(kube::Client::try_from(config)?)
}

/// A client for a component that runs inside `rudder server` (controllers, scheduler,
/// DNS, the server's own agent): the same API, authenticated by `token`, reached
/// in-process instead of over loopback TLS (see `apiserver::loopback`).
pub fn in_process(ctx: &std::sync::Arc<apiserver::Ctx>, token: &str, program: &str) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::new(loopback(ctx, token, program)?, "default"))
}

/// [`in_process`] for a control loop (controllers, scheduler, DNS): its lists and
/// watches come without `metadata.managedFields` (see
/// `Loopback::without_managed_fields`), which none of them reads, so its informers
/// neither decode nor keep them (upstream's strip them after decoding).
pub fn control_loop(ctx: &std::sync::Arc<apiserver::Ctx>, token: &str, program: &str) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::new(loopback(ctx, token, program)?.without_managed_fields(), "default"))
}

fn loopback(
    ctx: &std::sync::Arc<apiserver::Ctx>,
    token: &str,
    program: &str,
) -> anyhow::Result<apiserver::loopback::Loopback> {
    Ok(apiserver::loopback::Loopback::new(ctx.clone(), token, &user_agent(program))?)
}

/// Upstream components name themselves `program/version (os/arch) ...`; the program
/// name becomes the default field manager of their writes.
fn user_agent(program: &str) -> String {
    format!("{program}/v1.33.0+rudder.{} (linux/amd64) rudder", env!("CARGO_PKG_VERSION"))
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
