//! One complete message from a buffer, sans-IO, and the encoders: the HTTP
//! codec the server, the web client and the short-link tools share (the
//! analyzer's incremental [`Conn`](super::Conn) uses the same head parser
//! and framing rules).
//!
//! [`parse`] looks at the start of a buffer and says
//! [`Complete`](Parse::Complete) (the message and the bytes it took),
//! [`Incomplete`](Parse::Incomplete) (read more) or
//! [`Invalid`](Parse::Invalid) (why). Bodies are delimited by
//! Content-Length, or for a response without one by the end of the
//! connection (the caller says when the buffer holds everything: `eof`);
//! a Transfer-Encoding is refused. Heads, header counts and bodies are
//! capped ([`Limits`]).

use serde::Serialize;
use thiserror::Error;

use super::framing::{content_length, transfer_encoding};
pub use super::head::{parse as parse_head, Kind};

/// Header fields taken per message by default; more is an error.
pub const MAX_HEADERS: usize = 64;

/// Caps of one parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A head (start line to the empty line, included) longer than this
    /// is an error, complete or not.
    pub max_head: usize,
    pub max_headers: usize,
    /// A Content-Length over this is an error.
    pub max_body: usize,
    /// httparse's lenient options (the analyzer's; the server and the
    /// clients are strict).
    pub lenient: bool,
}

impl Default for Limits {
    /// No cap on head or body, [`MAX_HEADERS`] fields, strict.
    fn default() -> Self {
        Limits {
            max_head: usize::MAX,
            max_headers: MAX_HEADERS,
            max_body: usize::MAX,
            lenient: false,
        }
    }
}

/// What a parse found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// The value and the bytes it took.
    Complete(T, usize),
    /// More bytes are needed.
    Incomplete,
    Invalid(ParseError),
}

/// Why bytes are not a message this codec reads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("invalid message head: {0}")]
    Head(httparse::Error),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("head over the {cap}-byte cap")]
    HeadTooLong { cap: usize },
    #[error("Transfer-Encoding {0:?} is not supported: only Content-Length bodies are read")]
    TransferEncoding(String),
    #[error("Content-Length {0:?} is not a number")]
    BadContentLength(String),
    #[error("a body of {len} bytes is over the {cap}-byte cap")]
    BodyTooLong { len: u64, cap: usize },
}

/// One HTTP/1.x message, borrowed from the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpMessage<'a> {
    /// Offset of the start line (0 from [`parse`]; [`split`] sets it).
    pub start_offset: usize,
    /// Request method (requests only).
    pub method: Option<&'a str>,
    /// Request target (requests only).
    pub path: Option<&'a str>,
    /// Status code (responses only).
    pub status: Option<u16>,
    /// Reason phrase (responses only).
    pub reason: Option<&'a str>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    #[serde(skip)]
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body_offset: usize,
    #[serde(skip)]
    pub body: &'a [u8],
    /// False when the buffer ends (at `eof`) before the announced body does.
    pub complete: bool,
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// Content-Length (0: no body).
    Length(u64),
    /// To the end of the connection (a response without a length).
    Close,
}

impl<'a> HttpMessage<'a> {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn is_request(&self) -> bool {
        self.method.is_some()
    }

    /// `METHOD PATH HTTP/1.x` or `HTTP/1.x STATUS REASON`.
    pub fn start_line(&self) -> String {
        match (self.method, self.path, self.status) {
            (Some(m), Some(p), _) => format!("{m} {p} HTTP/1.{}", self.version),
            (_, _, Some(s)) => format!("HTTP/1.{} {s} {}", self.version, self.reason.unwrap_or("")),
            _ => String::new(),
        }
    }

    /// End offset (exclusive) of the message in the buffer.
    pub fn end_offset(&self) -> usize {
        self.body_offset + self.body.len()
    }

