//! pcapng: sans-IO nom parsers for blocks.
//!
//! [`parse_block`] frames one block (type, total length, body, trailing
//! length), checks the framing, and decodes the blocks that matter for
//! reading packets: Section Header (with its byte-order magic, which decides
//! the section's [`Endianness`]), Interface Description (with `if_tsresol`
//! and `if_tsoffset`), Enhanced Packet, Simple Packet and the obsolete Packet
//! Block. Every other block type comes back as [`Block::Other`].
//!
//! All parsers are streaming: `Err(nom::Err::Incomplete(_))` means "give me
//! more bytes", `Err(nom::Err::Failure(_))` means the block is invalid.

use nom::bytes::streaming::take;
use nom::number::streaming::{i64 as num_i64, u16 as num_u16, u32 as num_u32};
use nom::number::Endianness;
use nom::Offset;

use super::error::{within, PResult, ParseError};
use super::{Linktype, Timestamp};

pub const BT_SHB: u32 = 0x0A0D_0D0A;
pub const BT_IDB: u32 = 1;
pub const BT_PB: u32 = 2;
pub const BT_SPB: u32 = 3;
pub const BT_NRB: u32 = 4;
pub const BT_ISB: u32 = 5;
pub const BT_EPB: u32 = 6;
pub const BT_DSB: u32 = 0x0A;
pub const BT_CUSTOM: u32 = 0xBAD;
pub const BT_CUSTOM_NOCOPY: u32 = 0x4000_0BAD;

/// The byte-order magic of a Section Header Block, as read in its own order.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// The 4 bytes every pcapng file starts with.
pub const FILE_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

/// Smallest possible block: type, length, trailing length.
pub const MIN_BLOCK_LEN: u32 = 12;
/// Blocks longer than this are treated as corrupt (bounded memory).
pub const MAX_BLOCK_LEN: u32 = 256 * 1024 * 1024;

const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Section Header Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    /// Byte order of this section (decided by the byte-order magic).
    pub endianness: Endianness,
    pub major: u16,
    pub minor: u16,
    /// Section length, -1 when unspecified.
    pub section_len: i64,
}

/// Timestamp resolution of an interface (`if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResol {
    /// Units of 10^-n seconds.
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

impl Default for TsResol {
    fn default() -> Self {
        TsResol::Decimal(6)
    }
}

impl TsResol {
    /// Decodes the option byte: bit 7 clear means 10^-n, set means 2^-n.
    pub fn from_byte(b: u8) -> TsResol {
        if b & 0x80 == 0 {
            TsResol::Decimal(b)
        } else {
            TsResol::Binary(b & 0x7F)
        }
    }

    /// Converts a 64-bit count of units into a timestamp, exactly (u128
    /// arithmetic, truncating below the nanosecond) and without panicking.
    pub fn to_timestamp(self, units: u64, offset_secs: i64) -> Timestamp {
        let units = u128::from(units);
        let (secs, nanos, digits) = match self {
            TsResol::Decimal(n) => {
                // 10^38 is the largest power of ten in a u128; for n > 38 every
                // u64 count is below one nanosecond.
                if n > 38 {
                    (0u128, 0u128, 9u8)
                } else {
                    let per_sec = 10u128.pow(u32::from(n));
                    let frac = units % per_sec;
                    let nanos = if n <= 9 {
                        frac * 10u128.pow(9 - u32::from(n))
                    } else {
                        frac / 10u128.pow(u32::from(n) - 9)
                    };
                    (units / per_sec, nanos, n.min(9))
                }
            }
            TsResol::Binary(n) => {
                // n <= 127, so the shifts stay within a u128.
                let frac = units & ((1u128 << n) - 1);
                (units >> n, (frac * 1_000_000_000) >> n, 9)
            }
        };
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        Timestamp::new(
            secs.saturating_add(offset_secs),
            // Always < 10^9 by construction.
            u32::try_from(nanos).unwrap_or(999_999_999),
            digits,
        )
    }
}

/// Interface Description Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceDescription {
    pub linktype: Linktype,
    pub snaplen: u32,
    pub tsresol: TsResol,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub tsoffset: i64,
}

impl InterfaceDescription {
    pub fn timestamp(&self, units: u64) -> Timestamp {
        self.tsresol.to_timestamp(units, self.tsoffset)
    }
}

