//! Live capture from a network interface through libpcap (cargo feature
//! `live`). [`LiveSource`] is a [`PacketSource`]: the same pipeline that
//! reads files runs on it unchanged.
//!
//! A live capture ends when it is told to (the flag from
//! [`LiveSource::stop_handle`], set by the binary's Ctrl-C handler), after
//! [`Config::count`] packets, or after [`Config::duration`]. After a stop by
//! flag or time, packets are still read for [`DRAIN`] and then until the
//! ring is empty, so that what the kernel captured just before (and holds in
//! a block of its ring for up to 100 ms) is not lost.
//!
//! `--write` ([`Config::write`]) tees every packet into a pcapng file on a
//! writer thread. The capture loop never waits for the disk: packets are
//! encoded into batches handed over a bounded channel, and a batch that finds
//! the channel full is dropped and counted ([`Stats::write_dropped`]).
//!
//! The library prints nothing: the caller gets [`Stats`] through
//! [`LiveSource::on_tick`] and decides what to show.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

use super::writer::{encode_epb, PcapngWriter};
use super::{Linktype, Packet, PacketSource, ReadStats, Timestamp};

/// Packet buffer timeout handed to libpcap (on Linux, the longest a packet
/// waits in a partly filled block of the kernel's ring before it is seen),
/// and how long the loop waits for packets before it looks at its stop
/// conditions again. The capture is non-blocking and the loop polls the
/// descriptor itself: on Linux (TPACKET_V3) a blocking read with a timeout
/// never returns while no packet arrives.
const READ_TIMEOUT_MS: u16 = 100;
/// After a stop by flag or time, packets are still read for this long, and
/// then until a read finds the ring empty.
pub const DRAIN: Duration = Duration::from_millis(300);
/// Past [`DRAIN`], packets already in the ring are still read until it is
/// empty, for at most this much longer.
const DRAIN_MAX_EXTRA: Duration = Duration::from_secs(2);
/// Bytes of encoded packets per batch handed to the writer thread.
const BATCH_BYTES: usize = 256 << 10;
/// A batch older than this is handed over even when not full.
const BATCH_AGE: Duration = Duration::from_millis(500);

/// What to capture and for how long.
#[derive(Debug, Clone)]
pub struct Config {
    /// Interface name; `None`: libpcap's default (the first of [`interfaces`]).
    pub interface: Option<String>,
    /// BPF filter expression (libpcap syntax), e.g. `tcp port 8080`.
    pub filter: String,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Kernel buffer for captured packets, in bytes.
    pub buffer_bytes: u32,
    /// Put the interface in promiscuous mode.
    pub promisc: bool,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Save the captured packets to this pcapng file.
    pub write: Option<PathBuf>,
    /// Batches (of up to 256 KiB) queued for the writer thread before new
    /// ones are dropped.
    pub write_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interface: None,
            filter: "tcp port 8080".into(),
            snaplen: 262_144,
            buffer_bytes: 32 << 20,
            promisc: false,
            count: None,
            duration: None,
            write: None,
            write_queue: 64,
        }
    }
}

/// Why a live capture could not start (or its file could not be written).
/// The messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no permission to capture on {interface} ({message}): capturing needs the CAP_NET_RAW \
         capability. Run as root (sudo syncscope sniff ...), or give the binary the \
         capability once: sudo setcap cap_net_raw,cap_net_admin=eip /path/to/syncscope"
    )]
    Permission { interface: String, message: String },

    #[error("no interface named {interface:?}; available: {}", available.join(", "))]
    NoSuchInterface {
        interface: String,
        available: Vec<String>,
    },

    #[error("libpcap found no interface to capture on; name one with -i (see --list-interfaces)")]
    NoDefaultInterface,

    #[error("bad capture filter {filter:?}: {message}")]
    BadFilter { filter: String, message: String },

    #[error("cannot capture on {interface}: {message}")]
    Pcap { interface: String, message: String },

    #[error("cannot list interfaces: {0}")]
    List(String),

    #[error("--write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a capture stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The stop flag was set (Ctrl-C).
    Interrupted,
    /// `count` packets were read.
    Count,
    /// `duration` went by.
    Duration,
    /// Reading failed (the interface went away).
    Error,
}

