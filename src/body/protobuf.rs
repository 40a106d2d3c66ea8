//! Protobuf bodies: schema-less decoding ([`decode_raw`]) and decoding with
//! a user's `.proto` files compiled at run time ([`Schemas`]).
//!
//! # Schema-less decoding
//!
//! [`decode_raw`] works like `protoc --decode_raw`: it walks the wire format
//! and returns a tree of [`Field`]s borrowing from the input. A
//! length-delimited value is shown as a nested message when its bytes parse
//! cleanly as one (every field valid, the bytes consumed exactly, not empty,
//! nesting at most [`MAX_DEPTH`]), else as text when it is printable UTF-8,
//! else as raw bytes. Unlike protoc, a value that is printable text *and*
//! happens to parse as a message (`"hi"` is field 13 = 105, `"en_US"` is a
//! fixed32 field 12) stays text unless its first byte is a control character
//! (a tag such as `0x0a`, field 1 length-delimited), which real text almost
//! never starts with. [`Fields`] renders a tree as readable JSON:
//!
//! ```text
//! {"1": 5, "2": {"1": "abc"}, "3": ["repeated", "values"],
//!  "4": {"hex": "789c...", "len": 300, "entropy": 7.41, "truncated": true, "sha256": "..."}}
//! ```
//!
//! It is hand-written on purpose: no maintained crate decodes protobuf
//! without a schema into this shape (prost and prost-reflect need a message
//! descriptor; the schema-less decoders on crates.io are unmaintained and
//! have no text/message heuristic, entropy figure or depth guard), and the
//! wire format is small enough that a few hundred lines, fuzzed by proptest,
//! are cheaper than a dependency.
//!
//! # Schema decoding
//!
//! [`Schemas::compile`] compiles `.proto` files with protox (no `protoc`
//! needed) into a prost-reflect descriptor pool; [`Schemas::decode`] decodes
//! bytes as a named message into JSON with the proto field names. Fields the
//! schema does not know are not lost: they are decoded schema-less under a
//! `"_unknown"` key of the message that holds them.

use std::collections::HashMap;
use std::path::PathBuf;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Deepest nesting of messages (and groups) that [`decode_raw`] interprets;
/// deeper length-delimited values are shown as text or bytes.
pub const MAX_DEPTH: usize = 32;

/// Largest legal field number (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Raw byte values longer than this are rendered as a hex prefix of this
/// many bytes plus their SHA-256.
pub const HEX_PREFIX_LEN: usize = 64;

/// Longest varint: 10 bytes carry 64 bits.
const MAX_VARINT_LEN: usize = 10;

// ---------------------------------------------------------------------------
// Errors

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte offset {offset}: {reason}")]
pub struct RawError {
    /// Offset (from the start of the decoded buffer) of the tag or value
    /// that is wrong.
    pub offset: usize,
    pub reason: RawReason,
}

/// What is wrong at [`RawError::offset`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawReason {
    #[error("a varint runs past the end of the data")]
    TruncatedVarint,
    #[error("a varint is longer than 10 bytes or overflows 64 bits")]
    VarintOverflow,
    #[error("field number 0 is not allowed")]
    FieldNumberZero,
    #[error("field number {0} is above the maximum 536870911")]
    FieldNumberTooLarge(u64),
    #[error("wire type {0} does not exist (valid: 0 varint, 1 fixed64, 2 length-delimited, 3/4 group, 5 fixed32)")]
    BadWireType(u8),
    #[error("a {what} value needs {needed} bytes but only {available} are left")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: usize,
    },
    #[error("end-group tag for field {0} without a matching start-group tag")]
    UnexpectedEndGroup(u32),
    #[error("group {0} is not closed before the end of the data")]
    UnclosedGroup(u32),
    #[error("groups are nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

fn err(offset: usize, reason: RawReason) -> RawError {
    RawError { offset, reason }
}

// ---------------------------------------------------------------------------
// Wire level

/// The six wire types (3 and 4 are the deprecated groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

impl WireType {
    fn from_tag(tag: u64) -> Option<WireType> {
        Some(match tag & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return None,
        })
    }
}

