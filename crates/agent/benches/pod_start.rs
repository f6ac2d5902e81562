//! Pod start latency: create → Running seen through a watch, for 1, 10 and 50 pods
//! created at once (image present), side by side with a bare `runc run --detach` of
//! the same image and command; and the agent's idle RSS and RSS per running pod.
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

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "shim") {
        let code = match runtime::shim::ShimArgs::parse(args[1..].to_vec()) {
            Ok(a) => runtime::shim::run(&a),
            Err(e) => {
                eprintln!("{e}");
                2
            }
        };
        std::process::exit(code);
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
    run_round(&pods, node, &image_ref, 1, "warmup").await;
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
        "{:>5} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "pods", "agent p50", "agent p99", "bare runc p50", "bare runc p99", "ratio"
    );
    let mut per_pod_rss = 0.0;
    for &n in ROUNDS {
        // One start is one sample: repeat the single pod (both sides, in turn) so
        // that its p50 is a median, not whatever one run happened to take.
        let repeats = if n == 1 { SINGLE_REPEATS } else { 1 };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for rep in 0..repeats {
            ours.extend(run_round(&pods, node, &image_ref, n, &format!("r{n}-{rep}")).await);
            if n == 50 {
                let running = rss_kib(agent_pid);
                per_pod_rss = (running.saturating_sub(idle)) as f64 / n as f64;
            }
            delete_all(&pods).await;
            theirs.extend(bare_round(&bare_root, &data, &layers, &image_config, n, rep).await);
        }
        ours.sort();
        theirs.sort();
        let (o50, o99, b50, b99) =
            (percentile(&ours, 0.5), percentile(&ours, 0.99), percentile(&theirs, 0.5), percentile(&theirs, 0.99));
        println!(
            "{n:>5} {:>10.1}ms {:>10.1}ms {:>12.1}ms {:>12.1}ms {:>7.2}x",
            ms(o50),
            ms(o99),
            ms(b50),
            ms(b99),
            o50.as_secs_f64() / b50.as_secs_f64().max(1e-9)
        );
        bare.extend(theirs);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let shim_rss = shim_rss_kib(&agent_data);
    println!("agent idle RSS: {:.1} MiB", idle as f64 / 1024.0);
    println!("agent RSS per running pod (50 pods): {:.1} KiB", per_pod_rss);
    if let Some(s) = shim_rss {
        println!("log shim RSS per container: {:.1} KiB", s);
    }
    let _ = guard.agent.kill();
    drop(guard);
    server.shutdown().await;
}

fn shim_rss_kib(_agent_data: &std::path::Path) -> Option<f64> {
    let mut total = 0u64;
    let mut n = 0u64;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmd);
        if text.contains("pod_start") && text.contains("\0shim\0") {
            total += rss_kib(pid);
            n += 1;
        }
    }
    (n > 0).then(|| total as f64 / n as f64)
}

async fn run_round(pods: &Api<Pod>, node: &str, image: &str, n: usize, prefix: &str) -> Vec<Duration> {
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
    watch.abort();
    out.sort();
    if prefix == "warmup" {
        delete_all(pods).await;
    }
    out
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
/// return (the process is running then).
async fn bare_round(
    root: &std::path::Path,
    data: &std::path::Path,
    layers: &[std::path::PathBuf],
    image: &runtime::oci::ImageConfig,
    n: usize,
    rep: usize,
) -> Vec<Duration> {
    let mut bundles = Vec::new();
    for i in 0..n {
        let dir = data.join("bare").join(format!("b{n}-{rep}-{i}"));
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
        bundles.push((format!("bare{n}-{rep}-{i}"), dir));
    }
    // A quiet moment first, as the agent's round has before its creates: `runc run`
    // moves its init into a cgroup under the kernel's cgroup attach lock, which
    // waits an RCU grace period (~10–13 ms here) unless it was taken in the last
    // ~20 ms, and the agent's teardown of the previous round just took it. Without
    // the pause the bare side ran in that hot window and skipped the wait most of
    // the time (BENCHMARKS.md, "Pod start"); with it both sides start cold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = bundles.iter().map(|(id, dir)| {
        let root = root.to_path_buf();
        let id = id.clone();
        let dir = dir.clone();
        async move {
            let t = Instant::now();
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
    for (id, dir) in &bundles {
        let _ = Command::new("runc").arg("--root").arg(root).args(["delete", "--force", id]).status();
        let _ = runtime::snapshot::remove_rootfs(dir);
    }
    out.sort();
    out
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
    for root in [agent_data.join("runc"), bare_root.to_path_buf()] {
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
