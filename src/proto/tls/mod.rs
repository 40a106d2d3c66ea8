//! TLS records (RFC 8446 section 5, RFC 5246 section 6.2): the envelope of
//! HTTPS, the web protocol on 443.
//!
//! A record is a 5-byte header (content type 20..=24, version `03 0x`,
//! big-endian length) followed by at most 2^14 + 2048 bytes. Sans-IO:
//! [`looks_like_record`] judges a header, [`Splitter`] cuts an in-order
//! byte stream (with gaps) into whole records, holding at most one record.
//!
//! - this file: the record header, detection and the splitter;
//! - `hello`: handshake messages (ClientHello, ServerHello, alerts) read
//!   with the `tls-parser` crate;
//! - `keys`: the NSS key log (`SSLKEYLOGFILE`) and the key schedules;
//! - `decrypt`: a connection's record protection, direction by direction.

use crate::proto::longlink::{walk_chain, Chain};

pub mod cbc;
pub mod decrypt;
pub mod hello;
pub mod keys;

pub use decrypt::{Decrypted, Protection, Undecrypted};
pub use hello::{alert_text, Handshake, HandshakeBuf, HelloFacts};
pub use keys::{NssKeyLog, Secrets};

/// Length of a record header.
pub const HEADER_LEN: usize = 5;
/// Largest record payload a peer may send (TLS 1.2 ciphertext: 2^14 + 2048).
pub const MAX_PAYLOAD_LEN: usize = (1 << 14) + 2048;

/// Content types.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
pub const HEARTBEAT: u8 = 24;

/// The name of a content type (`unknown` for others).
pub fn content_type_name(t: u8) -> &'static str {
    match t {
        CHANGE_CIPHER_SPEC => "change_cipher_spec",
        ALERT => "alert",
        HANDSHAKE => "handshake",
        APPLICATION_DATA => "application_data",
        HEARTBEAT => "heartbeat",
        _ => "unknown",
    }
}

/// Whether `b` starts with a plausible record header: a known content
/// type, version 3.0 to 3.4 and a length a peer may send (not zero).
pub fn looks_like_record(b: &[u8]) -> bool {
    match b {
        [t, 3, 0..=4, hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(t) && len > 0 && len <= MAX_PAYLOAD_LEN
        }
        _ => false,
    }
}

/// The whole length (header included) of the record `b` starts with, when
/// its header is plausible.
pub fn record_len(b: &[u8]) -> Option<usize> {
    looks_like_record(b).then(|| HEADER_LEN + usize::from(u16::from_be_bytes([b[3], b[4]])))
}

/// [`walk_chain`] for TLS records: how many plausible records follow each
/// other from the start of `b` (at most `max`), and where the walk stopped.
pub fn chain(b: &[u8], max: usize) -> (usize, Chain) {
    walk_chain(b, max, HEADER_LEN, record_len)
}

/// One whole record out of a [`Splitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Per direction, from 0.
    pub index: u64,
    /// Offset of the header in the direction's stream.
    pub stream_offset: u64,
    pub content_type: u8,
    /// The header's version field (`0x0303` for TLS 1.2 and 1.3 records).
    pub version: u16,
    /// The whole record, header included.
    pub raw: &'a [u8],
}

impl Record<'_> {
    pub fn payload(&self) -> &[u8] {
        &self.raw[HEADER_LEN..]
    }
}

/// What [`Splitter::feed`] hands out.
#[derive(Debug)]
pub enum Output<'a> {
    Record(Record<'a>),
    /// Bytes that are no record: after a gap, before the next plausible
    /// record; or the rest of a direction whose header stopped making sense.
    Skipped {
        stream_offset: u64,
        len: u64,
    },
}

/// Cuts a direction's stream into records. Holds at most two records; after a gap (or a header that makes no
/// sense) it searches for two plausible records in a row (one when the
/// bytes end exactly after it) and reports what it skipped.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    at: u64,
    next_index: u64,
    /// Searching for a record boundary (after a gap or garbage).
    lost: bool,
    /// Bytes skipped so far in the current search, and where it began.
    skipped: Option<(u64, u64)>,
}

impl Splitter {
    pub fn new() -> Self {
        Splitter::default()
    }

    /// Records cut so far.
    pub fn records(&self) -> u64 {
        self.next_index
    }

    /// Feeds the bytes at `offset` (in order, after any gap was reported).
    pub fn feed(&mut self, offset: u64, bytes: &[u8], out: &mut dyn FnMut(Output<'_>)) {
        if self.buf.is_empty() {
            self.at = offset;
        }
        self.buf.extend_from_slice(bytes);
        self.drain(false, out);
    }

    /// `len` bytes are missing from the stream: what is held is reported
    /// as skipped and the next bytes are searched for a record.
    pub fn gap(&mut self, len: u64, out: &mut dyn FnMut(Output<'_>)) {
        self.skip(self.buf.len());
        self.flush_skipped(out);
        self.at += len;
        self.lost = true;
    }

    /// The stream ended: bytes held that are not a whole record are skipped.
    pub fn finish(&mut self, out: &mut dyn FnMut(Output<'_>)) {
        self.drain(true, out);
        self.skip(self.buf.len());
        self.flush_skipped(out);
    }

    fn skip(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let (from, len) = self.skipped.unwrap_or((self.at, 0));
        self.skipped = Some((from, len + n as u64));
        self.buf.drain(..n);
        self.at += n as u64;
    }

    fn flush_skipped(&mut self, out: &mut dyn FnMut(Output<'_>)) {
        if let Some((stream_offset, len)) = self.skipped.take() {
            out(Output::Skipped { stream_offset, len });
        }
    }

    fn drain(&mut self, complete: bool, out: &mut dyn FnMut(Output<'_>)) {
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if self.lost {
                let (p, found) = match resync_point(rest, complete) {
                    Resync::Found(p) => (p, true),
                    Resync::Wait(p) => (p, false),
                    Resync::Nothing => (rest.len(), false),
                };
                self.buf.drain(..pos);
                self.at += pos as u64;
                pos = 0;
                self.skip(p);
                if !found {
                    return;
                }
                self.flush_skipped(out);
                self.lost = false;
                continue;
            }
            if rest.len() < HEADER_LEN {
                break;
            }
            let Some(len) = record_len(rest) else {
                self.buf.drain(..pos);
                self.at += pos as u64;
                pos = 0;
                self.lost = true;
                // Skip at least the byte that failed.
                self.skip(1);
                continue;
            };
            if rest.len() < len {
                break;
            }
            let rec = Record {
                index: self.next_index,
                stream_offset: self.at + pos as u64,
                content_type: rest[0],
                version: u16::from_be_bytes([rest[1], rest[2]]),
                raw: &rest[..len],
            };
            self.next_index += 1;
            out(Output::Record(rec));
            pos += len;
        }
        self.buf.drain(..pos);
        self.at += pos as u64;
    }
}

enum Resync {
    /// Two plausible records follow each other from here (or one that
    /// ends exactly at the end, once no more bytes come).
    Found(usize),
    /// A candidate starts here; more bytes will tell.
    Wait(usize),
    /// No record can start in these bytes.
    Nothing,
}

/// Where in `b` the records start again (see [`Resync`]).
fn resync_point(b: &[u8], complete: bool) -> Resync {
    for p in 0..b.len() {
        match chain(&b[p..], 2) {
            (2, _) => return Resync::Found(p),
            (1, Chain::Exact) if complete => return Resync::Found(p),
            (_, Chain::Past | Chain::Exact) if !complete => return Resync::Wait(p),
            _ => {}
        }
    }
    Resync::Nothing
}

#[cfg(test)]
mod tests;
