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
//! frame's bytes consistently.
//!
//! # Over-cap lengths
//!
//! A header whose length is over the cap is never trusted either (its frame
//! could not be held, and a bogus length there would swallow everything
//! after it): it is reported ([`FramerEvent::Oversize`]) and the framer
//! hunts for the next chain of [`SUSPECT_CHAIN`] consistent headers (one
//! that ends within the cap of its start; at the end of the stream, one that
//! runs exactly to the end), wherever it is. The bytes from the over-cap
//! header to the chain are reported as skipped ([`SkipReason::BadLength`]);
//! a gap or the end of the stream before any chain reports them as
//! [`SkipReason::Unusable`]. A frame really over the cap is thus skipped
//! too: its body is searched, and the frames after it are found.

use super::{Header, Variant, HEADER_LEN, MAX_FRAME_LEN};

mod chain;

pub use chain::{chain, find_chain, walk_chain, Chain};
use chain::{hunt, verdict, Hunt, Verdict};

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

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No plausible header where one was expected.
    Garbage,
    /// Bytes of a frame that a gap cut, or of a frame over the cap that
    /// a gap or the end of the stream cut before any chain of headers.
    Unusable,
    /// A frame whose length field is bogus: a chain of headers starts
    /// inside it, or it is over the cap (see the module doc).
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
    /// The next bytes of the body of the frame at `offset`, when bodies
    /// are streamed ([`Framer::stream_bodies`]): a wanted body that does
    /// not arrive whole comes in parts, in order, then its `Frame` event
    /// (with an empty body). A gap or the end cuts it as it cuts any frame
    /// (a `Skipped` event instead of the `Frame`).
    BodyPart {
        offset: u64,
        header: Header,
        bytes: &'a [u8],
    },
    /// A header whose length is over the cap, reported when it is read.
    /// Its bytes are not a frame: the framer hunts for the next chain of
    /// headers and reports the bytes up to it as [`FramerEvent::Skipped`]
    /// (see the module doc).
    Oversize { offset: u64, header: Header },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary, or inside the frame held in `pending`.
    Synced,
    /// Looking for a plausible header since stream offset `since`;
    /// `pending` holds bytes not yet ruled out.
    Hunting { since: u64 },
    /// After an over-cap header at `since`: looking for the next chain of
    /// headers; `pending` holds the bytes from the first undecided
    /// candidate on.
    Chasing { since: u64 },
    /// Counting off the body of a frame whose body is not assembled
    /// (passed on in parts when `stream`).
    SkipBody {
        offset: u64,
        header: Header,
        left: u64,
        stream: bool,
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
    /// Wanted bodies are passed in parts instead of assembled.
    stream_body: bool,
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
            stream_body: false,
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

    /// Passes the bodies `keep` wants in [`FramerEvent::BodyPart`]s as they
    /// arrive instead of assembling them (a body that arrives whole still
    /// comes whole in its `Frame`); the others are counted off. Nothing
    /// larger than [`SUSPECT_WINDOW`] plus a chunk is then held, whatever
    /// the frame sizes.
    pub fn stream_bodies(mut self, keep: fn(&Header) -> bool) -> Self {
        self.keep_body = keep;
        self.stream_body = true;
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

    /// Bytes skipped so far (garbage, cut frames, bogus and over-cap lengths).
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
                State::Chasing { since } => self.chase(since, at, bytes, out),
                State::SkipBody {
                    offset,
                    header,
                    left,
                    stream,
                } => {
                    let n = left.min(bytes.len() as u64);
                    if stream {
                        out(FramerEvent::BodyPart {
                            offset,
                            header,
                            bytes: &bytes[..n as usize],
                        });
                    }
                    if n == left {
                        self.state = State::Synced;
                        self.emit(offset, header, &[], out);
                    } else {
                        self.state = State::SkipBody {
                            offset,
                            header,
                            left: left - n,
                            stream,
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
        // Where the next frame starts is unknown.
        self.state = State::Hunting { since: at + len };
        self.next = at + len;
        self.after_gap = true;
    }

    /// The stream ended: reports what is left unfinished.
    pub fn finish<F: FnMut(FramerEvent<'_>)>(&mut self, out: &mut F) {
        let hl = self.variant.header_len();
        loop {
            // A chain that runs exactly to the end of the data shows a
            // held frame's length bogus (when the data ends inside it), or
            // ends the hunt after an over-cap header.
            let (from, q) = match self.state {
                State::Chasing { since } => {
                    match hunt(self.variant, &self.pending, 0, self.cap, true) {
                        Hunt::Found(q) => (since, q),
                        Hunt::Wait(_) => break,
                    }
                }
                State::Synced if self.pending.len() >= hl && !self.trusted => {
                    match self
                        .variant
                        .find_chain(&self.pending, hl, self.cap, SUSPECT_CHAIN, true)
                    {
                        Some(q) => (self.pending_at, q),
                        None => break,
                    }
                }
                _ => break,
            };
            let at = self.pending_at + q as u64;
            self.skip(from, at, SkipReason::BadLength, out);
            self.state = State::Synced;
            let held = std::mem::take(&mut self.pending);
            self.trusted = false;
            self.run(at, &held[q..], out);
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
            ..
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
            State::Chasing { since } => {
                self.skip(since, self.next.max(end), SkipReason::Unusable, out)
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
                        self.oversize(at, h, out);
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
                } else if self.trusted && (self.stream_body || !keep) {
                    // Sound length, body not assembled: pass on what is
                    // held of it (streamed) and count the rest off.
                    let stream = keep && self.stream_body;
                    if stream {
                        out(FramerEvent::BodyPart {
                            offset: self.pending_at,
                            header: h,
                            bytes: &self.pending[hl..],
                        });
                    }
                    self.state = State::SkipBody {
                        offset: self.pending_at,
                        header: h,
                        left: (len - self.pending.len()) as u64,
                        stream,
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
            State::Chasing { .. } | State::SkipBody { .. } => 0,
        }
    }

    /// An over-cap header at `offset` (its bytes consumed): reported, and
    /// the hunt for the next chain of headers begins after it.
    fn oversize<F: FnMut(FramerEvent<'_>)>(&mut self, offset: u64, header: Header, out: &mut F) {
        out(FramerEvent::Oversize { offset, header });
        self.state = State::Chasing { since: offset };
    }

    /// After an over-cap header: searches for the next chain of headers
    /// (see [`hunt`]), holding the bytes from the first undecided
    /// candidate on. Returns how many of `bytes` were used.
    fn chase<F: FnMut(FramerEvent<'_>)>(
        &mut self,
        since: u64,
        at: u64,
        bytes: &[u8],
        out: &mut F,
    ) -> usize {
        if self.pending.is_empty() {
            match hunt(self.variant, bytes, 0, self.cap, false) {
                Hunt::Found(q) => {
                    self.skip(since, at + q as u64, SkipReason::BadLength, out);
                    self.state = State::Synced;
                    q
                }
                Hunt::Wait(q) => {
                    self.hold(at + q as u64, &bytes[q..]);
                    bytes.len()
                }
            }
        } else {
            self.pending.extend_from_slice(bytes);
            match hunt(self.variant, &self.pending, 0, self.cap, false) {
                Hunt::Found(q) => {
                    let at = self.pending_at + q as u64;
                    self.skip(since, at, SkipReason::BadLength, out);
                    self.state = State::Synced;
                    let held = std::mem::take(&mut self.pending);
                    self.trusted = false;
                    self.run(at, &held[q..], out);
                }
                Hunt::Wait(q) => {
                    self.pending.drain(..q);
                    self.pending_at += q as u64;
                }
            }
            bytes.len()
        }
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
                self.oversize(here, h, out);
                return pos + hl;
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
                let stream = keep && self.stream_body;
                if (keep && !stream) || wait.is_some() {
                    self.hold(here, rest);
                    self.trusted = v == Verdict::Fine;
                    self.checked = wait.unwrap_or(0);
                } else {
                    if stream {
                        out(FramerEvent::BodyPart {
                            offset: here,
                            header: h,
                            bytes: &rest[hl.min(rest.len())..],
                        });
                    }
                    self.state = State::SkipBody {
                        offset: here,
                        header: h,
                        left: (n - rest.len()) as u64,
                        stream,
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
mod tests;

#[cfg(test)]
mod bad_length_tests;
