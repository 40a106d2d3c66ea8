//! HTTP/1.x over reassembled TCP streams: both directions of one
//! connection, requests and responses with their bodies (Content-Length,
//! chunked with trailers, or delimited by the end of the connection),
//! gzip/deflate content decoded, and every response paired with the request
//! it answers (keep-alive, pipelining, `100 Continue`, `101 Switching
//! Protocols`, `CONNECT`).
//!
//! Sans-IO and incremental: [`Conn::feed`] takes the bytes of one direction
//! in any chunking (one byte at a time gives the same events as the whole
//! stream), [`Conn::gap`] says bytes are missing, [`Conn::finish`] that the
//! connection is over. Events go to a callback as soon as they are known: a
//! request when its last byte arrived, a response likewise (with its
//! request), skipped bytes when the run of them ends.
//!
//! What is held, each under a cap: an incomplete head (`max_head`), an
//! undecided start-line candidate while resynchronising (`max_head`), the
//! bytes a client sends after an `Upgrade`/`CONNECT` request until the
//! answer says whether the connection switched protocols (`max_head`), the
//! body of the message in progress (`max_body`: the rest is counted, not
//! kept; decoding stops at the same cap) and the requests still waiting for
//! a response (`max_pending`).
//!
//! Malformed traffic is data, not an error: bytes that cannot be parsed are
//! reported as [`HttpEvent::Skipped`] runs and parsing resumes at the next
//! plausible start line (`METHOD SP target SP HTTP/1.x` or `HTTP/1.x NNN`);
//! cut messages come out with `complete: false` and the reason in
//! `problems`.

use std::collections::VecDeque;

use flate2::{Crc, Decompress, FlushDecompress, Status};
use serde::{Serialize, Serializer};

use crate::capture::Timestamp;
use crate::flow::Direction;

/// Default cap on a message head (start line, headers; also a chunk-size
/// line, the trailer section and the bytes held after an upgrade request).
pub const MAX_HEAD: usize = 64 << 10;
/// Default cap on the body kept per message (wire bytes and decoded bytes).
pub const MAX_BODY: usize = 16 << 20;
/// Default cap on requests waiting for their response.
pub const MAX_PENDING: usize = 64;

/// [`HttpEvent::Skipped`] reason: bytes that are not an HTTP message.
pub const SKIP_NOT_HTTP: &str = "not HTTP";
/// [`HttpEvent::Skipped`] reason: the rest of a message after a gap, up to
/// the next start line.
pub const SKIP_AFTER_GAP: &str = "after gap";
/// [`HttpEvent::Skipped`] reason: the connection switched protocols (`101`,
/// or `2xx` to `CONNECT`).
pub const SKIP_UPGRADED: &str = "upgraded";
/// [`HttpEvent::Skipped`] reason: what follows a head longer than the cap.
pub const SKIP_HEAD_OVER_CAP: &str = "head over cap";
/// [`HttpEvent::Skipped`] reason: a head that httparse rejected.
pub const SKIP_INVALID_HEAD: &str = "invalid head";

/// Longest method token taken for a start line while resynchronising.
const MAX_METHOD: usize = 20;
/// Output buffer of the inflater.
const INFLATE_BUF: usize = 32 << 10;

/// Caps of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub max_head: usize,
    pub max_body: usize,
    /// Requests awaiting a response; beyond it the oldest is dropped.
    pub max_pending: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_head: MAX_HEAD,
            max_body: MAX_BODY,
            max_pending: MAX_PENDING,
        }
    }
}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    Request { method: String, path: String },
    Response { status: u16, reason: String },
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Direction it was sent in.
    pub dir: Direction,
    pub start: Start,
    /// Minor version: 0 or 1 (HTTP/1.0 or HTTP/1.1).
    pub version: u8,
    /// Header fields, names as sent, in order; trailer fields of a chunked
    /// body are appended after them.
    #[serde(serialize_with = "lossy_headers")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// De-chunked, and decoded from `encoding` when `decoded`; at most
    /// `max_body` bytes.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Body bytes on the wire (chunked framing excluded), kept or not.
    pub wire_body_len: u64,
    /// Content-Encoding as sent.
    pub encoding: Option<String>,
    /// `body` was decoded from `encoding`.
    pub decoded: bool,
    pub chunked: bool,
    /// Stream offset (in its direction) of the first byte of the start line.
    pub stream_offset: u64,
    /// Stream offset after the last byte.
    pub end_offset: u64,
    /// Timestamp of the chunk carrying the first byte.
    pub ts_first: Timestamp,
    /// Timestamp of the chunk carrying the last byte.
    pub ts_last: Timestamp,
    /// False when cut by a gap, the end of the stream, a cap or bad framing.
    pub complete: bool,
    /// What went wrong, for the person reading the report.
    pub problems: Vec<String>,
}

fn lossy_headers<S: Serializer>(h: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
}

impl Message {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// Request target as sent (requests only).
    pub fn path(&self) -> Option<&str> {
        match &self.start {
            Start::Request { path, .. } => Some(path),
            Start::Response { .. } => None,
        }
    }

    /// The part of the target after `?` (without any `#fragment`).
    pub fn query(&self) -> Option<&str> {
        let p = self.path()?;
        let p = p.split('#').next().unwrap_or(p);
        p.split_once('?').map(|(_, q)| q)
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Start::Response { status, .. } => Some(*status),
            Start::Request { .. } => None,
        }
    }

    /// `METHOD PATH HTTP/1.x` or `HTTP/1.x STATUS REASON`.
    pub fn start_line(&self) -> String {
        match &self.start {
            Start::Request { method, path } => format!("{method} {path} HTTP/1.{}", self.version),
            Start::Response { status, reason } => {
                format!("HTTP/1.{} {status} {reason}", self.version)
            }
        }
    }
}

/// What a [`Conn`] reports.
#[derive(Debug, Clone, Copy)]
pub enum HttpEvent<'a> {
    /// A complete (or cut) request, as soon as its last byte arrived.
    Request(&'a Message),
    /// A response with the request it answers (None if no request was seen:
    /// mid-stream capture). An interim `1xx` (not 101) answers the request
    /// without consuming it; the request may then still be in progress
    /// (`100 Continue` before the body). A final response that arrives
    /// before its request is complete carries the request as it was then.
    Response {
        response: &'a Message,
        request: Option<&'a Message>,
    },
    /// Bytes that are not HTTP (garbage, or the rest of a message after a
    /// gap, skipped until the next request or status line; or everything
    /// after the connection was upgraded). Contiguous skipped bytes of one
    /// reason come out as one event, when the run ends.
    Skipped {
        dir: Direction,
        offset: u64,
        len: u64,
        reason: &'static str,
    },
}

/// An [`HttpEvent`] that owns its messages, to keep past the callback.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedHttpEvent {
    Request(Message),
    /// The response, and the request it answers.
    Response(Message, Option<Message>),
    /// Direction, offset, length, reason.
    Skipped(Direction, u64, u64, &'static str),
}

impl HttpEvent<'_> {
    /// The event with its messages copied.
    pub fn to_owned_event(&self) -> OwnedHttpEvent {
        match *self {
            HttpEvent::Request(m) => OwnedHttpEvent::Request(m.clone()),
            HttpEvent::Response { response, request } => {
                OwnedHttpEvent::Response(response.clone(), request.cloned())
            }
            HttpEvent::Skipped {
                dir,
                offset,
                len,
                reason,
            } => OwnedHttpEvent::Skipped(dir, offset, len, reason),
        }
    }
}

/// Both directions of one connection; pairs responses with requests in
/// order (keep-alive and pipelining).
///
/// Requests and responses are recognised by their start line in either
/// direction (the roles of a mid-stream capture may be unknown).
#[derive(Debug)]
pub struct Conn {
    cfg: Config,
    halves: [Half; 2],
    /// Complete requests waiting for their final response, oldest first.
    pending: VecDeque<Pending>,
    /// Final responses still owed to requests dropped from `pending`.
    dropped: u64,
    /// A half whose held bytes can now be parsed (see [`Conn::pump`]).
    wake: Option<usize>,
}

#[derive(Debug)]
struct Pending {
    msg: Message,
    /// The request asked to switch protocols (`Upgrade` or `CONNECT`).
    upgrade: bool,
}

/// The request a final response answers, fixed when its head is parsed.
#[derive(Debug, Default)]
struct Answer {
    req: Option<Box<Message>>,
    upgrade: bool,
    /// It answers a request dropped from the full pending queue.
    dropped: bool,
}