/// Counters of a live capture.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Packets handed to the pipeline.
    pub packets: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// libpcap's count of packets that passed the filter (`ps_recv`).
    pub kernel_received: u64,
    /// Packets the kernel dropped because the capture buffer was full (`ps_drop`).
    pub kernel_dropped: u64,
    /// Packets the interface or its driver dropped (`ps_ifdrop`).
    pub if_dropped: u64,
    /// Packets written to the `--write` file (or queued to be).
    pub written: u64,
    /// Packets not written because the writer thread fell behind.
    pub write_dropped: u64,
    /// Time since the capture started.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Why the capture stopped (once it has).
    pub stopped: Option<Stop>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A network interface as libpcap lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<std::net::IpAddr>,
    pub loopback: bool,
    pub up: bool,
}

/// The interfaces libpcap can capture on, its default first.
pub fn interfaces() -> Result<Vec<Interface>, Error> {
    let list = pcap::Device::list().map_err(|e| Error::List(pcap_message(&e)))?;
    Ok(list
        .into_iter()
        .map(|d| Interface {
            loopback: d.flags.is_loopback(),
            up: d.flags.is_up(),
            addresses: d.addresses.iter().map(|a| a.addr).collect(),
            description: d.desc,
            name: d.name,
        })
        .collect())
}

/// libpcap's default interface (`pcap::Device::lookup`).
pub fn default_interface() -> Result<String, Error> {
    match pcap::Device::lookup() {
        Ok(Some(d)) => Ok(d.name),
        Ok(None) => Err(Error::NoDefaultInterface),
        Err(e) => Err(Error::List(pcap_message(&e))),
    }
}

/// libpcap's own text, without the crate's "libpcap error: " prefix.
fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

fn is_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission") || m.contains("not permitted") || m.contains("eperm")
}

fn is_no_such_device(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("no such device") || m.contains("doesn't exist") || m.contains("does not exist")
}

fn available_names() -> Vec<String> {
    interfaces()
        .map(|l| l.into_iter().map(|i| i.name).collect())
        .unwrap_or_default()
}

