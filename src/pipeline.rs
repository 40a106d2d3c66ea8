//! Glue: packet source -> frame decoder -> flow table -> sink. The only
//! loop over packets; the CLI and tests drive it. The source is a capture
//! file ([`Reader`](crate::capture::Reader)) or, with the `live` feature, a network interface
//! (`capture::live::LiveSource`).

use std::collections::BTreeMap;

use crate::capture;
/// Re-exported: sources live in `capture`, next to the file reader.
pub use crate::capture::PacketSource;
use crate::capture::Timestamp;
use crate::flow::{self, FlowMeta, FlowSummary, FlowTable, Side, Sink};
use crate::reassembly::Event;
use crate::wire::{Decoded, Decoder, TcpSegment, WireStats};

/// What a run saw, for the summary line and `--format json` consumers.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunSummary {
    pub packets: u64,
    pub wire: WireStats,
    pub flows: flow::TableStats,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub bytes: u64,
    /// Anomalies by kind.
    pub anomalies: BTreeMap<String, u64>,
    /// Link types in the order the capture declared them.
    pub linktypes: Vec<String>,
    pub read: capture::ReadStats,
    /// The read error that ended the capture early (truncated or corrupt file).
    pub read_error: Option<String>,
}

/// What went through to the sink: bytes, gaps and anomalies.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    pub bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub anomalies: BTreeMap<String, u64>,
}

impl Counts {
    /// Adds these counts to `summary`'s.
    pub(crate) fn add_to(&self, summary: &mut RunSummary) {
        summary.bytes += self.bytes;
        summary.gaps += self.gaps;
        summary.gap_bytes += self.gap_bytes;
        for (k, v) in &self.anomalies {
            *summary.anomalies.entry(k.clone()).or_default() += v;
        }
    }
}

/// Wraps the user's sink to count what goes through.
pub(crate) struct Counting<'s, S> {
    pub inner: &'s mut S,
    pub counts: &'s mut Counts,
}

impl<S: Sink> Sink for Counting<'_, S> {
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        match &ev {
            Event::Data { bytes, .. } => self.counts.bytes += bytes.len() as u64,
            Event::Gap { len, .. } => {
                self.counts.gaps += 1;
                self.counts.gap_bytes += len;
            }
            Event::Anomaly(a) => {
                *self
                    .counts
                    .anomalies
                    .entry(a.kind().to_owned())
                    .or_default() += 1;
            }
            _ => {}
        }
        self.inner.event(flow, side, ev);
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        self.inner.flow_end(summary);
    }
}

/// What the packet loop hands on: the capture's first packet's time, then
/// each TCP segment.
pub(crate) enum Got<'a> {
    Start(Timestamp),
    Tcp(Timestamp, TcpSegment<'a>),
}

/// The packet loop without a flow table: reads `reader` to its end (or its
/// first error), decodes each packet and gives `got` the first packet's
/// time and every TCP segment; `on_packet` gets each packet's offset. Fills
/// the summary's reader side: packets, wire and read statistics, link
/// types, the read error.
pub(crate) fn segments<P: PacketSource + ?Sized>(
    reader: &mut P,
    summary: &mut RunSummary,
    mut got: impl FnMut(Got<'_>),
    mut on_packet: impl FnMut(u64),
) {
    let mut decoder = Decoder::new();
    let mut read_error = None;
    loop {
        let pkt = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        };
        summary.packets += 1;
        if summary.packets == 1 {
            got(Got::Start(pkt.ts));
        }
        if let Decoded::Tcp(seg) = decoder.decode_cut(pkt.linktype, pkt.ts, pkt.data, pkt.orig_len)
        {
            got(Got::Tcp(pkt.ts, seg));
        }
        on_packet(pkt.offset);
    }
    summary.wire = decoder.stats().clone();
    summary.linktypes = reader
        .linktypes()
        .iter()
        .map(|l| format!("{} ({})", l.name(), l.0))
        .collect();
    summary.read = reader.stats();
    summary.read_error = read_error.or_else(|| reader.read_error());
}

/// Runs a whole capture (any [`PacketSource`]) through reassembly. A
/// truncated or corrupt file is not an error: the packets before the damage
/// are analysed and the problem is reported in `RunSummary::read_error`.
/// `on_packet` is called with the packet's `offset` (for a file, the byte
/// count consumed so far, for progress display).
pub fn run<P: PacketSource + ?Sized, S: Sink>(
    reader: &mut P,
    cfg: flow::Config,
    sink: &mut S,
    on_packet: impl FnMut(u64),
) -> RunSummary {
    let mut summary = RunSummary::default();
    let mut counts = Counts::default();
    let mut table = FlowTable::new(cfg);
    let mut counting = Counting {
        inner: sink,
        counts: &mut counts,
    };
    segments(
        reader,
        &mut summary,
        |got| match got {
            Got::Start(ts) => counting.inner.capture_start(ts),
            Got::Tcp(ts, seg) => table.packet(ts, &seg, &mut counting),
        },
        on_packet,
    );
    table.finish(&mut counting);
    counts.add_to(&mut summary);
    summary.flows = table.stats().clone();
    summary
}
