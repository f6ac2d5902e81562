//! The Services the API server keeps itself ([`SystemService`]): `default/kubernetes`
//! pointing at this API server and, when the server runs cluster DNS,
//! `kube-system/kube-dns` pointing at the DNS server. Each comes with Endpoints and an
//! EndpointSlice, kept as upstream's master endpoint reconciler keeps them: made at
//! start, put right again whenever they drift.

use crate::{Ctx, fieldmanager, rest};
use api::{ApiError, Resource};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";
/// How often the objects are checked (upstream's `--endpoint-reconciler` interval).
pub const INTERVAL: Duration = Duration::from_secs(10);
const MANAGER: &str = "kube-apiserver";

/// The address other machines reach this API server at: the one asked for, else
/// the bind address, else (bound to every address) the address of the interface the
/// default route leaves through, else loopback.
pub fn advertise_address(bind: IpAddr, explicit: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = explicit {
        return ip;
    }
    if !bind.is_unspecified() {
        return bind;
    }
    // Connecting a UDP socket only chooses a route and a source address; nothing is sent.
    let routed = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(SocketAddr::from(([192, 0, 2, 1], 53))).map(|()| s))
        .and_then(|s| s.local_addr());
    match routed {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

fn find(group: &str, plural: &str) -> Result<&'static Resource, ApiError> {
    let version = "v1";
    api::registry::find(group, version, plural).ok_or_else(|| ApiError::internal(format!("{plural} not served")))
}

/// One port of a [`SystemService`]: `port` on the ClusterIP, `target` on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPort {
    pub name: &'static str,
    pub protocol: &'static str,
    pub port: u16,
    pub target: u16,
}

/// A selectorless Service the API server keeps itself, with Endpoints and an
/// EndpointSlice pointing at one address: the `kubernetes` Service (this API
/// server) and `kube-system/kube-dns` (the cluster DNS server).
#[derive(Debug, Clone, PartialEq)]
pub struct SystemService {
    pub namespace: &'static str,
    pub name: &'static str,
    /// The Service's labels.
    pub labels: Value,
    /// The address asked for when the Service is made (a user may change it later).
    pub cluster_ip: IpAddr,
    pub ports: Vec<SystemPort>,
    /// Where the endpoints point.
    pub endpoint: IpAddr,
    /// Labels of the EndpointSlice besides `kubernetes.io/service-name`.
    pub slice_labels: Value,
}

/// The `default/kubernetes` Service for an API server reached at `advertise:port`.
pub fn kubernetes(cluster_ip: IpAddr, advertise: IpAddr, port: u16) -> SystemService {
    SystemService {
        namespace: NAMESPACE,
        name: NAME,
        labels: json!({"component": "apiserver", "provider": "kubernetes"}),
        cluster_ip,
        ports: vec![SystemPort { name: "https", protocol: "TCP", port: 443, target: port }],
        endpoint: advertise,
        slice_labels: json!({}),
    }
}

/// The cluster DNS Service's name and namespace, as kubeadm and k3s name it.
pub const DNS_NAME: &str = "kube-dns";
pub const DNS_NAMESPACE: &str = "kube-system";
/// Which address of the service CIDR the DNS Service gets (k3s: 10.43.0.10).
pub const DNS_IP_INDEX: usize = 10;
/// Who keeps the DNS Service's EndpointSlice: not the EndpointSlice controller,
/// which must leave it alone.
pub const DNS_SLICE_MANAGER: &str = "rudder.io/apiserver";

/// `kube-system/kube-dns` for a DNS server reached at `server:port` (UDP and TCP).
pub fn kube_dns(cluster_ip: IpAddr, server: IpAddr, port: u16) -> SystemService {
    SystemService {
        namespace: DNS_NAMESPACE,
        name: DNS_NAME,
        labels: json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "KubeDNS"}),
        cluster_ip,
        ports: vec![
            SystemPort { name: "dns", protocol: "UDP", port: 53, target: port },
            SystemPort { name: "dns-tcp", protocol: "TCP", port: 53, target: port },
        ],
        endpoint: server,
        slice_labels: json!({"endpointslice.kubernetes.io/managed-by": DNS_SLICE_MANAGER}),
    }
}

