//! WebSocket (RFC 6455), as much as the streaming protocols need: the handshake
//! answer, frames in both directions (masked from clients), fragmented messages,
//! ping and close; and the Kubernetes channel framing on top (`channel.k8s.io` …
//! `v5.channel.k8s.io`): every message starts with its channel number, or with the
//! channel as an ASCII digit followed by base64 in the `base64.` variants.

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A message larger than this is refused: stdin and port-forward data come in
/// client-sized pieces (32 KiB in client-go).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub const OP_CONTINUATION: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// The close code of a normal end, which clients turn into end-of-file.
pub const CLOSE_NORMAL: u16 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("websocket: {0}")]
    Protocol(&'static str),
    #[error("websocket: a message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("websocket: {0}")]
    Io(#[from] std::io::Error),
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Bytes,
}

/// Encodes a frame; clients mask (`mask`), servers do not.
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Decodes one frame from the front of `buf`, if it is all there (unmasking it).
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set without an extension"));
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            if n > MAX_MESSAGE as u64 {
                return Err(WsError::TooLarge(n.try_into().unwrap_or(usize::MAX)));
            }
            (n as usize, 10)
        }
        n => (n as usize, 2),
    };
    if len > MAX_MESSAGE {
        return Err(WsError::TooLarge(len));
    }
    let mut key = None;
    if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        key = Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        at += 4;
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    buf.advance(at);
    let mut payload = buf.split_to(len);
    if let Some(key) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    let opcode = b0 & 0x0f;
    if opcode >= OP_CLOSE && (b0 & 0x80 == 0 || len > 125) {
        return Err(WsError::Protocol("a control frame must be whole and at most 125 bytes"));
    }
    Ok(Some(Frame { fin: b0 & 0x80 != 0, opcode, payload: payload.freeze() }))
}

/// A whole message, as the reader hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Bytes),
    Text(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<u16>),
}

/// Reads messages, joining fragments.
pub struct Reader<R> {
    io: R,
    buf: BytesMut,
    partial: Option<(u8, BytesMut)>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Reader<R> {
        Reader { io, buf: BytesMut::with_capacity(16 * 1024), partial: None }
    }

    /// The next message; `None` when the connection ended without a close frame.
    pub async fn next(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            while let Some(frame) = decode(&mut self.buf)? {
                if let Some(m) = self.assemble(frame)? {
                    return Ok(Some(m));
                }
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    fn assemble(&mut self, frame: Frame) -> Result<Option<Message>, WsError> {
        match frame.opcode {
            OP_PING => return Ok(Some(Message::Ping(frame.payload))),
            OP_PONG => return Ok(Some(Message::Pong(frame.payload))),
            OP_CLOSE => {
                let code = (frame.payload.len() >= 2).then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                return Ok(Some(Message::Close(code)));
            }
            OP_CONTINUATION => {
                let Some((_, data)) = self.partial.as_mut() else {
                    return Err(WsError::Protocol("a continuation without a message to continue"));
                };
                data.extend_from_slice(&frame.payload);
                if data.len() > MAX_MESSAGE {
                    return Err(WsError::TooLarge(data.len()));
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("a new message inside a fragmented one"));
                }
                self.partial = Some((frame.opcode, BytesMut::from(&frame.payload[..])));
            }
            _ => return Err(WsError::Protocol("unknown opcode")),
        }
        if !frame.fin {
            return Ok(None);
        }
        let Some((opcode, data)) = self.partial.take() else { return Ok(None) };
        Ok(Some(if opcode == OP_TEXT { Message::Text(data.freeze()) } else { Message::Binary(data.freeze()) }))
    }
}

/// Writes unmasked frames (the server side).
pub struct Writer<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Writer<W> {
        Writer { io }
    }

    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.io.write_all(&encode(opcode, payload, None)).await?;
        self.io.flush().await
    }

    pub async fn close(&mut self, code: u16, reason: &str) -> std::io::Result<()> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
        self.send(OP_CLOSE, &p).await?;
        self.io.shutdown().await
    }
}

/// What the writer of a [`Conn`] sends.
#[derive(Debug)]
pub enum Outgoing {
    Message(u8, Vec<u8>),
    /// A close frame with this code; the connection ends after it.
    Close(u16),
}

