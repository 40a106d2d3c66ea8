//! WeChat short links: one HTTP round trip, `POST /mmtls/<8 hex>` whose
//! body (and the response body) is a sequence of MMTLS records; the
//! decrypted early-data record holds
//! `u32 total | u16 uri len | uri | u16 host len | host | u32 body len | body`
//! with `total` = plaintext length - 4 and `body` a business packet.
//!
//! The HTTP around it is read by the shared codec,
//! [`crate::proto::http::message`].

use serde::Serialize;
use thiserror::Error;

use crate::proto::http::HttpMessage;

/// Path prefix of a short-link request.
pub const MMTLS_PATH_PREFIX: &str = "/mmtls/";

/// `/mmtls/` followed by exactly 8 hex digits.
pub fn is_mmtls_path(path: &str) -> bool {
    path.strip_prefix(MMTLS_PATH_PREFIX)
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `POST /mmtls/<8 hex>`.
pub fn is_short_link_request(m: &HttpMessage<'_>) -> bool {
    m.method == Some("POST") && m.path.is_some_and(is_mmtls_path)
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
    fn mmtls_paths() {
        assert!(!is_mmtls_path("/mmtls/2a9b126"));
        assert!(!is_mmtls_path("/mmtls/2a9b126g"));
        assert!(is_mmtls_path("/mmtls/0FC04BCD"));
    }

    #[test]
    fn every_truncated_prefix() {
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
            fn arbitrary_input_never_panics(data in vec(any::<u8>(), 0..600)) {
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
