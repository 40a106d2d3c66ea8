//! The headers etherparse does not slice, hand-parsed (each is a few fixed
//! fields): MPLS label stacks, PPPoE sessions, PPP and Cisco HDLC, GRE
//! (RFC 2784 / 2890 and PPTP's enhanced GRE) with ERSPAN types I, II and
//! III, GTP-U with its extension headers, VXLAN and VXLAN-GPE, CAPWAP data,
//! and IEEE 802.11 data frames with their LLC/SNAP header.
//!
//! Each parser takes the bytes where its header starts and answers what
//! comes next and where (`Ok(Some(..))`), that the packet carries nothing
//! to decode further (`Ok(None)`: a control message, an encrypted frame, a
//! protocol other than IP), or that the header is malformed (`Err`, naming
//! it). Ranges are into the slice given.

use std::ops::Range;

/// What a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// An Ethernet II frame.
    Ethernet,
    /// The payload of an EtherType (what etherparse or this module slices next).
    EtherType(u16),
    /// An IPv4 or IPv6 packet.
    Ip,
    /// A PPP frame (optional address and control bytes, then the protocol).
    Ppp,
    /// A Cisco HDLC frame.
    Chdlc,
    /// An IEEE 802.11 frame.
    Wlan,
}

/// What comes next and where it lies in the slice given.
pub(super) type Inner = (Next, Range<usize>);

/// `Ok(None)`: nothing further to decode; `Err`: the header named is malformed.
pub(super) type Parsed<T> = Result<Option<T>, &'static str>;

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86DD;
pub(super) const ETHERTYPE_MPLS: u16 = 0x8847;
pub(super) const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
pub(super) const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_TEB: u16 = 0x6558;
const ETHERTYPE_ERSPAN_2: u16 = 0x88BE;
const ETHERTYPE_ERSPAN_3: u16 = 0x22EB;
const ETHERTYPE_PPP: u16 = 0x880B;

/// Labels read before a stack is taken for garbage.
const MAX_LABELS: usize = 16;
/// GTP-U extension headers read before the chain is taken for garbage.
const MAX_GTP_EXTENSIONS: usize = 16;

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn ip_follows(d: &[u8], at: usize) -> bool {
    matches!(d.get(at).map(|b| b >> 4), Some(4 | 6))
}

/// An MPLS label stack: IPv4 or IPv6 after the bottom label (told apart by
/// the version nibble, as routers do).
pub(super) fn mpls(d: &[u8]) -> Parsed<Inner> {
    let mut at = 0;
    for _ in 0..MAX_LABELS {
        let entry = d.get(at..at + 4).ok_or("mpls label")?;
        at += 4;
        if entry[2] & 0x01 == 0x01 {
            return Ok(ip_follows(d, at).then_some((Next::Ip, at..d.len())));
        }
    }
    Err("mpls label stack")
}

/// The next layer of a PPP protocol number.
fn ppp_protocol(p: u16) -> Option<Next> {
    match p {
        0x0021 => Some(Next::EtherType(ETHERTYPE_IPV4)),
        0x0057 => Some(Next::EtherType(ETHERTYPE_IPV6)),
        0x0281 | 0x0283 => Some(Next::EtherType(ETHERTYPE_MPLS)),
        _ => None,
    }
}

/// A PPPoE session frame (RFC 2516): version and type 1, code 0.
pub(super) fn pppoe(d: &[u8]) -> Parsed<Inner> {
    if d.len() < 8 {
        return Err("pppoe header");
    }
    if d[0] != 0x11 || d[1] != 0x00 {
        return Ok(None);
    }
    let len = usize::from(be16(d, 4).expect("8 bytes"));
    let end = (6 + len).min(d.len()).max(8);
    let proto = be16(d, 6).expect("8 bytes");
    Ok(ppp_protocol(proto).map(|n| (n, 8..end)))
}

/// A PPP frame: address and control (`ff 03`) when present, then a one- or
/// two-byte protocol number.
pub(super) fn ppp(d: &[u8]) -> Parsed<Inner> {
    let mut at = if d.starts_with(&[0xFF, 0x03]) { 2 } else { 0 };
    let first = *d.get(at).ok_or("ppp header")?;
    let proto = if first & 0x01 == 0x01 {
        at += 1;
        u16::from(first)
    } else {
        let p = be16(d, at).ok_or("ppp header")?;
        at += 2;
        p
    };
    Ok(ppp_protocol(proto).map(|n| (n, at..d.len())))
}

