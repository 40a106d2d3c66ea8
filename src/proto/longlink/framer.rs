//! [`Framer`]: the analyzer's incremental, resynchronising long-link frame
//! splitter over the [`Header`] codec.
//!
//! # When a length field is not trusted
//!
//! A plausible header's length is believed, except when what follows shows
//! it wrong. While a frame is unfinished, its first [`SUSPECT_WINDOW`]
//! bytes are held (even when its body is not wanted) and searched: a chain
//! of [`SUSPECT_CHAIN`] consistent headers (each plausible, each starting
//! where the previous frame ends) that starts inside the frame, within the
//! window, makes its length bogus. The bytes from the suspect header to
//! the chain are reported as skipped ([`SkipReason::BadLength`]) and the
//! chain's frames are decoded. When the stream ends inside a frame not yet
//! judged sound (fewer than [`SUSPECT_WINDOW`] bytes of it seen, or a
//! header-like run in its window still undecided), the first chain inside
//! it that runs exactly to the end of the data (one whole frame suffices)
//! is recovered the same way. Verdicts depend on the bytes only, never on
//! the chunking nor on whether bodies are kept. A large frame
//! whose body merely contains a header-like run of bytes stays whole: one
//! or two header-like runs are not a chain, and a chain must also fit the
//! frame's bytes consistently. Over-cap lengths are reported as
//! [`FramerEvent::Oversize`] and skipped, as before.

use super::{Header, Variant, HEADER_LEN, MAX_FRAME_LEN};

/// Bytes of an unfinished frame searched for a chain of headers that
/// shows its length bogus (see the module doc).
pub const SUSPECT_WINDOW: usize = 4096;
/// Consistent headers in a row that make a length bogus.
pub const SUSPECT_CHAIN: usize = 3;

/// The held-frame buffer's capacity kept between frames; a larger one (a
/// big frame was assembled) is freed once its frame is out, so that a
/// direction's memory is that of the frame in flight, not of the largest
/// frame it ever carried.
const KEEP_CAPACITY: usize = 64 << 10;

/// Makes room in `v` for `n` more bytes of a frame of `len` bytes: once
/// the length is trusted, all of it at once (one allocation per large
/// frame, none freed along the way); before, by doubling (amortised
/// copies) but never past the frame's length.
fn grow_within(v: &mut Vec<u8>, n: usize, len: usize, trusted: bool) {
    let need = v.len() + n;
    if need > v.capacity() {
        let target = if trusted {
            len.max(need)
        } else {
            need.max(v.capacity() * 2).min(len.max(need))
        };
        v.reserve_exact(target - v.len());
    }
}

/// How far a chain of consistent long-link headers runs from the start of
/// `b`: the number of plausible headers read one after the other (each at
/// the end of the previous frame), and whether the walk stopped at the end
/// of the data (the last frame ending exactly there, or running past it)
/// rather than at an implausible header.
pub fn chain(b: &[u8], cap: u32, max: usize) -> (usize, Chain) {
    Variant::Wechat.chain(b, cap, max)
}

/// A chain walk over any framing: `len_of` gives the length of the unit
/// (frame, record) whose `header_len`-byte header starts its argument, or
/// `None` when that is no plausible header.
pub fn walk_chain(
    b: &[u8],
    max: usize,
    header_len: usize,
    len_of: impl Fn(&[u8]) -> Option<usize>,
) -> (usize, Chain) {
    let mut pos = 0usize;
    let mut n = 0;
    while n < max {
        let Some(rest) = b.get(pos..) else {
            return (n, Chain::Past);
        };
        if rest.is_empty() {
            return (n, Chain::Exact);
        }
        if rest.len() < header_len {
            return (n, Chain::Past);
        }
        let Some(len) = len_of(rest) else {
            return (n, Chain::Broken);
        };
        n += 1;
        pos += len;
    }
    (n, Chain::Long)
}

/// Where a [`chain`] walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The last frame ends exactly at the end of the data.
    Exact,
    /// The data ends inside the last frame (or inside the next header).
    Past,
    /// At a byte run that is no plausible header.
    Broken,
    /// The walk reached the number of headers asked for.
    Long,
}