impl Answer {
    fn method_is(&self, m: &str) -> bool {
        self.req.as_ref().and_then(|r| r.method()) == Some(m)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: bytes left.
    Data(u64),
    /// Expecting the CRLF after the chunk data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Content-Length: bytes left (> 0).
    Length(u64),
    Chunked(Chunk),
    /// To the end of the connection.
    Close,
}

/// A message whose head is parsed and whose body is being read.
#[derive(Debug)]
struct InBody {
    msg: Message,
    framing: Framing,
    /// Responses: the request answered.
    answer: Answer,
    /// Requests: asks to switch protocols.
    upgrade: bool,
    /// Requests: a final response already paired with it (sent early).
    answered: bool,
    over_cap: bool,
    trailer_len: usize,
}

#[derive(Debug)]
enum State {
    /// At a message boundary or resynchronising: looking for a start line;
    /// anything else is skipped with this reason.
    Seek {
        reason: &'static str,
    },
    /// A start line was found at `start`; the head is held until complete.
    Head {
        start: u64,
        ts: Timestamp,
        /// Bytes of the head already searched for its end.
        scanned: usize,
    },
    Body(Box<InBody>),
    /// After a request asking to switch protocols: bytes are held (not
    /// parsed) until its answer says whether they are still HTTP.
    Paused,
    /// The known rest of a body cut by a gap.
    SkipN {
        left: u64,
        reason: &'static str,
    },
    /// Everything to the end is skipped.
    Drain {
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
enum Cause {
    Gap(u64),
    End,
}

#[derive(Debug, Clone, Copy)]
struct Skip {
    offset: u64,
    len: u64,
    reason: &'static str,
}

/// One direction.
#[derive(Debug)]
struct Half {
    dir: Direction,
    /// Stream offset after the last byte (or gap) seen.
    next: u64,
    /// Stream offset of the first byte not consumed (`held[start]`).
    frontier: u64,
    /// Bytes not consumed yet: `held[start..]`. Copied on purpose: heads,
    /// start-line candidates, chunk lines and post-upgrade bytes can span
    /// chunks.
    held: Vec<u8>,
    start: usize,
    /// (offset of the first byte of a chunk, its timestamp), for the bytes
    /// from `frontier - 1` on.
    stamps: VecDeque<(u64, Timestamp)>,
    state: State,
    skip: Option<Skip>,
    nl: NlCache,
    /// Stopped before the end of its bytes so that the other half could
    /// catch up; the flag is the `more` it was driven with.
    yielded: Option<bool>,
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Half {
    fn new(dir: Direction) -> Self {
        Half {
            dir,
            next: 0,
            frontier: 0,
            held: Vec::new(),
            start: 0,
            stamps: VecDeque::new(),
            state: State::Seek {
                reason: SKIP_NOT_HTTP,
            },
            skip: None,
            nl: NlCache::default(),
            yielded: None,
        }
    }

    fn held_len(&self) -> usize {
        self.held.len().saturating_sub(self.start)
    }

    fn take_held(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.held);
        v.drain(..self.start.min(v.len()));
        self.start = 0;
        v
    }

    fn add_skip<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        offset: u64,
        len: u64,
        reason: &'static str,
        out: &mut F,
    ) {
        if len == 0 {
            return;
        }
        if let Some(s) = &mut self.skip {
            if s.reason == reason && s.offset + s.len == offset {
                s.len += len;
                return;
            }
        }
        self.flush_skip(out);
        self.skip = Some(Skip {
            offset,
            len,
            reason,
        });
    }

    fn flush_skip<F: FnMut(HttpEvent<'_>)>(&mut self, out: &mut F) {
        if let Some(s) = self.skip.take() {
            out(HttpEvent::Skipped {
                dir: self.dir,
                offset: s.offset,
                len: s.len,
                reason: s.reason,
            });
        }
    }

    /// Timestamp of the chunk that carried the byte at `off`.
    fn ts_of(&self, off: u64) -> Timestamp {
        let k = self.stamps.partition_point(|s| s.0 <= off);
        self.stamps
            .get(k.saturating_sub(1))
            .map(|s| s.1)
            .unwrap_or_default()
    }

    fn prune_stamps(&mut self) {
        let keep = self.frontier.saturating_sub(1);
        while self.stamps.len() >= 2 && self.stamps[1].0 <= keep {
            self.stamps.pop_front();
        }
    }
}

impl Conn {
    pub fn new(cfg: Config) -> Self {
        Conn {
            cfg: Config {
                max_head: cfg.max_head.max(1),
                max_body: cfg.max_body,
                max_pending: cfg.max_pending.max(1),
            },
            halves: [
                Half::new(Direction::ClientToServer),
                Half::new(Direction::ServerToClient),
            ],
            pending: VecDeque::new(),
            dropped: 0,
            wake: None,
        }
    }

    /// In-order bytes of one direction at stream `offset`. Bytes before the
    /// end of what was already fed are ignored; a jump forward is a gap.
    pub fn feed(
        &mut self,
        dir: Direction,
        offset: u64,
        bytes: &[u8],
        ts: Timestamp,
        out: &mut impl FnMut(HttpEvent<'_>),
    ) {
        let i = index(dir);
        let next = self.halves[i].next;
        let (offset, bytes) = if offset < next {
            let dup = next - offset;
            match usize::try_from(dup).ok().and_then(|d| bytes.get(d..)) {
                Some(rest) => (next, rest),
                None => return,
            }
        } else {
            (offset, bytes)
        };
        if bytes.is_empty() {
            return;
        }
        if offset > next {
            self.gap_inner(i, offset - next, out);
        }
        let h = &mut self.halves[i];
        h.prune_stamps();
        h.stamps.push_back((offset, ts));
        h.next = offset + bytes.len() as u64;
        self.drive(i, Some(bytes), true, out);
        self.pump(out);
    }

    /// `len` bytes of one direction are missing (after everything fed).
    pub fn gap(&mut self, dir: Direction, len: u64, out: &mut impl FnMut(HttpEvent<'_>)) {
        if len > 0 {
            self.gap_inner(index(dir), len, out);
        }
    }

    /// The connection ended (close-delimited bodies end here; cut messages
    /// are emitted with `complete: false`).
    pub fn finish(&mut self, out: &mut impl FnMut(HttpEvent<'_>)) {
        for i in 0..2 {
            self.drive(i, None, false, out);
            self.pump(out);
            self.end_half(i, Cause::End, out);
            self.pump(out);
        }
    }

    fn gap_inner<F: FnMut(HttpEvent<'_>)>(&mut self, i: usize, len: u64, out: &mut F) {
        self.drive(i, None, false, out);
        self.pump(out);
        self.end_half(i, Cause::Gap(len), out);
        let h = &mut self.halves[i];
        h.next += len;
        h.frontier = h.next;
        self.pump(out);
    }

    /// Parses the held bytes of half `i` followed by `chunk`. `more`: further
    /// contiguous bytes may come (false before a gap or the end). Stops
    /// early when the other half was woken, so that it catches up first.
    fn drive<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        chunk: Option<&[u8]>,
        more: bool,
        out: &mut F,
    ) {
        let more = more && self.halves[i].yielded.take().unwrap_or(true);
        let mut held = std::mem::take(&mut self.halves[i].held);
        let mut start = self.halves[i].start;
        let direct = chunk.is_some() && start >= held.len();
        if !direct {
            if let Some(c) = chunk {
                held.extend_from_slice(c);
            }
        }
        let mut pos = 0;
        let mut yielded = false;
        {
            let data: &[u8] = match chunk {
                Some(c) if direct => c,
                _ => held.get(start..).unwrap_or(&[]),
            };
            let mut spins = 0;
            while pos < data.len() {
                let off = self.halves[i].frontier + pos as u64;
                let (n, stalled) = self.step(i, &data[pos..], off, more, out);
                pos += n;
                if n == 0 && !stalled {
                    // A state change without consuming; a few in a row at most.
                    spins += 1;
                    debug_assert!(spins < 8, "http: no progress");
                    if spins >= 8 {
                        break;
                    }
                } else {
                    spins = 0;
                }
                if self.wake.is_some() {
                    yielded = pos < data.len();
                    break;
                }
                if stalled {
                    break;
                }
            }
        }
        if direct {
            held.clear();
            if let Some(c) = chunk {
                held.extend_from_slice(c.get(pos..).unwrap_or(&[]));
            }
            start = 0;
        } else {
            start += pos;
        }
        if start >= held.len() {
            held.clear();
            start = 0;
            if held.capacity() > 4 * self.cfg.max_head.max(1 << 16) {
                held = Vec::new();
            }
        } else if start > 4096 && start * 2 > held.len() {
            held.drain(..start);
            start = 0;
        }
        let h = &mut self.halves[i];
        h.frontier += pos as u64;
        h.held = held;
        h.start = start;
        if yielded {
            h.yielded = Some(more);
        }
    }

    /// Lets halves that were woken or that yielded parse their held bytes.
    fn pump<F: FnMut(HttpEvent<'_>)>(&mut self, out: &mut F) {
        loop {
            if let Some(j) = self.wake.take() {
                self.drive(j, None, true, out);
            } else if let Some(j) = (0..2).find(|&j| self.halves[j].yielded.is_some()) {
                self.drive(j, None, true, out);
            } else {
                break;
            }
        }
    }

    /// One step of half `i` over `d` (at stream offset `off`): bytes
    /// consumed and whether it needs more bytes to go on.
    fn step<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        d: &[u8],
        off: u64,
        more: bool,
        out: &mut F,
    ) -> (usize, bool) {
        let st = std::mem::replace(
            &mut self.halves[i].state,
            State::Seek {
                reason: SKIP_NOT_HTTP,
            },
        );
        let (st, n, stalled) = match st {
            State::Seek { reason } => self.step_seek(i, reason, d, off, more, out),
            State::Head { start, ts, scanned } => self.step_head(i, start, ts, scanned, d, out),
            State::Body(b) => self.step_body(i, b, d, off, out),
            State::Paused => {
                if !more || d.len() > self.cfg.max_head {
                    // No answer in time: parse the held bytes as HTTP.
                    (seek(), 0, false)
                } else {
                    (State::Paused, 0, true)
                }
            }
            State::SkipN { left, reason } => {
                let n = left.min(d.len() as u64);
                self.halves[i].add_skip(off, n, reason, out);
                let st = if left == n {
                    seek()
                } else {
                    State::SkipN {
                        left: left - n,
                        reason,
                    }
                };
                (st, n as usize, false)
            }
            State::Drain { reason } => {
                self.halves[i].add_skip(off, d.len() as u64, reason, out);
                (State::Drain { reason }, d.len(), false)
            }
        };
        self.halves[i].state = st;
        (n, stalled)
    }

    fn step_seek<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        reason: &'static str,
        d: &[u8],
        off: u64,
        more: bool,
        out: &mut F,
    ) -> (State, usize, bool) {
        let max_head = self.cfg.max_head;
        let h = &mut self.halves[i];
        // Empty lines between messages are allowed (RFC 9112 2.2).
        if reason == SKIP_NOT_HTTP && h.skip.is_none() {
            let n = d.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if n > 0 {
                return (State::Seek { reason }, n, false);
            }
        }
        let mut p = 0;
        loop {
            match d[p..].iter().position(u8::is_ascii_uppercase) {
                Some(k) => p += k,
                None => {
                    h.add_skip(off, d.len() as u64, reason, out);
                    return (State::Seek { reason }, d.len(), false);
                }
            }
            match candidate(d, p, off, more, &mut h.nl, max_head) {
                Cand::Yes => {
                    h.add_skip(off, p as u64, reason, out);
                    h.flush_skip(out);
                    let start = off + p as u64;
                    let ts = h.ts_of(start);
                    let st = State::Head {
                        start,
                        ts,
                        scanned: 0,
                    };
                    return (st, p, false);
                }
                Cand::No => p += 1,
                Cand::More => {
                    h.add_skip(off, p as u64, reason, out);
                    return (State::Seek { reason }, p, true);
                }
            }
        }
    }

    fn step_head<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        start: u64,
        ts: Timestamp,
        scanned: usize,
        d: &[u8],
        out: &mut F,
    ) -> (State, usize, bool) {
        let max_head = self.cfg.max_head;
        let lim = d.len().min(max_head);
        match find_head_end(&d[..lim], scanned) {
            Ok(end) => {
                let st = self.head_done(i, &d[..end], start, ts, out);
                (st, end, false)
            }
            Err(_) if d.len() >= max_head => {
                let what = format!("head over {} cap", size(max_head));
                let st = match self.cut_head(i, &d[..max_head], start, ts, what, out) {
                    Some(true) => upgraded(),
                    _ => State::Seek {
                        reason: SKIP_HEAD_OVER_CAP,
                    },
                };
                (st, max_head, false)
            }
            Err(resume) => (
                State::Head {
                    start,
                    ts,
                    scanned: resume,
                },
                0,
                true,
            ),
        }
    }

