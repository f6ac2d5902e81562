//! Port-forward: bytes between a client and a TCP port inside the pod's network
//! namespace.
//!
//! - SPDY (`portforward.k8s.io`, raw or tunnelled in WebSocket as
//!   `SPDY/3.1+portforward.k8s.io`): per client connection, an `error` and a `data`
//!   stream sharing a `requestid`, naming the `port` in their headers.
//! - WebSocket channels (`v4.channel.k8s.io` and its base64 variant, the ports in
//!   the query): port i has data channel 2i and error channel 2i+1, and the first
//!   message on each is the port number, two bytes little-endian.

use super::PodNetwork;
use super::spdy;
use super::websocket::{self, ChannelCodec, Outgoing};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The SPDY protocol (`X-Stream-Protocol-Version`).
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// WebSocket subprotocols: SPDY tunnelled (kubectl 1.31+), or channels.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
pub const WEBSOCKET_PROTOCOLS: &[&str] = &[
    TUNNEL_PROTOCOL,
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "portforward.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Ports from the query: `port=80&port=81` (the kubelet's form) or `ports=80,81`
/// (the API's `PodPortForwardOptions`).
pub fn ports_from_query(pairs: &[(String, String)]) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        if k != "port" && k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n),
                _ => return Err(format!("unable to parse {p:?} as a port: must be between 1 and 65535")),
            }
        }
    }
    Ok(out)
}

/// Where a pod's ports are.
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Pod {
    fn error(&self, port: u16, e: impl std::fmt::Display) -> String {
        format!("error forwarding port {port} to pod {}, uid {}: {e}", self.name, self.uid)
    }
}

/// Serves a SPDY port-forward session until the client ends it.
pub async fn serve_spdy(mut session: spdy::Session, pod: Arc<Pod>, network: Arc<dyn PodNetwork>) {
    let mut waiting: HashMap<String, spdy::Stream> = HashMap::new();
    while let Some(stream) = session.accept().await {
        let kind = stream.header("streamtype").unwrap_or_default().to_string();
        // Old clients send no request id: the data stream follows its error stream.
        let request = match stream.header("requestid") {
            Some(r) => r.to_string(),
            None if kind == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        if kind != "data" && kind != "error" {
            stream.writer.reset(spdy::RST_PROTOCOL_ERROR).await;
            continue;
        }
        let Some(other) = waiting.remove(&request) else {
            waiting.insert(request, stream);
            continue;
        };
        let (data, error) = if kind == "data" { (stream, other) } else { (other, stream) };
        tokio::spawn(forward_spdy(data, error, pod.clone(), network.clone()));
    }
}

async fn forward_spdy(mut data: spdy::Stream, error: spdy::Stream, pod: Arc<Pod>, network: Arc<dyn PodNetwork>) {
    let port = match data.header("port").map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => p,
        other => {
            let text = format!("invalid port header {:?}", other.map(|_| data.header("port").unwrap_or_default()));
            error.writer.write(text.as_bytes()).await;
            error.writer.finish().await;
            data.writer.finish().await;
            return;
        }
    };
    match network.connect(&pod.uid, port).await {
        Err(e) => {
            error.writer.write(pod.error(port, e).as_bytes()).await;
        }
        Ok(conn) => {
            let _ = conn.set_nodelay(true);
            let (mut rd, mut wr) = conn.into_split();
            let mut incoming = std::mem::replace(&mut data.data, mpsc::channel(1).1);
            let to_pod = tokio::spawn(async move {
                while let Some(b) = incoming.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                // The client is done sending; the pod sees end-of-file.
                let _ = wr.shutdown().await;
            });
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !data.writer.write(&buf[..n]).await {
                            break;
                        }
                    }
                }
            }
            to_pod.abort();
        }
    }
    data.writer.finish().await;
    error.writer.finish().await;
}

