//! From link-layer frames to TCP segments: link types (link.rs), L2-L4
//! slicing with etherparse (lax: IP lengths that exceed the captured frame
//! are tolerated), the headers etherparse lacks (encap.rs: MPLS, PPPoE, PPP,
//! Cisco HDLC, GRE and ERSPAN, GTP-U, VXLAN, CAPWAP, 802.11), tunnels taken
//! off one layer at a time to a bounded depth (layers.rs, tunnel.rs), and
//! IPv4/IPv6 fragment reassembly at any layer (defrag.rs).

mod defrag;
mod encap;
mod layers;
mod link;
mod tunnel;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use etherparse::IpNumber;

use crate::capture::{Linktype, Timestamp};

pub use defrag::Defragmenter;
pub use tunnel::{Tunnel, TunnelKey, TunnelKind};

use layers::{End, Layer, Step};

/// Encapsulations (tunnels, MPLS, PPPoE) one frame may go through before it
/// is taken for garbage.
pub const MAX_ENCAPSULATIONS: u8 = 8;

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
    /// The innermost tunnel it came through.
    pub tunnel: Option<Tunnel>,
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
    /// TCP headers whose length field is impossible (below 20 bytes or past
    /// the segment): kept for their connection without payload, as tshark does.
    pub tcp_bad_header: u64,
    /// Frames by encapsulation taken off (`gtp-u`, `vxlan`, `mpls`, ...).
    pub encapsulations: BTreeMap<&'static str, u64>,
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

    /// Decodes one frame, captured whole: `decode_cut` with `orig_len` the
    /// frame's length.
    pub fn decode<'a>(
        &'a mut self,
        linktype: Linktype,
        ts: Timestamp,
        data: &'a [u8],
    ) -> Decoded<'a> {
        let whole = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.decode_cut(linktype, ts, data, whole)
    }

    /// Decodes one frame of which `data` was captured out of `orig_len`
    /// bytes on the wire. A TCP segment borrows either `data` or, for a
    /// reassembled datagram, the decoder's fragment buffer.
    pub fn decode_cut<'a>(
        &'a mut self,
        linktype: Linktype,
        ts: Timestamp,
        data: &'a [u8],
        orig_len: u32,
    ) -> Decoded<'a> {
        let Decoder { defrag, stats } = self;
        stats.frames += 1;
        *stats.linktypes.entry(linktype.0).or_default() += 1;
        defrag.expire(ts);
        let (next, mut range) = match link::start(linktype, data) {
            Ok(Some(s)) => s,
            Ok(None) => return end(stats, End::NotIp),
            Err(link::LinkError::Unknown) => {
                stats.unknown_linktype += 1;
                return Decoded::UnknownLinktype;
            }
            Err(link::LinkError::Malformed(why)) => return end(stats, End::Malformed(why)),
        };
        let mut layer = Layer::Frame(next);
        let mut ctx = layers::Ctx {
            cut: (orig_len as usize).saturating_sub(data.len()),
            ..Default::default()
        };
        // Whether the bytes are the fragment buffer's (a reassembled datagram).
        let mut reassembled = false;
        let mut steps = 0u32;
        let head = loop {
            steps += 1;
            if steps > 4 * u32::from(MAX_ENCAPSULATIONS) {
                count_encapsulations(stats, &ctx);
                return end(stats, End::Malformed("too many layers"));
            }
            let buf = if reassembled {
                defrag.completed().1
            } else {
                data
            };
            match layers::step(buf, layer, range.clone(), &mut ctx) {
                Step::Next(l, r) => {
                    if ctx.depth > MAX_ENCAPSULATIONS {
                        count_encapsulations(stats, &ctx);
                        return end(stats, End::Malformed("too many encapsulations"));
                    }
                    (layer, range) = (l, r);
                }
                Step::Tcp(h) => break h,
                Step::End(e) => {
                    count_encapsulations(stats, &ctx);
                    return end(stats, e);
                }
                Step::Fragment(f) => {
                    stats.fragments += 1;
                    let key = defrag::FragKey {
                        src: f.src,
                        dst: f.dst,
                        id: f.id,
                        proto: f.proto.0,
                        tunnel: ctx.tunnel.map(|t| t.key()),
                    };
                    // A fragment inside a reassembled datagram: copied out of
                    // the buffer the defragmenter is about to reuse.
                    let owned;
                    let payload = if reassembled {
                        owned = buf[f.payload.clone()].to_vec();
                        &owned[..]
                    } else {
                        &data[f.payload.clone()]
                    };
                    match defrag.add(key, f.offset, f.more, payload, ts) {
                        defrag::Added::Held => {
                            count_encapsulations(stats, &ctx);
                            return Decoded::FragmentHeld;
                        }
                        defrag::Added::Dropped => {
                            stats.fragments_dropped += 1;
                            count_encapsulations(stats, &ctx);
                            return Decoded::FragmentHeld;
                        }
                        defrag::Added::Complete => {
                            stats.datagrams_reassembled += 1;
                            reassembled = true;
                            ctx.cut = 0;
                            let (proto, p) = defrag.completed();
                            layer = Layer::Transport {
                                proto,
                                src: f.src,
                                dst: f.dst,
                            };
                            range = 0..p.len();
                        }
                    }
                }
            }
        };
        count_encapsulations(stats, &ctx);
        stats.tcp += 1;
        if head.bogus {
            stats.tcp_bad_header += 1;
        }
        if head.wire_len > head.payload.len() {
            stats.tcp_truncated += 1;
        }
        let defrag: &'a Defragmenter = defrag;
        let buf = if reassembled {
            defrag.completed().1
        } else {
            data
        };
        Decoded::Tcp(TcpSegment {
            src: head.src,
            dst: head.dst,
            seq: head.seq,
            ack: head.ack,
            flags: head.flags,
            window: head.window,
            payload: &buf[head.payload],
            wire_len: u32::try_from(head.wire_len).unwrap_or(u32::MAX),
            packet: stats.frames,
            tunnel: ctx.tunnel,
        })
    }
}

fn count_encapsulations(stats: &mut WireStats, ctx: &layers::Ctx) {
    if ctx.seen == 0 {
        return;
    }
    for (bit, name) in layers::ENCAP_NAMES.iter().enumerate() {
        if ctx.seen & (1 << bit) != 0 {
            *stats.encapsulations.entry(name).or_default() += 1;
        }
    }
}

/// A frame that ended without a TCP segment, counted.
fn end(stats: &mut WireStats, e: End) -> Decoded<'static> {
    match e {
        End::NotIp => {
            stats.not_ip += 1;
            Decoded::NotIp
        }
        End::Udp => {
            stats.udp += 1;
            Decoded::OtherIp(IpNumber::UDP)
        }
        End::OtherIp(p) => {
            stats.other_ip += 1;
            Decoded::OtherIp(p)
        }
        End::Malformed(why) => {
            stats.malformed += 1;
            Decoded::Malformed(why)
        }
    }
}

#[cfg(test)]
mod tests;