    /// A complete head `head` at stream offset `start`.
    fn head_done<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        head: &[u8],
        start: u64,
        ts: Timestamp,
        out: &mut F,
    ) -> State {
        let Some(p) = parse_head(head) else {
            self.halves[i].add_skip(start, head.len() as u64, SKIP_INVALID_HEAD, out);
            return seek();
        };
        let end = start + head.len() as u64;
        let ts_last = self.halves[i].ts_of(end - 1);
        let mut msg = new_message(self.halves[i].dir, p, start, end, ts, ts_last);
        if msg.is_request() {
            let upgrade = msg.method() == Some("CONNECT") || msg.header("upgrade").is_some();
            match request_framing(&mut msg) {
                None => {
                    if self.finish_request(msg, upgrade, false, out) {
                        State::Paused
                    } else {
                        seek()
                    }
                }
                Some(framing) => self.body_state(msg, framing, Answer::default(), upgrade),
            }
        } else {
            let status = msg.status().unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                self.emit_interim(i, &msg, out);
                return seek();
            }
            let answer = self.take_answer(i);
            match response_framing(&mut msg, status, &answer) {
                None => {
                    if self.finish_response(i, msg, answer, out) {
                        upgraded()
                    } else {
                        seek()
                    }
                }
                Some(framing) => self.body_state(msg, framing, answer, false),
            }
        }
    }

    fn body_state(
        &self,
        mut msg: Message,
        framing: Framing,
        answer: Answer,
        upgrade: bool,
    ) -> State {
        if let Framing::Length(n) = framing {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            msg.body.reserve(n.min(self.cfg.max_body).min(64 << 10));
        }
        State::Body(Box::new(InBody {
            msg,
            framing,
            answer,
            upgrade,
            answered: false,
            over_cap: false,
            trailer_len: 0,
        }))
    }

    /// Emits a message whose head was cut (gap, end, cap) with what parses
    /// of `head`. None: not even the start line parses (then the bytes are
    /// skipped); Some(upgraded).
    fn cut_head<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        head: &[u8],
        start: u64,
        ts: Timestamp,
        what: String,
        out: &mut F,
    ) -> Option<bool> {
        let Some(p) = parse_partial_head(head) else {
            self.halves[i].add_skip(start, head.len() as u64, SKIP_NOT_HTTP, out);
            return None;
        };
        let end = start + head.len() as u64;
        let ts_last = self.halves[i].ts_of(end.saturating_sub(1));
        let mut msg = new_message(self.halves[i].dir, p, start, end, ts, ts_last);
        msg.complete = false;
        msg.problems.push(what);
        if msg.is_request() {
            self.finish_request(msg, false, false, out);
            return Some(false);
        }
        let status = msg.status().unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            self.emit_interim(i, &msg, out);
            return Some(false);
        }
        let answer = self.take_answer(i);
        Some(self.finish_response(i, msg, answer, out))
    }

    fn step_body<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        mut b: Box<InBody>,
        d: &[u8],
        off: u64,
        out: &mut F,
    ) -> (State, usize, bool) {
        let max_body = self.cfg.max_body;
        match b.framing {
            Framing::Length(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(d.len());
                push_body(&mut b, &d[..n], max_body);
                let left = left - n as u64;
                if left == 0 {
                    let end = off + n as u64;
                    b.msg.end_offset = end;
                    b.msg.ts_last = self.halves[i].ts_of(end - 1);
                    (self.complete(i, b, out), n, false)
                } else {
                    b.framing = Framing::Length(left);
                    (State::Body(b), n, false)
                }
            }
            Framing::Close => {
                push_body(&mut b, d, max_body);
                (State::Body(b), d.len(), false)
            }
            Framing::Chunked(c) => self.step_chunked(i, b, c, d, off, out),
        }
    }

    fn step_chunked<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        mut b: Box<InBody>,
        mut c: Chunk,
        d: &[u8],
        off: u64,
        out: &mut F,
    ) -> (State, usize, bool) {
        let cap = self.cfg.max_head;
        let max_body = self.cfg.max_body;
        let mut pos = 0;
        loop {
            if pos >= d.len() {
                b.framing = Framing::Chunked(c);
                return (State::Body(b), pos, false);
            }
            let rest = &d[pos..];
            let at = off + pos as u64;
            match c {
                Chunk::Size => {
                    let lim = rest.len().min(cap);
                    match rest[..lim].iter().position(|&x| x == b'\n') {
                        None if rest.len() < cap => {
                            b.framing = Framing::Chunked(c);
                            return (State::Body(b), pos, true);
                        }
                        None => {
                            let what = format!("chunked: chunk-size line over {} cap", size(cap));
                            return self.chunk_fail(i, b, at, what, pos, out);
                        }
                        Some(k) => match parse_chunk_size(&rest[..k]) {
                            Some(0) => {
                                pos += k + 1;
                                c = Chunk::Trailer;
                            }
                            Some(n) => {
                                pos += k + 1;
                                c = Chunk::Data(n);
                            }
                            None => {
                                let what = format!(
                                    "chunked: invalid chunk-size line at offset {at}: {:?}",
                                    excerpt(&rest[..k])
                                );
                                return self.chunk_fail(i, b, at, what, pos, out);
                            }
                        },
                    }
                }
                Chunk::Data(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    push_body(&mut b, &rest[..n], max_body);
                    pos += n;
                    let left = left - n as u64;
                    c = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                }
                Chunk::DataEnd => match rest {
                    [b'\n', ..] => {
                        pos += 1;
                        c = Chunk::Size;
                    }
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        c = Chunk::Size;
                    }
                    [b'\r'] => {
                        b.framing = Framing::Chunked(c);
                        return (State::Body(b), pos, true);
                    }
                    _ => {
                        let what = format!("chunked: no CRLF after the chunk data at offset {at}");
                        return self.chunk_fail(i, b, at, what, pos, out);
                    }
                },
                Chunk::Trailer => {
                    let room = cap.saturating_sub(b.trailer_len);
                    let lim = rest.len().min(room);
                    match rest[..lim].iter().position(|&x| x == b'\n') {
                        None if rest.len() < room => {
                            b.framing = Framing::Chunked(c);
                            return (State::Body(b), pos, true);
                        }
                        None => {
                            let what = format!("chunked: trailer section over {} cap", size(cap));
                            return self.chunk_fail(i, b, at, what, pos, out);
                        }
                        Some(k) => {
                            let line = strip_cr(&rest[..k]);
                            pos += k + 1;
                            if line.is_empty() {
                                let end = off + pos as u64;
                                b.msg.end_offset = end;
                                b.msg.ts_last = self.halves[i].ts_of(end - 1);
                                return (self.complete(i, b, out), pos, false);
                            }
                            b.trailer_len += k + 1;
                            match parse_field(line) {
                                Some(f) => b.msg.headers.push(f),
                                None => b.msg.problems.push(format!(
                                    "chunked: invalid trailer line at offset {at}: {:?}",
                                    excerpt(line)
                                )),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Chunked framing broke at stream offset `at` (`pos` in the step's
    /// bytes): the message ends there, cut; parsing resumes at `at`.
    fn chunk_fail<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        mut b: Box<InBody>,
        at: u64,
        what: String,
        pos: usize,
        out: &mut F,
    ) -> (State, usize, bool) {
        b.msg.complete = false;
        b.msg.problems.push(what);
        b.msg.end_offset = at;
        b.msg.ts_last = self.halves[i].ts_of(at.saturating_sub(1));
        let st = match self.complete(i, b, out) {
            s @ State::Drain { .. } => s,
            _ => seek(),
        };
        (st, pos, false)
    }

    /// The body is over (complete or cut): decode, emit, and say what the
    /// half does next.
    fn complete<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        b: Box<InBody>,
        out: &mut F,
    ) -> State {
        let InBody {
            mut msg,
            answer,
            upgrade,
            answered,
            ..
        } = *b;
        decode_body(&mut msg, self.cfg.max_body);
        if msg.is_request() {
            if self.finish_request(msg, upgrade, answered, out) {
                State::Paused
            } else {
                seek()
            }
        } else if self.finish_response(i, msg, answer, out) {
            upgraded()
        } else {
            seek()
        }
    }

    /// Emits a request and queues it for its response. True: the half
    /// pauses until the answer to this upgrade request.
    fn finish_request<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        mut msg: Message,
        upgrade: bool,
        answered: bool,
        out: &mut F,
    ) -> bool {
        if !answered && self.pending.len() >= self.cfg.max_pending {
            if let Some(old) = self.pending.pop_front() {
                self.dropped += 1;
                msg.problems.push(format!(
                    "pending queue full ({}): dropped the oldest unanswered request ({} at offset {})",
                    self.cfg.max_pending,
                    old.msg.start_line(),
                    old.msg.stream_offset
                ));
            }
        }
        out(HttpEvent::Request(&msg));
        let pause = upgrade && msg.complete && !answered;
        if !answered {
            self.pending.push_back(Pending { msg, upgrade });
        }
        pause
    }

    /// Emits a final response with its request. True: the connection
    /// switched protocols.
    fn finish_response<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        mut msg: Message,
        answer: Answer,
        out: &mut F,
    ) -> bool {
        if answer.dropped {
            msg.problems
                .push("answers a request dropped from the full pending queue".to_string());
        }
        let status = msg.status().unwrap_or(0);
        let upgraded =
            status == 101 || (answer.method_is("CONNECT") && (200..300).contains(&status));
        out(HttpEvent::Response {
            response: &msg,
            request: answer.req.as_deref(),
        });
        let j = 1 - i;
        if upgraded {
            self.upgrade_half(j, out);
        } else if answer.upgrade && matches!(self.halves[j].state, State::Paused) {
            self.halves[j].state = seek();
            if self.halves[j].held_len() > 0 {
                self.wake = Some(j);
            }
        }
        upgraded
    }

    /// An interim response: pairs with the oldest unanswered request
    /// without consuming it.
    fn emit_interim<F: FnMut(HttpEvent<'_>)>(&mut self, i: usize, msg: &Message, out: &mut F) {
        let request = if self.dropped > 0 {
            None
        } else if let Some(p) = self.pending.front() {
            Some(&p.msg)
        } else {
            match &self.halves[1 - i].state {
                State::Body(b) if b.msg.is_request() && !b.answered => Some(&b.msg),
                _ => None,
            }
        };
        out(HttpEvent::Response {
            response: msg,
            request,
        });
    }

    /// The request a final response from half `i` answers.
    fn take_answer(&mut self, i: usize) -> Answer {
        if self.dropped > 0 {
            self.dropped -= 1;
            return Answer {
                dropped: true,
                ..Answer::default()
            };
        }
        if let Some(p) = self.pending.pop_front() {
            return Answer {
                req: Some(Box::new(p.msg)),
                upgrade: p.upgrade,
                dropped: false,
            };
        }
        // Answered before the request was complete (early error, or the
        // request body still coming): the request as it is now.
        if let State::Body(b) = &mut self.halves[1 - i].state {
            if b.msg.is_request() && !b.answered {
                b.answered = true;
                return Answer {
                    req: Some(Box::new(b.msg.clone())),
                    upgrade: b.upgrade,
                    dropped: false,
                };
            }
        }
        Answer::default()
    }

    /// The connection switched protocols: half `j` (not the one being
    /// driven) skips everything from its frontier on.
    fn upgrade_half<F: FnMut(HttpEvent<'_>)>(&mut self, j: usize, out: &mut F) {
        let st = std::mem::replace(&mut self.halves[j].state, upgraded());
        if let State::Body(mut b) = st {
            let h = &self.halves[j];
            b.msg.end_offset = h.frontier;
            b.msg.ts_last = h.ts_of(h.frontier.saturating_sub(1));
            b.msg.complete = false;
            b.msg
                .problems
                .push("connection upgraded before the message ended".to_string());
            self.complete(j, b, out);
            self.halves[j].state = upgraded();
        }
        if self.halves[j].held_len() > 0 {
            self.wake = Some(j);
        }
    }

    /// Half `i` has no more contiguous bytes (gap or end): everything held
    /// is decided, cut messages are emitted.
    fn end_half<F: FnMut(HttpEvent<'_>)>(&mut self, i: usize, cause: Cause, out: &mut F) {
        let held = self.halves[i].take_held();
        let (frontier, next) = (self.halves[i].frontier, self.halves[i].next);
        let st = std::mem::replace(&mut self.halves[i].state, seek());
        let after = match cause {
            Cause::Gap(_) => SKIP_AFTER_GAP,
            Cause::End => SKIP_NOT_HTTP,
        };
        let new = match st {
            State::Seek { reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                State::Seek { reason: after }
            }
            State::Paused => {
                self.halves[i].add_skip(frontier, held.len() as u64, SKIP_NOT_HTTP, out);
                State::Seek { reason: after }
            }
            State::Head { start, ts, .. } => {
                let what = match cause {
                    Cause::Gap(n) => format!("gap of {n} bytes inside the head"),
                    Cause::End => "stream ended inside the head".to_string(),
                };
                match self.cut_head(i, &held, start, ts, what, out) {
                    Some(true) => upgraded(),
                    _ => State::Seek { reason: after },
                }
            }
            State::Body(mut b) => {
                let framing = b.framing;
                let what = match (cause, framing) {
                    (Cause::End, Framing::Close) => None,
                    (Cause::Gap(n), _) => Some(format!("gap of {n} bytes inside the body")),
                    (Cause::End, Framing::Length(left)) => Some(format!(
                        "stream ended inside the body ({} of {} bytes)",
                        b.msg.wire_body_len,
                        b.msg.wire_body_len + left
                    )),
                    (Cause::End, Framing::Chunked(_)) => {
                        Some("stream ended inside the chunked body".to_string())
                    }
                };
                if let Some(what) = what {
                    b.msg.complete = false;
                    b.msg.problems.push(what);
                }
                b.msg.end_offset = next;
                b.msg.ts_last = self.halves[i].ts_of(next.saturating_sub(1));
                match (self.complete(i, b, out), cause, framing) {
                    (s @ State::Drain { .. }, _, _) => s,
                    (_, Cause::Gap(n), Framing::Length(left)) if left > n => State::SkipN {
                        left: left - n,
                        reason: SKIP_AFTER_GAP,
                    },
                    (_, Cause::Gap(_), Framing::Close) => State::Drain {
                        reason: SKIP_AFTER_GAP,
                    },
                    _ => State::Seek { reason: after },
                }
            }
            State::SkipN { left, reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                match cause {
                    Cause::Gap(n) if left > n => State::SkipN {
                        left: left - n,
                        reason,
                    },
                    _ => State::Seek { reason: after },
                }
            }
            State::Drain { reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                State::Drain { reason }
            }
        };
        let h = &mut self.halves[i];
        h.flush_skip(out);
        h.state = new;
        h.frontier = h.next;
        h.nl = NlCache::default();
    }
}

fn seek() -> State {
    State::Seek {
        reason: SKIP_NOT_HTTP,
    }
}

fn upgraded() -> State {
    State::Drain {
        reason: SKIP_UPGRADED,
    }
}

fn push_body(b: &mut InBody, bytes: &[u8], max_body: usize) {
    b.msg.wire_body_len += bytes.len() as u64;
    let body = &mut b.msg.body;
    let n = max_body.saturating_sub(body.len()).min(bytes.len());
    if body.capacity() - body.len() < n {
        // Grow geometrically, but never past the cap.
        let want = (body.len() * 2).max(body.len() + n).min(max_body);
        body.reserve_exact(want - body.len());
    }
    body.extend_from_slice(&bytes[..n]);
    if n < bytes.len() && !b.over_cap {
        b.over_cap = true;
        b.msg.problems.push(format!(
            "body over {} cap: kept the first {}",
            size(max_body),
            size(max_body)
        ));
    }
}

/// `16 MiB`, `64 KiB`, `100 bytes`.
fn size(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// At most 40 bytes of `b`, for problem messages.
fn excerpt(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()
}

fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

// ---------------------------------------------------------------- heads

/// A parsed head.
#[derive(Debug)]
struct Parsed {
    start: Start,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

fn new_message(
    dir: Direction,
    p: Parsed,
    start: u64,
    end: u64,
    ts_first: Timestamp,
    ts_last: Timestamp,
) -> Message {
    let encoding = p
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    Message {
        dir,
        start: p.start,
        version: p.version,
        headers: p.headers,
        body: Vec::new(),
        wire_body_len: 0,
        encoding,
        decoded: false,
        chunked: false,
        stream_offset: start,
        end_offset: end,
        ts_first,
        ts_last,
        complete: true,
        problems: Vec::new(),
    }
}

/// End (exclusive) of the head in `d`: after the first empty line. Err:
/// not found; the position to resume the search from when more bytes come.
fn find_head_end(d: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from;
    while let Some(k) = d.get(i..).and_then(|r| r.iter().position(|&b| b == b'\n')) {
        let j = i + k;
        match (d.get(j + 1), d.get(j + 2)) {
            (Some(b'\n'), _) => return Ok(j + 2),
            (Some(b'\r'), Some(b'\n')) => return Ok(j + 3),
            (None, _) | (Some(b'\r'), None) => return Err(j),
            _ => i = j + 1,
        }
    }
    Err(d.len())
}

fn parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

/// Parses a complete head (start line to the empty line) with httparse.
fn parse_head(head: &[u8]) -> Option<Parsed> {
    let n = head.iter().filter(|&&b| b == b'\n').count().max(1);
    let mut hdrs = vec![httparse::EMPTY_HEADER; n];
    let cfg = parser_config();
    let fields = |h: &[httparse::Header<'_>]| {
        h.iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect::<Vec<_>>()
    };
    if head.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut hdrs);
        match cfg.parse_response(&mut r, head) {
            Ok(httparse::Status::Complete(_)) => Some(Parsed {
                start: Start::Response {
                    status: r.code?,
                    reason: r.reason.unwrap_or("").to_string(),
                },
                version: r.version?,
                headers: fields(r.headers),
            }),
            _ => None,
        }
    } else {
        let mut r = httparse::Request::new(&mut hdrs);
        match cfg.parse_request(&mut r, head) {
            Ok(httparse::Status::Complete(_)) => Some(Parsed {
                start: Start::Request {
                    method: r.method?.to_string(),
                    path: r.path?.to_string(),
                },
                version: r.version?,
                headers: fields(r.headers),
            }),
            _ => None,
        }
    }
}

/// What parses of a cut head: its complete lines, or failing that the
/// start line alone.
fn parse_partial_head(head: &[u8]) -> Option<Parsed> {
    if let Some(k) = head.iter().rposition(|&b| b == b'\n') {
        let mut whole = head[..=k].to_vec();
        whole.extend_from_slice(b"\r\n");
        if let Some(p) = parse_head(&whole) {
            return Some(p);
        }
    }
    parse_start_line(head)
}

/// The start line alone (the first line of `head`, complete or not).
fn parse_start_line(head: &[u8]) -> Option<Parsed> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let line = strip_cr(line);
    let version = |v: &[u8]| match v {
        b"HTTP/1.0" => Some(0),
        b"HTTP/1.1" => Some(1),
        _ => None,
    };
    let start;
    let v;
    if line.starts_with(b"HTTP/") {
        v = version(line.get(..8)?)?;
        let code = line.get(9..12)?;
        if line.get(8) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let status = code.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        let reason = line.get(13..).unwrap_or(&[]);
        start = Start::Response {
            status,
            reason: String::from_utf8_lossy(reason).into_owned(),
        };
    } else {
        let mut it = line.split(|&b| b == b' ').filter(|s| !s.is_empty());
        let (m, p, ver) = (it.next()?, it.next()?, it.next()?);
        v = version(ver)?;
        start = Start::Request {
            method: String::from_utf8_lossy(m).into_owned(),
            path: String::from_utf8_lossy(p).into_owned(),
        };
    }
    Some(Parsed {
        start,
        version: v,
        headers: Vec::new(),
    })
}

/// A trailer line `name: value`.
fn parse_field(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let k = line.iter().position(|&b| b == b':')?;
    let name = trim_ows(&line[..k]);
    if name.is_empty()
        || !name
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    {
        return None;
    }
    Some((
        String::from_utf8_lossy(name).into_owned(),
        trim_ows(&line[k + 1..]).to_vec(),
    ))
}

/// `1a;ext=1` (CR already stripped or not): the size.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = strip_cr(line);
    let size = line.split(|&b| b == b';').next().unwrap_or(line);
    let size = trim_ows(size);
    if size.is_empty() {
        return None;
    }
    size.iter().try_fold(0u64, |a, &d| {
        let v = char::from(d).to_digit(16)?;
        a.checked_mul(16)?.checked_add(u64::from(v))
    })
}

