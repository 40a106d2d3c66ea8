//! Schema-less decoding ([`decode_raw`]), re-encoding ([`encode_raw`]) and
//! the readable JSON rendering ([`Fields`], [`to_json`]).

use std::collections::HashMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::blob::Blob;
use super::wire::{
    encode_bytes_field, encode_tag, encode_varint_field, err, RawError, RawReason, WireReader,
    WireType, WireValue, MAX_DEPTH,
};

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

// ---------------------------------------------------------------------------
// JSON rendering

/// Renders a decoded tree as a JSON object: field numbers as keys in order
/// of first appearance, repeated numbers grouped into arrays in wire order,
/// varints as numbers, fixed32/fixed64 as `"0x..."` hex strings (as protoc
/// prints them), nested messages and groups as objects, text as strings and
/// other bytes as `{"hex", "len", "entropy"}` (+ `"truncated"`, `"sha256"`
/// past [`HEX_PREFIX_LEN`](super::HEX_PREFIX_LEN) bytes).
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

/// The tree as a `serde_json::Value` (keys sorted; see [`Fields`]).
pub fn to_json(fields: &[Field<'_>]) -> serde_json::Value {
    // Serializing plain data into a Value cannot fail (all keys are strings).
    serde_json::to_value(Fields(fields)).unwrap_or(serde_json::Value::Null)
}
