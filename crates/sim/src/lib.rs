//! Simulated nodes, for scale tests and benchmarks only (like KWOK): `N` Node objects
//! that renew their Leases and report the pods bound to them Running and Ready, and
//! deleted pods gone, without starting any container. They carry the
//! `rudder.dev/simulated: "true"` label; a real node never runs this code.
//!
//! Start with [`run`]. The decisions are pure functions, tested with plain data:
//! [`node`] (the Node and Lease objects), [`pod`] (what to do with a bound pod and the
//! status to report), [`ipam`] (node and pod addresses) and [`pacing`] (spreading
//! heartbeats evenly). The I/O lives in `heartbeat` (registration, Leases, status
//! reports, resync of the nodes) and `pod_worker` (one watch of all pods, status
//! writes and deletions). When the process ends its nodes stop heartbeating and stay,
//! as nodes that died would.

mod heartbeat;
pub mod ipam;
pub mod node;
pub mod pacing;
pub mod pod;
mod pod_worker;
mod slim;

use ipam::{NodeIps, PodCidr};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid option {option}: {reason}")]
    InvalidOption { option: &'static str, reason: String },
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("none of the {nodes} simulated nodes could register: {last}")]
    NothingRegistered { nodes: usize, last: Box<Error> },
    #[error("node {node} has no free pod IP left in {cidr}")]
    PodIpsExhausted { node: String, cidr: String },
}

/// What to simulate and how hard to push the API server.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many nodes: `PREFIX-0` … `PREFIX-(N-1)`.
    pub nodes: usize,
    pub prefix: String,
    /// Each node's capacity (and allocatable): Kubernetes quantities.
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// How often each node renews its Lease.
    pub heartbeat: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// How often each node refreshes its conditions' heartbeat times (upstream
    /// kubelet's nodeStatusReportFrequency).
    pub status_report: Duration,
    /// How often everything is compared with the server again, to repair drift.
    pub resync: Duration,
    /// The most requests in flight at once (the pod watch aside): half for the nodes'
    /// own writes, half for pods, so a storm of pods cannot starve the heartbeats.
    pub max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 1,
            prefix: "sim".into(),
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: 110,
            heartbeat: Duration::from_secs(2),
            lease_duration_seconds: 10,
            status_report: Duration::from_secs(60),
            resync: Duration::from_secs(30),
            max_in_flight: 64,
        }
    }
}

fn invalid(option: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidOption { option, reason: reason.into() }
}

/// Whether `s` is a Kubernetes quantity: a decimal number with an optional suffix.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", ""];
    let Some(number) = SUFFIXES.iter().find_map(|suffix| s.strip_suffix(suffix)) else { return false };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

impl Options {
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix)
    }

    /// Refuses options the sim cannot honour, before anything is sent.
    pub fn validate(&self) -> Result<(), Error> {
        if self.nodes == 0 || self.nodes > ipam::MAX_NODES {
            return Err(invalid("--nodes", format!("must be between 1 and {}", ipam::MAX_NODES)));
        }
        let label_ok = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && s.as_bytes()[0].is_ascii_alphanumeric()
        };
        let longest = self.node_name(self.nodes - 1);
        if !label_ok(&self.prefix) || longest.len() > 63 {
            return Err(invalid(
                "--prefix",
                "node names must be lowercase letters, digits, '-' or '.', at most 63 long",
            ));
        }
        for (option, q) in [("--cpu", &self.cpu), ("--memory", &self.memory)] {
            if !is_quantity(q) {
                return Err(invalid(option, format!("{q:?} is not a quantity (e.g. 8, 500m, 32Gi)")));
            }
        }
        if self.pods == 0 {
            return Err(invalid("--pods", "must be at least 1"));
        }
        if self.heartbeat.is_zero() || self.status_report.is_zero() || self.resync.is_zero() {
            return Err(invalid("--heartbeat", "periods must be longer than zero"));
        }
        if self.lease_duration_seconds <= 0 {
            return Err(invalid("--lease-duration", "must be at least 1 second"));
        }
        if self.max_in_flight < 2 {
            return Err(invalid("--max-in-flight", "must be at least 2 (one for nodes, one for pods)"));
        }
        Ok(())
    }

    fn pod_in_flight(&self) -> usize {
        self.max_in_flight / 2
    }

    fn node_in_flight(&self) -> usize {
        self.max_in_flight - self.pod_in_flight()
    }
}

