//! What this node is and has: facts read from the machine ([`Machine::read`]) and
//! the Node object and status built from them (pure, so tests check the shapes the
//! kubelet writes without a machine or a server).

use crate::quantity::Quantity;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's default Lease duration.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet's default `maxPods`.
pub const MAX_PODS: u32 = 110;
/// The kubelet's default hard eviction thresholds: `memory.available<100Mi`,
/// `nodefs.available<10%`; allocatable is capacity minus these.
pub const EVICTION_MEMORY_BYTES: u64 = 100 << 20;
pub const EVICTION_NODEFS_PERCENT: u64 = 10;

/// This agent's version as the kubelet reports its own.
pub fn kubelet_version() -> String {
    format!("v1.33.0-rudder.{}", env!("CARGO_PKG_VERSION"))
}

/// Facts about the machine, read once at start and refreshed for status updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_bytes: u64,
    pub disk_available_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    /// GOARCH spelling (`amd64`, `arm64`).
    pub architecture: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub runc_version: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl Machine {
    /// Reads `/proc`, `/etc/os-release`, the data dir's filesystem and `runc --version`.
    pub fn read(data_dir: &Path, runc: &Path) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (memory_bytes, memory_available_bytes) = parse_meminfo(&meminfo);
        let (disk_bytes, disk_available_bytes) = match rustix::fs::statvfs(data_dir) {
            Ok(s) => (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize),
            Err(_) => (0, 0),
        };
        let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| count_cpu_list(&s))
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get() as u32))
            .unwrap_or(1);
        let runc_version = std::process::Command::new(runc)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| parse_runc_version(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus,
            memory_bytes,
            memory_available_bytes,
            disk_bytes,
            disk_available_bytes,
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: parse_os_release(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            machine_id: read_trim("/etc/machine-id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            runc_version,
        }
    }

    /// Refreshes what changes (free memory and disk).
    pub fn refresh(&mut self, data_dir: &Path) {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        (self.memory_bytes, self.memory_available_bytes) = parse_meminfo(&meminfo);
        if let Ok(s) = rustix::fs::statvfs(data_dir) {
            self.disk_bytes = s.f_blocks * s.f_frsize;
            self.disk_available_bytes = s.f_bavail * s.f_frsize;
        }
    }

    pub fn capacity(&self) -> BTreeMap<String, KQuantity> {
        resources(self.cpus, self.memory_bytes, self.disk_bytes)
    }

    pub fn allocatable(&self) -> BTreeMap<String, KQuantity> {
        let disk_reserved = self.disk_bytes / 100 * EVICTION_NODEFS_PERCENT;
        resources(
            self.cpus,
            self.memory_bytes.saturating_sub(EVICTION_MEMORY_BYTES),
            self.disk_bytes.saturating_sub(disk_reserved),
        )
    }
}

fn resources(cpus: u32, memory: u64, disk: u64) -> BTreeMap<String, KQuantity> {
    [
        ("cpu", cpus.to_string()),
        ("memory", format!("{}Ki", memory / 1024)),
        ("ephemeral-storage", format!("{}Ki", disk / 1024)),
        ("pods", MAX_PODS.to_string()),
        ("hugepages-1Gi", "0".to_string()),
        ("hugepages-2Mi", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), KQuantity(v)))
    .collect()
}

