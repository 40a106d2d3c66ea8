//! `syncscope sniff`: the `frames` records of a live interface as they
//! complete, a status line every few seconds, and the `analyze` report at
//! the end (Ctrl-C, `--count` packets or `--duration`).

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use syncscope::analyze::{Analyzer, FrameRecord};
use syncscope::capture::live::{self, LiveSource, Stats, Stop};
use syncscope::flow::{self, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline;
use syncscope::reassembly::Event;
use syncscope::report::{self, Format, Printer};

use syncscope::analyze::{CmdMatch, Layer, RecordFilter};
use syncscope::flow::{HostMatch, Scope, Scoped};

use super::common::{format_parser, DecodeArgs, ViewArgs};
use super::frames::layer_parser;

#[derive(clap::Args)]
pub struct Args {
    /// Interface to capture on (default: libpcap's default, see --list-interfaces).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Capture TCP traffic to or from this port (the filter becomes `tcp port N`).
    #[arg(long, default_value_t = 8080, conflicts_with = "filter")]
    pub port: u16,
    /// Capture filter in libpcap (BPF) syntax, instead of --port, e.g. 'tcp and host 10.0.0.2'.
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Save the captured packets to this pcapng file (readable by every command and by Wireshark).
    #[arg(long, value_name = "FILE.pcapng")]
    pub write: Option<PathBuf>,
    /// Frames as table rows, or one JSON object per line (the `frames` records).
    /// With ndjson, standard output holds only the records: the report goes to stderr.
    #[arg(long, default_value_t = Format::Table,
          value_parser = format_parser(&[Format::Table, Format::Ndjson]))]
    pub format: Format,
    /// Stop after this many captured packets (packets that passed the filter, as tcpdump -c).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Only frames of this cmd, as `frames --cmd` takes it: a number (121, 0x79) or a name in
    /// any case (newsync, a short-link cgi, a web endpoint); a request selects its responses.
    /// The report after Ctrl-C still covers every connection captured.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Only frames of this layer, as the records name it.
    #[arg(long, value_parser = layer_parser())]
    pub layer: Option<Layer>,
    /// Only connections with this endpoint, on either side: IP or IP:PORT (repeatable: any of
    /// them). Unlike --filter, the kernel still captures (and --write still saves) the rest.
    #[arg(long, value_name = "ADDR", value_parser = |s: &str| s.parse::<HostMatch>())]
    pub host: Vec<HostMatch>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    /// List the interfaces libpcap can capture on and exit.
    #[arg(long)]
    pub list_interfaces: bool,
    /// Bytes kept of each packet.
    #[arg(long, default_value_t = 262_144, value_name = "BYTES")]
    pub snaplen: u32,
    /// Kernel capture buffer in MiB (a bigger one rides out longer bursts without drops).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub buffer: u32,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    /// Close out a connection after this many seconds without packets (keeps memory bounded).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub idle_timeout: i64,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub status_interval: f64,
    /// No status lines, no summary, and with ndjson no report.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Counts connections and frames for the status line.
#[derive(Default)]
struct Counters {
    /// Connections seen (highest id + 1).
    flows: Cell<u64>,
    /// Connections closed out.
    ended: Cell<u64>,
    frames: Cell<u64>,
}

/// Passes everything on to the analyzer, counting connections.
struct Counting<'a, S> {
    inner: &'a mut S,
    counters: &'a Counters,
}

impl<S: Sink> Sink for Counting<'_, S> {
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        let c = &self.counters.flows;
        c.set(c.get().max(flow.id + 1));
        self.inner.event(flow, side, ev);
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        let c = &self.counters.flows;
        c.set(c.get().max(summary.id + 1));
        self.counters.ended.set(self.counters.ended.get() + 1);
        self.inner.flow_end(summary);
    }
}

