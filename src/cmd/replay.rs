//! `syncscope replay`: a capture's client sessions sent again to a live
//! server, each answer compared with the recorded one.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use syncscope::capture::Reader;
use syncscope::proto::keylog::KeyLog;
use syncscope::replay::{self, Recording, Timing, Tokens, Volatile};
use syncscope::report::{self, Format};

use super::common::{format_parser, DecodeArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    /// Capture file: pcap, pcapng, or either gzip-compressed; `-` reads standard input.
    pub capture: PathBuf,
    /// `host:port` of the server to replay against.
    #[arg(long, value_name = "ADDR")]
    pub server: String,
    /// Replay only this connection (repeatable; ids as `analyze` lists them).
    #[arg(long = "conn", value_name = "ID")]
    pub conns: Vec<u64>,
    /// Map a recorded user to a live one, with the live user's password if the server
    /// enforces identity: REC=LIVE[:PASSWORD] (repeatable).
    #[arg(long = "user", value_name = "REC=LIVE[:PASSWORD]")]
    pub users: Vec<String>,
    /// Key log, .proto files and profile (without --proto: the built-in proto/wechat.proto;
    /// a profile may add `[replay] volatile = [...]`).
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// asap (as fast as the recorded order allows), original (the recorded timing), or xN
    /// (the recorded timing N times as fast).
    #[arg(long, default_value = "asap", value_parser = parse_timing)]
    pub timing: Timing,
    /// New ClientMsgIds instead of the recorded ones (by default a replayed send tests dedupe).
    #[arg(long)]
    pub fresh_ids: bool,
    /// A field whose value may change from run to run (repeatable; added to the built-in list).
    #[arg(long = "volatile", value_name = "FIELD")]
    pub volatile: Vec<String>,
    /// Replay N copies of each session at once, clone C as users <user>-c<C> (load).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clones: u32,
    /// Clones started per second (default: all at once).
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Seconds without progress before an awaited answer or push is given up as missing.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub stall: f64,
    /// Exit 0 even when answers differ.
    #[arg(long)]
    pub allow_diff: bool,
    /// List matched exchanges too (json, ndjson).
    #[arg(long)]
    pub all: bool,
    #[arg(long, default_value_t = Format::Table, value_parser = format_parser(ALL_FORMATS))]
    pub format: Format,
    /// Never cut the report to fit the terminal: every column, every value whole.
    #[arg(long)]
    pub wide: bool,
    /// No progress or summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_timing(s: &str) -> Result<Timing, String> {
    s.parse()
}

/// `REC=LIVE[:PASSWORD]`.
fn parse_users(users: &[String]) -> anyhow::Result<(Tokens, HashMap<String, String>)> {
    let mut tokens = Tokens::default();
    let mut passwords = HashMap::new();
    for u in users {
        let Some((rec, live)) = u.split_once('=') else {
            bail!("--user {u}: expected REC=LIVE[:PASSWORD], e.g. --user bob=carol:secret");
        };
        let (live, pw) = match live.split_once(':') {
            Some((l, p)) => (l, Some(p)),
            None => (live, None),
        };
        if rec.is_empty() || live.is_empty() {
            bail!("--user {u}: both user names are needed (REC=LIVE)");
        }
        tokens.map_user(rec, live);
        if let Some(pw) = pw {
            passwords.insert(live.to_owned(), pw.to_owned());
        }
    }
    Ok((tokens, passwords))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.stall > 0.0 && args.stall.is_finite()) {
        bail!("--stall must be a positive number of seconds");
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate must be a positive number of clones per second");
        }
    }
    let (tokens, passwords) = parse_users(&args.users)?;
    let profile = match &args.decode.profile {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read profile {}", p.display()))?,
        ),
        None => None,
    };
    let (mut opts, registry) = replay::schema::options(
        &args.decode.protos,
        &args.decode.includes,
        profile.as_deref(),
    )
    .context("decoding options")?;
    if let Some(k) = &args.decode.keylog {
        opts.keylog = Some(KeyLog::load(k)?);
    }
    let mut reader = Reader::open(&args.capture)?;
    let rec = Recording::read(&mut reader, &mut opts, syncscope::flow::Config::default());
    if let Some(e) = &rec.summary.read_error {
        eprintln!(
            "syncscope: warning: {}: {e} (replaying what came before)",
            args.capture.display()
        );
    }
    let mut config = replay::Config::new(args.server.clone());
    config.conns = args.conns.clone();
    config.timing = args.timing;
    config.fresh_ids = args.fresh_ids;
    let (extra, not) = registry.volatile();
    let mut names: Vec<String> = Volatile::default()
        .names()
        .iter()
        .filter(|n| !not.contains(n))
        .cloned()
        .collect();
    names.extend(extra.iter().cloned());
    names.extend(args.volatile.iter().cloned());
    config.volatile = Volatile::new(names);
    config.stall = Duration::from_secs_f64(args.stall);
    config.passwords = passwords;
    config.clones = args.clones;
    config.rate = args.rate;
    let selected: Vec<replay::Session> = replay::select(&rec, &config)?
        .into_iter()
        .cloned()
        .collect();
    if !args.quiet {
        let steps: usize = selected.iter().map(|s| s.steps.len()).sum();
        eprintln!(
            "syncscope replay: {} sessions, {steps} recorded steps, against {}{}",
            selected.len(),
            args.server,
            if args.clones > 1 {
                format!(" ({} clones)", args.clones)
            } else {
                String::new()
            }
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(replay::run(selected, config, opts, tokens, args.all));
    let differs = report.differs();
    let sessions_with_errors: Vec<(u64, String, String)> = report
        .sessions
        .iter()
        .filter_map(|s| {
            let clone = if s.clone > 0 {
                format!(" clone {}", s.clone)
            } else {
                String::new()
            };
            s.error.clone().map(|e| (s.conn, clone, e))
        })
        .collect();
    let out = io::BufWriter::new(io::stdout().lock());
    if args.format == Format::Ndjson {
        let mut out = out;
        for e in &report.exchanges {
            report::json::to_writer(&mut out, e)?;
            io::Write::write_all(&mut out, b"\n")?;
        }
        report::json::to_writer(&mut out, &report.summary())?;
        io::Write::write_all(&mut out, b"\n")?;
        io::Write::flush(&mut out)?;
    } else {
        let view = report::View {
            width: super::common::table_width(args.wide),
            ..report::View::default()
        };
        let mut printer = report::printer(args.format, view, out);
        printer.begin()?;
        printer.record_owned(report)?;
        printer.end()?;
    }
    let mut errors = 0;
    for s in sessions_with_errors.iter() {
        errors += 1;
        if errors <= 5 && !args.quiet {
            eprintln!("syncscope replay: conn {}{}: {}", s.0, s.1, s.2);
        }
    }
    if errors > 5 && !args.quiet {
        eprintln!(
            "syncscope replay: {} more sessions stopped early",
            errors - 5
        );
    }
    Ok(if errors > 0 {
        ExitCode::from(2)
    } else if differs && !args.allow_diff {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
