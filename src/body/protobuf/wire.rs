//! The protobuf wire format: [`WireReader`] (the one reader of tags,
//! varints, fixed and length-delimited values and groups in the crate) and
//! the field encoders.

/// Deepest nesting of messages (and groups) that [`decode_raw`](super::decode_raw) interprets;
/// deeper length-delimited values are shown as text or bytes.
pub const MAX_DEPTH: usize = 32;

/// Largest legal field number (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Longest varint: 10 bytes carry 64 bits.
const MAX_VARINT_LEN: usize = 10;

// ---------------------------------------------------------------------------
// Errors

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte offset {offset}: {reason}")]
pub struct RawError {
    /// Offset (from the start of the decoded buffer) of the tag or value
    /// that is wrong.
    pub offset: usize,
    pub reason: RawReason,
}

/// What is wrong at [`RawError::offset`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawReason {
    #[error("a varint runs past the end of the data")]
    TruncatedVarint,
    #[error("a varint is longer than 10 bytes or overflows 64 bits")]
    VarintOverflow,
    #[error("field number 0 is not allowed")]
    FieldNumberZero,
    #[error("field number {0} is above the maximum 536870911")]
    FieldNumberTooLarge(u64),
    #[error("wire type {0} does not exist (valid: 0 varint, 1 fixed64, 2 length-delimited, 3/4 group, 5 fixed32)")]
    BadWireType(u8),
    #[error("a {what} value needs {needed} bytes but only {available} are left")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: usize,
    },
    #[error("end-group tag for field {0} without a matching start-group tag")]
    UnexpectedEndGroup(u32),
    #[error("group {0} is not closed before the end of the data")]
    UnclosedGroup(u32),
    #[error("groups are nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("a start-group tag for field {0}, in data that has no groups")]
    GroupNotAllowed(u32),
}

pub(super) fn err(offset: usize, reason: RawReason) -> RawError {
    RawError { offset, reason }
}

// ---------------------------------------------------------------------------
// Wire level

/// The six wire types (3 and 4 are the deprecated groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

impl WireType {
    fn from_tag(tag: u64) -> Option<WireType> {
        Some(match tag & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return None,
        })
    }
}

/// One field as it is on the wire, without interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Length-delimited payload.
    Len(&'a [u8]),
    /// The fields between a start-group and its end-group tag.
    Group(&'a [u8]),
}

/// A field read by [`WireReader`]: number, value and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField<'a> {
    pub number: u32,
    /// Offset of the tag.
    pub offset: usize,
    /// Offset of the payload of a `Len` or `Group` value (after the tag, or
    /// after the length varint).
    pub data_offset: usize,
    pub value: WireValue<'a>,
}

/// Iterates over the top-level fields of a message. After the first error
/// it yields nothing more. Offsets are relative to the buffer plus `base`
/// (see [`WireReader::with_base`]), so nested readers report positions in
/// the outermost buffer.
#[derive(Debug, Clone)]
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
    /// Whether a start-group tag opens a group (else it is an error).
    groups: bool,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        WireReader {
            buf,
            pos: 0,
            base: 0,
            failed: false,
            groups: true,
        }
    }

    /// A reader for data that never uses groups (the business envelope):
    /// a start-group tag is [`RawReason::GroupNotAllowed`] at the tag.
    pub fn without_groups(buf: &'a [u8]) -> Self {
        WireReader {
            groups: false,
            ..WireReader::new(buf)
        }
    }

    /// A reader whose reported offsets are shifted by `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        WireReader {
            base,
            ..WireReader::new(buf)
        }
    }

    fn read_field(&mut self) -> Result<WireField<'a>, RawError> {
        let start = self.pos;
        let (number, wire, after_tag) = read_tag(self.buf, start, self.base)?;
        let (value, data_offset, end) = match wire {
            WireType::Varint => {
                let (v, end) = read_varint(self.buf, after_tag, self.base)?;
                (WireValue::Varint(v), after_tag, end)
            }
            WireType::Fixed64 => {
                let b = take(self.buf, after_tag, 8, "fixed64", self.base)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (
                    WireValue::Fixed64(u64::from_le_bytes(a)),
                    after_tag,
                    after_tag + 8,
                )
            }
            WireType::Fixed32 => {
                let b = take(self.buf, after_tag, 4, "fixed32", self.base)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                (
                    WireValue::Fixed32(u32::from_le_bytes(a)),
                    after_tag,
                    after_tag + 4,
                )
            }
            WireType::Len => {
                let (len, data) = read_varint(self.buf, after_tag, self.base)?;
                let available = self.buf.len() - data;
                if len > available as u64 {
                    return Err(err(
                        self.base + after_tag,
                        RawReason::Truncated {
                            what: "length-delimited",
                            needed: len,
                            available,
                        },
                    ));
                }
                let end = data + len as usize;
                (WireValue::Len(&self.buf[data..end]), data, end)
            }
            WireType::StartGroup if !self.groups => {
                return Err(err(self.base + start, RawReason::GroupNotAllowed(number)));
            }
            WireType::StartGroup => {
                let (content_end, end) = skip_group(self.buf, after_tag, number, self.base)?;
                (
                    WireValue::Group(&self.buf[after_tag..content_end]),
                    after_tag,
                    end,
                )
            }
            WireType::EndGroup => {
                return Err(err(
                    self.base + start,
                    RawReason::UnexpectedEndGroup(number),
                ));
            }
        };
        self.pos = end;
        Ok(WireField {
            number,
            offset: self.base + start,
            data_offset: self.base + data_offset,
            value,
        })
    }
}