impl SystemService {
    fn service_ports(&self) -> Value {
        self.ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol, "targetPort": p.target}))
            .collect()
    }

    fn endpoint_ports(&self) -> Value {
        self.ports.iter().map(|p| json!({"name": p.name, "port": p.target, "protocol": p.protocol})).collect()
    }

    /// The Service as upstream's `createOrUpdateMasterServiceIfNeeded` makes it.
    pub fn service(&self) -> Value {
        let ip = self.cluster_ip.to_string();
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "clusterIP": ip,
                "clusterIPs": [ip],
                "ports": self.service_ports(),
            },
        })
    }

    pub fn endpoints(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": self.endpoint.to_string()}], "ports": self.endpoint_ports()}],
        })
    }

    pub fn endpoint_slice(&self) -> Value {
        let mut labels = self.slice_labels.clone();
        labels["kubernetes.io/service-name"] = json!(self.name);
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels},
            "addressType": if self.endpoint.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [self.endpoint.to_string()], "conditions": {"ready": true}}],
            "ports": self.endpoint_ports(),
        })
    }
}

fn stamp_new(res: &Resource, obj: &mut Value) {
    obj["metadata"]["uid"] = json!(rest::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(api::time::now_rfc3339());
    api::defaults::apply(res, obj);
    if let Some(schema) = rest::schema_of(res) {
        let now = api::time::now_rfc3339();
        fieldmanager::update(None, obj, MANAGER, None, &res.api_version(), &now, schema);
    }
}

/// Whether `have` already says what `want` says in the fields `keys` and labels.
fn agrees(have: &Value, want: &Value, keys: &[&str]) -> bool {
    let labels_agree = want.pointer("/metadata/labels").and_then(Value::as_object).is_none_or(|labels| {
        labels.iter().all(|(k, v)| have.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
    });
    labels_agree && keys.iter().all(|k| have.get(*k) == want.get(*k))
}

/// Creates or corrects an Endpoints or EndpointSlice object (no allocation involved).
async fn put_plain(ctx: &Ctx, res: &Resource, mut want: Value, keys: &[&str]) -> Result<(), ApiError> {
    let meta =
        |k: &str| want.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).unwrap_or_default().to_string();
    let key = res.storage_key(Some(&meta("namespace")), &meta("name"));
    api::defaults::apply(res, &mut want);
    match ctx.objects.get(res, &key).await? {
        None => {
            stamp_new(res, &mut want);
            match ctx.objects.create(res, &key, want).await {
                Err(e) if e.reason != "AlreadyExists" => Err(e),
                _ => Ok(()),
            }
        }
        Some((have, _)) if agrees(&have, &want, keys) => Ok(()),
        Some((have, rev)) => {
            let mut new = have.clone();
            for k in keys {
                match want.get(*k) {
                    Some(v) => new[*k] = v.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove(*k);
                        }
                    }
                }
            }
            if let Some(labels) = want.pointer("/metadata/labels").and_then(Value::as_object) {
                for (k, v) in labels {
                    new["metadata"]["labels"][k] = v.clone();
                }
            }
            if let Some(schema) = rest::schema_of(res) {
                let now = api::time::now_rfc3339();
                fieldmanager::update(Some(&have), &mut new, MANAGER, None, &res.api_version(), &now, schema);
            }
            match ctx.objects.update(res, &key, new, rev).await {
                Err(e) if e.reason != "Conflict" => Err(e),
                _ => Ok(()),
            }
        }
    }
}

