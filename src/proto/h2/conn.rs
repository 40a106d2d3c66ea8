//! One HTTP/2 connection, both directions: frames cut from each direction's
//! stream, header blocks (HEADERS or PUSH_PROMISE and their CONTINUATIONs)
//! decoded by that direction's HPACK decoder, streams made into exchanges.
//!
//! Events go to a callback: each frame ([`H2Event::Frame`], with its
//! decoded header block when it ended one), requests and responses as
//! [`HttpEvent`]s (a request when its END_STREAM is seen, a response with
//! its request; `Unanswered` for requests the connection ended or a
//! RST_STREAM cut), and anomalies (malformed frames, HPACK errors, header
//! blocks that cannot be decoded, bytes that are no frames).
//!
//! The dynamic table of HPACK is shared state: after a gap, an HPACK error,
//! or when the capture starts after the connection did, a direction's
//! table is unknown and its header blocks are not decoded (said once per
//! direction, and on each frame); frames are still found.
//!
//! What is held, each under a cap: one frame per direction (at most the
//! largest frame the receiver allowed, 2^24 - 1 at worst), a header block in
//! progress ([`Config::max_header_block`]), the bodies of open streams
//! ([`Config::max_body`] each) and the open streams ([`Config::max_streams`]:
//! past it the oldest is ended as cut). The HPACK tables are capped at
//! [`MAX_TABLE`].

use std::collections::BTreeMap;

use loona_hpack::Decoder;

use super::frame::{self, FrameInfo};
use super::*;
use crate::capture::Timestamp;
use crate::flow::Direction;
use crate::proto::http::{self, HttpEvent, Message, Start};

/// The largest HPACK dynamic table followed (a peer's SETTINGS may allow
/// more; an encoder that uses more gives an HPACK error).
pub const MAX_TABLE: usize = 1 << 20;
/// Bytes kept while searching for a frame boundary after a gap.
const HUNT_KEEP: usize = 64 << 10;

/// Caps of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Body bytes kept per message (the rest is counted).
    pub max_body: usize,
    /// A header block longer than this is dropped (and the table lost).
    pub max_header_block: usize,
    /// Open streams followed at once.
    pub max_streams: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body: http::MAX_BODY,
            max_header_block: 256 << 10,
            max_streams: 256,
        }
    }
}

/// What a [`Conn`] reports.
#[derive(Debug)]
pub enum H2Event<'a> {
    /// A whole frame of `dir`.
    Frame {
        dir: Direction,
        info: &'a FrameInfo,
        ts: Timestamp,
    },
    /// An exchange's message (as HTTP/1.x gives them, `version` 2).
    Http(HttpEvent<'a>),
    /// Something wrong, at `offset` of `dir`'s stream.
    Anomaly {
        dir: Direction,
        offset: u64,
        what: String,
    },
}

/// A header block in progress (HEADERS or PUSH_PROMISE, then CONTINUATION).
#[derive(Debug)]
struct Block {
    stream: u32,
    promised: Option<u32>,
    end_stream: bool,
    bytes: Vec<u8>,
    offset: u64,
    ts: Timestamp,
    over_cap: bool,
}

struct Side {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    at: u64,
    /// Timestamp of the chunk that brought `buf[0]`.
    ts: Timestamp,
    /// Nothing fed yet.
    fresh: bool,
    /// The client preface may still come (the direction starts at 0).
    preface: bool,
    /// Searching for a frame boundary; bytes skipped so far and where.
    lost: bool,
    skipped: Option<(u64, u64)>,
    hpack: Decoder<'static>,
    /// Why the table is unknown (`None`: known).
    table_unknown: Option<&'static str>,
    undecoded_said: bool,
    block: Option<Block>,
    /// The largest frame the other side allowed.
    max_frame: u32,
    frames: u64,
}

