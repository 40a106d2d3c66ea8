//! The buffered adapter between a byte source (file, stdin, gzip stream) and
//! the sans-IO parsers in [`pcap`](super::pcap) and [`pcapng`](super::pcapng).
//!
//! Memory stays constant: one reusable buffer (1 MiB to start) is refilled
//! with large `read` calls and compacted when a record straddles its end. It
//! only grows when a single record/block is larger than the buffer, by
//! doubling after the bytes already read have filled it, so a record header
//! that lies about its length cannot make us allocate more than twice the
//! bytes that really follow it (and never more than the record caps).

use std::io::{Cursor, Read};
use std::path::Path;

use nom::number::Endianness;
use nom::Offset;

use super::error::ParseError;
use super::pcap::{self, FileHeader};
use super::pcapng::{self, Block, InterfaceDescription};
use super::{Error, Linktype, Packet, Timestamp};

/// Initial (and usual) size of the read buffer.
const INITIAL_BUF: usize = 1 << 20;
/// Interfaces per pcapng section beyond which the file is considered corrupt.
const MAX_INTERFACES: usize = 1 << 20;

/// What kind of capture is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// Kuznetzov "modified pcap" (24-byte record headers).
        modified: bool,
        linktype: Linktype,
        snaplen: u32,
    },
    Pcapng,
}

/// Counters of what has been read so far.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct ReadStats {
    /// Packets returned.
    pub packets: u64,
    /// Bytes of the (decompressed) stream consumed: headers plus every
    /// complete record/block parsed so far.
    pub bytes: u64,
    /// pcapng Section Header Blocks (0 for pcap).
    pub sections: u64,
    /// pcapng Interface Description Blocks (0 for pcap).
    pub interfaces: u64,
    /// pcapng blocks skipped: NRB, ISB, DSB, custom and unknown types.
    pub skipped_blocks: u64,
    /// The source was gzip-compressed.
    pub gzip: bool,
}

enum State {
    Pcap(FileHeader),
    Pcapng {
        endianness: Endianness,
        interfaces: Vec<InterfaceDescription>,
    },
}

/// Where the next packet lies in the buffer, and its metadata.
struct Meta {
    ts: Timestamp,
    linktype: Linktype,
    data_start: usize,
    data_len: usize,
    orig_len: u32,
    interface: u32,
    offset: u64,
}

/// Result of parsing at the buffer's read position.
enum Step {
    Packet(Meta, usize),
    Skip(usize),
    Need(usize),
    Bad(String),
}