/// One field as it is on the wire, without interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Length-delimited payload.
    Len(&'a [u8]),
    /// The fields between a start-group and its end-group tag.
    Group(&'a [u8]),
}

/// A field read by [`WireReader`]: number, value and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField<'a> {
    pub number: u32,
    /// Offset of the tag.
    pub offset: usize,
    /// Offset of the payload of a `Len` or `Group` value (after the tag, or
    /// after the length varint).
    pub data_offset: usize,
    pub value: WireValue<'a>,
}

/// Iterates over the top-level fields of a message. After the first error
/// it yields nothing more. Offsets are relative to the buffer plus `base`
/// (see [`WireReader::with_base`]), so nested readers report positions in
/// the outermost buffer.
#[derive(Debug, Clone)]
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        WireReader {
            buf,
            pos: 0,
            base: 0,
            failed: false,
        }
    }

    /// A reader whose reported offsets are shifted by `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        WireReader {
            base,
            ..WireReader::new(buf)
        }
    }

    fn read_field(&mut self) -> Result<WireField<'a>, RawError> {
        let start = self.pos;
        let (number, wire, after_tag) = read_tag(self.buf, start, self.base)?;
        let (value, data_offset, end) = match wire {
            WireType::Varint => {
                let (v, end) = read_varint(self.buf, after_tag, self.base)?;
                (WireValue::Varint(v), after_tag, end)
            }
            WireType::Fixed64 => {
                let b = take(self.buf, after_tag, 8, "fixed64", self.base)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (
                    WireValue::Fixed64(u64::from_le_bytes(a)),
                    after_tag,
                    after_tag + 8,
                )
            }
            WireType::Fixed32 => {
                let b = take(self.buf, after_tag, 4, "fixed32", self.base)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                (
                    WireValue::Fixed32(u32::from_le_bytes(a)),
                    after_tag,
                    after_tag + 4,
                )
            }
            WireType::Len => {
                let (len, data) = read_varint(self.buf, after_tag, self.base)?;
                let available = self.buf.len() - data;
                if len > available as u64 {
                    return Err(err(
                        self.base + after_tag,
                        RawReason::Truncated {
                            what: "length-delimited",
                            needed: len,
                            available,
                        },
                    ));
                }
                let end = data + len as usize;
                (WireValue::Len(&self.buf[data..end]), data, end)
            }
            WireType::StartGroup => {
                let (content_end, end) = skip_group(self.buf, after_tag, number, self.base)?;
                (
                    WireValue::Group(&self.buf[after_tag..content_end]),
                    after_tag,
                    end,
                )
            }
            WireType::EndGroup => {
                return Err(err(
                    self.base + start,
                    RawReason::UnexpectedEndGroup(number),
                ));
            }
        };
        self.pos = end;
        Ok(WireField {
            number,
            offset: self.base + start,
            data_offset: self.base + data_offset,
            value,
        })
    }
}

impl<'a> Iterator for WireReader<'a> {
    type Item = Result<WireField<'a>, RawError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let r = self.read_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Reads a varint at `pos`; returns the value and the position after it.
pub fn read_varint(buf: &[u8], pos: usize, base: usize) -> Result<(u64, usize), RawError> {
    let mut value: u64 = 0;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = buf.get(pos + i) else {
            return Err(err(base + pos, RawReason::TruncatedVarint));
        };
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(err(base + pos, RawReason::VarintOverflow));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, pos + i + 1));
        }
    }
    Err(err(base + pos, RawReason::VarintOverflow))
}

fn read_tag(buf: &[u8], pos: usize, base: usize) -> Result<(u32, WireType, usize), RawError> {
    let (tag, after) = read_varint(buf, pos, base)?;
    let wire = WireType::from_tag(tag)
        .ok_or_else(|| err(base + pos, RawReason::BadWireType((tag & 7) as u8)))?;
    let number = tag >> 3;
    if number == 0 {
        return Err(err(base + pos, RawReason::FieldNumberZero));
    }
    if number > u64::from(MAX_FIELD_NUMBER) {
        return Err(err(base + pos, RawReason::FieldNumberTooLarge(number)));
    }
    Ok((number as u32, wire, after))
}

