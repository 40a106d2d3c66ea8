//! Model-based property tests of `reassembly::HalfStream`.
//!
//! A random byte stream is sent by a model sender (SYN, segments, optional
//! FIN), cut into segments that are then reordered, duplicated, re-cut as
//! overlapping retransmissions (same bytes) and partly lost from the capture
//! (a dropped segment still reaches the model receiver, whose cumulative ACK
//! is optionally fed as `peer_ack`). The reassembler's events are checked
//! after every call against a naive model: a byte map of what was fed.
//!
//! The exact characterisation checked at the end of every run: a stream byte
//! is delivered if and only if it was fed while the reassembler had not yet
//! moved past it (no Data or Gap covered it yet). Without ACKs and buffer cap,
//! nothing moves past a byte before `finish`, so this is "every fed byte is
//! delivered and gaps cover exactly the never-fed ranges".

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use syncscope::reassembly::{
    Anomaly, Budget, Config, Event, GapReason, HalfStream, Segment, SEGMENT_OVERHEAD,
};

/// An owned [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data {
        offset: u64,
        bytes: Vec<u8>,
        after_gap: bool,
    },
    Gap {
        offset: u64,
        len: u64,
        reason: GapReason,
    },
    Fin {
        offset: u64,
    },
    Rst {
        offset: u64,
    },
    Anomaly(Anomaly),
}

fn own(ev: Event<'_>) -> Ev {
    match ev {
        Event::Data {
            offset,
            bytes,
            after_gap,
            ..
        } => Ev::Data {
            offset,
            bytes: bytes.to_vec(),
            after_gap,
        },
        Event::Gap {
            offset,
            len,
            reason,
        } => Ev::Gap {
            offset,
            len,
            reason,
        },
        Event::Fin { offset } => Ev::Fin { offset },
        Event::Rst { offset } => Ev::Rst { offset },
        Event::Anomaly(a) => Ev::Anomaly(a),
    }
}

/// One transmission of stream bytes `start..end` by the sender.
#[derive(Debug, Clone)]
struct Tx {
    start: usize,
    end: usize,
    /// Lost from the capture (the receiver still got it).
    dropped: bool,
    /// The receiver's cumulative ACK is captured right after this segment.
    ack_after: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    data: Vec<u8>,
    isn: u32,
    /// The SYN is captured first; otherwise the capture starts mid-stream.
    syn: bool,
    /// Segments ending at the end of the stream carry FIN.
    fin: bool,
    txs: Vec<Tx>,
}

impl Plan {
    /// Sequence number of stream byte `off` (offset 0 follows the SYN).
    fn seq(&self, off: usize) -> u32 {
        self.isn.wrapping_add(1).wrapping_add(off as u32)
    }

    /// Original offset of reassembly offset 0: the SYN, or the first
    /// captured segment with payload (mid-stream pickup).
    fn anchor(&self) -> Option<usize> {
        if self.syn {
            Some(0)
        } else {
            self.txs.iter().find(|t| !t.dropped).map(|t| t.start)
        }
    }
}

/// Everything random about how a stream is sent and captured.
#[derive(Debug, Clone)]
struct Shape {
    cuts: Vec<usize>,
    retx: Vec<(Index, usize, Index)>,
    dups: Vec<(Index, Index)>,
    shuffles: Vec<(Index, usize, u8)>,
    drops: Vec<Index>,
    ack_bits: u64,
    ack_all: bool,
}

fn build(data: Vec<u8>, isn: u32, syn: bool, fin: bool, acks: bool, s: Shape) -> Plan {
    let n = data.len();
    let mut txs = Vec::new();
    let mut pos = 0;
    for &cut in s.cuts.iter().cycle() {
        if pos >= n {
            break;
        }
        let end = (pos + cut).min(n);
        txs.push(Tx {
            start: pos,
            end,
            dropped: false,
            ack_after: false,
        });
        pos = end;
    }
    if n > 0 {
        for (start, len, at) in s.retx {
            let start = start.index(n);
            let t = Tx {
                start,
                end: (start + len).min(n),
                dropped: false,
                ack_after: false,
            };
            txs.insert(at.index(txs.len() + 1), t);
        }
        for (which, at) in s.dups {
            let t = txs[which.index(txs.len())].clone();
            txs.insert(at.index(txs.len() + 1), t);
        }
        for (at, w, mode) in s.shuffles {
            let a = at.index(txs.len());
            let b = (a + w).min(txs.len());
            let win = &mut txs[a..b];
            match mode {
                0 => win.reverse(),
                1 => win.rotate_left(1),
                2 => win.rotate_right(1),
                _ => {
                    let last = win.len() - 1;
                    win.swap(0, last)
                }
            }
        }
        for d in s.drops {
            let i = d.index(txs.len());
            txs[i].dropped = true;
        }
    }
    for (i, t) in txs.iter_mut().enumerate() {
        t.ack_after = acks && (s.ack_all || (s.ack_bits >> (i % 64)) & 1 == 1);
    }
    Plan {
        data,
        isn,
        syn,
        fin: fin && n > 0,
        txs,
    }
}

