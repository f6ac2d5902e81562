//! Defaults of the core, discovery, coordination and policy kinds: Services, Secrets,
//! Namespaces, Nodes, Endpoints, EndpointSlices, Events, Leases and PDBs.

use super::{child, default_str, default_value, is_unset, items, resource_list, status_zeros, str_field};
use base64::Engine;
use serde_json::{Map, Value, json};

fn is_ipv6(ip: &str) -> bool {
    matches!(ip.parse::<std::net::IpAddr>(), Ok(std::net::IpAddr::V6(_)))
}

/// `SetDefaults_Service`, plus the cluster IP fields upstream's strategy and allocator
/// fill once an address is known: `clusterIPs` mirrors `clusterIP`, and a single-stack
/// family follows the address.
pub(super) fn service(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let Some(spec) = child(m, "spec") else { return };
    default_str(spec, "sessionAffinity", "None");
    match str_field(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": 10800}}));
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for port in items(spec, "ports") {
        default_str(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if target_unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    let ty = str_field(spec, "type").to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible = ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        cluster_ip_fields(spec);
    }
    let lb = ty == "LoadBalancer";
    if let Some(status) = child(m, "status")
        && let Some(lb_status) = child(status, "loadBalancer")
        && lb
    {
        for ing in items(lb_status, "ingress") {
            if !str_field(ing, "ip").is_empty() {
                default_value(ing, "ipMode", json!("VIP"));
            }
        }
    }
}

fn cluster_ip_fields(spec: &mut Map<String, Value>) {
    let ip = str_field(spec, "clusterIP").to_string();
    let ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    match (ip.is_empty(), ips.first()) {
        (false, None) => {
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        (true, Some(first)) => {
            spec.insert("clusterIP".into(), json!(first));
        }
        _ => {}
    }
    let ip = str_field(spec, "clusterIP").to_string();
    if ip.is_empty() {
        return;
    }
    if ip == "None" {
        // Headless: selectorless ones ask for every family the cluster has.
        let selectorless = spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty);
        default_value(spec, "ipFamilyPolicy", json!(if selectorless { "RequireDualStack" } else { "SingleStack" }));
        default_value(spec, "ipFamilies", json!(["IPv4"]));
        return;
    }
    default_value(spec, "ipFamilyPolicy", json!("SingleStack"));
    if is_unset(spec, "ipFamilies") {
        let families: Vec<&str> = ips_or(spec, &ip).iter().map(|a| if is_ipv6(a) { "IPv6" } else { "IPv4" }).collect();
        spec.insert("ipFamilies".into(), json!(families));
    }
}

fn ips_or(spec: &Map<String, Value>, ip: &str) -> Vec<String> {
    let ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if ips.is_empty() { vec![ip.to_string()] } else { ips }
}

/// Upstream's `patchAllocatedValues`.
pub(super) fn patch_allocated_values(new: &mut Value, old: &Value) {
    let Some(old_spec) = old.get("spec").and_then(Value::as_object) else {
        return;
    };
    let Some(new_spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = |s: &Map<String, Value>| {
        let t = str_field(s, "type");
        if t.is_empty() { "ClusterIP".to_string() } else { t.to_string() }
    };
    let (old_ty, new_ty) = (ty(old_spec), ty(new_spec));
    let needs_ip = |t: &str, s: &Map<String, Value>| t != "ExternalName" && str_field(s, "clusterIP") != "None";
    if needs_ip(&old_ty, old_spec) && needs_ip(&new_ty, new_spec) {
        if str_field(new_spec, "clusterIP").is_empty()
            && let Some(ip) = old_spec.get("clusterIP")
        {
            new_spec.insert("clusterIP".into(), ip.clone());
        }
        let new_ips_empty = new_spec.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if new_ips_empty
            && let Some(ips) = old_spec.get("clusterIPs").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            new_spec.insert("clusterIPs".into(), ips.clone());
        }
    }
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if needs_node_port(&old_ty) && needs_node_port(&new_ty) {
        let port_of = |p: &Value| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        let used: Vec<i64> = new_spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(port_of)
            .filter(|n| *n != 0)
            .collect();
        let by_name: Vec<(String, i64)> = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| (p.get("name").and_then(Value::as_str).unwrap_or_default().to_string(), port_of(p)))
            .collect();
        for port in items(new_spec, "ports") {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                let name = str_field(port, "name").to_string();
                if let Some((_, np)) = by_name.iter().find(|(n, _)| *n == name)
                    && *np != 0
                    && !used.contains(np)
                {
                    port.insert("nodePort".into(), json!(np));
                }
            }
        }
    }
    let needs_hc =
        |t: &str, s: &Map<String, Value>| t == "LoadBalancer" && str_field(s, "externalTrafficPolicy") == "Local";
    if needs_hc(&old_ty, old_spec)
        && needs_hc(&new_ty, new_spec)
        && new_spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
        && let Some(hc) = old_spec.get("healthCheckNodePort")
    {
        new_spec.insert("healthCheckNodePort".into(), hc.clone());
    }
}