/// Reads packets from a pcap / pcapng (optionally gzip-compressed) stream.
pub struct Reader {
    src: Box<dyn Read + Send>,
    source_name: String,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    pos: u64,
    eof: bool,
    done: bool,
    format: Format,
    state: State,
    stats: ReadStats,
    linktypes: Vec<Linktype>,
    /// Bitset over 16-bit link types, mirrors `linktypes`.
    seen: Vec<u64>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("source_name", &self.source_name)
            .field("format", &self.format)
            .field("pos", &self.pos)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens a path; "-" means standard input. gzip is detected by its magic
    /// (1f 8b), never by the file name, and decompressed on the fly.
    pub fn open(path: &Path) -> Result<Reader, Error> {
        if path.as_os_str() == "-" {
            return Reader::from_read(Box::new(std::io::stdin()), "standard input");
        }
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            source_name: name.clone(),
            source,
        })?;
        Reader::from_read(Box::new(file), &name)
    }

    /// Same over any reader; `source_name` is used in messages.
    pub fn from_read(r: Box<dyn Read + Send>, source_name: &str) -> Result<Reader, Error> {
        let mut src = r;
        let mut magic = [0u8; 4];
        let io_err = |source| Error::Io {
            source_name: source_name.to_string(),
            source,
        };
        let mut n = read_up_to(&mut *src, &mut magic).map_err(io_err)?;
        let gzip = n >= 2 && magic[..2] == [0x1f, 0x8b];
        let mut name_for_magic = source_name.to_string();
        if gzip {
            let prefix = Cursor::new(magic[..n].to_vec());
            src = Box::new(flate2::read::MultiGzDecoder::new(prefix.chain(src)));
            magic = [0; 4];
            n = read_up_to(&mut *src, &mut magic).map_err(|e| gzip_error(e, 0))?;
            name_for_magic.push_str(" (after gzip decompression)");
        }
        let not_capture = || Error::NotCapture {
            source_name: name_for_magic.clone(),
            magic,
        };
        if n < 4 {
            return Err(Error::TooShort {
                source_name: name_for_magic.clone(),
                len: n,
            });
        }
        let is_pcapng = magic == pcapng::FILE_MAGIC;
        if !is_pcapng && pcap::magic_info(magic).is_none() {
            return Err(not_capture());
        }
        let mut buf = vec![0u8; INITIAL_BUF];
        buf[..4].copy_from_slice(&magic);
        let mut rd = Reader {
            src,
            source_name: source_name.to_string(),
            buf,
            start: 0,
            end: 4,
            pos: 0,
            eof: false,
            done: false,
            // For pcap both are replaced once the file header is read.
            format: Format::Pcapng,
            state: State::Pcapng {
                endianness: Endianness::Little,
                interfaces: Vec::new(),
            },
            stats: ReadStats {
                gzip,
                ..ReadStats::default()
            },
            linktypes: Vec::new(),
            seen: vec![0; 1024],
        };
        if !is_pcapng {
            rd.read_pcap_header()?;
        }
        Ok(rd)
    }

    fn read_pcap_header(&mut self) -> Result<(), Error> {
        loop {
            let avail = &self.buf[self.start..self.end];
            match pcap::parse_file_header(avail) {
                Ok((rest, hdr)) => {
                    let consumed = avail.len() - rest.len();
                    self.advance(consumed);
                    self.format = Format::Pcap {
                        big_endian: hdr.endianness == Endianness::Big,
                        nanos: hdr.nanos,
                        modified: hdr.modified,
                        linktype: hdr.linktype,
                        snaplen: hdr.snaplen,
                    };
                    note_linktype(&mut self.linktypes, &mut self.seen, hdr.linktype);
                    self.state = State::Pcap(hdr);
                    return Ok(());
                }
                Err(nom::Err::Incomplete(needed)) => {
                    let need = avail.len() + needed_bytes(needed);
                    if self.eof {
                        return Err(Error::Truncated {
                            offset: 0,
                            what: "pcap file header",
                            needed: need as u64,
                            available: avail.len() as u64,
                        });
                    }
                    self.refill(need)?;
                }
                Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                    return Err(Error::Corrupt {
                        offset: 0,
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    /// The capture format, as announced by the file's magic and header.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Counters of what has been read so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Link types seen so far (pcap: the header's; pcapng: every IDB's), in
    /// order of first appearance, without duplicates.
    pub fn linktypes(&self) -> &[Linktype] {
        &self.linktypes
    }

    /// Next packet, borrowed from the internal buffer; `Ok(None)` at the clean
    /// end of the file. A truncated or corrupt file gives one `Err` (with the
    /// byte offset of the record/block) and then `Ok(None)` forever.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        if self.done {
            return Ok(None);
        }
        match self.step() {
            Ok(Some(m)) => Ok(Some(Packet {
                ts: m.ts,
                linktype: m.linktype,
                data: &self.buf[m.data_start..m.data_start + m.data_len],
                orig_len: m.orig_len,
                interface: m.interface,
                offset: m.offset,
            })),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
        self.stats.bytes = self.pos;
    }

    fn step(&mut self) -> Result<Option<Meta>, Error> {
        loop {
            let start = self.start;
            let avail = &self.buf[start..self.end];
            let step = match &mut self.state {
                State::Pcap(hdr) => match pcap::parse_record(avail, hdr) {
                    Ok((rest, r)) => Step::Packet(
                        Meta {
                            ts: r.timestamp(hdr.nanos),
                            linktype: hdr.linktype,
                            data_start: start + avail.offset(r.data),
                            data_len: r.data.len(),
                            orig_len: r.orig_len,
                            interface: 0,
                            offset: self.pos,
                        },
                        avail.len() - rest.len(),
                    ),
                    Err(e) => incomplete_or_bad(avail.len(), e),
                },
                State::Pcapng {
                    endianness,
                    interfaces,
                } => match pcapng::parse_block(avail, *endianness) {
                    Ok((rest, block)) => {
                        let consumed = avail.len() - rest.len();
                        let packet =
                            |iface: u32,
                             ts: Option<u64>,
                             data: &[u8],
                             orig_len: u32,
                             interfaces: &[InterfaceDescription]| {
                                match interfaces.get(iface as usize) {
                                    Some(idb) => Step::Packet(
                                        Meta {
                                            ts: match ts {
                                                Some(units) => idb.timestamp(units),
                                                None => Timestamp::default(),
                                            },
                                            linktype: idb.linktype,
                                            data_start: start + avail.offset(data),
                                            data_len: data.len(),
                                            orig_len,
                                            interface: iface,
                                            offset: self.pos,
                                        },
                                        consumed,
                                    ),
                                    None => Step::Bad(format!(
                                    "a packet names interface {iface}, but this section defines \
                                     only {} interface(s)",
                                    interfaces.len()
                                )),
                                }
                            };
                        match block {
                            Block::Section(shb) => {
                                *endianness = shb.endianness;
                                interfaces.clear();
                                self.stats.sections += 1;
                                Step::Skip(consumed)
                            }
                            Block::Interface(idb) => {
                                if interfaces.len() >= MAX_INTERFACES {
                                    Step::Bad(format!(
                                        "more than {MAX_INTERFACES} interfaces in one section"
                                    ))
                                } else {
                                    interfaces.push(idb);
                                    self.stats.interfaces += 1;
                                    note_linktype(
                                        &mut self.linktypes,
                                        &mut self.seen,
                                        idb.linktype,
                                    );
                                    Step::Skip(consumed)
                                }
                            }
                            Block::Enhanced(p) => {
                                packet(p.interface_id, Some(p.ts), p.data, p.orig_len, interfaces)
                            }
                            Block::Obsolete(p) => packet(
                                u32::from(p.interface_id),
                                Some(p.ts),
                                p.data,
                                p.orig_len,
                                interfaces,
                            ),
                            Block::Simple(p) => match interfaces.first() {
                                // No timestamp in an SPB: the epoch stands for "unknown".
                                Some(idb) => {
                                    packet(0, None, p.data(idb.snaplen), p.orig_len, interfaces)
                                }
                                None => Step::Bad(
                                    "a Simple Packet Block appears before any Interface \
                                     Description Block in its section"
                                        .into(),
                                ),
                            },
                            Block::Other { .. } => {
                                self.stats.skipped_blocks += 1;
                                Step::Skip(consumed)
                            }
                        }
                    }
                    Err(e) => incomplete_or_bad(avail.len(), e),
                },
            };
            match step {
                Step::Packet(meta, consumed) => {
                    self.advance(consumed);
                    self.stats.packets += 1;
                    return Ok(Some(meta));
                }
                Step::Skip(consumed) => self.advance(consumed),
                Step::Bad(reason) => {
                    return Err(Error::Corrupt {
                        offset: self.pos,
                        reason,
                    })
                }
                Step::Need(need) => {
                    let available = self.end - self.start;
                    if self.eof {
                        if available == 0 {
                            return Ok(None);
                        }
                        return Err(Error::Truncated {
                            offset: self.pos,
                            what: self.truncated_what(),
                            needed: need as u64,
                            available: available as u64,
                        });
                    }
                    self.refill(need)?;
                }
            }
        }
    }

    /// Names what is cut short at the read position (end of file reached).
    fn truncated_what(&self) -> &'static str {
        let avail = &self.buf[self.start..self.end];
        match &self.state {
            State::Pcap(hdr) => {
                if avail.len() < hdr.record_header_len() {
                    "pcap record header"
                } else {
                    "pcap packet record"
                }
            }
            State::Pcapng { endianness, .. } => {
                if avail.len() < 8 {
                    return "pcapng block header";
                }
                let t = [avail[0], avail[1], avail[2], avail[3]];
                let t = match endianness {
                    Endianness::Big => u32::from_be_bytes(t),
                    _ => u32::from_le_bytes(t),
                };
                match t {
                    pcapng::BT_SHB => "pcapng Section Header Block",
                    pcapng::BT_IDB => "pcapng Interface Description Block",
                    pcapng::BT_EPB => "pcapng Enhanced Packet Block",
                    pcapng::BT_SPB => "pcapng Simple Packet Block",
                    pcapng::BT_PB => "pcapng Packet Block",
                    _ => "pcapng block",
                }
            }
        }
    }

    /// Makes room for `need` bytes from the read position and reads once.
    fn refill(&mut self, need: usize) -> Result<(), Error> {
        if self.start > 0 && (self.end == self.buf.len() || self.buf.len() - self.start < need) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // A single record larger than the buffer: grow, at most doubling,
            // so the allocation follows the bytes actually present.
            let len = self.buf.len();
            let new_len = need.clamp(len + 1, len * 2);
            self.buf.resize(new_len, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n.min(self.buf.len() - self.end);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(if self.stats.gzip {
                        gzip_error(e, self.pos + (self.end - self.start) as u64)
                    } else {
                        Error::Io {
                            source_name: self.source_name.clone(),
                            source: e,
                        }
                    })
                }
            }
        }
    }
}

