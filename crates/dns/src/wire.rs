//! The DNS wire format (RFC 1035, RFC 2782 for SRV, RFC 6891 for the OPT
//! pseudo-record): enough to read any query, write our answers with name
//! compression, and look inside upstream replies. Record types we do not interpret
//! keep their RDATA as bytes, so an OPT record or a TXT answer passes through.
//!
//! Reading never trusts a length or a pointer: every read is bounds-checked, and
//! compression pointers may only point backwards, so a loop cannot be built.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// The most a reply over UDP may carry without EDNS0 (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_SIZE: usize = 512;
/// The EDNS0 buffer size we advertise and honour at most: the 2020 DNS flag day's
/// figure, which avoids IP fragmentation on common paths.
pub const EDNS_UDP_SIZE: u16 = 1232;

const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message ends early at byte {at}")]
    Truncated { at: usize },
    #[error("label at byte {at} is longer than 63 bytes")]
    LabelTooLong { at: usize },
    #[error("name at byte {at} is longer than 255 bytes")]
    NameTooLong { at: usize },
    #[error("compression pointer at byte {at} does not point backwards")]
    BadPointer { at: usize },
    #[error("unsupported label type {kind:#04x} at byte {at}")]
    BadLabelType { at: usize, kind: u8 },
    #[error("record data of type {rtype} at byte {at} has the wrong length")]
    RdataLength { at: usize, rtype: u16 },
    #[error("{count} bytes left over after the last record")]
    TrailingBytes { count: usize },
}

/// A domain name as a list of labels, kept in the case it arrived in (answers echo
/// the question's case, RFC 4343) and compared case-insensitively.
#[derive(Clone, Default)]
pub struct Name {
    labels: Vec<Vec<u8>>,
}

impl Name {
    pub fn root() -> Name {
        Name::default()
    }

    /// Parses dotted text (`a.b.c` or `a.b.c.`); `None` for empty labels or
    /// lengths beyond the limits.
    pub fn parse(text: &str) -> Option<Name> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Some(Name::root());
        }
        let labels: Vec<Vec<u8>> = text.split('.').map(|l| l.as_bytes().to_vec()).collect();
        Name::from_labels(labels)
    }

    pub fn from_labels(labels: Vec<Vec<u8>>) -> Option<Name> {
        let wire_len: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if labels.iter().any(|l| l.is_empty() || l.len() > MAX_LABEL_LEN) || wire_len > MAX_NAME_LEN {
            return None;
        }
        Some(Name { labels })
    }

    pub fn labels(&self) -> &[Vec<u8>] {
        &self.labels
    }

    /// The labels before `suffix` when the name ends with it (case-insensitively).
    pub fn strip_suffix(&self, suffix: &Name) -> Option<&[Vec<u8>]> {
        let n = self.labels.len().checked_sub(suffix.labels.len())?;
        let tail = &self.labels[n..];
        tail.iter().zip(&suffix.labels).all(|(a, b)| a.eq_ignore_ascii_case(b)).then_some(&self.labels[..n])
    }

    /// `prefix` labels followed by this name, or `None` when too long.
    pub fn prepend(&self, prefix: &[&[u8]]) -> Option<Name> {
        let mut labels: Vec<Vec<u8>> = prefix.iter().map(|l| l.to_vec()).collect();
        labels.extend(self.labels.iter().cloned());
        Name::from_labels(labels)
    }

    fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.labels.len() == other.labels.len()
            && self.labels.iter().zip(&other.labels).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

