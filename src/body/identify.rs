//! The long-link identify body (cmd 205, seq 0xFFFFFFFE), protocol.md
//! section 2:
//!
//! ```text
//! u32 w1 = ((uin >> 13) & 0x7FFFF | synckey_len << 19) ^ 0x5601F281      big-endian
//! u32 w2 = 0x5601F281 ^ (((synckey_len >> 13) & 0x7FFFF) | uin << 19)
//! synckey_len bytes   SyncKey protobuf
//! u32                 client version
//! 8 bytes             locale, NUL-padded ("en_US")
//! tail                u32 words (2, 1, 1 seen), network id, u32 length + network id context
//! ```
//!
//! w1/w2 are a bit rotation of (uin, synckey_len) by 13 bits, masked, so
//! every pair of words decodes to some (uin, length); a length that runs
//! past the body is the sign of a body that is not an identify.
//!
//! The tail's layout is not documented (unsure): it is decoded best effort
//! ([`Tail::parse`]) and never fails the decode; its raw bytes are kept.
//! The identify response (cmd 1000000205) body has the same shape as the
//! tail with four leading words: `Tail::parse(body, 4)`.

use serde::{Serialize, Serializer};

use super::synckey::{SyncKey, SyncKeyError};

/// The constant both words are XORed with.
pub const XOR_MASK: u32 = 0x5601_F281;
/// w1 + w2.
pub const HEAD_LEN: usize = 8;
/// Client version (4) + locale.
pub const TRAILER_LEN: usize = 4 + LOCALE_LEN;
pub const LOCALE_LEN: usize = 8;
/// Leading u32 words of the identify tail.
pub const TAIL_WORDS: usize = 3;
/// Leading u32 words of the identify response body.
pub const RESPONSE_WORDS: usize = 4;

const LOW19: u32 = 0x7_FFFF;

/// (w1, w2) for a uin and SyncKey length.
pub fn encode_words(uin: u32, synckey_len: u32) -> (u32, u32) {
    let w1 = (((uin >> 13) & LOW19) | (synckey_len << 19)) ^ XOR_MASK;
    let w2 = XOR_MASK ^ (((synckey_len >> 13) & LOW19) | (uin << 19));
    (w1, w2)
}

/// (uin, synckey_len) from (w1, w2); the inverse of [`encode_words`].
pub fn decode_words(w1: u32, w2: u32) -> (u32, u32) {
    let a = w1 ^ XOR_MASK;
    let b = w2 ^ XOR_MASK;
    let uin = ((a & LOW19) << 13) | (b >> 19);
    let synckey_len = (a >> 19) | ((b & LOW19) << 13);
    (uin, synckey_len)
}

/// A decoded identify body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identify {
    pub uin: u32,
    /// Length of the SyncKey protobuf, from w1/w2.
    pub synckey_len: u32,
    pub synckey: SyncKey,
    /// SyncKey field 1 (KeyCount), when present.
    pub synckey_count: Option<u32>,
    pub client_version: u32,
    /// The locale up to its first NUL (invalid UTF-8 replaced by U+FFFD).
    pub locale: String,
    /// The tail's leading u32 words (up to [`TAIL_WORDS`]).
    pub tail_words: Vec<u32>,
    pub network_id: Option<String>,
    pub network_id_ctx: Option<String>,
    /// Whether every tail byte was accounted for.
    pub tail_fully_parsed: bool,
    /// Everything after the locale, as sent.
    #[serde(serialize_with = "as_hex")]
    pub tail: Vec<u8>,
}

/// Why a body is not an identify body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identify body: at byte offset {offset}: {reason}")]
pub struct IdentifyError {
    pub offset: usize,
    pub reason: IdentifyReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyReason {
    #[error("the body ends before the {what} ({needed} bytes needed, {available} present)")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error(
        "w1/w2 give a SyncKey of {synckey_len} bytes but only {available} follow \
         (truncated body, or not an identify body)"
    )]
    SyncKeyLength { synckey_len: u32, available: usize },
    #[error("the SyncKey is malformed: {0}")]
    SyncKey(SyncKeyError),
}

