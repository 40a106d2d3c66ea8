//! The adapter between a byte source (file, stdin, gzip stream) and the
//! sans-IO parsers in [`pcap`](super::pcap) and [`pcapng`](super::pcapng).
//!
//! A regular file is mapped into memory and parsed in place
//! (`reader/map.rs`); pages already parsed are handed back as the reader
//! goes on, so the resident set stays bounded. Anything else (stdin, a pipe,
//! gzip) goes through one reusable buffer (1 MiB to start), refilled with
//! large `read` calls and compacted when a record straddles its end. It
//! only grows when a single record/block is larger than the buffer, by
//! doubling after the bytes already read have filled it, so a record header
//! that lies about its length cannot make us allocate more than twice the
//! bytes that really follow it (and never more than the record caps).

use std::io::Read;
use std::path::Path;

use nom::number::Endianness;
use nom::Offset;

use super::error::ParseError;
use super::pcap::{self, FileHeader};
use super::pcapng::{self, Block, InterfaceDescription};
use super::stream::{self, gzip_error, Opened};
use super::{Error, Linktype, Packet, Timestamp};

mod map;
use map::Bytes;
pub use map::Mapped;

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
    buf: Bytes,
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
        match Bytes::map(&file) {
            Some(bytes) => Reader::from_bytes(bytes, &name),
            None => Reader::from_read(Box::new(file), &name),
        }
    }

    /// Over a mapped file: all its bytes are there from the start.
    fn from_bytes(bytes: Bytes, source_name: &str) -> Result<Reader, Error> {
        let magic = bytes[..4].to_vec();
        Reader::start(Box::new(std::io::Cursor::new(magic)), source_name, |_| {
            bytes
        })
    }

    /// Same over any reader; `source_name` is used in messages.
    pub fn from_read(r: Box<dyn Read + Send>, source_name: &str) -> Result<Reader, Error> {
        Reader::start(r, source_name, |magic| {
            let mut buf = vec![0u8; INITIAL_BUF];
            buf[..4].copy_from_slice(magic);
            Bytes::Heap(buf)
        })
    }

    /// Sniffs the format from `r` and reads the file header; `bytes` makes
    /// the buffer from the magic (a buffer holding just the magic so far,
    /// or the whole mapped file).
    fn start(
        r: Box<dyn Read + Send>,
        source_name: &str,
        bytes: impl FnOnce(&[u8; 4]) -> Bytes,
    ) -> Result<Reader, Error> {
        let Opened {
            src,
            magic,
            gzip,
            pcapng: is_pcapng,
        } = stream::open(r, source_name)?;
        let buf = bytes(&magic);
        let (end, eof) = match &buf {
            Bytes::Heap(_) => (magic.len(), false),
            Bytes::Mapped { map, .. } => (map.len(), true),
        };
        let mut rd = Reader {
            src,
            source_name: source_name.to_string(),
            buf,
            start: 0,
            end,
            pos: 0,
            eof,
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
        let header = if is_pcapng {
            rd.read_pcapng_header()
        } else {
            rd.read_pcap_header()
        };
        header.map_err(|e| match e {
            Error::Truncated { .. } | Error::Corrupt { .. } => Error::Header {
                source_name: source_name.to_string(),
                problem: Box::new(e),
            },
            e => e,
        })?;
        Ok(rd)
    }

    /// Reads the Section Header Block a pcapng file starts with, so that a
    /// file whose start is damaged is refused when opened.
    fn read_pcapng_header(&mut self) -> Result<(), Error> {
        loop {
            let avail = &self.buf[self.start..self.end];
            match pcapng::parse_block(avail, Endianness::Little) {
                Ok((rest, Block::Section(shb))) => {
                    let consumed = avail.len() - rest.len();
                    self.state = State::Pcapng {
                        endianness: shb.endianness,
                        interfaces: Vec::new(),
                    };
                    self.stats.sections += 1;
                    self.advance(consumed);
                    return Ok(());
                }
                Ok(_) => {
                    return Err(Error::Corrupt {
                        offset: 0,
                        reason: "the first block is not a Section Header Block".into(),
                    })
                }
                Err(nom::Err::Incomplete(n)) => {
                    let need = avail.len().saturating_add(needed_bytes(n));
                    if self.eof {
                        return Err(Error::Truncated {
                            offset: 0,
                            what: "pcapng Section Header Block",
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

    /// The mapped file the packets are read from, when it is one: a
    /// packet's bytes are then a slice of it ([`Mapped::offset_of`]).
    pub fn mapped(&self) -> Option<Mapped> {
        match &self.buf {
            Bytes::Mapped { map, .. } => Some(map.clone()),
            Bytes::Heap(_) => None,
        }
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
        self.buf.follow(self.start);
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
        let Bytes::Heap(buf) = &mut self.buf else {
            // A mapped file is all there.
            self.eof = true;
            return Ok(());
        };
        if self.start > 0 && (self.end == buf.len() || buf.len() - self.start < need) {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == buf.len() {
            // A single record larger than the buffer: grow, at most doubling,
            // so the allocation follows the bytes actually present.
            let len = buf.len();
            let new_len = need.clamp(len + 1, len * 2);
            buf.resize(new_len, 0);
        }
        loop {
            match self.src.read(&mut buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n.min(buf.len() - self.end);
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

#[cfg(test)]
mod tests;