/// Enhanced Packet Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedPacket<'a> {
    pub interface_id: u32,
    /// Timestamp in units of the interface's resolution.
    pub ts: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Raw, unparsed options.
    pub options: &'a [u8],
}

/// Simple Packet Block. Its captured length depends on interface 0's
/// snaplen, see [`SimplePacket::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimplePacket<'a> {
    pub orig_len: u32,
    /// Everything after the original length (data plus padding).
    pub body: &'a [u8],
}

impl<'a> SimplePacket<'a> {
    /// Captured bytes: min(original length, snaplen if non-zero, body length).
    pub fn data(&self, snaplen: u32) -> &'a [u8] {
        let mut len = self.orig_len as usize;
        if snaplen != 0 {
            len = len.min(snaplen as usize);
        }
        &self.body[..len.min(self.body.len())]
    }
}

/// Obsolete Packet Block (type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObsoletePacket<'a> {
    pub interface_id: u16,
    pub drops: u16,
    pub ts: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// One decoded block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block<'a> {
    Section(SectionHeader),
    Interface(InterfaceDescription),
    Enhanced(EnhancedPacket<'a>),
    Simple(SimplePacket<'a>),
    Obsolete(ObsoletePacket<'a>),
    /// Any other block (NRB, ISB, DSB, custom, unknown): framing checked, body not decoded.
    Other {
        block_type: u32,
        body: &'a [u8],
    },
}

/// Frames and decodes one block. `endianness` is that of the current
/// section; a Section Header Block brings its own (returned in
/// [`SectionHeader::endianness`], to be used for the following blocks).
pub fn parse_block(i: &[u8], endianness: Endianness) -> PResult<'_, Block<'_>> {
    if i.len() < 8 {
        // Type and length, plus the byte-order magic for an SHB.
        return Err(nom::Err::Incomplete(nom::Needed::new(8 - i.len())));
    }
    let is_shb = i[..4] == FILE_MAGIC;
    let e = if is_shb {
        if i.len() < 12 {
            return Err(nom::Err::Incomplete(nom::Needed::new(12 - i.len())));
        }
        let bom = [i[8], i[9], i[10], i[11]];
        if u32::from_be_bytes(bom) == BYTE_ORDER_MAGIC {
            Endianness::Big
        } else if u32::from_le_bytes(bom) == BYTE_ORDER_MAGIC {
            Endianness::Little
        } else {
            return Err(ParseError::failure(format!(
                "Section Header Block with an invalid byte-order magic \
                 {:02x}{:02x}{:02x}{:02x} (expected 1a2b3c4d in either byte order)",
                bom[0], bom[1], bom[2], bom[3]
            )));
        }
    } else {
        endianness
    };
    let (rest, block_type) = num_u32(e)(i)?;
    let (rest, total_len) = num_u32(e)(rest)?;
    let name = block_name(block_type);
    if total_len < MIN_BLOCK_LEN || total_len % 4 != 0 {
        return Err(ParseError::failure(format!(
            "{name} has a total length of {total_len} bytes, which is {}",
            if total_len < MIN_BLOCK_LEN {
                "less than the minimum of 12"
            } else {
                "not a multiple of 4"
            }
        )));
    }
    if total_len > MAX_BLOCK_LEN {
        return Err(ParseError::failure(format!(
            "{name} claims a total length of {total_len} bytes, more than the maximum of \
             {MAX_BLOCK_LEN}; the block header is damaged"
        )));
    }
    if i.len() < total_len as usize {
        // Ask for the whole block at once so `Needed` is exact.
        return Err(nom::Err::Incomplete(nom::Needed::new(
            total_len as usize - i.len(),
        )));
    }
    let (rest, body) = take(total_len as usize - 12)(rest)?;
    let (rest, trailer) = num_u32(e)(rest)?;
    // The body is decoded before the trailing length is compared, as
    // Wireshark does, so a damaged option is named as such.
    let block = match block_type {
        BT_SHB => Block::Section(parse_shb_body(body, e)?),
        BT_IDB => Block::Interface(parse_idb_body(body, e)?),
        BT_EPB => Block::Enhanced(parse_epb_body(body, e)?),
        BT_SPB => Block::Simple(within(parse_spb_body(body, e), name)?.1),
        BT_PB => Block::Obsolete(parse_pb_body(body, e)?),
        block_type => Block::Other { block_type, body },
    };
    if trailer != total_len {
        return Err(ParseError::failure(format!(
            "{name} has a leading length of {total_len} bytes but a trailing length of \
             {trailer}; the block is damaged"
        )));
    }
    Ok((rest, block))
}

/// A person-readable name for a block type.
pub fn block_name(block_type: u32) -> &'static str {
    match block_type {
        BT_SHB => "Section Header Block",
        BT_IDB => "Interface Description Block",
        BT_PB => "Packet Block",
        BT_SPB => "Simple Packet Block",
        BT_NRB => "Name Resolution Block",
        BT_ISB => "Interface Statistics Block",
        BT_EPB => "Enhanced Packet Block",
        BT_DSB => "Decryption Secrets Block",
        BT_CUSTOM | BT_CUSTOM_NOCOPY => "Custom Block",
        _ => "block",
    }
}

fn parse_shb_body(body: &[u8], e: Endianness) -> Result<SectionHeader, nom::Err<ParseError>> {
    let what = "Section Header Block";
    fn fixed(i: &[u8], e: Endianness) -> PResult<'_, (u16, u16, i64)> {
        let (i, _bom) = num_u32(e)(i)?;
        let (i, major) = num_u16(e)(i)?;
        let (i, minor) = num_u16(e)(i)?;
        let (i, len) = num_i64(e)(i)?;
        Ok((i, (major, minor, len)))
    }
    let (opts, (major, minor, section_len)) = within(fixed(body, e), what)?;
    if major != 1 {
        return Err(ParseError::failure(format!(
            "Section Header Block has unsupported pcapng version {major}.{minor} (only 1.x exists)"
        )));
    }
    for_each_option(body, body.offset(opts), e, what, |_, _| {})?;
    Ok(SectionHeader {
        endianness: e,
        major,
        minor,
        section_len,
    })
}

