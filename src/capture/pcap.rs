//! Classic libpcap files: sans-IO nom parsers for the file header and the
//! packet records.
//!
//! Supported: microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`) files in
//! either byte order, and the Kuznetzov "modified pcap" (`a1b2cd34`) whose
//! record headers carry 8 extra bytes (ifindex u32, protocol u16, pkt_type
//! u8, pad u8). The byte order is a runtime [`Endianness`]; every parser is
//! streaming and answers `Err(nom::Err::Incomplete(_))` when it needs more
//! bytes.

use nom::bytes::streaming::take;
use nom::number::streaming::{i32 as num_i32, u16 as num_u16, u32 as num_u32, u8 as num_u8};
use nom::number::Endianness;

use super::error::{PResult, ParseError};
use super::{Linktype, Timestamp};

/// Magic of a microsecond-resolution file, as read in the file's byte order.
pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic of a nanosecond-resolution file.
pub const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Magic of Alexey Kuznetzov's "modified pcap" (microseconds, 24-byte record headers).
pub const MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a standard record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Length of a modified-pcap record header.
pub const MODIFIED_RECORD_HEADER_LEN: usize = 24;

/// Above this captured length a record is only accepted when the file's
/// snaplen announces it (`incl_len <= snaplen`).
pub const SOFT_MAX_RECORD: u32 = 16 * 1024 * 1024;
/// Above this captured length a record is always corrupt, whatever the snaplen.
pub const HARD_MAX_RECORD: u32 = 256 * 1024 * 1024;
/// libpcap's / Wireshark's usual maximum snaplen.
pub const MAX_SNAPLEN: u32 = 262_144;

/// What the 4 magic bytes say, if they are a pcap magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagicInfo {
    pub endianness: Endianness,
    pub nanos: bool,
    pub modified: bool,
}

/// Recognises a pcap magic in either byte order.
pub fn magic_info(magic: [u8; 4]) -> Option<MagicInfo> {
    let le = u32::from_le_bytes(magic);
    let be = u32::from_be_bytes(magic);
    for (value, endianness) in [(be, Endianness::Big), (le, Endianness::Little)] {
        let (nanos, modified) = match value {
            MAGIC_USEC => (false, false),
            MAGIC_NSEC => (true, false),
            MAGIC_MODIFIED => (false, true),
            _ => continue,
        };
        return Some(MagicInfo {
            endianness,
            nanos,
            modified,
        });
    }
    None
}

/// The 24-byte pcap file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub endianness: Endianness,
    /// Nanosecond timestamps (otherwise microseconds).
    pub nanos: bool,
    /// Kuznetzov modified pcap (24-byte record headers).
    pub modified: bool,
    pub version_major: u16,
    pub version_minor: u16,
    pub thiszone: i32,
    pub sigfigs: u32,
    pub snaplen: u32,
    /// The raw `network` field (link type plus FCS bits).
    pub network: u32,
    /// Link type: the low 16 bits of `network`.
    pub linktype: Linktype,
}

impl FileHeader {
    /// Length of one record header in this file.
    pub fn record_header_len(&self) -> usize {
        if self.modified {
            MODIFIED_RECORD_HEADER_LEN
        } else {
            RECORD_HEADER_LEN
        }
    }

    /// Largest captured length this file may carry (see [`SOFT_MAX_RECORD`]).
    pub fn max_record(&self) -> u32 {
        let announced = self.snaplen.max(MAX_SNAPLEN).max(SOFT_MAX_RECORD);
        announced.min(HARD_MAX_RECORD)
    }
}