/// Whether a frame starts like Cisco HDLC (unicast or broadcast address,
/// control 0): link type PPP carries it too, as Wireshark knows.
pub(super) fn looks_like_chdlc(d: &[u8]) -> bool {
    matches!(d, [0x0F | 0x8F, 0x00, ..])
}

/// A Cisco HDLC frame: address, control, then an EtherType.
pub(super) fn chdlc(d: &[u8]) -> Parsed<Inner> {
    if d.len() < 4 {
        return Err("cisco hdlc header");
    }
    if !looks_like_chdlc(d) {
        return Err("cisco hdlc address");
    }
    let proto = be16(d, 2).expect("4 bytes");
    Ok(Some((Next::EtherType(proto), 4..d.len())))
}

/// What a GRE header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gre {
    pub next: Next,
    pub range: Range<usize>,
    /// The key (version 0) or PPTP's call id (version 1).
    pub key: Option<u32>,
    /// The ERSPAN session, when the payload is a mirrored frame.
    pub erspan: Option<u32>,
}

/// A GRE header (checksum, key and sequence number optional; PPTP's
/// acknowledgment number), then ERSPAN's own header when it carries one.
pub(super) fn gre(d: &[u8]) -> Parsed<Gre> {
    if d.len() < 4 {
        return Err("gre header");
    }
    let (checksum, routing, key, seq) = (
        d[0] & 0x80 != 0,
        d[0] & 0x40 != 0,
        d[0] & 0x20 != 0,
        d[0] & 0x10 != 0,
    );
    let (ack, version) = (d[1] & 0x80 != 0, d[1] & 0x07);
    if version > 1 || routing {
        // Source-routed GRE is obsolete (RFC 2784), other versions unknown.
        return Ok(None);
    }
    let proto = be16(d, 2).expect("4 bytes");
    let mut at = 4;
    if checksum {
        at += 4;
    }
    let key = if key {
        let k = be32(d, at).ok_or("gre key")?;
        at += 4;
        // PPTP: payload length then call id.
        Some(if version == 1 { k & 0xFFFF } else { k })
    } else {
        None
    };
    if seq {
        at += 4;
    }
    if version == 1 && ack {
        at += 4;
    }
    if at > d.len() {
        return Err("gre header");
    }
    let session = |h: &[u8]| Some(u32::from(h[2] & 0x03) << 8 | u32::from(h[3]));
    let (next, start, erspan) = match proto {
        ETHERTYPE_TEB => (Next::Ethernet, at, None),
        // Type II has a sequence number and an 8-byte header; type I neither.
        ETHERTYPE_ERSPAN_2 if seq => {
            let h = d.get(at..at + 8).ok_or("erspan header")?;
            if h[0] >> 4 != 1 {
                return Err("erspan version");
            }
            (Next::Ethernet, at + 8, session(h))
        }
        ETHERTYPE_ERSPAN_2 => (Next::Ethernet, at, Some(0)),
        ETHERTYPE_ERSPAN_3 => {
            let h = d.get(at..at + 12).ok_or("erspan header")?;
            if h[0] >> 4 != 2 {
                return Err("erspan version");
            }
            // The O flag: an 8-byte platform-specific subheader follows.
            let extra = if h[11] & 0x01 != 0 { 8 } else { 0 };
            (Next::Ethernet, at + 12 + extra, session(h))
        }
        ETHERTYPE_PPP => (Next::Ppp, at, None),
        other => (Next::EtherType(other), at, None),
    };
    if start > d.len() {
        return Err("erspan header");
    }
    Ok(Some(Gre {
        next,
        range: start..d.len(),
        key,
        erspan,
    }))
}

/// A GTP-U G-PDU (version 1, protocol type GTP, message 255) and its
/// extension headers; the payload must be IP. Returns it and the TEID.
/// Other messages (echo, error indication, end marker) carry nothing.
pub(super) fn gtpu(d: &[u8]) -> Parsed<(Range<usize>, u32)> {
    if d.len() < 8 {
        return Err("gtp-u header");
    }
    let flags = d[0];
    if flags >> 5 != 1 || flags & 0x10 == 0 || d[1] != 0xFF {
        return Ok(None);
    }
    let len = usize::from(be16(d, 2).expect("8 bytes"));
    let teid = be32(d, 4).expect("8 bytes");
    let end = (8 + len).min(d.len());
    let mut at = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number and next extension type.
        let mut next = *d.get(11).ok_or("gtp-u header")?;
        at = 12;
        if flags & 0x04 != 0 {
            let mut n = 0;
            while next != 0 {
                n += 1;
                if n > MAX_GTP_EXTENSIONS {
                    return Err("gtp-u extension headers");
                }
                let len = usize::from(*d.get(at).ok_or("gtp-u extension header")?) * 4;
                if len == 0 {
                    return Err("gtp-u extension header");
                }
                next = *d.get(at + len - 1).ok_or("gtp-u extension header")?;
                at += len;
            }
        }
    }
    if at > end {
        return Err("gtp-u header");
    }
    Ok(ip_follows(d, at).then_some((at..end, teid)))
}