fn take<'a>(
    buf: &'a [u8],
    pos: usize,
    n: usize,
    what: &'static str,
    base: usize,
) -> Result<&'a [u8], RawError> {
    buf.get(pos..pos + n).ok_or_else(|| {
        err(
            base + pos,
            RawReason::Truncated {
                what,
                needed: n as u64,
                available: buf.len().saturating_sub(pos),
            },
        )
    })
}

/// Finds the end-group tag matching a start-group of field `number` whose
/// content starts at `pos`. Returns (offset of the end tag, offset after it).
/// Iterative, with an explicit stack capped at [`MAX_DEPTH`].
fn skip_group(
    buf: &[u8],
    pos: usize,
    number: u32,
    base: usize,
) -> Result<(usize, usize), RawError> {
    let mut open = vec![number];
    let mut p = pos;
    loop {
        if p >= buf.len() {
            let innermost = open.last().copied().unwrap_or(number);
            return Err(err(base + p, RawReason::UnclosedGroup(innermost)));
        }
        let tag_at = p;
        let (n, wire, after) = read_tag(buf, p, base)?;
        p = match wire {
            WireType::Varint => read_varint(buf, after, base)?.1,
            WireType::Fixed64 => after + take(buf, after, 8, "fixed64", base)?.len(),
            WireType::Fixed32 => after + take(buf, after, 4, "fixed32", base)?.len(),
            WireType::Len => {
                let (len, data) = read_varint(buf, after, base)?;
                let available = buf.len() - data;
                if len > available as u64 {
                    return Err(err(
                        base + after,
                        RawReason::Truncated {
                            what: "length-delimited",
                            needed: len,
                            available,
                        },
                    ));
                }
                data + len as usize
            }
            WireType::StartGroup => {
                if open.len() >= MAX_DEPTH {
                    return Err(err(base + tag_at, RawReason::TooDeep));
                }
                open.push(n);
                after
            }
            WireType::EndGroup => {
                if open.last() != Some(&n) {
                    return Err(err(base + tag_at, RawReason::UnexpectedEndGroup(n)));
                }
                open.pop();
                if open.is_empty() {
                    return Ok((tag_at, after));
                }
                after
            }
        };
    }
}

// ---------------------------------------------------------------------------
// Encoding (used to build test vectors and to re-emit decoded trees)

/// Appends `v` as a varint.
pub fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a tag. `number` should be in 1..=[`MAX_FIELD_NUMBER`].
pub fn encode_tag(number: u32, wire: WireType, out: &mut Vec<u8>) {
    encode_varint((u64::from(number) << 3) | wire as u64, out);
}

/// Appends a varint field.
pub fn encode_varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
    encode_tag(number, WireType::Varint, out);
    encode_varint(v, out);
}

