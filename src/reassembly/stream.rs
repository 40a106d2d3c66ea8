//! One direction of a TCP connection: from segments (in capture order) to
//! ordered bytes, gaps and close events.

use std::collections::BTreeMap;

use super::ring::Ring;
use super::seq::SeqNumber;

/// Limits for one direction and for all directions together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Out-of-order bytes held per direction before the first hole is given up.
    pub max_buffer_per_direction: usize,
    /// Delivered bytes remembered per direction to check retransmissions against.
    pub retain_window: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_buffer_per_direction: 8 << 20,
            retain_window: 64 << 10,
        }
    }
}

/// Shared cap on out-of-order bytes over all directions.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub used: usize,
    pub cap: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Self {
        Budget { used: 0, cap }
    }
}

/// What holding one out-of-order segment costs against `--max-buffer`
/// and `--max-buffer-total` besides its bytes: about what its map entry
/// and allocation take.
pub const SEGMENT_OVERHEAD: usize = 64;

/// Why bytes are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The peer acknowledged bytes beyond the hole: they were sent but not captured.
    Acked,
    /// The segment was on the wire but the capture kept only its start (snaplen).
    Uncaptured,
    /// The connection or the capture ended with the hole still open.
    Ended,
    /// The out-of-order buffer hit its cap; the hole was given up.
    BufferCap,
}

/// Anomalies found while reassembling; analysis carries on after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Anomaly {
    /// A retransmission overlaps accepted bytes with different content; the
    /// accepted bytes were kept. `offset` is the first differing byte,
    /// `packet` the packet that carried the other bytes.
    OverlapMismatch { offset: u64, len: u64, packet: u64 },
    /// Bytes that lie before the point where the stream was picked up
    /// (mid-stream start), or inside a hole already reported as a gap.
    LateData { offset: i64, len: u64 },
    /// The out-of-order buffer hit its cap.
    BufferCap { offset: u64, buffered: u64 },
    /// A SYN with a different initial sequence number on a live direction.
    IsnChanged { isn: u32, new: u32 },
}

impl Anomaly {
    /// The packet that showed it, when it is not the packet being processed
    /// (bytes held out of order and compared later).
    pub fn packet(&self) -> Option<u64> {
        match *self {
            Anomaly::OverlapMismatch { packet, .. } if packet > 0 => Some(packet),
            _ => None,
        }
    }

    /// The stream offset it is about, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match *self {
            Anomaly::OverlapMismatch { offset, .. } | Anomaly::BufferCap { offset, .. } => {
                Some(offset)
            }
            Anomaly::LateData { offset, .. } => u64::try_from(offset).ok(),
            Anomaly::IsnChanged { .. } => None,
        }
    }

    /// The kind as a short name (`overlap_mismatch`, ...), as in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::OverlapMismatch { .. } => "overlap_mismatch",
            Anomaly::LateData { .. } => "late_data",
            Anomaly::BufferCap { .. } => "buffer_cap",
            Anomaly::IsnChanged { .. } => "isn_changed",
        }
    }
}

/// What reassembly tells its consumer, in stream order per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// In-order bytes at stream offset `offset`. `after_gap` is set on the
    /// first delivery after a gap.
    Data {
        offset: u64,
        bytes: &'a [u8],
        after_gap: bool,
        /// Number of the captured packet the bytes came in
        /// ([`Segment::packet`]).
        packet: u64,
    },
    /// `len` bytes at `offset` are missing and will not be delivered.
    Gap {
        offset: u64,
        len: u64,
        reason: GapReason,
    },
    /// The sender closed its direction after `offset` bytes.
    Fin {
        offset: u64,
    },
    /// The sender reset the connection (first RST only).
    Rst {
        offset: u64,
    },
    Anomaly(Anomaly),
}

/// One segment as reassembly needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segment<'a> {
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload length on the wire (>= payload.len()).
    pub wire_len: u32,
    /// Number of the captured packet (1-based, as Wireshark counts), handed
    /// back on the [`Event::Data`] of its bytes.
    pub packet: u64,
}

