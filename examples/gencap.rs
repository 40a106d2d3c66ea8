//! Generates a large, deterministic classic pcap of WeChat long-link traffic
//! for benchmarks and samples:
//!
//! ```text
//! cargo run --release --example gencap -- --out FILE [--bytes N] [--conns N]
//!     [--port 8080] [--seed N] [--gzip] [--small] [--mix uniform|real]
//! ```
//!
//! `--mix uniform` (the default) is described below. `--mix real` writes a
//! capture that looks like real use instead (`syncscope::synth::mix`): `--conns`
//! (default 50) long links with manualauth/identify, heartbeats (half of the
//! connections echo cmd 6 Mars-style), newsendmsg, newnotify pushes followed
//! by newsync responses of 16 KiB to 1 MiB, a few retransmitted or reordered
//! segments, a SYN scan burst (3000 SYNs) and two short HTTP connections.
//!
//! `--conns` (default 64) long-lived TCP connections from 192.168.x.y to
//! 203.0.113.10:`--port`, interleaved in time. Each opens with a handshake,
//! then carries long-link frames (16-byte header + body of 0..4000
//! pseudo-random bytes) cut into 1448-byte segments, each message ACKed by
//! the peer: client requests (cmd 121 / 205 / 237 with a counting seq, or
//! heartbeat cmd 6 with seq 0xFFFFFFFF), server responses (cmd + 1_000_000_000,
//! same seq) and occasional server pushes (cmd 24, seq 0). Traffic goes on
//! until the pcap reaches `--bytes` (default 1G; suffixes K, M, G are powers
//! of 1024), then every connection is closed with FIN / FIN+ACK / ACK.
//! `--bytes` counts the uncompressed pcap; `--gzip` compresses it on the fly.
//! `--small` means `--bytes 20K --conns 3` (each can still be overridden).
//!
//! Ethernet, microsecond timestamps from 2024-01-01T00:00:00Z, a few
//! microseconds per packet. Output is streamed through a `BufWriter`; the
//! same `--seed` always gives the same file. The generator is also used by
//! `benches/pipeline.rs` (included with `#[path]`), hence `generate`.

#![allow(dead_code)] // `main` and the argument parser are unused when included by the benches.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

use syncscope::capture::writer::PcapWriter;
use syncscope::capture::{Linktype, Timestamp};
use syncscope::proto::commands::{
    response, IDENTIFY, NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_PUSH,
};
use syncscope::proto::longlink::{self, HEADER_LEN};
use syncscope::synth::{later, mix, Conversation, Frame, Side, XorShift};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    /// Target size of the (uncompressed) pcap in bytes.
    pub bytes: u64,
    pub conns: usize,
    pub port: u16,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bytes: 1 << 30,
            conns: 64,
            port: 8080,
            seed: 1,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub packets: u64,
    pub connections: u64,
    /// TCP payload bytes client -> server and server -> client.
    pub payload: [u64; 2],
    /// Bytes of the uncompressed pcap.
    pub pcap_bytes: u64,
    pub messages: u64,
}

/// One generated connection.
struct Conn {
    conv: Conversation,
    /// Next request sequence number (long-link seq, not TCP).
    seq: u32,
}

/// Writes frames while counting packets and bytes and advancing the clock.
struct Out<'a, W: Write> {
    w: PcapWriter<&'a mut W>,
    ts: Timestamp,
    rng: XorShift,
    totals: Totals,
}

impl<W: Write> Out<'_, W> {
    fn frames(&mut self, frames: Vec<Frame>) -> io::Result<()> {
        for f in frames {
            self.ts = later(self.ts, 2 + self.rng.below(9));
            self.w.write(self.ts, &f, None)?;
            self.totals.packets += 1;
            self.totals.pcap_bytes += 16 + f.len() as u64;
        }
        Ok(())
    }

    /// One long-link message from `side`: cut into segments, then ACKed.
    fn message(
        &mut self,
        conv: &mut Conversation,
        side: Side,
        cmd: u32,
        seq: u32,
        body: &[u8],
    ) -> io::Result<()> {
        let msg = longlink::encode(cmd, seq, body);
        self.totals.payload[side as usize] += msg.len() as u64;
        self.totals.messages += 1;
        let frames = conv.send(side, &msg);
        self.frames(frames)
    }
}

/// 64 KiB of pseudo-random bytes that message bodies are cut from.
fn body_pool(seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed ^ 0x5EED_B0D7);
    let mut pool = Vec::with_capacity(64 << 10);
    while pool.len() < 64 << 10 {
        pool.extend_from_slice(&rng.next().to_le_bytes());
    }
    pool
}

