//! The binary SyncKey (protocol.md section 3).
//!
//! ```text
//! SyncKey { 1: KeyCount uint32; 2: repeated KeyVal Key }
//! KeyVal  { 1: Key uint32;      2: Val uint64 }
//! KeyBuf  { 1: iLen uint32;     2: Buffer bytes }   // newsync wraps the SyncKey in this
//! ```
//!
//! [`SyncKey::decode`] accepts both the plain message (as in the identify
//! body) and the KeyBuf wrapper (as in NewSyncRequest field 3 and
//! NewSyncResponse field 4). Key order is kept as on the wire: the server
//! sends keys in a different order from the client, so compare with
//! [`SyncKey::to_map`]. Unknown fields are skipped; a missing key or value
//! counts as 0 (proto3 encoders leave zeros out).

use std::collections::BTreeMap;

use serde::Serialize;

use super::protobuf::{
    encode_bytes_field, encode_varint_field, RawError, RawReason, WireReader, WireValue,
};

/// A SyncKey as key id -> value (the one map type the analyzer, the
/// trackers, the web protocol and the clients share).
pub type KeyMap = BTreeMap<u32, u64>;

/// A SyncKey: (key id, value) pairs in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncKey {
    pub keys: Vec<(u32, u64)>,
}

/// How a SyncKey was wrapped on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// The SyncKey message itself.
    Plain,
    /// Inside the KeyBuf wrapper `{1: iLen, 2: Buffer}`.
    KeyBuf,
}

/// A decoded SyncKey with what the wire said about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub synckey: SyncKey,
    /// Field 1 (KeyCount) when present; may disagree with `keys.len()`.
    pub declared_count: Option<u32>,
    pub form: Form,
}

