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
//! chunks. Decryption lives in [`crate::proto::keylog`].

use std::fmt;

use serde::Serialize;
use thiserror::Error;

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

/// One record, borrowed from the chunk it was found in (or from the
/// splitter's assembly buffer when it spanned chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// 0-based index among the records of this splitter (one direction).
    pub index: u64,
    /// Stream offset of the first header byte.
    pub stream_offset: u64,
    pub header: RecordHeader,
    /// Header plus payload.
    pub raw: &'a [u8],
}

impl<'a> Record<'a> {
    pub fn payload(&self) -> &'a [u8] {
        self.raw.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True for records sent in the clear: the ClientHello/ServerHello and
    /// payloads shorter than a GCM tag (see [`is_cleartext`]).
    pub fn is_cleartext(&self) -> bool {
        is_cleartext(self.header.typ, self.payload())
    }
}

/// Why bytes were not delivered as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Scanned over while looking for the next plausible header (after a
    /// gap or an invalid header).
    Resync,
    /// A record longer than the configured cap; skipped without buffering.
    Oversize,
    /// The start of a record whose rest was lost in a gap.
    CutByGap,
    /// The stream ended inside a record.
    Truncated,
}

/// A reported skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub stream_offset: u64,
    /// Bytes skipped. `Resync`: bytes scanned over. `CutByGap` and
    /// `Truncated`: the bytes of the record actually seen. `Oversize`: the
    /// record length the header announces (reported when the header is
    /// seen; the skip ends there unless the stream ends or a gap comes
    /// first). Gap bytes themselves are never included.
    pub len: u64,
    pub reason: SkipReason,
    /// The record header, when it was known.
    pub header: Option<RecordHeader>,
}

/// What [`Splitter::feed_with`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    Record(Record<'a>),
    Skipped(Skipped),
}

/// Counters of a [`Splitter`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SplitStats {
    pub records: u64,
    /// Records that spanned chunks and were copied to be assembled.
    pub assembled: u64,
    pub record_bytes: u64,
    pub skipped_bytes: u64,
    pub resyncs: u64,
    pub oversize: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next byte is a record header.
    Sync,
    /// Looking for a plausible header.
    Resync,
    /// Inside a record that is not delivered (oversize or cut by a gap).
    Discard { remaining: u64 },
}

/// Incremental record splitter for one direction of a connection.
///
/// Feed in-order chunks with their stream offsets; tell it about gaps.
/// Records whole inside a chunk are passed borrowed; only a record split
/// across chunks is copied (into a buffer capped at the record cap).
#[derive(Debug, Clone)]
pub struct Splitter {
    max_record: usize,
    state: State,
    /// Bytes of a record split across chunks (copied on purpose: no single
    /// chunk holds the whole record).
    partial: Vec<u8>,
    partial_off: u64,
    /// Up to 4 bytes that might start a header, seen while resyncing.
    pending: Vec<u8>,
    pending_off: u64,
    /// Open resync skip: (start, len).
    skip: Option<(u64, u64)>,
    /// Skips found outside a feed call (gaps), reported at the next call.
    queued: Vec<Skipped>,
    next_off: Option<u64>,
    next_index: u64,
    stats: SplitStats,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter accepting records up to [`MAX_RECORD_LEN`].
    pub fn new() -> Self {
        Self::with_max_record(MAX_RECORD_LEN)
    }

    /// A splitter that skips (and reports) records longer than `max_record`
    /// bytes, header included. The cap is at least [`HEADER_LEN`].
    pub fn with_max_record(max_record: usize) -> Self {
        Splitter {
            max_record: max_record.max(HEADER_LEN),
            state: State::Sync,
            partial: Vec::new(),
            partial_off: 0,
            pending: Vec::new(),
            pending_off: 0,
            skip: None,
            queued: Vec::new(),
            next_off: None,
            next_index: 0,
            stats: SplitStats::default(),
        }
    }

    pub fn stats(&self) -> &SplitStats {
        &self.stats
    }

