//! `syncscope sync`: the SyncKey timeline per user.

use std::io;
use std::process::ExitCode;

use syncscope::report::{self, Format};

use super::common::{format_parser, DissectArgs, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a timeline per session, `{"sessions": [...]}`, or one session per line.
    #[arg(long, default_value_t = Format::Table, value_parser = format_parser(ALL_FORMATS))]
    pub format: Format,
    #[command(flatten)]
    pub view: ViewArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let view = args.view.view();
    let (report, summary, inputs) = super::report_only(
        &args.common,
        report::DEFAULT_MAX_EXAMPLES,
        &view.time,
        false,
    )?;
    // What `sync` shows: the sessions' SyncKey anomalies.
    let anomalies = report.sessions.iter().any(|s| !s.anomalies.is_empty());
    let mut printer = report::printer(args.format, view, io::BufWriter::new(io::stdout().lock()));
    printer.begin()?;
    for s in report.sessions {
        printer.record_owned(s)?;
    }
    printer.end()?;
    args.common.finish(&inputs, &summary, anomalies)
}