/// Serves port-forward over WebSocket channels for the ports in the query.
pub async fn serve_websocket(
    conn: websocket::Conn,
    protocol: &str,
    ports: Vec<u16>,
    pod: Arc<Pod>,
    network: Arc<dyn PodNetwork>,
) {
    let codec = ChannelCodec::for_protocol(protocol);
    let websocket::Conn { out, mut incoming, .. } = conn;
    let send = |channel: u8, data: &[u8]| {
        let (op, payload) = codec.encode(channel, data);
        let out = out.clone();
        async move { out.send(Outgoing::Message(op, payload)).await.is_ok() }
    };
    let mut inputs: Vec<mpsc::Sender<Bytes>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        send(data_ch, &port.to_le_bytes()).await;
        send(error_ch, &port.to_le_bytes()).await;
        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        inputs.push(tx);
        let (pod, network, out) = (pod.clone(), network.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let send = |channel: u8, data: Vec<u8>| {
                let (op, payload) = codec.encode(channel, &data);
                let out = out.clone();
                async move { out.send(Outgoing::Message(op, payload)).await.is_ok() }
            };
            let conn = match network.connect(&pod.uid, port).await {
                Ok(c) => c,
                Err(e) => {
                    send(error_ch, pod.error(port, e).into_bytes()).await;
                    return;
                }
            };
            let _ = conn.set_nodelay(true);
            let (mut rd, mut wr) = conn.into_split();
            let to_pod = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = wr.shutdown().await;
            });
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !send(data_ch, buf[..n].to_vec()).await {
                            break;
                        }
                    }
                }
            }
            to_pod.abort();
        }));
    }
    let router = tokio::spawn(async move {
        while let Some(m) = incoming.recv().await {
            let Some((channel, data)) = codec.decode(&m) else { continue };
            // Only data channels (even) carry input.
            if channel % 2 == 0
                && let Some(tx) = inputs.get(channel as usize / 2)
                && !data.is_empty()
            {
                let _ = tx.send(data).await;
            }
        }
    });
    for t in tasks {
        let _ = t.await;
    }
    router.abort();
    let _ = out.send(Outgoing::Close(websocket::CLOSE_NORMAL)).await;
}

/// Opens a TCP connection to `127.0.0.1:port` inside a network namespace (given as a
/// path such as `/proc/PID/ns/net` or a bind-mounted namespace file). The socket is
/// made on a thread that enters the namespace for that alone, and stays in it.
pub async fn connect_in_netns(netns: std::path::PathBuf, port: u16) -> std::io::Result<TcpStream> {
    let std_stream = tokio::task::spawn_blocking(move || -> std::io::Result<std::net::TcpStream> {
        let ns = std::fs::File::open(&netns)?;
        // A thread of its own: the namespace switch must not leak into tokio's pool.
        std::thread::spawn(move || -> std::io::Result<std::net::TcpStream> {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))?;
            let s = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                std::time::Duration::from_secs(10),
            )?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .join()
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
    })
    .await
    .map_err(std::io::Error::other)??;
    TcpStream::from_std(std_stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::spdy::tests::TestClient;
    use crate::server::spdy::{FLAG_FIN, Frame};

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ports() {
        assert_eq!(ports_from_query(&q(&[("port", "80"), ("port", "8080")])).unwrap(), [80, 8080]);
        assert_eq!(ports_from_query(&q(&[("ports", "80,81")])).unwrap(), [80, 81]);
        assert!(ports_from_query(&q(&[("port", "0")])).is_err());
        assert!(ports_from_query(&q(&[("port", "70000")])).is_err());
        assert!(ports_from_query(&q(&[])).unwrap().is_empty());
    }

    /// Connects to a port on the host's loopback (tests run without namespaces).
    struct Loopback;

    #[async_trait::async_trait]
    impl PodNetwork for Loopback {
        async fn connect(&self, _pod_uid: &str, port: u16) -> std::io::Result<TcpStream> {
            TcpStream::connect(("127.0.0.1", port)).await
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> spdy::Headers {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn spdy_streams_reach_the_port_and_errors_come_back() {
        // An echo server that upper-cases.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                        if s.write_all(&up).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let (client, server) = tokio::io::duplex(1 << 16);
        let pod = Arc::new(Pod { namespace: "default".into(), name: "web".into(), uid: "u1".into() });
        tokio::spawn(serve_spdy(spdy::Session::start(server), pod, Arc::new(Loopback)));
        let mut c = TestClient::new(client);
        let p = port.to_string();
        c.send(Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 0,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "error"), ("port", &p), ("requestid", "0")]),
        })
        .await;
        c.send(Frame::SynStream {
            stream_id: 3,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("streamtype", "data"), ("port", &p), ("requestid", "0")]),
        })
        .await;
        c.send(Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"hello") }).await;
        let mut replies = 0;
        let mut echoed = Vec::new();
        while echoed.len() < 5 {
            match c.recv().await.unwrap() {
                Frame::SynReply { .. } => replies += 1,
                Frame::Data { stream_id: 3, data, .. } => echoed.extend_from_slice(&data),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((replies, &echoed[..]), (2, &b"HELLO"[..]));
        // A closed port: the error stream says so.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap().port().to_string();
        drop(closed);
        c.send(Frame::SynStream {
            stream_id: 5,
            associated: 0,
            priority: 0,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "error"), ("port", &dead), ("requestid", "1")]),
        })
        .await;
        c.send(Frame::SynStream {
            stream_id: 7,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("streamtype", "data"), ("port", &dead), ("requestid", "1")]),
        })
        .await;
        let text = loop {
            if let Frame::Data { stream_id: 5, data, .. } = c.recv().await.unwrap()
                && !data.is_empty()
            {
                break String::from_utf8_lossy(&data).into_owned();
            }
        };
        assert!(text.starts_with(&format!("error forwarding port {dead} to pod web, uid u1:")), "{text}");
    }
}
