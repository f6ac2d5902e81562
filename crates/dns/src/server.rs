//! The listeners: UDP datagrams and length-prefixed TCP messages in, replies out.
//! Cluster names are answered inline on the receiving task (a lookup under a read
//! lock); only upstream work is spawned, bounded by a semaphore so a flood of
//! outside names cannot grow tasks without limit.

use crate::answer::{self, Outcome, Zone};
use crate::cache::Shared;
use crate::forward::{self, Forwarder};
use crate::wire::{self, Message};
use crate::{Config, Error};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};

/// Queries waiting on an upstream at once, per server.
const MAX_UPSTREAM_IN_FLIGHT: usize = 1024;
/// TCP connections served at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// An idle TCP connection is closed after this long (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What answers a packet; shared by every listener task.
struct Handler {
    shared: Arc<Shared>,
    zone: Zone,
    forwarder: Forwarder,
    upstream_slots: Semaphore,
}

/// Work that needs an upstream, to be finished off the receiving task.
enum Pending {
    Relay(Vec<u8>),
    Chase(Box<Chase>),
}

struct Chase {
    query: Message,
    reply: Message,
    target: wire::Name,
    qtype: u16,
}

/// The largest reply a UDP client takes: its EDNS0 size (at least 512), or 512.
fn udp_limit(query: &Message) -> usize {
    query.edns().map_or(wire::CLASSIC_UDP_SIZE, |opt| usize::from(opt.class).max(wire::CLASSIC_UDP_SIZE))
}

fn limit_for(query: &Message, tcp: bool) -> usize {
    if tcp { usize::from(u16::MAX) } else { udp_limit(query) }
}

impl Handler {
    /// Answers what can be answered now; `Err` carries work for an upstream.
    /// `Ok(None)` means the packet gets no reply (not a query, or not even a header).
    fn answer_now(&self, packet: &[u8], tcp: bool) -> Result<Option<Vec<u8>>, Pending> {
        let query = match Message::decode(packet) {
            Ok(q) => q,
            Err(_) => return Ok(formerr(packet)),
        };
        if query.flags.qr() {
            return Ok(None);
        }
        let in_zone = query.questions.first().is_some_and(|q| q.name.strip_suffix(&self.zone.domain).is_some());
        if in_zone && !self.shared.synced() {
            // Until the first lists are in, "no such name" could be wrong: ask again.
            return Ok(Some(answer::reply_to(&query, wire::RCODE_SERVFAIL).encode()));
        }
        let outcome = answer::respond(&query, &self.shared.read(), &self.zone);
        match outcome {
            Outcome::Reply(reply) => Ok(Some(reply.encode_within(limit_for(&query, tcp)))),
            Outcome::Forward => Err(Pending::Relay(packet.to_vec())),
            Outcome::Chase { reply, target, qtype } => {
                Err(Pending::Chase(Box::new(Chase { query, reply, target, qtype })))
            }
        }
    }

    async fn finish(&self, pending: Pending, tcp: bool) -> Option<Vec<u8>> {
        let _slot = self.upstream_slots.acquire().await.ok()?;
        match pending {
            Pending::Relay(packet) => match self.forwarder.relay(&packet, tcp).await {
                Ok(reply) => Some(reply),
                Err(e) => {
                    tracing::debug!(error = %e, "forwarding failed");
                    let query = Message::decode(&packet).ok()?;
                    Some(answer::reply_to(&query, wire::RCODE_SERVFAIL).encode())
                }
            },
            Pending::Chase(chase) => {
                let Chase { query, mut reply, target, qtype } = *chase;
                match self.forwarder.resolve(target, qtype).await {
                    Ok(upstream) => {
                        reply.answers.extend(upstream.answers);
                        if upstream.flags.rcode() == wire::RCODE_NXDOMAIN {
                            reply.flags = reply.flags.with_rcode(wire::RCODE_NXDOMAIN);
                        }
                    }
                    // The alias itself is still a true answer; the client may chase it.
                    Err(e) => tracing::debug!(error = %e, "resolving an ExternalName target failed"),
                }
                Some(reply.encode_within(limit_for(&query, tcp)))
            }
        }
    }
}

/// A FORMERR for a packet that has a header but does not parse; nothing for less,
/// or for a packet that claims to be a response (never answer those: loops).
fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let id = wire::peek_id(packet)?;
    let flags = wire::Flags(u16::from_be_bytes([packet[2], packet[3]]));
    let reply = Message {
        id,
        flags: wire::Flags::default().with_qr(true).with_rd(flags.rd()).with_rcode(wire::RCODE_FORMERR),
        ..Message::default()
    };
    Some(reply.encode())
}

/// Bound listeners and what they answer from.
pub struct Server {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
    handler: Arc<Handler>,
}

