//! `multipart/form-data` bodies (RFC 7578 over RFC 2046 section 5.1), as
//! web WeChat and itchat send `webwxuploadmedia`: sans-IO, over a whole
//! body already in memory, parts borrowed from it.
//!
//! Hand-written on purpose: the maintained crates are stream-based and
//! async (`multer`) or unmaintained and reader-based (`multipart`), while
//! the server and the analyzer both hold the whole body (a request read
//! to its Content-Length, a reassembled capture). The part headers are
//! parsed by `httparse` (`parse_headers`); what is left here is finding the
//! delimiters (`memchr`) and reading `Content-Disposition`. It is strict:
//! a body that does not start with the delimiter (after an optional
//! preamble), a delimiter line with anything but whitespace after it, a
//! part without a `form-data` disposition naming it, or a body without
//! the closing delimiter is an error; at most `max_parts` parts.

use memchr::memmem;

/// Header fields one part may have.
const MAX_PART_HEADERS: usize = 16;
/// Longest boundary (RFC 2046: 70 characters).
const MAX_BOUNDARY: usize = 70;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart<'a> {
    /// The `name` of its Content-Disposition.
    pub name: String,
    /// The `filename`, for a file.
    pub filename: Option<String>,
    /// Its Content-Type, if given.
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// Why a body is not a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("multipart/form-data: {0}")]
pub struct FormError(pub String);

fn bad(why: impl Into<String>) -> FormError {
    FormError(why.into())
}

/// The boundary of a `multipart/form-data` Content-Type (quoted or not);
/// `None` for another type or no usable boundary.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let rest = content_type.split_once(';')?.1;
    let b = param(rest, "boundary")?;
    (!b.is_empty() && b.len() <= MAX_BOUNDARY && !b.contains(['\r', '\n'])).then_some(b)
}

/// The value of parameter `key` in `; k=v; k2="v 2"` (quoted strings
/// with backslash escapes; names compared without case).
fn param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find(['=', ';'])?;
        if rest.as_bytes()[eq] == b';' {
            rest = &rest[eq..];
            continue;
        }
        let name = rest[..eq].trim();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &q[end?..];
            v
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let v = rest[..end].trim().to_owned();
            rest = &rest[end..];
            v
        };
        if name.eq_ignore_ascii_case(key) {
            return Some(value);
        }
    }
}

/// The parts of a `multipart/form-data` body with `boundary`.
pub fn parse<'a>(
    body: &'a [u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<FormPart<'a>>, FormError> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(bad("the boundary must be 1 to 70 characters"));
    }
    let dash = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}");
    // The first delimiter: at the start, or after a preamble line.
    let mut pos = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        memmem::find(body, delim.as_bytes()).ok_or_else(|| bad("no delimiter line (--BOUNDARY)"))?
            + delim.len()
    };
    let finder = memmem::Finder::new(delim.as_bytes());
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the end of the delimiter line.
        let pad = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if !rest[pad..].starts_with(b"\r\n") {
            return Err(bad("a delimiter line goes on past the boundary"));
        }
        pos += pad + 2;
        if parts.len() == max_parts {
            return Err(bad(format!("more than {max_parts} parts")));
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
        let (used, headers) = match httparse::parse_headers(&body[pos..], &mut headers) {
            Ok(httparse::Status::Complete((used, h))) => (used, h),
            Ok(httparse::Status::Partial) => return Err(bad("a part's headers are cut short")),
            Err(e) => return Err(bad(format!("a part's headers: {e}"))),
        };
        let field = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let disposition = field("content-disposition")
            .ok_or_else(|| bad("a part without Content-Disposition"))?;
        let (kind, params) = disposition
            .split_once(';')
            .unwrap_or((disposition.as_str(), ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(bad(format!(
                "a part's disposition is {:?}, not form-data",
                kind.trim()
            )));
        }
        let name = param(params, "name").ok_or_else(|| bad("a part without a name"))?;
        let start = pos + used;
        let end = start
            + finder
                .find(&body[start..])
                .ok_or_else(|| bad("no closing delimiter (--BOUNDARY--)"))?;
        parts.push(FormPart {
            name,
            filename: param(params, "filename"),
            content_type: field("content-type"),
            data: &body[start..end],
        });
        pos = end + delim.len();
    }
}

