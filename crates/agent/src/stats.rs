//! Resource usage for `kubectl top`: the kubelet's `GET /metrics/resource`, in the
//! Prometheus text format metrics-server scrapes.
//!
//! The node's figures come from `/proc` (`/proc/stat` busy time and `/proc/meminfo`),
//! which reads the same on cgroup v1, v2 and inside a container. Each running
//! container's come from its own cgroup, found through `/proc/<pid>/cgroup` of its
//! init process: `cgroupsPath` is relative (see `cgroups.rs`) or unset, so runc puts
//! the container under its own cgroup and only the process knows where. CPU is
//! the cumulative usage (cgroup v2 `cpu.stat` `usage_usec`, v1 `cpuacct.usage`), and
//! memory the working set as cAdvisor computes it: usage minus inactive file pages.
//!
//! The counters are cumulative; whoever scrapes turns two of them into a rate over
//! the window between their timestamps (see [`cpu_rate`]).

use crate::container::{ANNOTATION_CONTAINER_NAME, ANNOTATION_POD_NAME, ANNOTATION_POD_NAMESPACE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `/proc/stat` counts in USER_HZ, which the kernel fixes at 100 for user space
/// whatever its internal tick rate.
const USER_HZ: u64 = 100;

/// The content type the kubelet answers `/metrics/resource` with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: no {what}")]
    Parse { path: PathBuf, what: &'static str },
    #[error("process {pid} has no cgroup we can read")]
    NoCgroup { pid: u32 },
}

/// CPU and memory at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time, in nanoseconds.
    pub cpu_ns: u64,
    /// Working set, in bytes.
    pub working_set: u64,
}

/// A container's cgroup directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// The unified hierarchy: one directory with `cpu.stat` and `memory.*`.
    V2(PathBuf),
    /// Separate `cpuacct` and `memory` hierarchies.
    V1 { cpuacct: PathBuf, memory: PathBuf },
}

/// Where the host's files are; tests point these at a temporary directory.
#[derive(Debug, Clone)]
pub struct Host {
    pub proc: PathBuf,
    pub cgroup: PathBuf,
}

impl Default for Host {
    fn default() -> Host {
        Host { proc: "/proc".into(), cgroup: "/sys/fs/cgroup".into() }
    }
}

/// The node's busy CPU time from `/proc/stat`'s `cpu` line: user, nice, system, irq,
/// softirq and steal (idle and iowait are not busy; guest time is already in user).
pub fn node_cpu_ns(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    if fields.len() < 4 {
        return None;
    }
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(busy.saturating_mul(1_000_000_000 / USER_HZ))
}

/// The node's working set from `/proc/meminfo`, as cAdvisor's root container has it:
/// memory in use (total minus free) less the inactive file cache.
pub fn node_working_set(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.split(':').next() == Some(key))?;
        line.split(':').nth(1)?.split_whitespace().next()?.parse::<u64>().ok().map(|v| v * 1024)
    };
    let (total, free) = (kib("MemTotal")?, kib("MemFree")?);
    let inactive = kib("Inactive(file)").unwrap_or(0);
    Some(total.saturating_sub(free).saturating_sub(inactive))
}

fn under(mount: &Path, hierarchy: &str, path: &str) -> PathBuf {
    // `Path::join` with an absolute path would replace the mount point.
    mount.join(hierarchy).join(path.trim_start_matches('/'))
}

/// A process's cgroup from `/proc/<pid>/cgroup`: the `0::` line on a unified host,
/// the `cpuacct` and `memory` lines otherwise (a hybrid host has a `0::` line too,
/// but its controllers are on v1).
pub fn cgroup_of(proc_cgroup: &str, mount: &Path, unified: bool) -> Option<Cgroup> {
    let mut lines = proc_cgroup.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ':');
        Some((parts.next()?, parts.next()?, parts.next()?))
    });
    if unified {
        return lines.find(|(id, _, _)| *id == "0").map(|(_, _, path)| Cgroup::V2(under(mount, "", path)));
    }
    let (mut cpuacct, mut memory) = (None, None);
    for (_, controllers, path) in lines {
        let list: Vec<&str> = controllers.split(',').collect();
        // The hierarchy's directory is named after its controllers ("cpu,cpuacct"),
        // usually with a symlink per controller too.
        if list.contains(&"cpuacct") {
            cpuacct = Some(under(mount, controllers, path));
        }
        if list.contains(&"memory") {
            memory = Some(under(mount, controllers, path));
        }
    }
    Some(Cgroup::V1 { cpuacct: cpuacct?, memory: memory? })
}

