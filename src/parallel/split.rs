//! `-j N` for the analyzer: one capture on several cores, split by
//! connection. The reader thread only reads and decodes packets: it hands
//! each TCP segment, with its number, to the worker that a hash of its
//! 4-tuple names ([`flow::shard_of`]: a connection's segments stay in order
//! on one worker), and tells every worker when one flow table would sweep
//! for idle connections ([`SweepClock`]). Each worker
//! (`parallel/shard.rs`) runs its shard of the flow table, TCP reassembly
//! and a logging analyzer; the calling thread merges what they give back.
//!
//! What a worker gives back is tagged with the place of the sink call that
//! made it in the calls of a one-table run ([`Order`]): frame records, and
//! the changes to what spans connections (the report, the SyncKey
//! timeline, the latency samples: [`crate::analyze::Op`]s). The caller's
//! analyzer applies them in that order, so that the report's lists, its
//! capped example lists, the timelines by uin and the latency reservoirs
//! are exactly those of a one-thread run, and records come out in the same
//! order. Connection ids are those of one table too (`shard.rs`, `Ids`),
//! and so is idle expiry (the reader's clock, each connection's own last
//! packet).
//!
//! Where a split run may differ: the connection cap and the out-of-order
//! budget are shared out between the workers (`shard_config`), so a
//! capture that reaches them can see other connections evicted or other
//! segments dropped than on one thread; memory stays within the same
//! limits.
//!
//! Batches go out to every worker at once (empty parts too) and come back
//! one per worker in the same order: the merge takes batch k of every
//! worker, merges by place and goes on to k + 1. Memory stays bounded by
//! [`QUEUE`] batches each way per worker, and two more in each worker.

use std::cell::{Cell, RefCell};
use std::sync::mpsc;

use crate::analyze::{Analyzer, FrameRecord};
use crate::capture::{CurrentFile, MergedSource};
use crate::flow::{self, Scope, Sink, SweepClock};
use crate::pipeline::{self, Got, RunSummary};
use crate::report::view::Times;

use super::shard::{self, Done, Ids, Item, Items, Job, Msg, Part, Seg};
use super::{Ran, BATCH_BYTES, BATCH_EVENTS, QUEUE};

/// The reader's side: segments dealt to the workers' parts.
struct Deal<'a> {
    parts: Vec<Part>,
    txs: Vec<mpsc::SyncSender<Part>>,
    free: &'a mpsc::Receiver<Part>,
    msgs: usize,
    bytes: usize,
    /// The merge stopped (a worker failed): drop what comes.
    closed: bool,
}

impl Deal<'_> {
    fn push(&mut self, w: usize, msg: Msg, len: usize) {
        self.parts[w].msgs.push(msg);
        self.msgs += 1;
        self.bytes += len;
    }

    /// Sends every worker its part (empty ones too: the workers number
    /// parts alike, and the merge takes one of each in turn). `end`: the
    /// last parts (the file the reader is at).
    fn send(&mut self, offset: u64, end: Option<usize>) {
        if self.closed {
            for p in &mut self.parts {
                p.msgs.clear();
                p.bytes.clear();
            }
            return;
        }
        if end.is_none() && self.msgs == 0 && self.parts.iter().all(|p| p.start.is_none()) {
            return;
        }
        for w in 0..self.parts.len() {
            let mut next = self.free.try_recv().unwrap_or_else(|_| Part::new());
            next.msgs.clear();
            next.bytes.clear();
            next.start = None;
            next.end = None;
            let mut full = std::mem::replace(&mut self.parts[w], next);
            full.offset = offset;
            full.end = end;
            if self.txs[w].send(full).is_err() {
                self.closed = true;
                return;
            }
        }
        self.msgs = 0;
        self.bytes = 0;
    }
}

/// Reads `src` to its end, dealing its segments out (see the module doc).
fn read(
    src: &mut MergedSource,
    mut deal: Deal<'_>,
    file: &CurrentFile,
    offset: &Cell<u64>,
) -> RunSummary {
    let jobs = deal.parts.len();
    let mut summary = RunSummary::default();
    let mut n = 0;
    let mut clock = SweepClock::default();
    pipeline::segments(
        src,
        &mut summary,
        |got| match got {
            Got::Start(ts) => {
                for p in &mut deal.parts {
                    p.start = Some(ts);
                }
            }
            Got::Tcp(ts, seg) => {
                n += 1;
                let f = file.get();
                if clock.due(ts, n) {
                    for w in 0..jobs {
                        deal.push(
                            w,
                            Msg::Sweep {
                                n,
                                now: ts,
                                file: f,
                            },
                            0,
                        );
                    }
                }
                let w = flow::shard_of(&seg, jobs);
                let s = Seg::new(n, ts, f, &seg, &mut deal.parts[w].bytes);
                deal.push(w, Msg::Seg(s), seg.payload.len());
                if deal.msgs >= BATCH_EVENTS || deal.bytes >= BATCH_BYTES {
                    deal.send(offset.get(), None);
                }
            }
        },
        |o| offset.set(o),
    );
    deal.send(offset.get(), Some(file.get()));
    summary
}

