//! Pod start latency: create → Running seen through a watch, for 1, 10 and 50 pods
//! created at once (image present), side by side with a bare `runc run --detach` of
//! the same image and command (all at once, and for bursts larger than the CPUs also
//! one per CPU at a time, as the agent takes them, `agent::turns`); and the agent's
//! idle RSS and RSS per running pod.
//!
//! Needs root, runc, docker-registry and busybox-static. Run with
//! `cargo bench -p agent --bench pod_start`. The binary plays three parts: the
//! orchestrator (no arguments), the agent process (`agent KUBECONFIG DATA NODE`, so
//! that its memory is measured alone), and the runtime's log shim (`shim …`).

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use runtime::spec::ContainerConfig;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: &[usize] = &[1, 10, 50];

/// The allocator `rudder` runs the agent with, so that memory figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// How many times the single-pod round runs.
const SINGLE_REPEATS: usize = 10;
/// How many times the 10-pod round runs (its p50 is then over 50 starts).
const TEN_REPEATS: usize = 5;

async fn client(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("client config");
    kube::Client::try_from(config).expect("client")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time used so far, in ms: the whole machine's busy time (`/proc/stat`, in ticks
/// of 10 ms, so a round's figure is ±10 ms) and that of the agent, the bench process
/// and the shims (their own threads, not their children).
#[derive(Clone, Copy, Default)]
struct Cpu {
    machine: f64,
    agent: f64,
    bench: f64,
    /// The live log shims' own (not their runc's): a new round's.
    shims: f64,
    /// The shim launcher's (its forks).
    launcher: f64,
}

impl Cpu {
    /// `shims`: also the live shims' (only a round's end needs them).
    fn now(agent_pid: u32, shims: bool) -> Cpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<f64> =
            stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let machine = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let (agent, bench) = (process_ms(agent_pid), process_ms(std::process::id()));
        // Looked for last: the scan of /proc is the bench's own work, not the round's.
        let shims: f64 = if shims { shim_pids().into_iter().map(process_ms).sum() } else { 0.0 };
        let launcher = named("shim-launcher").into_iter().map(process_ms).sum();
        Cpu { machine: machine * 10.0, agent, bench, shims, launcher }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            machine: self.machine - before.machine,
            agent: self.agent - before.agent,
            bench: self.bench - before.bench,
            // Shims end with their containers: those of the round are all new.
            shims: self.shims,
            launcher: self.launcher - before.launcher,
        }
    }

    fn add(&mut self, other: Cpu) {
        self.machine += other.machine;
        self.agent += other.agent;
        self.bench += other.bench;
        self.shims += other.shims;
        self.launcher += other.launcher;
    }
}