/// Counters for one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Bytes delivered as Data.
    pub bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub segments: u64,
    /// Bytes seen again (retransmissions, overlaps) and dropped.
    pub dup_bytes: u64,
    pub keepalives: u64,
    pub anomalies: u64,
}

/// Out-of-order bytes and the packet they came in (bytes a repeat of the
/// segment added later are counted as the first packet's).
#[derive(Debug)]
struct Held {
    packet: u64,
    bytes: Vec<u8>,
}

/// Reassembly state of one direction.
#[derive(Debug)]
pub struct HalfStream {
    cfg: Config,
    isn: Option<SeqNumber>,
    /// Sequence number of the next expected byte, once anchored.
    next_seq: Option<SeqNumber>,
    /// Stream offset of the next expected byte.
    next: u64,
    /// Out-of-order bytes by stream offset (copied: the packet is gone when they are released).
    ooo: BTreeMap<u64, Held>,
    ooo_bytes: usize,
    /// Segments held out of order (each costs [`SEGMENT_OVERHEAD`] besides its bytes).
    ooo_segments: usize,
    /// Highest offset the peer acknowledged (0: none).
    max_ack: u64,
    fin: Option<u64>,
    fin_sent: bool,
    rst_sent: bool,
    pending_gap: bool,
    retained: Ring,
    stats: Stats,
}

