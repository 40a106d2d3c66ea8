//! From link-layer frames to TCP segments: link types (Ethernet with 802.1Q
//! and QinQ, Linux SLL and SLL2, raw IPv4/IPv6, BSD NULL and LOOP), L2-L4
//! slicing with etherparse (lax: IP lengths that exceed the captured frame are
//! tolerated and reported), and IPv4/IPv6 fragment reassembly.

mod defrag;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, IpNumber, LaxIpSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::{Linktype, Timestamp};

pub use defrag::Defragmenter;

/// TCP header flags that matter to reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment lifted out of a frame.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Payload bytes present in the capture.
    pub payload: &'a [u8],
    /// Payload length according to the IP header; larger than
    /// `payload.len()` when the snaplen (or a short frame) cut the segment.
    pub wire_len: u32,
    /// Number of the captured packet that carried it (for a reassembled IP
    /// datagram: its last fragment), 1-based and counting every packet the
    /// decoder saw, as Wireshark numbers frames.
    pub packet: u64,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    /// A fragment was stored; the datagram is not complete yet.
    FragmentHeld,
    /// IP traffic that is not TCP (UDP, ICMP, ...).
    OtherIp(IpNumber),
    /// A frame that carries no IP (ARP, LLDP, ...).
    NotIp,
    /// The link type is not one we decode.
    UnknownLinktype,
    /// The frame could not be sliced; the reason names the layer.
    Malformed(&'static str),
}

/// Counters of everything the decoder has seen, so nothing disappears
/// silently.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WireStats {
    pub frames: u64,
    pub tcp: u64,
    pub udp: u64,
    pub other_ip: u64,
    pub not_ip: u64,
    pub unknown_linktype: u64,
    pub malformed: u64,
    pub fragments: u64,
    pub datagrams_reassembled: u64,
    pub fragments_dropped: u64,
    /// TCP segments whose captured payload is shorter than the IP header says.
    pub tcp_truncated: u64,
    /// Frames per link type number.
    pub linktypes: BTreeMap<u32, u64>,
}

/// Stateful frame decoder (the state is the IP fragment pool).
#[derive(Debug, Default)]
pub struct Decoder {
    defrag: Defragmenter,
    stats: WireStats,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// Decodes one frame. A TCP segment borrows either `data` or, for a
    /// reassembled datagram, the decoder's fragment buffer.
    pub fn decode<'a>(
        &'a mut self,
        linktype: Linktype,
        ts: Timestamp,
        data: &'a [u8],
    ) -> Decoded<'a> {
        self.stats.frames += 1;
        *self.stats.linktypes.entry(linktype.0).or_default() += 1;
        self.defrag.expire(ts);
        let sliced = match slice_link(linktype, data) {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.stats.not_ip += 1;
                return Decoded::NotIp;
            }
            Err(LinkError::Unknown) => {
                self.stats.unknown_linktype += 1;
                return Decoded::UnknownLinktype;
            }
            Err(LinkError::Malformed(why)) => {
                self.stats.malformed += 1;
                return Decoded::Malformed(why);
            }
        };
        let ip = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => LaxIpSlice::Ipv4(v4.clone()),
            Some(LaxNetSlice::Ipv6(v6)) => LaxIpSlice::Ipv6(v6.clone()),
            Some(LaxNetSlice::Arp(_)) => {
                self.stats.not_ip += 1;
                return Decoded::NotIp;
            }
            None => {
                if sliced.stop_err.is_some() {
                    self.stats.malformed += 1;
                    return Decoded::Malformed("ip header");
                }
                self.stats.not_ip += 1;
                return Decoded::NotIp;
            }
        };
        if ip.is_fragmenting_payload() {
            self.stats.fragments += 1;
            return match self.defrag.add(&ip, ts) {
                defrag::Added::Held => Decoded::FragmentHeld,
                defrag::Added::Dropped => {
                    self.stats.fragments_dropped += 1;
                    Decoded::FragmentHeld
                }
                defrag::Added::Complete => {
                    self.stats.datagrams_reassembled += 1;
                    let (src, dst) = (ip.source_addr(), ip.destination_addr());
                    let (proto, payload) = self.defrag.completed();
                    finish_transport(&mut self.stats, src, dst, proto, payload, payload.len())
                }
            };
        }
        let src = ip.source_addr();
        let dst = ip.destination_addr();
        let p = ip.payload();
        match (&sliced.transport, p.ip_number) {
            (Some(TransportSlice::Tcp(tcp)), _) => {
                let claimed = claimed_ip_payload_len(&ip).unwrap_or(p.payload.len());
                let hdr = tcp.header_slice().len();
                let wire_len = claimed.saturating_sub(hdr).max(tcp.payload().len());
                Self::segment(&mut self.stats, src, dst, tcp, wire_len)
            }
            (_, IpNumber::TCP) => {
                // etherparse stopped inside the TCP header (cut by the snaplen or garbage).
                self.stats.malformed += 1;
                Decoded::Malformed("tcp header")
            }
            (_, proto) => {
                if proto == IpNumber::UDP {
                    self.stats.udp += 1;
                } else {
                    self.stats.other_ip += 1;
                }
                Decoded::OtherIp(proto)
            }
        }
    }

    fn segment<'a>(
        stats: &mut WireStats,
        src: IpAddr,
        dst: IpAddr,
        tcp: &etherparse::TcpSlice<'a>,
        wire_len: usize,
    ) -> Decoded<'a> {
        stats.tcp += 1;
        let payload = tcp.payload();
        if wire_len > payload.len() {
            stats.tcp_truncated += 1;
        }
        Decoded::Tcp(TcpSegment {
            src: SocketAddr::new(src, tcp.source_port()),
            dst: SocketAddr::new(dst, tcp.destination_port()),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            },
            window: tcp.window_size(),
            payload,
            wire_len: u32::try_from(wire_len).unwrap_or(u32::MAX),
            packet: stats.frames,
        })
    }
}

