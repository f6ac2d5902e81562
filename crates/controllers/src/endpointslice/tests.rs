use super::*;
use crate::endpoints::tests::{pod, service};
use serde_json::json;

fn web() -> Service {
    service(json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.5", "ipFamilies": ["IPv4"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}))
}

fn no_zone(_: &str) -> Option<String> {
    None
}

/// Applies a plan as the API server would, naming new slices.
fn apply(existing: &[Arc<EndpointSlice>], p: &SlicePlan, next: &mut usize) -> Vec<Arc<EndpointSlice>> {
    let mut out: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| !p.delete.iter().any(|d| d.metadata.name == s.metadata.name))
        .filter(|s| !p.update.iter().any(|u| u.metadata.name == s.metadata.name))
        .cloned()
        .collect();
    out.extend(p.update.iter().cloned().map(Arc::new));
    for s in &p.create {
        let mut s = s.clone();
        *next += 1;
        s.metadata.name = Some(format!("web-{next}"));
        out.push(Arc::new(s));
    }
    out
}

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n).map(|i| pod(&format!("p{i}"), &format!("10.42.{}.{}", i / 200, i % 200 + 1), true)).collect()
}

#[test]
fn endpoints_are_packed_a_hundred_a_slice_with_labels_and_owner() {
    let svc = web();
    let p = plan(&svc, &pods(250), &[], &no_zone, None);
    assert_eq!(p.create.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let s = &p.create[0];
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME], "web");
    assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "a");
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Service", "svc-uid", Some(true)));
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), Some(8080)));
    let ep = &s.endpoints[0];
    let c = ep.conditions.as_ref().unwrap();
    assert_eq!((c.ready, c.serving, c.terminating), (Some(true), Some(true), Some(false)));
    assert_eq!(ep.node_name.as_deref(), Some("n1"));
}

#[test]
fn a_settled_service_needs_no_writes_and_one_change_touches_one_slice() {
    let svc = web();
    let mut next = 0;
    let mut all = pods(250);
    let slices = apply(&[], &plan(&svc, &all, &[], &no_zone, None), &mut next);
    assert!(plan(&svc, &all, &slices, &no_zone, None).is_empty());
    // One pod turns unready: only its slice is rewritten.
    all[120] = pod("p120", "10.42.0.121", false);
    let p = plan(&svc, &all, &slices, &no_zone, None);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    let changed = p.update[0].endpoints.iter().find(|e| e.addresses[0] == "10.42.0.121").unwrap();
    let c = changed.conditions.as_ref().unwrap();
    assert_eq!((c.ready, c.serving), (Some(false), Some(false)));
    let slices = apply(&slices, &p, &mut next);
    // Scaling down to 10 empties two slices, which go; scaling up fills room first.
    let p = plan(&svc, &all[..10], &slices, &no_zone, None);
    assert_eq!(p.delete.len(), 2, "{p:?}");
    let slices = apply(&slices, &p, &mut next);
    assert_eq!(slices.len(), 1);
    let p = plan(&svc, &pods(150), &slices, &no_zone, None);
    assert_eq!((p.update.len(), p.create.len()), (1, 1));
    assert_eq!(p.update[0].endpoints.len(), 100);
    assert_eq!(p.create[0].endpoints.len(), 50);
}

#[test]
fn no_endpoints_leave_one_placeholder() {
    let svc = web();
    let p = plan(&svc, &[], &[], &no_zone, None);
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
    let mut next = 0;
    let slices = apply(&[], &p, &mut next);
    assert!(plan(&svc, &[], &slices, &no_zone, None).is_empty(), "the placeholder is kept, not remade");
    let with_pod = plan(&svc, &pods(1), &slices, &no_zone, None);
    assert_eq!((with_pod.create.len(), with_pod.delete.len()), (1, 1));
}

#[test]
fn terminating_pods_stay_serving_but_not_ready_and_zones_come_from_nodes() {
    let svc = web();
    let mut p = (*pod("a", "10.42.0.2", true)).clone();
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
    let zone_a = |n: &str| (n == "n1").then(|| "zone-a".to_string());
    let out = plan(&svc, &[Arc::new(p)], &[], &zone_a, None);
    let ep = &out.create[0].endpoints[0];
    let c = ep.conditions.as_ref().unwrap();
    assert_eq!((c.ready, c.serving, c.terminating), (Some(false), Some(true), Some(true)));
    assert_eq!(ep.zone.as_deref(), Some("zone-a"));
}

#[test]
fn pods_group_by_resolved_ports_and_headless_services_get_hostnames() {
    let mut svc = web();
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let mut other = (*pod("b", "10.42.0.3", true)).clone();
    other.spec.as_mut().unwrap().containers[0].ports.as_mut().unwrap()[0].container_port = 8081;
    other.spec.as_mut().unwrap().hostname = Some("b".into());
    other.spec.as_mut().unwrap().subdomain = Some("web".into());
    let out = plan(&svc, &[pod("a", "10.42.0.2", true), Arc::new(other)], &[], &no_zone, None);
    assert_eq!(out.create.len(), 2);
    let hostnames: Vec<_> = out.create.iter().flat_map(|s| s.endpoints.iter().map(|e| e.hostname.clone())).collect();
    assert!(hostnames.contains(&Some("b".to_string())));
    assert_eq!(out.create[0].metadata.labels.as_ref().unwrap()[HEADLESS], "");
}

#[test]
fn slices_of_a_family_the_service_no_longer_has_go() {
    let svc = web();
    let mut stale = new_slice(&svc, "IPv6", vec![], vec![]);
    stale.metadata.name = Some("web-old".into());
    let out = plan(&svc, &pods(1), &[Arc::new(stale)], &no_zone, None);
    assert_eq!(out.delete.len(), 1);
    assert_eq!(out.create.len(), 1);
}
