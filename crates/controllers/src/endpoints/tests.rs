use super::*;
use serde_json::json;

pub fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"},
                "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "metrics", "containerPort": 9090}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": "2024-01-01T00:00:05Z"}]},
        }))
        .unwrap(),
    )
}

pub fn service(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"},
            "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

fn with(pod: &Arc<Pod>, f: impl FnOnce(&mut Pod)) -> Arc<Pod> {
    let mut p = (**pod).clone();
    f(&mut p);
    Arc::new(p)
}

#[test]
fn ready_pods_are_addresses_and_the_rest_not_ready_or_left_out() {
    let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.5", "ipFamilies": ["IPv4"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
    let ready = pod("a", "10.42.0.2", true);
    let unready = pod("b", "10.42.0.3", false);
    let terminating = with(&pod("c", "10.42.0.4", true), |p| {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()))
    });
    let no_ip = with(&pod("d", "", true), |p| p.status.as_mut().unwrap().pod_ips = None);
    let done = with(&pod("e", "10.42.0.6", false), |p| p.status.as_mut().unwrap().phase = Some("Succeeded".into()));
    let (subsets, truncated) = desired_subsets(&svc, &[ready, unready, terminating, no_ip, done]);
    assert!(!truncated);
    assert_eq!(subsets.len(), 1);
    let s = &subsets[0];
    let ips = |a: &Option<Vec<EndpointAddress>>| a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
    assert_eq!(ips(&s.addresses), ["10.42.0.2"]);
    assert_eq!(ips(&s.not_ready_addresses), ["10.42.0.3"]);
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080), "the named target port is resolved");
    let a = &s.addresses.as_ref().unwrap()[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));

    // Published not-ready addresses: everything that has an address, terminating too.
    let mut publish = svc.clone();
    publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let pods = [pod("a", "10.42.0.2", true), pod("b", "10.42.0.3", false)];
    let (subsets, _) = desired_subsets(&publish, &pods);
    assert_eq!(ips(&subsets[0].addresses), ["10.42.0.2", "10.42.0.3"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn named_ports_resolve_per_pod_and_pods_group_by_port_set() {
    let svc = service(json!({"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9000, "targetPort": "metrics", "protocol": "TCP"}]}));
    let other = with(&pod("b", "10.42.0.3", true), |p| {
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![k8s_openapi::api::core::v1::ContainerPort {
            name: Some("http".into()),
            container_port: 8081,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]);
    });
    let (subsets, _) = desired_subsets(&svc, &[pod("a", "10.42.0.2", true), other]);
    assert_eq!(subsets.len(), 2, "{subsets:?}");
    let ports: Vec<Vec<i32>> = subsets.iter().map(|s| s.ports.iter().flatten().map(|p| p.port).collect()).collect();
    assert!(ports.contains(&vec![8080, 9090]), "{ports:?}");
    assert!(ports.contains(&vec![8081]), "{ports:?}");
}

#[test]
fn headless_services_publish_hostnames_of_their_subdomain() {
    let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let named = with(&pod("a", "10.42.0.2", true), |p| {
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("a-0".into());
        spec.subdomain = Some("web".into());
    });
    let elsewhere = with(&pod("b", "10.42.0.3", true), |p| {
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("b-0".into());
        spec.subdomain = Some("other".into());
    });
    let (subsets, _) = desired_subsets(&svc, &[named, elsewhere]);
    let addrs = subsets[0].addresses.as_ref().unwrap();
    assert_eq!(addrs[0].hostname.as_deref(), Some("a-0"));
    assert_eq!(addrs[1].hostname, None);
    assert!(subsets[0].ports.is_none(), "a headless Service without ports has port-less subsets");
    let ep = desired_endpoints(&svc, None, subsets, false, None).unwrap();
    assert_eq!(ep.labels().get(HEADLESS).map(String::as_str), Some(""));
    assert_eq!(ep.labels().get("team").map(String::as_str), Some("a"));
}

#[test]
fn more_than_a_thousand_addresses_are_cut_and_annotated() {
    let svc =
        service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}));
    let pods: Vec<Arc<Pod>> =
        (0..1100).map(|i| pod(&format!("p{i}"), &format!("10.42.{}.{}", i / 250, i % 250 + 1), i % 2 == 0)).collect();
    let (subsets, truncated) = desired_subsets(&svc, &pods);
    assert!(truncated);
    let count: usize = subsets
        .iter()
        .map(|s| s.addresses.iter().flatten().count() + s.not_ready_addresses.iter().flatten().count())
        .sum();
    assert_eq!(count, MAX_CAPACITY);
    let ep = desired_endpoints(&svc, None, subsets, truncated, None).unwrap();
    assert_eq!(ep.annotations().get(OVER_CAPACITY).map(String::as_str), Some("truncated"));
}

#[test]
fn an_endpoints_object_that_is_right_is_left_alone() {
    let svc =
        service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}));
    let (subsets, _) = desired_subsets(&svc, &[pod("a", "10.42.0.2", true)]);
    let t = Timestamp::from_second(1_700_000_000).unwrap();
    let ep = desired_endpoints(&svc, None, subsets.clone(), false, Some(t)).unwrap();
    assert_eq!(ep.annotations().get(TRIGGER_TIME).map(String::as_str), Some("2023-11-14T22:13:20Z"));
    assert!(desired_endpoints(&svc, Some(&ep), subsets.clone(), false, None).is_none());
    let (fewer, _) = desired_subsets(&svc, &[]);
    let changed = desired_endpoints(&svc, Some(&ep), fewer, false, None).unwrap();
    assert!(changed.subsets.is_none());
    assert!(!changed.annotations().contains_key(TRIGGER_TIME));
}