/// `SetDefaults_Secret`, and the `stringData` merge upstream does while decoding:
/// `stringData` entries overwrite `data` and are never stored.
pub(super) fn secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_str(m, "type", "Opaque");
    if let Some(Value::Object(string_data)) = m.remove("stringData")
        && let Some(data) = child(m, "data")
    {
        for (k, v) in string_data {
            let raw = v.as_str().unwrap_or_default();
            data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(raw)));
        }
    }
}

/// `SetDefaults_Namespace` and `SetDefaults_NamespaceStatus`, plus the `kubernetes`
/// finalizer upstream adds on create. The finalizer is only added to objects not yet
/// stored (no resourceVersion), because it is removed over the namespace's life.
pub(super) fn namespace(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let meta = m.get("metadata");
    let name = meta.and_then(|x| x.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    let new = meta.and_then(|x| x.get("resourceVersion")).and_then(Value::as_str).is_none_or(str::is_empty)
        && meta.and_then(|x| x.get("deletionTimestamp")).is_none_or(Value::is_null);
    if !name.is_empty()
        && let Some(meta) = child(m, "metadata")
        && let Some(labels) = child(meta, "labels")
    {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    if new && let Some(spec) = child(m, "spec") {
        if spec.get("finalizers").is_none_or(Value::is_null) {
            spec.insert("finalizers".into(), json!([]));
        }
        if let Some(list) = spec.get_mut("finalizers").and_then(Value::as_array_mut)
            && !list.iter().any(|f| f.as_str() == Some("kubernetes"))
        {
            list.push(json!("kubernetes"));
        }
    }
    if let Some(status) = child(m, "status") {
        default_str(status, "phase", "Active");
    }
}

/// `SetDefaults_NodeStatus`, canonical capacities, and the zero structs Go writes.
pub(super) fn node(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_value(m, "spec", json!({}));
    let Some(status) = child(m, "status") else {
        return;
    };
    if is_unset(status, "allocatable")
        && let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), cap);
    }
    resource_list(status, "capacity");
    resource_list(status, "allocatable");
    if let Some(de) = child(status, "daemonEndpoints")
        && let Some(ke) = child(de, "kubeletEndpoint")
    {
        default_value(ke, "Port", json!(0));
    }
    if let Some(info) = child(status, "nodeInfo") {
        for key in [
            "architecture",
            "bootID",
            "containerRuntimeVersion",
            "kernelVersion",
            "kubeProxyVersion",
            "kubeletVersion",
            "machineID",
            "operatingSystem",
            "osImage",
            "systemUUID",
        ] {
            default_value(info, key, json!(""));
        }
    }
}

/// `SetDefaults_Endpoints`.
pub(super) fn endpoints(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    for subset in items(m, "subsets") {
        for port in items(subset, "ports") {
            default_str(port, "protocol", "TCP");
        }
    }
}

/// `discovery/v1` `SetDefaults_EndpointPort`: unnamed, TCP.
pub(super) fn endpoint_slice(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    for port in items(m, "ports") {
        default_value(port, "name", json!(""));
        default_value(port, "protocol", json!("TCP"));
    }
}

/// What Go writes for a core Event's zero fields.
pub(super) fn event(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_value(m, "involvedObject", json!({}));
    default_value(m, "source", json!({}));
    default_value(m, "firstTimestamp", Value::Null);
    default_value(m, "lastTimestamp", Value::Null);
    default_value(m, "eventTime", Value::Null);
    default_value(m, "reportingComponent", json!(""));
    default_value(m, "reportingInstance", json!(""));
}

/// What Go writes for an `events.k8s.io/v1` Event's zero fields.
pub(super) fn event_v1(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_value(m, "eventTime", Value::Null);
    default_value(m, "deprecatedSource", json!({}));
    default_value(m, "deprecatedFirstTimestamp", Value::Null);
    default_value(m, "deprecatedLastTimestamp", Value::Null);
}

/// A Lease's spec is a struct: always written.
pub(super) fn lease(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        default_value(m, "spec", json!({}));
    }
}