    /// Whether the connection stays open after it: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let connection = self
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        match self.version {
            0 => connection.contains("keep-alive"),
            _ => !connection.contains("close"),
        }
    }

    /// `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.header("expect").is_some_and(|v| {
            String::from_utf8_lossy(v)
                .trim()
                .eq_ignore_ascii_case("100-continue")
        })
    }

    /// How the body is delimited (the head alone decides), its length
    /// checked against `limits.max_body`. A request without Content-Length
    /// has no body, and a response to HEAD is not told apart.
    pub fn body_len(&self, limits: &Limits) -> Result<BodyLen, ParseError> {
        if transfer_encoding(&self.headers).0 {
            let te = self.header("transfer-encoding").unwrap_or_default();
            return Err(ParseError::TransferEncoding(
                String::from_utf8_lossy(te).into_owned(),
            ));
        }
        let len = match content_length(&self.headers).map_err(ParseError::BadContentLength)? {
            Some(n) => n,
            None if self.is_request() => 0,
            None if matches!(self.status, Some(100..=199 | 204 | 304)) => 0,
            None => return Ok(BodyLen::Close),
        };
        if usize::try_from(len).map_or(true, |n| n > limits.max_body) {
            return Err(ParseError::BodyTooLong {
                len,
                cap: limits.max_body,
            });
        }
        Ok(BodyLen::Length(len))
    }
}

/// Parses one whole message (`kind`) at the start of `buf`. `eof`: the
/// buffer holds everything the connection will carry, so a response without
/// Content-Length ends with it, and a body cut by it comes out with
/// `complete: false`.
pub fn parse<'b>(buf: &'b [u8], kind: Kind, limits: &Limits, eof: bool) -> Parse<HttpMessage<'b>> {
    let (msg, head_len) = match parse_head(buf, kind, limits) {
        Parse::Complete(m, n) => (m, n),
        Parse::Incomplete => return Parse::Incomplete,
        Parse::Invalid(e) => return Parse::Invalid(e),
    };
    let avail = buf.len() - head_len;
    let (len, complete) = match msg.body_len(limits) {
        Err(e) => return Parse::Invalid(e),
        Ok(BodyLen::Length(n)) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n <= avail {
                (n, true)
            } else if eof {
                (avail, false)
            } else {
                return Parse::Incomplete;
            }
        }
        Ok(BodyLen::Close) if eof => (avail, true),
        Ok(BodyLen::Close) => return Parse::Incomplete,
    };
    let body = &buf[head_len..head_len + len];
    Parse::Complete(
        HttpMessage {
            body,
            complete,
            ..msg
        },
        head_len + len,
    )
}

/// Splits one whole direction of a connection (`eof`) into messages.
/// Stops at the end of the buffer, after a message with a cut body, or
/// before a head that is not complete.
pub fn split<'b>(bytes: &'b [u8], limits: &Limits) -> Result<Vec<HttpMessage<'b>>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse(&bytes[at..], Kind::Either, limits, true) {
            Parse::Incomplete => break,
            Parse::Invalid(e) => return Err(e),
            Parse::Complete(mut m, used) => {
                m.start_offset = at;
                m.body_offset += at;
                let done = !m.complete || used == 0;
                out.push(m);
                if done {
                    break;
                }
                at += used;
            }
        }
    }
    Ok(out)
}

/// The reason phrase this codec sends with a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// An HTTP/1.1 message: `start` line, the header fields in order, an empty
/// line, the body. Content-Length is one of `headers` when wanted.
fn encode(start: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = start.len() + body.len() + 4;
    let len = len
        + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `METHOD target HTTP/1.1`, the header fields, the body.
pub fn encode_request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    encode(&format!("{method} {target} HTTP/1.1"), headers, body)
}

/// `HTTP/1.1 status reason`, the header fields, the body.
pub fn encode_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    encode(
        &format!("HTTP/1.1 {status} {}", reason(status)),
        headers,
        body,
    )
}

#[cfg(test)]
mod tests;
