//! One step of decoding a frame: from a layer's bytes to the next layer (a
//! link extension or tunnel taken off), a TCP segment, an IP fragment or the
//! end. Steps answer with ranges into the buffer they were given, never
//! borrows, so the decoder can move on to its fragment buffer between steps.
//!
//! Tunnels are found by their well-known UDP port and then checked by
//! content (GTP-U 2152, VXLAN 4789, VXLAN-GPE 4790, CAPWAP data 5247; a
//! packet on one of those ports that does not parse is plain UDP) or by IP
//! protocol (IP in IP 4 and 41, GRE 47).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use etherparse::{
    EtherType, IpFragOffset, IpNumber, Ipv6ExtensionSlice, LaxIpSlice, LaxNetSlice,
    LaxSlicedPacket, TcpSlice, TransportSlice, UdpSlice,
};

use super::encap::{self, Next, Parsed};
use super::tunnel::{Tunnel, TunnelKind};
use super::TcpFlags;

/// What the bytes of a step are.
#[derive(Debug, Clone, Copy)]
pub(super) enum Layer {
    Frame(Next),
    /// The payload of a reassembled IP datagram.
    Transport {
        proto: IpNumber,
        src: IpAddr,
        dst: IpAddr,
    },
}

/// A TCP header and where its payload lies.
#[derive(Debug, Clone)]
pub(super) struct TcpHead {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub payload: Range<usize>,
    /// Payload length on the wire (at least the captured length).
    pub wire_len: usize,
    /// The header's length field is impossible (below 20 bytes, or beyond
    /// the segment): the segment is kept for its connection, without payload.
    pub bogus: bool,
}

/// An IP fragment, for the defragmenter.
#[derive(Debug, Clone)]
pub(super) struct Frag {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: IpNumber,
    pub offset: IpFragOffset,
    pub more: bool,
    pub payload: Range<usize>,
}

/// How a frame ended without a TCP segment.
#[derive(Debug, Clone, Copy)]
pub(super) enum End {
    NotIp,
    Udp,
    OtherIp(IpNumber),
    Malformed(&'static str),
}

pub(super) enum Step {
    Next(Layer, Range<usize>),
    Fragment(Frag),
    Tcp(TcpHead),
    End(End),
}

/// Encapsulations counted in the decoder's statistics, by bit.
pub(super) const ENCAP_NAMES: [&str; 8] = [
    "mpls", "pppoe", "ip-in-ip", "gre", "erspan", "gtp-u", "vxlan", "capwap",
];

fn encap_bit(kind: TunnelKind) -> u16 {
    1 << (2 + kind as u16)
}

/// What a frame's steps learnt along the way.
#[derive(Debug, Default)]
pub(super) struct Ctx {
    /// The innermost tunnel so far.
    pub tunnel: Option<Tunnel>,
    /// Encapsulations taken off so far.
    pub depth: u8,
    /// Bytes the snaplen cut off the end of the frame (0 in a reassembled datagram).
    pub cut: usize,
    /// Encapsulations seen, by bit of [`ENCAP_NAMES`].
    pub seen: u16,
}

impl Ctx {
    fn tunnel(&mut self, kind: TunnelKind, src: IpAddr, dst: IpAddr, id: Option<u32>) {
        self.depth += 1;
        self.seen |= encap_bit(kind);
        self.tunnel = Some(Tunnel {
            kind,
            src,
            dst,
            id,
            depth: self.depth,
        });
    }

