use super::*;
use std::collections::HashSet;
use std::sync::Arc;
use store::embedded::EmbeddedStore;

fn services() -> &'static api::Resource {
    api::registry::find("", "v1", "services").unwrap()
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(&dir.join("s.db"), Default::default()).unwrap())
}

async fn ready(store: &dyn Store) -> ServiceAllocator {
    let a = ServiceAllocator::new("10.43.0.0/16", "30000-32767").unwrap();
    a.repair(store).await.unwrap();
    a
}

fn svc(name: &str, spec: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": spec,
    });
    api::defaults::apply(services(), &mut s);
    s
}

fn key(name: &str) -> String {
    services().storage_key(Some("default"), name)
}

/// The create path of the REST layer: plan, validate, write.
async fn create(a: &ServiceAllocator, store: &dyn Store, mut s: Value) -> Result<Value, ApiError> {
    let plan = a.plan_create(store, &mut s).await?;
    let causes = api::validation::validate_create(services(), &s);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Service", "", "x", causes));
    }
    let k = key(s["metadata"]["name"].as_str().unwrap());
    a.create(store, services(), &k, s, plan).await
}

async fn update(a: &ServiceAllocator, store: &dyn Store, old: &Value, mut new: Value) -> Result<Value, ApiError> {
    api::defaults::service_update(&mut new, old);
    drop_type_dependent_fields(&mut new, old);
    api::defaults::apply(services(), &mut new);
    let plan = a.plan_update(store, &mut new, old).await?;
    let causes = api::validation::validate_update(services(), &new, old);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Service", "", "x", causes));
    }
    let rev: i64 = old["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let k = key(old["metadata"]["name"].as_str().unwrap());
    a.update(store, services(), &k, new, rev, plan).await
}

async fn claims(store: &dyn Store) -> Vec<(String, Owner)> {
    let mut out = Vec::new();
    for prefix in [IP_PREFIX, PORT_PREFIX] {
        for kv in store.range(store::RangeRequest::prefix(prefix)).await.unwrap().kvs {
            out.push((kv.key.clone(), Owner::decode(&kv.value).unwrap()));
        }
    }
    out
}

fn message(e: &ApiError) -> String {
    e.causes().iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join("; ")
}

