//! `-j N`: the packet loop over two threads. A reader thread reads the
//! captures, decodes the packets and runs the flow table and TCP
//! reassembly ([`pipeline::run`]); the calling thread runs the sink (the
//! analyzer, or the flows sink) on the events it hands over, in batches
//! through a bounded channel. The sink sees exactly the calls, in exactly
//! the order, a one-thread run makes: the records and the report are the
//! same by construction (`tests/it/parallel.rs` checks it on every corpus
//! capture).
//!
//! Memory stays bounded: at most [`QUEUE`] batches of at most
//! [`BATCH_BYTES`] payload bytes (or [`BATCH_EVENTS`] events) are in flight,
//! and batches are reused. Payload that lies in a mapped capture file (the
//! in-order segments of one mapped input: nearly all of it) is not copied:
//! the batch names where it is in the file and holds the mapping
//! ([`Mapped`]); the rest (bytes the reassembly put together, several
//! inputs merged, standard input) is copied into the batch.
//!
//! This two-stage split serves any sink (`flows` uses it, and the analyzer
//! on two threads when it builds no records: `analyze`'s report). The
//! analyzer otherwise (`frames`, `sync`, or more than two threads) goes
//! further with [`analyze`]: its work is split by connection over several
//! workers and merged back in the order of the sink calls (see
//! `parallel/split.rs`).

mod split;

use std::cell::Cell;
use std::sync::mpsc;

pub use split::analyze;

use crate::capture::{CurrentFile, Mapped, MergedSource, PacketSource, Timestamp};
use crate::flow::{self, FlowMeta, FlowSummary, Scope, Scoped, Side, Sink};
use crate::pipeline::{self, RunSummary};
use crate::reassembly::Event;
use crate::report::view::Times;

/// The sink with relative times started at the capture's first packet.
struct Started<'a, S> {
    inner: &'a mut S,
    times: Option<&'a Times>,
}

impl<S: Sink> Sink for Started<'_, S> {
    fn capture_start(&mut self, ts: Timestamp) {
        if let Some(t) = self.times {
            t.start_at(ts);
        }
        self.inner.capture_start(ts);
    }
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        self.inner.event(flow, side, ev);
    }
    fn flow_end(&mut self, summary: &FlowSummary) {
        self.inner.flow_end(summary);
    }
}

/// Batches in flight between the threads.
pub const QUEUE: usize = 8;
/// How far past the reader's position the analysis thread touches a
/// mapped file (and how much at most per batch).
const WARM_LEAD: usize = 1 << 20;
/// Payload bytes per batch before it is handed over.
pub const BATCH_BYTES: usize = 256 << 10;
/// Events per batch before it is handed over.
pub const BATCH_EVENTS: usize = 2048;

/// The threads a run uses by default: the machine's cores (2 at most are
/// used today: see the module doc).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One sink call, its bytes in the batch's buffer. Nearly every call is an
/// `Event`: boxing its meta would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
enum Call {
    Start(Timestamp),
    Event {
        meta: FlowMeta,
        side: Side,
        file: usize,
        ev: Owned,
    },
    End(Box<FlowSummary>, usize),
}

/// An [`Event`] whose bytes are a range of the batch's buffer or of the
/// mapped file.
enum Owned {
    Data {
        offset: u64,
        at: usize,
        len: usize,
        /// `at` is in the mapped file, not the batch's buffer.
        mapped: bool,
        after_gap: bool,
        packet: u64,
    },
    Other(Event<'static>),
}

impl Owned {
    /// `ev`, its bytes (if any) found in `map` or else appended to `buf`.
    fn new(ev: Event<'_>, map: Option<&Mapped>, buf: &mut Vec<u8>) -> Owned {
        match ev {
            Event::Data {
                offset,
                bytes,
                after_gap,
                packet,
            } => {
                let (at, mapped) = match map.and_then(|m| m.offset_of(bytes)) {
                    Some(at) => (at, true),
                    None => {
                        buf.extend_from_slice(bytes);
                        (buf.len() - bytes.len(), false)
                    }
                };
                Owned::Data {
                    offset,
                    at,
                    len: bytes.len(),
                    mapped,
                    after_gap,
                    packet,
                }
            }
            Event::Gap {
                offset,
                len,
                reason,
            } => Owned::Other(Event::Gap {
                offset,
                len,
                reason,
            }),
            Event::Fin { offset } => Owned::Other(Event::Fin { offset }),
            Event::Rst { offset } => Owned::Other(Event::Rst { offset }),
            Event::Anomaly(a) => Owned::Other(Event::Anomaly(a)),
        }
    }

    /// The event, its bytes in `bytes` (the batch's buffer) or `map`.
    fn event<'a>(self, bytes: &'a [u8], map: Option<&'a Mapped>) -> Event<'a> {
        match self {
            Owned::Data {
                offset,
                at,
                len,
                mapped,
                after_gap,
                packet,
            } => {
                let from: &[u8] = match (map, mapped) {
                    (Some(m), true) => m,
                    _ => bytes,
                };
                Event::Data {
                    offset,
                    bytes: &from[at..at + len],
                    after_gap,
                    packet,
                }
            }
            Owned::Other(ev) => ev,
        }
    }
}

#[derive(Default)]
struct Batch {
    calls: Vec<Call>,
    bytes: Vec<u8>,
    /// Payload bytes of the events, copied or not (the batch is handed
    /// over at [`BATCH_BYTES`] either way: the reader stays close ahead).
    payload: usize,
    /// Stream offset of the last packet read (for a progress bar).
    offset: u64,
}

/// The reader thread's sink: calls into batches.
struct Forward<'a> {
    batch: Batch,
    tx: &'a mpsc::SyncSender<Batch>,
    free: &'a mpsc::Receiver<Batch>,
    file: CurrentFile,
    /// The mapped input, if it is one: payload found in it is lent, not
    /// copied.
    map: Option<Mapped>,
    /// Stream offset of the last packet read.
    offset: &'a Cell<u64>,
    /// The other side hung up (it failed): stop sending.
    closed: bool,
}

