//! Packet numbers for records: which captured packet carried each stretch
//! of a direction's stream, so that a frame, a message or an anomaly can
//! name its first and last packet as Wireshark numbers them (1-based, every
//! packet of the file counted).

use std::collections::VecDeque;

use super::Analyzer;
use crate::flow::{Direction, Side};

/// Marks kept per direction while frame records are built (one per packet
/// not yet covered by a record: a frame over more packets than this loses
/// its first packet number, never more).
pub(super) const MAX_MARKS: usize = 4096;
/// Marks kept per direction when only the report is built (anomalies look
/// near the current position).
pub(super) const MAX_MARKS_REPORT_ONLY: usize = 32;

/// (stream offset where a packet's bytes start, its number), oldest first,
/// offsets increasing.
#[derive(Debug, Default)]
pub(super) struct Marks(VecDeque<(u64, u64)>);

impl Marks {
    /// Bytes at `offset` came in packet `packet` (0: not numbered).
    pub(super) fn add(&mut self, offset: u64, packet: u64, cap: usize) {
        if packet == 0 || self.0.back().is_some_and(|&(_, p)| p == packet) {
            return;
        }
        if self.0.len() >= cap {
            self.0.pop_front();
        }
        self.0.push_back((offset, packet));
    }

    /// The packet that carried the byte at `offset`; `None` when it is older
    /// than the marks kept.
    pub(super) fn at(&self, offset: u64) -> Option<u64> {
        let i = self.0.partition_point(|&(o, _)| o <= offset);
        i.checked_sub(1).map(|i| self.0[i].1)
    }

    /// The first and the last packet (by number) that carried bytes
    /// `from..=last` — the last is the packet that completed them, where
    /// Wireshark shows a reassembled PDU, also when an earlier segment
    /// came late. The first is `None` when `from` is older than the marks
    /// kept.
    pub(super) fn range(&self, from: u64, last: u64) -> (Option<u64>, Option<u64>) {
        let end = self.0.partition_point(|&(o, _)| o <= last);
        let start = self.0.partition_point(|&(o, _)| o <= from);
        let Some(start_i) = start.checked_sub(1) else {
            let max = self.0.range(..end).map(|&(_, p)| p).max();
            return (None, max);
        };
        let mut it = self.0.range(start_i..end.max(start_i + 1)).map(|&(_, p)| p);
        let first = it.next();
        let (lo, hi) = it.fold((first, first), |(lo, hi), p| {
            (lo.map(|l| l.min(p)), hi.map(|h| h.max(p)))
        });
        (lo, hi)
    }

    /// Forgets the marks of bytes before `offset` (records are numbered in
    /// stream order per direction).
    pub(super) fn forget_before(&mut self, offset: u64) {
        while self.0.len() >= 2 && self.0[1].0 <= offset {
            self.0.pop_front();
        }
    }
}

/// First and last packet of a record.
pub(super) type Span = (Option<u64>, Option<u64>);

impl<F: FnMut(&super::FrameRecord)> Analyzer<'_, F> {
    fn marks(&mut self, conn: u64, dir: Direction) -> Option<&mut Marks> {
        let c = self.conns.get_mut(&conn)?;
        let client = c.roles.client();
        let side: Side = match dir {
            Direction::ClientToServer => client,
            Direction::ServerToClient => client.other(),
        };
        Some(&mut c.marks[side.index()])
    }

    /// The first and last packet that carried bytes `from..to` of `dir`'s
    /// stream (see [`Marks::range`]); the
    /// marks before `from` are forgotten.
    pub(super) fn span(&mut self, conn: u64, dir: Direction, from: u64, to: u64) -> Span {
        let Some(m) = self.marks(conn, dir) else {
            return (None, None);
        };
        let span = m.range(from, to.saturating_sub(1).max(from));
        m.forget_before(from);
        span
    }

    /// The packet that carried the byte at `offset` of `dir`, or else the
    /// packet being processed.
    pub(super) fn packet_at(&mut self, conn: u64, dir: Direction, offset: u64) -> Option<u64> {
        let now = (self.packet > 0).then_some(self.packet);
        self.marks(conn, dir).and_then(|m| m.at(offset)).or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_find_the_packet_of_each_byte_and_forget_the_old() {
        let mut m = Marks::default();
        m.add(0, 4, MAX_MARKS);
        m.add(100, 4, MAX_MARKS); // same packet: no new mark
        m.add(150, 7, MAX_MARKS);
        m.add(300, 9, MAX_MARKS);
        m.add(310, 0, MAX_MARKS); // unnumbered: ignored
        assert_eq!(m.at(0), Some(4));
        assert_eq!(m.at(149), Some(4));
        assert_eq!(m.at(150), Some(7));
        assert_eq!(m.at(10_000), Some(9));
        m.forget_before(200);
        assert_eq!(m.at(200), Some(7));
        assert_eq!(m.at(0), None);
        // The cap drops the oldest.
        let mut m = Marks::default();
        for p in 1..=5 {
            m.add(p * 10, p, 3);
        }
        assert_eq!(m.at(25), None);
        assert_eq!(m.at(35), Some(3));
        // A segment that came late: bytes 100.. in packet 9, 50..100 in
        // packet 10 (out of order). Bytes 0..150 ran from packet 8 and were
        // complete in packet 10.
        let mut m = Marks::default();
        m.add(0, 8, MAX_MARKS);
        m.add(50, 10, MAX_MARKS);
        m.add(100, 9, MAX_MARKS);
        assert_eq!(m.range(0, 149), (Some(8), Some(10)));
        assert_eq!(m.range(100, 149), (Some(9), Some(9)));
        m.forget_before(60);
        assert_eq!(m.range(0, 149), (None, Some(10)));
    }
}
