//! `syncscope analyze`: the report of a whole capture.

use std::io;

use anyhow::Context;
use std::process::ExitCode;

use syncscope::analyze::{Analyzer, FrameRecord};
use syncscope::parallel;
use syncscope::report::parquet::Dataset;
use syncscope::report::{self, Format};

use super::common::{output_dir, output_parser, DissectArgs, Output, ViewArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a readable report, the same report as one JSON document, or Parquet
    /// tables (flows, frames, synckeys, anomalies) under --output DIR (docs/parquet.md).
    #[arg(long, default_value = "table", value_parser = output_parser(&[Format::Table, Format::Json]))]
    pub format: Output,
    /// With --format parquet: the dataset directory; each run adds
    /// DIR/<table>/part-<capture>-<hash>.parquet (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output: Option<std::path::PathBuf>,
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
    /// One report per capture file, each analysed apart, instead of one report over all of
    /// them merged by packet time (unrelated captures then share no sessions); with
    /// --format json, a list of {"file", "report"}.
    #[arg(long)]
    pub each: bool,
}

/// One capture's report (`--each`).
#[derive(serde::Serialize)]
struct Each {
    file: String,
    report: syncscope::analyze::Report,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let view = args.view.view();
    let format = match (
        args.format,
        output_dir(args.format, args.output.as_deref())?,
    ) {
        (Output::Parquet, _) if args.each => anyhow::bail!(
            "--each goes with --format table or json (a Parquet dataset holds many captures \
             already)"
        ),
        (Output::Parquet, Some(dir)) => return parquet(&args, dir),
        (Output::Print(f), _) => f,
        (Output::Parquet, None) => unreachable!("output_dir gives Parquet a directory"),
    };
    if args.each {
        return each(&args, format);
    }
    let (report, summary, inputs) = super::report_only(
        &args.common,
        args.max_examples,
        &view.time,
        args.html.is_some(),
    )?;
    let anomalies = super::report_has_anomalies(&report);
    if let Some(path) = &args.html {
        let mut text = Vec::new();
        report::table::analyze(&report, &report::view::View::default(), &mut text)?;
        super::write_html(
            path,
            "analyze",
            &super::inputs_label(&inputs),
            &report,
            &text,
        )?;
    }
    let mut printer = report::printer(format, view, io::BufWriter::new(io::stdout().lock()));
    printer.begin()?;
    printer.record_owned(report)?;
    printer.end()?;
    args.common.finish(&inputs, &summary, anomalies)
}

/// `--each`: one report per capture file, each run apart; exit status 1
/// with --fail-on-anomaly when any has anomalies.
fn each(args: &Args, format: Format) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    if args.html.is_some() {
        anyhow::bail!("--html goes with one report: drop --each, or --html");
    }
    let common = &args.common;
    let all = super::inputs(&common.captures, common.quiet)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut docs = Vec::new();
    let mut any = false;
    for file in &all.files {
        let view = args.view.view();
        let (report, summary, inputs) = super::report_of(
            common,
            std::slice::from_ref(file),
            args.max_examples,
            &view.time,
            false,
        )?;
        let anomalies = super::report_has_anomalies(&report);
        any |= anomalies;
        let name = file.display().to_string();
        match format {
            Format::Json => docs.push(Each { file: name, report }),
            _ => {
                writeln!(out, "== {name}")?;
                report::table::analyze(&report, &view, &mut out)?;
                writeln!(out)?;
            }
        }
        common.finish(&inputs, &summary, anomalies)?;
    }
    if format == Format::Json {
        report::json::to_writer_pretty(&mut out, &docs)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if common.scope.fail_on_anomaly && any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--format parquet`: every frame record as it completes, then the
/// report's tables; what was written goes to stderr.
fn parquet(args: &Args, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let common = &args.common;
    let mut opts = common.options()?;
    opts.plots = false;
    let scope = common.scope.scope()?;
    let inputs = super::inputs(&common.captures, common.quiet)?;
    let mut reader = inputs.open()?;
    let current = reader.current_file();
    let mut data = Dataset::create(dir, inputs.names()).with_context(|| {
        format!(
            "--output {}: cannot create the dataset (give a directory you can write to)",
            dir.display()
        )
    })?;
    let times = args.view.view().time;
    let mut err: Option<std::io::Error> = None;
    let mut an = Analyzer::new(&opts, |r: &FrameRecord| {
        if err.is_none() {
            if let Err(e) = data.frame(r, current.get()) {
                err = Some(e);
            }
        }
    })
    .max_examples(args.max_examples);
    let mut summary = super::run_with_progress(&inputs, common.quiet, &mut reader, |r, tick| {
        parallel::run(
            common.jobs(),
            r,
            common.flow_config(),
            scope,
            Some(&times),
            &mut an,
            tick,
        )
    })
    .summary;
    let report = an.into_report();
    if let Some(e) = err {
        return Err(e).context(format!("writing Parquet under {}", dir.display()));
    }
    super::nothing_read(&super::inputs_label(&inputs), &summary)?;
    summary.anomalies = report.anomaly_counts();
    let written = data
        .finish(&report)
        .with_context(|| format!("writing Parquet under {}", dir.display()))?;
    for w in &written {
        w.say(common.quiet);
    }
    common.finish(&inputs, &summary, super::report_has_anomalies(&report))
}