    /// Bytes currently held for a record split across chunks.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds the in-order chunk at `stream_offset`, reporting records only
    /// (skips are counted in [`Splitter::stats`]).
    pub fn feed(&mut self, stream_offset: u64, bytes: &[u8], out: &mut impl FnMut(Record<'_>)) {
        self.feed_with(stream_offset, bytes, &mut |o| {
            if let Output::Record(r) = o {
                out(r)
            }
        });
    }

    /// Feeds the in-order chunk at `stream_offset`, reporting records and
    /// skips. A chunk that does not start where the previous one ended is
    /// treated as following a gap.
    pub fn feed_with(
        &mut self,
        stream_offset: u64,
        bytes: &[u8],
        out: &mut impl FnMut(Output<'_>),
    ) {
        if let Some(expected) = self.next_off {
            if stream_offset != expected {
                self.lose(stream_offset.saturating_sub(expected));
            }
        }
        self.flush_queued(out);
        self.next_off = Some(stream_offset.saturating_add(bytes.len() as u64));
        let mut pos = 0usize;
        while pos < bytes.len() {
            let off = stream_offset.saturating_add(pos as u64);
            let rest = &bytes[pos..];
            match self.state {
                State::Discard { remaining } => {
                    let n = remaining.min(rest.len() as u64);
                    // n <= rest.len(), fits usize.
                    pos += n as usize;
                    self.stats.skipped_bytes += n;
                    self.state = if n == remaining {
                        State::Sync
                    } else {
                        State::Discard {
                            remaining: remaining - n,
                        }
                    };
                }
                State::Resync => pos += self.resync(off, rest, out),
                State::Sync if !self.partial.is_empty() => pos += self.continue_partial(rest, out),
                State::Sync => match RecordHeader::parse(rest) {
                    Err(_) => {
                        // This byte is counted as skipped; scan from the next.
                        self.enter_resync(off, &[]);
                        pos += 1;
                    }
                    Ok(None) => {
                        // A header split across chunks: copy its start.
                        self.partial.extend_from_slice(rest);
                        self.partial_off = off;
                        pos = bytes.len();
                    }
                    Ok(Some(h)) => {
                        let total = h.record_len();
                        if total > self.max_record {
                            self.oversize(off, h, out);
                        } else if let Some(raw) = rest.get(..total) {
                            self.emit(off, h, raw, out);
                            pos += total;
                        } else {
                            // Record continues in a later chunk: copy.
                            self.partial.reserve(total);
                            self.partial.extend_from_slice(rest);
                            self.partial_off = off;
                            pos = bytes.len();
                        }
                    }
                },
            }
        }
    }

    /// `len` bytes after the last chunk are missing. The partial record (if
    /// any) is dropped and reported; if its header told where the next
    /// record starts and the gap ends before that, splitting continues
    /// there, else the splitter scans for the next plausible header.
    pub fn gap(&mut self, len: u64) {
        let at = self.next_off.unwrap_or(0);
        self.lose(len);
        self.next_off = Some(at.saturating_add(len));
    }

    /// The stream ended: reports a truncated record or open skip.
    pub fn finish(&mut self, out: &mut impl FnMut(Output<'_>)) {
        self.flush_queued(out);
        if !self.partial.is_empty() {
            let header = RecordHeader::parse(&self.partial).ok().flatten();
            let s = Skipped {
                stream_offset: self.partial_off,
                len: self.partial.len() as u64,
                reason: SkipReason::Truncated,
                header,
            };
            self.stats.skipped_bytes += s.len;
            self.partial.clear();
            out(Output::Skipped(s));
        }
        if !self.pending.is_empty() && plausible_prefix(&self.pending) {
            // Held bytes that start a plausible header: a record cut by the
            // end, as when the same bytes arrive in one chunk.
            self.close_skip(out);
            let s = Skipped {
                stream_offset: self.pending_off,
                len: self.pending.len() as u64,
                reason: SkipReason::Truncated,
                header: None,
            };
            self.stats.skipped_bytes += s.len;
            out(Output::Skipped(s));
        } else {
            self.add_skip(self.pending_off, self.pending.len() as u64);
        }
        self.pending.clear();
        self.close_skip(out);
        self.state = State::Sync;
    }

    fn flush_queued(&mut self, out: &mut impl FnMut(Output<'_>)) {
        for s in self.queued.drain(..) {
            out(Output::Skipped(s));
        }
    }

    fn emit(
        &mut self,
        off: u64,
        header: RecordHeader,
        raw: &[u8],
        out: &mut impl FnMut(Output<'_>),
    ) {
        self.close_skip(out);
        let index = self.next_index;
        self.next_index += 1;
        self.stats.records += 1;
        self.stats.record_bytes += raw.len() as u64;
        out(Output::Record(Record {
            index,
            stream_offset: off,
            header,
            raw,
        }));
    }

    fn oversize(&mut self, off: u64, h: RecordHeader, out: &mut impl FnMut(Output<'_>)) {
        self.close_skip(out);
        let total = h.record_len() as u64;
        self.stats.oversize += 1;
        out(Output::Skipped(Skipped {
            stream_offset: off,
            len: total,
            reason: SkipReason::Oversize,
            header: Some(h),
        }));
        self.state = State::Discard { remaining: total };
    }

    /// Continues the record held in `partial` with `chunk`; returns the
    /// bytes consumed.
    fn continue_partial(&mut self, chunk: &[u8], out: &mut impl FnMut(Output<'_>)) -> usize {
        let mut used = 0;
        if self.partial.len() < HEADER_LEN {
            let take = (HEADER_LEN - self.partial.len()).min(chunk.len());
            self.partial.extend_from_slice(&chunk[..take]);
            used = take;
        }
        let h = match RecordHeader::parse(&self.partial) {
            Ok(Some(h)) => h,
            Ok(None) => return used,
            Err(_) => {
                let bad = std::mem::take(&mut self.partial);
                self.enter_resync(self.partial_off, &bad);
                return used;
            }
        };
        let total = h.record_len();
        if total > self.max_record {
            let seen = self.partial.len() as u64;
            self.stats.skipped_bytes += seen;
            self.partial.clear();
            self.oversize(self.partial_off, h, out);
            self.state = State::Discard {
                remaining: total as u64 - seen,
            };
            return used;
        }
        let take = (total - self.partial.len().min(total)).min(chunk.len() - used);
        self.partial.extend_from_slice(&chunk[used..used + take]);
        used += take;
        if self.partial.len() == total {
            let raw = std::mem::take(&mut self.partial);
            self.stats.assembled += 1;
            self.emit(self.partial_off, h, &raw, out);
            // Keep the allocation for the next split record.
            self.partial = raw;
            self.partial.clear();
        }
        used
    }

    /// The bytes at `off` do not start a record. `held` are bytes already
    /// taken from earlier chunks starting at `off` (they are rescanned from
    /// their second byte on).
    fn enter_resync(&mut self, off: u64, held: &[u8]) {
        self.stats.resyncs += 1;
        self.add_skip(off, 1);
        self.pending.clear();
        if held.len() > 1 {
            self.pending.extend_from_slice(&held[1..]);
            self.pending_off = off + 1;
        }
        self.state = State::Resync;
    }

    fn add_skip(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.stats.skipped_bytes += len;
        match &mut self.skip {
            Some((_, l)) => *l += len,
            None => self.skip = Some((off, len)),
        }
    }

    fn close_skip(&mut self, out: &mut impl FnMut(Output<'_>)) {
        if let Some((stream_offset, len)) = self.skip.take() {
            out(Output::Skipped(Skipped {
                stream_offset,
                len,
                reason: SkipReason::Resync,
                header: None,
            }));
        }
    }

    /// Scans `pending` + `chunk` for a plausible header; returns the bytes
    /// of `chunk` consumed.
    fn resync(&mut self, off: u64, chunk: &[u8], out: &mut impl FnMut(Output<'_>)) -> usize {
        if !self.pending.is_empty() {
            let mut win = self.pending.clone();
            win.extend_from_slice(&chunk[..chunk.len().min(4)]);
            for p in 0..self.pending.len() {
                let cand = &win[p..win.len().min(p + 3)];
                if cand.len() == 3 && looks_like_record(cand) {
                    self.add_skip(self.pending_off, p as u64);
                    self.close_skip(out);
                    self.partial.clear();
                    self.partial.extend_from_slice(&self.pending[p..]);
                    self.partial_off = self.pending_off + p as u64;
                    self.pending.clear();
                    self.state = State::Sync;
                    return 0;
                }
                if cand.len() < 3 && plausible_prefix(cand) {
                    // The chunk is too short to decide: keep waiting.
                    self.add_skip(self.pending_off, p as u64);
                    let keep: Vec<u8> = self.pending[p..].iter().chain(chunk).copied().collect();
                    self.pending = keep;
                    self.pending_off += p as u64;
                    return chunk.len();
                }
            }
            self.add_skip(self.pending_off, self.pending.len() as u64);
            self.pending.clear();
        }
        for q in 0..chunk.len() {
            let cand = &chunk[q..chunk.len().min(q + 3)];
            if cand.len() == 3 && looks_like_record(cand) {
                self.add_skip(off, q as u64);
                self.close_skip(out);
                self.state = State::Sync;
                return q;
            }
            if cand.len() < 3 && plausible_prefix(cand) {
                self.add_skip(off, q as u64);
                self.pending.clear();
                self.pending.extend_from_slice(cand);
                self.pending_off = off + q as u64;
                return chunk.len();
            }
        }
        self.add_skip(off, chunk.len() as u64);
        chunk.len()
    }

    /// `len` bytes after `next_off` are missing.
    fn lose(&mut self, len: u64) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        // Pending resync bytes and the open skip end at the gap.
        self.add_skip(self.pending_off, self.pending.len() as u64);
        self.pending.clear();
        if let Some((stream_offset, l)) = self.skip.take() {
            self.queued.push(Skipped {
                stream_offset,
                len: l,
                reason: SkipReason::Resync,
                header: None,
            });
        }
        let mut next = State::Resync;
        if !self.partial.is_empty() {
            let header = RecordHeader::parse(&self.partial).ok().flatten();
            let seen = self.partial.len() as u64;
            self.stats.skipped_bytes += seen;
            self.queued.push(Skipped {
                stream_offset: self.partial_off,
                len: seen,
                reason: SkipReason::CutByGap,
                header,
            });
            self.partial.clear();
            if let Some(h) = header {
                // The record's end is known: skip to it if the gap ends
                // before (or exactly at) it.
                let remaining = h.record_len() as u64 - seen;
                if len <= remaining {
                    next = Self::discard(remaining - len);
                }
            }
        } else if let State::Discard { remaining } = self.state {
            if len <= remaining {
                next = Self::discard(remaining - len);
            }
        } else if self.state == State::Sync && len == 0 {
            next = State::Sync;
        }
        self.state = next;
    }

    fn discard(remaining: u64) -> State {
        if remaining == 0 {
            State::Sync
        } else {
            State::Discard { remaining }
        }
    }
}

/// Splits a whole buffer (records borrowed from it) starting at stream
/// offset `base`; a trailing partial record is reported as a skip.
pub fn split_all(base: u64, bytes: &[u8]) -> (Vec<Record<'_>>, Vec<Skipped>) {
    let mut recs = Vec::new();
    let mut skips = Vec::new();
    let mut pos = 0usize;
    let mut index = 0u64;
    // Borrowing version of Splitter for one buffer: records point into
    // `bytes`, so walk it directly and let a Splitter handle anything odd.
    while pos < bytes.len() {
        match RecordHeader::parse(&bytes[pos..]) {
            Ok(Some(h)) => match bytes.get(pos..pos + h.record_len()) {
                Some(raw) => {
                    recs.push(Record {
                        index,
                        stream_offset: base + pos as u64,
                        header: h,
                        raw,
                    });
                    index += 1;
                    pos += raw.len();
                }
                None => break,
            },
            _ => break,
        }
    }
    if pos < bytes.len() {
        // Hand the rest to a splitter for resync and skip reporting; its
        // records are copies, re-borrow them from `bytes` by offset.
        let mut sp = Splitter::new();
        sp.next_index = index;
        let start = base + pos as u64;
        let mut found = Vec::new();
        let mut out = |o: Output<'_>| match o {
            Output::Record(r) => found.push((r.index, r.stream_offset, r.header)),
            Output::Skipped(s) => skips.push(s),
        };
        sp.feed_with(start, &bytes[pos..], &mut out);
        sp.finish(&mut out);
        for (index, off, header) in found {
            let at = (off - base) as usize;
            if let Some(raw) = bytes.get(at..at + header.record_len()) {
                recs.push(Record {
                    index,
                    stream_offset: off,
                    header,
                    raw,
                });
            }
        }
    }
    (recs, skips)
}

/// True for payloads sent in the clear: a ClientHello/ServerHello (u32
/// length == payload length - 4, type 1 or 2, version `04 f1`) in a
/// handshake record, or a payload too short to hold a GCM tag.
pub fn is_cleartext(typ: RecordType, payload: &[u8]) -> bool {
    if payload.len() < TAG_LEN {
        return true;
    }
    let hs = typ == RecordType::HANDSHAKE || typ == RecordType::RESUMPTION_HANDSHAKE;
    match payload {
        [a, b, c, d, 1 | 2, 0x04, 0xf1, ..] if hs => {
            u32::from_be_bytes([*a, *b, *c, *d]) as usize == payload.len() - 4
        }
        _ => false,
    }
}

/// Handshake message type (TLS numbering, an inference for the encrypted
/// ones); unknown values stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "client_hello",
            2 => "server_hello",
            4 => "new_session_ticket",
            8 => "encrypted_extensions",
            11 => "certificate",
            13 => "certificate_request",
            15 => "certificate_verify",
            20 => "finished",
            _ => return None,
        })
    }
}

/// Handshake message view: u32 length (of what follows), type byte.
/// Returns the type when the length matches the payload exactly.
pub fn handshake_type(plaintext: &[u8]) -> Option<HandshakeType> {
    match plaintext {
        [a, b, c, d, t, ..]
            if u32::from_be_bytes([*a, *b, *c, *d]) as usize == plaintext.len() - 4 =>
        {
            Some(HandshakeType(*t))
        }
        _ => None,
    }
}

/// Cleartext ClientHello fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    pub version: u16,
    pub cipher_suites: Vec<u16>,
    pub random: [u8; 32],
    /// Unix time (seconds).
    pub timestamp: u32,
    /// Offset (in the payload) of the extensions that follow.
    pub extensions_offset: usize,
}

/// Cleartext ServerHello fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    pub version: u16,
    pub cipher_suite: u16,
    pub random: [u8; 32],
    pub extensions_offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Hello {
    ClientHello(ClientHello),
    ServerHello(ServerHello),
}

fn take<'a>(p: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], MmtlsError> {
    let s = p
        .get(*at..at.saturating_add(n))
        .ok_or_else(|| MmtlsError::Truncated {
            offset: *at,
            needed: (*at + n).saturating_sub(p.len()),
        })?;
    *at += n;
    Ok(s)
}

/// Parses a cleartext hello from a record payload:
/// `u32 len | u8 type | u16 version | ...`; ClientHello continues with
/// `u8 n | n x u16 suite | random[32] | u32 timestamp | extensions`,
/// ServerHello with `u16 suite | random[32] | extensions`.
pub fn parse_hello(payload: &[u8]) -> Result<Hello, MmtlsError> {
    let mut at = 0;
    let len = take(payload, &mut at, 4)?;
    let declared = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if declared as usize != payload.len() - 4 {
        return Err(MmtlsError::LengthMismatch {
            offset: 0,
            declared,
            actual: payload.len() - 4,
        });
    }
    let typ = take(payload, &mut at, 1)?[0];
    let v = take(payload, &mut at, 2)?;
    let version = u16::from_be_bytes([v[0], v[1]]);
    let mut random = [0u8; 32];
    match typ {
        1 => {
            let n = take(payload, &mut at, 1)?[0] as usize;
            let suites = take(payload, &mut at, 2 * n)?;
            let cipher_suites = suites
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            random.copy_from_slice(take(payload, &mut at, 32)?);
            let t = take(payload, &mut at, 4)?;
            Ok(Hello::ClientHello(ClientHello {
                version,
                cipher_suites,
                random,
                timestamp: u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
                extensions_offset: at,
            }))
        }
        2 => {
            let s = take(payload, &mut at, 2)?;
            let cipher_suite = u16::from_be_bytes([s[0], s[1]]);
            random.copy_from_slice(take(payload, &mut at, 32)?);
            Ok(Hello::ServerHello(ServerHello {
                version,
                cipher_suite,
                random,
                extensions_offset: at,
            }))
        }
        typ => Err(MmtlsError::NotHello { offset: 4, typ }),
    }
}

#[cfg(test)]
mod finish_tests {
    use super::*;

