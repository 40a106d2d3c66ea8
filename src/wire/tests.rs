//! The decoder on built frames: link types, snaplen cuts, fragments,
//! tunnels and bogus headers.

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

fn decode_cut_one(
    lt: Linktype,
    frame: &[u8],
    orig_len: usize,
) -> (Option<Seg>, Option<Tunnel>, WireStats) {
    let mut d = Decoder::new();
    let (r, t) = match d.decode_cut(lt, Timestamp::default(), frame, orig_len as u32) {
        Decoded::Tcp(s) => (
            Some((
                s.src.to_string(),
                s.dst.to_string(),
                s.seq,
                s.payload.to_vec(),
                s.wire_len,
            )),
            s.tunnel,
        ),
        _ => (None, None),
    };
    (r, t, d.stats().clone())
}

fn decode_one(lt: Linktype, frame: &[u8]) -> (Option<Seg>, WireStats) {
    let (seg, _, st) = decode_cut_one(lt, frame, frame.len());
    (seg, st)
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
    let orig = eth.len();
    eth.truncate(orig - 6); // snaplen cut
    let (seg, _, st) = decode_cut_one(Linktype::ETHERNET, &eth, orig);
    let seg = seg.unwrap();
    assert_eq!((seg.3.as_slice(), seg.4), (&b"0123"[..], 10));
    assert_eq!(st.tcp_truncated, 1);
    // The same frame captured whole as it is (no snaplen cut): the IP
    // length is the header's error, the segment is what is there.
    let (seg, _, st) = decode_cut_one(Linktype::ETHERNET, &eth, eth.len());
    assert_eq!(seg.unwrap().4, 4);
    assert_eq!(st.tcp_truncated, 0);
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

const INNER: &str = "10.0.0.1:5000";

/// An Ethernet frame around an IPv4 packet `proto` from `src` to `dst`.
fn eth_ipv4(src: [u8; 4], dst: [u8; 4], proto: IpNumber, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .write(&mut v, proto, payload)
        .unwrap();
    v
}

fn eth_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn eth_frame(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2; 6];
    v.extend_from_slice(&[1; 6]);
    v.extend_from_slice(&ether_type.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Decodes one frame and checks it reached the inner TCP segment with its
/// payload; returns the tunnel and the statistics.
fn inner_tcp(lt: Linktype, frame: &[u8]) -> (Option<Tunnel>, WireStats) {
    let (seg, t, st) = decode_cut_one(lt, frame, frame.len());
    let seg = seg.unwrap_or_else(|| panic!("no TCP: {st:?}"));
    assert_eq!((seg.0.as_str(), seg.2), (INNER, 77));
    assert_eq!(seg.3, b"data");
    (t, st)
}

fn kind_id(t: Option<Tunnel>) -> (TunnelKind, Option<u32>, String, String) {
    let t = t.expect("a tunnel");
    (t.kind, t.id, t.src.to_string(), t.dst.to_string())
}

#[test]
fn gtpu_with_an_extension_header_is_taken_off() {
    let mut gtp = vec![0x34, 0xFF, 0, 0, 0xAB, 0xCD, 0x00, 0x01, 0, 0, 0, 0x85];
    gtp.extend_from_slice(&[1, 0x10, 0x01, 0x00]);
    gtp.extend_from_slice(&ipv4_tcp(b"data"));
    let len = (gtp.len() - 8) as u16;
    gtp[2..4].copy_from_slice(&len.to_be_bytes());
    let (t, st) = inner_tcp(Linktype::ETHERNET, &eth_udp(2152, 2152, &gtp));
    assert_eq!(
        kind_id(t),
        (
            TunnelKind::GtpU,
            Some(0xABCD_0001),
            "192.168.0.1".into(),
            "192.168.0.2".into()
        )
    );
    assert_eq!(st.encapsulations.get("gtp-u"), Some(&1));
    assert_eq!(st.udp, 0);
    // An echo request on the port is plain UDP.
    let (seg, _, st) = decode_cut_one(
        Linktype::ETHERNET,
        &eth_udp(2152, 2152, &[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]),
        0,
    );
    assert!(seg.is_none());
    assert_eq!((st.udp, st.encapsulations.len()), (1, 0));
}

#[test]
fn vxlan_capwap_and_erspan_carry_frames() {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([3; 6], [4; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(5000, 8080, 77, 1000)
        .write(&mut inner, b"data")
        .unwrap();
    let mut vx = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
    vx.extend_from_slice(&inner);
    let (t, _) = inner_tcp(Linktype::ETHERNET, &eth_udp(40000, 4789, &vx));
    assert_eq!(kind_id(t).0, TunnelKind::Vxlan);
    assert_eq!(kind_id(t).1, Some(0x1234));

    // CAPWAP data from the controller's port, an 802.11 QoS data frame.
    let mut cw = vec![0x00, 0x10, 0x03, 0x00, 0, 0, 0, 0];
    cw.extend_from_slice(&[0x88, 0x02]);
    cw.extend_from_slice(&[0; 22]);
    cw.extend_from_slice(&[0, 0, 0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00]);
    cw.extend_from_slice(&ipv4_tcp(b"data"));
    let (t, _) = inner_tcp(Linktype::ETHERNET, &eth_udp(5247, 41000, &cw));
    assert_eq!(kind_id(t).0, TunnelKind::Capwap);

    // ERSPAN II over GRE (sequence number), session 5.
    let mut gre = vec![0x10, 0x00, 0x88, 0xBE, 0, 0, 0, 1];
    gre.extend_from_slice(&[0x10, 0, 0, 5, 0, 0, 0, 0]);
    gre.extend_from_slice(&inner);
    let frame = eth_ipv4([172, 16, 0, 1], [172, 16, 0, 2], IpNumber::GRE, &gre);
    let (t, st) = inner_tcp(Linktype::ETHERNET, &frame);
    assert_eq!(
        kind_id(t),
        (
            TunnelKind::Erspan,
            Some(5),
            "172.16.0.1".into(),
            "172.16.0.2".into()
        )
    );
    assert_eq!(st.encapsulations.get("erspan"), Some(&1));
}

#[test]
fn ip_in_ip_both_ways_and_gre_with_a_key() {
    // IPv4 in IPv6.
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6([0xFE; 16], [0xFD; 16], 64)
        .write(&mut v, IpNumber::IPV4, &ipv4_tcp(b"data"))
        .unwrap();
    let (t, _) = inner_tcp(Linktype::ETHERNET, &v);
    assert_eq!(kind_id(t).0, TunnelKind::IpInIp);
    assert!(t.unwrap().src.is_ipv6());
    // IPv6 in IPv4.
    let mut six = Vec::new();
    PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
        .tcp(5000, 8080, 77, 1000)
        .write(&mut six, b"data")
        .unwrap();
    let frame = eth_ipv4([1, 1, 1, 1], [2, 2, 2, 2], IpNumber::IPV6, &six);
    let (seg, t, _) = decode_cut_one(Linktype::ETHERNET, &frame, frame.len());
    assert_eq!(seg.unwrap().3, b"data");
    assert_eq!(kind_id(t).2, "1.1.1.1");
    // GRE with a key, IPv4 inside.
    let mut gre = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42];
    gre.extend_from_slice(&ipv4_tcp(b"data"));
    let (t, _) = inner_tcp(
        Linktype::ETHERNET,
        &eth_ipv4([1, 1, 1, 1], [2, 2, 2, 2], IpNumber::GRE, &gre),
    );
    assert_eq!((kind_id(t).0, kind_id(t).1), (TunnelKind::Gre, Some(42)));
}

#[test]
fn mpls_pppoe_chdlc_ppp_and_ppi() {
    let ip = ipv4_tcp(b"data");
    // Two MPLS labels over Ethernet.
    let mut mpls = vec![0, 0, 0x10, 64, 0, 0, 0x21, 64];
    mpls.extend_from_slice(&ip);
    let (t, st) = inner_tcp(Linktype::ETHERNET, &eth_frame(0x8847, &mpls));
    assert!(t.is_none(), "MPLS is not a tunnel with endpoints");
    assert_eq!(st.encapsulations.get("mpls"), Some(&1));
    // PPPoE session over Ethernet, with a VLAN tag.
    let mut pppoe = vec![0x11, 0x00, 0x00, 0x07];
    pppoe.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&ip);
    let mut vlan = vec![0x00, 0x05, 0x88, 0x64];
    vlan.extend_from_slice(&pppoe);
    inner_tcp(Linktype::ETHERNET, &eth_frame(0x8100, &vlan));
    inner_tcp(Linktype::PPP_ETHER, &pppoe);
    // Cisco HDLC with MPLS, on its own link type and under PPP's.
    let mut hdlc = vec![0x0F, 0x00, 0x88, 0x47, 0, 0, 0x11, 64];
    hdlc.extend_from_slice(&ip);
    inner_tcp(Linktype::C_HDLC, &hdlc);
    inner_tcp(Linktype::PPP, &hdlc);
    // PPP in HDLC-like framing.
    let mut ppp = vec![0xFF, 0x03, 0x00, 0x21];
    ppp.extend_from_slice(&ip);
    inner_tcp(Linktype::PPP, &ppp);
    inner_tcp(Linktype::PPP_HDLC, &ppp);
    // PPI around Ethernet.
    let mut ppi = vec![0, 0, 8, 0, 1, 0, 0, 0];
    ppi.extend_from_slice(&eth_frame(0x0800, &ip));
    inner_tcp(Linktype::PPI, &ppi);
    // Broken headers are malformed, not fatal.
    let (seg, st) = decode_one(Linktype::C_HDLC, &[0xFF, 0x03]);
    assert!(seg.is_none());
    assert_eq!(st.malformed, 1);
    let (_, st) = decode_one(Linktype::ETHERNET, &eth_frame(0x8847, &[0, 0, 0, 64]));
    assert_eq!(st.malformed, 1);
    let (_, st) = decode_one(Linktype::PPI, &[0, 0, 200, 0, 1, 0, 0, 0]);
    assert_eq!(st.malformed, 1);
}

#[test]
fn nesting_is_bounded() {
    let mut p = ipv4_tcp(b"data");
    for _ in 0..MAX_ENCAPSULATIONS - 1 {
        let mut v = Vec::new();
        PacketBuilder::ipv4([9, 9, 9, 9], [8, 8, 8, 8], 64)
            .write(&mut v, IpNumber::IPV4, &p)
            .unwrap();
        p = v;
    }
    // MAX_ENCAPSULATIONS - 1 IP-in-IP layers and GRE: reached.
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&p);
    let (t, st) = inner_tcp(
        Linktype::ETHERNET,
        &eth_ipv4([7, 7, 7, 7], [6, 6, 6, 6], IpNumber::GRE, &gre),
    );
    // The innermost tunnel is the one kept.
    assert_eq!(kind_id(t).0, TunnelKind::IpInIp);
    assert_eq!(t.unwrap().depth, MAX_ENCAPSULATIONS);
    assert_eq!(
        (
            st.encapsulations.get("gre"),
            st.encapsulations.get("ip-in-ip")
        ),
        (Some(&1), Some(&1))
    );
    // One more: garbage.
    let mut gre2 = vec![0, 0, 0x08, 0x00];
    gre2.extend_from_slice(&eth_ipv4([7, 7, 7, 7], [6, 6, 6, 6], IpNumber::GRE, &gre)[14..]);
    let frame = eth_ipv4([5, 5, 5, 5], [4, 4, 4, 4], IpNumber::GRE, &gre2);
    let (seg, st) = decode_one(Linktype::ETHERNET, &frame);
    assert!(seg.is_none());
    assert_eq!(st.malformed, 1);
}

#[test]
fn a_fragmented_outer_datagram_is_reassembled_then_decapsulated() {
    let mut gtp = vec![0x30, 0xFF, 0, 0, 0, 0, 0, 9];
    gtp.extend_from_slice(&ipv4_tcp(&[b'q'; 200]));
    let len = (gtp.len() - 8) as u16;
    gtp[2..4].copy_from_slice(&len.to_be_bytes());
    let whole = eth_udp(2152, 2152, &gtp);
    let ip = &whole[14..];
    let (hdr, body) = ip.split_at(20);
    let frag = |off: usize, more: bool, part: &[u8]| {
        let mut h = etherparse::Ipv4Header::from_slice(hdr).unwrap().0;
        h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        h.more_fragments = more;
        h.identification = 7;
        h.set_payload_len(part.len()).unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(part);
        eth_frame(0x0800, &v)
    };
    let mut d = Decoder::new();
    let f1 = frag(0, true, &body[..96]);
    let f2 = frag(96, false, &body[96..]);
    assert!(matches!(
        d.decode(Linktype::ETHERNET, Timestamp::default(), &f1),
        Decoded::FragmentHeld
    ));
    match d.decode(Linktype::ETHERNET, Timestamp::default(), &f2) {
        Decoded::Tcp(s) => {
            assert_eq!(s.payload, &[b'q'; 200][..]);
            assert_eq!(
                s.tunnel.map(|t| (t.kind, t.id)),
                Some((TunnelKind::GtpU, Some(9)))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bogus_tcp_header_length_keeps_the_segment_without_payload() {
    // Header length 8 (below 20): the segment counts, no flags, no payload.
    let mut ip = ipv4_tcp(b"payload!");
    ip[20 + 12] = 0x20;
    ip[20 + 13] = 0x12; // SYN+ACK bits, not read
    let (seg, st) = decode_one(Linktype::RAW, &ip);
    let seg = seg.expect("a segment");
    assert_eq!((seg.0.as_str(), seg.3.len(), seg.4), (INNER, 0, 0));
    assert_eq!((st.tcp, st.tcp_bad_header, st.malformed), (1, 1, 0));
    let mut d = Decoder::new();
    let Decoded::Tcp(s) = d.decode(Linktype::RAW, Timestamp::default(), &ip) else {
        panic!()
    };
    assert_eq!(s.flags, TcpFlags::default());
    // Header length 60 past a 20-byte segment: the flags are read.
    let mut ip = ipv4_tcp(b"");
    ip[20 + 12] = 0xF0;
    ip[20 + 13] = 0x02;
    let Decoded::Tcp(s) = d.decode(Linktype::RAW, Timestamp::default(), &ip) else {
        panic!()
    };
    assert!(s.flags.syn && s.payload.is_empty());
    // Fewer than 20 bytes: malformed, as before.
    let mut ip = ipv4_tcp(b"");
    ip.truncate(30);
    ip[2..4].copy_from_slice(&30u16.to_be_bytes());
    let (seg, st) = decode_one(Linktype::RAW, &ip);
    assert!(seg.is_none());
    assert_eq!(st.malformed, 1);
}
