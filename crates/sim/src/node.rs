//! What a simulated node and its Lease look like: pure functions of the options, the
//! node's index and the time, so tests can check them without a server.

use crate::Options;
use crate::ipam;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The label every simulated node carries, so nothing mistakes it for a real one.
pub const SIMULATED_LABEL: &str = "rudder.dev/simulated";

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

pub const KUBELET_VERSION: &str = "v1.33.0-sim";

/// The labels of node `name`: the well-known ones a kubelet sets, and ours.
pub fn node_labels(name: &str) -> BTreeMap<String, String> {
    [
        (SIMULATED_LABEL, "true"),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, since: Timestamp, now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(since)),
        last_heartbeat_time: Some(Time(now)),
    }
}

/// A healthy node's conditions, in the kubelet's order and with its reasons; ready
/// since `since`, reported at `now`.
pub fn node_conditions(since: Timestamp, now: Timestamp) -> Vec<NodeCondition> {
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            since,
            now,
        ),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", since, now),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            since,
            now,
        ),
        condition("Ready", "True", "KubeletReady", "simulated node is ready", since, now),
    ]
}

/// The status a simulated node reports: what it has, how to reach it, what it runs.
pub fn node_status(opts: &Options, index: usize, kernel_version: &str, since: Timestamp, now: Timestamp) -> NodeStatus {
    let name = opts.node_name(index);
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", opts.cpu.clone()),
        ("memory", opts.memory.clone()),
        ("pods", opts.pods.to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(node_conditions(since, now)),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: ipam::node_ip(index).to_string() },
            NodeAddress { type_: "Hostname".into(), address: name.clone() },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            os_image: "Rudder simulated node".into(),
            kernel_version: kernel_version.into(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            container_runtime_version: "sim://0.1".into(),
            // Stable per name, so a restarted sim looks like the same machine.
            machine_id: format!("sim-{name}"),
            system_uuid: format!("sim-{name}"),
            boot_id: format!("sim-{name}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Node `index` as the sim registers it.
pub fn node_object(opts: &Options, index: usize, kernel_version: &str, now: Timestamp) -> Node {
    let name = opts.node_name(index);
    Node {
        metadata: ObjectMeta { labels: Some(node_labels(&name)), name: Some(name), ..Default::default() },
        spec: None,
        status: Some(node_status(opts, index, kernel_version, now, now)),
    }
}

/// The strategic merge patch of a periodic status report: fresh heartbeat times on
/// every condition (merged by `type`, so conditions others set survive).
pub fn status_heartbeat(since: Timestamp, now: Timestamp) -> Value {
    json!({"status": {"conditions": node_conditions(since, now)}})
}

/// Whether the node reports itself Ready; a node lifecycle controller that saw us
/// miss heartbeats may have set it Unknown.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The server-assigned pod network, when there is one.
pub fn pod_cidr(node: &Node) -> Option<ipam::PodCidr> {
    let spec = node.spec.as_ref()?;
    let cidrs = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter());
    cidrs.filter_map(|c| ipam::PodCidr::parse(c)).next()
}

/// The Lease the node heartbeats on, owned by the node (as the kubelet does it) so it
/// goes when the node does.
pub fn lease_for(name: &str, node_uid: Option<&str>, duration_seconds: i32, now: Timestamp) -> Lease {
    let owner = node_uid.map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.into(),
        uid: uid.into(),
        ..Default::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// The merge patch that renews the node's Lease.
pub fn lease_renewal(name: &str, duration_seconds: i32, now: Timestamp) -> Value {
    json!({"spec": {
        "holderIdentity": name,
        "leaseDurationSeconds": duration_seconds,
        "renewTime": MicroTime(now),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_node_says_what_it_is_and_has() {
        let opts = Options { nodes: 3, ..Options::default() };
        let now = at("2025-01-02T03:04:05Z");
        let node = serde_json::to_value(node_object(&opts, 1, "6.1.0", now)).unwrap();
        assert_eq!(node["metadata"]["name"], "sim-1");
        assert_eq!(node["metadata"]["labels"]["rudder.dev/simulated"], "true");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "sim-1");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        let status = &node["status"];
        assert_eq!(
            status["capacity"],
            json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"})
        );
        assert_eq!(status["allocatable"], status["capacity"]);
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "10.255.0.2"}, {"type": "Hostname", "address": "sim-1"}])
        );
        let info = &status["nodeInfo"];
        assert_eq!(info["kubeletVersion"], "v1.33.0-sim");
        assert_eq!(info["containerRuntimeVersion"], "sim://0.1");
        assert_eq!(info["osImage"], "Rudder simulated node");
        assert_eq!(info["kernelVersion"], "6.1.0");
        assert_eq!((info["operatingSystem"].as_str(), info["architecture"].as_str()), (Some("linux"), Some("amd64")));
        let conditions = status["conditions"].as_array().unwrap();
        let types: Vec<_> =
            conditions.iter().map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap())).collect();
        assert_eq!(
            types,
            [("MemoryPressure", "False"), ("DiskPressure", "False"), ("PIDPressure", "False"), ("Ready", "True")]
        );
        let ready = &conditions[3];
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["message"], "simulated node is ready");
        assert_eq!(ready["lastHeartbeatTime"], "2025-01-02T03:04:05Z");
        assert!(node.get("spec").is_none(), "the pod CIDR is the server's to assign");
    }

    #[test]
    fn options_shape_the_node() {
        let opts =
            Options { prefix: "big".into(), cpu: "96".into(), memory: "1Ti".into(), pods: 250, ..Options::default() };
        let node = node_object(&opts, 7, "", at("2025-01-01T00:00:00Z"));
        assert_eq!(node.metadata.name.as_deref(), Some("big-7"));
        let alloc = node.status.unwrap().allocatable.unwrap();
        assert_eq!(alloc["cpu"].0, "96");
        assert_eq!(alloc["memory"].0, "1Ti");
        assert_eq!(alloc["pods"].0, "250");
    }

    #[test]
    fn heartbeats_keep_the_transition_time() {
        let since = at("2025-01-01T00:00:00Z");
        let patch = status_heartbeat(since, at("2025-01-01T00:01:00Z"));
        for c in patch["status"]["conditions"].as_array().unwrap() {
            assert_eq!(c["lastTransitionTime"], "2025-01-01T00:00:00Z");
            assert_eq!(c["lastHeartbeatTime"], "2025-01-01T00:01:00Z");
        }
    }

    #[test]
    fn readiness_and_pod_cidr_are_read_from_the_node() {
        let mut node = node_object(&Options::default(), 0, "", at("2025-01-01T00:00:00Z"));
        assert!(is_ready(&node));
        assert_eq!(pod_cidr(&node), None);
        let ready = node.status.as_mut().unwrap().conditions.as_mut().unwrap().last_mut().unwrap();
        ready.status = "Unknown".into();
        assert!(!is_ready(&node));
        node.status = None;
        assert!(!is_ready(&node));
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            pod_cidr: Some("10.42.7.0/24".into()),
            pod_cidrs: Some(vec!["fd00::/64".into(), "10.42.7.0/24".into()]),
            ..Default::default()
        });
        assert_eq!(pod_cidr(&node).unwrap().to_string(), "10.42.7.0/24");
    }

    #[test]
    fn leases_are_held_by_their_node() {
        let now = at("2025-01-01T00:00:00.123456Z");
        let lease = serde_json::to_value(lease_for("sim-0", Some("u-1"), 10, now)).unwrap();
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(
            lease["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "v1", "kind": "Node", "name": "sim-0", "uid": "u-1"})
        );
        assert_eq!(
            lease["spec"],
            json!({"holderIdentity": "sim-0", "leaseDurationSeconds": 10, "renewTime": "2025-01-01T00:00:00.123456Z"})
        );
        assert!(lease_for("sim-0", None, 10, now).metadata.owner_references.is_none());
        let renewal = lease_renewal("sim-0", 10, now);
        assert_eq!(renewal["spec"]["renewTime"], "2025-01-01T00:00:00.123456Z");
        assert_eq!(renewal["spec"]["holderIdentity"], "sim-0");
    }
}
