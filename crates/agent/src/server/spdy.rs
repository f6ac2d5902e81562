//! SPDY/3.1, the server side of what kubectl (moby/spdystream) speaks for exec,
//! attach and port-forward: frames, header blocks compressed with one zlib stream per
//! direction and the SPDY/3 dictionary, and a [`Session`] that accepts the client's
//! streams, answers each SYN_STREAM with a SYN_REPLY, echoes PINGs and carries data.
//! Flow control is not implemented: spdystream ignores WINDOW_UPDATE too.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The SPDY/3 header compression dictionary (from the SPDY/3 specification).
pub const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
/// A frame longer than this ends the session (kubectl sends at most 32 KiB of data).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// A header block inflated beyond this is refused.
const MAX_HEADERS: usize = 256 * 1024;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_CANCEL: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy: {0}")]
    Protocol(String),
    #[error("spdy: header compression: {0}")]
    Compression(String),
    #[error("spdy: {0}")]
    Io(#[from] std::io::Error),
}

fn protocol(m: impl Into<String>) -> SpdyError {
    SpdyError::Protocol(m.into())
}

pub type Headers = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type we do not know; ignored, as the spec says.
    Unknown(u16),
}

/// A header block before compression: a u32 count, then u32-length-prefixed names and
/// values. Several values of one name are joined with NUL.
pub fn encode_header_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == k) {
            Some((_, existing)) => {
                existing.push('\0');
                existing.push_str(v);
            }
            None => merged.push((k, v.clone())),
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(merged.len() as u32).to_be_bytes());
    for (k, v) in &merged {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// The inverse of [`encode_header_block`]; NUL-joined values come back as separate pairs.
pub fn decode_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    let take_u32 = |b: &mut &[u8]| -> Result<u32, SpdyError> {
        if b.len() < 4 {
            return Err(protocol("truncated header block"));
        }
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        *b = &b[4..];
        Ok(v)
    };
    let count = take_u32(&mut b)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let mut field = || -> Result<String, SpdyError> {
            let n = take_u32(&mut b)? as usize;
            if b.len() < n {
                return Err(protocol("truncated header block"));
            }
            let s = String::from_utf8_lossy(&b[..n]).into_owned();
            b = &b[n..];
            Ok(s)
        };
        let name = field()?;
        let value = field()?;
        if name.is_empty() {
            return Err(protocol("a header with an empty name"));
        }
        for v in value.split('\0') {
            out.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(out)
}

/// The value of a header (names are lowercase on the wire).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Compresses header blocks: one zlib stream for the whole connection, with the
/// dictionary, flushed with Z_SYNC_FLUSH after every block.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        HeaderCompressor::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> HeaderCompressor {
        let mut z = Compress::new(Compression::default(), true);
        // Only fails for a backend without dictionaries, which the feature rules out.
        let _ = z.set_dictionary(DICTIONARY);
        HeaderCompressor { z }
    }

    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            input = &input[(self.z.total_in() - before) as usize..];
            // A sync flush is complete once there is room left over.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Inflates header blocks of the peer's single zlib stream.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        HeaderDecompressor::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> HeaderDecompressor {
        HeaderDecompressor { z: Decompress::new(true) }
    }

    pub fn decompress(&mut self, data: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(data.len() * 4 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let before = self.z.total_in();
            let res = self.z.decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.z.total_in() - before) as usize..];
            match res {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(DICTIONARY).map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADERS {
                return Err(protocol("header block too large"));
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Encodes frames (compressing headers with its stream).
#[derive(Default)]
pub struct Encoder {
    headers: HeaderCompressor,
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let control = |kind: u16, flags: u8, payload: Vec<u8>| {
            let mut out = Vec::with_capacity(payload.len() + 8);
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.push(flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&payload);
            out
        };
        Ok(match frame {
            Frame::SynStream { stream_id, associated, priority, flags, headers } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                p.push((priority & 0x07) << 5);
                p.push(0);
                p.extend(self.headers.compress(&encode_header_block(headers))?);
                control(SYN_STREAM, *flags, p)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend(self.headers.compress(&encode_header_block(headers))?);
                control(SYN_REPLY, *flags, p)
            }
            Frame::Headers { stream_id, flags, headers } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend(self.headers.compress(&encode_header_block(headers))?);
                control(HEADERS, *flags, p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, p)
            }
            Frame::Settings => control(SETTINGS, 0, 0u32.to_be_bytes().to_vec()),
            Frame::Ping(id) => control(PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway { last_stream_id, status } => {
                let mut p = (last_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(GOAWAY, 0, p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                control(WINDOW_UPDATE, 0, p)
            }
            Frame::Data { stream_id, flags, data } => {
                if data.len() >= 1 << 24 {
                    return Err(protocol("data frame too large"));
                }
                let mut out = Vec::with_capacity(data.len() + 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                out
            }
            Frame::Unknown(_) => Vec::new(),
        })
    }
}

/// Decodes frames (inflating headers with its stream).
#[derive(Default)]
pub struct Decoder {
    headers: HeaderDecompressor,
}

impl Decoder {
    /// One frame from the front of `buf`, if it is all there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32_at(buf, 4) as usize & 0x00ff_ffff;
        if len > MAX_FRAME {
            return Err(protocol(format!("a frame of {len} bytes")));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let p = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data { stream_id: u32_at(&head, 0) & 0x7fff_ffff, flags, data: p }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(protocol(format!("version {version}")));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize| if p.len() < n { Err(protocol(format!("frame type {kind} too short"))) } else { Ok(()) };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10)?;
                let headers = decode_header_block(&self.headers.decompress(&p[10..])?)?;
                Frame::SynStream {
                    stream_id: u32_at(&p, 0) & 0x7fff_ffff,
                    associated: u32_at(&p, 4) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    flags,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                need(4)?;
                let stream_id = u32_at(&p, 0) & 0x7fff_ffff;
                let headers = decode_header_block(&self.headers.decompress(&p[4..])?)?;
                if kind == SYN_REPLY {
                    Frame::SynReply { stream_id, flags, headers }
                } else {
                    Frame::Headers { stream_id, flags, headers }
                }
            }
            RST_STREAM => {
                need(8)?;
                Frame::RstStream { stream_id: u32_at(&p, 0) & 0x7fff_ffff, status: u32_at(&p, 4) }
            }
            SETTINGS => Frame::Settings,
            PING => {
                need(4)?;
                Frame::Ping(u32_at(&p, 0))
            }
            GOAWAY => {
                need(4)?;
                let status = if p.len() >= 8 { u32_at(&p, 4) } else { 0 };
                Frame::GoAway { last_stream_id: u32_at(&p, 0) & 0x7fff_ffff, status }
            }
            WINDOW_UPDATE => {
                need(8)?;
                Frame::WindowUpdate { stream_id: u32_at(&p, 0) & 0x7fff_ffff, delta: u32_at(&p, 4) & 0x7fff_ffff }
            }
            other => Frame::Unknown(other),
        }))
    }
}

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// What the client sends; closed at its FIN (or a reset, or the session's end).
    pub data: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Sends on one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Sends data, in frames of at most 32 KiB; false once the session is gone.
    pub async fn write(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(32 * 1024) {
            let frame = Frame::Data { stream_id: self.id, flags: 0, data: Bytes::copy_from_slice(chunk) };
            if self.out.send(frame).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes our side (an empty DATA frame with FIN).
    pub async fn finish(&self) {
        let _ = self.out.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }).await;
    }

    pub async fn reset(&self, status: u32) {
        let _ = self.out.send(Frame::RstStream { stream_id: self.id, status }).await;
    }
}

