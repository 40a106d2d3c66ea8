//! A worker of the split run (`parallel/split.rs`): one shard of the flow
//! table (the connections [`flow::shard_of`] gives it), their TCP
//! reassembly and a logging analyzer on them.
//!
//! A part from the reader goes through two steps, one part apart, so that
//! the workers rarely wait for each other:
//!
//! 1. the flow table: segments and sweeps in, sink calls recorded (the
//!    scope applied, bytes, gaps and anomalies counted), with the shard's
//!    own connection ids; the segment numbers that opened a connection go
//!    to [`Ids`];
//! 2. once every worker has told [`Ids`] what it opened in that part, the
//!    connections get the ids one table gives them (0-based, in order of
//!    opening over the whole capture) and the calls go through the
//!    analyzer; what it logs and the records it makes go to the merge,
//!    each with its place ([`Order`]) in the calls of a one-table run.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};

use crate::analyze::{Analyzer, FrameRecord, Op};
use crate::capture::Timestamp;
use crate::flow::{self, FlowMeta, FlowSummary, FlowTable, Scope, Scoped, Side, Sink, TableStats};
use crate::pipeline::{Counting, Counts};
use crate::reassembly::Event;
use crate::wire::{TcpFlags, TcpSegment, Tunnel};

use super::Owned;

/// A TCP segment for a worker, its payload a range of the part's buffer.
pub(super) struct Seg {
    /// Its number among the capture's TCP segments (1-based), as one flow
    /// table counts them.
    n: u64,
    ts: Timestamp,
    file: usize,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    at: usize,
    len: usize,
    wire_len: u32,
    packet: u64,
    tunnel: Option<Tunnel>,
}

impl Seg {
    /// `seg`, its payload appended to `buf`.
    pub(super) fn new(
        n: u64,
        ts: Timestamp,
        file: usize,
        seg: &TcpSegment<'_>,
        buf: &mut Vec<u8>,
    ) -> Seg {
        let at = buf.len();
        buf.extend_from_slice(seg.payload);
        Seg {
            n,
            ts,
            file,
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            at,
            len: seg.payload.len(),
            wire_len: seg.wire_len,
            packet: seg.packet,
            tunnel: seg.tunnel,
        }
    }

    fn segment<'b>(&self, bytes: &'b [u8]) -> TcpSegment<'b> {
        TcpSegment {
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload: &bytes[self.at..self.at + self.len],
            wire_len: self.wire_len,
            packet: self.packet,
            tunnel: self.tunnel,
        }
    }
}

pub(super) enum Msg {
    Seg(Seg),
    /// The sweep one flow table makes before segment `n` (every worker
    /// gets it).
    Sweep {
        n: u64,
        now: Timestamp,
        file: usize,
    },
}

/// What the reader gives a worker at a time (every worker gets one part
/// of each batch, empty or not).
pub(super) struct Part {
    pub(super) msgs: Vec<Msg>,
    pub(super) bytes: Vec<u8>,
    /// The capture's first packet, when this batch holds it.
    pub(super) start: Option<Timestamp>,
    /// Stream offset of the last packet read (for a progress bar).
    pub(super) offset: u64,
    /// On the last part: the capture is over (the file the reader was at).
    pub(super) end: Option<usize>,
}

impl Part {
    /// An empty part with room for a batch.
    pub(super) fn new() -> Part {
        Part {
            msgs: Vec::with_capacity(super::BATCH_EVENTS),
            bytes: Vec::with_capacity(super::BATCH_BYTES + (64 << 10)),
            start: None,
            offset: 0,
            end: None,
        }
    }
}

/// The place of a sink call among those of a one-table run: the segment
/// number it happened at (`u64::MAX`: the end of the capture); 0 for the
/// close-outs of a sweep or of the end, which go in connection id order
/// (the id is next), 1 for the segment's own calls (one worker makes
/// them); last, the worker's own count of calls.
pub(super) type Order = (u64, u8, u64, u64);

pub(super) enum Item {
    /// An op of the analyzer, with the packet the one-thread analyzer is at.
    Op(Op, Option<u64>),
    /// A record, with the file of the packet that completed it.
    Record(Box<FrameRecord>, usize),
}

/// What a worker made of one part, in order.
pub(super) type Items = Vec<(Order, Item)>;

/// What a worker made of one part.
#[derive(Default)]
pub(super) struct Done {
    pub(super) items: Items,
    pub(super) start: Option<Timestamp>,
    pub(super) offset: u64,
    /// Segment numbers at which a connection was opened, and closed out.
    pub(super) opened: Vec<u64>,
    pub(super) closed: Vec<u64>,
}