/// Appends a length-delimited field.
pub fn encode_bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_tag(number, WireType::Len, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Re-emits a decoded tree (canonical varints; byte values verbatim), so
/// `decode_raw(&encode_raw(&t)) == t` for any tree `t` from [`decode_raw`].
pub fn encode_raw(fields: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(fields, &mut out);
    out
}

fn encode_into(fields: &[Field<'_>], out: &mut Vec<u8>) {
    for f in fields {
        match &f.value {
            Value::Varint(v) => encode_varint_field(f.number, *v, out),
            Value::Fixed64(v) => {
                encode_tag(f.number, WireType::Fixed64, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Fixed32(v) => {
                encode_tag(f.number, WireType::Fixed32, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Bytes(b) => encode_bytes_field(f.number, b.raw, out),
            Value::Group(inner) => {
                encode_tag(f.number, WireType::StartGroup, out);
                encode_into(inner, out);
                encode_tag(f.number, WireType::EndGroup, out);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Schema-less tree

/// A decoded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A length-delimited value with its interpretation.
    Bytes(Bytes<'a>),
    /// A (deprecated) group: its fields.
    Group(Vec<Field<'a>>),
}

/// A length-delimited value: the raw bytes and what they look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes<'a> {
    pub raw: &'a [u8],
    pub kind: BytesKind<'a>,
}

/// Interpretation of a length-delimited value (a heuristic; see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BytesKind<'a> {
    Message(Vec<Field<'a>>),
    Text(&'a str),
    Raw,
}

/// Decodes a message without a schema, like `protoc --decode_raw`.
///
/// Empty input is an empty message. Errors carry the offset of the first
/// malformed tag or value; nested length-delimited values that do not parse
/// are never errors (they become text or bytes).
pub fn decode_raw(bytes: &[u8]) -> Result<Vec<Field<'_>>, RawError> {
    parse_fields(bytes, 0, 0)
}

fn parse_fields(buf: &[u8], base: usize, depth: usize) -> Result<Vec<Field<'_>>, RawError> {
    let mut out = Vec::new();
    for wf in WireReader::with_base(buf, base) {
        let wf = wf?;
        let value = match wf.value {
            WireValue::Varint(v) => Value::Varint(v),
            WireValue::Fixed64(v) => Value::Fixed64(v),
            WireValue::Fixed32(v) => Value::Fixed32(v),
            WireValue::Len(b) => Value::Bytes(interpret(b, depth)),
            WireValue::Group(b) => {
                if depth + 1 > MAX_DEPTH {
                    return Err(err(wf.offset, RawReason::TooDeep));
                }
                Value::Group(parse_fields(b, wf.data_offset, depth + 1)?)
            }
        };
        out.push(Field {
            number: wf.number,
            value,
        });
    }
    Ok(out)
}

/// `depth` is that of the message holding the value.
fn interpret(b: &[u8], depth: usize) -> Bytes<'_> {
    let text = printable_text(b);
    let try_message = !b.is_empty()
        && depth < MAX_DEPTH
        && match text {
            // Ambiguous: only a leading control byte (a tag like 0x0a) makes
            // a message more likely than text.
            Some(_) => b[0] < 0x20,
            None => true,
        };
    if try_message {
        if let Ok(fields) = parse_fields(b, 0, depth + 1) {
            return Bytes {
                raw: b,
                kind: BytesKind::Message(fields),
            };
        }
    }
    Bytes {
        raw: b,
        kind: match text {
            Some(s) => BytesKind::Text(s),
            None => BytesKind::Raw,
        },
    }
}

/// Valid UTF-8 without control characters other than tab, CR and LF.
fn printable_text(b: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(b).ok()?;
    s.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .then_some(s)
}

/// Shannon entropy in bits per byte (0 for empty input, at most 8, and at
/// most log2(len) for short inputs). Compressed or encrypted data is close
/// to 8; text is usually 4 to 5.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    // H = log2(n) - (1/n) * sum(c * log2 c): one log per distinct count
    // value at most, from a table for the small counts most bodies have.
    static C_LOG_C: std::sync::OnceLock<[f64; 257]> = std::sync::OnceLock::new();
    let table = C_LOG_C.get_or_init(|| {
        let mut t = [0.0; 257];
        for (c, v) in t.iter_mut().enumerate().skip(1) {
            *v = c as f64 * (c as f64).log2();
        }
        t
    });
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    let sum: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| match table.get(c as usize) {
            Some(v) => *v,
            None => c as f64 * (c as f64).log2(),
        })
        .sum();
    (n.log2() - sum / n).max(0.0)
}

/// Lower-case hex (the `hex` crate's slice encoder: no per-char collect).
fn to_hex(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    if hex::encode_to_slice(bytes, &mut buf).is_err() {
        return hex::encode(bytes);
    }
    String::from_utf8(buf).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// JSON rendering

/// Renders a decoded tree as a JSON object: field numbers as keys in order
/// of first appearance, repeated numbers grouped into arrays in wire order,
/// varints as numbers, fixed32/fixed64 as `"0x..."` hex strings (as protoc
/// prints them), nested messages and groups as objects, text as strings and
/// other bytes as `{"hex", "len", "entropy"}` (+ `"truncated"`, `"sha256"`
/// past [`HEX_PREFIX_LEN`] bytes).
///
/// Serialize it with `serde_json::to_string` to keep the key order
/// (`serde_json::Value` sorts keys).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'f, 'a>(pub &'f [Field<'a>]);

impl Serialize for Fields<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut order: Vec<(u32, Vec<&Value<'_>>)> = Vec::new();
        let mut index: HashMap<u32, usize> = HashMap::new();
        for f in self.0 {
            match index.get(&f.number) {
                Some(&i) => order[i].1.push(&f.value),
                None => {
                    index.insert(f.number, order.len());
                    order.push((f.number, vec![&f.value]));
                }
            }
        }
        let mut map = serializer.serialize_map(Some(order.len()))?;
        for (number, values) in &order {
            let key = number.to_string();
            match values.as_slice() {
                [one] => map.serialize_entry(&key, one)?,
                many => map.serialize_entry(&key, &Repeated(many))?,
            }
        }
        map.end()
    }
}

struct Repeated<'v, 'a>(&'v [&'v Value<'a>]);

impl Serialize for Repeated<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Varint(v) => serializer.serialize_u64(*v),
            Value::Fixed64(v) => serializer.serialize_str(&format!("0x{v:016x}")),
            Value::Fixed32(v) => serializer.serialize_str(&format!("0x{v:08x}")),
            Value::Bytes(b) => b.serialize(serializer),
            Value::Group(fields) => Fields(fields).serialize(serializer),
        }
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.kind {
            BytesKind::Message(fields) => Fields(fields).serialize(serializer),
            BytesKind::Text(s) => serializer.serialize_str(s),
            BytesKind::Raw => Blob::new(self.raw).serialize(serializer),
        }
    }
}

/// Summary of opaque bytes as rendered in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blob {
    /// Hex of the bytes, or of the first [`HEX_PREFIX_LEN`] when truncated.
    pub hex: String,
    pub len: usize,
    /// Shannon entropy in bits per byte, two decimals.
    pub entropy: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// SHA-256 of all the bytes, given when the hex is truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Blob {
    pub fn new(bytes: &[u8]) -> Blob {
        let truncated = bytes.len() > HEX_PREFIX_LEN;
        let shown = &bytes[..bytes.len().min(HEX_PREFIX_LEN)];
        Blob {
            hex: to_hex(shown),
            len: bytes.len(),
            entropy: (entropy(bytes) * 100.0).round() / 100.0,
            truncated,
            sha256: truncated.then(|| to_hex(&Sha256::digest(bytes))),
        }
    }
}

/// The tree as a `serde_json::Value` (keys sorted; see [`Fields`]).
pub fn to_json(fields: &[Field<'_>]) -> serde_json::Value {
    // Serializing plain data into a Value cannot fail (all keys are strings).
    serde_json::to_value(Fields(fields)).unwrap_or(serde_json::Value::Null)
}

// ---------------------------------------------------------------------------
// Schemas

/// Why `.proto` files could not be compiled or bytes not decoded with them.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("no .proto files given; pass at least one schema file")]
    NoFiles,
    #[error(
        "{}: .proto file not found (relative paths are tried from the current directory \
         and from each include directory)",
        path.display()
    )]
    FileNotFound { path: PathBuf },
    /// protox's message, located as `file:line:col: what` when it knows.
    #[error("cannot compile the .proto files: {detail}")]
    Compile { detail: String },
    #[error(
        "no message named '{name}' in the compiled .proto files{}",
        suggest(close)
    )]
    UnknownMessage { name: String, close: Vec<String> },
    #[error(
        "message name '{name}' is ambiguous; use the full name: {}",
        candidates.join(", ")
    )]
    AmbiguousMessage {
        name: String,
        candidates: Vec<String>,
    },
    #[error(
        "the bytes are not a valid {message}: {error}; schema-less decoding \
         (decode_raw) shows what they contain"
    )]
    Decode {
        message: String,
        error: prost::DecodeError,
    },
    #[error("cannot render the decoded {message} as JSON: {error}")]
    Json {
        message: String,
        error: serde_json::Error,
    },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::from(" (list them with message_names)")
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

