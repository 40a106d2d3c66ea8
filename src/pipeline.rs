//! Glue: packet source -> frame decoder -> flow table -> sink. The only
//! loop over packets; the CLI and tests drive it. The source is a capture
//! file ([`Reader`](crate::capture::Reader)) or, with the `live` feature, a network interface
//! (`capture::live::LiveSource`).

use std::collections::BTreeMap;

use crate::capture;
/// Re-exported: sources live in `capture`, next to the file reader.
pub use crate::capture::PacketSource;
use crate::flow::{self, FlowMeta, FlowSummary, FlowTable, Side, Sink};
use crate::reassembly::Event;
use crate::wire::{Decoded, Decoder, WireStats};

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

/// Wraps the user's sink to count what goes through.
struct Counting<'s, S> {
    inner: &'s mut S,
    summary: &'s mut RunSummary,
}

impl<S: Sink> Sink for Counting<'_, S> {
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        match &ev {
            Event::Data { bytes, .. } => self.summary.bytes += bytes.len() as u64,
            Event::Gap { len, .. } => {
                self.summary.gaps += 1;
                self.summary.gap_bytes += len;
            }
            Event::Anomaly(a) => {
                *self
                    .summary
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

/// Runs a whole capture (any [`PacketSource`]) through reassembly. A
/// truncated or corrupt file is not an error: the packets before the damage
/// are analysed and the problem is reported in `RunSummary::read_error`.
/// `on_packet` is called with the packet's `offset` (for a file, the byte
/// count consumed so far, for progress display).
pub fn run<P: PacketSource + ?Sized, S: Sink>(
    reader: &mut P,
    cfg: flow::Config,
    sink: &mut S,
    mut on_packet: impl FnMut(u64),
) -> RunSummary {
    let mut summary = RunSummary::default();
    let mut decoder = Decoder::new();
    let mut table = FlowTable::new(cfg);
    table.lend_from(reader.mapped());
    let mut counting = Counting {
        inner: sink,
        summary: &mut summary,
    };
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
        counting.summary.packets += 1;
        if counting.summary.packets == 1 {
            counting.inner.capture_start(pkt.ts);
        }
        if let Decoded::Tcp(seg) = decoder.decode_cut(pkt.linktype, pkt.ts, pkt.data, pkt.orig_len)
        {
            table.packet(pkt.ts, &seg, &mut counting);
        }
        on_packet(pkt.offset);
    }
    table.finish(&mut counting);
    summary.wire = decoder.stats().clone();
    summary.flows = table.stats().clone();
    summary.linktypes = reader
        .linktypes()
        .iter()
        .map(|l| format!("{} ({})", l.name(), l.0))
        .collect();
    summary.read = reader.stats();
    summary.read_error = read_error.or_else(|| reader.read_error());
    summary
}