/// Ethernet header (14) + IPv4 (20) + TCP (20) + pcap record header (16).
const FRAME_OVERHEAD: u64 = 14 + 20 + 20 + 16;
const BODY_MAX: u64 = 4000;
/// 2024-01-01T00:00:00Z.
const START_SECS: i64 = 1_704_067_200;

/// Streams the capture into `out`. Stops adding traffic once the file would
/// pass `p.bytes` (counting the closing packets), so it ends close to it.
pub fn generate<W: Write>(out: &mut W, p: &Params) -> io::Result<Totals> {
    let conns_n = p.conns.max(1);
    let mut rng = XorShift::new(p.seed);
    let pool = body_pool(p.seed);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), p.port);
    let mut conns: Vec<Conn> = (0..conns_n)
        .map(|i| {
            let client = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(
                    192,
                    168,
                    (i / 250) as u8,
                    (i % 250) as u8 + 1,
                )),
                40_000 + (i % 20_000) as u16,
            );
            let isn_c = rng.next() as u32;
            let isn_s = rng.next() as u32;
            Conn {
                conv: Conversation::new(client, server, isn_c, isn_s),
                seq: 1 + rng.below(1000) as u32,
            }
        })
        .collect();

    let mut o = Out {
        w: PcapWriter::new(out, Linktype::ETHERNET, false)?,
        ts: Timestamp::new(START_SECS, 0, 6),
        rng: XorShift::new(p.seed ^ 0x7157),
        totals: Totals {
            pcap_bytes: 24,
            connections: conns_n as u64,
            ..Totals::default()
        },
    };
    // Handshake and close are 3 header-only packets each.
    let three = 3 * FRAME_OVERHEAD;
    let mut opened = 0usize;
    let mut misfits = 0u32;
    let body = |rng: &mut XorShift| -> (usize, usize) {
        let len = rng.below(BODY_MAX) as usize;
        let at = rng.below((pool.len() - len) as u64) as usize;
        (at, len)
    };
    // One exchange: (side, cmd, seq, body range) per message.
    let mut plan: Vec<(Side, u32, u32, (usize, usize))> = Vec::with_capacity(2);

    loop {
        // What is left once the open connections are closed.
        let budget = p
            .bytes
            .saturating_sub(o.totals.pcap_bytes + opened as u64 * three);
        // Open the next connection half of the time until all are open
        // (and always before anything else when none is).
        if opened < conns_n && (opened == 0 || rng.below(2) == 0) {
            if budget < 2 * three && opened > 0 {
                break;
            }
            let frames = conns[opened].conv.handshake();
            o.frames(frames)?;
            opened += 1;
            continue;
        }
        let ci = rng.below(opened as u64) as usize;
        let c = &mut conns[ci];
        plan.clear();
        match rng.below(16) {
            0 => plan.push((Side::Server, NEWNOTIFY, SEQ_PUSH, body(&mut rng))),
            1..=3 => {
                plan.push((Side::Client, NOOP, SEQ_HEARTBEAT, (0, 0)));
                plan.push((Side::Server, response(NOOP), SEQ_HEARTBEAT, (0, 0)));
            }
            r => {
                let cmd = [NEWSYNC, IDENTIFY, NEWSENDMSG][(r % 3) as usize];
                let seq = c.seq;
                plan.push((Side::Client, cmd, seq, body(&mut rng)));
                plan.push((Side::Server, response(cmd), seq, body(&mut rng)));
            }
        }
        // Exact size on disk: segments of at most MSS, then one ACK.
        let mss = c.conv.mss as u64;
        let size: u64 = plan
            .iter()
            .map(|&(_, _, _, (_, len))| {
                let msg = (HEADER_LEN + len) as u64;
                msg + (msg.div_ceil(mss) + 1) * FRAME_OVERHEAD
            })
            .sum();
        if size > budget {
            // Try smaller exchanges a few times so the file ends close to
            // (never above) the target.
            misfits += 1;
            if misfits > 32 {
                break;
            }
            continue;
        }
        misfits = 0;
        if plan[0].2 == c.seq {
            c.seq = c.seq.wrapping_add(1);
            if c.seq == SEQ_HEARTBEAT {
                c.seq = 1;
            }
        }
        for &(side, cmd, seq, (at, len)) in &plan {
            o.message(&mut c.conv, side, cmd, seq, &pool[at..at + len])?;
        }
    }
    for c in conns.iter_mut().take(opened) {
        let frames = c.conv.close();
        o.frames(frames)?;
    }
    let mut totals = o.totals;
    totals.connections = opened as u64;
    o.w.into_inner().flush()?;
    Ok(totals)
}