/// The first offset in `b[from..]` where [`SUSPECT_CHAIN`] consistent
/// headers follow each other, or (`at_end`: no more bytes will come) where
/// a chain runs exactly to the end of `b`.
pub fn find_chain(b: &[u8], from: usize, cap: u32, need: usize, at_end: bool) -> Option<usize> {
    Variant::Wechat.find_chain(b, from, cap, need, at_end)
}

/// Whether the length of the frame whose first bytes are `b` (its length
/// `len`) is bogus, judged on its bytes only (so that the verdict does not
/// depend on how the stream was cut into chunks): `Bogus(q)`, a chain of
/// [`SUSPECT_CHAIN`] headers inside the frame starts at `q`; `Wait`, a
/// chain that could still make it bogus needs more of the frame.
///
/// Positions before `from` are known not to start a chain (a `Wait`
/// answer says where to resume), so a frame arriving in many chunks is
/// searched once.
fn verdict(v: Variant, b: &[u8], len: usize, cap: u32, from: usize) -> Verdict {
    let complete = b.len() >= len;
    let b = &b[..b.len().min(len)];
    let window = len.min(SUSPECT_WINDOW);
    let mut q = from.max(v.header_len());
    // A header at q has its fixed bytes (`00 10 00 01` at q + 4 for the
    // 16-byte header): jump from one such run to the next (memmem), the
    // bytes between cannot start a header.
    let (m, fixed) = v.magic();
    let magic = memchr::memmem::Finder::new(&fixed);
    while q < window && q + m + 4 <= b.len() {
        let end = (window + m + 4).min(b.len());
        match magic.find(&b[q + m..end]) {
            Some(d) => q += d,
            None => {
                q = end.saturating_sub(m + 3).max(q);
                break;
            }
        }
        if q >= window {
            break;
        }
        match v.chain(&b[q..], cap, SUSPECT_CHAIN) {
            (n, _) if n >= SUSPECT_CHAIN => return Verdict::Bogus(q),
            (_, Chain::Broken) => {}
            _ if complete => {}
            _ => return Verdict::Wait(q),
        }
        q += 1;
    }
    if q < window && !complete {
        Verdict::Wait(q)
    } else {
        Verdict::Fine
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Fine,
    Bogus(usize),
    /// Undecided from this position on.
    Wait(usize),
}

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No plausible header where one was expected.
    Garbage,
    /// Bytes of a frame that a gap cut, or of a frame over the cap.
    Unusable,
    /// A frame whose length field is bogus: a chain of headers starts
    /// inside it (see the module doc).
    BadLength,
}

/// What the framer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramerEvent<'a> {
    /// A whole frame at `offset` in the stream.
    Frame {
        offset: u64,
        header: Header,
        body: &'a [u8],
        after_gap: bool,
    },
    /// `len` bytes at `offset` are not part of any frame found.
    Skipped {
        offset: u64,
        len: u64,
        reason: SkipReason,
    },
    /// A frame whose length is over the cap: its bytes are skipped.
    Oversize { offset: u64, header: Header },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary, or inside the frame held in `pending`.
    Synced,
    /// Looking for a plausible header since stream offset `since`;
    /// `pending` holds bytes not yet ruled out.
    Hunting { since: u64 },
    /// Skipping the rest of an over-cap frame.
    Skipping { left: u64 },
    /// Counting off the body of a frame whose body is not wanted.
    SkipBody {
        offset: u64,
        header: Header,
        left: u64,
    },
}

/// Incremental long-link frame splitter for one direction.
#[derive(Debug)]
pub struct Framer {
    cap: u32,
    state: State,
    /// Bytes carried over from earlier chunks (a frame in progress, or up
    /// to 30 bytes being searched for a header), starting at `pending_at`.
    /// Copied on purpose: the chunk they came in is gone.
    pending: Vec<u8>,
    pending_at: u64,
    after_gap: bool,
    /// Stream offset of the next byte expected.
    next: u64,
    frames: u64,
    skipped: u64,
    /// Whether a frame's body is assembled; when not, the frame is still
    /// reported (with an empty body) once its last byte has arrived.
    keep_body: fn(&Header) -> bool,
    /// The held frame's length was judged sound (see [`verdict`]).
    trusted: bool,
    /// Where the held frame's verdict resumes.
    checked: usize,
    /// The framing (16-byte WeChat header or 20-byte Mars header).
    variant: Variant,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(MAX_FRAME_LEN)
    }
}