fn parse_idb_body(
    body: &[u8],
    e: Endianness,
) -> Result<InterfaceDescription, nom::Err<ParseError>> {
    let what = "Interface Description Block";
    fn fixed(i: &[u8], e: Endianness) -> PResult<'_, (u16, u32)> {
        let (i, linktype) = num_u16(e)(i)?;
        let (i, _reserved) = num_u16(e)(i)?;
        let (i, snaplen) = num_u32(e)(i)?;
        Ok((i, (linktype, snaplen)))
    }
    let (opts, (linktype, snaplen)) = within(fixed(body, e), what)?;
    let mut idb = InterfaceDescription {
        linktype: Linktype(u32::from(linktype)),
        snaplen,
        tsresol: TsResol::default(),
        tsoffset: 0,
    };
    for_each_option(body, body.offset(opts), e, what, |code, value| match code {
        OPT_IF_TSRESOL if !value.is_empty() => idb.tsresol = TsResol::from_byte(value[0]),
        OPT_IF_TSOFFSET if value.len() >= 8 => {
            if let Ok((_, off)) = num_i64::<_, ParseError>(e)(value) {
                idb.tsoffset = off;
            }
        }
        _ => {}
    })?;
    Ok(idb)
}

/// Walks the options starting at `start` in `body`, calling `f(code, value)`
/// for each until `opt_endofopt` or the end of the body. An option header or
/// value that runs past the end of the body is a failure.
fn for_each_option(
    body: &[u8],
    start: usize,
    e: Endianness,
    what: &str,
    mut f: impl FnMut(u16, &[u8]),
) -> Result<(), nom::Err<ParseError>> {
    let mut pos = start;
    while pos < body.len() {
        let at = pos + 8; // position inside the block (after type and length)
        let rest = &body[pos..];
        if rest.len() < 4 {
            return Err(ParseError::failure(format!(
                "{what} has {} stray bytes at block byte {at} where an option header (4 bytes) \
                 should be",
                rest.len()
            )));
        }
        let (rest, code) = num_u16::<_, ParseError>(e)(rest)?;
        let (rest, len) = num_u16::<_, ParseError>(e)(rest)?;
        if code == OPT_ENDOFOPT {
            break;
        }
        let len = usize::from(len);
        if len > rest.len() {
            return Err(ParseError::failure(format!(
                "{what} option {code} at block byte {at} is {len} bytes long but only {} bytes \
                 of the block remain",
                rest.len()
            )));
        }
        f(code, &rest[..len]);
        let padded = (len + 3) & !3;
        pos += 4 + padded.min(rest.len());
    }
    Ok(())
}

