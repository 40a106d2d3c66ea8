//! The incremental MMTLS record splitter: in-order chunks (with gaps) in,
//! records and reported skips out.

use serde::Serialize;

use super::{
    is_cleartext, looks_like_record, plausible_prefix, RecordHeader, HEADER_LEN, MAX_RECORD_LEN,
};

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
