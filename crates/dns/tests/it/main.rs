//! The DNS server against a real `rudder server --disable-agent`: Services and
//! EndpointSlices are created through the API, and a resolver client asks real
//! queries over UDP and TCP. Names outside the cluster go to a fake upstream on
//! loopback, so nothing leaves the machine.
//!
//! The server binary is the workspace's own `rudder` (built by `cargo test
//! --workspace`; set `RUDDER_BIN` to use another).

use anyhow::{Context, bail};
use dns::wire::{self, Message, Name, RData, Record};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

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

/// A `rudder server` on a free loopback port; killed and cleaned up on drop.
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
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder server");
        let mut server = Server { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.kubeconfig().exists() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rudder server exited with {status}:\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "server not ready within 20s:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
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

/// A loopback upstream that knows one name: `example.com` (A 192.0.2.1);
/// NXDOMAIN for anything else.
async fn fake_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(q) = Message::decode(&buf[..n]) else { continue };
            let known = q.questions.first().is_some_and(|q| q.name == Name::parse("example.com").unwrap());
            let mut r = dns::answer::reply_to(&q, if known { 0 } else { wire::RCODE_NXDOMAIN });
            if known && q.questions[0].qtype == wire::TYPE_A {
                r.answers.push(Record::new(q.questions[0].name.clone(), 300, RData::A([192, 0, 2, 1].into())));
            }
            let _ = socket.send_to(&r.encode(), from).await;
        }
    });
    addr
}

async fn ask_udp(server: SocketAddr, name: &str, qtype: u16) -> anyhow::Result<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let id = fastrand::u16(..);
    let mut q = Message::query(id, Name::parse(name).context("name")?, qtype);
    q.additionals.push(Record::opt(1232));
    socket.send_to(&q.encode(), server).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await??;
    let r = Message::decode(&buf[..n])?;
    if r.id != id {
        bail!("reply id {} for query {id}", r.id);
    }
    Ok(r)
}

async fn ask_tcp(server: SocketAddr, name: &str, qtype: u16) -> anyhow::Result<Message> {
    let mut s = TcpStream::connect(server).await?;
    let q = Message::query(7, Name::parse(name).context("name")?, qtype).encode();
    s.write_all(&(q.len() as u16).to_be_bytes()).await?;
    s.write_all(&q).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(Message::decode(&buf)?)
}

fn ips(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.into()),
            RData::Aaaa(a) => Some(a.into()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Asks until `check` passes (the watches deliver within moments), or fails with
/// the last reply.
async fn eventually(server: SocketAddr, name: &str, qtype: u16, check: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = ask_udp(server, name, qtype).await;
        if let Ok(m) = &reply
            && check(m)
        {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "{name} type {qtype}: last reply {reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create(client: &kube::Client, plural: &str, group_version: &str, ns: &str, body: serde_json::Value) {
    let prefix = if group_version == "v1" { "/api/v1".to_string() } else { format!("/apis/{group_version}") };
    let req = http::Request::post(format!("{prefix}/namespaces/{ns}/{plural}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request_text(req).await.unwrap_or_else(|e| panic!("creating {plural}: {e}"));
}

async fn delete(client: &kube::Client, path: &str) {
    let req = http::Request::delete(path.to_string()).body(Vec::new()).unwrap();
    client.request_text(req).await.unwrap_or_else(|e| panic!("deleting {path}: {e}"));
}

fn slice(name: &str, service: &str, endpoints: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_a_real_api_server() {
    let api = Server::start();
    let client = api.client().await;
    let upstream = fake_upstream().await;

    create(
        &client,
        "services",
        "v1",
        "default",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"clusterIP": "10.43.0.50", "ports": [{"name": "http", "port": 80}], "selector": {"app": "web"}}}),
    )
    .await;
    create(
        &client,
        "services",
        "v1",
        "default",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    create(
        &client,
        "services",
        "v1",
        "default",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
               "spec": {"type": "ExternalName", "externalName": "example.com"}}),
    )
    .await;
    create(
        &client,
        "endpointslices",
        "discovery.k8s.io/v1",
        "default",
        slice(
            "db-a",
            "db",
            json!([
                {"addresses": ["10.42.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.2.6"], "conditions": {"ready": true}},
                {"addresses": ["10.42.3.7"], "hostname": "db-2", "conditions": {"ready": false}}
            ]),
        ),
    )
    .await;

    let config = dns::Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        upstreams: Some(vec![upstream]),
        upstream_timeout: Duration::from_secs(1),
        ..dns::Config::default()
    };
    let server = dns::Server::bind(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(client.clone(), async move {
        let _ = stopped.await;
    }));

    let web = eventually(addr, "web.default.svc.cluster.local", wire::TYPE_A, |m| !m.answers.is_empty()).await;
    assert_eq!(ips(&web), vec!["10.43.0.50".parse::<IpAddr>().unwrap()]);
    assert!(web.flags.aa());
    assert_eq!(web.answers[0].ttl, 5);

    let srv = ask_tcp(addr, "_http._tcp.web.default.svc.cluster.local", wire::TYPE_SRV).await.unwrap();
    assert!(
        matches!(&srv.answers[0].data, RData::Srv { port: 80, target, .. } if target.to_string() == "web.default.svc.cluster.local."),
        "{srv:?}"
    );

    let db = eventually(addr, "db.default.svc.cluster.local", wire::TYPE_A, |m| m.answers.len() == 2).await;
    assert_eq!(ips(&db), vec!["10.42.1.5".parse::<IpAddr>().unwrap(), "10.42.2.6".parse().unwrap()]);
    let db0 = ask_udp(addr, "db-0.db.default.svc.cluster.local", wire::TYPE_A).await.unwrap();
    assert_eq!(ips(&db0), vec!["10.42.1.5".parse::<IpAddr>().unwrap()]);

    // ExternalName: the CNAME, and the target's address from upstream.
    let ext = ask_udp(addr, "ext.default.svc.cluster.local", wire::TYPE_A).await.unwrap();
    assert_eq!(ext.answers[0].data, RData::Cname(Name::parse("example.com").unwrap()));
    assert_eq!(ips(&ext), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);

    // Outside the cluster: relayed from upstream, NXDOMAIN included.
    let outside = ask_udp(addr, "example.com", wire::TYPE_A).await.unwrap();
    assert_eq!(ips(&outside), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    let unknown = ask_udp(addr, "nowhere.example", wire::TYPE_A).await.unwrap();
    assert_eq!(unknown.flags.rcode(), wire::RCODE_NXDOMAIN);
    let nx = ask_udp(addr, "nope.default.svc.cluster.local", wire::TYPE_A).await.unwrap();
    assert_eq!(nx.flags.rcode(), wire::RCODE_NXDOMAIN);

    // Changes arrive through the watches: the endpoint set follows its slice, and a
    // deleted Service is gone.
    delete(&client, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/db-a").await;
    create(
        &client,
        "endpointslices",
        "discovery.k8s.io/v1",
        "default",
        slice("db-b", "db", json!([{"addresses": ["10.42.9.9"], "hostname": "db-0"}])),
    )
    .await;
    let db = eventually(addr, "db.default.svc.cluster.local", wire::TYPE_A, |m| {
        ips(m) == vec!["10.42.9.9".parse::<IpAddr>().unwrap()]
    })
    .await;
    assert_eq!(db.flags.rcode(), 0);
    delete(&client, "/api/v1/namespaces/default/services/web").await;
    eventually(addr, "web.default.svc.cluster.local", wire::TYPE_A, |m| m.flags.rcode() == wire::RCODE_NXDOMAIN).await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), serving).await.unwrap().unwrap().unwrap();
}
