//! Small network fixtures the service tests share: an upstream resolver that knows
//! one name, and a plain HTTP GET.

use dns::wire::{self, Message, Name, RData, Record};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A UDP resolver on `ip` that answers `name` with the A record `answer` and
/// NXDOMAIN for the rest; it lives as long as the test process.
pub fn fake_upstream(ip: &str, name: &'static str, answer: [u8; 4]) -> SocketAddr {
    let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    let name = Name::parse(name).unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(q) = Message::decode(&buf[..n]) else { continue };
            let known = q.questions.first().is_some_and(|q| q.name == name);
            let mut r = dns::answer::reply_to(&q, if known { 0 } else { wire::RCODE_NXDOMAIN });
            if known && q.questions[0].qtype == wire::TYPE_A {
                r.answers.push(Record::new(q.questions[0].name.clone(), 60, RData::A(answer.into())));
            }
            let _ = socket.send_to(&r.encode(), from);
        }
    });
    addr
}

/// An HTTP/1.0 GET of `/`: the whole response, or `None` if nothing answered in 3 s.
pub fn http_get(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