/// A server-side connection after the handshake: data messages come in on
/// `incoming`, anything goes out through `out`; pings are answered.
pub struct Conn {
    pub out: tokio::sync::mpsc::Sender<Outgoing>,
    pub incoming: tokio::sync::mpsc::Receiver<Message>,
    /// Turns true once the client's side has ended.
    pub closed: tokio::sync::watch::Receiver<bool>,
}

impl Conn {
    pub fn start<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Conn {
        let (rd, wr) = tokio::io::split(io);
        let (out, mut out_rx) = tokio::sync::mpsc::channel::<Outgoing>(64);
        let (in_tx, incoming) = tokio::sync::mpsc::channel::<Message>(64);
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut w = Writer::new(wr);
            while let Some(o) = out_rx.recv().await {
                let done = match o {
                    Outgoing::Message(op, payload) => w.send(op, &payload).await.is_err(),
                    Outgoing::Close(code) => {
                        let _ = w.close(code, "").await;
                        true
                    }
                };
                if done {
                    break;
                }
            }
        });
        let pong = out.clone();
        tokio::spawn(async move {
            let mut r = Reader::new(rd);
            let mut deliver = true;
            loop {
                match r.next().await {
                    Ok(Some(Message::Ping(p))) => {
                        if pong.send(Outgoing::Message(OP_PONG, p.to_vec())).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(Message::Pong(_))) => {}
                    Ok(Some(Message::Close(_))) => {
                        let _ = pong.send(Outgoing::Close(CLOSE_NORMAL)).await;
                        break;
                    }
                    Ok(Some(m)) => {
                        // Data nobody reads any more is dropped; pings still get answers.
                        if deliver && in_tx.send(m).await.is_err() {
                            deliver = false;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket ended");
                        break;
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        Conn { out, incoming, closed }
    }

    /// The binary messages as one byte stream both ways (message boundaries carry no
    /// meaning), as the `SPDY/3.1+portforward.k8s.io` tunnel wants.
    pub fn into_byte_stream(self) -> tokio::io::DuplexStream {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let (mut rd, mut wr) = tokio::io::split(ours);
        let Conn { out, mut incoming, .. } = self;
        tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                if let Message::Binary(b) = m
                    && wr.write_all(&b).await.is_err()
                {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out.send(Outgoing::Message(OP_BINARY, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = out.send(Outgoing::Close(CLOSE_NORMAL)).await;
        });
        theirs
    }
}

/// How channel messages are framed in one Kubernetes subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelCodec {
    /// Binary messages: `[channel, data...]`.
    Binary,
    /// Text messages: `'0' + channel` then base64 of the data.
    Base64,
}

impl ChannelCodec {
    pub fn for_protocol(protocol: &str) -> ChannelCodec {
        if protocol.contains("base64.") { ChannelCodec::Base64 } else { ChannelCodec::Binary }
    }

    /// The opcode and payload of a message on `channel`.
    pub fn encode(self, channel: u8, data: &[u8]) -> (u8, Vec<u8>) {
        match self {
            ChannelCodec::Binary => {
                let mut v = Vec::with_capacity(data.len() + 1);
                v.push(channel);
                v.extend_from_slice(data);
                (OP_BINARY, v)
            }
            ChannelCodec::Base64 => {
                let mut v = vec![b'0'.wrapping_add(channel)];
                v.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(data).as_bytes());
                (OP_TEXT, v)
            }
        }
    }

    /// The channel and data of a received message; `None` for an empty or undecodable one.
    pub fn decode(self, message: &Message) -> Option<(u8, Bytes)> {
        match (self, message) {
            (ChannelCodec::Binary, Message::Binary(b)) if !b.is_empty() => Some((b[0], b.slice(1..))),
            (ChannelCodec::Base64, Message::Text(t)) if !t.is_empty() => {
                let data = base64::engine::general_purpose::STANDARD.decode(&t[1..]).ok()?;
                Some((t[0].wrapping_sub(b'0'), Bytes::from(data)))
            }
            _ => None,
        }
    }
}

/// Picks the first subprotocol the client offers (`Sec-WebSocket-Protocol`, comma
/// separated, possibly over several headers) that we serve.
pub fn choose_protocol<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    supported: &[&'static str],
) -> Option<&'static str> {
    offered
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .find_map(|p| supported.iter().copied().find(|s| *s == p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn frames_round_trip_at_every_length_encoding() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut buf = BytesMut::from(&encode(OP_BINARY, &payload, mask)[..]);
                // Nothing comes out of a partial frame.
                let mut short = BytesMut::from(&buf[..buf.len() - 1]);
                if len > 0 {
                    assert_eq!(decode(&mut short).unwrap(), None);
                }
                let f = decode(&mut buf).unwrap().unwrap();
                assert_eq!((f.fin, f.opcode, &f.payload[..]), (true, OP_BINARY, &payload[..]));
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut reserved = BytesMut::from(&[0xf2u8, 0x00][..]);
        assert!(decode(&mut reserved).is_err());
        let mut big_ping = BytesMut::from(&encode(OP_PING, &[0u8; 126], None)[..]);
        assert!(decode(&mut big_ping).is_err());
        let mut huge = BytesMut::from(&[0x82u8, 127, 0xff, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(decode(&mut huge), Err(WsError::TooLarge(_))));
    }

    #[tokio::test]
    async fn fragments_join_and_control_frames_pass_between() {
        let mut wire = Vec::new();
        let mut first = encode(OP_TEXT, b"hel", Some([9, 9, 9, 9]));
        first[0] &= 0x7f; // not final
        wire.extend(first);
        wire.extend(encode(OP_PING, b"p", Some([1, 1, 1, 1])));
        wire.extend(encode(OP_CONTINUATION, b"lo", Some([7, 7, 7, 7])));
        wire.extend(encode(OP_CLOSE, &1000u16.to_be_bytes(), Some([0, 0, 0, 0])));
        let mut r = Reader::new(&wire[..]);
        assert_eq!(r.next().await.unwrap(), Some(Message::Ping(Bytes::from_static(b"p"))));
        assert_eq!(r.next().await.unwrap(), Some(Message::Text(Bytes::from_static(b"hello"))));
        assert_eq!(r.next().await.unwrap(), Some(Message::Close(Some(1000))));
        assert_eq!(r.next().await.unwrap(), None);
        let stray_frame = encode(OP_CONTINUATION, b"x", None);
        let mut stray = Reader::new(&stray_frame[..]);
        assert!(stray.next().await.is_err());
    }

    #[test]
    fn channel_framing_for_every_protocol() {
        for (protocol, codec) in [
            ("channel.k8s.io", ChannelCodec::Binary),
            ("v4.channel.k8s.io", ChannelCodec::Binary),
            ("v5.channel.k8s.io", ChannelCodec::Binary),
            ("base64.channel.k8s.io", ChannelCodec::Base64),
            ("v4.base64.channel.k8s.io", ChannelCodec::Base64),
        ] {
            assert_eq!(ChannelCodec::for_protocol(protocol), codec);
            let (op, payload) = codec.encode(2, b"err\n");
            let m = if op == OP_TEXT { Message::Text(payload.into()) } else { Message::Binary(payload.into()) };
            assert_eq!(codec.decode(&m), Some((2, Bytes::from_static(b"err\n"))), "{protocol}");
        }
        assert_eq!(ChannelCodec::Base64.encode(1, b"hi").1, b"1aGk=");
        assert_eq!(ChannelCodec::Binary.encode(255, &[0]).1, [255, 0]);
        assert_eq!(ChannelCodec::Binary.decode(&Message::Binary(Bytes::new())), None);
        assert_eq!(ChannelCodec::Base64.decode(&Message::Text(Bytes::from_static(b"0!!"))), None);
    }

    #[test]
    fn protocols_are_chosen_in_the_clients_order() {
        let ours = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
        assert_eq!(choose_protocol(["v4.channel.k8s.io, v5.channel.k8s.io"], &ours), Some("v4.channel.k8s.io"));
        assert_eq!(choose_protocol(["x", "channel.k8s.io"], &ours), Some("channel.k8s.io"));
        assert_eq!(choose_protocol(["v9.channel.k8s.io"], &ours), None);
    }
}