/// The `--write` side: batches of encoded packet blocks for the writer thread.
struct Tap {
    path: PathBuf,
    tx: Option<SyncSender<(Vec<u8>, u64)>>,
    /// Emptied buffers coming back from the writer, to reuse.
    spare: Receiver<Vec<u8>>,
    batch: Vec<u8>,
    batch_packets: u64,
    batch_since: Instant,
    nanos: bool,
    snaplen: u32,
    queued: u64,
    dropped: u64,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Tap {
    fn start(
        path: PathBuf,
        linktype: Linktype,
        snaplen: u32,
        nanos: bool,
        interface: &str,
        queue: usize,
    ) -> Result<Tap, Error> {
        let file = File::create(&path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        let mut w = PcapngWriter::new(
            io::BufWriter::with_capacity(1 << 20, file),
            linktype,
            snaplen,
            nanos,
            Some(interface),
        )
        .map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, u64)>(queue.max(1));
        let (spare_tx, spare) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("pcapng-writer".into())
            .spawn(move || {
                let mut result = Ok(());
                for (mut batch, _) in rx {
                    // After an error, keep draining so the capture never waits.
                    if result.is_ok() {
                        result = w.write_blocks(&batch);
                    }
                    batch.clear();
                    let _ = spare_tx.send(batch);
                }
                result.and_then(|()| w.flush())
            })
            .map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
        Ok(Tap {
            path,
            tx: Some(tx),
            spare,
            batch: Vec::with_capacity(BATCH_BYTES + 65_600),
            batch_packets: 0,
            batch_since: Instant::now(),
            nanos,
            snaplen,
            queued: 0,
            dropped: 0,
            thread: Some(thread),
        })
    }

    fn packet(&mut self, ts: Timestamp, data: &[u8], orig_len: u32, now: Instant) {
        if self.batch_packets == 0 {
            self.batch_since = now;
        }
        encode_epb(
            &mut self.batch,
            self.nanos,
            self.snaplen,
            ts,
            data,
            orig_len,
        );
        self.batch_packets += 1;
        if self.batch.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    /// Hands the batch to the writer if it is old enough (called when idle).
    fn tick(&mut self, now: Instant) {
        if self.batch_packets > 0 && now.duration_since(self.batch_since) >= BATCH_AGE {
            self.hand_over();
        }
    }

    /// Never blocks: a full queue drops the batch (counted).
    fn hand_over(&mut self) {
        if self.batch_packets == 0 {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES + 65_600));
        let batch = std::mem::replace(&mut self.batch, next);
        let n = std::mem::take(&mut self.batch_packets);
        let Some(tx) = &self.tx else {
            self.dropped += n;
            return;
        };
        match tx.try_send((batch, n)) {
            Ok(()) => self.queued += n,
            Err(TrySendError::Full((mut b, n)) | TrySendError::Disconnected((mut b, n))) => {
                self.dropped += n;
                b.clear();
                self.batch = b;
            }
        }
    }

    /// The capture is over: the last batch is handed over (waiting is fine
    /// now) and the writer thread finishes the file.
    fn finish(&mut self) -> Result<(), Error> {
        if let Some(tx) = self.tx.take() {
            if self.batch_packets > 0 {
                let batch = std::mem::take(&mut self.batch);
                let n = std::mem::take(&mut self.batch_packets);
                match tx.send((batch, n)) {
                    Ok(()) => self.queued += n,
                    Err(_) => self.dropped += n,
                }
            }
        }
        let res = match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the pcapng writer thread panicked")),
            None => Ok(()),
        };
        res.map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Packets from a live interface. See the module doc.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    filter: String,
    linktypes: Vec<Linktype>,
    snaplen: u32,
    /// Timestamps come in nanoseconds (else microseconds).
    nanos: bool,
    /// The current packet, copied out of libpcap's ring (it lives only until
    /// the next read; a copy keeps the borrow simple and costs little).
    buf: Vec<u8>,
    read: ReadStats,
    bytes: u64,
    count: Option<u64>,
    started: Instant,
    deadline: Option<Instant>,
    stop_flag: Arc<AtomicBool>,
    /// Stopping: why, and until when packets already captured are drained.
    stopping: Option<(Stop, Instant)>,
    stopped: Option<Stop>,
    tap: Option<Tap>,
    tick: Option<Ticker>,
    kernel: pcap::Stat,
}

struct Ticker {
    every: Duration,
    last: Instant,
    f: Box<dyn FnMut(&Stats)>,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("interface", &self.interface)
            .field("filter", &self.filter)
            .field("linktypes", &self.linktypes)
            .field("packets", &self.read.packets)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Opens the interface, applies the filter and (with `write`) creates
    /// the pcapng file. Capturing starts here: packets sent after `open`
    /// returns are seen.
    pub fn open(cfg: &Config) -> Result<LiveSource, Error> {
        let interface = match &cfg.interface {
            Some(name) => {
                // Checked first: libpcap's own message for an unknown name
                // varies by platform and names no alternative.
                if let Ok(list) = interfaces() {
                    if !list.is_empty() && !list.iter().any(|i| &i.name == name) {
                        return Err(Error::NoSuchInterface {
                            interface: name.clone(),
                            available: list.into_iter().map(|i| i.name).collect(),
                        });
                    }
                }
                name.clone()
            }
            None => default_interface()?,
        };
        let pcap_err = |e: pcap::Error| {
            let message = pcap_message(&e);
            if is_permission(&message) {
                Error::Permission {
                    interface: interface.clone(),
                    message,
                }
            } else if is_no_such_device(&message) {
                Error::NoSuchInterface {
                    interface: interface.clone(),
                    available: available_names(),
                }
            } else {
                Error::Pcap {
                    interface: interface.clone(),
                    message,
                }
            }
        };
        let snaplen = cfg.snaplen.clamp(64, 262_144);
        let inactive = pcap::Capture::from_device(interface.as_str())
            .map_err(pcap_err)?
            .snaplen(snaplen as i32)
            .timeout(i32::from(READ_TIMEOUT_MS))
            .buffer_size(cfg.buffer_bytes.min(i32::MAX as u32) as i32)
            .promisc(cfg.promisc)
            .precision(pcap::Precision::Nano);
        let mut cap = inactive
            .open()
            .and_then(|c| c.setnonblock())
            .map_err(pcap_err)?;
        cap.filter(&cfg.filter, true)
            .map_err(|e| Error::BadFilter {
                filter: cfg.filter.clone(),
                message: pcap_message(&e),
            })?;
        let linktype = Linktype(cap.get_datalink().0 as u32);
        // Linux and the BSDs honour the nanosecond request; if a platform
        // did not, the sub-second field would be microseconds: libpcap
        // reports which through pcap_get_tstamp_precision, which this crate
        // does not expose, so nanoseconds are assumed where asked for.
        let nanos = true;
        let tap = match &cfg.write {
            Some(path) => Some(Tap::start(
                path.clone(),
                linktype,
                snaplen,
                nanos,
                &interface,
                cfg.write_queue,
            )?),
            None => None,
        };
        let started = Instant::now();
        Ok(LiveSource {
            cap,
            filter: cfg.filter.clone(),
            linktypes: vec![linktype],
            snaplen,
            nanos,
            buf: Vec::with_capacity(snaplen as usize),
            read: ReadStats::default(),
            bytes: 0,
            count: cfg.count,
            started,
            deadline: cfg.duration.map(|d| started + d),
            stop_flag: Arc::new(AtomicBool::new(false)),
            stopping: None,
            stopped: None,
            tap,
            tick: None,
            kernel: pcap::Stat {
                received: 0,
                dropped: 0,
                if_dropped: 0,
            },
            interface,
        })
    }