/// Parses a duration as `2s`, `500ms`, `1.5m` or `1h` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(invalid("duration", format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)"))),
    };
    let value: f64 = number.parse().map_err(|_| invalid("duration", format!("{s:?} is not a number with a unit")))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| invalid("duration", format!("{s:?}: {e}")))
}

/// One simulated node.
struct SimNode {
    name: String,
    ip: Ipv4Addr,
    derived_cidr: PodCidr,
    state: Mutex<NodeState>,
}

/// What we know of a node on the server and what is in flight for it.
struct NodeState {
    uid: Option<String>,
    /// The server-assigned pod network, once there is one.
    assigned_cidr: Option<PodCidr>,
    /// When the node last became Ready: the conditions' transition time.
    ready_since: Timestamp,
    lease_busy: bool,
    report_busy: bool,
    ips: NodeIps,
}

impl SimNode {
    fn state(&self) -> MutexGuard<'_, NodeState> {
        // A panic elsewhere while holding the lock leaves plain data behind; use it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pod_cidr(&self) -> PodCidr {
        self.state().assigned_cidr.unwrap_or(self.derived_cidr)
    }
}

/// Counts of what the sim did, logged periodically.
#[derive(Default)]
struct Stats {
    lease_renewals: AtomicU64,
    lease_errors: AtomicU64,
    lease_skipped: AtomicU64,
    status_reports: AtomicU64,
    status_errors: AtomicU64,
    pods_started: AtomicU64,
    pods_finished: AtomicU64,
    pods_deleted: AtomicU64,
    pod_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Everything the sim's tasks share.
struct Sim {
    client: kube::Client,
    opts: Options,
    kernel_version: String,
    nodes: Vec<SimNode>,
    by_name: HashMap<String, usize>,
    node_writes: Semaphore,
    stats: Stats,
}

impl Sim {
    fn new(client: kube::Client, opts: Options, kernel_version: String) -> Sim {
        let now = Timestamp::now();
        let nodes: Vec<SimNode> = (0..opts.nodes)
            .map(|i| SimNode {
                name: opts.node_name(i),
                ip: ipam::node_ip(i),
                derived_cidr: PodCidr::derived(i),
                state: Mutex::new(NodeState {
                    uid: None,
                    assigned_cidr: None,
                    ready_since: now,
                    lease_busy: false,
                    report_busy: false,
                    ips: NodeIps::default(),
                }),
            })
            .collect();
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        let node_writes = Semaphore::new(opts.node_in_flight());
        Sim { client, opts, kernel_version, nodes, by_name, node_writes, stats: Stats::default() }
    }

    /// The index of the node the pod is bound to, when that node is ours.
    fn node_of(&self, pod: &Pod) -> Option<usize> {
        let name = pod.spec.as_ref()?.node_name.as_deref()?;
        self.by_name.get(name).copied()
    }

    /// A slot for one of the nodes' own requests.
    async fn node_permit(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed; `None` would only mean the sim is going away.
        self.node_writes.acquire().await.ok()
    }

