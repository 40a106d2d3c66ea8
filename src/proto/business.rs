//! WeChat business packets: the `0xBF` packed header (protocol.md section 5)
//! and the decryption of the body into the protobuf plaintext.
//!
//! Header: `0xBF`, byte `(header_len << 2) | compress`, byte
//! `(algo << 4) | cookie_len`, u32 client version (0 in responses), u32 uin,
//! cookie, varint cgi, varint plain (uncompressed) length, varint
//! compressed length, then undocumented bytes up to `header_len` (kept raw,
//! with a tentative split in [`BusinessHeader::rest_fields`]).
//!
//! Body algorithms (protocol.md section 8):
//! * 5: AES-128-CBC, key = IV = the session key (INNER CBC key-log lines),
//!   PKCS#7; zlib when the compress flag is 1.
//! * 13: AES-GCM (24-byte key: AES-192), body = ciphertext || IV(12) ||
//!   tag(16), empty AAD; the plaintext is zlib even when the flag says 2.
//! * 12: hybrid ECDH (secautoauth): a protobuf envelope whose encrypted
//!   fields are GCM blobs as above over zlib data. Request: {1 version,
//!   2 {1 nid, 2 client point}, 3 client random (ECDH key), 4 client random
//!   (autoauth key), 5 payload}; response: {1 {1 nid, 2 server point},
//!   2 flag, 3 payload, 4 empty}.
//!
//! Requests and responses share the header layout; both start with 0xBF.

use std::io::Read;

use flate2::read::ZlibDecoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::body::protobuf::{read_varint, RawError, RawReason, WireReader, WireValue};
use crate::proto::keylog::{self, Decrypt, Failure, KeyLog};

/// First byte of every business packet.
pub const MAGIC: u8 = 0xBF;
/// Fixed part before the cookie: magic, 2 packed bytes, version, uin.
pub const FIXED_LEN: usize = 11;
/// Cap on an inflated plaintext.
pub const MAX_PLAINTEXT_LEN: usize = 64 << 20;

/// Body algorithm nibble; unknown values stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Algo(pub u8);

impl Algo {
    pub const AES_CBC: Algo = Algo(5);
    pub const HYBRID_ECDH: Algo = Algo(12);
    pub const AES_GCM: Algo = Algo(13);

    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            5 => Some("aes-cbc"),
            12 => Some("hybrid-ecdh"),
            13 => Some("aes-gcm"),
            _ => None,
        }
    }
}

/// Compress flag: 1 zlib, 2 none; others representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Compress(pub u8);

impl Compress {
    pub const ZLIB: Compress = Compress(1);
    pub const NONE: Compress = Compress(2);
}

/// Header parse errors; offsets are from the start of the packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BusinessError {
    #[error("byte 0: 0x{found:02x} is not a business packet (expected 0xBF)")]
    BadMagic { found: u8 },
    #[error("byte {offset}: packet truncated, {needed} more byte(s) needed")]
    Truncated { offset: usize, needed: usize },
    #[error("byte {offset}: varint longer than 5 bytes or over u32")]
    BadVarint { offset: usize },
    #[error("byte 1: header length {header_len} is shorter than the {parsed} header bytes parsed")]
    HeaderTooShort { header_len: usize, parsed: usize },
    #[error("byte 1: header length {header_len} exceeds the {available} byte(s) available")]
    HeaderBeyondData { header_len: usize, available: usize },
}

/// The packed business header, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BusinessHeader<'a> {
    pub header_len: u8,
    pub compress: Compress,
    pub algo: Algo,
    pub cookie_len: u8,
    pub client_version: u32,
    pub uin: u32,
    #[serde(serialize_with = "ser_hex")]
    pub cookie: &'a [u8],
    pub cgi: u32,
    /// Length before compression (`len_uncompressed`).
    pub plain_len: u32,
    /// Length after compression, before encryption (`len_compressed`).
    pub compressed_len: u32,
    /// Undocumented bytes between the length varints and `header_len`.
    #[serde(serialize_with = "ser_hex")]
    pub rest: &'a [u8],
}