    /// The fuzzer's finding: `00 16 f1 04` gives the same skips whether it
    /// arrives in one chunk or as `00` then `16 f1 04`.
    #[test]
    fn skips_at_the_end_do_not_depend_on_chunking() {
        let data = [0x00, 0x16, 0xf1, 0x04];
        let run = |cuts: &[usize]| {
            let mut sp = Splitter::new();
            let mut out = Vec::new();
            let mut at = 0;
            for &c in cuts.iter().chain([data.len()].iter()) {
                sp.feed_with(at as u64, &data[at..c], &mut |o| out.push(format!("{o:?}")));
                at = c;
            }
            sp.finish(&mut |o| out.push(format!("{o:?}")));
            out
        };
        let whole = run(&[]);
        for cut in 1..data.len() {
            assert_eq!(run(&[cut]), whole, "cut at {cut}");
        }
        assert_eq!(run(&[1, 2, 3]), whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real ServerHello record of conn 7 (s2c), 51 bytes.
    const SERVER_HELLO: &str = "16f104002e0000002a0204f100a820cbbe3fc158efacc09c63246b7efcb99d21\
                                e402cb8b3eecf62936f304e0dd6d0000000100";
    /// The 7-byte plaintext alert of conn 5.
    const ALERT: &[u8] = &[0x15, 0xf1, 0x04, 0x00, 0x07, 0, 0, 0, 3, 0, 0x73, 0x02];

    fn client_hello() -> Vec<u8> {
        // Start of conn 7's ClientHello (0x19), cut after the timestamp and
        // re-lengthed so the record is self-consistent.
        let mut p = hex::decode(
            "0104f10100a84f6776fbb4668f2a36bb557494c40ccdc8bbf44441b024d88ec48629cc35e21b656e783c",
        )
        .unwrap();
        p.extend_from_slice(&[0xaa, 0xbb]);
        let mut payload = (p.len() as u32).to_be_bytes().to_vec();
        payload.extend_from_slice(&p);
        let mut r = vec![0x19, 0xf1, 0x04];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend_from_slice(&payload);
        r
    }

    #[test]
    fn header_parse_and_emit() {
        let h = RecordHeader::parse(&[0x17, 0xf1, 0x04, 0x01, 0x50])
            .unwrap()
            .unwrap();
        assert_eq!(h.typ, RecordType::DATA);
        assert_eq!(h.version, VERSION_F104);
        assert_eq!(h.len, 0x150);
        assert_eq!(h.record_len(), 0x155);
        assert_eq!(h.emit(), [0x17, 0xf1, 0x04, 0x01, 0x50]);
        assert_eq!(RecordHeader::parse(&[0x17, 0xf1]).unwrap(), None);
        assert_eq!(
            RecordHeader::parse(b"POST /"),
            Err(MmtlsError::BadVersion {
                offset: 1,
                version: 0x4f53
            })
        );
        // Unknown type is representable.
        let h = RecordHeader::parse(&[0x42, 0xf1, 0x04, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!(h.typ.name(), None);
        assert_eq!(h.typ.to_string(), "0x42 (unknown)");
        assert_eq!(RecordType(0x19).name(), Some("handshake_resumption"));
    }

    #[test]
    fn detection() {
        assert!(looks_like_record(&[0x16, 0xf1, 0x04, 0x00, 0xa1]));
        assert!(looks_like_record(&[0x19, 0xf1, 0x03]));
        assert!(!looks_like_record(&[0x18, 0xf1, 0x04, 0, 0]));
        assert!(!looks_like_record(&[0x16, 0xf1, 0x05, 0, 0]));
        assert!(!looks_like_record(&[0x16, 0xf1]));
        assert!(!looks_like_record(b"GET / HTTP/1.1"));
    }

    #[test]
    fn hellos() {
        let sh = hex::decode(SERVER_HELLO).unwrap();
        let h = RecordHeader::parse(&sh).unwrap().unwrap();
        assert_eq!(h.record_len(), sh.len());
        assert!(is_cleartext(h.typ, &sh[5..]));
        match parse_hello(&sh[5..]).unwrap() {
            Hello::ServerHello(s) => {
                assert_eq!(s.cipher_suite, 0x00a8);
                assert_eq!(s.version, 0x04f1);
                assert_eq!(
                    hex::encode(s.random),
                    "20cbbe3fc158efacc09c63246b7efcb99d21e402cb8b3eecf62936f304e0dd6d"
                );
            }
            other => panic!("{other:?}"),
        }
        let ch = client_hello();
        assert!(is_cleartext(RecordType::RESUMPTION_HANDSHAKE, &ch[5..]));
        match parse_hello(&ch[5..]).unwrap() {
            Hello::ClientHello(c) => {
                assert_eq!(c.cipher_suites, vec![0x00a8]);
                assert_eq!(c.timestamp, 1701738556);
                assert_eq!(&c.random[..4], &[0x4f, 0x67, 0x76, 0xfb]);
                assert_eq!(c.extensions_offset, ch.len() - 5 - 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(is_cleartext(RecordType::ALERT, &ALERT[5..]));
        // An encrypted-looking payload is not cleartext.
        assert!(!is_cleartext(RecordType::DATA, &[0x55; 40]));
        assert_eq!(
            handshake_type(&[0, 0, 0, 2, 20, 0]),
            Some(HandshakeType(20))
        );
        assert_eq!(HandshakeType(20).name(), Some("finished"));
        assert_eq!(handshake_type(&[0, 0, 0, 9, 20, 0]), None);
    }

    #[test]
    fn hello_prefixes_never_panic() {
        let sh = hex::decode(SERVER_HELLO).unwrap();
        let ch = client_hello();
        for rec in [&sh, &ch] {
            for n in 0..rec.len() {
                let _ = RecordHeader::parse(&rec[..n]);
                let _ = parse_hello(&rec[5.min(n)..n]);
                let _ = is_cleartext(RecordType::HANDSHAKE, &rec[5.min(n)..n]);
                let _ = handshake_type(&rec[..n]);
                let _ = looks_like_record(&rec[..n]);
            }
        }
    }

    fn stream() -> Vec<u8> {
        let mut s = client_hello();
        s.extend_from_slice(&hex::decode(SERVER_HELLO).unwrap());
        s.extend_from_slice(ALERT);
        let mut big = vec![0x17, 0xf1, 0x04, 0x03, 0x00];
        big.extend((0..0x300u32).map(|i| i as u8));
        s.extend_from_slice(&big);
        s
    }

    /// (index, stream offset, raw) of each record.
    type Recs = Vec<(u64, u64, Vec<u8>)>;

    fn collect(sp: &mut Splitter, chunks: &[(u64, &[u8])]) -> (Recs, Vec<Skipped>) {
        let mut recs = Vec::new();
        let mut skips = Vec::new();
        let mut out = |o: Output<'_>| match o {
            Output::Record(r) => recs.push((r.index, r.stream_offset, r.raw.to_vec())),
            Output::Skipped(s) => skips.push(s),
        };
        for (off, c) in chunks {
            sp.feed_with(*off, c, &mut out);
        }
        sp.finish(&mut out);
        (recs, skips)
    }

    #[test]
    fn splitter_borrows_whole_records_and_assembles_split_ones() {
        let s = stream();
        let (whole, skips) = collect(&mut Splitter::new(), &[(100, &s)]);
        assert!(skips.is_empty());
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].1, 100);
        assert_eq!(whole.iter().map(|r| r.2.len()).sum::<usize>(), s.len());
        // Every chunking gives the same records.
        for size in [1, 2, 3, 4, 5, 6, 7, 13, 50, 51, 52, 777] {
            let chunks: Vec<(u64, &[u8])> = s
                .chunks(size)
                .enumerate()
                .map(|(i, c)| (100 + (i * size) as u64, c))
                .collect();
            let mut sp = Splitter::new();
            let (recs, skips) = collect(&mut sp, &chunks);
            assert_eq!(recs, whole, "chunk size {size}");
            assert!(skips.is_empty());
            assert_eq!(sp.stats().records, 4);
        }
        // Whole-buffer helper agrees.
        let (recs, skips) = split_all(100, &s);
        assert!(skips.is_empty());
        let recs: Vec<_> = recs
            .iter()
            .map(|r| (r.index, r.stream_offset, r.raw.to_vec()))
            .collect();
        assert_eq!(recs, whole);
    }

    #[test]
    fn splitter_resyncs_after_gap_and_garbage() {
        let s = stream();
        let sh_start = client_hello().len();
        // Lose 10 bytes inside the ClientHello: its header is known, so the
        // splitter skips to the ServerHello exactly.
        let mut sp = Splitter::new();
        let (recs, skips) = {
            let mut recs = Vec::new();
            let mut skips = Vec::new();
            let mut out = |o: Output<'_>| match o {
                Output::Record(r) => recs.push(r.stream_offset),
                Output::Skipped(s) => skips.push(s),
            };
            sp.feed_with(0, &s[..20], &mut out);
            sp.gap(10);
            sp.feed_with(30, &s[30..], &mut out);
            sp.finish(&mut out);
            (recs, skips)
        };
        assert_eq!(
            recs,
            vec![sh_start as u64, sh_start as u64 + 51, sh_start as u64 + 63]
        );
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].reason, SkipReason::CutByGap);
        assert_eq!(skips[0].len, 20);
        // Garbage in front: scanned over and reported, in every chunking.
        let mut g = b"xx\x17\xf1zzgarbage\x16".to_vec();
        let glen = g.len() as u64;
        g.extend_from_slice(&s);
        for size in [1, 2, 3, 5, 1000] {
            let chunks: Vec<(u64, &[u8])> = g
                .chunks(size)
                .enumerate()
                .map(|(i, c)| ((i * size) as u64, c))
                .collect();
            let (recs, skips) = collect(&mut Splitter::new(), &chunks);
            assert_eq!(recs.len(), 4, "size {size}");
            assert_eq!(recs[0].1, glen);
            assert_eq!(skips.len(), 1, "size {size}: {skips:?}");
            assert_eq!((skips[0].stream_offset, skips[0].len), (0, glen));
            assert_eq!(skips[0].reason, SkipReason::Resync);
        }
    }

    #[test]
    fn splitter_caps_record_size() {
        let s = stream();
        for size in [1, 7, 100, 10_000] {
            let chunks: Vec<(u64, &[u8])> = s
                .chunks(size)
                .enumerate()
                .map(|(i, c)| ((i * size) as u64, c))
                .collect();
            let mut sp = Splitter::with_max_record(200);
            let (recs, skips) = collect(&mut sp, &chunks);
            assert_eq!(recs.len(), 3, "size {size}");
            assert_eq!(skips.len(), 1);
            assert_eq!(skips[0].reason, SkipReason::Oversize);
            assert_eq!(skips[0].len, 0x305);
            assert!(sp.buffered() == 0);
        }
    }

    #[test]
    fn splitter_every_prefix_and_split_point() {
        let s = stream();
        for n in 0..=s.len() {
            let (recs, skips) = collect(&mut Splitter::new(), &[(0, &s[..n])]);
            let seen: usize = recs.iter().map(|r| r.2.len()).sum::<usize>()
                + skips.iter().map(|k| k.len as usize).sum::<usize>();
            assert_eq!(seen, n, "prefix {n}");
            let (recs2, _) = split_all(0, &s[..n]);
            assert_eq!(recs2.len(), recs.len());
        }
        for cut in 0..=s.len() {
            let (a, b) = s.split_at(cut);
            let (recs, skips) = collect(&mut Splitter::new(), &[(0, a), (cut as u64, b)]);
            assert_eq!(recs.len(), 4, "cut {cut}");
            assert!(skips.is_empty());
        }
        // Gaps at every position never panic and never lose sync for good.
        for at in 0..s.len() {
            for len in [1u64, 5, 60] {
                let mut sp = Splitter::new();
                let mut n = 0;
                let mut out = |o: Output<'_>| {
                    if let Output::Record(_) = o {
                        n += 1
                    }
                };
                sp.feed_with(0, &s[..at], &mut out);
                sp.gap(len);
                let resume = (at as u64 + len).min(s.len() as u64) as usize;
                sp.feed_with(resume as u64, &s[resume..], &mut out);
                sp.finish(&mut out);
                assert!(n <= 4);
            }
        }
    }

