//! Names outside the cluster domain go to the node's upstream resolvers, read from a
//! resolv.conf, and their replies are relayed as they come (only the ID is put
//! back). Each upstream query uses a fresh socket on a random port with a random ID,
//! as a stub resolver does, so answers cannot be spoofed by guessing one of them.

use crate::Error;
use crate::wire::{self, Message, Name};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where systemd-resolved keeps the real upstreams when /etc/resolv.conf names its
/// loopback stub (the kubelet reads the same file for the same reason).
const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The `nameserver` addresses of a resolv.conf, on port 53.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // A scope suffix (fe80::1%eth0) is not part of the address.
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The `search` domains of a resolv.conf (the last `search` line wins, as in glibc).
pub fn search_domains(text: &str) -> Vec<String> {
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("search" | "domain")) {
            search = words.map(str::to_string).collect();
        }
    }
    search
}

/// The upstreams to forward to: the file's nameservers without loopback stub
/// resolvers when a real one exists (a pod's DNS server cannot reach the node's
/// 127.0.0.53), falling back to systemd-resolved's list when the file has only
/// loopback ones.
pub fn upstreams(path: &Path) -> Result<Vec<SocketAddr>, Error> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| Error::ResolvConf { path: p.into(), source });
    let all = nameservers(&read(path)?);
    let real: Vec<SocketAddr> = all.iter().copied().filter(|a| !a.ip().is_loopback()).collect();
    if !real.is_empty() {
        return Ok(real);
    }
    if !all.is_empty()
        && path == Path::new("/etc/resolv.conf")
        && let Ok(text) = std::fs::read_to_string(RESOLVED_UPSTREAMS)
    {
        let resolved: Vec<SocketAddr> = nameservers(&text).into_iter().filter(|a| !a.ip().is_loopback()).collect();
        if !resolved.is_empty() {
            return Ok(resolved);
        }
    }
    if all.is_empty() {
        return Err(Error::NoUpstream { path: path.into() });
    }
    Ok(all)
}

/// Sends queries upstream, each upstream in turn until one answers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder { upstreams, timeout }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Relays a raw query (UDP or TCP, as the client asked) and returns the raw
    /// reply with the client's ID.
    pub async fn relay(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, Error> {
        let Some(client_id) = wire::peek_id(query) else { return Err(Error::UpstreamFailed { tried: 0 }) };
        let mut query = query.to_vec();
        let mut tried = 0;
        for upstream in &self.upstreams {
            tried += 1;
            let id = fastrand::u16(..);
            query[..2].copy_from_slice(&id.to_be_bytes());
            let exchange = async {
                if tcp { exchange_tcp(*upstream, &query, id).await } else { exchange_udp(*upstream, &query, id).await }
            };
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(mut reply)) => {
                    reply[..2].copy_from_slice(&client_id.to_be_bytes());
                    return Ok(reply);
                }
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream query failed"),
                Err(_) => tracing::debug!(%upstream, "upstream query timed out"),
            }
        }
        Err(Error::UpstreamFailed { tried })
    }

    /// Asks upstream for `name`/`qtype` and returns the decoded reply, falling back
    /// to TCP when the UDP reply was truncated.
    pub async fn resolve(&self, name: Name, qtype: u16) -> Result<Message, Error> {
        let mut query = Message::query(0, name, qtype);
        query.additionals.push(wire::Record::opt(wire::EDNS_UDP_SIZE));
        let bytes = query.encode();
        let reply = self.relay(&bytes, false).await?;
        let mut msg = Message::decode(&reply).map_err(Error::UpstreamReply)?;
        if msg.flags.tc() {
            msg = Message::decode(&self.relay(&bytes, true).await?).map_err(Error::UpstreamReply)?;
        }
        Ok(msg)
    }
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("a literal address");
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // A stray datagram with another ID is not our answer: keep waiting.
        if n >= 12 && wire::peek_id(&buf[..n]) == Some(id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    loop {
        let n = usize::from(stream.read_u16().await?);
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        if n >= 12 && wire::peek_id(&buf) == Some(id) {
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RData, Record, TYPE_A};

    #[test]
    fn reads_nameservers_and_search_domains() {
        let text = "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n\
                    search a.example b.example\noptions ndots:2\n";
        assert_eq!(
            nameservers(text),
            vec!["10.0.0.2:53".parse().unwrap(), "[fe80::1]:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(search_domains(text), vec!["a.example", "b.example"]);
    }

    #[test]
    fn skips_loopback_stubs_when_a_real_upstream_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.53\nnameserver 192.0.2.53\n").unwrap();
        assert_eq!(upstreams(&path).unwrap(), vec!["192.0.2.53:53".parse().unwrap()]);
        // Only a loopback one and no systemd-resolved list for this file: keep it.
        std::fs::write(&path, "nameserver 127.0.0.1\n").unwrap();
        assert_eq!(upstreams(&path).unwrap(), vec!["127.0.0.1:53".parse().unwrap()]);
        std::fs::write(&path, "search x\n").unwrap();
        assert!(matches!(upstreams(&path), Err(Error::NoUpstream { .. })));
        assert!(matches!(upstreams(&dir.path().join("missing")), Err(Error::ResolvConf { .. })));
    }

    /// A one-shot fake upstream on loopback that answers with `answer`.
    async fn fake_upstream(answer: std::net::Ipv4Addr) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let q = Message::decode(&buf[..n]).unwrap();
            let mut r = crate::answer::reply_to(&q, 0);
            r.answers.push(Record::new(q.questions[0].name.clone(), 60, RData::A(answer)));
            // A stray reply with another ID first: must be ignored.
            let mut stray = r.clone();
            stray.id = q.id.wrapping_add(1);
            socket.send_to(&stray.encode(), from).await.unwrap();
            socket.send_to(&r.encode(), from).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn relays_with_the_clients_id_and_falls_over_to_the_next_upstream() {
        let good = fake_upstream("192.0.2.1".parse().unwrap()).await;
        // Nothing listens on the first one: the query times out there.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let fwd = Forwarder::new(vec![silent.local_addr().unwrap(), good], Duration::from_millis(200));
        let query = Message::query(0x1234, Name::parse("example.com").unwrap(), TYPE_A).encode();
        let reply = Message::decode(&fwd.relay(&query, false).await.unwrap()).unwrap();
        assert_eq!(reply.id, 0x1234);
        assert_eq!(reply.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn fails_when_no_upstream_answers() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let fwd = Forwarder::new(vec![silent.local_addr().unwrap()], Duration::from_millis(50));
        let err = fwd.resolve(Name::parse("example.com").unwrap(), TYPE_A).await.unwrap_err();
        assert!(matches!(err, Error::UpstreamFailed { tried: 1 }));
    }
}