fn finish_transport<'a>(
    stats: &mut WireStats,
    src: IpAddr,
    dst: IpAddr,
    proto: IpNumber,
    payload: &'a [u8],
    len: usize,
) -> Decoded<'a> {
    if proto != IpNumber::TCP {
        if proto == IpNumber::UDP {
            stats.udp += 1;
        } else {
            stats.other_ip += 1;
        }
        return Decoded::OtherIp(proto);
    }
    match etherparse::TcpSlice::from_slice(payload) {
        Ok(tcp) => {
            let hdr = tcp.header_slice().len();
            Decoder::segment(stats, src, dst, &tcp, len.saturating_sub(hdr))
        }
        Err(_) => {
            stats.malformed += 1;
            Decoded::Malformed("tcp header in reassembled datagram")
        }
    }
}

/// The IP payload length the header claims (which may exceed what was captured).
fn claimed_ip_payload_len(ip: &LaxIpSlice<'_>) -> Option<usize> {
    match ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            (h.total_len() as usize).checked_sub(h.slice().len())
        }
        LaxIpSlice::Ipv6(v6) => {
            let plen = v6.header().payload_length() as usize;
            if plen == 0 {
                return None; // jumbogram or unknown: trust the slice
            }
            plen.checked_sub(v6.extensions().slice().len())
        }
    }
}

