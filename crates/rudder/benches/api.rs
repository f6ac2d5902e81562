//! API create and get through HTTPS against the real `rudder server` (DESIGN.md §5:
//! p99 of a create at 1,000/s ≤ 10 ms).
//!
//! Open loop: requests start on a fixed schedule whether or not earlier ones have
//! answered, and each latency runs from the request's scheduled start, so a stalled
//! server shows up in the figures instead of slowing the load (no coordinated
//! omission). Creates of ~1 KiB ConfigMaps at 1,000/s, then GETs of them at 2,000/s,
//! over 16 HTTP/1.1 keep-alive connections; then a closed-loop saturation run with 32
//! connections, each sending its next request as soon as the last one answered, for
//! creates, for GETs and for lists in pages of 500. Each round starts a fresh server;
//! the table shows medians.
//!
//! Run with `cargo bench -p rudder --bench api`. `BENCH_SECS` (default 5) sets the
//! seconds per phase, `BENCH_ROUNDS` (3) the rounds, `BENCH_HTTP=2` sends everything
//! over one HTTP/2 connection instead.

mod common;

use bytes::Bytes;
use common::{Client, Pool, Server, Summary, bench_rounds, bench_secs, configmap, cpu_seconds, ms, percentile};
use std::time::{Duration, Instant};

const OPEN_LOOP_CONNECTIONS: usize = 16;
const SATURATION_CONNECTIONS: usize = 32;
const CREATE_RATE: f64 = 1000.0;
const GET_RATE: f64 = 2000.0;
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// One phase's figures: latencies, how late the generator itself started requests,
/// and the server's CPU time per request.
struct Phase {
    summary: Summary,
    /// p99 of (actual start − scheduled start): the generator's own lateness, already
    /// inside the latencies.
    lag_p99: Duration,
    server_cpu_ms_per_req: f64,
    /// The load generator's own CPU time per request, for comparison.
    client_cpu_ms_per_req: f64,
}

/// Starts `make(i)` at `i / rate` seconds for `secs` seconds.
async fn open_loop(
    pool: &Pool,
    pid: &str,
    rate: f64,
    secs: f64,
    expect: u16,
    make: impl Fn(u64) -> common::Req,
) -> Phase {
    let n = (rate * secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (cpu_before, own_before) = (cpu_seconds(pid), cpu_seconds("self"));
    let start = Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let (pool, req) = (pool.clone(), make(i));
        tasks.push(tokio::spawn(async move {
            let lag = at.elapsed();
            let result = pool.send(req).await;
            let done = Instant::now();
            (done - at, lag, done, result)
        }));
    }
    let (mut latencies, mut lags, mut errors, mut last) = (Vec::new(), Vec::new(), 0, start);
    for t in tasks {
        let (latency, lag, done, result) = t.await.unwrap();
        last = last.max(done);
        lags.push(lag);
        match result {
            Ok((status, _)) if status == expect => latencies.push(latency),
            Ok((status, body)) => {
                if errors == 0 {
                    eprintln!("unexpected {status}: {}", String::from_utf8_lossy(&body));
                }
                errors += 1;
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("request failed: {e}");
                }
                errors += 1;
            }
        }
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    let own = cpu_seconds("self") - own_before;
    let summary = Summary::of(latencies, errors, last - start);
    lags.sort();
    Phase {
        summary,
        lag_p99: percentile(&lags, 0.99),
        server_cpu_ms_per_req: cpu * 1000.0 / n.max(1) as f64,
        client_cpu_ms_per_req: own * 1000.0 / n.max(1) as f64,
    }
}

