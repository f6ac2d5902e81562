//! `proxy::run` against a real `rudder server --disable-agent`: Services and
//! EndpointSlices made through the API become rules in a lab's node namespace,
//! changes follow, and stopping removes the table.
//!
//! The server binary is the workspace's own `rudder` (built by `cargo test
//! --workspace`; set `RUDDER_BIN` to use another).

use crate::lab::{CLUSTER_CIDR, Lab, SERVICE_CIDR};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn rudder_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RUDDER_BIN") {
        return bin.into();
    }
    // Tests run from target/<profile>/deps; the binary sits one level up.
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(|d| d.parent()).map(|d| d.join("rudder")).expect("a target dir");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p rudder` or set RUDDER_BIN", bin.display());
    bin
}

struct Server {
    dir: tempfile::TempDir,
    child: Child,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(rudder_bin())
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--service-cidr", SERVICE_CIDR, "--cluster-cidr", CLUSTER_CIDR])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder server");
        let mut server = Server { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.dir.path().join("admin.kubeconfig").exists() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rudder server exited with {status}");
            }
            assert!(Instant::now() < deadline, "server not ready within 20s");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.dir.path().join("admin.kubeconfig")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(client: &kube::Client, method: http::Method, path: &str, body: Option<serde_json::Value>) {
    let req = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default())
        .unwrap();
    client.request_text(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
}

fn slice(backends: &[usize]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = backends
        .iter()
        .map(|&i| json!({"addresses": [Lab::backend_ip(i).to_string()], "conditions": {"ready": true}, "nodeName": format!("node-{i}")}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-manual", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })
}

/// Calls `check` on GETs of `addr` from the client until it passes.
fn eventually(lab: &Lab, addr: &str, what: &str, check: impl Fn(&Result<String, String>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = lab.get(&lab.client, addr);
        if check(&got) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: last {got:?}\n{}", lab.ruleset());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_follows_the_api_and_cleans_up_on_stop() {
    let lab = Lab::new(2);
    let api = Server::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = rt.block_on(api.client());
    rt.block_on(async {
        // No selector: the endpoints are ours to write, as for an external backend.
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]}});
        send(&client, http::Method::POST, "/api/v1/namespaces/default/services", Some(svc)).await;
        send(
            &client,
            http::Method::POST,
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            Some(slice(&[0, 1])),
        )
        .await;
    });
    let mut config = proxy::Config::new("node-a", vec![Lab::NODE_IP], CLUSTER_CIDR);
    config.service_cidr = Some(SERVICE_CIDR.into());
    config.nft = lab.nft();
    config.min_sync_period = Duration::from_millis(20);
    // The proxy runs in the test's namespace here, not the lab's node: leave the
    // host's sysctls alone.
    config.bridge_netfilter = false;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(proxy::run(client.clone(), config, async move {
        let _ = stopped.await;
    }));

    eventually(&lab, "10.96.0.20:80", "ClusterIP answers", |r| r.is_ok());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        seen.insert(lab.get(&lab.client, "10.96.0.20:80").unwrap());
    }
    assert_eq!(seen.len(), 2, "both backends: {seen:?}");
    assert!(lab.get(&lab.client, &format!("{}:30080", Lab::NODE_IP)).is_ok(), "NodePort");

    // The slice loses b0: within moments only b1 answers.
    let path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-manual";
    rt.block_on(send(&client, http::Method::DELETE, path, None));
    eventually(&lab, "10.96.0.20:80", "refused without endpoints", |r| {
        r.as_ref().is_err_and(|e| e.starts_with("curl: (7)"))
    });
    rt.block_on(send(
        &client,
        http::Method::POST,
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        Some(slice(&[1])),
    ));
    eventually(&lab, "10.96.0.20:80", "b1 only", |r| r.as_deref() == Ok("b1"));
    for _ in 0..10 {
        assert_eq!(lab.get(&lab.client, "10.96.0.20:80").as_deref(), Ok("b1"));
    }

    let _ = stop.send(());
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), running).await }).unwrap().unwrap().unwrap();
    assert!(!lab.ruleset().contains("table ip rudder"), "{}", lab.ruleset());
}