/// What a worker counted over the whole run.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) counts: Counts,
    pub(super) table: TableStats,
    pub(super) scoped_anomalies: u64,
}

/// A recorded sink call. Nearly every call is an `Event`: boxing its meta
/// would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
enum Call {
    Event {
        meta: FlowMeta,
        side: Side,
        ev: Owned,
    },
    End(Box<FlowSummary>),
}

/// The flow table's sink: records the calls, each with the segment number,
/// the kind of place (see [`Order`]) and the file it happened at. Data that
/// lies in the part's own buffer (in-order payload, most of it) is kept as
/// a range of it; other bytes (held out of order) are copied into `bytes`,
/// their ranges counted after the part's.
#[derive(Default)]
struct Recorder {
    calls: Calls,
    bytes: Vec<u8>,
    at: (u64, u8, usize),
    /// Address and length of the part's buffer.
    part: (usize, usize),
}

impl Sink for Recorder {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        let ev = Owned::beside(ev, self.part, &mut self.bytes);
        let (n, kind, file) = self.at;
        self.calls.push((
            n,
            kind,
            file,
            Call::Event {
                meta: meta.clone(),
                side,
                ev,
            },
        ));
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        let (n, kind, file) = self.at;
        self.calls
            .push((n, kind, file, Call::End(Box::new(summary.clone()))));
    }
}

/// Recorded calls: segment number, kind of place, file, the call.
type Calls = Vec<(u64, u8, usize, Call)>;

/// One part after the flow table.
struct Tabled {
    calls: Calls,
    /// Bytes copied by the [`Recorder`].
    bytes: Vec<u8>,
    /// The part (its buffer holds the in-order data).
    part: Part,
    log: flow::ShardLog,
}

/// The flow table's limits for one of `jobs` shards: the connection cap
/// and the out-of-order budget shared out, so that all of them together
/// hold what one table would.
pub(super) fn shard_config(cfg: flow::Config, jobs: usize) -> flow::Config {
    flow::Config {
        max_flows: cfg.max_flows.div_ceil(jobs).max(1),
        max_buffer_total: cfg.max_buffer_total.div_ceil(jobs),
        ..cfg
    }
}

/// What a worker needs besides its channels.
pub(super) struct Job<'a> {
    pub(super) worker: usize,
    pub(super) jobs: usize,
    pub(super) cfg: flow::Config,
    pub(super) scope: Scope,
    pub(super) ids: &'a Ids,
}

/// A worker's channels: parts in, what it made out, parts back to the
/// reader, item lists back from the merge.
pub(super) struct Ends {
    pub(super) rx: mpsc::Receiver<Part>,
    pub(super) tx: mpsc::SyncSender<Done>,
    pub(super) free: mpsc::SyncSender<Part>,
    pub(super) back: mpsc::Receiver<Items>,
}

/// Runs one worker until the reader's last part, or until the merge or
/// another worker stops.
pub(super) fn work<F: FnMut(&FrameRecord)>(
    job: Job<'_>,
    an: &mut Analyzer<'_, F>,
    records: &RefCell<Vec<FrameRecord>>,
    ends: Ends,
) -> Tally {
    // Whatever way this ends (a panic too), the others stop waiting.
    let _leave = Leave(job.ids);
    let mut table = FlowTable::new(shard_config(job.cfg, job.jobs)).sharded();
    let mut rec = Recorder::default();
    let mut scoped = Scoped::new(&mut rec, job.scope);
    let mut counts = Counts::default();
    let mut an = Analysis {
        an,
        records,
        ids: job.ids,
        gids: HashMap::default(),
        calls: 0,
        ops: Vec::new(),
    };
    let mut pending: VecDeque<(u64, Tabled)> = VecDeque::with_capacity(2);
    // Buffers of analysed parts, for the next ones.
    let mut spare: Vec<(Calls, Vec<u8>)> = Vec::new();
    for (k, mut part) in (0u64..).zip(ends.rx.iter()) {
        if let Some(ts) = part.start {
            scoped.capture_start(ts);
        }
        let msgs = std::mem::take(&mut part.msgs);
        {
            let rec = scoped.inner_mut();
            rec.part = (part.bytes.as_ptr() as usize, part.bytes.len());
            if let Some((calls, bytes)) = spare.pop() {
                rec.calls = calls;
                rec.bytes = bytes;
            }
        }
        for msg in &msgs {
            let mut sink = Counting {
                inner: &mut scoped,
                counts: &mut counts,
            };
            match msg {
                &Msg::Sweep { n, now, file } => {
                    sink.inner.inner_mut().at = (n, 0, file);
                    table.sweep_at(n, now, &mut sink);
                }
                Msg::Seg(s) => {
                    sink.inner.inner_mut().at = (s.n, 1, s.file);
                    table.shard_packet(s.n, s.ts, &s.segment(&part.bytes), &mut sink);
                }
            }
        }
        part.msgs = msgs;
        part.msgs.clear();
        if let Some(file) = part.end {
            scoped.inner_mut().at = (u64::MAX, 0, file);
            table.finish(&mut Counting {
                inner: &mut scoped,
                counts: &mut counts,
            });
        }
        let rec = scoped.inner_mut();
        let tabled = Tabled {
            calls: std::mem::take(&mut rec.calls),
            bytes: std::mem::take(&mut rec.bytes),
            part,
            log: table.take_log(),
        };
        job.ids.publish(
            k,
            job.worker,
            tabled.log.opened.iter().map(|&(n, _)| n).collect(),
        );
        pending.push_back((k, tabled));
        if pending.len() > 1 {
            let (j, t) = pending.pop_front().expect("two pending");
            if !analyse(&mut an, j, t, &ends, &mut spare) {
                break;
            }
        }
    }
    while let Some((j, t)) = pending.pop_front() {
        if !analyse(&mut an, j, t, &ends, &mut spare) {
            break;
        }
    }
    Tally {
        counts,
        table: table.stats().clone(),
        scoped_anomalies: scoped.anomalies(),
    }
}

