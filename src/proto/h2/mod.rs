//! HTTP/2 (RFC 9113) over a reassembled byte stream: the client's
//! connection preface, frames, HPACK header blocks (RFC 7541, decoded with
//! the `loona-hpack` crate, one decoder per direction whose dynamic table
//! lives as long as the connection) and streams turned into the same
//! [`http::Message`](super::http::Message) exchanges HTTP/1.x gives.
//!
//! A frame is a 9-byte header (24-bit length, type, flags, a reserved bit
//! and a 31-bit stream id) and its payload; parsing that header by hand is
//! all there is to it. Sans-IO and incremental: [`Conn::feed`] takes one
//! direction's bytes in any chunking, [`Conn::gap`] says bytes are
//! missing, [`Conn::finish`] that the connection is over.
//!
//! - this file: the preface, the frame header, type names;
//! - `conn`: the connection (framing per direction, header blocks, streams,
//!   exchanges, anomalies);
//! - `frame`: what one frame says (settings, window updates, error codes,
//!   padding), for the frame records.

pub mod conn;
pub mod frame;
#[cfg(test)]
mod tests;

pub use conn::{Config, Conn, H2Event};
pub use frame::FrameInfo;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value; a peer may raise it to 2^24 - 1.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 14;
/// The largest frame payload the protocol can express.
pub const MAX_FRAME: u32 = (1 << 24) - 1;

/// Frame types.
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
/// SETTINGS and PING.
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (header excluded).
    pub len: u32,
    pub typ: u8,
    pub flags: u8,
    /// The stream id, reserved bit cleared.
    pub stream: u32,
}

impl FrameHeader {
    /// The header `b` starts with (`None`: fewer than 9 bytes).
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            typ: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// The header's 9 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        let s = (self.stream & 0x7fff_ffff).to_be_bytes();
        [
            l[1], l[2], l[3], self.typ, self.flags, s[0], s[1], s[2], s[3],
        ]
    }

    /// Whole frame length, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

/// The name of a frame type (`unknown` for extension types).
pub fn type_name(t: u8) -> &'static str {
    match t {
        DATA => "DATA",
        HEADERS => "HEADERS",
        PRIORITY => "PRIORITY",
        RST_STREAM => "RST_STREAM",
        SETTINGS => "SETTINGS",
        PUSH_PROMISE => "PUSH_PROMISE",
        PING => "PING",
        GOAWAY => "GOAWAY",
        WINDOW_UPDATE => "WINDOW_UPDATE",
        CONTINUATION => "CONTINUATION",
        _ => "unknown",
    }
}

/// Whether `b` starts with the client preface (`Some(true)`), cannot be it
/// (`Some(false)`), or is a prefix of it (`None`: more bytes tell).
pub fn starts_with_preface(b: &[u8]) -> Option<bool> {
    let n = b.len().min(PREFACE.len());
    if b[..n] != PREFACE[..n] {
        Some(false)
    } else if n == PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Whether `b` starts like a server's first frame without prior preface in
/// view: a SETTINGS frame (not an ACK) on stream 0 whose length is a
/// multiple of 6 within the default frame size.
pub fn looks_like_server_start(b: &[u8]) -> bool {
    FrameHeader::parse(b).is_some_and(|h| {
        h.typ == SETTINGS
            && h.flags == 0
            && h.stream == 0
            && h.len % 6 == 0
            && h.len <= DEFAULT_MAX_FRAME
            && b[5..9] == [0, 0, 0, 0]
    })
}