enum LinkError {
    Unknown,
    Malformed(&'static str),
}

/// BSD address-family values that mean IPv4 / IPv6 in NULL and LOOP headers
/// (IPv6 differs between BSDs: 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS; 10 Linux).
fn af_is_ip(af: u32) -> bool {
    matches!(af, 2 | 10 | 24 | 28 | 30)
}

fn slice_link(linktype: Linktype, data: &[u8]) -> Result<Option<LaxSlicedPacket<'_>>, LinkError> {
    let from_ip = |d| {
        LaxSlicedPacket::from_ip(d)
            .map(Some)
            .map_err(|_| LinkError::Malformed("ip header"))
    };
    match linktype {
        Linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data)
            .map(Some)
            .map_err(|_| LinkError::Malformed("ethernet header")),
        Linktype::RAW_12 | Linktype::RAW_14 | Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => {
            from_ip(data)
        }
        Linktype::NULL | Linktype::LOOP => {
            let Some(h) = data.get(..4) else {
                return Err(LinkError::Malformed("null/loop header"));
            };
            let h: [u8; 4] = h.try_into().expect("4 bytes");
            // NULL is in the capturing host's byte order, LOOP in network order.
            let af = if linktype == Linktype::LOOP {
                u32::from_be_bytes(h)
            } else {
                let le = u32::from_le_bytes(h);
                if le > 0xFFFF {
                    u32::from_be_bytes(h)
                } else {
                    le
                }
            };
            if af_is_ip(af) {
                from_ip(&data[4..])
            } else {
                Ok(None)
            }
        }
        Linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Err(LinkError::Malformed("linux sll header"));
            }
            let et = u16::from_be_bytes([data[14], data[15]]);
            Ok(Some(LaxSlicedPacket::from_ether_type(
                EtherType(et),
                &data[16..],
            )))
        }
        Linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(LinkError::Malformed("linux sll2 header"));
            }
            let et = u16::from_be_bytes([data[0], data[1]]);
            Ok(Some(LaxSlicedPacket::from_ether_type(
                EtherType(et),
                &data[20..],
            )))
        }
        _ => Err(LinkError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(5000, 8080, 77, 1000);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// src, dst, seq, payload, wire length
    type Seg = (String, String, u32, Vec<u8>, u32);

    fn decode_one(lt: Linktype, frame: &[u8]) -> (Option<Seg>, WireStats) {
        let mut d = Decoder::new();
        let r = match d.decode(lt, Timestamp::default(), frame) {
            Decoded::Tcp(s) => Some((
                s.src.to_string(),
                s.dst.to_string(),
                s.seq,
                s.payload.to_vec(),
                s.wire_len,
            )),
            _ => None,
        };
        (r, d.stats().clone())
    }

    #[test]
    fn raw_null_loop_sll_and_sll2_reach_tcp() {
        let ip = ipv4_tcp(b"data");
        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(&ip);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip);
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        let mut sll2 = 0x0800u16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        for (lt, frame) in [
            (Linktype::RAW, &ip),
            (Linktype::RAW_12, &ip),
            (Linktype::IPV4, &ip),
            (Linktype::NULL, &null_le),
            (Linktype::NULL, &null_be),
            (Linktype::LOOP, &lo),
            (Linktype::LINUX_SLL, &sll),
            (Linktype::LINUX_SLL2, &sll2),
        ] {
            let (seg, st) = decode_one(lt, frame);
            let (src, dst, seq, payload, wire_len) =
                seg.unwrap_or_else(|| panic!("{lt:?}: no TCP ({st:?})"));
            assert_eq!(
                (src.as_str(), dst.as_str(), seq),
                ("10.0.0.1:5000", "10.0.0.2:8080", 77)
            );
            assert_eq!((payload.as_slice(), wire_len), (&b"data"[..], 4));
        }
    }

    #[test]
    fn unknown_link_type_and_short_headers_are_counted_not_fatal() {
        let (seg, st) = decode_one(Linktype(147), b"whatever");
        assert!(seg.is_none());
        assert_eq!(st.unknown_linktype, 1);
        let (seg, st) = decode_one(Linktype::LINUX_SLL, b"short");
        assert!(seg.is_none());
        assert_eq!(st.malformed, 1);
        let (_, st) = decode_one(Linktype::NULL, &[0, 0, 0, 0]);
        assert_eq!(st.not_ip, 1);
    }

    #[test]
    fn ethernet_padding_is_not_payload_and_a_short_frame_keeps_the_wire_length() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&0x0800u16.to_be_bytes());
        eth.extend_from_slice(&ipv4_tcp(b""));
        eth.extend_from_slice(&[0x20; 6]); // padding to the 60-byte minimum
        let (seg, _) = decode_one(Linktype::ETHERNET, &eth);
        assert_eq!(seg.unwrap().3, b"");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&0x0800u16.to_be_bytes());
        eth.extend_from_slice(&ipv4_tcp(b"0123456789"));
        eth.truncate(eth.len() - 6); // snaplen cut
        let (seg, st) = decode_one(Linktype::ETHERNET, &eth);
        let seg = seg.unwrap();
        assert_eq!((seg.3.as_slice(), seg.4), (&b"0123"[..], 10));
        assert_eq!(st.tcp_truncated, 1);
    }

    #[test]
    fn ipv4_fragments_are_reassembled_in_any_order() {
        let full = ipv4_tcp(&[b'z'; 100]);
        let hdr = &full[..20];
        let body = &full[20..]; // TCP header + payload, 120 bytes
        let frag = |off: usize, more: bool, part: &[u8]| {
            let mut h = etherparse::Ipv4Header::from_slice(hdr).unwrap().0;
            h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
            h.more_fragments = more;
            h.identification = 42;
            h.set_payload_len(part.len()).unwrap();
            let mut v = Vec::new();
            h.write(&mut v).unwrap();
            v.extend_from_slice(part);
            v
        };
        let f1 = frag(0, true, &body[..64]);
        let f2 = frag(64, false, &body[64..]);
        let mut d = Decoder::new();
        assert!(matches!(
            d.decode(Linktype::RAW, Timestamp::default(), &f2),
            Decoded::FragmentHeld
        ));
        match d.decode(Linktype::RAW, Timestamp::default(), &f1) {
            Decoded::Tcp(s) => {
                assert_eq!(s.payload, &[b'z'; 100][..]);
                assert_eq!(s.dst.port(), 8080);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            (d.stats().fragments, d.stats().datagrams_reassembled),
            (2, 1)
        );
    }
}