/// Runs `source` through the flow table into `sink`'s analysis, split by
/// connection over `jobs` workers (see the module doc); `sink` gets every
/// record and report change in the order of a one-thread run. `jobs` <= 1
/// is [`super::run`] on one thread.
pub fn analyze<F: FnMut(&FrameRecord)>(
    jobs: usize,
    source: &mut MergedSource,
    cfg: flow::Config,
    scope: Scope,
    times: Option<&Times>,
    sink: &mut Analyzer<'_, F>,
    mut tick: impl FnMut(u64),
) -> Ran {
    if jobs <= 1 {
        return super::run(1, source, cfg, scope, times, sink, tick);
    }
    let opts = sink.options();
    let with_records = sink.builds_records();
    // The sink's side keeps the handle the caller has; the reader stamps
    // its own on each segment.
    let shown = source.current_file();
    let reading = CurrentFile::default();
    source.track_file(reading.clone());
    let src = &mut *source;
    let ids = Ids::new(jobs);
    let (free_tx, free_rx) = mpsc::sync_channel::<Part>(jobs * (QUEUE + 2));
    let mut txs = Vec::new();
    let mut outs = Vec::new();
    let (summary, tallies, max_active) = std::thread::scope(|s| {
        let mut workers = Vec::new();
        for worker in 0..jobs {
            let (tx, rx) = mpsc::sync_channel::<Part>(QUEUE);
            let (done_tx, done_rx) = mpsc::sync_channel::<Done>(QUEUE);
            let (back_tx, back_rx) = mpsc::sync_channel::<Items>(QUEUE + 2);
            txs.push(tx);
            outs.push((done_rx, back_tx));
            let free = free_tx.clone();
            let job = Job {
                worker,
                jobs,
                cfg,
                scope: scope.clone(),
                ids: &ids,
            };
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
                let ends = shard::Ends {
                    rx,
                    tx: done_tx,
                    free,
                    back: back_rx,
                };
                shard::work(job, &mut an, &records, ends)
            }));
        }
        drop(free_tx);
        let reader = s.spawn(move || {
            let offset = Cell::new(0);
            let deal = Deal {
                parts: (0..txs.len()).map(|_| Part::new()).collect(),
                txs,
                free: &free_rx,
                msgs: 0,
                bytes: 0,
                closed: false,
            };
            read(src, deal, &reading, &offset)
        });
        let max_active = merge(&outs, sink, times, &shown, &mut tick);
        // Should the merge have stopped early (a worker failed), the
        // workers' sends fail from here on and everyone stops.
        drop(outs);
        let mut tallies = Vec::new();
        for w in workers {
            match w.join() {
                Ok(t) => tallies.push(t),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        match reader.join() {
            Ok(summary) => (summary, tallies, max_active),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    source.track_file(shown);
    let mut summary = summary;
    let mut scoped_anomalies = 0;
    for t in tallies {
        t.counts.add_to(&mut summary);
        let flows = &mut summary.flows;
        flows.flows += t.table.flows;
        flows.expired_idle += t.table.expired_idle;
        flows.evicted += t.table.evicted;
        flows.reused += t.table.reused;
        scoped_anomalies += t.scoped_anomalies;
    }
    summary.flows.max_active = max_active;
    Ran {
        summary,
        scoped_anomalies,
    }
}

/// Takes batch k of every worker in turn and applies its items in the
/// order of a one-table run; the emptied lists go back to their worker.
/// Returns the most connections live at once, as one table counts them.
fn merge<F: FnMut(&FrameRecord)>(
    outs: &[(mpsc::Receiver<Done>, mpsc::SyncSender<Items>)],
    sink: &mut Analyzer<'_, F>,
    times: Option<&Times>,
    shown: &CurrentFile,
    tick: &mut impl FnMut(u64),
) -> u64 {
    let mut lists: Vec<Items> = Vec::with_capacity(outs.len());
    // (segment number, 0 closed / 1 opened): closings first at a segment,
    // as one table closes out before it opens.
    let mut live_changes: Vec<(u64, u8)> = Vec::new();
    let (mut live, mut max_live) = (0u64, 0u64);
    loop {
        live_changes.clear();
        let mut offset = 0;
        for (w, (rx, _)) in outs.iter().enumerate() {
            let Ok(done) = rx.recv() else {
                return max_live;
            };
            if let (0, Some(ts)) = (w, done.start) {
                if let Some(t) = times {
                    t.start_at(ts);
                }
                sink.capture_start(ts);
            }
            offset = done.offset;
            live_changes.extend(done.closed.iter().map(|&n| (n, 0)));
            live_changes.extend(done.opened.iter().map(|&n| (n, 1)));
            lists.push(done.items);
        }
        live_changes.sort_unstable();
        for &(_, opened) in &live_changes {
            if opened == 1 {
                live += 1;
                max_live = max_live.max(live);
            } else {
                live = live.saturating_sub(1);
            }
        }
        {
            let mut heads: Vec<_> = lists.iter_mut().map(|l| l.drain(..).peekable()).collect();
            loop {
                let next = heads
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(w, h)| h.peek().map(|(o, _)| (*o, w)))
                    .min();
                let Some((_, w)) = next else { break };
                let Some((_, item)) = heads[w].next() else {
                    break;
                };
                match item {
                    Item::Op(op, packet) => sink.apply(op, packet),
                    Item::Record(rec, file) => {
                        shown.set(file);
                        sink.emit(&rec);
                    }
                }
            }
        }
        for ((_, back), list) in outs.iter().zip(lists.drain(..)) {
            let _ = back.try_send(list);
        }
        tick(offset);
    }
}
