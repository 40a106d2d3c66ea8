//! Protocol detection by content, per connection direction. Ports are only
//! hints: WeChat runs plain HTTP and MMTLS on 8080 and MMTLS on 80 alike.
//!
//! [`detect`] judges the first bytes of a direction. When they are no known
//! protocol (a capture that starts mid-stream, or a few bytes of garbage),
//! [`locate`] searches the first [`SEARCH_LEN`] bytes for a resync point:
//! a chain of consistent long-link headers, a chain of MMTLS records, or an
//! HTTP request or status line; the other direction's verdict is a hint
//! (a long link answers a long link), which shortens the chain asked for.
//! Past [`SEARCH_LEN`] bytes without one, the direction is unknown.

use crate::proto::{h2, http, longlink, mmtls, tls};

/// Bytes looked at, at most, at the start of a direction.
pub const SNIFF_LEN: usize = 16;

/// Bytes of a direction searched (and held) for a resync point, at most,
/// when its first bytes are no known protocol.
pub const SEARCH_LEN: usize = 16 << 10;

/// Consistent long-link headers in a row that make a resync point, without
/// a hint and with one (the other direction is a long link).
pub const LONGLINK_CHAIN: [usize; 2] = [2, 1];
/// The same for Mars frames (20-byte header: 4 fixed bytes, and a cmd
/// range), without a hint and with one (the other direction is Mars).
pub const MARS_CHAIN: [usize; 2] = [2, 1];
/// The same for MMTLS records (their header is weaker: 3 fixed bytes).
pub const MMTLS_CHAIN: [usize; 2] = [3, 2];
/// The same for TLS records (content type, `03 0x` version, a length).
pub const TLS_CHAIN: [usize; 2] = [2, 1];

/// What [`locate`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The protocol's first frame, record or start line is at this offset.
    At(Protocol, usize),
    /// Nothing before this offset; the candidate there needs more bytes.
    /// (Nor does a header that has begun in the last 15 bytes show yet:
    /// search those again too.)
    More(usize),
    /// No resync point in the bytes (and none can start before the last
    /// few, which `More` reports).
    Nothing,
}

/// Searches `b` from `from` for the first resync point (see the module
/// doc). `complete`: no more bytes will come (the direction ended, hit a
/// gap, or [`SEARCH_LEN`] bytes are held): a chain then counts when it
/// runs exactly to the end of the bytes. `hint`: the other direction's
/// protocol.
pub fn locate(b: &[u8], from: usize, complete: bool, hint: Option<Protocol>) -> Located {
    locate_with(b, from, complete, hint, None)
}

/// [`locate`], with the client version Mars frames must carry when one is
/// known (a profile's `[mars] client_version`).
pub fn locate_with(
    b: &[u8],
    from: usize,
    complete: bool,
    hint: Option<Protocol>,
    mars_version: Option<u32>,
) -> Located {
    let ll_need = LONGLINK_CHAIN[usize::from(hint == Some(Protocol::Longlink))];
    let mm_need = MMTLS_CHAIN[usize::from(hint == Some(Protocol::Mmtls))];
    let mars_need = MARS_CHAIN[usize::from(hint == Some(Protocol::Mars))];
    let tls_need = TLS_CHAIN[usize::from(hint == Some(Protocol::Tls))];
    let mars = longlink::Variant::Mars {
        client_version: mars_version,
    };
    let http = http::first_start_line(b, from, !complete);
    for p in from..b.len() {
        if let Some((q, sure)) = http {
            if q == p {
                return if sure {
                    Located::At(Protocol::Http, p)
                } else {
                    Located::More(p)
                };
            }
        }
        for (proto, variant, need) in [
            (Protocol::Longlink, longlink::Variant::Wechat, ll_need),
            (Protocol::Mars, mars, mars_need),
        ] {
            match variant.chain(&b[p..], longlink::MAX_FRAME_LEN, need) {
                (n, _) if n >= need => return Located::At(proto, p),
                (n, longlink::Chain::Exact) if complete && n >= 1 => return Located::At(proto, p),
                (n, longlink::Chain::Past | longlink::Chain::Exact) if !complete && n >= 1 => {
                    return Located::More(p)
                }
                _ => {}
            }
        }
        match mmtls_chain(&b[p..], mm_need) {
            (n, longlink::Chain::Long) if n >= mm_need => return Located::At(Protocol::Mmtls, p),
            (n, longlink::Chain::Exact) if complete && n >= 2 => {
                return Located::At(Protocol::Mmtls, p)
            }
            (n, longlink::Chain::Past | longlink::Chain::Exact) if !complete && n >= 1 => {
                return Located::More(p)
            }
            _ => {}
        }
        match tls::chain(&b[p..], tls_need) {
            (n, longlink::Chain::Long) if n >= tls_need => return Located::At(Protocol::Tls, p),
            (n, longlink::Chain::Exact) if complete && n >= 1 => {
                return Located::At(Protocol::Tls, p)
            }
            (n, longlink::Chain::Past | longlink::Chain::Exact) if !complete && n >= 1 => {
                return Located::More(p)
            }
            _ => {}
        }
    }
    Located::Nothing
}

