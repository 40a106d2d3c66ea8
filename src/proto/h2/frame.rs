//! What one frame says: its payload read by type (padding taken off,
//! settings, window increments, error codes, priority), and what is wrong
//! with it. [`read`] never fails: a malformed frame gives its `problem`.

use serde::Serialize;

use super::*;

/// A frame's facts, as the `http2` records show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FrameInfo {
    /// Frames of the direction, from 0.
    #[serde(skip)]
    pub index: u64,
    /// Offset of the frame header in the direction's stream.
    #[serde(skip)]
    pub stream_offset: u64,
    #[serde(rename = "type")]
    pub typ: &'static str,
    pub type_id: u8,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
    pub stream: u32,
    /// Payload length (header excluded).
    pub len: u32,
    /// Padding taken off (PADDED DATA, HEADERS, PUSH_PROMISE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_len: Option<u8>,
    /// DATA: the data bytes (padding excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_len: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<(&'static str, u32)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_increment: Option<u32>,
    /// RST_STREAM and GOAWAY: the error code's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_stream: Option<u32>,
    /// PING: the 8 opaque bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_stream: Option<u32>,
    /// PRIORITY, or HEADERS with the PRIORITY flag: (stream dependency,
    /// exclusive, weight 1..=256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<(u32, bool, u16)>,
    /// The header block this frame ended, decoded (names and values as
    /// text, lossy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// Why the header block this frame ended was not decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_undecoded: Option<String>,
    /// What is wrong with the frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What a frame carries for the stream layer.
#[derive(Debug, Default)]
pub struct Content<'a> {
    /// DATA: the data; HEADERS, PUSH_PROMISE, CONTINUATION: the header
    /// block fragment.
    pub bytes: &'a [u8],
}

/// The name of an error code (RFC 9113 section 7).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0 => "NO_ERROR",
        1 => "PROTOCOL_ERROR",
        2 => "INTERNAL_ERROR",
        3 => "FLOW_CONTROL_ERROR",
        4 => "SETTINGS_TIMEOUT",
        5 => "STREAM_CLOSED",
        6 => "FRAME_SIZE_ERROR",
        7 => "REFUSED_STREAM",
        8 => "CANCEL",
        9 => "COMPRESSION_ERROR",
        10 => "CONNECT_ERROR",
        11 => "ENHANCE_YOUR_CALM",
        12 => "INADEQUATE_SECURITY",
        13 => "HTTP_1_1_REQUIRED",
        _ => "unknown",
    }
}

/// The name of a setting (RFC 9113 section 6.5.2, RFC 8441, RFC 9218).
pub fn setting_name(id: u16) -> &'static str {
    match id {
        1 => "HEADER_TABLE_SIZE",
        2 => "ENABLE_PUSH",
        3 => "MAX_CONCURRENT_STREAMS",
        4 => "INITIAL_WINDOW_SIZE",
        5 => "MAX_FRAME_SIZE",
        6 => "MAX_HEADER_LIST_SIZE",
        8 => "ENABLE_CONNECT_PROTOCOL",
        9 => "NO_RFC7540_PRIORITIES",
        _ => "unknown",
    }
}

fn flag_names(typ: u8, flags: u8) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut f = |bit: u8, name| {
        if flags & bit != 0 {
            v.push(name);
        }
    };
    match typ {
        DATA => {
            f(END_STREAM, "END_STREAM");
            f(PADDED, "PADDED");
        }
        HEADERS => {
            f(END_STREAM, "END_STREAM");
            f(END_HEADERS, "END_HEADERS");
            f(PADDED, "PADDED");
            f(PRIORITY_FLAG, "PRIORITY");
        }
        SETTINGS | PING => f(ACK, "ACK"),
        PUSH_PROMISE => {
            f(END_HEADERS, "END_HEADERS");
            f(PADDED, "PADDED");
        }
        CONTINUATION => f(END_HEADERS, "END_HEADERS"),
        _ => {}
    }
    v
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads one whole frame: its facts and its content. Never fails: what is
/// wrong is the info's `problem` (and the content is then empty).
pub fn read<'a>(h: &FrameHeader, payload: &'a [u8]) -> (FrameInfo, Content<'a>) {
    let mut info = FrameInfo {
        typ: type_name(h.typ),
        type_id: h.typ,
        flags: flag_names(h.typ, h.flags),
        stream: h.stream,
        len: h.len,
        ..FrameInfo::default()
    };
    match body(h, payload, &mut info) {
        Ok(bytes) => (info, Content { bytes }),
        Err(p) => {
            info.problem = Some(p);
            (info, Content::default())
        }
    }
}

