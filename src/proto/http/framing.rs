//! How a message's body is delimited: Content-Length, chunked (with the
//! chunk-size line parser) or the end of the connection.

use super::{strip_cr, trim_ows, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
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
pub(super) enum Framing {
    /// Content-Length: bytes left (> 0).
    Length(u64),
    Chunked(Chunk),
    /// To the end of the connection.
    Close,
}

/// `1a;ext=1` (CR already stripped or not): the size.
pub(super) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
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
pub(super) fn transfer_encoding<N: AsRef<str>, V: AsRef<[u8]>>(headers: &[(N, V)]) -> (bool, bool) {
    let mut present = false;
    let mut last: Option<&[u8]> = None;
    for (n, v) in headers {
        let v = v.as_ref();
        if n.as_ref().eq_ignore_ascii_case("transfer-encoding") {
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
pub(super) fn content_length<N: AsRef<str>, V: AsRef<[u8]>>(
    headers: &[(N, V)],
) -> Result<Option<u64>, String> {
    let mut val = None;
    for (n, v) in headers {
        let v = v.as_ref();
        if !n.as_ref().eq_ignore_ascii_case("content-length") {
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

/// A Transfer-Encoding decides (Content-Length then ignored, with a
/// problem noted): whether it ends in chunked (then `msg.chunked`). None:
/// no Transfer-Encoding.
fn transfer_chunked(msg: &mut Message) -> Option<bool> {
    let (te, chunked) = transfer_encoding(&msg.headers);
    if !te {
        return None;
    }
    if content_length(&msg.headers) != Ok(None) {
        msg.problems.push(
            "both Content-Length and Transfer-Encoding sent: Content-Length ignored".to_string(),
        );
    }
    msg.chunked = chunked;
    Some(chunked)
}

/// How a request's body is delimited; None: no body.
pub(super) fn request_framing(msg: &mut Message) -> Option<Framing> {
    let cl = match transfer_chunked(msg) {
        Some(true) => return Some(Framing::Chunked(Chunk::Size)),
        Some(false) => {
            msg.problems.push(
                "Transfer-Encoding without chunked in a request: no body assumed".to_string(),
            );
            return None;
        }
        None => content_length(&msg.headers),
    };
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

/// How a response's body is delimited; None: no body. `method`: that of
/// the request it answers, when known.
pub(super) fn response_framing(
    msg: &mut Message,
    status: u16,
    method: Option<&str>,
) -> Option<Framing> {
    if method == Some("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method == Some("CONNECT") && (200..300).contains(&status))
    {
        return None;
    }
    let cl = match transfer_chunked(msg) {
        Some(true) => return Some(Framing::Chunked(Chunk::Size)),
        Some(false) => return Some(Framing::Close),
        None => content_length(&msg.headers),
    };
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
