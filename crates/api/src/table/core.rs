//! Rows of the core kinds other than Pod and Event (Node, Namespace, Service, Endpoints,
//! ConfigMap, Secret, ServiceAccount), plus the two small kinds that sit next to them
//! on a node's or a Service's path: EndpointSlice and Lease.

use super::age;
use super::fields::{arr_at, bool_at, format_labels, get, int_at, len_at, name, opt_int_at, str_at};
use super::time::Nanos;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const LABEL_NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_LABEL_ROLE: &str = "kubernetes.io/role";

pub(super) fn node(n: &Value, now: Nanos) -> Vec<Value> {
    let mut status = Vec::new();
    // Upstream indexes conditions by type, so the last Ready condition wins.
    if let Some(ready) = arr_at(n, "/status/conditions").iter().rev().find(|c| str_at(c, "/type") == "Ready") {
        status.push(if str_at(ready, "/status") == "True" { "Ready" } else { "NotReady" });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if bool_at(n, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    if let Some(labels) = get(n, "/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or("");
            if let Some(role) = k.strip_prefix(LABEL_NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == NODE_LABEL_ROLE && !v.is_empty() {
                roles.insert(v.to_string());
            }
        }
    }
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };

    let address = |type_: &str| {
        let found = arr_at(n, "/status/addresses").iter().find(|a| str_at(a, "/type") == type_);
        found.map(|a| str_at(a, "/address")).unwrap_or("<none>").to_string()
    };
    let info = |field: &str| match str_at(n, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };

    vec![
        name(n),
        Value::from(status.join(",")),
        Value::from(roles),
        age(n, now),
        Value::from(str_at(n, "/status/nodeInfo/kubeletVersion")),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(info("osImage")),
        Value::from(info("kernelVersion")),
        Value::from(info("containerRuntimeVersion")),
    ]
}

pub(super) fn namespace(ns: &Value, now: Nanos) -> Vec<Value> {
    // Defaulting sets an empty phase to Active.
    let phase = match str_at(ns, "/status/phase") {
        "" => "Active",
        p => p,
    };
    vec![name(ns), Value::from(phase), age(ns, now)]
}

pub(super) fn service(svc: &Value, now: Nanos) -> Vec<Value> {
    let type_ = match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = match arr_at(svc, "/spec/clusterIPs").first().and_then(Value::as_str) {
        Some(ip) => ip,
        None => str_at(svc, "/spec/clusterIP"),
    };
    let ports: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int_at(p, "/port")),
                _ => format!("{}/{protocol}", int_at(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    vec![
        name(svc),
        Value::from(type_),
        Value::from(if cluster_ip.is_empty() { "<none>" } else { cluster_ip }),
        Value::from(service_external_ip(svc, type_)),
        Value::from(ports),
        age(svc, now),
        Value::from(format_labels(get(svc, "/spec/selector"))),
    ]
}

/// Upstream `getServiceExternalIP`, in its wide form (the load-balancer list is not
/// clipped to 16 characters; the server always prints wide).
fn service_external_ip(svc: &Value, type_: &str) -> String {
    let external_ips: Vec<&str> = arr_at(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match type_ {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = arr_at(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            let mut all: Vec<&str> = ingress.into_iter().collect();
            if all.is_empty() && external_ips.is_empty() {
                return "<pending>".to_string();
            }
            all.extend(external_ips);
            all.join(",")
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Upstream `formatEndpoints` for all ports: up to three `ip:port` pairs, then a count.
pub(super) fn endpoints(ep: &Value, now: Nanos) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = arr_at(ep, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut more = false;
        let mut count = 0usize;
        for ss in subsets {
            let addresses = arr_at(ss, "/addresses");
            let ports = arr_at(ss, "/ports");
            if ports.is_empty() {
                // Headless services may have no ports.
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(str_at(a, "/ip").to_string());
                }
                continue;
            }
            for port in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(str_at(a, "/ip"), int_at(port, "/port")));
                }
            }
        }
        let joined = list.join(",");
        if more { format!("{joined} + {} more...", count - MAX) } else { joined }
    };
    vec![name(ep), Value::from(text), age(ep, now)]
}

/// Go's `net.JoinHostPort`: IPv6 addresses go in brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

pub(super) fn endpoint_slice(eps: &Value, now: Nanos) -> Vec<Value> {
    let ports: Vec<String> = arr_at(eps, "/ports")
        .iter()
        .map(|p| match (opt_int_at(p, "/port"), get(p, "/name").and_then(Value::as_str)) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(eps, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses").iter().map(|a| a.as_str().unwrap_or("").to_string()))
        .collect();
    vec![
        name(eps),
        Value::from(str_at(eps, "/addressType")),
        Value::from(list_with_more(ports)),
        Value::from(list_with_more(addresses)),
        age(eps, now),
    ]
}

/// Upstream `listWithMoreString`: the first three, a count of the rest, `<unset>` if none.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    match items.len() {
        0 => "<unset>".to_string(),
        n if n > MAX => format!("{} + {} more...", items[..MAX].join(","), n - MAX),
        _ => items.join(","),
    }
}

pub(super) fn config_map(cm: &Value, now: Nanos) -> Vec<Value> {
    let data = len_at(cm, "/data") + len_at(cm, "/binaryData");
    vec![name(cm), Value::from(data), age(cm, now)]
}

pub(super) fn secret(s: &Value, now: Nanos) -> Vec<Value> {
    // Defaulting gives a secret without a type the type Opaque.
    let type_ = match str_at(s, "/type") {
        "" => "Opaque",
        t => t,
    };
    // Decoding merges `stringData` into `data`, so a key in both counts once.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["/data", "/stringData"] {
        if let Some(m) = get(s, field).and_then(Value::as_object) {
            keys.extend(m.keys().map(String::as_str));
        }
    }
    vec![name(s), Value::from(type_), Value::from(keys.len()), age(s, now)]
}