/// Standard output shared by the printer and the tick that flushes it.
struct Shared(Rc<RefCell<io::BufWriter<io::Stdout>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

fn status_line(s: &Stats, c: &Counters) -> String {
    let flows = c.flows.get();
    format!(
        "sniff: {:.0} s: packets {} (kernel: received {}, dropped {}, interface dropped {}), \
         flows {} ({} open), frames {}{}",
        s.elapsed.as_secs_f64(),
        s.packets,
        s.kernel_received,
        s.kernel_dropped,
        s.if_dropped,
        flows,
        flows.saturating_sub(c.ended.get()),
        c.frames.get(),
        if s.written + s.write_dropped > 0 {
            format!(", written {} (dropped {})", s.written, s.write_dropped)
        } else {
            String::new()
        }
    )
}

fn list_interfaces() -> anyhow::Result<ExitCode> {
    let list = live::interfaces()?;
    let default = live::default_interface().ok();
    let mut out = io::stdout().lock();
    for i in &list {
        let mut flags = Vec::new();
        if default.as_deref() == Some(i.name.as_str()) {
            flags.push("default");
        }
        if i.loopback {
            flags.push("loopback");
        }
        flags.push(if i.up { "up" } else { "down" });
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        writeln!(
            out,
            "{:<20} {:<22} {:<40} {}",
            i.name,
            flags.join(","),
            addrs.join(" "),
            i.description.as_deref().unwrap_or("")
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list_interfaces {
        return list_interfaces();
    }
    let duration = match args.duration {
        Some(d) if !(d.is_finite() && d >= 0.0) => {
            anyhow::bail!("--duration {d}: expected a number of seconds")
        }
        d => d.map(Duration::from_secs_f64),
    };
    // The analyzer options come from the same loader as `analyze` and `frames`.
    let opts = args.decode.options(None)?;
    // Names come from the analyzer's own table (with the profile's), as in `frames`.
    let cmd = args
        .cmd
        .as_deref()
        .map(|c| CmdMatch::parse(c, &opts.registry))
        .transpose()?;
    let keep = RecordFilter {
        cmd,
        conn: None,
        layer: args.layer,
    };
    let scope = Scope {
        hosts: args.host.clone(),
        since: None,
        until: None,
    };
    let filter = args
        .filter
        .clone()
        .unwrap_or_else(|| format!("tcp port {}", args.port));
    let cfg = live::Config {
        interface: args.interface.clone(),
        filter,
        snaplen: args.snaplen,
        buffer_bytes: args.buffer.saturating_mul(1 << 20),
        promisc: args.promisc,
        count: args.count,
        duration,
        write: args.write.clone(),
        ..live::Config::default()
    };
    let mut source = LiveSource::open(&cfg)?;

    let stop = source.stop_handle();
    let stopping_again = std::sync::atomic::AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if stopping_again.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user does not want to wait for the report.
            std::process::exit(130);
        }
        stop.store(true, Ordering::SeqCst);
    })
    .context("cannot install the Ctrl-C handler")?;

    let lt = source.linktype();
    eprintln!(
        "listening on {} (link type {} ({}), snaplen {}, filter \"{}\"); Ctrl-C stops",
        source.interface(),
        lt.name(),
        lt.0,
        source.snaplen(),
        source.filter()
    );

    let out = Rc::new(RefCell::new(io::BufWriter::with_capacity(
        1 << 16,
        io::stdout(),
    )));
    let out_err: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let counters = Rc::new(Counters::default());
    let format = args.format;
    let view = args.view.view();
    let mut printer: Box<dyn Printer<FrameRecord>> =
        report::streaming(format, view.clone(), Shared(out.clone()));
    printer.begin()?;

    // Every 200 ms: frames printed so far reach the terminal or pipe; every
    // --status-interval: a status line.
    {
        let out = out.clone();
        let out_err = out_err.clone();
        let counters = counters.clone();
        let every = (args.status_interval > 0.0 && !args.quiet)
            .then(|| Duration::from_secs_f64(args.status_interval));
        let mut last_status = Instant::now();
        let stop = source.stop_handle();
        source.on_tick(Duration::from_millis(200), move |s| {
            if let Err(e) = out.borrow_mut().flush() {
                out_err.borrow_mut().get_or_insert(e);
                stop.store(true, Ordering::SeqCst);
            }
            if let Some(every) = every {
                if last_status.elapsed() >= every {
                    last_status = Instant::now();
                    eprintln!("{}", status_line(s, &counters));
                }
            }
        });
    }

    let flow_cfg = flow::Config {
        idle_timeout_secs: args.idle_timeout,
        closed_timeout_secs: args.idle_timeout.min(10),
        // Timestamps are the real clock: no need to guard against jumps.
        idle_min_packets: 0,
        ..flow::Config::default()
    };
    let (summary, report) = {
        let out_err = out_err.clone();
        let counters_rec = counters.clone();
        // Output that cannot be written (a closed pipe) ends the capture.
        let stop = source.stop_handle();
        let printer = &mut printer;
        let mut an = Analyzer::new(&opts, move |r: &FrameRecord| {
            counters_rec.frames.set(counters_rec.frames.get() + 1);
            if out_err.borrow().is_some() || !keep.keep(r) {
                return;
            }
            if let Err(e) = printer.record(r) {
                out_err.borrow_mut().get_or_insert(e);
                stop.store(true, Ordering::SeqCst);
            }
        });
        let mut scoped = Scoped::new(&mut an, scope);
        let mut sink = Counting {
            inner: &mut scoped,
            counters: &counters,
        };
        let mut summary = pipeline::run(
            &mut view.time.watch(&mut source),
            flow_cfg,
            &mut sink,
            |_| {},
        );
        let report = an.into_report();
        summary.anomalies = report.anomaly_counts();
        (summary, report)
    };
    let stats = source.finish()?;
    if let Some(e) = out_err.borrow_mut().take() {
        return Err(e).context("writing frames");
    }
    printer.end().context("writing frames")?;

    // The frames went to stdout; the report follows them there after an
    // empty line, or goes to stderr when stdout holds NDJSON.
    {
        let mut o = out.borrow_mut();
        match format {
            Format::Ndjson if !args.quiet => {
                o.flush()?;
                report::table::analyze(&report, &view, &mut io::stderr().lock())?;
            }
            Format::Ndjson => {}
            _ => {
                writeln!(o)?;
                report::table::analyze(&report, &view, &mut *o)?;
            }
        }
        o.flush()?;
    }

    if !args.quiet {
        let why = match stats.stopped {
            Some(Stop::Count) => "after --count packets",
            Some(Stop::Duration) => "after --duration",
            Some(Stop::Error) => "on a read error",
            Some(Stop::Interrupted) | None => "on Ctrl-C",
        };
        eprintln!("stopped {why}; {}", status_line(&stats, &counters));
        eprint!("{}", report::summary(&summary));
        if let Some(path) = &args.write {
            eprintln!(
                "wrote {} packets to {}{}",
                stats.written,
                path.display(),
                if stats.write_dropped > 0 {
                    format!(
                        " ({} not written: the disk did not keep up)",
                        stats.write_dropped
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(e) = &summary.read_error {
        eprintln!("syncscope: error: {e}");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
