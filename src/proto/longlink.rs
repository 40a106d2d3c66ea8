//! WeChat long-link framing: a 16-byte big-endian header (packet length with
//! the header included, header length 16, version 1, cmd, seq) and a body.
//!
//! [`Header`] is the one codec the analyzer, the reference server, the
//! clients, the examples and the test-traffic generators share (`parse` /
//! `emit`, [`encode`] for a whole frame). Two sans-IO readers sit on it:
//!
//! - [`check`], check-then-parse for a live peer's read buffer (as in
//!   mini-redis): a whole frame, more bytes needed, or invalid as soon as
//!   the bytes present rule a frame out. `net::frame` is the tokio adapter.
//! - [`Framer`], the incremental splitter the analyzer feeds with
//!   reassembly events: frames split over many segments, many frames in one
//!   segment, resynchronisation after a gap or garbage, and a size cap that
//!   is reported, never allocated.

use std::fmt;

/// Size of the frame header.
pub const HEADER_LEN: usize = 16;
/// Default cap on a frame's length (header included).
pub const MAX_FRAME_LEN: u32 = 16 << 20;
// Re-exported for code not yet moved to `proto::commands` (import them
// from there); to be removed once no importer is left.
pub use super::commands::{RESPONSE_OFFSET, SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH};

/// Why a header is not a long-link header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("need {HEADER_LEN} bytes for a long-link header, have {0}")]
    Short(usize),
    #[error("header length field is {0}, expected 16")]
    HeaderLen(u16),
    #[error("version field is {0}, expected 1")]
    Version(u16),
    #[error("packet length {0} is smaller than the 16-byte header")]
    TooShort(u32),
}

/// Why the bytes at the start of a live peer's buffer are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a long-link frame: {0}")]
    Header(#[from] HeaderError),
    #[error("frame length {len} is over the {cap}-byte cap")]
    Oversize { len: u32, cap: u32 },
}

/// What [`check`] finds at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A whole frame: its header and its length (header included).
    Complete(Header, usize),
    /// No verdict yet: at least this many more bytes are needed.
    Incomplete(usize),
    /// The bytes present rule a frame out.
    Invalid(FrameError),
}

/// Checks the frame at the start of `buf` (check-then-parse, sans-IO): a
/// complete frame, more bytes needed, or invalid as soon as the bytes
/// present rule a frame out (a wrong header length once 6 bytes are there,
/// a wrong version once 8 are, a length under 16 or over `cap` once 4 are),
/// so a live peer cannot hold a connection with a hopeless prefix.
///
/// Unlike [`Framer`], which resynchronises after garbage, the first bad
/// byte is final here: a live peer that sends a bad header is answered with
/// an error and dropped.
pub fn check(buf: &[u8], cap: u32) -> Check {
    let be_u16 = |i: usize| buf.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    // The fixed fields first: bytes that are no header at all are garbage,
    // whatever their first four say as a length.
    if let Err(e) = check_fixed(be_u16(4), be_u16(6)) {
        return Check::Invalid(e.into());
    }
    let Some(len) = buf
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return Check::Incomplete(HEADER_LEN - buf.len());
    };
    if len > cap {
        return Check::Invalid(FrameError::Oversize { len, cap });
    }
    if let Err(e) = check_len(len) {
        return Check::Invalid(e.into());
    }
    let n = len as usize;
    match Header::read(buf) {
        Ok(header) if buf.len() >= n => Check::Complete(header, n),
        _ => Check::Incomplete(n - buf.len()),
    }
}

/// The fixed fields' checks (header length 16, version 1); a field not
/// received yet is `None` and passes.
fn check_fixed(header_len: Option<u16>, version: Option<u16>) -> Result<(), HeaderError> {
    match (header_len, version) {
        (Some(h), _) if h != HEADER_LEN as u16 => Err(HeaderError::HeaderLen(h)),
        (_, Some(v)) if v != 1 => Err(HeaderError::Version(v)),
        _ => Ok(()),
    }
}

