//! HTTP plumbing shared by every handler: the response body type, JSON and `Status`
//! responses, bounded request bodies, and a body fed from a channel for watches.

use api::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::Value;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;
pub type Resp = Response<Body>;

/// A request body from any transport: a TLS connection's, or an in-process
/// client's (see [`crate::loopback`]).
pub type ReqBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type Req = http::Request<ReqBody>;

/// Bodies larger than this are refused with 413, as upstream refuses them.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn bytes_response(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn json(code: StatusCode, value: &Value) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_default();
    bytes_response(code, "application/json", body)
}

pub fn ok(value: &Value) -> Resp {
    json(StatusCode::OK, value)
}

pub fn created(value: &Value) -> Resp {
    json(StatusCode::CREATED, value)
}

/// The one place an [`ApiError`] becomes an HTTP answer.
pub fn error(e: &ApiError) -> Resp {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, &e.to_status());
    if let Some(s) = e.retry_after_seconds()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Adds `Warning: 299 - "text"` headers, which kubectl prints as warnings.
pub fn with_warnings(mut r: Resp, warnings: &[String]) -> Resp {
    for w in warnings {
        let text = w.replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// Reads a request body, refusing more than [`MAX_BODY`] bytes. An oversized body is
/// still read to its end (up to a bound) before the 413 goes out, so the client sees
/// the answer instead of a reset connection.
pub async fn read_body<B>(mut body: B) -> Result<Bytes, ApiError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the request body failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large("the request body is larger than 3 MiB; request entity too large"));
    }
    Ok(buf.freeze())
}

/// A response body whose chunks come from a channel: each chunk is flushed as it
/// arrives, and the response ends when the sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub fn boxed(rx: mpsc::Receiver<Bytes>) -> Body {
        ChannelBody { rx }.boxed_unsync()
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