fn ser_hex<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// Tentative split of [`BusinessHeader::rest`] (undocumented): varint v1,
/// varint v2, varint signature, flag byte (0xfe requests, 0xff responses),
/// varint v3, then the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestFields<'a> {
    pub v1: u32,
    pub v2: u32,
    pub signature: u32,
    pub flag: u8,
    pub v3: u32,
    #[serde(serialize_with = "ser_hex")]
    pub tail: &'a [u8],
}

/// Reads a protobuf-style varint that must fit a u32 in at most 5 bytes
/// (body's [`read_varint`], with the header's own errors).
fn varint32(b: &[u8], at: &mut usize) -> Result<u32, BusinessError> {
    const MAX_LEN: usize = 5;
    let start = *at;
    match read_varint(b, start, 0) {
        Ok((v, end)) if end - start <= MAX_LEN => {
            let v = u32::try_from(v).map_err(|_| BusinessError::BadVarint { offset: start })?;
            *at = end;
            Ok(v)
        }
        // Ran out of bytes before the fifth one.
        Err(RawError {
            reason: RawReason::TruncatedVarint,
            ..
        }) if b.len().saturating_sub(start) < MAX_LEN => Err(BusinessError::Truncated {
            offset: b.len().max(start),
            needed: 1,
        }),
        _ => Err(BusinessError::BadVarint { offset: start }),
    }
}

impl<'a> BusinessHeader<'a> {
    /// Parses the header; returns it with the body offset (= header_len).
    pub fn parse(b: &'a [u8]) -> Result<(BusinessHeader<'a>, usize), BusinessError> {
        match b.first() {
            None => {
                return Err(BusinessError::Truncated {
                    offset: 0,
                    needed: 1,
                })
            }
            Some(&MAGIC) => {}
            Some(&found) => return Err(BusinessError::BadMagic { found }),
        }
        let fixed = b.get(..FIXED_LEN).ok_or_else(|| BusinessError::Truncated {
            offset: b.len(),
            needed: FIXED_LEN - b.len(),
        })?;
        let header_len = fixed[1] >> 2;
        let compress = Compress(fixed[1] & 3);
        let algo = Algo(fixed[2] >> 4);
        let cookie_len = fixed[2] & 0x0f;
        let client_version = u32::from_be_bytes([fixed[3], fixed[4], fixed[5], fixed[6]]);
        let uin = u32::from_be_bytes([fixed[7], fixed[8], fixed[9], fixed[10]]);
        let cookie_end = FIXED_LEN + usize::from(cookie_len);
        let cookie = b
            .get(FIXED_LEN..cookie_end)
            .ok_or_else(|| BusinessError::Truncated {
                offset: b.len(),
                needed: cookie_end - b.len(),
            })?;
        let mut at = cookie_end;
        let cgi = varint32(b, &mut at)?;
        let plain_len = varint32(b, &mut at)?;
        let compressed_len = varint32(b, &mut at)?;
        let hl = usize::from(header_len);
        if hl < at {
            return Err(BusinessError::HeaderTooShort {
                header_len: hl,
                parsed: at,
            });
        }
        let rest = b.get(at..hl).ok_or(BusinessError::HeaderBeyondData {
            header_len: hl,
            available: b.len(),
        })?;
        Ok((
            BusinessHeader {
                header_len,
                compress,
                algo,
                cookie_len,
                client_version,
                uin,
                cookie,
                cgi,
                plain_len,
                compressed_len,
                rest,
            },
            hl,
        ))
    }

    /// The tentative split of the undocumented bytes, if they fit it.
    pub fn rest_fields(&self) -> Option<RestFields<'a>> {
        let b = self.rest;
        let mut at = 0;
        let v1 = varint32(b, &mut at).ok()?;
        let v2 = varint32(b, &mut at).ok()?;
        let signature = varint32(b, &mut at).ok()?;
        let flag = *b.get(at)?;
        at += 1;
        let v3 = varint32(b, &mut at).ok()?;
        Some(RestFields {
            v1,
            v2,
            signature,
            flag,
            v3,
            tail: b.get(at..)?,
        })
    }

    /// A response carries client version 0 (requests carry the client's).
    pub fn is_response(&self) -> bool {
        self.client_version == 0
    }
}