/// Part `k` through the analyzer, what it made to the merge, its buffers
/// back; false when the run stops.
fn analyse<F: FnMut(&FrameRecord)>(
    an: &mut Analysis<'_, '_, F>,
    k: u64,
    mut t: Tabled,
    ends: &Ends,
    spare: &mut Vec<(Calls, Vec<u8>)>,
) -> bool {
    let items = ends.back.try_recv().unwrap_or_default();
    let Some(done) = an.run(k, &mut t, items) else {
        return false;
    };
    if ends.tx.send(done).is_err() {
        return false;
    }
    t.bytes.clear();
    spare.push((t.calls, t.bytes));
    let _ = ends.free.try_send(t.part);
    true
}

/// Step 2: the analyzer on the recorded calls.
struct Analysis<'a, 'o, F: FnMut(&FrameRecord)> {
    an: &'a mut Analyzer<'o, F>,
    records: &'a RefCell<Vec<FrameRecord>>,
    ids: &'a Ids,
    /// The one-table id of each live connection, by the shard's id.
    gids: HashMap<u64, u64, foldhash::fast::FixedState>,
    calls: u64,
    ops: Vec<Op>,
}

impl<F: FnMut(&FrameRecord)> Analysis<'_, '_, F> {
    /// Part `k` through the analyzer; `None` when another worker stopped
    /// before the ids of part `k` could be known.
    fn run(&mut self, k: u64, t: &mut Tabled, mut items: Items) -> Option<Done> {
        if !self.ids.resolve(k, &t.log.opened, &mut self.gids) {
            return None;
        }
        items.clear();
        let mut done = Done {
            items,
            start: t.part.start,
            offset: t.part.offset,
            opened: t.log.opened.iter().map(|&(n, _)| n).collect(),
            closed: t.log.closed.iter().map(|&(n, _)| n).collect(),
        };
        let mut calls = std::mem::take(&mut t.calls);
        for (n, kind, file, call) in calls.drain(..) {
            let gid = |id: u64| {
                let g = self.gids.get(&id).copied();
                debug_assert!(g.is_some(), "connection {id} has no id");
                g.unwrap_or(id)
            };
            let (id, packet) = match call {
                Call::Event { mut meta, side, ev } => {
                    meta.id = gid(meta.id);
                    self.an
                        .event(&meta, side, ev.event_in(&t.part.bytes, &t.bytes));
                    (meta.id, meta.packet)
                }
                Call::End(mut s) => {
                    s.id = gid(s.id);
                    self.an.flow_end(&s);
                    (s.id, s.packet)
                }
            };
            self.calls += 1;
            let order = (n, kind, if kind == 0 { id } else { 0 }, self.calls);
            let at = (packet > 0).then_some(packet);
            self.an.take_ops(&mut self.ops);
            done.items
                .extend(self.ops.drain(..).map(|op| (order, Item::Op(op, at))));
            done.items.extend(
                self.records
                    .borrow_mut()
                    .drain(..)
                    .map(|r| (order, Item::Record(Box::new(r), file))),
            );
        }
        t.calls = calls;
        for (_, id) in &t.log.closed {
            self.gids.remove(id);
        }
        Some(done)
    }
}

/// Numbers the connections of all workers as one flow table would: each
/// worker tells, per part, the segment numbers at which it opened
/// connections ([`Ids::publish`]); once all have, a connection's id is the
/// count of those opened before it over all workers ([`Ids::resolve`]).
pub(super) struct Ids {
    state: Mutex<IdState>,
    ready: Condvar,
    workers: usize,
}

