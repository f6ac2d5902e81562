//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) turned into
//! the JSON object the same client would have sent as `application/json`.
//!
//! kubectl 1.32+ writes typed objects (`create namespace`, `create deployment`, ...) as
//! the magic `k8s\0` followed by a `runtime.Unknown` envelope whose `raw` field holds the
//! typed message. The rest of the server only speaks JSON, so [`decode`] renders the
//! message through a generated descriptor table (`descriptors.rs`, produced by
//! `tools/gen_protobuf_descriptors.py` from upstream's `generated.proto` and Go types)
//! with encoding/json's rules:
//!
//! * Go's protobuf encoder writes every non-pointer field, even `""`, `0` and `false`;
//!   fields that are Go values with `omitempty` drop those zeros again ([`Label::OmitZero`]),
//!   while pointers and fields without `omitempty` keep them (`replicas: 0`).
//! * `json:",inline"` fields (`Volume.volumeSource`, `Probe.handler`,
//!   `SecretKeySelector.localObjectReference`, ...) merge into their parent.
//! * apimachinery's special types take their JSON forms: Time, MicroTime, Duration,
//!   Quantity, IntOrString, RawExtension and FieldsV1.
//!
//! Known differences from upstream: quantities are passed through as sent (not
//! re-canonicalised), a singular message field sent twice keeps the last copy instead of
//! merging, and proto groups (wire types 3 and 4, never produced by Go) are rejected.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

#[path = "descriptors.rs"]
mod descriptors;

use descriptors::{MESSAGES, ROOTS};

/// The media type this module decodes.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// The schema has no recursive messages and its deepest path is about a dozen levels
/// (pod template affinity terms); this bound only stops hostile input early.
const MAX_DEPTH: usize = 32;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("provided data does not appear to be a protobuf message, expected prefix \"k8s\\x00\"")]
    BadMagic,
    #[error("empty protobuf body after the \"k8s\\x00\" prefix")]
    Empty,
    #[error("protobuf object has no kind or apiVersion (kind {kind:?}, apiVersion {api_version:?})")]
    MissingKind { api_version: String, kind: String },
    #[error("protobuf decoding of kind {kind:?} in apiVersion {api_version:?} is not supported")]
    UnknownKind { api_version: String, kind: String },
    #[error("protobuf content encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    #[error("object {object}: {}{problem}", field_prefix(.field))]
    Invalid { object: String, field: String, problem: Problem },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() { String::new() } else { format!("field {field}: ") }
}

/// What was wrong at the place a [`DecodeError::Invalid`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("unexpected end of input")]
    Truncated,
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("illegal field number {0}")]
    IllegalFieldNumber(u64),
    #[error("illegal wire type {0}")]
    IllegalWireType(u8),
    #[error("wire type {0} (group) is not supported")]
    GroupWireType(u8),
    #[error("wrong wire type {got}, expected {expected}")]
    WrongWireType { expected: u8, got: u8 },
    #[error("messages nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("embedded JSON is invalid: {0}")]
    InvalidJson(String),
    #[error("IntOrString type {0} is neither 0 (int) nor 1 (string)")]
    IntOrStringType(i64),
    #[error("time {0}s since the epoch is outside the years 0000-9999")]
    TimeOutOfRange(i64),
    #[error("number {0} cannot be represented in JSON")]
    NonFinite(String),
}

// ---- descriptor types (the table itself is in descriptors.rs) ----

/// How a field's value is represented on the wire and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Int32,
    Int64,
    Bool,
    /// base64 in JSON, as encoding/json renders `[]byte`.
    Bytes,
    Double,
    /// An ordinary message: an index into `MESSAGES`.
    M(u16),
    /// meta/v1 Time: RFC 3339 with seconds, `null` when zero.
    Time,
    /// meta/v1 MicroTime: RFC 3339 with 6 fractional digits, `null` when zero.
    MicroTime,
    /// meta/v1 Duration: Go's duration string (`1h0m0s`). No served kind has one in
    /// 1.33, but the generator emits it as soon as one does.
    #[cfg_attr(not(test), allow(dead_code))]
    Duration,
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: a number or a string.
    IntOrString,
    /// runtime.RawExtension: the embedded JSON.
    RawExtension,
    /// meta/v1 FieldsV1: the embedded JSON.
    FieldsV1,
}

/// How a field appears: once, several times, as map entries, or merged into its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// Emitted whenever present, zero or not: Go pointers, fields without `omitempty`,
    /// and messages.
    Optional,
    /// A Go value with `omitempty`: `""`, `0`, `false` and empty bytes are dropped.
    OmitZero,
    Repeated,
    /// `map<string, kind>`, a JSON object.
    Map,
    /// A `json:",inline"` message: its fields go to the parent object.
    Inline,
}

#[derive(Debug)]
struct Field {
    number: u32,
    json: &'static str,
    kind: Kind,
    label: Label,
}

/// Keeps the generated table short.
const fn f(number: u32, json: &'static str, kind: Kind, label: Label) -> Field {
    Field { number, json, kind, label }
}

#[derive(Debug)]
struct Message {
    /// The full proto name; the table is sorted by it (and a debugger shows it).
    #[cfg_attr(not(test), allow(dead_code))]
    name: &'static str,
    /// Sorted by number.
    fields: &'static [Field],
}