/// Why a body could not be turned into plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("body algorithm {0} is not supported")]
    UnsupportedAlgo(u8),
    #[error("decryption failed: {0}")]
    Crypto(Failure),
    #[error("zlib inflate failed: {0}")]
    Inflate(String),
    #[error("inflated plaintext exceeds {0} bytes")]
    TooLarge(usize),
    #[error("hybrid-ECDH envelope: {0}")]
    Envelope(String),
}

/// Where a GCM AAD came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AadSource {
    /// Computed from the envelope (request fields 3, 4 and 5).
    Derived,
    /// Taken from the key log's `metadata`.
    Logged,
}

/// One decrypted GCM blob of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenedField {
    pub key_lines: Vec<usize>,
    pub decrypted_len: usize,
    pub inflated_len: Option<usize>,
    pub aad: AadSource,
}

/// One top-level field of the hybrid-ECDH envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeField {
    pub field: u32,
    pub wire_type: u8,
    /// Offset of the value inside the body.
    pub offset: usize,
    /// Length of the value (length-delimited), 0 otherwise.
    pub len: usize,
    pub varint: Option<u64>,
    pub opened: Option<OpenedField>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeRole {
    Request,
    Response,
}

/// The hybrid-ECDH (algo 12) envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    pub role: EnvelopeRole,
    pub nid: Option<u64>,
    #[serde(serialize_with = "ser_hex_opt")]
    pub ecdh_point: Option<Vec<u8>>,
    pub fields: Vec<EnvelopeField>,
    pub payload_field: u32,
    /// Request only: fields 3 and 4 decrypt to the same client random.
    pub client_random_equal: Option<bool>,
}

fn ser_hex_opt<S: serde::Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

/// A decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The protobuf plaintext (inflated when compressed).
    pub plaintext: Vec<u8>,
    /// Length after decryption, before inflating.
    pub decrypted_len: usize,
    pub inflated: bool,
    /// Key-log lines whose key opened the body (all equivalent lines).
    pub key_lines: Vec<usize>,
    /// Algo 5 only: the key came from trying the logged session keys, not
    /// from a line matching this ciphertext.
    pub key_by_trial: bool,
    pub envelope: Option<Envelope>,
}

/// Result of [`decode_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    NoKey,
    Decoded(Decoded),
    Failed(DecodeError),
}

/// True for a plausible zlib stream header (deflate, window <= 32K, check
/// bits valid).
pub fn looks_like_zlib(b: &[u8]) -> bool {
    match b {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Inflates a zlib stream, refusing output over `cap` bytes.
pub fn inflate(data: &[u8], cap: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    ZlibDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Inflate(e.to_string()))?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge(cap));
    }
    Ok(out)
}

/// Parses a business packet and decodes its body.
pub fn decode<'a>(
    packet: &'a [u8],
    keys: &KeyLog,
) -> Result<(BusinessHeader<'a>, Outcome), BusinessError> {
    let (h, body_off) = BusinessHeader::parse(packet)?;
    let body = packet.get(body_off..).unwrap_or(&[]);
    Ok((h, decode_body(&h, body, keys)))
}

/// Decrypts (and inflates) a body with the key log.
pub fn decode_body(h: &BusinessHeader<'_>, body: &[u8], keys: &KeyLog) -> Outcome {
    match h.algo {
        Algo::AES_CBC => decode_cbc(h, body, keys),
        Algo::AES_GCM => match keys.open_inner_gcm(body, None) {
            Decrypt::NoKey => Outcome::NoKey,
            Decrypt::Failed(f) => Outcome::Failed(DecodeError::Crypto(f)),
            Decrypt::Plaintext(o) => {
                // Always zlib in practice, whatever the flag says.
                let decrypted_len = o.plaintext.len();
                let key_lines = o.lines();
                let (plaintext, inflated) = match maybe_inflate(o.plaintext, true) {
                    Ok(v) => v,
                    Err(e) => return Outcome::Failed(e),
                };
                Outcome::Decoded(Decoded {
                    plaintext,
                    decrypted_len,
                    inflated,
                    key_lines,
                    key_by_trial: false,
                    envelope: None,
                })
            }
        },
        Algo::HYBRID_ECDH => decode_envelope(body, keys),
        Algo(other) => Outcome::Failed(DecodeError::UnsupportedAlgo(other)),
    }
}

