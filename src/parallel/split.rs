//! `-j N` for the analyzer: one capture on several cores, split by
//! connection. The reader thread reads, decodes and runs the flow table and
//! TCP reassembly ([`crate::pipeline::run`]) and hands each connection's sink
//! calls, in order, to one of N worker analyzers (the least loaded when the
//! connection is first seen). The workers do the dissection and body
//! decoding; the calling thread merges what they give back in the order of
//! the calls, which the reader numbered (one number per sink call, over the
//! whole capture).
//!
//! What a worker gives back is tagged with the number of the call that made
//! it: frame records, and the changes to what spans connections (the report,
//! the SyncKey timeline, the latency samples: [`Op`]s logged by a
//! [`Analyzer::logging`] worker). The caller's analyzer applies them in call
//! order, so that the report's lists, its capped example lists, the
//! timelines by uin and the latency reservoirs are exactly those of a
//! one-thread run, and records come out in the same order.
//!
//! The flow table stays one (on the reader), so connection ids, idle expiry,
//! eviction at the connection cap and the out-of-order budget over all
//! connections decide as they do on one thread: no case falls back.
//!
//! When it is used: the split pays for logging every report change as an
//! op and merging them back (about a third more CPU than `-j 1` on a
//! capture of many small frames). Where the analysis is heavy (records
//! built and printed: `frames`, `sync`) two workers beat one; for the
//! report alone (`analyze`) on two threads, the two-stage loop of
//! [`super::run`] (reader, then one analyzer) is faster on many small
//! frames and about as fast on large bodies, at less CPU, and [`analyze`]
//! hands such runs to it. The reader stays one thread in both (reading,
//! decoding, the flow table and reassembly are about half of a one-thread
//! `analyze`): two cores give at most about 2x, the figures are in the
//! README ("One core against two").
//!
//! Batches go out to every worker at once (empty ones too) and come back
//! one per worker in the same order: the merge takes batch k of every
//! worker, merges by call number and goes on to k + 1. Memory stays bounded
//! by [`QUEUE`] batches each way per worker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;

use crate::analyze::{Analyzer, FrameRecord, Op};
use crate::capture::{CurrentFile, Mapped, MergedSource, PacketSource, Timestamp};
use crate::flow::{self, FlowMeta, FlowSummary, Scope, Side, Sink};
use crate::reassembly::Event;
use crate::report::view::Times;

use super::{Owned, Ran, BATCH_BYTES, BATCH_EVENTS, QUEUE};

/// One sink call for a worker, with its number over the whole capture.
/// Nearly every call is an `Event`: boxing its meta would cost an
/// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
enum Call {
    Event {
        meta: FlowMeta,
        side: Side,
        file: usize,
        ev: Owned,
    },
    End(Box<FlowSummary>, usize),
}

/// A worker's share of one batch.
#[derive(Default)]
struct Part {
    /// (call number, packet the one-thread analyzer is at, call).
    calls: Vec<(u64, u64, Call)>,
    bytes: Vec<u8>,
    /// The capture's first packet, when this batch holds it (worker 0's part).
    start: Option<Timestamp>,
    /// Stream offset of the last packet read (for a progress bar).
    offset: u64,
}

/// What a worker made of one [`Part`].
#[derive(Default)]
struct Done {
    items: Vec<(u64, Item)>,
    start: Option<Timestamp>,
    offset: u64,
}

enum Item {
    Op(Op, Option<u64>),
    Record(Box<FrameRecord>, usize),
}

/// The reader thread's sink: calls numbered, by connection into the
/// workers' parts.
struct Route<'a> {
    parts: Vec<Part>,
    txs: Vec<mpsc::SyncSender<Part>>,
    free: &'a mpsc::Receiver<Part>,
    /// The worker of each live connection, and the bytes given to each.
    owner: HashMap<u64, usize, foldhash::fast::FixedState>,
    load: Vec<u64>,
    calls: usize,
    bytes: usize,
    seq: u64,
    /// The packet of the last event the analyzer looks at (on a connection
    /// its port filter keeps): what it numbers a connection's end with.
    packet: u64,
    port: Option<u16>,
    file: CurrentFile,
    /// The mapped input, if it is one: payload found in it is lent, not
    /// copied (as in [`super::run`]).
    map: Option<Mapped>,
    offset: &'a std::cell::Cell<u64>,
    closed: bool,
}

