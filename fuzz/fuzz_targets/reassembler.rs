//! The two `HalfStream`s of one connection, fed a sequence of segments and
//! ACKs decoded from the input. Checked after every call: each direction's
//! Data/Gap events are contiguous, Fin comes once (segments beyond the FIN
//! may still deliver after it), the buffers respect
//! their caps and the shared budget adds up; with "pattern" payloads (every
//! byte a function of its sequence number) every delivered byte is checked
//! and no OverlapMismatch may be reported.
//!
//! Input layout: `mode` byte, two ISNs (u32 BE), then operations:
//! `flags` byte (bit0 direction, bit1 SYN, bit2 FIN, bit3 RST, bit4 an ACK
//! from the peer follows, bit5 the wire length exceeds the captured payload,
//! bit6 32-bit sequence offset, bit7 payload length x16), sequence offset
//! (i16 or u32 BE, from ISN+1), payload length (u8), ACK offset (i16 BE,
//! bit4), extra wire bytes (u8, bit5), then the payload (unless pattern mode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::reassembly::{Anomaly, Budget, Config, Event, HalfStream, Segment};

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }
}

fn pattern(seq: u32) -> u8 {
    (seq.wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// What one direction has produced so far.
#[derive(Default)]
struct Dir {
    end: u64,
    fin: bool,
}

#[derive(Debug)]
enum Ev {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
    Fin(u64),
    Mismatch,
    Other,
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Data { offset, bytes, .. } => Ev::Data(offset, bytes.to_vec()),
        Event::Gap { offset, len, .. } => Ev::Gap(offset, len),
        Event::Fin { offset } => Ev::Fin(offset),
        Event::Anomaly(Anomaly::OverlapMismatch { .. }) => Ev::Mismatch,
        Event::Rst { .. } | Event::Anomaly(_) => Ev::Other,
    }
}

fn check(d: &mut Dir, h: &HalfStream, evs: Vec<Ev>, pat: bool) {
    for ev in evs {
        match ev {
            Ev::Data(offset, bytes) => {
                assert_eq!(offset, d.end, "data not contiguous");
                assert!(!bytes.is_empty(), "empty Data");
                if pat {
                    let base = h.base_seq().expect("data before anchoring");
                    for (i, &b) in bytes.iter().enumerate() {
                        let seq = base.wrapping_add((offset + i as u64) as u32);
                        assert_eq!(
                            b,
                            pattern(seq),
                            "wrong byte at offset {}",
                            offset + i as u64
                        );
                    }
                }
                d.end += bytes.len() as u64;
            }
            Ev::Gap(offset, len) => {
                assert_eq!(offset, d.end, "gap not contiguous");
                assert!(len > 0, "empty Gap");
                d.end += len;
            }
            Ev::Fin(offset) => {
                assert!(!d.fin, "second Fin");
                assert_eq!(offset, d.end, "Fin not at the stream end");
                d.fin = true;
            }
            Ev::Mismatch => assert!(!pat, "OverlapMismatch with consistent bytes"),
            Ev::Other => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let mode = inp.u8();
    let pat = mode & 1 == 1;
    let per_dir = [8 << 20, 64, 1024, 1][usize::from(mode >> 1 & 3)];
    let shared = [usize::MAX, 100, 4096, 0][usize::from(mode >> 3 & 3)];
    let retain = [64 << 10, 16][usize::from(mode >> 5 & 1)];
    let cfg = Config {
        max_buffer_per_direction: per_dir,
        retain_window: retain,
    };
    let isn = [inp.u32(), inp.u32()];
    let mut halves = [HalfStream::new(cfg), HalfStream::new(cfg)];
    let mut dirs = [Dir::default(), Dir::default()];
    let mut budget = Budget::new(shared);
    let mut payload_buf = Vec::new();

    let invariants = |halves: &[HalfStream; 2], budget: &Budget| {
        for h in halves {
            assert!(h.buffered() <= per_dir, "over the per-direction cap");
        }
        assert_eq!(budget.used, halves[0].buffered() + halves[1].buffered());
        assert!(budget.used <= budget.cap, "over the shared budget");
    };

    while !inp.0.is_empty() {
        let flags = inp.u8();
        let side = usize::from(flags & 1);
        let rel = if flags & 0x40 != 0 {
            inp.u32()
        } else {
            inp.u16() as i16 as i32 as u32
        };
        let mut len = usize::from(inp.u8());
        if flags & 0x80 != 0 {
            len *= 16;
        }
        let ack = (flags & 0x10 != 0).then(|| inp.u16() as i16 as i32 as u32);
        let extra = if flags & 0x20 != 0 {
            u32::from(inp.u8())
        } else {
            0
        };
        let seq = isn[side].wrapping_add(1).wrapping_add(rel);
        let syn = flags & 2 != 0;
        // A SYN takes the sequence number before its data.
        let seg_seq = if syn { seq.wrapping_sub(1) } else { seq };
        payload_buf.clear();
        if pat {
            payload_buf.extend((0..len as u32).map(|i| pattern(seq.wrapping_add(i))));
        } else {
            payload_buf.extend_from_slice(inp.bytes(len));
        }
        let seg = Segment {
            seq: seg_seq,
            syn,
            fin: flags & 4 != 0,
            rst: flags & 8 != 0,
            payload: &payload_buf,
            wire_len: (payload_buf.len() as u32).saturating_add(extra),
        };
        let mut evs = Vec::new();
        halves[side].segment(seg, &mut budget, &mut |e| evs.push(own(e)));
        check(&mut dirs[side], &halves[side], evs, pat);
        invariants(&halves, &budget);
        if let Some(a) = ack {
            let peer = 1 - side;
            let ack_seq = isn[peer].wrapping_add(1).wrapping_add(a);
            let mut evs = Vec::new();
            halves[peer].peer_ack(ack_seq, &mut budget, &mut |e| evs.push(own(e)));
            check(&mut dirs[peer], &halves[peer], evs, pat);
            invariants(&halves, &budget);
        }
    }
    for side in 0..2 {
        let mut evs = Vec::new();
        halves[side].finish(&mut budget, &mut |e| evs.push(own(e)));
        check(&mut dirs[side], &halves[side], evs, pat);
        invariants(&halves, &budget);
        assert_eq!(halves[side].buffered(), 0, "bytes held after finish");
        let st = halves[side].stats();
        assert_eq!(st.bytes + st.gap_bytes, dirs[side].end, "stats vs events");
    }
    assert_eq!(budget.used, 0);
});
