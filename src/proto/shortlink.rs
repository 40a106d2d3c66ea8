//! WeChat short links: one HTTP round trip, `POST /mmtls/<8 hex>` whose
//! body (and the response body) is a sequence of MMTLS records; the
//! decrypted early-data record holds
//! `u32 total | u16 uri len | uri | u16 host len | host | u32 body len | body`
//! with `total` = plaintext length - 4 and `body` a business packet.
//!
//! The HTTP splitter here is deliberately small (request/status line and
//! headers via httparse, body by Content-Length, or to the end of the
//! stream for a response without one); a full HTTP layer lives elsewhere.

use serde::Serialize;
use thiserror::Error;

/// Cap on header lines per message.
pub const MAX_HEADERS: usize = 64;
/// Path prefix of a short-link request.
pub const MMTLS_PATH_PREFIX: &str = "/mmtls/";

/// HTTP splitting errors; offsets are from the start of the buffer given
/// to [`split_http`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("byte {offset}: invalid HTTP message head: {reason}")]
    BadHead { offset: usize, reason: String },
    #[error("byte {offset}: Content-Length {value:?} is not a number")]
    BadContentLength { offset: usize, value: String },
    #[error(
        "byte {offset}: chunked transfer encoding is not supported by the short-link splitter"
    )]
    Chunked { offset: usize },
}

/// One HTTP/1.x message, borrowed from the buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpMessage<'a> {
    /// Offset of the start line.
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
    /// False when the buffer ends before the announced body does.
    pub complete: bool,
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

    /// `POST /mmtls/<8 hex>`.
    pub fn is_short_link_request(&self) -> bool {
        self.method == Some("POST") && self.path.is_some_and(is_mmtls_path)
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
}

/// `/mmtls/` followed by exactly 8 hex digits.
pub fn is_mmtls_path(path: &str) -> bool {
    path.strip_prefix(MMTLS_PATH_PREFIX)
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Result of parsing one message head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    Complete(T),
    /// The head is not complete yet.
    Incomplete,
}

/// Parses one message starting at `at`. A message whose body is cut off
/// by the end of the buffer is returned with `complete: false`.
pub fn parse_message(buf: &[u8], at: usize) -> Result<Parse<HttpMessage<'_>>, HttpError> {
    let b = buf.get(at..).unwrap_or(&[]);
    let bad = |reason: String| HttpError::BadHead { offset: at, reason };
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let is_response = b.starts_with(b"HTTP/");
    let (head_len, method, path, status, reason, version, headers) = if is_response {
        let mut r = httparse::Response::new(&mut hdrs);
        match r.parse(b).map_err(|e| bad(e.to_string()))? {
            httparse::Status::Partial => return Ok(Parse::Incomplete),
            httparse::Status::Complete(n) => (
                n,
                None,
                None,
                r.code,
                r.reason,
                r.version.unwrap_or(1),
                r.headers
                    .iter()
                    .map(|h| (h.name, h.value))
                    .collect::<Vec<_>>(),
            ),
        }
    } else {
        let mut r = httparse::Request::new(&mut hdrs);
        match r.parse(b).map_err(|e| bad(e.to_string()))? {
            httparse::Status::Partial => return Ok(Parse::Incomplete),
            httparse::Status::Complete(n) => (
                n,
                r.method,
                r.path,
                None,
                None,
                r.version.unwrap_or(1),
                r.headers
                    .iter()
                    .map(|h| (h.name, h.value))
                    .collect::<Vec<_>>(),
            ),
        }
    };
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    if find("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"))
    {
        return Err(HttpError::Chunked { offset: at });
    }
    let body_offset = at + head_len;
    let avail = buf.len() - body_offset.min(buf.len());
    let want = match find("content-length") {
        Some(v) => {
            let s = std::str::from_utf8(v).unwrap_or("").trim();
            Some(
                s.parse::<usize>()
                    .map_err(|_| HttpError::BadContentLength {
                        offset: at,
                        value: String::from_utf8_lossy(v).into_owned(),
                    })?,
            )
        }
        // A response without a length runs to the end of the connection
        // (unless it cannot have a body); a request has no body.
        None if is_response && !matches!(status, Some(100..=199 | 204 | 304)) => None,
        None => Some(0),
    };
    let (len, complete) = match want {
        Some(w) => (w.min(avail), w <= avail),
        None => (avail, true),
    };
    let body = buf.get(body_offset..body_offset + len).unwrap_or(&[]);
    Ok(Parse::Complete(HttpMessage {
        start_offset: at,
        method,
        path,
        status,
        reason,
        version,
        headers,
        body_offset,
        body,
        complete,
    }))
}

