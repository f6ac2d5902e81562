//! The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, worded as the
//! kubelet writes them. Pure functions of the pod, its IPs, the host's files and the
//! cluster DNS settings; [`write_pod_files`] puts them on disk.

use k8s_openapi::api::core::v1::Pod;
use std::path::{Path, PathBuf};

/// The cluster DNS settings (the kubelet's `--cluster-dns` and `--cluster-domain`).
/// With no servers, pods get the host's resolver configuration, as the kubelet does
/// when cluster DNS is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub domain: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig { servers: Vec::new(), domain: "cluster.local".into() }
    }
}

/// The pod's hostname: `spec.hostname`, else its name (cut to 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let from_spec = pod.spec.as_ref().and_then(|s| s.hostname.clone()).filter(|h| !h.is_empty());
    let mut h = from_spec.unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    if h.len() > 63 {
        h.truncate(63);
        while h.ends_with(['-', '.']) {
            h.pop();
        }
    }
    h
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.clone()).unwrap_or_default();
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.unwrap_or_default();
        out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
    }
    out
}

/// `/etc/hosts`.
pub fn hosts_file(pod: &Pod, pod_ips: &[String], host_hosts: &str, dns: &DnsConfig) -> String {
    if host_network(pod) {
        let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
        out.push_str(host_hosts);
        if !host_hosts.is_empty() && !host_hosts.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&host_aliases(pod));
        return out;
    }
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    let subdomain = pod.spec.as_ref().and_then(|s| s.subdomain.clone()).filter(|s| !s.is_empty());
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    for ip in pod_ips {
        match &subdomain {
            Some(sub) => out.push_str(&format!("{ip}\t{name}.{sub}.{namespace}.svc.{}\t{name}\n", dns.domain)),
            None => out.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// The parts of a resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => r.nameservers.extend(f.next().map(str::to_string)),
            Some("search") | Some("domain") => r.searches = f.map(str::to_string).collect(),
            Some("options") => r.options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    r
}

pub fn render_resolv(r: &Resolv) -> String {
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for n in &r.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// `/etc/resolv.conf` per `dnsPolicy` and `dnsConfig`, as the kubelet's DNS
/// configurer decides it.
pub fn resolv_conf(pod: &Pod, host_resolv: &str, dns: &DnsConfig) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let host = parse_resolv(host_resolv);
    let cluster = !dns.servers.is_empty()
        && match policy {
            "ClusterFirst" => !host_network(pod),
            "ClusterFirstWithHostNet" => true,
            _ => false,
        };
    let mut r = if policy == "None" {
        Resolv::default()
    } else if cluster {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let d = &dns.domain;
        let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
        searches.extend(host.searches.iter().filter(|s| !searches.contains(s)).cloned().collect::<Vec<_>>());
        Resolv { nameservers: dns.servers.clone(), searches, options: vec!["ndots:5".into()] }
    } else {
        host
    };
    if let Some(c) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in c.nameservers.iter().flatten() {
            if !r.nameservers.contains(n) {
                r.nameservers.push(n.clone());
            }
        }
        for s in c.searches.iter().flatten() {
            if !r.searches.contains(s) {
                r.searches.push(s.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let Some(name) = o.name.clone() else { continue };
            r.options.retain(|x| x.split(':').next() != Some(name.as_str()));
            r.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    // The resolver reads at most three nameservers and six search domains.
    r.nameservers.truncate(3);
    r.searches.truncate(32);
    render_resolv(&r)
}

/// The three files, written into `dir`; returns their paths (hosts, hostname, resolv.conf).
pub fn write_pod_files(
    dir: &Path,
    pod: &Pod,
    pod_ips: &[String],
    dns: &DnsConfig,
) -> std::io::Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let paths = (dir.join("hosts"), dir.join("hostname"), dir.join("resolv.conf"));
    std::fs::write(&paths.0, hosts_file(pod, pod_ips, &host_hosts, dns))?;
    std::fs::write(&paths.1, format!("{}\n", hostname(pod)))?;
    std::fs::write(&paths.2, resolv_conf(pod, &host_resolv, dns))?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "prod"}, "spec": spec})).unwrap()
    }

    #[test]
    fn hosts_files() {
        let p = pod(json!({"containers": [], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}));
        let h = hosts_file(&p, &["10.42.0.5".into()], "", &DnsConfig::default());
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), "{h}");
        assert!(h.contains("\n10.42.0.5\tweb\n"), "{h}");
        assert!(h.ends_with("\n# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"), "{h}");
        let sub = pod(json!({"containers": [], "hostname": "db-0", "subdomain": "db"}));
        let h = hosts_file(&sub, &["10.42.0.6".into()], "", &DnsConfig::default());
        assert!(h.contains("10.42.0.6\tdb-0.db.prod.svc.cluster.local\tdb-0\n"), "{h}");
        let host = pod(json!({"containers": [], "hostNetwork": true}));
        let h = hosts_file(&host, &[], "127.0.0.1 localhost", &DnsConfig::default());
        assert_eq!(h, "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n");
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname(&pod(json!({"containers": []}))), "web");
        let long = format!("{}-x", "a".repeat(62));
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": long}, "spec": {"containers": []}})).unwrap();
        assert_eq!(hostname(&p), "a".repeat(62));
    }

    #[test]
    fn resolv_confs() {
        let host = "# comment\nnameserver 192.168.1.1\nsearch lan example.com\noptions edns0\n";
        let p = pod(json!({"containers": []}));
        assert_eq!(
            resolv_conf(&p, host, &DnsConfig::default()),
            "search lan example.com\nnameserver 192.168.1.1\noptions edns0\n",
            "no cluster DNS: the host's"
        );
        let dns = DnsConfig { servers: vec!["10.43.0.10".into()], domain: "cluster.local".into() };
        assert_eq!(
            resolv_conf(&p, host, &dns),
            "search prod.svc.cluster.local svc.cluster.local cluster.local lan example.com\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        let hn = pod(json!({"containers": [], "hostNetwork": true}));
        assert!(resolv_conf(&hn, host, &dns).contains("nameserver 192.168.1.1"));
        let none = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["8.8.8.8"], "searches": ["x"], "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}));
        assert_eq!(resolv_conf(&none, host, &dns), "search x\nnameserver 8.8.8.8\noptions ndots:2 rotate\n");
    }
}