impl<'a> Iterator for WireReader<'a> {
    type Item = Result<WireField<'a>, RawError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let r = self.read_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Reads a varint at `pos`; returns the value and the position after it.
pub fn read_varint(buf: &[u8], pos: usize, base: usize) -> Result<(u64, usize), RawError> {
    let mut value: u64 = 0;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = buf.get(pos + i) else {
            return Err(err(base + pos, RawReason::TruncatedVarint));
        };
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(err(base + pos, RawReason::VarintOverflow));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, pos + i + 1));
        }
    }
    Err(err(base + pos, RawReason::VarintOverflow))
}

fn read_tag(buf: &[u8], pos: usize, base: usize) -> Result<(u32, WireType, usize), RawError> {
    let (tag, after) = read_varint(buf, pos, base)?;
    let wire = WireType::from_tag(tag)
        .ok_or_else(|| err(base + pos, RawReason::BadWireType((tag & 7) as u8)))?;
    let number = tag >> 3;
    if number == 0 {
        return Err(err(base + pos, RawReason::FieldNumberZero));
    }
    if number > u64::from(MAX_FIELD_NUMBER) {
        return Err(err(base + pos, RawReason::FieldNumberTooLarge(number)));
    }
    Ok((number as u32, wire, after))
}

fn take<'a>(
    buf: &'a [u8],
    pos: usize,
    n: usize,
    what: &'static str,
    base: usize,
) -> Result<&'a [u8], RawError> {
    buf.get(pos..pos + n).ok_or_else(|| {
        err(
            base + pos,
            RawReason::Truncated {
                what,
                needed: n as u64,
                available: buf.len().saturating_sub(pos),
            },
        )
    })
}

/// Finds the end-group tag matching a start-group of field `number` whose
/// content starts at `pos`. Returns (offset of the end tag, offset after it).
/// Iterative, with an explicit stack capped at [`MAX_DEPTH`].
fn skip_group(
    buf: &[u8],
    pos: usize,
    number: u32,
    base: usize,
) -> Result<(usize, usize), RawError> {
    let mut open = vec![number];
    let mut p = pos;
    loop {
        if p >= buf.len() {
            let innermost = open.last().copied().unwrap_or(number);
            return Err(err(base + p, RawReason::UnclosedGroup(innermost)));
        }
        let tag_at = p;
        let (n, wire, after) = read_tag(buf, p, base)?;
        p = match wire {
            WireType::Varint => read_varint(buf, after, base)?.1,
            WireType::Fixed64 => after + take(buf, after, 8, "fixed64", base)?.len(),
            WireType::Fixed32 => after + take(buf, after, 4, "fixed32", base)?.len(),
            WireType::Len => {
                let (len, data) = read_varint(buf, after, base)?;
                let available = buf.len() - data;
                if len > available as u64 {
                    return Err(err(
                        base + after,
                        RawReason::Truncated {
                            what: "length-delimited",
                            needed: len,
                            available,
                        },
                    ));
                }
                data + len as usize
            }
            WireType::StartGroup => {
                if open.len() >= MAX_DEPTH {
                    return Err(err(base + tag_at, RawReason::TooDeep));
                }
                open.push(n);
                after
            }
            WireType::EndGroup => {
                if open.last() != Some(&n) {
                    return Err(err(base + tag_at, RawReason::UnexpectedEndGroup(n)));
                }
                open.pop();
                if open.is_empty() {
                    return Ok((tag_at, after));
                }
                after
            }
        };
    }
}

// ---------------------------------------------------------------------------
// Encoding (used to build test vectors and to re-emit decoded trees)

/// Appends `v` as a varint.
pub fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a tag. `number` should be in 1..=[`MAX_FIELD_NUMBER`].
pub fn encode_tag(number: u32, wire: WireType, out: &mut Vec<u8>) {
    encode_varint((u64::from(number) << 3) | wire as u64, out);
}

/// Appends a varint field.
pub fn encode_varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
    encode_tag(number, WireType::Varint, out);
    encode_varint(v, out);
}

/// Appends a length-delimited field.
pub fn encode_bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_tag(number, WireType::Len, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