/// A VXLAN header (the I flag set: a VNI follows) and an Ethernet frame;
/// with `gpe` (VXLAN-GPE, UDP 4790) the next protocol may be IP too.
pub(super) fn vxlan(d: &[u8], gpe: bool) -> Parsed<(Next, Range<usize>, u32)> {
    if d.len() < 8 {
        return Err("vxlan header");
    }
    if d[0] & 0x08 == 0 {
        return Ok(None);
    }
    let vni = u32::from_be_bytes([0, d[4], d[5], d[6]]);
    let next = if gpe && d[0] & 0x04 != 0 {
        match d[3] {
            1 | 2 => Next::Ip,
            3 => Next::Ethernet,
            _ => return Ok(None),
        }
    } else {
        Next::Ethernet
    };
    Ok(Some((next, 8..d.len(), vni)))
}

/// A CAPWAP data packet (RFC 5415, plain: DTLS-encrypted ones carry
/// nothing readable): an 802.11 frame (native format, binding 1) or an
/// 802.3 frame. Fragments and keep-alives carry nothing.
pub(super) fn capwap(d: &[u8]) -> Parsed<Inner> {
    if d.len() < 8 {
        return Err("capwap header");
    }
    if d[0] != 0 {
        return Ok(None);
    }
    let w = be32(d, 0).expect("8 bytes");
    let hlen = ((w >> 19) & 0x1F) as usize * 4;
    let wbid = (w >> 9) & 0x1F;
    let (native, fragment, keepalive) = ((w >> 8) & 1 == 1, (w >> 7) & 1 == 1, (w >> 3) & 1 == 1);
    if hlen < 8 || hlen > d.len() {
        return Err("capwap header");
    }
    if fragment || keepalive {
        return Ok(None);
    }
    let next = match (native, wbid) {
        (false, _) => Next::Ethernet,
        (true, 1) => Next::Wlan,
        (true, _) => return Ok(None),
    };
    Ok(Some((next, hlen..d.len())))
}

/// An IEEE 802.11 data frame with an LLC/SNAP header, as CAPWAP carries
/// it: the EtherType after it. Cisco access points send the frame control
/// field byte-swapped (Wireshark swaps it by default): both orders are
/// tried, swapped first, and the one that leads to an LLC/SNAP header wins.
pub(super) fn wlan(d: &[u8]) -> Parsed<Inner> {
    if d.len() < 24 {
        return Err("802.11 header");
    }
    match wlan_fc(d, d[1], d[0]) {
        Ok(Some(inner)) => Ok(Some(inner)),
        _ => wlan_fc(d, d[0], d[1]),
    }
}

