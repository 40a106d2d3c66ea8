//! Writing classic pcap files (little-endian, micro- or nanosecond): used by
//! the sample/benchmark generator and by tests that build captures.

use std::io::{self, Write};

use super::{Linktype, Timestamp};

/// A classic pcap writer.
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W, linktype: Linktype, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let snaplen = 262_144u32;
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&magic.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&linktype.0.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            nanos,
            snaplen,
        })
    }

    /// Writes one packet; `orig_len` defaults to the captured length.
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: Option<u32>) -> io::Result<()> {
        let caplen = data.len().min(self.snaplen as usize);
        let frac = if self.nanos {
            ts.nanos
        } else {
            ts.nanos / 1000
        };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts.secs as u32).to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.unwrap_or(data.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..caplen])
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A pcapng writer: one little-endian section with one interface (Section
/// Header Block, Interface Description Block with `if_name`, `if_tsresol`
/// and the snaplen), then Enhanced Packet Blocks. Used by `syncscope sniff
/// --write`; [`encode_epb`] lets a capture loop build blocks into a batch
/// and hand the batch to another thread for [`PcapngWriter::write_blocks`].
pub struct PcapngWriter<W: Write> {
    out: W,
    nanos: bool,
    snaplen: u32,
}

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 1;
const EPB_TYPE: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn push_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    b.resize(b.len() + pad4(value.len()), 0);
}

/// Frames `body` as one block of type `ty` (type, total length, body, total length).
fn push_block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let total = (12 + body.len()) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
}

/// Appends one Enhanced Packet Block (interface 0) to `out`: the first
/// `snaplen` bytes of `data`, with the timestamp in nanoseconds (`nanos`) or
/// microseconds since the epoch, as the interface's `if_tsresol` says.
pub fn encode_epb(
    out: &mut Vec<u8>,
    nanos: bool,
    snaplen: u32,
    ts: Timestamp,
    data: &[u8],
    orig_len: u32,
) {
    let data = &data[..data.len().min(snaplen as usize)];
    let units = if nanos {
        ts.secs as u64 * 1_000_000_000 + u64::from(ts.nanos)
    } else {
        ts.secs as u64 * 1_000_000 + u64::from(ts.nanos / 1000)
    };
    let pad = pad4(data.len());
    let total = (32 + data.len() + pad) as u32;
    out.reserve(total as usize);
    out.extend_from_slice(&EPB_TYPE.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // interface id
    out.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&(units as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + pad, 0);
    out.extend_from_slice(&total.to_le_bytes());
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block and the Interface Description Block.
    pub fn new(
        mut out: W,
        linktype: Linktype,
        snaplen: u32,
        nanos: bool,
        if_name: Option<&str>,
    ) -> io::Result<Self> {
        let mut b = Vec::with_capacity(128);
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        push_option(&mut body, OPT_SHB_USERAPPL, b"syncscope");
        push_option(&mut body, OPT_ENDOFOPT, &[]);
        push_block(&mut b, SHB_TYPE, &body);

        body.clear();
        // The link type is 16 bits in an IDB (plus 16 reserved).
        body.extend_from_slice(&(linktype.0 as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        if let Some(name) = if_name {
            push_option(&mut body, OPT_IF_NAME, name.as_bytes());
        }
        push_option(&mut body, OPT_IF_TSRESOL, &[if nanos { 9 } else { 6 }]);
        push_option(&mut body, OPT_ENDOFOPT, &[]);
        push_block(&mut b, IDB_TYPE, &body);
        out.write_all(&b)?;
        Ok(PcapngWriter {
            out,
            nanos,
            snaplen,
        })
    }

    /// Whether timestamps are written in nanoseconds (else microseconds).
    pub fn nanos(&self) -> bool {
        self.nanos
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Writes one packet; `orig_len` defaults to the captured length.
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: Option<u32>) -> io::Result<()> {
        let mut b = Vec::with_capacity(data.len() + 36);
        let orig = orig_len.unwrap_or(data.len() as u32);
        encode_epb(&mut b, self.nanos, self.snaplen, ts, data, orig);
        self.out.write_all(&b)
    }

    /// Writes blocks made by [`encode_epb`] with this writer's `nanos` and `snaplen`.
    pub fn write_blocks(&mut self, blocks: &[u8]) -> io::Result<()> {
        self.out.write_all(blocks)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Format, Reader};

    #[test]
    fn pcapng_round_trips_through_the_reader() {
        let mut w =
            PcapngWriter::new(Vec::new(), Linktype::ETHERNET, 64, true, Some("lo")).unwrap();
        let t1 = Timestamp::new(1_700_000_000, 123_456_789, 9);
        let t2 = Timestamp::new(1_700_000_001, 5, 9);
        w.write(t1, &[1, 2, 3, 4, 5], None).unwrap();
        // Longer than the snaplen: cut, original length kept.
        w.write(t2, &[7u8; 100], Some(1000)).unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0);
        let mut r = Reader::from_read(Box::new(std::io::Cursor::new(bytes)), "mem").unwrap();
        assert!(matches!(r.format(), Format::Pcapng));
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.ts, p.data, p.orig_len), (t1, &[1u8, 2, 3, 4, 5][..], 5));
        assert_eq!(p.linktype, Linktype::ETHERNET);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.ts, p.data.len(), p.orig_len), (t2, 64, 1000));
        assert!(r.next_packet().unwrap().is_none());
        assert_eq!((r.stats().sections, r.stats().interfaces), (1, 1));
    }

    #[test]
    fn pcapng_microseconds_and_batched_blocks() {
        let mut w = PcapngWriter::new(Vec::new(), Linktype::RAW, 262_144, false, None).unwrap();
        let mut batch = Vec::new();
        let ts = Timestamp::new(10, 999_999_000, 6);
        for i in 0..3u8 {
            encode_epb(&mut batch, w.nanos(), w.snaplen(), ts, &[i; 3], 3);
        }
        w.write_blocks(&batch).unwrap();
        let bytes = w.into_inner();
        let mut r = Reader::from_read(Box::new(std::io::Cursor::new(bytes)), "mem").unwrap();
        for i in 0..3u8 {
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!((p.ts, p.data), (ts, &[i; 3][..]));
        }
        assert!(r.next_packet().unwrap().is_none());
    }
}