/// Message definitions compiled from `.proto` files at run time.
#[derive(Debug, Clone)]
pub struct Schemas {
    pool: DescriptorPool,
}

impl Schemas {
    /// Compiles `files` (and what they import). Imports are resolved from
    /// `includes`, then from each file's own directory, then from the
    /// well-known `google/protobuf/*.proto` files bundled with protox.
    pub fn compile(files: &[PathBuf], includes: &[PathBuf]) -> Result<Schemas, SchemaError> {
        if files.is_empty() {
            return Err(SchemaError::NoFiles);
        }
        let mut dirs: Vec<PathBuf> = includes.to_vec();
        for f in files {
            let found = f.is_file() || includes.iter().any(|i| i.join(f).is_file());
            if !found {
                return Err(SchemaError::FileNotFound { path: f.clone() });
            }
            if f.is_file() {
                let parent = match f.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !dirs.contains(&parent) {
                    dirs.push(parent);
                }
            }
        }
        let located = |e: protox::Error| SchemaError::Compile {
            // protox's Debug rendering is the located one ("file:line:col: msg").
            detail: format!("{e:?}"),
        };
        let mut compiler = protox::Compiler::new(&dirs).map_err(located)?;
        compiler.include_imports(true);
        compiler.open_files(files).map_err(located)?;
        Ok(Schemas {
            pool: compiler.descriptor_pool(),
        })
    }

