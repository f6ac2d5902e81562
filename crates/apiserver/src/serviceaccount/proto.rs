//! The protobuf `TokenRequest` kubectl 1.32+ sends for `kubectl create token`, turned
//! into the JSON it would have sent. Only the fields the server reads are kept: the
//! generated descriptor table in `decode` covers stored kinds, and TokenRequest is
//! never stored, so this small reader is cheaper than regenerating that table.
//!
//! Field numbers from upstream's `authentication/v1/generated.proto`: TokenRequest
//! {metadata 1, spec 2}; TokenRequestSpec {audiences 1, boundObjectRef 3,
//! expirationSeconds 4}; BoundObjectReference {kind 1, apiVersion 2, name 3, uID 4}.
//! The envelope is the magic `k8s\0` and a `runtime.Unknown` {typeMeta 1 {apiVersion 1,
//! kind 2}, raw 2, contentEncoding 3, contentType 4}.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("provided data does not appear to be a protobuf message, expected prefix \"k8s\\x00\"")]
    BadMagic,
    #[error("unexpected end of protobuf input")]
    Truncated,
    #[error("protobuf wire type {0} is not supported")]
    WireType(u8),
    #[error("protobuf string is not UTF-8")]
    Utf8,
    #[error("protobuf content encoding {0:?} is not supported")]
    Encoding(String),
}

/// One field of a message: its number and its payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.data.split_first().ok_or(ProtoError::Truncated)?;
            self.data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Truncated)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.data.len() < n {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ProtoError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let field = match wire {
            0 => Field::Varint(self.varint()?),
            1 => Field::Bytes(self.take(8)?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Truncated)?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Bytes(self.take(4)?),
            w => return Err(ProtoError::WireType(w)),
        };
        Ok(Some((number, field)))
    }
}

fn fields(data: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), ProtoError>> {
    let mut r = Reader { data };
    std::iter::from_fn(move || r.next().transpose())
}

fn text(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Utf8)
}

/// The `raw` message of the envelope, with its apiVersion and kind.
fn unwrap_envelope(body: &[u8]) -> Result<(String, String, &[u8]), ProtoError> {
    let inner = body.strip_prefix(b"k8s\0").ok_or(ProtoError::BadMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for f in fields(inner) {
        match f? {
            (1, Field::Bytes(tm)) => {
                for f in fields(tm) {
                    match f? {
                        (1, Field::Bytes(b)) => api_version = text(b)?,
                        (2, Field::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            (3, Field::Bytes(b)) if !b.is_empty() => return Err(ProtoError::Encoding(text(b)?)),
            _ => {}
        }
    }
    Ok((api_version, kind, raw))
}

/// Decodes a protobuf TokenRequest body into its JSON form.
pub fn decode_token_request(body: &[u8]) -> Result<Value, ProtoError> {
    let (api_version, kind, raw) = unwrap_envelope(body)?;
    let mut spec = Map::new();
    for f in fields(raw) {
        let (2, Field::Bytes(s)) = f? else { continue };
        for f in fields(s) {
            match f? {
                (1, Field::Bytes(b)) => {
                    let list = spec.entry("audiences").or_insert_with(|| json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(json!(text(b)?));
                    }
                }
                (3, Field::Bytes(r)) => {
                    let mut bound = Map::new();
                    for f in fields(r) {
                        let (n, Field::Bytes(b)) = f? else { continue };
                        let key = match n {
                            1 => "kind",
                            2 => "apiVersion",
                            3 => "name",
                            4 => "uid",
                            _ => continue,
                        };
                        bound.insert(key.into(), json!(text(b)?));
                    }
                    spec.insert("boundObjectRef".into(), Value::Object(bound));
                }
                // int64 as a two's-complement varint.
                (4, Field::Varint(v)) => {
                    spec.insert("expirationSeconds".into(), json!(v as i64));
                }
                _ => {}
            }
        }
    }
    Ok(json!({"apiVersion": api_version, "kind": kind, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn decodes_what_kubectl_sends() {
        let mut bound = Vec::new();
        bytes(1, b"Pod", &mut bound);
        bytes(2, b"v1", &mut bound);
        bytes(3, b"x", &mut bound);
        let mut spec = Vec::new();
        bytes(1, b"api", &mut spec);
        bytes(1, b"vault", &mut spec);
        bytes(3, &bound, &mut spec);
        varint(4 << 3, &mut spec);
        varint(600, &mut spec);
        let mut tr = Vec::new();
        bytes(1, b"", &mut tr);
        bytes(2, &spec, &mut tr);
        let mut tm = Vec::new();
        bytes(1, b"authentication.k8s.io/v1", &mut tm);
        bytes(2, b"TokenRequest", &mut tm);
        let mut body = b"k8s\0".to_vec();
        bytes(1, &tm, &mut body);
        bytes(2, &tr, &mut body);
        bytes(4, b"application/vnd.kubernetes.protobuf", &mut body);
        assert_eq!(
            decode_token_request(&body).unwrap(),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
                "audiences": ["api", "vault"], "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "x"}}})
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode_token_request(b"{}"), Err(ProtoError::BadMagic));
        assert_eq!(decode_token_request(b"k8s\0\x12\x05ab"), Err(ProtoError::Truncated));
        assert_eq!(decode_token_request(b"k8s\0\x0b"), Err(ProtoError::WireType(3)));
        let mut body = b"k8s\0".to_vec();
        bytes(3, b"gzip", &mut body);
        assert_eq!(decode_token_request(&body), Err(ProtoError::Encoding("gzip".into())));
    }
}
