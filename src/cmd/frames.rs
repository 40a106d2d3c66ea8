use std::io::{self, Write};
use std::process::ExitCode;

use super::common::OutFormat;

use syncscope::analyze::{Analyzer, FrameRecord};
use syncscope::capture::Reader;
use syncscope::{flow, pipeline};

use super::common::DissectArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
    /// Only frames of this cmd (number, or name such as newsync; a request's
    /// name also selects its responses).
    #[arg(long)]
    pub cmd: Option<String>,
    /// Only frames of this connection id (as `syncscope flows` numbers them).
    #[arg(long)]
    pub conn: Option<u64>,
    /// Only this layer: longlink, shortlink, mmtls, http or web.
    #[arg(long)]
    pub layer: Option<String>,
}

struct Filter {
    cmd: Option<String>,
    conn: Option<u64>,
    layer: Option<String>,
}

impl Filter {
    fn keep(&self, r: &FrameRecord) -> bool {
        if self.conn.is_some_and(|c| c != r.conn) {
            return false;
        }
        if self.layer.as_deref().is_some_and(|l| l != r.layer.as_str()) {
            return false;
        }
        if let Some(want) = &self.cmd {
            let Some(cmd) = r.cmd else {
                return false;
            };
            let by_number = want
                .parse::<u32>()
                .is_ok_and(|n| n == cmd || n + 1_000_000_000 == cmd);
            let by_name = r
                .cmd_name
                .as_deref()
                .is_some_and(|n| n == want || n.strip_suffix("_resp") == Some(want.as_str()));
            if !by_number && !by_name {
                return false;
            }
        }
        true
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(l) = &args.layer {
        if !["longlink", "shortlink", "mmtls", "http", "web"].contains(&l.as_str()) {
            anyhow::bail!("--layer {l}: expected longlink, shortlink, mmtls, http or web");
        }
    }
    let opts = args.common.options()?;
    let mut reader = Reader::open(&args.common.capture)?;
    let filter = Filter {
        cmd: args.cmd.clone(),
        conn: args.conn,
        layer: args.layer.clone(),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut kept: Vec<FrameRecord> = Vec::new();
    let mut err: Option<io::Error> = None;
    let format = args.format;
    let summary = {
        let mut an = Analyzer::new(&opts, |r: &FrameRecord| {
            if !filter.keep(r) || err.is_some() {
                return;
            }
            match format {
                OutFormat::Ndjson => {
                    let res = serde_json::to_writer(&mut out, r)
                        .map_err(io::Error::from)
                        .and_then(|_| out.write_all(b"\n"));
                    if let Err(e) = res {
                        err = Some(e);
                    }
                }
                _ => kept.push(r.clone()),
            }
        });
        let s = super::run_with_progress(
            &args.common.capture,
            args.common.quiet,
            &mut reader,
            |r, tick| pipeline::run(r, flow::Config::default(), &mut an, tick),
        );
        let _ = an.into_report();
        s
    };
    if let Some(e) = err {
        return Err(e.into());
    }
    match format {
        OutFormat::Ndjson => {}
        OutFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &kept).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        OutFormat::Table => writeln!(out, "{}", syncscope::report::table::frames(&kept))?,
    }
    out.flush()?;
    super::finish(&args.common, &summary)
}
