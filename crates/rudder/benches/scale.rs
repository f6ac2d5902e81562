//! Scale through the real API (issue 3's benchmarks), with SIMULATED nodes: `rudder
//! sim` registers nodes that heartbeat and report their pods Running without running
//! anything (like KWOK), so these figures measure the control plane only.
//!
//! 1. Scheduler throughput as upstream's scheduler_perf "SchedulingBasic" measures it:
//!    5,000 nodes, then 10,000 pods created (and then 40,000 more, 50,000 in all), each
//!    asking for 100m CPU and 500Mi memory as scheduler_perf's default pod does. A watch
//!    records when each pod is first seen bound; a pod's latency runs from just before
//!    its create was sent to that moment, and throughput is pods bound divided by the
//!    time from the first create to the last bind.
//! 2. A Deployment of 10,000 replicas on 1,000 nodes: time from the create until
//!    `status.availableReplicas` is 10,000, and the server's RSS then (target < 600 MiB).
//!
//! The server runs the control plane (controllers and scheduler) without an agent; the
//! simulated nodes renew their Leases every 10 s, as kubelets do, and the server is
//! given upstream's 40 s node-monitor grace period to match (Rudder's default of 8 s
//! expects the 2 s heartbeat of its own agents).
//!
//! Run with `cargo bench -p rudder --bench scale`. `BENCH_NODES` (5000), `BENCH_PODS`
//! (10000,50000: cumulative totals), `BENCH_DEPLOY_NODES` (1000), `BENCH_REPLICAS`
//! (10000) change the sizes; `BENCH_ONLY=scheduler|deployment` runs one part.

mod common;

use common::{Client, Conn, Pool, Server, ms, percentile, status_kib};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

const NS: &str = "bench";
const IN_FLIGHT: usize = 64;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// A `rudder sim` process; killed on drop.
struct Sim(Child);

/// CPU seconds used so far by the server, the simulated nodes and this bench (its
/// creator and watcher): per pod, a steadier figure than throughput on a shared box.
fn cpu_now(server: &Server, sim: &Sim) -> [f64; 3] {
    [
        common::cpu_seconds(&server.pid().to_string()),
        common::cpu_seconds(&sim.0.id().to_string()),
        common::cpu_seconds("self"),
    ]
}