    #[test]
    fn splitter_random_bytes_never_panic() {
        // Deterministic pseudo-random input (xorshift), fed in odd chunks.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut data = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = (x >> 24) as u8;
            // Bias towards header-like bytes.
            data.push(match b % 7 {
                0 => 0xf1,
                1 => 0x17,
                2 => 0x04,
                _ => b,
            });
        }
        let mut sp = Splitter::with_max_record(1000);
        let mut total = 0u64;
        let mut off = 0u64;
        for (i, c) in data.chunks(97).enumerate() {
            if i % 11 == 5 {
                sp.gap(3);
                off += 3;
                continue;
            }
            sp.feed_with(off, c, &mut |o| {
                if let Output::Record(r) = o {
                    total += r.raw.len() as u64;
                    assert_eq!(r.raw.len(), r.header.record_len());
                }
            });
            off += c.len() as u64;
        }
        assert!(sp.buffered() <= 1000);
        assert!(total <= data.len() as u64);
    }

    mod props {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        fn build(spec: &[(u8, Vec<u8>)]) -> Vec<u8> {
            let mut s = Vec::new();
            for (t, p) in spec {
                s.extend_from_slice(
                    &RecordHeader {
                        typ: RecordType(*t),
                        version: VERSION_F104,
                        len: p.len() as u16,
                    }
                    .emit(),
                );
                s.extend_from_slice(p);
            }
            s
        }