impl Framer {
    pub fn new(cap: u32) -> Self {
        Framer {
            cap: cap.max(HEADER_LEN as u32),
            state: State::Synced,
            pending: Vec::new(),
            pending_at: 0,
            after_gap: false,
            next: 0,
            frames: 0,
            skipped: 0,
            keep_body: |_| true,
            trusted: false,
            checked: 0,
            variant: Variant::Wechat,
        }
    }

    /// Splits frames of another framing (the 20-byte Mars header).
    pub fn variant(mut self, variant: Variant) -> Self {
        self.variant = variant;
        self
    }

    /// The framing this framer splits.
    pub fn framing(&self) -> Variant {
        self.variant
    }

    /// Assembles only the bodies `keep` wants: the others are counted off
    /// without copying and their frames reported with an empty body.
    pub fn keep_bodies(mut self, keep: fn(&Header) -> bool) -> Self {
        self.keep_body = keep;
        self
    }

    /// Starts at stream offset `offset` (a direction picked up mid-stream,
    /// at its first frame) instead of 0: the bytes before are not a gap.
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.next = offset;
        self
    }

    /// Frames found so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes skipped so far (garbage, cut frames, over-cap frames).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// In-order bytes at stream offset `offset`.
    pub fn feed<F: FnMut(FramerEvent<'_>)>(&mut self, offset: u64, mut bytes: &[u8], out: &mut F) {
        if offset > self.next {
            // Bytes skipped without a gap event: treat them as one.
            self.gap(offset - self.next, out);
        }
        let at = offset.max(self.next);
        if offset < self.next {
            // Overlapping re-feed: only the new part counts.
            let dup = ((self.next - offset) as usize).min(bytes.len());
            bytes = &bytes[dup..];
        }
        self.next = at + bytes.len() as u64;
        self.run(at, bytes, out);
    }

    /// Frames `bytes` at stream offset `at` (in order, `next` already past them).
    fn run<F: FnMut(FramerEvent<'_>)>(&mut self, mut at: u64, mut bytes: &[u8], out: &mut F) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Skipping { left } => {
                    let n = left.min(bytes.len() as u64);
                    self.state = if n == left {
                        State::Synced
                    } else {
                        State::Skipping { left: left - n }
                    };
                    n as usize
                }
                State::SkipBody {
                    offset,
                    header,
                    left,
                } => {
                    let n = left.min(bytes.len() as u64);
                    if n == left {
                        self.state = State::Synced;
                        self.emit(offset, header, &[], out);
                    } else {
                        self.state = State::SkipBody {
                            offset,
                            header,
                            left: left - n,
                        };
                    }
                    n as usize
                }
                _ if !self.pending.is_empty() => self.resolve_pending(bytes, out),
                State::Synced => self.scan_frames(at, bytes, out),
                State::Hunting { since } => self.scan_garbage(since, at, bytes, out),
            };
            bytes = &bytes[used..];
            at += used as u64;
        }
    }

    /// `len` bytes are missing from the stream here.
    pub fn gap<F: FnMut(FramerEvent<'_>)>(&mut self, len: u64, out: &mut F) {
        let at = self.next;
        self.drop_unfinished(out);
        self.state = match self.state {
            State::Skipping { left } if left > len => State::Skipping { left: left - len },
            // Where the next frame starts is unknown.
            _ => State::Hunting { since: at + len },
        };
        self.next = at + len;
        self.after_gap = true;
    }

    /// The stream ended: reports what is left unfinished.
    pub fn finish<F: FnMut(FramerEvent<'_>)>(&mut self, out: &mut F) {
        // A held frame the data ends inside: a chain of frames inside it
        // that runs exactly to the end shows its length bogus.
        let hl = self.variant.header_len();
        while matches!(self.state, State::Synced) && self.pending.len() >= hl && !self.trusted {
            let Some(q) = self
                .variant
                .find_chain(&self.pending, hl, self.cap, SUSPECT_CHAIN, true)
            else {
                break;
            };
            let at = self.pending_at;
            self.skip(at, at + q as u64, SkipReason::BadLength, out);
            let held = std::mem::take(&mut self.pending);
            self.trusted = false;
            self.run(at + q as u64, &held[q..], out);
        }
        self.drop_unfinished(out);
        self.state = State::Synced;
    }

    /// Reports as skipped what is held (as `drop_pending` does) and
    /// the part seen of a frame whose body was being counted off.
    fn drop_unfinished<F: FnMut(FramerEvent<'_>)>(&mut self, out: &mut F) {
        self.drop_pending(out);
        if let State::SkipBody {
            offset,
            header,
            left,
        } = self.state
        {
            let seen = header.len as u64 - left;
            self.skip(offset, offset + seen, SkipReason::Unusable, out);
        }
    }

    /// Reports the held bytes (and any hunted run before them) as skipped.
    fn drop_pending<F: FnMut(FramerEvent<'_>)>(&mut self, out: &mut F) {
        let end = self.pending_at + self.pending.len() as u64;
        match self.state {
            State::Hunting { since } => {
                self.skip(since, self.next.max(end), SkipReason::Garbage, out)
            }
            State::Synced if !self.pending.is_empty() => {
                self.skip(self.pending_at, end, SkipReason::Unusable, out)
            }
            _ => {}
        }
        self.pending.clear();
    }

    fn skip<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        from: u64,
        to: u64,
        reason: SkipReason,
        out: &mut F,
    ) {
        if to > from {
            self.skipped += to - from;
            out(FramerEvent::Skipped {
                offset: from,
                len: to - from,
                reason,
            });
        }
    }

    /// Continues with bytes carried over from earlier chunks. Returns how
    /// many of `bytes` were used (possibly 0 when the state changed).
    fn resolve_pending<F: FnMut(FramerEvent<'_>)>(&mut self, bytes: &[u8], out: &mut F) -> usize {
        match self.state {
            State::Synced => {
                let hl = self.variant.header_len();
                let mut used = 0;
                if self.pending.len() < hl {
                    used = (hl - self.pending.len()).min(bytes.len());
                    self.pending.extend_from_slice(&bytes[..used]);
                    if self.pending.len() < hl {
                        return used;
                    }
                    let Some(h) = self.variant.header(&self.pending, u32::MAX) else {
                        self.state = State::Hunting {
                            since: self.pending_at,
                        };
                        return used;
                    };
                    if h.len > self.cap {
                        let at = self.pending_at;
                        self.pending.clear();
                        self.oversize(at, h, hl as u64, out);
                        return used;
                    }
                    self.trusted = false;
                    self.checked = 0;
                }
                let h = self
                    .variant
                    .header(&self.pending, u32::MAX)
                    .expect("a plausible header held");
                let len = h.len as usize;
                let n = (len - self.pending.len()).min(bytes.len() - used);
                grow_within(&mut self.pending, n, len, self.trusted);
                self.pending.extend_from_slice(&bytes[used..used + n]);
                used += n;
                if !self.trusted {
                    match verdict(self.variant, &self.pending, len, self.cap, self.checked) {
                        Verdict::Bogus(q) => {
                            let at = self.pending_at;
                            self.skip(at, at + q as u64, SkipReason::BadLength, out);
                            let held = std::mem::take(&mut self.pending);
                            self.run(at + q as u64, &held[q..], out);
                            return used;
                        }
                        Verdict::Fine => self.trusted = true,
                        Verdict::Wait(q) => self.checked = q,
                    }
                }
                let keep = (self.keep_body)(&h);
                if self.pending.len() == len {
                    let frame = std::mem::take(&mut self.pending);
                    let body = if keep { &frame[hl..] } else { &[] };
                    self.emit(self.pending_at, h, body, out);
                    if frame.capacity() <= KEEP_CAPACITY {
                        // Reused for the next frame held.
                        self.pending = frame;
                        self.pending.clear();
                    }
                } else if self.trusted && !keep {
                    // Sound length, unwanted body: count the rest off.
                    self.state = State::SkipBody {
                        offset: self.pending_at,
                        header: h,
                        left: (len - self.pending.len()) as u64,
                    };
                    self.pending.clear();
                }
                used
            }
            State::Hunting { since } => {
                // Search the held bytes, with up to 15 (19) new ones after them.
                let hl = self.variant.header_len();
                let held = self.pending.len();
                let take = bytes.len().min(hl - 1);
                let mut joined = std::mem::take(&mut self.pending);
                joined.extend_from_slice(&bytes[..take]);
                for i in 0..held {
                    if joined.len() - i < hl {
                        // Cannot tell yet: keep the undecided bytes.
                        self.pending_at += i as u64;
                        joined.drain(..i);
                        self.pending = joined;
                        return take;
                    }
                    if self.variant.header(&joined[i..], self.cap).is_some() {
                        let start = self.pending_at + i as u64;
                        self.skip(since, start, SkipReason::Garbage, out);
                        self.state = State::Synced;
                        joined.truncate(held);
                        joined.drain(..i);
                        self.pending = joined;
                        self.pending_at = start;
                        return 0;
                    }
                }
                // None of the held bytes starts a frame; search on in `bytes`.
                joined.clear();
                self.pending = joined;
                0
            }
            State::Skipping { .. } | State::SkipBody { .. } => 0,
        }
    }

    fn oversize<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        offset: u64,
        header: Header,
        seen: u64,
        out: &mut F,
    ) {
        out(FramerEvent::Oversize { offset, header });
        self.skipped += header.len as u64;
        self.state = State::Skipping {
            left: header.len as u64 - seen,
        };
    }

    /// At a frame boundary with nothing held: frames whole in `bytes` are
    /// passed borrowed; the start of an unfinished one is held.
    fn scan_frames<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        at: u64,
        bytes: &[u8],
        out: &mut F,
    ) -> usize {
        let hl = self.variant.header_len();
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let here = at + pos as u64;
            if rest.len() < hl {
                self.hold(here, rest);
                return bytes.len();
            }
            let Some(h) = self.variant.header(rest, u32::MAX) else {
                self.state = State::Hunting { since: here };
                return pos;
            };
            if h.len > self.cap {
                self.oversize(here, h, 0, out);
                return pos;
            }
            let n = h.len as usize;
            let keep = (self.keep_body)(&h);
            let v = verdict(self.variant, rest, n, self.cap, 0);
            if let Verdict::Bogus(q) = v {
                self.skip(here, here + q as u64, SkipReason::BadLength, out);
                pos += q;
                continue;
            }
            if rest.len() < n {
                let wait = match v {
                    Verdict::Wait(q) => Some(q),
                    _ => None,
                };
                if keep || wait.is_some() {
                    self.hold(here, rest);
                    self.trusted = v == Verdict::Fine;
                    self.checked = wait.unwrap_or(0);
                } else {
                    self.state = State::SkipBody {
                        offset: here,
                        header: h,
                        left: (n - rest.len()) as u64,
                    };
                }
                return bytes.len();
            }
            self.emit(here, h, if keep { &rest[hl..n] } else { &[] }, out);
            pos += n;
        }
        pos
    }

    /// Hunting with nothing held: finds the next plausible header in
    /// `bytes`. The last 15 bytes are held when none is found.
    fn scan_garbage<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        since: u64,
        at: u64,
        bytes: &[u8],
        out: &mut F,
    ) -> usize {
        let hl = self.variant.header_len();
        for i in 0..bytes.len() {
            let rest = &bytes[i..];
            if rest.len() < hl {
                self.hold(at + i as u64, rest);
                return bytes.len();
            }
            if self.variant.header(rest, self.cap).is_some() {
                self.skip(since, at + i as u64, SkipReason::Garbage, out);
                self.state = State::Synced;
                return i;
            }
        }
        bytes.len()
    }

    fn hold(&mut self, at: u64, bytes: &[u8]) {
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        }
        self.pending_at = at;
        self.pending.clear();
        self.pending.extend_from_slice(bytes);
    }

    fn emit<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        offset: u64,
        header: Header,
        body: &[u8],
        out: &mut F,
    ) {
        self.frames += 1;
        out(FramerEvent::Frame {
            offset,
            header,
            body,
            after_gap: std::mem::take(&mut self.after_gap),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{
        response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY,
    };
    use crate::proto::longlink::encode;

    fn frame(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
        encode(cmd, seq, body)
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Frame(u64, u32, u32, Vec<u8>, bool),
        Skipped(u64, u64),
        Oversize(u64, u32),
    }

    fn collect(fr: &mut Framer, chunks: &[(u64, &[u8])], gaps: &[(usize, u64)]) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut out = |e: FramerEvent<'_>| {
            evs.push(match e {
                FramerEvent::Frame {
                    offset,
                    header,
                    body,
                    after_gap,
                } => Ev::Frame(offset, header.cmd, header.seq, body.to_vec(), after_gap),
                FramerEvent::Skipped { offset, len, .. } => Ev::Skipped(offset, len),
                FramerEvent::Oversize { offset, header } => Ev::Oversize(offset, header.len),
            })
        };
        for (i, (off, c)) in chunks.iter().enumerate() {
            for (gi, glen) in gaps {
                if *gi == i {
                    fr.gap(*glen, &mut out);
                }
            }
            fr.feed(*off, c, &mut out);
        }
        fr.finish(&mut out);
        evs
    }

    /// Every split of `s` into two chunks gives `want`.
    fn assert_every_cut(s: &[u8], want: &[Ev]) {
        for cut in 0..=s.len() {
            let (a, b) = s.split_at(cut);
            assert_eq!(
                collect(&mut Framer::default(), &[(0, a), (cut as u64, b)], &[]),
                want,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn many_frames_in_one_chunk_and_one_frame_over_many() {
        let mut s = frame(NEWSYNC, 1, b"abc");
        s.extend(frame(response(NEWSYNC), 1, b""));
        s.extend(frame(NEWNOTIFY, 0, &[7; 40]));
        let want = vec![
            Ev::Frame(0, 121, 1, b"abc".to_vec(), false),
            Ev::Frame(19, response(NEWSYNC), 1, vec![], false),
            Ev::Frame(35, 24, 0, vec![7; 40], false),
        ];
        assert_eq!(collect(&mut Framer::default(), &[(0, &s)], &[]), want);
        // Every split into two and into single bytes gives the same frames.
        assert_every_cut(&s, &want);
        let bytes: Vec<(u64, &[u8])> = (0..s.len()).map(|i| (i as u64, &s[i..i + 1])).collect();
        assert_eq!(collect(&mut Framer::default(), &bytes, &[]), want);
    }

    #[test]
    fn resyncs_after_garbage() {
        let mut s = b"GET / HTTP/1.1\r\n\r\n".to_vec(); // 18 bytes of garbage
        s.extend(frame(IDENTIFY, SEQ_IDENTIFY, b"xy"));
        let want = vec![
            Ev::Skipped(0, 18),
            Ev::Frame(18, 205, SEQ_IDENTIFY, b"xy".to_vec(), false),
        ];
        assert_every_cut(&s, &want);
    }

    #[test]
    fn resyncs_after_a_gap_that_cut_a_frame() {
        let f1 = frame(NEWSYNC, 1, &[1; 30]);
        let f2 = frame(NEWSYNC, 2, &[2; 10]);
        // Deliver the first 20 bytes of f1, lose 26 bytes (rest of f1), then f2 after 0..5 garbage bytes.
        for junk in 0..5usize {
            let mut tail = vec![0xAA; junk];
            tail.extend(&f2);
            let evs = collect(
                &mut Framer::default(),
                &[(0, &f1[..20]), (46, &tail)],
                &[(1, 26)],
            );
            let mut want = vec![Ev::Skipped(0, 20)];
            if junk > 0 {
                want.push(Ev::Skipped(46, junk as u64));
            }
            want.push(Ev::Frame(46 + junk as u64, 121, 2, vec![2; 10], true));
            assert_eq!(evs, want, "junk {junk}");
        }
    }

    #[test]
    fn oversize_frame_is_reported_and_skipped_without_allocating() {
        let mut big = Header::new(NEWSYNC, 1, 100).emit().to_vec();
        big.extend([0u8; 100]);
        big.extend(frame(NOOP, SEQ_HEARTBEAT, b""));
        let mut fr = Framer::new(64);
        let evs = collect(&mut fr, &[(0, &big[..10]), (10, &big[10..])], &[]);
        assert_eq!(
            evs,
            vec![
                Ev::Oversize(0, 116),
                Ev::Frame(116, 6, SEQ_HEARTBEAT, vec![], false)
            ]
        );
        assert_eq!(fr.skipped(), 116);
    }

    #[test]
    fn every_truncated_prefix_is_safe() {
        let mut s = b"junk".to_vec();
        s.extend(frame(NEWSYNC, 1, b"hello"));
        s.extend(frame(response(NEWSYNC), 1, b"world!"));
        for n in 0..=s.len() {
            let evs = collect(&mut Framer::default(), &[(0, &s[..n])], &[]);
            let frames = evs.iter().filter(|e| matches!(e, Ev::Frame(..))).count();
            let expected = usize::from(n >= 4 + 21) + usize::from(n >= 4 + 21 + 22);
            assert_eq!(frames, expected, "prefix {n}: {evs:?}");
        }
    }

    #[test]
    fn frames_survive_any_chunking_and_interleaved_garbage() {
        use proptest::prelude::*;
        let strategy = (
            proptest::collection::vec((0u32..300, any::<u32>(), 0usize..60, 0usize..20), 1..12),
            proptest::collection::vec(1usize..40, 1..30),
        );
        proptest!(ProptestConfig::with_cases(200), |((spec, cuts) in strategy)| {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            for (i, (cmd, seq, blen, junk)) in spec.iter().enumerate() {
                // Garbage made of 0xEE bytes never looks like a header.
                if i > 0 { stream.extend(std::iter::repeat_n(0xEEu8, *junk)); }
                if i > 0 && *junk > 0 { want.push(Ev::Skipped(stream.len() as u64 - *junk as u64, *junk as u64)); }
                let body: Vec<u8> = (0..*blen).map(|b| b as u8).collect();
                want.push(Ev::Frame(stream.len() as u64, *cmd, *seq, body.clone(), false));
                stream.extend(frame(*cmd, *seq, &body));
            }
            let mut chunks = Vec::new();
            let mut pos = 0;
            let mut k = 0;
            while pos < stream.len() {
                let n = cuts[k % cuts.len()].min(stream.len() - pos);
                chunks.push((pos as u64, &stream[pos..pos + n]));
                pos += n;
                k += 1;
            }
            prop_assert_eq!(collect(&mut Framer::default(), &chunks, &[]), want);
        });
    }
}

#[cfg(test)]
mod skip_body_tests {
    use super::*;
    use crate::proto::commands::{IDENTIFY, NEWSYNC};

    /// Frames with unwanted bodies are reported at their last byte with an
    /// empty body, whatever the chunking; wanted bodies are assembled.
    #[test]
    fn unwanted_bodies_are_counted_off() {
        let mut s = Vec::new();
        for (cmd, len) in [
            (NEWSYNC, 40usize),
            (IDENTIFY, 30),
            (NEWSYNC, 0),
            (NEWSYNC, 3),
        ] {
            s.extend(Header::new(cmd, 1, len).emit());
            s.extend(std::iter::repeat_n(cmd as u8, len));
        }
        for step in [1, 5, 16, 17, 1000] {
            let mut fr = Framer::default().keep_bodies(|h| h.cmd == IDENTIFY);
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < s.len() {
                let n = step.min(s.len() - pos);
                fr.feed(pos as u64, &s[pos..pos + n], &mut |e| {
                    if let FramerEvent::Frame {
                        offset,
                        header,
                        body,
                        ..
                    } = e
                    {
                        got.push((
                            offset,
                            header.cmd,
                            header.body_len(),
                            body.to_vec(),
                            pos + n,
                        ));
                    }
                });
                pos += n;
            }
            let offsets: Vec<(u64, u32, usize, usize)> =
                got.iter().map(|g| (g.0, g.1, g.2, g.3.len())).collect();
            assert_eq!(
                offsets,
                [
                    (0, 121, 40, 0),
                    (56, 205, 30, 30),
                    (102, 121, 0, 0),
                    (118, 121, 3, 0)
                ],
                "step {step}"
            );
            assert_eq!(got[1].3, vec![205u8; 30]);
            // Reported once the last byte arrived, not earlier.
            for (g, end) in got.iter().zip([56usize, 102, 118, 137]) {
                assert!(g.4 >= end, "step {step}: frame at {} reported early", g.0);
            }
        }
    }
}

#[cfg(test)]
mod bad_length_tests;