    fn link(&mut self, bit: u16) {
        self.depth += 1;
        self.seen |= bit;
    }
}

/// Where `part` lies in `buf` (`part` is a sub-slice of it).
fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

/// A hand-parsed link-level header's answer as a step.
fn link_step(parsed: Parsed<encap::Inner>, at: usize) -> Step {
    match parsed {
        Ok(Some((next, r))) => Step::Next(Layer::Frame(next), shift(r, at)),
        Ok(None) => Step::End(End::NotIp),
        Err(why) => Step::End(End::Malformed(why)),
    }
}

pub(super) fn step(buf: &[u8], layer: Layer, range: Range<usize>, ctx: &mut Ctx) -> Step {
    let at = range.start;
    let d = &buf[range.clone()];
    let next = match layer {
        Layer::Frame(n) => n,
        Layer::Transport { proto, src, dst } => {
            return transport(buf, proto, range.clone(), src, dst, d.len(), ctx)
        }
    };
    match next {
        Next::Ethernet => match ethernet_ip_tcp(buf, d, ctx) {
            Some(tcp) => tcp,
            None => match LaxSlicedPacket::from_ethernet(d) {
                Ok(s) => sliced(buf, &s, ctx),
                Err(_) => Step::End(End::Malformed("ethernet header")),
            },
        },
        Next::Ip => match LaxSlicedPacket::from_ip(d) {
            Ok(s) => sliced(buf, &s, ctx),
            Err(_) => Step::End(End::Malformed("ip header")),
        },
        Next::EtherType(encap::ETHERTYPE_MPLS | encap::ETHERTYPE_MPLS_MULTICAST) => {
            ctx.link(1);
            link_step(encap::mpls(d), at)
        }
        Next::EtherType(encap::ETHERTYPE_PPPOE_SESSION) => {
            ctx.link(2);
            link_step(encap::pppoe(d), at)
        }
        Next::EtherType(et) => sliced(
            buf,
            &LaxSlicedPacket::from_ether_type(EtherType(et), d),
            ctx,
        ),
        Next::Ppp => link_step(encap::ppp(d), at),
        Next::Chdlc => link_step(encap::chdlc(d), at),
        Next::Wlan => link_step(encap::wlan(d), at),
    }
}

/// The common frame (Ethernet II, IP, a TCP header etherparse accepts, no
/// fragment, no error on the way) taken in one go, with etherparse's IP and
/// TCP slices alone: what [`sliced`] makes of the whole packet slice, at a
/// fraction of the cost (that slice is large and copied at every step; the
/// reader thread of `-j 2` spent about a tenth of its time on it). `None`
/// for anything else, which takes the general path.
fn ethernet_ip_tcp(buf: &[u8], d: &[u8], ctx: &Ctx) -> Option<Step> {
    // Ethernet II with EtherType IPv4 or IPv6 (VLAN tags and the rest take
    // the general path).
    if d.len() < 14 || !matches!([d[12], d[13]], [0x08, 0x00] | [0x86, 0xdd]) {
        return None;
    }
    let (ip, None) = LaxIpSlice::from_slice(&d[14..]).ok()? else {
        return None;
    };
    let p = ip.payload();
    if ip.is_fragmenting_payload() || p.ip_number != IpNumber::TCP {
        return None;
    }
    let tcp = TcpSlice::from_slice(p.payload).ok()?;
    let claimed = claimed_ip_payload_len(&ip).unwrap_or(p.payload.len());
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    Some(Step::Tcp(tcp_head(buf, src, dst, &tcp, claimed, ctx)))
}

/// What etherparse sliced: the IP layer and what it carries, or the
/// EtherType it stopped at when that is one of ours.
fn sliced(buf: &[u8], s: &LaxSlicedPacket<'_>, ctx: &mut Ctx) -> Step {
    let ip = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => LaxIpSlice::Ipv4(v4.clone()),
        Some(LaxNetSlice::Ipv6(v6)) => LaxIpSlice::Ipv6(v6.clone()),
        Some(LaxNetSlice::Arp(_)) => return Step::End(End::NotIp),
        None => {
            if let Some(p) = s.ether_payload() {
                let et = p.ether_type.0;
                if matches!(
                    et,
                    encap::ETHERTYPE_MPLS
                        | encap::ETHERTYPE_MPLS_MULTICAST
                        | encap::ETHERTYPE_PPPOE_SESSION
                ) {
                    return Step::Next(Layer::Frame(Next::EtherType(et)), range_of(buf, p.payload));
                }
            }
            return Step::End(if s.stop_err.is_some() {
                End::Malformed("ip header")
            } else {
                End::NotIp
            });
        }
    };
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    if ip.is_fragmenting_payload() {
        return match fragment(buf, &ip) {
            Some(f) => Step::Fragment(f),
            None => Step::End(End::Malformed("ipv6 fragment header")),
        };
    }
    let p = ip.payload();
    let claimed = claimed_ip_payload_len(&ip).unwrap_or(p.payload.len());
    if let Some(TransportSlice::Tcp(tcp)) = &s.transport {
        return Step::Tcp(tcp_head(buf, src, dst, tcp, claimed, ctx));
    }
    transport(
        buf,
        p.ip_number,
        range_of(buf, p.payload),
        src,
        dst,
        claimed,
        ctx,
    )
}