async fn ensure_service(ctx: &Ctx, want: &SystemService) -> Result<(), ApiError> {
    let res = find("", "services")?;
    let key = res.storage_key(Some(want.namespace), want.name);
    let store = ctx.objects.store.as_ref();
    match ctx.objects.get(res, &key).await? {
        None => {
            let mut svc = want.service();
            stamp_new(res, &mut svc);
            let plan = ctx.services.plan_create(store, &mut svc).await?;
            match ctx.services.create(store, res, &key, svc, plan).await {
                Err(e) if e.reason != "AlreadyExists" => Err(e),
                _ => Ok(()),
            }
        }
        Some((have, rev)) => {
            let ports = want.service_ports();
            if have.pointer("/spec/ports") == Some(&ports) {
                return Ok(());
            }
            // Only the ports follow the server; anything else a user changed stays.
            let mut new = have.clone();
            new["spec"]["ports"] = ports;
            let plan = ctx.services.plan_update(store, &mut new, &have).await?;
            match ctx.services.update(store, res, &key, new, rev, plan).await {
                Err(e) if e.reason != "Conflict" => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// One pass: the Service, then its Endpoints and EndpointSlice.
pub async fn reconcile(ctx: &Ctx, want: &SystemService) -> Result<(), ApiError> {
    ensure_service(ctx, want).await?;
    put_plain(ctx, find("", "endpoints")?, want.endpoints(), &["subsets"]).await?;
    put_plain(
        ctx,
        find("discovery.k8s.io", "endpointslices")?,
        want.endpoint_slice(),
        &["addressType", "endpoints", "ports"],
    )
    .await
}

/// Reconciles each of `services` every [`INTERVAL`] until the task is aborted.
pub async fn run(ctx: std::sync::Arc<Ctx>, services: Vec<SystemService>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for want in &services {
            if let Err(e) = reconcile(&ctx, want).await {
                tracing::warn!(service = want.name, namespace = want.namespace, error = %e.message, "reconciling a system service failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_prefers_what_was_asked_then_the_bind_address() {
        let asked: IpAddr = "192.0.2.7".parse().unwrap();
        let bind: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(advertise_address(bind, Some(asked)), asked);
        assert_eq!(advertise_address(bind, None), bind);
        let any = advertise_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None);
        assert!(!any.is_unspecified());
    }

    #[test]
    fn objects_have_upstream_shapes() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let want = kubernetes("10.43.0.1".parse().unwrap(), ip, 6443);
        let svc = want.service();
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(svc["metadata"]["labels"]["provider"], "kubernetes");
        let ep = want.endpoints();
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.5");
        assert_eq!(ep["subsets"][0]["ports"][0], json!({"name": "https", "port": 6443, "protocol": "TCP"}));
        let es = want.endpoint_slice();
        assert_eq!(es["addressType"], "IPv4");
        assert_eq!(es["metadata"]["labels"], json!({"kubernetes.io/service-name": "kubernetes"}));
        assert!(agrees(&es, &es.clone(), &["endpoints", "ports"]));
        assert!(!agrees(&es, &kubernetes("10.43.0.1".parse().unwrap(), ip, 1).endpoint_slice(), &["ports"]));
    }

    #[test]
    fn kube_dns_serves_udp_and_tcp_on_53_and_is_not_the_slice_controllers() {
        let want = kube_dns("10.43.0.10".parse().unwrap(), "192.0.2.4".parse().unwrap(), 5353);
        let svc = want.service();
        assert_eq!(
            (svc["metadata"]["namespace"].as_str(), svc["metadata"]["name"].as_str()),
            (Some("kube-system"), Some("kube-dns"))
        );
        assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
        assert!(svc["spec"].get("selector").is_none(), "selectorless: the endpoints are ours");
        assert_eq!(
            svc["spec"]["ports"],
            json!([
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
            ])
        );
        let es = want.endpoint_slice();
        assert_eq!(es["metadata"]["labels"]["kubernetes.io/service-name"], "kube-dns");
        assert_eq!(es["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], DNS_SLICE_MANAGER);
        assert_ne!(DNS_SLICE_MANAGER, controllers_slice_manager());
        assert_eq!(es["endpoints"][0]["addresses"][0], "192.0.2.4");
        assert_eq!(es["ports"][1], json!({"name": "dns-tcp", "port": 5353, "protocol": "TCP"}));
        let ep = want.endpoints();
        assert_eq!(ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"], "true");
    }

    /// The EndpointSlice controller's name, as upstream spells it.
    fn controllers_slice_manager() -> &'static str {
        "endpointslice-controller.k8s.io"
    }

    #[test]
    fn a_missing_label_is_a_disagreement() {
        let want = kube_dns("10.43.0.10".parse().unwrap(), "192.0.2.4".parse().unwrap(), 53).endpoint_slice();
        let mut have = want.clone();
        have["metadata"]["labels"].as_object_mut().unwrap().remove("endpointslice.kubernetes.io/managed-by");
        assert!(!agrees(&have, &want, &["endpoints"]));
        assert!(agrees(&want, &want, &["endpoints"]));
    }
}