        fn chunked(s: &[u8], cuts: &[usize]) -> Vec<(u64, Vec<u8>)> {
            let mut sp = Splitter::new();
            let mut out = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < s.len() {
                let n = cuts[k % cuts.len()].min(s.len() - at);
                sp.feed(at as u64, &s[at..at + n], &mut |r| {
                    out.push((r.stream_offset, r.raw.to_vec()))
                });
                at += n;
                k += 1;
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn any_chunking_gives_the_records_emitted(
                spec in vec((prop::sample::select(vec![0x15u8, 0x16, 0x17, 0x19, 0x42]),
                             vec(any::<u8>(), 0..300)), 0..8),
                cuts in vec(1usize..400, 1..20),
            ) {
                let s = build(&spec);
                let (whole, skips) = split_all(0, &s);
                prop_assert!(skips.is_empty());
                prop_assert_eq!(whole.len(), spec.len());
                for (r, (t, p)) in whole.iter().zip(&spec) {
                    prop_assert_eq!(r.header.typ.0, *t);
                    prop_assert_eq!(r.payload(), &p[..]);
                }
                let whole: Vec<_> = whole.iter().map(|r| (r.stream_offset, r.raw.to_vec())).collect();
                prop_assert_eq!(chunked(&s, &cuts), whole);
            }

            #[test]
            fn arbitrary_input_never_panics_and_stays_bounded(
                data in vec(any::<u8>(), 0..3000),
                cuts in vec(1usize..300, 1..10),
                gaps in vec(0u64..70, 0..6),
                cap in 5usize..400,
            ) {
                let mut sp = Splitter::with_max_record(cap);
                let (mut at, mut k) = (0usize, 0usize);
                let mut seen = 0u64;
                let mut delivered = 0u64;
                while at < data.len() {
                    let n = cuts[k % cuts.len()].min(data.len() - at);
                    delivered += n as u64;
                    sp.feed_with(at as u64, &data[at..at + n], &mut |o| match o {
                        Output::Record(r) => {
                            assert!(r.raw.len() <= cap);
                            assert_eq!(r.raw.len(), r.header.record_len());
                            seen += r.raw.len() as u64;
                        }
                        Output::Skipped(s) if s.reason == SkipReason::Oversize => {
                            assert!(s.len as usize > cap)
                        }
                        Output::Skipped(s) => seen += s.len,
                    });
                    prop_assert!(sp.buffered() <= cap);
                    at += n;
                    if let Some(g) = gaps.get(k) {
                        sp.gap(*g);
                        at += *g as usize;
                    }
                    k += 1;
                }
                sp.finish(&mut |o| if let Output::Skipped(s) = o { seen += s.len });
                // Records + skips never exceed what was delivered, and the
                // counters account for every delivered byte exactly once.
                prop_assert!(seen <= delivered);
                let st = sp.stats().clone();
                prop_assert_eq!(st.record_bytes + st.skipped_bytes, delivered, "{:?}", st);
                prop_assert_eq!(sp.buffered(), 0);
                let _ = parse_hello(&data);
                let _ = RecordHeader::parse(&data);
            }
        }
    }
}
