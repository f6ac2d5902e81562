//! Server start to `/readyz` 200, and idle memory (DESIGN.md §5: ≤ 100 ms, ≤ 20 MiB).
//!
//! Each round starts the release `rudder server` on a fresh data dir (a first start:
//! it makes its CA, serving certificate, tokens and the default namespaces), polls
//! `/readyz` over TLS every millisecond from the moment of `spawn`, then reads VmRSS
//! and VmHWM from `/proc/PID/status` after 5 s idle; then stops it with SIGTERM and
//! does the same again on the same data dir (a restart). The table shows medians.
//!
//! Run with `cargo bench -p rudder --bench startup`; `BENCH_ROUNDS` (3) and
//! `BENCH_IDLE_SECS` (5) change it.

mod common;

use common::{Server, bench_rounds, free_port, median, status_kib};
use std::time::Duration;

/// The server's own figure from its "rudder server is ready" log line, in ms.
fn logged_ready_ms(log: &str) -> Option<f64> {
    // Strip colour escapes so the field reads `ready_in_ms=N`.
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let at = plain.rfind("ready_in_ms=")? + "ready_in_ms=".len();
    let digits: String = plain[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[derive(Default)]
struct Figures {
    ready_ms: Vec<f64>,
    logged_ms: Vec<f64>,
    rss_mib: Vec<f64>,
    hwm_mib: Vec<f64>,
    threads: Vec<f64>,
}

async fn measure(dir: &std::path::Path, idle: Duration, into: &mut Figures) {
    let _ = std::fs::remove_file(dir.join("server.log"));
    let mut server = Server::spawn(dir, free_port());
    let ready = server.wait_ready(Duration::from_secs(30)).await;
    tokio::time::sleep(idle).await;
    let pid = server.pid();
    let (rss, hwm) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    let threads = status_count(pid, "Threads:");
    let logged = logged_ready_ms(&server.log()).unwrap_or(f64::NAN);
    server.stop();
    println!(
        "    ready in {:.1} ms (server's own log: {logged} ms), idle VmRSS {:.1} MiB, VmHWM {:.1} MiB, {threads} threads",
        ready.as_secs_f64() * 1000.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    into.ready_ms.push(ready.as_secs_f64() * 1000.0);
    into.logged_ms.push(logged);
    into.rss_mib.push(rss as f64 / 1024.0);
    into.hwm_mib.push(hwm as f64 / 1024.0);
    into.threads.push(threads as f64);
}

/// A count field of `/proc/PID/status` (no unit).
fn status_count(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().parse().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds = bench_rounds();
    let idle =
        Duration::from_secs_f64(std::env::var("BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0));
    println!("startup bench: {rounds} rounds, {idle:?} idle, server {}", common::RUDDER);
    let (mut first, mut restart) = (Figures::default(), Figures::default());
    for r in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        println!("  round {} first start (load average {}):", r + 1, common::load_average());
        measure(dir.path(), idle, &mut first).await;
        println!("  round {} restart:", r + 1);
        measure(dir.path(), idle, &mut restart).await;
    }
    println!();
    println!("median of {rounds} rounds:");
    println!("| start | spawn → /readyz 200 ms | server-logged ready ms | idle VmRSS MiB | VmHWM MiB | threads |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, f) in [("first (fresh data dir)", &first), ("restart (same data dir)", &restart)] {
        println!(
            "| {name} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} |",
            median(f.ready_ms.clone()),
            median(f.logged_ms.clone()),
            median(f.rss_mib.clone()),
            median(f.hwm_mib.clone()),
            median(f.threads.clone()),
        );
    }
}
