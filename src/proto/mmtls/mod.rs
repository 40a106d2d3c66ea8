//! MMTLS records: the outer encryption layer of the WeChat long and short
//! links (protocol.md section 4).
//!
//! A record is a 5-byte header (type, `f1 04` version, big-endian payload
//! length) followed by the payload. Encrypted payloads are AES-128-GCM
//! ciphertext plus a 16-byte tag; the unencrypted ClientHello/ServerHello
//! and very short alerts are sent in the clear.
//!
//! Sans-IO: [`RecordHeader::parse`] views bytes, [`Splitter`] cuts an
//! in-order byte stream (with gaps) into records, borrowing whenever a
//! record lies whole inside one chunk and copying only records split across
//! chunks. Decryption lives in [`crate::proto::keylog`], the short link's
//! early-data layout in [`crate::proto::shortlink`].
//!
//! - this file: the record header (types, versions, errors, detection);
//! - `splitter`: the incremental record splitter and [`split_all`];
//! - `handshake`: cleartext hellos and handshake message types.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

mod handshake;
mod splitter;
#[cfg(test)]
mod tests;

pub use handshake::{
    handshake_type, is_cleartext, parse_hello, ClientHello, HandshakeType, Hello, ServerHello,
};
pub use splitter::{split_all, Output, Record, SkipReason, Skipped, SplitStats, Splitter};

/// Length of a record header.
pub const HEADER_LEN: usize = 5;
/// Length of the AES-GCM tag at the end of an encrypted payload.
pub const TAG_LEN: usize = 16;
/// Largest payload a record header can announce.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;
/// Largest record (header included): 2^16 - 1 + 5.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN;
/// Current record version (`f1 04`).
pub const VERSION_F104: u16 = 0xf104;
/// Older record version (`f1 03`).
pub const VERSION_F103: u16 = 0xf103;

/// Record type byte; unknown values stay representable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RecordType(pub u8);

impl RecordType {
    pub const ALERT: RecordType = RecordType(0x15);
    pub const HANDSHAKE: RecordType = RecordType(0x16);
    pub const DATA: RecordType = RecordType(0x17);
    pub const RESUMPTION_HANDSHAKE: RecordType = RecordType(0x19);

    /// The registry name (`alert`, `handshake`, `data`,
    /// `handshake_resumption`), `None` for unknown values.
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            0x15 => Some("alert"),
            0x16 => Some("handshake"),
            0x17 => Some("data"),
            0x19 => Some("handshake_resumption"),
            _ => None,
        }
    }

    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordType({self})")
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x} ({})", self.0, self.name().unwrap_or("unknown"))
    }
}

/// Errors of the MMTLS layer. Offsets are relative to the slice given to
/// the parser.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MmtlsError {
    #[error(
        "byte {offset}: version 0x{version:04x} is not an MMTLS version (expected f1 xx); \
         these bytes are not an MMTLS record"
    )]
    BadVersion { offset: usize, version: u16 },
    #[error("byte {offset}: handshake message truncated, {needed} more byte(s) needed")]
    Truncated { offset: usize, needed: usize },
    #[error(
        "byte {offset}: handshake length field says {declared} but {actual} byte(s) follow \
         (not a cleartext hello)"
    )]
    LengthMismatch {
        offset: usize,
        declared: u32,
        actual: usize,
    },
    #[error("byte {offset}: handshake type {typ} is not a ClientHello (1) or ServerHello (2)")]
    NotHello { offset: usize, typ: u8 },
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RecordHeader {
    pub typ: RecordType,
    pub version: u16,
    /// Payload length (ciphertext + tag for encrypted records).
    pub len: u16,
}

impl RecordHeader {
    /// Parses the first [`HEADER_LEN`] bytes. `Ok(None)`: fewer than
    /// `HEADER_LEN` bytes (incomplete, needs `HEADER_LEN - bytes.len()`
    /// more). Invalid when the first version byte is not `0xf1`. Unknown
    /// types are accepted (see [`looks_like_record`] for a strict check).
    pub fn parse(bytes: &[u8]) -> Result<Option<RecordHeader>, MmtlsError> {
        if bytes.len() >= 2 && bytes[1] != 0xf1 {
            let version = u16::from_be_bytes([bytes[1], bytes.get(2).copied().unwrap_or(0)]);
            return Err(MmtlsError::BadVersion { offset: 1, version });
        }
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        Ok(Some(RecordHeader {
            typ: RecordType(h[0]),
            version: u16::from_be_bytes([h[1], h[2]]),
            len: u16::from_be_bytes([h[3], h[4]]),
        }))
    }

    /// The 5 header bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let v = self.version.to_be_bytes();
        let l = self.len.to_be_bytes();
        [self.typ.0, v[0], v[1], l[0], l[1]]
    }

    /// Header plus payload length.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.len)
    }
}

/// Strict plausibility check for protocol detection and resynchronisation:
/// type 0x15/0x16/0x17/0x19 followed by version `f1 03` or `f1 04`. Needs at
/// least 3 bytes.
pub fn looks_like_record(bytes: &[u8]) -> bool {
    match bytes {
        [t, 0xf1, 0x03 | 0x04, ..] => RecordType(*t).is_known(),
        _ => false,
    }
}

/// Could `bytes` (shorter than 3) be the start of a plausible header?
fn plausible_prefix(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [t] => RecordType(*t).is_known(),
        [t, 0xf1] => RecordType(*t).is_known(),
        _ => looks_like_record(bytes),
    }
}