fn check_caplen(what: &str, caplen: u32, room: usize) -> Result<(), nom::Err<ParseError>> {
    if caplen as usize > room {
        return Err(ParseError::failure(format!(
            "{what} claims {caplen} captured bytes but its body only has room for {room}"
        )));
    }
    Ok(())
}

fn parse_epb_body(body: &[u8], e: Endianness) -> Result<EnhancedPacket<'_>, nom::Err<ParseError>> {
    let what = "Enhanced Packet Block";
    type Fixed = (u32, u32, u32, u32, u32);
    fn fixed(i: &[u8], e: Endianness) -> PResult<'_, Fixed> {
        let (i, iface) = num_u32(e)(i)?;
        let (i, hi) = num_u32(e)(i)?;
        let (i, lo) = num_u32(e)(i)?;
        let (i, caplen) = num_u32(e)(i)?;
        let (i, orig) = num_u32(e)(i)?;
        Ok((i, (iface, hi, lo, caplen, orig)))
    }
    let (rest, (interface_id, hi, lo, caplen, orig_len)) = within(fixed(body, e), what)?;
    check_caplen(what, caplen, rest.len())?;
    let (data, rest) = rest.split_at(caplen as usize);
    let pad = ((caplen as usize + 3) & !3) - caplen as usize;
    let options = &rest[pad.min(rest.len())..];
    Ok(EnhancedPacket {
        interface_id,
        ts: (u64::from(hi) << 32) | u64::from(lo),
        orig_len,
        data,
        options,
    })
}

fn parse_spb_body(body: &[u8], e: Endianness) -> PResult<'_, SimplePacket<'_>> {
    let (rest, orig_len) = num_u32(e)(body)?;
    Ok((
        &[],
        SimplePacket {
            orig_len,
            body: rest,
        },
    ))
}