/// A value from a flat keyed file (`cpu.stat`, `memory.stat`).
pub fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(key)).then(|| f.next()?.parse().ok()).flatten()
    })
}

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Read { path: path.to_path_buf(), source })
}

fn number(path: &Path) -> Result<u64, StatsError> {
    read(path)?.trim().parse().map_err(|_| StatsError::Parse { path: path.to_path_buf(), what: "number" })
}

fn keyed(path: &Path, key: &'static str) -> Result<u64, StatsError> {
    flat_keyed(&read(path)?, key).ok_or(StatsError::Parse { path: path.to_path_buf(), what: key })
}

impl Host {
    /// The node's usage.
    pub fn node(&self) -> Result<Usage, StatsError> {
        let stat = self.proc.join("stat");
        let cpu_ns = node_cpu_ns(&read(&stat)?).ok_or(StatsError::Parse { path: stat, what: "cpu line" })?;
        let meminfo = self.proc.join("meminfo");
        let working_set =
            node_working_set(&read(&meminfo)?).ok_or(StatsError::Parse { path: meminfo, what: "MemTotal" })?;
        Ok(Usage { cpu_ns, working_set })
    }

    /// Whether the host mounts the unified (v2 only) hierarchy.
    pub fn unified(&self) -> bool {
        self.cgroup.join("cgroup.controllers").exists()
    }

    /// The cgroup of a running process.
    pub fn cgroup(&self, pid: u32) -> Result<Cgroup, StatsError> {
        let text = read(&self.proc.join(pid.to_string()).join("cgroup"))?;
        cgroup_of(&text, &self.cgroup, self.unified()).ok_or(StatsError::NoCgroup { pid })
    }

    /// A cgroup's usage.
    pub fn usage(&self, cgroup: &Cgroup) -> Result<Usage, StatsError> {
        match cgroup {
            Cgroup::V2(dir) => {
                let cpu_ns = keyed(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000);
                let current = number(&dir.join("memory.current"))?;
                let inactive = keyed(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
                Ok(Usage { cpu_ns, working_set: current.saturating_sub(inactive) })
            }
            Cgroup::V1 { cpuacct, memory } => {
                let cpu_ns = number(&cpuacct.join("cpuacct.usage"))?;
                let current = number(&memory.join("memory.usage_in_bytes"))?;
                let inactive = keyed(&memory.join("memory.stat"), "total_inactive_file").unwrap_or(0);
                Ok(Usage { cpu_ns, working_set: current.saturating_sub(inactive) })
            }
        }
    }
}

/// Average CPU use between two readings of a cumulative counter, in nanocores
/// (billionths of a core). `None` when the counter went back (the container was
/// replaced) or no time passed.
pub fn cpu_rate(earlier: (i64, u64), later: (i64, u64)) -> Option<u64> {
    let (t0, c0) = earlier;
    let (t1, c1) = later;
    let window_ms = t1.checked_sub(t0).filter(|w| *w > 0)?;
    let used = c1.checked_sub(c0)?;
    // ns of CPU per second of wall time = nanocores; u128 so large counters do not
    // overflow on the way.
    u64::try_from(u128::from(used) * 1000 / window_ms as u128).ok()
}

/// One running container's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub usage: Usage,
}

