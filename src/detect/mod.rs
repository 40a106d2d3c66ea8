//! Protocol detection by content, per connection direction. Ports are only
//! hints: WeChat runs plain HTTP and MMTLS on 8080 and MMTLS on 80 alike.

use crate::proto::{longlink, mmtls};

/// Bytes looked at, at most.
pub const SNIFF_LEN: usize = 16;

/// What a direction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plaintext long-link frames (16-byte header).
    Longlink,
    /// MMTLS records.
    Mmtls,
    /// HTTP/1.x request or response.
    Http,
    /// Something else.
    Unknown,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Longlink => "longlink",
            Protocol::Mmtls => "mmtls",
            Protocol::Http => "http",
            Protocol::Unknown => "unknown",
        }
    }
}

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

fn is_http(b: &[u8]) -> Option<bool> {
    let starts = |p: &[u8]| {
        let n = p.len().min(b.len());
        b[..n] == p[..n]
    };
    let full = |p: &[u8]| b.len() >= p.len() && &b[..p.len()] == p;
    if METHODS.iter().any(|m| full(m)) || full(b"HTTP/1.") {
        return Some(true);
    }
    if METHODS.iter().any(|m| starts(m)) || starts(b"HTTP/1.") {
        return None; // could still be
    }
    Some(false)
}

/// Classifies the first bytes of a direction. `None`: not enough bytes yet
/// to tell (call again with more, or with `complete` when the direction
/// ended).
pub fn detect(first: &[u8], complete: bool) -> Option<Protocol> {
    if first.is_empty() {
        return complete.then_some(Protocol::Unknown);
    }
    match is_http(first) {
        Some(true) => return Some(Protocol::Http),
        None if !complete => return None,
        _ => {}
    }
    if first.len() >= mmtls::HEADER_LEN {
        if mmtls::looks_like_record(first) {
            return Some(Protocol::Mmtls);
        }
    } else if !complete {
        return None;
    }
    if first.len() >= longlink::HEADER_LEN {
        if longlink::looks_like_frame(first) {
            return Some(Protocol::Longlink);
        }
    } else if !complete {
        return None;
    }
    Some(Protocol::Unknown)
}

/// A short hex preview of unknown bytes.
pub fn preview(first: &[u8]) -> String {
    hex::encode(&first[..first.len().min(SNIFF_LEN)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{IDENTIFY, SEQ_IDENTIFY};

    #[test]
    fn by_content() {
        let ll = longlink::Header::new(IDENTIFY, SEQ_IDENTIFY, 10).emit();
        assert_eq!(detect(&ll, false), Some(Protocol::Longlink));
        assert_eq!(
            detect(
                &[0x16, 0xf1, 0x04, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                false
            ),
            Some(Protocol::Mmtls)
        );
        assert_eq!(
            detect(b"POST /mmtls/0a1b2c3d HTTP/1.1\r\n", false),
            Some(Protocol::Http)
        );
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n", false), Some(Protocol::Http));
        assert_eq!(
            detect(b"SSH-2.0-OpenSSH_9.6\r\n", false),
            Some(Protocol::Unknown)
        );
    }

    #[test]
    fn waits_for_enough_bytes() {
        assert_eq!(detect(b"PO", false), None);
        assert_eq!(detect(b"PO", true), Some(Protocol::Unknown));
        assert_eq!(detect(&[0x17, 0xf1], false), None);
        assert_eq!(detect(&[0, 0, 0, 0x20, 0, 0x10], false), None);
        assert_eq!(detect(b"", true), Some(Protocol::Unknown));
        // 7-byte MMTLS alert as seen in the real capture (conn 5).
        assert_eq!(
            detect(&[0x15, 0xf1, 0x04, 0x00, 0x02, 0x73, 0x02], true),
            Some(Protocol::Mmtls)
        );
    }
}
