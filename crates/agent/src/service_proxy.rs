//! The node's service proxy (the `proxy` crate), run for as long as the agent runs:
//! started beside the pod workers, stopped after them, and on a clean stop it
//! deletes its nftables table so that no rules outlive the agent.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stopping proxy may take to delete its table.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What the agent's configuration says about the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The pod network (`--cluster-cidr`): traffic from outside it is masqueraded.
    pub cluster_cidr: String,
    /// The service network, when known: traffic to unallocated addresses is dropped.
    pub service_cidr: Option<String>,
    /// The nftables table (family `ip`) the proxy owns.
    pub table: String,
    /// The `nft` binary.
    pub nft: PathBuf,
}

impl Settings {
    pub fn new(cluster_cidr: impl Into<String>) -> Settings {
        Settings { cluster_cidr: cluster_cidr.into(), service_cidr: None, table: "rudder".into(), nft: "nft".into() }
    }
}

/// The proxy's configuration for a node named `node_name` at `node_ip`. NodePorts
/// answer on the node's address; the proxy programs IPv4 only, so an IPv6 node
/// address leaves it with none.
pub fn proxy_config(node_name: &str, node_ip: IpAddr, settings: &Settings) -> proxy::Config {
    let ips: Vec<Ipv4Addr> = match node_ip {
        IpAddr::V4(ip) => vec![ip],
        IpAddr::V6(_) => Vec::new(),
    };
    let mut config = proxy::Config::new(node_name, ips, settings.cluster_cidr.clone());
    config.service_cidr = settings.service_cidr.clone();
    config.table = settings.table.clone();
    config.nft.program = settings.nft.clone();
    config
}

/// A running proxy.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts the proxy with `config`, watching Services and EndpointSlices through `client`.
pub fn start(client: kube::Client, config: proxy::Config) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let table = config.table.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            // A dropped sender stops the proxy too.
            let _ = stopped.await;
        };
        match proxy::run(client, config, shutdown).await {
            Ok(()) => tracing::info!(%table, "service proxy stopped; its rules are removed"),
            Err(e) => tracing::error!(%table, error = %e, "service proxy stopped with an error"),
        }
    });
    Running { stop, task }
}

impl Running {
    /// Stops the proxy and waits (bounded) for it to delete its table.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_DEADLINE, &mut task).await.is_err() {
            tracing::warn!("the service proxy did not stop in time; its rules may remain until the next start");
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_carries_the_node_and_the_settings() {
        let mut s = Settings::new("10.42.0.0/16");
        s.service_cidr = Some("10.43.0.0/16".into());
        s.table = "rudder_test".into();
        let c = proxy_config("node-a", "192.0.2.9".parse().unwrap(), &s);
        assert_eq!(c.node_name, "node-a");
        assert_eq!(c.node_ips, vec![Ipv4Addr::new(192, 0, 2, 9)]);
        assert_eq!(c.cluster_cidr, "10.42.0.0/16");
        assert_eq!(c.service_cidr.as_deref(), Some("10.43.0.0/16"));
        assert_eq!(c.table, "rudder_test");
        let v6 = proxy_config("node-a", "2001:db8::1".parse().unwrap(), &s);
        assert!(v6.node_ips.is_empty());
    }

    /// The proxy is stopped even when the API server never answered, and stopping
    /// deletes its table: a fake `nft` records what it is fed.
    #[tokio::test]
    async fn stopping_deletes_the_table() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nft.log");
        let nft = dir.path().join("nft");
        std::fs::write(&nft, format!("#!/bin/sh\ncat >> {}\n", log.display())).unwrap();
        std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut settings = Settings::new("10.42.0.0/16");
        settings.table = "rudder_unit".into();
        settings.nft = nft;
        let mut config = proxy_config("n", "127.0.0.1".parse().unwrap(), &settings);
        config.bridge_netfilter = false;
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let running = start(client, config);
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.stop().await;
        let fed = std::fs::read_to_string(&log).unwrap();
        assert!(fed.contains("delete table ip rudder_unit"), "{fed}");
    }
}