impl Eq for Name {}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        for label in &self.labels {
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Ns(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Soa {
        mname: Name,
        rname: Name,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    /// Any other type (OPT and TXT included), uninterpreted.
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: u16,
    /// For OPT: the requestor's UDP payload size.
    pub class: u16,
    /// For OPT: extended RCODE, version and flags.
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    pub fn new(name: Name, ttl: u32, data: RData) -> Record {
        let rtype = match &data {
            RData::A(_) => TYPE_A,
            RData::Aaaa(_) => TYPE_AAAA,
            RData::Cname(_) => TYPE_CNAME,
            RData::Ptr(_) => TYPE_PTR,
            RData::Ns(_) => TYPE_NS,
            RData::Srv { .. } => TYPE_SRV,
            RData::Soa { .. } => TYPE_SOA,
            RData::Raw(_) => TYPE_TXT,
        };
        Record { name, rtype, class: CLASS_IN, ttl, data }
    }

    /// An EDNS0 OPT pseudo-record advertising `udp_size`, with no options.
    pub fn opt(udp_size: u16) -> Record {
        Record { name: Name::root(), rtype: TYPE_OPT, class: udp_size, ttl: 0, data: RData::Raw(Vec::new()) }
    }
}

/// The header's second 16 bits, with accessors for the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    const QR: u16 = 1 << 15;
    const AA: u16 = 1 << 10;
    const TC: u16 = 1 << 9;
    const RD: u16 = 1 << 8;
    const RA: u16 = 1 << 7;

    pub fn qr(self) -> bool {
        self.0 & Self::QR != 0
    }
    pub fn opcode(self) -> u8 {
        ((self.0 >> 11) & 0xF) as u8
    }
    pub fn aa(self) -> bool {
        self.0 & Self::AA != 0
    }
    pub fn tc(self) -> bool {
        self.0 & Self::TC != 0
    }
    pub fn rd(self) -> bool {
        self.0 & Self::RD != 0
    }
    pub fn ra(self) -> bool {
        self.0 & Self::RA != 0
    }
    pub fn rcode(self) -> u8 {
        (self.0 & 0xF) as u8
    }
    fn set(self, bit: u16, on: bool) -> Flags {
        Flags(if on { self.0 | bit } else { self.0 & !bit })
    }
    pub fn with_qr(self, on: bool) -> Flags {
        self.set(Self::QR, on)
    }
    pub fn with_aa(self, on: bool) -> Flags {
        self.set(Self::AA, on)
    }
    pub fn with_tc(self, on: bool) -> Flags {
        self.set(Self::TC, on)
    }
    pub fn with_rd(self, on: bool) -> Flags {
        self.set(Self::RD, on)
    }
    pub fn with_ra(self, on: bool) -> Flags {
        self.set(Self::RA, on)
    }
    pub fn with_rcode(self, rcode: u8) -> Flags {
        Flags((self.0 & !0xF) | u16::from(rcode & 0xF))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub id: u16,
    pub flags: Flags,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Message {
    /// A query for one name, recursion desired, as a stub resolver sends it.
    pub fn query(id: u16, name: Name, qtype: u16) -> Message {
        Message {
            id,
            flags: Flags::default().with_rd(true),
            questions: vec![Question { name, qtype, qclass: CLASS_IN }],
            ..Message::default()
        }
    }

    /// The OPT record of the additional section, if any.
    pub fn edns(&self) -> Option<&Record> {
        self.additionals.iter().find(|r| r.rtype == TYPE_OPT)
    }

    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16()?;
        let flags = Flags(r.u16()?);
        let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
        // Every question takes at least 5 bytes and every record 11, so counts larger
        // than the packet allows are refused before any allocation is sized by them.
        let mut questions = Vec::with_capacity(usize::from(counts[0]).min(buf.len() / 5));
        for _ in 0..counts[0] {
            let name = r.name()?;
            let qtype = r.u16()?;
            let qclass = r.u16()?;
            questions.push(Question { name, qtype, qclass });
        }
        let mut sections: [Vec<Record>; 3] = Default::default();
        for (section, &count) in sections.iter_mut().zip(&counts[1..]) {
            section.reserve(usize::from(count).min(buf.len() / 11));
            for _ in 0..count {
                section.push(r.record()?);
            }
        }
        if r.pos != buf.len() {
            return Err(WireError::TrailingBytes { count: buf.len() - r.pos });
        }
        let [answers, authorities, additionals] = sections;
        Ok(Message { id, flags, questions, answers, authorities, additionals })
    }

    /// Writes the message with name compression.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer { buf: Vec::with_capacity(512), names: HashMap::new() };
        w.u16(self.id);
        w.u16(self.flags.0);
        for len in [self.questions.len(), self.answers.len(), self.authorities.len(), self.additionals.len()] {
            // More than 65535 entries cannot be expressed; such a message is never built here.
            w.u16(u16::try_from(len).unwrap_or(u16::MAX));
        }
        for q in &self.questions {
            w.name(&q.name, true);
            w.u16(q.qtype);
            w.u16(q.qclass);
        }
        for rec in self.answers.iter().chain(&self.authorities).chain(&self.additionals) {
            w.record(rec);
        }
        w.buf
    }

    /// Writes the message in at most `limit` bytes: when it does not fit, the
    /// records are left out (the OPT record kept) and TC is set, so the client asks
    /// again over TCP (RFC 2181 §9: a partial RRset is worse than none).
    pub fn encode_within(&self, limit: usize) -> Vec<u8> {
        let full = self.encode();
        if full.len() <= limit {
            return full;
        }
        let truncated = Message {
            id: self.id,
            flags: self.flags.with_tc(true),
            questions: self.questions.clone(),
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: self.edns().cloned().into_iter().collect(),
        };
        truncated.encode()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(WireError::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a name at the cursor, following compression pointers anywhere earlier in
    /// the message; the cursor ends after the name's bytes at the original place.
    fn name(&mut self) -> Result<Name, WireError> {
        let start = self.pos;
        let mut labels = Vec::new();
        let mut wire_len = 1usize;
        let mut at = self.pos;
        // Where the cursor goes once the name is read: after the first pointer.
        let mut resume = None;
        // Pointers must go strictly backwards, so `limit` shrinks on every jump and a
        // loop is impossible.
        let mut limit = self.pos;
        loop {
            let &len = self.buf.get(at).ok_or(WireError::Truncated { at })?;
            match len & 0xC0 {
                0x00 => {
                    if len == 0 {
                        at += 1;
                        break;
                    }
                    let len = usize::from(len);
                    let label = self.buf.get(at + 1..at + 1 + len).ok_or(WireError::Truncated { at })?;
                    wire_len += len + 1;
                    if wire_len > MAX_NAME_LEN {
                        return Err(WireError::NameTooLong { at: start });
                    }
                    labels.push(label.to_vec());
                    at += 1 + len;
                }
                0xC0 => {
                    let &low = self.buf.get(at + 1).ok_or(WireError::Truncated { at })?;
                    let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                    if target >= limit {
                        return Err(WireError::BadPointer { at });
                    }
                    resume.get_or_insert(at + 2);
                    limit = target;
                    at = target;
                }
                kind => return Err(WireError::BadLabelType { at, kind }),
            }
        }
        self.pos = resume.unwrap_or(at);
        Ok(Name { labels })
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlen = usize::from(self.u16()?);
        let start = self.pos;
        let end = start + rdlen;
        if end > self.buf.len() {
            return Err(WireError::Truncated { at: start });
        }
        let data = match rtype {
            TYPE_A if rdlen == 4 => {
                let b = self.take(4)?;
                RData::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            TYPE_AAAA if rdlen == 16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(self.take(16)?);
                RData::Aaaa(Ipv6Addr::from(octets))
            }
            TYPE_A | TYPE_AAAA => return Err(WireError::RdataLength { at: start, rtype }),
            TYPE_CNAME => RData::Cname(self.name()?),
            TYPE_PTR => RData::Ptr(self.name()?),
            TYPE_NS => RData::Ns(self.name()?),
            TYPE_SRV => {
                let priority = self.u16()?;
                let weight = self.u16()?;
                let port = self.u16()?;
                RData::Srv { priority, weight, port, target: self.name()? }
            }
            TYPE_SOA => {
                let mname = self.name()?;
                let rname = self.name()?;
                RData::Soa {
                    mname,
                    rname,
                    serial: self.u32()?,
                    refresh: self.u32()?,
                    retry: self.u32()?,
                    expire: self.u32()?,
                    minimum: self.u32()?,
                }
            }
            _ => RData::Raw(self.take(rdlen)?.to_vec()),
        };
        if self.pos != end {
            return Err(WireError::RdataLength { at: start, rtype });
        }
        Ok(Record { name, rtype, class, ttl, data })
    }
}

struct Writer {
    buf: Vec<u8>,
    /// Offsets of name suffixes already written, keyed by their lowercase labels.
    names: HashMap<Vec<u8>, u16>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name, compress: bool) {
        for i in 0..name.labels.len() {
            let key = suffix_key(&name.labels[i..]);
            if compress && let Some(&offset) = self.names.get(&key) {
                self.u16(0xC000 | offset);
                return;
            }
            // Offsets past 14 bits cannot be pointed at.
            if let Ok(offset) = u16::try_from(self.buf.len())
                && offset < 0x4000
            {
                self.names.entry(key).or_insert(offset);
            }
            let label = &name.labels[i];
            self.buf.push(label.len() as u8);
            self.buf.extend_from_slice(label);
        }
        self.buf.push(0);
    }

    fn record(&mut self, rec: &Record) {
        self.name(&rec.name, true);
        self.u16(rec.rtype);
        self.u16(rec.class);
        self.u32(rec.ttl);
        let len_at = self.buf.len();
        self.u16(0);
        match &rec.data {
            RData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Cname(n) | RData::Ptr(n) | RData::Ns(n) => self.name(n, true),
            RData::Srv { priority, weight, port, target } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                // RFC 2782: the target must not be compressed.
                self.name(target, false);
            }
            RData::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
                self.name(mname, true);
                self.name(rname, true);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.u32(*v);
                }
            }
            RData::Raw(bytes) => self.buf.extend_from_slice(bytes),
        }
        let len = self.buf.len() - len_at - 2;
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

fn suffix_key(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut key = Vec::with_capacity(labels.iter().map(|l| l.len() + 1).sum());
    for l in labels {
        key.push(l.len() as u8);
        key.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    key
}

/// The ID of a message that is at least a header long.
pub fn peek_id(buf: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]))
}

