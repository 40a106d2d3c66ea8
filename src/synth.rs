//! Synthetic TCP traffic for samples, benchmarks and tests: a client/server
//! conversation with a real handshake, MSS-sized segments with correct
//! sequence and acknowledgement numbers, and a FIN close, as Ethernet frames.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use crate::capture::Timestamp;
use crate::proto::longlink;

/// Which end sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// One TCP connection being generated.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Next sequence number of the client and of the server.
    pub seq: [u32; 2],
    pub mss: usize,
}

/// A generated Ethernet frame.
pub type Frame = Vec<u8>;

fn mac(ip: IpAddr) -> [u8; 6] {
    let b = match ip {
        IpAddr::V4(v) => v.octets()[3],
        IpAddr::V6(v) => v.octets()[15],
    };
    [0x02, 0, 0, 0, 0, b]
}

impl Conversation {
    pub fn new(client: SocketAddr, server: SocketAddr, isn_client: u32, isn_server: u32) -> Self {
        Conversation {
            client,
            server,
            seq: [isn_client, isn_server],
            mss: 1448,
        }
    }

    fn ends(&self, side: Side) -> (SocketAddr, SocketAddr, usize) {
        match side {
            Side::Client => (self.client, self.server, 0),
            Side::Server => (self.server, self.client, 1),
        }
    }

    /// Builds one segment from `side` with explicit flags; does not advance sequence numbers.
    pub fn segment(&self, side: Side, seq: u32, flags: &str, payload: &[u8]) -> Frame {
        let (src, dst, i) = self.ends(side);
        let ack = self.seq[1 - i];
        let eth = PacketBuilder::ethernet2(mac(src.ip()), mac(dst.ip()));
        let ip = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("client and server must use the same IP version"),
        };
        let mut tcp = ip.tcp(src.port(), dst.port(), seq, 65_535);
        if flags.contains('S') {
            tcp = tcp.syn();
        }
        if flags.contains('F') {
            tcp = tcp.fin();
        }
        if flags.contains('R') {
            tcp = tcp.rst();
        }
        if flags.contains('A') {
            tcp = tcp.ack(ack);
        }
        if flags.contains('P') {
            tcp = tcp.psh();
        }
        let mut out = Vec::with_capacity(tcp.size(payload.len()));
        tcp.write(&mut out, payload).expect("writing to a Vec");
        out
    }

    /// SYN, SYN+ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Frame> {
        let syn = self.segment(Side::Client, self.seq[0], "S", b"");
        self.seq[0] = self.seq[0].wrapping_add(1);
        let synack = self.segment(Side::Server, self.seq[1], "SA", b"");
        self.seq[1] = self.seq[1].wrapping_add(1);
        let ack = self.segment(Side::Client, self.seq[0], "A", b"");
        vec![syn, synack, ack]
    }

    /// `data` from `side` cut into MSS-sized segments, then an ACK from the peer.
    pub fn send(&mut self, side: Side, data: &[u8]) -> Vec<Frame> {
        let i = match side {
            Side::Client => 0,
            Side::Server => 1,
        };
        let mut frames = Vec::with_capacity(data.len() / self.mss + 2);
        for chunk in data.chunks(self.mss.max(1)) {
            frames.push(self.segment(side, self.seq[i], "PA", chunk));
            self.seq[i] = self.seq[i].wrapping_add(chunk.len() as u32);
        }
        let peer = if i == 0 { Side::Server } else { Side::Client };
        frames.push(self.segment(peer, self.seq[1 - i], "A", b""));
        frames
    }

    /// FIN from the client, FIN+ACK from the server, last ACK.
    pub fn close(&mut self) -> Vec<Frame> {
        let fin = self.segment(Side::Client, self.seq[0], "FA", b"");
        self.seq[0] = self.seq[0].wrapping_add(1);
        let finack = self.segment(Side::Server, self.seq[1], "FA", b"");
        self.seq[1] = self.seq[1].wrapping_add(1);
        let ack = self.segment(Side::Client, self.seq[0], "A", b"");
        vec![fin, finack, ack]
    }
}

/// A WeChat long-link frame: 16-byte big-endian header (length, header
/// length 16, version 1, cmd, seq) and a body.
pub fn longlink_frame(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(longlink::HEADER_LEN + body.len());
    f.extend_from_slice(&longlink::Header::new(cmd, seq, body.len()).emit());
    f.extend_from_slice(body);
    f
}

/// Advances a timestamp by `micros`.
pub fn later(ts: Timestamp, micros: u64) -> Timestamp {
    let total = ts.nanos as u64 + micros * 1000;
    Timestamp::new(
        ts.secs + (total / 1_000_000_000) as i64,
        (total % 1_000_000_000) as u32,
        ts.digits,
    )
}

/// A tiny xorshift64 generator: deterministic, no `rand` needed (the
/// generators' only source of variety, so a seed always gives the same file).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Scramble the seed so small seeds differ a lot; never zero.
        let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        XorShift(if s == 0 { 1 } else { s })
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
}

pub mod mix;
