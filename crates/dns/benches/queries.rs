//! DNS queries per second and latency for a Service name, over UDP on loopback,
//! against a server whose cache holds 1,000 Services (no API server: the cache is
//! filled by hand). Prints the figures.
//!
//! `cargo bench -p dns --bench queries [-- --queries N --clients C]`

use dns::cache::{Kind, Port, ServiceEntry, ServiceKind};
use dns::wire::{self, Message, Name};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One client: `n` queries one after another, each waiting for its reply.
async fn client(server: SocketAddr, n: usize, name: Name) -> Vec<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let q = Message::query(i as u16, name.clone(), wire::TYPE_A).encode();
        let started = Instant::now();
        socket.send(&q).await.unwrap();
        let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.expect("a reply").unwrap();
        latencies.push(started.elapsed());
        let r = Message::decode(&buf[..len]).unwrap();
        assert_eq!(r.answers.len(), 1, "{r:?}");
    }
    latencies
}

fn main() {
    let queries = arg("--queries", 100_000);
    let clients = arg("--clients", 4);
    let services = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let config = dns::Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            upstreams: Some(vec![]),
            ..dns::Config::default()
        };
        let server = dns::Server::bind(&config).await.unwrap();
        let addr = server.local_addrs()[0];
        let cache = server.cache();
        {
            let mut c = cache.write();
            for i in 0..services {
                let ip = std::net::IpAddr::from([10, 43, (i / 250) as u8, (i % 250 + 1) as u8]);
                c.put_service(
                    ("default".into(), format!("svc-{i}")),
                    ServiceEntry {
                        kind: ServiceKind::ClusterIp(vec![ip]),
                        ports: vec![Port { name: "http".into(), protocol: "tcp".into(), port: 80 }],
                    },
                );
            }
        }
        cache.mark_synced(Kind::Service);
        cache.mark_synced(Kind::EndpointSlice);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));

        let name = Name::parse("svc-500.default.svc.cluster.local").unwrap();
        // Warm up.
        client(addr, 1000, name.clone()).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients).map(|_| tokio::spawn(client(addr, queries / clients, name.clone()))).collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "dns: {} A queries for a Service name, {clients} clients, {services} Services cached, UDP loopback",
            all.len()
        );
        println!("  throughput  {:.0} queries/s", all.len() as f64 / elapsed.as_secs_f64());
        println!("  latency     p50 {:?}  p99 {:?}  max {:?}", pct(0.50), pct(0.99), all[all.len() - 1]);
        let _ = stop.send(());
    });
}