#[tokio::test]
async fn cluster_ips_come_from_the_upper_band_and_requests_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let web = create(&a, store.as_ref(), svc("web", json!({"ports": [{"port": 80}], "selector": {"app": "web"}})))
        .await
        .unwrap();
    let ip: IpAddr = web["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(a.ips.offset_of(ip).unwrap() >= a.ips.static_band(), "{ip} is in the static band");
    assert_eq!(web["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(web["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(claims(store.as_ref()).await, vec![(Claim::Ip(ip).key(), Owner::of(&web))]);

    // A requested address is honoured when free...
    let dns = svc("dns", json!({"clusterIP": "10.43.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}));
    let dns = create(&a, store.as_ref(), dns).await.unwrap();
    assert_eq!(dns["spec"]["clusterIPs"], json!(["10.43.0.10"]));
    // ...refused when taken, or outside the range.
    let again = svc("dns2", json!({"clusterIP": "10.43.0.10", "ports": [{"port": 53}]}));
    let e = create(&a, store.as_ref(), again).await.unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        message(&e),
        "spec.clusterIPs: Invalid value: []string{\"10.43.0.10\"}: failed to allocate IP 10.43.0.10: provided IP is already allocated"
    );
    let outside = svc("out", json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}));
    let e = create(&a, store.as_ref(), outside).await.unwrap_err();
    assert_eq!(
        message(&e),
        "spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    );
    let v6 = svc("v6", json!({"clusterIP": "fd00::5", "ports": [{"port": 80}]}));
    let e = create(&a, store.as_ref(), v6).await.unwrap_err();
    // Defaulting has named the family already, so the error names it.
    assert!(message(&e).contains("\"IPv6\": not configured on this cluster"), "{}", message(&e));
    let dual = svc("dual", json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}));
    let e = create(&a, store.as_ref(), dual).await.unwrap_err();
    assert!(message(&e).contains("this cluster is not configured for dual-stack services"));
    // Failed creates gave their reservations back.
    assert_eq!(a.used(), (2, 0));
}

#[tokio::test]
async fn headless_and_external_name_services_get_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let headless = svc("db", json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}));
    let headless = create(&a, store.as_ref(), headless).await.unwrap();
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4"]));
    let bare = svc("bare", json!({"clusterIP": "None"}));
    let bare = create(&a, store.as_ref(), bare).await.unwrap();
    assert_eq!(bare["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(bare["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let ext = svc("ext", json!({"type": "ExternalName", "externalName": "example.com"}));
    let ext = create(&a, store.as_ref(), ext).await.unwrap();
    assert!(ext["spec"].get("clusterIP").is_none());
    assert!(ext["spec"].get("ipFamilies").is_none());
    assert!(claims(store.as_ref()).await.is_empty());
    // ExternalName to ClusterIP allocates; back to ExternalName releases.
    let mut to_ip = ext.clone();
    to_ip["spec"] = json!({"type": "ClusterIP", "ports": [{"port": 80}]});
    let with_ip = update(&a, store.as_ref(), &ext, to_ip).await.unwrap();
    let ip = with_ip["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{with_ip}");
    assert_eq!(claims(store.as_ref()).await.len(), 1);
    let mut back = with_ip.clone();
    back["spec"]["type"] = json!("ExternalName");
    back["spec"]["externalName"] = json!("example.com");
    let back = update(&a, store.as_ref(), &with_ip, back).await.unwrap();
    assert!(back["spec"].get("clusterIP").is_none(), "{back}");
    assert!(claims(store.as_ref()).await.is_empty());
    assert_eq!(a.used(), (0, 0));
}

#[tokio::test]
async fn node_ports_are_allocated_shared_checked_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let spec = json!({"type": "NodePort", "ports": [
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "dns-udp", "port": 53, "protocol": "UDP"},
        {"name": "web", "port": 80, "nodePort": 30080},
    ]});
    let np = create(&a, store.as_ref(), svc("np", spec)).await.unwrap();
    let ports = np["spec"]["ports"].as_array().unwrap();
    let dns = ports[0]["nodePort"].as_i64().unwrap();
    assert_eq!(ports[1]["nodePort"].as_i64().unwrap(), dns, "one port number shares one node port");
    assert!(dns >= 30000 + 86, "{dns} is in the static band");
    assert_eq!(ports[2]["nodePort"], 30080);
    assert_eq!(claims(store.as_ref()).await.len(), 3);

    let clash = svc("clash", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
    let e = create(&a, store.as_ref(), clash).await.unwrap_err();
    assert_eq!(message(&e), "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    let low = svc("low", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
    let e = create(&a, store.as_ref(), low).await.unwrap_err();
    assert_eq!(
        message(&e),
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );

    // An update that leaves the node ports out keeps them; a type change to ClusterIP
    // drops and releases them.
    let mut same = np.clone();
    for p in same["spec"]["ports"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("nodePort");
    }
    let kept = update(&a, store.as_ref(), &np, same).await.unwrap();
    assert_eq!(kept["spec"]["ports"], np["spec"]["ports"]);
    let mut to_cluster_ip = kept.clone();
    to_cluster_ip["spec"]["type"] = json!("ClusterIP");
    let plain = update(&a, store.as_ref(), &kept, to_cluster_ip).await.unwrap();
    assert!(plain["spec"]["ports"].as_array().unwrap().iter().all(|p| p.get("nodePort").is_none()), "{plain}");
    assert!(plain["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(claims(store.as_ref()).await.len(), 1, "only the cluster IP is left");
    // The freed port can be had again.
    let reuse = svc("reuse", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
    create(&a, store.as_ref(), reuse).await.unwrap();
}

#[tokio::test]
async fn load_balancers_with_local_traffic_get_a_health_check_port() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]});
    let lb = create(&a, store.as_ref(), svc("lb", spec)).await.unwrap();
    let hc = lb["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&hc));
    assert_ne!(hc, lb["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
    let mut cluster = lb.clone();
    cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
    let cluster = update(&a, store.as_ref(), &lb, cluster).await.unwrap();
    assert!(cluster["spec"].get("healthCheckNodePort").is_none(), "{cluster}");
    assert_eq!(claims(store.as_ref()).await.len(), 2);
    // Without node ports, only requested ones are taken.
    let spec = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]});
    let none = create(&a, store.as_ref(), svc("none", spec)).await.unwrap();
    assert!(none["spec"]["ports"][0].get("nodePort").is_none());
}

#[tokio::test]
async fn a_dropped_plan_reserves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let mut s = svc("dry", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let plan = a.plan_create(store.as_ref(), &mut s).await.unwrap();
    assert_eq!(plan.claims().len(), 2);
    assert_eq!(a.used(), (1, 1));
    drop(plan);
    assert_eq!(a.used(), (0, 0));
    assert!(claims(store.as_ref()).await.is_empty());
}

#[tokio::test]
async fn deletes_release_and_leave_other_claims_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ready(store.as_ref()).await;
    let web =
        create(&a, store.as_ref(), svc("web", json!({"type": "NodePort", "ports": [{"port": 80}]}))).await.unwrap();
    let rev: i64 = web["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let gone = a.delete(store.as_ref(), services(), &key("web"), "web", rev, &web).await.unwrap();
    assert_eq!(gone["metadata"]["name"], "web");
    assert!(claims(store.as_ref()).await.is_empty());
    assert_eq!(a.used(), (0, 0));
    // A stale revision is a conflict and changes nothing.
    let other = create(&a, store.as_ref(), svc("other", json!({"ports": [{"port": 80}]}))).await.unwrap();
    let e = a.delete(store.as_ref(), services(), &key("other"), "other", 1, &other).await.unwrap_err();
    assert_eq!(e.code, 409);
    assert_eq!(claims(store.as_ref()).await.len(), 1);
}

