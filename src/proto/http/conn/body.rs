//! Reading a body: Content-Length, chunked (sizes, extensions, trailers)
//! or to the end of the connection; then decoding and emitting the message.

use super::super::coding::decode_body;
use super::super::framing::{parse_chunk_size, Chunk, Framing};
use super::super::head::parse_field;
use super::super::{excerpt, size, strip_cr, HttpEvent};
use super::{push_body, seek, upgraded, Conn, InBody, State};

impl Conn {
    pub(super) fn step_body<F: FnMut(HttpEvent<'_>)>(
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

    pub(super) fn step_chunked<F: FnMut(HttpEvent<'_>)>(
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
    pub(super) fn chunk_fail<F: FnMut(HttpEvent<'_>)>(
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
    pub(super) fn complete<F: FnMut(HttpEvent<'_>)>(
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
}