impl Server {
    /// Binds UDP and TCP on each listen address and reads the upstreams.
    pub async fn bind(config: &Config) -> Result<Server, Error> {
        let mut zone = Zone::new(&config.domain).ok_or_else(|| Error::InvalidDomain(config.domain.clone()))?;
        zone.ttl = config.ttl;
        zone.dns_ip = config.dns_ip;
        // Changes with every start, as a zone serial should when contents may have.
        zone.serial =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        let upstreams = match &config.upstreams {
            Some(list) => list.clone(),
            None => forward::upstreams(&config.resolv_conf)?,
        };
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &config.listen {
            let (socket, listener) = bind_both(*addr).await?;
            udp.push(Arc::new(socket));
            tcp.push(listener);
        }
        let handler = Arc::new(Handler {
            shared: Arc::new(Shared::default()),
            zone,
            forwarder: Forwarder::new(upstreams, config.upstream_timeout),
            upstream_slots: Semaphore::new(MAX_UPSTREAM_IN_FLIGHT),
        });
        Ok(Server { udp, tcp, handler })
    }

    /// The addresses served (UDP and TCP alike).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// The cache answers come from: filled by [`Server::run`]'s watches, or by hand
    /// (tests, benchmarks) before [`Server::serve`].
    pub fn cache(&self) -> Arc<Shared> {
        self.handler.shared.clone()
    }

    /// Watches the cluster through `client` and serves until `shutdown`.
    pub async fn run(
        self,
        client: kube::Client,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let watches = tokio::spawn(crate::watch::watch(client, self.cache()));
        let result = self.serve(shutdown).await;
        watches.abort();
        result
    }