/// Parses the file header. A buffer not starting with a pcap magic gives
/// `Err(nom::Err::Error(_))`.
pub fn parse_file_header(i: &[u8]) -> PResult<'_, FileHeader> {
    let (rest, magic) = take(4usize)(i)?;
    let info = match magic_info([magic[0], magic[1], magic[2], magic[3]]) {
        Some(info) => info,
        None => {
            return Err(nom::Err::Error(ParseError::Invalid(
                "not a pcap magic number".into(),
            )))
        }
    };
    let e = info.endianness;
    // Ask for the whole header at once so `Needed` is exact.
    if rest.len() < FILE_HEADER_LEN - 4 {
        return Err(nom::Err::Incomplete(nom::Needed::new(
            FILE_HEADER_LEN - 4 - rest.len(),
        )));
    }
    let (rest, version_major) = num_u16(e)(rest)?;
    let (rest, version_minor) = num_u16(e)(rest)?;
    let (rest, thiszone) = num_i32(e)(rest)?;
    let (rest, sigfigs) = num_u32(e)(rest)?;
    let (rest, snaplen) = num_u32(e)(rest)?;
    let (rest, network) = num_u32(e)(rest)?;
    let linktype = Linktype(network & 0x0FFF_FFFF & 0xFFFF);
    Ok((
        rest,
        FileHeader {
            endianness: e,
            nanos: info.nanos,
            modified: info.modified,
            version_major,
            version_minor,
            thiszone,
            sigfigs,
            snaplen,
            network,
            linktype,
        },
    ))
}

/// Extra fields of a modified-pcap record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModifiedInfo {
    pub ifindex: u32,
    pub protocol: u16,
    pub pkt_type: u8,
}

/// One packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub ts_sec: u32,
    /// Microseconds or nanoseconds, per the file header.
    pub ts_frac: u32,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Present in modified-pcap files only.
    pub modified: Option<ModifiedInfo>,
}

impl Record<'_> {
    /// The record's timestamp at the file's resolution. A fractional part
    /// that is out of range carries into the seconds instead of being lost.
    pub fn timestamp(&self, nanos: bool) -> Timestamp {
        let (per_sec, scale, digits) = if nanos {
            (1_000_000_000u32, 1u32, 9)
        } else {
            (1_000_000, 1_000, 6)
        };
        let secs = i64::from(self.ts_sec) + i64::from(self.ts_frac / per_sec);
        Timestamp::new(secs, (self.ts_frac % per_sec) * scale, digits)
    }
}