impl HalfStream {
    pub fn new(cfg: Config) -> Self {
        HalfStream {
            cfg,
            isn: None,
            next_seq: None,
            next: 0,
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            ooo_segments: 0,
            max_ack: 0,
            fin: None,
            fin_sent: false,
            rst_sent: false,
            pending_gap: false,
            retained: Ring::new(cfg.retain_window),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Initial sequence number, when the SYN was seen.
    pub fn isn(&self) -> Option<u32> {
        self.isn.map(|s| s.0)
    }

    /// The sequence number offset 0 corresponds to, once anchored.
    pub fn base_seq(&self) -> Option<u32> {
        self.next_seq
            .map(|s| s.plus((self.next as u32).wrapping_neg()).0)
    }

    pub fn saw_fin(&self) -> bool {
        self.fin.is_some()
    }

    pub fn saw_rst(&self) -> bool {
        self.rst_sent
    }

    /// Bytes held out of order.
    pub fn buffered(&self) -> usize {
        self.ooo_bytes
    }

    /// What the out-of-order segments cost against the caps: their bytes
    /// plus [`SEGMENT_OVERHEAD`] each (a flood of one-byte segments is
    /// bounded like a few large ones).
    pub fn held(&self) -> usize {
        self.ooo_bytes + self.ooo_segments * SEGMENT_OVERHEAD
    }

    /// Feeds one segment sent in this direction.
    pub fn segment<F: FnMut(Event<'_>)>(
        &mut self,
        seg: Segment<'_>,
        budget: &mut Budget,
        out: &mut F,
    ) {
        self.stats.segments += 1;
        let mut data_seq = SeqNumber(seg.seq);
        if seg.syn {
            match self.isn {
                None => {
                    self.isn = Some(data_seq);
                    if self.next_seq.is_none() {
                        self.next_seq = Some(data_seq.plus(1));
                    }
                }
                Some(isn) if isn != data_seq => {
                    self.anomaly(
                        Anomaly::IsnChanged {
                            isn: isn.0,
                            new: seg.seq,
                        },
                        out,
                    );
                }
                Some(_) => {}
            }
            data_seq = data_seq.plus(1);
        }
        let next_seq = match self.next_seq {
            Some(s) => s,
            None => {
                if seg.payload.is_empty() && !seg.fin && !seg.rst {
                    return; // a bare ACK does not anchor a mid-stream direction
                }
                self.next_seq = Some(data_seq);
                data_seq
            }
        };
        let rel = data_seq.diff(next_seq);
        if !seg.syn && !seg.fin && !seg.rst && rel == -1 && seg.payload.len() <= 1 {
            self.stats.keepalives += 1;
            return;
        }
        let missing_tail = (seg.wire_len as u64).saturating_sub(seg.payload.len() as u64);
        let mut start = self.next as i64 + rel;
        let mut payload = seg.payload;
        if start < 0 {
            let before = start.unsigned_abs().min(payload.len() as u64);
            if before > 0 {
                self.anomaly(
                    Anomaly::LateData {
                        offset: start,
                        len: before,
                    },
                    out,
                );
                self.stats.dup_bytes += before;
            }
            payload = &payload[before as usize..];
            start += before as i64;
        }
        let start = start.max(0) as u64;
        let end = start + payload.len() as u64;
        let wire_end = end + missing_tail;

        if !payload.is_empty() {
            if end <= self.next {
                self.check_overlap(start, payload, seg.packet, out);
            } else if start <= self.next {
                let skip = (self.next - start) as usize;
                self.check_overlap(start, &payload[..skip], seg.packet, out);
                self.deliver(&payload[skip..], seg.packet, out);
                if wire_end > self.next {
                    let stop = self
                        .ooo
                        .keys()
                        .next()
                        .map_or(wire_end, |&k| k.min(wire_end));
                    if stop > self.next {
                        self.gap(stop - self.next, GapReason::Uncaptured, out);
                    }
                }
                self.drain_with(budget, out);
            } else {
                self.buffer(start, payload, seg.packet, budget, out);
            }
        }
        if seg.fin && self.fin.is_none() {
            self.fin = Some(wire_end);
        }
        self.skip_acked_holes(budget, out);
        self.check_fin(out);
        if seg.rst && !self.rst_sent {
            self.rst_sent = true;
            out(Event::Rst { offset: self.next });
        }
    }

    /// The peer acknowledged `ack` (its ACK number for this direction).
    pub fn peer_ack<F: FnMut(Event<'_>)>(&mut self, ack: u32, budget: &mut Budget, out: &mut F) {
        let Some(next_seq) = self.next_seq else {
            return;
        };
        let rel = SeqNumber(ack).diff(next_seq);
        if rel > 0 {
            self.max_ack = self.max_ack.max(self.next + rel as u64);
            self.skip_acked_holes(budget, out);
        }
    }

    /// The connection is over (closed, expired, reused or the capture ended):
    /// everything still held is delivered after explicit gaps.
    pub fn finish<F: FnMut(Event<'_>)>(&mut self, budget: &mut Budget, out: &mut F) {
        while let Some(&k) = self.ooo.keys().next() {
            if k > self.next {
                self.gap(k - self.next, GapReason::Ended, out);
            }
            self.drain_with(budget, out);
        }
        let trailing = match self.fin {
            Some(f) => f.saturating_sub(self.next),
            // Acknowledged but never seen: allow one for a FIN we did not capture.
            None if self.max_ack > self.next + 1 => self.max_ack - self.next - 1,
            None => 0,
        };
        if trailing > 0 {
            self.gap(trailing, GapReason::Ended, out);
        }
        self.check_fin(out);
    }

    fn anomaly<F: FnMut(Event<'_>)>(&mut self, a: Anomaly, out: &mut F) {
        self.stats.anomalies += 1;
        out(Event::Anomaly(a));
    }

    fn advance(&mut self, to: u64) {
        let d = to - self.next;
        self.next_seq = self.next_seq.map(|s| s.plus(d as u32));
        self.next = to;
    }

    fn deliver<F: FnMut(Event<'_>)>(&mut self, bytes: &[u8], packet: u64, out: &mut F) {
        if bytes.is_empty() {
            return;
        }
        out(Event::Data {
            offset: self.next,
            bytes,
            after_gap: std::mem::take(&mut self.pending_gap),
            packet,
        });
        self.retained.push(bytes);
        self.stats.bytes += bytes.len() as u64;
        self.advance(self.next + bytes.len() as u64);
    }

    fn gap<F: FnMut(Event<'_>)>(&mut self, len: u64, reason: GapReason, out: &mut F) {
        out(Event::Gap {
            offset: self.next,
            len,
            reason,
        });
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        self.retained.clear();
        self.pending_gap = true;
        self.advance(self.next + len);
    }

    /// Bytes at `start` that were already accepted: keep ours, compare.
    fn check_overlap<F: FnMut(Event<'_>)>(
        &mut self,
        start: u64,
        old: &[u8],
        packet: u64,
        out: &mut F,
    ) {
        if old.is_empty() {
            return;
        }
        self.stats.dup_bytes += old.len() as u64;
        let back = self.next - start;
        let (compared, diff) = self.retained.compare(back, old);
        // Bytes older than the retained window (or inside a gap) cannot be checked.
        if let Some(i) = diff {
            self.anomaly(
                Anomaly::OverlapMismatch {
                    offset: start + i as u64,
                    len: compared as u64,
                    packet,
                },
                out,
            );
        }
    }

    fn buffer<F: FnMut(Event<'_>)>(
        &mut self,
        start: u64,
        payload: &[u8],
        packet: u64,
        budget: &mut Budget,
        out: &mut F,
    ) {
        let mut mismatch = None;
        let added = match self.ooo.get_mut(&start) {
            Some(Held { bytes: held, .. }) => {
                // A repeat of a held segment: the held bytes win, like accepted ones.
                let common = held.len().min(payload.len());
                self.stats.dup_bytes += common as u64;
                if let Some(i) = (0..common).find(|&i| held[i] != payload[i]) {
                    mismatch = Some(Anomaly::OverlapMismatch {
                        offset: start + i as u64,
                        len: common as u64,
                        packet,
                    });
                }
                let extra = &payload[common..];
                held.extend_from_slice(extra);
                extra.len()
            }
            None => {
                self.ooo.insert(
                    start,
                    Held {
                        packet,
                        bytes: payload.to_vec(),
                    },
                );
                self.ooo_segments += 1;
                budget.used += SEGMENT_OVERHEAD;
                payload.len()
            }
        };
        if let Some(a) = mismatch {
            self.anomaly(a, out);
        }
        self.ooo_bytes += added;
        budget.used += added;
        while !self.ooo.is_empty()
            && (self.held() > self.cfg.max_buffer_per_direction || budget.used > budget.cap)
        {
            let k = *self.ooo.keys().next().expect("not empty");
            self.anomaly(
                Anomaly::BufferCap {
                    offset: self.next,
                    buffered: self.ooo_bytes as u64,
                },
                out,
            );
            if k > self.next {
                self.gap(k - self.next, GapReason::BufferCap, out);
            }
            self.drain_with(budget, out);
        }
    }

    /// A hole is given up only once the peer acknowledged past the start of
    /// the first held segment: then the receiver had the hole's bytes, and
    /// they are missing from the capture only. An ACK that ends inside the
    /// hole leaves it open (a retransmission may still fill it).
    fn skip_acked_holes<F: FnMut(Event<'_>)>(&mut self, budget: &mut Budget, out: &mut F) {
        while let Some(&k) = self.ooo.keys().next() {
            if self.max_ack <= k {
                break;
            }
            if k > self.next {
                self.gap(k - self.next, GapReason::Acked, out);
            }
            self.drain_with(budget, out);
        }
    }

    fn drain_with<F: FnMut(Event<'_>)>(&mut self, budget: &mut Budget, out: &mut F) {
        let before = self.held();
        self.drain_inner(out);
        budget.used = budget.used.saturating_sub(before - self.held());
    }

    /// Releases held segments that start at or before `next`.
    fn drain_inner<F: FnMut(Event<'_>)>(&mut self, out: &mut F) {
        while let Some(entry) = self.ooo.first_entry() {
            let k = *entry.key();
            if k > self.next {
                break;
            }
            let Held {
                packet,
                bytes: held,
            } = entry.remove();
            self.ooo_bytes -= held.len();
            self.ooo_segments -= 1;
            let end = k + held.len() as u64;
            if end <= self.next {
                self.check_overlap(k, &held, packet, out);
                continue;
            }
            let skip = (self.next - k) as usize;
            self.check_overlap(k, &held[..skip], packet, out);
            self.deliver(&held[skip..], packet, out);
        }
        self.check_fin(out);
    }

    fn check_fin<F: FnMut(Event<'_>)>(&mut self, out: &mut F) {
        if let Some(f) = self.fin {
            if !self.fin_sent && self.next >= f && self.ooo.is_empty() {
                self.fin_sent = true;
                out(Event::Fin { offset: self.next });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds segments (seq, flags, payload) and ACKs; returns delivered bytes and the other events.
    #[derive(Default)]
    struct Run {
        bytes: Vec<u8>,
        events: Vec<String>,
    }

    enum Step<'a> {
        Seg(u32, &'a str, &'a [u8]),
        Cut(u32, &'a [u8], u32),
        Ack(u32),
        Finish,
    }

    fn run(steps: &[Step<'_>]) -> (Run, Stats) {
        let mut h = HalfStream::new(Config::default());
        let mut budget = Budget::new(usize::MAX);
        let mut r = Run::default();
        let mut expect = 0u64;
        for s in steps {
            let mut out = |ev: Event<'_>| match ev {
                Event::Data { offset, bytes, .. } => {
                    assert_eq!(offset, expect, "data is contiguous");
                    expect += bytes.len() as u64;
                    r.bytes.extend_from_slice(bytes);
                }
                Event::Gap {
                    offset,
                    len,
                    reason,
                } => {
                    assert_eq!(offset, expect, "gaps are contiguous");
                    expect += len;
                    r.events.push(format!("gap {offset}+{len} {reason:?}"));
                }
                other => r.events.push(format!("{other:?}")),
            };
            match *s {
                Step::Seg(seq, flags, payload) => h.segment(
                    Segment {
                        seq,
                        syn: flags.contains('S'),
                        fin: flags.contains('F'),
                        rst: flags.contains('R'),
                        payload,
                        wire_len: payload.len() as u32,
                        packet: 0,
                    },
                    &mut budget,
                    &mut out,
                ),
                Step::Cut(seq, payload, wire_len) => h.segment(
                    Segment {
                        seq,
                        payload,
                        wire_len,
                        ..Segment::default()
                    },
                    &mut budget,
                    &mut out,
                ),
                Step::Ack(a) => h.peer_ack(a, &mut budget, &mut out),
                Step::Finish => h.finish(&mut budget, &mut out),
            }
        }
        assert_eq!(budget.used, h.held(), "budget matches what is held");
        (r, *h.stats())
    }
    use Step::*;

    #[test]
    fn in_order_with_syn_and_fin() {
        let (r, st) = run(&[
            Seg(100, "S", b""),
            Seg(101, "", b"hello "),
            Seg(107, "F", b"world"),
            Finish,
        ]);
        assert_eq!(r.bytes, b"hello world");
        assert_eq!(r.events, ["Fin { offset: 11 }"]);
        assert_eq!((st.bytes, st.gaps), (11, 0));
    }

    #[test]
    fn accepted_bytes_win_and_a_different_overlap_is_reported() {
        let (r, st) = run(&[
            Seg(0, "S", b""),
            Seg(1, "", b"GOOD"),
            Seg(1, "", b"EVIL"),
            Seg(3, "", b"XXYY"),
        ]);
        assert_eq!(r.bytes, b"GOODYY");
        assert_eq!(
            r.events,
            [
                "Anomaly(OverlapMismatch { offset: 0, len: 4, packet: 0 })",
                "Anomaly(OverlapMismatch { offset: 2, len: 2, packet: 0 })"
            ]
        );
        assert_eq!(st.dup_bytes, 6);
    }

    #[test]
    fn identical_retransmission_is_silent() {
        let (r, _) = run(&[Seg(0, "S", b""), Seg(1, "", b"abcd"), Seg(1, "", b"abcdef")]);
        assert_eq!(r.bytes, b"abcdef");
        assert!(r.events.is_empty(), "{:?}", r.events);
    }

    #[test]
    fn later_in_order_bytes_win_over_an_early_out_of_order_segment() {
        // tshark: "WWWW"@+4 first, then "AAAAZZ"@0 -> "AAAAZZWW".
        let (r, _) = run(&[Seg(0, "S", b""), Seg(5, "", b"WWWW"), Seg(1, "", b"AAAAZZ")]);
        assert_eq!(r.bytes, b"AAAAZZWW");
    }

    #[test]
    fn out_of_order_is_released_in_order() {
        let (r, _) = run(&[
            Seg(0, "S", b""),
            Seg(7, "", b"ghi"),
            Seg(4, "", b"def"),
            Seg(1, "", b"abc"),
        ]);
        assert_eq!(r.bytes, b"abcdefghi");
    }

    #[test]
    fn ack_inside_the_hole_keeps_waiting_ack_past_held_data_gives_it_up() {
        let (r, _) = run(&[
            Seg(0, "S", b""),
            Seg(1, "", b"abc"),
            Seg(10, "", b"xyz"), // hole at offsets 3..9
            Ack(8),              // inside the hole: a retransmission may come
        ]);
        assert_eq!(r.bytes, b"abc");
        assert!(r.events.is_empty());
        let (r, _) = run(&[
            Seg(0, "S", b""),
            Seg(1, "", b"abc"),
            Seg(10, "", b"xyz"),
            Ack(11),
        ]);
        assert_eq!(r.bytes, b"abcxyz");
        assert_eq!(r.events, ["gap 3+6 Acked"]);
    }

    #[test]
    fn unacked_hole_is_given_up_at_the_end_and_the_rest_delivered() {
        let (r, st) = run(&[
            Seg(0, "S", b""),
            Seg(1, "", b"ab"),
            Seg(5, "F", b"ef"),
            Finish,
        ]);
        assert_eq!(r.bytes, b"abef");
        assert_eq!(r.events, ["gap 2+2 Ended", "Fin { offset: 6 }"]);
        assert_eq!((st.gaps, st.gap_bytes), (1, 2));
    }

    #[test]
    fn keepalive_is_not_data() {
        let (r, st) = run(&[
            Seg(0, "S", b""),
            Seg(1, "", b"abc"),
            Seg(3, "", b"\0"),
            Seg(4, "", b"d"),
        ]);
        assert_eq!(r.bytes, b"abcd");
        assert!(r.events.is_empty(), "{:?}", r.events);
        assert_eq!(st.keepalives, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let isn = u32::MAX - 2;
        let (r, _) = run(&[
            Seg(isn, "S", b""),
            Seg(isn.wrapping_add(1), "", b"ab"),
            Seg(isn.wrapping_add(3), "", b"cd"), // crosses 0
            Seg(isn.wrapping_add(5), "", b"ef"),
        ]);
        assert_eq!(r.bytes, b"abcdef");
    }

    #[test]
    fn midstream_pickup_reports_older_data() {
        let (r, st) = run(&[Seg(105, "", b"WORLD"), Seg(100, "", b"HELO ")]);
        assert_eq!(r.bytes, b"WORLD");
        assert_eq!(r.events, ["Anomaly(LateData { offset: -5, len: 5 })"]);
        assert_eq!(st.anomalies, 1);
    }

    #[test]
    fn snaplen_cut_is_a_gap_of_the_missing_bytes() {
        let (r, _) = run(&[Seg(0, "S", b""), Cut(1, b"abcd", 10), Seg(11, "", b"klm")]);
        assert_eq!(r.bytes, b"abcdklm");
        assert_eq!(r.events, ["gap 4+6 Uncaptured"]);
    }

    #[test]
    fn payload_on_syn_and_rst_is_data() {
        let (r, _) = run(&[Seg(0, "S", b"Hi!"), Seg(4, "R", b"bye")]);
        assert_eq!(r.bytes, b"Hi!bye");
        assert_eq!(r.events, ["Rst { offset: 6 }"]);
    }

    #[test]
    fn buffer_cap_gives_up_the_hole() {
        let cap = 2 * (4 + SEGMENT_OVERHEAD);
        let mut h = HalfStream::new(Config {
            max_buffer_per_direction: cap,
            ..Config::default()
        });
        let mut b = Budget::new(usize::MAX);
        let mut ev = Vec::new();
        let mut out = |e: Event<'_>| ev.push(format!("{e:?}"));
        let seg = |seq, payload| Segment {
            seq,
            payload,
            wire_len: 4,
            packet: 0,
            ..Segment::default()
        };
        h.segment(seg(0, b"aaaa"), &mut b, &mut out);
        h.segment(seg(10, b"bbbb"), &mut b, &mut out);
        h.segment(seg(20, b"cccc"), &mut b, &mut out);
        assert_eq!(h.buffered(), 8, "two segments fit the cap");
        h.segment(seg(30, b"dddd"), &mut b, &mut out);
        assert!(h.held() <= cap);
        assert!(ev.iter().any(|e| e.contains("BufferCap")), "{ev:?}");
        assert_eq!(b.used, h.held());
    }

    /// Holes of one byte each (a segment, a hole, a segment, ...) never
    /// ACKed: what is held stays within the cap counted with each
    /// segment's overhead, not only its bytes (2,000,000 such holes took
    /// 167 MB when only bytes counted).
    #[test]
    fn a_flood_of_one_byte_segments_is_bounded_by_the_cap() {
        let cap = 64 << 10;
        let mut h = HalfStream::new(Config {
            max_buffer_per_direction: cap,
            ..Config::default()
        });
        let mut b = Budget::new(usize::MAX);
        let mut caps = 0;
        let mut out = |e: Event<'_>| {
            if matches!(e, Event::Anomaly(Anomaly::BufferCap { .. })) {
                caps += 1;
            }
        };
        h.segment(
            Segment {
                seq: 0,
                syn: true,
                ..Segment::default()
            },
            &mut b,
            &mut out,
        );
        for i in 0..20_000u32 {
            let seg = Segment {
                seq: 3 + 2 * i,
                payload: b"x",
                wire_len: 1,
                packet: 0,
                ..Segment::default()
            };
            h.segment(seg, &mut b, &mut out);
            assert!(h.held() <= cap, "held {} over the cap", h.held());
        }
        assert!(h.buffered() <= cap / (1 + SEGMENT_OVERHEAD));
        assert!(caps > 0);
        assert_eq!(b.used, h.held());
    }

    #[test]
    fn streams_longer_than_4_gib_keep_64_bit_offsets() {
        let mut h = HalfStream::new(Config::default());
        let mut b = Budget::new(usize::MAX);
        let mut last = (0, 0);
        let mut out = |e: Event<'_>| {
            if let Event::Data { offset, bytes, .. } = e {
                last = (offset, bytes.len());
            }
        };
        let seg = |seq: u32, payload| Segment {
            seq,
            payload,
            wire_len: 1,
            packet: 0,
            ..Segment::default()
        };
        h.segment(seg(0, b"a"), &mut b, &mut out);
        // Five acknowledged jumps of 1 GiB each: 5 GiB of holes in all.
        for i in 1..=5u64 {
            let seq = (i << 30) as u32;
            h.segment(seg(seq, b"x"), &mut b, &mut out);
            h.peer_ack(seq.wrapping_add(1), &mut b, &mut out);
        }
        assert_eq!(last.0, 5 << 30);
        assert_eq!(h.stats().gap_bytes, (5u64 << 30) - 5);
    }
}
