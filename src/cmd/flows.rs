//! `syncscope flows`: one record per TCP connection.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use syncscope::parallel;
use syncscope::report::parquet::TcpPrinter;
use syncscope::report::{self, FlowRow, FlowsSink, Printer};
use syncscope::{flow, reassembly};

use super::common::{output_dir, output_parser, Output, ScopeArgs, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    /// Capture files and directories of them (pcap, pcapng, or either gzip-compressed),
    /// merged in time order as one capture; `-` alone reads standard input.
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,
    /// Output format; parquet writes the tcp table (docs/parquet.md) under --output DIR.
    #[arg(long, default_value = "table", value_parser = output_parser(ALL_FORMATS))]
    pub format: Output,
    /// With --format parquet: the dataset directory; each run adds
    /// DIR/tcp/part-<capture>-<hash>.parquet (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Add the sha256 of each direction's delivered bytes.
    #[arg(long)]
    pub hash: bool,
    /// Write each direction's bytes to DIR/<id>-<client>-<server>.c2s|.s2c (gaps are not zero-filled).
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Exit 2 when the capture is truncated or corrupt (results are still printed).
    #[arg(long)]
    pub strict: bool,
    /// Threads: 1 runs everything on one; 2 or more read, decode and reassemble on one thread
    /// and analyze on another (same records; more than 2 are not used yet). Default: the
    /// machine's cores.
    #[arg(short = 'j', long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// No summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// List every anomaly (overlaps that differ, late data, buffer caps) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Close out an open connection after this many seconds without packets (capture time).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub idle_timeout: i64,
    /// Out-of-order data held per direction before a hole is given up as a gap (each
    /// segment counts its bytes plus 64).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_buffer: usize,
    /// Out-of-order data held over all connections (counted the same way).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_buffer_total: usize,
    /// Connections tracked at once; beyond it the least recently active is closed out
    /// (reported as evicted).
    #[arg(long, default_value_t = flow::DEFAULT_MAX_FLOWS as u32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_flows: u32,
    /// Anomalies of each kind listed by `-v` at most (all are counted).
    #[arg(long, default_value_t = report::DEFAULT_MAX_EXAMPLES, value_name = "N")]
    pub max_examples: usize,
    #[command(flatten)]
    pub view: ViewArgs,
}

impl Args {
    fn jobs(&self) -> usize {
        super::common::jobs(self.jobs)
    }

    /// The flow table's configuration from the command line.
    fn flow_config(&self) -> flow::Config {
        let defaults = flow::Config::default();
        flow::Config {
            idle_timeout_secs: self.idle_timeout,
            max_buffer_total: self.max_buffer_total,
            max_flows: self.max_flows as usize,
            reassembly: reassembly::Config {
                max_buffer_per_direction: self.max_buffer,
                ..defaults.reassembly
            },
            ..defaults
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out_dir = output_dir(args.format, args.output.as_deref())?;
    let scope = args.scope.scope()?;
    if let Some(d) = &args.dump {
        if d.exists() && !d.is_dir() {
            anyhow::bail!(
                "--dump {}: it is a file, not a directory: give a directory (it is created \
                 if missing)",
                d.display()
            );
        }
    }
    let inputs = super::inputs(&args.captures, args.quiet)?;
    let mut reader = inputs.open()?;
    let cfg = args.flow_config();
    let view = args.view.view();
    let times = view.time.clone();
    let mut printer: Box<dyn Printer<FlowRow>> = match (args.format, out_dir) {
        (Output::Print(f), _) => report::spilling(f, view, io::BufWriter::new(io::stdout().lock())),
        (Output::Parquet, dir) => {
            let dir = dir.expect("output_dir gives Parquet a directory");
            Box::new(
                TcpPrinter::create(dir, &inputs.names(), args.quiet).with_context(|| {
                    format!(
                        "--output {}: cannot create the dataset (give a directory you can \
                         write to)",
                        dir.display()
                    )
                })?,
            )
        }
    };
    printer.begin()?;
    let mut sink = FlowsSink::new(args.hash, args.dump.clone(), Some(printer))
        .with_context(|| {
            format!(
                "--dump {}: cannot create the directory (give one you can write to)",
                args.dump.as_deref().unwrap_or(Path::new("")).display()
            )
        })?
        .max_examples(args.max_examples);
    if inputs.files.len() > 1 {
        // Several inputs: each record names the file of its connection's first packet.
        sink = sink.with_files(inputs.names(), reader.current_file());
    }
    let (summary, anomalies) =
        super::run_with_progress(&inputs, args.quiet, &mut reader, |r, tick| {
            let ran = parallel::run(args.jobs(), r, cfg, scope, Some(&times), &mut sink, tick);
            (ran.summary, ran.scoped_anomalies)
        });
    let label = super::inputs_label(&inputs);
    super::nothing_read(&label, &summary)?;
    sink.finish().context("writing output")?;

    if args.verbose {
        for a in sink.anomalies.iter() {
            eprintln!("anomaly: {}", report::json::to_string(a)?);
        }
        if let Some(o) = sink.anomalies.overflow() {
            eprintln!(
                "anomalies not listed: {} (the first {} of each kind are; --max-examples N)",
                o.omitted, o.max_per_kind
            );
        }
    }
    super::Finish {
        capture: &label,
        quiet: args.quiet,
        strict: args.strict,
        fail_on_anomaly: args.scope.fail_on_anomaly,
        anomalies: anomalies > 0,
    }
    .exit(&summary)
}