impl Route<'_> {
    fn worker(&mut self, id: u64) -> usize {
        let load = &self.load;
        *self
            .owner
            .entry(id)
            .or_insert_with(|| (0..load.len()).min_by_key(|&w| (load[w], w)).unwrap_or(0))
    }

    fn push(&mut self, w: usize, call: Call) {
        self.seq += 1;
        self.parts[w].calls.push((self.seq, self.packet, call));
        self.calls += 1;
        if self.calls >= BATCH_EVENTS || self.bytes >= BATCH_BYTES {
            self.send();
        }
    }

    /// Sends every worker its part (empty ones too: the merge takes one
    /// batch of each in turn).
    fn send(&mut self) {
        if self.closed {
            // The merge stopped (a worker failed): drop what comes.
            for p in &mut self.parts {
                p.calls.clear();
                p.bytes.clear();
            }
            return;
        }
        if self.calls == 0 && self.parts.iter().all(|p| p.start.is_none()) {
            return;
        }
        for w in 0..self.parts.len() {
            let mut next = self.free.try_recv().unwrap_or_default();
            next.calls.clear();
            next.bytes.clear();
            next.start = None;
            let mut full = std::mem::replace(&mut self.parts[w], next);
            full.offset = self.offset.get();
            if self.txs[w].send(full).is_err() {
                self.closed = true;
                return;
            }
        }
        self.calls = 0;
        self.bytes = 0;
    }
}

impl Sink for Route<'_> {
    fn capture_start(&mut self, ts: Timestamp) {
        self.parts[0].start = Some(ts);
    }

    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        let w = self.worker(meta.id);
        if self
            .port
            .is_none_or(|p| meta.first_src.port() == p || meta.first_dst.port() == p)
        {
            self.packet = meta.packet;
        }
        if let Event::Data { bytes, .. } = &ev {
            self.bytes += bytes.len();
            self.load[w] += bytes.len() as u64;
        }
        let ev = Owned::new(ev, self.map.as_ref(), &mut self.parts[w].bytes);
        let file = self.file.get();
        self.push(
            w,
            Call::Event {
                meta: meta.clone(),
                side,
                file,
                ev,
            },
        );
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        let w = self.worker(summary.id);
        self.owner.remove(&summary.id);
        let file = self.file.get();
        self.push(w, Call::End(Box::new(summary.clone()), file));
    }
}

/// One worker: its connections' calls through a logging analyzer.
fn work<'o>(
    an: &mut Analyzer<'o, impl FnMut(&FrameRecord)>,
    records: &RefCell<Vec<FrameRecord>>,
    map: Option<&Mapped>,
    rx: mpsc::Receiver<Part>,
    tx: mpsc::SyncSender<Done>,
    free: mpsc::SyncSender<Part>,
) {
    let mut ops = Vec::new();
    for mut part in rx.iter() {
        let mut done = Done {
            items: Vec::with_capacity(part.calls.len()),
            start: part.start,
            offset: part.offset,
        };
        for (seq, packet, call) in part.calls.drain(..) {
            let file = match call {
                Call::Event {
                    meta,
                    side,
                    file,
                    ev,
                } => {
                    an.event(&meta, side, ev.event(&part.bytes, map));
                    file
                }
                Call::End(summary, file) => {
                    an.set_packet(packet);
                    an.flow_end(&summary);
                    file
                }
            };
            an.take_ops(&mut ops);
            let at = (packet > 0).then_some(packet);
            done.items
                .extend(ops.drain(..).map(|op| (seq, Item::Op(op, at))));
            done.items.extend(
                records
                    .borrow_mut()
                    .drain(..)
                    .map(|r| (seq, Item::Record(Box::new(r), file))),
            );
        }
        if tx.send(done).is_err() {
            return;
        }
        let _ = free.try_send(part);
    }
}