#[test]
fn trigger_times_name_the_earliest_unsynced_change() {
    let svc = service(json!({"selector": {"app": "web"}}));
    let tracker = TriggerTracker::default();
    let first = tracker.compute("default/web", &svc, &[pod("a", "10.42.0.2", true)]);
    assert_eq!(first.map(rfc3339).as_deref(), Some("2024-01-01T00:00:00Z"), "the Service's creation on a first sync");
    assert_eq!(tracker.compute("default/web", &svc, &[pod("a", "10.42.0.2", true)]), None, "nothing changed");
    let flipped = with(&pod("a", "10.42.0.2", false), |p| {
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::from_second(1_800_000_000).unwrap()));
    });
    let t = tracker.compute("default/web", &svc, &[flipped]).unwrap();
    assert_eq!(t.as_second(), 1_800_000_000);
}

#[test]
fn batches_hold_writes_for_the_period() {
    let b = Batcher::default();
    assert_eq!(b.wait("k", Duration::from_millis(100)), None);
    b.wrote("k");
    assert!(b.wait("k", Duration::from_secs(10)).is_some());
    assert_eq!(b.wait("k", Duration::ZERO), None);
}

#[test]
fn the_pod_index_follows_label_changes() {
    let mut idx = PodIndex::default();
    let a: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let b: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
    let key = "default/p".to_string();
    idx.set("default", &key, None, Some(&a));
    assert_eq!(idx.candidates("default", &a), vec![key.clone()]);
    assert!(idx.candidates("other", &a).is_empty());
    idx.set("default", &key, Some(&a), Some(&b));
    assert!(idx.candidates("default", &a).is_empty());
    assert_eq!(idx.candidates("default", &b), vec![key.clone()]);
    // An empty selector names every pod of the namespace.
    assert_eq!(idx.candidates("default", &BTreeMap::new()), vec![key.clone()]);
    idx.set("default", &key, Some(&b), None);
    assert!(idx.candidates("default", &b).is_empty());
    assert!(idx.candidates("default", &BTreeMap::new()).is_empty());
}

#[test]
fn written_endpoints_tell_the_mirroring_controller_to_skip_them() {
    let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
    let ep = desired_endpoints(&svc, None, vec![], false, None).expect("a new Endpoints object");
    assert_eq!(ep.labels().get(crate::endpointslicemirroring::SKIP_MIRROR).map(String::as_str), Some("true"));
    // Once written with the label, nothing more to do.
    assert!(desired_endpoints(&svc, Some(&ep), vec![], false, None).is_none());
    // An Endpoints object without the label (written before) gets it.
    let mut old = ep.clone();
    old.metadata.labels.as_mut().unwrap().remove(crate::endpointslicemirroring::SKIP_MIRROR);
    assert!(desired_endpoints(&svc, Some(&old), vec![], false, None).is_some());
}
