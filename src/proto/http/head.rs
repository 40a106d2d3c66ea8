//! Message heads: the start line and header fields, parsed with httparse.

use super::message::{HttpMessage, Limits, Parse, ParseError};
use super::{strip_cr, trim_ows, Message, Start};
use crate::capture::Timestamp;
use crate::flow::Direction;

/// A parsed head.
#[derive(Debug)]
pub(super) struct Parsed {
    start: Start,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

pub(super) fn new_message(
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
pub(super) fn find_head_end(d: &[u8], from: usize) -> Result<usize, usize> {
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

/// Which start line a head may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    /// A response when it starts with `HTTP/`, else a request.
    Either,
}

/// httparse's rules: strict (what the server and the clients accept) or
/// lenient (what the analyzer takes from captured traffic).
fn parser(lenient: bool) -> httparse::ParserConfig {
    if lenient {
        parser_config()
    } else {
        httparse::ParserConfig::default()
    }
}

/// The one head parser: the start line and header fields at the start of
/// `buf`, with httparse. Complete: the message with an empty body (its
/// `body_offset` is the head's length) and the head's length.
pub fn parse<'b>(buf: &'b [u8], kind: Kind, limits: &Limits) -> Parse<HttpMessage<'b>> {
    let mut hdrs = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let cfg = parser(limits.lenient);
    let response = match kind {
        Kind::Request => false,
        Kind::Response => true,
        Kind::Either => buf.starts_with(b"HTTP/"),
    };
    let fields = |h: &[httparse::Header<'b>]| {
        h.iter()
            .map(|h| (h.name, h.value))
            .collect::<Vec<(&'b str, &'b [u8])>>()
    };
    let (status, start, version, headers) = if response {
        let mut r = httparse::Response::new(&mut hdrs);
        let st = cfg.parse_response(&mut r, buf);
        let start = (None, None, r.code, r.reason);
        (st, start, r.version, fields(r.headers))
    } else {
        let mut r = httparse::Request::new(&mut hdrs);
        let st = cfg.parse_request(&mut r, buf);
        (
            st,
            (r.method, r.path, None, None),
            r.version,
            fields(r.headers),
        )
    };
    let (method, path, code, reason) = start;
    let msg = HttpMessage {
        method,
        path,
        status: code,
        reason,
        version: version.unwrap_or(1),
        headers,
        ..HttpMessage::default()
    };
    match status {
        // A head is capped whole, however it arrived (in one read or a
        // byte at a time).
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            Parse::Invalid(ParseError::HeadTooLong {
                cap: limits.max_head,
            })
        }
        Ok(httparse::Status::Complete(n)) => Parse::Complete(
            HttpMessage {
                body_offset: n,
                ..msg
            },
            n,
        ),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Parse::Invalid(ParseError::HeadTooLong {
                cap: limits.max_head,
            })
        }
        Ok(httparse::Status::Partial) => Parse::Incomplete,
        Err(httparse::Error::TooManyHeaders) => {
            Parse::Invalid(ParseError::TooManyHeaders(limits.max_headers))
        }
        Err(e) => Parse::Invalid(ParseError::Head(e)),
    }
}

/// Parses a complete head (start line to the empty line), leniently.
pub(super) fn parse_head(head: &[u8]) -> Option<Parsed> {
    let limits = Limits {
        max_head: usize::MAX,
        max_headers: head.iter().filter(|&&b| b == b'\n').count().max(1),
        max_body: 0,
        lenient: true,
    };
    let Parse::Complete(m, _) = parse(head, Kind::Either, &limits) else {
        return None;
    };
    let start = match (m.method, m.path, m.status) {
        (Some(method), Some(path), _) => Start::Request {
            method: method.to_string(),
            path: path.to_string(),
        },
        (_, _, Some(status)) => Start::Response {
            status,
            reason: m.reason.unwrap_or("").to_string(),
        },
        _ => return None,
    };
    Some(Parsed {
        start,
        version: m.version,
        headers: m
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
    })
}

/// What parses of a cut head: its complete lines, or failing that the
/// start line alone.
pub(super) fn parse_partial_head(head: &[u8]) -> Option<Parsed> {
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
pub(super) fn parse_start_line(head: &[u8]) -> Option<Parsed> {
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
pub(super) fn parse_field(line: &[u8]) -> Option<(String, Vec<u8>)> {
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