/// Parses one record. A captured length above [`FileHeader::max_record`] is
/// reported as `Err(nom::Err::Failure(_))` before asking for its bytes.
pub fn parse_record<'a>(i: &'a [u8], hdr: &FileHeader) -> PResult<'a, Record<'a>> {
    let hlen = hdr.record_header_len();
    if i.len() < hlen {
        return Err(nom::Err::Incomplete(nom::Needed::new(hlen - i.len())));
    }
    let e = hdr.endianness;
    let (rest, ts_sec) = num_u32(e)(i)?;
    let (rest, ts_frac) = num_u32(e)(rest)?;
    let (rest, incl_len) = num_u32(e)(rest)?;
    let (rest, orig_len) = num_u32(e)(rest)?;
    let (rest, modified) = if hdr.modified {
        let (rest, ifindex) = num_u32(e)(rest)?;
        let (rest, protocol) = num_u16(e)(rest)?;
        let (rest, pkt_type) = num_u8(rest)?;
        let (rest, _pad) = num_u8(rest)?;
        (
            rest,
            Some(ModifiedInfo {
                ifindex,
                protocol,
                pkt_type,
            }),
        )
    } else {
        (rest, None)
    };
    if incl_len > hdr.max_record() {
        return Err(ParseError::failure(format!(
            "a packet record claims {incl_len} captured bytes, more than the maximum of {} \
             (snaplen {}); the record header is damaged",
            hdr.max_record(),
            hdr.snaplen
        )));
    }
    let (rest, data) = take(incl_len)(rest)?;
    Ok((
        rest,
        Record {
            ts_sec,
            ts_frac,
            orig_len,
            data,
            modified,
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a pcap file: header then records `(sec, frac, data, orig_len)`.
    pub(crate) fn build(
        big: bool,
        magic: u32,
        linktype: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let mut v = Vec::new();
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, linktype);
        for (sec, frac, data, orig) in records {
            w32(&mut v, *sec);
            w32(&mut v, *frac);
            w32(&mut v, data.len() as u32);
            w32(&mut v, *orig);
            if magic == MAGIC_MODIFIED {
                w32(&mut v, 7);
                w16(&mut v, 0x0800);
                v.push(4);
                v.push(0);
            }
            v.extend_from_slice(data);
        }
        v
    }

    #[test]
    fn header_both_orders() {
        for big in [false, true] {
            for (magic, nanos) in [(MAGIC_USEC, false), (MAGIC_NSEC, true)] {
                let f = build(big, magic, 0x1000_0001, &[]);
                let (rest, h) = parse_file_header(&f).unwrap();
                assert!(rest.is_empty());
                assert_eq!(h.nanos, nanos);
                assert!(!h.modified);
                assert_eq!(
                    h.endianness,
                    if big {
                        Endianness::Big
                    } else {
                        Endianness::Little
                    }
                );
                assert_eq!(h.snaplen, 65535);
                // FCS bits masked off.
                assert_eq!(h.linktype, Linktype::ETHERNET);
                assert_eq!((h.version_major, h.version_minor), (2, 4));
            }
        }
    }

    #[test]
    fn header_incomplete_and_bad_magic() {
        let f = build(false, MAGIC_USEC, 1, &[]);
        for n in 0..FILE_HEADER_LEN {
            assert!(
                matches!(parse_file_header(&f[..n]), Err(nom::Err::Incomplete(_))),
                "{n}"
            );
        }
        assert!(matches!(
            parse_file_header(b"\x3c\x21\x44\x4fxxxxxxxxxxxxxxxxxxxxxxxx"),
            Err(nom::Err::Error(_))
        ));
    }

    #[test]
    fn records_usec_nsec_modified() {
        let data: &[u8] = b"\x01\x02\x03\x04\x05";
        for big in [false, true] {
            let f = build(big, MAGIC_USEC, 1, &[(100, 250_000, data, 60)]);
            let (rest, h) = parse_file_header(&f).unwrap();
            let (rest, r) = parse_record(rest, &h).unwrap();
            assert!(rest.is_empty());
            assert_eq!(r.data, data);
            assert_eq!(r.orig_len, 60);
            assert_eq!(r.timestamp(h.nanos), Timestamp::new(100, 250_000_000, 6));

            let f = build(big, MAGIC_NSEC, 1, &[(100, 5, data, 5)]);
            let (rest, h) = parse_file_header(&f).unwrap();
            let (_, r) = parse_record(rest, &h).unwrap();
            assert_eq!(r.timestamp(h.nanos), Timestamp::new(100, 5, 9));

            let f = build(big, MAGIC_MODIFIED, 1, &[(1, 2, data, 5)]);
            let (rest, h) = parse_file_header(&f).unwrap();
            assert!(h.modified && !h.nanos);
            let (rest, r) = parse_record(rest, &h).unwrap();
            assert!(rest.is_empty());
            assert_eq!(r.data, data);
            assert_eq!(
                r.modified,
                Some(ModifiedInfo {
                    ifindex: 7,
                    protocol: 0x0800,
                    pkt_type: 4
                })
            );
        }
    }

    #[test]
    fn out_of_range_fraction_carries() {
        let r = Record {
            ts_sec: u32::MAX,
            ts_frac: u32::MAX,
            orig_len: 0,
            data: &[],
            modified: None,
        };
        let t = r.timestamp(false);
        assert_eq!(t.secs, i64::from(u32::MAX) + 4294);
        assert_eq!(t.nanos, 967_295_000);
    }

    #[test]
    fn huge_record_is_failure_not_incomplete() {
        let mut f = build(false, MAGIC_USEC, 1, &[]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
        f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
        let (rest, h) = parse_file_header(&f).unwrap();
        assert!(matches!(parse_record(rest, &h), Err(nom::Err::Failure(_))));
        // A record above 262144 but announced by a big snaplen is fine.
        let mut h2 = h;
        h2.snaplen = 20 * 1024 * 1024;
        assert_eq!(h2.max_record(), 20 * 1024 * 1024);
        h2.snaplen = u32::MAX;
        assert_eq!(h2.max_record(), HARD_MAX_RECORD);
    }
}