#[derive(Default)]
struct IdState {
    /// The part number of `parts[0]`.
    first: u64,
    /// Connections opened before `parts[0]`.
    base: u64,
    parts: VecDeque<Opened>,
    /// A worker stopped (done, failed, or its merge gone).
    left: bool,
}

/// One part's openings, by worker, and how many workers took their ids.
struct Opened {
    by: Vec<Option<Vec<u64>>>,
    taken: usize,
}

impl Opened {
    fn total(&self) -> u64 {
        self.by.iter().flatten().map(|v| v.len() as u64).sum()
    }
}

impl Ids {
    pub(super) fn new(workers: usize) -> Self {
        Ids {
            state: Mutex::default(),
            ready: Condvar::new(),
            workers,
        }
    }

    fn lock(&self) -> MutexGuard<'_, IdState> {
        // Nothing panics while holding it; a poisoned lock still has sound state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Worker `w` opened connections at these segment numbers (ascending)
    /// in part `k`.
    fn publish(&self, k: u64, w: usize, opened: Vec<u64>) {
        let mut s = self.lock();
        let i = (k - s.first) as usize;
        while s.parts.len() <= i {
            s.parts.push_back(Opened {
                by: vec![None; self.workers],
                taken: 0,
            });
        }
        s.parts[i].by[w] = Some(opened);
        if s.parts[i].by.iter().all(Option::is_some) {
            self.ready.notify_all();
        }
    }

    /// The one-table ids of the connections worker `w` opened in part `k`
    /// (segment number, the shard's id), into `into`; waits until every
    /// worker has published part `k`. False if one stopped first.
    fn resolve(
        &self,
        k: u64,
        own: &[(u64, u64)],
        into: &mut HashMap<u64, u64, foldhash::fast::FixedState>,
    ) -> bool {
        let mut s = self.lock();
        let i = loop {
            let i = (k - s.first) as usize;
            if s.parts
                .get(i)
                .is_some_and(|p| p.by.iter().all(Option::is_some))
            {
                break i;
            }
            if s.left {
                return false;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        };
        let base = s.base + s.parts.iter().take(i).map(Opened::total).sum::<u64>();
        let part = &s.parts[i];
        for &(n, id) in own {
            let before: usize = part
                .by
                .iter()
                .flatten()
                .map(|v| v.partition_point(|&m| m < n))
                .sum();
            into.insert(id, base + before as u64);
        }
        s.parts[i].taken += 1;
        while s.parts.front().is_some_and(|p| p.taken == self.workers) {
            let p = s.parts.pop_front().expect("a front");
            s.base += p.total();
            s.first += 1;
        }
        true
    }

    fn leave(&self) {
        self.lock().left = true;
        self.ready.notify_all();
    }
}

/// Tells [`Ids`] that a worker stopped, when it goes out of scope.
struct Leave<'a>(&'a Ids);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_of(ids: &Ids, k: u64, own: &[(u64, u64)]) -> Vec<u64> {
        let mut into = HashMap::default();
        assert!(ids.resolve(k, own, &mut into));
        own.iter().map(|(_, id)| into[id]).collect()
    }

    #[test]
    fn connections_are_numbered_in_order_of_opening_over_all_workers() {
        let ids = Ids::new(2);
        // Part 0: worker 0 opens at segments 1 and 7, worker 1 at 3.
        ids.publish(0, 1, vec![3]);
        ids.publish(0, 0, vec![1, 7]);
        // Part 1: worker 1 opens at 20, worker 0 at nothing.
        ids.publish(1, 0, vec![]);
        ids.publish(1, 1, vec![20]);
        assert_eq!(ids_of(&ids, 0, &[(1, 0), (7, 1)]), [0, 2]);
        assert_eq!(ids_of(&ids, 0, &[(3, 0)]), [1]);
        // Part 0 taken by both: forgotten, its count carried on.
        assert_eq!(ids.lock().parts.len(), 1);
        assert_eq!(ids_of(&ids, 1, &[(20, 1)]), [3]);
        assert_eq!(ids_of(&ids, 1, &[]), Vec::<u64>::new());
        assert!(ids.lock().parts.is_empty());
    }

    #[test]
    fn a_worker_that_stops_early_releases_the_others() {
        let ids = Ids::new(2);
        ids.publish(0, 0, vec![1]);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut into = HashMap::default();
                ids.resolve(0, &[(1, 0)], &mut into)
            });
            // Worker 1 goes without publishing part 0.
            drop(Leave(&ids));
            assert!(!waiter.join().unwrap());
        });
    }
}