/// Everything `/metrics/resource` reports, read at `timestamp_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub timestamp_ms: i64,
    pub node: Option<Usage>,
    pub containers: Vec<ContainerUsage>,
    /// Some container could not be read (it may just have stopped).
    pub scrape_error: bool,
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn seconds(ns: u64) -> String {
    // Whole seconds and nine decimals: exact, and what Prometheus parsers accept.
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The kubelet's exposition of a snapshot, each sample stamped with its time.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let t = s.timestamp_ms;
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}");
    };
    let labels = |c: &ContainerUsage| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            escape(&c.container),
            escape(&c.namespace),
            escape(&c.pod)
        )
    };
    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    );
    for c in &s.containers {
        let _ = writeln!(out, "container_cpu_usage_seconds_total{{{}}} {} {t}", labels(c), seconds(c.usage.cpu_ns));
    }
    header(&mut out, "container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes");
    for c in &s.containers {
        let _ = writeln!(out, "container_memory_working_set_bytes{{{}}} {} {t}", labels(c), c.usage.working_set);
    }
    if let Some(n) = s.node {
        header(
            &mut out,
            "node_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the node in core-seconds",
        );
        let _ = writeln!(out, "node_cpu_usage_seconds_total {} {t}", seconds(n.cpu_ns));
        header(&mut out, "node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes");
        let _ = writeln!(out, "node_memory_working_set_bytes {} {t}", n.working_set);
    }
    header(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    );
    let _ = writeln!(out, "resource_scrape_error {}", u8::from(s.scrape_error));
    out
}

/// Namespace, pod and container name of a container, from the annotations the agent
/// put in its bundle's `config.json`.
pub fn identity(config_json: &[u8]) -> Option<(String, String, String)> {
    let spec: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    let a = spec.get("annotations")?;
    let get = |k: &str| a.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
    Some((get(ANNOTATION_POD_NAMESPACE)?, get(ANNOTATION_POD_NAME)?, get(ANNOTATION_CONTAINER_NAME)?))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Reads the node and every running container the runtime knows of.
pub async fn collect(runtime: &dyn runtime::Runtime, host: Host) -> Snapshot {
    let listed = match runtime.list().await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "stats: listing containers failed");
            Vec::new()
        }
    };
    let running: Vec<(u32, PathBuf)> = listed
        .into_iter()
        .filter(|c| c.status == runtime::Status::Running && c.pid > 0)
        .map(|c| (c.pid, c.bundle))
        .collect();
    let read = move || {
        let timestamp_ms = now_ms();
        let node = host.node().map_err(|e| tracing::debug!(error = %e, "stats: node usage")).ok();
        let mut snapshot = Snapshot { timestamp_ms, node, ..Snapshot::default() };
        for (pid, bundle) in running {
            // Not ours (no pod annotations): nothing to report.
            let Some((namespace, pod, container)) =
                std::fs::read(bundle.join("config.json")).ok().as_deref().and_then(identity)
            else {
                continue;
            };
            match host.cgroup(pid).and_then(|cg| host.usage(&cg)) {
                Ok(usage) => snapshot.containers.push(ContainerUsage { namespace, pod, container, usage }),
                Err(e) => {
                    tracing::debug!(error = %e, %pod, %container, "stats: container usage");
                    snapshot.scrape_error = true;
                }
            }
        }
        snapshot
            .containers
            .sort_by(|a, b| (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container)));
        snapshot
    };
    tokio::task::spawn_blocking(read).await.unwrap_or_default()
}