/// Initial sequence numbers, often close to the wrap.
fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (u32::MAX - 4100)..=u32::MAX,
        Just(u32::MAX),
        0u32..16,
    ]
}

prop_compose! {
    fn shape(max_shuffles: usize, max_window: usize, max_drops: usize)(
        cuts in vec(1usize..300, 1..16),
        retx in vec((any::<Index>(), 1usize..300, any::<Index>()), 0..12),
        dups in vec((any::<Index>(), any::<Index>()), 0..8),
        shuffles in vec((any::<Index>(), 2usize..=max_window, 0u8..4), 0..=max_shuffles),
        drops in vec(any::<Index>(), 0..=max_drops),
        ack_bits in any::<u64>(),
        ack_all in any::<bool>(),
    ) -> Shape {
        Shape { cuts, retx, dups, shuffles, drops, ack_bits, ack_all }
    }
}

prop_compose! {
    fn plan(acks: bool, max_shuffles: usize, max_window: usize, max_drops: usize)(
        data in prop_oneof![vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..4000)],
        isn in isn(),
        syn in prop::bool::weighted(0.75),
        fin in any::<bool>(),
        shape in shape(max_shuffles, max_window, max_drops),
    ) -> Plan {
        build(data, isn, syn, fin, acks, shape)
    }
}

/// Runs a plan through one `HalfStream`, checking every event as it comes
/// against the model.
struct Harness<'p> {
    p: &'p Plan,
    h: HalfStream,
    budget: Budget,
    /// Per-direction cap to check `held()` against.
    cap: usize,
    /// Original offset of reassembly offset 0.
    a0: usize,
    /// Reassembly offset up to which Data and Gap events have covered the stream.
    cursor: u64,
    last_was_gap: bool,
    fin_event: Option<u64>,
    /// By original offset: fed at all / fed before the cursor passed it / delivered.
    fed: Vec<bool>,
    fed_in_time: Vec<bool>,
    delivered: Vec<bool>,
    /// The model receiver (gets dropped segments too).
    recv: Vec<bool>,
    recv_frontier: usize,
    recv_fin: bool,
    /// Set once the reassembler has an anchor (SYN or first captured data).
    anchored: bool,
    /// Highest ACK fed after anchoring, as a reassembly offset.
    max_ack_rel: i64,
    max_fed_end_rel: u64,
    fin_fed: bool,
    captured_payload: u64,
    /// Payload bytes fed that lie before the anchor.
    before_anchor: u64,
    segments: u64,
    events: Vec<Ev>,
}

impl<'p> Harness<'p> {
    fn new(p: &'p Plan, cfg: Config, budget_cap: usize) -> Self {
        let n = p.data.len();
        Harness {
            p,
            h: HalfStream::new(cfg),
            budget: Budget::new(budget_cap),
            cap: cfg.max_buffer_per_direction,
            a0: p.anchor().unwrap_or(0),
            cursor: 0,
            last_was_gap: false,
            fin_event: None,
            fed: vec![false; n],
            fed_in_time: vec![false; n],
            delivered: vec![false; n],
            recv: vec![false; n],
            recv_frontier: 0,
            recv_fin: false,
            anchored: false,
            max_ack_rel: 0,
            max_fed_end_rel: 0,
            fin_fed: false,
            captured_payload: 0,
            before_anchor: 0,
            segments: 0,
            events: Vec::new(),
        }
    }

    fn n_rel(&self) -> u64 {
        (self.p.data.len() - self.a0) as u64
    }

    fn feed(&mut self, seg: Segment<'_>) {
        let mut evs = Vec::new();
        self.h
            .segment(seg, &mut self.budget, &mut |e| evs.push(own(e)));
        self.segments += 1;
        self.absorb(evs);
    }