    /// Logs what was done since the last call, per second.
    async fn log_stats(&self, every: Duration) {
        let mut last = [0u64; 9];
        let mut at = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let s = &self.stats;
            let now = [
                &s.lease_renewals,
                &s.lease_errors,
                &s.lease_skipped,
                &s.status_reports,
                &s.status_errors,
                &s.pods_started,
                &s.pods_finished,
                &s.pods_deleted,
                &s.pod_errors,
            ]
            .map(|c| c.load(Ordering::Relaxed));
            let secs = at.elapsed().as_secs_f64().max(0.001);
            let d: Vec<u64> = now.iter().zip(last).map(|(n, l)| n - l).collect();
            tracing::info!(
                lease_renewals_per_s = format!("{:.1}", d[0] as f64 / secs),
                lease_errors = d[1],
                lease_skipped = d[2],
                status_reports = d[3],
                status_errors = d[4],
                pods_started = d[5],
                pods_finished = d[6],
                pods_deleted = d[7],
                pod_errors = d[8],
                "simulated nodes at work"
            );
            last = now;
            at = Instant::now();
        }
    }
}

/// The running kernel, for the nodes' `nodeInfo` (purely informational).
fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Registers the nodes, then heartbeats and serves their pods until the future is
/// dropped (which is how the process stops: nodes are left behind, not deleted).
/// Returns early only when the options are invalid or no node could register.
pub async fn run(client: kube::Client, opts: Options) -> Result<(), Error> {
    opts.validate()?;
    let sim = Arc::new(Sim::new(client, opts, kernel_version()));
    let started = Instant::now();
    let registered = heartbeat::register_all(&sim).await?;
    tracing::info!(
        nodes = sim.nodes.len(),
        registered,
        prefix = %sim.opts.prefix,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "simulated nodes registered"
    );
    tokio::select! {
        () = heartbeat::run(sim.clone()) => {}
        () = heartbeat::resync(sim.clone()) => {}
        () = pod_worker::run(sim.clone()) => {}
        () = sim.log_stats(Duration::from_secs(10)) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "s", "2d", "-1s", "1..2s", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_are_checked() {
        for good in ["8", "500m", "32Gi", "1.5", "0.5Gi", "100k", ".5"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "8 cores", "-1", "1.2.3", "32GB"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn options_are_validated() {
        let ok = Options { nodes: 5000, ..Options::default() };
        assert!(ok.validate().is_ok());
        assert_eq!((ok.node_in_flight(), ok.pod_in_flight()), (32, 32));
        let bad = [
            Options { nodes: 0, ..Options::default() },
            Options { nodes: ipam::MAX_NODES + 1, ..Options::default() },
            Options { prefix: "Sim".into(), ..Options::default() },
            Options { prefix: "".into(), ..Options::default() },
            Options { prefix: "a".repeat(62), nodes: 10, ..Options::default() },
            Options { cpu: "lots".into(), ..Options::default() },
            Options { memory: "32GB".into(), ..Options::default() },
            Options { pods: 0, ..Options::default() },
            Options { heartbeat: Duration::ZERO, ..Options::default() },
            Options { max_in_flight: 1, ..Options::default() },
        ];
        for o in bad {
            assert!(matches!(o.validate(), Err(Error::InvalidOption { .. })), "{o:?}");
        }
    }

    #[test]
    fn pods_are_ours_only_when_bound_to_our_nodes() {
        // A client is needed to build the shared state, but none is contacted here.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
            let client = kube::Client::try_from(config).unwrap();
            let sim = Sim::new(client, Options { nodes: 3, ..Options::default() }, String::new());
            let pod = |node: Option<&str>| -> Pod {
                serde_json::from_value(
                    serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [], "nodeName": node}}),
                )
                .unwrap()
            };
            assert_eq!(sim.node_of(&pod(Some("sim-2"))), Some(2));
            assert_eq!(sim.node_of(&pod(Some("sim-3"))), None);
            assert_eq!(sim.node_of(&pod(Some("other-0"))), None);
            assert_eq!(sim.node_of(&pod(None)), None);
            assert_eq!(sim.nodes[2].ip, Ipv4Addr::new(10, 255, 0, 3));
            assert_eq!(sim.nodes[2].pod_cidr().to_string(), "10.200.2.0/24");
        });
    }
}