/// The CPU time a process's live threads have run, in ms (`se.sum_exec_runtime` of
/// `/proc/PID/task/*/sched`: exact, where `/proc/PID/stat` counts whole ticks of 10 ms
/// and a shim's ~2 ms shows as 0). Threads that ended are not counted.
fn process_ms(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("sched")).ok())
        .filter_map(|text| {
            let line = text.lines().find(|l| l.starts_with("se.sum_exec_runtime"))?;
            line.rsplit(':').next()?.trim().parse::<f64>().ok()
        })
        .sum()
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "shim") {
        std::process::exit(runtime::shim::main(args[1..].to_vec()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    if args.first().is_some_and(|a| a == "agent") {
        let s: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        rt.block_on(run_agent(&s[1], &s[2], &s[3]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("pod_start needs root (it mounts filesystems and runs runc)");
        std::process::exit(1);
    }
    rt.block_on(orchestrate());
}

async fn run_agent(kubeconfig_path: &str, data: &str, node: &str) {
    // `POD_START_LOG=FILE`: the agent's debug log (each start's steps), for finding
    // where the time goes.
    if let Some(path) = std::env::var_os("POD_START_LOG") {
        let file = std::fs::File::create(path).expect("log file");
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("agent=debug,runtime=debug"))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let text = std::fs::read_to_string(kubeconfig_path).expect("kubeconfig");
    let client = client(&text).await;
    let mut config = agent::Config::new(node, data.into()).expect("config");
    config.node_ip = Some("127.0.0.1".parse().expect("ip"));
    let agent = agent::Agent::new(client, config, None).expect("agent");
    agent.run(std::future::pending()).await.expect("agent run");
}

async fn orchestrate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_path_buf();
    // The API server, in-process.
    let store = store::embedded::EmbeddedStore::open(&data.join("state.db"), store::embedded::Options::default())
        .expect("store");
    // No controllers run here, so the pods' default tolerations are all the
    // toleration time does: upstream's 300 s, as before.
    let config = apiserver::Config { default_toleration_seconds: 300, ..apiserver::Config::local(data.join("server")) };
    let server = apiserver::ApiServer::start(config, Arc::new(store)).await.expect("api server");
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let kc = apiserver::pki::kubeconfig(&url, &server.pki.ca_pem, &server.pki.admin_token);
    let kc_path = data.join("kubeconfig");
    std::fs::write(&kc_path, &kc).expect("kubeconfig");
    let client = client(&kc).await;

    // The image, in a real registry.
    let registry = runtime::testing::Registry::start();
    let image = runtime::testing::busybox_image();
    registry.push("bench/busybox", "v1", &image).await.expect("push");
    let image_ref = format!("{}/bench/busybox:v1", registry.host);

    // The agent, as a process of its own.
    let agent_data = data.join("agent");
    let node = "bench-node";
    let exe = std::env::current_exe().expect("exe");
    let agent = Command::new(&exe)
        .arg("agent")
        .arg(&kc_path)
        .arg(&agent_data)
        .arg(node)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent process");
    // Containers, mounts and the agent go when this does, also on a panic.
    let mut guard =
        Guard { agent, agent_data: agent_data.clone(), bare_root: data.join("runc-bare"), data: data.clone() };
    let agent_pid = guard.agent.id();
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.get_opt(node).await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the agent did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Pull once (the figures are for an image that is present).
    run_round(&pods, node, &image_ref, 1, "warmup", agent_pid).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(agent_pid);
    // `POD_START_DUMP=DIR`: the idle agent's memory map and status, for finding where
    // its RSS goes.
    if let Some(dir) = std::env::var_os("POD_START_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        for f in ["smaps", "smaps_rollup", "status"] {
            let _ = std::fs::copy(format!("/proc/{agent_pid}/{f}"), dir.join(f));
        }
    }

    let mut bare = Vec::new();
    let bare_root = data.join("runc-bare");
    let store_images = runtime::ImageStore::open(&agent_data.join("images")).expect("store");
    let pulled = store_images.list().expect("list").into_iter().next().expect("the pulled image");
    let snapshots = runtime::snapshot::Snapshotter::open(&agent_data.join("snapshots")).expect("snapshots");
    let layers = snapshots.prepare(&store_images, &pulled).expect("layers");
    let image_config = store_images.config(&pulled).expect("config").config.unwrap_or_default();

    println!(
        "pod start latency (create → Running seen through a watch), image present; bare `runc run --detach` of the same image and command"
    );
    println!(
        "{:>5} {:>12} {:>12} {:>14} {:>14} {:>8}   CPU ms per round, create → last Running: machine (agent / API server + bench / shims and launcher / rest) | bare machine",
        "pods", "agent p50", "agent p99", "bare runc p50", "bare runc p99", "ratio",
    );
    let (mut per_pod_rss, mut shim_rss) = (0.0, None);
    // The agent starts one container per CPU at a time (`agent::turns`); the bare
    // side is run both ways: all at once, and in turns as the agent does.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    for &n in ROUNDS {
        // One start is one sample: repeat the single pod (both sides, in turn) so
        // that its p50 is a median, not whatever one run happened to take.
        let repeats = match n {
            1 => SINGLE_REPEATS,
            10 => TEN_REPEATS,
            _ => 1,
        };
        let (mut ours, mut theirs, mut in_turns) = (Vec::new(), Vec::new(), Vec::new());
        let (mut our_cpu, mut bare_cpu) = (Cpu::default(), Cpu::default());
        for rep in 0..repeats {
            let (times, cpu) = run_round(&pods, node, &image_ref, n, &format!("r{n}-{rep}"), agent_pid).await;
            ours.extend(times);
            our_cpu.add(cpu);
            if n == 50 {
                let running = rss_kib(agent_pid);
                per_pod_rss = (running.saturating_sub(idle)) as f64 / n as f64;
                shim_rss = shim_rss_kib();
            }
            delete_all(&pods).await;
            let (times, cpu) = bare_round(&bare_root, &data, &layers, &image_config, n, rep, None).await;
            theirs.extend(times);
            bare_cpu.add(cpu);
            if n > cpus {
                let (times, _) = bare_round(&bare_root, &data, &layers, &image_config, n, rep, Some(cpus)).await;
                in_turns.extend(times);
            }
        }
        ours.sort();
        theirs.sort();
        in_turns.sort();
        let (o50, o99, b50, b99) =
            (percentile(&ours, 0.5), percentile(&ours, 0.99), percentile(&theirs, 0.5), percentile(&theirs, 0.99));
        let turns = if in_turns.is_empty() {
            String::new()
        } else {
            let (t50, t99) = (percentile(&in_turns, 0.5), percentile(&in_turns, 0.99));
            format!(
                "   bare {cpus} at a time: p50 {:.1}ms p99 {:.1}ms, ratio {:.2}x",
                ms(t50),
                ms(t99),
                o50.as_secs_f64() / t50.as_secs_f64().max(1e-9)
            )
        };
        let per = |x: f64| x / repeats as f64;
        println!(
            "{n:>5} {:>10.1}ms {:>10.1}ms {:>12.1}ms {:>12.1}ms {:>7.2}x   {:.0} ({:.0} / {:.0} / {:.0} / {:.0}) | {:.0}{turns}",
            ms(o50),
            ms(o99),
            ms(b50),
            ms(b99),
            o50.as_secs_f64() / b50.as_secs_f64().max(1e-9),
            per(our_cpu.machine),
            per(our_cpu.agent),
            per(our_cpu.bench),
            per(our_cpu.shims + our_cpu.launcher),
            per(our_cpu.machine - our_cpu.agent - our_cpu.bench - our_cpu.shims - our_cpu.launcher),
            per(bare_cpu.machine),
        );
        bare.extend(theirs);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("agent idle RSS: {:.1} MiB", idle as f64 / 1024.0);
    println!("agent RSS per running pod (50 pods): {:.1} KiB", per_pod_rss);
    if let Some((rss, pss)) = shim_rss {
        println!("log shim per container (50 pods): RSS {rss:.1} KiB, PSS {pss:.1} KiB");
    }
    let _ = guard.agent.kill();
    drop(guard);
    server.shutdown().await;
}

/// The shims' mean RSS and PSS (their pages shared with each other and the launcher
/// counted once over all), in KiB.
fn shim_rss_kib() -> Option<(f64, f64)> {
    let pids = shim_pids();
    let rss: u64 = pids.iter().map(|&pid| rss_kib(pid)).sum();
    let pss: u64 = pids
        .iter()
        .map(|pid| {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            let line = rollup.lines().find_map(|l| l.strip_prefix("Pss:")).unwrap_or("");
            line.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0)
        })
        .sum();
    let n = pids.len() as f64;
    (!pids.is_empty()).then(|| (rss as f64 / n, pss as f64 / n))
}

/// The log shims running now: this binary started as `shim …` (by exec, or forked by
/// the launcher, `shim --launcher`, which is not one).
fn shim_pids() -> Vec<u32> {
    processes()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmd);
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            text.contains("pod_start") && text.contains("\0shim\0") && comm.trim_end() != "shim-launcher"
        })
        .collect()
}