impl Default for Side {
    fn default() -> Self {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(MAX_TABLE);
        Side {
            buf: Vec::new(),
            at: 0,
            ts: Timestamp::default(),
            fresh: true,
            preface: true,
            lost: false,
            skipped: None,
            hpack,
            table_unknown: None,
            undecoded_said: false,
            block: None,
            max_frame: DEFAULT_MAX_FRAME,
            frames: 0,
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h2::Conn")
            .field("streams", &self.streams.len())
            .finish()
    }
}

/// One stream's messages.
#[derive(Debug, Default)]
struct Stream {
    req: Option<Message>,
    resp: Option<Message>,
    req_done: bool,
}

/// An HTTP/2 connection (both directions).
pub struct Conn {
    cfg: Config,
    sides: [Side; 2],
    streams: BTreeMap<u32, Stream>,
}

fn di(dir: Direction) -> usize {
    dir as usize
}

fn other(dir: Direction) -> Direction {
    match dir {
        Direction::ClientToServer => Direction::ServerToClient,
        Direction::ServerToClient => Direction::ClientToServer,
    }
}

type Out<'o> = &'o mut dyn FnMut(H2Event<'_>);

impl Conn {
    pub fn new(cfg: Config) -> Self {
        Conn {
            cfg,
            sides: Default::default(),
            streams: BTreeMap::new(),
        }
    }

    /// Open streams followed now.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Feeds `dir`'s bytes at `offset` (in order, any gap reported first).
    /// A direction whose first bytes are not at offset 0 started before the
    /// capture: its HPACK table is unknown.
    pub fn feed(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts: Timestamp, out: Out) {
        let s = &mut self.sides[di(dir)];
        if s.fresh {
            s.fresh = false;
            if offset > 0 {
                s.preface = false;
                s.lost = true;
                s.table_unknown = Some("the capture starts after the connection did");
            }
        }
        if s.buf.is_empty() {
            s.at = offset;
            s.ts = ts;
            let used = self.drain(dir, bytes, offset, ts, out);
            let s = &mut self.sides[di(dir)];
            s.buf.extend_from_slice(&bytes[used..]);
            s.at = offset + used as u64;
        } else {
            let mut buf = std::mem::take(&mut s.buf);
            buf.extend_from_slice(bytes);
            let at = s.at;
            let used = self.drain(dir, &buf, at, ts, out);
            buf.drain(..used);
            let s = &mut self.sides[di(dir)];
            s.buf = buf;
            s.at = at + used as u64;
            if used > 0 {
                s.ts = ts;
            }
        }
    }

    /// `len` bytes of `dir` are missing: what is held is skipped, the next
    /// frame is searched for, the direction's HPACK table is lost, and its
    /// messages in progress are cut.
    pub fn gap(&mut self, dir: Direction, len: u64, out: Out) {
        let s = &mut self.sides[di(dir)];
        let held = s.buf.len() as u64;
        s.buf.clear();
        if held > 0 {
            skip(s, s.at, held);
        }
        flush_skipped(dir, s, out);
        s.at += held + len;
        s.fresh = false;
        s.preface = false;
        s.lost = true;
        s.block = None;
        s.table_unknown = Some("bytes are missing from the capture");
        let note = format!("{len} bytes missing from the capture in this direction");
        for st in self.streams.values_mut() {
            let m = if st.req.as_ref().is_some_and(|m| m.dir == dir) && !st.req_done {
                st.req.as_mut()
            } else {
                st.resp.as_mut().filter(|m| m.dir == dir)
            };
            if let Some(m) = m {
                if m.complete {
                    m.complete = false;
                    m.problems.push(note.clone());
                }
            }
        }
    }

    /// The connection ended: held bytes are skipped, streams still open come
    /// out cut (a response in progress) or unanswered.
    pub fn finish(&mut self, out: Out) {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let s = &mut self.sides[di(dir)];
            let held = s.buf.len() as u64;
            if held > 0 {
                if !s.lost {
                    out(H2Event::Anomaly {
                        dir,
                        offset: s.at,
                        what: format!("the connection ended inside a frame ({held} bytes held)"),
                    });
                } else {
                    skip(s, s.at, held);
                }
                s.at += held;
                s.buf.clear();
            }
            flush_skipped(dir, s, out);
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.end_stream_early(id, "the connection ended before the stream did", out);
        }
    }

    /// Cuts whole frames from `data` (at stream offset `base`); returns
    /// the bytes used.
    fn drain(&mut self, dir: Direction, data: &[u8], base: u64, ts: Timestamp, out: Out) -> usize {
        let mut pos = 0;
        loop {
            let s = &mut self.sides[di(dir)];
            let rest = &data[pos..];
            if rest.is_empty() {
                break;
            }
            if s.lost {
                match hunt(rest) {
                    Some(i) => {
                        if i > 0 {
                            skip(s, base + pos as u64, i as u64);
                        }
                        pos += i;
                        s.lost = false;
                        flush_skipped(dir, s, out);
                        continue;
                    }
                    None => {
                        // Keep the tail that may still start a frame.
                        let drop = rest.len().saturating_sub(HUNT_KEEP);
                        if drop > 0 {
                            skip(s, base + pos as u64, drop as u64);
                            pos += drop;
                        }
                        break;
                    }
                }
            }
            if s.preface {
                match starts_with_preface(rest) {
                    Some(true) => {
                        pos += PREFACE.len();
                        s.preface = false;
                        continue;
                    }
                    None => break,
                    Some(false) => s.preface = false,
                }
            }
            let Some(h) = FrameHeader::parse(rest) else {
                break;
            };
            if h.len > s.max_frame {
                out(H2Event::Anomaly {
                    dir,
                    offset: base + pos as u64,
                    what: format!(
                        "a {} frame of {} bytes, over the {} the peer allowed: not a frame \
                         boundary, searching for the next",
                        type_name(h.typ),
                        h.len,
                        s.max_frame
                    ),
                });
                s.lost = true;
                s.block = None;
                s.table_unknown = Some("bytes that are no frames came before");
                continue;
            }
            if rest.len() < h.frame_len() {
                break;
            }
            let at = base + pos as u64;
            // The first bytes of a frame that began in an earlier chunk
            // came with the held bytes' timestamp.
            let first_ts = if pos == 0 { s.ts } else { ts };
            self.frame(
                dir,
                &h,
                &rest[HEADER_LEN..h.frame_len()],
                at,
                first_ts,
                ts,
                out,
            );
            pos += h.frame_len();
        }
        pos
    }

    /// One whole frame.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        dir: Direction,
        h: &FrameHeader,
        payload: &[u8],
        at: u64,
        first_ts: Timestamp,
        ts: Timestamp,
        out: Out,
    ) {
        let (mut info, content) = frame::read(h, payload);
        let s = &mut self.sides[di(dir)];
        info.index = s.frames;
        info.stream_offset = at;
        s.frames += 1;
        let end = at + h.frame_len() as u64;
        if let Some(p) = &info.problem {
            out(H2Event::Anomaly {
                dir,
                offset: at,
                what: format!("malformed {} frame: {p}", type_name(h.typ)),
            });
        }
        // A header block in progress takes only its CONTINUATIONs.
        if let Some(b) = &s.block {
            if h.typ != CONTINUATION || h.stream != b.stream {
                out(H2Event::Anomaly {
                    dir,
                    offset: at,
                    what: format!(
                        "a {} frame on stream {} inside the header block of stream {} \
                         (CONTINUATION expected): the block is dropped",
                        type_name(h.typ),
                        h.stream,
                        b.stream
                    ),
                });
                s.block = None;
                s.table_unknown = Some("a header block was cut");
            }
        } else if h.typ == CONTINUATION {
            out(H2Event::Anomaly {
                dir,
                offset: at,
                what: format!(
                    "a CONTINUATION on stream {} with no header block open",
                    h.stream
                ),
            });
        }
        let mut events: Vec<Done> = Vec::new();
        if info.problem.is_none() {
            match h.typ {
                HEADERS | PUSH_PROMISE => {
                    s.block = Some(Block {
                        stream: h.stream,
                        promised: info.promised_stream,
                        end_stream: h.typ == HEADERS && h.flags & END_STREAM != 0,
                        bytes: Vec::new(),
                        offset: at,
                        ts: first_ts,
                        over_cap: false,
                    });
                    self.fragment(dir, h, content.bytes, &mut info, end, ts, &mut events, out);
                }
                CONTINUATION if self.sides[di(dir)].block.is_some() => {
                    self.fragment(dir, h, content.bytes, &mut info, end, ts, &mut events, out);
                }
                DATA => self.data(dir, h, content.bytes, end, ts, &mut events),
                SETTINGS => {
                    // What this side allows binds the other's frames and
                    // header tables.
                    let o = &mut self.sides[di(other(dir))];
                    for &(name, v) in &info.settings {
                        match name {
                            "MAX_FRAME_SIZE" => {
                                o.max_frame = o.max_frame.max(v.clamp(DEFAULT_MAX_FRAME, MAX_FRAME))
                            }
                            "HEADER_TABLE_SIZE" => o
                                .hpack
                                .set_max_allowed_table_size((v as usize).clamp(4096, MAX_TABLE)),
                            _ => {}
                        }
                    }
                }
                RST_STREAM => {
                    let why = format!("reset by RST_STREAM ({})", info.error.unwrap_or("unknown"));
                    out(H2Event::Frame {
                        dir,
                        info: &info,
                        ts,
                    });
                    self.end_stream_early(h.stream, &why, out);
                    return;
                }
                _ => {}
            }
        }
        out(H2Event::Frame {
            dir,
            info: &info,
            ts,
        });
        for d in events {
            self.emit(d, out);
        }
    }