fn fragment(buf: &[u8], ip: &LaxIpSlice<'_>) -> Option<Frag> {
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    match ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            Some(Frag {
                src,
                dst,
                id: u32::from(h.identification()),
                proto: h.protocol(),
                offset: h.fragments_offset(),
                more: h.more_fragments(),
                payload: range_of(buf, v4.payload().payload),
            })
        }
        LaxIpSlice::Ipv6(v6) => {
            let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                Ipv6ExtensionSlice::Fragment(f) => Some(f.to_header()),
                _ => None,
            })?;
            Some(Frag {
                src,
                dst,
                id: frag.identification,
                proto: v6.payload().ip_number,
                offset: frag.fragment_offset,
                more: frag.more_fragments,
                payload: range_of(buf, v6.payload().payload),
            })
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

/// A TCP header etherparse sliced. The payload on the wire is what the IP
/// header claims, but no more than the snaplen cut off the frame: an IP
/// length beyond a frame that was captured whole is the header's error,
/// not missing bytes (tshark reads it so too).
fn tcp_head(
    buf: &[u8],
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpSlice<'_>,
    claimed: usize,
    ctx: &Ctx,
) -> TcpHead {
    let payload = tcp.payload();
    let captured = payload.len();
    let on_wire = claimed.saturating_sub(tcp.header_len());
    TcpHead {
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
        payload: range_of(buf, payload),
        wire_len: on_wire.min(captured + ctx.cut).max(captured),
        bogus: false,
    }
}

/// A TCP header etherparse refused although its fixed 20 bytes are there:
/// its length field is below 20 or runs past the segment. Like tshark, the
/// segment still counts for its connection, with no payload; its flags are
/// read only when the length field is at least 20.
fn bogus_tcp(buf: &[u8], src: IpAddr, dst: IpAddr, range: Range<usize>) -> Step {
    let d = &buf[range.clone()];
    if d.len() < 20 {
        return Step::End(End::Malformed("tcp header"));
    }
    let be16 = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    let f = if d[12] >> 4 >= 5 { d[13] } else { 0 };
    Step::Tcp(TcpHead {
        src: SocketAddr::new(src, be16(0)),
        dst: SocketAddr::new(dst, be16(2)),
        seq: be32(4),
        ack: be32(8),
        flags: TcpFlags {
            fin: f & 0x01 != 0,
            syn: f & 0x02 != 0,
            rst: f & 0x04 != 0,
            ack: f & 0x10 != 0,
        },
        window: be16(14),
        payload: range.start..range.start,
        wire_len: 0,
        bogus: true,
    })
}

/// The payload of IP protocol `proto` at `range`.
fn transport(
    buf: &[u8],
    proto: IpNumber,
    range: Range<usize>,
    src: IpAddr,
    dst: IpAddr,
    claimed: usize,
    ctx: &mut Ctx,
) -> Step {
    let d = &buf[range.clone()];
    match proto {
        IpNumber::TCP => match TcpSlice::from_slice(d) {
            Ok(tcp) => Step::Tcp(tcp_head(buf, src, dst, &tcp, claimed, ctx)),
            Err(_) => bogus_tcp(buf, src, dst, range),
        },
        IpNumber::UDP => udp(buf, range, src, dst, ctx),
        IpNumber::IPV4 | IpNumber::IPV6 => {
            let want = if proto == IpNumber::IPV4 { 4 } else { 6 };
            if d.first().map(|b| b >> 4) != Some(want) {
                return Step::End(End::OtherIp(proto));
            }
            ctx.tunnel(TunnelKind::IpInIp, src, dst, None);
            Step::Next(Layer::Frame(Next::Ip), range)
        }
        IpNumber::GRE => match encap::gre(d) {
            Ok(Some(g)) => {
                match g.erspan {
                    Some(session) => ctx.tunnel(TunnelKind::Erspan, src, dst, Some(session)),
                    None => ctx.tunnel(TunnelKind::Gre, src, dst, g.key),
                }
                Step::Next(Layer::Frame(g.next), shift(g.range, range.start))
            }
            Ok(None) => Step::End(End::OtherIp(proto)),
            Err(why) => Step::End(End::Malformed(why)),
        },
        other => Step::End(End::OtherIp(other)),
    }
}

const PORT_GTPU: u16 = 2152;
const PORT_VXLAN: u16 = 4789;
const PORT_VXLAN_GPE: u16 = 4790;
const PORT_CAPWAP_DATA: u16 = 5247;