/// The processes whose name (`/proc/PID/comm`) is `name`.
fn named(name: &str) -> Vec<u32> {
    processes()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name))
        .collect()
}

fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
}

/// `n` pods created at once: each one's time from its create to Running, and the CPU
/// used from the first create to the last Running.
async fn run_round(
    pods: &Api<Pod>,
    node: &str,
    image: &str,
    n: usize,
    prefix: &str,
    agent_pid: u32,
) -> (Vec<Duration>, Cpu) {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_api = pods.clone();
    let watch = tokio::spawn(async move {
        let stream = watcher::watcher(watch_api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && let Some(name) = p.metadata.name
            {
                let _ = tx.send((name, Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut created = HashMap::new();
    let cpu_before = Cpu::now(agent_pid, false);
    let creates = names.iter().map(|name| {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "1000"]
            }]}
        }))
        .expect("pod");
        let pods = pods.clone();
        async move {
            let t = Instant::now();
            mark("create", pod.metadata.name.as_deref().unwrap_or_default());
            pods.create(&PostParams::default(), &pod).await.expect("create");
            (pod.metadata.name.unwrap_or_default(), t)
        }
    });
    for (name, t) in futures_util::future::join_all(creates).await {
        created.insert(name, t);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((name, at))) => {
                if let Some(t) = created.get(&name)
                    && seen.insert(name.clone())
                {
                    mark("running", &name);
                    out.push(at.saturating_duration_since(*t));
                }
            }
            _ => panic!("only {} of {n} pods Running in time", seen.len()),
        }
    }
    let cpu = Cpu::now(agent_pid, true).since(cpu_before);
    watch.abort();
    out.sort();
    if prefix == "warmup" {
        delete_all(pods).await;
    }
    (out, cpu)
}