/// The part named `name`.
pub fn field<'p, 'a>(parts: &'p [FormPart<'a>], name: &str) -> Option<&'p FormPart<'a>> {
    parts.iter().find(|p| p.name == name)
}

/// Encodes a form (the tests' and the client's side): `(name, filename,
/// data)` parts.
pub fn encode(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, data) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n").as_bytes(),
        );
        if filename.is_some() {
            out.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A body as Python's requests (urllib3) encodes itchat's upload.
    const ITCHAT: &[u8] =
        b"--b0c8\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nWU_FILE_0\r\n\
--b0c8\r\nContent-Disposition: form-data; name=\"uploadmediarequest\"\r\n\r\n{\"UploadType\":2}\r\n\
--b0c8\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"a.png\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x89PNG\r\n--b0\r\n\r\n--b0c8--\r\n";

    #[test]
    fn itchat_form() {
        let parts = parse(ITCHAT, "b0c8", 16).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(field(&parts, "id").unwrap().data, b"WU_FILE_0");
        assert_eq!(
            field(&parts, "uploadmediarequest").unwrap().data,
            b"{\"UploadType\":2}"
        );
        let f = field(&parts, "filename").unwrap();
        assert_eq!(f.filename.as_deref(), Some("a.png"));
        assert_eq!(f.content_type.as_deref(), Some("application/octet-stream"));
        // CRLF and a near-delimiter inside the data are data.
        assert_eq!(f.data, b"\x89PNG\r\n--b0\r\n");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=x; boundary=\"a b;c\"").as_deref(),
            Some("a b;c")
        );
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
    }

    #[test]
    fn bad_forms() {
        let cut = &ITCHAT[..ITCHAT.len() - 10];
        assert!(parse(cut, "b0c8", 16).is_err(), "no closing delimiter");
        assert!(parse(ITCHAT, "zz", 16).is_err(), "another boundary");
        assert!(parse(ITCHAT, "b0c8", 2).is_err(), "over the part cap");
        let no_name = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--";
        assert!(parse(no_name, "b", 4).is_err());
        let attachment = b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--b--";
        assert!(parse(attachment, "b", 4).is_err());
        let trailing = b"--bx\r\nContent-Disposition: form-data; name=x\r\n\r\nx\r\n--b--";
        assert!(parse(trailing, "b", 4).is_err());
        // A preamble before the first delimiter is allowed.
        let pre = b"junk\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--b--";
        assert_eq!(parse(pre, "b", 4).unwrap()[0].data, b"v");
    }

    proptest! {
        /// What `encode` makes parses back to the same parts (data that
        /// holds no delimiter: a boundary random enough not to be in it).
        #[test]
        fn round_trip(parts in proptest::collection::vec(
            ("[a-z_]{1,12}", proptest::option::of("[a-z.]{1,12}"),
             proptest::collection::vec(any::<u8>(), 0..300)), 0..6)) {
            let boundary = "----syncscope7f3a9c2e";
            let refs: Vec<(&str, Option<&str>, &[u8])> = parts
                .iter()
                .map(|(n, f, d)| (n.as_str(), f.as_deref(), d.as_slice()))
                .collect();
            let body = encode(boundary, &refs);
            let got = parse(&body, boundary, 8).unwrap();
            prop_assert_eq!(got.len(), parts.len());
            for (g, (n, f, d)) in got.iter().zip(&parts) {
                prop_assert_eq!(&g.name, n);
                prop_assert_eq!(&g.filename, f);
                prop_assert_eq!(g.data, d.as_slice());
            }
        }

        /// Any bytes: an answer, never a panic; parts lie inside the body.
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..400),
                        prefix in proptest::collection::vec(
                            prop_oneof![Just(b"--b\r\n".to_vec()),
                                        Just(b"Content-Disposition: form-data; name=\"a\"\r\n\r\n".to_vec()),
                                        Just(b"\r\n--b".to_vec()), Just(b"--".to_vec())], 0..8)) {
            let mut all: Vec<u8> = prefix.concat();
            all.extend_from_slice(&body);
            if let Ok(parts) = parse(&all, "b", 8) {
                prop_assert!(parts.len() <= 8);
                for p in parts {
                    prop_assert!(p.data.len() <= all.len());
                }
            }
        }
    }
}