    fn syn(&mut self) {
        self.anchored = true;
        self.feed(Segment {
            seq: self.p.isn,
            syn: true,
            ..Segment::default()
        });
    }

    fn tx(&mut self, t: &Tx) {
        let p = self.p;
        for o in t.start..t.end {
            self.recv[o] = true;
        }
        while self.recv_frontier < p.data.len() && self.recv[self.recv_frontier] {
            self.recv_frontier += 1;
        }
        let fin = p.fin && t.end == p.data.len();
        self.recv_fin |= fin;
        if !t.dropped {
            self.anchored = true;
            self.fin_fed |= fin;
            self.captured_payload += (t.end - t.start) as u64;
            for o in t.start..t.end {
                if o < self.a0 {
                    self.before_anchor += 1;
                    continue;
                }
                self.fed[o] = true;
                if (o - self.a0) as u64 >= self.cursor {
                    self.fed_in_time[o] = true;
                }
            }
            self.max_fed_end_rel = self
                .max_fed_end_rel
                .max(t.end.saturating_sub(self.a0) as u64);
            let payload = &p.data[t.start..t.end];
            self.feed(Segment {
                seq: p.seq(t.start),
                fin,
                payload,
                wire_len: payload.len() as u32,
                ..Segment::default()
            });
        }
        if t.ack_after {
            self.ack();
        }
    }

    /// The receiver's cumulative ACK (counting the FIN once it has everything).
    fn ack(&mut self) {
        let mut ack = self.recv_frontier;
        if self.recv_fin && ack == self.p.data.len() {
            ack += 1;
        }
        if self.anchored {
            self.max_ack_rel = self.max_ack_rel.max(ack as i64 - self.a0 as i64);
        }
        let mut evs = Vec::new();
        self.h
            .peer_ack(self.p.seq(ack), &mut self.budget, &mut |e| evs.push(own(e)));
        self.absorb(evs);
    }

    fn finish(&mut self) {
        let mut evs = Vec::new();
        self.h.finish(&mut self.budget, &mut |e| evs.push(own(e)));
        self.absorb(evs);
    }

    /// Checks the events of one call, then the buffer invariants.
    fn absorb(&mut self, evs: Vec<Ev>) {
        let n = self.p.data.len();
        for ev in &evs {
            match ev {
                Ev::Data {
                    offset,
                    bytes,
                    after_gap,
                } => {
                    assert!(self.fin_event.is_none(), "data after Fin: {ev:?}");
                    assert_eq!(*offset, self.cursor, "data not contiguous");
                    assert!(!bytes.is_empty(), "empty Data event");
                    assert_eq!(*after_gap, self.last_was_gap, "after_gap at {offset}");
                    for (j, &b) in bytes.iter().enumerate() {
                        let o = self.a0 + *offset as usize + j;
                        assert!(o < n, "byte {o} delivered beyond the stream end {n}");
                        assert!(self.fed[o], "byte {o} delivered but never fed");
                        assert!(!self.delivered[o], "byte {o} delivered twice");
                        assert_eq!(b, self.p.data[o], "wrong byte at original offset {o}");
                        self.delivered[o] = true;
                    }
                    self.cursor += bytes.len() as u64;
                    self.last_was_gap = false;
                }
                Ev::Gap { offset, len, .. } => {
                    assert!(self.fin_event.is_none(), "gap after Fin: {ev:?}");
                    assert_eq!(*offset, self.cursor, "gap not contiguous");
                    assert!(*len > 0, "empty gap");
                    for o in *offset..*offset + *len {
                        let o = self.a0 + o as usize;
                        assert!(o < n, "gap {ev:?} runs past the stream end {n}");
                        assert!(!self.fed[o], "gap {ev:?} covers byte {o}, already fed");
                    }
                    self.cursor += len;
                    self.last_was_gap = true;
                }
                Ev::Fin { offset } => {
                    assert!(self.fin_event.is_none(), "second Fin");
                    assert!(self.fin_fed, "Fin without a captured FIN");
                    assert_eq!(*offset, self.cursor, "Fin not at the stream end");
                    assert_eq!(*offset, self.n_rel(), "Fin offset");
                    self.fin_event = Some(*offset);
                }
                Ev::Rst { .. } => panic!("Rst without a RST segment"),
                Ev::Anomaly(a) => match *a {
                    Anomaly::LateData { offset, len } => {
                        assert!(!self.p.syn, "LateData with a SYN: {a:?}");
                        assert!(offset < 0 && offset + len as i64 <= 0, "{a:?}");
                    }
                    Anomaly::BufferCap { .. } => {}
                    Anomaly::OverlapMismatch { .. } | Anomaly::IsnChanged { .. } => {
                        panic!("unexpected anomaly {a:?}")
                    }
                },
            }
        }
        self.events.extend(evs);
        assert!(
            self.h.held() <= self.cap,
            "held {} > cap {}",
            self.h.held(),
            self.cap
        );
        assert!(self.budget.used <= self.budget.cap, "budget over its cap");
        assert_eq!(self.budget.used, self.h.held(), "budget accounting");
    }

