//! What the HTML report plots besides what the report holds: each
//! connection's messages and bytes over time (binned, bounded), its gaps,
//! the short-link and web exchanges on a time line, latency samples per
//! command. Collected only when [`Options::plots`](super::Options::plots)
//! asks for them.

use std::collections::BTreeMap;

use super::record::Layer;
use crate::capture::Timestamp;

/// Bins per connection and direction: past it, bins double in width.
pub const MAX_BINS: usize = 200;
/// Connections whose activity is kept: the first ones with messages.
pub const MAX_CONNS: usize = 16;
/// Exchanges kept for the time line (the first ones; the rest counted).
pub const MAX_EXCHANGES: usize = 1000;
/// Gaps kept per connection.
pub const MAX_GAPS: usize = 64;

/// Messages and bytes in one bin of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bin {
    pub messages: u64,
    pub bytes: u64,
}

/// One connection's activity: bins of `width_ns` from `start_ns` (both
/// relative to [`Plots::origin`]), per direction (c2s, s2c).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub start_ns: i64,
    pub width_ns: i64,
    pub bins: Vec<[Bin; 2]>,
    /// When a gap was found, and in which direction (0 c2s, 1 s2c).
    pub gaps: Vec<(i64, usize)>,
}

impl Activity {
    fn add(&mut self, at_ns: i64, dir: usize, bytes: u64) {
        if self.width_ns == 0 {
            self.start_ns = at_ns;
            self.width_ns = 1_000_000;
        }
        let mut i = ((at_ns - self.start_ns).max(0) / self.width_ns) as usize;
        while i >= MAX_BINS {
            // Twice as wide: pairs of bins merge.
            self.width_ns *= 2;
            let merged: Vec<[Bin; 2]> = self
                .bins
                .chunks(2)
                .map(|c| {
                    let mut b = c[0];
                    if let Some(n) = c.get(1) {
                        for d in 0..2 {
                            b[d].messages += n[d].messages;
                            b[d].bytes += n[d].bytes;
                        }
                    }
                    b
                })
                .collect();
            self.bins = merged;
            i = ((at_ns - self.start_ns).max(0) / self.width_ns) as usize;
        }
        if self.bins.len() <= i {
            self.bins.resize(i + 1, [Bin::default(); 2]);
        }
        self.bins[i][dir].messages += 1;
        self.bins[i][dir].bytes += bytes;
    }
}

/// A short-link or web exchange: when its request and its response were
/// complete (ns since [`Plots::origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub conn: u64,
    pub layer: Layer,
    pub name: String,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// Everything the HTML report draws that the report does not hold.
#[derive(Debug, Clone, Default)]
pub struct Plots {
    /// The first timestamp seen: times are relative to it.
    pub origin: Option<Timestamp>,
    pub activity: BTreeMap<u64, Activity>,
    /// Messages of connections not plotted (past the first [`MAX_CONNS`]).
    pub messages_omitted: u64,
    pub exchanges: Vec<Exchange>,
    pub exchanges_omitted: u64,
    /// Latency samples (µs) per request name.
    pub latency: Vec<(String, Vec<u64>)>,
}

impl Plots {
    /// Nanoseconds since the origin (set by the first call).
    pub fn at(&mut self, ts: Timestamp) -> i64 {
        let o = *self.origin.get_or_insert(ts);
        ts.nanos_since(&o)
    }

    /// A message of `bytes` on `conn` in direction `dir` (0 c2s, 1 s2c).
    pub(super) fn message(&mut self, conn: u64, ts: Timestamp, dir: usize, bytes: u64) {
        let at = self.at(ts);
        if !self.activity.contains_key(&conn) {
            if self.activity.len() >= MAX_CONNS {
                self.messages_omitted += 1;
                return;
            }
            self.activity.insert(conn, Activity::default());
        }
        if let Some(a) = self.activity.get_mut(&conn) {
            a.add(at, dir, bytes);
        }
    }

    pub(super) fn gap(&mut self, conn: u64, ts: Timestamp, dir: usize) {
        let at = self.at(ts);
        if let Some(a) = self.activity.get_mut(&conn) {
            if a.gaps.len() < MAX_GAPS {
                a.gaps.push((at, dir));
            }
        }
    }

    pub(super) fn exchange(
        &mut self,
        conn: u64,
        layer: Layer,
        name: &str,
        start: Timestamp,
        end: Timestamp,
    ) {
        if self.exchanges.len() >= MAX_EXCHANGES {
            self.exchanges_omitted += 1;
            return;
        }
        let (start_ns, end_ns) = (self.at(start), self.at(end));
        self.exchanges.push(Exchange {
            conn,
            layer,
            name: name.to_owned(),
            start_ns,
            end_ns,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_double_in_width_and_keep_every_count() {
        let mut a = Activity::default();
        for i in 0..10_000i64 {
            a.add(i * 1_000_000, (i % 2) as usize, 10);
        }
        assert!(a.bins.len() <= MAX_BINS, "{}", a.bins.len());
        let total: u64 = a.bins.iter().map(|b| b[0].messages + b[1].messages).sum();
        let bytes: u64 = a.bins.iter().map(|b| b[0].bytes + b[1].bytes).sum();
        assert_eq!((total, bytes), (10_000, 100_000));
        assert_eq!(a.width_ns, 64_000_000);
    }
}
