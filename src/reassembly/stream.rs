//! One direction of a TCP connection: from segments (in capture order) to
//! ordered bytes, gaps and close events.

use std::collections::BTreeMap;

use super::ring::Ring;
use super::seq::SeqNumber;
use crate::capture::Mapped;

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
    /// The peer acknowledged the anchor (or beyond) before any byte went.
    anchor_acked: bool,
    /// Anchors (ISN, next sequence number) a later SYN replaced before any
    /// byte went, the latest last.
    given_up: [Option<(Option<SeqNumber>, SeqNumber)>; 2],
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
            anchor_acked: false,
            given_up: [None; 2],
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
        self.segment_in(seg, None, budget, out)
    }

    /// [`HalfStream::segment`] of a segment whose payload may lie in
    /// `base`, a mapped capture file that outlives it: the bytes kept for
    /// comparing retransmissions are then kept as a place in the file
    /// instead of a copy.
    pub fn segment_in<F: FnMut(Event<'_>)>(
        &mut self,
        seg: Segment<'_>,
        base: Option<&Mapped>,
        budget: &mut Budget,
        out: &mut F,
    ) {
        self.stats.segments += 1;
        let mut data_seq = SeqNumber(seg.seq);
        if seg.syn {
            // Before any byte, hole or FIN, and while the peer has not
            // acknowledged the anchor, a SYN (re)anchors the direction: a
            // bare RST sent before it (a refused first attempt) does not hold
            // it, and of several SYNs with different numbers the peer may go
            // on with a later one. The anchors given up are remembered: the
            // peer's ACK of one brings it back (see `peer_ack`).
            let fresh = self.fresh();
            match self.isn {
                None => {
                    if fresh {
                        if let Some(old) = self.next_seq {
                            self.remember(None, old);
                        }
                    }
                    self.isn = Some(data_seq);
                    if self.next_seq.is_none() || fresh {
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
                    if fresh {
                        if let Some(old) = self.next_seq {
                            self.remember(Some(isn), old);
                        }
                        self.isn = Some(data_seq);
                        self.next_seq = Some(data_seq.plus(1));
                    }
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
                self.deliver(&payload[skip..], seg.packet, base, out);
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
        let mut next_seq = next_seq;
        if self.fresh() {
            // The peer acknowledges an anchor a later SYN replaced: it goes
            // on with that one.
            let back = self
                .given_up
                .iter()
                .position(|g| g.is_some_and(|(_, s)| s.0 == ack));
            if let Some(i) = back {
                let (isn, s) = self.given_up[i].take().expect("found");
                let current = (self.isn, next_seq);
                self.given_up[i] = Some(current);
                self.isn = isn;
                self.next_seq = Some(s);
                next_seq = s;
            }
        }
        let rel = SeqNumber(ack).diff(next_seq);
        if rel >= 0 && self.next == 0 {
            self.anchor_acked = true;
        }
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

    /// Nothing delivered, held or closed yet, and the anchor not
    /// acknowledged: a SYN may still move it.
    fn fresh(&self) -> bool {
        self.next == 0 && self.ooo.is_empty() && self.fin.is_none() && !self.anchor_acked
    }

    fn remember(&mut self, isn: Option<SeqNumber>, next_seq: SeqNumber) {
        self.given_up.rotate_left(1);
        self.given_up[1] = Some((isn, next_seq));
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

    fn deliver<F: FnMut(Event<'_>)>(
        &mut self,
        bytes: &[u8],
        packet: u64,
        base: Option<&Mapped>,
        out: &mut F,
    ) {
        if bytes.is_empty() {
            return;
        }
        out(Event::Data {
            offset: self.next,
            bytes,
            after_gap: std::mem::take(&mut self.pending_gap),
            packet,
        });
        self.retained.push(bytes, base);
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
            self.deliver(&held[skip..], packet, None, out);
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
mod tests;
