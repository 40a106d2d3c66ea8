//! The analyzer's connection: both directions of one HTTP/1.x connection,
//! fed incrementally; the state of each half and the driving loop
//! (resynchronising, heads). Bodies and chunked framing are in
//! [`body`], pairing responses with requests and the end of a half in
//! [`pair`].

use std::collections::VecDeque;

use super::framing::{request_framing, response_framing, Framing};
use super::head::{find_head_end, new_message, parse_head, parse_partial_head};
use super::resync::{candidate, Cand, NlCache};
use super::{
    size, Config, HttpEvent, Message, SKIP_HEAD_OVER_CAP, SKIP_INVALID_HEAD, SKIP_NOT_HTTP,
    SKIP_UPGRADED,
};
use crate::capture::Timestamp;
use crate::flow::Direction;

mod body;
mod pair;

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
    fn method(&self) -> Option<&str> {
        self.req.as_ref().and_then(|r| r.method())
    }

    fn method_is(&self, m: &str) -> bool {
        self.method() == Some(m)
    }
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

pub(super) fn index(dir: Direction) -> usize {
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
        for p in std::mem::take(&mut self.pending) {
            out(HttpEvent::Unanswered(&p.msg));
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
            match response_framing(&mut msg, status, answer.method()) {
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
