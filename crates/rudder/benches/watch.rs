//! Watch fan-out: 1,000 clients watch the ConfigMaps of one namespace on the real
//! `rudder server`; ConfigMaps are then created at 20/s, each carrying the moment its
//! create was sent, and every watcher records how long each one took to reach it
//! (DESIGN.md §5: p99 ≤ 50 ms).
//!
//! Each watcher has its own HTTP/1.1 keep-alive connection, as separate clients
//! (kubelets, controllers) would; `BENCH_HTTP=2` carries them instead as 100 streams
//! on each of 10 HTTP/2 connections. The delay runs from just before the create is
//! sent (so it includes the create's own commit) to the moment the event's bytes
//! arrive at the watcher. Each round starts a fresh server; the table shows medians.
//!
//! Run with `cargo bench -p rudder --bench watch`. `BENCH_WATCHERS` (default 1000),
//! `BENCH_EVENTS` (100) and `BENCH_ROUNDS` (3) change the size.

mod common;

use common::{Client, Conn, Server, Summary, bench_rounds, configmap, cpu_seconds, ms};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const WRITE_EVERY: Duration = Duration::from_millis(50);
const STREAMS_PER_H2_CONNECTION: usize = 100;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The `"sent":"NANOS"` value of a watch event line, without parsing the whole object.
fn sent_nanos(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent\":\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits]).ok()?.parse().ok()
}

/// Opens one watch and records each ADDED event's delay until `events` have come or
/// the deadline passes.
async fn watcher(
    mut conn: Conn,
    client: Client,
    rv: String,
    base: Instant,
    events: usize,
    ready: mpsc::Sender<()>,
    deadline: Instant,
) -> Vec<Duration> {
    let path = format!("{CONFIGMAPS}?watch=1&resourceVersion={rv}");
    let resp = conn.send_streaming(client.get(&path)).await.expect("opening a watch");
    assert_eq!(resp.status(), 200, "watch refused");
    // The server subscribes before it answers, so from here no event can be missed.
    let _ = ready.send(()).await;
    let mut body = resp.into_body();
    let (mut buf, mut delays) = (Vec::<u8>::new(), Vec::with_capacity(events));
    while delays.len() < events {
        let frame = match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Ok(Some(Ok(f))) => f,
            _ => break,
        };
        let arrived = base.elapsed();
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if line.starts_with(b"{\"type\":\"ADDED\"")
                && let Some(sent) = sent_nanos(&line)
            {
                delays.push(arrived.saturating_sub(Duration::from_nanos(sent)));
            }
        }
    }
    drop(conn);
    delays
}

struct Round {
    delivery: Summary,
    missing: usize,
    create_p50: Duration,
    server_cpu_ms_per_event: f64,
    /// The watchers' and writer's own CPU time per event, for comparison.
    client_cpu_ms_per_event: f64,
}

async fn round(watchers: usize, events: usize, http2: bool) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let client = server.client();
    let pid = server.pid().to_string();
    let mut writer = client.h1().await.expect("connecting");
    let (status, list) = writer.send(client.get(CONFIGMAPS)).await.expect("listing");
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let base = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60) + WRITE_EVERY * events as u32;
    let (ready_tx, mut ready_rx) = mpsc::channel(watchers);
    // Connect a few at a time so the handshakes do not all queue at once.
    let connecting = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    let mut h2: Option<Conn> = None;
    for w in 0..watchers {
        let conn = if http2 {
            if w % STREAMS_PER_H2_CONNECTION == 0 {
                h2 = Some(client.h2().await.expect("connecting"));
            }
            Some(h2.as_ref().and_then(Conn::clone_h2).unwrap())
        } else {
            None
        };
        let (client, rv, ready, connecting) = (client.clone(), rv.clone(), ready_tx.clone(), connecting.clone());
        tasks.push(tokio::spawn(async move {
            let conn = match conn {
                Some(c) => c,
                None => {
                    let _permit = connecting.acquire().await.unwrap();
                    client.h1().await.expect("connecting a watcher")
                }
            };
            watcher(conn, client, rv, base, events, ready, deadline).await
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        ready_rx.recv().await.expect("every watcher should start");
    }

    let (cpu_before, own_before) = (cpu_seconds(&pid), cpu_seconds("self"));
    let start = Instant::now();
    let mut create_latencies = Vec::new();
    for i in 0..events {
        tokio::time::sleep_until((start + WRITE_EVERY * i as u32).into()).await;
        let sent = base.elapsed().as_nanos();
        let t = Instant::now();
        let (status, body) = writer.send(client.post(CONFIGMAPS, configmap(&format!("w-{i}"), sent))).await.unwrap();
        assert_eq!(status, 201, "create failed: {}", String::from_utf8_lossy(&body));
        create_latencies.push(t.elapsed());
    }
    let mut delays = Vec::new();
    for t in tasks {
        delays.extend(t.await.unwrap());
    }
    let cpu = cpu_seconds(&pid) - cpu_before;
    let own = cpu_seconds("self") - own_before;
    let missing = watchers * events - delays.len();
    create_latencies.sort();
    server.stop();
    Round {
        delivery: Summary::of(delays, missing, start.elapsed()),
        missing,
        create_p50: common::percentile(&create_latencies, 0.5),
        server_cpu_ms_per_event: cpu * 1000.0 / events as f64,
        client_cpu_ms_per_event: own * 1000.0 / events as f64,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let watchers = env_usize("BENCH_WATCHERS", 1000);
    let events = env_usize("BENCH_EVENTS", 100);
    let rounds = bench_rounds();
    let http2 = std::env::var("BENCH_HTTP").as_deref() == Ok("2");
    let proto = if http2 {
        format!("{STREAMS_PER_H2_CONNECTION} streams per HTTP/2 connection")
    } else {
        "one HTTP/1.1 connection per watcher".to_string()
    };
    println!("watch bench: {watchers} watchers, {events} creates at 20/s, {rounds} rounds, {proto}");
    let mut results = Vec::new();
    for r in 0..rounds {
        let load = common::load_average();
        let x = round(watchers, events, http2).await;
        println!(
            "  round {} (load average {load}): delivery p50 {} ms  p99 {} ms  max {} ms  missing {}  create p50 {} ms  cpu ms/event: server {:.1} watchers {:.1}",
            r + 1,
            ms(x.delivery.p50),
            ms(x.delivery.p99),
            ms(x.delivery.max),
            x.missing,
            ms(x.create_p50),
            x.server_cpu_ms_per_event,
            x.client_cpu_ms_per_event,
        );
        results.push(x);
    }
    let s = Summary::median(&results.iter().map(|r| r.delivery).collect::<Vec<_>>());
    let cpu = common::median(results.iter().map(|r| r.server_cpu_ms_per_event).collect());
    let create = common::median(results.iter().map(|r| r.create_p50.as_secs_f64()).collect());
    let own = common::median(results.iter().map(|r| r.client_cpu_ms_per_event).collect());
    println!();
    println!("median of {rounds} rounds ({proto}):");
    println!(
        "| watchers | events | delivery p50 ms | p99 ms | max ms | missing | create p50 ms | server CPU ms/event | watchers' CPU ms/event |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {watchers} | {events} | {} | {} | {} | {} | {:.2} | {cpu:.1} | {own:.1} |",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.errors,
        create * 1000.0
    );
}
