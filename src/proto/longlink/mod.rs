//! WeChat long-link framing: a 16-byte big-endian header (packet length with
//! the header included, header length 16, version 1, cmd, seq) and a body.
//!
//! [`Header`] is the one codec the analyzer, the reference server, the
//! clients, the examples and the test-traffic generators share (`parse` /
//! `emit`, [`encode`] for a whole frame). Two sans-IO readers sit on it:
//!
//! - [`check`], check-then-parse for a live peer's read buffer (as in
//!   mini-redis): a whole frame, more bytes needed, or invalid as soon as
//!   the bytes present rule a frame out. `net::frame` is the tokio adapter.
//! - [`Framer`], the incremental splitter the analyzer feeds with
//!   reassembly events: frames split over many segments, many frames in one
//!   segment, resynchronisation after a gap or garbage, and a size cap that
//!   is reported, never allocated.
//!
//! [`mars`] holds the Tencent Mars variant (a 20-byte header): its codec,
//! and [`Variant`], which makes the same [`Framer`] split Mars frames.

use std::fmt;

mod framer;
pub mod mars;

pub use mars::{MarsHeader, Variant, MARS_HEADER_LEN};

pub use framer::{
    chain, find_chain, walk_chain, Chain, Framer, FramerEvent, SkipReason, SUSPECT_CHAIN,
    SUSPECT_WINDOW,
};

/// Size of the frame header.
pub const HEADER_LEN: usize = 16;
/// Default cap on a frame's length (header included).
pub const MAX_FRAME_LEN: u32 = 16 << 20;
use super::commands::{RESPONSE_OFFSET, SEQ_HEARTBEAT, SEQ_PUSH};

/// Why a header is not a long-link header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("need {HEADER_LEN} bytes for a long-link header, have {0}")]
    Short(usize),
    #[error("header length field is {0}, expected 16")]
    HeaderLen(u16),
    #[error("version field is {0}, expected 1")]
    Version(u16),
    #[error("packet length {0} is smaller than the 16-byte header")]
    TooShort(u32),
}

/// Why the bytes at the start of a live peer's buffer are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a long-link frame: {0}")]
    Header(#[from] HeaderError),
    #[error("frame length {len} is over the {cap}-byte cap")]
    Oversize { len: u32, cap: u32 },
}

/// What [`check`] finds at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A whole frame: its header and its length (header included).
    Complete(Header, usize),
    /// No verdict yet: at least this many more bytes are needed.
    Incomplete(usize),
    /// The bytes present rule a frame out.
    Invalid(FrameError),
}

/// Checks the frame at the start of `buf` (check-then-parse, sans-IO): a
/// complete frame, more bytes needed, or invalid as soon as the bytes
/// present rule a frame out (a wrong header length once 6 bytes are there,
/// a wrong version once 8 are, a length under 16 or over `cap` once 4 are),
/// so a live peer cannot hold a connection with a hopeless prefix.
///
/// Unlike [`Framer`], which resynchronises after garbage, the first bad
/// byte is final here: a live peer that sends a bad header is answered with
/// an error and dropped.
pub fn check(buf: &[u8], cap: u32) -> Check {
    let be_u16 = |i: usize| buf.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    // The fixed fields first: bytes that are no header at all are garbage,
    // whatever their first four say as a length.
    if let Err(e) = check_fixed(be_u16(4), be_u16(6)) {
        return Check::Invalid(e.into());
    }
    let Some(len) = buf
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return Check::Incomplete(HEADER_LEN - buf.len());
    };
    if len > cap {
        return Check::Invalid(FrameError::Oversize { len, cap });
    }
    if let Err(e) = check_len(len) {
        return Check::Invalid(e.into());
    }
    let n = len as usize;
    match Header::read(buf) {
        Ok(header) if buf.len() >= n => Check::Complete(header, n),
        _ => Check::Incomplete(n - buf.len()),
    }
}