/// Many concurrent creates through two allocators over one store (two API servers,
/// each with its own view of what is taken): no value is handed out twice. A third
/// allocator, as after a restart, repairs leaks and missing claims and then knows
/// exactly what is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_share_a_value_and_a_restart_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A tiny range makes collisions certain: 62 addresses and 40 ports for 60 Services.
    let server = || async {
        let a = Arc::new(ServiceAllocator::new("10.43.0.0/26", "30000-30039").unwrap());
        a.repair(store.as_ref()).await.unwrap();
        a
    };
    let (first, second) = (server().await, server().await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let a = if i % 2 == 0 { first.clone() } else { second.clone() };
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let ty = if i < 40 { "NodePort" } else { "ClusterIP" };
            let s = svc(&format!("s{i}"), json!({"type": ty, "ports": [{"port": 80}]}));
            create(&a, store.as_ref(), s).await
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let s = t.await.unwrap().unwrap();
        assert!(ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()), "IP handed out twice");
        if let Some(np) = s["spec"]["ports"][0]["nodePort"].as_i64() {
            assert!(ports.insert(np), "port {np} handed out twice");
        }
    }
    assert_eq!((ips.len(), ports.len()), (60, 40));
    // The ports are all gone now: the next NodePort is refused, not duplicated.
    let full = svc("full", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let e = create(&first, store.as_ref(), full).await.unwrap_err();
    assert_eq!(e.code, 500);
    assert_eq!(e.message, "Internal error occurred: failed to allocate a nodePort: range is full");

    // A leaked claim and a Service without its claim, as a crash of an older
    // version or a hand edit might leave them.
    store
        .txn(store::Txn::new().and_then([store::Op::put(
            &Claim::Ip("10.43.9.9".parse().unwrap()).key(),
            Owner { namespace: "default".into(), name: "ghost".into(), uid: "ghost".into() }.encode(),
        )]))
        .await
        .unwrap();
    let s3 = claims(store.as_ref()).await.into_iter().find(|(_, o)| o.name == "s3").unwrap();
    store.txn(store::Txn::new().and_then([store::Op::delete(&s3.0)])).await.unwrap();

    let restarted = ServiceAllocator::new("10.43.0.0/26", "30000-30039").unwrap();
    let report = restarted.repair(store.as_ref()).await.unwrap();
    assert_eq!(report.released, vec![Claim::Ip("10.43.9.9".parse().unwrap())]);
    assert_eq!(report.claimed.len(), 1);
    assert_eq!(restarted.used(), (60, 40));
    assert_eq!(claims(store.as_ref()).await.len(), 100);
    // Repairing again changes nothing.
    let again = ServiceAllocator::new("10.43.0.0/26", "30000-30039").unwrap();
    assert_eq!(again.repair(store.as_ref()).await.unwrap(), RepairReport::default());
}

#[test]
fn claims_round_trip_through_keys() {
    for c in [Claim::Ip("10.43.0.1".parse().unwrap()), Claim::Ip("fd00::1".parse().unwrap()), Claim::Port(30080)] {
        assert_eq!(Claim::from_key(&c.key()), Some(c));
    }
    assert_eq!(Claim::from_key("/registry/services/default/x"), None);
}

#[test]
fn type_changes_drop_what_the_new_type_has_no_use_for() {
    let old = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30001,
        "allocateLoadBalancerNodePorts": true, "clusterIP": "10.43.1.1", "clusterIPs": ["10.43.1.1"],
        "ports": [{"port": 80, "nodePort": 30080}]}});
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    drop_type_dependent_fields(&mut new, &old);
    let spec = new["spec"].as_object().unwrap();
    for gone in ["healthCheckNodePort", "allocateLoadBalancerNodePorts", "externalTrafficPolicy"] {
        assert!(!spec.contains_key(gone), "{gone} kept");
    }
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(new["spec"]["clusterIP"], "10.43.1.1");
    // A node port the client changed along with the type stays, for validation to refuse.
    let mut changed = old.clone();
    changed["spec"]["type"] = json!("ClusterIP");
    changed["spec"]["ports"][0]["nodePort"] = json!(30999);
    drop_type_dependent_fields(&mut changed, &old);
    assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30999);
    let mut ext = old.clone();
    ext["spec"]["type"] = json!("ExternalName");
    drop_type_dependent_fields(&mut ext, &old);
    assert!(ext["spec"].get("clusterIP").is_none());
}