/// With `POD_START_LOG=FILE`, the wall-clock times at which the bench created each
/// pod and saw it Running go to `FILE.bench`, to line up with the agent's log.
fn mark(what: &str, name: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("POD_START_LOG") else { return };
    let mut path = std::path::PathBuf::from(path).into_os_string();
    path.push(".bench");
    let now = runtime::logfile::rfc3339_nanos(std::time::SystemTime::now());
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{now} {what} {name}");
    }
}

async fn delete_all(pods: &Api<Pod>) {
    let list = pods.list(&Default::default()).await.expect("list");
    for p in list.items {
        let name = p.metadata.name.unwrap_or_default();
        let _ = pods.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods.list(&Default::default()).await.expect("list").items.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` bare `runc run --detach` at once, rootfs already mounted: each one's time to
/// return (the process is running then), and the machine's CPU until the last did.
async fn bare_round(
    root: &std::path::Path,
    data: &std::path::Path,
    layers: &[std::path::PathBuf],
    image: &runtime::oci::ImageConfig,
    n: usize,
    rep: usize,
    turns: Option<usize>,
) -> (Vec<Duration>, Cpu) {
    let tag = if turns.is_some() { "t" } else { "b" };
    let mut bundles = Vec::new();
    for i in 0..n {
        let dir = data.join("bare").join(format!("{tag}{n}-{rep}-{i}"));
        std::fs::create_dir_all(&dir).expect("bundle dir");
        let rootfs = runtime::snapshot::mount_rootfs(layers, &dir).expect("rootfs");
        let config = ContainerConfig {
            rootfs,
            image: image.clone(),
            command: vec!["sleep".into(), "1000".into()],
            namespaces: runtime::spec::Namespaces { network: runtime::spec::NamespaceMode::Host, ..Default::default() },
            ..ContainerConfig::default()
        };
        runtime::spec::generate(&config).expect("spec").write(&dir).expect("write");
        bundles.push((format!("bare{tag}{n}-{rep}-{i}"), dir));
    }
    // A quiet moment first, as the agent's round has before its creates: `runc run`
    // moves its init into a cgroup under the kernel's cgroup attach lock, which
    // waits an RCU grace period (~10–13 ms here) unless it was taken in the last
    // ~20 ms, and the agent's teardown of the previous round just took it. Without
    // the pause the bare side ran in that hot window and skipped the wait most of
    // the time (BENCHMARKS.md, "Pod start"); with it both sides start cold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = Cpu::now(0, false);
    mark("bare-start", &format!("{tag}{n}-{rep}"));
    // With `turns`, as the agent runs them (`agent::turns`): that many at once, in
    // order, each one's time counted from the round's start (its wait included).
    let in_turns = turns.is_some();
    let turns = tokio::sync::Semaphore::new(turns.unwrap_or(n).max(1));
    let began = Instant::now();
    let runs = bundles.iter().map(|(id, dir)| {
        let root = root.to_path_buf();
        let id = id.clone();
        let dir = dir.clone();
        let turns = &turns;
        async move {
            let _turn = turns.acquire().await.expect("turn");
            let t = if in_turns { began } else { Instant::now() };
            // The container inherits runc's stdio: no pipes, or waiting for them
            // would wait for the container.
            let status = tokio::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["run", "--detach", "--bundle"])
                .arg(&dir)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .expect("runc");
            assert!(status.success(), "bare runc run of {id} failed");
            t.elapsed()
        }
    });
    let mut out = futures_util::future::join_all(runs).await;
    let cpu = Cpu::now(0, false).since(cpu_before);
    mark("bare-end", &format!("{tag}{n}-{rep}"));
    for (id, dir) in &bundles {
        let _ = Command::new("runc").arg("--root").arg(root).args(["delete", "--force", id]).status();
        let _ = runtime::snapshot::remove_rootfs(dir);
    }
    out.sort();
    (out, cpu)
}

struct Guard {
    agent: std::process::Child,
    agent_data: std::path::PathBuf,
    bare_root: std::path::PathBuf,
    data: std::path::PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        cleanup(&self.agent_data, &self.bare_root, &self.data);
    }
}

fn cleanup(agent_data: &std::path::Path, bare_root: &std::path::Path, data: &std::path::Path) {
    for root in [agent_data.join("run").join("runc"), bare_root.to_path_buf()] {
        let out = Command::new("runc").arg("--root").arg(&root).args(["list", "-q"]).output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", id]).status();
            }
        }
    }
    let prefix = data.display().to_string();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    for m in mounts.iter().rev() {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
}