/// Whether a Transfer-Encoding is present, and whether its final coding is
/// chunked.
fn transfer_encoding(headers: &[(String, Vec<u8>)]) -> (bool, bool) {
    let mut present = false;
    let mut last: Option<&[u8]> = None;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("transfer-encoding") {
            present = true;
            for e in v.split(|&b| b == b',') {
                let e = trim_ows(e);
                if !e.is_empty() {
                    last = Some(e);
                }
            }
        }
    }
    let chunked = last.is_some_and(|e| {
        let e = e.split(|&b| b == b';').next().unwrap_or(e);
        trim_ows(e).eq_ignore_ascii_case(b"chunked")
    });
    (present, chunked)
}

/// Content-Length: None when absent, Err(value) when not one number.
fn content_length(headers: &[(String, Vec<u8>)]) -> Result<Option<u64>, String> {
    let mut val = None;
    for (n, v) in headers {
        if !n.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let bad = || String::from_utf8_lossy(v).into_owned();
        for e in v.split(|&b| b == b',') {
            let e = trim_ows(e);
            if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let x = e
                .iter()
                .try_fold(0u64, |a, &d| {
                    a.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })
                .ok_or_else(bad)?;
            if val.is_some_and(|y| y != x) {
                return Err(bad());
            }
            val = Some(x);
        }
    }
    Ok(val)
}