/// Whether a direction whose first bytes are no known protocol is worth a
/// search: not when they are a TLS record or an SSH banner (a connection
/// seen from its start, just not one of ours).
pub fn worth_searching(first: &[u8]) -> bool {
    !matches!(
        first,
        [0x14..=0x17, 0x03, 0..=4, ..] | [b'S', b'S', b'H', b'-', ..]
    )
}

/// [`longlink::chain`] for MMTLS records.
fn mmtls_chain(b: &[u8], max: usize) -> (usize, longlink::Chain) {
    longlink::walk_chain(b, max, mmtls::HEADER_LEN, |rest| {
        mmtls::looks_like_record(rest)
            .then(|| mmtls::HEADER_LEN + usize::from(u16::from_be_bytes([rest[3], rest[4]])))
    })
}

/// What a direction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plaintext long-link frames (16-byte header).
    Longlink,
    /// MMTLS records.
    Mmtls,
    /// Tencent Mars long-link frames (20-byte header), found by
    /// [`locate`]'s chain search (at offset 0 too).
    Mars,
    /// HTTP/1.x request or response, or HTTP/2 (the client preface, a
    /// server's first SETTINGS).
    Http,
    /// TLS records (HTTPS and anything else under TLS).
    Tls,
    /// Something else.
    Unknown,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Longlink => "longlink",
            Protocol::Mmtls => "mmtls",
            Protocol::Mars => "mars",
            Protocol::Http => "http",
            Protocol::Tls => "tls",
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
    // The HTTP/2 preface's first line (16 bytes: all a direction's sniff
    // holds) is enough.
    if METHODS.iter().any(|m| full(m)) || full(b"HTTP/1.") || full(&h2::PREFACE[..SNIFF_LEN]) {
        return Some(true);
    }
    // An HTTP/2 server speaking first (h2c with prior knowledge).
    if h2::looks_like_server_start(b) {
        return Some(true);
    }
    if METHODS.iter().any(|m| starts(m)) || starts(b"HTTP/1.") || starts(h2::PREFACE) {
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
        if tls::looks_like_record(first) {
            return Some(Protocol::Tls);
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
        // HTTP/2 with prior knowledge: the client preface (a prefix of it
        // waits), a server's first SETTINGS.
        assert_eq!(detect(h2::PREFACE, false), Some(Protocol::Http));
        assert_eq!(detect(b"PRI * HTTP/2", false), None);
        assert_eq!(
            detect(&h2::PREFACE[..SNIFF_LEN], false),
            Some(Protocol::Http)
        );
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert_eq!(detect(&settings, false), Some(Protocol::Http));
        assert_eq!(
            detect(b"SSH-2.0-OpenSSH_9.6\r\n", false),
            Some(Protocol::Unknown)
        );
    }

    #[test]
    fn locates_a_resync_point_anywhere() {
        use crate::proto::commands::{response, NEWSYNC, NOOP, SEQ_HEARTBEAT};
        let mut b = b"\x01\x02\x03".to_vec();
        b.extend(longlink::encode(NEWSYNC, 1, b"ab")); // 3..21
                                                       // One frame and the start of the next header: a chain of one.
        let cut = &b[..];
        assert_eq!(locate(cut, 0, false, None), Located::More(3));
        assert_eq!(
            locate(cut, 0, false, Some(Protocol::Longlink)),
            Located::At(Protocol::Longlink, 3)
        );
        // The direction ended exactly at the end of the frame.
        assert_eq!(
            locate(cut, 0, true, None),
            Located::At(Protocol::Longlink, 3)
        );
        b.extend(longlink::encode(NOOP, SEQ_HEARTBEAT, b"")); // 21..37
        assert_eq!(
            locate(&b, 0, false, None),
            Located::At(Protocol::Longlink, 3)
        );
        // The search goes on from where it was told.
        assert_eq!(locate(&b, 4, false, None), Located::More(21));
        // A plausible header whose frame runs past the end is no resync
        // point once no more bytes come.
        let mut c = vec![0xEE; 5];
        c.extend(longlink::Header::new(response(NEWSYNC), 2, 1000).emit());
        c.extend([0xEE; 40]);
        assert_eq!(locate(&c, 0, false, None), Located::More(5));
        assert_eq!(locate(&c, 0, true, None), Located::Nothing);
        // MMTLS: three records in a row, two with the other side as a hint.
        let rec = |t: u8, n: u8| {
            let mut r = vec![t, 0xf1, 0x04, 0, n];
            r.extend(std::iter::repeat_n(0x33, n as usize));
            r
        };
        let mut m = vec![0x99; 7];
        m.extend(rec(0x17, 10));
        m.extend(rec(0x17, 3));
        assert_eq!(locate(&m, 0, false, None), Located::More(7));
        assert_eq!(
            locate(&m, 0, false, Some(Protocol::Mmtls)),
            Located::At(Protocol::Mmtls, 7)
        );
        m.extend(rec(0x15, 2));
        assert_eq!(locate(&m, 0, false, None), Located::At(Protocol::Mmtls, 7));
        // HTTP: a status line inside a body; a request line needs its end.
        let h = b"xx\x00yy HTTP/1.1 200 OK\r\n";
        assert_eq!(locate(h, 0, false, None), Located::At(Protocol::Http, 6));
        let r = b"ab}POST /cgi-bin/x HTTP/1.";
        assert_eq!(locate(r, 0, false, None), Located::More(3));
        assert_eq!(locate(r, 0, true, None), Located::Nothing);
        assert_eq!(locate(b"garbage only", 0, true, None), Located::Nothing);
    }

    #[test]
    fn tls_and_ssh_starts_are_not_searched() {
        assert!(!worth_searching(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!worth_searching(b"SSH-2.0-OpenSSH_9.6\r\n"));
        assert!(worth_searching(&[0x16, 0x04, 0x01]));
        assert!(worth_searching(b"yyyyyyyyyyyyyyyyyy"));
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

    #[test]
    fn mars_chains_are_located_and_16_byte_frames_stay_longlink() {
        use crate::proto::commands::{NEWSYNC, NOOP, SEQ_HEARTBEAT};
        use crate::proto::longlink::mars::encode;
        let mut m = encode(7, NOOP, SEQ_HEARTBEAT, b"");
        m.extend(encode(7, NEWSYNC, 1, b"abc"));
        // Not a 16-byte frame: the search finds it, at 0 or after garbage.
        assert_eq!(detect(&m[..16], false), Some(Protocol::Unknown));
        assert_eq!(locate(&m, 0, false, None), Located::At(Protocol::Mars, 0));
        let mut g = b"xyz".to_vec();
        g.extend(&m);
        assert_eq!(locate(&g, 0, false, None), Located::At(Protocol::Mars, 3));
        // One frame: more bytes needed, or enough with a hint or at the end.
        assert_eq!(locate(&m[..20], 0, false, None), Located::More(0));
        assert_eq!(
            locate(&m[..20], 0, false, Some(Protocol::Mars)),
            Located::At(Protocol::Mars, 0)
        );
        assert_eq!(
            locate(&m[..20], 0, true, None),
            Located::At(Protocol::Mars, 0)
        );
        // A profile's client version: only frames that carry it.
        assert_eq!(
            locate_with(&m, 0, false, None, Some(7)),
            Located::At(Protocol::Mars, 0)
        );
        assert_eq!(locate_with(&m, 0, true, None, Some(8)), Located::Nothing);
        let mut ll = longlink::encode(NEWSYNC, 1, b"abcd");
        ll.extend(longlink::encode(NOOP, SEQ_HEARTBEAT, b""));
        assert_eq!(detect(&ll[..16], false), Some(Protocol::Longlink));
        assert_eq!(
            locate(&ll, 0, false, None),
            Located::At(Protocol::Longlink, 0)
        );
    }

    /// TLS: a record at the start is TLS at once; mid-stream (the tail of
    /// a record first), two records in a row, or one with the other side
    /// TLS, or one that ends exactly where the bytes end.
    #[test]
    fn tls_by_its_records_at_the_start_and_mid_stream() {
        let rec = |t: u8, n: usize| {
            let mut v = vec![t, 3, 3, 0, n as u8];
            v.extend(std::iter::repeat_n(0xa5, n));
            v
        };
        let hello = rec(22, 40);
        assert_eq!(detect(&hello[..16], false), Some(Protocol::Tls));
        let mut b = vec![0x5a; 7]; // the tail of a record
        b.extend(rec(23, 30)); // 7..42
        assert_eq!(locate(&b, 0, false, None), Located::More(7));
        assert_eq!(
            locate(&b, 0, false, Some(Protocol::Tls)),
            Located::At(Protocol::Tls, 7)
        );
        assert_eq!(locate(&b, 0, true, None), Located::At(Protocol::Tls, 7));
        b.extend(rec(23, 10));
        assert_eq!(locate(&b, 0, false, None), Located::At(Protocol::Tls, 7));
        // SSH stays unknown, and is not searched.
        assert!(!worth_searching(b"SSH-2.0-x"));
    }
}
