//! Reading capture files: classic pcap (both byte orders, usec/nsec, the
//! Kuznetzov "modified" variant), pcapng (several sections and interfaces,
//! EPB/SPB/obsolete packet blocks) and gzip-compressed copies of either.
//!
//! The block/record parsers in [`pcap`] and [`pcapng`] are sans-IO nom
//! parsers; [`Reader`] is the buffered adapter that feeds them from a file or
//! standard input with a bounded, reusable buffer (gzip and the format are
//! recognised by their magic, in `stream`). [`PacketSource`] is what the
//! pipeline reads: a [`Reader`] or a live capture.

mod error;
pub mod inputs;
#[cfg(feature = "live")]
pub mod live;
pub mod pcap;
pub mod pcapng;
mod reader;
mod source;
mod stream;
mod timestamp;
pub mod writer;

pub use error::{Error, PResult, ParseError};
pub use inputs::{CurrentFile, Inputs, MergedSource};
pub use reader::{Format, Mapped, ReadStats, Reader};
pub use source::PacketSource;
pub use timestamp::Timestamp;

/// A link-layer type (DLT / LINKTYPE number). Unknown values stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Linktype(pub u32);

impl Linktype {
    pub const NULL: Linktype = Linktype(0);
    pub const ETHERNET: Linktype = Linktype(1);
    /// PPP, possibly in HDLC-like framing (and Cisco HDLC, which Wireshark
    /// also finds under this number).
    pub const PPP: Linktype = Linktype(9);
    /// DLT_RAW on most platforms (12) and on OpenBSD (14).
    pub const RAW_12: Linktype = Linktype(12);
    pub const RAW_14: Linktype = Linktype(14);
    /// PPP in HDLC-like framing (RFC 1662).
    pub const PPP_HDLC: Linktype = Linktype(50);
    /// PPPoE session frames without their Ethernet header.
    pub const PPP_ETHER: Linktype = Linktype(51);
    pub const RAW: Linktype = Linktype(101);
    /// Cisco HDLC.
    pub const C_HDLC: Linktype = Linktype(104);
    pub const LOOP: Linktype = Linktype(108);
    pub const LINUX_SLL: Linktype = Linktype(113);
    /// Per-Packet Information: a header, then a frame of the link type it names.
    pub const PPI: Linktype = Linktype(192);
    pub const IPV4: Linktype = Linktype(228);
    pub const IPV6: Linktype = Linktype(229);
    pub const LINUX_SLL2: Linktype = Linktype(276);

    /// A short human name, e.g. "EN10MB" or "LINKTYPE_123".
    pub fn name(self) -> String {
        match self.0 {
            0 => "NULL".into(),
            1 => "EN10MB".into(),
            9 => "PPP".into(),
            50 => "PPP_HDLC".into(),
            51 => "PPP_ETHER".into(),
            104 => "C_HDLC".into(),
            192 => "PPI".into(),
            12 | 14 | 101 => "RAW".into(),
            108 => "LOOP".into(),
            113 => "LINUX_SLL".into(),
            228 => "IPV4".into(),
            229 => "IPV6".into(),
            276 => "LINUX_SLL2".into(),
            n => format!("LINKTYPE_{n}"),
        }
    }
}

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture timestamp (UTC), at the file's / interface's precision.
    pub ts: Timestamp,
    /// Link type of the interface the packet was captured on.
    pub linktype: Linktype,
    /// Captured bytes (may be shorter than `orig_len` when the snaplen cut it).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Interface index (pcapng: within its section; pcap: 0).
    pub interface: u32,
    /// Byte offset of the record / block in the (decompressed) capture stream.
    pub offset: u64,
}