/// `SATURATION_CONNECTIONS` clients, each sending back to back for `secs`.
async fn closed_loop(
    client: &Client,
    http2: bool,
    pid: &str,
    secs: f64,
    expect: u16,
    make: impl Fn(usize, u64) -> common::Req + Send + Sync + Clone + 'static,
) -> Phase {
    let shared = if http2 { Some(client.h2().await.expect("connecting")) } else { None };
    let mut conns = Vec::new();
    for _ in 0..SATURATION_CONNECTIONS {
        conns.push(match &shared {
            Some(c) => c.clone_h2().unwrap(),
            None => client.h1().await.expect("connecting"),
        });
    }
    let (cpu_before, own_before) = (cpu_seconds(pid), cpu_seconds("self"));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            let mut i = 0;
            while Instant::now() < end {
                let t = Instant::now();
                match conn.send(make(w, i)).await {
                    Ok((status, _)) if status == expect => latencies.push(t.elapsed()),
                    _ => errors += 1,
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let own = cpu_seconds("self") - own_before;
    let count = latencies.len().max(1) as f64 + errors as f64;
    let summary = Summary::of(latencies, errors, elapsed);
    Phase {
        summary,
        lag_p99: Duration::ZERO,
        server_cpu_ms_per_req: cpu * 1000.0 / count,
        client_cpu_ms_per_req: own * 1000.0 / count,
    }
}

fn bodies(prefix: &str, n: u64) -> Vec<Bytes> {
    (0..n).map(|i| Bytes::from(configmap(&format!("{prefix}-{i}"), 0))).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The generator runs on one thread, so it takes at most one of the machine's cores.
    let secs = bench_secs(5.0);
    let rounds = bench_rounds();
    let http2 = std::env::var("BENCH_HTTP").as_deref() == Ok("2");
    let proto = if http2 { "one HTTP/2 connection" } else { "HTTP/1.1 keep-alive connections" };
    println!("api bench: {secs} s per phase, {rounds} rounds, {proto}, server {}", common::RUDDER);
    let names = ["create 1000/s", "get 2000/s", "create saturation", "get saturation", "list 500/page sat."];
    let mut phases: Vec<Vec<Phase>> = names.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        println!("  round {}: load average {}", round + 1, common::load_average());
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path()).await;
        let pid = server.pid().to_string();
        let client = server.client();
        let pool = Pool::new(&client, http2, OPEN_LOOP_CONNECTIONS).await;

        // Warm up (connections, the server's first allocations), not counted.
        let warm = bodies("warm", 500);
        open_loop(&pool, &pid, CREATE_RATE, 0.5, 201, |i| client.post(CONFIGMAPS, warm[i as usize].clone())).await;

        let n = (CREATE_RATE * secs) as u64;
        let created = bodies("cm", n);
        let create =
            open_loop(&pool, &pid, CREATE_RATE, secs, 201, |i| client.post(CONFIGMAPS, created[i as usize].clone()))
                .await;
        let get =
            open_loop(&pool, &pid, GET_RATE, secs, 200, |i| client.get(&format!("{CONFIGMAPS}/cm-{}", i % n))).await;

        let c = client.clone();
        let make_create = move |w: usize, i: u64| c.post(CONFIGMAPS, configmap(&format!("sat-{w}-{i}"), 0));
        let create_sat = closed_loop(&client, http2, &pid, secs, 201, make_create).await;
        let c = client.clone();
        let make_get = move |w: usize, i: u64| c.get(&format!("{CONFIGMAPS}/cm-{}", (w as u64 * 7919 + i) % n));
        let get_sat = closed_loop(&client, http2, &pid, secs, 200, make_get).await;
        // Pages of 500, as kubectl and informers list, over the ~85,000 ConfigMaps
        // the phases above made.
        let c = client.clone();
        let make_list = move |_: usize, _: u64| c.get(&format!("{CONFIGMAPS}?limit=500"));
        let list_sat = closed_loop(&client, http2, &pid, secs, 200, make_list).await;

        for (k, p) in [create, get, create_sat, get_sat, list_sat].into_iter().enumerate() {
            println!(
                "  round {} {:<18} {:>7.0}/s  p50 {:>6} ms  p99 {:>6} ms  max {:>7} ms  errors {}  generator lag p99 {} ms  cpu ms/req: server {:.3} generator {:.3}",
                round + 1,
                names[k],
                p.summary.rate,
                ms(p.summary.p50),
                ms(p.summary.p99),
                ms(p.summary.max),
                p.summary.errors,
                ms(p.lag_p99),
                p.server_cpu_ms_per_req,
                p.client_cpu_ms_per_req,
            );
            phases[k].push(p);
        }
        server.stop();
    }

    println!();
    println!("median of {rounds} rounds ({proto}):");
    println!(
        "| phase | achieved req/s | p50 ms | p99 ms | max ms | errors | server CPU ms/req | generator CPU ms/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (k, name) in names.iter().enumerate() {
        let s = Summary::median(&phases[k].iter().map(|p| p.summary).collect::<Vec<_>>());
        let cpu = common::median(phases[k].iter().map(|p| p.server_cpu_ms_per_req).collect());
        let own = common::median(phases[k].iter().map(|p| p.client_cpu_ms_per_req).collect());
        println!("{}", s.row(name, &format!(" {cpu:.3} | {own:.3} |")));
    }
}
