//! Errors of the capture layer.
//!
//! [`Error`] is what [`Reader`](super::Reader) reports to its caller; its
//! messages are written for a person at a terminal. [`ParseError`] is the
//! error type of the sans-IO nom parsers in [`pcap`](super::pcap) and
//! [`pcapng`](super::pcapng); the reader turns it into [`Error::Corrupt`].

use std::fmt;

/// Why a capture could not be (fully) read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a capture file at all.
    #[error(
        "{source_name}: not a pcap or pcapng capture (magic {}; expected \
         a1b2c3d4/d4c3b2a1/a1b23c4d/4d3cb2a1 (or a1b2cd34/34cdb2a1, modified pcap) for pcap, \
         0a0d0d0a for pcapng, 1f8b for gzip)",
        hex_bytes(magic)
    )]
    NotCapture { source_name: String, magic: [u8; 4] },

    /// Fewer than 4 bytes: nothing to recognise.
    #[error("{source_name}: empty or too short to be a capture ({len} bytes)")]
    TooShort { source_name: String, len: usize },

    /// The file ends in the middle of a header, record or block.
    #[error(
        "the capture is cut short at byte offset {offset}, in the middle of a {what} \
         ({needed} bytes needed, only {available} present)"
    )]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        available: u64,
    },

    /// A structurally invalid record or block.
    #[error("the capture is corrupt at byte offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },

    /// The start of the file (the pcap file header, the first pcapng
    /// block) is cut short or corrupt: no packet can be read. `problem` is
    /// a [`Error::Truncated`] or [`Error::Corrupt`] at offset 0.
    #[error(
        "{source_name}: {problem}; no packet can be read (is the file complete? copy or \
         download it again; `capinfos {source_name}` shows the damage too)"
    )]
    Header {
        source_name: String,
        problem: Box<Error>,
    },

    /// The inputs named cannot be read as a set (mixed `-`, an empty
    /// directory, no capture among them).
    #[error("{0}")]
    Inputs(String),

    /// The operating system (or the gzip decoder) failed to deliver bytes.
    #[error("{source_name}: cannot read")]
    Io {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
}

fn hex_bytes(b: &[u8; 4]) -> String {
    format!("{:02x} {:02x} {:02x} {:02x}", b[0], b[1], b[2], b[3])
}

/// Error of the sans-IO parsers: either a nom-internal kind (not produced by
/// the parsers in this crate in practice) or a structural problem, described
/// for a person. The position is that of the record/block being parsed; the
/// reason may name a position inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Nom(nom::error::ErrorKind),
    Invalid(String),
}

impl ParseError {
    /// `nom::Err::Failure(ParseError::Invalid(reason))`.
    pub fn failure(reason: impl Into<String>) -> nom::Err<ParseError> {
        nom::Err::Failure(ParseError::Invalid(reason.into()))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Nom(kind) => write!(f, "parser error ({kind:?})"),
            ParseError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ParseError {}

impl<I> nom::error::ParseError<I> for ParseError {
    fn from_error_kind(_input: I, kind: nom::error::ErrorKind) -> Self {
        ParseError::Nom(kind)
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// Result type of the sans-IO parsers.
pub type PResult<'a, T> = nom::IResult<&'a [u8], T, ParseError>;

/// Inside a record/block whose full length is already known to be present,
/// running out of bytes is a structural error, not a request for more input.
pub(crate) fn within<'a, T>(res: PResult<'a, T>, what: &str) -> PResult<'a, T> {
    match res {
        Err(nom::Err::Incomplete(_)) => Err(ParseError::failure(format!(
            "{what} is too short for its fields"
        ))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_capture_message_shows_magic() {
        let e = Error::NotCapture {
            source_name: "FILE".into(),
            magic: [0x3c, 0x21, 0x44, 0x4f],
        };
        let m = e.to_string();
        assert!(m.starts_with("FILE: not a pcap or pcapng capture (magic 3c 21 44 4f; expected a1b2c3d4/d4c3b2a1/a1b23c4d/4d3cb2a1"), "{m}");
        assert!(m.contains("0a0d0d0a for pcapng, 1f8b for gzip)"), "{m}");
    }

    #[test]
    fn truncated_message_names_offset() {
        let e = Error::Truncated {
            offset: 15704,
            what: "pcapng block",
            needed: 184,
            available: 92,
        };
        let m = e.to_string();
        assert!(m.contains("byte offset 15704"), "{m}");
        assert!(m.ends_with("(184 bytes needed, only 92 present)"), "{m}");
    }
}