    /// A header block fragment; at END_HEADERS the block is decoded and
    /// applied to its stream.
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        dir: Direction,
        h: &FrameHeader,
        frag: &[u8],
        info: &mut FrameInfo,
        end: u64,
        ts: Timestamp,
        events: &mut Vec<Done>,
        out: Out,
    ) {
        let cap = self.cfg.max_header_block;
        let s = &mut self.sides[di(dir)];
        let Some(b) = s.block.as_mut() else {
            return;
        };
        if b.bytes.len() + frag.len() > cap {
            b.over_cap = true;
            b.bytes.clear();
        } else if !b.over_cap {
            b.bytes.extend_from_slice(frag);
        }
        if h.flags & END_HEADERS == 0 {
            return;
        }
        let b = s.block.take().expect("block");
        if b.over_cap {
            out(H2Event::Anomaly {
                dir,
                offset: b.offset,
                what: format!("a header block over the {cap}-byte cap: dropped"),
            });
            s.table_unknown = Some("a header block over the cap was dropped");
            info.headers_undecoded = Some("over the cap".into());
            return;
        }
        if let Some(why) = s.table_unknown {
            info.headers_undecoded = Some(format!("HPACK state unknown: {why}"));
            if !s.undecoded_said {
                s.undecoded_said = true;
                out(H2Event::Anomaly {
                    dir,
                    offset: b.offset,
                    what: format!(
                        "header blocks not decoded from here on in this direction: the HPACK \
                         table is unknown ({why})"
                    ),
                });
            }
            return;
        }
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        let r = s.hpack.decode_with_cb(&b.bytes, |n, v| {
            fields.push((String::from_utf8_lossy(&n).into_owned(), v.into_owned()))
        });
        if let Err(e) = r {
            s.table_unknown = Some("an HPACK error");
            info.headers_undecoded = Some(format!("HPACK error: {e}"));
            out(H2Event::Anomaly {
                dir,
                offset: b.offset,
                what: format!(
                    "HPACK error in the header block of stream {}: {e}",
                    b.stream
                ),
            });
            return;
        }
        info.headers = Some(
            fields
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
        );
        self.headers(dir, b, fields, end, ts, events, out);
    }

    /// A decoded header block: a request, a response, a push's request or
    /// trailers.
    #[allow(clippy::too_many_arguments)]
    fn headers(
        &mut self,
        dir: Direction,
        b: Block,
        fields: Vec<(String, Vec<u8>)>,
        end: u64,
        ts: Timestamp,
        events: &mut Vec<Done>,
        out: Out,
    ) {
        let pseudo = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let start = if let Some(status) = pseudo(":status") {
            match status.parse::<u16>() {
                Ok(code) => Some(Start::Response {
                    status: code,
                    reason: String::new(),
                }),
                Err(_) => {
                    out(H2Event::Anomaly {
                        dir,
                        offset: b.offset,
                        what: format!("a :status that is no number ({status:?})"),
                    });
                    return;
                }
            }
        } else {
            pseudo(":method").map(|method| Start::Request {
                path: pseudo(":path")
                    .or_else(|| pseudo(":authority"))
                    .unwrap_or_default(),
                method,
            })
        };
        let stream_id = b.promised.unwrap_or(b.stream);
        let Some(start) = start else {
            // Trailers of the message in progress on this stream.
            let st = self.streams.get_mut(&b.stream);
            let m = st.and_then(|st| {
                if st.resp.as_ref().is_some_and(|m| m.dir == dir) {
                    st.resp.as_mut()
                } else {
                    st.req.as_mut().filter(|m| m.dir == dir)
                }
            });
            match m {
                Some(m) => {
                    m.headers.extend(fields);
                    m.end_offset = end;
                    m.ts_last = ts;
                    if b.end_stream {
                        events.push(Done::new(b.stream, dir));
                    }
                }
                None => out(H2Event::Anomaly {
                    dir,
                    offset: b.offset,
                    what: format!(
                        "a header block on stream {} with neither :method nor :status, and no \
                         message open to take it as trailers",
                        b.stream
                    ),
                }),
            }
            return;
        };
        let is_resp = matches!(start, Start::Response { .. });
        if let Start::Response { status, .. } = start {
            if (100..200).contains(&status) && status != 101 {
                return; // interim: the frame record shows it
            }
        }
        let msg = Message {
            dir,
            start,
            version: 2,
            encoding: fields
                .iter()
                .find(|(n, _)| n == "content-encoding")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
            headers: fields,
            body: Vec::new(),
            wire_body_len: 0,
            decoded: false,
            chunked: false,
            stream_offset: b.offset,
            end_offset: end,
            ts_first: b.ts,
            ts_last: ts,
            complete: true,
            problems: Vec::new(),
        };
        if !self.streams.contains_key(&stream_id) && self.streams.len() >= self.cfg.max_streams {
            if let Some(&oldest) = self.streams.keys().next() {
                let why = format!("more than {} streams open at once", self.cfg.max_streams);
                self.end_stream_early(oldest, &why, out);
            }
        }
        let st = self.streams.entry(stream_id).or_default();
        if is_resp {
            st.resp = Some(msg);
            if b.end_stream {
                events.push(Done::new(stream_id, dir));
            }
        } else {
            st.req = Some(msg);
            // A push's request is whole with its PUSH_PROMISE.
            st.req_done = b.promised.is_some();
            if b.end_stream && b.promised.is_none() {
                events.push(Done::new(stream_id, dir));
            }
        }
    }

    /// DATA: the body of the stream's message in `dir`.
    fn data(
        &mut self,
        dir: Direction,
        h: &FrameHeader,
        data: &[u8],
        end: u64,
        ts: Timestamp,
        events: &mut Vec<Done>,
    ) {
        let max = self.cfg.max_body;
        let Some(st) = self.streams.get_mut(&h.stream) else {
            return; // a stream not followed (its headers not decoded): the frame shows it
        };
        let m = if st.resp.as_ref().is_some_and(|m| m.dir == dir) {
            st.resp.as_mut()
        } else {
            st.req.as_mut().filter(|m| m.dir == dir && !st.req_done)
        };
        let Some(m) = m else {
            return;
        };
        m.wire_body_len += data.len() as u64;
        let room = max.saturating_sub(m.body.len());
        if data.len() > room && !m.problems.iter().any(|p| p.starts_with("body over")) {
            m.problems
                .push(format!("body over the {max}-byte cap: the rest counted"));
        }
        m.body.extend_from_slice(&data[..data.len().min(room)]);
        m.end_offset = end;
        m.ts_last = ts;
        if h.flags & END_STREAM != 0 {
            events.push(Done::new(h.stream, dir));
        }
    }

    /// A message's END_STREAM: the request comes out, or the response with
    /// its request (the stream is then over).
    fn emit(&mut self, d: Done, out: Out) {
        let max = self.cfg.max_body;
        let Some(st) = self.streams.get_mut(&d.stream) else {
            return;
        };
        if st.resp.as_ref().is_some_and(|m| m.dir == d.dir) {
            let mut st = self.streams.remove(&d.stream).expect("stream");
            let mut rs = st.resp.take().expect("response");
            http::decode_body(&mut rs, max);
            out(H2Event::Http(HttpEvent::Response {
                response: &rs,
                request: st.req.as_ref(),
            }));
        } else if let Some(rq) = st.req.as_mut().filter(|m| m.dir == d.dir) {
            st.req_done = true;
            http::decode_body(rq, max);
            out(H2Event::Http(HttpEvent::Request(rq)));
        }
    }

    /// A stream ended before its END_STREAM (reset, connection over, too
    /// many streams): a response in progress comes out cut, else the
    /// request unanswered.
    fn end_stream_early(&mut self, id: u32, why: &str, out: Out) {
        let Some(mut st) = self.streams.remove(&id) else {
            return;
        };
        if let Some(rq) = st.req.as_mut().filter(|_| !st.req_done) {
            rq.complete = false;
            rq.problems.push(why.to_owned());
        }
        match st.resp.as_mut() {
            Some(rs) => {
                rs.complete = false;
                rs.problems.push(why.to_owned());
                http::decode_body(rs, self.cfg.max_body);
                out(H2Event::Http(HttpEvent::Response {
                    response: rs,
                    request: st.req.as_ref(),
                }));
            }
            None => {
                if let Some(rq) = &st.req {
                    out(H2Event::Http(HttpEvent::Unanswered(rq)));
                }
            }
        }
    }
}