    /// Serves from the cache as it is until `shutdown`; listeners stop at once and
    /// queries in flight upstream are dropped (their clients retry).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for socket in self.udp {
            tasks.spawn(serve_udp(socket, self.handler.clone(), stop_rx.clone()));
        }
        for listener in self.tcp {
            tasks.spawn(serve_tcp(listener, self.handler.clone(), stop_rx.clone()));
        }
        tokio::select! {
            () = shutdown => {}
            Some(result) = tasks.join_next() => {
                // A listener ended on its own: an I/O error to report.
                let _ = stop_tx.send(true);
                tasks.abort_all();
                return result.unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(e))));
            }
        }
        let _ = stop_tx.send(true);
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.changed() => return Ok(()),
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e.into()),
            },
        };
        match handler.answer_now(&buf[..n], false) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(&reply, peer).await;
            }
            Ok(None) => {}
            Err(pending) => {
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    if let Some(reply) = handler.finish(pending, false).await {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.changed() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like pass; keep accepting.
                    tracing::warn!(error = %e, "dns tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else { continue };
        let handler = handler.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = serve_connection(stream, &handler, stop).await;
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    handler: &Handler,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let len = tokio::select! {
            _ = stop.changed() => return Ok(()),
            read = tokio::time::timeout(TCP_IDLE, stream.read_u16()) => match read {
                Ok(len) => len?,
                Err(_) => return Ok(()),
            },
        };
        let mut packet = vec![0u8; usize::from(len)];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await.map_err(std::io::Error::other)??;
        let reply = match handler.answer_now(&packet, true) {
            Ok(reply) => reply,
            Err(pending) => handler.finish(pending, true).await,
        };
        let Some(reply) = reply else { continue };
        let Ok(n) = u16::try_from(reply.len()) else { continue };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

/// A UDP socket and a TCP listener on one address. Port 0: TCP takes the port UDP got,
/// so that one address serves both; a TCP connection may hold that port already (the
/// kernel hands the same range out to outgoing connections), and then another is tried.
async fn bind_both(addr: std::net::SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    const TRIES: usize = 16;
    let mut tries = 0;
    loop {
        let socket = UdpSocket::bind(addr).await.map_err(|source| Error::Bind { proto: "udp", addr, source })?;
        let bound = socket.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(listener) => return Ok((socket, listener)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries + 1 < TRIES => tries += 1,
            Err(source) => return Err(Error::Bind { proto: "tcp", addr: bound, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Kind, ServiceEntry, ServiceKind};
    use crate::wire::{Name, RData, TYPE_A};

    #[tokio::test]
    async fn one_port_serves_udp_and_tcp_and_a_taken_one_is_an_error() {
        let (udp, tcp) = bind_both("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let port = udp.local_addr().unwrap().port();
        assert_eq!(tcp.local_addr().unwrap().port(), port);
        // A port asked for by number is not swapped for another.
        drop(udp);
        let err = bind_both(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap_err();
        assert!(matches!(err, Error::Bind { proto: "tcp", .. }), "{err}");
    }

    async fn server(upstreams: Vec<SocketAddr>) -> (Vec<SocketAddr>, Arc<Shared>, tokio::sync::oneshot::Sender<()>) {
        let config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            upstreams: Some(upstreams),
            upstream_timeout: Duration::from_millis(300),
            ..Config::default()
        };
        let server = Server::bind(&config).await.unwrap();
        let addrs = server.local_addrs();
        let cache = server.cache();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        (addrs, cache, tx)
    }

    async fn udp_ask(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(packet, addr).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let n = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await.ok()?.unwrap();
        buf.truncate(n);
        Some(buf)
    }

    async fn tcp_ask(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&(packet.len() as u16).to_be_bytes()).await.unwrap();
        s.write_all(packet).await.unwrap();
        let n = s.read_u16().await.unwrap();
        let mut buf = vec![0u8; n as usize];
        s.read_exact(&mut buf).await.unwrap();
        buf
    }

    fn fill(cache: &Shared, ips: usize) {
        let ips = (0..ips).map(|i| std::net::IpAddr::from([10, 43, (i / 256) as u8, (i % 256) as u8])).collect();
        let ports = vec![crate::cache::Port { name: "http".into(), protocol: "tcp".into(), port: 80 }];
        cache
            .write()
            .put_service(("default".into(), "web".into()), ServiceEntry { kind: ServiceKind::ClusterIp(ips), ports });
    }

    #[tokio::test]
    async fn serves_udp_and_tcp_and_truncates_large_udp_replies() {
        let (addrs, cache, _stop) = server(vec![]).await;
        let q = Message::query(5, Name::parse("web.default.svc.cluster.local").unwrap(), TYPE_A).encode();
        // Not synced yet: SERVFAIL rather than a wrong NXDOMAIN.
        let r = Message::decode(&udp_ask(addrs[0], &q).await.unwrap()).unwrap();
        assert_eq!(r.flags.rcode(), wire::RCODE_SERVFAIL);
        cache.mark_synced(Kind::Service);
        cache.mark_synced(Kind::EndpointSlice);
        fill(&cache, 1);
        let r = Message::decode(&udp_ask(addrs[0], &q).await.unwrap()).unwrap();
        assert_eq!(r.answers[0].data, RData::A("10.43.0.0".parse().unwrap()));

        // 100 addresses do not fit 512 bytes: TC over UDP, everything over TCP.
        fill(&cache, 100);
        let r = Message::decode(&udp_ask(addrs[0], &q).await.unwrap()).unwrap();
        assert!(r.flags.tc() && r.answers.is_empty());
        let r = Message::decode(&tcp_ask(addrs[0], &q).await).unwrap();
        assert!(!r.flags.tc());
        assert_eq!(r.answers.len(), 100);
    }

    #[tokio::test]
    async fn malformed_packets_get_formerr_or_nothing() {
        let (addrs, _cache, _stop) = server(vec![]).await;
        let mut bad = Message::query(77, Name::parse("x").unwrap(), TYPE_A).encode();
        bad.push(1);
        let r = Message::decode(&udp_ask(addrs[0], &bad).await.unwrap()).unwrap();
        assert_eq!((r.id, r.flags.rcode()), (77, wire::RCODE_FORMERR));
        assert!(udp_ask(addrs[0], &[1, 2, 3]).await.is_none());
        // A response is never answered.
        let mut resp = Message::query(78, Name::parse("x").unwrap(), TYPE_A);
        resp.flags = resp.flags.with_qr(true);
        assert!(udp_ask(addrs[0], &resp.encode()).await.is_none());
    }

    #[tokio::test]
    async fn outside_names_are_forwarded_or_servfail() {
        // An upstream that is itself one of these servers with a cache: "upstream".
        let (up, up_cache, _s1) = server(vec![]).await;
        up_cache.mark_synced(Kind::Service);
        up_cache.mark_synced(Kind::EndpointSlice);
        fill(&up_cache, 1);
        let (addrs, _cache, _s2) = server(up.clone()).await;
        // Outside this server's zone? Use a different zone upstream by asking a name
        // that only the upstream answers authoritatively: both use cluster.local, so
        // ask a reverse name that only the upstream's cache knows.
        let q = Message::query(9, Name::parse("0.0.43.10.in-addr.arpa").unwrap(), wire::TYPE_PTR).encode();
        let r = Message::decode(&udp_ask(addrs[0], &q).await.unwrap()).unwrap();
        assert_eq!(r.id, 9);
        assert_eq!(r.answers[0].data, RData::Ptr(Name::parse("web.default.svc.cluster.local").unwrap()));
        let r = Message::decode(&tcp_ask(addrs[0], &q).await).unwrap();
        assert_eq!(r.answers.len(), 1);

        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (addrs, _cache, _s3) = server(vec![silent.local_addr().unwrap()]).await;
        let r = Message::decode(&udp_ask(addrs[0], &q).await.unwrap()).unwrap();
        assert_eq!(r.flags.rcode(), wire::RCODE_SERVFAIL);
    }
}