/// Splits one direction of a connection into HTTP messages. Stops at the
/// end of the buffer, after a message with a truncated body, or before a
/// head that is not complete.
pub fn split_http(bytes: &[u8]) -> Result<Vec<HttpMessage<'_>>, HttpError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_message(bytes, at)? {
            Parse::Incomplete => break,
            Parse::Complete(m) => {
                let end = m.end_offset();
                let done = !m.complete || end <= at;
                out.push(m);
                if done {
                    break;
                }
                at = end;
            }
        }
    }
    Ok(out)
}

/// Errors of the early-data layout; offsets are from the start of the
/// decrypted early-data plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShortLinkError {
    #[error("byte {offset}: {what} truncated, {needed} more byte(s) needed")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: usize,
    },
    #[error("byte {offset}: {what} is not UTF-8")]
    NotUtf8 { offset: usize, what: &'static str },
}

/// The decrypted early-data layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShortLinkPayload<'a> {
    /// The leading u32 (normally plaintext length - 4).
    pub total: u32,
    pub uri: &'a str,
    pub host: &'a str,
    /// Offset of the body in the plaintext.
    pub body_offset: usize,
    /// The business packet.
    #[serde(skip)]
    pub body: &'a [u8],
}

impl<'a> ShortLinkPayload<'a> {
    /// Parses the layout; returns it with the bytes consumed (any bytes
    /// after the body are not part of it).
    pub fn parse(b: &'a [u8]) -> Result<(ShortLinkPayload<'a>, usize), ShortLinkError> {
        fn take<'a>(
            b: &'a [u8],
            at: &mut usize,
            n: usize,
            what: &'static str,
        ) -> Result<&'a [u8], ShortLinkError> {
            let s = b
                .get(*at..at.saturating_add(n))
                .ok_or_else(|| ShortLinkError::Truncated {
                    offset: *at,
                    what,
                    needed: at.saturating_add(n) - b.len(),
                })?;
            *at += n;
            Ok(s)
        }
        fn text<'a>(
            b: &'a [u8],
            at: &mut usize,
            what: &'static str,
        ) -> Result<&'a str, ShortLinkError> {
            let l = take(b, at, 2, what)?;
            let n = usize::from(u16::from_be_bytes([l[0], l[1]]));
            let start = *at;
            let s = take(b, at, n, what)?;
            std::str::from_utf8(s).map_err(|_| ShortLinkError::NotUtf8 {
                offset: start,
                what,
            })
        }
        let mut at = 0;
        let t = take(b, &mut at, 4, "total length")?;
        let total = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        let uri = text(b, &mut at, "uri")?;
        let host = text(b, &mut at, "host")?;
        let l = take(b, &mut at, 4, "body length")?;
        let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        let body_offset = at;
        let body = take(b, &mut at, n, "body")?;
        Ok((
            ShortLinkPayload {
                total,
                uri,
                host,
                body_offset,
                body,
            },
            at,
        ))
    }

    /// Whether `total` equals the plaintext length minus 4.
    pub fn total_matches(&self, plaintext_len: usize) -> bool {
        self.total as usize + 4 == plaintext_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] =
        b"POST /mmtls/2a9b1264 HTTP/1.1\r\nAccept: */*\r\nCache-Control: no-cache\r\n\
Connection: Keep-Alive\r\nContent-Length: 8\r\nContent-Type: application/octet-stream\r\n\
Host: sgshort.wechat.com\r\nUpgrade: mmtls\r\nUser-Agent: MicroMessenger Client\r\n\r\n\
\x19\xf1\x04\x00\x03abc";
    const RESP: &[u8] =
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
Content-Length: 4\r\n\r\nwxyz";

    fn early_data() -> Vec<u8> {
        let uri = b"/cgi-bin/micromsg-bin/newsync";
        let host = b"sgshort.wechat.com";
        let body = [0xbf, 1, 2, 3];
        let mut p = Vec::new();
        p.extend_from_slice(&(uri.len() as u16).to_be_bytes());
        p.extend_from_slice(uri);
        p.extend_from_slice(&(host.len() as u16).to_be_bytes());
        p.extend_from_slice(host);
        p.extend_from_slice(&(body.len() as u32).to_be_bytes());
        p.extend_from_slice(&body);
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&p);
        out
    }

    #[test]
    fn request_and_response() {
        let m = split_http(REQ).unwrap();
        assert_eq!(m.len(), 1);
        let r = &m[0];
        assert_eq!(r.method, Some("POST"));
        assert_eq!(r.path, Some("/mmtls/2a9b1264"));
        assert!(r.is_short_link_request());
        assert_eq!(r.header_str("host"), Some("sgshort.wechat.com"));
        assert_eq!(r.body, b"\x19\xf1\x04\x00\x03abc");
        assert_eq!(r.body_offset, REQ.len() - 8);
        assert!(r.complete);
        assert_eq!(r.start_line(), "POST /mmtls/2a9b1264 HTTP/1.1");
        let m = split_http(RESP).unwrap();
        assert_eq!(m[0].status, Some(200));
        assert_eq!(m[0].start_line(), "HTTP/1.1 200 OK");
        assert_eq!(m[0].body, b"wxyz");
        // Two messages back to back, then a third without a length.
        let mut two = REQ.to_vec();
        two.extend_from_slice(REQ);
        let m = split_http(&two).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].start_offset, REQ.len());
        let m = split_http(b"HTTP/1.0 200 OK\r\n\r\nto the end").unwrap();
        assert_eq!(m[0].body, b"to the end");
        assert_eq!(m[0].version, 0);
    }

    #[test]
    fn http_errors() {
        assert!(matches!(
            split_http(b"\x19\xf1\x04\x00\x03abc"),
            Err(HttpError::BadHead { offset: 0, .. })
        ));
        assert!(matches!(
            split_http(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Err(HttpError::BadContentLength { .. })
        ));
        assert!(matches!(
            split_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::Chunked { offset: 0 })
        ));
        assert!(!is_mmtls_path("/mmtls/2a9b126"));
        assert!(!is_mmtls_path("/mmtls/2a9b126g"));
        assert!(is_mmtls_path("/mmtls/0FC04BCD"));
    }

    #[test]
    fn every_truncated_prefix() {
        for src in [REQ, RESP] {
            for n in 0..src.len() {
                let m = split_http(&src[..n]).unwrap();
                if let Some(m) = m.first() {
                    assert!(!m.complete || m.end_offset() == n);
                    assert!(m.end_offset() <= n);
                }
            }
        }
        let e = early_data();
        for n in 0..e.len() {
            assert!(ShortLinkPayload::parse(&e[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn early_data_layout() {
        let e = early_data();
        let (p, used) = ShortLinkPayload::parse(&e).unwrap();
        assert_eq!(used, e.len());
        assert_eq!(p.uri, "/cgi-bin/micromsg-bin/newsync");
        assert_eq!(p.host, "sgshort.wechat.com");
        assert_eq!(p.body, &[0xbf, 1, 2, 3]);
        assert!(p.total_matches(e.len()));
        let mut bad = e.clone();
        bad[6] = 0xff;
        assert!(matches!(
            ShortLinkPayload::parse(&bad),
            Err(ShortLinkError::NotUtf8 {
                offset: 6,
                what: "uri"
            })
        ));
        assert_eq!(
            ShortLinkPayload::parse(&[0, 0, 0, 9, 0, 5, b'a']),
            Err(ShortLinkError::Truncated {
                offset: 6,
                what: "uri",
                needed: 4
            })
        );
    }

    mod props {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn arbitrary_input_never_panics(data in vec(any::<u8>(), 0..600), head in 0usize..3) {
                let mut b = [&b"POST /mmtls/0a0b0c0d HTTP/1.1\r\nContent-Length: 9\r\n\r\n"[..],
                             b"HTTP/1.1 200 OK\r\n\r\n", b""][head].to_vec();
                b.extend_from_slice(&data);
                if let Ok(m) = split_http(&b) {
                    for m in m {
                        prop_assert!(m.end_offset() <= b.len());
                    }
                }
                if let Ok((p, used)) = ShortLinkPayload::parse(&data) {
                    prop_assert!(used <= data.len());
                    prop_assert_eq!(p.body_offset + p.body.len(), used);
                }
            }

            #[test]
            fn early_data_round_trips(uri in "[ -~]{0,80}", host in "[a-z.]{0,30}", body in vec(any::<u8>(), 0..200)) {
                let mut p = Vec::new();
                p.extend_from_slice(&(uri.len() as u16).to_be_bytes());
                p.extend_from_slice(uri.as_bytes());
                p.extend_from_slice(&(host.len() as u16).to_be_bytes());
                p.extend_from_slice(host.as_bytes());
                p.extend_from_slice(&(body.len() as u32).to_be_bytes());
                p.extend_from_slice(&body);
                let mut e = (p.len() as u32).to_be_bytes().to_vec();
                e.extend_from_slice(&p);
                let (got, used) = ShortLinkPayload::parse(&e).unwrap();
                prop_assert_eq!(used, e.len());
                prop_assert_eq!(got.uri, uri.as_str());
                prop_assert_eq!(got.host, host.as_str());
                prop_assert_eq!(got.body, &body[..]);
                prop_assert!(got.total_matches(e.len()));
            }
        }
    }
}