impl Message {
    fn field(&self, number: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields.binary_search_by_key(&number, |f| f.number).ok().map(|i| &fields[i])
    }
}

// ---- the wire reader ----

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes. Every read checks the remaining length, so no
/// input can make it index out of bounds.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64, Problem> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(Problem::Truncated);
            };
            self.buf = rest;
            // The tenth byte may only carry the 64th bit.
            if i == 9 && b > 1 {
                return Err(Problem::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(Problem::VarintOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Problem> {
        if n > self.buf.len() {
            return Err(Problem::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], Problem> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| Problem::Truncated)?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], Problem> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(out)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), Problem> {
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        match u32::try_from(number) {
            Ok(n) if n > 0 && n < (1 << 29) => {}
            _ => return Err(Problem::IllegalFieldNumber(number)),
        }
        match wire {
            VARINT | FIXED64 | LEN | FIXED32 => Ok((number as u32, wire)),
            START_GROUP | END_GROUP => Err(Problem::GroupWireType(wire)),
            _ => Err(Problem::IllegalWireType(wire)),
        }
    }

    /// Steps over a field this decoder does not know, as Go's unmarshaller does.
    fn skip(&mut self, wire: u8) -> Result<(), Problem> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP | END_GROUP => Err(Problem::GroupWireType(wire)),
            _ => Err(Problem::IllegalWireType(wire)),
        }
    }
}

fn expect(wire: u8, expected: u8) -> Result<(), Problem> {
    if wire == expected { Ok(()) } else { Err(Problem::WrongWireType { expected, got: wire }) }
}

/// A [`Problem`] with the JSON path down to where it happened, built while unwinding.
#[derive(Debug)]
struct Fault {
    /// Innermost first.
    path: Vec<String>,
    problem: Problem,
}

impl From<Problem> for Fault {
    fn from(problem: Problem) -> Self {
        Fault { path: Vec::new(), problem }
    }
}

impl Fault {
    fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
        out
    }

    fn into_error(self, object: String) -> DecodeError {
        DecodeError::Invalid { field: self.path(), object, problem: self.problem }
    }
}

// ---- decoding ----

/// Decodes a `k8s\0` + `runtime.Unknown` body into the JSON object, with `apiVersion`
/// and `kind` taken from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let data = body.strip_prefix(MAGIC).ok_or(DecodeError::BadMagic)?;
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    let envelope = Envelope::parse(data).map_err(|f| f.into_error("runtime.Unknown".to_string()))?;
    if envelope.kind.is_empty() || envelope.api_version.is_empty() {
        return Err(DecodeError::MissingKind { api_version: envelope.api_version, kind: envelope.kind });
    }
    if !envelope.content_encoding.is_empty() {
        return Err(DecodeError::UnsupportedEncoding(envelope.content_encoding));
    }
    let Some(&(_, _, index)) =
        ROOTS.iter().find(|(v, k, _)| (*v == "*" || *v == envelope.api_version) && *k == envelope.kind)
    else {
        return Err(DecodeError::UnknownKind { api_version: envelope.api_version, kind: envelope.kind });
    };
    let mut object = decode_message(&MESSAGES[usize::from(index)], envelope.raw, 0)
        .map_err(|f| f.into_error(format!("{} {}", envelope.api_version, envelope.kind)))?;
    object.insert("apiVersion".to_string(), Value::String(envelope.api_version));
    object.insert("kind".to_string(), Value::String(envelope.kind));
    Ok(Value::Object(object))
}

/// `runtime.Unknown`: {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
/// 4: contentType}. The content type is ignored, as upstream's serializer does.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, Fault> {
        let mut envelope =
            Envelope { api_version: String::new(), kind: String::new(), raw: &[], content_encoding: String::new() };
        let mut r = Reader::new(data);
        while !r.is_empty() {
            let (number, wire) = r.key()?;
            match number {
                1 => {
                    expect(wire, LEN).map_err(|p| Fault::from(p).at("typeMeta"))?;
                    let type_meta = r.len_delimited().map_err(|p| Fault::from(p).at("typeMeta"))?;
                    let mut t = Reader::new(type_meta);
                    while !t.is_empty() {
                        let (n, w) = t.key().map_err(|p| Fault::from(p).at("typeMeta"))?;
                        let name = match n {
                            1 => "apiVersion",
                            2 => "kind",
                            _ => {
                                t.skip(w).map_err(|p| Fault::from(p).at("typeMeta"))?;
                                continue;
                            }
                        };
                        let value = string_field(&mut t, w).map_err(|p| Fault::from(p).at(name).at("typeMeta"))?;
                        if n == 1 {
                            envelope.api_version = value;
                        } else {
                            envelope.kind = value;
                        }
                    }
                }
                2 => {
                    expect(wire, LEN).map_err(|p| Fault::from(p).at("raw"))?;
                    envelope.raw = r.len_delimited().map_err(|p| Fault::from(p).at("raw"))?;
                }
                3 => {
                    envelope.content_encoding =
                        string_field(&mut r, wire).map_err(|p| Fault::from(p).at("contentEncoding"))?
                }
                4 => drop(string_field(&mut r, wire).map_err(|p| Fault::from(p).at("contentType"))?),
                _ => r.skip(wire)?,
            }
        }
        Ok(envelope)
    }
}