fn body<'a>(h: &FrameHeader, p: &'a [u8], info: &mut FrameInfo) -> Result<&'a [u8], String> {
    let on_stream = |zero: bool| -> Result<(), String> {
        match (zero, h.stream) {
            (true, 0) | (false, 1..) => Ok(()),
            (true, s) => Err(format!("{} on stream {s} (must be 0)", type_name(h.typ))),
            (false, _) => Err(format!("{} on stream 0", type_name(h.typ))),
        }
    };
    let fixed = |n: usize| -> Result<(), String> {
        if p.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{} of {} bytes (must be {n})",
                type_name(h.typ),
                p.len()
            ))
        }
    };
    // Padding (DATA, HEADERS, PUSH_PROMISE): a length byte first, that many
    // zero bytes last.
    let unpad = |info: &mut FrameInfo| -> Result<&'a [u8], String> {
        if h.flags & PADDED == 0 {
            return Ok(p);
        }
        let (&pad, rest) = p
            .split_first()
            .ok_or_else(|| "PADDED frame without its pad length".to_owned())?;
        info.pad_len = Some(pad);
        rest.len()
            .checked_sub(usize::from(pad))
            .map(|n| &rest[..n])
            .ok_or_else(|| format!("padding of {pad} bytes is longer than the frame"))
    };
    match h.typ {
        DATA => {
            on_stream(false)?;
            let d = unpad(info)?;
            info.data_len = Some(d.len());
            Ok(d)
        }
        HEADERS => {
            on_stream(false)?;
            let mut b = unpad(info)?;
            if h.flags & PRIORITY_FLAG != 0 {
                if b.len() < 5 {
                    return Err("HEADERS with PRIORITY shorter than its 5 priority bytes".into());
                }
                let dep = be32(b);
                info.priority = Some((dep & 0x7fff_ffff, dep >> 31 == 1, u16::from(b[4]) + 1));
                b = &b[5..];
            }
            Ok(b)
        }
        PRIORITY => {
            on_stream(false)?;
            fixed(5)?;
            let dep = be32(p);
            info.priority = Some((dep & 0x7fff_ffff, dep >> 31 == 1, u16::from(p[4]) + 1));
            Ok(&[])
        }
        RST_STREAM => {
            on_stream(false)?;
            fixed(4)?;
            info.error = Some(error_name(be32(p)));
            Ok(&[])
        }
        SETTINGS => {
            on_stream(true)?;
            if h.flags & ACK != 0 && !p.is_empty() {
                return Err("SETTINGS ACK with a payload".into());
            }
            if p.len() % 6 != 0 {
                return Err(format!(
                    "SETTINGS of {} bytes (not a multiple of 6)",
                    p.len()
                ));
            }
            info.settings = p
                .chunks_exact(6)
                .map(|s| {
                    (
                        setting_name(u16::from_be_bytes([s[0], s[1]])),
                        be32(&s[2..]),
                    )
                })
                .collect();
            Ok(&[])
        }
        PUSH_PROMISE => {
            on_stream(false)?;
            let b = unpad(info)?;
            if b.len() < 4 {
                return Err("PUSH_PROMISE shorter than its promised stream id".into());
            }
            info.promised_stream = Some(be32(b) & 0x7fff_ffff);
            Ok(&b[4..])
        }
        PING => {
            on_stream(true)?;
            fixed(8)?;
            info.ping = Some(hex::encode(p));
            Ok(&[])
        }
        GOAWAY => {
            on_stream(true)?;
            if p.len() < 8 {
                return Err(format!("GOAWAY of {} bytes (at least 8)", p.len()));
            }
            info.last_stream = Some(be32(p) & 0x7fff_ffff);
            info.error = Some(error_name(be32(&p[4..])));
            Ok(&[])
        }
        WINDOW_UPDATE => {
            fixed(4)?;
            let inc = be32(p) & 0x7fff_ffff;
            info.window_increment = Some(inc);
            if inc == 0 {
                return Err("WINDOW_UPDATE with a zero increment".into());
            }
            Ok(&[])
        }
        CONTINUATION => {
            on_stream(false)?;
            Ok(p)
        }
        _ => Ok(&[]),
    }
}
