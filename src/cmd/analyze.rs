//! `syncscope analyze`: the report of a whole capture.

use std::io;

use std::process::ExitCode;

use syncscope::report::{self, Format};

use super::common::{format_parser, DissectArgs, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a readable report, or the same report as one JSON document.
    #[arg(long, default_value_t = Format::Table,
          value_parser = format_parser(&[Format::Table, Format::Json]))]
    pub format: Format,
    /// Anomalies of each kind, and unanswered requests of each cmd, listed at most
    /// (all are counted; the report says how many were left out).
    #[arg(long, default_value_t = report::DEFAULT_MAX_EXAMPLES, value_name = "N")]
    pub max_examples: usize,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Also write a self-contained HTML report with plots (SyncKey timelines, latency
    /// distributions, activity per connection, exchanges on a time line) and the tables.
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let view = args.view.view();
    let (report, summary) = super::report_only(
        &args.common,
        args.max_examples,
        &view.time,
        args.html.is_some(),
    )?;
    let anomalies = super::report_has_anomalies(&report);
    if let Some(path) = &args.html {
        let mut text = Vec::new();
        report::table::analyze(&report, &report::view::View::default(), &mut text)?;
        super::write_html(path, "analyze", &args.common.capture, &report, &text)?;
    }
    let mut printer = report::printer(args.format, view, io::BufWriter::new(io::stdout().lock()));
    printer.begin()?;
    printer.record_owned(report)?;
    printer.end()?;
    args.common.finish(&summary, anomalies)
}