/// A PriorityClass preempts lower priorities unless told otherwise.
pub(super) fn priority_class(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        default_value(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// A PDB's spec is a struct and its status counters are always written.
pub(super) fn pdb(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        default_value(m, "spec", json!({}));
        status_zeros(m, &["currentHealthy", "desiredHealthy", "disruptionsAllowed", "expectedPods"]);
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply;
    use crate::registry::find;
    use serde_json::json;

    fn defaulted(plural: &str, group: &str, mut v: serde_json::Value) -> serde_json::Value {
        apply(find(group, "v1", plural).unwrap(), &mut v);
        v
    }

    #[test]
    fn services() {
        let s = defaulted(
            "services",
            "",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]}}),
        );
        assert_eq!(
            s["spec"],
            json!({"selector": {"app": "web"}, "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]})
        );
        assert_eq!(s["status"], json!({"loadBalancer": {}}));

        let lb = defaulted(
            "services",
            "",
            json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["clusterIPs"], json!(["10.43.0.5"]));
        assert_eq!(lb["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(lb["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");

        let affinity = defaulted("services", "", json!({"spec": {"sessionAffinity": "ClientIP"}}));
        assert_eq!(affinity["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
        let none = defaulted("services", "", json!({"spec": {"sessionAffinityConfig": {"clientIP": {}}}}));
        assert!(none["spec"].get("sessionAffinityConfig").is_none());

        let headless = defaulted("services", "", json!({"spec": {"clusterIP": "None", "selector": {"a": "b"}}}));
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
        let v6 = defaulted("services", "", json!({"spec": {"clusterIPs": ["fd00::10"]}}));
        assert_eq!(v6["spec"]["clusterIP"], "fd00::10");
        assert_eq!(v6["spec"]["ipFamilies"], json!(["IPv6"]));
        let ext =
            defaulted("services", "", json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(ext["spec"].get("ipFamilyPolicy").is_none());
    }

    #[test]
    fn secrets_merge_string_data() {
        let s = defaulted("secrets", "", json!({"data": {"a": "eA=="}, "stringData": {"a": "hunter2", "b": "x"}}));
        assert_eq!(s, json!({"type": "Opaque", "data": {"a": "aHVudGVyMg==", "b": "eA=="}}));
    }

    #[test]
    fn namespaces() {
        let ns = defaulted("namespaces", "", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(
            ns,
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        // A stored namespace being finalized keeps whatever finalizers it has left.
        let stored = defaulted(
            "namespaces",
            "",
            json!({"metadata": {"name": "team-a", "resourceVersion": "7"},
            "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(stored["spec"]["finalizers"], json!([]));
        assert_eq!(stored["status"]["phase"], "Terminating");
        let generated = defaulted("namespaces", "", json!({"metadata": {"generateName": "t-"}}));
        assert!(generated["metadata"].get("labels").is_none());
    }

    #[test]
    fn nodes_endpoints_slices_events_leases_pdbs() {
        let n = defaulted("nodes", "", json!({"status": {"capacity": {"cpu": "4", "memory": "8192Mi", "pods": 110}}}));
        assert_eq!(n["status"]["allocatable"], json!({"cpu": "4", "memory": "8Gi", "pods": "110"}));
        assert_eq!(n["status"]["capacity"]["memory"], "8Gi");
        assert_eq!(n["status"]["daemonEndpoints"], json!({"kubeletEndpoint": {"Port": 0}}));
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "");
        assert_eq!(n["spec"], json!({}));

        let ep = defaulted("endpoints", "", json!({"subsets": [{"ports": [{"port": 80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        let mut es = json!({"ports": [{"port": 80}]});
        apply(find("discovery.k8s.io", "v1", "endpointslices").unwrap(), &mut es);
        assert_eq!(es["ports"][0], json!({"port": 80, "name": "", "protocol": "TCP"}));

        let ev = defaulted("events", "", json!({"involvedObject": {"kind": "Pod"}, "reason": "Started"}));
        assert_eq!(ev["source"], json!({}));
        assert_eq!(ev["reportingComponent"], "");
        assert!(ev["eventTime"].is_null());
        let mut lease = json!({"metadata": {"name": "n1"}});
        apply(find("coordination.k8s.io", "v1", "leases").unwrap(), &mut lease);
        assert_eq!(lease["spec"], json!({}));
        let mut pdb = json!({"spec": {"minAvailable": 1}});
        apply(find("policy", "v1", "poddisruptionbudgets").unwrap(), &mut pdb);
        assert_eq!(
            pdb["status"],
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
        );
        let mut bare = json!({"metadata": {"name": "p"}});
        apply(find("policy", "v1", "poddisruptionbudgets").unwrap(), &mut bare);
        assert_eq!(bare["spec"], json!({}));
    }
}
