//! Cluster DNS and the service proxy as `rudder server` and `rudder agent` run them:
//! the DNS server (crate `dns`) on the advertise address, behind the `kube-dns`
//! Service the API server keeps at the tenth address of the service CIDR, which
//! every pod's resolv.conf names; and each node agent's proxy settings.

use anyhow::Context;
use std::net::{IpAddr, SocketAddr};

/// The `kube-dns` ClusterIP: the tenth address of the service CIDR (10.43.0.10).
pub fn dns_ip(service_cidr: &str) -> anyhow::Result<IpAddr> {
    use apiserver::alloc::{kubernetes::DNS_IP_INDEX, range::IpRange};
    let range = IpRange::parse(service_cidr).with_context(|| format!("--service-cidr {service_cidr}"))?;
    range
        .nth(DNS_IP_INDEX)
        .with_context(|| format!("--service-cidr {service_cidr} has fewer than {DNS_IP_INDEX} addresses"))
}

/// The DNS server's settings.
pub fn config(listen: SocketAddr, dns_ip: IpAddr, upstreams: &[SocketAddr]) -> dns::Config {
    dns::Config {
        listen: vec![listen],
        dns_ip: Some(dns_ip),
        upstreams: (!upstreams.is_empty()).then(|| upstreams.to_vec()),
        ..dns::Config::default()
    }
}

/// Binds the DNS server. A port already taken is not worth stopping the control
/// plane for: the rest of the cluster works, and the error says what is missing.
pub async fn bind(config: &dns::Config) -> Option<dns::Server> {
    match dns::Server::bind(config).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cluster DNS is not served; pods cannot resolve Service names");
            None
        }
    }
}

/// Serves until the process is told to stop.
pub async fn serve(server: dns::Server, client: kube::Client) {
    let addrs = server.local_addrs();
    tracing::info!(?addrs, "cluster DNS serving");
    if let Err(e) = server.run(client, crate::server::shutdown_signal()).await {
        tracing::error!(error = %e, "cluster DNS stopped");
    }
}

/// A node agent's proxy settings (`None` with `--disable-proxy`).
pub fn proxy(disabled: bool, cluster_cidr: &str, service_cidr: Option<&str>) -> Option<agent::service_proxy::Settings> {
    (!disabled).then(|| {
        let mut s = agent::service_proxy::Settings::new(cluster_cidr);
        s.service_cidr = service_cidr.map(str::to_string);
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_address_is_the_tenth_of_the_service_cidr() {
        assert_eq!(dns_ip("10.43.0.0/16").unwrap(), "10.43.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(dns_ip("10.96.0.0/12").unwrap(), "10.96.0.10".parse::<IpAddr>().unwrap());
        assert!(dns_ip("10.0.0.0/29").is_err(), "six addresses: no tenth");
        assert!(dns_ip("bogus").is_err());
    }

    #[test]
    fn upstreams_default_to_the_hosts() {
        let listen: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let c = config(listen, "10.43.0.10".parse().unwrap(), &[]);
        assert_eq!(c.listen, vec![listen]);
        assert!(c.upstreams.is_none());
        let up: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert_eq!(config(listen, "10.43.0.10".parse().unwrap(), &[up]).upstreams, Some(vec![up]));
        assert!(proxy(true, "10.42.0.0/16", None).is_none());
        assert_eq!(
            proxy(false, "10.42.0.0/16", Some("10.43.0.0/16")).unwrap().service_cidr.as_deref(),
            Some("10.43.0.0/16")
        );
    }
}