/// A message whose END_STREAM was seen in a frame (emitted after the frame).
struct Done {
    stream: u32,
    dir: Direction,
}

impl Done {
    fn new(stream: u32, dir: Direction) -> Self {
        Done { stream, dir }
    }
}

fn skip(s: &mut Side, at: u64, n: u64) {
    match &mut s.skipped {
        Some((_, len)) => *len += n,
        None => s.skipped = Some((at, n)),
    }
}

fn flush_skipped(dir: Direction, s: &mut Side, out: Out) {
    if let Some((offset, len)) = s.skipped.take() {
        out(H2Event::Anomaly {
            dir,
            offset,
            what: format!("{len} bytes are not HTTP/2 frames (skipped to the next frame)"),
        });
    }
}

/// A frame header that could start a frame after a gap: a known type, a
/// length within the default maximum, the stream id and the length its type
/// needs, only defined flags.
fn plausible(b: &[u8]) -> Option<FrameHeader> {
    let h = FrameHeader::parse(b)?;
    if b[5] & 0x80 != 0 || h.len > DEFAULT_MAX_FRAME {
        return None;
    }
    let zero = h.stream == 0;
    let ok = match h.typ {
        DATA => !zero && h.flags & !(END_STREAM | PADDED) == 0,
        HEADERS => {
            !zero
                && h.flags & !(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG) == 0
                && h.len > 0
        }
        PRIORITY => !zero && h.len == 5 && h.flags == 0,
        RST_STREAM => !zero && h.len == 4 && h.flags == 0,
        SETTINGS => zero && h.len % 6 == 0 && h.flags & !ACK == 0,
        PUSH_PROMISE => !zero && h.flags & !(END_HEADERS | PADDED) == 0 && h.len >= 4,
        PING => zero && h.len == 8 && h.flags & !ACK == 0,
        GOAWAY => zero && h.len >= 8 && h.flags == 0,
        WINDOW_UPDATE => h.len == 4 && h.flags == 0,
        CONTINUATION => !zero && h.flags & !END_HEADERS == 0,
        _ => false,
    };
    ok.then_some(h)
}

/// Where in `b` two plausible frames follow each other; `None`: not found
/// yet (the answer does not depend on how the bytes were chunked).
fn hunt(b: &[u8]) -> Option<usize> {
    let last = b.len().checked_sub(HEADER_LEN)?;
    for i in 0..=last {
        let Some(h) = plausible(&b[i..]) else {
            continue;
        };
        let next = i + h.frame_len();
        if next + HEADER_LEN <= b.len() && plausible(&b[next..]).is_some() {
            return Some(i);
        }
        if next + HEADER_LEN > b.len() {
            // Cannot tell yet: keep from here.
            return None;
        }
    }
    None
}