fn string_field(r: &mut Reader<'_>, wire: u8) -> Result<String, Problem> {
    expect(wire, LEN)?;
    // Go does not validate UTF-8 here and encoding/json then writes U+FFFD for bad bytes.
    Ok(String::from_utf8_lossy(r.len_delimited()?).into_owned())
}

fn decode_message(message: &Message, data: &[u8], depth: usize) -> Result<Map<String, Value>, Fault> {
    if depth > MAX_DEPTH {
        return Err(Problem::TooDeep.into());
    }
    let mut out = Map::new();
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (number, wire) = r.key()?;
        let Some(field) = message.field(number) else {
            r.skip(wire)?;
            continue;
        };
        decode_field(field, wire, &mut r, &mut out, depth)?;
    }
    Ok(out)
}

fn decode_field(
    field: &Field,
    wire: u8,
    r: &mut Reader<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), Fault> {
    let key = field.json;
    match field.label {
        Label::Repeated => {
            let index = match out.get(key) {
                Some(Value::Array(a)) => a.len(),
                _ => 0,
            };
            if wire == LEN && is_packable(field.kind) {
                // Go's unmarshaller takes packed numbers as well as one per key.
                let packed = r.len_delimited().map_err(|p| Fault::from(p).at(key))?;
                let mut p = Reader::new(packed);
                let wire = if field.kind == Kind::Double { FIXED64 } else { VARINT };
                let mut i = index;
                while !p.is_empty() {
                    let value =
                        decode_value(field.kind, wire, &mut p, depth).map_err(|f| f.at(format!("[{i}]")).at(key))?;
                    push(out, key, value);
                    i += 1;
                }
            } else {
                let value = decode_value(field.kind, wire, r, depth).map_err(|f| f.at(format!("[{index}]")).at(key))?;
                push(out, key, value);
            }
        }
        Label::Map => {
            expect(wire, LEN).map_err(|p| Fault::from(p).at(key))?;
            let entry = r.len_delimited().map_err(|p| Fault::from(p).at(key))?;
            let (k, v) = decode_map_entry(field.kind, entry, depth).map_err(|f| f.at(key))?;
            match out.get_mut(key) {
                Some(Value::Object(m)) => {
                    m.insert(k, v);
                }
                _ => {
                    let mut m = Map::new();
                    m.insert(k, v);
                    out.insert(key.to_string(), Value::Object(m));
                }
            }
        }
        Label::Inline => {
            let value = decode_value(field.kind, wire, r, depth).map_err(|f| f.at(key))?;
            if let Value::Object(fields) = value {
                out.extend(fields);
            }
        }
        Label::Optional | Label::OmitZero => {
            let value = decode_value(field.kind, wire, r, depth).map_err(|f| f.at(key))?;
            if field.label == Label::OmitZero && is_zero(&value) {
                // A later zero overrides an earlier value: the last one wins in protobuf.
                out.remove(key);
            } else {
                out.insert(key.to_string(), value);
            }
        }
    }
    Ok(())
}

fn push(out: &mut Map<String, Value>, key: &str, value: Value) {
    match out.get_mut(key) {
        Some(Value::Array(a)) => a.push(value),
        _ => {
            out.insert(key.to_string(), Value::Array(vec![value]));
        }
    }
}

fn is_packable(kind: Kind) -> bool {
    matches!(kind, Kind::Int32 | Kind::Int64 | Kind::Bool | Kind::Double)
}

/// Zero as encoding/json's `omitempty` sees it for the scalars it applies to.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// One `map<string, kind>` entry: {1: key, 2: value}; a missing part is its zero value.
fn decode_map_entry(kind: Kind, data: &[u8], depth: usize) -> Result<(String, Value), Fault> {
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (number, wire) = r.key()?;
        match number {
            1 => key = string_field(&mut r, wire)?,
            2 => value = Some(decode_value(kind, wire, &mut r, depth).map_err(|f| f.at(key.clone()))?),
            _ => r.skip(wire)?,
        }
    }
    let value = match value {
        Some(v) => v,
        None => zero_value(kind, depth).map_err(|f| f.at(key.clone()))?,
    };
    Ok((key, value))
}

fn zero_value(kind: Kind, depth: usize) -> Result<Value, Fault> {
    match kind {
        Kind::String | Kind::Bytes => Ok(Value::String(String::new())),
        Kind::Int32 | Kind::Int64 => Ok(Value::from(0)),
        Kind::Bool => Ok(Value::Bool(false)),
        Kind::Double => Ok(Value::from(0.0)),
        _ => render_message(kind, &[], depth),
    }
}

fn decode_value(kind: Kind, wire: u8, r: &mut Reader<'_>, depth: usize) -> Result<Value, Fault> {
    Ok(match kind {
        Kind::String => Value::String(string_field(r, wire)?),
        // Go truncates an over-long varint to the field's width rather than failing.
        Kind::Int32 => {
            expect(wire, VARINT)?;
            Value::from(r.varint()? as i32)
        }
        Kind::Int64 => {
            expect(wire, VARINT)?;
            Value::from(r.varint()? as i64)
        }
        Kind::Bool => {
            expect(wire, VARINT)?;
            Value::Bool(r.varint()? != 0)
        }
        Kind::Bytes => {
            expect(wire, LEN)?;
            Value::String(BASE64.encode(r.len_delimited()?))
        }
        Kind::Double => {
            expect(wire, FIXED64)?;
            let v = f64::from_le_bytes(r.fixed64()?);
            if !v.is_finite() {
                return Err(Problem::NonFinite(v.to_string()).into());
            }
            Value::from(v)
        }
        _ => {
            expect(wire, LEN)?;
            let data = r.len_delimited()?;
            render_message(kind, data, depth)?
        }
    })
}