    /// The interface being captured.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The filter applied.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Link type of the interface.
    pub fn linktype(&self) -> Linktype {
        self.linktypes[0]
    }

    /// Bytes kept of each packet.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Setting this flag (from any thread or a signal handler's thread)
    /// stops the capture within about [`DRAIN`] plus 100 ms.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop_flag.clone()
    }

    /// Calls `f` with the counters about every `every` (between packets, or
    /// every 100 ms when none arrive) while the capture runs.
    pub fn on_tick(&mut self, every: Duration, f: impl FnMut(&Stats) + 'static) {
        self.tick = Some(Ticker {
            every,
            last: Instant::now(),
            f: Box::new(f),
        });
    }

    /// Counters so far (asks libpcap for the kernel's).
    pub fn live_stats(&mut self) -> Stats {
        if let Ok(s) = self.cap.stats() {
            self.kernel = s;
        }
        Stats {
            packets: self.read.packets,
            bytes: self.bytes,
            kernel_received: u64::from(self.kernel.received),
            kernel_dropped: u64::from(self.kernel.dropped),
            if_dropped: u64::from(self.kernel.if_dropped),
            written: self.tap.as_ref().map_or(0, |t| t.queued + t.batch_packets),
            write_dropped: self.tap.as_ref().map_or(0, |t| t.dropped),
            elapsed: self.started.elapsed(),
            stopped: self.stopped,
        }
    }

    /// Ends the capture: the `--write` file is completed. Returns the final counters.
    pub fn finish(mut self) -> Result<Stats, Error> {
        if self.stopped.is_none() {
            self.stopped = Some(Stop::Interrupted);
        }
        let mut stats = self.live_stats();
        if let Some(tap) = &mut self.tap {
            tap.finish()?;
            stats.written = tap.queued;
            stats.write_dropped = tap.dropped;
        }
        Ok(stats)
    }

    fn tick(&mut self, now: Instant) {
        if let Some(tap) = &mut self.tap {
            tap.tick(now);
        }
        let due = self
            .tick
            .as_ref()
            .is_some_and(|t| now.duration_since(t.last) >= t.every);
        if due {
            let stats = self.live_stats();
            if let Some(t) = &mut self.tick {
                t.last = now;
                (t.f)(&stats);
            }
        }
    }

    fn stop(&mut self, why: Stop) {
        self.stopped = Some(why);
        self.stopping = None;
    }
}