/// The server side of a session: the streams the client opens arrive on
/// [`Session::accept`].
pub struct Session {
    incoming: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Frame>,
    reader: tokio::task::JoinHandle<()>,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Session {
    /// Runs a session over a connection (after the 101 answer).
    pub fn start<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Session {
        let (mut rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(64);
        let (in_tx, incoming) = mpsc::channel::<Stream>(16);
        tokio::spawn(write_frames(wr, out_rx));
        let out = out_tx.clone();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(async move {
            if let Err(e) = read_frames(&mut rd, out_tx, in_tx).await {
                tracing::debug!(error = %e, "spdy session ended");
            }
            let _ = closed_tx.send(true);
        });
        Session { incoming, out, reader, closed }
    }

    /// Turns true when the client has gone (its side of the connection ended).
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.clone()
    }

    /// The next stream the client opens; `None` once the session has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Waits (at most `timeout`) for the client to end the session, as kubectl does
    /// once it has read the status, then lets the connection go.
    pub async fn close(self, timeout: std::time::Duration) {
        let Session { incoming, out, mut reader, .. } = self;
        drop(incoming);
        if tokio::time::timeout(timeout, &mut reader).await.is_err() {
            reader.abort();
        }
        let _ = out.send(Frame::GoAway { last_stream_id: 0, status: 0 }).await;
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>) {
    let mut enc = Encoder::default();
    while let Some(frame) = rx.recv().await {
        let goaway = matches!(frame, Frame::GoAway { .. });
        let Ok(bytes) = enc.encode(&frame) else { break };
        if wr.write_all(&bytes).await.is_err() {
            break;
        }
        // Write whatever else is queued before flushing once.
        while let Ok(next) = rx.try_recv() {
            let Ok(bytes) = enc.encode(&next) else { return };
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() || goaway {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_frames<R: AsyncRead + Unpin>(
    rd: &mut R,
    out: mpsc::Sender<Frame>,
    incoming: mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        while let Some(frame) = dec.decode(&mut buf)? {
            match frame {
                Frame::SynStream { stream_id, flags, headers, .. } => {
                    // The client waits for this reply to every stream it opens.
                    out.send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() })
                        .await
                        .map_err(|_| protocol("writer gone"))?;
                    let (tx, rx) = mpsc::channel(64);
                    if flags & FLAG_FIN == 0 {
                        streams.insert(stream_id, tx);
                    }
                    let writer = StreamWriter { id: stream_id, out: out.clone() };
                    if incoming.send(Stream { id: stream_id, headers, data: rx, writer }).await.is_err() {
                        // Nobody takes streams any more: refuse it.
                        let _ = out.send(Frame::RstStream { stream_id, status: RST_CANCEL }).await;
                    }
                }
                Frame::Data { stream_id, flags, data } => {
                    if let Some(tx) = streams.get(&stream_id) {
                        // A consumer that went away just loses its data.
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            streams.remove(&stream_id);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        streams.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping(id) => {
                    let _ = out.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => return Ok(()),
                _ => {}
            }
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        if buf.remaining() > MAX_FRAME + 8 {
            return Err(protocol("a frame larger than allowed"));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(&DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(DICTIONARY.ends_with(b",*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_with_nul_joined_values() {
        let headers = h(&[("StreamType", "data"), ("port", "80"), ("requestid", "0"), ("port", "81")]);
        let block = encode_header_block(&headers);
        assert_eq!(u32_at(&block, 0), 3, "the two ports share one entry");
        let back = decode_header_block(&block).unwrap();
        assert_eq!(back, h(&[("streamtype", "data"), ("port", "80"), ("port", "81"), ("requestid", "0")]));
        assert_eq!(header(&back, "StreamType"), Some("data"));
        assert!(decode_header_block(&block[..block.len() - 1]).is_err());
        assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(), "an empty name");
    }

    #[test]
    fn compression_is_one_stream_per_direction() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        let blocks: Vec<Vec<u8>> = (0..5)
            .map(|i| encode_header_block(&h(&[("streamtype", "stdout"), ("requestid", &i.to_string())])))
            .collect();
        let mut sizes = Vec::new();
        for b in &blocks {
            let z = c.compress(b).unwrap();
            sizes.push(z.len());
            assert_eq!(&d.decompress(&z).unwrap(), b);
        }
        // Later blocks refer back to earlier ones, so they shrink.
        assert!(sizes[4] < sizes[0], "{sizes:?}");
        // A fresh decompressor cannot read the middle of a stream.
        let z = c.compress(&blocks[0]).unwrap();
        assert!(HeaderDecompressor::new().decompress(&z).is_err());
    }

    #[test]
    fn the_dictionary_is_used() {
        // zlib's header says a dictionary follows: FDICT is bit 5 of the second byte.
        let z = HeaderCompressor::new().compress(&encode_header_block(&h(&[("a", "b")]))).unwrap();
        assert_ne!(z[1] & 0x20, 0);
        let mut raw = Decompress::new(true);
        let mut out = Vec::with_capacity(100);
        let err = raw.decompress_vec(&z, &mut out, FlushDecompress::Sync).unwrap_err();
        let adler = ring_adler32(DICTIONARY);
        assert_eq!(err.needs_dictionary(), Some(adler));
    }

    fn ring_adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn frames_round_trip() {
        let mut enc = Encoder::default();
        let mut dec = Decoder::default();
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "error")]),
            },
            Frame::SynStream { stream_id: 3, associated: 0, priority: 7, flags: FLAG_FIN, headers: h(&[("x", "y")]) },
            Frame::SynReply { stream_id: 3, flags: 0, headers: Vec::new() },
            Frame::Headers { stream_id: 3, flags: 0, headers: h(&[("a", "b")]) },
            Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::from_static(b"hello") },
            Frame::Data { stream_id: 5, flags: 0, data: Bytes::new() },
            Frame::RstStream { stream_id: 3, status: RST_CANCEL },
            Frame::Ping(7),
            Frame::GoAway { last_stream_id: 9, status: 0 },
            Frame::WindowUpdate { stream_id: 1, delta: 1000 },
            Frame::Settings,
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&enc.encode(f).unwrap());
        }
        // Byte by byte: nothing comes out early.
        let mut fed = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            fed.extend_from_slice(&[*b]);
            if let Some(f) = dec.decode(&mut fed).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(fed.is_empty());
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut dec = Decoder::default();
        let mut v2 = BytesMut::from(&[0x80u8, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(dec.decode(&mut v2).is_err());
        let mut short_ping = BytesMut::from(&[0x80u8, 3, 0, 6, 0, 0, 0, 2, 0, 0][..]);
        assert!(Decoder::default().decode(&mut short_ping).is_err());
        let mut unknown = BytesMut::from(&[0x80u8, 3, 0, 42, 0, 0, 0, 0][..]);
        assert_eq!(Decoder::default().decode(&mut unknown).unwrap(), Some(Frame::Unknown(42)));
    }

    /// A client end for tests: encodes what it sends and decodes what comes back.
    pub struct TestClient {
        enc: Encoder,
        dec: Decoder,
        buf: BytesMut,
        io: tokio::io::DuplexStream,
    }

    impl TestClient {
        pub fn new(io: tokio::io::DuplexStream) -> TestClient {
            TestClient { enc: Encoder::default(), dec: Decoder::default(), buf: BytesMut::new(), io }
        }

        pub async fn send(&mut self, f: Frame) {
            let b = self.enc.encode(&f).unwrap();
            self.io.write_all(&b).await.unwrap();
        }

        pub async fn recv(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_session_replies_pings_and_carries_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut session = Session::start(server);
        let mut c = TestClient::new(client);
        c.send(Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: h(&[("streamtype", "stdin")]),
        })
        .await;
        assert_eq!(c.recv().await, Some(Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() }));
        let mut s = session.accept().await.unwrap();
        assert_eq!(s.header("streamtype"), Some("stdin"));
        c.send(Frame::Ping(3)).await;
        assert_eq!(c.recv().await, Some(Frame::Ping(3)));
        c.send(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"abc") }).await;
        c.send(Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }).await;
        assert_eq!(s.data.recv().await.unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(s.data.recv().await, None, "FIN ends the stream");
        assert!(s.writer.write(b"out").await);
        s.writer.finish().await;
        assert_eq!(c.recv().await, Some(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"out") }));
        assert_eq!(c.recv().await, Some(Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }));
        c.send(Frame::GoAway { last_stream_id: 0, status: 0 }).await;
        assert!(session.accept().await.is_none());
    }
}
