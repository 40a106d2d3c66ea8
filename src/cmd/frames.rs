//! `syncscope frames`: one record per application frame.

use std::io;
use std::process::ExitCode;

use syncscope::analyze::{Analyzer, FrameRecord};
use syncscope::capture::Reader;
use syncscope::pipeline;
use syncscope::report::{self, Format};

use super::common::{format_parser, DissectArgs, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format.
    #[arg(long, default_value_t = Format::Table, value_parser = format_parser(ALL_FORMATS))]
    pub format: Format,
    /// Only frames of this cmd (number, or name such as newsync; a request's
    /// name also selects its responses).
    #[arg(long)]
    pub cmd: Option<String>,
    /// Only frames of this connection id (as `syncscope flows` numbers them).
    #[arg(long)]
    pub conn: Option<u64>,
    /// Only this layer: longlink, mars, shortlink, mmtls, http or web.
    #[arg(long)]
    pub layer: Option<String>,
    #[command(flatten)]
    pub view: ViewArgs,
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
        if !["longlink", "mars", "shortlink", "mmtls", "http", "web"].contains(&l.as_str()) {
            anyhow::bail!("--layer {l}: expected longlink, mars, shortlink, mmtls, http or web");
        }
    }
    let opts = args.common.options()?;
    let mut reader = Reader::open(&args.common.capture)?;
    let filter = Filter {
        cmd: args.cmd.clone(),
        conn: args.conn,
        layer: args.layer.clone(),
    };
    let view = args.view.view();
    let times = view.time.clone();
    let mut printer = report::spilling(args.format, view, io::BufWriter::new(io::stdout().lock()));
    printer.begin()?;
    let mut err: Option<io::Error> = None;
    let summary = {
        let mut an = Analyzer::new(&opts, |r: &FrameRecord| {
            if !filter.keep(r) || err.is_some() {
                return;
            }
            if let Err(e) = printer.record(r) {
                err = Some(e);
            }
        });
        let s = super::run_with_progress(
            &args.common.capture,
            args.common.quiet,
            &mut reader,
            |r, tick| {
                pipeline::run(
                    &mut times.watch(r),
                    args.common.flow_config(),
                    &mut an,
                    tick,
                )
            },
        );
        let _ = an.into_report();
        s
    };
    if let Some(e) = err {
        return Err(e.into());
    }
    printer.end()?;
    args.common.finish(&summary)
}