/// An ordinary or special message kind, from its bytes.
fn render_message(kind: Kind, data: &[u8], depth: usize) -> Result<Value, Fault> {
    match kind {
        Kind::M(index) => {
            // In range: checked for the whole table by `descriptor_table_is_consistent`.
            Ok(Value::Object(decode_message(&MESSAGES[usize::from(index)], data, depth + 1)?))
        }
        Kind::Time => time(data, false),
        Kind::MicroTime => time(data, true),
        Kind::Duration => {
            let mut nanos = 0i64;
            each_field(data, |number, wire, r| {
                if number == 1 {
                    expect(wire, VARINT).map_err(|p| Fault::from(p).at("duration"))?;
                    nanos = r.varint().map_err(|p| Fault::from(p).at("duration"))? as i64;
                    return Ok(true);
                }
                Ok(false)
            })?;
            Ok(Value::String(go_duration(nanos)))
        }
        Kind::Quantity => {
            // A Quantity without its string is Go's zero Quantity, which prints as "0".
            let mut s = String::from("0");
            each_field(data, |number, wire, r| {
                if number == 1 {
                    s = string_field(r, wire).map_err(|p| Fault::from(p).at("string"))?;
                    return Ok(true);
                }
                Ok(false)
            })?;
            Ok(Value::String(s))
        }
        Kind::IntOrString => {
            let (mut ty, mut int_val, mut str_val) = (0i64, 0i32, String::new());
            each_field(data, |number, wire, r| {
                match number {
                    1 => {
                        expect(wire, VARINT).map_err(|p| Fault::from(p).at("type"))?;
                        ty = r.varint().map_err(|p| Fault::from(p).at("type"))? as i64;
                    }
                    2 => {
                        expect(wire, VARINT).map_err(|p| Fault::from(p).at("intVal"))?;
                        int_val = r.varint().map_err(|p| Fault::from(p).at("intVal"))? as i32;
                    }
                    3 => str_val = string_field(r, wire).map_err(|p| Fault::from(p).at("strVal"))?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            match ty {
                0 => Ok(Value::from(int_val)),
                1 => Ok(Value::String(str_val)),
                other => Err(Problem::IntOrStringType(other).into()),
            }
        }
        Kind::RawExtension | Kind::FieldsV1 => {
            let mut raw: Option<&[u8]> = None;
            each_field(data, |number, wire, r| {
                if number == 1 {
                    expect(wire, LEN).map_err(|p| Fault::from(p).at("raw"))?;
                    raw = Some(r.len_delimited().map_err(|p| Fault::from(p).at("raw"))?);
                    return Ok(true);
                }
                Ok(false)
            })?;
            match raw {
                // Upstream writes `null` for a nil Raw; an empty one is read the same way
                // rather than failing the whole object.
                None | Some([]) => Ok(Value::Null),
                Some(bytes) => serde_json::from_slice(bytes)
                    .map_err(|e| Fault::from(Problem::InvalidJson(e.to_string())).at("raw")),
            }
        }
        Kind::String | Kind::Int32 | Kind::Int64 | Kind::Bool | Kind::Bytes | Kind::Double => zero_value(kind, depth),
    }
}

/// Walks a small special message, handing each field to `visit`, which says whether it
/// consumed the value; unconsumed fields are skipped.
fn each_field<'a>(
    data: &'a [u8],
    mut visit: impl FnMut(u32, u8, &mut Reader<'a>) -> Result<bool, Fault>,
) -> Result<(), Fault> {
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (number, wire) = r.key()?;
        if !visit(number, wire, &mut r)? {
            r.skip(wire)?;
        }
    }
    Ok(())
}

/// Seconds from 0001-01-01T00:00:00Z to the Unix epoch: Go's zero `time.Time`.
const GO_ZERO_TIME: i64 = -62_135_596_800;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range RFC 3339 can write.
const MIN_RFC3339: i64 = -62_167_219_200;
const MAX_RFC3339: i64 = 253_402_300_799;

/// meta/v1 Time and MicroTime: `Timestamp{1: seconds, 2: nanos}`; an empty message is
/// Go's zero time, which JSON writes as `null`. Time keeps whole seconds only, as its
/// protobuf unmarshaller does; MicroTime truncates to microseconds.
fn time(data: &[u8], micro: bool) -> Result<Value, Fault> {
    if data.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    each_field(data, |number, wire, r| {
        match number {
            1 => {
                expect(wire, VARINT).map_err(|p| Fault::from(p).at("seconds"))?;
                seconds = r.varint().map_err(|p| Fault::from(p).at("seconds"))? as i64;
            }
            2 => {
                expect(wire, VARINT).map_err(|p| Fault::from(p).at("nanos"))?;
                nanos = i64::from(r.varint().map_err(|p| Fault::from(p).at("nanos"))? as i32);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !micro {
        nanos = 0;
    }
    // Go's time.Unix carries nanoseconds outside [0, 1e9) into the seconds.
    let seconds = seconds.checked_add(nanos.div_euclid(1_000_000_000)).ok_or(Problem::TimeOutOfRange(seconds))?;
    let micros = nanos.rem_euclid(1_000_000_000) / 1_000;
    if seconds == GO_ZERO_TIME && micros == 0 {
        return Ok(Value::Null);
    }
    if !(MIN_RFC3339..=MAX_RFC3339).contains(&seconds) {
        return Err(Problem::TimeOutOfRange(seconds).into());
    }
    let mut out = api::time::format_rfc3339(seconds);
    if micro {
        // `...05Z` becomes `...05.123456Z`.
        out.pop();
        out.push_str(&format!(".{micros:06}Z"));
    }
    Ok(Value::String(out))
}

/// Go's `time.Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (int, frac) = split_fraction(u, prec);
        return format!("{sign}{int}{frac}{unit}");
    }
    let (whole_seconds, frac) = split_fraction(u, 9);
    let (hours, minutes, seconds) = (whole_seconds / 3600, whole_seconds / 60 % 60, whole_seconds % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}{frac}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}{frac}s")
    } else {
        format!("{sign}{seconds}{frac}s")
    }
}

/// `v / 10^prec` and its fraction as `.ddd` without trailing zeros (empty when zero).
fn split_fraction(v: u64, prec: u32) -> (u64, String) {
    let scale = 10u64.pow(prec);
    let fraction = v % scale;
    if fraction == 0 {
        return (v / scale, String::new());
    }
    let digits = format!("{fraction:0width$}", width = prec as usize);
    (v / scale, format!(".{}", digits.trim_end_matches('0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ---- a tiny encoder for hand-made bodies ----

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn tag(number: u32, wire: u8, out: &mut Vec<u8>) {
        varint(u64::from(number) << 3 | u64::from(wire), out);
    }

    fn bytes_field(number: u32, data: &[u8], out: &mut Vec<u8>) {
        tag(number, LEN, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
        tag(number, VARINT, out);
        varint(v, out);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut out = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut out);
        bytes_field(2, raw, &mut out);
        bytes_field(3, b"", &mut out);
        bytes_field(4, b"", &mut out);
        out
    }

    fn meta(name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        bytes_field(1, name.as_bytes(), &mut m);
        m
    }

    // ---- fixtures captured from kubectl 1.33 ----

    const FIXTURES: &[&str] = &[
        "configmap",
        "cronjob",
        "deployment",
        "deployment-zero-replicas",
        "job",
        "namespace",
        "poddisruptionbudget",
        "poddisruptionbudget-percent",
        "secret-docker-registry",
        "secret-generic",
        "secret-tls",
        "service-clusterip",
        "service-nodeport",
        "serviceaccount",
    ];

    fn fixture_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf")
    }

    fn fixture(name: &str) -> (Vec<u8>, Value) {
        let dir = fixture_dir();
        let body = std::fs::read(dir.join(format!("{name}.pb"))).expect("fixture body");
        let json = std::fs::read(dir.join(format!("{name}.json"))).expect("fixture json");
        (body, serde_json::from_slice(&json).expect("fixture json parses"))
    }

    #[test]
    fn kubectl_bodies_decode_to_the_json_kubectl_sends() {
        for name in FIXTURES {
            let (body, want) = fixture(name);
            let got = decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}: got {}", serde_json::to_string_pretty(&got).unwrap_or_default());
        }
    }

    #[test]
    fn every_fixture_is_listed() {
        let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
            .expect("fixture dir")
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".pb").map(str::to_string))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, FIXTURES);
    }

    #[test]
    fn mangled_fixtures_never_panic() {
        // Deterministic xorshift so failures reproduce.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mangle = |mut b: Vec<u8>, next: &mut dyn FnMut() -> u64| {
            for _ in 0..1 + next() % 4 {
                let i = (next() % b.len().max(1) as u64) as usize;
                match next() % 4 {
                    0 if i < b.len() => b[i] ^= 1 << (next() % 8),
                    1 if i < b.len() => b[i] = next() as u8,
                    2 if i < b.len() => drop(b.remove(i)),
                    _ => b.insert(i.min(b.len()), next() as u8),
                }
            }
            b
        };
        let (mut outer_ok, mut inner_ok) = (0usize, 0usize);
        for name in FIXTURES {
            let (body, want) = fixture(name);
            // A cut at a field boundary is a valid (smaller) message; elsewhere an error.
            for cut in 0..body.len() {
                outer_ok += usize::from(decode(&body[..cut]).is_ok());
            }
            let raw = Envelope::parse(&body[MAGIC.len()..]).map(|e| e.raw.to_vec()).unwrap_or_default();
            let (api_version, kind) = (want["apiVersion"].as_str().unwrap_or(""), want["kind"].as_str().unwrap_or(""));
            for _ in 0..5_000 {
                // Mangle the whole body, which mostly breaks the envelope's framing ...
                outer_ok += usize::from(decode(&mangle(body.clone(), &mut next)).is_ok());
                // ... and the object inside a well-framed envelope, to reach deeper fields.
                let inner = mangle(raw.clone(), &mut next);
                inner_ok += usize::from(decode(&envelope(api_version, kind, &inner)).is_ok());
            }
        }
        // Not panicking is the point; these only show both paths reach success too.
        assert!(outer_ok > 0 && inner_ok > 0, "{outer_ok} {inner_ok}");
    }

    #[test]
    fn truncated_fixture_names_the_object_and_field() {
        let (body, _) = fixture("deployment");
        // Cut inside the envelope's raw bytes.
        let err = decode(&body[..body.len() - 40]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid { object: "runtime.Unknown".into(), field: "raw".into(), problem: Problem::Truncated }
        );
        assert_eq!(err.to_string(), "object runtime.Unknown: field raw: unexpected end of input");
        // A well-framed envelope around a cut Deployment: the status message is short.
        let raw = Envelope::parse(&body[MAGIC.len()..]).map(|e| e.raw.to_vec()).unwrap_or_default();
        let err = decode(&envelope("apps/v1", "Deployment", &raw[..raw.len() - 5])).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid {
                object: "apps/v1 Deployment".into(),
                field: "status".into(),
                problem: Problem::Truncated
            }
        );
    }

    // ---- envelope errors ----

    #[test]
    fn rejects_missing_magic_and_empty_bodies() {
        assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b""), Err(DecodeError::BadMagic));
        assert_eq!(decode(b"k8s\0"), Err(DecodeError::Empty));
    }

    #[test]
    fn rejects_unknown_and_missing_kinds() {
        let err = decode(&envelope("v1", "PodTemplate", &[])).unwrap_err();
        assert_eq!(err, DecodeError::UnknownKind { api_version: "v1".into(), kind: "PodTemplate".into() });
        let err = decode(&envelope("", "Namespace", &[])).unwrap_err();
        assert!(matches!(err, DecodeError::MissingKind { .. }), "{err}");
        // The right kind in the wrong group is not that kind.
        let err = decode(&envelope("apps/v1", "Namespace", &[])).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownKind { .. }), "{err}");
    }

    #[test]
    fn rejects_content_encodings() {
        let mut body = envelope("v1", "Namespace", &[]);
        bytes_field(3, b"gzip", &mut body);
        assert_eq!(decode(&body), Err(DecodeError::UnsupportedEncoding("gzip".into())));
    }

    #[test]
    fn wrong_wire_type_names_the_field_path() {
        // Namespace.metadata.labels sent as a varint.
        let mut m = Vec::new();
        varint_field(11, 5, &mut m);
        let mut ns = Vec::new();
        bytes_field(1, &m, &mut ns);
        let err = decode(&envelope("v1", "Namespace", &ns)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid {
                object: "v1 Namespace".into(),
                field: "metadata.labels".into(),
                problem: Problem::WrongWireType { expected: LEN, got: VARINT },
            }
        );
        assert_eq!(err.to_string(), "object v1 Namespace: field metadata.labels: wrong wire type 0, expected 2");
    }

    #[test]
    fn illegal_wire_types_and_overlong_varints_are_errors() {
        let mut ns = Vec::new();
        tag(9, 7, &mut ns);
        let err = decode(&envelope("v1", "Namespace", &ns)).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { problem: Problem::IllegalWireType(7), .. }), "{err}");
        let err =
            decode(&envelope("v1", "Namespace", &[0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))
                .unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { problem: Problem::VarintOverflow, .. }), "{err}");
        let err = decode(&envelope("v1", "Namespace", &[0x00, 0x01])).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { problem: Problem::IllegalFieldNumber(0), .. }), "{err}");
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut ns = Vec::new();
        bytes_field(1, &meta("a"), &mut ns);
        varint_field(99, 7, &mut ns);
        bytes_field(100, b"future", &mut ns);
        tag(101, FIXED32, &mut ns);
        ns.extend_from_slice(&[1, 2, 3, 4]);
        let got = decode(&envelope("v1", "Namespace", &ns)).unwrap();
        assert_eq!(got, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
    }

    // ---- field semantics ----

    /// A Deployment whose spec has the given bytes.
    fn deployment(spec: &[u8]) -> Value {
        let mut d = Vec::new();
        bytes_field(1, &meta("d"), &mut d);
        bytes_field(2, spec, &mut d);
        decode(&envelope("apps/v1", "Deployment", &d)).unwrap()
    }

    #[test]
    fn pointer_zero_is_kept_and_value_zero_with_omitempty_is_dropped() {
        let mut spec = Vec::new();
        varint_field(1, 0, &mut spec); // replicas: *int32
        varint_field(5, 0, &mut spec); // minReadySeconds: int32,omitempty
        varint_field(7, 0, &mut spec); // paused: bool,omitempty
        let got = deployment(&spec);
        assert_eq!(got["spec"], json!({"replicas": 0}));
    }

    #[test]
    fn negative_ints_round_trip_from_ten_byte_varints() {
        let mut spec = Vec::new();
        varint_field(1, (-2i64) as u64, &mut spec);
        assert_eq!(deployment(&spec)["spec"]["replicas"], json!(-2));
    }

    #[test]
    fn inline_fields_merge_into_the_parent() {
        // Pod.spec.volumes[0] = {name: "v", volumeSource: {emptyDir: {}}} and a
        // secretKeyRef whose name comes from the inlined LocalObjectReference.
        let mut volume_source = Vec::new();
        bytes_field(2, &[], &mut volume_source); // emptyDir
        let mut volume = Vec::new();
        bytes_field(1, b"v", &mut volume);
        bytes_field(2, &volume_source, &mut volume);

        let mut local_ref = Vec::new();
        bytes_field(1, b"creds", &mut local_ref);
        let mut key_ref = Vec::new();
        bytes_field(1, &local_ref, &mut key_ref);
        bytes_field(2, b"password", &mut key_ref);
        let mut env_source = Vec::new();
        bytes_field(4, &key_ref, &mut env_source); // secretKeyRef
        let mut env = Vec::new();
        bytes_field(1, b"PW", &mut env);
        bytes_field(3, &env_source, &mut env);
        let mut container = Vec::new();
        bytes_field(1, b"c", &mut container);
        bytes_field(7, &env, &mut container);

        let mut spec = Vec::new();
        bytes_field(1, &volume, &mut spec);
        bytes_field(2, &container, &mut spec);
        let mut pod = Vec::new();
        bytes_field(2, &spec, &mut pod);
        let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            got["spec"],
            json!({
                "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]}]
            })
        );
    }

    #[test]
    fn repeated_fields_accept_packed_and_unpacked_numbers() {
        // Pod.spec.securityContext.supplementalGroups is a repeated int64.
        let mut psc = Vec::new();
        varint_field(4, 10, &mut psc);
        let mut packed = Vec::new();
        varint(20, &mut packed);
        varint(30, &mut packed);
        bytes_field(4, &packed, &mut psc);
        let mut spec = Vec::new();
        bytes_field(14, &psc, &mut spec); // PodSpec.securityContext
        let mut pod = Vec::new();
        bytes_field(2, &spec, &mut pod);
        let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
        assert_eq!(got["spec"]["securityContext"]["supplementalGroups"], json!([10, 20, 30]));
    }

    #[test]
    fn maps_bytes_and_missing_entry_parts() {
        let mut secret = Vec::new();
        let mut entry = Vec::new();
        bytes_field(1, b"k", &mut entry);
        bytes_field(2, &[0xff, 0x00, 0x10], &mut entry);
        bytes_field(2, &entry, &mut secret);
        let mut entry = Vec::new();
        bytes_field(1, b"empty", &mut entry);
        bytes_field(2, &entry, &mut secret);
        let got = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(got["data"], json!({"k": "/wAQ", "empty": ""}));
    }

    #[test]
    fn quantities_in_maps_and_resource_requirements() {
        let mut q = Vec::new();
        bytes_field(1, b"500m", &mut q);
        let mut entry = Vec::new();
        bytes_field(1, b"cpu", &mut entry);
        bytes_field(2, &q, &mut entry);
        let mut entry_without_value = Vec::new();
        bytes_field(1, b"memory", &mut entry_without_value);
        let mut requirements = Vec::new();
        bytes_field(1, &entry, &mut requirements); // limits
        bytes_field(1, &entry_without_value, &mut requirements);
        let mut container = Vec::new();
        bytes_field(1, b"c", &mut container);
        bytes_field(8, &requirements, &mut container);
        let mut spec = Vec::new();
        bytes_field(2, &container, &mut spec);
        let mut pod = Vec::new();
        bytes_field(2, &spec, &mut pod);
        let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
        assert_eq!(got["spec"]["containers"][0]["resources"], json!({"limits": {"cpu": "500m", "memory": "0"}}));
    }

    #[test]
    fn int_or_string_renders_either_form_and_rejects_other_types() {
        let pdb = |value: &[u8]| {
            let mut spec = Vec::new();
            bytes_field(1, value, &mut spec); // minAvailable
            let mut pdb = Vec::new();
            bytes_field(2, &spec, &mut pdb);
            decode(&envelope("policy/v1", "PodDisruptionBudget", &pdb))
        };
        let mut int = Vec::new();
        varint_field(1, 0, &mut int);
        varint_field(2, 0, &mut int);
        bytes_field(3, b"", &mut int);
        assert_eq!(pdb(&int).unwrap()["spec"]["minAvailable"], json!(0));
        let mut s = Vec::new();
        varint_field(1, 1, &mut s);
        bytes_field(3, b"50%", &mut s);
        assert_eq!(pdb(&s).unwrap()["spec"]["minAvailable"], json!("50%"));
        let mut bad = Vec::new();
        varint_field(1, 2, &mut bad);
        let err = pdb(&bad).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid {
                object: "policy/v1 PodDisruptionBudget".into(),
                field: "spec.minAvailable".into(),
                problem: Problem::IntOrStringType(2),
            }
        );
    }

    #[test]
    fn times_render_as_rfc3339_and_zero_as_null() {
        let ts = |seconds: i64, nanos: i32| {
            let mut t = Vec::new();
            varint_field(1, seconds as u64, &mut t);
            varint_field(2, nanos as i64 as u64, &mut t);
            t
        };
        assert_eq!(time(&ts(1_704_164_645, 999_999_999), false).unwrap(), json!("2024-01-02T03:04:05Z"));
        assert_eq!(time(&ts(1_704_164_645, 123_456_789), true).unwrap(), json!("2024-01-02T03:04:05.123456Z"));
        assert_eq!(time(&ts(0, 0), false).unwrap(), json!("1970-01-01T00:00:00Z"));
        assert_eq!(time(&ts(951_782_400, 0), false).unwrap(), json!("2000-02-29T00:00:00Z"));
        assert_eq!(time(&ts(-1, 0), false).unwrap(), json!("1969-12-31T23:59:59Z"));
        assert_eq!(time(&ts(MAX_RFC3339, 0), false).unwrap(), json!("9999-12-31T23:59:59Z"));
        assert_eq!(time(&[], false).unwrap(), Value::Null);
        assert_eq!(time(&ts(GO_ZERO_TIME, 0), true).unwrap(), Value::Null);
        assert_eq!(time(&ts(i64::MAX, 0), false).unwrap_err().problem, Problem::TimeOutOfRange(i64::MAX));
        assert_eq!(time(&ts(i64::MAX, -1), true).unwrap_err().problem, Problem::TimeOutOfRange(i64::MAX - 1));
    }

    #[test]
    fn time_fields_in_objects() {
        let mut t = Vec::new();
        varint_field(1, 1_704_164_645, &mut t);
        let mut m = meta("n");
        bytes_field(8, &[], &mut m); // creationTimestamp: zero
        bytes_field(9, &t, &mut m); // deletionTimestamp
        let mut ns = Vec::new();
        bytes_field(1, &m, &mut ns);
        let got = decode(&envelope("v1", "Namespace", &ns)).unwrap();
        assert_eq!(
            got["metadata"],
            json!({"name": "n", "creationTimestamp": null, "deletionTimestamp": "2024-01-02T03:04:05Z"})
        );
    }

    #[test]
    fn durations_print_like_go() {
        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (2_500_000, "2.5ms"),
            (1_000_000_000, "1s"),
            (61_500_000_000, "1m1.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
        let mut d = Vec::new();
        varint_field(1, 90_000_000_000, &mut d);
        assert_eq!(render_message(Kind::Duration, &d, 0).unwrap(), json!("1m30s"));
    }

    #[test]
    fn raw_extension_and_fields_v1_embed_json() {
        let mut raw = Vec::new();
        bytes_field(1, br#"{"spec":{"replicas":1}}"#, &mut raw);
        let mut rev = meta("r-1");
        rev = {
            let mut out = Vec::new();
            bytes_field(1, &rev, &mut out);
            out
        };
        bytes_field(2, &raw, &mut rev);
        varint_field(3, 1, &mut rev);
        let got = decode(&envelope("apps/v1", "ControllerRevision", &rev)).unwrap();
        assert_eq!(got["data"], json!({"spec": {"replicas": 1}}));
        assert_eq!(got["revision"], json!(1));

        let mut fields = Vec::new();
        bytes_field(1, br#"{"f:metadata":{}}"#, &mut fields);
        assert_eq!(render_message(Kind::FieldsV1, &fields, 0).unwrap(), json!({"f:metadata": {}}));
        assert_eq!(render_message(Kind::RawExtension, &[], 0).unwrap(), Value::Null);
        let mut bad = Vec::new();
        bytes_field(1, b"k8s\0", &mut bad);
        let err = render_message(Kind::RawExtension, &bad, 0).unwrap_err();
        assert!(matches!(err.problem, Problem::InvalidJson(_)), "{:?}", err.problem);
    }

    #[test]
    fn delete_options_are_accepted_in_any_group_version() {
        let mut opts = Vec::new();
        varint_field(1, 0, &mut opts);
        bytes_field(4, b"Foreground", &mut opts);
        bytes_field(5, b"All", &mut opts);
        let got = decode(&envelope("apps/v1", "DeleteOptions", &opts)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Hand a message deeper than MAX_DEPTH to decode_message directly: the schema
        // itself cannot nest that far, so check the guard alone.
        let err = decode_message(&MESSAGES[0], &[], MAX_DEPTH + 1).unwrap_err();
        assert_eq!(err.problem, Problem::TooDeep);
    }

    // ---- the descriptor table ----

    #[test]
    fn every_served_kind_and_subresource_body_has_a_root() {
        let has = |api_version: &str, kind: &str| ROOTS.iter().any(|(v, k, _)| *v == api_version && *k == kind);
        for r in api::registry::RESOURCES {
            assert!(has(&r.api_version(), r.kind), "{} {} has no protobuf descriptor", r.api_version(), r.kind);
        }
        for (group, version, kind) in
            [("autoscaling", "v1", "Scale"), ("policy", "v1", "Eviction"), ("", "v1", "Binding")]
        {
            let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
            assert!(has(&api_version, kind), "{api_version} {kind}");
        }
        assert!(has("*", "DeleteOptions"));
    }

    #[test]
    fn descriptor_table_is_consistent() {
        for (i, m) in MESSAGES.iter().enumerate() {
            assert!(m.fields.windows(2).all(|w| w[0].number < w[1].number), "{} fields unsorted", m.name);
            for field in m.fields {
                if let Kind::M(target) = field.kind {
                    assert!(usize::from(target) < MESSAGES.len(), "{}.{}", m.name, field.json);
                }
                if field.label == Label::Inline {
                    assert!(matches!(field.kind, Kind::M(_)), "{}.{} inlines a non-message", m.name, field.json);
                }
                if field.label == Label::OmitZero {
                    assert!(!matches!(field.kind, Kind::M(_)), "{}.{}", m.name, field.json);
                }
            }
            assert!(i == 0 || MESSAGES[i - 1].name < m.name, "messages unsorted at {}", m.name);
        }
    }
}
