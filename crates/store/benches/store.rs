//! Store writes/s and latency, the embedded backend against a real etcd on the same
//! disk, through the same `Store` client, in one run (DESIGN.md §5: the embedded store
//! must reach at least 2× etcd's writes/s).
//!
//! Every write is what an API create sends: a transaction guarded by
//! `Compare::absent(key)` that puts a 1 KiB value. For each number of concurrent
//! writers (1, 16, 64) the two backends run alternately, three rounds, so load from
//! other work on the machine falls on both alike; the table shows each figure's median
//! over the rounds.
//!
//! Run with `cargo bench -p store --bench store` (needs the `etcd` binary on PATH).
//! `BENCH_SECS` sets the seconds per run (default 3), `BENCH_ROUNDS` the rounds (3),
//! `BENCH_ONLY=embedded` or `BENCH_ONLY=etcd` runs one backend (e.g. under `strace -f`
//! to count its syncs), `BENCH_WRITERS=1,16` picks the writer counts.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::embedded::{EmbeddedStore, Options};
use store::etcd::EtcdStore;
use store::{Compare, Op, Store, Txn};

const WRITERS: [usize; 3] = [1, 16, 64];
const VALUE_BYTES: usize = 1024;

/// A real etcd server on loopback ports with its data under `dir`, killed on drop.
struct EtcdServer {
    child: Child,
    endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl EtcdServer {
    /// Started as `tests/it/etcd_server.rs` does: etcd's defaults, one member.
    fn start(dir: &Path) -> EtcdServer {
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the etcd binary (Debian package etcd-server) must be installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not start listening within 20s");
            std::thread::sleep(Duration::from_millis(50));
        }
        EtcdServer { child, endpoint }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run of one backend at one concurrency measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    writes_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Embedded only: writes per file sync in this run (group commit at work).
    writes_per_sync: Option<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `writers` tasks create fresh keys under `prefix` back to back for `secs`.
async fn run(store: Arc<dyn Store>, prefix: &str, writers: usize, secs: f64) -> (f64, Vec<Duration>) {
    let value = bytes::Bytes::from(vec![b'x'; VALUE_BYTES]);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, value, prefix) = (store.clone(), value.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < end {
                let key = format!("{prefix}{w}/{i}");
                let t = Instant::now();
                let txn = Txn::new().when([Compare::absent(&key)]).and_then([Op::put(&key, value.clone())]);
                let resp = store.txn(txn).await.expect("a store write failed");
                assert!(resp.succeeded, "{key} already existed");
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, all)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: f64) -> String {
    format!("{:.2}", d * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let writer_counts: Vec<usize> = match std::env::var("BENCH_WRITERS") {
        Ok(list) => list.split(',').filter_map(|w| w.trim().parse().ok()).collect(),
        Err(_) => WRITERS.to_vec(),
    };
    let only = match std::env::var("BENCH_ONLY").as_deref() {
        Ok("embedded") => Some(0),
        Ok("etcd") => Some(1),
        _ => None,
    };
    // One parent temp dir holds both backends' files, so both write to the same disk.
    let dir = tempfile::tempdir().unwrap();
    let etcd_dir = dir.path().join("etcd");
    let embedded_path = dir.path().join("embedded").join("state.db");
    let embedded = Arc::new(EmbeddedStore::open(&embedded_path, Options::default()).unwrap());
    // Not started when only the embedded store runs, so `strace -f` sees that alone.
    let server = (only != Some(0)).then(|| EtcdServer::start(&etcd_dir));
    let etcd: Option<Arc<dyn Store>> = match &server {
        Some(s) => Some(Arc::new(EtcdStore::connect(std::slice::from_ref(&s.endpoint)).await.unwrap())),
        None => None,
    };
    println!(
        "store bench: {secs} s per run, {rounds} rounds, {VALUE_BYTES} B values, files under {}",
        dir.path().display()
    );

    // results[writers index][backend: 0 embedded, 1 etcd] = runs
    let mut results: Vec<[Vec<Run>; 2]> = writer_counts.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..rounds {
        for (wi, &writers) in writer_counts.iter().enumerate() {
            // Alternate which backend goes first, so neither always runs on a warmer machine.
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for backend in order.into_iter().filter(|&b| only.is_none_or(|o| o == b)) {
                let prefix = format!("/registry/configmaps/bench/r{round}w{writers}/");
                let r = if backend == 0 {
                    let before = embedded.stats();
                    let (rate, lat) = run(embedded.clone(), &prefix, writers, secs).await;
                    let after = embedded.stats();
                    let syncs = (after.syncs - before.syncs).max(1);
                    let per_sync = (after.writes - before.writes) as f64 / syncs as f64;
                    Run {
                        writes_per_sec: rate,
                        p50: percentile(&lat, 0.50),
                        p99: percentile(&lat, 0.99),
                        writes_per_sync: Some(per_sync),
                    }
                } else {
                    let etcd = etcd.clone().expect("etcd runs unless BENCH_ONLY=embedded");
                    let (rate, lat) = run(etcd, &prefix, writers, secs).await;
                    Run {
                        writes_per_sec: rate,
                        p50: percentile(&lat, 0.50),
                        p99: percentile(&lat, 0.99),
                        writes_per_sync: None,
                    }
                };
                let name = ["embedded", "etcd"][backend];
                let per_sync = r.writes_per_sync.map(|w| format!(", {w:.1} writes/sync")).unwrap_or_default();
                let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
                let load = load.split_whitespace().next().unwrap_or("?").to_string();
                println!(
                    "  round {} {name:>8} {writers:>2} writers: {:>8.0} writes/s  p50 {} ms  p99 {} ms{per_sync}  (load average {load})",
                    round + 1,
                    r.writes_per_sec,
                    ms(r.p50.as_secs_f64()),
                    ms(r.p99.as_secs_f64()),
                );
                results[wi][backend].push(r);
            }
        }
    }

    println!();
    println!("median of {rounds} rounds:");
    println!("| writers | backend  | writes/s | p50 ms | p99 ms | writes/sync | embedded ÷ etcd |");
    println!("|--------:|----------|---------:|-------:|-------:|------------:|----------------:|");
    for (wi, &writers) in writer_counts.iter().enumerate() {
        let rate = |b: usize| median(results[wi][b].iter().map(|r| r.writes_per_sec).collect());
        for backend in 0..2 {
            let runs = &results[wi][backend];
            if runs.is_empty() {
                continue;
            }
            let p50 = median(runs.iter().map(|r| r.p50.as_secs_f64()).collect());
            let p99 = median(runs.iter().map(|r| r.p99.as_secs_f64()).collect());
            let per_sync = if backend == 0 {
                format!("{:.1}", median(runs.iter().filter_map(|r| r.writes_per_sync).collect()))
            } else {
                "-".to_string()
            };
            let ratio =
                if backend == 0 && only.is_none() { format!("{:.2}×", rate(0) / rate(1)) } else { String::new() };
            println!(
                "| {writers:>7} | {:<8} | {:>8.0} | {:>6} | {:>6} | {per_sync:>11} | {ratio:>15} |",
                ["embedded", "etcd"][backend],
                rate(backend),
                ms(p50),
                ms(p99),
            );
        }
    }
}