/// A UDP datagram: a tunnel when one of its ports is a tunnel's and its
/// payload parses as that tunnel's header, else plain UDP.
fn udp(buf: &[u8], range: Range<usize>, src: IpAddr, dst: IpAddr, ctx: &mut Ctx) -> Step {
    let Ok(u) = UdpSlice::from_slice_lax(&buf[range]) else {
        return Step::End(End::Udp);
    };
    let p = u.payload();
    let at = range_of(buf, p).start;
    for port in [u.destination_port(), u.source_port()] {
        let found = match port {
            PORT_GTPU => encap::gtpu(p)
                .ok()
                .flatten()
                .map(|(r, teid)| (TunnelKind::GtpU, Next::Ip, r, Some(teid))),
            PORT_VXLAN | PORT_VXLAN_GPE => encap::vxlan(p, port == PORT_VXLAN_GPE)
                .ok()
                .flatten()
                .map(|(n, r, vni)| (TunnelKind::Vxlan, n, r, Some(vni))),
            PORT_CAPWAP_DATA => encap::capwap(p)
                .ok()
                .flatten()
                .map(|(n, r)| (TunnelKind::Capwap, n, r, None)),
            _ => None,
        };
        if let Some((kind, next, r, id)) = found {
            ctx.tunnel(kind, src, dst, id);
            return Step::Next(Layer::Frame(next), shift(r, at));
        }
    }
    Step::End(End::Udp)
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn eth(ether_type: [u8; 2], ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ether_type);
        f.extend_from_slice(ip);
        f
    }

    /// What the general path (the whole packet sliced) makes of `frame`.
    fn general(frame: &[u8], ctx: &mut Ctx) -> String {
        match LaxSlicedPacket::from_ethernet(frame) {
            Ok(s) => match sliced(frame, &s, ctx) {
                Step::Tcp(h) => format!("{h:?}"),
                Step::Fragment(f) => format!("fragment {f:?}"),
                Step::End(e) => format!("end {e:?}"),
                Step::Next(l, r) => format!("next {l:?} {r:?}"),
            },
            Err(_) => "malformed".into(),
        }
    }

    /// Every frame the fast path takes, it decodes as the general path does;
    /// the rest (fragments, VLAN, UDP, bad TCP headers, IP options...) it
    /// leaves to the general path.
    #[test]
    fn the_fast_path_agrees_with_the_general_path_or_declines() {
        let mut v4 = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5000, 8080, 77, 1000)
            .syn()
            .write(&mut v4, b"hello")
            .unwrap();
        let mut v6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(443, 5555, 1, 2)
            .ack(9)
            .write(&mut v6, b"world!")
            .unwrap();
        let mut udp = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut udp, b"u")
            .unwrap();
        // IPv4 total length below the bytes (Ethernet padding), above them
        // (a snaplen cut), a fragment, a TCP data offset of 4 (bogus).
        let mut padded = v4.clone();
        padded.extend_from_slice(&[0; 6]);
        let mut cut = v4.clone();
        cut.truncate(cut.len() - 2);
        let mut frag = v4.clone();
        frag[6] = 0x20; // more fragments
        let mut bogus = v4.clone();
        bogus[20 + 12] = 0x40;
        let mut vlan = vec![0x81, 0x00, 0x00, 0x05, 0x08, 0x00];
        vlan.extend_from_slice(&v4);
        let frames = [
            (eth([0x08, 0x00], &v4), true),
            (eth([0x86, 0xdd], &v6), true),
            (eth([0x08, 0x00], &padded), true),
            (eth([0x08, 0x00], &cut), true),
            (eth([0x08, 0x00], &v6), true),
            (eth([0x08, 0x00], &udp), false),
            (eth([0x08, 0x00], &frag), false),
            (eth([0x08, 0x00], &bogus), false),
            (eth([0x08, 0x00], &v4[..10]), false),
            ([&[0u8; 12][..], &vlan].concat(), false),
            (vec![0u8; 13], false),
        ];
        for (i, (frame, taken)) in frames.iter().enumerate() {
            let fast = ethernet_ip_tcp(frame, frame, &Ctx::default());
            assert_eq!(fast.is_some(), *taken, "frame {i}");
            if let Some(Step::Tcp(h)) = fast {
                assert_eq!(
                    format!("{h:?}"),
                    general(frame, &mut Ctx::default()),
                    "frame {i}"
                );
            }
        }
        // The padded frame's payload stops where the IP length says.
        let Some(Step::Tcp(h)) = ethernet_ip_tcp(&frames[2].0, &frames[2].0, &Ctx::default())
        else {
            panic!("taken")
        };
        assert_eq!(h.payload.len(), 5);
    }
}