/// How a request's body is delimited; None: no body.
fn request_framing(msg: &mut Message) -> Option<Framing> {
    let (te, chunked) = transfer_encoding(&msg.headers);
    let cl = content_length(&msg.headers);
    if te {
        if cl != Ok(None) {
            msg.problems.push(
                "both Content-Length and Transfer-Encoding sent: Content-Length ignored"
                    .to_string(),
            );
        }
        if chunked {
            msg.chunked = true;
            return Some(Framing::Chunked(Chunk::Size));
        }
        msg.problems
            .push("Transfer-Encoding without chunked in a request: no body assumed".to_string());
        return None;
    }
    match cl {
        Ok(Some(n)) if n > 0 => Some(Framing::Length(n)),
        Ok(_) => None,
        Err(v) => {
            msg.problems
                .push(format!("invalid Content-Length {v:?}: no body assumed"));
            None
        }
    }
}

/// How a response's body is delimited; None: no body.
fn response_framing(msg: &mut Message, status: u16, answer: &Answer) -> Option<Framing> {
    if answer.method_is("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (answer.method_is("CONNECT") && (200..300).contains(&status))
    {
        return None;
    }
    let (te, chunked) = transfer_encoding(&msg.headers);
    let cl = content_length(&msg.headers);
    if te {
        if cl != Ok(None) {
            msg.problems.push(
                "both Content-Length and Transfer-Encoding sent: Content-Length ignored"
                    .to_string(),
            );
        }
        if chunked {
            msg.chunked = true;
            return Some(Framing::Chunked(Chunk::Size));
        }
        return Some(Framing::Close);
    }
    match cl {
        Ok(Some(0)) => None,
        Ok(Some(n)) => Some(Framing::Length(n)),
        Ok(None) => Some(Framing::Close),
        Err(v) => {
            msg.problems.push(format!(
                "invalid Content-Length {v:?}: body read to the end of the connection"
            ));
            Some(Framing::Close)
        }
    }
}

// ------------------------------------------------------ resynchronising

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cand {
    Yes,
    No,
    /// Cannot tell before more bytes arrive.
    More,
}

/// The next line end, remembered across calls (positions are stream
/// offsets, so they survive the buffer moving).
#[derive(Debug, Default)]
struct NlCache {
    /// (searched from, the first `\n` at or after it).
    found: Option<(u64, u64)>,
    /// No `\n` in [from, to).
    searched: Option<(u64, u64)>,
    line: Option<LineInfo>,
}

/// What a request-line candidate needs to know about its line.
#[derive(Debug, Clone, Copy)]
struct LineInfo {
    /// Computed from here (candidates at or after it can use it).
    lo: u64,
    nl: u64,
    /// Offset of the SP before a final `HTTP/1.x`.
    suffix: Option<u64>,
    /// The last SP or control byte before `suffix`.
    last_bad: Option<u64>,
}

impl NlCache {
    /// Offset of the first `\n` at or after `p`; `d` starts at `off`.
    fn find(&mut self, d: &[u8], off: u64, p: u64) -> Option<u64> {
        if let Some((from, nl)) = self.found {
            if from <= p && p <= nl {
                return Some(nl);
            }
        }
        let mut from = p;
        let mut lo = p;
        if let Some((s_lo, s_to)) = self.searched {
            if s_lo <= p && p < s_to {
                from = s_to;
                lo = s_lo;
            }
        }
        let i = usize::try_from(from.saturating_sub(off))
            .unwrap_or(usize::MAX)
            .min(d.len());
        match d[i..].iter().position(|&b| b == b'\n') {
            Some(k) => {
                let nl = off + (i + k) as u64;
                self.found = Some((p, nl));
                self.searched = None;
                Some(nl)
            }
            None => {
                self.found = None;
                self.searched = Some((lo, off + d.len() as u64));
                None
            }
        }
    }

    fn line_info(&mut self, d: &[u8], off: u64, p: u64, nl: u64) -> LineInfo {
        if let Some(li) = self.line {
            if li.nl == nl && li.lo <= p {
                return li;
            }
        }
        let a = usize::try_from(p - off).unwrap_or(0);
        let b = usize::try_from(nl - off).unwrap_or(0);
        let line = strip_cr(d.get(a..b).unwrap_or(&[]));
        let suffix =
            (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")).then(|| line.len() - 9);
        let last_bad = suffix.and_then(|s| {
            line[..s]
                .iter()
                .rposition(|&c| c <= b' ' || c == 0x7f)
                .map(|k| p + k as u64)
        });
        let li = LineInfo {
            lo: p,
            nl,
            suffix: suffix.map(|s| p + s as u64),
            last_bad,
        };
        self.line = Some(li);
        li
    }
}

fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

/// Whether a plausible start line begins at `d[p]` (`d` starts at stream
/// offset `off`). `more`: further bytes may come (else undecided is no).
fn candidate(d: &[u8], p: usize, off: u64, more: bool, nl: &mut NlCache, max_head: usize) -> Cand {
    let c = match status_candidate(&d[p..]) {
        Cand::No => request_candidate(d, p, off, nl, max_head),
        c => c,
    };
    match c {
        Cand::More if !more => Cand::No,
        c => c,
    }
}

/// `HTTP/1.x NNN` followed by SP, CR or LF.
fn status_candidate(s: &[u8]) -> Cand {
    const PREFIX: &[u8] = b"HTTP/1.";
    for (k, &b) in s.iter().take(13).enumerate() {
        let ok = match k {
            0..=6 => b == PREFIX[k],
            7 => b == b'0' || b == b'1',
            8 => b == b' ',
            9..=11 => b.is_ascii_digit(),
            _ => matches!(b, b' ' | b'\r' | b'\n'),
        };
        if !ok {
            return Cand::No;
        }
    }
    if s.len() < 13 {
        Cand::More
    } else {
        Cand::Yes
    }
}

/// `METHOD SP target SP HTTP/1.x` CRLF (or LF), the target being
/// origin-form (`/...`), `*`, absolute-form (`http(s)://`) or, for CONNECT,
/// an authority; no SP or control byte inside it; the line under the head
/// cap.
fn request_candidate(d: &[u8], p: usize, off: u64, nl: &mut NlCache, max_head: usize) -> Cand {
    let s = &d[p..];
    if !s.first().is_some_and(u8::is_ascii_uppercase) {
        return Cand::No;
    }
    let m = match s
        .iter()
        .take(MAX_METHOD + 1)
        .position(|&b| !is_method_byte(b))
    {
        Some(m) => m,
        None if s.len() <= MAX_METHOD => return Cand::More,
        None => return Cand::No,
    };
    if s[m] != b' ' {
        return Cand::No;
    }
    let t = m + 1;
    let Some(&c0) = s.get(t) else {
        return Cand::More;
    };
    let form = match c0 {
        b'/' | b'*' => Cand::Yes,
        _ if &s[..m] == b"CONNECT" => {
            if c0.is_ascii_alphanumeric() || c0 == b'[' {
                Cand::Yes
            } else {
                Cand::No
            }
        }
        _ => absolute_form(&s[t..]),
    };
    if form != Cand::Yes {
        return form;
    }
    let abs_p = off + p as u64;
    let Some(abs_nl) = nl.find(d, off, abs_p) else {
        return if s.len() >= max_head {
            Cand::No
        } else {
            Cand::More
        };
    };
    if abs_nl - abs_p >= max_head as u64 {
        return Cand::No;
    }
    let li = nl.line_info(d, off, abs_p, abs_nl);
    let abs_t = abs_p + t as u64;
    match li.suffix {
        Some(sfx) if sfx > abs_t && li.last_bad.is_none_or(|b| b < abs_t) => Cand::Yes,
        _ => Cand::No,
    }
}

fn absolute_form(rest: &[u8]) -> Cand {
    for pfx in [&b"http://"[..], b"https://"] {
        let n = rest.len().min(pfx.len());
        if rest[..n].eq_ignore_ascii_case(&pfx[..n]) {
            return if n == pfx.len() {
                Cand::Yes
            } else {
                Cand::More
            };
        }
    }
    Cand::No
}

// -------------------------------------------------------------- decoding

/// Decodes `msg.body` from its Content-Encoding (gzip, x-gzip, deflate as
/// zlib or raw; several codings are undone in reverse order), never past
/// `max_body` bytes. On invalid data the wire body stays.
fn decode_body(msg: &mut Message, max_body: usize) {
    let Some(enc) = msg.encoding.as_deref() else {
        return;
    };
    if msg.body.is_empty() {
        return;
    }
    let codings: Vec<String> = enc
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return;
    }
    if let Some(c) = codings
        .iter()
        .find(|c| !matches!(c.as_str(), "gzip" | "x-gzip" | "deflate"))
    {
        msg.problems
            .push(format!("content-encoding {c}: not decoded"));
        return;
    }
    let mut cur: Option<Vec<u8>> = None;
    let mut notes = Vec::new();
    for c in codings.iter().rev() {
        let input = cur.as_deref().unwrap_or(&msg.body);
        match inflate(c, input, max_body, &mut notes) {
            Ok(v) => cur = Some(v),
            Err(e) => {
                msg.problems.append(&mut notes);
                msg.problems.push(e);
                return;
            }
        }
    }
    if let Some(v) = cur {
        msg.body = v;
        msg.decoded = true;
    }
    msg.problems.append(&mut notes);
}

enum Inflated {
    /// The stream ended after this many input bytes.
    Done(usize),
    /// The input ended first.
    Truncated,
    /// The output reached the cap.
    OverCap,
}

fn over_cap_note(name: &str, cap: usize) -> String {
    format!(
        "{name}: decoded body over {} cap: kept the first {}",
        size(cap),
        size(cap)
    )
}

/// Undoes one coding. Err: invalid data (with the byte it was found at).
fn inflate(
    name: &str,
    input: &[u8],
    cap: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if name != "deflate" {
        gunzip(name, input, &mut out, cap, notes)?;
        return Ok(out);
    }
    // "deflate" is zlib by the RFC; raw deflate is common too.
    let zlib = looks_zlib(input);
    let mut r = inflate_stream(Decompress::new(zlib), input, &mut out, cap, None);
    if zlib && r.is_err() {
        out.clear();
        r = match inflate_stream(Decompress::new(false), input, &mut out, cap, None) {
            Ok(x) => Ok(x),
            Err(_) => r,
        };
    }
    match r {
        Ok(Inflated::Done(n)) if n < input.len() => notes.push(format!(
            "{name}: {} bytes after the end of the compressed data",
            input.len() - n
        )),
        Ok(Inflated::Done(_)) => {}
        Ok(Inflated::Truncated) => notes.push(format!(
            "{name}: compressed data ends early at byte {}",
            input.len()
        )),
        Ok(Inflated::OverCap) => notes.push(over_cap_note(name, cap)),
        Err(at) => return Err(format!("{name}: invalid data at byte {at}")),
    }
    Ok(out)
}

fn looks_zlib(b: &[u8]) -> bool {
    b.len() >= 2
        && b[0] & 0x0f == 8
        && b[0] >> 4 <= 7
        && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// gzip members, one after the other.
fn gunzip(
    name: &str,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let ends_early = |notes: &mut Vec<String>| {
        notes.push(format!(
            "{name}: compressed data ends early at byte {}",
            input.len()
        ))
    };
    let mut pos = 0;
    loop {
        let h = match gzip_header(&input[pos..]) {
            Ok(h) => h,
            Err(None) => {
                ends_early(notes);
                return Ok(());
            }
            Err(Some(at)) => return Err(format!("{name}: invalid data at byte {}", pos + at)),
        };
        let body = pos + h;
        let mut crc = Crc::new();
        match inflate_stream(
            Decompress::new(false),
            &input[body..],
            out,
            cap,
            Some(&mut crc),
        ) {
            Err(at) => return Err(format!("{name}: invalid data at byte {}", body + at)),
            Ok(Inflated::Truncated) => {
                ends_early(notes);
                return Ok(());
            }
            Ok(Inflated::OverCap) => {
                notes.push(over_cap_note(name, cap));
                return Ok(());
            }
            Ok(Inflated::Done(n)) => {
                let t = body + n;
                let Some(tr) = input.get(t..t + 8) else {
                    ends_early(notes);
                    return Ok(());
                };
                let want_crc = u32::from_le_bytes([tr[0], tr[1], tr[2], tr[3]]);
                let want_len = u32::from_le_bytes([tr[4], tr[5], tr[6], tr[7]]);
                if crc.sum() != want_crc || crc.amount() != want_len {
                    notes.push(format!(
                        "{name}: CRC or length in the trailer at byte {t} does not match"
                    ));
                }
                pos = t + 8;
                if pos >= input.len() {
                    return Ok(());
                }
                if !input[pos..].starts_with(&[0x1f, 0x8b]) {
                    notes.push(format!(
                        "{name}: {} bytes after the end of the compressed data",
                        input.len() - pos
                    ));
                    return Ok(());
                }
            }
        }
    }
}

/// Length of a gzip member header. Err(None): truncated; Err(Some(at)):
/// invalid at byte `at`.
fn gzip_header(b: &[u8]) -> Result<usize, Option<usize>> {
    for (k, ok) in [
        (0, b.first().is_none_or(|&x| x == 0x1f)),
        (1, b.get(1).is_none_or(|&x| x == 0x8b)),
        (2, b.get(2).is_none_or(|&x| x == 8)),
        (3, b.get(3).is_none_or(|&x| x & 0xe0 == 0)),
    ] {
        if !ok {
            return Err(Some(k));
        }
    }
    if b.len() < 10 {
        return Err(None);
    }
    let flg = b[3];
    let mut p = 10;
    if flg & 4 != 0 {
        let x = b.get(p..p + 2).ok_or(None)?;
        p += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for bit in [8, 16] {
        if flg & bit != 0 {
            let z = b
                .get(p..)
                .and_then(|r| r.iter().position(|&c| c == 0))
                .ok_or(None)?;
            p += z + 1;
        }
    }
    if flg & 2 != 0 {
        p += 2;
    }
    if p > b.len() {
        Err(None)
    } else {
        Ok(p)
    }
}

/// Inflates one deflate (or zlib) stream from `input` into `out`, never
/// past `cap` bytes of `out` in all. Err: the input byte where the data
/// turned out invalid.
fn inflate_stream(
    mut d: Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
    mut crc: Option<&mut Crc>,
) -> Result<Inflated, usize> {
    let mut buf = vec![0u8; INFLATE_BUF];
    let total_in = |d: &Decompress| usize::try_from(d.total_in()).unwrap_or(usize::MAX);
    loop {
        let in0 = total_in(&d);
        let out0 = d.total_out();
        let status = d
            .decompress(
                input.get(in0..).unwrap_or(&[]),
                &mut buf,
                FlushDecompress::None,
            )
            .map_err(|_| total_in(&d))?;
        let produced = usize::try_from(d.total_out() - out0)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let room = cap.saturating_sub(out.len());
        let keep = produced.min(room);
        if let Some(c) = crc.as_deref_mut() {
            c.update(&buf[..keep]);
        }
        out.extend_from_slice(&buf[..keep]);
        if produced > room {
            return Ok(Inflated::OverCap);
        }
        if matches!(status, Status::StreamEnd) {
            return Ok(Inflated::Done(total_in(&d)));
        }
        if produced == 0 && total_in(&d) == in0 {
            return Ok(Inflated::Truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const C: Direction = Direction::ClientToServer;
    const S: Direction = Direction::ServerToClient;

    use super::OwnedHttpEvent as Ev;

    impl Ev {
        fn msg(&self) -> &Message {
            match self {
                Ev::Request(m) | Ev::Response(m, _) => m,
                Ev::Skipped(..) => panic!("not a message: {self:?}"),
            }
        }
        fn req(&self) -> Option<&Message> {
            match self {
                Ev::Response(_, r) => r.as_ref(),
                _ => panic!("not a response: {self:?}"),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Piece {
        Data(Direction, Vec<u8>),
        Gap(Direction, u64),
    }
    use Piece::{Data, Gap};

    fn data(dir: Direction, b: &[u8]) -> Piece {
        Data(dir, b.to_vec())
    }

    /// Feeds the pieces, each cut at the positions `cuts(piece, len)` gives.
    fn run_cut(
        pieces: &[Piece],
        cfg: Config,
        cuts: &dyn Fn(usize, usize) -> Vec<usize>,
    ) -> Vec<Ev> {
        let mut conn = Conn::new(cfg);
        let mut offs = [0u64; 2];
        let mut evs = Vec::new();
        let mut out = |e: HttpEvent<'_>| evs.push(e.to_owned_event());
        for (pi, p) in pieces.iter().enumerate() {
            match p {
                Data(dir, b) => {
                    let ts = Timestamp::new(pi as i64, 0, 6);
                    let mut last = 0;
                    for c in cuts(pi, b.len()).into_iter().chain([b.len()]) {
                        if c > last {
                            conn.feed(
                                *dir,
                                offs[index(*dir)] + last as u64,
                                &b[last..c],
                                ts,
                                &mut out,
                            );
                            last = c;
                        }
                    }
                    offs[index(*dir)] += b.len() as u64;
                }
                Gap(dir, n) => {
                    conn.gap(*dir, *n, &mut out);
                    offs[index(*dir)] += n;
                }
            }
        }
        conn.finish(&mut out);
        evs
    }

    fn run_cfg(pieces: &[Piece], cfg: Config) -> Vec<Ev> {
        let evs = run_cut(pieces, cfg, &|_, _| Vec::new());
        check_invariants(&evs, cfg);
        evs
    }

    fn run(pieces: &[Piece]) -> Vec<Ev> {
        run_cfg(pieces, Config::default())
    }

    /// Per direction, events never go back; bodies respect the cap.
    fn check_invariants(evs: &[Ev], cfg: Config) {
        let mut end = [0u64; 2];
        for e in evs {
            let (dir, a, b) = match e {
                Ev::Skipped(d, o, l, _) => (*d, *o, o + l),
                Ev::Request(m) | Ev::Response(m, _) => {
                    assert!(m.body.len() <= cfg.max_body, "{m:?}");
                    assert!(m.stream_offset < m.end_offset, "{m:?}");
                    (m.dir, m.stream_offset, m.end_offset)
                }
            };
            assert!(
                a >= end[index(dir)],
                "event goes back: {e:?} after {}",
                end[index(dir)]
            );
            end[index(dir)] = b;
        }
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        let mut v =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        v.extend_from_slice(body);
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn encoded(enc: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {enc}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    }

    // ------------------------------------------------------------ streams

    fn keep_alive() -> Vec<Piece> {
        vec![
            data(C, &get("/a")),
            data(S, &ok(b"hello")),
            data(
                C,
                b"POST /b?x=1&y=2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            ),
            data(S, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi"),
            data(C, &get("/c")),
            data(S, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ]
    }

    fn pipelined() -> Vec<Piece> {
        vec![
            Data(C, cat(&[&get("/1"), &get("/2"), &get("/3")])),
            Data(S, cat(&[&ok(b"one"), &ok(b"two"), &ok(b"three")])),
        ]
    }

    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
5;name=val\r\nhello\r\n6 ; ext=\"q\"\r\n world\r\n0\r\nX-Sum: 42\r\nX-Other:  x \r\n\r\n";

    fn chunked() -> Vec<Piece> {
        vec![
            Data(C, cat(&[&get("/c"), &get("/d")])),
            Data(S, cat(&[CHUNKED, &ok(b"next")])),
        ]
    }

    fn json() -> Vec<u8> {
        br#"{"a":[1,2,3],"b":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}"#.to_vec()
    }

    fn codings() -> Vec<Piece> {
        let j = json();
        vec![
            Data(C, cat(&[&get("/g"), &get("/z"), &get("/r"), &get("/x")])),
            Data(
                S,
                cat(&[
                    &encoded("gzip", &gzip(&j)),
                    &encoded("deflate", &zlib(&j)),
                    &encoded("deflate", &raw_deflate(&j)),
                    &encoded(
                        "x-gzip",
                        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate at all",
                    ),
                ]),
            ),
        ]
    }

    fn head() -> Vec<Piece> {
        vec![
            Data(
                C,
                cat(&[b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n", &get("/small")]),
            ),
            Data(
                S,
                cat(&[
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                    &ok(b"ok"),
                ]),
            ),
        ]
    }

    fn continue_100() -> Vec<Piece> {
        vec![
            data(
                C,
                b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            ),
            data(S, b"HTTP/1.1 100 Continue\r\n\r\n"),
            data(C, b"hello"),
            data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]
    }

    fn close_delimited() -> Vec<Piece> {
        vec![
            data(C, b"GET / HTTP/1.0\r\n\r\n"),
            data(S, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nto the "),
            data(S, b"end"),
        ]
    }

    fn gap_in_body() -> Vec<Piece> {
        vec![
            Data(C, cat(&[&get("/1"), &get("/2")])),
            data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"),
            Gap(S, 3),
            data(S, b"789"),
            data(S, &ok(b"fine")),
        ]
    }

    fn gap_in_chunked() -> Vec<Piece> {
        vec![
            Data(C, cat(&[&get("/1"), &get("/2")])),
            data(
                S,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n01234",
            ),
            Gap(S, 4),
            data(S, b"9abcdef\r\n0\r\n\r\n"),
            data(S, &ok(b"fine")),
        ]
    }

    fn garbage() -> Vec<Piece> {
        vec![
            Data(
                C,
                cat(&[b"\x00\x01GET garbage\r\nxGET \r\n", &get("/real")]),
            ),
            data(S, &ok(b"x")),
        ]
    }

    fn upgrade() -> Vec<Piece> {
        vec![
            data(
                C,
                b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
            ),
            data(
                S,
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
            ),
            data(C, b"GET /not-http HTTP/1.1\r\n\r\n"),
        ]
    }

    fn upgrade_refused() -> Vec<Piece> {
        vec![
            Data(
                C,
                cat(&[
                    b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                    &get("/after"),
                ]),
            ),
            Data(S, cat(&[&ok(b"no"), &ok(b"after")])),
        ]
    }

    fn smuggling() -> Vec<Piece> {
        vec![
            data(
                C,
                b"POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: ,\tchunked,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            ),
            data(S, &ok(b"")),
        ]
    }

    fn all_streams() -> Vec<(&'static str, Vec<Piece>, Config)> {
        let small = Config {
            max_head: 64,
            max_body: 8,
            max_pending: 2,
        };
        let d = Config::default();
        vec![
            ("keep_alive", keep_alive(), d),
            ("pipelined", pipelined(), d),
            ("chunked", chunked(), d),
            ("codings", codings(), d),
            ("head", head(), d),
            ("continue_100", continue_100(), d),
            ("close_delimited", close_delimited(), d),
            ("gap_in_body", gap_in_body(), d),
            ("gap_in_chunked", gap_in_chunked(), d),
            ("garbage", garbage(), d),
            ("upgrade", upgrade(), d),
            ("upgrade_refused", upgrade_refused(), d),
            ("smuggling", smuggling(), d),
            ("over_cap", over_cap(), small),
            (
                "bomb",
                bomb(),
                Config {
                    max_body: 4 << 10,
                    ..d
                },
            ),
        ]
    }

    fn over_cap() -> Vec<Piece> {
        vec![
            Data(C, cat(&[&get("/1"), &get("/2"), &get("/3")])),
            Data(
                S,
                cat(&[
                    &ok(b"0123456789abcdefghij"),
                    b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                    &ok(b"ok"),
                ]),
            ),
        ]
    }

    fn bomb() -> Vec<Piece> {
        vec![
            data(C, &get("/bomb")),
            Data(S, encoded("gzip", &gzip(&vec![0u8; 1 << 20]))),
        ]
    }

    // -------------------------------------------------------------- tests

    #[test]
    fn keep_alive_three_exchanges() {
        let evs = run(&keep_alive());
        assert_eq!(evs.len(), 6, "{evs:#?}");
        let paths = ["/a", "/b?x=1&y=2", "/c"];
        let status = [200, 201, 404];
        let bodies: [&[u8]; 3] = [b"hello", b"hi", b""];
        for k in 0..3 {
            let req = evs[2 * k].msg();
            assert!(matches!(evs[2 * k], Ev::Request(_)));
            assert_eq!(req.path(), Some(paths[k]));
            assert_eq!(req.dir, C);
            let resp = &evs[2 * k + 1];
            assert_eq!(resp.msg().status(), Some(status[k]));
            assert_eq!(resp.msg().body, bodies[k]);
            assert_eq!(resp.req(), Some(req));
            assert!(resp.msg().complete && resp.msg().problems.is_empty());
            assert_eq!(resp.msg().ts_first, Timestamp::new(2 * k as i64 + 1, 0, 6));
        }
        let post = evs[2].msg();
        assert_eq!(post.method(), Some("POST"));
        assert_eq!(post.query(), Some("x=1&y=2"));
        assert_eq!(post.body, b"abc");
        assert_eq!(post.wire_body_len, 3);
        assert_eq!(post.stream_offset, get("/a").len() as u64);
        assert_eq!(post.end_offset, post.stream_offset + 50);
        assert_eq!(post.version, 1);
        assert_eq!(evs[0].msg().header_str("HOST"), Some("example.com"));
        assert_eq!(evs[0].msg().start_line(), "GET /a HTTP/1.1");
    }

    #[test]
    fn pipelining() {
        let evs = run(&pipelined());
        assert_eq!(evs.len(), 6, "{evs:#?}");
        assert!(evs[..3].iter().all(|e| matches!(e, Ev::Request(_))));
        for (k, body) in [&b"one"[..], b"two", b"three"].iter().enumerate() {
            let r = &evs[3 + k];
            assert_eq!(r.msg().body, *body);
            assert_eq!(r.req(), Some(evs[k].msg()));
            assert_eq!(r.req().unwrap().path(), Some(["/1", "/2", "/3"][k]));
        }
    }

    #[test]
    fn chunked_with_trailers_and_extensions() {
        let evs = run(&chunked());
        assert_eq!(evs.len(), 4, "{evs:#?}");
        let m = evs[2].msg();
        assert!(m.chunked && m.complete, "{m:?}");
        assert_eq!(m.body, b"hello world");
        assert_eq!(m.wire_body_len, 11);
        assert_eq!(m.header_str("x-sum"), Some("42"));
        assert_eq!(m.header_str("x-other"), Some("x"));
        assert_eq!(m.end_offset, CHUNKED.len() as u64);
        assert!(m.problems.is_empty(), "{m:?}");
        assert_eq!(evs[3].msg().body, b"next");
        assert_eq!(evs[3].req().unwrap().path(), Some("/d"));
    }

    #[test]
    fn gzip_and_deflate_bodies() {
        let evs = run(&codings());
        assert_eq!(evs.len(), 8, "{evs:#?}");
        for m in evs[4..7].iter().map(Ev::msg) {
            assert!(m.decoded, "{m:?}");
            assert_eq!(m.body, json(), "{m:?}");
            assert!(m.problems.is_empty(), "{m:?}");
            serde_json::from_slice::<serde_json::Value>(&m.body).unwrap();
        }
        assert_eq!(evs[4].msg().encoding.as_deref(), Some("gzip"));
        let bad = evs[7].msg();
        assert!(!bad.decoded);
        assert_eq!(
            bad.body,
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate at all"
        );
        assert_eq!(bad.problems.len(), 1, "{bad:?}");
        assert!(
            bad.problems[0].starts_with("x-gzip: invalid data at byte "),
            "{bad:?}"
        );
    }

    #[test]
    fn zip_bomb_stops_at_the_cap() {
        let evs = run_cfg(
            &bomb(),
            Config {
                max_body: 4 << 10,
                ..Config::default()
            },
        );
        let m = evs[1].msg();
        assert!(m.decoded && m.complete);
        assert_eq!(m.body.len(), 4 << 10);
        assert!(m.body.iter().all(|&b| b == 0));
        assert_eq!(
            m.problems,
            ["gzip: decoded body over 4 KiB cap: kept the first 4 KiB"]
        );
    }

    #[test]
    fn head_response_has_no_body() {
        let evs = run(&head());
        assert_eq!(evs.len(), 4, "{evs:#?}");
        let m = evs[2].msg();
        assert_eq!(m.header_str("content-length"), Some("1000"));
        assert!(m.body.is_empty() && m.complete);
        assert_eq!(m.wire_body_len, 0);
        assert_eq!(evs[2].req().unwrap().method(), Some("HEAD"));
        assert_eq!(evs[3].msg().body, b"ok");
        assert_eq!(evs[3].req().unwrap().path(), Some("/small"));
    }

    #[test]
    fn continue_100_does_not_consume_the_request() {
        let evs = run(&continue_100());
        assert_eq!(evs.len(), 3, "{evs:#?}");
        // The 100 comes while the body is still on its way.
        assert_eq!(evs[0].msg().status(), Some(100));
        let early = evs[0].req().expect("paired");
        assert_eq!(early.path(), Some("/upload"));
        assert!(early.body.is_empty());
        assert_eq!(evs[1].msg().body, b"hello");
        assert_eq!(evs[2].msg().status(), Some(200));
        assert_eq!(evs[2].req(), Some(evs[1].msg()));
        // Client side first (whole stream): the 100 pairs with the complete request.
        let p = continue_100();
        let evs = run(&[p[0].clone(), p[2].clone(), p[1].clone(), p[3].clone()]);
        assert_eq!(evs.len(), 3, "{evs:#?}");
        assert_eq!(evs[1].req(), Some(evs[0].msg()));
        assert_eq!(evs[2].req(), Some(evs[0].msg()));
    }

    #[test]
    fn close_delimited_response_ends_at_finish() {
        let evs = run(&close_delimited());
        assert_eq!(evs.len(), 2, "{evs:#?}");
        let m = evs[1].msg();
        assert!(m.complete && m.problems.is_empty(), "{m:?}");
        assert_eq!(m.body, b"to the end");
        assert_eq!(m.version, 0);
        assert_eq!(m.ts_first, Timestamp::new(1, 0, 6));
        assert_eq!(m.ts_last, Timestamp::new(2, 0, 6));
    }

    #[test]
    fn gap_inside_a_body() {
        let evs = run(&gap_in_body());
        assert_eq!(evs.len(), 5, "{evs:#?}");
        let cut = evs[2].msg();
        assert!(!cut.complete);
        assert_eq!(cut.body, b"0123");
        assert_eq!(cut.problems, ["gap of 3 bytes inside the body"]);
        let head_len = 39;
        assert_eq!(cut.end_offset, head_len + 4);
        assert_eq!(evs[3], Ev::Skipped(S, head_len + 7, 3, SKIP_AFTER_GAP));
        let fine = evs[4].msg();
        assert!(fine.complete);
        assert_eq!(fine.body, b"fine");
        assert_eq!(evs[4].req().unwrap().path(), Some("/2"));

        // Chunked: the end of the body is unknown, resume at the status line.
        let evs = run(&gap_in_chunked());
        assert_eq!(evs.len(), 5, "{evs:#?}");
        assert!(!evs[2].msg().complete);
        assert_eq!(evs[2].msg().body, b"01234");
        assert_eq!(evs[3], Ev::Skipped(S, 56 + 4, 14, SKIP_AFTER_GAP));
        assert_eq!(evs[4].msg().body, b"fine");
        assert_eq!(evs[4].req().unwrap().path(), Some("/2"));
    }

    #[test]
    fn garbage_before_a_request_line() {
        let evs = run(&garbage());
        assert_eq!(evs.len(), 3, "{evs:#?}");
        assert_eq!(evs[0], Ev::Skipped(C, 0, 22, SKIP_NOT_HTTP));
        assert_eq!(evs[1].msg().path(), Some("/real"));
        assert_eq!(evs[1].msg().stream_offset, 22);
        assert_eq!(evs[2].req(), Some(evs[1].msg()));
    }

    #[test]
    fn over_cap_body_and_head() {
        let cfg = Config {
            max_head: 64,
            max_body: 8,
            max_pending: 2,
        };
        let evs = run_cfg(&over_cap(), cfg);
        let resp: Vec<&Ev> = evs
            .iter()
            .filter(|e| matches!(e, Ev::Response(..)))
            .collect();
        assert_eq!(resp.len(), 3, "{evs:#?}");
        let big = resp[0].msg();
        assert_eq!(big.body, b"01234567");
        assert_eq!(big.wire_body_len, 20);
        assert!(big.complete);
        // The third request pushed the first out of the queue (cap 2).
        assert_eq!(resp[0].req(), None);
        assert_eq!(
            big.problems,
            [
                "body over 8 bytes cap: kept the first 8 bytes",
                "answers a request dropped from the full pending queue"
            ]
        );
        let long = resp[1].msg();
        assert!(!long.complete);
        assert_eq!(long.problems, ["head over 64 bytes cap"]);
        assert_eq!(long.end_offset - long.stream_offset, 64);
        assert_eq!(resp[1].req().unwrap().path(), Some("/2"));
        assert!(
            evs.contains(&Ev::Skipped(S, 59 + 64, 15, SKIP_HEAD_OVER_CAP)),
            "{evs:#?}"
        );
        assert_eq!(resp[2].msg().body, b"ok");
        assert_eq!(resp[2].req().unwrap().path(), Some("/3"));
    }

    #[test]
    fn pending_queue_overflow() {
        let cfg = Config {
            max_pending: 2,
            ..Config::default()
        };
        let evs = run_cfg(
            &over_cap()[..1]
                .iter()
                .cloned()
                .chain([Data(S, cat(&[&ok(b"1"), &ok(b"2"), &ok(b"3")]))])
                .collect::<Vec<_>>(),
            cfg,
        );
        assert_eq!(evs.len(), 6, "{evs:#?}");
        assert_eq!(
            evs[2].msg().problems,
            ["pending queue full (2): dropped the oldest unanswered request (GET /1 HTTP/1.1 at offset 0)"]
        );
        assert_eq!(evs[3].req(), None);
        assert_eq!(
            evs[3].msg().problems,
            ["answers a request dropped from the full pending queue"]
        );
        assert_eq!(evs[4].req().unwrap().path(), Some("/2"));
        assert_eq!(evs[5].req().unwrap().path(), Some("/3"));
    }

    #[test]
    fn upgrade_stops_parsing() {
        let evs = run(&upgrade());
        assert_eq!(evs.len(), 4, "{evs:#?}");
        assert_eq!(evs[1].msg().status(), Some(101));
        assert_eq!(evs[1].req(), Some(evs[0].msg()));
        let c_head = 63;
        let s_head = 77;
        assert_eq!(evs[2], Ev::Skipped(C, c_head, 7 + 26, SKIP_UPGRADED));
        assert_eq!(evs[3], Ev::Skipped(S, s_head, 4, SKIP_UPGRADED));
        // Refused: what the client sent after the request is HTTP after all.
        let evs = run(&upgrade_refused());
        assert_eq!(evs.len(), 4, "{evs:#?}");
        assert_eq!(evs[1].req().unwrap().path(), Some("/chat"));
        // The held request is parsed as soon as the refusal is known.
        assert_eq!(evs[2].msg().path(), Some("/after"));
        assert_eq!(evs[3].req(), Some(evs[2].msg()));
        assert_eq!(evs[3].msg().body, b"after");
    }

    #[test]
    fn content_length_with_chunked_uses_chunked() {
        let evs = run(&smuggling());
        assert_eq!(evs.len(), 2, "{evs:#?}");
        let m = evs[0].msg();
        assert!(m.chunked && m.complete);
        assert_eq!(m.body, b"abc");
        assert_eq!(
            m.problems,
            ["both Content-Length and Transfer-Encoding sent: Content-Length ignored"]
        );
        assert_eq!(evs[1].req(), Some(m));
    }

    #[test]
    fn mid_stream_response_has_no_request() {
        let evs = run(&[data(S, b"o bytes\r\nHTTP/1.1 204 No Content\r\n\r\n")]);
        assert_eq!(evs.len(), 2, "{evs:#?}");
        assert_eq!(evs[0], Ev::Skipped(S, 0, 9, SKIP_NOT_HTTP));
        assert_eq!(evs[1].req(), None);
        assert_eq!(evs[1].msg().status(), Some(204));
    }

    #[test]
    fn cut_by_the_end_of_the_stream() {
        let evs = run(&[
            data(C, b"GET / HTTP/1.1\r\nHost: a\r\nAcc"),
            data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
        ]);
        assert_eq!(evs.len(), 2, "{evs:#?}");
        let (req, resp) = (evs[0].msg(), evs[1].msg());
        assert!(!req.complete && !resp.complete);
        assert_eq!(req.header_str("host"), Some("a"));
        assert_eq!(req.problems, ["stream ended inside the head"]);
        assert_eq!(
            resp.problems,
            ["stream ended inside the body (3 of 9 bytes)"]
        );
        assert_eq!(resp.body, b"abc");
        // The response head was complete before the request was cut.
        assert_eq!(evs[1].req(), None);
    }

    /// Every chunking of every stream gives the same events: each piece cut
    /// at every position into two chunks, and fed one byte at a time.
    #[test]
    fn every_chunking_gives_identical_events() {
        for (name, pieces, cfg) in all_streams() {
            let whole = run_cfg(&pieces, cfg);
            assert!(!whole.is_empty(), "{name}");
            let bytes = run_cut(&pieces, cfg, &|_, len| (1..len).collect());
            assert_eq!(bytes, whole, "{name}: one byte at a time");
            for (pi, p) in pieces.iter().enumerate() {
                let Data(_, b) = p else { continue };
                for k in 1..b.len() {
                    let two = run_cut(&pieces, cfg, &|q, _| {
                        if q == pi {
                            vec![k]
                        } else {
                            Vec::new()
                        }
                    });
                    assert_eq!(two, whole, "{name}: piece {pi} cut at {k}");
                }
            }
        }
    }

    /// Every truncated prefix of every stream: no panic, invariants hold.
    #[test]
    fn every_truncated_prefix() {
        for (_, pieces, cfg) in all_streams() {
            let total: usize = pieces
                .iter()
                .map(|p| match p {
                    Data(_, b) => b.len(),
                    Gap(..) => 0,
                })
                .sum();
            for n in 0..total {
                let mut left = n;
                let mut pre = Vec::new();
                for p in &pieces {
                    match p {
                        Data(d, b) if b.len() <= left => {
                            left -= b.len();
                            pre.push(Data(*d, b.clone()));
                        }
                        Data(d, b) => {
                            pre.push(Data(*d, b[..left].to_vec()));
                            break;
                        }
                        g => pre.push(g.clone()),
                    }
                }
                run_cfg(&pre, cfg);
            }
        }
    }

    #[test]
    fn feed_offsets_overlap_and_jump() {
        let mut conn = Conn::new(Config::default());
        let mut evs = Vec::new();
        let mut out = |e: HttpEvent<'_>| evs.push(e.to_owned_event());
        let req = get("/x");
        let ts = Timestamp::default();
        conn.feed(C, 0, &req[..10], ts, &mut out);
        // Overlapping retransmission, then the rest.
        conn.feed(C, 5, &req[5..], ts, &mut out);
        // A jump forward is a gap.
        conn.feed(C, req.len() as u64 + 5, &get("/y"), ts, &mut out);
        conn.finish(&mut out);
        assert_eq!(evs.len(), 2, "{evs:#?}");
        assert_eq!(evs[0].msg().path(), Some("/x"));
        assert_eq!(evs[1].msg().path(), Some("/y"));
        assert_eq!(evs[1].msg().stream_offset, req.len() as u64 + 5);
    }

    #[test]
    fn helpers() {
        assert_eq!(size(16 << 20), "16 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(size(100), "100 bytes");
        assert_eq!(parse_chunk_size(b"1aF;x=y\r"), Some(0x1af));
        assert_eq!(parse_chunk_size(b" 0 "), Some(0));
        assert_eq!(parse_chunk_size(b"g"), None);
        assert_eq!(parse_chunk_size(b"11112222333344445"), None);
        assert_eq!(
            content_length(&[("Content-Length".into(), b"5, 5".to_vec())]),
            Ok(Some(5))
        );
        assert!(content_length(&[("content-length".into(), b"5, 6".to_vec())]).is_err());
        assert_eq!(
            transfer_encoding(&[("Transfer-Encoding".into(), b"gzip, chunked".to_vec())]),
            (true, true)
        );
        assert_eq!(
            transfer_encoding(&[("Transfer-Encoding".into(), b"chunked, gzip".to_vec())]),
            (true, false)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Ok(18));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\n\n", 0), Ok(17));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r", 0), Err(21));
    }
}