impl Forward<'_> {
    fn push(&mut self, call: Call) {
        self.batch.calls.push(call);
        if self.batch.calls.len() >= BATCH_EVENTS || self.batch.payload >= BATCH_BYTES {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.batch.calls.is_empty() || self.closed {
            return;
        }
        let mut next = self.free.try_recv().unwrap_or_default();
        next.calls.clear();
        next.bytes.clear();
        next.payload = 0;
        self.batch.offset = self.offset.get();
        let full = std::mem::replace(&mut self.batch, next);
        if self.tx.send(full).is_err() {
            self.closed = true;
        }
    }
}

impl Sink for Forward<'_> {
    fn capture_start(&mut self, ts: Timestamp) {
        self.push(Call::Start(ts));
    }

    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        if let Event::Data { bytes, .. } = &ev {
            self.batch.payload += bytes.len();
        }
        let ev = Owned::new(ev, self.map.as_ref(), &mut self.batch.bytes);
        let file = self.file.get();
        self.push(Call::Event {
            meta: meta.clone(),
            side,
            file,
            ev,
        });
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        let file = self.file.get();
        self.push(Call::End(Box::new(summary.clone()), file));
    }
}

/// What a run returns: the summary, and the anomalies and gaps the scope
/// let through (as [`Scoped::anomalies`] counts them).
pub struct Ran {
    pub summary: RunSummary,
    pub scoped_anomalies: u64,
}

/// The packet loop over `source` into `sink`, `scope` applied before it:
/// what the reading thread of every run does.
fn read_into<S: Sink>(
    source: &mut MergedSource,
    cfg: flow::Config,
    scope: Scope,
    sink: &mut S,
    tick: impl FnMut(u64),
) -> Ran {
    let mut scoped = Scoped::new(sink, scope);
    let summary = pipeline::run(source, cfg, &mut scoped, tick);
    Ran {
        summary,
        scoped_anomalies: scoped.anomalies(),
    }
}

/// For a run on threads: the sink's side keeps the [`CurrentFile`] the
/// caller has (returned first, to hand back to `source` at the end); the
/// reader's side gets a fresh one, stamped on each call (second).
fn reader_file(source: &mut MergedSource) -> (CurrentFile, CurrentFile) {
    let shown = source.current_file();
    let read = CurrentFile::default();
    source.track_file(read.clone());
    (shown, read)
}

/// Runs `source` through the flow table into `sink`, on one thread
/// (`jobs` <= 1, [`pipeline::run`] itself) or two (see the module doc).
/// `scope` is applied before the sink; `times` (relative times of the
/// tables) start at the first packet; `tick` gets the stream offset as
/// packets are read (progress). The source's [`CurrentFile`] names, while
/// the sink runs, the file of the packet that made the call (as in a
/// one-thread run).
pub fn run<S: Sink>(
    jobs: usize,
    source: &mut MergedSource,
    cfg: flow::Config,
    scope: Scope,
    times: Option<&Times>,
    sink: &mut S,
    mut tick: impl FnMut(u64),
) -> Ran {
    let mut sink = Started { inner: sink, times };
    if jobs <= 1 {
        return read_into(source, cfg, scope, &mut sink, &mut tick);
    }
    let (shown, read) = reader_file(source);
    // The mapped input, if it is one: the reader lends places in it, this
    // thread reads them.
    let map = source.mapped();
    let lent = map.clone();
    let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
    let (free_tx, free_rx) = mpsc::sync_channel::<Batch>(QUEUE + 2);
    let src = &mut *source;
    let ran = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let offset = Cell::new(0);
            let mut fwd = Forward {
                batch: Batch::default(),
                tx: &tx,
                free: &free_rx,
                file: read,
                map: lent,
                offset: &offset,
                closed: false,
            };
            let ran = read_into(src, cfg, scope, &mut fwd, |o| offset.set(o));
            fwd.send();
            ran
        });
        // Owned here: should the sink panic, the receiver goes with the
        // unwinding, the reader's next send fails and it stops (no deadlock).
        let rx = rx;
        let mut warmed = 0;
        for mut batch in rx.iter() {
            // Taken out to be drained while the events borrow the batch's
            // bytes; put back (its capacity is reused).
            let mut calls = std::mem::take(&mut batch.calls);
            for call in calls.drain(..) {
                match call {
                    Call::Start(ts) => sink.capture_start(ts),
                    Call::Event {
                        meta,
                        side,
                        file,
                        ev,
                    } => {
                        shown.set(file);
                        sink.event(&meta, side, ev.event(&batch.bytes, map.as_ref()));
                    }
                    Call::End(summary, file) => {
                        shown.set(file);
                        sink.flow_end(&summary);
                    }
                }
            }
            batch.calls = calls;
            if let Some(m) = &map {
                // The file ahead of the reader, touched on this thread (it
                // waits for the reader more than the other way round): the
                // reader then finds the lines in the shared cache.
                let from = batch.offset as usize + WARM_LEAD;
                m.touch(warmed.max(from), from + WARM_LEAD);
                warmed = warmed.max(from + WARM_LEAD);
            }
            tick(batch.offset);
            let _ = free_tx.try_send(batch);
        }
        match reader.join() {
            Ok(ran) => ran,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    source.track_file(shown);
    ran
}