impl Sim {
    fn spawn(server: &Server, nodes: usize) -> Sim {
        // The server writes the token just after it starts answering /readyz.
        let deadline = Instant::now() + Duration::from_secs(10);
        let token = loop {
            match std::fs::read_to_string(server.dir.join("node-token")) {
                Ok(t) if t.ends_with('\n') => break t,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                other => panic!("the node token: {other:?}"),
            }
        };
        let log = std::fs::File::create(server.dir.join("sim.log")).unwrap();
        let child = Command::new(common::RUDDER)
            .args(["sim", "--server", &format!("https://127.0.0.1:{}", server.port), "--token", token.trim()])
            .args(["--nodes", &nodes.to_string(), "--heartbeat", "10s"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder sim");
        Sim(child)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get_json(conn: &mut Conn, client: &Client, path: &str) -> serde_json::Value {
    let (status, body) = conn.send(client.get(path)).await.expect("GET");
    assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Waits until `want` nodes report Ready; returns how long that took.
async fn wait_nodes_ready(client: &Client, want: usize) -> Duration {
    let start = Instant::now();
    let mut conn = client.h1().await.unwrap();
    loop {
        let list = get_json(&mut conn, client, "/api/v1/nodes").await;
        let ready = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|n| {
                        n["status"]["conditions"]
                            .as_array()
                            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= want {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(300), "only {ready}/{want} nodes Ready after 300 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn create_namespace(client: &Client) {
    let mut conn = client.h1().await.unwrap();
    let body = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{NS}"}}}}"#);
    let (status, _) = conn.send(client.post("/api/v1/namespaces", body)).await.unwrap();
    assert_eq!(status, 201);
}

fn pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"sched-bench"}}}},"spec":{{"containers":[{{"name":"pause","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"100m","memory":"500Mi"}},"limits":{{"cpu":"100m","memory":"500Mi"}}}}}}]}}}}"#
    )
}

/// What the watch reads of an event: the pod's name and node. Only these are
/// decoded (serde skips the rest without building it): parsing each event whole was
/// 40% of this benchmark's own CPU, on the machine it measures.
#[derive(serde::Deserialize)]
struct Event {
    object: EventPod,
}

#[derive(serde::Deserialize)]
struct EventPod {
    metadata: EventMeta,
    #[serde(default)]
    spec: EventSpec,
}

#[derive(serde::Deserialize)]
struct EventMeta {
    name: String,
}

#[derive(serde::Deserialize, Default)]
struct EventSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

/// A watch event's pod name, and whether the pod is bound to a node.
fn bound_pod(line: &[u8]) -> Option<(String, bool)> {
    let e: Event = serde_json::from_slice(line).ok()?;
    let bound = e.object.spec.node_name.is_some_and(|n| !n.is_empty());
    Some((e.object.metadata.name, bound))
}

/// Watches the bench namespace's pods and records when each is first seen bound.
async fn watch_binds(client: Client, rv: String, bound: Arc<Mutex<HashMap<String, Instant>>>) {
    let mut conn = client.h1().await.unwrap();
    let path = format!("/api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=false");
    let resp = conn.send_streaming(client.get(&path)).await.expect("opening the pod watch");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut buf = Vec::<u8>::new();
    while let Some(Ok(frame)) = body.frame().await {
        let now = Instant::now();
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        let mut seen = Vec::new();
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
            if let Some((name, true)) = bound_pod(&buf[start..start + end]) {
                seen.push(name);
            }
            start += end + 1;
        }
        buf.drain(..start);
        if !seen.is_empty() {
            let mut bound = bound.lock().await;
            for name in seen {
                bound.entry(name).or_insert(now);
            }
        }
    }
}

struct Batch {
    pods: usize,
    created_in: Duration,
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

/// Creates pods `from..to` as fast as `IN_FLIGHT` concurrent requests allow and waits
/// until the watch has seen each one bound.
async fn schedule_batch(
    pool: &Arc<Pool>,
    from: usize,
    to: usize,
    bound: &Arc<Mutex<HashMap<String, Instant>>>,
) -> Batch {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(to - from);
    for i in from..to {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (pool, sent) = (pool.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("p-{i}");
            let at = Instant::now();
            let path = format!("/api/v1/namespaces/{NS}/pods");
            let (status, body) = pool.send(pool.client().post(&path, pod(&name))).await.expect("create");
            assert_eq!(status, 201, "create {name}: {}", String::from_utf8_lossy(&body));
            sent.lock().await.insert(name, at);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let created_in = start.elapsed();
    let sent = Arc::try_unwrap(sent).unwrap().into_inner();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = {
            let bound = bound.lock().await;
            sent.keys().filter(|k| bound.contains_key(*k)).count()
        };
        if done == sent.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {done}/{} pods bound after 600 s", sent.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bound = bound.lock().await;
    let mut latencies: Vec<Duration> = sent.iter().map(|(k, at)| bound[k].saturating_duration_since(*at)).collect();
    latencies.sort();
    let last = sent.keys().map(|k| bound[k]).max().unwrap();
    let window = last.saturating_duration_since(start);
    Batch {
        pods: to - from,
        created_in,
        throughput: (to - from) as f64 / window.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

async fn scheduler_bench() {
    let nodes = env_list("BENCH_NODES", &[5000])[0];
    let totals = env_list("BENCH_PODS", &[10_000, 50_000]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--node-monitor-grace-period", "40s"]).await;
    let client = server.client();
    let sim = Sim::spawn(&server, nodes);
    let registered = wait_nodes_ready(&client, nodes).await;
    println!(
        "scheduler: {nodes} simulated nodes Ready in {:.1} s (load average {})",
        registered.as_secs_f64(),
        common::load_average()
    );
    create_namespace(&client).await;
    let mut conn = client.h1().await.unwrap();
    let list = get_json(&mut conn, &client, &format!("/api/v1/namespaces/{NS}/pods")).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = tokio::spawn(watch_binds(client.clone(), rv, bound.clone()));
    let pool = Arc::new(Pool::new(&client, true, 4).await);

    println!(
        "| nodes | pods created | create time s | pods bound/s | p50 latency ms | p99 latency ms | server RSS MiB | CPU ms per pod: server / sim / bench |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut from = 0;
    for to in totals {
        let before = cpu_now(&server, &sim);
        let b = schedule_batch(&pool, from, to, &bound).await;
        let after = cpu_now(&server, &sim);
        let per_pod = |i: usize| (after[i] - before[i]) * 1e3 / b.pods as f64;
        println!(
            "| {nodes} | {} ({from}..{to}) | {:.1} | {:.0} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
            b.pods,
            b.created_in.as_secs_f64(),
            b.throughput,
            ms(b.p50),
            ms(b.p99),
            status_kib(server.pid(), "VmRSS:") / 1024,
            per_pod(0),
            per_pod(1),
            per_pod(2),
        );
        from = to;
    }
    println!("(load average after: {})", common::load_average());
    watcher.abort();
}

async fn deployment_bench() {
    let nodes = env_list("BENCH_DEPLOY_NODES", &[1000])[0];
    let replicas = env_list("BENCH_REPLICAS", &[10_000])[0];
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--node-monitor-grace-period", "40s"]).await;
    let client = server.client();
    let _sim = Sim::spawn(&server, nodes);
    wait_nodes_ready(&client, nodes).await;
    create_namespace(&client).await;
    let deployment = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"big"}},"spec":{{"replicas":{replicas},"selector":{{"matchLabels":{{"app":"big"}}}},"template":{{"metadata":{{"labels":{{"app":"big"}}}},"spec":{{"containers":[{{"name":"c","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"10m","memory":"10Mi"}}}}}}]}}}}}}}}"#
    );
    let mut conn = client.h1().await.unwrap();
    let start = Instant::now();
    let (status, body) =
        conn.send(client.post(&format!("/apis/apps/v1/namespaces/{NS}/deployments"), deployment)).await.unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/big");
    let mut last_print = Instant::now();
    loop {
        let d = get_json(&mut conn, &client, &path).await;
        let available = d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
        if available >= replicas {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("  {:.0} s: {available}/{replicas} available", start.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        assert!(start.elapsed() < Duration::from_secs(900), "only {available}/{replicas} available after 900 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    let rss = status_kib(server.pid(), "VmRSS:") / 1024;
    let hwm = status_kib(server.pid(), "VmHWM:") / 1024;
    println!("| simulated nodes | replicas | time to all available s | server RSS MiB | server peak RSS MiB |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| {nodes} | {replicas} | {:.1} | {rss} | {hwm} |", took.as_secs_f64());
    println!("(load average after: {})", common::load_average());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "scheduler" {
        scheduler_bench().await;
    }
    if only.is_empty() || only == "deployment" {
        deployment_bench().await;
    }
}