/// The fixed fields' checks (header length 16, version 1); a field not
/// received yet is `None` and passes.
fn check_fixed(header_len: Option<u16>, version: Option<u16>) -> Result<(), HeaderError> {
    match (header_len, version) {
        (Some(h), _) if h != HEADER_LEN as u16 => Err(HeaderError::HeaderLen(h)),
        (_, Some(v)) if v != 1 => Err(HeaderError::Version(v)),
        _ => Ok(()),
    }
}

/// The packet length holds at least the header.
fn check_len(len: u32) -> Result<(), HeaderError> {
    if (len as usize) < HEADER_LEN {
        return Err(HeaderError::TooShort(len));
    }
    Ok(())
}

/// Header and body of a frame, ready to write.
pub fn encode(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&Header::new(cmd, seq, body.len()).emit());
    out.extend_from_slice(body);
    out
}

/// A parsed long-link header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Header {
    /// Packet length, header included.
    pub len: u32,
    pub header_len: u16,
    pub version: u16,
    pub cmd: u32,
    pub seq: u32,
}

impl Header {
    /// A header for a body of `body_len` bytes.
    pub fn new(cmd: u32, seq: u32, body_len: usize) -> Header {
        Header {
            len: (HEADER_LEN + body_len) as u32,
            header_len: HEADER_LEN as u16,
            version: 1,
            cmd,
            seq,
        }
    }

    /// Reads the fields without judging them.
    pub fn read(b: &[u8]) -> Result<Header, HeaderError> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::Short(b.len()))?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Header {
            len: u32_at(0),
            header_len: u16::from_be_bytes([b[4], b[5]]),
            version: u16::from_be_bytes([b[6], b[7]]),
            cmd: u32_at(8),
            seq: u32_at(12),
        })
    }

    /// Reads and checks the fixed fields (header length 16, version 1,
    /// packet length at least 16).
    pub fn parse(b: &[u8]) -> Result<Header, HeaderError> {
        let h = Header::read(b)?;
        h.validate()?;
        Ok(h)
    }

    /// Checks the fixed fields (header length 16, version 1) and that the
    /// packet length holds the header.
    pub fn validate(&self) -> Result<(), HeaderError> {
        check_fixed(Some(self.header_len), Some(self.version))?;
        check_len(self.len)
    }

    /// Writes the 16 header bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.len.to_be_bytes());
        b[4..6].copy_from_slice(&self.header_len.to_be_bytes());
        b[6..8].copy_from_slice(&self.version.to_be_bytes());
        b[8..12].copy_from_slice(&self.cmd.to_be_bytes());
        b[12..16].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Body length: the packet length less the header length (16, or 20
    /// for a header read from the Mars framing).
    pub fn body_len(&self) -> usize {
        (self.len as usize).saturating_sub(usize::from(self.header_len))
    }

    /// Request, response, push or heartbeat, from cmd and seq. (A Mars echo,
    /// a response with its request's cmd, takes the pairing to recognise:
    /// `track::pairing::Paired::kind`.)
    pub fn kind(&self) -> Kind {
        if self.seq == SEQ_HEARTBEAT {
            Kind::Heartbeat
        } else if self.cmd >= RESPONSE_OFFSET {
            Kind::Response
        } else if self.seq == SEQ_PUSH {
            Kind::Push
        } else {
            Kind::Request
        }
    }

    /// The request cmd this header belongs to (responses minus 10^9).
    pub fn request_cmd(&self) -> u32 {
        if self.cmd >= RESPONSE_OFFSET {
            self.cmd - RESPONSE_OFFSET
        } else {
            self.cmd
        }
    }
}

/// What a frame is, from its cmd and seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Request,
    Response,
    Push,
    Heartbeat,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Response => "response",
            Kind::Push => "push",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header that could start a frame: fixed fields right, length within
/// the cap, and a cmd in the request range (below 10^5) or the response
/// range (10^9 plus that). Used to find frames after garbage or a gap.
pub fn plausible(h: &Header, cap: u32) -> bool {
    h.validate().is_ok() && h.len <= cap && plausible_cmd(h.cmd)
}

