//! Options shared by the capture commands (`analyze`, `frames`, `sync`,
//! `flows`): input, decoding, scope (`--host`, `--since`, `--until`) and
//! `--fail-on-anomaly`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use syncscope::analyze::{resolve_profile, Options};
use syncscope::body::protobuf::Schemas;
use syncscope::flow::{HostMatch, Scope, TimeBound};
use syncscope::proto::commands::Registry;
use syncscope::proto::keylog::KeyLog;
use syncscope::report::view::{Times, View};
use syncscope::report::Format;

/// The `--format` values of flows, frames and sync: a readable table, one
/// JSON document, or one JSON object per line.
pub const ALL_FORMATS: &[Format] = &[Format::Table, Format::Json, Format::Ndjson];

/// Parses `--format` into [`Format`], accepting only the formats a command
/// offers (clap lists them in the help and suggests one on a typo).
pub fn format_parser(offered: &'static [Format]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(offered.iter().map(|f| f.as_str()))
        .map(|s| s.parse::<Format>().expect("one of the offered formats"))
}

/// `--format` of the commands that can also write Parquet: a printed
/// format, or Parquet tables under `--output DIR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Print(Format),
    Parquet,
}

/// Parses `--format` into [`Output`]: the `offered` printed formats and
/// `parquet`.
pub fn output_parser(offered: &'static [Format]) -> impl TypedValueParser<Value = Output> {
    let names: Vec<&'static str> = offered
        .iter()
        .map(|f| f.as_str())
        .chain(["parquet"])
        .collect();
    PossibleValuesParser::new(names).map(|s| match s.as_str() {
        "parquet" => Output::Parquet,
        f => Output::Print(f.parse().expect("one of the offered formats")),
    })
}

/// Checks `--output` against `--format`: Parquet needs a directory, the
/// printed formats go to stdout. The directory for Parquet.
pub fn output_dir(format: Output, output: Option<&Path>) -> anyhow::Result<Option<&Path>> {
    match (format, output) {
        (Output::Parquet, Some(d)) => {
            if d.exists() && !d.is_dir() {
                anyhow::bail!(
                    "--output {}: it is a file, not a directory: give the dataset's directory \
                     (it is created if missing)",
                    d.display()
                );
            }
            Ok(Some(d))
        }
        (Output::Parquet, None) => {
            anyhow::bail!("--format parquet needs --output DIR: the directory of the dataset")
        }
        (Output::Print(f), Some(_)) => {
            anyhow::bail!("--output DIR goes with --format parquet ({f} goes to stdout)")
        }
        (Output::Print(_), None) => Ok(None),
    }
}

/// What decodes bodies: key log, schemas, profile (capture files and live).
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Key log to decrypt with: JSON lines (OUTER/INNER keys) for MMTLS and business packets, or an
    /// NSS key log (SSLKEYLOGFILE) for TLS; the format is read from the file.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// .proto file to decode bodies with (repeatable); the profile maps cmds and cgis to messages.
    #[arg(long = "proto", value_name = "FILE.proto")]
    pub protos: Vec<PathBuf>,
    /// Include directory for imports in --proto files (repeatable).
    #[arg(short = 'I', value_name = "DIR")]
    pub includes: Vec<PathBuf>,
    /// Profile (TOML) that names long-link cmds and short-link cgis and maps their bodies to
    /// protobuf messages (looked up in the --proto files, else in the built-in
    /// proto/wechat.proto).
    #[arg(long, value_name = "FILE.toml")]
    pub profile: Option<PathBuf>,
}

/// Which connections and which stretch of the capture a command looks at.
#[derive(clap::Args, Debug)]
pub struct ScopeArgs {
    /// Only connections with this endpoint, on either side: IP or IP:PORT, e.g. 10.0.0.2,
    /// 10.0.0.2:8080, [::1]:8080 (repeatable: any of them). Connection ids stay those of
    /// the whole capture.
    #[arg(long, value_name = "ADDR", value_parser = |s: &str| s.parse::<HostMatch>())]
    pub host: Vec<HostMatch>,
    /// Only packets captured at or after TIME, as if the capture began there: seconds after
    /// its first packet (10s, 2.5) or an RFC 3339 time (2026-11-22T04:07:31Z).
    #[arg(long, value_name = "TIME", value_parser = |s: &str| s.parse::<TimeBound>())]
    pub since: Option<TimeBound>,
    /// Only packets captured at or before TIME, as if the capture ended there (same forms
    /// as --since).
    #[arg(long, value_name = "TIME", value_parser = |s: &str| s.parse::<TimeBound>())]
    pub until: Option<TimeBound>,
    /// Exit 1 when anomalies were found (gaps, resyncs, SyncKey anomalies and the rest the
    /// report lists); 0 when none, 2 on errors as always.
    #[arg(long)]
    pub fail_on_anomaly: bool,
}