impl Identify {
    /// Decodes a complete identify body (the frame body after the 16-byte
    /// header). Fails only when the fixed part (words, SyncKey, version,
    /// locale) is missing or the SyncKey is malformed; the tail is best
    /// effort.
    pub fn decode(body: &[u8]) -> Result<Identify, IdentifyError> {
        let word = |at: usize| -> u32 {
            let mut a = [0u8; 4];
            a.copy_from_slice(&body[at..at + 4]);
            u32::from_be_bytes(a)
        };
        if body.len() < HEAD_LEN {
            return Err(IdentifyError {
                offset: 0,
                reason: IdentifyReason::Truncated {
                    what: "w1/w2 words",
                    needed: HEAD_LEN,
                    available: body.len(),
                },
            });
        }
        let (uin, synckey_len) = decode_words(word(0), word(4));
        let available = body.len() - HEAD_LEN;
        let sk_len = synckey_len as usize;
        if sk_len > available {
            return Err(IdentifyError {
                offset: HEAD_LEN,
                reason: IdentifyReason::SyncKeyLength {
                    synckey_len,
                    available,
                },
            });
        }
        let sk_end = HEAD_LEN + sk_len;
        let parsed =
            SyncKey::decode_detailed(&body[HEAD_LEN..sk_end]).map_err(|e| IdentifyError {
                offset: HEAD_LEN + e.offset,
                reason: IdentifyReason::SyncKey(e),
            })?;
        if body.len() - sk_end < TRAILER_LEN {
            return Err(IdentifyError {
                offset: sk_end,
                reason: IdentifyReason::Truncated {
                    what: "client version and locale",
                    needed: TRAILER_LEN,
                    available: body.len() - sk_end,
                },
            });
        }
        let client_version = word(sk_end);
        let locale_bytes = &body[sk_end + 4..sk_end + TRAILER_LEN];
        let nul = locale_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(LOCALE_LEN);
        let locale = String::from_utf8_lossy(&locale_bytes[..nul]).into_owned();
        let tail_bytes = &body[sk_end + TRAILER_LEN..];
        let tail = Tail::parse(tail_bytes, TAIL_WORDS);
        Ok(Identify {
            uin,
            synckey_len,
            synckey: parsed.synckey,
            synckey_count: parsed.declared_count,
            client_version,
            locale,
            tail_words: tail.words,
            network_id: tail.network_id,
            network_id_ctx: tail.network_id_ctx,
            tail_fully_parsed: tail.fully_parsed,
            // Copied so the decoded value outlives the frame buffer.
            tail: tail_bytes.to_vec(),
        })
    }

    /// Encodes the body: words from `uin` and the encoded SyncKey's real
    /// length (not `synckey_len`), the plain SyncKey, version, locale
    /// (truncated or NUL-padded to 8 bytes) and the raw `tail`.
    pub fn encode(&self) -> Vec<u8> {
        let sk = self.synckey.encode();
        let (w1, w2) = encode_words(self.uin, sk.len() as u32);
        let mut out = Vec::with_capacity(HEAD_LEN + sk.len() + TRAILER_LEN + self.tail.len());
        out.extend_from_slice(&w1.to_be_bytes());
        out.extend_from_slice(&w2.to_be_bytes());
        out.extend_from_slice(&sk);
        out.extend_from_slice(&self.client_version.to_be_bytes());
        let mut locale = [0u8; LOCALE_LEN];
        let l = self.locale.as_bytes();
        let n = l.len().min(LOCALE_LEN);
        locale[..n].copy_from_slice(&l[..n]);
        out.extend_from_slice(&locale);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// The best-effort part after the locale (and the identify response body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tail {
    pub words: Vec<u32>,
    /// A run of printable ASCII after the words (32 hex digits seen).
    pub network_id: Option<String>,
    /// After the network id: u32 length, then that many bytes of UTF-8.
    pub network_id_ctx: Option<String>,
    /// Whether all `words` were present and every byte was accounted for.
    pub fully_parsed: bool,
}

impl Tail {
    /// Reads up to `words` big-endian u32s, then a network id (printable
    /// ASCII up to the first other byte) and a length-prefixed context
    /// string. Never fails: what does not fit is left unparsed.
    pub fn parse(bytes: &[u8], words: usize) -> Tail {
        let mut tail = Tail::default();
        let mut pos = 0;
        for _ in 0..words {
            let Some(w) = read_u32(bytes, pos) else {
                return tail;
            };
            tail.words.push(w);
            pos += 4;
        }
        let run = bytes[pos..]
            .iter()
            .take_while(|b| b.is_ascii_graphic())
            .count();
        if run > 0 {
            tail.network_id = Some(String::from_utf8_lossy(&bytes[pos..pos + run]).into_owned());
            pos += run;
        }
        if let Some(n) = read_u32(bytes, pos) {
            let start = pos + 4;
            if let Some(s) = bytes
                .get(start..start.saturating_add(n as usize))
                .and_then(|b| std::str::from_utf8(b).ok())
            {
                tail.network_id_ctx = Some(s.to_owned());
                pos = start + s.len();
            }
        }
        tail.fully_parsed = pos == bytes.len();
        tail
    }