/// The packet length holds at least the header.
fn check_len(len: u32) -> Result<(), HeaderError> {
    if (len as usize) < HEADER_LEN {
        return Err(HeaderError::TooShort(len));
    }
    Ok(())
}

/// Header and body of a frame, ready to write.
pub fn encode(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&Header::new(cmd, seq, body.len()).emit());
    out.extend_from_slice(body);
    out
}

/// A parsed long-link header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Header {
    /// Packet length, header included.
    pub len: u32,
    pub header_len: u16,
    pub version: u16,
    pub cmd: u32,
    pub seq: u32,
}

impl Header {
    /// A header for a body of `body_len` bytes.
    pub fn new(cmd: u32, seq: u32, body_len: usize) -> Header {
        Header {
            len: (HEADER_LEN + body_len) as u32,
            header_len: HEADER_LEN as u16,
            version: 1,
            cmd,
            seq,
        }
    }

    /// Reads the fields without judging them.
    pub fn read(b: &[u8]) -> Result<Header, HeaderError> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::Short(b.len()))?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Header {
            len: u32_at(0),
            header_len: u16::from_be_bytes([b[4], b[5]]),
            version: u16::from_be_bytes([b[6], b[7]]),
            cmd: u32_at(8),
            seq: u32_at(12),
        })
    }

    /// Reads and checks the fixed fields (header length 16, version 1,
    /// packet length at least 16).
    pub fn parse(b: &[u8]) -> Result<Header, HeaderError> {
        let h = Header::read(b)?;
        h.validate()?;
        Ok(h)
    }

    /// Checks the fixed fields (header length 16, version 1) and that the
    /// packet length holds the header.
    pub fn validate(&self) -> Result<(), HeaderError> {
        check_fixed(Some(self.header_len), Some(self.version))?;
        check_len(self.len)
    }

    /// Writes the 16 header bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.len.to_be_bytes());
        b[4..6].copy_from_slice(&self.header_len.to_be_bytes());
        b[6..8].copy_from_slice(&self.version.to_be_bytes());
        b[8..12].copy_from_slice(&self.cmd.to_be_bytes());
        b[12..16].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Body length.
    pub fn body_len(&self) -> usize {
        (self.len as usize).saturating_sub(HEADER_LEN)
    }

    /// Request, response, push or heartbeat, from cmd and seq.
    pub fn kind(&self) -> Kind {
        if self.seq == SEQ_HEARTBEAT {
            Kind::Heartbeat
        } else if self.cmd >= RESPONSE_OFFSET {
            Kind::Response
        } else if self.seq == SEQ_PUSH {
            Kind::Push
        } else {
            Kind::Request
        }
    }

    /// The request cmd this header belongs to (responses minus 10^9).
    pub fn request_cmd(&self) -> u32 {
        if self.cmd >= RESPONSE_OFFSET {
            self.cmd - RESPONSE_OFFSET
        } else {
            self.cmd
        }
    }
}

/// What a frame is, from its cmd and seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Request,
    Response,
    Push,
    Heartbeat,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Response => "response",
            Kind::Push => "push",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header that could start a frame: fixed fields right, length within
/// the cap, and a cmd in the request range (below 10^5) or the response
/// range (10^9 plus that). Used to find frames after garbage or a gap.
pub fn plausible(h: &Header, cap: u32) -> bool {
    h.validate().is_ok()
        && h.len <= cap
        && (h.cmd < 100_000 || (RESPONSE_OFFSET..RESPONSE_OFFSET + 100_000).contains(&h.cmd))
}