pub(super) fn service_account(sa: &Value, now: Nanos) -> Vec<Value> {
    vec![name(sa), Value::from(len_at(sa, "/secrets")), age(sa, now)]
}

/// PriorityClass: its value, whether it is the default, and its preemption policy.
pub(super) fn priority_class(pc: &Value, now: Nanos) -> Vec<Value> {
    let policy = match str_at(pc, "/preemptionPolicy") {
        "" => "PreemptLowerPriority",
        p => p,
    };
    vec![name(pc), json!(int_at(pc, "/value")), json!(bool_at(pc, "/globalDefault")), age(pc, now), json!(policy)]
}

pub(super) fn lease(l: &Value, now: Nanos) -> Vec<Value> {
    vec![name(l), Value::from(str_at(l, "/spec/holderIdentity")), age(l, now)]
}

#[cfg(test)]
mod tests {
    use crate::table::testing::cells;
    use serde_json::{Value, json};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2025-05-30T07:00:00Z"})
    }

    #[test]
    fn node_ready_with_roles_and_wide_columns() {
        let n = json!({
            "metadata": {"name": "node-1", "creationTimestamp": "2025-05-01T12:00:00Z", "labels": {
                "kubernetes.io/hostname": "node-1",
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/": "",
                "kubernetes.io/role": "master"
            }},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady"}
                ],
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "ExternalIP", "address": "203.0.113.10"}
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.0",
                    "osImage": "Debian GNU/Linux 13 (trixie)",
                    "kernelVersion": "6.12.0-1-amd64",
                    "containerRuntimeVersion": "rudder://0.1.0"
                }
            }
        });
        assert_eq!(
            cells("", "nodes", &n),
            [
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,etcd,master"),
                json!("31d"),
                json!("v1.33.0"),
                json!("192.168.1.10"),
                json!("203.0.113.10"),
                json!("Debian GNU/Linux 13 (trixie)"),
                json!("6.12.0-1-amd64"),
                json!("rudder://0.1.0"),
            ]
        );
    }

    #[test]
    fn node_not_ready_or_unknown_with_placeholders() {
        let not_ready = json!({
            "metadata": {"name": "node-2", "creationTimestamp": "2025-06-01T11:58:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}
        });
        assert_eq!(
            cells("", "nodes", &not_ready),
            [
                json!("node-2"),
                json!("NotReady"),
                json!("<none>"),
                json!("2m"),
                json!(""),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
        let fresh = json!({"metadata": {"name": "node-3"}, "spec": {"unschedulable": true}});
        assert_eq!(
            cells("", "nodes", &fresh)[1..4],
            [json!("Unknown,SchedulingDisabled"), json!("<none>"), json!("<unknown>")]
        );
    }

    #[test]
    fn namespace_status_defaults_to_active() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": "2025-05-30T07:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(cells("", "namespaces", &ns), [json!("kube-system"), json!("Active"), json!("2d5h")]);
        let terminating = json!({"metadata": {"name": "old", "creationTimestamp": "2025-06-01T11:59:59Z"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells("", "namespaces", &terminating), [json!("old"), json!("Terminating"), json!("1s")]);
        assert_eq!(
            cells("", "namespaces", &json!({"metadata": {"name": "new"}})),
            [json!("new"), json!("Active"), json!("<unknown>")]
        );
    }

    #[test]
    fn cluster_ip_service() {
        let svc = json!({
            "metadata": meta("web"),
            "spec": {"type": "ClusterIP", "clusterIP": "10.43.12.7", "clusterIPs": ["10.43.12.7"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}],
                     "selector": {"app": "web", "tier": "frontend"}}
        });
        assert_eq!(
            cells("", "services", &svc),
            [
                json!("web"),
                json!("ClusterIP"),
                json!("10.43.12.7"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("2d5h"),
                json!("app=web,tier=frontend"),
            ]
        );
    }

    #[test]
    fn node_port_headless_and_defaulted_services() {
        let np = json!({
            "metadata": meta("web-np"),
            "spec": {"type": "NodePort", "clusterIPs": ["10.43.0.20"], "externalIPs": ["198.51.100.1", "198.51.100.2"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "nodePort": 30443}]}
        });
        assert_eq!(
            cells("", "services", &np)[1..7],
            [
                json!("NodePort"),
                json!("10.43.0.20"),
                json!("198.51.100.1,198.51.100.2"),
                json!("80:30080/TCP,443:30443/TCP"),
                json!("2d5h"),
                json!("<none>")
            ]
        );
        let headless = json!({"metadata": meta("db"), "spec": {"clusterIP": "None", "selector": {"app": "db"}}});
        assert_eq!(
            cells("", "services", &headless)[1..7],
            [json!("ClusterIP"), json!("None"), json!("<none>"), json!("<none>"), json!("2d5h"), json!("app=db")]
        );
        let bare = json!({"metadata": {"name": "bare"}});
        assert_eq!(
            cells("", "services", &bare),
            [
                json!("bare"),
                json!("ClusterIP"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn load_balancer_and_external_name_services() {
        let pending = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.30",
            "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}});
        assert_eq!(cells("", "services", &pending)[3..5], [json!("<pending>"), json!("443:31443/TCP")]);

        let ready = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.9"]},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.7"}, {"hostname": "lb-1234567890.example.com"}, {"ip": "203.0.113.5"}, {"ip": "203.0.113.7"}]}}});
        assert_eq!(
            cells("", "services", &ready)[3],
            json!("203.0.113.5,203.0.113.7,lb-1234567890.example.com,198.51.100.9")
        );

        let ext =
            json!({"metadata": meta("search"), "spec": {"type": "ExternalName", "externalName": "search.example.com"}});
        assert_eq!(
            cells("", "services", &ext)[1..5],
            [json!("ExternalName"), json!("<none>"), json!("search.example.com"), json!("<none>")]
        );

        let odd = json!({"metadata": meta("odd"), "spec": {"type": "Weird"}});
        assert_eq!(cells("", "services", &odd)[3], json!("<unknown>"));
    }

    #[test]
    fn endpoints_list_three_then_count() {
        let ep = json!({
            "metadata": meta("web"),
            "subsets": [
                {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.1.6"}], "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
                {"addresses": [{"ip": "fd00::7"}], "ports": [{"port": 8080}]}
            ]
        });
        assert_eq!(
            cells("", "endpoints", &ep),
            [json!("web"), json!("10.42.0.5:8080,10.42.1.6:8080,10.42.0.5:9090 + 2 more..."), json!("2d5h")]
        );
        let v6 =
            json!({"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::7"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("", "endpoints", &v6)[1], json!("[fd00::7]:80"));
        let headless =
            json!({"metadata": meta("hl"), "subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}]}]});
        assert_eq!(cells("", "endpoints", &headless)[1], json!("10.42.0.5,10.42.0.6"));
        let not_ready = json!({"metadata": meta("nr"), "subsets": [{"notReadyAddresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("", "endpoints", &not_ready)[1], json!(""));
        assert_eq!(cells("", "endpoints", &json!({"metadata": meta("none")}))[1], json!("<none>"));
    }

    #[test]
    fn endpoint_slices() {
        let eps = json!({
            "metadata": meta("web-abc12"),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "grpc"}, {}, {"port": 9090}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.42.1.6", "10.42.1.7"]}
            ]
        });
        assert_eq!(
            cells("discovery.k8s.io", "endpointslices", &eps),
            [
                json!("web-abc12"),
                json!("IPv4"),
                json!("8080,grpc,* + 1 more..."),
                json!("10.42.0.5,10.42.1.6,10.42.1.7"),
                json!("2d5h")
            ]
        );
        let empty = json!({"metadata": meta("empty"), "addressType": "IPv6"});
        assert_eq!(
            cells("discovery.k8s.io", "endpointslices", &empty)[1..4],
            [json!("IPv6"), json!("<unset>"), json!("<unset>")]
        );
    }

    #[test]
    fn config_maps_count_data_and_binary_data() {
        let cm = json!({"metadata": meta("settings"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}});
        assert_eq!(cells("", "configmaps", &cm), [json!("settings"), json!(3), json!("2d5h")]);
        assert_eq!(cells("", "configmaps", &json!({"metadata": meta("empty")}))[1], json!(0));
    }

    #[test]
    fn secrets_show_type_and_key_count() {
        let s = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}});
        assert_eq!(cells("", "secrets", &s), [json!("tls"), json!("kubernetes.io/tls"), json!(2), json!("2d5h")]);
        let opaque =
            json!({"metadata": meta("creds"), "data": {"user": "dQ=="}, "stringData": {"user": "u", "pass": "p"}});
        assert_eq!(cells("", "secrets", &opaque), [json!("creds"), json!("Opaque"), json!(2), json!("2d5h")]);
    }

    #[test]
    fn service_accounts_count_secrets() {
        let sa = json!({"metadata": meta("builder"), "secrets": [{"name": "builder-token"}], "imagePullSecrets": [{"name": "regcred"}]});
        assert_eq!(cells("", "serviceaccounts", &sa), [json!("builder"), json!(1), json!("2d5h")]);
        assert_eq!(cells("", "serviceaccounts", &json!({"metadata": meta("default")}))[1], json!(0));
    }

    #[test]
    fn leases_show_holder() {
        let l = json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease", "creationTimestamp": "2025-06-01T11:59:10Z"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2025-06-01T11:59:58.000000Z"}});
        assert_eq!(cells("coordination.k8s.io", "leases", &l), [json!("node-1"), json!("node-1"), json!("50s")]);
        assert_eq!(cells("coordination.k8s.io", "leases", &json!({"metadata": {"name": "free"}}))[1], json!(""));
    }
}