/// A cmd in the request range (below 10^5) or the response range (10^9
/// plus that), for either framing.
pub(crate) fn plausible_cmd(cmd: u32) -> bool {
    cmd < 100_000 || (RESPONSE_OFFSET..RESPONSE_OFFSET + 100_000).contains(&cmd)
}

/// The first bytes of a stream look like a long-link frame.
pub fn looks_like_frame(b: &[u8]) -> bool {
    Header::read(b).is_ok_and(|h| plausible(&h, MAX_FRAME_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{
        response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH,
    };

    #[test]
    fn header_codec_round_trips_byte_literals() {
        let b = [
            0, 0, 0, 0x12, 0, 0x10, 0, 1, 0, 0, 0, 205, 0xFF, 0xFF, 0xFF, 0xFE,
        ];
        let h = Header::parse(&b).unwrap();
        assert_eq!(h, Header::new(IDENTIFY, SEQ_IDENTIFY, 2));
        assert_eq!(h.emit(), b);
        assert_eq!(h.body_len(), 2);
        assert_eq!(Header::new(response(NEWSYNC), 26, 0).kind(), Kind::Response);
        assert_eq!(Header::new(response(NEWSYNC), 26, 0).request_cmd(), 121);
        assert_eq!(Header::new(NEWNOTIFY, SEQ_PUSH, 0).kind(), Kind::Push);
        assert_eq!(Header::new(NOOP, SEQ_HEARTBEAT, 0).kind(), Kind::Heartbeat);
        assert_eq!(Header::new(NEWSYNC, 1, 0).kind(), Kind::Request);
        let mut bad = b;
        bad[5] = 0x14;
        assert_eq!(Header::parse(&bad), Err(HeaderError::HeaderLen(0x14)));
        bad = b;
        bad[7] = 2;
        assert_eq!(Header::parse(&bad), Err(HeaderError::Version(2)));
        bad = b;
        bad[3] = 3;
        assert_eq!(Header::parse(&bad), Err(HeaderError::TooShort(3)));
        for n in 0..16 {
            assert_eq!(Header::parse(&b[..n]), Err(HeaderError::Short(n)));
        }
    }

    #[test]
    fn check_reports_complete_incomplete_invalid() {
        let f = encode(NEWSYNC, 7, b"abc");
        for cut in 0..f.len() {
            let needed = if cut < 4 {
                HEADER_LEN - cut
            } else {
                f.len() - cut
            };
            assert_eq!(check(&f[..cut], 1024), Check::Incomplete(needed), "{cut}");
        }
        assert_eq!(
            check(&f, 1024),
            Check::Complete(Header::new(NEWSYNC, 7, 3), 19)
        );
        let mut two = f.clone();
        two.extend(encode(NOOP, SEQ_HEARTBEAT, b""));
        assert_eq!(
            check(&two, 1024),
            Check::Complete(Header::new(NEWSYNC, 7, 3), 19)
        );
        assert_eq!(
            check(&f, 18),
            Check::Invalid(FrameError::Oversize { len: 19, cap: 18 })
        );
        assert_eq!(
            check(&[0, 0, 0, 3], 1024),
            Check::Invalid(FrameError::Header(HeaderError::TooShort(3)))
        );
        assert_eq!(
            check(b"\0\0\0\x20GE", 1024),
            Check::Invalid(FrameError::Header(HeaderError::HeaderLen(0x4745)))
        );
        assert_eq!(
            check(&[0, 0, 0, 0x20, 0, 0x10, 0, 2], 1024),
            Check::Invalid(FrameError::Header(HeaderError::Version(2)))
        );
        // The fixed fields are judged before the length.
        assert_eq!(
            check(&[0xff, 0, 0, 0, 0, 0x11], 1024),
            Check::Invalid(FrameError::Header(HeaderError::HeaderLen(0x11)))
        );
    }
}
