//! Message heads: the start line and header fields, parsed with httparse.

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

pub(super) fn parser_config() -> httparse::ParserConfig {
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
pub(super) fn parse_head(head: &[u8]) -> Option<Parsed> {
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
