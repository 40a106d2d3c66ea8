//! Link types: where in a captured frame decoding starts, and as what.
//! Ethernet (802.1Q and QinQ through etherparse), Linux SLL and SLL2, raw
//! IPv4/IPv6, BSD NULL and LOOP, PPP (and Cisco HDLC found under it),
//! PPP in HDLC-like framing, PPPoE without Ethernet, Cisco HDLC, and PPI
//! around any of them.

use std::ops::Range;

use super::encap::{looks_like_chdlc, Next, ETHERTYPE_PPPOE_SESSION};
use crate::capture::Linktype;

pub(super) enum LinkError {
    Unknown,
    Malformed(&'static str),
}

/// Where decoding starts: a layer and its bytes; `None` for a frame that
/// carries no IP by its link header (a BSD address family other than IP).
pub(super) type Start = Option<(Next, Range<usize>)>;

/// BSD address-family values that mean IPv4 / IPv6 in NULL and LOOP headers
/// (IPv6 differs between BSDs: 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS; 10 Linux).
fn af_is_ip(af: u32) -> bool {
    matches!(af, 2 | 10 | 24 | 28 | 30)
}

pub(super) fn start(linktype: Linktype, data: &[u8]) -> Result<Start, LinkError> {
    start_in(linktype, data, true)
}

fn start_in(linktype: Linktype, data: &[u8], outer: bool) -> Result<Start, LinkError> {
    let all = |n: Next| Ok(Some((n, 0..data.len())));
    match linktype {
        Linktype::ETHERNET => all(Next::Ethernet),
        Linktype::RAW_12 | Linktype::RAW_14 | Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => {
            all(Next::Ip)
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
            Ok(af_is_ip(af).then_some((Next::Ip, 4..data.len())))
        }
        Linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Err(LinkError::Malformed("linux sll header"));
            }
            let et = u16::from_be_bytes([data[14], data[15]]);
            Ok(Some((Next::EtherType(et), 16..data.len())))
        }
        Linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(LinkError::Malformed("linux sll2 header"));
            }
            let et = u16::from_be_bytes([data[0], data[1]]);
            Ok(Some((Next::EtherType(et), 20..data.len())))
        }
        Linktype::PPP | Linktype::PPP_HDLC if looks_like_chdlc(data) => all(Next::Chdlc),
        Linktype::PPP | Linktype::PPP_HDLC => all(Next::Ppp),
        Linktype::C_HDLC => all(Next::Chdlc),
        Linktype::PPP_ETHER => all(Next::EtherType(ETHERTYPE_PPPOE_SESSION)),
        Linktype::PPI if outer => {
            // Version, flags, header length and link type, little-endian.
            if data.len() < 8 {
                return Err(LinkError::Malformed("ppi header"));
            }
            let len = usize::from(u16::from_le_bytes([data[2], data[3]]));
            let dlt = u32::from_le_bytes(data[4..8].try_into().expect("8 bytes"));
            if len < 8 || len > data.len() {
                return Err(LinkError::Malformed("ppi header"));
            }
            let inner = start_in(Linktype(dlt), &data[len..], false)?;
            Ok(inner.map(|(n, r)| (n, r.start + len..r.end + len)))
        }
        _ => Err(LinkError::Unknown),
    }
}