/// `MemTotal` and `MemAvailable` in bytes.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Counts a CPU list like `0-3,6,8-9`.
pub fn count_cpu_list(text: &str) -> Option<u32> {
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<u32>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

/// `PRETTY_NAME` from os-release.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// `1.1.12` from `runc version 1.1.12\ncommit: ...`.
pub fn parse_runc_version(text: &str) -> Option<String> {
    text.lines().next()?.strip_prefix("runc version ").map(|v| v.trim().to_string())
}

pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The address this machine uses to reach the rest of the network: the source
/// address of the default route, found by "connecting" a UDP socket (no packet is
/// sent), or loopback on a machine without one.
pub fn default_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:53")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The labels a kubelet puts on its node.
pub fn node_labels(name: &str, arch: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The condition types, in the kubelet's order.
pub const CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// One condition's status, reason and message as the kubelet words them.
pub fn condition_for(kind: &str, machine: &Machine) -> (&'static str, &'static str, &'static str) {
    let memory_pressure = machine.memory_bytes > 0 && machine.memory_available_bytes < EVICTION_MEMORY_BYTES;
    let disk_pressure = machine.disk_bytes > 0
        && machine.disk_available_bytes.saturating_mul(100) < machine.disk_bytes * EVICTION_NODEFS_PERCENT;
    match kind {
        "MemoryPressure" if memory_pressure => {
            ("True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
        }
        "MemoryPressure" => ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure" if disk_pressure => ("True", "KubeletHasDiskPressure", "kubelet has disk pressure"),
        "DiskPressure" => ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure" => ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        _ => ("True", "KubeletReady", "kubelet is posting ready status"),
    }
}

/// The conditions now: a condition keeps its transition time from `previous` while
/// its status does not change.
pub fn conditions(machine: &Machine, previous: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    CONDITIONS
        .iter()
        .map(|kind| {
            let (status, reason, message) = condition_for(kind, machine);
            let since = previous
                .iter()
                .find(|c| c.type_ == *kind && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: kind.to_string(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(since),
            }
        })
        .collect()
}

/// Who the node is, for its status.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub ip: IpAddr,
    pub kubelet_port: u16,
}

/// The node's status (everything but the pod CIDR, which is the control plane's).
pub fn node_status(id: &Identity, machine: &Machine, previous: &[NodeCondition], now: Timestamp) -> NodeStatus {
    NodeStatus {
        capacity: Some(machine.capacity()),
        allocatable: Some(machine.allocatable()),
        conditions: Some(conditions(machine, previous, now)),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: id.ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: id.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(id.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: machine.architecture.clone(),
            operating_system: "linux".into(),
            os_image: machine.os_image.clone(),
            kernel_version: machine.kernel_version.clone(),
            kubelet_version: kubelet_version(),
            kube_proxy_version: String::new(),
            container_runtime_version: format!("runc://{}", machine.runc_version),
            machine_id: machine.machine_id.clone(),
            system_uuid: machine.system_uuid.clone(),
            boot_id: machine.boot_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Node a new agent creates.
pub fn node_object(id: &Identity, machine: &Machine, now: Timestamp) -> Node {
    let annotations =
        [("node.alpha.kubernetes.io/ttl", "0"), ("volumes.kubernetes.io/controller-managed-attach-detach", "true")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(node_labels(&id.name, &machine.architecture)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: None,
        status: Some(node_status(id, machine, &[], now)),
    }
}

/// Whether two statuses differ in more than heartbeat times (the kubelet reports
/// unchanged status only every `nodeStatusReportFrequency`).
pub fn status_changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    fn strip(s: &NodeStatus) -> NodeStatus {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    }
    strip(a) != strip(b)
}

/// The node's pod CIDR, once the node IPAM controller assigned one.
pub fn pod_cidr(node: &Node) -> Option<String> {
    node.spec.as_ref()?.pod_cidr.clone().filter(|c| !c.is_empty())
}

/// The Lease a node holds, owned by the node so it goes with it.
pub fn lease_for(name: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.into(),
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// The allocatable amount of a resource as a string (the downward API's default
/// for an unset limit).
pub fn allocatable_of(machine: &Machine, resource: &str) -> Option<String> {
    machine.allocatable().get(resource).map(|q| q.0.clone())
}

/// Bytes of a quantity string, for tmpfs sizes.
pub fn bytes_of(q: &str) -> Option<u64> {
    Quantity::parse(q).ok().map(|q| q.ceil()).and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine() -> Machine {
        Machine {
            cpus: 4,
            memory_bytes: 8 << 30,
            memory_available_bytes: 6 << 30,
            disk_bytes: 100 << 30,
            disk_available_bytes: 50 << 30,
            kernel_version: "6.1.0-18-amd64".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "amd64".into(),
            machine_id: "m".into(),
            system_uuid: "s".into(),
            boot_id: "b".into(),
            runc_version: "1.1.12".into(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn machine_files_parse() {
        let (total, avail) = parse_meminfo("MemTotal:       16314032 kB\nMemFree: 1 kB\nMemAvailable:    8000000 kB\n");
        assert_eq!((total, avail), (16314032 * 1024, 8000000 * 1024));
        assert_eq!(parse_meminfo("garbage"), (0, 0));
        assert_eq!(count_cpu_list("0-3,6,8-9\n"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(
            parse_os_release("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(parse_runc_version("runc version 1.1.12+ds1\ncommit: x\n"), Some("1.1.12+ds1".into()));
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn the_node_says_what_it_is_and_has() {
        let id = Identity { name: "n1".into(), ip: "192.168.1.5".parse().unwrap(), kubelet_port: 10250 };
        let node = serde_json::to_value(node_object(&id, &machine(), at("2025-01-02T03:04:05Z"))).unwrap();
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "4");
        assert_eq!(status["capacity"]["memory"], "8388608Ki");
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["allocatable"]["memory"], format!("{}Ki", (8u64 << 20) - 100 * 1024));
        assert_eq!(status["allocatable"]["ephemeral-storage"], format!("{}Ki", (90u64 << 20)));
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let info = &status["nodeInfo"];
        assert!(info["kubeletVersion"].as_str().unwrap().starts_with("v1.33."));
        assert_eq!(info["containerRuntimeVersion"], "runc://1.1.12");
        assert_eq!(info["operatingSystem"], "linux");
        let kinds: Vec<(&str, &str, &str)> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap(), c["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID"),
                ("Ready", "True", "KubeletReady"),
            ]
        );
    }

    #[test]
    fn pressure_and_transition_times() {
        let mut m = machine();
        m.memory_available_bytes = 50 << 20;
        m.disk_available_bytes = 5 << 30;
        let t0 = at("2025-01-01T00:00:00Z");
        let c0 = conditions(&m, &[], t0);
        assert_eq!((c0[0].status.as_str(), c0[0].reason.as_deref()), ("True", Some("KubeletHasInsufficientMemory")));
        assert_eq!(c0[1].status, "True");
        let t1 = at("2025-01-01T00:01:00Z");
        let c1 = conditions(&m, &c0, t1);
        assert_eq!(c1[0].last_transition_time, Some(Time(t0)), "unchanged status keeps its transition time");
        assert_eq!(c1[0].last_heartbeat_time, Some(Time(t1)));
        let c2 = conditions(&machine(), &c1, t1);
        assert_eq!(c2[0].last_transition_time, Some(Time(t1)), "a change moves it");
        let id = Identity { name: "n".into(), ip: "10.0.0.1".parse().unwrap(), kubelet_port: 1 };
        let a = node_status(&id, &m, &c0, t0);
        let b = node_status(&id, &m, &c0, t1);
        assert!(!status_changed(&a, &b), "heartbeat times alone are no change");
        let c = node_status(&id, &machine(), &c0, t1);
        assert!(status_changed(&a, &c));
    }

    #[test]
    fn leases_are_held_and_owned_by_their_node() {
        let lease = serde_json::to_value(lease_for("n1", Some("u1"), at("2025-01-01T00:00:00.5Z"))).unwrap();
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["spec"]["holderIdentity"], "n1");
        assert_eq!(lease["spec"]["renewTime"], "2025-01-01T00:00:00.500000Z");
    }
}