/// Inflates when `always` (and the data looks like zlib) — else returns it.
fn maybe_inflate(data: Vec<u8>, always: bool) -> Result<(Vec<u8>, bool), DecodeError> {
    if always && looks_like_zlib(&data) {
        Ok((inflate(&data, MAX_PLAINTEXT_LEN)?, true))
    } else {
        Ok((data, false))
    }
}

fn decode_cbc(h: &BusinessHeader<'_>, body: &[u8], keys: &KeyLog) -> Outcome {
    let (opened, by_trial) = match keys.open_inner_cbc(body) {
        Decrypt::Plaintext(o) => (o, false),
        Decrypt::Failed(f) => return Outcome::Failed(DecodeError::Crypto(f)),
        Decrypt::NoKey => {
            // No line logged this ciphertext: the session key is reused for
            // the whole session, so try the logged CBC keys, accepting only
            // valid padding AND the header's compressed length.
            let found = keys.cbc_keys().into_iter().find_map(|(line, key, iv)| {
                keylog::cbc_decrypt(key, iv, body)
                    .ok()
                    .filter(|pt| pt.len() == h.compressed_len as usize)
                    .map(|pt| keylog::Opened {
                        plaintext: pt,
                        line,
                        also: Vec::new(),
                    })
            });
            match found {
                Some(o) => (o, true),
                None => return Outcome::NoKey,
            }
        }
    };
    let decrypted_len = opened.plaintext.len();
    let key_lines = opened.lines();
    let zlib = h.compress == Compress::ZLIB;
    let (plaintext, inflated) = if zlib {
        match inflate(&opened.plaintext, MAX_PLAINTEXT_LEN) {
            Ok(p) => (p, true),
            Err(e) => return Outcome::Failed(e),
        }
    } else {
        (opened.plaintext, false)
    };
    Outcome::Decoded(Decoded {
        plaintext,
        decrypted_len,
        inflated,
        key_lines,
        key_by_trial: by_trial,
        envelope: None,
    })
}

/// A protobuf value (the envelope needs only these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// One protobuf field: number, value offset, value.
pub type PbField<'a> = (u32, usize, PbValue<'a>);

/// Parses a whole buffer as protobuf fields (no groups) with body's
/// [`WireReader`]. `Err(offset)` at the first tag or value that does not
/// parse.
pub fn pb_fields(b: &[u8]) -> Result<Vec<PbField<'_>>, usize> {
    WireReader::without_groups(b)
        .map(|f| {
            let f = f.map_err(|e| e.offset)?;
            let value = match f.value {
                WireValue::Varint(v) => PbValue::Varint(v),
                WireValue::Fixed64(v) => PbValue::Fixed64(v),
                WireValue::Fixed32(v) => PbValue::Fixed32(v),
                WireValue::Len(b) => PbValue::Bytes(b),
                WireValue::Group(_) => return Err(f.offset),
            };
            Ok((f.number, f.data_offset, value))
        })
        .collect()
}

fn get<'a>(fields: &[PbField<'a>], n: u32) -> Option<PbValue<'a>> {
    fields.iter().find(|f| f.0 == n).map(|f| f.2)
}

