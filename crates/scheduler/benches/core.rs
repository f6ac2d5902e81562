//! Scheduler core throughput, shaped like upstream's scheduler_perf SchedulingBasic:
//! 5,000 nodes (4 cpu, 32Gi, 110 pods), 5,000 pods placed first, then 10,000 and
//! (from a fresh cluster) 50,000 measured pods (100m, 500Mi) through the pure core,
//! each assumed so the next decision sees it.
//!
//! `cargo bench -p scheduler --bench core`

use scheduler::core::Scheduler;
use scheduler::core::model::{LABEL_HOSTNAME, Labels, Node, PodInfo, Resources};
use scheduler::core::snapshot::Snapshot;
use std::time::{Duration, Instant};

const NODES: usize = 5_000;
const INIT_PODS: usize = 5_000;
const MI: i64 = 1 << 20;

fn node(i: usize) -> Node {
    let name = format!("node-{i}");
    let mut labels = Labels::new();
    labels.insert(LABEL_HOSTNAME.into(), name.clone());
    labels.insert("topology.kubernetes.io/zone".into(), format!("zone-{}", i % 3));
    Node {
        name,
        labels,
        allocatable: Resources {
            milli_cpu: 4_000,
            memory: 32 * 1024 * MI,
            ephemeral_storage: 100 * 1024 * MI,
            scalar: vec![],
        },
        allowed_pods: 110,
        taints: vec![],
        unschedulable: false,
    }
}

fn pod(i: usize) -> PodInfo {
    let mut labels = Labels::new();
    labels.insert("app".into(), "bench".into());
    PodInfo {
        uid: format!("uid-{i}"),
        name: format!("pod-{i}"),
        namespace: "default".into(),
        labels,
        requests: Resources { milli_cpu: 100, memory: 500 * MI, ..Default::default() },
        non_zero_milli_cpu: 100,
        non_zero_memory: 500 * MI,
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn run(measured: usize) {
    let mut snapshot = Snapshot::new();
    for i in 0..NODES {
        snapshot.upsert_node(node(i));
    }
    let mut sched = Scheduler::new(42);
    for i in 0..INIT_PODS {
        let p = pod(i);
        let n = sched.schedule(&p, &snapshot).expect("init pods fit");
        snapshot.assume(&p, &n);
    }
    let pods: Vec<PodInfo> = (INIT_PODS..INIT_PODS + measured).map(pod).collect();
    let mut latencies = Vec::with_capacity(measured);
    let mut failed = 0;
    let start = Instant::now();
    for p in &pods {
        let t = Instant::now();
        match sched.schedule(p, &snapshot) {
            Ok(n) => {
                snapshot.assume(p, &n);
            }
            Err(_) => failed += 1,
        }
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    latencies.sort();
    println!(
        "{NODES} nodes, {INIT_PODS} init + {measured} pods: {:.0} pods/s, avg {:.1} us, p50 {:.1} us, p99 {:.1} us, {failed} unschedulable",
        measured as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / measured as f64,
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
    );
}

fn main() {
    for measured in [10_000, 50_000] {
        run(measured);
    }
}
