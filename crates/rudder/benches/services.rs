//! Programming Services, the control-plane part: a real `rudder server` and `rudder
//! sim` nodes whose pods report Running and Ready with addresses; `SERVICES` Services
//! (default 1,000) over `PER` pods each (default 10). Prints how long from creating
//! the Services until every one of their EndpointSlices is complete, and how long one
//! endpoint change (a pod turning unready) takes to show in its slice.
//!
//! `cargo bench -p rudder --bench services` (add `--profile dev` for a quick run;
//! `SERVICES=100 PER=10` for a small one).

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, every: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

fn ready_endpoints(slice: &DynamicObject) -> usize {
    slice.data["endpoints"]
        .as_array()
        .map(|eps| eps.iter().filter(|e| e.pointer("/conditions/ready") == Some(&json!(true))).count())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let services = env("SERVICES", 1000);
    let per = env("PER", 10);
    let pods_total = services * per;
    let nodes = pods_total.div_ceil(100).max(1);
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let bin = env!("CARGO_BIN_EXE_rudder");
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let _server = Kill(
        Command::new(bin)
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let token_file = dir.path().join("node-token");
    let start = Instant::now();
    while !token_file.exists() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let token = std::fs::read_to_string(&token_file)?;
    let _sim = Kill(
        Command::new(bin)
            .args(["sim", "--server", &format!("https://127.0.0.1:{port}"), "--token", token.trim()])
            .args(["--nodes", &nodes.to_string(), "--pods", "110"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("sim.log"))?)
            .spawn()?,
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let pods: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource("", "Pod", "pods"));
    let svcs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &resource("", "Service", "services"));
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("discovery.k8s.io", "EndpointSlice", "endpointslices"),
    );
    let node_api: Api<DynamicObject> = Api::all_with(client.clone(), &resource("", "Node", "nodes"));
    wait_for("the simulated nodes", Duration::from_secs(120), Duration::from_millis(200), || async {
        node_api.list(&ListParams::default()).await.map(|l| l.items.len() >= nodes).unwrap_or(false)
    })
    .await;

    println!("services: {services} Services x {per} endpoints = {pods_total} pods on {nodes} simulated nodes");
    let t = Instant::now();
    futures_util::stream::iter(0..pods_total)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p{i}"), "labels": {"svc": format!("s{}", i / per)}},
                    "spec": {"nodeName": format!("sim-{}", i % nodes),
                        "containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]},
                }))
                .unwrap_or_else(|_| DynamicObject::new("", &resource("", "Pod", "pods")));
                pods.create(&PostParams::default(), &pod).await.map(|_| ())
            }
        })
        .buffer_unordered(64)
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("creating a pod: {e}");
            }
        })
        .await;
    let running = || async {
        let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.iter().filter(|p| p.data.pointer("/status/podIP").is_some_and(|ip| ip.is_string())).count()
    };
    // Listing every pod is itself heavy at this size: look seldom.
    let every = Duration::from_secs(3);
    wait_for("every pod to run with an address", Duration::from_secs(1200), every, || async {
        running().await >= pods_total
    })
    .await;
    println!("  {pods_total} pods created and running in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    futures_util::stream::iter(0..services)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let svc: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("s{i}")},
                    "spec": {"selector": {"svc": format!("s{i}")}, "ports": [{"port": 80, "targetPort": "http"}]},
                }))
                .unwrap_or_else(|_| DynamicObject::new("", &resource("", "Service", "services")));
                svcs.create(&PostParams::default(), &svc).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("creating a service: {e}");
            }
        })
        .await;
    let created = t.elapsed();
    let lp = ListParams::default().labels("endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io");
    wait_for("every slice to be complete", Duration::from_secs(600), Duration::from_millis(100), || async {
        let list = slices.list(&lp).await.map(|l| l.items).unwrap_or_default();
        let complete = list.iter().filter(|s| ready_endpoints(s) == per).count();
        complete >= services
    })
    .await;
    let programmed = t.elapsed();
    println!(
        "  {services} Services created in {:.2} s; all EndpointSlices complete {:.2} s after the first create",
        created.as_secs_f64(),
        programmed.as_secs_f64()
    );

    // One endpoint change at this size: a pod turns unready, its slice follows.
    let mut samples = Vec::new();
    for round in 0..5 {
        let svc = format!("s{}", round * (services / 5).max(1) % services);
        let pod = format!("p{}", svc[1..].parse::<usize>().unwrap_or(0) * per);
        // Unready, then ready again: two changes per Service.
        for ready in [false, true] {
            let wp = WatchParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
            let one = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
            let rv = slices.list_metadata(&one).await?.metadata.resource_version.unwrap_or_default();
            let mut watch = slices.watch(&wp, &rv).await?.boxed();
            let status = if ready { "True" } else { "False" };
            let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
            let t = Instant::now();
            pods.patch_status(&pod, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
            let want = if ready { per } else { per - 1 };
            loop {
                match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
                    Ok(Some(Ok(WatchEvent::Modified(s) | WatchEvent::Added(s)))) if ready_endpoints(&s) == want => {
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => anyhow::bail!("no slice change for {svc}"),
                }
            }
            samples.push(t.elapsed());
        }
    }
    samples.sort();
    println!(
        "  one endpoint change shown in its slice: median {:.1} ms, max {:.1} ms ({} changes)",
        samples[samples.len() / 2].as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0,
        samples.len()
    );
    Ok(())
}
