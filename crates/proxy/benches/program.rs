//! Service proxy figures, printed:
//! - the time to program 1,000 Services with 10 endpoints each (one full
//!   transaction), and to apply one endpoint change at that size (a partial one);
//! - request latency and throughput through a ClusterIP against straight to the
//!   endpoint's address, in one run, alternating, over the same namespaces.
//!
//! Needs root, `ip` and `nft` (it builds network namespaces and removes them).
//! `cargo bench -p proxy --bench program [-- --requests N]`
//!
//! The binary is also its own echo server (`--serve PORT`) and client
//! (`--client ADDR N`), started inside the namespaces with `ip netns exec`.

#[path = "../tests/it/lab.rs"]
#[allow(dead_code)]
mod lab;

use lab::{CLUSTER_CIDR, Lab, SERVICE_CIDR};
use proxy::model::{Endpoint, Key, Protocol, ServiceInfo, ServicePort, SliceInfo, SlicePort, State};
use proxy::rules::Node;
use proxy::{NftCommand, Proxier};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Alternating runs per path: the machine is shared, single runs swing by 5x.
const ROUNDS: usize = 7;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn serve(port: &str) {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// Prints `<p50 µs> <p99 µs> <requests/s>` for new connections, then the same for
/// round trips on one connection.
fn client(addr: &str, n: usize) {
    let report = |lat: &mut Vec<Duration>, elapsed: Duration| {
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_micros();
        print!("{} {} {:.0} ", p(0.5), p(0.99), lat.len() as f64 / elapsed.as_secs_f64());
    };
    let msg = [7u8; 32];
    let mut buf = [0u8; 32];
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut buf).unwrap();
        lat.push(t.elapsed());
    }
    report(&mut lat, started.elapsed());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut buf).unwrap();
        lat.push(t.elapsed());
    }
    report(&mut lat, started.elapsed());
    println!();
}

fn big_state(services: usize, endpoints: usize) -> State {
    let mut state = State::default();
    for i in 0..services {
        let key: Key = ("bench".into(), format!("svc-{i}"));
        state.put_service(
            key.clone(),
            ServiceInfo {
                cluster_ip: Some(Ipv4Addr::new(10, 96, 100 + (i / 250) as u8, (i % 250 + 1) as u8)),
                ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
                external_ips: vec![],
                affinity_seconds: None,
                external_local: false,
                internal_local: false,
            },
        );
        let eps = (0..endpoints)
            .map(|j| Endpoint {
                ip: Ipv4Addr::new(10, 200 + (i / 250) as u8, (i % 250) as u8, j as u8 + 1),
                ready: true,
                serving: true,
                terminating: false,
                node_name: None,
            })
            .collect();
        let ports = vec![SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }];
        state.put_slice(("bench".into(), format!("svc-{i}-x")), Some(key.1), SliceInfo { endpoints: eps, ports });
    }
    state
}