/// Why bytes are not a SyncKey.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SyncKey: at byte offset {offset}: {reason}")]
pub struct SyncKeyError {
    pub offset: usize,
    pub reason: SyncKeyReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncKeyReason {
    #[error("{0}")]
    Protobuf(RawReason),
    #[error("field {field} of {message} should be {expected}")]
    WireType {
        message: &'static str,
        field: u32,
        expected: &'static str,
    },
    #[error("{what} {value} does not fit in 32 bits")]
    TooLarge { what: &'static str, value: u64 },
}

impl From<RawError> for SyncKeyError {
    fn from(e: RawError) -> Self {
        SyncKeyError {
            offset: e.offset,
            reason: SyncKeyReason::Protobuf(e.reason),
        }
    }
}

impl SyncKey {
    /// Decodes a plain SyncKey or a KeyBuf-wrapped one.
    pub fn decode(bytes: &[u8]) -> Result<SyncKey, SyncKeyError> {
        Self::decode_detailed(bytes).map(|p| p.synckey)
    }

    /// Like [`SyncKey::decode`], also telling the declared count and form.
    ///
    /// The two forms share their shape (field 1 varint, field 2 bytes), so a
    /// KeyBuf is recognised by content: exactly one field 2 whose bytes
    /// decode as a SyncKey, and an iLen equal to their length (or, without
    /// iLen, at least one key inside).
    pub fn decode_detailed(bytes: &[u8]) -> Result<Parsed, SyncKeyError> {
        if let Some(p) = Self::as_keybuf(bytes) {
            return Ok(p);
        }
        let (synckey, declared_count) = decode_plain(bytes, 0)?;
        Ok(Parsed {
            synckey,
            declared_count,
            form: Form::Plain,
        })
    }

    fn as_keybuf(bytes: &[u8]) -> Option<Parsed> {
        let mut ilen = None;
        let mut buffer = None;
        for f in WireReader::new(bytes) {
            let f = f.ok()?;
            match (f.number, f.value) {
                (1, WireValue::Varint(v)) => ilen = Some(v),
                (2, WireValue::Len(b)) if buffer.is_none() => buffer = Some((b, f.data_offset)),
                (1 | 2, _) => return None,
                _ => {}
            }
        }
        let (buf, at) = buffer?;
        let (synckey, declared_count) = decode_plain(buf, at).ok()?;
        let plausible = match ilen {
            Some(n) => n == buf.len() as u64,
            None => !synckey.keys.is_empty(),
        };
        plausible.then_some(Parsed {
            synckey,
            declared_count,
            form: Form::KeyBuf,
        })
    }

    /// Encodes the plain SyncKey message (KeyCount = number of keys, then
    /// every KeyVal with both fields, as the WeChat client does).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint_field(1, self.keys.len() as u64, &mut out);
        let mut kv = Vec::new();
        for &(k, v) in &self.keys {
            kv.clear();
            encode_varint_field(1, u64::from(k), &mut kv);
            encode_varint_field(2, v, &mut kv);
            encode_bytes_field(2, &kv, &mut out);
        }
        out
    }

    /// Encodes the KeyBuf wrapper `{1: iLen, 2: SyncKey bytes}`.
    pub fn encode_keybuf(&self) -> Vec<u8> {
        let inner = self.encode();
        let mut out = Vec::new();
        encode_varint_field(1, inner.len() as u64, &mut out);
        encode_bytes_field(2, &inner, &mut out);
        out
    }

    /// Key id to value. With duplicate ids the last one wins (see
    /// [`SyncKey::has_duplicate_keys`]).
    pub fn to_map(&self) -> BTreeMap<u32, u64> {
        self.keys.iter().copied().collect()
    }

    pub fn has_duplicate_keys(&self) -> bool {
        self.to_map().len() != self.keys.len()
    }

    /// Whether the wire order is sorted by key id.
    pub fn is_sorted(&self) -> bool {
        self.keys.windows(2).all(|w| w[0].0 <= w[1].0)
    }
}

/// `base`: offset of `bytes` in the caller's buffer, for error offsets.
fn decode_plain(bytes: &[u8], base: usize) -> Result<(SyncKey, Option<u32>), SyncKeyError> {
    let mut keys = Vec::new();
    let mut count = None;
    for f in WireReader::with_base(bytes, base) {
        let f = f?;
        match (f.number, f.value) {
            (1, WireValue::Varint(v)) => count = Some(to_u32(v, "KeyCount", f.offset)?),
            (1, _) => return Err(wire_type("SyncKey", 1, "a varint (KeyCount)", f.offset)),
            (2, WireValue::Len(b)) => keys.push(decode_keyval(b, f.data_offset)?),
            (2, _) => return Err(wire_type("SyncKey", 2, "a KeyVal message", f.offset)),
            _ => {}
        }
    }
    Ok((SyncKey { keys }, count))
}

fn decode_keyval(bytes: &[u8], base: usize) -> Result<(u32, u64), SyncKeyError> {
    let (mut key, mut val) = (0, 0);
    for f in WireReader::with_base(bytes, base) {
        let f = f?;
        match (f.number, f.value) {
            (1, WireValue::Varint(v)) => key = to_u32(v, "key id", f.offset)?,
            (2, WireValue::Varint(v)) => val = v,
            (1 | 2, _) => return Err(wire_type("KeyVal", f.number, "a varint", f.offset)),
            _ => {}
        }
    }
    Ok((key, val))
}

fn to_u32(v: u64, what: &'static str, offset: usize) -> Result<u32, SyncKeyError> {
    u32::try_from(v).map_err(|_| SyncKeyError {
        offset,
        reason: SyncKeyReason::TooLarge { what, value: v },
    })
}

fn wire_type(
    message: &'static str,
    field: u32,
    expected: &'static str,
    offset: usize,
) -> SyncKeyError {
    SyncKeyError {
        offset,
        reason: SyncKeyReason::WireType {
            message,
            field,
            expected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SyncKey {
        SyncKey {
            keys: vec![(1, 818781148), (2, 818781518), (6, 0), (1000, 1701729029)],
        }
    }

    #[test]
    fn wire_bytes_match_the_client() {
        // The first entries of the real identify SyncKey: count 48 would be
        // 08 30; here count 4, then 12 08 08 01 10 dcb7b68603 ...
        let b = sample().encode();
        assert_eq!(hex::encode(&b[..12]), "08041208080110dcb7b68603");
        assert_eq!(hex::encode(&b[22..28]), "120408061000");
    }

    #[test]
    fn plain_and_keybuf_round_trip() {
        let sk = sample();
        let p = SyncKey::decode_detailed(&sk.encode()).expect("plain");
        assert_eq!((p.form, p.declared_count), (Form::Plain, Some(4)));
        assert_eq!(p.synckey, sk);
        let p = SyncKey::decode_detailed(&sk.encode_keybuf()).expect("keybuf");
        assert_eq!((p.form, p.declared_count), (Form::KeyBuf, Some(4)));
        assert_eq!(p.synckey, sk);
        let empty = SyncKey::default();
        assert_eq!(
            SyncKey::decode_detailed(&empty.encode_keybuf())
                .expect("e")
                .form,
            Form::KeyBuf
        );
        assert_eq!(SyncKey::decode(&[]).expect("empty"), empty);
    }

    #[test]
    fn one_key_is_not_mistaken_for_a_wrapper() {
        // SyncKey {2: KeyVal {1: 5}} (proto3: count and val omitted).
        let b = [0x12, 0x02, 0x08, 0x05];
        let p = SyncKey::decode_detailed(&b).expect("plain");
        assert_eq!(
            (p.form, p.synckey.keys.as_slice()),
            (Form::Plain, &[(5, 0)][..])
        );
        // SyncKey {1: 1, 2: KeyVal {1: 7, 2: 9}}.
        let b = [0x08, 0x01, 0x12, 0x04, 0x08, 0x07, 0x10, 0x09];
        let p = SyncKey::decode_detailed(&b).expect("plain");
        assert_eq!(
            (p.form, p.synckey.keys.as_slice()),
            (Form::Plain, &[(7, 9)][..])
        );
    }

    #[test]
    fn errors() {
        let e = SyncKey::decode(&[0x08, 0x01, 0x15, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(matches!(e.reason, SyncKeyReason::WireType { field: 2, .. }));
        // Key id 2^32 in the KeyVal whose content starts at offset 2: reported
        // at the key's tag, offset 2 of the whole buffer.
        let e = SyncKey::decode(&[0x12, 0x06, 0x08, 0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(matches!(e.reason, SyncKeyReason::TooLarge { .. }), "{e}");
    }

    #[test]
    fn map_and_order() {
        let mut sk = sample();
        sk.keys.swap(0, 1);
        assert!(!sk.is_sorted());
        assert_eq!(sk.to_map(), sample().to_map());
        assert!(!sk.has_duplicate_keys());
        sk.keys.push((1, 5));
        assert!(sk.has_duplicate_keys());
        assert_eq!(sk.to_map()[&1], 5);
    }
}