    /// Wraps an existing pool (e.g. from a serialized descriptor set).
    pub fn from_pool(pool: DescriptorPool) -> Schemas {
        Schemas { pool }
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Full names of all messages (nested ones included), sorted.
    pub fn message_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .pool
            .all_messages()
            .map(|m| m.full_name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Finds a message by full name (a leading `.` is allowed) or, when
    /// unique, by its short name.
    pub fn message(&self, name: &str) -> Result<MessageDescriptor, SchemaError> {
        let wanted = name.trim().trim_start_matches('.');
        if let Some(m) = self.pool.get_message_by_name(wanted) {
            return Ok(m);
        }
        let mut by_short: Vec<MessageDescriptor> = self
            .pool
            .all_messages()
            .filter(|m| m.name() == wanted)
            .collect();
        if by_short.len() > 1 {
            let mut candidates: Vec<String> =
                by_short.iter().map(|m| m.full_name().to_owned()).collect();
            candidates.sort();
            return Err(SchemaError::AmbiguousMessage {
                name: name.to_owned(),
                candidates,
            });
        }
        by_short.pop().ok_or_else(|| SchemaError::UnknownMessage {
            name: name.to_owned(),
            close: close_matches(wanted, &self.message_names()),
        })
    }

    /// Decodes `bytes` as `message_name`.
    pub fn decode_message(
        &self,
        message_name: &str,
        bytes: &[u8],
    ) -> Result<DynamicMessage, SchemaError> {
        let desc = self.message(message_name)?;
        DynamicMessage::decode(desc.clone(), bytes).map_err(|error| SchemaError::Decode {
            message: desc.full_name().to_owned(),
            error,
        })
    }

    /// Decodes `bytes` as `message_name` into JSON: proto field names,
    /// 64-bit integers as numbers, unset fields left out, and fields the
    /// schema does not know decoded schema-less under `"_unknown"`.
    pub fn decode(
        &self,
        message_name: &str,
        bytes: &[u8],
    ) -> Result<serde_json::Value, SchemaError> {
        let msg = self.decode_message(message_name, bytes)?;
        let full_name = self.message(message_name)?.full_name().to_owned();
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .stringify_64_bit_integers(false);
        let mut json = msg
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|error| SchemaError::Json {
                message: full_name,
                error,
            })?;
        attach_unknown(&msg, &mut json);
        Ok(json)
    }
}

/// Adds `"_unknown"` (schema-less) to every JSON object whose message has
/// unknown fields, walking message-typed fields and lists of messages.
fn attach_unknown(msg: &DynamicMessage, json: &mut serde_json::Value) {
    let Some(obj) = json.as_object_mut() else {
        return;
    };
    let mut raw = Vec::new();
    for f in msg.unknown_fields() {
        f.encode(&mut raw);
    }
    if !raw.is_empty() {
        if let Ok(fields) = decode_raw(&raw) {
            obj.insert("_unknown".to_owned(), to_json(&fields));
        }
    }
    for (field, value) in msg.fields() {
        let Some(child) = obj.get_mut(field.name()) else {
            continue;
        };
        match value {
            prost_reflect::Value::Message(m) => attach_unknown(m, child),
            prost_reflect::Value::List(items) => {
                if let Some(arr) = child.as_array_mut() {
                    for (item, j) in items.iter().zip(arr.iter_mut()) {
                        if let prost_reflect::Value::Message(m) = item {
                            attach_unknown(m, j);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Up to five names close to `wanted` (case-insensitive edit distance on
/// the full and the short name, or containment), best first.
fn close_matches(wanted: &str, names: &[String]) -> Vec<String> {
    let w = wanted.to_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let full = n.to_lowercase();
            let short = full.rsplit('.').next().unwrap_or(&full).to_owned();
            let d = edit_distance(&w, &full).min(edit_distance(&w, &short));
            let contains = !w.is_empty() && (short.contains(&w) || w.contains(&short));
            (d <= limit || contains).then_some((if contains { d.min(limit) } else { d }, n))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> String {
        serde_json::to_string(&Fields(&decode_raw(bytes).expect("decodes"))).expect("json")
    }

    #[test]
    fn varint_limits() {
        assert_eq!(read_varint(&[0x00], 0, 0), Ok((0, 1)));
        assert_eq!(read_varint(&[0xac, 0x02], 0, 0), Ok((300, 2)));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max, 0, 0), Ok((u64::MAX, 10)));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            read_varint(&over, 0, 7).unwrap_err().reason,
            RawReason::VarintOverflow
        );
        let e = read_varint(&[0x80, 0x80], 0, 5).unwrap_err();
        assert_eq!((e.offset, e.reason), (5, RawReason::TruncatedVarint));
    }

    #[test]
    fn readable_json_shape() {
        // {1: 5, 2: {1: "abc"}, 3: "repeated", 3: "values"}
        let mut b = Vec::new();
        encode_varint_field(1, 5, &mut b);
        encode_bytes_field(2, &[0x0a, 0x03, b'a', b'b', b'c'], &mut b);
        encode_bytes_field(3, b"repeated", &mut b);
        encode_bytes_field(3, b"values", &mut b);
        assert_eq!(
            json(&b),
            r#"{"1":5,"2":{"1":"abc"},"3":["repeated","values"]}"#
        );
    }

    #[test]
    fn key_order_is_first_appearance() {
        let mut b = Vec::new();
        encode_varint_field(10, 1, &mut b);
        encode_varint_field(2, 2, &mut b);
        encode_varint_field(10, 3, &mut b);
        assert_eq!(json(&b), r#"{"10":[1,3],"2":2}"#);
        let mut b = Vec::new();
        encode_varint_field(2, 2, &mut b);
        encode_varint_field(10, 1, &mut b);
        assert_eq!(json(&b), r#"{"2":2,"10":1}"#);
    }

    #[test]
    fn short_text_is_not_a_message() {
        // "hi" = field 13 varint 105 and "en_US" = field 12 fixed32 for protoc.
        for s in ["hi", "en_US", "ok", "zh_CN", "a"] {
            let mut b = Vec::new();
            encode_bytes_field(1, s.as_bytes(), &mut b);
            assert_eq!(json(&b), format!(r#"{{"1":"{s}"}}"#));
        }
        // A printable message with a leading tag byte stays a message.
        let mut inner = Vec::new();
        encode_bytes_field(1, b"46886632a5c87cb10e3c60852250a8f3", &mut inner);
        assert!(inner
            .iter()
            .all(|&c| c == b'\n' || (0x20..0x7f).contains(&c)));
        let mut b = Vec::new();
        encode_bytes_field(7, &inner, &mut b);
        assert_eq!(
            json(&b),
            r#"{"7":{"1":"46886632a5c87cb10e3c60852250a8f3"}}"#
        );
    }

    #[test]
    fn empty_bytes_and_empty_message() {
        assert_eq!(decode_raw(&[]), Ok(vec![]));
        assert_eq!(json(&[0x12, 0x00]), r#"{"2":""}"#);
    }

    #[test]
    fn fixed_values_and_blobs() {
        let mut b = vec![0x0d, 1, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 0, 0, 0];
        encode_bytes_field(3, &[0xff, 0x00, 0xfe], &mut b);
        assert_eq!(
            json(&b),
            r#"{"1":"0x00000001","2":"0x0000000000000002","3":{"hex":"ff00fe","len":3,"entropy":1.58}}"#
        );
        let big: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut b = Vec::new();
        encode_bytes_field(4, &big, &mut b);
        let v: serde_json::Value = serde_json::from_str(&json(&b)).expect("json");
        assert_eq!(v["4"]["len"], 1000);
        assert_eq!(v["4"]["entropy"], 8.0);
        assert_eq!(v["4"]["truncated"], true);
        assert_eq!(
            v["4"]["hex"].as_str().map(str::len),
            Some(2 * HEX_PREFIX_LEN)
        );
        assert_eq!(v["4"]["sha256"].as_str().map(str::len), Some(64));
    }

    #[test]
    fn groups() {
        // 1: group { 2: 150 }, 3: 1
        let b = [0x0b, 0x10, 0x96, 0x01, 0x0c, 0x18, 0x01];
        let f = decode_raw(&b).expect("decodes");
        assert_eq!(
            f[0].value,
            Value::Group(vec![Field {
                number: 2,
                value: Value::Varint(150)
            }])
        );
        assert_eq!(encode_raw(&f), b);
        assert_eq!(json(&b), r#"{"1":{"2":150},"3":1}"#);
        // Unclosed and mismatched groups.
        assert_eq!(
            decode_raw(&[0x0b, 0x10, 0x01]).unwrap_err().reason,
            RawReason::UnclosedGroup(1)
        );
        assert_eq!(
            decode_raw(&[0x0b, 0x14]).unwrap_err().reason,
            RawReason::UnexpectedEndGroup(2)
        );
        assert_eq!(
            decode_raw(&[0x0c]).unwrap_err().reason,
            RawReason::UnexpectedEndGroup(1)
        );
    }

    #[test]
    fn errors_carry_offsets() {
        let e = decode_raw(&[0x08, 0x01, 0x07]).unwrap_err();
        assert_eq!((e.offset, e.reason), (2, RawReason::BadWireType(7)));
        let e = decode_raw(&[0x08, 0x01, 0x00]).unwrap_err();
        assert_eq!((e.offset, e.reason), (2, RawReason::FieldNumberZero));
        let e = decode_raw(&[0x12, 0x05, 0x61]).unwrap_err();
        assert_eq!(
            (e.offset, e.reason),
            (
                1,
                RawReason::Truncated {
                    what: "length-delimited",
                    needed: 5,
                    available: 1
                }
            )
        );
        // Error inside a group is reported at its absolute offset.
        let e = decode_raw(&[0x08, 0x01, 0x0b, 0x10]).unwrap_err();
        assert_eq!((e.offset, e.reason), (4, RawReason::TruncatedVarint));
        let e = decode_raw(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).unwrap_err();
        assert_eq!(e.reason, RawReason::FieldNumberTooLarge(1 << 29));
        assert!(e.to_string().contains("offset 0"), "{e}");
    }

    #[test]
    fn depth_is_capped() {
        // 40 nested messages {1: {1: ... {1: "x"}}}: beyond MAX_DEPTH the
        // value is not opened any more (it is shown as bytes).
        let mut b = {
            let mut v = Vec::new();
            encode_varint_field(1, 1, &mut v);
            v
        };
        for _ in 0..40 {
            let mut outer = Vec::new();
            encode_bytes_field(1, &b, &mut outer);
            b = outer;
        }
        let f = decode_raw(&b).expect("decodes");
        let mut depth = 0;
        let mut cur = &f;
        while let Some(Field {
            value:
                Value::Bytes(Bytes {
                    kind: BytesKind::Message(inner),
                    ..
                }),
            ..
        }) = cur.first()
        {
            depth += 1;
            cur = inner;
        }
        assert_eq!(depth, MAX_DEPTH);
        // Deeply nested groups are an error, not a stack overflow.
        let mut g = vec![0x0b; 100];
        g.extend(vec![0x0c; 100]);
        assert_eq!(decode_raw(&g).unwrap_err().reason, RawReason::TooDeep);
    }

    #[test]
    fn entropy_figures() {
        assert_eq!(entropy(&[]), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(&[0, 1]) - 1.0).abs() < 1e-12);
        let all: Vec<u8> = (0..=255).collect();
        assert!((entropy(&all) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn close_match_suggestions() {
        let names = vec![
            "micromsg.SyncKey".to_owned(),
            "micromsg.KeyVal".to_owned(),
            "micromsg.NewSyncRequest".to_owned(),
        ];
        assert_eq!(close_matches("Synckey", &names), vec!["micromsg.SyncKey"]);
        assert_eq!(
            close_matches("NewSync", &names)[0],
            "micromsg.NewSyncRequest"
        );
        assert!(close_matches("Zebra", &names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