/// Runs `source` through the flow table into `sink`'s analysis, split by
/// connection over `jobs` worker analyzers (see the module doc); `sink`
/// gets every record and report change in the order of a one-thread run.
/// `jobs` <= 1 is [`super::run`] on one thread.
pub fn analyze<F: FnMut(&FrameRecord)>(
    jobs: usize,
    source: &mut MergedSource,
    cfg: flow::Config,
    scope: Scope,
    times: Option<&Times>,
    sink: &mut Analyzer<'_, F>,
    mut tick: impl FnMut(u64),
) -> Ran {
    // The report alone on two threads: the two-stage loop (see the module doc).
    if jobs <= 1 || (jobs == 2 && !sink.builds_records()) {
        return super::run(jobs, source, cfg, scope, times, sink, tick);
    }
    let opts = sink.options();
    let with_records = sink.builds_records();
    let (shown, read) = super::reader_file(source);
    let map = source.mapped();
    let src = &mut *source;
    let (free_tx, free_rx) = mpsc::sync_channel::<Part>(jobs * (QUEUE + 2));
    let mut txs = Vec::new();
    let mut outs = Vec::new();
    let ran = std::thread::scope(|s| {
        let mut workers = Vec::new();
        for _ in 0..jobs {
            let (tx, rx) = mpsc::sync_channel::<Part>(QUEUE);
            let (done_tx, done_rx) = mpsc::sync_channel::<Done>(QUEUE);
            txs.push(tx);
            outs.push(done_rx);
            let free = free_tx.clone();
            let map = map.clone();
            workers.push(s.spawn(move || {
                let records = RefCell::new(Vec::new());
                let an =
                    Analyzer::new(opts, |r: &FrameRecord| records.borrow_mut().push(r.clone()))
                        .logging();
                let mut an = if with_records {
                    an
                } else {
                    an.without_records()
                };
                work(&mut an, &records, map.as_ref(), rx, done_tx, free);
            }));
        }
        drop(free_tx);
        let port = opts.port;
        let reader = s.spawn(move || {
            let offset = std::cell::Cell::new(0);
            let mut route = Route {
                parts: (0..txs.len()).map(|_| Part::default()).collect(),
                load: vec![0; txs.len()],
                txs,
                free: &free_rx,
                owner: HashMap::default(),
                calls: 0,
                bytes: 0,
                seq: 0,
                packet: 0,
                port,
                file: read,
                map,
                offset: &offset,
                closed: false,
            };
            let ran = super::read_into(src, cfg, scope, &mut route, |o| offset.set(o));
            route.send();
            ran
        });
        merge(&outs, sink, times, &shown, &mut tick);
        // Should the merge have stopped early (a worker failed), the
        // workers' sends fail from here on and everyone stops.
        drop(outs);
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
        match reader.join() {
            Ok(ran) => ran,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    source.track_file(shown);
    ran
}

/// Takes batch k of every worker in turn and applies its items in call order.
fn merge<F: FnMut(&FrameRecord)>(
    outs: &[mpsc::Receiver<Done>],
    sink: &mut Analyzer<'_, F>,
    times: Option<&Times>,
    shown: &CurrentFile,
    tick: &mut impl FnMut(u64),
) {
    let mut batch: Vec<std::vec::IntoIter<(u64, Item)>> = Vec::with_capacity(outs.len());
    let mut heads: Vec<Option<(u64, Item)>> = Vec::with_capacity(outs.len());
    loop {
        batch.clear();
        let mut offset = 0;
        for rx in outs {
            let Ok(done) = rx.recv() else { return };
            if let Some(ts) = done.start {
                if let Some(t) = times {
                    t.start_at(ts);
                }
                sink.capture_start(ts);
            }
            offset = done.offset;
            batch.push(done.items.into_iter());
        }
        heads.clear();
        heads.extend(batch.iter_mut().map(Iterator::next));
        loop {
            let next = heads
                .iter()
                .enumerate()
                .filter_map(|(w, h)| h.as_ref().map(|(seq, _)| (*seq, w)))
                .min();
            let Some((_, w)) = next else { break };
            let (_, item) = std::mem::replace(&mut heads[w], batch[w].next()).expect("a head");
            match item {
                Item::Op(op, packet) => sink.apply(op, packet),
                Item::Record(rec, file) => {
                    shown.set(file);
                    sink.emit(&rec);
                }
            }
        }
        tick(offset);
    }
}