    /// Feeds the whole plan (SYN, segments, ACKs), then `finish`, and checks
    /// the end state.
    fn run(mut self) -> Self {
        let p = self.p;
        if p.syn {
            self.syn();
            if p.txs.iter().any(|t| t.ack_after) {
                self.ack();
            }
        }
        for t in &p.txs {
            self.tx(t);
        }
        self.finish();

        assert_eq!(self.h.buffered(), 0);
        assert_eq!(self.budget.used, 0);
        let expected_end = if self.fin_fed {
            self.n_rel()
        } else {
            // An ACK past everything seen leaves room for one uncaptured FIN.
            self.max_fed_end_rel
                .max((self.max_ack_rel - 1).max(0) as u64)
        };
        assert_eq!(self.cursor, expected_end, "stream end");
        assert_eq!(
            self.fin_event.is_some(),
            self.fin_fed,
            "Fin iff FIN captured"
        );
        for o in self.a0..self.p.data.len() {
            assert_eq!(
                self.delivered[o], self.fed_in_time[o],
                "original offset {o}: delivered iff fed before the stream moved past it"
            );
        }
        let st = *self.h.stats();
        let (mut data, mut gaps, mut gap_bytes, mut late) = (0, 0, 0, 0);
        for ev in &self.events {
            match ev {
                Ev::Data { bytes, .. } => data += bytes.len() as u64,
                Ev::Gap { len, .. } => {
                    gaps += 1;
                    gap_bytes += len;
                }
                Ev::Anomaly(Anomaly::LateData { len, .. }) => late += len,
                _ => {}
            }
        }
        assert_eq!(st.bytes, data, "stats.bytes");
        assert_eq!(st.gaps, gaps, "stats.gaps");
        assert_eq!(st.gap_bytes, gap_bytes, "stats.gap_bytes");
        assert_eq!(st.segments, self.segments, "stats.segments");
        assert_eq!(
            late, self.before_anchor,
            "LateData covers the bytes before the anchor"
        );
        self
    }

    fn gap_reasons(&self) -> Vec<GapReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Gap { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn count_buffer_cap(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Ev::Anomaly(Anomaly::BufferCap { .. })))
            .count()
    }
}

/// Bytes of the stream as delivered by Data events.
fn delivered_bytes(events: &[Ev]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Data { bytes, .. } => Some(bytes.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

fn overlap_mismatches(events: &[Ev]) -> Vec<Anomaly> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Anomaly(a @ Anomaly::OverlapMismatch { .. }) => Some(*a),
            _ => None,
        })
        .collect()
}

