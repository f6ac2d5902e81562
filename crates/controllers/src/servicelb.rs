//! The service load balancer, after k3s's built-in one (servicelb, "klipper-lb") but
//! without its DaemonSet: every node's service proxy already opens a LoadBalancer
//! Service's ports, so an address for it is simply that of the nodes. This controller
//! writes the Ready nodes' InternalIPs into `status.loadBalancer.ingress` (with
//! `ipMode: VIP`) of each LoadBalancer Service that names no other
//! `loadBalancerClass`, and keeps them current as nodes come, go and fail.

use crate::Informers;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, Service, ServiceStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const MANAGER: &str = "servicelb-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Whether this controller answers for the Service.
pub fn handles(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The addresses to announce: each Ready, schedulable node's InternalIPs of the
/// Service's families, sorted so that the status only changes when the set does.
pub fn ingress(svc: &Service, nodes: &[Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.clone()).unwrap_or_else(|| vec!["IPv4".into()]);
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| ready(n) && !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .flat_map(|n| n.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default())
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .filter(|ip| {
            let fam = if ip.contains(':') { "IPv6" } else { "IPv4" };
            families.iter().any(|f| f == fam)
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| LoadBalancerIngress { ip: Some(ip), ip_mode: Some("VIP".into()), ..Default::default() })
        .collect()
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !handles(&svc) {
        return Ok(Action::await_change());
    }
    let want = ingress(&svc, &ctx.nodes.state());
    let have =
        svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.clone()).unwrap_or_default();
    if have == want {
        return Ok(Action::await_change());
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let status = ServiceStatus {
        load_balancer: Some(LoadBalancerStatus { ingress: Some(want) }),
        ..svc.status.clone().unwrap_or_default()
    };
    let patch = serde_json::json!({"status": status});
    api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(Action::await_change())
}

fn error_policy(_svc: Arc<Service>, _err: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(2))
}

/// Runs until the process ends.
pub async fn run(client: Client, informers: Informers) {
    let (nodes, services) = (informers.get::<Node>(), informers.get::<Service>());
    let known = services.store();
    let ctx = Arc::new(Ctx { client, nodes: nodes.store() });
    Controller::for_shared_stream(services.touched(), services.store())
        // Any node change may change every LoadBalancer's addresses.
        .watches_shared_stream(nodes.touched(), move |_node: Arc<Node>| {
            known.state().iter().filter(|s| handles(s)).map(|s| ObjectRef::from_obj(&**s)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeSpec, NodeStatus, ServiceSpec};

    fn node(ip: &str, is_ready: bool, unschedulable: bool) -> Arc<Node> {
        Arc::new(Node {
            spec: Some(NodeSpec { unschedulable: Some(unschedulable), ..Default::default() }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if is_ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                addresses: Some(vec![
                    NodeAddress { type_: "InternalIP".into(), address: ip.into() },
                    NodeAddress { type_: "Hostname".into(), address: "h".into() },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn lb(class: Option<&str>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(str::to_string),
                ip_families: Some(vec!["IPv4".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_schedulable_nodes_are_announced_sorted() {
        let nodes = vec![node("10.0.0.3", true, false), node("10.0.0.1", true, false), node("10.0.0.2", false, false)];
        let got = ingress(&lb(None), &nodes);
        let ips: Vec<_> = got.iter().map(|i| i.ip.clone().unwrap()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.3"]);
        assert!(got.iter().all(|i| i.ip_mode.as_deref() == Some("VIP")));
        let cordoned = vec![node("10.0.0.1", true, true)];
        assert!(ingress(&lb(None), &cordoned).is_empty());
        let v6 = vec![node("fd00::1", true, false)];
        assert!(ingress(&lb(None), &v6).is_empty(), "an IPv4 Service gets no IPv6 address");
    }

    #[test]
    fn only_class_less_load_balancers_are_handled() {
        assert!(handles(&lb(None)));
        assert!(!handles(&lb(Some("example.com/other"))));
        let mut plain = lb(None);
        plain.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!handles(&plain));
    }
}