    /// The bytes [`Tail::parse`] reads back: the words (big-endian), the
    /// network id, then the context with its u32 length (`fully_parsed` is
    /// not encoded).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for w in &self.words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        if let Some(id) = &self.network_id {
            out.extend_from_slice(id.as_bytes());
        }
        if let Some(ctx) = &self.network_id_ctx {
            out.extend_from_slice(&(ctx.len() as u32).to_be_bytes());
            out.extend_from_slice(ctx.as_bytes());
        }
        out
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn as_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_the_real_identify() {
        // Frame 411 of the WeChat capture: w1 0x5de33f61, w2 0x0f21f281.
        assert_eq!(decode_words(0x5de3_3f61, 0x0f21_f281), (1_505_495_844, 380));
        assert_eq!(encode_words(1_505_495_844, 380), (0x5de3_3f61, 0x0f21_f281));
        for (uin, len) in [(0, 0), (u32::MAX, u32::MAX), (1, 1 << 31), (0x1234_5678, 9)] {
            let (w1, w2) = encode_words(uin, len);
            assert_eq!(decode_words(w1, w2), (uin, len));
        }
    }

    #[test]
    fn tail_shapes() {
        let mut t = hex::decode("000000020000000100000001").expect("hex");
        t.extend_from_slice(b"abcdef");
        t.extend_from_slice(&3u32.to_be_bytes());
        t.extend_from_slice(b"x%3");
        let tail = Tail::parse(&t, 3);
        assert_eq!(tail.words, [2, 1, 1]);
        assert_eq!(tail.network_id.as_deref(), Some("abcdef"));
        assert_eq!(tail.network_id_ctx.as_deref(), Some("x%3"));
        assert!(tail.fully_parsed);
        // Context length past the end: left unparsed, no failure.
        t.truncate(t.len() - 1);
        let tail = Tail::parse(&t, 3);
        assert_eq!((tail.network_id_ctx, tail.fully_parsed), (None, false));
        // Empty and short tails.
        assert_eq!(
            Tail::parse(&[], 3),
            Tail {
                fully_parsed: false,
                ..Tail::default()
            }
        );
        assert_eq!(Tail::parse(&[0, 0, 0, 2, 0], 3).words, [2]);
        assert!(Tail::parse(&[], 0).fully_parsed);
        // encode is parse's inverse.
        let full = Tail {
            words: vec![2, 1, 1],
            network_id: Some("abcdef".into()),
            network_id_ctx: Some("x%3".into()),
            fully_parsed: true,
        };
        let mut t = hex::decode("000000020000000100000001").expect("hex");
        t.extend_from_slice(b"abcdef");
        t.extend_from_slice(&3u32.to_be_bytes());
        t.extend_from_slice(b"x%3");
        assert_eq!(full.encode(), t);
        assert_eq!(Tail::parse(&full.encode(), 3), full);
    }

    #[test]
    fn errors() {
        let e = Identify::decode(&[0x5d, 0xe3]).unwrap_err();
        assert_eq!(e.offset, 0);
        // Real words (SyncKey 380 bytes) with nothing after them.
        let e = Identify::decode(&hex::decode("5de33f610f21f281").expect("hex")).unwrap_err();
        assert!(e.to_string().contains("380"), "{e}");
        assert_eq!(
            (e.offset, e.reason),
            (
                8,
                IdentifyReason::SyncKeyLength {
                    synckey_len: 380,
                    available: 0
                }
            )
        );
    }
}