impl PacketSource for LiveSource {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, super::Error> {
        loop {
            if self.stopped.is_some() {
                return Ok(None);
            }
            if self.count.is_some_and(|n| self.read.packets >= n) {
                self.stop(Stop::Count);
                return Ok(None);
            }
            let now = Instant::now();
            self.tick(now);
            if self.stopping.is_none() {
                if self.stop_flag.load(Ordering::Relaxed) {
                    self.stopping = Some((Stop::Interrupted, now + DRAIN));
                } else if self.deadline.is_some_and(|d| now >= d) {
                    self.stopping = Some((Stop::Duration, now + DRAIN));
                }
            }
            if let Some((why, until)) = self.stopping {
                // Past the drain time, what is in the ring is still read
                // (a process that was not scheduled must not lose it), but
                // a sender that never pauses cannot keep us going.
                if now >= until + DRAIN_MAX_EXTRA {
                    self.stop(why);
                    return Ok(None);
                }
            }
            let (ts, orig_len) = match self.cap.next_packet() {
                Ok(p) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(p.data);
                    let h = p.header;
                    let frac = h.ts.tv_usec.max(0) as u32;
                    // time_t is 32 bits on some targets.
                    #[allow(clippy::unnecessary_cast)]
                    let secs = h.ts.tv_sec as i64;
                    let ts = if self.nanos {
                        Timestamp::new(secs, frac, 9)
                    } else {
                        Timestamp::new(secs, frac.saturating_mul(1000), 6)
                    };
                    (ts, h.len)
                }
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing to read now (non-blocking): wait for the
                    // descriptor, at most until the next look at the clock.
                    let mut wait = READ_TIMEOUT_MS;
                    if let Some((why, until)) = self.stopping {
                        if now >= until {
                            self.stop(why);
                            return Ok(None);
                        }
                        let left = until.saturating_duration_since(now).as_millis();
                        wait = wait.min(left.max(1) as u16);
                    }
                    let mut fds = [PollFd::new(self.cap.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, wait) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                        Err(e) => {
                            self.stop(Stop::Error);
                            return Err(super::Error::Io {
                                source_name: format!("interface {}", self.interface),
                                source: io::Error::from(e),
                            });
                        }
                    }
                }
                Err(e) => {
                    self.stop(Stop::Error);
                    return Err(super::Error::Io {
                        source_name: format!("interface {}", self.interface),
                        source: io::Error::other(pcap_message(&e)),
                    });
                }
            };
            let offset = self.bytes;
            self.read.packets += 1;
            self.bytes += self.buf.len() as u64;
            self.read.bytes = self.bytes;
            if let Some(tap) = &mut self.tap {
                tap.packet(ts, &self.buf, orig_len, now);
            }
            return Ok(Some(Packet {
                ts,
                linktype: self.linktypes[0],
                data: &self.buf,
                orig_len,
                interface: 0,
                offset,
            }));
        }
    }

    fn linktypes(&self) -> &[Linktype] {
        &self.linktypes
    }

    fn stats(&self) -> ReadStats {
        self.read.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_say_what_to_do() {
        let e = Error::Permission {
            interface: "eth0".into(),
            message: "socket: Operation not permitted".into(),
        };
        let m = e.to_string();
        assert!(m.contains("CAP_NET_RAW") && m.contains("root"), "{m}");
        let e = Error::NoSuchInterface {
            interface: "nope0".into(),
            available: vec!["lo".into(), "eth0".into()],
        };
        assert_eq!(
            e.to_string(),
            "no interface named \"nope0\"; available: lo, eth0"
        );
        assert!(is_permission(
            "You don't have permission to perform this capture on that device"
        ));
        assert!(is_permission("socket: Operation not permitted"));
        assert!(!is_permission("syntax error in filter expression"));
        assert!(is_no_such_device("nope0: No such device exists"));
    }

    #[test]
    fn a_writer_that_falls_behind_drops_batches_and_never_blocks_the_capture() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // The file's reader opens it but reads nothing until told to.
        let (go, wait) = mpsc::channel::<()>();
        let path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut f = File::open(path).unwrap();
            wait.recv().unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        });
        let mut tap = Tap::start(fifo, Linktype::RAW, 65_535, true, "test", 1).unwrap();
        let t0 = Instant::now();
        let data = [0x45u8; 1000];
        let n = 20_000u64;
        for i in 0..n {
            let ts = Timestamp::new(1_700_000_000 + i as i64, 0, 9);
            tap.packet(ts, &data, 1000, Instant::now());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the capture side waited"
        );
        assert!(tap.dropped > 0, "nothing dropped with a stalled writer");
        go.send(()).unwrap();
        tap.finish().unwrap();
        assert_eq!(tap.queued + tap.dropped, n);
        let bytes = reader.join().unwrap();
        let mut r =
            super::super::Reader::from_read(Box::new(io::Cursor::new(bytes)), "fifo").unwrap();
        let mut got = 0;
        while r.next_packet().unwrap().is_some() {
            got += 1;
        }
        assert_eq!(got, tap.queued);
    }

    #[test]
    fn interfaces_can_be_listed_without_privileges() {
        // pcap_findalldevs needs no capability; loopback is always there on Linux.
        let list = interfaces().unwrap();
        if cfg!(target_os = "linux") {
            assert!(
                list.iter().any(|i| i.name == "lo" && i.loopback),
                "{list:?}"
            );
        }
    }
}
