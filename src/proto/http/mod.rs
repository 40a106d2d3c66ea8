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
//!
//! The folder: [`message`] (the one sans-IO codec for whole messages:
//! parse one request or response from a buffer, encode them; used by the
//! server, the web client and the short-link tools), `head` (the one
//! httparse head parser, strict or lenient), `framing` (Content-Length,
//! Transfer-Encoding, chunk sizes), `resync` (the next start line after a
//! gap or garbage), `coding` (gzip/deflate under the body cap) and `conn`
//! (the analyzer's incremental [`Conn`]: `conn/body`, `conn/pair`).

use serde::{Serialize, Serializer};

use crate::capture::Timestamp;
use crate::flow::Direction;

pub mod chunked;
mod coding;
mod conn;
mod framing;
mod head;
pub mod message;
pub mod multipart;
mod resync;
#[cfg(test)]
mod tests;

pub(crate) use coding::decode_body;
pub use conn::Conn;
pub use message::{BodyLen, HttpMessage, Kind, Limits, Parse, ParseError};
pub use resync::first_start_line;

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
    /// Minor version: 0 or 1 (HTTP/1.0 or HTTP/1.1); 2 for HTTP/2 (whose
    /// headers include the pseudo-headers, `:method` first).
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
        if self.version == 2 {
            return match &self.start {
                Start::Request { method, path } => format!("{method} {path} HTTP/2"),
                Start::Response { status, .. } => format!("HTTP/2 {status}"),
            };
        }
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
    /// A request still waiting for its final response when the connection
    /// ended (a long poll held open, a request the capture stopped before
    /// answering).
    Unanswered(&'a Message),
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
    Unanswered(Message),
    /// Direction, offset, length, reason.
    Skipped(Direction, u64, u64, &'static str),
}

impl HttpEvent<'_> {
    /// The event with its messages copied.
    pub fn to_owned_event(&self) -> OwnedHttpEvent {
        match *self {
            HttpEvent::Request(m) => OwnedHttpEvent::Request(m.clone()),
            HttpEvent::Unanswered(m) => OwnedHttpEvent::Unanswered(m.clone()),
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