impl ScopeArgs {
    /// The library's [`Scope`], checked (an empty window is an error).
    pub fn scope(&self) -> anyhow::Result<Scope> {
        let s = Scope {
            hosts: self.host.clone(),
            since: self.since,
            until: self.until,
        };
        s.check().map_err(anyhow::Error::msg)?;
        Ok(s)
    }
}

#[derive(clap::Args, Debug)]
pub struct DissectArgs {
    /// Capture files and directories of them (pcap, pcapng, or either gzip-compressed),
    /// merged in time order as one capture; `-` alone reads standard input.
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// Only connections with this port on either side.
    #[arg(long)]
    pub port: Option<u16>,
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
    /// Connections tracked at once; beyond it the least recently active is closed out.
    #[arg(long, default_value_t = syncscope::flow::DEFAULT_MAX_FLOWS as u32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_flows: u32,
}

impl DissectArgs {
    /// `-j`, or the machine's cores.
    pub fn jobs(&self) -> usize {
        jobs(self.jobs)
    }

    /// The flow table's configuration from the command line.
    pub fn flow_config(&self) -> syncscope::flow::Config {
        syncscope::flow::Config {
            max_flows: self.max_flows as usize,
            ..syncscope::flow::Config::default()
        }
    }

    /// Loads the key log, schemas and profile into analyzer options.
    pub fn options(&self) -> anyhow::Result<Options> {
        self.decode.options(self.port)
    }
}

impl DecodeArgs {
    /// Loads the key log, schemas and profile into analyzer options that
    /// keep connections with `port` on either side (all when `None`).
    pub fn options(&self, port: Option<u16>) -> anyhow::Result<Options> {
        let mut registry = Registry::builtin();
        if let Some(p) = &self.profile {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read profile {}", p.display()))?;
            registry
                .apply_profile(&text)
                .with_context(|| format!("profile {}", p.display()))?;
        }
        // A profile that maps messages without --proto: the built-in
        // proto/wechat.proto (as `replay` uses), so it works out of the box.
        let builtin = self.protos.is_empty() && registry.mappings().next().is_some();
        let schemas = if builtin {
            Some(syncscope::replay::schema::builtin_schemas())
        } else if self.protos.is_empty() {
            None
        } else {
            Some(Schemas::compile(&self.protos, &self.includes)?)
        };
        // The profile's message names are checked before the capture is read.
        if let Some(p) = &self.profile {
            resolve_profile(&mut registry, schemas.as_ref()).with_context(|| {
                if builtin {
                    format!(
                        "profile {} (no --proto given: its messages were looked up in the \
                         built-in proto/wechat.proto; add --proto FILE.proto for others)",
                        p.display()
                    )
                } else {
                    format!("profile {}", p.display())
                }
            })?;
        }
        let keylog = match &self.keylog {
            Some(p) => Some(KeyLog::load(p)?),
            None => None,
        };
        Ok(Options {
            registry,
            keylog,
            schemas,
            port,
            max_frame: None,
            raw: false,
            plots: false,
        })
    }
}

/// `-j N`, or the machine's cores.
pub fn jobs(n: Option<u32>) -> usize {
    n.map_or_else(syncscope::parallel::default_jobs, |n| n as usize)
}

/// How the tables look: `--wide` and `--time` (commands that print times).
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// Never cut a table to fit the terminal: every column, every value whole.
    #[arg(long)]
    pub wide: bool,
    /// Timestamps in tables: absolute (RFC 3339, UTC) or relative (seconds since the
    /// capture's first packet). JSON always has RFC 3339.
    #[arg(long, value_enum, default_value_t = TimeArg::Absolute, value_name = "MODE")]
    pub time: TimeArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeArg {
    Absolute,
    Relative,
}

impl ViewArgs {
    pub fn view(&self) -> View {
        View {
            width: table_width(self.wide),
            time: match self.time {
                TimeArg::Absolute => Times::default(),
                TimeArg::Relative => Times::relative(),
            },
        }
    }
}

/// The width tables fit, as ls, ps and systemctl choose it: none with
/// `--wide`; else `COLUMNS` when it holds a positive number; else the
/// terminal's width when standard output is a terminal; else none (a file or
/// a pipe gets every value whole).
pub fn table_width(wide: bool) -> Option<usize> {
    if wide {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(c);
    }
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
}