fn get_bytes<'a>(fields: &[PbField<'a>], n: u32) -> Option<&'a [u8]> {
    match get(fields, n) {
        Some(PbValue::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// `{1 nid, 2 point}`.
fn ecdh_key(b: &[u8]) -> Option<(u64, Vec<u8>)> {
    let f = pb_fields(b).ok()?;
    let nid = match get(&f, 1)? {
        PbValue::Varint(v) => v,
        _ => return None,
    };
    Some((nid, get_bytes(&f, 2)?.to_vec()))
}

fn decode_envelope(body: &[u8], keys: &KeyLog) -> Outcome {
    let fields = match pb_fields(body) {
        Ok(f) => f,
        Err(at) => {
            return Outcome::Failed(DecodeError::Envelope(format!(
                "not protobuf at body byte {at}"
            )))
        }
    };
    // Request: 1 = version (varint), 2 = client key; response: 1 = server key.
    let (role, version, key) = match (get(&fields, 1), get_bytes(&fields, 2)) {
        (Some(PbValue::Varint(v)), Some(k)) => (EnvelopeRole::Request, Some(v), ecdh_key(k)),
        (Some(PbValue::Bytes(k)), _) => (EnvelopeRole::Response, None, ecdh_key(k)),
        _ => {
            return Outcome::Failed(DecodeError::Envelope(
                "neither request {1 version, 2 key} nor response {1 key} layout".into(),
            ))
        }
    };
    let payload_field = match role {
        EnvelopeRole::Request => 5,
        EnvelopeRole::Response => 3,
    };
    // Request AADs: SHA-256 over the decimal version and nid strings, the
    // client point, and (for the payload) the two client-random blobs.
    let derived = |with_randoms: bool| -> Option<Vec<u8>> {
        let (nid, point) = key.as_ref()?;
        let mut h = Sha256::new();
        h.update(version?.to_string().as_bytes());
        h.update(nid.to_string().as_bytes());
        h.update(point);
        if with_randoms {
            h.update(get_bytes(&fields, 3)?);
            h.update(get_bytes(&fields, 4)?);
        }
        Some(h.finalize().to_vec())
    };
    let mut out_fields = Vec::new();
    let mut payload: Option<Decoded> = None;
    let mut randoms: Vec<Vec<u8>> = Vec::new();
    for &(field, offset, v) in &fields {
        let mut ef = EnvelopeField {
            field,
            wire_type: 0,
            offset,
            len: 0,
            varint: None,
            opened: None,
        };
        match v {
            PbValue::Varint(x) => ef.varint = Some(x),
            PbValue::Fixed64(_) => ef.wire_type = 1,
            PbValue::Fixed32(_) => ef.wire_type = 5,
            PbValue::Bytes(b) => {
                ef.wire_type = 2;
                ef.len = b.len();
                let is_blob = match role {
                    EnvelopeRole::Request => (3..=5).contains(&field),
                    EnvelopeRole::Response => field == 3,
                };
                if is_blob && !b.is_empty() {
                    let aad = if role == EnvelopeRole::Request {
                        derived(field == 5)
                    } else {
                        None
                    };
                    let (res, src) = match aad.as_deref().map(|a| keys.open_inner_gcm(b, Some(a))) {
                        Some(r @ Decrypt::Plaintext(_)) => (r, AadSource::Derived),
                        _ => (keys.open_inner_gcm(b, None), AadSource::Logged),
                    };
                    match res {
                        Decrypt::Plaintext(o) => {
                            let decrypted_len = o.plaintext.len();
                            let key_lines = o.lines();
                            let (pt, inflated) = match maybe_inflate(o.plaintext, true) {
                                Ok(v) => v,
                                Err(e) => return Outcome::Failed(e),
                            };
                            ef.opened = Some(OpenedField {
                                key_lines: key_lines.clone(),
                                decrypted_len,
                                inflated_len: inflated.then_some(pt.len()),
                                aad: src,
                            });
                            if field == payload_field {
                                payload = Some(Decoded {
                                    plaintext: pt,
                                    decrypted_len,
                                    inflated,
                                    key_lines,
                                    key_by_trial: false,
                                    envelope: None,
                                });
                            } else if role == EnvelopeRole::Request {
                                randoms.push(pt);
                            }
                        }
                        Decrypt::Failed(f) if field == payload_field => {
                            return Outcome::Failed(DecodeError::Crypto(f))
                        }
                        _ => {}
                    }
                }
            }
        }
        out_fields.push(ef);
    }
    let env = Envelope {
        role,
        nid: key.as_ref().map(|k| k.0),
        ecdh_point: key.map(|k| k.1),
        fields: out_fields,
        payload_field,
        client_random_equal: (randoms.len() == 2).then(|| randoms[0] == randoms[1]),
    };
    match payload {
        Some(mut d) => {
            d.envelope = Some(env);
            Outcome::Decoded(d)
        }
        None => Outcome::NoKey,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real headers from the capture: the secautoauth request (conn 7) and
    /// a bypsync response (conn 17).
    const REQ: &str =
        "bfb2cf2800173759bc0b2454034802000000003baf3ee14faf00fb05dd29dd29974e0200fe808a8492040000";
    const RESP: &str =
        "bf995f0000000059bc0b24fc034802000000001f9c4c24760e00d91c4230000000ff00000000";

    #[test]
    fn request_header_fields() {
        let b = hex::decode(REQ).unwrap();
        let (h, off) = BusinessHeader::parse(&b).unwrap();
        assert_eq!(off, 44);
        assert_eq!(off, b.len());
        assert_eq!(h.header_len, 44);
        assert_eq!(h.compress, Compress::NONE);
        assert_eq!(h.algo, Algo::HYBRID_ECDH);
        assert_eq!(h.cookie_len, 15);
        assert_eq!(h.client_version, 0x28001737);
        assert_eq!(h.uin, 1505495844);
        assert_eq!(hex::encode(h.cookie), "54034802000000003baf3ee14faf00");
        assert_eq!((h.cgi, h.plain_len, h.compressed_len), (763, 5341, 5341));
        assert_eq!(hex::encode(h.rest), "974e0200fe808a8492040000");
        let r = h.rest_fields().unwrap();
        assert_eq!(
            (r.v1, r.v2, r.signature, r.flag, r.v3),
            (10007, 2, 0, 0xfe, 1111557376)
        );
        assert_eq!(r.tail, &[0, 0]);
        assert!(!h.is_response());
        assert_eq!(crate::proto::commands::cgi_name(h.cgi), Some("secautoauth"));
        assert_eq!(h.algo.name(), Some("hybrid-ecdh"));
    }

    #[test]
    fn response_header_fields() {
        let b = hex::decode(RESP).unwrap();
        let (h, off) = BusinessHeader::parse(&b).unwrap();
        assert_eq!(off, 38);
        assert_eq!(h.compress, Compress::ZLIB);
        assert_eq!(h.algo, Algo::AES_CBC);
        assert_eq!((h.cgi, h.plain_len, h.compressed_len), (3673, 66, 48));
        assert!(h.is_response());
        let r = h.rest_fields().unwrap();
        assert_eq!((r.v1, r.v2, r.signature, r.flag, r.v3), (0, 0, 0, 0xff, 0));
        assert_eq!(r.tail, &[0, 0, 0]);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            BusinessHeader::parse(&[0x17]),
            Err(BusinessError::BadMagic { found: 0x17 })
        );
        assert_eq!(
            BusinessHeader::parse(&[]),
            Err(BusinessError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        let mut b = hex::decode(REQ).unwrap();
        b[1] = (10 << 2) | 2; // header_len 10 < parsed
        assert!(matches!(
            BusinessHeader::parse(&b),
            Err(BusinessError::HeaderTooShort { header_len: 10, .. })
        ));
        let mut b = hex::decode(REQ).unwrap();
        b[26] = 0xff;
        b[27] = 0xff;
        b[28] = 0xff;
        b[29] = 0xff;
        b[30] = 0xff;
        assert_eq!(
            BusinessHeader::parse(&b),
            Err(BusinessError::BadVarint { offset: 26 })
        );
    }

    #[test]
    fn every_truncated_prefix_is_an_error_not_a_panic() {
        for s in [REQ, RESP] {
            let b = hex::decode(s).unwrap();
            for n in 0..b.len() {
                let r = BusinessHeader::parse(&b[..n]);
                assert!(r.is_err(), "prefix {n} of {s}");
                let _ = pb_fields(&b[..n]);
            }
        }
    }

    #[test]
    fn zlib_helpers() {
        // zlib("hello") from Python.
        let z = hex::decode("789ccb48cdc9c90700062c0215").unwrap();
        assert!(looks_like_zlib(&z));
        assert_eq!(inflate(&z, 100).unwrap(), b"hello");
        assert_eq!(inflate(&z, 3), Err(DecodeError::TooLarge(3)));
        assert!(inflate(&z[..5], 100).is_err());
        assert!(!looks_like_zlib(&[0x08, 0x01]));
    }

    #[test]
    fn protobuf_fields() {
        // {1: 1, 2: {1: 415, 2: "ab"}, 4: ""}
        let b = [
            0x08, 0x01, 0x12, 0x07, 0x08, 0x9f, 0x03, 0x12, 0x02, b'a', b'b', 0x22, 0x00,
        ];
        let f = pb_fields(&b).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0], (1, 1, PbValue::Varint(1)));
        assert_eq!(
            ecdh_key(match f[1].2 {
                PbValue::Bytes(b) => b,
                _ => panic!(),
            }),
            Some((415, b"ab".to_vec()))
        );
        assert_eq!(f[2], (4, 13, PbValue::Bytes(&[])));
        for n in 0..b.len() {
            let _ = pb_fields(&b[..n]);
        }
        assert_eq!(pb_fields(&[0x0b]), Err(0)); // group start
    }

    #[test]
    fn cbc_body_round_trip_with_a_logged_key() {
        use aes::Aes128;
        use cbc::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
        let key = hex::decode("772a5c27535048614365427b545e7a5b").unwrap();
        let pt = b"\x0a\x03abc";
        let ct = cbc::Encryptor::<Aes128>::new_from_slices(&key, &key)
            .unwrap()
            .encrypt_padded_vec::<Pkcs7>(pt);
        let log = KeyLog::parse(&format!(
            "{{\"layer\":\"INNER\",\"encrypt\":true,\"key\":\"{k}\",\"nonce\":\"{k}\",\"tail\":\"{t}\"}}",
            k = hex::encode(&key),
            t = hex::encode(&ct[ct.len() - 8..])
        ))
        .unwrap();
        let mut packet = hex::decode(RESP).unwrap();
        packet[1] = (38 << 2) | 2; // no compression
                                   // cgi d91c at 26, plain len at 28, compressed len at 29
        packet[29] = pt.len() as u8;
        packet.extend_from_slice(&ct);
        let (h, out) = decode(&packet, &log).unwrap();
        assert_eq!(h.compressed_len, 5);
        match out {
            Outcome::Decoded(d) => {
                assert_eq!(d.plaintext, pt);
                assert_eq!(d.key_lines, vec![1]);
                assert!(!d.key_by_trial);
            }
            other => panic!("{other:?}"),
        }
        // A different ciphertext under the same session key: found by trial.
        let pt2 = b"\x0a\x02xy";
        let ct2 = cbc::Encryptor::<Aes128>::new_from_slices(&key, &key)
            .unwrap()
            .encrypt_padded_vec::<Pkcs7>(pt2);
        let mut p2 = packet[..38].to_vec();
        p2[29] = pt2.len() as u8;
        p2.extend_from_slice(&ct2);
        match decode(&p2, &log).unwrap().1 {
            Outcome::Decoded(d) => {
                assert_eq!(d.plaintext, pt2);
                assert!(d.key_by_trial);
            }
            other => panic!("{other:?}"),
        }
    }

    mod props {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn arbitrary_input_never_panics(data in vec(any::<u8>(), 0..400), algo in 0u8..16) {
                let keys = KeyLog::default();
                let mut b = vec![MAGIC];
                b.extend_from_slice(&data);
                if b.len() > 2 {
                    b[2] = (algo << 4) | (b[2] & 0x0f);
                }
                if let Ok((h, off)) = BusinessHeader::parse(&b) {
                    prop_assert_eq!(off, usize::from(h.header_len));
                    prop_assert!(off <= b.len());
                    let _ = h.rest_fields();
                }
                let _ = decode(&b, &keys);
                let _ = decode_body(
                    &BusinessHeader::parse(&hex::decode(super::REQ).unwrap()).unwrap().0,
                    &data,
                    &keys,
                );
                let _ = pb_fields(&data);
                let _ = inflate(&data, 1 << 16);
            }
        }
    }
}