fn spawn_in(ns: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(std::env::current_exe().unwrap())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn run_client(ns: &str, addr: &str, n: usize) -> Vec<f64> {
    let out = spawn_in(ns, &["--client", addr, &n.to_string()]).wait_with_output().unwrap();
    assert!(out.status.success(), "client to {addr} failed");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect()
}

fn main() {
    if let Some(port) = arg("--serve") {
        return serve(&port);
    }
    if let Some(addr) = arg("--client") {
        return client(
            &addr,
            arg("--requests").or_else(|| std::env::args().nth(3)).and_then(|n| n.parse().ok()).unwrap_or(1000),
        );
    }
    let requests: usize = arg("--requests").and_then(|n| n.parse().ok()).unwrap_or(2000);
    let lab = Lab::new(1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let node = Node {
        name: "node-a".into(),
        ips: vec![Lab::NODE_IP],
        cluster_cidr: CLUSTER_CIDR.into(),
        service_cidr: Some(SERVICE_CIDR.into()),
    };
    let nft = NftCommand { program: "nft".into(), netns: Some(lab.node.clone()) };
    let mut proxier = Proxier::new(nft, "rudder", node);

    let mut state = big_state(1000, 10);
    // The Service the latency is measured through, among the thousand.
    let web: Key = ("bench".into(), "web".into());
    state.put_service(
        web.clone(),
        ServiceInfo {
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            ports: vec![ServicePort { name: "echo".into(), protocol: Protocol::Tcp, port: 9000, node_port: None }],
            external_ips: vec![],
            affinity_seconds: None,
            external_local: false,
            internal_local: false,
        },
    );
    let ep = Endpoint { ip: Lab::backend_ip(0), ready: true, serving: true, terminating: false, node_name: None };
    state.put_slice(
        ("bench".into(), "web-x".into()),
        Some("web".into()),
        SliceInfo {
            endpoints: vec![ep],
            ports: vec![SlicePort { name: "echo".into(), protocol: Protocol::Tcp, port: 9000 }],
        },
    );

    // Deciding the rules alone, without nft.
    let t = Instant::now();
    let node_rules = Node {
        name: "node-a".into(),
        ips: vec![Lab::NODE_IP],
        cluster_cidr: CLUSTER_CIDR.into(),
        service_cidr: Some(SERVICE_CIDR.into()),
    };
    let all: Vec<_> =
        state.services.iter().map(|(k, s)| proxy::rules::service_rules(k, s, &state, &node_rules)).collect();
    let script = proxy::rules::full_script("rudder", &node_rules, all.iter());
    let generate = t.elapsed();
    let mut full = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        rt.block_on(proxier.sync(&state, None)).unwrap();
        full.push(t.elapsed());
    }
    let rules = lab::ok(&["ip", "netns", "exec", &lab.node, "nft", "list", "table", "ip", "rudder"]).lines().count();
    let mut partial = Vec::new();
    for round in 0..10u8 {
        let key: Key = ("bench".into(), "svc-500".into());
        let mut slice = state.slices[&key]["svc-500-x"].clone();
        slice.endpoints[0].ip = Ipv4Addr::new(10, 250, 0, round + 1);
        state.put_slice(("bench".into(), "svc-500-x".into()), Some("svc-500".into()), slice);
        let dirty: BTreeSet<Key> = [key].into();
        let t = Instant::now();
        rt.block_on(proxier.sync(&state, Some(&dirty))).unwrap();
        partial.push(t.elapsed());
    }
    full.sort();
    partial.sort();
    println!("proxy: 1,000 Services x 10 endpoints (+1), {rules} lines in `nft list table`");
    println!("  program everything (one transaction)   median {:?}  (runs: {full:?})", full[1]);
    println!("    of which deciding the rules          {generate:?} ({} bytes of script)", script.len());
    println!("  apply one endpoint change (partial)    median {:?}  max {:?}", partial[5], partial[9]);

    let mut server = spawn_in(&lab.backends[0], &["--serve", "9000"]);
    let direct = format!("{}:9000", Lab::backend_ip(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab::sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "sh",
        "-c",
        &format!("exec 3<>/dev/tcp/{}/9000", Lab::backend_ip(0)),
    ])
    .status
    .code()
    .is_some_and(|c| c != 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Alternate the two paths so drift on a shared machine hits both alike.
    let (mut via, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        via.push(run_client(&lab.client, "10.96.0.10:9000", requests));
        straight.push(run_client(&lab.client, &direct, requests));
    }
    let _ = server.kill();
    let _ = server.wait();
    let median = |runs: &Vec<Vec<f64>>, i: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  latency, {requests} requests x {ROUNDS} runs each, medians (client and backend in their own netns, routed by the node):"
    );
    for (label, base) in [("new connection per request", 0), ("requests on one connection", 3)] {
        let (vp50, vp99, vrps) = (median(&via, base), median(&via, base + 1), median(&via, base + 2));
        let (dp50, dp99, drps) = (median(&straight, base), median(&straight, base + 1), median(&straight, base + 2));
        println!("  {label}:");
        println!("    via ClusterIP   p50 {vp50:>5} µs  p99 {vp99:>5} µs  {vrps:>7.0} req/s");
        println!("    straight to pod p50 {dp50:>5} µs  p99 {dp99:>5} µs  {drps:>7.0} req/s");
        println!("    ClusterIP/pod   p50 {:.2}x  throughput {:.2}x", vp50 / dp50, vrps / drps);
    }
    rt.block_on(proxier.cleanup()).unwrap();
}