fn needed_bytes(n: nom::Needed) -> usize {
    match n {
        nom::Needed::Size(n) => n.get(),
        nom::Needed::Unknown => 1,
    }
}

fn incomplete_or_bad(avail: usize, e: nom::Err<ParseError>) -> Step {
    match e {
        nom::Err::Incomplete(n) => Step::Need(avail.saturating_add(needed_bytes(n))),
        nom::Err::Error(e) | nom::Err::Failure(e) => Step::Bad(e.to_string()),
    }
}

fn note_linktype(list: &mut Vec<Linktype>, seen: &mut [u64], lt: Linktype) {
    let bit = (lt.0 & 0xFFFF) as usize;
    let (word, mask) = (bit / 64, 1u64 << (bit % 64));
    if lt.0 > 0xFFFF {
        if !list.contains(&lt) {
            list.push(lt);
        }
    } else if seen[word] & mask == 0 {
        seen[word] |= mask;
        list.push(lt);
    }
}

/// A failure of the gzip layer: the stream is damaged or cut short.
fn gzip_error(e: std::io::Error, offset: u64) -> Error {
    Error::Corrupt {
        offset,
        reason: format!(
            "the gzip stream is damaged or cut short after {offset} decompressed bytes ({e})"
        ),
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k.min(buf.len() - n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pcap::tests::build;
    use crate::capture::pcap::{MAGIC_MODIFIED, MAGIC_NSEC, MAGIC_USEC};
    use crate::capture::pcapng::tests::W;
    use std::io::Write;

    /// One packet, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct P {
        ts: Timestamp,
        linktype: Linktype,
        data: Vec<u8>,
        orig_len: u32,
        interface: u32,
        offset: u64,
    }

    /// Reads everything: packets, then the error that ended it (if any).
    fn drain(mut rd: Reader) -> (Vec<P>, Option<Error>, Reader) {
        let mut out = Vec::new();
        let err = loop {
            match rd.next_packet() {
                Ok(Some(p)) => out.push(P {
                    ts: p.ts,
                    linktype: p.linktype,
                    data: p.data.to_vec(),
                    orig_len: p.orig_len,
                    interface: p.interface,
                    offset: p.offset,
                }),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        // Once finished, always Ok(None).
        for _ in 0..3 {
            assert!(matches!(rd.next_packet(), Ok(None)));
        }
        (out, err, rd)
    }

    fn open_bytes(b: &[u8]) -> Result<Reader, Error> {
        Reader::from_read(Box::new(Cursor::new(b.to_vec())), "test")
    }

    fn read_bytes(b: &[u8]) -> (Vec<P>, Option<Error>, Reader) {
        drain(open_bytes(b).expect("opens"))
    }

    /// A source that hands out at most `chunk` bytes per read call.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn pcap_le_be_usec_nsec() {
        for big in [false, true] {
            for (magic, nanos) in [(MAGIC_USEC, false), (MAGIC_NSEC, true)] {
                let f = build(
                    big,
                    magic,
                    113,
                    &[(10, 20, b"abc", 3), (11, 999, b"defgh", 1500)],
                );
                let (pk, err, rd) = read_bytes(&f);
                assert!(err.is_none(), "{err:?}");
                assert_eq!(
                    rd.format(),
                    &Format::Pcap {
                        big_endian: big,
                        nanos,
                        modified: false,
                        linktype: Linktype::LINUX_SLL,
                        snaplen: 65535
                    }
                );
                assert_eq!(rd.linktypes(), &[Linktype::LINUX_SLL]);
                assert_eq!(pk.len(), 2);
                let frac = |x: u32| if nanos { x } else { x * 1000 };
                let digits = if nanos { 9 } else { 6 };
                assert_eq!(pk[0].ts, Timestamp::new(10, frac(20), digits));
                assert_eq!(pk[1].ts, Timestamp::new(11, frac(999), digits));
                assert_eq!(pk[0].data, b"abc");
                assert_eq!(pk[1].data, b"defgh");
                assert_eq!(pk[1].orig_len, 1500);
                assert_eq!((pk[0].offset, pk[1].offset), (24, 24 + 16 + 3));
                assert_eq!(pk[0].linktype, Linktype::LINUX_SLL);
                assert_eq!(rd.stats().packets, 2);
                assert_eq!(rd.stats().bytes, f.len() as u64);
                assert!(!rd.stats().gzip);
            }
        }
    }

    #[test]
    fn modified_pcap() {
        let f = build(false, MAGIC_MODIFIED, 1, &[(5, 6, b"0123456789", 10)]);
        let (pk, err, rd) = read_bytes(&f);
        assert!(err.is_none());
        assert!(matches!(
            rd.format(),
            Format::Pcap {
                modified: true,
                nanos: false,
                ..
            }
        ));
        assert_eq!(pk.len(), 1);
        assert_eq!(pk[0].data, b"0123456789");
        assert_eq!(pk[0].ts, Timestamp::new(5, 6000, 6));
    }

    /// Two sections, little- then big-endian, with IDBs at 10^-9 and 2^-20,
    /// an SPB, an obsolete Packet Block and skipped blocks.
    fn two_sections() -> Vec<u8> {
        let mut a = W::new(false);
        a.shb()
            .idb(1, 0, Some(9))
            .block(pcapng::BT_NRB, &[0, 0, 0, 0])
            .epb(0, 1_700_000_000_123_456_789, b"first", 60)
            .idb(101, 0, Some(0x80 | 20))
            .epb(1, (3 << 20) | (1 << 18), b"second", 6)
            .block(0x7777, b"unknown block")
            .block(pcapng::BT_CUSTOM, b"\0\0\x7e\xd9custom");
        let mut b = W::new(true);
        b.shb()
            .idb(228, 4, None)
            .spb(100, b"simple-packet")
            .pb(0, 2_000_001, b"old", 3)
            .block(pcapng::BT_ISB, &[0; 12]);
        a.v.extend_from_slice(&b.v);
        a.v
    }

    #[test]
    fn pcapng_two_sections_mixed_endianness() {
        let f = two_sections();
        let (pk, err, rd) = read_bytes(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(rd.format(), &Format::Pcapng);
        assert_eq!(pk.len(), 4);
        assert_eq!(pk[0].ts, Timestamp::new(1_700_000_000, 123_456_789, 9));
        assert_eq!(pk[0].data, b"first");
        assert_eq!(
            (pk[0].linktype, pk[0].interface, pk[0].orig_len),
            (Linktype::ETHERNET, 0, 60)
        );
        assert_eq!(pk[1].ts, Timestamp::new(3, 250_000_000, 9));
        assert_eq!((pk[1].linktype, pk[1].interface), (Linktype::RAW, 1));
        // SPB: clipped to interface 0's snaplen (4); no timestamp.
        assert_eq!(pk[2].data, b"simp");
        assert_eq!((pk[2].orig_len, pk[2].linktype), (100, Linktype::IPV4));
        assert_eq!(pk[2].ts, Timestamp::default());
        // Obsolete Packet Block, default resolution 10^-6.
        assert_eq!(pk[3].data, b"old");
        assert_eq!(pk[3].ts, Timestamp::new(2, 1000, 6));
        let s = rd.stats();
        assert_eq!(
            (s.packets, s.sections, s.interfaces, s.skipped_blocks),
            (4, 2, 3, 4)
        );
        assert_eq!(s.bytes, f.len() as u64);
        assert_eq!(
            rd.linktypes(),
            &[Linktype::ETHERNET, Linktype::RAW, Linktype::IPV4]
        );
        // Offsets point at the blocks.
        for p in &pk {
            let t = &f[p.offset as usize..p.offset as usize + 4];
            assert!(
                t == [6, 0, 0, 0] || t == [0, 0, 0, 3] || t == [0, 0, 0, 2],
                "{t:?}"
            );
        }
    }

    #[test]
    fn new_section_resets_interfaces() {
        let mut a = W::new(false);
        a.shb()
            .idb(1, 0, None)
            .idb(1, 0, None)
            .shb()
            .idb(1, 0, None)
            .epb(1, 0, b"x", 1);
        let (pk, err, _) = read_bytes(&a.v);
        assert!(pk.is_empty());
        let Some(Error::Corrupt { offset, reason }) = err else {
            panic!("{err:?}")
        };
        assert_eq!(offset, 28 + 20 + 20 + 28 + 20);
        assert!(reason.contains("interface 1"), "{reason}");
    }

    #[test]
    fn every_prefix_is_handled() {
        let pcap = build(
            true,
            MAGIC_NSEC,
            1,
            &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
        );
        let files = [
            pcap,
            two_sections(),
            build(false, MAGIC_MODIFIED, 1, &[(1, 2, b"ab", 2)]),
        ];
        for f in &files {
            let (full, err, _) = read_bytes(f);
            assert!(err.is_none());
            for n in 0..f.len() {
                let prefix = &f[..n];
                let rd = match open_bytes(prefix) {
                    Ok(rd) => rd,
                    Err(Error::TooShort { len, .. }) => {
                        assert!(n < 4 && len == n);
                        continue;
                    }
                    Err(Error::Truncated { offset: 0, .. }) => {
                        assert!(n < 24);
                        continue;
                    }
                    Err(e) => panic!("prefix {n}: {e}"),
                };
                let (pk, err, rd) = drain(rd);
                assert_eq!(pk[..], full[..pk.len()], "prefix {n}");
                match err {
                    // A clean end only exactly at a record/block boundary.
                    None => assert_eq!(rd.stats().bytes, n as u64, "prefix {n}"),
                    Some(Error::Truncated {
                        offset,
                        available,
                        needed,
                        ..
                    }) => {
                        assert_eq!(offset + available, n as u64, "prefix {n}");
                        assert!(needed > available);
                    }
                    Some(Error::Corrupt { .. }) => {}
                    Some(e) => panic!("prefix {n}: {e}"),
                }
            }
        }
    }

    #[test]
    fn truncated_reports_record_offset() {
        let f = build(
            false,
            MAGIC_USEC,
            1,
            &[(1, 2, b"abcdef", 6), (3, 4, b"0123456789", 10)],
        );
        let cut = &f[..f.len() - 3];
        let (pk, err, rd) = read_bytes(cut);
        assert_eq!(pk.len(), 1);
        let Some(Error::Truncated {
            offset,
            what,
            needed,
            available,
        }) = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (offset, what, needed, available),
            (46, "pcap packet record", 26, 23)
        );
        assert_eq!(rd.stats().bytes, 46);
        // Cut inside the record header.
        let (pk, err, _) = read_bytes(&f[..50]);
        assert_eq!(pk.len(), 1);
        assert!(matches!(
            err,
            Some(Error::Truncated {
                offset: 46,
                what: "pcap record header",
                needed: 16,
                available: 4
            })
        ));
    }

    #[test]
    fn not_capture_inputs() {
        for b in [
            &b""[..],
            b"\xa1",
            b"\xa1\xb2\xc3",
            b"<!DOCTYPE html>",
            b"\x1f\x8b",
        ] {
            match open_bytes(b) {
                Err(Error::TooShort { len, .. }) => assert_eq!(len, b.len()),
                Err(Error::NotCapture { .. }) => assert!(b.len() >= 4),
                Err(Error::Corrupt { .. }) if b == b"\x1f\x8b" => {}
                other => panic!("{b:?}: {other:?}"),
            }
        }
        let e = open_bytes(b"<!DOCTYPE html>").unwrap_err().to_string();
        assert!(
            e.starts_with("test: not a pcap or pcapng capture (magic 3c 21 44 4f;"),
            "{e}"
        );
        // A gzip of something that is not a capture.
        let e = open_bytes(&gzip(b"hello world")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotCapture {
                    magic: [b'h', b'e', b'l', b'l'],
                    ..
                }
            ),
            "{e}"
        );
        // Truncated pcap header.
        let f = build(false, MAGIC_USEC, 1, &[]);
        assert!(matches!(
            open_bytes(&f[..10]),
            Err(Error::Truncated {
                offset: 0,
                what: "pcap file header",
                needed: 24,
                available: 10
            })
        ));
    }

    #[test]
    fn huge_record_is_corrupt_and_big_ones_grow_the_buffer() {
        let mut f = build(false, MAGIC_USEC, 1, &[(1, 0, b"ok", 2)]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
        f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
        f.extend_from_slice(&[0; 100]);
        let (pk, err, _) = read_bytes(&f);
        assert_eq!(pk.len(), 1);
        assert!(
            matches!(err, Some(Error::Corrupt { offset: 42, .. })),
            "{err:?}"
        );

        // A 3 MiB packet (larger than the initial buffer), fed in small chunks.
        let big = vec![0x5au8; 3 << 20];
        let f = build(
            true,
            MAGIC_USEC,
            1,
            &[(1, 0, b"a", 1), (2, 0, &big, 3 << 20), (3, 0, b"b", 1)],
        );
        let rd = Reader::from_read(
            Box::new(Trickle {
                data: f.clone(),
                pos: 0,
                chunk: 70_000,
            }),
            "t",
        )
        .unwrap();
        let (pk, err, rd) = drain(rd);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(pk.len(), 3);
        assert_eq!(pk[1].data, big);
        assert_eq!(pk[2].data, b"b");
        assert!(rd.buf.len() <= 8 << 20);

        // A pcapng block claiming 200 MB with only a few bytes behind it
        // must not allocate 200 MB.
        let mut a = W::new(false);
        a.shb().idb(1, 0, None);
        a.u32(pcapng::BT_EPB).u32(200_000_000).u32(0);
        let (pk, err, rd) = read_bytes(&a.v);
        assert!(pk.is_empty());
        assert!(
            matches!(
                err,
                Some(Error::Truncated {
                    offset: 48,
                    needed: 200_000_000,
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(rd.buf.len(), INITIAL_BUF);
    }

    #[test]
    fn trickled_reads_match() {
        let f = two_sections();
        let (want, _, _) = read_bytes(&f);
        for chunk in [1, 3, 7, 64] {
            let rd = Reader::from_read(
                Box::new(Trickle {
                    data: f.clone(),
                    pos: 0,
                    chunk,
                }),
                "t",
            )
            .unwrap();
            let (got, err, _) = drain(rd);
            assert!(err.is_none());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn gzip_is_detected_and_decoded() {
        let f = two_sections();
        let (want, _, _) = read_bytes(&f);
        let (got, err, rd) = read_bytes(&gzip(&f));
        assert!(err.is_none());
        assert_eq!(got, want);
        assert!(rd.stats().gzip);
        // Two concatenated gzip members form one stream.
        let pcap = build(
            false,
            MAGIC_USEC,
            1,
            &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
        );
        let mut two = gzip(&pcap[..30]);
        two.extend_from_slice(&gzip(&pcap[30..]));
        let (got, err, _) = read_bytes(&two);
        assert!(err.is_none());
        assert_eq!(got.len(), 2);
        // A damaged or cut gzip stream never panics and ends with an error.
        let gz = gzip(&pcap);
        for n in 2..gz.len() {
            if let Ok(rd) = open_bytes(&gz[..n]) {
                let (_, err, _) = drain(rd);
                assert!(err.is_some() || n == gz.len(), "cut at {n}");
            }
        }
        let mut bad = gz.clone();
        for b in bad[12..].iter_mut() {
            *b ^= 0x55;
        }
        match open_bytes(&bad) {
            Ok(rd) => assert!(drain(rd).1.is_some()),
            Err(e) => assert!(matches!(
                e,
                Error::Corrupt { .. }
                    | Error::NotCapture { .. }
                    | Error::TooShort { .. }
                    | Error::Io { .. }
            )),
        }
    }

    #[test]
    fn mutated_inputs_never_panic() {
        // Deterministic xorshift; flips bytes of small valid files.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds = [
            two_sections(),
            build(
                false,
                MAGIC_USEC,
                1,
                &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
            ),
            build(true, MAGIC_MODIFIED, 1, &[(1, 2, b"abcdef", 6)]),
        ];
        for _ in 0..3000 {
            let mut f = seeds[(rnd() % 3) as usize].clone();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() as usize) % f.len();
                f[i] = rnd() as u8;
            }
            let cut = f.len() - (rnd() as usize % 8).min(f.len());
            if let Ok(rd) = open_bytes(&f[..cut]) {
                let (pk, _, rd) = drain(rd);
                assert!(pk.len() <= 8);
                assert!(rd.buf.len() <= INITIAL_BUF * 2);
            }
        }
    }

    #[test]
    fn open_path_and_missing_file() {
        let e = Reader::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().starts_with("/nonexistent/x.pcap: "), "{e}");
    }

    // ---- Real captures from the shared corpus ----

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/real/");

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn expected_frames(name: &str) -> u64 {
        let j = std::fs::read_to_string(format!("{CORPUS}expected/{name}.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        v["frames"].as_u64().unwrap()
    }

    fn read_corpus(name: &str) -> (Vec<P>, Option<Error>, Reader) {
        drain(
            Reader::open(Path::new(&format!("{CORPUS}{name}")))
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        )
    }

    #[test]
    fn corpus_clean_files_match_tshark() {
        for name in [
            "nanosecs_big_endian.pcap",
            "get-to-ssh-server.pcap",
            "pptp.pcap",
            "pcapng-example.pcapng",
            "cooper-grill-dvwa.pcapng",
            "modified-format.pcap",
        ] {
            let (pk, err, rd) = read_corpus(name);
            assert!(err.is_none(), "{name}: {err:?}");
            assert_eq!(pk.len() as u64, expected_frames(name), "{name}");
            assert_eq!(rd.stats().bytes, corpus(name).len() as u64, "{name}");
        }
        let (pk, _, rd) = read_corpus("modified-format.pcap");
        assert_eq!(pk.len(), 1);
        assert!(matches!(rd.format(), Format::Pcap { modified: true, .. }));
        let (_, _, rd) = read_corpus("nanosecs_big_endian.pcap");
        assert!(matches!(
            rd.format(),
            Format::Pcap {
                big_endian: true,
                nanos: true,
                ..
            }
        ));
        let (_, _, rd) = read_corpus("pcapng-example.pcapng");
        assert_eq!(rd.linktypes(), &[Linktype::ETHERNET, Linktype::LINUX_SLL]);
    }

    #[test]
    fn corpus_gopacket_test202() {
        // test202 holds 3 sections, 5 IDBs, 5 NRBs, 4 ISBs, 6 EPBs, 2 SPBs and
        // 3 Custom Blocks (one 0xBAD, two 0x40000BAD). tshark counts the custom
        // blocks as frames (frames = 11); they carry no packet, so we read the
        // 8 real packets and skip 5 + 4 + 3 = 12 blocks.
        for name in ["gopacket-be-test202.pcapng", "gopacket-le-test202.pcapng"] {
            let (pk, err, rd) = read_corpus(name);
            assert!(err.is_none(), "{name}: {err:?}");
            assert_eq!(expected_frames(name), 11);
            assert_eq!(pk.len(), 8, "{name}");
            let s = rd.stats();
            assert_eq!(
                (s.sections, s.interfaces, s.skipped_blocks),
                (3, 5, 12),
                "{name}"
            );
            assert_eq!(rd.linktypes(), &[Linktype::ETHERNET, Linktype::NULL]);
        }
        let (be, _, _) = read_corpus("gopacket-be-test202.pcapng");
        let (le, _, _) = read_corpus("gopacket-le-test202.pcapng");
        let strip = |v: Vec<P>| {
            v.into_iter()
                .map(|p| (p.ts, p.data, p.orig_len, p.interface))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(be), strip(le));
    }

    #[test]
    fn corpus_damaged_files() {
        let name = "derived-truncated-pcapng-example.pcapng";
        let (pk, err, _) = read_corpus(name);
        assert_eq!(pk.len() as u64, expected_frames(name));
        assert!(
            matches!(
                err,
                Some(Error::Truncated {
                    offset: 15704,
                    needed: 184,
                    available: 92,
                    ..
                })
            ),
            "{err:?}"
        );

        let name = "10.7.29.101_49898-178.63.41.150_25.pcap";
        let (pk, err, _) = read_corpus(name);
        assert_eq!(pk.len(), 18);
        assert_eq!(pk.len() as u64, expected_frames(name));
        let Some(Error::Corrupt { reason, .. }) = err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("3925868813"), "{reason}");

        let name = "shb-option-too-long.pcapng";
        let (pk, err, _) = read_corpus(name);
        assert!(pk.is_empty());
        // Like tshark: the SHB's first option (length 12336) runs past the block.
        let Some(Error::Corrupt { offset: 0, reason }) = err else {
            panic!("{err:?}")
        };
        assert!(
            reason.contains("option") && reason.contains("12336"),
            "{reason}"
        );

        let name = "sv-http-mime-truncated_input.pcap";
        let (pk, err, _) = read_corpus(name);
        assert_eq!(pk.len(), 2696);
        assert_eq!(pk.len() as u64, expected_frames(name));
        assert!(matches!(err, Some(Error::Truncated { .. })), "{err:?}");
    }

    #[test]
    fn corpus_gzip_copy_reads_the_same() {
        for name in ["pcapng-example.pcapng", "sv-http-mime-truncated_input.pcap"] {
            let raw = corpus(name);
            let (want, want_err, _) = read_bytes(&raw);
            let (got, got_err, rd) = read_bytes(&gzip(&raw));
            assert!(rd.stats().gzip);
            assert_eq!(got, want, "{name}");
            assert_eq!(format!("{got_err:?}"), format!("{want_err:?}"), "{name}");
        }
    }
}