/// The first bytes of a stream look like a long-link frame.
pub fn looks_like_frame(b: &[u8]) -> bool {
    Header::read(b).is_ok_and(|h| plausible(&h, MAX_FRAME_LEN))
}

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No plausible header where one was expected.
    Garbage,
    /// Bytes of a frame that a gap cut, or of a frame over the cap.
    Unusable,
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
        }
    }

    /// Assembles only the bodies `keep` wants: the others are counted off
    /// without copying and their frames reported with an empty body.
    pub fn keep_bodies(mut self, keep: fn(&Header) -> bool) -> Self {
        self.keep_body = keep;
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
        let mut at = offset.max(self.next);
        if offset < self.next {
            // Overlapping re-feed: only the new part counts.
            let dup = ((self.next - offset) as usize).min(bytes.len());
            bytes = &bytes[dup..];
        }
        self.next = at + bytes.len() as u64;
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
        self.state = State::Synced;
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
                let mut used = 0;
                if self.pending.len() < HEADER_LEN {
                    used = (HEADER_LEN - self.pending.len()).min(bytes.len());
                    self.pending.extend_from_slice(&bytes[..used]);
                    if self.pending.len() < HEADER_LEN {
                        return used;
                    }
                    let h = Header::read(&self.pending).expect("16 bytes held");
                    if !plausible(&h, u32::MAX) {
                        self.state = State::Hunting {
                            since: self.pending_at,
                        };
                        return used;
                    }
                    if h.len > self.cap {
                        let at = self.pending_at;
                        self.pending.clear();
                        self.oversize(at, h, HEADER_LEN as u64, out);
                        return used;
                    }
                    if !(self.keep_body)(&h) {
                        let at = self.pending_at;
                        self.pending.clear();
                        let left = h.len as u64 - HEADER_LEN as u64;
                        if left == 0 {
                            self.emit(at, h, &[], out);
                        } else {
                            self.state = State::SkipBody {
                                offset: at,
                                header: h,
                                left,
                            };
                        }
                        return used;
                    }
                }
                let h = Header::read(&self.pending).expect("16 bytes held");
                let n = (h.len as usize - self.pending.len()).min(bytes.len() - used);
                self.pending.extend_from_slice(&bytes[used..used + n]);
                used += n;
                if self.pending.len() == h.len as usize {
                    let frame = std::mem::take(&mut self.pending);
                    self.emit(self.pending_at, h, &frame[HEADER_LEN..], out);
                    self.pending = frame;
                    self.pending.clear();
                }
                used
            }
            State::Hunting { since } => {
                // Search the held bytes, with up to 15 new ones after them.
                let held = self.pending.len();
                let take = bytes.len().min(HEADER_LEN - 1);
                let mut joined = std::mem::take(&mut self.pending);
                joined.extend_from_slice(&bytes[..take]);
                for i in 0..held {
                    if joined.len() - i < HEADER_LEN {
                        // Cannot tell yet: keep the undecided bytes.
                        self.pending_at += i as u64;
                        joined.drain(..i);
                        self.pending = joined;
                        return take;
                    }
                    let h = Header::read(&joined[i..]).expect("16 bytes");
                    if plausible(&h, self.cap) {
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
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let here = at + pos as u64;
            if rest.len() < HEADER_LEN {
                self.hold(here, rest);
                return bytes.len();
            }
            let h = Header::read(rest).expect("16 bytes present");
            if !plausible(&h, u32::MAX) {
                self.state = State::Hunting { since: here };
                return pos;
            }
            if h.len > self.cap {
                self.oversize(here, h, 0, out);
                return pos;
            }
            let n = h.len as usize;
            let keep = (self.keep_body)(&h);
            if rest.len() < n {
                if keep {
                    self.hold(here, rest);
                } else {
                    self.state = State::SkipBody {
                        offset: here,
                        header: h,
                        left: (n - rest.len()) as u64,
                    };
                }
                return bytes.len();
            }
            self.emit(here, h, if keep { &rest[HEADER_LEN..n] } else { &[] }, out);
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
        for i in 0..bytes.len() {
            let rest = &bytes[i..];
            if rest.len() < HEADER_LEN {
                self.hold(at + i as u64, rest);
                return bytes.len();
            }
            let h = Header::read(rest).expect("16 bytes present");
            if plausible(&h, self.cap) {
                self.skip(since, at + i as u64, SkipReason::Garbage, out);
                self.state = State::Synced;
                return i;
            }
        }
        bytes.len()
    }

    fn hold(&mut self, at: u64, bytes: &[u8]) {
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
        response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH,
    };

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

    #[test]
    fn header_codec_round_trips_byte_literals() {
        let b = [
            0, 0, 0, 0x12, 0, 0x10, 0, 1, 0, 0, 0, 205, 0xFF, 0xFF, 0xFF, 0xFE,
        ];
        let h = Header::parse(&b).unwrap();
        assert_eq!(h, Header::new(IDENTIFY, SEQ_IDENTIFY, 2));
        assert_eq!(h.emit(), b);
        assert_eq!(h.body_len(), 2);
        assert_eq!(Header::new(response(NEWSYNC), 26, 0).kind(), Kind::Response);
        assert_eq!(Header::new(response(NEWSYNC), 26, 0).request_cmd(), 121);
        assert_eq!(Header::new(NEWNOTIFY, SEQ_PUSH, 0).kind(), Kind::Push);
        assert_eq!(Header::new(NOOP, SEQ_HEARTBEAT, 0).kind(), Kind::Heartbeat);
        assert_eq!(Header::new(NEWSYNC, 1, 0).kind(), Kind::Request);
        let mut bad = b;
        bad[5] = 0x14;
        assert_eq!(Header::parse(&bad), Err(HeaderError::HeaderLen(0x14)));
        bad = b;
        bad[7] = 2;
        assert_eq!(Header::parse(&bad), Err(HeaderError::Version(2)));
        bad = b;
        bad[3] = 3;
        assert_eq!(Header::parse(&bad), Err(HeaderError::TooShort(3)));
        for n in 0..16 {
            assert_eq!(Header::parse(&b[..n]), Err(HeaderError::Short(n)));
        }
    }

    #[test]
    fn check_reports_complete_incomplete_invalid() {
        let f = encode(NEWSYNC, 7, b"abc");
        for cut in 0..f.len() {
            let needed = if cut < 4 {
                HEADER_LEN - cut
            } else {
                f.len() - cut
            };
            assert_eq!(check(&f[..cut], 1024), Check::Incomplete(needed), "{cut}");
        }
        assert_eq!(
            check(&f, 1024),
            Check::Complete(Header::new(NEWSYNC, 7, 3), 19)
        );
        let mut two = f.clone();
        two.extend(encode(NOOP, SEQ_HEARTBEAT, b""));
        assert_eq!(
            check(&two, 1024),
            Check::Complete(Header::new(NEWSYNC, 7, 3), 19)
        );
        assert_eq!(
            check(&f, 18),
            Check::Invalid(FrameError::Oversize { len: 19, cap: 18 })
        );
        assert_eq!(
            check(&[0, 0, 0, 3], 1024),
            Check::Invalid(FrameError::Header(HeaderError::TooShort(3)))
        );
        assert_eq!(
            check(b"\0\0\0\x20GE", 1024),
            Check::Invalid(FrameError::Header(HeaderError::HeaderLen(0x4745)))
        );
        assert_eq!(
            check(&[0, 0, 0, 0x20, 0, 0x10, 0, 2], 1024),
            Check::Invalid(FrameError::Header(HeaderError::Version(2)))
        );
        // The fixed fields are judged before the length.
        assert_eq!(
            check(&[0xff, 0, 0, 0, 0, 0x11], 1024),
            Check::Invalid(FrameError::Header(HeaderError::HeaderLen(0x11)))
        );
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
        for cut in 0..=s.len() {
            let (a, b) = s.split_at(cut);
            assert_eq!(
                collect(&mut Framer::default(), &[(0, a), (cut as u64, b)], &[]),
                want,
                "cut {cut}"
            );
        }
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
