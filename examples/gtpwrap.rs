//! Wraps every IP packet of an Ethernet capture in GTP-U, as a mobile
//! core's user-plane link (S1-U, N3) carries it: the input for the tunnel
//! benchmark (`bench/gtpu-throughput.sh`) and for trying `flows` on tunnels.
//!
//! ```text
//! cargo run --release --example gtpwrap -- IN OUT.pcap [--enodebs N]
//! ```
//!
//! Each connection's client (the endpoint with the higher port) sits behind
//! one of `--enodebs` base stations (10.200.x.y, by a hash of its address;
//! 64 by default), the core side is 10.100.0.1; the uplink and the downlink
//! of a connection each get their own TEID, as GTP-U has it. Frames that are
//! not IPv4 or IPv6 over Ethernet (without VLAN) are copied as they are.
//! Classic pcap out, microsecond timestamps, the input's order and times.

use std::fs::File;
use std::hash::{BuildHasher, Hash};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use etherparse::{LaxNetSlice, LaxSlicedPacket, PacketBuilder, TransportSlice};
use syncscope::capture::writer::PcapWriter;
use syncscope::capture::{Linktype, Reader};

const CORE: [u8; 4] = [10, 100, 0, 1];

fn hash<T: Hash>(v: T) -> u64 {
    // Fixed keys: the same input always gives the same file.
    foldhash::fast::FixedState::with_seed(7).hash_one(v)
}

/// The GTP-U frame around `ip`: uplink when the client sent it.
fn wrap(ip: &[u8], enb: [u8; 4], teid: u32, uplink: bool) -> Vec<u8> {
    let mut gtp = Vec::with_capacity(8 + ip.len());
    gtp.extend_from_slice(&[0x30, 0xFF]);
    gtp.extend_from_slice(&u16::try_from(ip.len()).unwrap_or(u16::MAX).to_be_bytes());
    gtp.extend_from_slice(&teid.to_be_bytes());
    gtp.extend_from_slice(ip);
    let (src, dst) = if uplink { (enb, CORE) } else { (CORE, enb) };
    let mut v = Vec::with_capacity(50 + ip.len());
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(2152, 2152)
        .write(&mut v, &gtp)
        .expect("a frame fits");
    v
}

fn run(input: &str, output: &str, enodebs: u64) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let mut reader = Reader::open(std::path::Path::new(input))?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, File::create(output)?),
        Linktype::ETHERNET,
        false,
    )?;
    let (mut wrapped, mut copied) = (0u64, 0u64);
    while let Some(p) = reader.next_packet()? {
        let ip_start = 14;
        let framed = p.linktype == Linktype::ETHERNET
            && matches!(p.data.get(12..14), Some([0x08, 0x00] | [0x86, 0xDD]));
        let sliced = framed
            .then(|| LaxSlicedPacket::from_ethernet(p.data).ok())
            .flatten();
        let ends = sliced.as_ref().and_then(|s| {
            let (src, dst): (IpAddr, IpAddr) = match &s.net {
                Some(LaxNetSlice::Ipv4(v4)) => (
                    v4.header().source_addr().into(),
                    v4.header().destination_addr().into(),
                ),
                Some(LaxNetSlice::Ipv6(v6)) => (
                    v6.header().source_addr().into(),
                    v6.header().destination_addr().into(),
                ),
                _ => return None,
            };
            let (sp, dp) = match &s.transport {
                Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
                Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
                _ => (0, 0),
            };
            Some(((src, sp), (dst, dp)))
        });
        let Some((a, b)) = ends else {
            w.write(p.ts, p.data, Some(p.orig_len))?;
            copied += 1;
            continue;
        };
        let uplink = a.1 >= b.1;
        let (client, server) = if uplink { (a, b) } else { (b, a) };
        let h = hash(client.0) % enodebs;
        let enb = [10, 200, (h >> 8) as u8, h as u8];
        let conn = hash((client, server)) as u32 & 0x7FFF_FFFE;
        let teid = conn | u32::from(!uplink);
        let frame = wrap(&p.data[ip_start..], enb, teid, uplink);
        let cut = (p.orig_len as usize).saturating_sub(p.data.len());
        w.write(p.ts, &frame, Some((frame.len() + cut) as u32))?;
        wrapped += 1;
    }
    w.into_inner().flush()?;
    Ok((wrapped, copied))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: gtpwrap IN OUT.pcap [--enodebs N]");
        return ExitCode::from(2);
    };
    let enodebs = match (args.next().as_deref(), args.next()) {
        (Some("--enodebs"), Some(n)) => match n.parse::<u64>() {
            Ok(n) if (1..=65536).contains(&n) => n,
            _ => {
                eprintln!("gtpwrap: --enodebs takes 1..=65536");
                return ExitCode::from(2);
            }
        },
        (None, _) => 64,
        _ => {
            eprintln!("usage: gtpwrap IN OUT.pcap [--enodebs N]");
            return ExitCode::from(2);
        }
    };
    match run(&input, &output, enodebs) {
        Ok((wrapped, copied)) => {
            eprintln!("gtpwrap: {output}: {wrapped} packets wrapped in GTP-U, {copied} copied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gtpwrap: {e}");
            ExitCode::FAILURE
        }
    }
}
