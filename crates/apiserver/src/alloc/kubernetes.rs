//! The `default/kubernetes` Service, and its Endpoints and EndpointSlice pointing at
//! this API server, kept as upstream's master endpoint reconciler keeps them: made at
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

/// The Service as upstream's `createOrUpdateMasterServiceIfNeeded` makes it.
pub fn service(cluster_ip: IpAddr, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "clusterIP": cluster_ip.to_string(),
            "clusterIPs": [cluster_ip.to_string()],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    })
}

pub fn endpoints(ip: IpAddr, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
}

pub fn endpoint_slice(ip: IpAddr, port: u16) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
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

/// Whether `have` already says what `want` says in the fields `keys`.
fn agrees(have: &Value, want: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| have.get(*k) == want.get(*k))
}

/// Creates or corrects an Endpoints or EndpointSlice object (no allocation involved).
async fn put_plain(ctx: &Ctx, res: &Resource, mut want: Value, keys: &[&str]) -> Result<(), ApiError> {
    let key = res.storage_key(Some(NAMESPACE), NAME);
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

async fn ensure_service(ctx: &Ctx, port: u16) -> Result<(), ApiError> {
    let res = find("", "services")?;
    let key = res.storage_key(Some(NAMESPACE), NAME);
    let first = ctx.services.ips.nth(1).ok_or_else(|| ApiError::internal("the service CIDR has no addresses"))?;
    let store = ctx.objects.store.as_ref();
    match ctx.objects.get(res, &key).await? {
        None => {
            let mut svc = service(first, port);
            stamp_new(res, &mut svc);
            let plan = ctx.services.plan_create(store, &mut svc).await?;
            match ctx.services.create(store, res, &key, svc, plan).await {
                Err(e) if e.reason != "AlreadyExists" => Err(e),
                _ => Ok(()),
            }
        }
        Some((have, rev)) => {
            let want = json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]);
            if have.pointer("/spec/ports") == Some(&want) {
                return Ok(());
            }
            // Only the port follows the server; anything else a user changed stays.
            let mut new = have.clone();
            new["spec"]["ports"] = want;
            let plan = ctx.services.plan_update(store, &mut new, &have).await?;
            match ctx.services.update(store, res, &key, new, rev, plan).await {
                Err(e) if e.reason != "Conflict" => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// One pass: the Service, then its Endpoints and EndpointSlice.
pub async fn reconcile(ctx: &Ctx, advertise: IpAddr, port: u16) -> Result<(), ApiError> {
    ensure_service(ctx, port).await?;
    put_plain(ctx, find("", "endpoints")?, endpoints(advertise, port), &["subsets"]).await?;
    put_plain(
        ctx,
        find("discovery.k8s.io", "endpointslices")?,
        endpoint_slice(advertise, port),
        &["addressType", "endpoints", "ports"],
    )
    .await
}

/// Reconciles every [`INTERVAL`] until the task is aborted.
pub async fn run(ctx: std::sync::Arc<Ctx>, advertise: IpAddr, port: u16) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = reconcile(&ctx, advertise, port).await {
            tracing::warn!(error = %e.message, "reconciling the kubernetes service failed");
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
        let svc = service("10.43.0.1".parse().unwrap(), 6443);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(svc["metadata"]["labels"]["provider"], "kubernetes");
        let ep = endpoints(ip, 6443);
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.5");
        let es = endpoint_slice(ip, 6443);
        assert_eq!(es["addressType"], "IPv4");
        assert_eq!(es["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
        assert!(agrees(&es, &es.clone(), &["endpoints", "ports"]));
        assert!(!agrees(&es, &endpoint_slice(ip, 1), &["ports"]));
    }
}
