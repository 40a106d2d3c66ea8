//! A whole message whose body the reader takes as its own bytes, chunked
//! bodies de-chunked ([`parse_owned`]): what the web client and the web
//! replay read answers with (a real gateway behind nginx answers chunked).
//! Chunk extensions and trailer fields are read and dropped; sizes and the
//! de-chunked length are capped by [`Limits::max_body`].

use super::framing::{parse_chunk_size, transfer_encoding};
use super::message::{parse, parse_head, HttpMessage, Kind, Limits, Parse, ParseError};

/// One line (without its LF; a CR before it is kept for the caller to
/// strip) at the start of `buf` and the bytes it took; None while the line
/// is not complete.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let n = buf.iter().position(|&b| b == b'\n')?;
    Some((&buf[..n], n + 1))
}

/// A chunked body at the start of `buf`: the data and the bytes it took
/// (trailers included); `Ok(None)` while incomplete.
pub fn dechunk(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, ParseError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some((size_line, n)) = line(&buf[at..]) else {
            return Ok(None);
        };
        let bad = || {
            ParseError::TransferEncoding(format!(
                "chunked, with a bad chunk-size line {:?}",
                String::from_utf8_lossy(&size_line[..size_line.len().min(32)])
            ))
        };
        let size = parse_chunk_size(size_line).ok_or_else(bad)?;
        at += n;
        if size == 0 {
            // Trailer fields up to an empty line.
            loop {
                let Some((l, n)) = line(&buf[at..]) else {
                    return Ok(None);
                };
                at += n;
                if l.is_empty() || l == b"\r" {
                    return Ok(Some((body, at)));
                }
            }
        }
        let total = (body.len() as u64).saturating_add(size);
        if usize::try_from(total).map_or(true, |t| t > limits.max_body) {
            return Err(ParseError::BodyTooLong {
                len: total,
                cap: limits.max_body,
            });
        }
        let size = size as usize;
        if buf.len() - at < size {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size;
        match line(&buf[at..]) {
            None => return Ok(None),
            Some((l, n)) if l.is_empty() || l == b"\r" => at += n,
            Some(_) => {
                return Err(ParseError::TransferEncoding(
                    "chunked, with chunk data longer than its size".into(),
                ))
            }
        }
    }
}

/// Like [`parse`], with the body as owned bytes: a body whose last
/// Transfer-Encoding is chunked comes de-chunked (the message's own `body`
/// is then empty); any other Transfer-Encoding is refused as `parse`
/// refuses it.
pub fn parse_owned<'b>(
    buf: &'b [u8],
    kind: Kind,
    limits: &Limits,
    eof: bool,
) -> Parse<(HttpMessage<'b>, Vec<u8>)> {
    let (msg, head_len) = match parse_head(buf, kind, limits) {
        Parse::Complete(m, n) => (m, n),
        Parse::Incomplete => return Parse::Incomplete,
        Parse::Invalid(e) => return Parse::Invalid(e),
    };
    if transfer_encoding(&msg.headers) != (true, true) {
        return match parse(buf, kind, limits, eof) {
            Parse::Complete(m, n) => {
                let body = m.body.to_vec();
                Parse::Complete((m, body), n)
            }
            Parse::Incomplete => Parse::Incomplete,
            Parse::Invalid(e) => Parse::Invalid(e),
        };
    }
    match dechunk(&buf[head_len..], limits) {
        Ok(Some((body, used))) => Parse::Complete(
            (
                HttpMessage {
                    complete: true,
                    ..msg
                },
                body,
            ),
            head_len + used,
        ),
        // The connection ended inside the chunks: what came, marked cut.
        Ok(None) if eof => Parse::Complete(
            (
                HttpMessage {
                    complete: false,
                    ..msg
                },
                Vec::new(),
            ),
            buf.len(),
        ),
        Ok(None) => Parse::Incomplete,
        Err(e) => Parse::Invalid(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1";

    #[test]
    fn a_chunked_body_comes_whole_and_every_prefix_is_incomplete() {
        let whole = WIRE.len() - b"HTTP/1.1".len();
        for n in 0..whole {
            assert_eq!(
                parse_owned(&WIRE[..n], Kind::Response, &Limits::default(), false),
                Parse::Incomplete,
                "prefix {n}"
            );
        }
        let Parse::Complete((m, body), used) =
            parse_owned(WIRE, Kind::Response, &Limits::default(), false)
        else {
            panic!("complete")
        };
        assert_eq!(used, whole);
        assert_eq!(body, b"hello, world");
        assert_eq!((m.status, m.complete), (Some(200), true));
    }

    #[test]
    fn a_length_body_is_copied_and_bad_chunks_are_refused() {
        let Parse::Complete((_, body), used) = parse_owned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokx",
            Kind::Response,
            &Limits::default(),
            false,
        ) else {
            panic!("complete")
        };
        assert_eq!((body.as_slice(), used), (&b"ok"[..], 40));
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            parse_owned(bad, Kind::Response, &Limits::default(), false),
            Parse::Invalid(ParseError::TransferEncoding(_))
        ));
        let long = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n";
        assert!(matches!(
            parse_owned(long, Kind::Response, &Limits::default(), false),
            Parse::Invalid(ParseError::TransferEncoding(_))
        ));
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert!(matches!(
            parse_owned(gzip, Kind::Response, &Limits::default(), false),
            Parse::Invalid(ParseError::TransferEncoding(_))
        ));
        let capped = Limits {
            max_body: 4,
            ..Limits::default()
        };
        assert!(matches!(
            parse_owned(WIRE, Kind::Response, &capped, false),
            Parse::Invalid(ParseError::BodyTooLong { .. })
        ));
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe";
        let Parse::Complete((m, _), n) = parse_owned(cut, Kind::Response, &Limits::default(), true)
        else {
            panic!("cut at eof")
        };
        assert!(!m.complete);
        assert_eq!(n, cut.len());
    }
}