/// An 802.11 frame with frame control bytes `fc0`, `fc1`. Management and
/// control frames, frames without data, protected (encrypted) ones and
/// A-MSDUs carry nothing decodable.
fn wlan_fc(d: &[u8], fc0: u8, fc1: u8) -> Parsed<Inner> {
    let subtype = fc0 >> 4;
    if fc0 & 0x03 != 0 || (fc0 >> 2) & 0x03 != 2 || subtype & 0x04 != 0 || fc1 & 0x40 != 0 {
        return Ok(None);
    }
    let mut at = 24;
    if fc1 & 0x03 == 0x03 {
        at += 6; // a fourth address: to and from the distribution system
    }
    if subtype & 0x08 != 0 {
        let qos = *d.get(at).ok_or("802.11 qos control")?;
        if qos & 0x80 != 0 {
            return Ok(None); // A-MSDU
        }
        at += 2;
        if fc1 & 0x80 != 0 {
            at += 4; // HT control
        }
    }
    let llc = d.get(at..at + 8).ok_or("llc header")?;
    if llc[..3] != [0xAA, 0xAA, 0x03] {
        return Ok(None);
    }
    let et = be16(llc, 6).expect("8 bytes");
    Ok(Some((Next::EtherType(et), at + 8..d.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpls_stack_to_ip_and_not_ip() {
        // Two labels, bottom of stack on the second, then IPv4.
        let d = [0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64, 0x45, 0];
        assert_eq!(mpls(&d), Ok(Some((Next::Ip, 8..10))));
        assert_eq!(mpls(&[0, 0, 0x01, 64, 0x00]), Ok(None));
        assert_eq!(mpls(&[0, 0, 0x00, 64]), Err("mpls label"));
        assert_eq!(mpls(&[0u8; 4 * 17]), Err("mpls label stack"));
    }

    #[test]
    fn ppp_pppoe_and_chdlc() {
        assert_eq!(
            ppp(&[0xFF, 0x03, 0x00, 0x21, 0x45]),
            Ok(Some((Next::EtherType(ETHERTYPE_IPV4), 4..5)))
        );
        // Protocol field compression: one odd byte.
        assert_eq!(
            ppp(&[0x57, 0x60]),
            Ok(Some((Next::EtherType(ETHERTYPE_IPV6), 1..2)))
        );
        assert_eq!(ppp(&[0xC0, 0x21, 1]), Ok(None)); // LCP
        assert_eq!(ppp(&[0xFF, 0x03]), Err("ppp header"));
        let s = [0x11, 0x00, 0x12, 0x34, 0x00, 0x03, 0x00, 0x21, 0x45, 0xEE];
        assert_eq!(pppoe(&s), Ok(Some((Next::EtherType(ETHERTYPE_IPV4), 8..9))));
        assert_eq!(pppoe(&[0x11, 0x09, 0, 0, 0, 0, 0, 0]), Ok(None)); // discovery
        assert_eq!(pppoe(&s[..5]), Err("pppoe header"));
        assert_eq!(
            chdlc(&[0x8F, 0x00, 0x88, 0x47, 1]),
            Ok(Some((Next::EtherType(ETHERTYPE_MPLS), 4..5)))
        );
        assert_eq!(chdlc(&[0xFF, 0x03, 0x00, 0x21]), Err("cisco hdlc address"));
    }

    #[test]
    fn gre_keys_sequence_ppp_and_erspan() {
        // Key and sequence number, IPv4.
        let d = [0x30, 0x00, 0x08, 0x00, 0, 0, 0x01, 0x02, 0, 0, 0, 9, 0x45];
        let g = gre(&d).unwrap().unwrap();
        assert_eq!(
            (g.next, g.range, g.key, g.erspan),
            (Next::EtherType(0x0800), 12..13, Some(0x0102), None)
        );
        // Checksum only, transparent Ethernet bridging.
        let g = gre(&[0x80, 0, 0x65, 0x58, 0, 0, 0, 0, 0xAA])
            .unwrap()
            .unwrap();
        assert_eq!((g.next, g.range), (Next::Ethernet, 8..9));
        // PPTP: version 1, key = length + call id, ack number.
        let d = [
            0x30, 0x81, 0x88, 0x0B, 0, 40, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0xFF,
        ];
        let g = gre(&d).unwrap().unwrap();
        assert_eq!((g.next, g.range, g.key), (Next::Ppp, 16..17, Some(7)));
        // ERSPAN II: sequence number, version 1, session 0x155.
        let mut d = vec![0x10, 0x00, 0x88, 0xBE, 0, 0, 0, 1];
        d.extend_from_slice(&[0x10, 0x00, 0x01, 0x55, 0, 0, 0, 0, 0xAB]);
        let g = gre(&d).unwrap().unwrap();
        assert_eq!(
            (g.next, g.range, g.erspan),
            (Next::Ethernet, 16..17, Some(0x155))
        );
        // ERSPAN III with the platform-specific subheader.
        let mut d = vec![0x10, 0x00, 0x22, 0xEB, 0, 0, 0, 1];
        d.extend_from_slice(&[0x20, 0, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        d.extend_from_slice(&[0; 8]);
        d.push(0xCD);
        let g = gre(&d).unwrap().unwrap();
        assert_eq!((g.range, g.erspan), (28..29, Some(9)));
        assert_eq!(gre(&[0x20, 0, 8, 0, 1]), Err("gre key"));
        assert_eq!(gre(&[0, 2, 8, 0]), Ok(None)); // version 2
        assert_eq!(gre(&[0x40, 0, 8, 0]), Ok(None)); // routing
    }

    #[test]
    fn gtpu_with_and_without_extension_headers() {
        let mut d = vec![0x30, 0xFF, 0, 2, 0, 0, 0x12, 0x34, 0x45, 0];
        assert_eq!(gtpu(&d), Ok(Some((8..10, 0x1234))));
        // E flag: a PDU session container (type 0x85) of 4 bytes, then IPv6.
        d = vec![0x34, 0xFF, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0x85];
        d.extend_from_slice(&[1, 0x10, 0x01, 0x00, 0x60, 0]);
        assert_eq!(gtpu(&d), Ok(Some((16..18, 1))));
        // Only the sequence number flag: no chain even if the byte is set.
        let d = [0x32, 0xFF, 0, 6, 0, 0, 0, 1, 0, 5, 0, 0x85, 0x45, 0];
        assert_eq!(gtpu(&d), Ok(Some((12..14, 1))));
        // Echo request, GTP', not IP, a broken chain.
        assert_eq!(gtpu(&[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]), Ok(None));
        assert_eq!(gtpu(&[0x20, 0xFF, 0, 1, 0, 0, 0, 0, 0x45]), Ok(None));
        assert_eq!(gtpu(&[0x30, 0xFF, 0, 1, 0, 0, 0, 0, 0x00]), Ok(None));
        let d = [0x34, 0xFF, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 0, 0, 0, 0];
        assert_eq!(gtpu(&d), Err("gtp-u extension header"));
        assert_eq!(gtpu(&[0x30, 0xFF, 0]), Err("gtp-u header"));
    }

    #[test]
    fn vxlan_and_gpe() {
        let d = [0x08, 0, 0, 0, 0x01, 0x02, 0x03, 0, 0xEE];
        assert_eq!(vxlan(&d, false), Ok(Some((Next::Ethernet, 8..9, 0x010203))));
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 1, 0], false), Ok(None));
        let d = [0x0C, 0, 0, 1, 0, 0, 5, 0, 0x45];
        assert_eq!(vxlan(&d, true), Ok(Some((Next::Ip, 8..9, 5))));
        assert_eq!(vxlan(&[8, 0, 0], false), Err("vxlan header"));
    }

    #[test]
    fn capwap_data_and_80211() {
        // HLEN 4 (16 bytes), binding 802.11, native frame, wireless info.
        let mut d = vec![0x00, 0x20, 0x03, 0x20, 0, 0, 0, 0];
        d.extend_from_slice(&[0x04, 0xBF, 0x23, 0, 0, 0, 0, 0]);
        d.push(0x08);
        assert_eq!(capwap(&d), Ok(Some((Next::Wlan, 16..17))));
        // 802.3 (T clear).
        d[2] = 0x02;
        d[3] = 0x00;
        assert_eq!(capwap(&d), Ok(Some((Next::Ethernet, 16..17))));
        d[0] = 0x01; // DTLS
        assert_eq!(capwap(&d), Ok(None));
        assert_eq!(capwap(&[0, 0xF8, 0, 0, 0, 0, 0, 0]), Err("capwap header"));

        // To-DS data frame with LLC/SNAP and IPv4.
        let mut f = vec![0x08, 0x01];
        f.extend_from_slice(&[0; 22]);
        f.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(
            wlan(&f),
            Ok(Some((Next::EtherType(ETHERTYPE_IPV4), 32..33)))
        );
        // QoS data (subtype 8), four addresses: 24 + 6 + 2.
        let mut q = vec![0x88, 0x03];
        q.extend_from_slice(&[0; 28]);
        q.extend_from_slice(&[0x00, 0x00]);
        q.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x86, 0xDD, 0x60]);
        assert_eq!(
            wlan(&q),
            Ok(Some((Next::EtherType(ETHERTYPE_IPV6), 40..41)))
        );
        // The frame control field byte-swapped (Cisco).
        let mut w = f.clone();
        w.swap(0, 1);
        assert_eq!(wlan(&w), wlan(&f));
        let mut p = f.clone();
        p[1] |= 0x40; // protected
        assert_eq!(wlan(&p), Ok(None));
        let mut b = f.clone();
        b[0] = 0x80; // beacon (management)
        assert_eq!(wlan(&b), Ok(None));
        assert_eq!(wlan(&f[..20]), Err("802.11 header"));
        assert_eq!(wlan(&f[..28]), Err("llc header"));
    }
}