const BIG: usize = usize::MAX / 2;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Without ACKs (and far from the buffer cap) nothing is given up before
    /// `finish`: every fed byte is delivered, the gaps are exactly the
    /// never-fed ranges (reason Ended), and stats.bytes counts the distinct
    /// fed offsets.
    #[test]
    fn without_acks_every_fed_byte_is_delivered(p in plan(false, 12, 10, 6)) {
        let r = Harness::new(&p, Config::default(), BIG).run();
        let n = p.data.len();
        let fed: u64 = (r.a0..n).filter(|&o| r.fed[o]).count() as u64;
        prop_assert_eq!(r.h.stats().bytes, fed);
        for o in r.a0..n {
            prop_assert_eq!(r.delivered[o], r.fed[o], "original offset {}", o);
        }
        let fed_end = (r.a0..n).rev().find(|&o| r.fed[o]).map_or(0, |o| o + 1 - r.a0);
        prop_assert_eq!(r.cursor, fed_end as u64);
        prop_assert!(r.gap_reasons().iter().all(|g| *g == GapReason::Ended));
        prop_assert_eq!(r.count_buffer_cap(), 0);
        // Every captured payload byte is delivered once or counted as a
        // duplicate (the 1-byte keepalive probe aside). Only `<=` here: a
        // retransmission of a segment still held out of order is dropped
        // without being counted (see
        // `retransmission_of_a_held_segment_counts_as_duplicate`).
        let st = *r.h.stats();
        prop_assert!(
            st.bytes + st.dup_bytes + st.keepalives <= r.captured_payload,
            "payload accounting: {} captured, {:?}", r.captured_payload, st
        );
    }

    /// With the receiver's ACKs (which may pass holes the capture lost):
    /// order, contiguity, byte correctness, gaps only over never-fed bytes,
    /// and the exact delivered-iff-fed-in-time characterisation.
    #[test]
    fn with_acks_holes_are_given_up_and_the_rest_is_exact(p in plan(true, 12, 10, 6)) {
        let r = Harness::new(&p, Config::default(), BIG).run();
        prop_assert!(r.gap_reasons().iter().all(|g| matches!(g, GapReason::Ended | GapReason::Acked)));
        prop_assert_eq!(r.count_buffer_cap(), 0);
        prop_assert!(overlap_mismatches(&r.events).is_empty());
    }

    /// A tiny per-direction cap (and sometimes a tiny shared budget) under
    /// heavy reordering: the held bytes never exceed either limit after any
    /// call, and the stream stays contiguous and correct.
    #[test]
    fn buffer_cap_is_never_exceeded(
        p in plan(true, 40, 24, 3),
        shared_cap in prop_oneof![Just(BIG), 1usize..200 + 3 * SEGMENT_OVERHEAD],
    ) {
        // Room for a few segments, each counted with its overhead.
        let cfg = Config {
            max_buffer_per_direction: 64 + 3 * SEGMENT_OVERHEAD,
            ..Config::default()
        };
        let r = Harness::new(&p, cfg, shared_cap).run();
        prop_assert!(r.gap_reasons().iter().all(|g| *g != GapReason::Uncaptured));
    }

    /// A retransmission with different bytes over delivered data: the
    /// delivered bytes win, and one OverlapMismatch names the first
    /// differing byte and the number of bytes compared.
    #[test]
    fn different_retransmission_after_delivery_keeps_the_accepted_bytes(
        data in vec(any::<u8>(), 1..4000),
        isn in isn(),
        cut in 1usize..300,
        upto in any::<Index>(),
        at in any::<Index>(),
        len in 1usize..300,
        extra in 0usize..300,
        flips in vec((any::<Index>(), 1u8..=255), 1..8),
    ) {
        let n = data.len();
        let segs: Vec<(usize, usize)> =
            (0..n).step_by(cut).map(|s| (s, (s + cut).min(n))).collect();
        let k = 1 + upto.index(segs.len());
        let p_end = segs[k - 1].1;
        // Corrupt bytes in a..b, all delivered; the retransmission runs on
        // to `e`, maybe past what was delivered (with the original bytes).
        let a = at.index(p_end);
        let b = (a + len).min(p_end);
        let e = (b + extra).min(n);
        let mut retx = data[a..e].to_vec();
        for (i, x) in &flips {
            let o = a + i.index(b - a);
            retx[o - a] ^= x;
        }
        // Two flips of one byte by the same value cancel: look at what differs.
        let first = (a..e).find(|&o| retx[o - a] != data[o]);
        let seq = |o: usize| isn.wrapping_add(1).wrapping_add(o as u32);
        let mut h = HalfStream::new(Config::default());
        let mut budget = Budget::new(BIG);
        let mut evs = Vec::new();
        let mut out = |e: Event<'_>| evs.push(own(e));
        h.segment(Segment { seq: isn, syn: true, ..Segment::default() }, &mut budget, &mut out);
        let feed = |h: &mut HalfStream, budget: &mut Budget, out: &mut dyn FnMut(Event<'_>), s: usize, pl: &[u8]| {
            h.segment(
                Segment { seq: seq(s), payload: pl, wire_len: pl.len() as u32, ..Segment::default() },
                budget,
                &mut |ev| out(ev),
            );
        };
        for &(s, t) in &segs[..k] {
            feed(&mut h, &mut budget, &mut out, s, &data[s..t]);
        }
        feed(&mut h, &mut budget, &mut out, a, &retx);
        for &(s, t) in &segs[k..] {
            feed(&mut h, &mut budget, &mut out, s, &data[s..t]);
        }
        h.finish(&mut budget, &mut out);
        prop_assert_eq!(delivered_bytes(&evs), data.clone());
        let keepalive = retx.len() == 1 && a + 1 == p_end;
        let expected = match first {
            _ if keepalive => {
                // A 1-byte segment just below the next expected byte is a keepalive probe.
                prop_assert_eq!(h.stats().keepalives, 1);
                vec![]
            }
            None => vec![],
            Some(first) => vec![Anomaly::OverlapMismatch { offset: first as u64, len: (e.min(p_end) - a) as u64, packet: 0 }],
        };
        prop_assert_eq!(overlap_mismatches(&evs), expected);
    }

    /// A segment with different bytes held out of order, then overtaken by
    /// a segment with the original bytes that covers it: the bytes delivered
    /// first win, the held copy is compared when released.
    #[test]
    fn different_held_segment_overtaken_by_the_original_is_reported(
        data in vec(any::<u8>(), 2..4000),
        isn in isn(),
        upto in any::<Index>(),
        at in any::<Index>(),
        len in 1usize..300,
        extra in 0usize..300,
        flips in vec((any::<Index>(), 1u8..=255), 1..8),
    ) {
        let n = data.len();
        let p_end = upto.index(n - 1);
        let a = p_end + 1 + at.index(n - p_end - 1);
        let b = (a + len).min(n);
        let cover_end = (b + extra).min(n);
        let mut held = data[a..b].to_vec();
        for (i, x) in &flips {
            held[i.index(b - a)] ^= x;
        }
        // Two flips of one byte can cancel: the first byte that differs.
        let first = (a..b).find(|&o| held[o - a] != data[o]);
        let seq = |o: usize| isn.wrapping_add(1).wrapping_add(o as u32);
        let mut h = HalfStream::new(Config::default());
        let mut budget = Budget::new(BIG);
        let mut evs = Vec::new();
        let mut out = |e: Event<'_>| evs.push(own(e));
        h.segment(Segment { seq: isn, syn: true, ..Segment::default() }, &mut budget, &mut out);
        for (s, pl) in [
            (0, &data[..p_end]),
            (a, &held[..]),
            (p_end, &data[p_end..cover_end]),
            (cover_end, &data[cover_end..]),
        ] {
            h.segment(
                Segment { seq: seq(s), payload: pl, wire_len: pl.len() as u32, ..Segment::default() },
                &mut budget,
                &mut out,
            );
        }
        h.finish(&mut budget, &mut out);
        prop_assert_eq!(delivered_bytes(&evs), data.clone());
        let expected: Vec<Anomaly> = first
            .map(|f| Anomaly::OverlapMismatch { offset: f as u64, len: (b - a) as u64, packet: 0 })
            .into_iter()
            .collect();
        prop_assert_eq!(overlap_mismatches(&evs), expected);
        prop_assert_eq!(h.buffered(), 0);
    }
}

/// A retransmission of a segment still held out of order is "seen again and
/// dropped", so it counts in `dup_bytes`, like any other duplicate.
#[test]
fn retransmission_of_a_held_segment_counts_as_duplicate() {
    let mut h = HalfStream::new(Config::default());
    let mut budget = Budget::new(BIG);
    let mut evs = Vec::new();
    let mut out = |e: Event<'_>| evs.push(own(e));
    let seg = |seq: u32, payload: &'static [u8]| Segment {
        seq,
        payload,
        wire_len: payload.len() as u32,
        ..Segment::default()
    };
    h.segment(
        Segment {
            seq: 0,
            syn: true,
            ..Segment::default()
        },
        &mut budget,
        &mut out,
    );
    h.segment(seg(4, b"def"), &mut budget, &mut out); // held: bytes 3..6
    h.segment(seg(4, b"def"), &mut budget, &mut out); // the same again
    h.segment(seg(1, b"abc"), &mut budget, &mut out); // fills the hole
    h.finish(&mut budget, &mut out);
    assert_eq!(delivered_bytes(&evs), b"abcdef");
    assert_eq!(h.stats().bytes, 6);
    assert_eq!(h.stats().dup_bytes, 3, "{:?}", h.stats());
}