/// `GET /metrics/resource` on the kubelet port.
pub async fn response(runtime: &dyn runtime::Runtime) -> http::Response<crate::server::Body> {
    use http_body_util::BodyExt;
    let text = render(&collect(runtime, Host::default()).await);
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)).boxed_unsync());
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(CONTENT_TYPE));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "cpu  100 20 30 4000 50 6 7 8 9 10\ncpu0 50 10 15 2000 25 3 3 4 4 5\nintr 1 2 3\n";

    #[test]
    fn node_cpu_is_busy_time() {
        // user+nice+system+irq+softirq+steal = 100+20+30+6+7+8 = 171 ticks of 10 ms.
        assert_eq!(node_cpu_ns(PROC_STAT), Some(1_710_000_000));
        assert_eq!(node_cpu_ns("cpu0 1 2 3 4\n"), None);
        assert_eq!(node_cpu_ns("cpu 1 x 3 4\n"), None);
        assert_eq!(node_cpu_ns("cpu 1 2\n"), None);
        // Old kernels had only four fields.
        assert_eq!(node_cpu_ns("cpu 1 2 3 4\n"), Some(60_000_000));
    }

    #[test]
    fn node_memory_is_used_minus_inactive_file() {
        let meminfo =
            "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable: 700 kB\nInactive(file):  300 kB\n";
        assert_eq!(node_working_set(meminfo), Some(500 * 1024));
        assert_eq!(node_working_set("MemTotal: 10 kB\nMemFree: 4 kB\n"), Some(6 * 1024));
        assert_eq!(node_working_set("MemFree: 4 kB\n"), None);
        assert_eq!(node_working_set("MemTotal: 10 kB\nMemFree: 4 kB\nInactive(file): 99 kB\n"), Some(0));
    }

    #[test]
    fn cgroups_are_found_on_both_hierarchies() {
        let mount = Path::new("/sys/fs/cgroup");
        let v2 = "0::/user.slice/runc-abc\n";
        assert_eq!(cgroup_of(v2, mount, true), Some(Cgroup::V2("/sys/fs/cgroup/user.slice/runc-abc".into())));
        let v1 = "12:pids:/x\n4:memory:/process_api/abc/c1\n3:cpu,cpuacct:/abc/c1\n0::/\n";
        assert_eq!(
            cgroup_of(v1, mount, false),
            Some(Cgroup::V1 {
                cpuacct: "/sys/fs/cgroup/cpu,cpuacct/abc/c1".into(),
                memory: "/sys/fs/cgroup/memory/process_api/abc/c1".into(),
            })
        );
        assert_eq!(cgroup_of("4:memory:/a\n", mount, false), None);
        assert_eq!(cgroup_of("1:name=systemd:/\n", mount, true), None);
        assert_eq!(cgroup_of("garbage", mount, false), None);
    }

    #[test]
    fn flat_keyed_files() {
        let cpu = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n";
        assert_eq!(flat_keyed(cpu, "usage_usec"), Some(123456));
        assert_eq!(flat_keyed(cpu, "usage"), None);
        assert_eq!(flat_keyed("inactive_file x\n", "inactive_file"), None);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn usage_from_cgroup_files() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host { proc: dir.path().join("proc"), cgroup: dir.path().join("cg") };
        write(&host.proc.join("stat"), PROC_STAT);
        write(&host.proc.join("meminfo"), "MemTotal: 1000 kB\nMemFree: 200 kB\nInactive(file): 300 kB\n");
        assert_eq!(host.node().unwrap(), Usage { cpu_ns: 1_710_000_000, working_set: 500 * 1024 });

        // cgroup v1, as on this kind of host.
        write(&host.proc.join("42/cgroup"), "4:memory:/c1\n2:cpuacct:/c1\n");
        write(&host.cgroup.join("cpuacct/c1/cpuacct.usage"), "5000000000\n");
        write(&host.cgroup.join("memory/c1/memory.usage_in_bytes"), "10485760\n");
        write(&host.cgroup.join("memory/c1/memory.stat"), "inactive_file 1\ntotal_inactive_file 2097152\n");
        let cg = host.cgroup(42).unwrap();
        assert_eq!(host.usage(&cg).unwrap(), Usage { cpu_ns: 5_000_000_000, working_set: 8 * 1024 * 1024 });

        // cgroup v2 once the unified hierarchy is mounted.
        write(&host.cgroup.join("cgroup.controllers"), "cpu memory\n");
        write(&host.proc.join("43/cgroup"), "0::/pod/c2\n");
        write(&host.cgroup.join("pod/c2/cpu.stat"), "usage_usec 2500\n");
        write(&host.cgroup.join("pod/c2/memory.current"), "4096000\n");
        write(&host.cgroup.join("pod/c2/memory.stat"), "anon 1\ninactive_file 96000\n");
        let cg = host.cgroup(43).unwrap();
        assert_eq!(host.usage(&cg).unwrap(), Usage { cpu_ns: 2_500_000, working_set: 4_000_000 });

        assert!(matches!(host.cgroup(44), Err(StatsError::Read { .. })));
        std::fs::remove_file(host.cgroup.join("pod/c2/cpu.stat")).unwrap();
        assert!(host.usage(&cg).is_err());
    }

    #[test]
    fn rates_over_a_window() {
        // Half a core for two seconds.
        assert_eq!(cpu_rate((1_000, 1_000_000_000), (3_000, 2_000_000_000)), Some(500_000_000));
        assert_eq!(cpu_rate((1_000, 5), (1_000, 10)), None, "no time passed");
        assert_eq!(cpu_rate((1_000, 10), (2_000, 5)), None, "the counter went back");
        assert_eq!(cpu_rate((0, 0), (1, u64::MAX)), None, "more than u64 nanocores");
    }

    #[test]
    fn renders_the_kubelet_exposition() {
        let s = Snapshot {
            timestamp_ms: 1_700_000_000_123,
            node: Some(Usage { cpu_ns: 12_500_000_000, working_set: 1 << 30 }),
            containers: vec![ContainerUsage {
                namespace: "default".into(),
                pod: "we\"b".into(),
                container: "app".into(),
                usage: Usage { cpu_ns: 1_000_000_007, working_set: 4096 },
            }],
            scrape_error: false,
        };
        let text = render(&s);
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"we\\\"b\"} 1.000000007 1700000000123\n"
        ), "{text}");
        assert!(text.contains("container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"we\\\"b\"} 4096 1700000000123\n"), "{text}");
        assert!(text.contains("node_cpu_usage_seconds_total 12.500000000 1700000000123\n"), "{text}");
        assert!(text.contains("node_memory_working_set_bytes 1073741824 1700000000123\n"), "{text}");
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\n"), "{text}");
        assert!(text.ends_with("resource_scrape_error 0\n"), "{text}");
        let bare = render(&Snapshot::default());
        assert!(!bare.contains("node_cpu_usage_seconds_total "), "{bare}");
    }

    #[test]
    fn containers_are_known_by_their_annotations() {
        let config = br#"{"annotations":{"io.kubernetes.pod.namespace":"ns","io.kubernetes.pod.name":"web","io.kubernetes.container.name":"app"}}"#;
        assert_eq!(identity(config), Some(("ns".into(), "web".into(), "app".into())));
        assert_eq!(identity(br#"{"annotations":{"io.kubernetes.pod.name":"web"}}"#), None);
        assert_eq!(identity(b"not json"), None);
    }

    #[tokio::test]
    async fn collects_running_containers_only() {
        use runtime::Runtime;
        let dir = tempfile::tempdir().unwrap();
        let host = Host { proc: dir.path().join("proc"), cgroup: dir.path().join("cg") };
        write(&host.proc.join("stat"), PROC_STAT);
        write(&host.proc.join("meminfo"), "MemTotal: 1000 kB\nMemFree: 200 kB\n");
        let rt = runtime::recording::RecordingRuntime::new();
        let pod_config = |name: &str| {
            format!(
                r#"{{"annotations":{{"io.kubernetes.pod.namespace":"ns","io.kubernetes.pod.name":"web","io.kubernetes.container.name":"{name}"}}}}"#
            )
        };
        // The recording runtime numbers pids from 1000 in creation order.
        for (id, config, start) in [
            ("app", pod_config("app"), true),
            ("created", pod_config("created"), false),
            ("foreign", "{}".to_string(), true),
            ("gone", pod_config("gone"), true),
        ] {
            let bundle = dir.path().join(id);
            write(&bundle.join("config.json"), &config);
            let opts = runtime::CreateOptions { bundle, ..Default::default() };
            rt.create(id, &opts).await.unwrap();
            if start {
                rt.start(id).await.unwrap();
            }
        }
        for pid in [1000, 1001, 1002] {
            write(&host.proc.join(format!("{pid}/cgroup")), &format!("3:cpuacct:/c{pid}\n4:memory:/c{pid}\n"));
            write(&host.cgroup.join(format!("cpuacct/c{pid}/cpuacct.usage")), "7\n");
            write(&host.cgroup.join(format!("memory/c{pid}/memory.usage_in_bytes")), "8192\n");
        }
        let s = collect(&rt, host.clone()).await;
        assert_eq!(s.node.map(|n| n.working_set), Some(800 * 1024));
        assert_eq!(
            s.containers,
            vec![ContainerUsage {
                namespace: "ns".into(),
                pod: "web".into(),
                container: "app".into(),
                usage: Usage { cpu_ns: 7, working_set: 8192 },
            }]
        );
        assert!(s.scrape_error, "the container without cgroup files is an error");
        assert!(s.timestamp_ms > 0);
    }
}
