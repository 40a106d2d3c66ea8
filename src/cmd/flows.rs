use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::common::OutFormat;
use anyhow::Context;

use syncscope::capture::Reader;
use syncscope::pipeline::{self, RunSummary};
use syncscope::report::{self, FlowsSink};
use syncscope::{flow, reassembly};

#[derive(clap::Args)]
pub struct Args {
    /// Capture file: pcap, pcapng, or either gzip-compressed; `-` reads standard input.
    pub capture: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
    /// Add the sha256 of each direction's delivered bytes.
    #[arg(long)]
    pub hash: bool,
    /// Write each direction's bytes to DIR/<id>-<client>-<server>.c2s|.s2c (gaps are not zero-filled).
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Exit 2 when the capture is truncated or corrupt (results are still printed).
    #[arg(long)]
    pub strict: bool,
    /// No summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// List every anomaly (overlaps that differ, late data, buffer caps) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Close out an open connection after this many seconds without packets (capture time).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub idle_timeout: i64,
    /// Out-of-order bytes held per direction before a hole is given up as a gap.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_buffer: usize,
    /// Out-of-order bytes held over all connections.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_buffer_total: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut reader = Reader::open(&args.capture)?;
    let defaults = flow::Config::default();
    let cfg = flow::Config {
        idle_timeout_secs: args.idle_timeout,
        max_buffer_total: args.max_buffer_total,
        reassembly: reassembly::Config {
            max_buffer_per_direction: args.max_buffer,
            ..defaults.reassembly
        },
        ..defaults
    };

    let stdout = io::stdout();
    let stream: Option<Box<dyn Write>> = match args.format {
        OutFormat::Ndjson => Some(Box::new(io::BufWriter::new(stdout.lock()))),
        _ => None,
    };
    let mut sink = FlowsSink::new(args.hash, args.dump.clone(), stream)
        .with_context(|| format!("cannot create dump directory {:?}", args.dump))?;
    let summary = super::run_with_progress(&args.capture, args.quiet, &mut reader, |r, tick| {
        pipeline::run(r, cfg, &mut sink, tick)
    });
    sink.flush().context("writing output")?;

    let mut out = io::stdout().lock();
    match args.format {
        OutFormat::Ndjson => {}
        OutFormat::Json => {
            let records: Vec<_> = sink.rows().iter().map(|r| &r.record).collect();
            serde_json::to_writer_pretty(&mut out, &records).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        OutFormat::Table => {
            writeln!(out, "{}", report::table::flows(sink.rows()))?;
        }
    }
    out.flush()?;

    if args.verbose {
        for a in &sink.anomalies {
            eprintln!(
                "anomaly: {}",
                serde_json::to_string(a).map_err(io::Error::from)?
            );
        }
    }
    if !args.quiet {
        print_summary(&summary);
    }
    if let Some(e) = &summary.read_error {
        eprintln!("syncscope: warning: {}: {e}", args.capture.display());
        if args.strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_summary(s: &RunSummary) {
    let w = &s.wire;
    let lt: Vec<String> = s.linktypes.clone();
    let anomalies: u64 = s.anomalies.values().sum();
    let kinds: Vec<String> = s
        .anomalies
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    eprintln!(
        "packets {} (tcp {}, udp {}, other ip {}, not ip {}, unknown link type {}, malformed {}, ip fragments {} -> {} datagrams); \
         flows {}; bytes {}; gaps {} ({} bytes); anomalies {}{}; link types: {}",
        s.packets,
        w.tcp,
        w.udp,
        w.other_ip,
        w.not_ip,
        w.unknown_linktype,
        w.malformed,
        w.fragments,
        w.datagrams_reassembled,
        s.flows.flows,
        s.bytes,
        s.gaps,
        s.gap_bytes,
        anomalies,
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        if lt.is_empty() { "none".into() } else { lt.join(", ") },
    );
    if s.read.skipped_blocks > 0 {
        eprintln!(
            "pcapng blocks skipped (not packets): {}",
            s.read.skipped_blocks
        );
    }
}