/// The wire length of a name, for size estimates.
pub fn name_len(name: &Name) -> usize {
    name.wire_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn sample() -> Message {
        let svc = name("web.default.svc.cluster.local");
        Message {
            id: 0xBEEF,
            flags: Flags::default().with_qr(true).with_aa(true).with_rd(true),
            questions: vec![Question { name: svc.clone(), qtype: TYPE_SRV, qclass: CLASS_IN }],
            answers: vec![
                Record::new(svc.clone(), 5, RData::A(Ipv4Addr::new(10, 43, 0, 7))),
                Record::new(svc.clone(), 5, RData::Aaaa("fd00::7".parse().unwrap())),
                Record::new(svc.clone(), 5, RData::Cname(name("example.com"))),
                Record::new(
                    name("_http._tcp.web.default.svc.cluster.local"),
                    5,
                    RData::Srv { priority: 0, weight: 100, port: 80, target: svc.clone() },
                ),
                Record::new(name("7.0.43.10.in-addr.arpa"), 5, RData::Ptr(svc.clone())),
            ],
            authorities: vec![Record::new(
                name("cluster.local"),
                5,
                RData::Soa {
                    mname: name("ns.dns.cluster.local"),
                    rname: name("hostmaster.cluster.local"),
                    serial: 1,
                    refresh: 7200,
                    retry: 1800,
                    expire: 86400,
                    minimum: 5,
                },
            )],
            additionals: vec![
                Record::new(name("cluster.local"), 5, RData::Ns(name("ns.dns.cluster.local"))),
                Record::opt(1232),
            ],
        }
    }

    #[test]
    fn round_trips_every_record_type() {
        let msg = sample();
        let bytes = msg.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn compresses_repeated_names() {
        let msg = sample();
        let bytes = msg.encode();
        // The service name appears many times but is written in full twice (the
        // question, and the SRV target, which must not be compressed): the others
        // are two-byte pointers.
        let full = b"\x03web\x07default\x03svc\x07cluster\x05local\x00";
        let count = bytes.windows(full.len()).filter(|w| w == full).count();
        assert_eq!(count, 2, "the full name must be written twice");
        let uncompressed: usize = 12 + 400;
        assert!(bytes.len() < uncompressed, "{} bytes", bytes.len());
    }

    #[test]
    fn srv_targets_are_not_compressed() {
        let target = name("a.example");
        let msg = Message {
            answers: vec![
                Record::new(name("a.example"), 5, RData::A(Ipv4Addr::LOCALHOST)),
                Record::new(name("_x._tcp.a.example"), 5, RData::Srv { priority: 1, weight: 2, port: 3, target }),
            ],
            ..Message::default()
        };
        let bytes = msg.encode();
        assert!(bytes.ends_with(b"\x00\x01\x00\x02\x00\x03\x01a\x07example\x00"));
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn follows_compression_pointers_and_resumes_after_them() {
        // Header, question "a.b" at 12, then an answer whose owner is a pointer to 12
        // and whose CNAME is "c" + pointer to "b" (offset 14).
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(b"\x01a\x01b\x00\x00\x01\x00\x01");
        p.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4, 1, b'c', 0xC0, 14]);
        let msg = Message::decode(&p).unwrap();
        assert_eq!(msg.answers[0].name, name("a.b"));
        assert_eq!(msg.answers[0].data, RData::Cname(name("c.b")));
    }

    #[test]
    fn names_compare_without_case_and_keep_it() {
        let n = name("Web.Default.SVC.cluster.local");
        assert_eq!(n, name("web.default.svc.cluster.local"));
        assert_eq!(n.to_string(), "Web.Default.SVC.cluster.local.");
        let zone = name("CLUSTER.local");
        let rest = n.strip_suffix(&zone).unwrap();
        assert_eq!(rest.len(), 3);
        assert!(name("local").strip_suffix(&zone).is_none());
    }

    #[test]
    fn refuses_pointer_loops_and_forward_pointers() {
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(Message::decode(&p), Err(WireError::BadPointer { at: 12 }));
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xC0, 40, 0, 1, 0, 1]);
        assert!(matches!(Message::decode(&p), Err(WireError::BadPointer { .. })));
    }

    #[test]
    fn refuses_malformed_messages_without_panicking() {
        let good = sample().encode();
        // Every prefix of a good message is either complete or an error, never a panic.
        for n in 0..good.len() {
            assert!(Message::decode(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        // Every single-byte corruption decodes or fails cleanly.
        for i in 0..good.len() {
            for v in [0x00, 0x3F, 0x40, 0x80, 0xC0, 0xFF] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = Message::decode(&bad);
            }
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(Message::decode(&trailing), Err(WireError::TrailingBytes { count: 1 }));
        // A huge question count with no data fails without allocating for it.
        let header = [0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(Message::decode(&header).is_err());
    }

    #[test]
    fn refuses_names_longer_than_255_bytes() {
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            p.push(63);
            p.extend_from_slice(&[b'x'; 63]);
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(matches!(Message::decode(&p), Err(WireError::NameTooLong { .. })));
        assert!(Name::parse(&"x".repeat(64)).is_none());
        assert!(Name::parse("a..b").is_none());
    }

    #[test]
    fn wrong_rdata_lengths_are_refused() {
        let mut p = vec![0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3]);
        assert!(matches!(Message::decode(&p), Err(WireError::RdataLength { rtype: TYPE_A, .. })));
        // A CNAME whose name is shorter than its RDLENGTH.
        let mut p = vec![0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&[0, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4, 1, b'a', 0, 0]);
        assert!(matches!(Message::decode(&p), Err(WireError::RdataLength { rtype: TYPE_CNAME, .. })));
    }

    #[test]
    fn truncates_to_the_limit_with_tc_and_keeps_opt() {
        let mut msg = sample();
        let svc = name("web.default.svc.cluster.local");
        for i in 0..100u8 {
            msg.answers.push(Record::new(svc.clone(), 5, RData::A(Ipv4Addr::new(10, 42, 0, i))));
        }
        let bytes = msg.encode_within(CLASSIC_UDP_SIZE);
        assert!(bytes.len() <= CLASSIC_UDP_SIZE);
        let back = Message::decode(&bytes).unwrap();
        assert!(back.flags.tc());
        assert!(back.answers.is_empty());
        assert_eq!(back.edns().map(|o| o.class), Some(1232));
        assert_eq!(back.questions, msg.questions);
        // Small enough: unchanged.
        let small = sample();
        assert_eq!(small.encode_within(4096), small.encode());
    }

    #[test]
    fn flags_set_and_read_each_field() {
        let f = Flags::default().with_qr(true).with_aa(true).with_tc(true).with_rd(true).with_ra(true).with_rcode(3);
        assert!(f.qr() && f.aa() && f.tc() && f.rd() && f.ra());
        assert_eq!(f.rcode(), RCODE_NXDOMAIN);
        assert_eq!(f.opcode(), 0);
        assert_eq!(Flags(0x2800).opcode(), 5);
        assert!(!f.with_tc(false).tc());
    }
}