fn parse_pb_body(body: &[u8], e: Endianness) -> Result<ObsoletePacket<'_>, nom::Err<ParseError>> {
    let what = "Packet Block";
    type Fixed = (u16, u16, u32, u32, u32, u32);
    fn fixed(i: &[u8], e: Endianness) -> PResult<'_, Fixed> {
        let (i, iface) = num_u16(e)(i)?;
        let (i, drops) = num_u16(e)(i)?;
        let (i, hi) = num_u32(e)(i)?;
        let (i, lo) = num_u32(e)(i)?;
        let (i, caplen) = num_u32(e)(i)?;
        let (i, orig) = num_u32(e)(i)?;
        Ok((i, (iface, drops, hi, lo, caplen, orig)))
    }
    let (rest, (interface_id, drops, hi, lo, caplen, orig_len)) = within(fixed(body, e), what)?;
    check_caplen(what, caplen, rest.len())?;
    Ok(ObsoletePacket {
        interface_id,
        drops,
        ts: (u64::from(hi) << 32) | u64::from(lo),
        orig_len,
        data: &rest[..caplen as usize],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Little helper to build pcapng blocks in either byte order.
    pub(crate) struct W {
        pub big: bool,
        pub v: Vec<u8>,
    }

    impl W {
        pub fn new(big: bool) -> W {
            W { big, v: Vec::new() }
        }
        pub fn u16(&mut self, x: u16) -> &mut Self {
            let b = if self.big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            };
            self.v.extend_from_slice(&b);
            self
        }
        pub fn u32(&mut self, x: u32) -> &mut Self {
            let b = if self.big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            };
            self.v.extend_from_slice(&b);
            self
        }
        pub fn u64(&mut self, x: u64) -> &mut Self {
            let b = if self.big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            };
            self.v.extend_from_slice(&b);
            self
        }
        pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.v.extend_from_slice(b);
            while self.v.len() & 3 != 0 {
                self.v.push(0);
            }
            self
        }
        /// Wraps `body` (already in this order) into a block.
        pub fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
            let len = 12 + ((body.len() + 3) & !3) as u32;
            self.u32(block_type).u32(len).bytes(body).u32(len)
        }
        fn sub(&self) -> W {
            W::new(self.big)
        }
        pub fn shb(&mut self) -> &mut Self {
            let mut b = self.sub();
            b.u32(BYTE_ORDER_MAGIC).u16(1).u16(0).u64(u64::MAX);
            let body = b.v;
            self.block(BT_SHB, &body)
        }
        /// IDB with optional if_tsresol byte.
        pub fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>) -> &mut Self {
            let mut b = self.sub();
            b.u16(linktype).u16(0).u32(snaplen);
            if let Some(r) = tsresol {
                b.u16(OPT_IF_TSRESOL).u16(1).bytes(&[r]);
                b.u16(0).u16(0);
            }
            let body = b.v;
            self.block(BT_IDB, &body)
        }
        pub fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut b = self.sub();
            b.u32(iface)
                .u32((ts >> 32) as u32)
                .u32(ts as u32)
                .u32(data.len() as u32)
                .u32(orig)
                .bytes(data);
            let body = b.v;
            self.block(BT_EPB, &body)
        }
        pub fn spb(&mut self, orig: u32, data: &[u8]) -> &mut Self {
            let mut b = self.sub();
            b.u32(orig).bytes(data);
            let body = b.v;
            self.block(BT_SPB, &body)
        }
        pub fn pb(&mut self, iface: u16, ts: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut b = self.sub();
            b.u16(iface)
                .u16(0)
                .u32((ts >> 32) as u32)
                .u32(ts as u32)
                .u32(data.len() as u32)
                .u32(orig)
                .bytes(data);
            let body = b.v;
            self.block(BT_PB, &body)
        }
    }

    fn endian(big: bool) -> Endianness {
        if big {
            Endianness::Big
        } else {
            Endianness::Little
        }
    }

    #[test]
    fn shb_decides_endianness() {
        for big in [false, true] {
            let mut w = W::new(big);
            w.shb();
            // Parsed with the "wrong" current endianness: the SHB brings its own.
            let (rest, b) = parse_block(&w.v, endian(!big)).unwrap();
            assert!(rest.is_empty());
            match b {
                Block::Section(s) => {
                    assert_eq!(s.endianness, endian(big));
                    assert_eq!((s.major, s.minor, s.section_len), (1, 0, -1));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn idb_tsresol_and_timestamps() {
        for big in [false, true] {
            let mut w = W::new(big);
            w.idb(1, 65535, Some(9));
            let (_, b) = parse_block(&w.v, endian(big)).unwrap();
            let Block::Interface(idb) = b else { panic!() };
            assert_eq!(idb.tsresol, TsResol::Decimal(9));
            assert_eq!(idb.linktype, Linktype::ETHERNET);
            assert_eq!(idb.snaplen, 65535);
            assert_eq!(
                idb.timestamp(1_700_000_000_123_456_789),
                Timestamp::new(1_700_000_000, 123_456_789, 9)
            );

            let mut w = W::new(big);
            w.idb(113, 0, Some(0x80 | 20));
            let (_, b) = parse_block(&w.v, endian(big)).unwrap();
            let Block::Interface(idb) = b else { panic!() };
            assert_eq!(idb.tsresol, TsResol::Binary(20));
            // 5.5 s in units of 2^-20 s.
            assert_eq!(
                idb.timestamp((5 << 20) | (1 << 19)),
                Timestamp::new(5, 500_000_000, 9)
            );

            let mut w = W::new(big);
            w.idb(1, 0, None);
            let (_, b) = parse_block(&w.v, endian(big)).unwrap();
            let Block::Interface(idb) = b else { panic!() };
            assert_eq!(idb.tsresol, TsResol::Decimal(6));
            assert_eq!(idb.timestamp(1_500_001), Timestamp::new(1, 500_001_000, 6));
        }
    }

    #[test]
    fn tsoffset_is_added() {
        let mut o = W::new(false);
        o.u16(1).u16(0).u32(0);
        o.u16(OPT_IF_TSOFFSET).u16(8).u64(1_000_000_000);
        o.u16(0).u16(0);
        let mut w = W::new(false);
        w.block(BT_IDB, &o.v);
        let (_, b) = parse_block(&w.v, Endianness::Little).unwrap();
        let Block::Interface(idb) = b else { panic!() };
        assert_eq!(idb.tsoffset, 1_000_000_000);
        assert_eq!(idb.timestamp(2_000_000).secs, 1_000_000_002);
    }

    #[test]
    fn extreme_resolutions_do_not_panic() {
        for b in 0..=255u8 {
            for units in [0, 1, u64::MAX, 1 << 63] {
                let t = TsResol::from_byte(b).to_timestamp(units, i64::MAX);
                assert!(t.nanos < 1_000_000_000);
                let _ = TsResol::from_byte(b).to_timestamp(units, i64::MIN);
            }
        }
        assert_eq!(TsResol::Decimal(0).to_timestamp(u64::MAX, 0).secs, i64::MAX);
        assert_eq!(
            TsResol::Decimal(12).to_timestamp(1_000_000_000_001_999, 0),
            Timestamp::new(1000, 1, 9)
        );
    }

    #[test]
    fn packet_blocks() {
        for big in [false, true] {
            let e = endian(big);
            let mut w = W::new(big);
            w.epb(2, (1 << 32) | 7, b"hello", 10);
            let (rest, b) = parse_block(&w.v, e).unwrap();
            assert!(rest.is_empty());
            let Block::Enhanced(p) = b else { panic!() };
            assert_eq!((p.interface_id, p.ts, p.orig_len), (2, (1 << 32) | 7, 10));
            assert_eq!(p.data, b"hello");
            assert!(p.options.is_empty());

            let mut w = W::new(big);
            w.spb(6, b"abcdef");
            let (_, b) = parse_block(&w.v, e).unwrap();
            let Block::Simple(p) = b else { panic!() };
            assert_eq!(p.data(0), b"abcdef");
            assert_eq!(p.data(4), b"abcd");
            // Original length larger than the body: clipped to the body.
            let mut w = W::new(big);
            w.spb(100, b"abcdef");
            let (_, b) = parse_block(&w.v, e).unwrap();
            let Block::Simple(p) = b else { panic!() };
            assert_eq!(p.data(0), b"abcdef\0\0");

            let mut w = W::new(big);
            w.pb(1, 99, b"xyz", 3);
            let (_, b) = parse_block(&w.v, e).unwrap();
            let Block::Obsolete(p) = b else { panic!() };
            assert_eq!((p.interface_id, p.ts, p.orig_len), (1, 99, 3));
            assert_eq!(p.data, b"xyz");

            let mut w = W::new(big);
            w.block(0x1234_5678, b"whatever");
            let (_, b) = parse_block(&w.v, e).unwrap();
            assert!(matches!(
                b,
                Block::Other {
                    block_type: 0x1234_5678,
                    ..
                }
            ));
        }
    }

    #[test]
    fn framing_errors() {
        let e = Endianness::Little;
        let mut w = W::new(false);
        w.u32(BT_EPB).u32(13);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        let mut w = W::new(false);
        w.u32(BT_EPB).u32(8);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        let mut w = W::new(false);
        w.u32(BT_NRB).u32(16).u32(0).u32(20);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        // caplen larger than the body.
        let mut w = W::new(false);
        w.u32(BT_EPB)
            .u32(32)
            .u32(0)
            .u32(0)
            .u32(0)
            .u32(100)
            .u32(100)
            .u32(32);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        // EPB body too short for its fields.
        let mut w = W::new(false);
        w.u32(BT_EPB).u32(16).u32(0).u32(16);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        // Option running past the end of the IDB.
        let mut o = W::new(false);
        o.u16(1).u16(0).u32(0).u16(2).u16(200).u32(0);
        let mut w = W::new(false);
        w.block(BT_IDB, &o.v);
        assert!(matches!(parse_block(&w.v, e), Err(nom::Err::Failure(_))));
        // Every strict prefix of a valid block is Incomplete.
        let mut w = W::new(false);
        w.shb().idb(1, 0, Some(6));
        let shb_len = 28;
        for n in 0..shb_len {
            assert!(
                matches!(parse_block(&w.v[..n], e), Err(nom::Err::Incomplete(_))),
                "{n}"
            );
        }
    }
}