/// `20K`, `64M`, `1G`, `1GiB`, `123` (bytes; suffixes are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, suffix) = lower.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match suffix.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("bad size suffix in {s:?} (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

struct Args {
    out: String,
    gzip: bool,
    params: Params,
    /// `--mix real`.
    real: bool,
}

const USAGE: &str = "usage: gencap --out FILE [--bytes N[K|M|G]] [--conns N] [--port P] \
                     [--seed N] [--gzip] [--small] [--mix uniform|real]";

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut gzip = false;
    let mut small = false;
    let mut real = false;
    let (mut bytes, mut conns, mut port, mut seed) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--out" | "-o" => out = Some(value()?),
            "--bytes" => bytes = Some(parse_size(&value()?)?),
            "--conns" => conns = Some(value()?.parse().map_err(|e| format!("--conns: {e}"))?),
            "--port" => port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--seed" => seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--gzip" => gzip = true,
            "--small" => small = true,
            "--mix" => {
                real = match value()?.as_str() {
                    "real" => true,
                    "uniform" => false,
                    m => return Err(format!("--mix: {m:?} is not uniform or real")),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let d = Params::default();
    let (d_bytes, d_conns) = match (small, real) {
        (true, _) => (20 << 10, 3),
        (false, true) => (d.bytes, mix::Params::default().conns),
        (false, false) => (d.bytes, d.conns),
    };
    let conns: usize = conns.unwrap_or(d_conns);
    if conns == 0 || conns > 62_500 {
        return Err("--conns must be 1..=62500".into());
    }
    Ok(Args {
        out: out.ok_or_else(|| format!("--out is required\n{USAGE}"))?,
        gzip,
        params: Params {
            bytes: bytes.unwrap_or(d_bytes),
            conns,
            port: port.unwrap_or(d.port),
            seed: seed.unwrap_or(d.seed),
        },
        real,
    })
}

/// What `run` wrote: the uniform or the realistic generator's totals.
enum Written {
    Uniform(Totals),
    Real(mix::Totals),
}

fn write_to<W: Write>(w: &mut W, args: &Args) -> io::Result<Written> {
    let p = &args.params;
    Ok(if args.real {
        let mp = mix::Params {
            bytes: p.bytes,
            conns: p.conns,
            port: p.port,
            seed: p.seed,
            ..mix::Params::default()
        };
        Written::Real(mix::generate(w, &mp)?)
    } else {
        Written::Uniform(generate(w, p)?)
    })
}

fn run(args: &Args) -> io::Result<Written> {
    let file = File::create(&args.out)?;
    let buffered = BufWriter::with_capacity(1 << 20, file);
    if args.gzip {
        let mut gz = flate2::write::GzEncoder::new(buffered, flate2::Compression::fast());
        let t = write_to(&mut gz, args)?;
        gz.finish()?.flush()?;
        Ok(t)
    } else {
        let mut w = buffered;
        let t = write_to(&mut w, args)?;
        w.flush()?;
        Ok(t)
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gencap: {e}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    match run(&args) {
        Ok(Written::Real(t)) => {
            let secs = t0.elapsed().as_secs_f64();
            let payload: u64 = t.conns.iter().map(|c| c.payload[0] + c.payload[1]).sum();
            eprintln!(
                "gencap: {}: {} packets, {} connections with data, {} long-link frames, \
                 {} heartbeats ({} echoed as cmd 6), {} newsendmsg, {} pushes + newsync \
                 ({} response bytes), {} retransmitted and {} reordered segments, {} SYNs \
                 scanned, payload {} bytes, pcap {} bytes{} in {:.1} s",
                args.out,
                t.packets,
                t.conns.len(),
                t.messages,
                t.noops,
                t.noop_echoes,
                t.sends,
                t.pushes,
                t.sync_bytes,
                t.retransmits,
                t.reordered,
                t.scan_syns,
                payload,
                t.pcap_bytes,
                if args.gzip { " (before gzip)" } else { "" },
                secs
            );
            ExitCode::SUCCESS
        }
        Ok(Written::Uniform(t)) => {
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "gencap: {}: {} packets, {} connections, {} messages, payload c2s {} bytes, \
                 s2c {} bytes, pcap {} bytes{} in {:.1} s",
                args.out,
                t.packets,
                t.connections,
                t.messages,
                t.payload[0],
                t.payload[1],
                t.pcap_bytes,
                if args.gzip { " (before gzip)" } else { "" },
                secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gencap: {}: {e}", args.out);
            ExitCode::FAILURE
        }
    }
}
