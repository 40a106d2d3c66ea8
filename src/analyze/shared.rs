//! What the analyzer keeps across connections: the report, the SyncKey
//! timeline and the latency samples ([`Shared`]). Everything else it keeps
//! is per connection.
//!
//! A split run (`parallel::analyze`) gives each connection to one of
//! several worker analyzers. A worker ([`Analyzer::logging`]) does not
//! change its `Shared`: each change is an [`Op`] logged with the sink call
//! that made it, and the caller's analyzer applies the ops of all workers
//! in the order of those calls ([`Analyzer::apply`]), the order a one-thread
//! run makes them in. Records go the same way ([`Analyzer::emit`]).

use crate::track::pairing::LatencyTable;
use crate::track::synckey::Timeline;

use super::{Analyzer, FrameRecord, Options, Report};

/// The analyzer's state that spans connections.
#[derive(Default)]
pub struct Shared {
    pub(super) report: Report,
    pub(super) timeline: Timeline,
    pub(super) latencies: LatencyTable,
}

/// One change to [`Shared`], logged by a worker, applied by the caller.
pub struct Op(Box<dyn FnOnce(&mut Shared) + Send>);

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl<'o, F: FnMut(&FrameRecord)> Analyzer<'o, F> {
    /// Applies `op` to the state shared across connections now, or logs it
    /// (a worker of a split run).
    pub(super) fn shared<O: FnOnce(&mut Shared) + Send + 'static>(&mut self, op: O) {
        match &mut self.log {
            None => op(&mut self.shared),
            Some(log) => log.push(Op(Box::new(op))),
        }
    }

    /// Latency samples the pairing just added to `shared.latencies` (a
    /// worker's table logs them): logged as ops, in order.
    pub(super) fn latencies_logged(&mut self) {
        if self.log.is_none() {
            return;
        }
        for (cmd, us) in self.shared.latencies.take_log() {
            self.shared(move |g| g.latencies.add(cmd, us));
        }
    }

    /// A worker of a split run: changes to the report, the timeline and the
    /// latencies are logged ([`Analyzer::take_ops`]), not applied.
    pub fn logging(mut self) -> Self {
        self.log = Some(Vec::new());
        self.shared.latencies = LatencyTable::logging();
        self
    }

    /// The ops logged since the last call (see [`Analyzer::logging`]).
    pub fn take_ops(&mut self, into: &mut Vec<Op>) {
        if let Some(log) = &mut self.log {
            into.append(log);
        }
    }

    /// Applies an op a worker logged; `packet` is the number of the packet
    /// the one-thread run would be at (what the timeline's observations and
    /// anomalies carry).
    pub fn apply(&mut self, op: Op, packet: Option<u64>) {
        self.shared.timeline.at_packet(packet);
        (op.0)(&mut self.shared);
    }

    /// Hands a worker's record to this analyzer's receiver.
    pub fn emit(&mut self, rec: &FrameRecord) {
        (self.out)(rec);
    }

    /// The number of the packet being processed, as a one-thread run has
    /// it when a connection ends (that of the last event of any connection).
    pub fn set_packet(&mut self, packet: u64) {
        self.packet = packet;
    }

    pub fn options(&self) -> &'o Options {
        self.opts
    }

    /// Whether frame records are built (see [`Analyzer::without_records`]).
    pub fn builds_records(&self) -> bool {
        self.records
    }
}
